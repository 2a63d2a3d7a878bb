"""``sephw compile``: compile a quantized model for a board (the compiler), write the top's
Verilog (the RTL generator) and run the board build (Vivado project + Yosys estimate, or the
ECP5 open flow)."""
from __future__ import annotations

import sys
from collections import Counter

from ..compiler import compile_graph
from ..compiler.ir import PLACEMENTS


def board_at_clock(board, mhz: float):
    """``board`` with its design clock at ``mhz`` (``--clock-mhz``): the nearest clock the
    board top's clock generator makes (within 0.5 %: the ECP5 PLL, the Artix-7 MMCM), so the
    build's clock is the one it will run at. Raises ``boards.BoardError`` /
    ``rtl_gen.clocking.PllError`` with the reason."""
    hz = mhz * 1e6
    if round(hz) != board.oscillator_hz:
        from rtl_gen.clocking import mmcm_config, pll_config
        if board.family == "ecp5":
            hz = pll_config(board.oscillator_hz, hz)["out_hz"]
        elif board.family == "xc7":
            hz = mmcm_config(board.oscillator_hz, hz)["out_hz"]
    return board.at_clock(round(hz))


def bound_summary(rep: dict) -> str:
    """One line: how many layers each bound has (report.json's per-layer ``bound``) and the
    layer with the most cycles, so a user sees where the time goes without opening report.md."""
    rows = [r for r in rep["layers"] if r["cycles"]]
    counts = Counter(r["bound"] for r in rows)
    top = max(rows, key=lambda r: r["cycles"])
    return ("layers by bound: " + ", ".join(f"{n} {b}" for b, n in counts.most_common())
            + f"; the longest, {top['name']}: {top['cycles']:,} cycles "
              f"({top['cycles'] / rep['cycles_per_inference']:.0%}), {top['bound']}-bound "
              f"(report.md, plots/cycles_by_layer.png)")


def cmd_compile(a) -> int:
    import boards
    from rtl_gen.clocking import PllError

    from ..quantize import load_graph
    board = boards.get(a.board)
    if a.clock_mhz is not None:
        try:
            board = board_at_clock(board, a.clock_mhz)
        except (boards.BoardError, PllError) as e:
            print(f"sephw compile: error: --clock-mhz {a.clock_mhz:g}: {e}", file=sys.stderr)
            return 2
        print(f"design clock {board.clock_hz / 1e6:.6g} MHz"
              + (f" (ECP5 PLL from the {board.oscillator_hz / 1e6:g} MHz oscillator)"
                 if board.clock_hz != board.oscillator_hz else ""))
    if a.seed is not None:
        if a.seed < 1 or board.toolchain != "trellis":
            print(f"sephw compile: error: --seed {a.seed}: " + (
                "the seed must be a positive integer" if a.seed < 1 else
                f"only the ECP5 open flow places and routes here (nextpnr); {board.name}'s "
                "project is placed by its vendor's tool"), file=sys.stderr)
            return 2
        import dataclasses
        board = dataclasses.replace(board, seed=a.seed)
    graph = load_graph(a.model)
    ir, rep = compile_graph(graph, board, a.output, progress=True, placement=a.weights)
    print(f"wrote {a.output}: {rep['instructions']} instructions, {rep['bands']} band(s), "
          f"{rep['cycles_per_inference']} cycles/inference = {rep['latency_s'] * 1e3:.3f} ms, "
          f"{rep['fps']:.1f} FPS at {rep['clock_hz'] / 1e6:g} MHz; on-chip {rep['onchip_bytes']} / "
          f"{rep['onchip_budget_bytes']} bytes; est. LUT {rep['resources']['lut']}, DSP {rep['resources']['dsp']}; "
          f"engine utilization {rep['utilization']['engines']:.1%}")
    print(bound_summary(rep))
    from .simulate import write_top_verilog
    print("writing the accelerator top's Verilog for this engine configuration ...", flush=True)
    path = write_top_verilog(a.output, bake=a.bake_images)
    how = "Program and images baked in (boot ROM)" if a.bake_images else \
        "Program and images load at run time through host_w"
    print(f"wrote {path} (top module sephw_top; {how})")
    if ir.streamed:
        ext = rep["external"]
        params = f" and {ext['streamed_param_layers']} layer(s) their parameters" if ext["streamed_param_layers"] else ""
        more = (f"; {len(ir.spills)} tensor(s) are spilled there between segments" if ir.spills else "") + \
            (f"; the Program runs from there in pages of {ir.program_page} instructions" if ir.program_page else "")
        print(f"sephw compile: {ext['streamed_steps']} layer step(s) keep their pattern and int8 weight words{params} in "
              f"external memory ({rep['external']['bytes']:,} bytes, external.bin){more}")
    if not a.no_board:
        from rtl_gen.dram import DramError

        from .boardbuild import TimingNotMet, board_build
        try:
            board_build(a.output, board, synth=not a.no_synth, baud=a.baud)
        except (TimingNotMet, DramError) as e:
            print(f"sephw compile: error: {e}", file=sys.stderr)
            return 2
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
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="design clock in MHz (default: the board profile's clock_hz), made from the board's "
                        "oscillator by a PLL (ECP5) or an MMCM (Artix-7), nearest setting within 0.5%%. ECP5: the "
                        "open flow fails clearly when the routed design does not reach it. Artix-7 with DRAM: "
                        "below the controller's 100 MHz the design runs behind clock-domain crossings")
    p.add_argument("--seed", type=int, default=None,
                   help="ECP5: nextpnr's seed (default: the board profile's, else nextpnr's own): another "
                        "placement of the same netlist, whose Fmax and routing time differ from run to run "
                        "(bench/results/boards_seeds.md measures the spread)")
    p.add_argument("--weights", choices=PLACEMENTS, default="auto",
                   help="where pattern and int8 weight words live: auto (on chip where the model fits, else the "
                        "largest layers in the board's DRAM, loaded by DMA_LOAD before each tile; where even "
                        "that does not fit, tensors spilled to DRAM between segments of the network too), onchip "
                        "(never DRAM), external (every layer that can stream from DRAM), spill (external, and a "
                        "tensor spilled at every cut: the whole DRAM path on a small model)")
    p.add_argument("--bake-images", action="store_true",
                   help="bake the Program and memory images into top.v (boot ROM) instead of loading them at run time")
    p.set_defaults(func=cmd_compile)
