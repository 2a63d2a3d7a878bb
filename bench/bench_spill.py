"""Tensors spilled to DRAM and Programs in DRAM pages (issue 15): builds that fit a board only
with them, compiled with the placement the compiler picks itself ('auto') and, with
``--simulate``, one random image each on the RTL top in Verilator beside the behavioural
DRAM (every logit against sephw.reference; measured against predicted cycles).

Networks (random weights, k×k convolutions binarized, quantized on random uint8 images):
- SEP-Net-small at quarter width, 1 input channel, 10 classes, 112×112 (``sepnet112``, the
  model tests/test_compiler.py names as not fitting arty-a7-35 on chip);
- SEP-Net-small at full width (1,362,368 weights, 1,000 classes), 224×224 RGB, the paper's
  network at its real size (``--simulate-max-cycles`` decides whether it runs: about
  11 M cycles).

Run: .venv/bin/python bench/bench_spill.py [--simulate 1] [--simulate-max-cycles N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402
from bench_compile import measured_cell, simulate_build  # noqa: E402

from sephw import binarize, models, quantize  # noqa: E402
from sephw.compiler import compile_graph  # noqa: E402

NETWORKS = {
    "sepnet-small x0.25, 1x112x112, 10 classes": (dict(in_channels=1, num_classes=10, stem="small", width=0.25),
                                                  (1, 112)),
    "sepnet-small (full), 3x224x224, 1000 classes": ({}, (3, 224)),
}


def graph(kw: dict, c: int, size: int):
    torch.manual_seed(0)
    m = models.build("sepnet-small", **kw).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (2, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="arty-a7-35")
    ap.add_argument("--simulate", type=int, default=0, help="run N random images of each build in Verilator")
    ap.add_argument("--simulate-max-cycles", type=int, default=3_000_000,
                    help="simulate only builds of at most this many predicted cycles per image")
    a = ap.parse_args()
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kw, (c, size)) in NETWORKS.items():
            g = graph(kw, c, size)
            out = Path(tmp) / f"b{size}"
            t0 = time.perf_counter()
            ir, rep = compile_graph(g, a.board, out)
            ext = rep["external"] or {}
            res = {k: rep[k] for k in ("cycles_per_inference", "fps", "clock_hz", "utilization", "bands",
                                       "instructions", "onchip_bytes", "onchip_budget_bytes", "engine_config")}
            res.update(external=ext, spilled=list(ir.spills), program_page=ir.program_page,
                       bram_blocks=rep["resources"]["bram_blocks"],
                       compile_seconds_wall=round(time.perf_counter() - t0, 1))
            if a.simulate and rep["cycles_per_inference"] <= a.simulate_max_cycles:
                res["simulation"] = simulate_build(out, g, a.simulate, real_data=False)
            results[name] = res
            cfg = rep["engine_config"]
            sim = res.get("simulation")
            rows.append([
                name, f"{cfg['lanes']}L x {cfg['pe_cin']}c k{cfg['k_max']}, MAC {cfg['lanes']}x{cfg['mac_cols']}",
                f"{len(ir.spills)}: {', '.join(ir.spills)}", str(rep["bands"]),
                f"{rep['instructions']:,}" + (f" (pages of {ir.program_page})" if ir.program_page else " (on chip)"),
                f"{rep['onchip_bytes']:,} / {rep['onchip_budget_bytes']:,}, {rep['resources']['bram_blocks']:g} BRAM36",
                f"{ext.get('spill_bytes', 0):,} / {ext.get('bytes_per_inference', 0):,}",
                f"{rep['cycles_per_inference']:,}", measured_cell(sim) if sim else "",
                f"{rep['fps']:,.1f} ({rep['utilization']['pattern_engine']:.1%})", f"{res['compile_seconds_wall']}"])
            print(name, rep["cycles_per_inference"], flush=True)
    results_io.write(
        "spill", {"board": a.board, "results": results},
        ["network", "overlay", "tensors spilled", "bands", "instructions", "on-chip bytes, block RAM",
         "DRAM bytes: spilled tensors / moved per inference", "cycles/inference (RTL-top model)",
         "measured in Verilator", "FPS at the board clock (pattern-engine util.)", "compile s"], rows,
        command="python bench/bench_spill.py " + " ".join(sys.argv[1:]),
        notes=f"{a.board} at its profile clock, the compiler's own overlay search and placement ('auto'): "
              "weights streamed from DRAM where they do not fit, and where even that does not fit, tensors "
              "spilled to DRAM between segments of row bands and the Program run from DRAM in pages "
              "(docs/isa.md). 'measured in Verilator': the RTL top with the behavioural DRAM at the board's "
              "LiteDRAM-calibrated latency, every logit compared with sephw.reference.")
    print((results_io.RESULTS / "spill.md").read_text())


if __name__ == "__main__":
    main()
