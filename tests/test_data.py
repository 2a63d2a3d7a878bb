import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_idx
from sephw import data
from sephw.data import DatasetError


def test_fashion_mnist_idx_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y, gz=True)
    xi, yi = data.load_fashion_mnist(tmp_path, "test")
    assert xi.shape == (7, 1, 28, 28) and xi.dtype == torch.uint8
    assert torch.equal(xi[:, 0], torch.from_numpy(x)) and torch.equal(yi, torch.from_numpy(y.astype(np.int64)))


def test_fashion_mnist_errors_name_path_and_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        data.load_fashion_mnist(tmp_path / "nope")
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        data.load_fashion_mnist(tmp_path, "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DatasetError, match="truncated IDX header"):
        data.load_fashion_mnist(tmp_path, "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DatasetError, match="not an IDX"):
        data.load_fashion_mnist(tmp_path, "train")


@pytest.mark.skipif(not (data.Path(data.DEFAULT_FMNIST) / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_shapes():
    x, y = data.load_fashion_mnist(split="test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10


def test_cifar10_pickle_batches(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in [(f"data_batch_{i}", 3) for i in range(1, 6)] + [("test_batch", 4)]:
        d = {b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"filenames": [b"a.png"] * n}
        (tmp_path / name).write_bytes(pickle.dumps(d, protocol=2))
    x, y = data.load_cifar10(tmp_path, "train")
    assert x.shape == (15, 3, 32, 32) and y.shape == (15,)
    ref = pickle.loads((tmp_path / "data_batch_2").read_bytes())[b"data"][0].reshape(3, 32, 32)
    assert torch.equal(x[3], torch.from_numpy(ref))
    xt, _ = data.load_cifar10(tmp_path, "test")
    assert xt.shape == (4, 3, 32, 32)


def test_cifar10_refuses_code_and_reports_missing(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DatasetError, match="refusing"):
        data.load_cifar10(tmp_path, "test")
    with pytest.raises(DatasetError, match="missing data_batch_1"):
        data.load_cifar10(tmp_path, "train")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("cat", "dog"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)).save(tmp_path / "train" / cls / f"{i}.png")
    (tmp_path / "train" / "dog" / "README.txt").write_text("not an image")
    x, y, classes = data.load_image_folder(tmp_path / "train", size=32)
    assert x.shape == (4, 3, 32, 32) and classes == ["cat", "dog"] and y.tolist() == [0, 0, 1, 1]
    (tmp_path / "train" / "dog" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="bad.png"):
        data.load_image_folder(tmp_path / "train", size=32)
    with pytest.raises(DatasetError, match="no class sub-folders"):
        data.load_image_folder(tmp_path / "train" / "cat")


def test_augment_keeps_content_and_is_seeded():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    a = data.augment(x, torch.Generator().manual_seed(5), pad=1)
    b = data.augment(x, torch.Generator().manual_seed(5), pad=1)
    assert torch.equal(a, b) and a.shape == x.shape
