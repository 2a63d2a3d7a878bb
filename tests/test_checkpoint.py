import pickle

import pytest
import torch

from sephw import checkpoint, models
from sephw.binarize import binarize_model
from sephw.checkpoint import CheckpointError


def _small():
    return models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)


def test_roundtrip_keeps_binarization_state(tmp_path):
    torch.manual_seed(0)
    m = _small()
    binarize_model(m)
    p = tmp_path / "m.pt"
    checkpoint.save(p, m, "sepnet-small", {"in_channels": 1, "num_classes": 10, "stem": "small", "width": 0.25},
                    {"history": ["sephw train ..."]}, binarize_scope="kxk")
    m2, ck = checkpoint.load(p)
    x = torch.rand(2, 1, 28, 28)
    m.eval()
    assert torch.equal(m(x), m2(x))
    assert ck["binarize_scope"] == "kxk" and ck["schema"] == checkpoint.SCHEMA_VERSION
    # frozen weights stay frozen after loading
    assert not m2.features["conv1"].conv.weight.requires_grad


class _Evil:
    """Unpickling this would create a marker file (it must never run)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_with_pickled_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": "sephw-checkpoint", "schema": 1, "arch": "resnet20", "arch_kwargs": {},
                "state": {}, "payload": _Evil(marker)}, p)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(p)
    assert not marker.exists()


def test_foreign_truncated_and_newer_files(tmp_path):
    m = _small()
    good = tmp_path / "good.pt"
    checkpoint.save(good, m, "sepnet-small", {"in_channels": 1, "num_classes": 10, "stem": "small", "width": 0.25})
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated, corrupt or another format"):
        checkpoint.load(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save(m.state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a sephw checkpoint"):
        checkpoint.load(foreign)
    newer = tmp_path / "newer.pt"
    ck = torch.load(good, weights_only=True)
    ck["schema"] = checkpoint.SCHEMA_VERSION + 1
    torch.save(ck, newer)
    with pytest.raises(CheckpointError, match="upgrade sephw"):
        checkpoint.load(newer)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        checkpoint.load(text)
    with pytest.raises(CheckpointError, match="no such"):
        checkpoint.load(tmp_path / "missing.pt")
    # a plain pickle (not a torch zip) is refused too
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"format": "sephw-checkpoint"}))
    with pytest.raises(CheckpointError):
        checkpoint.load(plain)
