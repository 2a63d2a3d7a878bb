"""The shipped default model: Full vs Refined-B accuracy on the Fashion-MNIST test set.

Goal (issue 2): Refined-B >= 91 % and within 1 point of Full.
Run: .venv/bin/python bench/bench_shipped.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

from sephw import checkpoint, data  # noqa: E402
from sephw.binarize import size_report  # noqa: E402
from sephw.train import evaluate  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> None:
    vx, vy = data.load_fashion_mnist(split="test")
    out, rows = {}, []
    for label, name in (("Full (R)", "sepnet_fmnist_full.pt"), ("Refined-B (shipped)", "sepnet_fmnist.pt")):
        model, ck = checkpoint.load(MODELS / name)
        acc = evaluate(model, vx, vy)
        size = size_report(model)
        out[name] = {"accuracy": acc, "size": size, "history": ck["metadata"].get("history", []),
                     "file_bytes": (MODELS / name).stat().st_size}
        rows.append([label, name, f"{acc * 100:.2f}", f"{size['weights']:,}", f"{size['bytes_B']:,}",
                     f"{(MODELS / name).stat().st_size / 2**20:.2f}"])
    full = out["sepnet_fmnist_full.pt"]["accuracy"]
    ref = out["sepnet_fmnist.pt"]["accuracy"]
    goal = {"refined_ge_91": ref >= 0.91, "within_1_point": full - ref <= 0.01, "gap_points": (full - ref) * 100}
    results_io.write("shipped_model", {"models": out, "goal": goal},
                     ["model", "file", "test accuracy %", "weights", "B bytes", "checkpoint MiB"], rows,
                     command="python bench/bench_shipped.py",
                     notes=f"Fashion-MNIST test set, 10,000 images. Goal Refined-B >= 91 %: "
                           f"{'met' if goal['refined_ge_91'] else 'NOT met'}; within 1 point of Full "
                           f"(gap {goal['gap_points']:.2f} points): {'met' if goal['within_1_point'] else 'NOT met'}.")
    print((results_io.RESULTS / "shipped_model.md").read_text())


if __name__ == "__main__":
    main()
