"""Pattern binarization (paper Eq. 1), refine, 8-bit quantization and size accounting."""
from __future__ import annotations

import torch
from torch import nn

from .nn import MODE_FULL, MODE_INT8, MODE_PATTERN, SEPConv2d, SEPLinear, binarize_tensor, sep_convs

# Which convolutions a binarization touches: the method ("kxk": every k×k with k > 1) and
# the paper's ablations.
SCOPES = {
    "kxk": lambda k: k > 1,
    "1x1": lambda k: k == 1,
    "3x3": lambda k: k == 3,
    "5x5": lambda k: k == 5,
    "all": lambda k: True,
}


def binarize_model(model: nn.Module, scope: str = "kxk") -> list[str]:
    """Binarize, in place, every full-precision conv whose kernel size is in ``scope``.

    Returns the qualified names of the layers binarized. ``scope`` is one of :data:`SCOPES`.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown binarization scope {scope!r}; supported: {', '.join(SCOPES)}")
    pick = SCOPES[scope]
    done = []
    for name, conv in sep_convs(model):
        if int(conv.mode) == MODE_FULL and pick(conv.k):
            conv.binarize_()
            done.append(name)
    return done


def binarized_scope(model: nn.Module) -> list[str]:
    """Names of the pattern-binarized convolutions of ``model``."""
    return [n for n, c in sep_convs(model) if int(c.mode) == MODE_PATTERN]


def refine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters refine trains: alpha of every pattern conv, every non-binarized weight
    (full-mode convs and the FC), biases and BN affine parameters.

    Patterns are buffers (int8), so they can never receive a gradient; the float weights
    behind them have ``requires_grad=False`` and are excluded here.
    """
    params = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith(".alpha"):
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            if int(owner.mode) != MODE_PATTERN:
                continue  # alpha of a conv that is not binarized plays no part
        params.append(p)
    return params


def quantize_model_int8(model: nn.Module) -> list[str]:
    """SEP-Net-BQ: 8-bit per-channel symmetric quantization of every non-pattern conv and
    the FC weights, kept as model state (``w_int8``/``w_scale``). Returns the layer names."""
    done = []
    for name, m in model.named_modules():
        if isinstance(m, SEPConv2d) and int(m.mode) == MODE_FULL:
            m.quantize_int8_()
            done.append(name)
        elif isinstance(m, SEPLinear) and int(m.mode) == MODE_FULL:
            m.quantize_int8_()
            done.append(name)
    return done


def quantization_error(model: nn.Module) -> dict[int, dict[str, float]]:
    """Paper Table 1: error of ``alpha * B`` against ``W`` per kernel size.

    For every conv of kernel size k (whatever its mode; B and alpha are recomputed from
    the float weight W by Eq. 1), the per-weight squared error is
    ``e = (W - alpha_f * B)^2``. The reported average for k is

        avg_k = sum over all k×k convs and all their weights of e  /  number of those weights

    i.e. the mean squared error per weight, pooled over every layer of that kernel size,
    together with ``rel``: the same sum divided by ``sum W^2`` (relative error energy).
    Returns ``{k: {"mse": avg_k, "rel": rel_k, "weights": count}}``.
    """
    acc: dict[int, list[float]] = {}
    for _, conv in sep_convs(model):
        w = conv.weight.detach().double()
        b, alpha = binarize_tensor(w)
        err = (w - alpha.view(-1, 1, 1, 1) * b.double()).pow(2)
        s = acc.setdefault(conv.k, [0.0, 0.0, 0])
        s[0] += float(err.sum())
        s[1] += float(w.pow(2).sum())
        s[2] += w.numel()
    return {k: {"mse": v[0] / v[2], "rel": v[0] / v[1] if v[1] else 0.0, "weights": v[2]}
            for k, v in sorted(acc.items())}


def size_report(model: nn.Module, scope: str | None = None) -> dict:
    """Size accounting (paper Tables 3/5/6).

    ``weights``: conv + FC weights (no biases, no BN). ``effective_params``: non-binarized
    weights plus one number (alpha) per binarized filter. ``bytes_R``: 4 bytes per weight.
    ``bytes_B``: 1 bit per pattern weight (rounded up to whole bytes per layer) + 4 bytes per
    alpha + 4 bytes per other weight. ``bytes_BQ``: as B but 1 byte per other weight plus a
    4-byte scale per output channel of every int8 layer.

    Which convs count as binarized: those already in pattern mode, or, with ``scope``
    given, those that :func:`binarize_model` with that scope would binarize (so the report
    works on a float model too).
    """
    pick = SCOPES[scope] if scope else None
    weights = eff = bytes_b_bits = 0
    bytes_b_rest = bytes_bq_rest = 0
    for _, m in model.named_modules():
        if isinstance(m, SEPConv2d):
            n = m.weight.numel()
            weights += n
            binarized = int(m.mode) == MODE_PATTERN or (pick is not None and int(m.mode) == MODE_FULL and pick(m.k))
            if binarized:
                eff += m.out_channels
                bytes_b_bits += (n + 7) // 8
                bytes_b_rest += 4 * m.out_channels
                bytes_bq_rest += 4 * m.out_channels
            else:
                eff += n
                bytes_b_rest += 4 * n
                bytes_bq_rest += n + 4 * m.out_channels
        elif isinstance(m, SEPLinear):
            n = m.weight.numel()
            weights += n
            eff += n
            bytes_b_rest += 4 * n
            bytes_bq_rest += n + 4 * m.out_features
    return {
        "weights": weights,
        "effective_params": eff,
        "bytes_R": 4 * weights,
        "bytes_B": bytes_b_bits + bytes_b_rest,
        "bytes_BQ": bytes_b_bits + bytes_bq_rest,
        "all_params": sum(p.numel() for p in model.parameters()) - sum(
            m.alpha.numel() for _, m in sep_convs(model)),
    }


MODES = {"full": MODE_FULL, "pattern": MODE_PATTERN, "int8": MODE_INT8}
