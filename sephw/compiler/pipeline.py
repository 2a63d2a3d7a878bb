"""The compiler pipeline: IntGraph + board -> engine config, tiles, addresses, Program, schedule.

The pipeline is the explicit list :data:`PIPELINE`, run in order by :func:`compile_ir`. Each
pass is a class with ``run(ir) -> ir`` (its one-line contract in ``CONTRACT``) and
``check(ir)``, the invariants that must hold after it; :func:`check_config` checks the whole
configuration before the first pass. Every pass's wall time and a summary of the IR after it
are kept in ``ir.passes`` (written to BUILD/passes/ by the build writer).
"""
from __future__ import annotations

import time

from ..intgraph import IntGraph
from . import hw
from .assign_addresses import AssignAddresses
from .check_legalize import CheckLegalize, check_config
from .dump import summary
from .emit_instructions import EmitInstructions
from .ir import PLACEMENTS, CompileError, CompileIR, FixedEngine, PassRecord
from .schedule_program import ScheduleProgram
from .size_engines import SizeEngines
from .tile_layers import TileLayers

PIPELINE = (CheckLegalize, SizeEngines, TileLayers, AssignAddresses, EmitInstructions, ScheduleProgram)


def compile_ir(graph: IntGraph, board, costs: hw.UnitCosts | None = None, progress: bool = False,
               until=None, probe: bool = False, engine: FixedEngine | dict | None = None, record: bool = True,
               placement: str = "auto") -> CompileIR:
    """Run :data:`PIPELINE` (up to and including ``until``) on ``graph`` for ``board``.

    With ``record`` each pass's wall time (run and invariant check, seconds) and
    :func:`~sephw.compiler.dump.summary` of the IR after it go into ``ir.passes``; the sizer's
    and the not-fit message's inner compiles run without. ``placement``: where pattern and
    int8 weight words live (:data:`~sephw.compiler.ir.PLACEMENTS`). ``engine``: fixed overlay
    sizes, a :class:`~sephw.compiler.ir.FixedEngine` or a dict of its fields (an unknown key is a
    :class:`CompileError`)."""
    if placement not in PLACEMENTS:
        raise CompileError(f"placement {placement!r}: expected one of {', '.join(PLACEMENTS)}")
    if placement in ("external", "spill") and board.external is None:
        raise CompileError(f"placement {placement!r}: {board.name} has no external memory in its profile")
    if isinstance(engine, dict):
        engine = FixedEngine.from_dict(engine)
    costs = costs or hw.load_costs()
    check_config(graph, board, costs)
    ir = CompileIR(graph, board, costs, progress, probe, engine=engine, placement=placement)
    for cls in PIPELINE:
        p = cls()
        t0 = time.perf_counter()
        ir = p.run(ir)
        try:
            p.check(ir)
        except AssertionError as e:
            raise CompileError(f"internal error: invariant of {cls.__name__} broken "
                               f"({cls.CONTRACT}): {e}") from None
        if record:
            ir.passes.append(PassRecord(cls.__name__, cls.CONTRACT, time.perf_counter() - t0, summary(ir)))
        if until is cls:
            break
    return ir
