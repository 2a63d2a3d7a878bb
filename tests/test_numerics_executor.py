"""The reference executor against a deliberately plain integer implementation, and the
accumulator bounds of docs/numerics.md against adversarial inputs.

The plain implementation below shares no code with sephw: numpy loops over output
positions for the convolutions, Python integers (arbitrary precision) for the post-process.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from sephw import intgraph as ig, reference
from sephw.intgraph import (ActSpec, ConvOperand, DepthwiseBranch, DepthwiseConcatNode, InputNode,
                            IntConvNode, IntGraph, PatternConvNode, PoolFCNode, PRBNode, Requant,
                            ResidualAddNode, SkipOperand)

SETTINGS = settings(max_examples=40, deadline=None)


# --------------------------------------------------------------------------- plain model
def plain_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """acc[n,o,y,x] = sum over the group's channels and the window, with zero padding."""
    n, c, h, wd = x.shape
    o, cg, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.int64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, ho, wo), dtype=np.int64)
    per = o // groups
    for oc in range(o):
        g = oc // per
        xs = xp[:, g * cg:(g + 1) * cg]
        for yy in range(ho):
            for xx in range(wo):
                win = xs[:, :, yy * stride:yy * stride + k, xx * stride:xx * stride + k]
                out[:, oc, yy, xx] = (win * w[oc].astype(np.int64)).sum(axis=(1, 2, 3))
    return out


def plain_requant(accs: list[np.ndarray], ms: list[np.ndarray], b: np.ndarray, s: np.ndarray,
                  lo: int, hi: int) -> np.ndarray:
    """Python-int evaluation of clamp((sum acc*M + B + 2^(S-1)) >> S, lo, hi) per element."""
    out = np.zeros(accs[0].shape, dtype=np.int64)
    n, c = accs[0].shape[:2]
    for i in range(n):
        for ch in range(c):
            sh = int(s[ch])
            for idx in np.ndindex(*accs[0].shape[2:]):
                t = sum(int(a[(i, ch) + idx]) * int(m[ch]) for a, m in zip(accs, ms)) + int(b[ch])
                t += (1 << (sh - 1)) if sh > 0 else 0
                out[(i, ch) + idx] = min(hi, max(lo, t >> sh))
    return out


def plain_run(graph: IntGraph, images: np.ndarray) -> tuple[np.ndarray, dict]:
    env = {}
    for n in graph.nodes:
        if isinstance(n, InputNode):
            env[n.name] = images.astype(np.int64)
        elif isinstance(n, PoolFCNode):
            pooled = env[n.input].sum(axis=(2, 3))
            logits = np.zeros((pooled.shape[0], n.weight.shape[0]), dtype=object)
            w = n.weight.numpy()
            for i in range(pooled.shape[0]):
                for o in range(w.shape[0]):
                    acc = sum(int(w[o, c]) * int(pooled[i, c]) for c in range(w.shape[1]))
                    logits[i, o] = acc * int(n.m[o]) + int(n.bias[o])
            return logits.astype(np.int64), env
        else:
            def acc(op):
                if isinstance(op, SkipOperand):
                    return env[op.input]
                return plain_conv(env[op.input], op.weight.numpy(), op.stride, op.padding, op.groups)
            if isinstance(n, DepthwiseConcatNode):
                x = env[n.input]
                accs = [np.concatenate([plain_conv(x[:, b.channel_start:b.channel_start + b.channels],
                                                   b.weight.numpy(), b.stride, b.padding, b.channels)
                                        for b in n.branches], axis=1)]
            else:
                accs = [acc(op) for op in ig.node_operands(n)]
            rq = n.requant
            ms = [rq.m_a.numpy()] + ([rq.m_b.numpy()] if rq.m_b is not None else [])
            env[n.name] = plain_requant(accs, ms, rq.bias.numpy(), rq.shift.numpy(), n.out.lo, n.out.hi)
    raise AssertionError("graph without PoolFC")


# --------------------------------------------------------------------------- random graphs
class Builder:
    """Random but valid nodes; shapes from hypothesis, tensor contents from a numpy RNG."""

    def __init__(self, rng: np.random.Generator, draw):
        self.rng, self.draw = rng, draw
        self.nodes, self.specs = [], {}

    def add(self, node):
        self.nodes.append(node)
        if not isinstance(node, PoolFCNode):
            self.specs[node.name] = node.out
        return node.name

    def weight(self, kind, o, cg, k):
        if kind == "pattern":
            return torch.from_numpy(self.rng.choice([-1, 1], size=(o, cg, k, k)).astype(np.int8))
        return torch.from_numpy(self.rng.integers(-127, 128, size=(o, cg, k, k)).astype(np.int8))

    def out_spec(self, c, h, w, signed=None):
        signed = self.draw(st.booleans()) if signed is None else signed
        bits = self.draw(st.integers(2 if signed else 1, 8))
        return ActSpec(c, h, w, bits, signed, 0.01)

    def requant(self, ranges, out, skip_b=False):
        """Parameters that put typical outputs inside the clamp range (so rounding matters),
        with random signs, biases and an occasional S = 0."""
        c = out.channels
        ms, amax = [], np.zeros(c)
        for j, (lo, hi) in enumerate(ranges):
            bound = ig.M_SKIP_MAX if (j == 1 and skip_b) else ig.M_MAX
            ms.append(self.rng.integers(-bound, bound + 1, size=c))
            amax += np.maximum(lo.abs().numpy(), hi.abs().numpy()) * np.abs(ms[-1])
        span = out.hi - out.lo + 1
        # the worst case is rarely approached (random sums cancel), so shift by less than it
        # takes to map it onto the span: most outputs land inside [lo, hi], some saturate
        s = np.clip(np.ceil(np.log2(np.maximum(amax, 1) / span)).astype(np.int64)
                    - self.rng.integers(0, 7, size=c), 0, ig.S_MAX)
        if self.draw(st.booleans()):
            s[0] = 0
        # bias: a few codes of offset plus a random fraction below one code (exercises rounding)
        b = (self.rng.integers(-span, span + 1, size=c) * (2 ** s)
             + np.array([self.rng.integers(0, 2 ** int(x)) for x in s]))
        return Requant(m_a=torch.from_numpy(ms[0]).int(), bias=torch.from_numpy(b).long(),
                       shift=torch.from_numpy(s).int(),
                       m_b=torch.from_numpy(ms[1]).int() if len(ms) > 1 else None)

    def conv_operand(self, x, kind=None, k=None, stride=None, padding=None, cout=None, groups=None):
        src = self.specs[x]
        d = self.draw
        kind = kind or d(st.sampled_from(["pattern", "int8"]))
        k = k or d(st.sampled_from(ig.PATTERN_KERNELS if kind == "pattern" else ig.INT_KERNELS))
        stride = stride or d(st.sampled_from(ig.STRIDES))
        padding = d(st.integers(0, k // 2)) if padding is None else padding
        if groups is None:
            divs = [g for g in (1, 2, 4, src.channels) if src.channels % g == 0]
            groups = d(st.sampled_from(divs))
        cout = cout or groups * d(st.integers(1, 3))
        return ConvOperand(x, kind, self.weight(kind, cout, src.channels // groups, k), stride, padding, groups)

    def hw(self, op):
        s = self.specs[op.input]
        return ig.conv_out_hw(s.height, s.width, op.k, op.stride, op.padding)

    def finish_requant(self, name, ops, out, cls, **fields):
        ranges = [ig.operand_range(op, self.specs[op.input]) for op in ops]
        skip_b = cls is ResidualAddNode and isinstance(ops[1], SkipOperand)
        node = cls(name=name, requant=self.requant(ranges, out, skip_b), out=out, **fields)
        return self.add(node)


def random_node(b: Builder, x: str, kind: str) -> str:
    d = b.draw
    name = f"n{len(b.nodes)}"
    if kind == "conv":
        op = b.conv_operand(x)
        out = b.out_spec(op.out_channels, *b.hw(op))
        cls = PatternConvNode if op.kind == "pattern" else IntConvNode
        return b.finish_requant(name, [op], out, cls, conv=op)
    if kind == "prb":
        k = d(st.sampled_from(ig.PATTERN_KERNELS))
        stride = d(st.sampled_from(ig.STRIDES))
        a = b.conv_operand(x, "pattern", k, stride, k // 2)
        p = b.conv_operand(x, "int8", 1, stride, 0, cout=a.out_channels,
                           groups=d(st.sampled_from([g for g in (1, 2) if a.out_channels % g == 0
                                                     and b.specs[x].channels % g == 0])))
        out = b.out_spec(a.out_channels, *b.hw(a), signed=False)
        return b.finish_requant(name, [a, p], out, PRBNode, kxk=a, p1x1=p)
    if kind == "residual":
        src = b.specs[x]
        k = d(st.sampled_from((1, 3)))
        main = b.conv_operand(x, "int8" if k == 1 else None, k, 1, k // 2, cout=src.channels, groups=1)
        out = b.out_spec(src.channels, src.height, src.width, signed=False)
        # skip: identity of an earlier unsigned tensor of this shape, else a 1×1 projection
        same = [n for n, s in b.specs.items() if s.shape == src.shape and not s.signed]
        if same and d(st.booleans()):
            skip = SkipOperand(d(st.sampled_from(same)))
        else:
            skip = b.conv_operand(x, "int8", 1, 1, 0, cout=src.channels, groups=1)
        return b.finish_requant(name, [main, skip], out, ResidualAddNode, main=main, skip=skip)
    if kind == "dwconcat":
        src = b.specs[x]
        stride = d(st.sampled_from(ig.STRIDES))
        nb = d(st.integers(1, 3))
        split = d(st.booleans()) and src.channels >= nb
        bounds = np.linspace(0, src.channels, nb + 1).astype(int) if split else None
        branches = []
        for j in range(nb):
            kk = d(st.sampled_from(ig.PATTERN_KERNELS))
            bk = d(st.sampled_from(["pattern", "int8"]))
            c0, c = (int(bounds[j]), int(bounds[j + 1] - bounds[j])) if split else (0, src.channels)
            if c == 0:
                continue
            branches.append(DepthwiseBranch(bk, b.weight(bk, c, 1, kk), c0, stride, kk // 2))
        ops = [br.as_operand(x) for br in branches]
        total = sum(br.channels for br in branches)
        ho, wo = b.hw(ops[0])
        out = b.out_spec(total, ho, wo)
        c_lo = torch.cat([ig.operand_range(o, src)[0] for o in ops])
        c_hi = torch.cat([ig.operand_range(o, src)[1] for o in ops])
        node = DepthwiseConcatNode(name, x, branches, b.requant([(c_lo, c_hi)], out), out)
        return b.add(node)
    raise AssertionError(kind)


@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    b = Builder(rng, draw)
    c = draw(st.sampled_from([1, 2, 4, 8]))
    h, w = draw(st.integers(7, 10)), draw(st.integers(7, 10))
    bits = draw(st.integers(1, 8))
    b.add(InputNode("input", ActSpec(c, h, w, bits, False, 1 / 255)))
    x = "input"
    kinds = draw(st.lists(st.sampled_from(["conv", "prb", "residual", "dwconcat"]), min_size=1, max_size=3))
    for kind in kinds:
        s = b.specs[x]
        if kind in ("prb", "residual") and s.signed:
            kind = "conv"
        if min(s.height, s.width) < 7:
            kind = "conv1x1"
        if kind == "conv1x1":
            op = b.conv_operand(x, "int8", 1, 1, 0)
            out = b.out_spec(op.out_channels, *b.hw(op), signed=False)
            x = b.finish_requant(f"n{len(b.nodes)}", [op], out, IntConvNode, conv=op)
        else:
            x = random_node(b, x, kind)
    src = b.specs[x]
    o = draw(st.integers(1, 5))
    wfc = torch.from_numpy(rng.integers(-127, 128, size=(o, src.channels)).astype(np.int8))
    m = torch.from_numpy(rng.integers(-ig.M_MAX, ig.M_MAX + 1, size=o)).long()
    bias = torch.from_numpy(rng.integers(-2 ** 40, 2 ** 40, size=o)).long()
    b.add(PoolFCNode("fc", x, wfc, m, bias, 1e-3))
    g = IntGraph(b.nodes, 8).validate()
    n = draw(st.integers(1, 2))
    images = torch.from_numpy(rng.integers(0, 2 ** bits, size=(n, c, h, w)).astype(np.uint8))
    return g, images


@SETTINGS
@given(graphs())
def test_executor_bit_exact_against_plain(case):
    g, images = case
    logits, inter = reference.run(g, images, return_intermediates=True)
    want_logits, want = plain_run(g, images.numpy())
    inside = 0
    for n in g.nodes[:-1]:
        inside += int(((inter[n.name] > n.out.lo) & (inter[n.name] < n.out.hi)).sum())
        got = inter[n.name]
        assert got.dtype == torch.int64
        np.testing.assert_array_equal(got.numpy(), want[n.name], err_msg=n.name)
        assert int(got.min()) >= n.out.lo and int(got.max()) <= n.out.hi
    assert logits.dtype == torch.int64
    np.testing.assert_array_equal(logits.numpy(), want_logits)
    INSIDE.append(inside > 0)


INSIDE: list[bool] = []


def test_executor_cases_were_not_all_saturated():
    """Guard on the generator above: most random graphs must produce codes strictly
    inside the clamp range (otherwise rounding and multipliers go untested)."""
    if len(INSIDE) < 10:
        pytest.skip("run together with test_executor_bit_exact_against_plain")
    assert sum(INSIDE) >= 0.7 * len(INSIDE), INSIDE


def test_executor_batches_and_determinism():
    rng = np.random.default_rng(1)
    # a fixed graph: conv -> PRB -> pool+FC, run in different batch sizes
    x = ActSpec(2, 9, 9, 8, False, 1 / 255)
    a = ConvOperand("input", "pattern", torch.from_numpy(rng.choice([-1, 1], (8, 2, 3, 3)).astype(np.int8)), 1, 1, 1)
    rq = Requant(torch.full((8,), 3000, dtype=torch.int32), torch.zeros(8, dtype=torch.int64),
                 torch.full((8,), 14, dtype=torch.int32))
    nodes = [InputNode("input", x), PatternConvNode("c", a, rq, ActSpec(8, 9, 9, 8, False, 0.1)),
             PoolFCNode("fc", "c", torch.ones(3, 8, dtype=torch.int8), torch.ones(3, dtype=torch.int64),
                        torch.zeros(3, dtype=torch.int64), 1.0)]
    g = IntGraph(nodes).validate()
    imgs = torch.from_numpy(rng.integers(0, 256, (7, 2, 9, 9)).astype(np.uint8))
    l1 = reference.run(g, imgs, batch_size=7)
    l2 = reference.run(g, imgs, batch_size=2)
    assert torch.equal(l1, l2)
    assert torch.equal(reference.run(g, imgs[:3]), l1[:3])
    with pytest.raises(ValueError, match="outside"):
        reference.run(g, torch.full((1, 2, 9, 9), 3, dtype=torch.int16) * 100)
    with pytest.raises(TypeError):
        reference.run(g, imgs.float())
    with pytest.raises(KeyError, match="unknown intermediate"):
        reference.run(g, imgs, return_intermediates=["nope"])


# --------------------------------------------------------------------------- (3) bounds
@SETTINGS
@given(kind=st.sampled_from(["pattern", "int8"]), k_idx=st.integers(0, 3), cg=st.integers(1, 6),
       groups=st.sampled_from([1, 2, 3]), bits=st.integers(1, 8), signed=st.booleans(),
       stride=st.sampled_from(ig.STRIDES), seed=st.integers(0, 2 ** 31))
def test_accumulator_bounds_reached_and_never_exceeded(kind, k_idx, cg, groups, bits, signed, stride, seed):
    """For every output channel an adversarial window (x = hi where w > 0, lo where w < 0)
    reaches the stated per-channel bound exactly; random inputs stay inside; the shape-only
    worst case and its bit width hold too (and are reached by all-extreme weights)."""
    ks = ig.PATTERN_KERNELS if kind == "pattern" else ig.INT_KERNELS
    k = ks[k_idx % len(ks)]
    if signed and bits < 2:
        bits = 2
    rng = np.random.default_rng(seed)
    c, o = cg * groups, groups * 2
    spec = ActSpec(c, k, k, bits, signed, 1.0)
    wnp = rng.choice([-1, 1], (o, cg, k, k)) if kind == "pattern" else rng.integers(-127, 128, (o, cg, k, k))
    op = ConvOperand("x", kind, torch.from_numpy(wnp.astype(np.int8)), stride, 0, groups)
    lo, hi = ig.operand_range(op, spec)
    # one k×k window per image (no padding): image 2*oc maximizes channel oc, 2*oc+1 minimizes
    imgs = np.zeros((2 * o, c, k, k), dtype=np.int64)
    per = o // groups
    for oc in range(o):
        g = oc // per
        w = wnp[oc]
        imgs[2 * oc, g * cg:(g + 1) * cg] = np.where(w > 0, spec.hi, spec.lo)
        imgs[2 * oc + 1, g * cg:(g + 1) * cg] = np.where(w > 0, spec.lo, spec.hi)
    acc = plain_conv(imgs, wnp, stride, 0, groups)[:, :, 0, 0]
    from sephw import intops
    got = intops.int_conv_acc(torch.from_numpy(imgs), op.weight, stride, 0, groups)[:, :, 0, 0]
    np.testing.assert_array_equal(got.numpy(), acc)
    for oc in range(o):
        assert acc[2 * oc, oc] == int(hi[oc])
        assert acc[2 * oc + 1, oc] == int(lo[oc])
    rand = rng.integers(spec.lo, spec.hi + 1, (4, c, k + 3, k + 3))
    racc = plain_conv(rand, wnp, stride, k // 2, groups)
    assert (racc <= hi.numpy()[None, :, None, None]).all() and (racc >= lo.numpy()[None, :, None, None]).all()
    worst = ig.worst_case_acc(kind, cg, k, bits, signed)
    assert max(abs(int(lo.min())), int(hi.max())) <= worst
    assert ig.signed_bits(-worst, worst) <= ig.worst_case_acc_bits(kind, cg, k, bits, signed)
    # all-extreme weights and inputs reach the shape-only worst case
    wext = np.full((1, cg, k, k), -1 if kind == "pattern" else -127)
    xext = np.full((1, cg, k, k), spec.lo if signed else spec.hi)
    a = plain_conv(xext, wext, 1, 0, 1)[0, 0, 0, 0]
    assert abs(int(a)) == worst
    assert ig.signed_bits(int(a), int(a)) <= ig.worst_case_acc_bits(kind, cg, k, bits, signed)


def test_worst_case_formula_examples():
    # docs/numerics.md table: pattern 5x5 over 8 channels of u8: 8*25*255 = 51000 -> 17 bits
    assert ig.worst_case_acc("pattern", 8, 5, 8, False) == 51000
    assert ig.worst_case_acc_bits("pattern", 8, 5, 8, False) == 17
    # int8 1x1 over 64 channels of u8: 64*127*255 = 2072640 < 2^21 -> 22 bits
    assert ig.worst_case_acc_bits("int8", 64, 1, 8, False) == 22
    # signed 8-bit input: 128 is the largest magnitude
    assert ig.worst_case_acc("int8", 48, 1, 8, True) == 48 * 127 * 128


def test_postprocess_and_logit_bounds_hold_at_extremes():
    """Build a node whose accumulators and multipliers sit at their extremes: the int64
    post-process sum equals postprocess_bound and the executor's requant does not wrap."""
    c, k = 4, 3
    x = ActSpec(c, k, k, 8, False, 1.0)
    a3 = ConvOperand("input", "pattern", torch.ones(2, c, k, k, dtype=torch.int8), 1, 1, 1)
    p1 = ConvOperand("input", "int8", torch.full((2, c, 1, 1), 127, dtype=torch.int8), 1, 0, 1)
    rq = Requant(torch.full((2,), ig.M_MAX, dtype=torch.int32), torch.full((2,), ig.B_MAX, dtype=torch.int64),
                 torch.full((2,), ig.S_MAX, dtype=torch.int32), torch.full((2,), ig.M_MAX, dtype=torch.int32))
    out = ActSpec(2, k, k, 8, False, 1.0)
    node = PRBNode("prb", a3, p1, rq, out)
    g = IntGraph([InputNode("input", x), node,
                  PoolFCNode("fc", "prb", torch.full((1, 2), 127, dtype=torch.int8),
                             torch.tensor([ig.M_MAX]), torch.tensor([0]), 1.0)]).validate()
    bound = g.postprocess_bound(node)
    img = torch.full((1, c, k, k), 255, dtype=torch.uint8)
    _, inter = reference.run(g, img, return_intermediates=["prb.acc_a", "prb.acc_b", "prb"])
    aa, ab = int(inter["prb.acc_a"][0, 0, 1, 1]), int(inter["prb.acc_b"][0, 0, 1, 1])
    total = aa * ig.M_MAX + ab * ig.M_MAX + ig.B_MAX + 2 ** (ig.S_MAX - 1)
    assert total == bound                       # reached at the centre position
    assert int(inter["prb"][0, 0, 1, 1]) == min(255, total >> ig.S_MAX)
