"""Compile benchmark (issue 5): the shipped model and the ResNet-20 pattern network on a board.

For each model: compile time, cycles per inference from the compiler's cycle model of the RTL
top as built (docs/isa.md; equal to Verilator's count on the whole-SEP-Net test), the
engine-level (ideal overlay) cycles, FPS at the board clock, engine utilization, and the
LUT/FF/DSP/BRAM estimate against the part. With ``--simulate N`` each model also runs N images
on the top in Verilator (:func:`simulate_build`): measured cycles, bit-exact logits and
simulation speed.

Run: .venv/bin/python bench/bench_compile.py [--board arty-a7-35] [--simulate 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

from sephw import binarize, models, quantize  # noqa: E402
from sephw.arch import Manifest  # noqa: E402
from sephw.compiler import CompileError, compile_graph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def resnet20_graph() -> "quantize.IntGraph":
    """ResNet-20 pattern network (32×32×3, 10 classes): random weights, k×k binarized; the
    cycle count depends on shapes only, not on the weights."""
    torch.manual_seed(0)
    m = models.build("resnet20").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def simulate_build(out: Path, graph, n: int, real_data: bool) -> dict:
    """``n`` images on the RTL top in Verilator (word-form pattern engine, speed build): the
    shipped model on Fashion-MNIST test images through `sephw simulate`, the ResNet-20 pattern
    network (random weights, no CIFAR-10 here) on random uint8 images; every logit against
    sephw.reference."""
    if real_data:
        import contextlib
        import io

        from sephw.cli import build_parser
        buf = io.StringIO()
        args = build_parser().parse_args(["simulate", str(out), "--images", str(n), "--json"])
        t1 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = args.func(args)
        sim = json.loads(buf.getvalue())
        sim.pop("instruction_cycles", None)
        return {**sim, "rc": rc, "wall_seconds_incl_build": round(time.perf_counter() - t1, 1)}
    from sephw import reference
    from sim.top_driver import run_top
    c, h, w = Manifest.read(out)["input"]["shape"]
    x = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    exp = reference.run(graph, x)
    t1 = time.perf_counter()
    r = run_top(out, x.numpy(), exp.numpy())
    secs = time.perf_counter() - t1
    cyc = sum(r["cycles"]) / len(r["cycles"])
    rep = json.loads((out / "report.json").read_text())
    return {"images": n, "data": "random uint8 images (random weights)",
            "bit_exact_images": sum(int(got == [int(v) for v in e]) for got, e in zip(r["logits"], exp.tolist())),
            "cycles_per_inference": cyc, "cycles": r["cycles"], "predicted_cycles": rep["cycles_per_inference"],
            "measured_over_predicted": cyc / rep["cycles_per_inference"], "fps": rep["clock_hz"] / cyc,
            "wall_seconds_incl_build": round(secs, 1)}


def measured_cell(sim: dict | None) -> str:
    """The results table's Verilator cell: measured cycles and bit-exact images."""
    if not sim:
        return "not simulated"
    return f"{sim['cycles_per_inference']:,.0f} ({sim['bit_exact_images']}/{sim['images']} bit-exact)"


def top_runs_cell(refuses: list) -> str:
    """The results table's cell for rtl_gen.checkprog.check_program's answer."""
    return "yes" if not refuses else f"no: {len(refuses)} instructions ({refuses[0].split(': ', 1)[1]})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="arty-a7-35")
    ap.add_argument("--simulate", type=int, default=0, help="run N images of each model on the RTL top in Verilator")
    a = ap.parse_args()
    cases = {"sepnet_fmnist (shipped)": quantize.load_graph(ROOT / "models" / "sepnet_fmnist_q.pt"),
             "resnet20 pattern (CIFAR shape)": resnet20_graph()}
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph in cases.items():
            out = Path(tmp) / name.split()[0]
            t0 = time.perf_counter()
            try:
                _, rep = compile_graph(graph, a.board, out)
            except CompileError as e:
                results[name] = {"error": str(e)}
                rows.append([name, "does not fit"] + [""] * 9)
                continue
            secs = time.perf_counter() - t0
            res = {k: rep[k] for k in ("cycles_per_inference", "engine_model_cycles_per_inference", "fps",
                                       "clock_hz", "latency_s", "utilization", "resources", "onchip_bytes",
                                       "onchip_budget_bytes", "engine_config", "cycle_model", "instructions")}
            res["compile_seconds_wall"] = round(secs, 2)
            from rtl_gen.checkprog import check_program
            res["top_refuses"] = check_program(out)  # instructions the RTL top does not implement
            if a.simulate:
                res["simulation"] = simulate_build(out, graph, a.simulate, real_data=name.startswith("sepnet"))
            results[name] = res
            r, u = rep["resources"], rep["utilization"]
            rows.append([name, f"{rep['cycles_per_inference']:,}", measured_cell(res.get("simulation")),
                         f"{rep['engine_model_cycles_per_inference']:,}",
                         f"{rep['latency_s'] * 1e3:.3f}", f"{rep['fps']:,.0f}",
                         f"{u['pattern_engine']:.1%} / {u['mac_array']:.1%}",
                         f"{r['lut']:,}/{r['budget']['lut']:,} LUT, {r['dsp']}/{r['budget']['dsp']} DSP, "
                         f"{r['bram_blocks']}/{r['budget']['bram_blocks']} BRAM36",
                         f"{secs:.2f}", top_runs_cell(res["top_refuses"])])
    results_io.write(
        "compile", {"board": a.board, "results": results},
        ["model", "cycles/inference (RTL-top model)", "measured in Verilator", "ideal overlay cycles",
         "latency ms", "FPS", "utilization pattern / MAC", "resource estimate", "compile s", "top check_program passes"], rows,
        command="python bench/bench_compile.py " + " ".join(sys.argv[1:]),
        notes=f"Board {a.board} at its profile clock. 'cycles/inference' is the compiler's model of the "
              "RTL top as built (docs/isa.md), which equals the Verilator count on the whole-SEP-Net "
              "test (tests/test_rtl_top.py); 'ideal overlay cycles' is the engine-level model (engines "
              "fed at full rate). Resource figures are the compiler's estimate from bench/results/engines.json "
              "(Yosys synth_xilinx per engine + control allowance fitted to board-top syntheses); bench/results/boards.md has the synthesis of the board top. 'measured in Verilator': the top's cycle counter on N images (shipped model: Fashion-MNIST test images; ResNet-20: random weights and images), every logit compared with sephw.reference. "
              "Anchor: Tensil runs ResNet-20 on an Arty A7-35 at 21 ms/image (150 MHz, 16-bit).")
    print((results_io.RESULTS / "compile.md").read_text())


if __name__ == "__main__":
    main()
