"""The one sephw checkpoint format (``.pt``).

A checkpoint is a plain dict of tensors, strings, numbers, lists and dicts, written by
``torch.save`` and read with ``torch.load(..., weights_only=True)`` (:func:`read_torch_file`): loading can never run
code from the file (a pickled object that is not plain data is refused by torch's
restricted unpickler before it is built).

Keys::

    format          "sephw-checkpoint"
    schema          int, SCHEMA_VERSION of the writer
    arch            architecture name (sephw.models.ARCHITECTURES)
    arch_kwargs     dict of constructor keyword arguments
    state           model state_dict (includes binarization / quantization state:
                    each conv's ``mode``, ``pattern``, ``alpha``, ``w_int8``, ``w_scale``)
    binarize_scope  None or the scope string used by ``sephw binarize``
    intgraph        None, or the serialized integer IR written by ``sephw quantize``
    metadata        dict: command lines (``history``), dataset, accuracy, ...
"""
from __future__ import annotations

import inspect
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from . import models

FORMAT = "sephw-checkpoint"
SCHEMA_VERSION = 1


class CheckpointError(Exception):
    """A file that is not a loadable sephw checkpoint (or a build directory's torch file that
    is not what it should be); the one-line message names the path and says what is wrong."""


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint"):
    """The plain data of a file ``torch.save`` wrote, loaded with ``weights_only=True`` (never
    code). ``what`` names the file's kind in the errors: a missing file, one that is not a torch
    zip archive (truncated, corrupt or another format), one that holds pickled objects other
    than plain data, or one torch cannot read all raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise CheckpointError(f"{path}: not a {what}: not the zip archive torch.save writes ({size} bytes: "
                              f"truncated, corrupt or another format)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: the file holds objects other than plain tensors and data "
            f"(a {what} may never carry code); torch said: {str(e).splitlines()[0]}") from None
    except Exception as e:  # torch raises many types on a damaged zip (KeyError, RuntimeError, ...)
        msg = " ".join(str(e).split()) or type(e).__name__
        raise CheckpointError(f"{path}: not a readable torch file (truncated or corrupt?): {msg}") from None


def save(path: str | os.PathLike, model: nn.Module, arch: str, arch_kwargs: dict,
         metadata: dict | None = None, binarize_scope: str | None = None,
         intgraph: dict | None = None) -> None:
    """Write ``model`` and its provenance to ``path`` (atomically: temp file + rename)."""
    if arch not in models.ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}")
    ckpt = {
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs),
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "binarize_scope": binarize_scope,
        "intgraph": intgraph,
        "metadata": dict(metadata or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def read(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint dict without building the model."""
    path = Path(path)
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a sephw checkpoint (no format={FORMAT!r} marker)")
    schema = ckpt.get("schema")
    if not isinstance(schema, int):
        raise CheckpointError(f"{path}: sephw checkpoint without a schema version")
    if schema > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: written with checkpoint schema {schema}, this sephw reads up to "
            f"{SCHEMA_VERSION}; upgrade sephw")
    for key in ("arch", "arch_kwargs", "state"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: sephw checkpoint lacks {key!r}")
    if ckpt["arch"] not in models.ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {ckpt['arch']!r}")
    kw = ckpt["arch_kwargs"]
    if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
        raise CheckpointError(f"{path}: arch_kwargs must be a dict of keyword arguments, not {type(kw).__name__}")
    takes = inspect.signature(models.ARCHITECTURES[ckpt["arch"]]).parameters
    unknown = sorted(set(kw) - set(takes))
    if unknown:
        raise CheckpointError(f"{path}: arch_kwargs has {', '.join(map(repr, unknown))}, which architecture "
                              f"{ckpt['arch']} does not take (it takes {', '.join(takes) or 'nothing'})")
    st = ckpt["state"]
    if not isinstance(st, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in st.items()):
        raise CheckpointError(f"{path}: state must be a dict of named tensors (a state_dict), "
                              f"not {type(st).__name__}" + (" with other values" if isinstance(st, dict) else ""))
    return ckpt


def _state_mismatch(model: nn.Module, state: dict) -> str:
    """What differs between ``model``'s state_dict and ``state``, in one line."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(want[k].shape)}" for k in want
              if k in state and state[k].shape != want[k].shape]
    parts = [f"{len(v)} {what} (first: {v[0]})" for what, v in
             (("missing keys", missing), ("unexpected keys", extra), ("tensors of another shape, file vs model", shapes))
             if v]
    return "; ".join(parts)


def load(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Build the model a checkpoint describes and load its state. Returns ``(model, ckpt)``."""
    ckpt = read(path)
    try:
        model = models.build(ckpt["arch"], **ckpt["arch_kwargs"])
    except (TypeError, ValueError) as e:   # values the architecture refuses
        raise CheckpointError(f"{path}: architecture {ckpt['arch']} refuses arch_kwargs "
                              f"{ckpt['arch_kwargs']}: {' '.join(str(e).split())}") from None
    why = _state_mismatch(model, ckpt["state"])
    if why:
        raise CheckpointError(f"{path}: state does not match architecture {ckpt['arch']} "
                              f"{ckpt['arch_kwargs']}: {why}")
    try:
        model.load_state_dict(ckpt["state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: state does not match architecture {ckpt['arch']}: "
                              f"{' '.join(str(e).split())}") from None
    model.eval()
    return model, ckpt


def load_model_or_arch(spec: str, **arch_kwargs) -> tuple[nn.Module, dict | None]:
    """``spec`` is a checkpoint path or an architecture name (then built untrained)."""
    if spec in models.ARCHITECTURES:
        return models.build(spec, **arch_kwargs), None
    if Path(spec).exists() or spec.endswith(".pt"):
        return load(spec)
    raise ValueError(f"{spec!r} is neither a checkpoint file nor an architecture "
                     f"({', '.join(sorted(models.ARCHITECTURES))})")
