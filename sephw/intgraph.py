"""IntGraph: the integer IR, the contract between the model side and the hardware.

docs/numerics.md is the specification of every node's semantics; :mod:`sephw.reference`
executes it bit-exactly and the RTL implements the same rules.

A graph is an ordered list of typed nodes (topological order). Every node produces one
stored activation tensor named by the node (except :class:`PoolFCNode`, which produces the
int64 logits). Node names are the qualified names of the float model's modules whose output
the tensor quantizes (``features.module1.prb1``), so a dump reads like the model.

Node types and their engines:

=====================  ===========================================================
:class:`InputNode`      raw uint8 pixels (scale 1/255, normalization folded downstream)
:class:`PatternConvNode` binarized k×k conv (LUT pattern engine) + post-process
:class:`IntConvNode`    int8 conv, 1×1 or an un-binarized k×k (DSP array) + post-process
:class:`PRBNode`        pattern k×k and int8 1×1 on the same input, two accumulators fused
:class:`ResidualAddNode` a conv accumulator plus a skip (identity code or 1×1 projection)
:class:`DepthwiseConcatNode` depthwise k×k branches over channel ranges, concatenated
:class:`PoolFCNode`     global average pool fused with the FC layer: exact integer logits
=====================  ===========================================================

Every post-processed node carries a :class:`Requant` (per-channel ``M_a, M_b, B, S``) and
its output :class:`ActSpec` (bits, signedness, scale); the clamp bounds come from the spec.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

FORMAT = "sephw-intgraph"
VERSION = 1

# Hardware limits (docs/numerics.md, "Parameters and their ranges").
PATTERN_KERNELS = (3, 5, 7)        # LUT pattern engine
INT_KERNELS = (1, 3, 5, 7)         # DSP MAC array
STRIDES = (1, 2)
A_BITS = range(1, 9)               # stored activation widths
M_MAX = 2 ** 15 - 1                # |M| fits an 18-bit signed DSP port (acc on the 25/27-bit port)
M_SKIP_MAX = 2 ** 24 - 1           # identity skip: the 8-bit code takes the 18-bit port, M the 25-bit one
S_MAX = 31                         # shift field is 5 bits
B_MAX = 2 ** 47 - 1                # bias register is 48 bits signed
ACC_MAX = 2 ** 31 - 1              # conv accumulators are int32
INT64_MAX = 2 ** 63 - 1


class IntGraphError(ValueError):
    """An IntGraph that breaks the specification; the message names the node."""


class UnsupportedError(ValueError):
    """A layer, shape or bit width the integer pipeline does not support; the message names
    the layer and what is supported."""


# --------------------------------------------------------------------------- value types
@dataclass
class ActSpec:
    """A stored activation tensor: shape (C, H, W) per image, code width and scale.

    Codes are unsigned ``[0, 2^bits - 1]`` (after a ReLU) or two's complement signed
    ``[-2^(bits-1), 2^(bits-1) - 1]`` (zero point 0); the real value is ``code * scale``.
    """
    channels: int
    height: int
    width: int
    bits: int
    signed: bool
    scale: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def lo(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1

    def describe(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}[{self.channels},{self.height},{self.width}]"


@dataclass
class ConvOperand:
    """One convolution accumulator feeding a post-process.

    ``kind`` is ``"pattern"`` (``weight`` int8 ±1, the LUT engine computes ``sum(±x)``) or
    ``"int8"`` (``weight`` int8 in [-127, 127], the DSP array). ``weight`` has shape
    ``(O, C_in // groups, k, k)``; zero padding ``padding`` on every side.
    """
    input: str
    kind: str
    weight: torch.Tensor
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def k(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def describe(self) -> str:
        o, cg, k, _ = self.weight.shape
        g = "dw" if self.groups > 1 and cg == 1 else f"g{self.groups}"
        return f"{self.kind} {k}x{k} %{self.input} -> {o} (cin/g={cg}, {g}, s{self.stride} p{self.padding})"


@dataclass
class SkipOperand:
    """The identity skip of a residual add: the input tensor's codes are ``acc_b`` as is."""
    input: str

    def describe(self) -> str:
        return f"identity %{self.input}"


@dataclass
class Requant:
    """Per-channel parameters of the fused rule
    ``y = clamp((acc_a*M_a + acc_b*M_b + B + 2^(S-1)) >> S, lo, hi)``.

    ``m_a``, ``m_b`` int32 (C,) with ``|M| <= 2^15 - 1`` (``|M_b| <= 2^24 - 1`` for an
    identity skip); ``bias`` int64 (C,) with
    ``|B| <= 2^47 - 1``; ``shift`` int32 (C,) in ``[0, 31]``. ``m_b`` is None for one
    accumulator. ``fold_error`` (output codes) bounds, for every input, the difference
    between the exact real pre-rounding value of the float model and ``(...)/2^S`` here;
    it is what the integer/fake-quant error bound rests on (docs/numerics.md).
    """
    m_a: torch.Tensor
    bias: torch.Tensor
    shift: torch.Tensor
    m_b: torch.Tensor | None = None
    fold_error: float = 0.0


@dataclass
class DepthwiseBranch:
    """One depthwise k×k branch: input channels ``[channel_start, channel_start + C)`` where
    ``C = weight.shape[0]``; ``weight`` (C, 1, k, k) int8 (pattern ±1 or int8)."""
    kind: str
    weight: torch.Tensor
    channel_start: int
    stride: int = 1
    padding: int = 0

    @property
    def k(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])

    def as_operand(self, input_name: str) -> ConvOperand:
        return ConvOperand(input_name, self.kind, self.weight, self.stride, self.padding, self.channels)


# --------------------------------------------------------------------------- nodes
@dataclass
class InputNode:
    """The network input: raw pixel codes (uint8 for images, scale 1/255)."""
    name: str
    out: ActSpec


@dataclass
class PatternConvNode:
    """Binarized k×k convolution + post-process (conv -> BN -> ReLU / saturation)."""
    name: str
    conv: ConvOperand
    requant: Requant
    out: ActSpec


@dataclass
class IntConvNode:
    """int8 convolution (1×1 projection, or a k×k left multi-bit) + post-process."""
    name: str
    conv: ConvOperand
    requant: Requant
    out: ActSpec


@dataclass
class PRBNode:
    """Pattern Residual Block: ``acc_a`` = k×k branch, ``acc_b`` = 1×1 branch, one input."""
    name: str
    kxk: ConvOperand
    p1x1: ConvOperand
    requant: Requant
    out: ActSpec


@dataclass
class ResidualAddNode:
    """Residual add: ``acc_a`` = ``main`` conv accumulator, ``acc_b`` = skip (identity
    codes of the block input, or a 1×1 projection accumulator)."""
    name: str
    main: ConvOperand
    skip: ConvOperand | SkipOperand
    requant: Requant
    out: ActSpec


@dataclass
class DepthwiseConcatNode:
    """Depthwise multi-kernel convolution: every branch convolves its channel range of
    ``input`` depthwise; the branch accumulators are concatenated in branch order, then
    post-processed per concatenated channel (Multiception: every branch sees all channels;
    MixConv: branches split the channels)."""
    name: str
    input: str
    branches: list
    requant: Requant
    out: ActSpec


@dataclass
class PoolFCNode:
    """Global average pool + FC: ``logit[o] = (sum_c W[o,c] * sum_hw x[c]) * M[o] + B[o]``.

    ``weight`` int8 (O, C); ``m``, ``bias`` int64 (O,). ``logit_scale``: the real logit is
    ``logit * logit_scale`` (one scale for every row, so argmax is the prediction)."""
    name: str
    input: str
    weight: torch.Tensor
    m: torch.Tensor
    bias: torch.Tensor
    logit_scale: float


REQUANT_NODES = (PatternConvNode, IntConvNode, PRBNode, ResidualAddNode, DepthwiseConcatNode)
NODE_TYPES = (InputNode,) + REQUANT_NODES + (PoolFCNode,)
_CLASSES = {c.__name__: c for c in NODE_TYPES + (ActSpec, ConvOperand, SkipOperand, Requant, DepthwiseBranch)}


def node_operands(node) -> list:
    """The accumulator operands of a post-processed node, ``[a]`` or ``[a, b]``."""
    if isinstance(node, (PatternConvNode, IntConvNode)):
        return [node.conv]
    if isinstance(node, PRBNode):
        return [node.kxk, node.p1x1]
    if isinstance(node, ResidualAddNode):
        return [node.main, node.skip]
    if isinstance(node, DepthwiseConcatNode):
        return [b.as_operand(node.input) for b in node.branches]
    return []


def node_inputs(node) -> list[str]:
    """Names of the tensors a node reads."""
    if isinstance(node, InputNode):
        return []
    if isinstance(node, (DepthwiseConcatNode, PoolFCNode)):
        return [node.input]
    names = []
    for op in node_operands(node):
        if op.input not in names:
            names.append(op.input)
    return names


def conv_out_hw(h: int, w: int, k: int, stride: int, padding: int) -> tuple[int, int]:
    """Output spatial size of a zero-padded convolution."""
    return (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1


# --------------------------------------------------------------------------- bounds
def operand_range(op, src: ActSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-output-channel accumulator range ``(lo, hi)`` (int64 (O,)) of an operand
    over every input whose codes lie in ``[src.lo, src.hi]``, for an output position whose
    whole window lies inside the input (positions touching the padding only drop terms,
    each of which could be 0 anyway, so they stay inside this range)."""
    if isinstance(op, SkipOperand):
        c = src.channels
        return torch.full((c,), src.lo, dtype=torch.int64), torch.full((c,), src.hi, dtype=torch.int64)
    w = op.weight.to(torch.int64).reshape(op.weight.shape[0], -1)
    hi = torch.where(w > 0, w * src.hi, w * src.lo).sum(1)
    lo = torch.where(w > 0, w * src.lo, w * src.hi).sum(1)
    return lo, hi


def worst_case_acc(kind: str, cin_per_group: int, k: int, bits: int, signed: bool) -> int:
    """Shape-only bound on ``|acc|`` of a conv operand (any weights of that kind):
    ``Cg * k*k * w_max * x_max`` with ``w_max`` 1 (pattern) or 127 (int8) and ``x_max``
    ``2^bits - 1`` (unsigned) or ``2^(bits-1)`` (signed)."""
    w_max = 1 if kind == "pattern" else 127
    x_max = 2 ** (bits - 1) if signed else 2 ** bits - 1
    return cin_per_group * k * k * w_max * x_max


def signed_bits(lo: int, hi: int) -> int:
    """Two's complement width holding every integer in ``[lo, hi]``."""
    n = 1
    while not (-(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1):
        n += 1
    return n


def worst_case_acc_bits(kind: str, cin_per_group: int, k: int, bits: int, signed: bool) -> int:
    """``ceil(log2(A + 1)) + 1``: the signed accumulator width for :func:`worst_case_acc` A."""
    a = worst_case_acc(kind, cin_per_group, k, bits, signed)
    return math.ceil(math.log2(a + 1)) + 1


# --------------------------------------------------------------------------- the graph
@dataclass
class IntGraph:
    """An ordered list of nodes: one :class:`InputNode` first, one :class:`PoolFCNode` last.

    ``a_bits`` is the activation width the graph was lowered with (stored tensors may be
    narrower only where the spec says so); ``meta`` free-form provenance (arch, calib).
    """
    nodes: list
    a_bits: int = 8
    meta: dict = field(default_factory=dict)

    # -- access
    def __post_init__(self):
        self._by_name = None

    def node(self, name: str):
        """The node called ``name`` (KeyError naming it if there is none)."""
        n = (self._by_name or {}).get(name)
        if n is None or n.name != name or len(self._by_name) != len(self.nodes):
            self._by_name = {x.name: x for x in self.nodes}   # nodes were edited: re-index
            n = self._by_name.get(name)
        if n is None:
            raise KeyError(f"no node named {name!r} in the IntGraph")
        return n

    @property
    def input(self) -> InputNode:
        return self.nodes[0]

    @property
    def output(self) -> PoolFCNode:
        return self.nodes[-1]

    def spec(self, name: str) -> ActSpec:
        """The :class:`ActSpec` of the tensor node ``name`` produces."""
        n = self.node(name)
        if isinstance(n, PoolFCNode):
            raise KeyError(f"{name} produces logits, not an activation tensor")
        return n.out

    def acc_ranges(self, node) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Exact accumulator range per operand (see :func:`operand_range`). For a
        :class:`DepthwiseConcatNode` one range over the concatenated channels."""
        if isinstance(node, DepthwiseConcatNode):
            src = self.spec(node.input)
            rs = [operand_range(b.as_operand(node.input), src) for b in node.branches]
            return [(torch.cat([r[0] for r in rs]), torch.cat([r[1] for r in rs]))]
        if isinstance(node, PoolFCNode):
            src = self.spec(node.input)
            hw = src.height * src.width
            w = node.weight.to(torch.int64)
            hi = torch.where(w > 0, w * src.hi, w * src.lo).sum(1) * hw
            lo = torch.where(w > 0, w * src.lo, w * src.hi).sum(1) * hw
            return [(lo, hi)]
        return [operand_range(op, self.spec(op.input)) for op in node_operands(node)]

    def postprocess_bound(self, node) -> int:
        """Bound on ``|acc_a*M_a + acc_b*M_b + B + 2^(S-1)|`` over all inputs (int64 check)."""
        rq = node.requant
        ranges = self.acc_ranges(node)
        ms = [rq.m_a] if len(ranges) == 1 else [rq.m_a, rq.m_b]
        total = rq.bias.abs().to(torch.int64) + (1 << rq.shift.to(torch.int64)) // 2
        for (lo, hi), m in zip(ranges, ms):
            total = total + torch.maximum(lo.abs(), hi.abs()) * m.abs().to(torch.int64)
        return int(total.max())

    # -- validation
    def validate(self) -> "IntGraph":
        """Check names, order, shapes, dtypes, value ranges and accumulator bounds; raise
        :class:`IntGraphError` naming the node at the first violation. Returns self."""
        if not self.nodes:
            raise IntGraphError("empty IntGraph")
        if not isinstance(self.a_bits, int) or self.a_bits not in A_BITS:
            raise IntGraphError(f"graph a_bits={self.a_bits!r}; supported 1..8")
        specs: dict[str, ActSpec] = {}
        for i, n in enumerate(self.nodes):
            if not isinstance(n, NODE_TYPES):
                raise IntGraphError(f"node {i} is a {type(n).__name__}, not an IntGraph node type")
            if not isinstance(n.name, str) or not n.name:
                raise IntGraphError(f"node {i} has no name")
            if n.name in specs or (isinstance(n, PoolFCNode) and i != len(self.nodes) - 1):
                raise IntGraphError(f"{n.name}: duplicate name or pool+FC not last")
            if (i == 0) != isinstance(n, InputNode):
                raise IntGraphError(f"{n.name}: the first node, and only it, must be the InputNode")
            for src in node_inputs(n):
                if src not in specs:
                    raise IntGraphError(f"{n.name}: reads %{src}, which no earlier node produces")
            try:
                self._validate_node(n, specs)
            except IntGraphError:
                raise
            except (TypeError, ValueError, RuntimeError, AttributeError) as e:
                raise IntGraphError(f"{n.name}: malformed node: {e}") from None
            if not isinstance(n, PoolFCNode):
                specs[n.name] = n.out
        if not isinstance(self.nodes[-1], PoolFCNode):
            raise IntGraphError("the last node must be the PoolFCNode (global average pool + FC)")
        return self

    def _validate_spec(self, n, s: ActSpec) -> None:
        if not isinstance(s, ActSpec):
            raise IntGraphError(f"{n.name}: out must be an ActSpec")
        if min(s.channels, s.height, s.width) < 1:
            raise IntGraphError(f"{n.name}: empty output shape {s.shape}")
        if s.bits not in A_BITS or (s.signed and s.bits < 2):
            raise IntGraphError(f"{n.name}: {s.bits}-bit {'signed' if s.signed else 'unsigned'} "
                                f"activations unsupported; supported: unsigned 1..8, signed 2..8 bits")
        if not (isinstance(s.scale, float) and math.isfinite(s.scale) and s.scale > 0):
            raise IntGraphError(f"{n.name}: activation scale must be a positive finite float, got {s.scale!r}")

    def _validate_conv(self, n, op: ConvOperand, specs, what: str) -> tuple[int, int, int]:
        w = op.weight
        if not isinstance(w, torch.Tensor) or w.dtype != torch.int8 or w.dim() != 4:
            raise IntGraphError(f"{n.name}: {what} weight must be an int8 (O, C/g, k, k) tensor")
        o, cg, k, k2 = w.shape
        if k != k2:
            raise IntGraphError(f"{n.name}: {what} kernel {k}x{k2}; only square kernels are supported")
        if op.kind == "pattern":
            if k not in PATTERN_KERNELS:
                raise IntGraphError(f"{n.name}: {what} pattern kernel {k}x{k}; the pattern engine supports k in {PATTERN_KERNELS}")
            if not bool(((w == 1) | (w == -1)).all()):
                raise IntGraphError(f"{n.name}: {what} pattern holds values other than +1/-1")
        elif op.kind == "int8":
            if k not in INT_KERNELS:
                raise IntGraphError(f"{n.name}: {what} int8 kernel {k}x{k}; supported k in {INT_KERNELS}")
            if int(w.min()) < -127:
                raise IntGraphError(f"{n.name}: {what} int8 weight -128; the range is symmetric [-127, 127]")
        else:
            raise IntGraphError(f"{n.name}: {what} kind {op.kind!r}; supported 'pattern', 'int8'")
        if op.stride not in STRIDES:
            raise IntGraphError(f"{n.name}: {what} stride {op.stride}; supported {STRIDES}")
        if not 0 <= op.padding <= k // 2:
            raise IntGraphError(f"{n.name}: {what} padding {op.padding}; supported 0..{k // 2} for k={k}")
        src = specs[op.input]
        if op.groups < 1 or src.channels != cg * op.groups or o % op.groups:
            raise IntGraphError(f"{n.name}: {what} weight {tuple(w.shape)} with groups={op.groups} "
                                f"does not fit input %{op.input} with {src.channels} channels")
        ho, wo = conv_out_hw(src.height, src.width, k, op.stride, op.padding)
        if ho < 1 or wo < 1:
            raise IntGraphError(f"{n.name}: {what} {k}x{k} kernel larger than padded input {src.shape}")
        lo, hi = operand_range(op, src)
        if int(hi.max()) > ACC_MAX or int(lo.min()) < -ACC_MAX - 1:
            raise IntGraphError(f"{n.name}: {what} accumulator range [{int(lo.min())}, {int(hi.max())}] exceeds int32")
        return o, ho, wo

    def _validate_requant(self, n, channels: int, two: bool, skip_b: bool = False) -> None:
        rq = n.requant
        checks = [("m_a", rq.m_a, torch.int32), ("bias", rq.bias, torch.int64), ("shift", rq.shift, torch.int32)]
        if two:
            checks.append(("m_b", rq.m_b, torch.int32))
        elif rq.m_b is not None:
            raise IntGraphError(f"{n.name}: one accumulator but m_b is set")
        for name, t, dt in checks:
            if not isinstance(t, torch.Tensor) or t.dtype != dt or tuple(t.shape) != (channels,):
                raise IntGraphError(f"{n.name}: requant {name} must be {dt} of shape ({channels},)")
        for name, t, _ in checks:
            bound = M_SKIP_MAX if (name == "m_b" and skip_b) else M_MAX
            if name.startswith("m_") and int(t.abs().max()) > bound:
                raise IntGraphError(f"{n.name}: |{name}| > {bound} (DSP multiplier port)")
        if int(rq.bias.abs().max()) > B_MAX:
            raise IntGraphError(f"{n.name}: |bias| > 2^47 - 1")
        if int(rq.shift.min()) < 0 or int(rq.shift.max()) > S_MAX:
            raise IntGraphError(f"{n.name}: shift outside [0, {S_MAX}]")
        if self.postprocess_bound(n) > INT64_MAX:
            raise IntGraphError(f"{n.name}: post-process sum may overflow int64")

    def _validate_node(self, n, specs: dict) -> None:
        if isinstance(n, InputNode):
            self._validate_spec(n, n.out)
            if n.out.signed:
                raise IntGraphError(f"{n.name}: the network input is unsigned pixel codes")
            return
        if isinstance(n, PoolFCNode):
            src = specs[n.input]
            w = n.weight
            if not isinstance(w, torch.Tensor) or w.dtype != torch.int8 or w.dim() != 2 or w.shape[1] != src.channels:
                raise IntGraphError(f"{n.name}: weight must be int8 (O, {src.channels})")
            if int(w.min()) < -127:
                raise IntGraphError(f"{n.name}: int8 weight -128; the range is symmetric [-127, 127]")
            for name, t in (("m", n.m), ("bias", n.bias)):
                if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or tuple(t.shape) != (w.shape[0],):
                    raise IntGraphError(f"{n.name}: {name} must be int64 of shape ({w.shape[0]},)")
            if int(n.m.abs().max()) > M_MAX:
                raise IntGraphError(f"{n.name}: |m| > {M_MAX}")
            (lo, hi), = self.acc_ranges(n)
            if int(torch.maximum(lo.abs(), hi.abs()).max()) > ACC_MAX:
                raise IntGraphError(f"{n.name}: pooled FC accumulator may exceed int32")
            amax = torch.maximum(lo.abs(), hi.abs()).tolist()
            if max(a * abs(m) + abs(b) for a, m, b in zip(amax, n.m.tolist(), n.bias.tolist())) > INT64_MAX:
                raise IntGraphError(f"{n.name}: logits may overflow int64")
            if not (math.isfinite(n.logit_scale) and n.logit_scale > 0):
                raise IntGraphError(f"{n.name}: logit_scale must be positive")
            return
        self._validate_spec(n, n.out)
        if isinstance(n, DepthwiseConcatNode):
            src = specs[n.input]
            if not n.branches:
                raise IntGraphError(f"{n.name}: no branches")
            total, hw = 0, None
            for j, b in enumerate(n.branches):
                if not isinstance(b, DepthwiseBranch):
                    raise IntGraphError(f"{n.name}: branch {j} is not a DepthwiseBranch")
                if b.weight.dim() != 4 or b.weight.shape[1] != 1:
                    raise IntGraphError(f"{n.name}: branch {j} weight must be (C, 1, k, k)")
                if b.channel_start < 0 or b.channel_start + b.channels > src.channels:
                    raise IntGraphError(f"{n.name}: branch {j} channels [{b.channel_start}, "
                                        f"{b.channel_start + b.channels}) outside input's {src.channels}")
                sub = dict(specs)
                sub["__branch"] = ActSpec(b.channels, src.height, src.width, src.bits, src.signed, src.scale)
                op = ConvOperand("__branch", b.kind, b.weight, b.stride, b.padding, b.channels)
                _, ho, wo = self._validate_conv(n, op, sub, f"branch {j}")
                if hw not in (None, (ho, wo)):
                    raise IntGraphError(f"{n.name}: branch {j} output {ho}x{wo} differs from branch 0's {hw}")
                hw = (ho, wo)
                total += b.channels
            if n.out.shape != (total,) + hw:
                raise IntGraphError(f"{n.name}: out shape {n.out.shape}, branches give {(total,) + hw}")
            self._validate_requant(n, total, two=False)
            return
        ops = node_operands(n)
        if isinstance(n, PRBNode) and n.kxk.input != n.p1x1.input:
            raise IntGraphError(f"{n.name}: PRB branches must read the same input")
        shapes = []
        for what, op in zip(("acc_a", "acc_b"), ops):
            if isinstance(op, SkipOperand):
                s = specs[op.input]
                shapes.append(s.shape)
            else:
                shapes.append(self._validate_conv(n, op, specs, what))
        if any(s != n.out.shape for s in shapes):
            raise IntGraphError(f"{n.name}: operand shapes {shapes} differ from out {n.out.shape}")
        if isinstance(n, PatternConvNode) and n.conv.kind != "pattern":
            raise IntGraphError(f"{n.name}: a PatternConvNode's conv must be kind 'pattern'")
        if isinstance(n, IntConvNode) and n.conv.kind != "int8":
            raise IntGraphError(f"{n.name}: an IntConvNode's conv must be kind 'int8'")
        if isinstance(n, PRBNode):
            if n.kxk.k < 2 or n.p1x1.k != 1:
                raise IntGraphError(f"{n.name}: PRB needs a k×k (k>1) branch and a 1×1 branch")
        if isinstance(n, ResidualAddNode):
            if not isinstance(n.skip, SkipOperand) and (n.skip.k != 1 or n.skip.kind != "int8"):
                raise IntGraphError(f"{n.name}: a projection skip must be an int8 1×1 conv")
        self._validate_requant(n, n.out.channels, two=len(ops) == 2,
                               skip_b=isinstance(n, ResidualAddNode) and isinstance(n.skip, SkipOperand))

    # -- serialization
    def to_dict(self) -> dict:
        """Plain data (dicts, lists, str, int, float, bool, tensors) for the checkpoint's
        ``intgraph`` key; loads with ``torch.load(weights_only=True)``."""
        return {"format": FORMAT, "version": VERSION, "a_bits": self.a_bits, "meta": dict(self.meta),
                "nodes": [_encode(n) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict) -> "IntGraph":
        """Inverse of :meth:`to_dict`; validates the result."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise IntGraphError(f"not a serialized IntGraph (no format={FORMAT!r} marker)")
        if d.get("version") != VERSION:
            raise IntGraphError(f"IntGraph version {d.get('version')!r}; this sephw reads {VERSION}")
        return cls([_decode(n) for n in d["nodes"]], int(d["a_bits"]), dict(d.get("meta", {}))).validate()

    # -- text dump
    def dump(self) -> str:
        """A readable listing: one block per node with operands, shapes, scales, parameter
        ranges and accumulator widths."""
        lines = [f"IntGraph: {len(self.nodes)} nodes, a_bits={self.a_bits}"]
        for k, v in self.meta.items():
            if isinstance(v, (str, int, float)):
                lines.append(f"  meta {k} = {v}")
        for n in self.nodes:
            kind = type(n).__name__.replace("Node", "")
            if isinstance(n, InputNode):
                lines.append(f"%{n.name} = Input -> {n.out.describe()} scale={n.out.scale:.6g}")
                continue
            if isinstance(n, PoolFCNode):
                src = self.spec(n.input)
                (lo, hi), = self.acc_ranges(n)
                lines.append(f"%{n.name} = PoolFC(%{n.input}) -> int64 logits[{n.weight.shape[0]}] "
                             f"sum over {src.height}x{src.width}, W int8 {tuple(n.weight.shape)}, "
                             f"M in [{int(n.m.min())}, {int(n.m.max())}], logit_scale={n.logit_scale:.6g}, "
                             f"acc s{signed_bits(int(lo.min()), int(hi.max()))}")
                continue
            lines.append(f"%{n.name} = {kind} -> {n.out.describe()} scale={n.out.scale:.6g}")
            ranges = self.acc_ranges(n)
            if isinstance(n, DepthwiseConcatNode):
                for b in n.branches:
                    lines.append(f"    branch {b.kind} {b.k}x{b.k} dw on %{n.input}[{b.channel_start}:"
                                 f"{b.channel_start + b.channels}] s{b.stride} p{b.padding}")
                names = ["acc"]
            else:
                names = ["acc_a", "acc_b"]
                for nm, op in zip(names, node_operands(n)):
                    lines.append(f"    {nm}: {op.describe()}")
            for nm, (lo, hi) in zip(names, ranges):
                lines.append(f"    {nm} range [{int(lo.min())}, {int(hi.max())}] -> "
                             f"s{signed_bits(int(lo.min()), int(hi.max()))}")
            rq = n.requant
            ms = f"M_a in [{int(rq.m_a.min())}, {int(rq.m_a.max())}]"
            if rq.m_b is not None:
                ms += f", M_b in [{int(rq.m_b.min())}, {int(rq.m_b.max())}]"
            lines.append(f"    requant {ms}, S in [{int(rq.shift.min())}, {int(rq.shift.max())}], "
                         f"|B| <= {int(rq.bias.abs().max())}, clamp [{n.out.lo}, {n.out.hi}], "
                         f"post-process s{signed_bits(-self.postprocess_bound(n), self.postprocess_bound(n))}, "
                         f"fold error <= {rq.fold_error:.3g} codes")
        return "\n".join(lines)


def _encode(v):
    if dataclasses.is_dataclass(v):
        return {"__type__": type(v).__name__, **{f.name: _encode(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    return v


def _decode(v):
    if isinstance(v, dict) and "__type__" in v:
        cls = _CLASSES.get(v["__type__"])
        if cls is None:
            raise IntGraphError(f"unknown IntGraph record type {v['__type__']!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(v) - names - {"__type__"}
        if extra:
            raise IntGraphError(f"{v['__type__']} record has unknown fields {sorted(extra)}")
        return cls(**{k: _decode(x) for k, x in v.items() if k != "__type__"})
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v
