"""The shipped Fashion-MNIST model compiles for every listed board, and the full-size
224×224 SEP-Net-small fits the Arty A7-35 with the board's DRAM."""
from pathlib import Path

import pytest
import torch

import boards

from sephw import binarize, models, quantize
from sephw.compiler import compile_graph

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
    # on the arty-a7's 8-lane overlay its grouped pattern layers (conv4: 4 groups of 8
    # channels, conv5: 16 of 3, the PRBs: 2) hold their pattern bits in at most 2x their size:
    # tap-major words in the slices they fill (conv5 took 7.41x in whole words before). (On the
    # 16-lane overlays a tile of conv5 runs one 8-channel group: its 432 bits take one
    # 1,600-bit slice, still 7.41x; several groups per beat would fill it.)
    if board == "arty-a7":
        grouped = {lay.node.name for lay in ir.layers for st in lay.steps for op in st.operands
                   if getattr(op, "kind", None) == "pattern" and op.groups > 1}
        rows = [r for r in rep["layers"] if r["name"] in grouped]
        assert {"features.conv4", "features.conv5"} <= {r["name"] for r in rows}
        assert all(0 < r["pattern_storage_ratio"] <= 2 for r in rows), rows


@pytest.mark.slow
def test_full_size_sepnet_small_on_arty_a7():
    """The paper's network at its real size fits the Arty A7-35T only with the board's DRAM:
    its weights stream, tensors are spilled between segments of row bands and its Program
    runs from DRAM in pages, within the block RAM. On the overlay the sizer picks for it
    (4 lanes x 8 channels, MAC 4x4; pinned here: the search over the 224x224 network takes
    37 of this test's 42 s, and bench/bench_sepnet.py --sizes 224 runs it)."""
    from sephw.compiler import pipeline
    from sephw.compiler.tile_layers import TileLayers
    torch.manual_seed(0)
    m = models.build("sepnet-small").eval()          # 224×224 RGB, 1000 classes: 1,362,368 weights
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    graph = quantize.quantize(m, calib)
    ir = pipeline.compile_ir(graph, boards.get("arty-a7"), until=TileLayers, record=False,
                             engine=dict(lanes=4, pe_cin=8, mac_cols=4, packed=False, pp_units=1))
    assert ir.streamed and ir.spills and ir.program_page and ir.bands > 1
    assert sum(ir.onchip.values()) <= ir.budget == 204800
    assert ir.memory_blocks.block_ram <= 0.9 * 50
    # (on chip alone it does not fit: the not-fit error's test is test_compiler.py's, on a
    # smaller model that needs the same DRAM to fit arty-a7-35)
