"""Benchmark the bit-exact reference executor on a quantized checkpoint.

    .venv/bin/python bench/bench_reference.py models/sepnet_fmnist_q.pt

Runs the IntGraph on the whole test split (10,000 Fashion-MNIST images), times it, and
compares its predictions with the float models of the same checkpoint:

* refined float: the checkpoint's model as stored (float 1×1 convs, pattern k×k);
* fake-quant: the same weights as the IntGraph (int8 1×1, pattern k×k) with every stored
  activation quantized as the IntGraph does (docs/numerics.md section 9), in float64;
* plain float: the full-precision accuracy recorded in the checkpoint's metadata by
  ``sephw train`` (or ``--float PATH`` evaluated here).

Writes ``<out-dir>/<name>.json`` and ``<name>.md`` (default bench/results/reference.*).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

from sephw import checkpoint, data, quantize, reference  # noqa: E402

GOAL_ACC_DROP = 0.3       # points, integer vs refined float
GOAL_AGREEMENT = 99.5     # percent argmax agreement, integer vs refined float
GOAL_SECONDS = 120.0      # whole test set on 2 cores


def float_predictions(model: torch.nn.Module, images: torch.Tensor, batch: int = 500,
                      dtype=torch.float32) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            out.append(model(images[s:s + batch].to(dtype) / 255.0).argmax(1))
    return torch.cat(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="quantized checkpoint (sephw quantize -o ...)")
    p.add_argument("--data", default=None, help="dataset folder (default: the loader's)")
    p.add_argument("--limit", type=int, default=None, help="first N test images only")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the goal is on 2)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--float", dest="float_model", default=None,
                   help="full-precision checkpoint to evaluate as the plain float model")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="reference")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    graph = quantize.load_graph(a.model)
    model, ck = checkpoint.load(a.model)
    meta = ck["metadata"]
    ds = meta.get("dataset") or graph.meta.get("dataset") or "fashion-mnist"
    x, y = data.load(ds, "test", a.data)
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    n = len(x)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    c0, t0 = time.process_time(), time.perf_counter()
    logits = reference.run(graph, x, batch_size=a.batch_size, progress=True)
    t_ref = time.perf_counter() - t0
    cpu_ref = time.process_time() - c0
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    pred_int = logits.argmax(1)

    pred_float = float_predictions(model, x)
    fq = quantize.bq_model(model).double()
    with quantize.fake_quant(fq, graph):
        pred_fq = float_predictions(fq, x, dtype=torch.float64)

    def acc(pred):
        return 100.0 * float((pred == y).double().mean())

    def agree(p1, p2):
        return 100.0 * float((p1 == p2).double().mean())

    plain = None
    plain_src = None
    if a.float_model:
        fm, _ = checkpoint.load(a.float_model)
        plain = acc(float_predictions(fm, x))
        plain_src = f"evaluated here: {a.float_model}"
    elif isinstance(meta.get("accuracy"), dict) and "full" in meta["accuracy"] and not a.limit:
        plain = 100.0 * float(meta["accuracy"]["full"])
        plain_src = "checkpoint metadata (sephw train, full test split)"

    fold = [n_.requant.fold_error for n_ in graph.nodes if hasattr(n_, "requant")]
    res = {
        "model": str(a.model),
        "arch": ck["arch"],
        "arch_kwargs": ck["arch_kwargs"],
        "dataset": ds,
        "split": "test",
        "images": n,
        "a_bits": graph.a_bits,
        "intgraph_nodes": len(graph.nodes),
        "calibration": meta.get("quantize"),
        "reference_seconds": round(t_ref, 3),
        "reference_images_per_second": round(n / t_ref, 1),
        "reference_cpu_seconds": round(cpu_ref, 3),
        "load_average_1min": [load_before, load_after],
        "threads": a.threads,
        "accuracy": {
            "integer_reference": round(acc(pred_int), 3),
            "fake_quant_float64": round(acc(pred_fq), 3),
            "refined_float": round(acc(pred_float), 3),
            "plain_float": None if plain is None else round(plain, 3),
            "plain_float_source": plain_src,
        },
        "argmax_agreement": {
            "integer_vs_refined_float": round(agree(pred_int, pred_float), 3),
            "integer_vs_fake_quant": round(agree(pred_int, pred_fq), 3),
        },
        "fold_error_codes": {"max": max(fold), "mean": sum(fold) / len(fold)},
        "goals": {
            "accuracy_drop_points": round(acc(pred_float) - acc(pred_int), 3),
            "accuracy_drop_ok": acc(pred_float) - acc(pred_int) <= GOAL_ACC_DROP,
            "agreement_ok": agree(pred_int, pred_float) >= GOAL_AGREEMENT,
            "time_ok": t_ref <= GOAL_SECONDS * n / 10_000,
        },
        "machine": {"cpu": results_io.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform()},
        "git": results_io.git_rev(),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    A, G = res["accuracy"], res["argmax_agreement"]
    md = [
        f"# Reference executor on {ds} ({n} test images)",
        "",
        f"Model `{a.model}` ({ck['arch']}, a_bits={graph.a_bits}, {len(graph.nodes)} IntGraph nodes), "
        f"{res['date_utc']} UTC on {results_io.machine()}, {a.threads} threads, torch {torch.__version__}, "
        f"git {res['git']}.",
        f"Command: `{res['command']}`",
        "",
        "| model | accuracy (%) |",
        "| --- | --- |",
        f"| integer reference (bit-exact IntGraph) | {A['integer_reference']:.2f} |",
        f"| fake-quant float64 | {A['fake_quant_float64']:.2f} |",
        f"| refined float (checkpoint as stored) | {A['refined_float']:.2f} |",
        f"| plain float | {'n/a' if plain is None else f'{plain:.2f}'} |",
        "",
        f"Plain float source: {plain_src or 'not available (no --float, no metadata)'}.",
        "",
        "| argmax agreement | % |",
        "| --- | --- |",
        f"| integer vs refined float | {G['integer_vs_refined_float']:.2f} |",
        f"| integer vs fake-quant | {G['integer_vs_fake_quant']:.2f} |",
        "",
        f"Reference time: {t_ref:.1f} s wall for {n} images ({n / t_ref:.0f} images/s), "
        f"{cpu_ref:.1f} CPU seconds; 1-minute load average {load_before} before, {load_after} after "
        f"(other jobs on the machine slow the wall time).",
        f"Fold error (codes): max {max(fold):.3g}, mean {sum(fold) / len(fold):.3g}.",
        "",
        f"Goals: accuracy drop vs refined float {res['goals']['accuracy_drop_points']:.2f} points "
        f"(<= {GOAL_ACC_DROP}: {'met' if res['goals']['accuracy_drop_ok'] else 'NOT met'}); "
        f"agreement >= {GOAL_AGREEMENT}%: {'met' if res['goals']['agreement_ok'] else 'NOT met'}; "
        f"time <= {GOAL_SECONDS:.0f} s per 10,000 images: {'met' if res['goals']['time_ok'] else 'NOT met'}.",
        "",
    ]
    (out / f"{a.name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
