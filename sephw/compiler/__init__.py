"""sephw compiler: IntGraph + board profile -> engine configuration, tiled Program, memory
images and a report (docs/isa.md); the RTL top that runs the Program is rtl_gen/top.py.

The passes are the explicit list :data:`sephw.compiler.pipeline.PIPELINE` (one module per pass,
the typed IR in :mod:`sephw.compiler.ir`); :func:`compile_graph`
runs them and :func:`sephw.compiler.emit.write_build` writes the build directory; the board
build (Vivado project + Yosys estimate, or the ECP5 open flow to a bitstream) is
:func:`sephw.flows.boardbuild.board_build`.
"""
from __future__ import annotations

import time
from pathlib import Path

from .hw import EngineConfig, UnitCosts, load_costs
from ..arch.isa import Instruction, ISAError, Op, decode_program, encode_program
from .ir import CompileError, CompileIR, FixedEngine
from .pipeline import PIPELINE, compile_ir

__all__ = ["compile_graph", "CompileError", "CompileIR", "EngineConfig", "FixedEngine", "Instruction", "ISAError",
           "Op", "PIPELINE", "UnitCosts", "decode_program", "encode_program", "load_costs"]


def compile_graph(graph, board, out_dir: str | Path | None = None, progress: bool = False,
                  costs: UnitCosts | None = None, engine: FixedEngine | dict | None = None,
                  placement: str = "auto") -> tuple[CompileIR, dict | None]:
    """Compile ``graph`` (an IntGraph) for ``board`` (a :class:`boards.Board` or its name).

    Returns ``(ir, report)``; with ``out_dir`` the build directory is written and ``report`` is
    report.json's content, else ``report`` is None. Raises :class:`CompileError` when the
    model does not fit (the message names the layer, the bytes needed and available and the
    listed boards that would fit). ``engine`` fixes the overlay's sizes instead of searching them
    (small simulation builds): a :class:`FixedEngine` or a dict of its fields (``lanes``,
    ``pe_cin``, ``mac_cols``, optional ``packed``, ``pp_units``, ``column_store``, ``depthwise``).
    ``placement`` (``auto``, ``onchip``, ``external``): where pattern and int8 weight words
    live (:data:`~sephw.compiler.ir.PLACEMENTS`; docs/isa.md "Weights in external memory")."""
    import boards
    from .emit import write_build
    if isinstance(board, str):
        board = boards.get(board)
    t0 = time.perf_counter()
    ir = compile_ir(graph, board, costs, progress=progress, engine=engine, placement=placement)
    secs = time.perf_counter() - t0
    if out_dir is None:
        return ir, None
    return ir, write_build(ir, Path(out_dir), compile_seconds=round(secs, 3), progress=progress)
