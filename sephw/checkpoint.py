"""The one sephw checkpoint format (``.pt``).

A checkpoint is a plain dict of tensors, strings, numbers, lists and dicts, written by
``torch.save`` and read with ``torch.load(..., weights_only=True)``: loading can never run
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

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from . import models

FORMAT = "sephw-checkpoint"
SCHEMA_VERSION = 1


class CheckpointError(Exception):
    """A file that is not a loadable sephw checkpoint; the message says why and names the path."""


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
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: the file holds objects other than plain tensors and data "
            f"(a checkpoint may never carry code); torch said: {str(e).splitlines()[0]}") from None
    except Exception as e:  # torch raises many types on a damaged zip (KeyError, RuntimeError, ...)
        raise CheckpointError(f"{path}: not a readable torch file (truncated or corrupt?): {e}") from None
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
    return ckpt


def load(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Build the model a checkpoint describes and load its state. Returns ``(model, ckpt)``."""
    ckpt = read(path)
    model = models.build(ckpt["arch"], **ckpt["arch_kwargs"])
    try:
        model.load_state_dict(ckpt["state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: state does not match architecture {ckpt['arch']}: {e}") from None
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
