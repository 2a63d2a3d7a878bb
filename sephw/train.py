"""Training, binarization, refine and evaluation (the ``sephw train / binarize / refine /
eval`` commands).

Determinism: the shuffling and augmentation of epoch ``e`` come from generators seeded with
``(seed, e)``, so a run resumed after epoch ``e`` continues exactly as an uninterrupted one.
Resume state (model, optimizer, epoch) is written after every epoch to ``OUT.resume``.

Scale-out: under ``torchrun --nproc_per_node=N -m sephw train ...`` the model is wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA); each rank trains on its shard of the
epoch's permutation and rank 0 writes the checkpoint.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import binarize as bz
from . import checkpoint, data, models


@dataclass
class FitConfig:
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 128
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 0
    augment: bool = True
    limit: int | None = None  # use only the first N training images (tests, smoke runs)
    kd_weight: float = 0.0    # distillation: weight of the teacher term (0: plain cross-entropy)
    kd_temp: float = 4.0      # distillation temperature


def distillation_loss(out: torch.Tensor, teacher_out: torch.Tensor, y: torch.Tensor, weight: float,
                      temp: float) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): ``(1 - weight) * CE(out, y) + weight * T^2 *
    KL(softmax(teacher/T) || softmax(out/T))``; the ``T^2`` keeps the soft term's gradient scale
    independent of the temperature."""
    ce = F.cross_entropy(out, y)
    if weight == 0:
        return ce
    kl = F.kl_div(F.log_softmax(out / temp, 1), F.log_softmax(teacher_out / temp, 1), log_target=True,
                  reduction="batchmean")
    return (1 - weight) * ce + weight * temp * temp * kl


def dist_info() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, (0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _init_dist(world: int) -> None:
    import torch.distributed as dist
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
             progress: bool = False) -> float:
    """Top-1 accuracy (fraction) of ``model`` on uint8 ``images``."""
    model.eval()
    correct = 0
    it = range(0, len(images), batch_size)
    for i in tqdm(it, desc="eval", leave=False, disable=not progress or None):
        out = model(data.to_model_input(images[i:i + batch_size]))
        correct += int((out.argmax(1) == labels[i:i + batch_size]).sum())
    return correct / max(1, len(images))


def fit(model: nn.Module, params, train_x: torch.Tensor, train_y: torch.Tensor, cfg: FitConfig,
        resume_path: Path | None = None, test: tuple[torch.Tensor, torch.Tensor] | None = None,
        log=print, resume: bool = True, teacher: nn.Module | None = None) -> list[dict]:
    """SGD (momentum, cosine learning rate per step) over ``params`` for ``cfg.epochs``.

    With ``teacher`` (a model in eval mode, no gradients) and ``cfg.kd_weight > 0`` the loss is
    :func:`distillation_loss` against the teacher's logits on the same augmented batch.

    Rank 0 writes its state to ``resume_path`` after every epoch; the state is read back only
    when ``resume`` is true (``--resume``), so a stale file never changes a fresh run.

    Returns one dict per epoch: ``epoch, loss, train_acc, test_acc, seconds``.
    """
    rank, world = dist_info()
    _init_dist(world)
    params = list(params)
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=True)
    if cfg.limit:
        train_x, train_y = train_x[:cfg.limit], train_y[:cfg.limit]
    n = len(train_x)
    per_rank = cfg.batch_size // world if world > 1 else cfg.batch_size
    steps_per_epoch = math.ceil(n / (per_rank * world))
    total_steps = cfg.epochs * steps_per_epoch
    start_epoch, history = 0, []
    if resume and resume_path is not None and resume_path.is_file():
        st = checkpoint.read_torch_file(resume_path, "training resume state")
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            start_epoch, history = int(st["epoch"]), list(st["history"])
        except (TypeError, KeyError, ValueError, RuntimeError) as e:
            msg = " ".join(str(e).split())[:200] or type(e).__name__
            raise checkpoint.CheckpointError(
                f"{resume_path}: not the resume state of this training run ({msg}); delete it to start "
                f"over") from None
        log(f"resuming from {resume_path} after epoch {start_epoch}")
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(cfg.seed * 1000003 + epoch)
        perm = torch.randperm(n, generator=g)[rank::world]
        net.train()
        tot_loss, tot_correct, seen = 0.0, 0, 0
        bar = tqdm(range(0, len(perm), per_rank), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=(rank != 0) or None, file=sys.stderr)
        for bi, i in enumerate(bar):
            step = epoch * steps_per_epoch + bi
            for group in opt.param_groups:
                group["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total_steps))
            idx = perm[i:i + per_rank]
            xb = train_x[idx]
            if cfg.augment:
                xb = data.augment(xb, g, pad=max(1, xb.shape[-1] // 14))
            x = data.to_model_input(xb)
            y = train_y[idx]
            out = net(x)
            if teacher is not None and cfg.kd_weight > 0:
                with torch.no_grad():
                    t_out = teacher(x)
                loss = distillation_loss(out, t_out, y, cfg.kd_weight, cfg.kd_temp)
            else:
                loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(y)
            tot_correct += int((out.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{tot_loss / seen:.4f}")
        rec = {"epoch": epoch + 1, "loss": tot_loss / max(1, seen), "train_acc": tot_correct / max(1, seen),
               "seconds": time.time() - t0}
        if rank == 0:
            if test is not None:
                rec["test_acc"] = evaluate(model, *test)
            history.append(rec)
            extra = f"  test {rec['test_acc'] * 100:.2f}%" if "test_acc" in rec else ""
            log(f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {rec['loss']:.4f}  train {rec['train_acc'] * 100:.2f}%"
                f"{extra}  lr {opt.param_groups[0]['lr']:.4g}  {rec['seconds']:.0f}s")
            if resume_path is not None:
                tmp = resume_path.with_name(resume_path.name + ".tmp")
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "epoch": epoch + 1, "history": history}, tmp)
                os.replace(tmp, resume_path)
        if world > 1:
            import torch.distributed as dist
            dist.barrier()
    return history


def _dataset_shape(dataset: str, images: torch.Tensor, labels: torch.Tensor) -> dict:
    return {"in_channels": int(images.shape[1]), "num_classes": int(labels.max()) + 1}


COMMAND: list[str] | None = None  # set by sephw.cli.main to the argv it parsed


def command_line() -> str:
    """The sephw command being run, as typed (for checkpoint metadata)."""
    import shlex
    args = COMMAND if COMMAND is not None else sys.argv[1:]
    return " ".join(["sephw"] + [shlex.quote(a) for a in args])


def run_train(arch: str, arch_kwargs: dict, dataset: str, root: str | None, out: Path, cfg: FitConfig,
              resume: bool = False, log=print) -> dict:
    """``sephw train``: train ``arch`` from scratch at full precision; returns the metadata written."""
    torch.manual_seed(cfg.seed)
    tx, ty = data.load(dataset, "train", root)
    vx, vy = data.load(dataset, "test", root)
    kwargs = {**_dataset_shape(dataset, tx, ty), **arch_kwargs}
    model = models.build(arch, **kwargs)
    rank, _ = dist_info()
    state = out.with_name(out.name + ".resume")
    hist = fit(model, model.parameters(), tx, ty, cfg, resume_path=state if resume or rank == 0 else None,
               test=(vx, vy), log=log, resume=resume)
    meta = {}
    if rank == 0:
        acc = evaluate(model, vx, vy)
        meta = {"history": [command_line()], "dataset": dataset, "stage": "full",
                "accuracy": {"full": acc}, "epochs": hist, "seed": cfg.seed}
        checkpoint.save(out, model, arch, kwargs, meta)
        state.unlink(missing_ok=True)  # the run is complete: nothing left to resume
        log(f"wrote {out}: test accuracy {acc * 100:.2f}%")
    return meta


def run_binarize(src: Path, out: Path, scope: str, dataset: str | None, root: str | None, log=print) -> dict:
    """``sephw binarize``: Eq. 1 on the chosen kernels, evaluate (BiPattern), save."""
    model, ck = checkpoint.load(src)
    names = bz.binarize_model(model, scope)
    meta = dict(ck["metadata"])
    meta["history"] = list(meta.get("history", [])) + [command_line()]
    meta["stage"] = "binarized"
    ds = dataset or meta.get("dataset")
    if ds:
        vx, vy = data.load(ds, "test", root)
        acc = evaluate(model, vx, vy)
        meta.setdefault("accuracy", {})
        meta["accuracy"] = {**meta["accuracy"], "bipattern": acc}
        log(f"binarized {len(names)} convolutions (scope {scope}); BiPattern test accuracy {acc * 100:.2f}%")
    checkpoint.save(out, model, ck["arch"], ck["arch_kwargs"], meta, binarize_scope=scope)
    return meta


def run_refine(src: Path, out: Path, dataset: str | None, root: str | None, cfg: FitConfig,
               resume: bool = False, log=print, teacher: Path | None = None) -> dict:
    """``sephw refine``: fine-tune alpha, non-binarized weights and BN with the patterns frozen;
    with ``teacher`` (a checkpoint, usually the full-precision model the patterns came from)
    the loss distills its logits (``cfg.kd_weight``, ``cfg.kd_temp``)."""
    torch.manual_seed(cfg.seed)
    model, ck = checkpoint.load(src)
    if not bz.binarized_scope(model):
        raise ValueError(f"{src}: no binarized convolution to refine (run sephw binarize first)")
    meta = dict(ck["metadata"])
    ds = dataset or meta.get("dataset")
    if not ds:
        raise ValueError("refine needs --dataset (the checkpoint does not name one)")
    tx, ty = data.load(ds, "train", root)
    vx, vy = data.load(ds, "test", root)
    rank, _ = dist_info()
    state = out.with_name(out.name + ".resume")
    tmodel = None
    if teacher is not None:
        tmodel, _ = checkpoint.load(teacher)
        tmodel.eval()
        for p_ in tmodel.parameters():
            p_.requires_grad_(False)
        if cfg.kd_weight <= 0:
            raise ValueError("--teacher needs --kd-weight > 0")
        log(f"distilling from {teacher} (weight {cfg.kd_weight}, temperature {cfg.kd_temp})")
    hist = fit(model, bz.refine_parameters(model), tx, ty, cfg,
               resume_path=state if resume or rank == 0 else None, test=(vx, vy), log=log, resume=resume,
               teacher=tmodel)
    if rank == 0:
        acc = evaluate(model, vx, vy)
        meta["history"] = list(meta.get("history", [])) + [command_line()]
        meta["stage"] = "refined"
        meta["accuracy"] = {**meta.get("accuracy", {}), "refined": acc}
        meta["refine_epochs"] = hist
        checkpoint.save(out, model, ck["arch"], ck["arch_kwargs"], meta, binarize_scope=ck.get("binarize_scope"))
        state.unlink(missing_ok=True)  # the run is complete: nothing left to resume
        log(f"wrote {out}: refined test accuracy {acc * 100:.2f}%")
    return meta
