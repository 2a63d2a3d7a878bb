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
    patterns (±1). Computed in int32 (callers guarantee, by the bounds of
    docs/numerics.md, that every accumulator fits int32); returns int64 (N, O, Ho, Wo).
    """
    return int_conv_acc32(x, w, stride, padding, groups).to(torch.int64)


def int_conv_acc32(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0,
                   groups: int = 1) -> torch.Tensor:
    """:func:`int_conv_acc` returning the int32 accumulator (the reference executor's fast
    path). Every intermediate is an int32 partial sum of the exact accumulator, so the
    result is exact whenever the accumulator bound fits int32.

    Four integer implementations, chosen by shape for speed only: 1×1 as a grouped int32
    matmul; one input channel per group (depthwise) as int32 im2col + matmul; 4 or more
    groups as a channel-major im2col + batched matmul; everything else with torch's int32
    ``conv2d``.
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
    x = x.to(torch.int32)
    w32 = w.to(torch.int32)
    if k == 1:
        if padding:
            x = F.pad(x, (padding, padding, padding, padding))
        cols = x[:, :, ::stride, ::stride][:, :, :ho, :wo].reshape(n, groups, cg, ho * wo)
        acc = torch.matmul(w32.reshape(groups, o // groups, cg).unsqueeze(0), cols)  # (N, G, O/G, HoWo)
        return acc.reshape(n, o, ho, wo)
    if cg > 1 and groups < 4:
        return F.conv2d(x, w32, stride=stride, padding=padding, groups=groups)
    if cg > 1:
        # many small groups: channel-major im2col, one (O/G x Cg*k*k) @ (Cg*k*k x N*Ho*Wo)
        # matmul per group (wide right operand: torch's int32 matmul is fast on that shape)
        xc = F.pad(x, (padding,) * 4).transpose(0, 1)                 # (C, N, Hp, Wp) view
        taps = [xc[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                for i in range(k) for j in range(k)]
        cols = torch.stack(taps, dim=1).reshape(groups, cg * k * k, n * ho * wo)
        acc = torch.bmm(w32.reshape(groups, o // groups, cg * k * k), cols)
        return acc.reshape(o, n, ho, wo).transpose(0, 1).contiguous()
    xp = F.pad(x, (padding, padding, padding, padding))
    # im2col by strided views: (N, C, Ho, Wo, k, k) without any float conversion
    cols = xp.unfold(2, k, stride).unfold(3, k, stride)[:, :, :ho, :wo]
    cols = cols.reshape(n, groups, cg, ho, wo, k, k).permute(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, groups, ho * wo, cg * k * k)
    wg = w32.reshape(groups, o // groups, cg * k * k)
    acc = torch.matmul(cols, wg.transpose(1, 2).unsqueeze(0))  # (N, G, HoWo, O/G)
    return acc.permute(0, 1, 3, 2).reshape(n, o, ho, wo)


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
    s = shift.to(torch.int64)
    rnd = torch.where(s > 0, torch.ones_like(s) << (s - 1).clamp(min=0), torch.zeros_like(s))
    total = acc_a.to(torch.int64, copy=True)          # a fresh tensor: in place below
    total *= m_a.to(torch.int64).view(view)
    if acc_b is not None:
        if m_b is None:
            raise ValueError("acc_b needs m_b")
        tb = acc_b.to(torch.int64, copy=True)
        tb *= m_b.to(torch.int64).view(view)
        total += tb
        del tb
    total += (bias.to(torch.int64) + rnd).view(view)
    total >>= s.view(view)
    return total.clamp_(lo, hi)


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
