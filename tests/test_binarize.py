import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sephw import binarize as bz
from sephw import models
from sephw.nn import MODE_INT8, MODE_PATTERN, SEPConv2d, binarize_tensor
from sephw.train import FitConfig, fit


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.sampled_from([1, 3, 5]), st.integers(0, 2**31 - 1),
       st.floats(0.0, 0.9))
def test_eq1_sign_and_alpha(out_c, in_c, k, seed, zero_frac):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_c, in_c, k, k, generator=g)
    w[torch.rand(w.shape, generator=g) < zero_frac] = 0.0  # exact zeros must become +1
    b, alpha = binarize_tensor(w)
    for o in range(out_c):
        for idx in torch.cartesian_prod(*(torch.arange(s) for s in w.shape[1:])).reshape(-1, 3):
            c, i, j = idx.tolist()
            assert int(b[o, c, i, j]) == (1 if float(w[o, c, i, j]) >= 0 else -1)
        expected = sum(abs(float(v)) for v in w[o].flatten()) / w[o].numel()
        assert abs(float(alpha[o]) - expected) < 1e-6
    assert b.dtype == torch.int8


def test_binarized_conv_equals_alpha_times_conv_with_pattern():
    torch.manual_seed(1)
    conv = SEPConv2d(8, 6, 3, stride=2, padding=1, groups=2)
    x = torch.randn(3, 8, 9, 9)
    conv.binarize_()
    b, alpha = binarize_tensor(conv.weight)
    ref = alpha.view(1, -1, 1, 1) * F.conv2d(x, b.float(), stride=2, padding=1, groups=2)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    assert int(conv.mode) == MODE_PATTERN


def test_scopes_pick_the_right_kernels():
    m = models.build("resnet20")
    names = bz.binarize_model(m, "1x1")
    assert names and all(m.get_submodule(n).k == 1 for n in names)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    names = bz.binarize_model(m, "kxk")
    ks = {m.get_submodule(n).k for n in names}
    assert ks == {3, 5}
    assert all(c.k == 1 for n, c in bz.sep_convs(m) if n not in names)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    assert {m.get_submodule(n).k for n in bz.binarize_model(m, "5x5")} == {5}


def test_patterns_stay_frozen_through_refine():
    torch.manual_seed(0)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    bz.binarize_model(m)
    before = {n: (c.pattern.clone(), c.weight.detach().clone(), c.alpha.detach().clone())
              for n, c in bz.sep_convs(m) if int(c.mode) == MODE_PATTERN}
    x = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (64,))
    params = bz.refine_parameters(m)
    assert not any(p is c.weight for _, c in bz.sep_convs(m) for p in params if int(c.mode) == MODE_PATTERN)
    fit(m, params, x, y, FitConfig(epochs=2, lr=0.05, batch_size=16), log=lambda *_: None)
    changed_alpha = 0
    for n, c in bz.sep_convs(m):
        if n in before:
            pat, w, alpha = before[n]
            assert torch.equal(c.pattern, pat), n
            assert torch.equal(c.weight, w), n
            assert c.pattern.grad is None if hasattr(c.pattern, "grad") else True
            changed_alpha += int(not torch.equal(c.alpha.detach(), alpha))
    assert changed_alpha > 0  # refine really trained something


def test_size_accounting_matches_hand_count():
    from torch import nn

    from sephw.nn import SEPLinear

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = SEPConv2d(2, 4, 3, padding=1)          # 72 weights, 4 filters
            self.b = SEPConv2d(4, 6, 1)                     # 24 weights
            self.c = SEPConv2d(6, 6, 5, padding=2, groups=3)  # 6*2*25 = 300 weights
            self.fc = SEPLinear(6, 3)                       # 18 weights (+3 bias, not counted)

    m = Tiny()
    rep = bz.size_report(m, "kxk")
    assert rep["weights"] == 72 + 24 + 300 + 18
    assert rep["effective_params"] == 4 + 24 + 6 + 18
    assert rep["bytes_R"] == 4 * 414
    bits = (72 + 7) // 8 + (300 + 7) // 8           # 9 + 38 pattern bytes
    assert rep["bytes_B"] == bits + 4 * (4 + 6) + 4 * (24 + 18)
    assert rep["bytes_BQ"] == bits + 4 * (4 + 6) + (24 + 4 * 6) + (18 + 4 * 3)
    bz.binarize_model(m, "kxk")
    assert bz.size_report(m) == rep  # same numbers from the binarized model itself


def test_int8_quantization_error_bound_and_mode():
    torch.manual_seed(3)
    conv = SEPConv2d(8, 4, 1)
    w = conv.weight.detach().clone()
    conv.quantize_int8_()
    assert int(conv.mode) == MODE_INT8
    s = conv.w_scale.view(-1, 1, 1, 1)
    assert (conv.effective_weight() - w).abs().le(s / 2 + 1e-7).all()
    assert conv.w_int8.abs().max() == 127


def test_quantization_error_definition():
    m = models.build("resnet20")
    rep = bz.quantization_error(m)
    assert set(rep) == {1, 3}
    n3 = sum(c.weight.numel() for _, c in bz.sep_convs(m) if c.k == 3)
    sse = 0.0
    for _, c in bz.sep_convs(m):
        if c.k == 3:
            b, a = binarize_tensor(c.weight.detach())
            sse += float((c.weight.detach() - a.view(-1, 1, 1, 1) * b).double().pow(2).sum())
    assert rep[3]["weights"] == n3
    assert abs(rep[3]["mse"] - sse / n3) < 1e-9
