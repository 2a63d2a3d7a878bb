"""Building blocks of pattern networks.

Every convolution in sephw is a :class:`SEPConv2d`. It carries its numeric mode as model
state so that one checkpoint format covers SEP-Net-R (float), -B (pattern-binarized k×k)
and -BQ (binarized k×k plus 8-bit everything else):

``full``
    ``y = conv(x, W)`` with the float weight ``W``.
``pattern``
    ``y = conv(x, alpha * B)``: ``B = sign(W)`` (``W >= 0`` gives +1) stored as int8 ±1 in
    the buffer ``pattern`` (no gradient, never updated), ``alpha`` one trainable float per
    output filter (paper Eq. 1).
``int8``
    ``y = conv(x, q * s)``: ``q`` int8 in [-127, 127] per-output-channel symmetric, ``s`` the
    float scale per output channel (SEP-Net-BQ's non-pattern weights).

BN / ReLU placement (documented in docs/models.md):

* PRB: ``ReLU(BN_k(conv_kxk(x)) + BN_1(conv_1x1(x)))`` — each branch conv -> BN, sum, ReLU.
* SEP-Net module: ``svd1`` 1×1 -> BN -> ReLU -> PRB -> PRB -> ``svd2`` 1×1 -> BN,
  add the module input, ReLU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODE_FULL = 0
MODE_PATTERN = 1
MODE_INT8 = 2
MODE_NAMES = {MODE_FULL: "full", MODE_PATTERN: "pattern", MODE_INT8: "int8"}


def binarize_tensor(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper Eq. 1 on a weight of shape (out, in/groups, kh, kw).

    Returns ``(B, alpha)``: ``B`` int8 in {-1, +1} with ``W >= 0 -> +1`` (so a zero weight
    gives +1), and ``alpha`` float of shape (out,), the mean of ``|W|`` over the filter's
    ``in/groups * kh * kw`` entries.
    """
    if w.dim() != 4:
        raise ValueError(f"binarize_tensor expects a 4-D conv weight, got shape {tuple(w.shape)}")
    b = torch.where(w >= 0, 1, -1).to(torch.int8)
    alpha = w.detach().abs().mean(dim=(1, 2, 3))
    return b, alpha


def quantize_int8_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit linear quantization, one scale per output channel (dim 0).

    ``s = max|W_c| / 127`` (1 where a channel is all zeros), ``q = clamp(round(W / s), -127, 127)``.
    Returns ``(q int8, s float32 of shape (out,))``.
    """
    flat = w.detach().reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1)
    s = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(flat / s[:, None]), -127, 127).to(torch.int8).reshape(w.shape)
    return q, s.float()


class SEPConv2d(nn.Conv2d):
    """A 2-D convolution that can be full precision, pattern-binarized or int8.

    Parameters are those of :class:`torch.nn.Conv2d` (bias defaults to False, as every
    sephw convolution is followed by BatchNorm).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool = False):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels ({in_channels} -> {out_channels}) must divide by groups={groups}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias=bias)
        self.register_buffer("mode", torch.tensor(MODE_FULL, dtype=torch.int64))
        self.register_buffer("pattern", torch.zeros(self.weight.shape, dtype=torch.int8))
        # alpha only trains in pattern mode (a parameter without a gradient would stall DDP)
        self.alpha = nn.Parameter(torch.ones(out_channels), requires_grad=False)
        self.register_buffer("w_int8", torch.zeros(self.weight.shape, dtype=torch.int8))
        self.register_buffer("w_scale", torch.ones(out_channels))

    @property
    def k(self) -> int:
        """Spatial kernel size (square kernels only)."""
        return self.kernel_size[0]

    @property
    def mode_name(self) -> str:
        return MODE_NAMES[int(self.mode)]

    def binarize_(self) -> None:
        """Switch to pattern mode: B = sign(W), alpha = mean|W| (Eq. 1). The float W is kept
        (for the quantization-error analysis) but no longer used or trained."""
        b, alpha = binarize_tensor(self.weight)
        self.pattern.copy_(b)
        with torch.no_grad():
            self.alpha.copy_(alpha)
        self.mode.fill_(MODE_PATTERN)
        self.weight.requires_grad_(False)
        self.alpha.requires_grad_(True)

    def quantize_int8_(self) -> None:
        """Switch a non-pattern conv to int8 weights (SEP-Net-BQ)."""
        if int(self.mode) == MODE_PATTERN:
            raise ValueError("a pattern-binarized convolution is already 1-bit; int8 applies to the rest")
        q, s = quantize_int8_per_channel(self.weight)
        self.w_int8.copy_(q)
        self.w_scale.copy_(s)
        self.mode.fill_(MODE_INT8)
        self.weight.requires_grad_(False)

    def effective_weight(self) -> torch.Tensor:
        """The float weight the forward pass uses in the current mode, shape of ``weight``."""
        m = int(self.mode)
        if m == MODE_PATTERN:
            return self.alpha.view(-1, 1, 1, 1) * self.pattern.to(self.alpha.dtype)
        if m == MODE_INT8:
            return self.w_int8.to(self.w_scale.dtype) * self.w_scale.view(-1, 1, 1, 1)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # A binarized or quantized layer's float weight is frozen; keep that after loading.
        self.weight.requires_grad_(int(self.mode) == MODE_FULL)
        self.alpha.requires_grad_(int(self.mode) == MODE_PATTERN)


class SEPLinear(nn.Linear):
    """Fully connected layer with an optional int8 mode (per-output-row symmetric scale)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mode", torch.tensor(MODE_FULL, dtype=torch.int64))
        self.register_buffer("w_int8", torch.zeros(self.weight.shape, dtype=torch.int8))
        self.register_buffer("w_scale", torch.ones(out_features))

    def quantize_int8_(self) -> None:
        q, s = quantize_int8_per_channel(self.weight[:, :, None, None])
        self.w_int8.copy_(q[:, :, 0, 0])
        self.w_scale.copy_(s)
        self.mode.fill_(MODE_INT8)
        self.weight.requires_grad_(False)

    def effective_weight(self) -> torch.Tensor:
        if int(self.mode) == MODE_INT8:
            return self.w_int8.to(self.w_scale.dtype) * self.w_scale.view(-1, 1)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.weight.requires_grad_(int(self.mode) == MODE_FULL)


class ConvBN(nn.Module):
    """conv -> BN (-> ReLU when ``relu``). ``padding`` defaults to ``k // 2``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 relu: bool = True, padding: int | None = None):
        super().__init__()
        self.conv = SEPConv2d(cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding,
                              groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.relu else y


class PRB(nn.Module):
    """Pattern Residual Block: ``ReLU(BN(conv_kxk(x)) + BN(conv_1x1(x)))``.

    The k×k branch extracts patterns (binarized in SEP-Net-B), the 1×1 branch projects;
    both read the same input, which is what lets the hardware run the LUT pattern engine
    and the DSP MAC array concurrently on one tile.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups_kxk: int = 1,
                 groups_1x1: int = 1):
        super().__init__()
        if k < 2:
            raise ValueError(f"PRB needs a k×k branch with k > 1, got k={k}")
        self.kxk = ConvBN(cin, cout, k, stride=stride, groups=groups_kxk, relu=False)
        self.p1x1 = ConvBN(cin, cout, 1, stride=stride, groups=groups_1x1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.kxk(x) + self.p1x1(x))


class SEPModule(nn.Module):
    """SEP-Net module: svd1 1×1 reduction -> PRB -> PRB -> svd2 1×1 recovery, + input, ReLU.

    ``channels`` in and out, ``reduced`` inside; ``k`` the PRB kernel size.
    """

    def __init__(self, channels: int, reduced: int, k: int, groups_svd1: int = 1, groups_kxk: int = 1,
                 groups_1x1: int = 1, groups_svd2: int = 1):
        super().__init__()
        self.svd1 = ConvBN(channels, reduced, 1, groups=groups_svd1, relu=True)
        self.prb1 = PRB(reduced, reduced, k, groups_kxk=groups_kxk, groups_1x1=groups_1x1)
        self.prb2 = PRB(reduced, reduced, k, groups_kxk=groups_kxk, groups_1x1=groups_1x1)
        self.svd2 = ConvBN(reduced, channels, 1, groups=groups_svd2, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.svd2(self.prb2(self.prb1(self.svd1(x))))
        return F.relu(y + x)


def sep_convs(model: nn.Module):
    """All :class:`SEPConv2d` layers of ``model`` as ``(qualified_name, module)`` in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SEPConv2d)]
