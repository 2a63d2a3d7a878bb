"""Compile benchmark (issue 5): the shipped model and the ResNet-20 pattern network on a board.

For each model: compile time, cycles per inference from the compiler's cycle model of the RTL
top as built (docs/isa.md; equal to Verilator's count on the whole-SEP-Net test), the
engine-level (ideal overlay) cycles, FPS at the board clock, engine utilization, and the
LUT/FF/DSP/BRAM estimate against the part. With ``--simulate N`` the shipped model also runs
N test images on the top in Verilator: measured cycles, bit-exact logits and simulation speed.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="arty-a7-35")
    ap.add_argument("--simulate", type=int, default=0, help="run N test images of the shipped model on the top")
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
            from rtl_gen.top import check_program
            res["top_refuses"] = check_program(out)  # instructions the RTL top does not implement
            if a.simulate and name.startswith("sepnet"):
                from sephw.cli import build_parser
                import io
                import contextlib
                buf = io.StringIO()
                args = build_parser().parse_args(["simulate", str(out), "--images", str(a.simulate), "--json"])
                t1 = time.perf_counter()
                with contextlib.redirect_stdout(buf):
                    rc = args.func(args)
                sim_secs = time.perf_counter() - t1
                sim = json.loads(buf.getvalue())
                res["simulation"] = {**sim, "rc": rc, "wall_seconds_incl_build": round(sim_secs, 1)}
            results[name] = res
            r, u = rep["resources"], rep["utilization"]
            meas = res.get("simulation", {}).get("cycles_per_inference")
            rows.append([name, f"{rep['cycles_per_inference']:,}", f"{meas:,}" if meas else "not simulated",
                         f"{rep['engine_model_cycles_per_inference']:,}",
                         f"{rep['latency_s'] * 1e3:.3f}", f"{rep['fps']:,.0f}",
                         f"{u['pattern_engine']:.1%} / {u['mac_array']:.1%}",
                         f"{r['lut']:,}/{r['budget']['lut']:,} LUT, {r['dsp']}/{r['budget']['dsp']} DSP, "
                         f"{r['bram_blocks']}/{r['budget']['bram_blocks']} BRAM36",
                         f"{secs:.2f}", "yes" if not res["top_refuses"] else
                         f"no: {len(res['top_refuses'])} instructions ({res['top_refuses'][0].split(': ', 1)[1]})"])
    results_io.write(
        "compile", {"board": a.board, "results": results},
        ["model", "cycles/inference (RTL-top model)", "measured in Verilator", "ideal overlay cycles",
         "latency ms", "FPS", "utilization pattern / MAC", "resource estimate", "compile s", "top check_program passes"], rows,
        command="python bench/bench_compile.py " + " ".join(sys.argv[1:]),
        notes=f"Board {a.board} at its profile clock. 'cycles/inference' is the compiler's model of the "
              "RTL top as built (docs/isa.md), which equals the Verilator count on the whole-SEP-Net "
              "test (tests/test_rtl_top.py); 'ideal overlay cycles' is the engine-level model (engines "
              "fed at full rate). Resource figures are the compiler's estimate from bench/results/engines.json "
              "(Yosys synth_xilinx per engine + unmeasured 3000-LUT control allowance), not a synthesis of the top. "
              "Anchor: Tensil runs ResNet-20 on an Arty A7-35 at 21 ms/image (150 MHz, 16-bit).")
    print((results_io.RESULTS / "compile.md").read_text())


if __name__ == "__main__":
    main()
