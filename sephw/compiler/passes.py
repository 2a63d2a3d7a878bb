"""The compiler pipeline: IntGraph + board -> engine config, tiles, addresses, Program, schedule.

The pipeline is the explicit list :data:`PIPELINE` below, run in order by :func:`run_pipeline`.
Each pass is a class with ``run(ir) -> ir`` (its one-line contract in ``CONTRACT``) and
``check(ir)``, the invariants that must hold after it; :func:`check_config` checks the whole
configuration before the first pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from tqdm import tqdm

from host.protocol import MAX_PAYLOAD  # the host link's frame buffer (docs/protocol.md)

from .. import intgraph as ig
from ..intgraph import (DepthwiseConcatNode, InputNode, IntConvNode, IntGraph, PatternConvNode,
                        PoolFCNode, PRBNode, ResidualAddNode, SkipOperand)
from . import hw
from .isa import (FLAG_B_PATTERN, FLAG_DEPTHWISE, FLAG_FINAL, FLAG_PAD_BOTTOM, FLAG_PAD_TOP,
                  FLAG_SKIP_IDENTITY, FIELDS, Instruction, Op, WORD_BYTES)


class CompileError(ValueError):
    """The model cannot be compiled for the board; the message says why, with numbers."""


SUPPORTED_NODES = {InputNode: None, PatternConvNode: Op.CONV_PATTERN, IntConvNode: Op.CONV_INT,
                   PRBNode: Op.PRB, ResidualAddNode: Op.RESADD, DepthwiseConcatNode: Op.CONV_PATTERN,
                   PoolFCNode: Op.POOL_FC}
FIELD_MAX = {n: (1 << w) - 1 for n, w in FIELDS}
ACT_ALIGN = 64            # activation ring buffers start on 64-byte boundaries
PARAM_WORD_BYTES = 16     # m_a i32, m_b i32, bias i48, shift u8, reserved u8
TENSOR_DESC_BYTES = 16    # base u32, ring_rows u16, height u16, width u16, channels u16, bits u8, signed u8
LUT_HEADROOM = 0.85       # leave 15 % of LUT/FF for routing and the host link's growth
BRAM_HEADROOM = 0.9       # Yosys's block RAM mapping of the board top came out 3.5 blocks above the
                          # memory model on the shipped overlay (51 vs 47.5 RAMB36): keep 10 % free


# --------------------------------------------------------------------------- IR
@dataclass
class Step:
    """One schedulable computation of a layer: the node's operands on one engine pass.
    A DepthwiseConcat node has one step per branch; other nodes one step."""
    operands: list               # ConvOperand / SkipOperand, [a] or [a, b]
    opcode: Op
    out_c0: int                  # first output channel this step writes
    out_channels: int
    in_c0: int = 0               # depthwise branch: first input channel
    tc: int = 0                  # output channels per tile (set by SizeEngines)


@dataclass
class Layer:
    """A node of the IntGraph as the compiler sees it."""
    index: int
    node: object
    steps: list
    src_a: str = ""
    src_b: str = ""
    macs: int = 0                # useful MACs per inference (pattern + int8)
    pattern_macs: int = 0
    int8_macs: int = 0

    @property
    def name(self) -> str:
        return self.node.name


@dataclass
class Tensor:
    """A stored activation tensor: HWC bytes (one code per byte) in a ring of ``ring_rows``."""
    name: str
    id: int
    spec: object
    producer: int
    consumers: list = field(default_factory=list)
    ring_rows: int = 0
    base: int = -1
    live: tuple = (0, 0)

    @property
    def row_bytes(self) -> int:
        return self.spec.width * self.spec.channels

    @property
    def nbytes(self) -> int:
        return self.ring_rows * self.row_bytes


@dataclass
class Tile:
    """A band x channel-group of one step (or a LOAD / POOL_FC / STORE)."""
    layer: int
    step: int
    band: int
    opcode: Op
    row0: int
    rows: int
    c0: int = 0
    tc: int = 0
    in_row0: int = 0
    in_rows: int = 0
    working_set: int = 0
    costs: list = field(default_factory=list)
    busy: dict = field(default_factory=dict)
    cycles: int = 0
    flags: int = 0
    length: int = 0


@dataclass
class Region:
    """One on-chip memory: ``words`` x ``word_bytes`` (bytes for the activation memory)."""
    name: str
    word_bytes: int
    words: int

    @property
    def nbytes(self) -> int:
        return self.word_bytes * self.words


@dataclass
class CompileIR:
    graph: IntGraph
    board: object
    costs: hw.UnitCosts
    progress: bool = False
    probe: bool = False          # fit check for another board: no message, no recursion
    engine: dict | None = None   # fixed engine sizes (lanes, pe_cin, mac_cols, packed, pp_units): no search
    budget: int = 0
    layers: list = field(default_factory=list)
    tensors: dict = field(default_factory=dict)
    cfg: hw.EngineConfig | None = None
    resources: dict = field(default_factory=dict)
    bands: int = 0
    band_rows: list = field(default_factory=list)      # per tensor: hi rows after each band
    tiles: list = field(default_factory=list)
    memory: dict = field(default_factory=dict)          # region name -> Region
    memory_blocks: dict = field(default_factory=dict)   # block RAMs / LUTRAM of every memory
    onchip: dict = field(default_factory=dict)          # region name -> bytes
    words: dict = field(default_factory=dict)           # (layer, step, operand) -> first word
    prm_base: dict = field(default_factory=dict)        # layer -> first param word
    pool_weight_word: int = 0
    instructions: list = field(default_factory=list)
    schedule: list = field(default_factory=list)
    cycles: int = 0              # per inference, RTL top as built (hw.top_instruction_cycles)
    engine_cycles: int = 0       # per inference, engine-level model (hw.tile_cycles)
    anchor: str = ""             # the tensor whose row bands drive the banded layers


# --------------------------------------------------------------------------- helpers
def _rows_needed(op, a: int, b: int, h_in: int) -> tuple[int, int]:
    """Input rows ``[lo, hi)`` that output rows ``[a, b)`` of ``op`` read (clipped)."""
    if isinstance(op, SkipOperand) or op.k == 1 and op.stride == 1:
        return a, b
    lo = a * op.stride - op.padding
    hi = (b - 1) * op.stride - op.padding + op.k
    return max(0, lo), min(h_in, hi)


def _windowed(op) -> bool:
    return not isinstance(op, SkipOperand) and op.k > 1


def _chunks(cfg, op, tc: int) -> int:
    gt = hw.operand_groups_in_tile(op, tc)
    cg = int(op.weight.shape[1])
    if op.kind == "pattern":
        return math.ceil(cg / max(1, cfg.pe_cin // gt))
    return math.ceil(gt * cg * op.k ** 2 / cfg.mac_cols)


def _operand_reads(op, c0_rel: int, tc: int, in_c0: int) -> tuple[int, int]:
    """``(first input channel, input channels)`` a tile of ``tc`` output channels starting
    ``c0_rel`` channels into ``op``'s outputs reads (tiles are group-aligned)."""
    og = op.out_channels // op.groups
    cg = int(op.weight.shape[1])
    return in_c0 + (c0_rel // og) * cg, hw.operand_groups_in_tile(op, tc) * cg


def param_blocks(cfg, lay) -> tuple[int, int]:
    """``(tc, words)``: a layer's PostProcess parameters in blocks of ``tc`` channels, each
    block ``words`` parameter words long from the layer's base (channel ``c`` at word
    ``(c // tc) * words + c % tc``). A PostProcess with U units reads U banks from a
    ``param_base`` that must be a multiple of U, so a layer whose tiles are ``tc`` channels
    with ``tc`` not a multiple of U (one-channel depthwise pattern tiles) pads every tile's
    block to a multiple of U; other layers are contiguous, ``(1, 1)``."""
    u = cfg.pp_units
    tcs = {min(hw.channel_block(cfg, _step_operands(st)), st.out_channels) for st in lay.steps}
    odd = {t for t in tcs if t % u}
    if not odd:
        return 1, 1
    if len(tcs) > 1:
        raise CompileError(f"{lay.node.name}: tiles of {sorted(tcs)} channels with {u} PostProcess "
                           f"units (parameter blocks need one tile width)")
    tc = odd.pop()
    return tc, -(-tc // u) * u


def param_word(blocks: tuple[int, int], c: int) -> int:
    """Word of channel ``c``'s parameters from the layer's base, ``blocks`` its
    :func:`param_blocks`."""
    tc, words = blocks
    return c // tc * words + c % tc


def param_words_of(cfg, lay, channels: int) -> int:
    """Parameter words of a layer of ``channels`` output channels, up to its last channel's."""
    return param_word(param_blocks(cfg, lay), channels - 1) + 1


def _step_operands(step) -> list:
    return [op for op in step.operands if not isinstance(op, SkipOperand)]


def tile_cost(cfg, step, graph, rows_out: int, tc: int) -> tuple[int, dict, list, int, int]:
    """Predicted cycles of one tile of ``step`` (``rows_out`` output rows, ``tc`` channels):
    ``(cycles, busy per unit, [OpCost], input rows, input width)``."""
    op0 = step.operands[0]
    src = graph.spec(op0.input)
    out_w = ig.conv_out_hw(src.height, src.width, op0.k, op0.stride, op0.padding)[1] \
        if not isinstance(op0, SkipOperand) else src.width
    costs, fill, in_rows = [], 0, rows_out
    for op in step.operands:
        if isinstance(op, SkipOperand):
            costs.append(hw.OpCost("pp", 0, 0))
            continue
        s = graph.spec(op.input)
        rin = min(s.height, (rows_out - 1) * op.stride + op.k) if _windowed(op) else rows_out * op.stride
        in_rows = max(in_rows, rin)
        c = hw.op_cost(cfg, op, tc, rows_out, out_w, rin, s.width, s.bits)
        costs.append(c)
        if _windowed(op):
            fill += c.chunks * (op.k - 1) * (s.width + 2 * op.padding)
    cyc, busy = hw.tile_cycles(costs, tc, rows_out * out_w, cfg, fill)
    return cyc, busy, costs, in_rows, src.width


# --------------------------------------------------------------------------- configuration check
def check_config(graph, board, costs) -> None:
    """Everything the passes rely on, checked once before the first pass."""
    if not isinstance(graph, IntGraph):
        raise CompileError(f"expected an IntGraph, got {type(graph).__name__}")
    for k in ("lut", "ff", "dsp", "bram_blocks", "bram_kbits"):
        if not board.resources.get(k, 0) > 0:
            raise CompileError(f"board {board.name}: resources.{k} must be positive")
    if board.vendor not in hw.BRAM_GEOMETRY:
        raise CompileError(f"board {board.name}: vendor {board.vendor!r} has no block-RAM geometry; "
                           f"supported: {', '.join(hw.BRAM_GEOMETRY)}")
    if not isinstance(costs, hw.UnitCosts):
        raise CompileError("costs must be a hw.UnitCosts")


# --------------------------------------------------------------------------- pass 1
class CheckLegalize:
    CONTRACT = "every node is a supported type within the ISA's field ranges; one Layer per node"

    def run(self, ir: CompileIR) -> CompileIR:
        g = ir.graph
        try:
            g.validate()
        except ig.IntGraphError as e:
            raise CompileError(f"invalid IntGraph: {e}") from None
        supported = ", ".join(c.__name__ for c in SUPPORTED_NODES)
        for i, n in enumerate(g.nodes):
            if type(n) not in SUPPORTED_NODES:
                raise CompileError(f"{getattr(n, 'name', i)}: {type(n).__name__} is not supported by the "
                                   f"compiler; supported node types: {supported}")
            if isinstance(n, PoolFCNode):
                steps = []
            elif isinstance(n, InputNode):
                steps = []
            elif isinstance(n, DepthwiseConcatNode):
                steps, off = [], 0
                for b in n.branches:
                    op = b.as_operand(n.input)
                    steps.append(Step([op], Op.CONV_PATTERN if b.kind == "pattern" else Op.CONV_INT,
                                      off, b.channels, in_c0=b.channel_start))
                    off += b.channels
            else:
                ops = ig.node_operands(n)
                steps = [Step(ops, SUPPORTED_NODES[type(n)], 0, n.out.channels)]
            lay = Layer(i, n, steps)
            if isinstance(n, PoolFCNode):
                lay.src_a = n.input
                lay.macs = lay.int8_macs = int(n.weight.numel())
            elif not isinstance(n, InputNode):
                ins = ig.node_inputs(n)
                lay.src_a = ins[0]
                lay.src_b = ins[1] if len(ins) > 1 else ins[0]
                for st in steps:
                    for op in _step_operands(st):
                        s = g.spec(op.input)
                        ho, wo = ig.conv_out_hw(s.height, s.width, op.k, op.stride, op.padding)
                        m = ho * wo * op.out_channels * int(op.weight.shape[1]) * op.k ** 2
                        if op.kind == "pattern":
                            lay.pattern_macs += m
                        else:
                            lay.int8_macs += m
                lay.macs = lay.pattern_macs + lay.int8_macs
            ir.layers.append(lay)
            if not isinstance(n, PoolFCNode):
                s = n.out
                for what, v, lim in (("height", s.height, FIELD_MAX["row0"]), ("width", s.width, 65535),
                                     ("channels", s.channels, FIELD_MAX["c0"])):
                    if v > lim:
                        raise CompileError(f"{n.name}: {what} {v} exceeds the ISA limit {lim}")
                ir.tensors[n.name] = Tensor(n.name, len(ir.tensors), s, i)
        if len(ir.tensors) > FIELD_MAX["dst"] + 1:
            raise CompileError(f"{len(ir.tensors)} tensors; the ISA names at most {FIELD_MAX['dst'] + 1}")
        for lay in ir.layers:
            for name in {lay.src_a, lay.src_b} - {""}:
                ir.tensors[name].consumers.append(lay.index)
        return ir

    def check(self, ir: CompileIR) -> None:
        assert len(ir.layers) == len(ir.graph.nodes)
        for lay in ir.layers:
            compute = not isinstance(lay.node, (InputNode, PoolFCNode))
            assert bool(lay.steps) == compute, lay.name
            for st in lay.steps:
                assert st.out_c0 + st.out_channels <= lay.node.out.channels, lay.name


# --------------------------------------------------------------------------- pass 2
SEARCH_LANES = (4, 8, 16, 32, 64)
SEARCH_PE_CIN = (4, 8, 16, 32, 64)
SEARCH_MAC_COLS = (2, 4, 8, 16, 32, 64)
TOP_CYCLES_CANDIDATES = 8  # configs re-ranked by the RTL top's cycle model (full compile each)
SEARCH_PP_UNITS = (1, 2)     # PostProcess lanes per cycle (rtl_gen/postprocess.py, units)


def whole_network_cycles(cfg, ir) -> int:
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
            tc = min(hw.channel_block(cfg, _step_operands(st)), st.out_channels)
            cyc = tile_cost(cfg, st, g, n.out.height, tc)[0]
            total += cyc * math.ceil(st.out_channels / tc)
    return total


class SizeEngines:
    CONTRACT = "choose lanes, pattern-engine input width, MAC columns, packing and post-process units " \
               "that minimize the RTL top's predicted cycles (among the engine model's best) within the " \
               "board's LUT/FF/DSP budgets and block RAM"

    def run(self, ir: CompileIR) -> CompileIR:
        b, g = ir.board, ir.graph
        pat_k = [op.k for lay in ir.layers for st in lay.steps for op in _step_operands(st) if op.kind == "pattern"]
        k_max = max(pat_k) if pat_k else 3
        a_bits = max(t.spec.bits for t in ir.tensors.values())
        widths = [g.spec(op.input).width for lay in ir.layers for st in lay.steps
                  for op in _step_operands(st) if _windowed(op)]
        max_width = max(widths) if widths else 1
        packs = (True, False) if b.dsp_macs_per_slice == 2 else (False,)
        lut_cap, ff_cap, dsp_cap = b.resources["lut"] * LUT_HEADROOM, b.resources["ff"] * LUT_HEADROOM, b.resources["dsp"]
        # memories: the weights of a config must fit beside the activations of whole maps
        # (banding may shrink those later); a config that cannot is taken only if none can
        tl = TileLayers()
        _, _, act1, _ = tl._layout(ir, 1)
        budget = hw.usable_onchip_bytes(b)
        best, smallest, fitting = None, None, []
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
            cands = [(e["lanes"], e["pe_cin"], e["mac_cols"], bool(e.get("packed", False)), e.get("pp_units", 1))]
            cs = bool(e.get("column_store", True))
        for l, c, q, p, u in tqdm(cands, desc="size engines", disable=not ir.progress, leave=False):
            cfg = hw.EngineConfig(l, c, q, k_max, a_bits, p, u, max_width, cs)
            r = hw.resources(cfg, ir.costs, b.vendor)
            if smallest is None or r["lut"] < smallest[1]["lut"]:
                smallest = (cfg, r, None)
            if r["lut"] > lut_cap or r["ff"] > ff_cap or r["dsp"] > dsp_cap:
                continue
            static = tl._static_bytes(ir, cfg)
            sbytes = sum(v for k, v in static.items() if not k.startswith("_"))
            blocks, lutram, _ = memory_blocks(b.vendor, memory_geometry(cfg, static, act1, 0))
            # logic is a hard limit: LUTs of the engines and control plus the LUTs of the
            # shallow memories mapped to distributed RAM (measured on the shipped overlay's board
            # top: Yosys 23,220 LUTs against 22,633 estimated, so the headroom matters)
            if r["lut"] + lutram > lut_cap:
                if smallest[0] == cfg:
                    smallest = (cfg, r, lutram)
                continue
            fits = sbytes + act1 <= budget and blocks <= b.resources["bram_blocks"] * BRAM_HEADROOM
            # configs whose memories fit whole maps: fastest; otherwise the one with the smallest
            # memories (banding then has the most room for the activations)
            key = (0, whole_network_cycles(cfg, ir), r["lut"], r["dsp"]) if fits else \
                (1, blocks, sbytes, whole_network_cycles(cfg, ir))
            if best is None or key < best[0]:
                best = (key, cfg, r)
            if fits:
                fitting.append((key, cfg, r))
        if ir.engine is None and not ir.probe and len(fitting) > 1:
            best = self._rank_by_top_cycles(ir, sorted(fitting, key=lambda f: f[0])[:TOP_CYCLES_CANDIDATES]) or best
        if best is None:
            cfg, r, lutram = smallest
            what = "even the smallest overlay" if len(cands) > 1 else "the overlay"
            need = f"{r['lut']} LUT" if lutram is None else \
                f"{r['lut']} LUT of logic + {lutram} LUT of distributed-RAM memories = {r['lut'] + lutram} LUT"
            raise CompileError(f"board {b.name}: {what} ({cfg.lanes} lanes, "
                               f"{cfg.pe_cin}-channel pattern beats, {cfg.mac_cols} MAC columns) needs "
                               f"{need} / {r['ff']} FF / {r['dsp']} DSP; the budget is "
                               f"{int(lut_cap)} LUT / {int(ff_cap)} FF / {dsp_cap} DSP")
        _, ir.cfg, ir.resources = best
        for lay in ir.layers:
            for st in lay.steps:
                st.tc = min(hw.channel_block(ir.cfg, _step_operands(st)), st.out_channels)
        return ir

    @staticmethod
    def _rank_by_top_cycles(ir: CompileIR, ranked: list):
        """Of the fitting configs the engine-level model ranks best, the one whose compiled
        Program takes the fewest cycles on the RTL top as built (the whole pipeline run with
        the overlay fixed; the top's window gather, not the engines, often decides)."""
        best = None
        # each config also without the column store, if it has one: fewer LUTs, and where the
        # network's multi-chunk stride-1 layers are few, as fast (ties go to fewer LUTs)
        variants = [(key, v) for key, cfg, _ in ranked
                    for v in ((cfg, replace(cfg, column_store=False)) if cfg.column_store else (cfg,))]
        for key, cfg in tqdm(variants, desc="rank by RTL-top cycles", disable=not ir.progress, leave=False):
            eng = dict(lanes=cfg.lanes, pe_cin=cfg.pe_cin, mac_cols=cfg.mac_cols, packed=cfg.packed,
                       pp_units=cfg.pp_units, column_store=cfg.column_store)
            try:
                cycles = compile_ir(ir.graph, ir.board, ir.costs, engine=eng).cycles
            except CompileError:
                continue
            r = hw.resources(cfg, ir.costs, ir.board.vendor)
            if best is None or (cycles, r["lut"]) < best[0]:
                best = ((cycles, r["lut"]), (key, cfg, r))
        return None if best is None else best[1]

    def check(self, ir: CompileIR) -> None:
        r, b = ir.resources, ir.board
        assert r["lut"] <= b.resources["lut"] and r["ff"] <= b.resources["ff"] and r["dsp"] <= b.resources["dsp"]
        for lay in ir.layers:
            for st in lay.steps:
                assert 1 <= st.tc <= min(ir.cfg.lanes, FIELD_MAX["tc"]), (lay.name, st.tc)


# --------------------------------------------------------------------------- pass 3
def plan_bands(ir: CompileIR, n_bands: int, anchor: str | None = None) -> dict:
    """Row intervals per tensor and band for ``n_bands`` equal row bands of the tensor
    ``anchor`` (default: the last feature map). Layers after the anchor run in the last band
    on whole tensors (the anchor is complete by then).

    Walks the graph backwards: a tensor's rows needed in band ``b`` are the union of what its
    consumers' *new* rows of band ``b`` read (halos included). Returns ``{name: (hi, lo)}``
    with ``hi[b]`` the rows produced by the end of band ``b`` (``hi[0] = 0``) and ``lo[b]``
    the lowest row any consumer reads in band ``b``."""
    g = ir.graph
    pool = g.output
    anchor = anchor or pool.input
    ha = g.spec(anchor).height
    hf = g.spec(pool.input).height
    hi = {anchor: [(b * ha) // n_bands for b in range(n_bands + 1)]}
    if anchor != pool.input:
        hi[pool.input] = [0] * n_bands + [hf]
    edges = hi[pool.input]
    lo = {}
    for lay in reversed(ir.layers):
        n = lay.node
        if isinstance(n, PoolFCNode):
            continue
        name = n.name
        h = n.out.height
        if name not in hi:
            hi[name] = [0] * (n_bands + 1)
        los = [None] * n_bands
        for ci in ir.tensors[name].consumers:
            c = ir.layers[ci]
            if isinstance(c.node, PoolFCNode):
                for b in range(n_bands):
                    los[b] = edges[b] if los[b] is None else min(los[b], edges[b])
                continue
            ch = hi[c.name]
            for b in range(n_bands):
                a, e = ch[b], ch[b + 1]
                if e <= a:
                    continue
                for st in c.steps:
                    for op in st.operands:
                        if op.input != name:
                            continue
                        rlo, rhi = _rows_needed(op, a, e, h)
                        los[b] = rlo if los[b] is None else min(los[b], rlo)
                        hi[name][b + 1] = max(hi[name][b + 1], rhi)
        for b in range(n_bands):
            hi[name][b + 1] = max(hi[name][b + 1], hi[name][b])
            if los[b] is None:
                los[b] = hi[name][b]
        lo[name] = los
    return {k: (hi[k], lo[k]) for k in hi}


def _ring_rows(hi, lo) -> int:
    return max(1, max(hi[b + 1] - min(lo[b], hi[b]) for b in range(len(lo))))


def memory_geometry(cfg, static: dict, act_bytes: int, instructions: int) -> dict:
    """``{memory: (width bits, depth words[, copies])}`` of every on-chip memory, as the RTL
    top builds them: the activations in ``max(pe_cin, mac_cols, lanes)`` byte-wide banks
    (rtl_gen/top.py), the sliding window's column store, the host link's frame, input and logit
    buffers (rtl_gen/hostlink.py)."""
    banks = cfg.act_banks
    return {"activations": (8, max(2, math.ceil(act_bytes / banks)), banks),
            "host_frame": (8, MAX_PAYLOAD),
            "host_input": (8, static.get("_input_bytes", 0)),
            "host_logits": (8, static.get("_logit_bytes", 0)),
            "patterns": (cfg.pattern_mem_bits, static["_pat_words"] * cfg.pattern_slices),
            "weights": (8 * cfg.weight_word_bytes, static["_wgt_words"]),
            "params": (8 * PARAM_WORD_BYTES, static["_params"]),
            "tensor_table": (8 * TENSOR_DESC_BYTES, static["_tensors"]),
            "program": (WORD_BYTES * 8, instructions),
            "column_store": (cfg.column_store_bits, static["_store_chunks"]),
            "pool_sums": (32, static["_pool_channels"])}


def memory_blocks(vendor: str, geometry: dict) -> tuple[int, int, dict]:
    """Total block RAMs, LUTRAM LUTs and the per-memory ``(blocks, luts)``."""
    per = {}
    for k, (w, d, *n) in geometry.items():
        b, lut = hw.memory_cost(vendor, w, d)
        per[k] = (b * (n[0] if n else 1), lut * (n[0] if n else 1))
    return sum(b for b, _ in per.values()), sum(l for _, l in per.values()), per


def _first_fit(items: list[tuple[str, int, int, int]]) -> tuple[dict, int]:
    """Place ``(name, bytes, live_from, live_to)`` so no two overlapping lifetimes overlap in
    memory; returns ``({name: base}, total bytes)``."""
    placed, bases, top = [], {}, 0
    for name, size, t0, t1 in sorted(items, key=lambda x: (-x[1], x[2])):
        size = -(-size // ACT_ALIGN) * ACT_ALIGN
        busy = sorted((b, b + s) for (b, s, u0, u1) in placed if not (u1 < t0 or t1 < u0))
        base = 0
        for b0, b1 in busy:
            if base + size <= b0:
                break
            base = max(base, b1)
        placed.append((base, size, t0, t1))
        bases[name] = base
        top = max(top, base + size)
    return bases, top


class TileLayers:
    CONTRACT = "split every layer into row bands (halos included) x channel groups so the whole " \
               "on-chip working set fits the board's block RAM and 10 MB"

    def _candidates(self, ir: CompileIR) -> list:
        """``(bands, anchor)`` to try: one band; then, for every tensor a cut can follow (no
        earlier tensor read after it), band counts 2..8 and a few larger ones."""
        out = [(1, None)]
        later_reads = {}
        for lay in ir.layers:
            for name in {lay.src_a, lay.src_b} - {""}:
                later_reads[name] = max(later_reads.get(name, -1), lay.index)
        for lay in ir.layers:
            n = lay.node
            if isinstance(n, PoolFCNode):
                continue
            if any(later_reads.get(t.name, -1) > lay.index for t in ir.tensors.values()
                   if t.producer < lay.index):
                continue
            h = n.out.height
            for nb in sorted({*range(2, 9), 12, 16, 24, 32, 48, 64}):
                if nb <= h:
                    out.append((nb, n.name))
        return out

    def _layout(self, ir: CompileIR, n_bands: int, anchor: str | None = None):
        plan = plan_bands(ir, n_bands, anchor)
        items = []
        for t in ir.tensors.values():
            hi, lo = plan[t.name]
            rows = _ring_rows(hi, lo)
            # a tensor touched in one band only lives from its producer to its last consumer
            # (in layer order inside that band); one touched in several bands lives throughout
            bands = sum(1 for b in range(n_bands) if hi[b + 1] > hi[b] or lo[b] < hi[b])
            live = (t.producer if bands <= 1 else 0, max(t.consumers, default=t.producer))
            items.append((t.name, rows * t.row_bytes, live[0], live[1], rows))
        bases, act_bytes = _first_fit([i[:4] for i in items])
        rows = {i[0]: (i[4], (i[2], i[3])) for i in items}
        return plan, bases, act_bytes, rows

    def _static_bytes(self, ir: CompileIR, cfg=None) -> dict:
        """Bytes of every memory except activations and program, for the sized engines
        (or for ``cfg``)."""
        cfg, g = cfg or ir.cfg, ir.graph
        pat_words = wgt_words = params = 0
        for lay in ir.layers:
            n = lay.node
            if not isinstance(n, InputNode):
                params = -(-params // cfg.pp_units) * cfg.pp_units     # as AssignAddresses aligns them
            if isinstance(n, PoolFCNode):
                wgt_words += math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(n.weight.shape[1] / cfg.mac_cols)
                params += n.weight.shape[0]
                continue
            if isinstance(n, InputNode):
                continue
            params += param_words_of(cfg, lay, n.out.channels)
            for st in lay.steps:
                tc = min(hw.channel_block(cfg, _step_operands(st)), st.out_channels)
                blocks = math.ceil(st.out_channels / tc)
                for op in _step_operands(st):
                    w = blocks * _chunks(cfg, op, tc)
                    if op.kind == "pattern":
                        pat_words += w
                    else:
                        wgt_words += w
        pool = g.output
        # the sliding window's column store: one entry per pattern chunk of the widest tensor
        # (rtl_gen/top.py builds it from the manifest's widest tensor, at least 2 entries)
        store_chunks = max(2, math.ceil(max(t.spec.channels for t in ir.tensors.values()) / cfg.pe_cin))
        return {"patterns": pat_words * cfg.pattern_word_bytes,
                "weights": wgt_words * cfg.weight_word_bytes,
                "params": params * PARAM_WORD_BYTES,
                "column_store": -(-cfg.column_store_bits // 8) * store_chunks,
                "tensor_table": len(ir.tensors) * TENSOR_DESC_BYTES,
                "pool_sums": g.spec(pool.input).channels * 4 + pool.weight.shape[0] * 8,
                "host_link": MAX_PAYLOAD + math.prod(g.input.out.shape) + pool.weight.shape[0] * 8,
                "_input_bytes": math.prod(g.input.out.shape), "_logit_bytes": pool.weight.shape[0] * 8,
                "_pat_words": pat_words, "_wgt_words": wgt_words, "_params": params,
                "_tensors": len(ir.tensors), "_pool_channels": g.spec(pool.input).channels,
                "_store_chunks": store_chunks}

    def _make_tiles(self, ir: CompileIR, plan: dict, n_bands: int) -> list:
        g, cfg = ir.graph, ir.cfg
        tiles = []
        for b in range(n_bands):
            for lay in ir.layers:
                n = lay.node
                if isinstance(n, InputNode):
                    hi, _ = plan[n.name]
                    r0, r1 = hi[b], hi[b + 1]
                    if r1 > r0:
                        t = ir.tensors[n.name]
                        tiles.append(Tile(lay.index, 0, b, Op.LOAD, r0, r1 - r0, length=(r1 - r0) * t.row_bytes))
                    continue
                if isinstance(n, PoolFCNode):
                    hi, _ = plan[n.input]
                    r0, r1 = hi[b], hi[b + 1]
                    src = g.spec(n.input)
                    cyc = (r1 - r0) * src.width * math.ceil(src.channels / cfg.mac_cols)
                    flags = 0
                    if b == n_bands - 1:
                        flags = FLAG_FINAL
                        cyc += math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(src.channels / cfg.mac_cols)
                    if r1 > r0 or flags:
                        tiles.append(Tile(lay.index, 0, b, Op.POOL_FC, r0, r1 - r0, cycles=cyc + hw.TILE_LATENCY,
                                          busy={"mac": cyc}, flags=flags, tc=n.weight.shape[0]))
                    if flags:
                        tiles.append(Tile(lay.index, 0, b, Op.STORE, 0, 0, length=n.weight.shape[0] * 8,
                                          cycles=n.weight.shape[0] * 8))
                    continue
                hi, _ = plan[n.name]
                r0, r1 = hi[b], hi[b + 1]
                if r1 <= r0:
                    continue
                for si, st in enumerate(lay.steps):
                    for c0 in range(0, st.out_channels, st.tc):
                        tc = min(st.tc, st.out_channels - c0)
                        cyc, busy, costs, _, _ = tile_cost(cfg, st, g, r1 - r0, tc)
                        op0 = st.operands[0]
                        src = g.spec(op0.input)
                        ilo, ihi = _rows_needed(op0, r0, r1, src.height)
                        flags = 0
                        if _windowed(op0):
                            if r0 * op0.stride - op0.padding <= 0:
                                flags |= FLAG_PAD_TOP
                            if (r1 - 1) * op0.stride - op0.padding + op0.k >= src.height:
                                flags |= FLAG_PAD_BOTTOM
                        if isinstance(n, DepthwiseConcatNode):
                            flags |= FLAG_DEPTHWISE
                        if isinstance(n, ResidualAddNode):
                            if isinstance(n.skip, SkipOperand):
                                flags |= FLAG_SKIP_IDENTITY
                            if n.main.kind == "pattern":
                                flags |= FLAG_B_PATTERN
                        opcode = st.opcode
                        if isinstance(n, DepthwiseConcatNode):
                            opcode = Op.CONV_PATTERN if op0.kind == "pattern" else Op.CONV_INT
                        wset = (ihi - ilo) * src.width * src.channels
                        wset += (r1 - r0) * n.out.width * tc
                        for op, c in zip(st.operands, costs):
                            if isinstance(op, SkipOperand):
                                wset += (r1 - r0) * n.out.width * tc
                            elif op.kind == "pattern":
                                wset += c.chunks * cfg.pattern_word_bytes
                            else:
                                wset += c.chunks * cfg.weight_word_bytes
                        wset += tc * PARAM_WORD_BYTES
                        tiles.append(Tile(lay.index, si, b, opcode, r0, r1 - r0, st.out_c0 + c0, tc,
                                          ilo, ihi - ilo, wset, costs, busy, cyc, flags))
        return tiles

    def run(self, ir: CompileIR) -> CompileIR:
        ir.budget = hw.usable_onchip_bytes(ir.board)
        static = self._static_bytes(ir)
        static_total = sum(v for k, v in static.items() if not k.startswith("_"))
        best, chosen, done = None, None, set()
        for n_bands, anchor in tqdm(self._candidates(ir), desc="tile", disable=not ir.progress, leave=False):
            if chosen is not None and chosen[0] == 1:
                break
            if anchor in done:      # more bands of the same anchor only add tiles
                continue
            plan, bases, act_bytes, rows = self._layout(ir, n_bands, anchor)
            tiles = self._make_tiles(ir, plan, n_bands)
            program = (len(tiles) + 3) * WORD_BYTES   # + SYNC before STORE, SYNC, END
            total = static_total + act_bytes + program
            blocks, lutram, per = memory_blocks(ir.board.vendor, memory_geometry(ir.cfg, static, act_bytes, len(tiles) + 3))
            if best is None or total < best[0]:
                best = (total, n_bands, plan, rows, act_bytes, program, blocks, lutram)
            fits = total <= ir.budget and blocks <= ir.board.resources["bram_blocks"] * BRAM_HEADROOM \
                and ir.resources["lut"] + lutram <= ir.board.resources["lut"]
            if fits:
                done.add(anchor)
            if fits and (chosen is None or len(tiles) < len(chosen[1])):
                chosen = (n_bands, tiles, anchor, plan, rows, act_bytes, program, blocks, lutram, per)
        if chosen is not None:
            n_bands, tiles, anchor, plan, rows, act_bytes, program, blocks, lutram, per = chosen
            if True:
                ir.anchor = anchor or ir.graph.output.input
                ir.memory_blocks = {"block_ram": blocks, "lutram_luts": lutram,
                                    "per_memory": {k: {"blocks": b, "lutram_luts": l} for k, (b, l) in per.items()}}
                ir.resources = dict(ir.resources, lut=ir.resources["lut"] + lutram, bram_blocks=blocks)
                ir.bands, ir.band_rows = n_bands, plan
                for name, (r, live) in rows.items():
                    ir.tensors[name].ring_rows = r
                    ir.tensors[name].live = live
                ir.tiles = tiles
                ir.onchip = {"activations": act_bytes, "program": program,
                             **{k: v for k, v in static.items() if not k.startswith("_")}}
                ir._static_words = static
                return ir
        total, n_bands, plan, rows, act_bytes, program, blocks, lutram = best
        if ir.probe:
            raise CompileError(f"does not fit {ir.board.name}")
        big = max(ir.tensors.values(), key=lambda t: rows[t.name][0] * t.row_bytes)
        raise CompileError(self._not_fit_message(ir, total, n_bands, big, rows[big.name][0], static, act_bytes, blocks,
                                                 lutram))

    def _not_fit_message(self, ir, total, n_bands, big, big_rows, static, act_bytes, blocks, lutram=0) -> str:
        from boards import all_boards
        fits = []
        for name, b in all_boards().items():
            if name == ir.board.name:
                continue
            try:
                compile_ir(ir.graph, b, ir.costs, progress=False, until=TileLayers, probe=True)
                fits.append(name)
            except CompileError:
                pass
        parts = ", ".join(f"{k} {v}" for k, v in static.items() if not k.startswith("_"))
        nb = ir.board.resources["bram_blocks"] * BRAM_HEADROOM
        if total <= ir.budget and blocks <= nb:
            why = (f"the memories fit ({total} bytes, {blocks} block RAMs) but the overlay's "
                   f"{ir.resources['lut']} LUT of logic + {lutram} LUT of distributed-RAM memories exceed "
                   f"the part's {ir.board.resources['lut']} LUT")
        else:
            why = (f"{total} bytes fit the byte budget but the memories need {blocks} block RAMs, usable {nb:g} "
                   f"(90 % of {ir.board.resources['bram_blocks']})"
                   if total <= ir.budget else f"bytes needed {total} > available {ir.budget}")
        return (f"model does not fit {ir.board.name} ({why}): the smallest on-chip working set ({n_bands} row "
                f"band(s)) needs {total} bytes, available {ir.budget} bytes "
                f"(block RAM data bytes{', capped at 10 MB' if ir.budget == hw.MAX_ONCHIP_BYTES else ''}); "
                f"largest layer buffer: {big.name} {big.spec.describe()} holds {big_rows} rows x "
                f"{big.row_bytes} bytes = {big_rows * big.row_bytes} bytes; activations {act_bytes} bytes, "
                f"{parts}; {blocks} block RAMs of {ir.board.resources['bram_blocks']}. Boards that would fit: {', '.join(fits) if fits else 'none of the listed boards'}")

    def check(self, ir: CompileIR) -> None:
        total = sum(ir.onchip.values())
        assert total <= ir.budget <= hw.MAX_ONCHIP_BYTES, (total, ir.budget)
        assert ir.memory_blocks["block_ram"] <= ir.board.resources["bram_blocks"] * BRAM_HEADROOM
        assert ir.resources["lut"] <= ir.board.resources["lut"]
        for t in ir.tiles:
            assert t.working_set <= ir.budget
            if t.opcode in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
                lay = ir.layers[t.layer]
                src = ir.tensors[lay.steps[t.step].operands[0].input]
                # the ring must hold the band's input rows including the halo
                assert t.in_rows <= src.ring_rows, (lay.name, t.in_rows, src.ring_rows)
                assert t.rows <= ir.tensors[lay.name].ring_rows
        # every row of every needed tensor is produced exactly once
        for name, (hi, lo) in ir.band_rows.items():
            assert all(hi[b] <= hi[b + 1] for b in range(ir.bands))


# --------------------------------------------------------------------------- pass 4
class AssignAddresses:
    CONTRACT = "give every tensor ring a base in the activation memory and every layer its " \
               "pattern, weight and parameter words; no two live regions overlap"

    def run(self, ir: CompileIR) -> CompileIR:
        items = [(t.name, t.nbytes, t.live[0], t.live[1]) for t in ir.tensors.values()]
        bases, top = _first_fit(items)
        for name, base in bases.items():
            ir.tensors[name].base = base
        cfg = ir.cfg
        pat = wgt = prm = 0
        for lay in ir.layers:
            n = lay.node
            if isinstance(n, InputNode):
                continue
            # a PostProcess with U units reads U parameter banks at param_base / U: every
            # layer's parameters start on a multiple of U (emit pads the image with zero words)
            prm = -(-prm // cfg.pp_units) * cfg.pp_units
            ir.prm_base[lay.index] = prm
            if isinstance(n, PoolFCNode):
                ir.pool_weight_word = wgt
                wgt += math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(n.weight.shape[1] / cfg.mac_cols)
                prm += n.weight.shape[0]
                continue
            prm += param_words_of(cfg, lay, n.out.channels)
            for si, st in enumerate(lay.steps):
                blocks = math.ceil(st.out_channels / st.tc)
                for oi, op in enumerate(st.operands):
                    if isinstance(op, SkipOperand):
                        continue
                    w = blocks * _chunks(cfg, op, st.tc)
                    if op.kind == "pattern":
                        ir.words[(lay.index, si, oi)] = pat
                        pat += w
                    else:
                        ir.words[(lay.index, si, oi)] = wgt
                        wgt += w
        ir.memory = {"activations": Region("activations", 1, top),
                     "patterns": Region("patterns", cfg.pattern_mem_bytes, pat * cfg.pattern_slices),
                     "weights": Region("weights", cfg.weight_word_bytes, wgt),
                     "params": Region("params", PARAM_WORD_BYTES, prm),
                     "tensors": Region("tensors", TENSOR_DESC_BYTES, len(ir.tensors))}
        return ir

    def check(self, ir: CompileIR) -> None:
        ts = list(ir.tensors.values())
        for i, a in enumerate(ts):
            assert a.base >= 0 and a.base % ACT_ALIGN == 0 and a.base + a.nbytes <= ir.memory["activations"].words
            for b in ts[i + 1:]:
                if a.live[1] < b.live[0] or b.live[1] < a.live[0]:
                    continue
                assert a.base + a.nbytes <= b.base or b.base + b.nbytes <= a.base, (a.name, b.name)
        for r in ir.memory.values():
            assert r.nbytes <= ir.budget
        assert ir.memory["activations"].nbytes == ir.onchip["activations"]
        for key, w in ir.words.items():
            assert w <= FIELD_MAX["wa"]


# --------------------------------------------------------------------------- pass 5
class EmitInstructions:
    CONTRACT = "one instruction per tile (LOAD, CONV_PATTERN, CONV_INT, PRB, RESADD, POOL_FC, STORE), " \
               "then SYNC and END; every field fits its width"

    def run(self, ir: CompileIR) -> CompileIR:
        tid = {name: t.id for name, t in ir.tensors.items()}
        cfg = ir.cfg
        out = []
        for t in tqdm(ir.tiles, desc="emit", disable=not ir.progress, leave=False):
            lay = ir.layers[t.layer]
            n = lay.node
            if t.opcode == Op.LOAD:
                ins = Instruction(Op.LOAD, layer=t.layer, dst=tid[n.name], row0=t.row0, rows=t.rows,
                                  length=t.length, comment=f"band {t.band}: input rows from the host link")
            elif t.opcode == Op.STORE:
                out.append(Instruction(Op.SYNC, comment="logits complete"))
                ins = Instruction(Op.STORE, layer=t.layer, src_a=tid[n.input], length=t.length,
                                  comment="logits (int64) to the host link")
            elif t.opcode == Op.POOL_FC:
                ins = Instruction(Op.POOL_FC, layer=t.layer, src_a=tid[n.input], row0=t.row0, rows=t.rows,
                                  wa=ir.pool_weight_word, prm=ir.prm_base[t.layer], tc=t.tc, flags=t.flags,
                                  comment=f"band {t.band}: {n.name}")
            else:
                st = lay.steps[t.step]
                op_a = st.operands[0]
                op_b = st.operands[1] if len(st.operands) > 1 else None
                blk = (t.c0 - st.out_c0) // st.tc
                wa = ir.words[(t.layer, t.step, 0)] + blk * _chunks(cfg, op_a, st.tc)
                wb = 0
                if op_b is not None and not isinstance(op_b, SkipOperand):
                    wb = ir.words[(t.layer, t.step, 1)] + blk * _chunks(cfg, op_b, st.tc)
                # input channels each operand reads (precomputed here so the sequencer needs no
                # divider): the tile's first group times Cg, and groups in the tile times Cg
                cin0, na = _operand_reads(op_a, t.c0 - st.out_c0, t.tc, st.in_c0)
                if isinstance(op_b, SkipOperand):
                    cin0_b, nb = t.c0, t.tc
                elif op_b is not None:
                    cin0_b, nb = _operand_reads(op_b, t.c0 - st.out_c0, t.tc, 0)
                else:
                    cin0_b, nb = 0, 0
                prm = ir.prm_base[t.layer] + param_word(param_blocks(cfg, lay), t.c0)
                if prm % cfg.pp_units:
                    raise CompileError(f"{n.name}: the tile at channel {t.c0} has parameter word {prm}, "
                                       f"not a multiple of the {cfg.pp_units} PostProcess units")
                ins = Instruction(t.opcode, layer=t.layer, src_a=tid[op_a.input],
                                  src_b=tid[op_b.input] if op_b is not None else tid[op_a.input],
                                  dst=tid[n.name], wa=wa, wb=wb, prm=prm,
                                  c0=t.c0, tc=t.tc, cin0=cin0, cin0_b=cin0_b, na=na, nb=nb,
                                  row0=t.row0, rows=t.rows, k=op_a.k,
                                  stride=op_a.stride, pad=op_a.padding, groups_a=op_a.groups,
                                  groups_b=getattr(op_b, "groups", 0) if op_b is not None else 0,
                                  flags=t.flags, comment=f"band {t.band}: {n.name}")
            ins.encode()      # raises ISAError naming the field that does not fit
            ins._tile = t
            out.append(ins)
        out.append(Instruction(Op.SYNC))
        out.append(Instruction(Op.END))
        ir.instructions = out
        return ir

    def check(self, ir: CompileIR) -> None:
        assert ir.instructions[-1].op == Op.END
        assert len(ir.instructions) * WORD_BYTES == ir.onchip["program"], (len(ir.instructions), ir.onchip["program"])
        for ins in ir.instructions:
            assert Instruction.decode(ins.encode()) == ins


# --------------------------------------------------------------------------- pass 6
class ScheduleProgram:
    CONTRACT = "predict each instruction's start and cycles on the RTL top as built (hw.top_instruction_cycles); " \
               "PRB tiles occupy the pattern engine and the MAC array over the same interval (concurrently, on " \
               "the same tile)"

    def run(self, ir: CompileIR) -> CompileIR:
        # In-order issue: every compute instruction ends in the shared PostProcess, so one
        # instruction runs at a time; inside a PRB / pattern RESADD the two engines overlap.
        # ``cycles``: the RTL top as built (hw.top_instruction_cycles, what `sephw simulate`
        # measures); ``engine_cycles``: the engine-level model (hw.tile_cycles: the engines at
        # their measured rates fed by WindowGen, the sizing objective), kept for comparison;
        # ``busy``: engine-level busy cycles per unit.
        desc = {t.id: hw.TensorDesc(t.spec.height, t.spec.width, t.spec.channels, t.spec.bits)
                for t in ir.tensors.values()}
        t = 0
        sched = []
        first_pool = True
        for i, ins in enumerate(ir.instructions):
            tile = getattr(ins, "_tile", None)
            if ins.op == Op.LOAD:
                eng, busy = tile.length, {"host_link": tile.length}   # 1 byte/cycle from the RX FIFO
            elif tile is not None:
                eng, busy = tile.cycles, dict(tile.busy)
            else:
                eng, busy = 1, {}
            cyc = hw.top_instruction_cycles(ir.cfg, ins, desc, clear_pool_sums=first_pool)
            if ins.op == Op.POOL_FC:
                first_pool = bool(ins.flags & FLAG_FINAL)     # the FC clears the sums again
            units = sorted(k for k, v in busy.items() if v > 0)
            sched.append({"index": i, "op": ins.op.name, "layer": ir.layers[ins.layer].name if tile else "",
                          "band": tile.band if tile else None, "start": t, "cycles": int(cyc),
                          "engine_cycles": int(eng), "units": units,
                          "busy": {k: int(v) for k, v in busy.items() if v > 0}})
            t += int(cyc)
        ir.schedule, ir.cycles = sched, t
        ir.engine_cycles = sum(s["engine_cycles"] for s in sched)
        return ir

    def check(self, ir: CompileIR) -> None:
        assert len(ir.schedule) == len(ir.instructions)
        prev_end = 0
        for s in ir.schedule:
            assert s["start"] == prev_end and s["cycles"] >= 1
            prev_end = s["start"] + s["cycles"]
            if s["op"] == "PRB":
                assert {"pattern", "mac"} <= set(s["units"]), s
                assert max(s["busy"]["pattern"], s["busy"]["mac"]) <= s["engine_cycles"]
        assert prev_end == ir.cycles


# --------------------------------------------------------------------------- the pipeline
PIPELINE = (CheckLegalize, SizeEngines, TileLayers, AssignAddresses, EmitInstructions, ScheduleProgram)


def compile_ir(graph: IntGraph, board, costs: hw.UnitCosts | None = None, progress: bool = False,
               until=None, probe: bool = False, engine: dict | None = None) -> CompileIR:
    """Run :data:`PIPELINE` (up to and including ``until``) on ``graph`` for ``board``."""
    costs = costs or hw.load_costs()
    check_config(graph, board, costs)
    ir = CompileIR(graph, board, costs, progress, probe, engine=engine)
    for cls in PIPELINE:
        p = cls()
        ir = p.run(ir)
        try:
            p.check(ir)
        except AssertionError as e:
            raise CompileError(f"internal error: invariant of {cls.__name__} broken "
                               f"({cls.CONTRACT}): {e}") from None
        if until is cls:
            break
    return ir
