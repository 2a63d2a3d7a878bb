"""bench/bench_reference.py end to end on a random-weight model and 20 test images (the
numbers are meaningless; the test checks the script runs and its outputs agree)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from sephw import binarize, checkpoint, data, models, quantize

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not Path(data.DEFAULT_FMNIST).is_dir(), reason="Fashion-MNIST not installed")
def test_bench_reference_runs(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_reference
    torch.manual_seed(0)
    kw = dict(in_channels=1, num_classes=10, stem="small", width=0.25)
    model = models.build("sepnet-small", **kw).eval()
    binarize.binarize_model(model, "kxk")
    x, _ = data.load_fashion_mnist(split="train")
    graph = quantize.quantize(model, x[:16])
    q = tmp_path / "q.pt"
    checkpoint.save(q, model, "sepnet-small", kw, {"dataset": "fashion-mnist"}, "kxk", graph.to_dict())
    out = tmp_path / "res"
    assert bench_reference.main([str(q), "--limit", "20", "--out-dir", str(out), "--name", "r",
                                 "--threads", "1"]) == 0
    res = json.loads((out / "r.json").read_text())
    assert res["images"] == 20 and res["intgraph_nodes"] == len(graph.nodes)
    acc = res["accuracy"]
    assert 0 <= acc["integer_reference"] <= 100 and acc["plain_float"] is None
    assert res["argmax_agreement"]["integer_vs_fake_quant"] >= 90.0
    assert "| integer reference (bit-exact IntGraph) |" in (out / "r.md").read_text()
