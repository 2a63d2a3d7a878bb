"""Paper Table 2 / Table 1 on Fashion-MNIST: Full, BiPattern (binarized, not refined) and
Refined test accuracy for ResNet-20 and the SEP-Net variant, plus the 1×1-only ablation,
and the average quantization error per kernel size of the trained models.

Every number is measured by this script (training included unless a trained full-precision
checkpoint is passed with --full ARCH=PATH, in which case it is re-evaluated here).

Run (what produced bench/results/table2.md is recorded in that file):
    .venv/bin/python bench/bench_table2.py --epochs 12 --refine-epochs 6 \
        --full sepnet-small=models/sepnet_fmnist_full.pt
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

from sephw import binarize as bz  # noqa: E402
from sephw import checkpoint, data, models  # noqa: E402
from sephw.train import FitConfig, evaluate, fit  # noqa: E402

ARCHS = {
    "resnet20": dict(arch="resnet20", kwargs={"in_channels": 1, "num_classes": 10}),
    "sepnet-small": dict(arch="sepnet-small", kwargs={"in_channels": 1, "num_classes": 10, "stem": "small",
                                                      "width": 0.25}),
}


def training_parser(doc: str, archs, *, epochs: int, refine_epochs: int, refine_lr: float,
                    limit: int | None) -> argparse.ArgumentParser:
    """The training benchmarks' common arguments (this one's and bench_zoo_accuracy's)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=list(archs), choices=list(archs))
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--refine-epochs", type=int, default=refine_epochs)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--refine-lr", type=float, default=refine_lr)
    ap.add_argument("--limit", type=int, default=limit, help="train on the first N training images only")
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=None)
    return ap


def main() -> None:
    ap = training_parser(__doc__, ARCHS, epochs=12, refine_epochs=6, refine_lr=0.01, limit=None)
    ap.add_argument("--full", action="append", default=[], help="ARCH=PATH: reuse a trained full model")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    given = dict(s.split("=", 1) for s in a.full)
    tx, ty = data.load_fashion_mnist(a.data or data.DEFAULT_FMNIST, "train")
    vx, vy = data.load_fashion_mnist(a.data or data.DEFAULT_FMNIST, "test")
    results, rows, qerr_rows = {}, [], []
    for name in a.archs:
        spec = ARCHS[name]
        t0 = time.time()
        if name in given:
            full, _ = checkpoint.load(given[name])
            how = f"trained model {given[name]} re-evaluated"
        else:
            torch.manual_seed(0)
            full = models.build(spec["arch"], **spec["kwargs"])
            fit(full, full.parameters(), tx, ty, FitConfig(epochs=a.epochs, lr=a.lr, limit=a.limit), test=(vx, vy))
            how = f"trained here, {a.epochs} epochs"
        res = {"how": how, "full": evaluate(full, vx, vy)}
        for scope in ("kxk", "1x1"):
            m = copy.deepcopy(full)
            bz.binarize_model(m, scope)
            res[f"bipattern_{scope}"] = evaluate(m, vx, vy)
            fit(m, bz.refine_parameters(m), tx, ty,
                FitConfig(epochs=a.refine_epochs, lr=a.refine_lr, weight_decay=5e-5, limit=a.limit), test=(vx, vy))
            res[f"refined_{scope}"] = evaluate(m, vx, vy)
        res["quantization_error"] = {str(k): v for k, v in bz.quantization_error(full).items()}
        res["seconds"] = time.time() - t0
        results[name] = res
        pct = lambda v: f"{v * 100:.2f}"  # noqa: E731
        rows.append([name, pct(res["full"]), pct(res["bipattern_kxk"]), pct(res["refined_kxk"]),
                     pct(res["bipattern_1x1"]), pct(res["refined_1x1"])])
        for k, v in res["quantization_error"].items():
            qerr_rows.append([name, f"{k}×{k}", v["weights"], f"{v['mse']:.3e}", f"{v['rel']:.3f}"])
    cmd = "python bench/bench_table2.py " + " ".join(sys.argv[1:])
    results_io.write(
        "table2", {"results": results, "config": vars(a)},
        ["model", "Full %", "BiPattern k×k %", "Refined k×k %", "BiPattern 1×1-only %", "Refined 1×1-only %"],
        rows, command=cmd,
        notes=f"Fashion-MNIST test set (10,000 images). Full models: {', '.join(r['how'] for r in results.values())}. "
              f"Refine: {a.refine_epochs} epochs, lr {a.refine_lr}, patterns frozen.")
    results_io.write(
        "table1", {"results": {n: r["quantization_error"] for n, r in results.items()}},
        ["model", "kernel", "weights", "avg squared error per weight", "relative error energy"], qerr_rows,
        command=cmd, notes="avg_k = Σ (W − αB)² / N_k over all weights of all k×k convolutions of the trained "
                           "full-precision model (sephw.binarize.quantization_error).")
    print((results_io.RESULTS / "table2.md").read_text())
    print((results_io.RESULTS / "table1.md").read_text())


if __name__ == "__main__":
    main()
