"""sephw compiler: IntGraph + board profile -> engine configuration, tiled Program, memory
images and a report (docs/isa.md).

The passes are the explicit list :data:`sephw.compiler.passes.PIPELINE`; :func:`compile_graph`
runs them and :func:`sephw.compiler.emit.write_build` writes the build directory. The RTL top
(sequencer), whole-network simulation and board builds are not part of this package yet.
"""
from __future__ import annotations

import time
from pathlib import Path

from .hw import EngineConfig, UnitCosts, load_costs
from .isa import Instruction, ISAError, Op, decode_program, encode_program
from .passes import PIPELINE, CompileError, CompileIR, compile_ir

__all__ = ["compile_graph", "CompileError", "CompileIR", "EngineConfig", "Instruction", "ISAError", "Op",
           "PIPELINE", "UnitCosts", "decode_program", "encode_program", "load_costs", "register_cli"]


def compile_graph(graph, board, out_dir: str | Path | None = None, progress: bool = False,
                  costs: UnitCosts | None = None) -> tuple[CompileIR, dict | None]:
    """Compile ``graph`` (an IntGraph) for ``board`` (a :class:`boards.Board` or its name).

    Returns ``(ir, report)``; with ``out_dir`` the build directory is written and ``report`` is
    report.json's content, else ``report`` is None. Raises :class:`CompileError` when the
    model does not fit (the message names the layer, the bytes needed and available and the
    listed boards that would fit)."""
    import boards
    from .emit import write_build
    if isinstance(board, str):
        board = boards.get(board)
    t0 = time.perf_counter()
    ir = compile_ir(graph, board, costs, progress=progress)
    secs = time.perf_counter() - t0
    if out_dir is None:
        return ir, None
    return ir, write_build(ir, Path(out_dir), compile_seconds=round(secs, 3), progress=progress)


def cmd_compile(a) -> int:
    from ..quantize import load_graph
    if not a.no_synth:
        raise CompileError("not yet implemented: RTL top and board build (Verilog, Vivado project, "
                           "Yosys/nextpnr); run `sephw compile ... --no-synth` for the Program, memory "
                           "images and report")
    graph = load_graph(a.model)
    ir, rep = compile_graph(graph, a.board, a.output, progress=True)
    print(f"wrote {a.output}: {rep['instructions']} instructions, {rep['bands']} band(s), "
          f"{rep['cycles_per_inference']} cycles/inference = {rep['latency_s'] * 1e3:.3f} ms, "
          f"{rep['fps']:.1f} FPS at {rep['clock_hz'] / 1e6:g} MHz; on-chip {rep['onchip_bytes']} / "
          f"{rep['onchip_budget_bytes']} bytes; est. LUT {rep['resources']['lut']}, DSP {rep['resources']['dsp']}; "
          f"engine utilization {rep['utilization']['engines']:.1%}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``compile MODEL_q.pt --board B -o BUILD_DIR [--no-synth]`` to the command line."""
    p = subparsers.add_parser("compile", help="compile a quantized model for a board: Program, memory images, report")
    p.add_argument("model", help="quantized checkpoint (with an IntGraph; see `sephw quantize`)")
    p.add_argument("--board", required=True, help="board profile name or alias (see `sephw boards`)")
    p.add_argument("-o", "--output", required=True, help="build directory")
    p.add_argument("--no-synth", action="store_true",
                   help="skip the RTL top and synthesis (required for now: they are not implemented yet)")
    p.set_defaults(func=cmd_compile)
