"""Calibration, BN / alpha folding and lowering of a float model into an IntGraph.

``sephw quantize`` and ``sephw ir`` live here (:func:`register_cli`). The method is
docs/numerics.md's "Calibration" and "Folding" sections:

1. :func:`calibrate` runs the float model on calibration images and picks one scale per
   stored activation tensor (MSE-optimal clipping of the observed values).
2. :func:`lower` walks the model (SEP-Net, CIFAR ResNets, Multiception / DSConv / MixConv
   ResNet-20) and emits one IntGraph node per stored tensor, folding conv weight scales
   (pattern ``alpha`` or int8 ``w_scale``), BatchNorm and the activation scales into the
   per-channel integers ``M, B, S`` of the fused post-process rule.
3. :func:`fake_quant` is the float model with the same activation quantization (the
   tolerance reference of the verification ladder).

Every node is named after the module whose output its tensor quantizes, so the integer
tensors and the float activations line up by name.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from . import intgraph as ig
from .intgraph import (ActSpec, ConvOperand, DepthwiseBranch, DepthwiseConcatNode, InputNode,
                       IntConvNode, IntGraph, PatternConvNode, PoolFCNode, PRBNode, Requant,
                       ResidualAddNode, SkipOperand, UnsupportedError)
from .models import CifarResNet, DSConv, MixConv, MulticeptionConv, SEPNet
from .nn import (MODE_FULL, MODE_INT8, MODE_PATTERN, PRB, ConvBN, SEPConv2d, SEPLinear, SEPModule,
                 quantize_int8_per_channel)

INPUT_SCALE = 1.0 / 255.0   # the float model sees pixels / 255 (sephw.data.to_model_input)
SUPPORTED_MODELS = ("SEPNet (sepnet-small, sepnet-large)", "CifarResNet (resnet20/32/44/56)",
                    "multiception-resnet20", "dsconv-resnet20", "mixconv-resnet20")
CALIB_CANDIDATES = 100      # clipping candidates amax * i / 100, i = 1..100
CALIB_SAMPLES = 1 << 16     # values sampled per tensor for the MSE search
CALIB_BINS = 2048           # histogram bins of the MSE search


# --------------------------------------------------------------------------- folding
def _bn_affine(bn: nn.BatchNorm2d | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference BN as ``g * z + h`` per channel (float64)."""
    if bn is None:
        return torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    if bn.running_mean is None:
        raise UnsupportedError("BatchNorm without running statistics cannot be folded")
    var = bn.running_var.double()
    g = 1.0 / torch.sqrt(var + bn.eps)
    if bn.weight is not None:
        g = g * bn.weight.detach().double()
    h = -bn.running_mean.double() * g
    if bn.bias is not None:
        h = h + bn.bias.detach().double()
    return g, h


def conv_weights(conv: nn.Module, path: str) -> tuple[str, torch.Tensor, torch.Tensor]:
    """``(kind, int8 weight, float64 per-output-channel weight scale)`` of a conv.

    pattern mode: ``kind="pattern"``, weight ``B`` ±1, scale ``alpha``; a binarized 1×1 (or any
    k the pattern engine lacks) is kept exactly as an int8 conv with ±1 weights. int8 mode:
    ``w_int8`` / ``w_scale``. full mode: quantized here with
    :func:`sephw.nn.quantize_int8_per_channel` (the same rule ``sephw quantize-int8`` uses).
    """
    if not isinstance(conv, SEPConv2d):
        raise UnsupportedError(f"{path}: {type(conv).__name__} is not a SEPConv2d; the integer "
                               f"pipeline lowers sephw.nn.SEPConv2d convolutions only")
    k = conv.kernel_size
    if k[0] != k[1] or conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
        raise UnsupportedError(f"{path}: non-square kernel/stride/padding {k}/{conv.stride}/{conv.padding}; "
                               f"supported: square kernels with equal strides and paddings")
    if conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise UnsupportedError(f"{path}: dilation {conv.dilation} / padding mode {conv.padding_mode!r}; "
                               f"supported: dilation 1, zero padding")
    k, s, p = k[0], conv.stride[0], conv.padding[0]
    if k not in ig.INT_KERNELS:
        raise UnsupportedError(f"{path}: {k}x{k} kernel; supported k in {ig.INT_KERNELS} "
                               f"(pattern engine {ig.PATTERN_KERNELS})")
    if s not in ig.STRIDES:
        raise UnsupportedError(f"{path}: stride {s}; supported {ig.STRIDES}")
    if not 0 <= p <= k // 2:
        raise UnsupportedError(f"{path}: padding {p} for a {k}x{k} kernel; supported 0..{k // 2}")
    mode = int(conv.mode)
    if mode == MODE_PATTERN:
        kind = "pattern" if k in ig.PATTERN_KERNELS else "int8"
        return kind, conv.pattern.to(torch.int8).clone(), conv.alpha.detach().double()
    if mode == MODE_INT8:
        return "int8", conv.w_int8.clone(), conv.w_scale.double()
    if mode == MODE_FULL:
        q, sc = quantize_int8_per_channel(conv.weight)
        return "int8", q, sc.double()
    raise UnsupportedError(f"{path}: unknown conv mode {mode}")


def fold_requant(fs: list[torch.Tensor], c: torch.Tensor, ranges: list[tuple[torch.Tensor, torch.Tensor]],
                 name: str, m_max: list[int] | None = None) -> Requant:
    """Integer ``M_t, B, S`` per channel for ``y = sum_t f_t * acc_t + c`` (output codes).

    ``S`` is the largest shift in ``[0, 31]`` with every ``|round(f_t 2^S)| <= m_max[t]``
    (default 2^15 - 1) and ``|round(c 2^S)| <= 2^47 - 1``; ``M_t = round(f_t 2^S)``,
    ``B = round(c 2^S)``. Records the fold error bound
    ``sum_t A_t |f_t - M_t/2^S| + |c - B/2^S|`` (``A_t`` the largest ``|acc_t|`` of
    ``ranges``), maximized over channels.
    """
    m_max = m_max or [ig.M_MAX] * len(fs)
    # the binding multiplier: largest |f_t| / m_max[t]
    maxf = torch.stack([f.abs() / mm for f, mm in zip(fs, m_max)]).amax(0)
    s = torch.full_like(maxf, float(ig.S_MAX))
    nz = maxf > 0
    s[nz] = torch.minimum(s[nz], torch.floor(torch.log2(1.0 / maxf[nz])))
    cz = c.abs() > 0
    s[cz] = torch.minimum(s[cz], torch.floor(torch.log2(ig.B_MAX / c.abs()[cz])))
    # log2 may land one too high after rounding; step down until every value fits
    for _ in range(3):
        over = torch.round(c.abs() * torch.exp2(s)) > ig.B_MAX
        for f, mm in zip(fs, m_max):
            over |= torch.round(f.abs() * torch.exp2(s)) > mm
        s = torch.where(over, s - 1, s)
    if bool((s < 0).any()):
        ch = int(torch.nonzero(s < 0)[0])
        raise UnsupportedError(f"{name}: channel {ch} needs a multiplier or bias (in output codes per "
                               f"accumulator unit) beyond |M| <= {m_max}, |B| <= 2^47-1 at S=0; "
                               f"the activation scale is too small")
    p = torch.exp2(s)
    ms = [torch.round(f * p) for f in fs]
    b = torch.round(c * p)
    err = (c - b / p).abs()
    for f, m, (lo, hi) in zip(fs, ms, ranges):
        err = err + (f - m / p).abs() * torch.maximum(lo.abs(), hi.abs()).double()
    return Requant(m_a=ms[0].to(torch.int32), bias=b.to(torch.int64), shift=s.to(torch.int32),
                   m_b=ms[1].to(torch.int32) if len(ms) > 1 else None, fold_error=float(err.max()))


# --------------------------------------------------------------------------- lowering
class _Lowerer:
    """One walk over a model. In collect mode (``scales is None``) it only records the
    quantization points ``{name: (module, signed)}``; otherwise it emits the nodes."""

    def __init__(self, model: nn.Module, a_bits: int, input_shape: tuple[int, int, int],
                 scales: dict[str, float] | None):
        if not isinstance(a_bits, int) or a_bits not in ig.A_BITS:
            raise UnsupportedError(f"a_bits={a_bits!r}; supported activation widths are 1..8")
        self.model, self.a_bits, self.scales = model, a_bits, scales
        self.collect = scales is None
        self.points: dict[str, tuple[nn.Module, bool]] = {}
        self.specs: dict[str, ActSpec] = {}
        self.nodes: list = []
        c, h, w = input_shape
        self.specs["input"] = ActSpec(c, h, w, 8, False, INPUT_SCALE)
        self.nodes.append(InputNode("input", self.specs["input"]))

    # -- helpers
    def point(self, name: str, module: nn.Module, signed: bool, c: int, h: int, w: int) -> ActSpec:
        """Declare the stored tensor ``name`` (the output of ``module``)."""
        bits = max(2, self.a_bits) if signed else self.a_bits
        if self.collect:
            self.points[name] = (module, signed)
            scale = 1.0
        else:
            scale = float(self.scales[name])
        spec = ActSpec(c, h, w, bits, signed, scale)
        self.specs[name] = spec
        return spec

    def conv_term(self, conv: SEPConv2d, bn, x: str, path: str) -> tuple[ConvOperand, torch.Tensor, torch.Tensor]:
        """Operand plus the real-valued fold ``y_real = f * acc + c`` (before the output scale)."""
        kind, w, wscale = conv_weights(conv, path)
        src = self.specs[x]
        if conv.in_channels != src.channels:
            raise UnsupportedError(f"{path}: expects {conv.in_channels} input channels, gets {src.channels}")
        op = ConvOperand(x, kind, w, conv.stride[0], conv.padding[0], conv.groups)
        g, h = _bn_affine(bn, conv.out_channels)
        f = g * wscale * src.scale
        c = h + (g * conv.bias.detach().double() if conv.bias is not None else 0.0)
        return op, f, c

    def out_hw(self, op: ConvOperand) -> tuple[int, int]:
        src = self.specs[op.input]
        ho, wo = ig.conv_out_hw(src.height, src.width, op.k, op.stride, op.padding)
        if ho < 1 or wo < 1:
            raise UnsupportedError(f"{op.input}: feature map {src.height}x{src.width} too small for a "
                                   f"{op.k}x{op.k} stride-{op.stride} conv")
        return ho, wo

    def emit(self, cls, name: str, terms: list, c: torch.Tensor, out: ActSpec, **fields) -> None:
        """Fold ``terms`` [(operand, f)] and ``c`` onto ``out``'s scale and append the node."""
        if self.collect:
            return
        ranges = [ig.operand_range(op, self.specs[op.input]) for op, _ in terms]
        m_max = [ig.M_SKIP_MAX if isinstance(op, SkipOperand) else ig.M_MAX for op, _ in terms]
        rq = fold_requant([f / out.scale for _, f in terms], c / out.scale, ranges, name, m_max)
        self.nodes.append(cls(name=name, requant=rq, out=out, **fields))

    # -- layers
    def conv_node(self, name: str, cb: ConvBN, x: str, module: nn.Module | None = None) -> str:
        """conv -> BN -> ReLU stored unsigned (the ReLU may sit in the caller, e.g. BasicBlock)."""
        op, f, c = self.conv_term(cb.conv, cb.bn, x, name + ".conv")
        out = self.point(name, module or cb, False, cb.conv.out_channels, *self.out_hw(op))
        cls = PatternConvNode if op.kind == "pattern" else IntConvNode
        self.emit(cls, name, [(op, f)], c, out, conv=op)
        return name

    def prb(self, name: str, p: PRB, x: str) -> str:
        if not isinstance(p, PRB):
            raise UnsupportedError(f"{name}: {type(p).__name__} where a PRB was expected")
        a, fa, ca = self.conv_term(p.kxk.conv, p.kxk.bn, x, name + ".kxk.conv")
        b, fb, cb = self.conv_term(p.p1x1.conv, p.p1x1.bn, x, name + ".p1x1.conv")
        if a.k < 2 or b.k != 1 or p.kxk.relu or p.p1x1.relu:
            raise UnsupportedError(f"{name}: PRB needs a k×k (k>1) and a 1×1 branch without ReLU")
        if self.out_hw(a) != self.out_hw(b):
            raise UnsupportedError(f"{name}: PRB branches give different output sizes")
        out = self.point(name, p, False, p.kxk.conv.out_channels, *self.out_hw(a))
        self.emit(PRBNode, name, [(a, fa), (b, fb)], ca + cb, out, kxk=a, p1x1=b)
        return name

    def residual(self, name: str, module: nn.Module, main_cb: ConvBN, main_in: str, skip, x: str) -> str:
        """ReLU(BN(conv(main_in)) + skip(x)); ``skip`` None (identity) or a 1×1 ConvBN."""
        if main_cb.relu:
            raise UnsupportedError(f"{name}: the conv before a residual add must have no ReLU")
        a, fa, ca = self.conv_term(main_cb.conv, main_cb.bn, main_in, name + " main conv")
        hw = self.out_hw(a)
        src = self.specs[x]
        if skip is None:
            if src.shape != (main_cb.conv.out_channels,) + hw:
                raise UnsupportedError(f"{name}: identity skip of shape {src.shape} does not match "
                                       f"{(main_cb.conv.out_channels,) + hw}")
            b = SkipOperand(x)
            fb = torch.full((src.channels,), src.scale, dtype=torch.float64)
            cb = torch.zeros(src.channels, dtype=torch.float64)
        else:
            if not isinstance(skip, ConvBN) or skip.relu:
                raise UnsupportedError(f"{name}: the shortcut must be a ConvBN without ReLU")
            b, fb, cb = self.conv_term(skip.conv, skip.bn, x, name + ".shortcut.conv")
            if b.k != 1 or b.kind != "int8" or self.out_hw(b) != hw:
                raise UnsupportedError(f"{name}: supported shortcuts: identity or a 1×1 int8 projection "
                                       f"with the main branch's output size")
        out = self.point(name, module, False, main_cb.conv.out_channels, *hw)
        self.emit(ResidualAddNode, name, [(a, fa), (b, fb)], ca + cb, out, main=a, skip=b)
        return name

    def depthwise_concat(self, name: str, convs, bn, x: str, starts: list[int], signed: bool) -> str:
        """Depthwise branches over channel ranges ``starts``, concatenated, then ``bn``."""
        src = self.specs[x]
        branches, fs, hw = [], [], None
        for j, (dw, c0) in enumerate(zip(convs, starts)):
            path = f"{name} branch {j}"
            if not (isinstance(dw, SEPConv2d) and dw.groups == dw.in_channels == dw.out_channels):
                raise UnsupportedError(f"{path}: a branch must be a depthwise SEPConv2d")
            kind, w, wscale = conv_weights(dw, path)
            br = DepthwiseBranch(kind, w, c0, dw.stride[0], dw.padding[0])
            ohw = self.out_hw(br.as_operand(x))
            if hw not in (None, ohw):
                raise UnsupportedError(f"{path}: output {ohw} differs from branch 0's {hw}")
            hw = ohw
            branches.append(br)
            fs.append(wscale * src.scale)
        total = sum(b.channels for b in branches)
        g, h = _bn_affine(bn, total)
        f = g * torch.cat(fs)
        out = self.point(name, bn, signed, total, *hw)
        if not self.collect:
            ranges = [ig.operand_range(b.as_operand(x), src) for b in branches]
            rng = [(torch.cat([r[0] for r in ranges]), torch.cat([r[1] for r in ranges]))]
            rq = fold_requant([f / out.scale], h / out.scale, rng, name)
            self.nodes.append(DepthwiseConcatNode(name, x, branches, rq, out))
        return name

    def prefix(self, path: str, mod: nn.Module, x: str) -> tuple[ConvBN, str]:
        """Emit everything of a block conv slot before its last ConvBN; return that ConvBN
        and the tensor it reads."""
        if isinstance(mod, ConvBN):
            return mod, x
        if isinstance(mod, MulticeptionConv):
            t = self.depthwise_concat(path + ".bn_dw", list(mod.depthwise), mod.bn_dw, x,
                                      [0] * len(mod.depthwise), signed=True)
            return mod.pointwise, t
        if isinstance(mod, MixConv):
            starts = [sum(mod.splits[:i]) for i in range(len(mod.splits))]
            t = self.depthwise_concat(path + ".bn_dw", list(mod.depthwise), mod.bn_dw, x, starts, signed=False)
            return mod.pointwise, t
        if isinstance(mod, DSConv):
            if not mod.depthwise.relu:
                raise UnsupportedError(f"{path}.depthwise: expected conv -> BN -> ReLU")
            t = self.conv_node(path + ".depthwise", mod.depthwise, x)
            return mod.pointwise, t
        raise UnsupportedError(f"{path}: {type(mod).__name__} is not supported in a residual block; "
                               f"supported: ConvBN, MulticeptionConv, MixConv, DSConv")

    def block(self, path: str, blk: nn.Module, x: str) -> str:
        if type(blk).__name__ != "BasicBlock":
            raise UnsupportedError(f"{path}: {type(blk).__name__}; supported residual block: BasicBlock")
        cb1, t = self.prefix(path + ".conv1", blk.conv1, x)
        if cb1.relu:
            raise UnsupportedError(f"{path}.conv1: expected a ConvBN without ReLU (the block applies it)")
        h = self.conv_node(path + ".conv1", cb1, t, module=blk.conv1)
        cb2, t2 = self.prefix(path + ".conv2", blk.conv2, h)
        return self.residual(path, blk, cb2, t2, blk.shortcut, x)

    def sep_module(self, path: str, m: SEPModule, x: str) -> str:
        if not m.svd1.relu:
            raise UnsupportedError(f"{path}.svd1: expected conv -> BN -> ReLU")
        h = self.conv_node(path + ".svd1", m.svd1, x)
        h = self.prb(path + ".prb1", m.prb1, h)
        h = self.prb(path + ".prb2", m.prb2, h)
        return self.residual(path, m, m.svd2, h, None, x)

    def pool_fc(self, name: str, fc: nn.Module, x: str) -> None:
        if not isinstance(fc, SEPLinear):
            raise UnsupportedError(f"{name}: {type(fc).__name__}; the classifier must be a SEPLinear")
        src = self.specs[x]
        if fc.in_features != src.channels:
            raise UnsupportedError(f"{name}: expects {fc.in_features} features, gets {src.channels} channels")
        if self.collect:
            return
        if int(fc.mode) == MODE_INT8:
            q, ws = fc.w_int8.clone(), fc.w_scale.double()
        else:
            q4, ws = quantize_int8_per_channel(fc.weight[:, :, None, None])
            q, ws = q4[:, :, 0, 0], ws.double()
        r = ws * src.scale / (src.height * src.width)        # real logit per acc unit, per row
        big = float(r.abs().max())
        logit_scale = big / ig.M_MAX if big > 0 else 1.0
        m = torch.round(r / logit_scale).to(torch.int64)
        bias = fc.bias.detach().double() if fc.bias is not None else torch.zeros(fc.out_features, dtype=torch.float64)
        b = torch.round(bias / logit_scale).to(torch.int64)
        self.nodes.append(PoolFCNode(name, x, q, m, b, float(logit_scale)))

    def walk(self) -> None:
        model = self.model
        if isinstance(model, SEPNet):
            x = "input"
            for lname, layer in model.features.items():
                path = f"features.{lname}"
                if isinstance(layer, ConvBN):
                    if not layer.relu:
                        raise UnsupportedError(f"{path}: a SEP-Net conv layer without ReLU; supported: conv -> BN -> ReLU")
                    x = self.conv_node(path, layer, x)
                elif isinstance(layer, SEPModule):
                    x = self.sep_module(path, layer, x)
                else:
                    raise UnsupportedError(f"{path}: {type(layer).__name__}; supported SEP-Net layers: ConvBN, SEPModule")
            self.pool_fc("fc", model.fc, x)
        elif isinstance(model, CifarResNet):
            if not model.stem.relu:
                raise UnsupportedError("stem: expected conv -> BN -> ReLU")
            x = self.conv_node("stem", model.stem, "input")
            for i, blk in enumerate(model.blocks):
                x = self.block(f"blocks.{i}", blk, x)
            self.pool_fc("fc", model.fc, x)
        else:
            raise UnsupportedError(f"model {type(model).__name__}: supported models are "
                                   + ", ".join(SUPPORTED_MODELS))


def quant_points(model: nn.Module, input_shape: tuple[int, int, int], a_bits: int = 8) -> dict[str, tuple[nn.Module, bool]]:
    """The stored activation tensors of ``model``: ``{name: (module whose output it is, signed)}``."""
    lw = _Lowerer(model, a_bits, input_shape, None)
    lw.walk()
    return lw.points


def lower(model: nn.Module, scales: dict[str, float], input_shape: tuple[int, int, int],
          a_bits: int = 8, meta: dict | None = None) -> IntGraph:
    """Lower ``model`` (eval-mode BN) with activation ``scales`` into a validated IntGraph."""
    lw = _Lowerer(model, a_bits, input_shape, scales)
    with torch.no_grad():
        lw.walk()
    return IntGraph(lw.nodes, a_bits, dict(meta or {})).validate()


# --------------------------------------------------------------------------- calibration
def mse_scale(values: torch.Tensor, amax: float, bits: int, signed: bool) -> float:
    """Scale minimizing the mean squared error of quantizing ``values`` (clamp + round half
    up) over clipping levels ``amax * i / 100``, i = 1..100. ``amax`` is the largest ``|v|``
    observed; the error is evaluated on a ``CALIB_BINS``-bin histogram of ``values`` (bin
    centres). A tensor that is all zero gets scale 1."""
    if not amax > 0:
        return 1.0
    v = values.double().flatten()
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    vmin = -amax if signed else 0.0
    hist = torch.histc(v.clamp(vmin, amax), bins=CALIB_BINS, min=vmin, max=amax)
    width = (amax - vmin) / CALIB_BINS
    centres = vmin + width * (torch.arange(CALIB_BINS, dtype=torch.float64) + 0.5)
    cand = amax * torch.arange(1, CALIB_CANDIDATES + 1, dtype=torch.float64) / CALIB_CANDIDATES / hi
    s = cand[:, None]
    q = torch.clamp(torch.floor(centres[None, :] / s + 0.5), lo, hi) * s
    err = ((q - centres[None, :]).pow(2) * hist[None, :]).sum(1)
    return float(cand[int(torch.argmin(err))])  # the first minimum: the smallest clip


CALIB_METHODS = ("mse", "max")


def calibrate(model: nn.Module, images: torch.Tensor, a_bits: int = 8, batch_size: int = 100,
              progress: bool = False, seed: int = 0, method: str = "mse") -> dict[str, float]:
    """Activation scales from the float model on ``images`` (uint8 (N, C, H, W)).

    For every stored tensor: the largest observed ``|v|`` (after the ReLU for unsigned
    tensors) and a uniform random sample of its values (``CALIB_SAMPLES`` in all), then
    :func:`mse_scale`. Deterministic for a given ``seed``.
    """
    if method not in CALIB_METHODS:
        raise ValueError(f"calibration method {method!r}; supported: {', '.join(CALIB_METHODS)}")
    model.eval()
    points = quant_points(model, tuple(images.shape[1:]), a_bits)
    gen = torch.Generator().manual_seed(seed)
    amax = {n: 0.0 for n in points}
    samples: dict[str, list[torch.Tensor]] = {n: [] for n in points}
    per_batch = max(1, -(-CALIB_SAMPLES * min(batch_size, len(images)) // max(1, len(images))))
    hooks = []

    def observer(name, signed):
        def hook(mod, inp, out):
            v = out.detach().float()
            if not signed:
                v = v.clamp(min=0)
            amax[name] = max(amax[name], float(v.abs().max()))
            flat = v.flatten()
            idx = torch.randint(0, flat.numel(), (min(per_batch, flat.numel()),), generator=gen)
            samples[name].append(flat[idx])
        return hook

    for name, (mod, signed) in points.items():
        hooks.append(mod.register_forward_hook(observer(name, signed)))
    try:
        starts = range(0, len(images), batch_size)
        if progress:
            from tqdm import tqdm
            starts = tqdm(starts, desc="calibrate", unit="batch")
        with torch.no_grad():
            for s in starts:
                model(images[s:s + batch_size].float() / 255.0)
    finally:
        for h in hooks:
            h.remove()
    scales = {}
    for name, (mod, signed) in points.items():
        bits = max(2, a_bits) if signed else a_bits
        if method == "max" or not amax[name] > 0:
            qmax = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
            scales[name] = amax[name] / qmax if amax[name] > 0 else 1.0
        else:
            scales[name] = mse_scale(torch.cat(samples[name]), amax[name], bits, signed)
    return scales


def quantize(model: nn.Module, calib_images: torch.Tensor, a_bits: int = 8, progress: bool = False,
             meta: dict | None = None, method: str = "mse") -> IntGraph:
    """Calibrate on ``calib_images`` (uint8) with ``method`` and lower: the IntGraph of ``model``."""
    scales = calibrate(model, calib_images, a_bits, progress=progress, method=method)
    meta = {"calib_images": int(len(calib_images)),
            "calib_method": "mse-clip-100" if method == "mse" else "max", **(meta or {})}
    return lower(model, scales, tuple(calib_images.shape[1:]), a_bits, meta)


# --------------------------------------------------------------------------- fake quant
def fq_codes(y: torch.Tensor, spec: ActSpec) -> torch.Tensor:
    """Float activation -> codes with the spec's rounding (half up) and clamp."""
    return torch.clamp(torch.floor(y / spec.scale + 0.5), spec.lo, spec.hi)


@contextmanager
def fake_quant(model: nn.Module, graph: IntGraph, record: dict | None = None,
               replace: dict | None = None):
    """Inside the block, ``model`` quantizes every stored activation as ``graph`` does:
    the output of the module named by each post-processed node becomes
    ``clamp(floor(y/scale + 1/2), lo, hi) * scale``.

    ``record``: a dict that receives ``{node name: float codes}`` of the last forward.
    ``replace``: ``{node name: integer codes}``; those outputs are replaced by
    ``codes * scale`` (teacher forcing: every node then sees the integer executor's inputs).
    Use a ``model.eval()`` model; the input is ``pixels / 255``.
    """
    hooks = []

    def make(node):
        def hook(mod, inp, out):
            codes = fq_codes(out, node.out)
            if record is not None:
                record[node.name] = codes.detach()
            if replace is not None and node.name in replace:
                codes = replace[node.name].to(out.dtype)
            return codes * node.out.scale
        return hook

    try:
        for node in graph.nodes:
            if isinstance(node, ig.REQUANT_NODES):
                hooks.append(model.get_submodule(node.name).register_forward_hook(make(node)))
        yield model
    finally:
        for h in hooks:
            h.remove()


def bq_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every non-pattern conv and the FC in int8 (the weights the
    IntGraph uses), for :func:`fake_quant`."""
    import copy
    from .binarize import quantize_model_int8
    m = copy.deepcopy(model).eval()
    quantize_model_int8(m)
    return m


def error_bounds(graph: IntGraph) -> dict[str, float]:
    """Worst-case ``|integer code - fake-quant code|`` per stored tensor, propagated from the
    fold errors through the graph (docs/numerics.md, "Error bound"); ``"logits"``: the bound
    on ``|logit - fake-quant logit / logit_scale|`` in integer logit units. The fake-quant
    model is evaluated exactly (in real arithmetic) here."""
    e: dict[str, float] = {graph.input.name: 0.0}
    for n in graph.nodes[1:]:
        if isinstance(n, PoolFCNode):
            src = graph.spec(n.input)
            (lo, hi), = graph.acc_ranges(n)
            amax = torch.maximum(lo.abs(), hi.abs()).double()
            l1 = n.weight.to(torch.int64).abs().sum(1).double()
            hw = src.height * src.width
            b = 0.5 * amax + (n.m.abs().double() + 0.5) * hw * l1 * e[n.input] + 0.5
            e["logits"] = float(b.max())
            continue
        rq = n.requant
        p = torch.exp2(rq.shift.double())
        d = torch.full_like(p, rq.fold_error)
        if isinstance(n, DepthwiseConcatNode):
            l1 = torch.cat([b.weight.to(torch.int64).abs().reshape(b.channels, -1).sum(1) for b in n.branches])
            d = d + (rq.m_a.double().abs() + 0.5) / p * l1.double() * e[n.input]
        else:
            for op, m in zip(ig.node_operands(n), (rq.m_a, rq.m_b)):
                if isinstance(op, SkipOperand):
                    l1 = torch.ones_like(p)
                else:
                    l1 = op.weight.to(torch.int64).abs().reshape(op.out_channels, -1).sum(1).double()
                d = d + (m.double().abs() + 0.5) / p * l1 * e[op.input]
        dmax = float(d.max())
        e[n.name] = min(float(n.out.hi - n.out.lo), 0.0 if dmax == 0 else math.floor(dmax) + 1.0)
    return e


# --------------------------------------------------------------------------- checkpoints + CLI
def load_graph(path) -> IntGraph:
    """The validated IntGraph stored in a quantized checkpoint."""
    from . import checkpoint
    ck = checkpoint.read(path)
    if ck.get("intgraph") is None:
        raise checkpoint.CheckpointError(f"{path}: holds no IntGraph; make one with "
                                         f"`sephw quantize {path} --calib N -o OUT.pt`")
    return graph_from_data(ck["intgraph"], path)


def graph_from_data(data, path) -> IntGraph:
    """:meth:`IntGraph.from_dict` of ``data`` read from ``path``; a malformed or invalid graph
    raises :class:`~sephw.checkpoint.CheckpointError` naming the file."""
    from . import checkpoint
    try:
        return IntGraph.from_dict(data)
    except Exception as e:    # IntGraphError, or a KeyError / TypeError / ... of malformed data
        msg = " ".join(str(e).split()) or type(e).__name__
        raise checkpoint.CheckpointError(f"{path}: its IntGraph is malformed or invalid: "
                                         f"{type(e).__name__}: {msg}") from None


def evaluate_integer(graph: IntGraph, images: torch.Tensor, labels: torch.Tensor, progress: bool = False) -> float:
    """Top-1 accuracy (fraction) of the integer reference on uint8 ``images``."""
    from . import reference
    pred = reference.run(graph, images, progress=progress).argmax(1)
    return float((pred == labels).double().mean()) if len(labels) else 0.0


def calibration_images(dataset: str, root: str | None, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` training images drawn uniformly without replacement (fixed ``seed``)."""
    from . import data
    x, _ = data.load(dataset, "train", root)
    if not 0 < n <= len(x):
        raise ValueError(f"--calib {n}: choose 1..{len(x)} calibration images")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx]


def cmd_quantize(a) -> int:
    from . import checkpoint
    from .train import command_line
    model, ck = checkpoint.load(a.model)
    meta = dict(ck["metadata"])
    ds = a.dataset or meta.get("dataset") or "fashion-mnist"
    x = calibration_images(ds, a.data, a.calib, a.seed)
    graph = quantize(model, x, a.a_bits, progress=True, method=a.method,
                     meta={"arch": ck["arch"], "source": str(a.model), "dataset": ds, "calib_seed": a.seed})
    meta["history"] = list(meta.get("history", [])) + [command_line()]
    meta["stage"] = "quantized"
    meta["quantize"] = {"calib": a.calib, "a_bits": a.a_bits, "dataset": ds, "seed": a.seed,
                        "method": graph.meta["calib_method"]}
    checkpoint.save(a.output, model, ck["arch"], ck["arch_kwargs"], meta,
                    binarize_scope=ck.get("binarize_scope"), intgraph=graph.to_dict())
    kinds = {}
    for n in graph.nodes:
        kinds[type(n).__name__] = kinds.get(type(n).__name__, 0) + 1
    print(f"wrote {a.output}: IntGraph with {len(graph.nodes)} nodes "
          f"({', '.join(f'{v} {k}' for k, v in kinds.items())}), a_bits={a.a_bits}, "
          f"calibrated on {a.calib} {ds} training images")
    return 0


def cmd_ir(a) -> int:
    print(load_graph(a.model).dump())
    return 0


def register_cli(subparsers) -> None:
    """Add ``quantize`` and ``ir`` to the ``sephw`` command line."""
    q = subparsers.add_parser("quantize", help="calibrate, fold BN/alpha and lower to the integer IR")
    q.add_argument("model", help="checkpoint to quantize (float, binarized or refined)")
    q.add_argument("--calib", type=int, required=True, help="number of training images to calibrate on")
    q.add_argument("-o", "--output", required=True, help="output checkpoint (with the IntGraph)")
    q.add_argument("--a-bits", type=int, default=8, choices=list(ig.A_BITS), help="activation width")
    q.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's)")
    q.add_argument("--data", default=None, help="dataset folder (default for fashion-mnist: "
                                                 "/usr/share/datasets/fashion-mnist)")
    q.add_argument("--seed", type=int, default=0, help="seed of the calibration-image draw")
    q.add_argument("--method", choices=CALIB_METHODS, default="mse",
                   help="activation scale: MSE-optimal clip (default) or the observed maximum")
    q.set_defaults(func=cmd_quantize)
    r = subparsers.add_parser("ir", help="print the integer IR of a quantized checkpoint")
    r.add_argument("model", help="quantized checkpoint")
    r.set_defaults(func=cmd_ir)
