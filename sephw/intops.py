"""Integer primitives of the sephw numerics (docs/numerics.md is the specification).

These are the golden operations: the reference executor composes them, and the RTL
testbenches take their expected values from them. Torch integer ops only (int32/int64),
deterministic, no floating point anywhere.

Shapes: activations ``(N, C, H, W)``; weights ``(O, C // groups, k, k)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def _check_int(name: str, t: torch.Tensor) -> None:
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")


def int_conv_acc(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0,
                 groups: int = 1) -> torch.Tensor:
    """Exact integer convolution ``acc[n,o,y,x] = sum_{c,i,j} w[o,c,i,j] * x[n, g*C/G + c, y*s+i-p, x*s+j-p]``.

    Zero padding. ``x`` any integer dtype (activation codes), ``w`` int8 weights or int8
    patterns (±1). Computed with int32 im2col + matmul (callers guarantee, by the bounds of
    docs/numerics.md, that every accumulator fits int32); returns int64 (N, O, Ho, Wo).
    """
    _check_int("x", x)
    _check_int("w", w)
    n, c, h, wd = x.shape
    o, cg, k, k2 = w.shape
    if k != k2:
        raise ValueError(f"square kernels only, got {k}x{k2}")
    if c != cg * groups or o % groups:
        raise ValueError(f"shape mismatch: x has {c} channels, w {tuple(w.shape)}, groups={groups}")
    ho = (h + 2 * padding - k) // stride + 1
    wo = (wd + 2 * padding - k) // stride + 1
    xp = F.pad(x.to(torch.int32), (padding, padding, padding, padding))
    # im2col by strided views: (N, C, Ho, Wo, k, k) without any float conversion
    cols = xp.unfold(2, k, stride).unfold(3, k, stride)[:, :, :ho, :wo]
    cols = cols.reshape(n, groups, cg, ho, wo, k, k).permute(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, groups, ho * wo, cg * k * k)
    wg = w.to(torch.int32).reshape(groups, o // groups, cg * k * k)
    acc = torch.matmul(cols, wg.transpose(1, 2).unsqueeze(0))  # (N, G, HoWo, O/G)
    acc = acc.permute(0, 1, 3, 2).reshape(n, o, ho, wo)
    return acc.to(torch.int64)


def pattern_conv_acc(x: torch.Tensor, pattern: torch.Tensor, stride: int = 1, padding: int = 0,
                     groups: int = 1) -> torch.Tensor:
    """Binarized k×k convolution accumulator ``sum(±x)`` (pattern entries must be ±1)."""
    if not bool(((pattern == 1) | (pattern == -1)).all()):
        raise ValueError("a pattern holds only +1 and -1")
    return int_conv_acc(x, pattern, stride, padding, groups)


def requant(acc_a: torch.Tensor, m_a: torch.Tensor, bias: torch.Tensor, shift: torch.Tensor,
            lo: int, hi: int, acc_b: torch.Tensor | None = None,
            m_b: torch.Tensor | None = None) -> torch.Tensor:
    """The fused post-process rule, per channel (dim 1):

    ``y = clamp((acc_a*M_a + acc_b*M_b + B + 2^(S-1)) >> S, lo, hi)``

    with an arithmetic (flooring) shift, so the rounding is half up; ``2^(S-1)`` is 0 when
    ``S == 0``. ``m_a, bias, shift`` (and ``m_b``) are integer tensors of shape (C,).
    Everything is int64; returns int64.
    """
    for name, t in (("acc_a", acc_a), ("m_a", m_a), ("bias", bias), ("shift", shift)):
        _check_int(name, t)
    view = (1, -1) + (1,) * (acc_a.dim() - 2)
    s = shift.to(torch.int64).view(view)
    total = acc_a.to(torch.int64) * m_a.to(torch.int64).view(view) + bias.to(torch.int64).view(view)
    if acc_b is not None:
        if m_b is None:
            raise ValueError("acc_b needs m_b")
        total = total + acc_b.to(torch.int64) * m_b.to(torch.int64).view(view)
    rnd = torch.where(s > 0, torch.ones_like(s) << (s - 1).clamp(min=0), torch.zeros_like(s))
    return torch.clamp((total + rnd) >> s, lo, hi)


def pool_fc_logits(x: torch.Tensor, w: torch.Tensor, m: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Global average pool fused with the FC layer into exact integer logits.

    ``acc[n,o] = sum_c w[o,c] * sum_{h,w} x[n,c,h,w]`` (no rounding of the pooled sum), then
    ``logit[n,o] = acc[n,o] * M[o] + B[o]`` in int64 (no shift: the per-row factors put every
    row on one common scale, so argmax of the integer logits is the prediction).
    """
    _check_int("x", x)
    _check_int("w", w)
    pooled = x.to(torch.int64).sum(dim=(2, 3))  # (N, C)
    acc = pooled @ w.to(torch.int64).t()         # (N, O), exact in int64
    return acc * m.to(torch.int64) + bias.to(torch.int64)
