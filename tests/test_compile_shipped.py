"""The shipped Fashion-MNIST model compiles for every listed board, and the full-size
224×224 SEP-Net-small fails on the Arty A7-35 with the clear not-fit error."""
from pathlib import Path

import pytest
import torch

from sephw import binarize, models, quantize
from sephw.compiler import CompileError, compile_graph

SHIPPED_Q = Path(__file__).resolve().parent.parent / "models" / "sepnet_fmnist_q.pt"


@pytest.mark.parametrize("board", ["arty-a7", "arty-a7-100", "ulx3s-85f"])
def test_shipped_model_compiles(board, tmp_path):
    graph = quantize.load_graph(SHIPPED_Q)
    ir, rep = compile_graph(graph, board, tmp_path / "build")
    assert rep["onchip_bytes"] <= rep["onchip_budget_bytes"] <= 10 * 2 ** 20
    assert rep["cycles_per_inference"] > 0 and rep["fps"] == pytest.approx(rep["clock_hz"] / rep["cycles_per_inference"])
    for f in ("program.bin", "patterns.bin", "weights.bin", "params.bin", "tensors.bin", "manifest.json",
              "schedule.yaml", "report.md", "report.json"):
        assert (tmp_path / "build" / f).stat().st_size > 0, f


@pytest.mark.slow
def test_full_size_sepnet_small_does_not_fit_arty_a7():
    torch.manual_seed(0)
    m = models.build("sepnet-small").eval()          # 224×224 RGB, 1000 classes: 1,362,368 weights
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    graph = quantize.quantize(m, calib)
    with pytest.raises(CompileError) as e:
        compile_graph(graph, "arty-a7")
    msg = str(e.value)
    assert "does not fit arty-a7-35" in msg and "available 204800 bytes" in msg
    needed = int(msg.split("needs ")[1].split(" bytes")[0])
    assert needed > 204800
    assert "largest layer buffer:" in msg
