"""IntGraph: validator, serialization through the checkpoint, text dump, unsupported-layer
errors, the CLI, and whole networks (SEP-Net small, ResNet-20, Multiception ResNet-20)
lowered and run on 28×28 inputs."""
from __future__ import annotations

import copy
import io

import pytest
import torch

from sephw import binarize, checkpoint, models, quantize, reference
from sephw import intgraph as ig
from sephw.intgraph import (ActSpec, ConvOperand, DepthwiseBranch, DepthwiseConcatNode, InputNode,
                            IntConvNode, IntGraph, IntGraphError, PatternConvNode, PoolFCNode,
                            PRBNode, Requant, ResidualAddNode, SkipOperand, UnsupportedError)


def rq(c, two=False, m=1000, s=10):
    return Requant(torch.full((c,), m, dtype=torch.int32), torch.zeros(c, dtype=torch.int64),
                   torch.full((c,), s, dtype=torch.int32),
                   torch.full((c,), m, dtype=torch.int32) if two else None)


def small_graph() -> IntGraph:
    """input -> pattern 3x3 -> PRB -> residual (identity) -> dw concat (signed) -> 1x1 -> pool+FC."""
    g = torch.Generator().manual_seed(0)
    pat = lambda *s: (torch.randint(0, 2, s, generator=g) * 2 - 1).to(torch.int8)
    i8 = lambda *s: torch.randint(-127, 128, s, generator=g).to(torch.int8)
    nodes = [
        InputNode("input", ActSpec(2, 8, 8, 8, False, 1 / 255)),
        PatternConvNode("c1", ConvOperand("input", "pattern", pat(8, 2, 3, 3), 1, 1, 1), rq(8),
                        ActSpec(8, 8, 8, 8, False, 0.1)),
        PRBNode("prb", ConvOperand("c1", "pattern", pat(8, 4, 5, 5), 1, 2, 2),
                ConvOperand("c1", "int8", i8(8, 8, 1, 1), 1, 0, 1), rq(8, True, s=16),
                ActSpec(8, 8, 8, 8, False, 0.1)),
        ResidualAddNode("res", ConvOperand("prb", "int8", i8(8, 8, 1, 1), 1, 0, 1), SkipOperand("c1"),
                        rq(8, True, s=16), ActSpec(8, 8, 8, 8, False, 0.1)),
        DepthwiseConcatNode("dw", "res", [DepthwiseBranch("pattern", pat(8, 1, 3, 3), 0, 2, 1),
                                          DepthwiseBranch("int8", i8(8, 1, 7, 7), 0, 2, 3)],
                            rq(16, s=12), ActSpec(16, 4, 4, 8, True, 0.1)),
        IntConvNode("pw", ConvOperand("dw", "int8", i8(8, 16, 1, 1), 1, 0, 1), rq(8, s=18),
                    ActSpec(8, 4, 4, 4, False, 0.1)),
        PoolFCNode("fc", "pw", i8(3, 8), torch.tensor([7, -3, 100]), torch.tensor([0, 5, -9]), 0.01),
    ]
    return IntGraph(nodes, 8, {"arch": "test"}).validate()


def images(n=3, c=2, h=8, seed=1):
    return torch.randint(0, 256, (n, c, h, h), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# --------------------------------------------------------------------------- validator
BREAKS = [
    ("pattern holds values other than", lambda g: g.node("c1").conv.weight.__setitem__((0, 0, 0, 0), 0)),
    ("int8 weight -128", lambda g: g.node("pw").conv.weight.__setitem__((0, 0, 0, 0), -128)),
    (r"\|m_a\| > 32767", lambda g: g.node("c1").requant.m_a.__setitem__(0, 40000)),
    (r"\|m_b\| > 32767", lambda g: g.node("prb").requant.m_b.__setitem__(0, -40000)),
    ("shift outside", lambda g: g.node("c1").requant.shift.__setitem__(0, 32)),
    ("bias must be torch.int64", lambda g: setattr(g.node("c1").requant, "bias", torch.zeros(8, dtype=torch.int32))),
    ("differ from out", lambda g: setattr(g.node("c1").out, "height", 7)),
    ("which no earlier node produces", lambda g: setattr(g.node("pw").conv, "input", "later")),
    ("duplicate name", lambda g: setattr(g.node("pw"), "name", "c1")),
    ("9-bit unsigned activations unsupported", lambda g: setattr(g.node("c1").out, "bits", 9)),
    ("1-bit signed activations unsupported", lambda g: setattr(g.node("dw").out, "bits", 1)),
    ("pattern engine supports k in", lambda g: setattr(g.node("c1").conv, "weight", torch.ones(8, 2, 1, 1, dtype=torch.int8))),
    ("stride 3; supported", lambda g: setattr(g.node("c1").conv, "stride", 3)),
    ("padding 2; supported 0..1", lambda g: setattr(g.node("c1").conv, "padding", 2)),
    ("does not fit input", lambda g: setattr(g.node("c1").conv, "groups", 2)),
    ("PRB branches must read the same input", lambda g: setattr(g.node("prb").p1x1, "input", "input")),
    ("one accumulator but m_b is set", lambda g: setattr(g.node("c1").requant, "m_b", torch.zeros(8, dtype=torch.int32))),
    ("pool\\+FC not last", lambda g: g.nodes.insert(2, g.nodes[-1])),
    ("must be kind 'pattern'", lambda g: setattr(g.node("c1").conv, "kind", "int8")),
    ("branch 1 output", lambda g: setattr(g.node("dw").branches[1], "stride", 1)),
    ("logits may overflow int64", lambda g: setattr(g.output, "bias", torch.tensor([2 ** 63 - 1, 0, 0]))),
]


@pytest.mark.parametrize("msg,breaker", BREAKS, ids=[b[0][:30] for b in BREAKS])
def test_validator_catches(msg, breaker):
    g = small_graph()
    breaker(g)
    g._by_name = None
    with pytest.raises(IntGraphError, match=msg):
        g.validate()


def test_validator_rejects_int32_overflowing_accumulator():
    # int8 7x7 over 1400 channels of u8: 1400*49*127*255 = 2,221,843,000 > 2^31 - 1
    c = 1400
    nodes = [InputNode("input", ActSpec(c, 7, 7, 8, False, 1.0)),
             IntConvNode("c", ConvOperand("input", "int8", torch.full((1, c, 7, 7), 127, dtype=torch.int8)),
                         rq(1), ActSpec(1, 1, 1, 8, False, 1.0)),
             PoolFCNode("fc", "c", torch.ones(1, 1, dtype=torch.int8), torch.ones(1, dtype=torch.int64),
                        torch.zeros(1, dtype=torch.int64), 1.0)]
    with pytest.raises(IntGraphError, match="exceeds int32"):
        IntGraph(nodes).validate()
    nodes[1].conv.weight = nodes[1].conv.weight[:, :1300].contiguous()
    nodes[0].out.channels = 1300
    IntGraph(nodes).validate()  # 1300*49*127*255 = 2,063,138,500 fits


def test_executor_refuses_a_bad_pattern_even_unvalidated():
    g = small_graph()
    g.node("c1").conv.weight[0, 0, 0, 0] = 0
    with pytest.raises(ValueError, match="only \\+1 and -1"):
        reference.run(g, images())


# --------------------------------------------------------------------------- serialization
def test_to_dict_roundtrip_through_torch_weights_only():
    g = small_graph()
    buf = io.BytesIO()
    torch.save(g.to_dict(), buf)
    buf.seek(0)
    d = torch.load(buf, weights_only=True)
    g2 = IntGraph.from_dict(d)
    assert g2.dump() == g.dump()
    x = images()
    a, ia = reference.run(g, x, return_intermediates=True)
    b, ib = reference.run(g2, x, return_intermediates=True)
    assert torch.equal(a, b)
    assert all(torch.equal(ia[k], ib[k]) for k in ia)


def test_from_dict_rejects_foreign_records():
    d = small_graph().to_dict()
    bad = copy.deepcopy(d)
    bad["nodes"][1]["__type__"] = "os.system"
    with pytest.raises(IntGraphError, match="unknown IntGraph record type"):
        IntGraph.from_dict(bad)
    bad = copy.deepcopy(d)
    bad["nodes"][1]["evil"] = 1
    with pytest.raises(IntGraphError, match="unknown fields"):
        IntGraph.from_dict(bad)
    with pytest.raises(IntGraphError, match="not a serialized IntGraph"):
        IntGraph.from_dict({"nodes": []})
    bad = copy.deepcopy(d)
    bad["nodes"][1]["requant"]["shift"][0] = 40
    with pytest.raises(IntGraphError, match="shift outside"):
        IntGraph.from_dict(bad)


def test_dump_is_readable():
    text = small_graph().dump()
    for needle in ("%input = Input -> u8[2,8,8]", "%prb = PRB", "acc_a: pattern 5x5 %c1",
                   "acc_b: identity %c1", "branch int8 7x7 dw on %res[0:8] s2 p3",
                   "-> s8[16,4,4]", "%fc = PoolFC(%pw)", "clamp [-128, 127]"):
        assert needle in text, needle


# --------------------------------------------------------------------------- lowering + CLI
def sepnet_small(**kw):
    return models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25, **kw)


def test_unsupported_layers_are_named():
    with pytest.raises(UnsupportedError, match="supported models are"):
        quantize.quant_points(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3)), (1, 8, 8))
    m = models.SEPNet((models.ConvRow("conv1", 16, 9, 1, 1),), in_channels=1, num_classes=3, stem="small")
    with pytest.raises(UnsupportedError, match=r"features.conv1.conv: 9x9 kernel; supported k in \(1, 3, 5, 7\)"):
        quantize.quant_points(m, (1, 12, 12))
    m = models.SEPNet((models.ConvRow("convx", 16, 3, 3, 1),), in_channels=1, num_classes=3)
    with pytest.raises(UnsupportedError, match=r"features.convx.conv: stride 3; supported \(1, 2\)"):
        quantize.quant_points(m, (1, 12, 12))
    m = models.resnet20(in_channels=1)
    m.blocks[2].conv1.conv = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
    with pytest.raises(UnsupportedError, match="blocks.2.conv1.conv: Conv2d is not a SEPConv2d"):
        quantize.quant_points(m, (1, 8, 8))
    m = models.resnet20(in_channels=1)
    m.blocks[0].conv2.conv.dilation = (2, 2)
    with pytest.raises(UnsupportedError, match="blocks.0 main conv: dilation"):
        quantize.quant_points(m, (1, 8, 8))
    m = models.resnet20(in_channels=1)
    m.blocks[1] = torch.nn.Identity()
    with pytest.raises(UnsupportedError, match="blocks.1: Identity; supported residual block: BasicBlock"):
        quantize.quant_points(m, (1, 8, 8))
    with pytest.raises(UnsupportedError, match="a_bits=9; supported activation widths are 1..8"):
        quantize.quant_points(sepnet_small(), (1, 28, 28), a_bits=9)


@pytest.fixture
def fake_dataset(monkeypatch):
    """sephw.data.load replaced by deterministic random Fashion-MNIST-shaped data."""
    from sephw import data

    def load(dataset, split, root=None, size=224):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = 64 if split == "train" else 32
        return (torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                torch.randint(0, 10, (n,), generator=g))
    monkeypatch.setattr(data, "load", load)
    return load


def test_cli_quantize_and_ir(tmp_path, fake_dataset, capsys):
    from sephw import cli
    torch.manual_seed(0)
    model = sepnet_small().eval()
    binarize.binarize_model(model, "kxk")
    src = tmp_path / "m.pt"
    checkpoint.save(src, model, "sepnet-small", {"in_channels": 1, "num_classes": 10, "stem": "small",
                                                 "width": 0.25}, {"dataset": "fashion-mnist"}, "kxk")
    out = tmp_path / "m_q.pt"
    assert cli.main(["quantize", str(src), "--calib", "8", "-o", str(out), "--a-bits", "6"]) == 0
    assert "IntGraph with 27 nodes" in capsys.readouterr().out
    g = quantize.load_graph(out)
    assert g.a_bits == 6 and g.meta["calib_images"] == 8
    assert all(n.out.bits == 6 for n in g.nodes[1:-1])
    model2, ck = checkpoint.load(out)
    assert ck["metadata"]["stage"] == "quantized" and ck["binarize_scope"] == "kxk"
    assert cli.main(["ir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "%features.module1.prb1 = PRB -> u6[" in text and "%fc = PoolFC" in text
    assert cli.main(["ir", str(src)]) == 2          # a checkpoint without an IntGraph
    assert "holds no IntGraph" in capsys.readouterr().err
    # the stored graph is what quantize() computes from the same data
    x, _ = fake_dataset("fashion-mnist", "train")
    idx = torch.randperm(64, generator=torch.Generator().manual_seed(0))[:8]
    again = quantize.quantize(model2, x[idx], 6)
    t = images(4, 1, 28)
    assert torch.equal(reference.run(again, t), reference.run(g, t))


WHOLE = [("sepnet-small", dict(in_channels=1, num_classes=10, stem="small", width=0.25), 27),
         ("resnet20", dict(in_channels=1, num_classes=10), 21),
         ("multiception-resnet20", dict(in_channels=1, num_classes=10), 39)]


@pytest.mark.parametrize("arch,kw,n_nodes", WHOLE, ids=[w[0] for w in WHOLE])
def test_whole_network_lowers_and_runs(arch, kw, n_nodes):
    torch.manual_seed(0)
    model = models.build(arch, **kw).eval()
    binarize.binarize_model(model, "kxk")
    calib = images(4, 1, 28, seed=2)
    graph = quantize.quantize(model, calib)
    assert len(graph.nodes) == n_nodes
    kinds = {type(n) for n in graph.nodes}
    if arch == "sepnet-small":
        assert PRBNode in kinds and ResidualAddNode in kinds
    if arch == "multiception-resnet20":
        assert DepthwiseConcatNode in kinds and any(n.out.signed for n in graph.nodes[1:-1])
    # every k×k conv of the binarized model is on the pattern engine
    for n in graph.nodes:
        for op in ig.node_operands(n):
            if isinstance(op, ConvOperand) and op.k > 1:
                assert op.kind == "pattern", n.name
    x = images(2, 1, 28, seed=3)
    logits, inter = reference.run(graph, x, return_intermediates=True)
    assert logits.shape == (2, 10) and logits.dtype == torch.int64
    fq = quantize.bq_model(model).double()
    rec = {}
    with quantize.fake_quant(fq, graph, record=rec), torch.no_grad():
        ref = fq(x.double() / 255)
    bounds = quantize.error_bounds(graph)
    assert float((logits.double() - ref / graph.output.logit_scale).abs().max()) <= bounds["logits"]
    for name, codes in rec.items():
        assert float((codes - inter[name].double()).abs().max()) <= bounds[name], name


LOWER_ONLY = [("resnet32", {}), ("resnet44", {}), ("resnet56", {}),
              ("sepnet-large", dict(stem="small", width=0.25)),
              ("dsconv-resnet20", {}), ("mixconv-resnet20", {})]


@pytest.mark.parametrize("arch,kw", LOWER_ONLY, ids=[a for a, _ in LOWER_ONLY])
def test_family_lowers_and_validates(arch, kw):
    """Every supported architecture lowers (fixed scales, no calibration: structure only)
    and the result validates and runs."""
    torch.manual_seed(0)
    model = models.build(arch, in_channels=1, num_classes=10, **kw).eval()
    binarize.binarize_model(model, "kxk")
    points = quantize.quant_points(model, (1, 16, 16))
    graph = quantize.lower(model, {name: 0.05 for name in points}, (1, 16, 16))
    assert {n.name for n in graph.nodes[1:-1]} == set(points)
    if arch.startswith("resnet"):
        depth = int(arch[len("resnet"):])
        assert sum(isinstance(n, ResidualAddNode) for n in graph.nodes) == (depth - 2) // 2
    assert reference.run(graph, images(1, 1, 16)).shape == (1, 10)


def test_float_model_lowers_to_int8_only():
    """SEP-Net-R (nothing binarized): every conv lands on the DSP array as int8."""
    torch.manual_seed(0)
    model = sepnet_small().eval()
    graph = quantize.quantize(model, images(4, 1, 28, seed=5))
    ops = [op for n in graph.nodes for op in ig.node_operands(n) if isinstance(op, ConvOperand)]
    assert ops and all(op.kind == "int8" for op in ops)
    assert any(op.k == 5 for op in ops)            # the PRB k×k, kept multi-bit
    assert reference.run(graph, images(2, 1, 28)).shape == (2, 10)
