"""The integer model against the fake-quant float model, within docs/numerics.md's bounds.

Tiny random models (random BN statistics so the folding is not trivial) are binarized,
optionally int8-quantized, calibrated and lowered. Then, in float64:

* per node (teacher forcing: every fake-quant module sees the integer executor's input
  codes), the fake-quant code and the integer code differ by at most
  ``floor(fold_error) + 1`` (the local bound), and rarely at all;
* end to end (no forcing), every stored tensor and the logits stay within the propagated
  bound of :func:`sephw.quantize.error_bounds`.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from sephw import binarize, quantize, reference
from sephw.models import SEPNet, ConvRow, ModuleRow, CifarResNet, MulticeptionConv, MixConv, DSConv
from sephw.nn import SEPConv2d

SETTINGS = settings(max_examples=10, deadline=None)


def randomize_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            with torch.no_grad():
                sign = torch.where(torch.rand(c, generator=gen) < 0.1, -1.0, 1.0)
                m.weight.copy_(sign * (torch.rand(c, generator=gen) + 0.5))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)


def tiny_model(kind: str, num_classes: int = 5) -> torch.nn.Module:
    if kind == "sepnet":
        table = (ConvRow("conv1", 16, 3, 1, 1), ConvRow("conv2", 32, 3, 2, 1),
                 ModuleRow("module1", 8, 5, 1, 2, 4, 1), ConvRow("conv3", 32, 3, 2, 4),
                 ModuleRow("module2", 8, 3, 1, 2, 2, 1))
        return SEPNet(table, in_channels=1, num_classes=num_classes, stem="small")
    if kind == "resnet":
        return CifarResNet(8, in_channels=1, num_classes=num_classes)
    factories = {
        "multiception": [(lambda ks: (lambda ci, co, s: MulticeptionConv(ci, co, s, ks)))(ks)
                         for ks in ((3, 5, 7), (3, 5), (3, 3))],
        "mixconv": [(lambda ks: (lambda ci, co, s: MixConv(ci, co, s, ks)))(ks)
                    for ks in ((3, 5, 7), (3, 5), (3, 3))],
        "dsconv": [lambda ci, co, s: DSConv(ci, co, s)] * 3,
    }[kind]
    return CifarResNet(8, in_channels=1, num_classes=num_classes, conv_factory_per_stage=factories)


def prepare(kind: str, seed: int, a_bits: int, int8: bool, scope: str, size: int = 10):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = tiny_model(kind).eval()
    randomize_bn(model, gen)
    binarize.binarize_model(model, scope)
    if int8:
        binarize.quantize_model_int8(model)
    calib = torch.randint(0, 256, (8, 1, size, size), generator=gen, dtype=torch.uint8)
    graph = quantize.quantize(model, calib, a_bits)
    test = torch.randint(0, 256, (4, 1, size, size), generator=gen, dtype=torch.uint8)
    return model, graph, test


@SETTINGS
@given(kind=st.sampled_from(["sepnet", "resnet", "multiception", "mixconv", "dsconv"]),
       seed=st.integers(0, 10_000), a_bits=st.integers(1, 8), int8=st.booleans(),
       scope=st.sampled_from(["kxk", "kxk", "3x3", "all"]))
def test_integer_matches_fake_quant_within_bounds(kind, seed, a_bits, int8, scope):
    model, graph, images = prepare(kind, seed, a_bits, int8, scope)
    logits, inter = reference.run(graph, images, return_intermediates=True)
    fq = quantize.bq_model(model).double()
    x = images.double() / 255.0

    # local: teacher forcing with the integer codes
    record: dict = {}
    with quantize.fake_quant(fq, graph, record=record, replace=inter), torch.no_grad():
        fq(x)
    differ = total = 0
    for n in graph.nodes[1:-1]:
        d = (record[n.name] - inter[n.name].double()).abs()
        bound = int(n.requant.fold_error) + 1
        assert float(d.max()) <= bound, (n.name, float(d.max()), n.requant.fold_error)
        differ += int((d > 0).sum())
        total += d.numel()
    assert differ <= 0.05 * total, f"{differ}/{total} codes differ from fake-quant"

    # end to end: propagated bounds, and the logits
    bounds = quantize.error_bounds(graph)
    record = {}
    with quantize.fake_quant(fq, graph, record=record), torch.no_grad():
        fq_logits = fq(x)
    for n in graph.nodes[1:-1]:
        d = float((record[n.name] - inter[n.name].double()).abs().max())
        assert d <= bounds[n.name], (n.name, d, bounds[n.name])
    err = (logits.double() - fq_logits / graph.output.logit_scale).abs().max()
    assert float(err) <= bounds["logits"]


def test_fold_of_hand_picked_parameters():
    """alpha, BN and activation scales that are powers of two: B is exact (8 codes at every
    shift), M uses the full 16-bit range, and the only fold error is the 1/255 of the input."""
    torch.manual_seed(0)
    model = tiny_model("resnet").eval()
    binarize.binarize_model(model, "kxk")
    for m in model.modules():
        if isinstance(m, SEPConv2d) and int(m.mode) == 1:
            with torch.no_grad():
                m.alpha.fill_(0.25)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0 - m.eps)
            with torch.no_grad():
                m.weight.fill_(0.5)
                m.bias.fill_(0.125)
    scales = {name: 2.0 ** -6 for name in quantize.quant_points(model, (1, 8, 8))}
    graph = quantize.lower(model, scales, (1, 8, 8))
    node = graph.node("stem")
    # f = 0.5 * 0.25 * (1/255) / 2^-6 is not a power of two (1/255): fold_error > 0 but tiny
    assert 0 < node.requant.fold_error < 1e-3
    assert node.requant.m_a.abs().max() <= 32767 and int(node.requant.m_a.abs().max()) > 16383
    # B = 0.125 / 2^-6 = 8 codes exactly, at every shift
    assert torch.equal(node.requant.bias, 8 * (1 << node.requant.shift.long()))


def test_calibration_methods():
    """max: the scale maps the largest observed activation onto the top code; mse: at 8 bits
    a uniform tensor keeps (almost) its whole range, a heavy-tailed one at 2 bits clips."""
    torch.manual_seed(0)
    model = tiny_model("resnet").eval()
    x = torch.randint(0, 256, (8, 1, 10, 10), dtype=torch.uint8)
    seen = {}
    def observe(mod, inp, out):
        seen["stem"] = out.clamp(min=0).max()
    hook = model.stem.register_forward_hook(observe)
    with torch.no_grad():
        model(x.float() / 255)
    hook.remove()
    scales = quantize.calibrate(model, x, 8, method="max")
    assert abs(scales["stem"] - float(seen["stem"]) / 255) <= 1e-6 * scales["stem"]
    u = torch.rand(50_000, generator=torch.Generator().manual_seed(1))
    assert quantize.mse_scale(u, float(u.max()), 8, False) * 255 >= 0.97 * float(u.max())
    heavy = u.double().pow(6)
    s2 = quantize.mse_scale(heavy, float(heavy.max()), 2, False)
    # brute force on the values themselves (the implementation uses a histogram)
    errs = []
    for i in range(1, 101):
        s = float(heavy.max()) * i / 100 / 3
        q = torch.clamp(torch.floor(heavy / s + 0.5), 0, 3) * s
        errs.append(float((q - heavy).pow(2).mean()))
    best = (errs.index(min(errs)) + 1) / 100 * float(heavy.max())
    assert abs(s2 * 3 - best) <= 0.02 * float(heavy.max()) and best < 0.9 * float(heavy.max())
    signed = torch.randn(50_000, generator=torch.Generator().manual_seed(2))
    s8 = quantize.mse_scale(signed, float(signed.abs().max()), 8, True)
    assert 0.3 * float(signed.abs().max()) < s8 * 127 <= float(signed.abs().max())
    with pytest.raises(ValueError, match="calibration method"):
        quantize.calibrate(model, x, 8, method="percentile")
