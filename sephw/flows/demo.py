"""``sephw demo``: the main job on the shipped default model (see README): float and integer
accuracy, the size table, compile for the board, the board build's resource estimate, and
inference on the simulated board through the host driver."""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent.parent.parent / "models" / "sepnet_fmnist.pt"


def cmd_demo(a) -> int:
    """The main job on the shipped model (see README): float and integer accuracy, size table,
    compile for the board, the board build's resource estimate, and inference on the simulated
    board through the host driver (bit-exact check, measured cycles, FPS)."""
    from .. import checkpoint, data, quantize
    from ..cli import info_dict, print_size_table
    from ..train import evaluate
    path = Path(a.model)
    model, ck = checkpoint.load(path)
    print(f"== sephw demo: {path.name} ({ck['arch']}, {ck['metadata'].get('stage', '?')})")
    print("   made by:")
    for line in ck["metadata"].get("history", []):
        print(f"     {line}")
    x, y = data.load("fashion-mnist", "test", a.data)
    acc = evaluate(model, x, y, progress=True)
    print(f"== float model (Refined-B): Fashion-MNIST test accuracy {acc * 100:.2f}% on {len(x)} images")
    print("== model size")
    print_size_table(info_dict(str(path)))
    qpath = path.with_name(path.stem + "_q.pt")
    if qpath.is_file():
        graph = quantize.load_graph(qpath)
        made_by = checkpoint.read(qpath)["metadata"].get("history", ["?"])[-1]  # metadata only: no model build
        print(f"== integer model {qpath.name}: made by `{made_by}`")
    else:
        print(f"== {qpath.name} not found: quantizing on {a.calib} training images")
        cx = quantize.calibration_images("fashion-mnist", a.data, a.calib)
        graph = quantize.quantize(model, cx, progress=True)
    iacc = quantize.evaluate_integer(graph, x, y, progress=True)
    print(f"== integer reference (sephw.reference, bit-exact hardware contract): test accuracy "
          f"{iacc * 100:.2f}% ({(acc - iacc) * 100:.2f} points below float)")
    import boards

    from ..compiler import compile_graph
    board = boards.get(a.board)
    build = Path(a.build)
    _, rep = compile_graph(graph, board, build)
    print(f"== compiled for {board.name} ({board.part}, {board.clock_hz / 1e6:.0f} MHz) into {build}: "
          f"{rep['instructions']} instructions; predicted {rep['cycles_per_inference']:,} cycles/inference, "
          f"{rep['fps']:,.0f} FPS; on-chip {rep['onchip_bytes']:,} of {rep['onchip_budget_bytes']:,} bytes")
    est = None
    if not a.no_synth:
        from .boardbuild import board_build
        bb = board_build(build, board, synth=True, log=lambda s: print("   " + s, flush=True))
        est = bb.get("estimate")
    if a.images <= 0:
        return 0
    from .run import run_on_device
    print(f"== inference on the simulated {board.name} (Verilator model of the top behind its UART, "
          f"driven through host.device.Device like a real board: --port sim:{build})", flush=True)
    r = run_on_device(build, f"sim:{build}", a.images, a.data, log=lambda s: print("   " + s, flush=True))
    meas = sum(r["compute_cycles"]) / max(1, len(r["compute_cycles"]))
    clock = r["device"]["clock_hz"]
    print(f"== {r['bit_exact_images']}/{r['images']} images bit-exact (every logit equal to sephw.reference); "
          f"accuracy {r['accuracy'] * 100:.2f}% on {r['images']} test images (reference {r['reference_accuracy'] * 100:.2f}%)")
    reached, basis = r["clock_reached_hz"], r["clock_basis"]
    print(f"== measured {meas:,.0f} cycles/inference (predicted {r['predicted_cycles']:,}) = "
          f"{meas / reached * 1e3:.3f} ms, {reached / meas:,.0f} FPS at {reached / 1e6:g} MHz ({basis}; "
          f"{clock / meas:,.0f} FPS at the nominal {clock / 1e6:g} MHz); link "
          f"{r['link_bytes_per_image']:,} bytes/image = {r['link_s_per_image'] * 1e3:.2f} ms at {r['device']['baud']:,} baud")
    if est:
        b = est["budget"]
        print(f"== resource estimate (Yosys synth_xilinx of the board top incl. UART link): LUT {est['lut']:,}/{b['lut']:,}, "
              f"FF {est['ff']:,}/{b['ff']:,}, DSP {est['dsp']}/{b['dsp']}, BRAM36 {est['bram_blocks']}/{b['bram_blocks']} "
              f"({'fits' if est['fits'] else 'does NOT fit'} {board.part})")
    return 0 if r["bit_exact_images"] == r["images"] else 1


def register_cli(subparsers) -> None:
    """Add ``demo [--model M] [--board B] [--build DIR] [--images N] [--no-synth]``."""
    d = subparsers.add_parser("demo", help="the main job on the shipped default model")
    d.add_argument("--model", default=str(DEFAULT_MODEL))
    d.add_argument("--data", default=None)
    d.add_argument("--board", default="arty-a7")
    d.add_argument("--calib", type=int, default=2000, help="calibration images when no _q checkpoint ships")
    d.add_argument("--build", default="build/demo", help="build directory for the compiled model")
    d.add_argument("--images", type=int, default=100, help="test images run on the simulated board (0: none)")
    d.add_argument("--no-synth", action="store_true", help="skip the board build's Yosys resource estimate")
    d.set_defaults(func=cmd_demo)
