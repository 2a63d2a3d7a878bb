import pytest
import torch

from sephw import models
from sephw.binarize import size_report
from sephw.nn import PRB, SEPModule


@pytest.mark.parametrize("arch,weights", [("sepnet-small", 1_362_368), ("sepnet-large", 1_824_832)])
def test_sepnet_weight_counts_at_224(arch, weights):
    m = models.build(arch)
    assert size_report(m)["weights"] == weights
    # conv + FC weights by hand, independent of size_report
    hand = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight") and p.dim() in (2, 4))
    assert hand == weights


def test_sepnet_small_forward_224_and_table_differences():
    small, large = models.build("sepnet-small"), models.build("sepnet-large")
    assert small(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    assert small.features["conv4"].conv.groups == 4 and large.features["conv4"].conv.groups == 1
    assert small.features["module5"].svd1.conv.groups == 1 and large.features["module5"].svd1.conv.groups == 8
    assert small.features["conv5"].conv.out_channels == 512 and small.features["conv5"].conv.groups == 16


def test_fashion_mnist_variant_has_same_module_structure():
    full = models.build("sepnet-small")
    fm = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    assert list(full.features) == list(fm.features)
    for name in full.features:
        assert type(full.features[name]) is type(fm.features[name])
    assert fm(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert fm.features["conv1"].conv.stride == (1, 1)


def test_module_and_prb_wiring():
    torch.manual_seed(0)
    mod = SEPModule(16, 8, 3, groups_kxk=2, groups_1x1=4).eval()
    x = torch.randn(2, 16, 6, 6)
    y = torch.relu(mod.svd2(mod.prb2(mod.prb1(mod.svd1(x)))) + x)
    assert torch.allclose(mod(x), y)
    prb = PRB(8, 8, 5).eval()
    x = torch.randn(1, 8, 7, 7)
    assert torch.allclose(prb(x), torch.relu(prb.kxk(x) + prb.p1x1(x)))


@pytest.mark.parametrize("arch", ["resnet20", "resnet32", "resnet44", "resnet56", "multiception-resnet20",
                                  "dsconv-resnet20", "mixconv-resnet20"])
def test_cifar_models_forward(arch):
    m = models.build(arch)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    m1 = models.build(arch, in_channels=1)
    assert m1(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_resnet_weight_counts():
    # 6n+2 layers: stem 432, per-stage convs, two 1×1 projections (16·32 + 32·64), FC 640
    for depth, expected in ((20, 270_896), (32, 464_432), (44, 657_968), (56, 851_504)):
        n = (depth - 2) // 6
        hand = 432 + 2 * n * 2304 + (4608 + (2 * n - 1) * 9216) + (18432 + (2 * n - 1) * 36864) + 512 + 2048 + 640
        assert hand == expected
        assert size_report(models.build(f"resnet{depth}"))["weights"] == expected


def test_multiception_concat_is_kernel_major():
    from sephw.models import MulticeptionConv
    mc = MulticeptionConv(4, 8, 2, (3, 5)).eval()
    x = torch.randn(1, 4, 8, 8)
    cat = torch.cat([mc.depthwise[0](x), mc.depthwise[1](x)], 1)
    assert cat.shape[1] == 8
    assert torch.allclose(mc(x), mc.pointwise(mc.bn_dw(cat)))
    assert mc.pointwise.conv.stride == (2, 2) and mc.depthwise[1].groups == 4


def test_unknown_arch_and_bad_groups():
    with pytest.raises(ValueError, match="supported"):
        models.build("mobilenet")
    with pytest.raises(ValueError, match="divide by groups"):
        from sephw.nn import SEPConv2d
        SEPConv2d(6, 8, 3, groups=4)
