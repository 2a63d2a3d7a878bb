"""Datasets: Fashion-MNIST (IDX files), CIFAR-10 (python pickle batches), ImageNet-style
class folders. Every loader returns ``(images, labels)``: images a uint8 tensor
(N, C, H, W) of raw pixels, labels int64 (N,). Models see ``images / 255`` (see
:func:`to_model_input`); the integer pipeline sees the raw uint8 pixels.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

DEFAULT_FMNIST = "/usr/share/datasets/fashion-mnist"
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm"}


class DatasetError(Exception):
    """A missing or malformed dataset; the message names the path and what was expected."""


def _open_maybe_gz(root: Path, stem: str) -> tuple[Path, bytes]:
    for name in (stem, stem + ".gz"):
        p = root / name
        if p.is_file():
            raw = p.read_bytes()
            if name.endswith(".gz"):
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError) as e:
                    raise DatasetError(f"{p}: corrupt gzip file ({e})") from None
            return p, raw
    raise DatasetError(f"{root}: missing {stem} (or {stem}.gz); a Fashion-MNIST folder holds "
                       + ", ".join(f"{a}[.gz], {b}[.gz]" for a, b in FMNIST_FILES.values()))


def read_idx(path: Path, raw: bytes) -> np.ndarray:
    """Parse an IDX file (big-endian header: 0x0000, type 0x08 = uint8, ndim, dims)."""
    if len(raw) < 4:
        raise DatasetError(f"{path}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise DatasetError(f"{path}: not an IDX uint8 file (magic {raw[:4].hex()}, expected 0000 08 nn)")
    hdr = 4 + 4 * ndim
    if len(raw) < hdr:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:hdr])
    n = int(np.prod(dims)) if dims else 0
    if len(raw) - hdr != n:
        raise DatasetError(f"{path}: IDX header says {dims} = {n} bytes, file has {len(raw) - hdr}")
    return np.frombuffer(raw, dtype=np.uint8, offset=hdr).reshape(dims)


def load_fashion_mnist(root: str | Path = DEFAULT_FMNIST, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST from its four IDX files (gzipped or not) in ``root``.

    Returns images uint8 (N, 1, 28, 28) and labels int64 (N,).
    """
    if split not in FMNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: Fashion-MNIST folder not found (on Debian: apt-get install "
                           f"dataset-fashion-mnist, or pass --data PATH)")
    img_stem, lbl_stem = FMNIST_FILES[split]
    ip, iraw = _open_maybe_gz(root, img_stem)
    lp, lraw = _open_maybe_gz(root, lbl_stem)
    images = read_idx(ip, iraw)
    labels = read_idx(lp, lraw)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{ip}, {lp}: expected images (N, H, W) and labels (N,), got "
                           f"{images.shape} and {labels.shape}")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lp}: labels must be 0..9, found {int(labels.max())}")
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickled dicts of numpy arrays; allow exactly what that needs."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def load_cifar10(root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 'python version' batches (``data_batch_1..5``, ``test_batch``) in ``root``.

    Returns images uint8 (N, 3, 32, 32) and labels int64 (N,).
    """
    if split not in CIFAR_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    xs, ys = [], []
    for name in CIFAR_FILES[split]:
        p = root / name
        if not p.is_file():
            raise DatasetError(f"{root}: missing {name}; a CIFAR-10 python folder holds "
                               f"{', '.join(CIFAR_FILES['train'] + CIFAR_FILES['test'])}")
        try:
            d = _NumpyOnlyUnpickler(io.BytesIO(p.read_bytes()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise DatasetError(f"{p}: not a CIFAR-10 pickle batch ({e})") from None
        if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
            raise DatasetError(f"{p}: expected a dict with b'data' and b'labels'")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(d[b"labels"]):
            raise DatasetError(f"{p}: data must be (N, 3072) uint8 with N labels, got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[b"labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def load_image_folder(root: str | Path, size: int = 224, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """ImageNet-style folder: ``root/<class>/<image>``; classes sorted by name.

    Every image is converted to ``channels`` (3: RGB, 1: grayscale), resized so its short
    side is ``size`` and center-cropped to ``size``×``size``. Returns (images uint8
    (N, C, size, size), labels int64, class names).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found (expected root/<class>/<image files>)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders (expected root/<class>/<image files>)")
    xs, ys = [], []
    for ci, cname in enumerate(classes):
        for f in sorted((root / cname).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB" if channels == 3 else "L")
                    w, h = im.size
                    scale = size / min(w, h)
                    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
                    w, h = im.size
                    left, top = (w - size) // 2, (h - size) // 2
                    im = im.crop((left, top, left + size, top + size))
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise DatasetError(f"{f}: unreadable image ({e})") from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            xs.append(arr)
            ys.append(ci)
    if not xs:
        raise DatasetError(f"{root}: class folders hold no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64), classes


DATASETS = ("fashion-mnist", "cifar10", "imagefolder")


def load(dataset: str, split: str, root: str | None = None, size: int = 224):
    """Dispatch to a loader by name; returns ``(images uint8, labels int64)``."""
    if dataset == "fashion-mnist":
        return load_fashion_mnist(root or DEFAULT_FMNIST, split)
    if dataset == "cifar10":
        if not root:
            raise DatasetError("cifar10 needs --data PATH (the cifar-10-batches-py folder)")
        return load_cifar10(root, split)
    if dataset == "imagefolder":
        if not root:
            raise DatasetError("imagefolder needs --data PATH (class sub-folders, or train/ and val/ or test/ "
                               "holding them)")
        sub = Path(root) / ("train" if split == "train" else "val")
        if split != "train" and not sub.is_dir():
            sub = Path(root) / "test"
        if not sub.is_dir():        # the class folders right in root: one split for all
            sub = Path(root)
        x, y, _ = load_image_folder(sub, size)
        return x, y
    raise ValueError(f"unknown dataset {dataset!r}; supported: {', '.join(DATASETS)}")


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> the float model's input, ``pixels / 255`` (no mean/std: see docs/numerics.md)."""
    return images.float().div_(255.0)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Random crop (zero-pad ``pad`` pixels, crop back) and horizontal flip on a uint8/float batch."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        out[mask] = out[mask].flip(3)
    return out
