"""Pass 2: SizeEngines, the overlay's sizes for the network and the board."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tqdm import tqdm

from ..intgraph import PoolFCNode
from . import hw
from .bands import band_layout
from .ir import BRAM_HEADROOM, FIELD_MAX, LUT_HEADROOM, CompileError, CompileIR, lut_limit
from .memory import memory_blocks, memory_geometry, static_memory, stream_cycles, streamable_steps
from .operands import (fc_chunks, lane_paired, params_streamed, pattern_storage, step_operands, tile_cost,
                       tile_stream_words, windowed)

SEARCH_LANES = (4, 8, 16, 32, 64)
SEARCH_PE_CIN = (4, 8, 16, 32, 64)
SEARCH_MAC_COLS = (2, 4, 8, 16, 32, 64)
TOP_CYCLES_CANDIDATES = 8  # configs re-ranked by the RTL top's cycle model (top_cycles each)
SEARCH_PP_UNITS = (1, 2)     # PostProcess lanes per cycle (rtl_gen/postprocess.py, units)
# a depthwise or grouped layer's pattern memory bits over its pattern bits, at most (issue
# 16): the search keeps to overlays within it where any fits
STORAGE_MAX = 2.0


def whole_network_cycles(cfg: hw.EngineConfig, ir: CompileIR) -> int:
    """Cycles of every layer as one full-height band (the sizing objective)."""
    total = 0
    g = ir.graph
    for lay in ir.layers:
        n = lay.node
        if isinstance(n, PoolFCNode):
            src = g.spec(n.input)
            total += src.height * src.width * math.ceil(src.channels / cfg.mac_cols) \
                + math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(src.channels / cfg.mac_cols)
            continue
        for st in lay.steps:
            tc = min(hw.channel_block(cfg, step_operands(st)), st.out_channels)
            cyc = tile_cost(cfg, st, g, n.out.height, tc)[0]
            total += cyc * math.ceil(st.out_channels / tc)
    return total


@dataclass(frozen=True)
class Estimate:
    """One overlay as the sizer sees it, computed without compiling (:func:`estimate`).

    ``resources``: the logic (hw.resources); ``lutram``: LUTs of the memories mapped to
    distributed RAM and ``bram_blocks`` block RAMs, with whole feature maps on chip;
    ``fits_logic``: the logic and those LUTs within the board's budgets (with headroom);
    ``fits_maps``: whole maps beside the static memories within the byte budget and the block
    RAM; ``static_bytes``: weights, patterns, parameters and tables; ``engine_cycles``: the
    engine-level model (:func:`whole_network_cycles`) plus the DMA_LOADs of ``streamed``, the
    fewest largest steps whose words must stay in the board's external memory for whole maps
    to fit (:func:`fit_streaming`); ``storage_ratio``: the largest pattern storage ratio of a
    depthwise or grouped layer (:func:`grouped_storage_ratio`). Where the logic alone exceeds
    the budgets, the memories and cycles are not worked out (0, ``bram_blocks`` infinite)."""
    cfg: hw.EngineConfig
    resources: hw.Resources
    lutram: int
    bram_blocks: float
    fits_logic: bool
    fits_maps: bool
    static_bytes: int
    engine_cycles: int
    streamed: frozenset = frozenset()
    storage_ratio: float = 0.0

    @property
    def key(self) -> tuple:
        """The engine-level ranking: configs whose memories fit whole maps by cycles (then
        LUTs, DSPs); the others by the smallest memories (banding then has the most room)."""
        if self.fits_maps:
            return (0, self.engine_cycles, self.resources.lut, self.resources.dsp)
        return (1, self.bram_blocks, self.static_bytes, self.engine_cycles)


def estimate(ir: CompileIR, cfg: hw.EngineConfig, act1: int) -> Estimate:
    """The :class:`Estimate` of overlay ``cfg`` for the network of ``ir`` (after CheckLegalize)
    with whole maps of ``act1`` activation bytes. Pure: reads ``ir``, writes nothing."""
    b = ir.board
    r = hw.resources(cfg, ir.costs, b.vendor)
    if not _logic_fits(r, b):      # the memories and cycles are not worked out
        return Estimate(cfg, r, 0, math.inf, False, False, 0, 0)
    streamed, static, blocks, lutram, fits_maps = fit_streaming(ir, cfg, act1)
    # logic is a hard limit: LUTs of the engines and control plus the LUTs of the shallow
    # memories mapped to distributed RAM (measured on the shipped overlay's board top: Yosys
    # 23,220 LUTs against 22,633 estimated, so the headroom matters), and the DRAM
    # controller's where anything lives in DRAM
    ctl = hw.dram_controller(b)["lut"] if streamed else 0
    fits_logic = r.lut + lutram + ctl <= lut_limit(b, LUT_HEADROOM)
    return Estimate(cfg, r, lutram, blocks, fits_logic, fits_maps, static.total,
                    whole_network_cycles(cfg, ir) + stream_cycles(ir, cfg, streamed), streamed,
                    grouped_storage_ratio(ir, cfg))


def shares_words(ir: CompileIR, cfg: hw.EngineConfig) -> bool:
    """True where two tiles of some pattern step of the network share their pattern words on
    overlay ``cfg`` (:func:`~sephw.compiler.operands.lane_paired`, two blocks or more)."""
    for lay in ir.layers:
        for st in lay.steps:
            tc = step_tc(cfg, st)
            if st.out_channels > tc and any(lane_paired(cfg, op, tc) for op in step_operands(st)):
                return True
    return False


def grouped_storage_ratio(ir: CompileIR, cfg: hw.EngineConfig) -> float:
    """The largest pattern storage ratio (memory bits over pattern bits, report.json's
    ``pattern_storage_ratio``) of the network's depthwise and grouped pattern layers on
    overlay ``cfg``; 0 without such layers. A depthwise branch narrower than the depthwise
    mode's ``dw_lanes`` leaves lanes of its words empty (MixConv's 5- and 6-channel branches
    on 16 lanes: 3.85x); without the mode each channel is a tile of its own. A grouped layer's
    tile is one group: its words fill a slice only as far as ``lanes x Cg x k^2`` bits go
    (lane pairs share them: the shipped model's conv5, 8 x 3 x 9 bits per group, takes
    1.85x on 16 x 16 with them, 3.70x on 16 x 32)."""
    worst = 0.0
    for lay in ir.layers:
        ops = [(st, op) for st in lay.steps for op in step_operands(st) if op.kind == "pattern"]
        if not any(op.groups > 1 for _, op in ops):
            continue
        held = stored = 0
        for st, op in ops:
            h, s = pattern_storage(cfg, op, st.out_channels, step_tc(cfg, st))
            held, stored = held + h, stored + s
        worst = max(worst, stored / held)
    return worst


def fit_streaming(ir: CompileIR, cfg: hw.EngineConfig, act1: int):
    """``(streamed, static, bram blocks, lutram LUTs, fits)`` of overlay ``cfg`` with whole maps
    of ``act1`` bytes: nothing streamed where the memories fit (or the placement is
    ``onchip``), every streamable step with ``external``, else (``auto`` on a board with
    external memory) the shortest prefix of :func:`~sephw.compiler.memory.streamable_steps`
    that lets them fit, found by bisection (on-chip bytes fall with every step streamed), or
    every streamable step where none does."""
    b = ir.board

    def trial(streamed):
        static = static_memory(ir, cfg, streamed)
        # with steps streamed the Program grows by their DMA_LOADs (a block RAM or more):
        # counted then; without, as before (TileLayers checks the Program's size anyway)
        n_ins = program_instructions(ir, cfg, streamed) if streamed else 0
        blocks, lutram, _ = memory_blocks(b.vendor, memory_geometry(cfg, static, act1, n_ins))
        fits = static.total + act1 <= hw.usable_onchip_bytes(b) and \
            blocks <= b.resources["bram_blocks"] * BRAM_HEADROOM
        return streamed, static, blocks, lutram, fits

    order = streamable_steps(ir, cfg) if b.external is not None and ir.placement != "onchip" else []
    if ir.placement == "external":
        return trial(frozenset(order))
    got = trial(frozenset())
    if got[-1] or not order:
        return got
    lo, hi, fit = 1, len(order), None
    while lo <= hi:
        mid = (lo + hi) // 2
        t = trial(frozenset(order[:mid]))
        if t[-1]:
            fit, hi = t, mid - 1
        else:
            lo = mid + 1
    # none fits whole maps: the memories with everything streamed, the least that banding
    # then has to fit beside (the sizer ranks such configs by it)
    return fit or trial(frozenset(order))


def program_instructions(ir: CompileIR, cfg: hw.EngineConfig, streamed: frozenset) -> int:
    """Instructions of the Program on overlay ``cfg`` with whole maps (one band), counted
    without making its tiles: one per channel block of every step, one DMA_LOAD per memory
    (and one for its parameters where they stream) for each block of a ``streamed`` step, the
    FC's chunks (a DMA_LOAD and a POOL_FC each)
    where it is streamed, and the LOAD, POOL_FC, SYNC, STORE, SYNC, END around them (the
    program memory's block RAMs grow with it)."""
    n = 6
    for lay in ir.layers:
        if isinstance(lay.node, PoolFCNode) and (lay.index, 0) in streamed:
            n += 2 * len(fc_chunks(cfg, lay.node))
        for si, st in enumerate(lay.steps):
            tc = step_tc(cfg, st)
            loads = sum(1 for w in tile_stream_words(cfg, st, tc).values() if w) + params_streamed(lay, streamed) \
                if (lay.index, si) in streamed else 0
            n += math.ceil(st.out_channels / tc) * (1 + loads)
    return n


def _logic_fits(r: hw.Resources, board) -> bool:
    return r.lut <= lut_limit(board, LUT_HEADROOM) and \
        r.ff <= board.resources["ff"] * LUT_HEADROOM and r.dsp <= board.resources["dsp"]


def top_cycles(ir: CompileIR, cfg: hw.EngineConfig, plan: dict | None = None,
               streamed: frozenset = frozenset(), tiles: list | None = None) -> int:
    """Cycles per inference of the Program on overlay ``cfg`` by the RTL top's model
    (hw.top_instruction_cycles, what ScheduleProgram predicts and `sephw simulate` measures),
    with whole maps on chip (one band; ``plan``: ``band_layout(ir, 1).plan``, which does not
    depend on the overlay, worked out here if not given): the tiles TileLayers would make and
    the instructions EmitInstructions would emit, their addresses left out (the model does not
    read them), with a DMA_LOAD before every tile of the ``streamed`` steps; or, given
    ``tiles`` (TileLayers' for some band count), those tiles' Program. Pure: reads ``ir``,
    writes nothing; no pass runs."""
    from ..arch.config import dma_beats, spill_chunk
    from .emit_instructions import program_of, tile_instruction
    from .schedule_program import program_cycles, tensor_descs
    from .tile_layers import TileLayers
    if tiles is None:
        plan = band_layout(ir, 1).plan if plan is None else plan
        tiles = TileLayers.make_tiles(ir, cfg, plan, 1, tc=lambda st: step_tc(cfg, st), streamed=streamed)
    tid = {name: tensor.id for name, tensor in ir.tensors.items()}
    program = program_of(tiles, lambda t: tile_instruction(ir, cfg, t, tid, addresses=False))
    ext = ir.board.external
    dma = (dma_beats(cfg, ext.data_bits), ext.read_latency, spill_chunk(cfg.act_banks, ext.data_bits)) \
        if streamed else None
    return sum(program_cycles(cfg, [e.instruction for e in program], tensor_descs(ir), dma))


def step_tc(cfg: hw.EngineConfig, st) -> int:
    """Output channels per tile of step ``st`` on overlay ``cfg``."""
    return min(hw.channel_block(cfg, step_operands(st)), st.out_channels)


class SizeEngines:
    CONTRACT = "choose lanes, pattern-engine input width, MAC columns, packing and post-process units " \
               "that minimize the RTL top's predicted cycles (among the engine model's best) within the " \
               "board's LUT/FF/DSP budgets and block RAM, depthwise patterns stored within 2x their bits"

    def run(self, ir: CompileIR) -> CompileIR:
        """An outer search over :func:`estimate` (every candidate) and :func:`top_cycles` (the
        engine-level model's best few): neither compiles, so no pass runs per candidate."""
        b, g = ir.board, ir.graph
        pat_k = [op.k for lay in ir.layers for st in lay.steps for op in step_operands(st) if op.kind == "pattern"]
        k_max = max(pat_k) if pat_k else 3
        a_bits = max(t.spec.bits for t in ir.tensors.values())
        widths = [g.spec(op.input).width for lay in ir.layers for st in lay.steps
                  for op in step_operands(st) if windowed(op)]
        max_width = max(widths) if widths else 1
        packs = (True, False) if b.dsp_macs_per_slice == 2 else (False,)
        # a packed multiplier takes unsigned activations only (rtl_gen/macarray.py): signed MAC
        # operands (Multiception's concat; signed pool sums, whose top byte plane the FC takes
        # as int8) need an unpacked array
        signed_mac = sorted({op.input for lay in ir.layers for st in lay.steps for op in step_operands(st)
                             if op.kind == "int8" and g.spec(op.input).signed}
                            | ({g.output.input} if g.spec(g.output.input).signed else set()))
        if signed_mac:
            packs = (False,)
        # the pattern engine's depthwise mode where the network has depthwise pattern layers
        # (and the overlay's pattern memory can carry its words)
        dw = any(hw.depthwise_pattern(op) for lay in ir.layers for st in lay.steps
                 for op in step_operands(st))
        # memories: the weights of a config must fit beside the activations of whole maps
        # (banding may shrink those later); a config that cannot is taken only if none can
        whole = band_layout(ir, 1)
        act1 = whole.act_bytes
        # configs are admitted with the column store (its LUTs counted); the re-ranking by top
        # cycles also tries each without it. Admitting configs that fit only without the store
        # would reach overlays the LUT model underestimates most (wide k_max = 5 windows: the
        # shipped model on 8 x 16 x 4 estimated 17,475 LUT, Yosys 21,324 of arty-a7-35's 20,800)
        cs = True
        cands = [(l, c, q, p, u) for l in SEARCH_LANES for c in SEARCH_PE_CIN for q in SEARCH_MAC_COLS
                 for p in packs for u in SEARCH_PP_UNITS]
        if ir.engine is not None:
            # a fixed overlay (e.g. a small one for simulation): it must still fit the board
            e = ir.engine
            cands = [(e.lanes, e.pe_cin, e.mac_cols, e.packed, e.pp_units)]
            if cands[0][3] and signed_mac:
                raise CompileError(f"engine packed=True: the MAC array's packed multipliers take unsigned "
                                   f"activations, and {signed_mac[0]} (an int8 convolution's or the FC's input) is signed; "
                                   f"use packed=False")
            cs = e.column_store
            dw = dw and e.depthwise

        # a pattern kernel smaller than k_max outside the depthwise mode: its words hold its
        # k^2 taps where the overlay keeps the bit-plane remap (dense_kernels), which is built
        # only for such a network
        small_k = k_max > 3 and any(op.k < k_max for lay in ir.layers for st in lay.steps
                                    for op in step_operands(st)
                                    if op.kind == "pattern" and not hw.depthwise_pattern(op))
        dense = small_k and (ir.engine.dense_kernels if ir.engine is not None else True)

        wb = ir.engine.weights_bram if ir.engine is not None else False
        # lane pairs where a pattern layer's tiles take at most half the lanes (a grouped
        # layer's) and there are two or more of them (their words shared: EngineConfig.lane_pairs)
        pairs = ir.engine.lane_pairs if ir.engine is not None else True
        # the board's block RAM, DSPs and routing (boards/*.yaml)
        lr, m18, pr = ir.board.landing_reg, ir.board.mul18, ir.board.plane_reg

        def config(l, c, q, p, u):
            cfg = hw.EngineConfig(l, c, q, k_max, a_bits, p, u, max_width, cs, dw, dense, wb, lr, m18, pr)
            paired = replace(cfg, lane_pairs=True)
            # (the narrower pattern memory must still carry the depthwise words)
            if pairs and shares_words(ir, paired) and (paired.depthwise_fits or not cfg.depthwise_fits):
                cfg = paired
            return cfg if cfg.depthwise_fits else replace(cfg, depthwise=False)
        ests = [estimate(ir, config(l, c, q, p, u), act1)
                for l, c, q, p, u in tqdm(cands, desc="size engines", disable=not ir.progress, leave=False)]
        # an overlay whose logic does not fit with the remap is tried without it (those
        # layers' words on the k_max grid), and competes by cycles like any other
        if dense and ir.engine is None:
            ests += [estimate(ir, replace(e.cfg, dense_kernels=False), act1) for e in ests if not e.fits_logic]
        # and one whose logic fits but not beside its LUT-RAM memories, with the MAC array's
        # weight memory in block RAM (a wide, shallow weight memory is mostly LUTs there)
        if ir.engine is None:
            ests += [estimate(ir, replace(e.cfg, weights_bram=True), act1) for e in ests
                     if not e.fits_logic and e.lutram and _logic_fits(e.resources, b)]
        admitted = sorted((e for e in ests if e.fits_logic), key=lambda e: e.key)
        if not admitted:
            raise CompileError(self._no_overlay_message(ir, ests))
        # depthwise and grouped patterns stored densely: only overlays that keep every such
        # layer within STORAGE_MAX of its bits, where any of those fits
        admitted = [e for e in admitted if e.storage_ratio <= STORAGE_MAX] or admitted
        best = admitted[0]
        # overlays whose memories fit with nothing in DRAM come first: a model that fits on
        # chip keeps every word there (its board build needs no DRAM controller)
        fitting = [e for e in admitted if e.fits_maps and not e.streamed] or \
            [e for e in admitted if e.fits_maps]
        fitting = fitting[:TOP_CYCLES_CANDIDATES]
        if fitting:
            best = fitting[0]
        streams = ir.board.external is not None and ir.placement != "onchip"
        if ir.engine is None and not ir.probe and len(fitting) > 1:     # a probe asks only "does it fit"
            best = self._rank_by_top_cycles(ir, fitting, whole)
        if ir.engine is None and not ir.probe and streams and all(e.streamed for e in fitting):
            # nothing fits with everything on chip: DRAM it is, so the overlays TileLayers can
            # band (with its program and buffers; rather than the one with the least memory)
            # compete with those that fit whole maps, each by the cycles of its own Program
            banded = self._fastest_that_bands(ir, admitted, whole)
            if banded is not None and \
                    (not fitting or banded[0] < top_cycles(ir, best.cfg, whole.plan, best.streamed)):
                best = banded[1]
        ir.cfg, ir.resources = best.cfg, best.resources
        for lay in ir.layers:
            for st in lay.steps:
                st.tc = step_tc(ir.cfg, st)
        return ir

    @staticmethod
    def _fastest_that_bands(ir: CompileIR, admitted: list[Estimate], whole, keep: int = 3) -> tuple | None:
        """Of the admitted overlays, in the engine-level model's order (DMA loads included),
        the first ``keep`` of ``TOP_CYCLES_CANDIDATES`` for which TileLayers finds row bands
        and streamed steps that fit (:meth:`TileLayers.place`, which writes nothing), the one
        whose Program (TileLayers' tiles, its band count) takes the fewest cycles on the RTL
        top (:func:`top_cycles`): ``(cycles, Estimate)``, None where none bands."""
        from .tile_layers import TileLayers
        saved = ir.cfg, [st.tc for lay in ir.layers for st in lay.steps], ir.resources
        banded = []
        try:
            for e in sorted(admitted, key=lambda e: (e.engine_cycles, e.resources.lut))[:TOP_CYCLES_CANDIDATES]:
                # (TileLayers weighs the overlay's LUTs with its LUT-RAM memories)
                ir.cfg, ir.resources = e.cfg, e.resources
                for lay in ir.layers:
                    for st in lay.steps:
                        st.tc = step_tc(e.cfg, st)
                got = TileLayers().place(ir)
                if got[0] is not None:
                    banded.append(((top_cycles(ir, e.cfg, streamed=got[1], tiles=got[0][1]), e.resources.lut), e))
                    if len(banded) == keep:
                        break
            if not banded:
                return None
            (cycles, _), e = min(banded, key=lambda x: x[0])
            return cycles, e
        finally:
            ir.cfg, ir.resources = saved[0], saved[2]
            tcs = iter(saved[1])
            for lay in ir.layers:
                for st in lay.steps:
                    st.tc = next(tcs)

    @staticmethod
    def _rank_by_top_cycles(ir: CompileIR, ranked: list[Estimate], whole) -> Estimate:
        """Of the fitting configs the engine-level model ranks best, the one whose Program takes
        the fewest cycles on the RTL top as built (:func:`top_cycles`; the top's window gather,
        not the engines, often decides), each also without the column store: fewer LUTs, and
        where the network's multi-chunk stride-1 layers are few, as fast (ties go to fewer LUTs).
        ``whole``: ``band_layout(ir, 1)``."""
        best = None
        variants = []
        for e in ranked:
            variants.append(e)
            if e.cfg.column_store:
                variants.append(estimate(ir, replace(e.cfg, column_store=False), whole.act_bytes))
        for e in tqdm(variants, desc="rank by RTL-top cycles", disable=not ir.progress, leave=False):
            key = (top_cycles(ir, e.cfg, whole.plan, e.streamed), e.resources.lut)
            if best is None or key < best[0]:
                best = (key, e)
        return best[1]

    @staticmethod
    def _no_overlay_message(ir: CompileIR, ests: list[Estimate]) -> str:
        b = ir.board
        e = min(ests, key=lambda e: e.resources.lut)
        cfg, r = e.cfg, e.resources
        what = "even the smallest overlay" if len(ests) > 1 else "the overlay"
        # a logic that fits alone: its distributed-RAM memories are what does not fit beside it
        ctl = hw.dram_controller(b)["lut"] if e.streamed else 0
        need = f"{r.lut} LUT of logic + {e.lutram} LUT of distributed-RAM memories" + \
            (f" + {ctl} LUT of the DRAM controller" if ctl else "") + \
            f" = {r.lut + e.lutram + ctl} LUT" if _logic_fits(r, b) else f"{r.lut} LUT"
        return (f"board {b.name}: {what} ({cfg.lanes} lanes, "
                f"{cfg.pe_cin}-channel pattern beats, {cfg.mac_cols} MAC columns) needs "
                f"{need} / {r.ff} FF / {r.dsp} DSP; the budget is "
                f"{lut_limit(b, LUT_HEADROOM)} LUT / {int(b.resources['ff'] * LUT_HEADROOM)} FF / "
                f"{b.resources['dsp']} DSP")

    def check(self, ir: CompileIR) -> None:
        r, b = ir.resources, ir.board
        assert r.lut <= lut_limit(b) and r.ff <= b.resources["ff"] and r.dsp <= b.resources["dsp"]
        for lay in ir.layers:
            for st in lay.steps:
                assert 1 <= st.tc <= min(ir.cfg.lanes, FIELD_MAX["tc"]), (lay.name, st.tc)
