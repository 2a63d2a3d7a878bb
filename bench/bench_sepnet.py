"""SEP-Net-small at full width on each board (issue 15): the paper's network (Table 8,
1,362,368 weights, 1,000 classes, RGB) at growing input sizes up to its real 224×224, with
pattern and int8 weight words in the board's DRAM where they do not fit on chip, and tensors
and the Program there too where even that does not fit.

Per size and board (random weights, k×k convolutions binarized, quantized on random uint8
calibration images; cycles and memories depend on the shapes, not the weights): whether it
compiles (else the compiler's error: what does not fit), the overlay, row bands, streamed
steps, on-chip bytes and block RAMs, the external image and the bytes it moves per
inference, the cycles the DMA_LOADs cost (their issue and the tiles' waits for their
words), cycles per inference (the compiler's model of the RTL top as built), FPS at the
board's clock, pattern-engine utilization, and how many layers are compute-, gather- or
memory-bound (report.json). With ``--simulate N`` the builds of at most
``--simulate-max-cycles`` predicted cycles run N random images in Verilator with the
behavioural DRAM (measured cycles, bit-exact logits).

Run: .venv/bin/python bench/bench_sepnet.py [--sizes 32 64 112 224] [--boards ...] [--simulate 1] [--name F]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402
from bench_compile import measured_cell, simulate_build  # noqa: E402

from sephw import binarize, models, quantize  # noqa: E402
from sephw.compiler import CompileError, compile_graph  # noqa: E402


def sepnet_graph(size: int):
    torch.manual_seed(0)
    m = models.build("sepnet-small").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def _resources(rep: dict) -> str:
    """The compiler's resource estimate against the part (LiteDRAM's controller included where
    the build keeps words in DRAM: boards/*.yaml external_memory.controller, measured)."""
    r = rep["resources"]
    b = r.get("budget", {})
    ctl = r.get("detail", {}).get("dram_controller_lut", 0)
    lut = f"{r['lut']:,}" + (f"/{b['lut']:,}" if b.get("lut") else "") + (f" ({ctl:,})" if ctl else "")
    return lut + f", DSP {r['dsp']}" + (f"/{b['dsp']}" if b.get("dsp") else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 112, 224])
    ap.add_argument("--boards", nargs="+", default=["arty-a7-35", "arty-a7-100", "ulx3s-85f"])
    ap.add_argument("--simulate", type=int, default=0, help="run N random images of each build in Verilator")
    ap.add_argument("--name", default="sepnet", help="results file in bench/results (default sepnet)")
    ap.add_argument("--simulate-max-cycles", type=int, default=1_000_000,
                    help="simulate only builds of at most this many predicted cycles per image")
    a = ap.parse_args()
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            g = sepnet_graph(size)
            for board in a.boards:
                key = f"{size}x{size}:{board}"
                out = Path(tmp) / key.replace(":", "_")
                t0 = time.perf_counter()
                try:
                    ir, rep = compile_graph(g, board, out)
                except CompileError as e:
                    results[key] = {"error": str(e), "compile_seconds_wall": round(time.perf_counter() - t0, 1)}
                    rows.append([key] + [""] * 11 + [f"does not fit: {e}"])
                    print(key, "does not fit", flush=True)
                    continue
                ext = rep["external"] or {}
                bound = Counter(r["bound"] for r in rep["layers"] if r["bound"])
                res = {k: rep[k] for k in ("cycles_per_inference", "fps", "clock_hz", "utilization", "bands",
                                           "onchip_bytes", "onchip_budget_bytes", "engine_config", "external")}
                res.update(streamed_steps=len(ir.streamed), spilled=list(ir.spills), program_page=ir.program_page,
                           instructions=rep["instructions"], bram_blocks=rep["resources"]["bram_blocks"],
                           resources={k: rep["resources"][k] for k in ("lut", "ff", "dsp", "bram_blocks")},
                           dram_controller_lut=rep["resources"].get("detail", {}).get("dram_controller_lut", 0),
                           bound=dict(bound), compile_seconds_wall=round(time.perf_counter() - t0, 1))
                if a.simulate and rep["cycles_per_inference"] <= a.simulate_max_cycles:
                    res["simulation"] = simulate_build(out, g, a.simulate, real_data=False)
                results[key] = res
                cfg, u = rep["engine_config"], rep["utilization"]
                sim = res.get("simulation")
                rows.append([
                    key, f"{cfg['lanes']}L x {cfg['pe_cin']}c k{cfg['k_max']}, MAC {cfg['lanes']}x{cfg['mac_cols']}",
                    str(rep["bands"]), str(len(ir.streamed)),
                    f"{len(ir.spills)}" + (f"; {rep['instructions']:,} in pages" if ir.program_page else ""),
                    f"{rep['onchip_bytes']:,} / {rep['onchip_budget_bytes']:,}, {rep['resources']['bram_blocks']:g} BRAM36",
                    _resources(rep),
                    f"{ext.get('bytes', 0):,} / {ext.get('bytes_per_inference', 0):,}",
                    f"{ext.get('dma_cycles_per_inference', 0):,}",
                    f"{rep['cycles_per_inference']:,}", measured_cell(sim) if sim else "",
                    f"{rep['fps']:,.1f} ({u['pattern_engine']:.1%})",
                    ", ".join(f"{v} {k}" for k, v in sorted(bound.items()))])
                print(key, rep["cycles_per_inference"], flush=True)
    results_io.write(
        a.name, {"sizes": a.sizes, "boards": a.boards, "results": results},
        ["size:board", "overlay", "bands", "streamed steps", "tensors spilled; Program", "on-chip bytes, block RAM",
         "compiler's estimate: LUT (of them the DRAM controller's), DSP of the part's",
         "external bytes: image / per inference", "DMA cycles (issue + waits)", "cycles/inference (RTL-top model)",
         "measured in Verilator", "FPS at the board clock (pattern-engine util.)", "layers bound by"], rows,
        command="python bench/bench_sepnet.py " + " ".join(sys.argv[1:]),
        notes="SEP-Net-small (paper Table 8) at full width, 1,000 classes, RGB inputs of the given size, random "
              "weights. Each board at its profile clock with the compiler's own overlay search and placement "
              "('auto': on chip where it fits, else the largest steps' pattern and int8 weight words in the "
              "board's DRAM, loaded by DMA_LOAD into one half of a ping-pong buffer while the tile before "
              "computes; where even that does not fit, tensors spilled to DRAM between segments of row bands and "
              "the Program run from DRAM in pages; docs/isa.md); the Arty's DDR3 at 100 MHz through a 128-bit port, "
              "the ULX3S's SDR SDRAM at the design's 25 MHz through a 16-bit port. "
              "A row without numbers "
              "gives the compiler's not-fit message. 'measured in Verilator': the RTL top with the behavioural "
              "DRAM at the board's LiteDRAM-calibrated latency, every logit compared with sephw.reference.")
    print((results_io.RESULTS / f"{a.name}.md").read_text())


if __name__ == "__main__":
    main()
