"""What one operand of a step needs on the overlay, independent of any pass: the input rows
a band reads, the weight chunks a channel block takes, the parameter words of a layer and
the predicted cycles of a tile (the abstract op; hw.py holds the engines' figures)."""
from __future__ import annotations

import math

from .. import intgraph as ig
from ..intgraph import SkipOperand
from . import hw
from .ir import CompileError, Layer, Operand, Step


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


def chunks(cfg: hw.EngineConfig, op: Operand, tc: int) -> int:
    """Pattern or weight words one block of ``tc`` output channels of ``op`` takes."""
    gt = hw.operand_groups_in_tile(op, tc)
    cg = int(op.weight.shape[1])
    if op.kind == "pattern":
        return math.ceil(cg / max(1, cfg.pe_cin // gt))
    return math.ceil(gt * cg * op.k ** 2 / cfg.mac_cols)


def operand_reads(op: Operand, c0_rel: int, tc: int, in_c0: int) -> tuple[int, int]:
    """``(first input channel, input channels)`` a tile of ``tc`` output channels starting
    ``c0_rel`` channels into ``op``'s outputs reads (tiles are group-aligned)."""
    og = op.out_channels // op.groups
    cg = int(op.weight.shape[1])
    return in_c0 + (c0_rel // og) * cg, hw.operand_groups_in_tile(op, tc) * cg


def step_operands(step: Step) -> list[Operand]:
    """The operands of ``step`` an engine computes (not an identity skip)."""
    return [op for op in step.operands if not isinstance(op, SkipOperand)]


def param_blocks(cfg: hw.EngineConfig, lay: Layer) -> tuple[int, int]:
    """``(tc, words)``: a layer's PostProcess parameters in blocks of ``tc`` channels, each
    block ``words`` parameter words long from the layer's base (channel ``c`` at word
    ``(c // tc) * words + c % tc``). A PostProcess with U units reads U banks from a
    ``param_base`` that must be a multiple of U, so a layer whose tiles are ``tc`` channels
    with ``tc`` not a multiple of U (one-channel depthwise pattern tiles) pads every tile's
    block to a multiple of U; other layers are contiguous, ``(1, 1)``."""
    u = cfg.pp_units
    tcs = {min(hw.channel_block(cfg, step_operands(st)), st.out_channels) for st in lay.steps}
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
