"""Bit-exact reference executor of an :class:`~sephw.intgraph.IntGraph`.

The golden implementation of docs/numerics.md: torch integer ops only (through
:mod:`sephw.intops`), no floating point, deterministic. The RTL and the simulated board are
checked against what :func:`run` returns.
"""
from __future__ import annotations

import torch

from . import intops
from .intgraph import (DepthwiseConcatNode, InputNode, IntGraph, PoolFCNode, SkipOperand,
                       node_inputs, node_operands)


def _acc(op, env: dict[str, torch.Tensor]) -> torch.Tensor:
    """One operand's accumulator, int32 (N, O, H, W) (exact: the validator bounds it)."""
    x = env[op.input]
    if isinstance(op, SkipOperand):
        return x
    if op.kind == "pattern":
        _check_pattern(op.weight)
    return intops.int_conv_acc32(x, op.weight, op.stride, op.padding, op.groups)


def _branch_acc(b, x: torch.Tensor) -> torch.Tensor:
    """A depthwise branch's accumulator on its channel slice ``x``."""
    if b.kind == "pattern":
        _check_pattern(b.weight)
    return intops.int_conv_acc32(x, b.weight, b.stride, b.padding, b.channels)


def _check_pattern(w: torch.Tensor) -> None:
    if not bool(((w == 1) | (w == -1)).all()):
        raise ValueError("a pattern holds only +1 and -1")


def _check_images(graph: IntGraph, images: torch.Tensor) -> torch.Tensor:
    spec = graph.input.out
    if images.dtype.is_floating_point or images.dtype == torch.bool:
        raise TypeError(f"images must be integer pixel codes (uint8), got {images.dtype}")
    if images.dim() == 3 and spec.channels == 1:
        images = images.unsqueeze(1)
    if images.dim() != 4 or tuple(images.shape[1:]) != spec.shape:
        raise ValueError(f"images of shape {tuple(images.shape)}; the graph's input is (N, {spec.channels}, "
                         f"{spec.height}, {spec.width})")
    if images.numel() and (int(images.min()) < spec.lo or int(images.max()) > spec.hi):
        raise ValueError(f"input codes outside [{spec.lo}, {spec.hi}] ({spec.bits}-bit unsigned)")
    return images


def run_batch(graph: IntGraph, images: torch.Tensor, keep: set[str] | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Execute every node on one batch. ``keep``: names of node outputs (and
    ``"<node>.acc_a"`` / ``".acc_b"`` / ``".acc"`` accumulators) to return.

    Returns ``(logits int64 (N, O), {name: int64 tensor})``.
    """
    keep = keep or set()
    last_use: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for src in node_inputs(n):
            last_use[src] = i
    env: dict[str, torch.Tensor] = {}
    kept: dict[str, torch.Tensor] = {}
    logits = None
    for i, n in enumerate(graph.nodes):
        if isinstance(n, InputNode):
            y = images.to(torch.int32)
        elif isinstance(n, PoolFCNode):
            logits = intops.pool_fc_logits(env[n.input], n.weight, n.m, n.bias)
            y = None
        else:
            rq = n.requant
            if isinstance(n, DepthwiseConcatNode):
                x = env[n.input]
                accs = [torch.cat([_branch_acc(b, x[:, b.channel_start:b.channel_start + b.channels])
                                   for b in n.branches], dim=1)]
                names = ["acc"]
            else:
                accs = [_acc(op, env) for op in node_operands(n)]
                names = ["acc_a", "acc_b"]
            for nm, a in zip(names, accs):
                if f"{n.name}.{nm}" in keep:
                    kept[f"{n.name}.{nm}"] = a.to(torch.int64)
            y = intops.requant(accs[0], rq.m_a, rq.bias, rq.shift, n.out.lo, n.out.hi,
                               acc_b=accs[1] if len(accs) > 1 else None, m_b=rq.m_b)
            del accs
            if n.name in keep:
                kept[n.name] = y
            y = y.to(torch.int32)
        if isinstance(n, InputNode) and n.name in keep:
            kept[n.name] = y.to(torch.int64)
        if y is not None:
            env[n.name] = y
        for src in node_inputs(n):  # free tensors no later node reads
            if last_use.get(src) == i:
                env.pop(src, None)
    return logits, kept


def run(graph: IntGraph, images: torch.Tensor, return_intermediates: bool | list[str] = False,
        batch_size: int = 250, progress: bool = False):
    """Run ``graph`` on raw pixel codes ``images`` (uint8 (N, C, H, W); (N, H, W) for one
    channel) and return the int64 logits (N, num_classes).

    ``return_intermediates``: False; True for every node's output; or a list of names,
    node outputs and/or accumulators ``"<node>.acc_a"``, ``"<node>.acc_b"`` (``"<node>.acc"``
    for a depthwise concat). Then returns ``(logits, {name: int64 tensor (N, C, H, W)})``.
    """
    images = _check_images(graph, images)
    if return_intermediates is True:
        keep = {n.name for n in graph.nodes if not isinstance(n, PoolFCNode)}
    elif return_intermediates:
        keep = set(return_intermediates)
        valid = set()
        for n in graph.nodes:
            valid.add(n.name)
            valid.update(f"{n.name}.{a}" for a in ("acc_a", "acc_b", "acc"))
        bad = sorted(keep - valid)
        if bad:
            raise KeyError(f"unknown intermediate(s) {bad}; names are node names, optionally "
                           f"with .acc_a / .acc_b / .acc")
    else:
        keep = set()
    outs, inter = [], {}
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="reference", unit="batch")
    for s in starts:
        logits, kept = run_batch(graph, images[s:s + batch_size], keep)
        outs.append(logits)
        for k, v in kept.items():
            inter.setdefault(k, []).append(v)
    logits = torch.cat(outs) if outs else torch.zeros(0, graph.output.weight.shape[0], dtype=torch.int64)
    if return_intermediates is False or return_intermediates == []:
        return logits
    return logits, {k: torch.cat(v) for k, v in inter.items()}


def predict(graph: IntGraph, images: torch.Tensor, **kw) -> torch.Tensor:
    """argmax of the integer logits (lowest index wins a tie), int64 (N,)."""
    return run(graph, images, **kw).argmax(dim=1)

