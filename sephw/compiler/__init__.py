"""sephw compiler: IntGraph + board profile -> engine configuration, tiled Program, memory
images and a report (docs/isa.md); the RTL top that runs the Program is rtl_gen/top.py.

The passes are the explicit list :data:`sephw.compiler.passes.PIPELINE`; :func:`compile_graph`
runs them and :func:`sephw.compiler.emit.write_build` writes the build directory; the board
build (Vivado project + Yosys estimate, or the ECP5 open flow to a bitstream) is
:func:`sephw.boardbuild.board_build`.
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
                  costs: UnitCosts | None = None, engine: dict | None = None) -> tuple[CompileIR, dict | None]:
    """Compile ``graph`` (an IntGraph) for ``board`` (a :class:`boards.Board` or its name).

    Returns ``(ir, report)``; with ``out_dir`` the build directory is written and ``report`` is
    report.json's content, else ``report`` is None. Raises :class:`CompileError` when the
    model does not fit (the message names the layer, the bytes needed and available and the
    listed boards that would fit). ``engine`` fixes the overlay's sizes (``lanes``, ``pe_cin``,
    ``mac_cols``, ``packed``, ``pp_units``) instead of searching them (small simulation builds)."""
    import boards
    from .emit import write_build
    if isinstance(board, str):
        board = boards.get(board)
    t0 = time.perf_counter()
    ir = compile_ir(graph, board, costs, progress=progress, engine=engine)
    secs = time.perf_counter() - t0
    if out_dir is None:
        return ir, None
    return ir, write_build(ir, Path(out_dir), compile_seconds=round(secs, 3), progress=progress)


def cmd_compile(a) -> int:
    from ..quantize import load_graph
    graph = load_graph(a.model)
    ir, rep = compile_graph(graph, a.board, a.output, progress=True)
    print(f"wrote {a.output}: {rep['instructions']} instructions, {rep['bands']} band(s), "
          f"{rep['cycles_per_inference']} cycles/inference = {rep['latency_s'] * 1e3:.3f} ms, "
          f"{rep['fps']:.1f} FPS at {rep['clock_hz'] / 1e6:g} MHz; on-chip {rep['onchip_bytes']} / "
          f"{rep['onchip_budget_bytes']} bytes; est. LUT {rep['resources']['lut']}, DSP {rep['resources']['dsp']}; "
          f"engine utilization {rep['utilization']['engines']:.1%}")
    from ..simulate import write_top_verilog
    print("writing the accelerator top's Verilog for this engine configuration ...", flush=True)
    path = write_top_verilog(a.output, bake=a.bake_images)
    how = "Program and images baked in (boot ROM)" if a.bake_images else \
        "Program and images load at run time through host_w"
    print(f"wrote {path} (top module sephw_top; {how})")
    if not a.no_board:
        from ..boardbuild import board_build
        board_build(a.output, a.board, synth=not a.no_synth, baud=a.baud)
    print(f"simulate: `sephw simulate {a.output} --images N`; run on the simulated board: "
          f"`sephw run {a.output} --port sim:{a.output} --images N`")
    return 0


def register_cli(subparsers) -> None:
    """Add ``compile MODEL_q.pt --board B -o BUILD_DIR [--no-synth]`` to the command line."""
    p = subparsers.add_parser("compile", help="compile a quantized model for a board: Program, memory images, report")
    p.add_argument("model", help="quantized checkpoint (with an IntGraph; see `sephw quantize`)")
    p.add_argument("--board", required=True, help="board profile name or alias (see `sephw boards`)")
    p.add_argument("-o", "--output", required=True, help="build directory")
    p.add_argument("--no-synth", action="store_true",
                   help="board build without synthesis: the Vivado project / ECP5 project files only, no Yosys "
                        "estimate, no nextpnr bitstream")
    p.add_argument("--no-board", action="store_true", help="skip the board build (top.v and the Program only)")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate of the host link (default: the board profile's default_baud)")
    p.add_argument("--bake-images", action="store_true",
                   help="bake the Program and memory images into top.v (boot ROM) instead of loading them at run time")
    p.set_defaults(func=cmd_compile)
