"""The configuration check before the first pass, and pass 1: CheckLegalize."""
from __future__ import annotations

from .. import intgraph as ig
from ..intgraph import (DepthwiseConcatNode, InputNode, IntConvNode, IntGraph, PatternConvNode, PoolFCNode,
                        PRBNode, ResidualAddNode)
from ..arch.isa import Op
from . import hw
from .ir import FIELD_MAX, CompileError, CompileIR, Layer, Step, Tensor
from .operands import step_operands

# node type -> the opcode of its tiles (None: no compute tile; a depthwise concat's branches
# are pattern or int8 convolutions)
SUPPORTED_NODES = {InputNode: None, PatternConvNode: Op.CONV_PATTERN, IntConvNode: Op.CONV_INT,
                   PRBNode: Op.PRB, ResidualAddNode: Op.RESADD, DepthwiseConcatNode: Op.CONV_PATTERN,
                   PoolFCNode: Op.POOL_FC}


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
            lay = Layer(i, n, self._steps(n))
            if isinstance(n, PoolFCNode):
                lay.src_a = n.input
                lay.macs = lay.int8_macs = int(n.weight.numel())
            elif not isinstance(n, InputNode):
                ins = ig.node_inputs(n)
                lay.src_a = ins[0]
                lay.src_b = ins[1] if len(ins) > 1 else ins[0]
                for st in lay.steps:
                    for op in step_operands(st):
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

    @staticmethod
    def _steps(n) -> list[Step]:
        """The engine passes of node ``n``: one per depthwise branch, else one (none for the
        input and the PoolFC)."""
        if isinstance(n, (InputNode, PoolFCNode)):
            return []
        if isinstance(n, DepthwiseConcatNode):
            steps, off = [], 0
            for b in n.branches:
                op = b.as_operand(n.input)
                steps.append(Step([op], Op.CONV_PATTERN if b.kind == "pattern" else Op.CONV_INT,
                                  off, b.channels, in_c0=b.channel_start))
                off += b.channels
            return steps
        return [Step(ig.node_operands(n), SUPPORTED_NODES[type(n)], 0, n.out.channels)]

    def check(self, ir: CompileIR) -> None:
        assert len(ir.layers) == len(ir.graph.nodes)
        for lay in ir.layers:
            compute = not isinstance(lay.node, (InputNode, PoolFCNode))
            assert bool(lay.steps) == compute, lay.name
            for st in lay.steps:
                assert st.out_c0 + st.out_channels <= lay.node.out.channels, lay.name
