"""What one operand of a step needs on the overlay, independent of any pass: the input rows
a band reads, the weight chunks a channel block takes, the parameter words of a layer and
the predicted cycles of a tile (the abstract op; hw.py holds the engines' figures)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import intgraph as ig
from ..arch.config import dw_slices
from ..intgraph import SkipOperand
from . import hw
from .ir import Layer, Operand, Step


def rows_needed(op: Operand, a: int, b: int, h_in: int) -> tuple[int, int]:
    """Input rows ``[lo, hi)`` that output rows ``[a, b)`` of ``op`` read (clipped)."""
    if isinstance(op, SkipOperand) or op.k == 1 and op.stride == 1:
        return a, b
    lo = a * op.stride - op.padding
    hi = (b - 1) * op.stride - op.padding + op.k
    return max(0, lo), min(h_in, hi)


def windowed(op: Operand) -> bool:
    """True where ``op`` slides a k×k window (k > 1) over its input."""
    return not isinstance(op, SkipOperand) and op.k > 1


def chunk_channels(cfg: hw.EngineConfig, op: Operand, tc: int) -> int:
    """Input channels per group in one pattern beat of a block of ``tc`` output channels of
    pattern operand ``op`` (the beat's ``pe_cin`` shared by the tile's groups)."""
    return max(1, cfg.pe_cin // hw.operand_groups_in_tile(op, tc))


def chunks(cfg: hw.EngineConfig, op: Operand, tc: int) -> int:
    """Pattern or weight beats one block of ``tc`` output channels of ``op`` takes per position."""
    cg = int(op.weight.shape[1])
    if op.kind == "pattern":
        return math.ceil(cg / chunk_channels(cfg, op, tc))
    return math.ceil(hw.operand_groups_in_tile(op, tc) * cg * op.k ** 2 / cfg.mac_cols)


def chunk_slices(cfg: hw.EngineConfig, op: Operand, tc: int) -> int:
    """Pattern memory words (slices) one chunk of a (not depthwise-mode) pattern operand
    takes (:meth:`~sephw.arch.config.EngineConfig.pattern_chunk_slices`: its bits tap-major,
    so fewer channels or a smaller kernel than ``pe_cin``, ``k_max`` take fewer slices);
    ``2^pshift`` in its instructions."""
    return cfg.pattern_chunk_slices(min(int(op.weight.shape[1]), chunk_channels(cfg, op, tc)), op.k)


def block_words(cfg: hw.EngineConfig, op: Operand, tc: int) -> int:
    """Memory words one block of ``tc`` output channels of ``op`` takes: in the pattern
    engine's depthwise mode the depthwise pattern memory's words of its kernel
    (:func:`sephw.arch.config.dw_slices`), else per chunk (:func:`chunks`) a weight word or
    :func:`chunk_slices` pattern memory words."""
    if hw.dw_operand(cfg, op):
        return dw_slices(cfg.k_max, op.k)
    if op.kind == "pattern":
        return chunks(cfg, op, tc) * chunk_slices(cfg, op, tc)
    return chunks(cfg, op, tc)


def lane_paired(cfg: hw.EngineConfig, op: Operand, tc: int) -> bool:
    """True where two blocks of ``tc`` output channels of ``op`` share their pattern words on
    overlay ``cfg`` (``EngineConfig.lane_pairs``): a pattern operand outside the depthwise
    mode whose blocks take at most half the lanes (a grouped layer's, one group per tile).
    Blocks ``2p`` and ``2p + 1`` then have one block of words, ``2p``'s filters in lanes
    ``0 ..`` and ``2p + 1``'s in lanes ``lanes/2 ..`` (its instructions' ``lane_rot``), on
    chip or in the external image (both tiles of a pair of a streamed step load the pair's
    words)."""
    return bool(cfg.lane_pairs and getattr(op, "kind", None) == "pattern" and not hw.dw_operand(cfg, op)
                and 2 * tc <= cfg.lanes)


def operand_words(cfg: hw.EngineConfig, op: Operand, out_channels: int, tc: int) -> int:
    """Memory words the ``ceil(out_channels / tc)`` blocks of ``op`` take (:func:`block_words`
    each; lane pairs share theirs: :func:`lane_paired`)."""
    blocks = math.ceil(out_channels / tc)
    if lane_paired(cfg, op, tc):
        blocks = math.ceil(blocks / 2)
    return blocks * block_words(cfg, op, tc)


def block_place(cfg: hw.EngineConfig, op: Operand, tc: int, blk: int) -> tuple[int, int]:
    """``(slot, lane_rot)``: block ``blk`` of ``op`` takes the operand's ``slot``-th block of
    words (:func:`block_words` each; a lane pair's two blocks the same one), and ``lane_rot``
    whether its filters are those words' upper lanes (:func:`lane_paired`)."""
    return (blk // 2, blk % 2) if lane_paired(cfg, op, tc) else (blk, 0)


def pattern_storage(cfg: hw.EngineConfig, op: Operand, out_channels: int, tc: int) -> tuple[int, int]:
    """``(held, stored)``: the pattern bits (±1 weights) of pattern operand ``op`` and the
    pattern memory bits its ``ceil(out_channels / tc)`` blocks of words take on overlay
    ``cfg`` (depthwise words in the depthwise mode, else pattern memory slices;
    :func:`operand_words`). ``stored / held`` is report.json's ``pattern_storage_ratio``;
    issue 16 bounds it at 2 for depthwise and grouped layers."""
    w = operand_words(cfg, op, out_channels, tc)
    return op.weight.numel(), w * (cfg.dw_word_bits if hw.dw_operand(cfg, op) else cfg.pattern_mem_bits)


STREAMED = ("patterns", "weights")     # the memories a streamed step's tiles are loaded into


def stream_memory(cfg: hw.EngineConfig, op: Operand) -> str | None:
    """The on-chip memory a DMA_LOAD fills with ``op``'s words when its step is streamed from
    external memory (``patterns``: a pattern operand, ``weights``: an int8 one); None where
    the words stay on chip whatever the placement (the pattern engine's depthwise mode)."""
    if isinstance(op, SkipOperand) or hw.dw_operand(cfg, op):
        return None
    return "patterns" if op.kind == "pattern" else "weights"


def tile_stream_words(cfg: hw.EngineConfig, step: Step, tc: int) -> dict[str, int]:
    """``{memory: words}`` one tile of ``tc``-channel blocks of a streamed ``step`` loads into
    each of :data:`STREAMED` (memory words: pattern slices, weight words): its operands' blocks, in
    operand order."""
    out = dict.fromkeys(STREAMED, 0)
    for op in step.operands:
        mem = stream_memory(cfg, op)
        if mem:
            out[mem] += block_words(cfg, op, tc)
    return out


def step_words(cfg: hw.EngineConfig, step: Step, tc: int) -> dict[str, int]:
    """``{memory: words}`` all the ``tc``-channel blocks of ``step`` take in each of
    :data:`STREAMED` (:func:`operand_words`: lane pairs share theirs): a streamed step's words
    in the external image."""
    out = dict.fromkeys(STREAMED, 0)
    for op in step.operands:
        mem = stream_memory(cfg, op)
        if mem:
            out[mem] += operand_words(cfg, op, step.out_channels, tc)
    return out


PARAMS = "params"       # a streamed-set entry ``(layer, PARAMS)``: the layer's parameters stream too


def params_streamed(lay: Layer, streamed) -> bool:
    """Whether layer ``lay``'s PostProcess parameters come from external memory, tile by tile
    (a DMA_LOAD of the tile's channels' words into the parameter buffer beside its pattern and
    weight loads): ``(lay.index, PARAMS)`` is in ``streamed`` (only with every step of the
    layer; :func:`~sephw.compiler.memory.streamable_steps` orders it after them). The FC's
    stay on chip."""
    return (lay.index, PARAMS) in streamed


def streamed_steps(streamed) -> list:
    """The ``(layer, step)`` entries of a streamed set (its ``(layer, PARAMS)`` ones left out)."""
    return sorted(e for e in streamed if e[1] != PARAMS)


def param_tile_words(cfg: hw.EngineConfig, tc: int) -> int:
    """Words of a parameter buffer half for tiles of ``tc`` channels: ``tc`` rounded up to a
    multiple of ``pp_units`` (a PostProcess with U units reads U banks from a multiple of U)."""
    return -(-tc // cfg.pp_units) * cfg.pp_units


FC_CHUNK_BYTES = 8192    # a streamed FC's weight bytes per DMA_LOAD (whole blocks of ``lanes`` classes)


def fc_blocks(cfg: hw.EngineConfig, node: ig.PoolFCNode) -> tuple[int, int]:
    """``(class blocks, words per block)`` of the FC's weights: blocks of ``lanes`` classes,
    each ``ceil(C / mac_cols)`` weight words."""
    o, c = node.weight.shape
    return math.ceil(o / cfg.lanes), math.ceil(c / cfg.mac_cols)


def fc_chunks(cfg: hw.EngineConfig, node: ig.PoolFCNode) -> list[tuple[int, int]]:
    """``(first class, classes)`` of each chunk of a streamed FC (one DMA_LOAD and one
    ``POOL_FC`` each): whole blocks of ``lanes`` classes, at most :data:`FC_CHUNK_BYTES` of
    weights (at least one block)."""
    _, n_cb = fc_blocks(cfg, node)
    per = max(1, FC_CHUNK_BYTES // (n_cb * cfg.weight_word_bytes)) * cfg.lanes
    o = int(node.weight.shape[0])
    return [(c, min(per, o - c)) for c in range(0, o, per)]


def fc_chunk_words(cfg: hw.EngineConfig, node: ig.PoolFCNode, classes: int) -> int:
    """Weight words of an FC chunk of ``classes``."""
    return math.ceil(classes / cfg.lanes) * fc_blocks(cfg, node)[1]


def operand_reads(op: Operand, c0_rel: int, tc: int, in_c0: int) -> tuple[int, int]:
    """``(first input channel, input channels)`` a tile of ``tc`` output channels starting
    ``c0_rel`` channels into ``op``'s outputs reads (tiles are group-aligned)."""
    og = op.out_channels // op.groups
    cg = int(op.weight.shape[1])
    return in_c0 + (c0_rel // og) * cg, hw.operand_groups_in_tile(op, tc) * cg


def step_operands(step: Step) -> list[Operand]:
    """The operands of ``step`` an engine computes (not an identity skip)."""
    return [op for op in step.operands if not isinstance(op, SkipOperand)]


@dataclass(frozen=True)
class ParamLayout:
    """Where a layer's PostProcess parameter words lie from its base (:func:`param_blocks`):
    ``tiles`` holds ``(first channel, channels, word)`` of every tile where the layer is laid
    out tile by tile; empty: the channels are contiguous (channel ``c`` at word ``c``)."""
    tiles: tuple = ()

    def word(self, c: int) -> int:
        """Word of channel ``c``'s parameters from the layer's base."""
        for c0, n, w in self.tiles:
            if c0 <= c < c0 + n:
                return w + c - c0
        return c


def param_blocks(cfg: hw.EngineConfig, lay: Layer) -> ParamLayout:
    """A layer's PostProcess parameter layout. A PostProcess with U units reads U banks from a
    ``param_base`` that must be a multiple of U, so where a tile starts at a channel that is
    not a multiple of U (one-channel depthwise tiles; depthwise-mode tiles of branches whose
    channel counts are not multiples of U) every tile's block starts on the next multiple of U
    after the previous one's end (zero words between); other layers are contiguous."""
    u = cfg.pp_units
    tiles = []
    for st in lay.steps:
        tc = min(hw.channel_block(cfg, step_operands(st)), st.out_channels)
        tiles += [(st.out_c0 + b, min(tc, st.out_channels - b)) for b in range(0, st.out_channels, tc)]
    if all(c0 % u == 0 for c0, _ in tiles):
        return ParamLayout()
    out, w = [], 0
    for c0, n in sorted(tiles):
        w = -(-w // u) * u
        out.append((c0, n, w))
        w += n
    return ParamLayout(tuple(out))


def param_word(blocks: ParamLayout, c: int) -> int:
    """Word of channel ``c``'s parameters from the layer's base, ``blocks`` its
    :func:`param_blocks`."""
    return blocks.word(c)


def param_words_of(cfg: hw.EngineConfig, lay: Layer, channels: int) -> int:
    """Parameter words of a layer of ``channels`` output channels, up to its last channel's."""
    return param_word(param_blocks(cfg, lay), channels - 1) + 1


def tile_cost(cfg: hw.EngineConfig, step: Step, graph: ig.IntGraph, rows_out: int,
              tc: int) -> tuple[int, dict, list, int, int]:
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
        rin = min(s.height, (rows_out - 1) * op.stride + op.k) if windowed(op) else rows_out * op.stride
        in_rows = max(in_rows, rin)
        c = hw.op_cost(cfg, op, tc, rows_out, out_w, rin, s.width, s.bits)
        costs.append(c)
        if windowed(op):
            fill += c.chunks * (op.k - 1) * (s.width + 2 * op.padding)
    cyc, busy = hw.tile_cycles(costs, tc, rows_out * out_w, cfg, fill)
    return cyc, busy, costs, in_rows, src.width
