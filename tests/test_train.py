import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sephw import checkpoint, models
from sephw.cli import main
from sephw.train import FitConfig, fit

REPO = Path(__file__).resolve().parent.parent
TINY = ["--arch", "sepnet-small", "--width", "0.25", "--stem", "small"]


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_fit_is_deterministic_and_resume_equals_uninterrupted(tmp_path):
    x, y = _data()
    cfg = FitConfig(epochs=2, lr=0.05, batch_size=32, seed=7)

    def fresh():
        torch.manual_seed(1)
        return models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)

    a = fresh()
    fit(a, a.parameters(), x, y, cfg, log=lambda *_: None)
    b = fresh()
    fit(b, b.parameters(), x, y, cfg, log=lambda *_: None)
    # interrupted after epoch 1, then resumed
    c = fresh()
    state = tmp_path / "c.resume"
    fit(c, c.parameters(), x, y, FitConfig(epochs=2, lr=0.05, batch_size=32, seed=7, limit=None),
        resume_path=state, log=lambda *_: None)
    d = fresh()
    st = torch.load(state, weights_only=True)
    st["epoch"] = 1
    st["history"] = st["history"][:1]
    # rebuild the after-epoch-1 state by running one epoch with a 2-epoch schedule
    e = fresh()
    part = tmp_path / "e.resume"

    class Stop(Exception):
        pass

    def stop_after_first(msg):
        if msg.startswith("epoch   1/"):
            raise Stop
    try:
        fit(e, e.parameters(), x, y, cfg, resume_path=part, log=stop_after_first)
    except Stop:
        pass
    fit(d, d.parameters(), x, y, cfg, resume_path=part, log=lambda *_: None)
    for (n, pa), pb, pd in zip(a.state_dict().items(), b.state_dict().values(), d.state_dict().values()):
        assert torch.equal(pa, pb), n
        assert torch.equal(pa, pd), n


def test_cli_train_binarize_refine_eval_info(fmnist_dir, tmp_path, capsys):
    full, binz, ref = tmp_path / "full.pt", tmp_path / "bin.pt", tmp_path / "ref.pt"
    assert main(["train", *TINY, "--dataset", "fashion-mnist", "--data", str(fmnist_dir),
                 "--epochs", "6", "--lr", "0.05", "--batch-size", "32", "--no-augment", "-o", str(full)]) == 0
    assert not (tmp_path / "full.pt.resume").exists()  # removed once the run completed
    assert main(["binarize", str(full), "--data", str(fmnist_dir), "-o", str(binz)]) == 0
    assert main(["refine", str(binz), "--data", str(fmnist_dir), "--epochs", "1", "--batch-size", "32",
                 "-o", str(ref)]) == 0
    capsys.readouterr()
    assert main(["eval", str(ref), "--data", str(fmnist_dir), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    model, ck = checkpoint.load(ref)
    assert ev["images"] == 128 and abs(ev["accuracy"] - ck["metadata"]["accuracy"]["refined"]) < 1e-9
    assert ck["metadata"]["accuracy"]["full"] > 0.5  # the bar dataset is easy: learning happened
    hist = ck["metadata"]["history"]
    assert len(hist) == 3 and hist[0].startswith("sephw train") and "binarize" in hist[1] and "refine" in hist[2]
    assert main(["info", str(ref), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["weights"] == 60_944 and info["effective_params"] < info["weights"]
    # refine distilling from the full model: runs, records itself, keeps the patterns frozen
    kd = tmp_path / "kd.pt"
    assert main(["refine", str(binz), "--data", str(fmnist_dir), "--epochs", "1", "--batch-size", "32",
                 "--teacher", str(full), "--kd-weight", "0.5", "-o", str(kd)]) == 0
    assert "--teacher" in checkpoint.load(kd)[1]["metadata"]["history"][-1]
    bs, ks = checkpoint.load(binz)[0].state_dict(), checkpoint.load(kd)[0].state_dict()
    pats = [k for k in bs if k.endswith(".pattern")]
    assert pats and all(torch.equal(bs[k], ks[k]) for k in pats)


def test_distillation_loss():
    from sephw.train import distillation_loss
    g = torch.Generator().manual_seed(3)
    out, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    ce = torch.nn.functional.cross_entropy(out, y)
    assert torch.equal(distillation_loss(out, t, y, 0.0, 4.0), ce)
    # a student equal to its teacher: the soft term is zero
    assert torch.allclose(distillation_loss(out, out, y, 0.7, 4.0), 0.3 * ce, atol=1e-6)
    # otherwise positive, scaled by T^2
    kl = distillation_loss(out, t, y, 1.0, 2.0)
    ref = (torch.softmax(t / 2, 1) * (torch.log_softmax(t / 2, 1) - torch.log_softmax(out / 2, 1))).sum(1).mean() * 4
    assert torch.allclose(kl, ref, atol=1e-5) and kl > 0


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["train", *TINY, "--data", str(tmp_path), "-o", str(tmp_path / "x.pt")]) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def test_info_json_counts_via_subprocess():
    out = subprocess.run([sys.executable, "-m", "sephw", "info", "sepnet-large", "--json"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["weights"] == 1_824_832


def test_torchrun_two_process_ddp_trains(fmnist_dir, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sephw", "train", *TINY, "--dataset", "fashion-mnist", "--data", str(fmnist_dir),
           "--epochs", "3", "--lr", "0.05", "--batch-size", "32", "--no-augment", "-o", str(out)]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    _, ck = checkpoint.load(out)
    eps = ck["metadata"]["epochs"]
    assert len(eps) == 3 and eps[-1]["loss"] < eps[0]["loss"]
    # each rank saw half of the 256 images per epoch: steps of 16 per rank
    assert "epoch   3/3" in r.stdout


def _one_epoch_state(tmp_path):
    """A small SEP-Net trained one epoch with its resume state written: ``(model, data, cfg,
    resume path)``."""
    x, y = _data(n=64)
    cfg = FitConfig(epochs=1, lr=0.05, batch_size=32, seed=3)
    state = tmp_path / "s.resume"
    torch.manual_seed(1)
    a = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    fit(a, a.parameters(), x, y, cfg, resume_path=state, log=lambda *_: None)
    assert state.is_file()  # a finished 1-epoch state
    return a, (x, y), cfg, state


def test_stale_resume_file_is_ignored_without_resume(tmp_path):
    a, (x, y), cfg, state = _one_epoch_state(tmp_path)
    torch.manual_seed(1)
    b = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    logs = []
    hist = fit(b, b.parameters(), x, y, cfg, resume_path=state, log=logs.append, resume=False)
    assert len(hist) == 1 and not any("resuming" in m for m in logs)  # trained, not skipped
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_bad_resume_file_is_a_clear_error(tmp_path):
    """`sephw train/refine --resume` with a resume file that is truncated, or the state of
    another model: a CheckpointError naming the file (one line, exit 2 from the CLI), not a
    torch traceback."""
    from sephw.checkpoint import CheckpointError
    a, (x, y), _, state = _one_epoch_state(tmp_path)
    other = models.build("resnet20", in_channels=1, num_classes=10)
    with pytest.raises(CheckpointError, match=r"s\.resume: not the resume state of this training run"):
        fit(other, other.parameters(), x, y, FitConfig(epochs=2, lr=0.05, batch_size=32, seed=3),
            resume_path=state, log=lambda *_: None, resume=True)
    state.write_bytes(state.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"s\.resume: not a training resume state"):
        fit(a, a.parameters(), x, y, FitConfig(epochs=2, lr=0.05, batch_size=32, seed=3),
            resume_path=state, log=lambda *_: None, resume=True)
