"""Model-zoo accuracy (issue 16): Fashion-MNIST test accuracy of ResNet-20 and its Multiception,
DSConv and MixConv variants from one short training run each, so the accuracy side of
bench/results/zoo.md (cycles, storage) can be read beside it.

Per network (1×28×28 input, 10 classes): train the full-precision model (``--epochs`` over
the first ``--limit`` training images) = Full; binarize every k×k convolution (scope ``kxk``,
depthwise branches included) and refine alpha, the non-binarized weights, biases and BN
(``--refine-epochs``) = Refined-B; calibrate on ``--calib`` training images and lower the
refined model to its IntGraph (sephw.quantize.quantize), run it on the raw uint8 test
images with the integer reference (sephw.reference) = integer. A stage that raises is
recorded with its traceback and the next network runs.

Run (what produced bench/results/zoo_accuracy.md is recorded in that file):
    nice -n 10 .venv/bin/python bench/bench_zoo_accuracy.py --epochs 3 --refine-epochs 2 --refine-lr 0.05 --limit 5000 --threads 1
"""
from __future__ import annotations

import copy
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402
from bench_table2 import training_parser  # noqa: E402
from bench_zoo import ARCHS  # noqa: E402

from sephw import binarize as bz  # noqa: E402
from sephw import data, models, quantize  # noqa: E402
from sephw.train import FitConfig, evaluate, fit  # noqa: E402


def run_network(arch: str, a, train: tuple, test: tuple, calib: torch.Tensor) -> dict:
    """Full, Refined-B and integer accuracy of ``arch``; a failing stage leaves its error."""
    res: dict = {"train_seconds": 0.0}
    torch.manual_seed(a.seed)
    full = models.build(arch, in_channels=1, num_classes=10)
    res["weights"] = bz.size_report(full)["weights"]
    stage = "train"
    try:
        t0 = time.time()
        fit(full, full.parameters(), *train, FitConfig(epochs=a.epochs, lr=a.lr, limit=a.limit, seed=a.seed))
        res["train_seconds"] += time.time() - t0
        res["full"] = evaluate(full, *test)
        print(f"{arch}: Full {res['full'] * 100:.2f}%", flush=True)
        stage = "refine"
        refined = copy.deepcopy(full)
        res["binarized_layers"] = len(bz.binarize_model(refined, "kxk"))
        t0 = time.time()
        fit(refined, bz.refine_parameters(refined), *train,
            FitConfig(epochs=a.refine_epochs, lr=a.refine_lr, weight_decay=5e-5, limit=a.limit, seed=a.seed))
        res["train_seconds"] += time.time() - t0
        res["refined_b"] = evaluate(refined, *test)
        print(f"{arch}: Refined-B {res['refined_b'] * 100:.2f}%", flush=True)
        stage = "quantize"
        t0 = time.time()
        graph = quantize.quantize(refined, calib, meta={"arch": arch})
        res["quantize_seconds"] = time.time() - t0
        stage = "integer"
        t0 = time.time()
        ix, iy = test[0][:a.test_limit], test[1][:a.test_limit]
        res["integer"] = quantize.evaluate_integer(graph, ix, iy)
        res["integer_images"] = len(iy)
        res["integer_seconds"] = time.time() - t0
        print(f"{arch}: integer {res['integer'] * 100:.2f}% on {len(iy)} images "
              f"({res['integer_seconds']:.0f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - recorded, the next network still runs
        res["error"] = {"stage": stage, "message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        print(f"{arch}: {stage} failed\n{res['error']['traceback']}", flush=True)
    return res


def main() -> None:
    ap = training_parser(__doc__, ARCHS, epochs=3, refine_epochs=2, refine_lr=0.05, limit=5000)
    ap.add_argument("--test-limit", type=int, default=None,
                    help="evaluate the integer graph on the first N test images only (default: all 10,000)")
    ap.add_argument("--calib", type=int, default=500, help="calibration images (drawn from the training set)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    root = a.data or data.DEFAULT_FMNIST
    train = data.load_fashion_mnist(root, "train")
    test = data.load_fashion_mnist(root, "test")
    calib = quantize.calibration_images("fashion-mnist", root, a.calib, a.seed)
    t_all = time.time()
    results, rows = {}, []
    pct = lambda r, k: f"{r[k] * 100:.2f}" if k in r else "—"  # noqa: E731
    for arch in a.archs:
        print(f"== {arch}", flush=True)
        res = results[arch] = run_network(arch, a, train, test, calib)
        err = f" ({res['error']['stage']} failed: {res['error']['message']})" if "error" in res else ""
        rows.append([arch + err, f"{res['weights']:,}", pct(res, "full"), pct(res, "refined_b"),
                     pct(res, "integer"), f"{res['train_seconds']:.0f}"])
    n_int = {r.get("integer_images") for r in results.values()} - {None}
    int_set = (f"the first {min(n_int):,} test images" if n_int and min(n_int) < len(test[1])
               else f"the full test set ({len(test[1]):,} images)")
    cmd = "python bench/bench_zoo_accuracy.py " + " ".join(sys.argv[1:])
    results_io.write(
        "zoo_accuracy", {"results": results, "config": vars(a), "wall_seconds": time.time() - t_all},
        ["network", "weights", "Full %", "Refined-B %", "integer %", "train s"], rows, command=cmd,
        notes=f"Fashion-MNIST, a short training run (not converged): full-precision training {a.epochs} epochs "
              f"(lr {a.lr}, cosine, augmentation) on the first {a.limit or len(train[1]):,} training images; "
              f"Refined-B = every k×k convolution binarized (depthwise branches included), then "
              f"{a.refine_epochs} refine epoch(s) (lr {a.refine_lr}, patterns frozen) on the same images; "
              f"integer = the Refined-B model calibrated on {a.calib} training images and lowered to its "
              f"IntGraph, run by sephw.reference on raw uint8 pixels. Full and Refined-B: the full test set "
              f"(10,000 images); integer: {int_set}. weights = conv + FC weights (sephw info). "
              f"train s = full training + refine, on one thread.")
    print((results_io.RESULTS / "zoo_accuracy.md").read_text())


if __name__ == "__main__":
    main()
