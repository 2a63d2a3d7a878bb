"""Shared fixtures: tiny datasets written in the real on-disk formats."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

# One intra-op thread: the tests use tiny tensors, and a second spinning OpenMP thread only
# hurts when the two cores are shared (a simulator build, another test process).
torch.set_num_threads(1)
# Verilator speed builds at -O1 (sim.runner.speed_opt): the tests' simulations are short, so a
# top's build time decides (measured here: build + simulation of the host link's network test
# 83 s at -O1 against 99 s at -O2; the simulated-board test 42 s against 39 s).
os.environ.setdefault("SEPHW_VERILATOR_SPEED_OPT", "-O1")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts and ends on one torch thread. Code under test may set more (the
    reference bench's ``--threads 2`` did, in the worker's own process): every later torch
    test in that worker then ran its two spinning OpenMP threads against the other worker on
    two cores, 40 to 600 times slower (this file's whole-suite run: the CLI training test
    291 s against 6 s alone)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (a whole accelerator built in Verilator or synthesized, a minute
    or more each on a fresh clone) start first, spread over the workers. ``make test`` runs
    ``-n 2 --dist worksteal``, which hands each worker a contiguous share of this order and
    lets an idle worker steal from the end of another's queue: each share therefore begins
    with every n-th slow test, so no worker is left alone with the long builds at the end."""
    n = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    slow = [it for it in items if it.get_closest_marker("slow") is not None]
    light = [it for it in items if it.get_closest_marker("slow") is None]
    order, used = [], 0
    for i in range(n):
        share = (len(items) - len(order)) // (n - i)      # worksteal's first split
        mine = slow[i::n]
        take = max(0, share - len(mine))
        order += mine + light[used:used + take]
        used += take
    order += light[used:]
    assert len(order) == len(items)
    items[:] = order


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    """Write ``arr`` (uint8) as an IDX file, gzipped when ``gz``."""
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_fmnist_like(root: Path, n_train: int = 256, n_test: int = 128, seed: int = 0) -> Path:
    """A learnable 10-class 28×28 dataset in Fashion-MNIST's IDX layout: class c is a bright
    horizontal bar at row 2 + 2c on noise, so a tiny net can separate it quickly."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n, (img, lbl) in (("train", n_train, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
                                  ("test", n_test, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 230
        write_idx(root / img, x)
        write_idx(root / lbl, y)
    return root


@pytest.fixture
def fmnist_dir(tmp_path) -> Path:
    return make_fmnist_like(tmp_path / "fmnist")


# The small SEP-Net the RTL tests share: SEP-Net-small structure (random weights, width 0.25,
# 1 input channel, 8x8 input, 10 classes), compiled for arty-a7-35 on a small fixed overlay so
# the simulator builds stay short.
SMALL_ENGINE = dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1)


@pytest.fixture(scope="session")
def sepnet_build(tmp_path_factory):
    """``(IntGraph, build_dir, report)`` of the small SEP-Net on the small overlay."""
    from sephw import binarize, models, quantize
    from sephw.compiler import compile_graph
    torch.manual_seed(0)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    g = quantize.quantize(m, calib)
    d = tmp_path_factory.mktemp("sepnet_small_build")
    _, rep = compile_graph(g, "arty-a7-35", d, engine=SMALL_ENGINE)
    return g, d, rep
