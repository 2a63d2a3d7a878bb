"""Model-zoo benchmark (issue 16): ResNet-20 and its Multiception, DSConv and MixConv variants
side by side on each board, at CIFAR's 32×32.

Per network (random weights, k×k convolutions binarized, quantized on random uint8
calibration images; cycles and storage depend on the shapes, not on the weights): weights,
pattern bits (the ±1 weights of every pattern convolution, depthwise branches included),
pattern bytes the compiled build stores (report.json per layer ``pattern_bits_stored``) and their
ratio to the bits, cycles per inference (the compiler's model of the RTL top as built), FPS
at the board's clock, pattern-engine and MAC-array utilization, and whether the RTL top runs
the Program (``rtl_gen.top.check_program``). A network that does not fit the board is listed
with the compiler's error (what does not fit). With ``--simulate N`` the networks the top
runs also run N random images in Verilator (those of at most ``--simulate-max-cycles``
predicted cycles): measured cycles and bit-exact logits.

Run: .venv/bin/python bench/bench_zoo.py [--boards arty-a7-35 arty-a7-100] [--size 32] [--simulate 1]
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
from bench_compile import measured_cell, simulate_build, top_runs_cell  # noqa: E402

from sephw import binarize, models, quantize  # noqa: E402
from sephw.compiler import CompileError, compile_graph  # noqa: E402
from sephw.intgraph import ConvOperand, DepthwiseBranch  # noqa: E402

ARCHS = ("resnet20", "multiception-resnet20", "dsconv-resnet20", "mixconv-resnet20")


def zoo_graph(arch: str, size: int) -> "quantize.IntGraph":
    torch.manual_seed(0)
    m = models.build(arch).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (8, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def weight_counts(graph) -> dict:
    """Weights of the graph's convolutions and FC, and the pattern (±1) ones among them."""
    total = pattern = 0
    for n in graph.nodes:
        for v in vars(n).values():
            ops = v if isinstance(v, list) else [v]
            for o in ops:
                if isinstance(o, (ConvOperand, DepthwiseBranch)):
                    total += o.weight.numel()
                    if o.kind == "pattern":
                        pattern += o.weight.numel()
        w = getattr(n, "weight", None)
        if isinstance(w, torch.Tensor):          # the FC
            total += w.numel()
    return {"weights": total, "pattern_bits": pattern}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", nargs="+", default=["arty-a7-35", "arty-a7-100"])
    ap.add_argument("--size", type=int, default=32, help="input height and width (RGB)")
    ap.add_argument("--simulate", type=int, default=0, help="run N images of each network the top runs in Verilator")
    ap.add_argument("--simulate-max-cycles", type=int, default=2_000_000,
                    help="simulate only networks of at most this many predicted cycles per image")
    a = ap.parse_args()
    from rtl_gen.checkprog import check_program
    results, rows = {}, []
    graphs = {arch: zoo_graph(arch, a.size) for arch in ARCHS}
    with tempfile.TemporaryDirectory() as tmp:
        for board, arch in ((b, arch) for b in a.boards for arch in ARCHS):
            g, key = graphs[arch], f"{arch}:{board}"
            res = weight_counts(g)
            out = Path(tmp) / key.replace(":", "_")
            t0 = time.perf_counter()
            try:
                _, rep = compile_graph(g, board, out)
            except CompileError as e:
                res["error"] = str(e)
                results[key] = res
                rows.append([key, f"{res['weights']:,}", f"{res['pattern_bits']:,}", "", "", "", "", "", "", "",
                             f"does not fit: {e}"])
                continue
            res.update({k: rep[k] for k in ("cycles_per_inference", "fps", "clock_hz", "utilization",
                                            "onchip_breakdown", "onchip_bytes", "onchip_budget_bytes",
                                            "engine_config")})
            res["compile_seconds_wall"] = round(time.perf_counter() - t0, 2)
            # the pattern words the build stores, on chip or (streamed steps) in DRAM: the
            # layers' stored bits (report.json), not the on-chip image, which then holds buffers
            res["pattern_bytes_stored"] = -(-sum(r["pattern_bits_stored"] for r in rep["layers"]) // 8)
            res["external_bytes"] = (rep["external"] or {}).get("bytes", 0)
            res["pattern_storage_ratio"] = res["pattern_bytes_stored"] * 8 / max(1, res["pattern_bits"])
            # the depthwise layers' own ratios (report.json, per layer): the stem and other
            # layers are in the total above
            dw = [r["pattern_storage_ratio"] for r in rep["layers"]
                  if r["pattern_bits"] and r["depthwise"]]
            res["depthwise_storage_ratio"] = [min(dw), max(dw)] if dw else None
            res["top_refuses"] = check_program(out)
            if a.simulate and not res["top_refuses"] and rep["cycles_per_inference"] <= a.simulate_max_cycles:
                res["simulation"] = simulate_build(out, g, a.simulate, real_data=False)
            results[key] = res
            u, cfg = rep["utilization"], rep["engine_config"]
            sim = res.get("simulation")
            rows.append([
                key, f"{res['weights']:,}", f"{res['pattern_bits']:,}",
                f"{res['pattern_bytes_stored']:,} ({res['pattern_storage_ratio']:.1f}x)",
                "{:.2f}x .. {:.2f}x".format(*res["depthwise_storage_ratio"]) if res["depthwise_storage_ratio"] else "",
                f"{cfg['lanes']}L x {cfg['pe_cin']}c k{cfg['k_max']}, MAC {cfg['lanes']}x{cfg['mac_cols']}"
                + (f"; {res['external_bytes']:,} B in DRAM" if res["external_bytes"] else ""),
                f"{rep['cycles_per_inference']:,}",
                measured_cell(sim) + ("" if sim or not a.simulate else f" (over {a.simulate_max_cycles:,} cycles)"),
                f"{rep['fps']:,.0f}", f"{u['pattern_engine']:.1%} / {u['mac_array']:.1%}",
                top_runs_cell(res["top_refuses"])])
    results_io.write(
        "zoo", {"boards": a.boards, "size": a.size, "results": results},
        ["network:board", "weights", "pattern bits", "pattern bytes stored (x bits)", "depthwise layers (x bits)",
         "overlay",
         "cycles/inference (RTL-top model)", "measured in Verilator", "FPS", "utilization pattern / MAC",
         "RTL top runs it"], rows,
        command="python bench/bench_zoo.py " + " ".join(sys.argv[1:]),
        notes=f"Each board at its profile clock, {a.size}x{a.size} RGB inputs, 10 classes, random weights "
              "(k×k convolutions binarized). 'pattern bytes stored': the pattern words the build stores, on chip "
              "or in DRAM (its layers' report.json pattern_bits_stored), 'x bits': their size over the pattern bits "
              "they hold (issue 16 asks for at most 2x); 'B in DRAM': pattern and weight words the compiler keeps in the board's DRAM "
              "where the network does not fit on chip (docs/isa.md); 'depthwise layers': the smallest and largest of the depthwise "
              "layers' own ratios (report.json pattern_storage_ratio; the stem and other pattern layers are in "
              "the total). Each network is compiled with the compiler's own overlay "
              "search for the board. 'measured in Verilator': the RTL top's cycle counter on random images, "
              "every logit compared with sephw.reference.")
    print((results_io.RESULTS / "zoo.md").read_text())


if __name__ == "__main__":
    main()
