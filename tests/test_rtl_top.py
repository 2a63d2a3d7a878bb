"""The accelerator top runs a whole compiled SEP-Net in Verilator, bit-exact against the
integer reference (sephw.reference), through `sephw simulate`, which also reports measured
cycles next to the predicted ones.

One small SEP-Net-small (random weights, width 0.25, 1 input channel, 8x8 input, 10
classes), compiled for arty-a7-35 on a small fixed overlay (4 lanes, 4 pattern-engine input
channels, 4 MAC columns, k_max 5) so the Verilator build stays short; two images (one of
them all zero), given to `sephw simulate` in place of the dataset's test split.
"""
import json
import re

import numpy as np
import pytest
import torch
import yaml

from sephw import data, reference
from sephw.arch import Manifest
from sephw.cli import build_parser
from sephw.compiler import Op, decode_program
from sephw.arch.isa import FLAG_SKIP_IDENTITY



@pytest.mark.slow
def test_whole_sepnet_bit_exact(sepnet_build, monkeypatch, capsys):
    g, d, rep = sepnet_build
    ops = {i.op for i in decode_program((d / "program.bin").read_bytes())}
    # the Program exercises every instruction kind SEP-Net needs
    assert {Op.LOAD, Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD, Op.POOL_FC, Op.STORE,
            Op.SYNC, Op.END} <= ops
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    images[0] = 0                    # all-zero input: every layer runs on its bias alone
    expected = reference.run(g, images)
    labels = expected.argmax(1).clone()
    labels[1] = (labels[1] + 1) % 10     # one wrong label: accuracy 1/2 if the logits are right
    monkeypatch.setattr(data, "load", lambda ds, split, root=None: (images, labels))
    a = build_parser().parse_args(["simulate", str(d), "--images", "2", "--json"])
    assert a.func(a) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact_images"] == 2            # every logit equal to the reference's
    assert r["accuracy"] == pytest.approx(1 / 2)
    assert r["predicted_cycles"] == rep["cycles_per_inference"]
    assert len(r["cycles"]) == 2
    assert r["fps"] == pytest.approx(r["clock_hz"] / r["cycles_per_inference"])
    print(f"measured cycles {r['cycles']}, predicted {r['predicted_cycles']}, "
          f"measured/predicted {r['measured_over_predicted']:.4f}")
    for op, o in r["per_opcode"].items():
        print(f"  {op:13s} x{o['count']:<4d} measured {o['measured']:>7d}  predicted {o['predicted']:>7d}")
    # The cycle model is that of the RTL top as built (hw.top_instruction_cycles from the
    # units' figures, hw.unit_cycles): the top's cycles are data-independent (both images,
    # one of them all zero, take the same count) and the model matches every instruction.
    assert r["cycle_model"].startswith("RTL top as built")
    assert r["cycles"][0] == r["cycles"][1] == rep["cycles_per_inference"]
    assert r["measured_over_predicted"] == 1.0
    assert {"LOAD", "CONV_PATTERN", "CONV_INT", "PRB", "RESADD", "POOL_FC", "STORE"} <= set(r["per_opcode"])
    for op, o in r["per_opcode"].items():
        assert o["measured"] == o["predicted"], (op, o)
    ops = decode_program((d / "program.bin").read_bytes())
    sched = yaml.safe_load((d / "schedule.yaml").read_text())["instructions"]
    assert r["instruction_cycles"] == [s["cycles"] for s in sched] and len(sched) == len(ops)
    # Multi-chunk stride-1 pattern operands slide (each chunk's shifted window waits in the
    # column store): after a row's first position the gatherer reads k taps per chunk, not k^2.
    # On the 4x4 maps (16 positions) each such tile takes fewer cycles than a full gather's
    # reads alone (positions x chunks x k^2), and the 3x3 on 32 channels (8 chunks of 4) runs
    # at the pattern engine's pace: within 15 % of its beats x a_bits (8) cycles.
    dims = {t["id"]: t["shape"] for t in Manifest.read(d)["tensors"]}
    multi = [(i, mc, i.rows * dims[i.dst][2], -(-i.na // 4)) for i, mc in zip(ops, r["instruction_cycles"])
             if i.op in (Op.CONV_PATTERN, Op.PRB) and i.stride == 1 and i.na > 4 and i.rows * dims[i.dst][2] >= 16]
    assert {i.k for i, *_ in multi} == {3, 5}, "no sliding multi-chunk 3x3 and 5x5 on a 4x4 map"
    for i, mc, pos, chunks in multi:
        assert mc < pos * chunks * i.k ** 2, (i.text(), mc)
        if i.k == 3:
            assert mc <= 1.15 * 8 * pos * chunks, (i.text(), mc)


def _depthwise_graph():
    """A two-layer SEP-Net: a 3×3 on 16 channels, then a depthwise 3×3 (16 groups)."""
    from sephw import binarize, quantize
    from sephw.models import ConvRow, SEPNet
    torch.manual_seed(0)
    m = SEPNet((ConvRow("conv1", 16, 3, 1, 1), ConvRow("conv2", 16, 3, 1, 16)),
               in_channels=1, num_classes=10, stem="small").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def _module_graph(k: int, size: int, a_bits: int):
    """A SEP-Net of conv1 (3×3, 16), conv2 (3×3 stride 2, 32) and one module whose PRBs are
    k×k, on a ``size``×``size`` single-channel input, quantized to ``a_bits`` activations
    (random weights)."""
    from sephw import binarize, quantize
    from sephw.models import ConvRow, ModuleRow, SEPNet
    torch.manual_seed(0)
    m = SEPNet((ConvRow("conv1", 16, 3, 1, 1), ConvRow("conv2", 32, 3, 2, 1), ModuleRow("module1", 16, k, 1, 2, 4, 1)),
               in_channels=1, num_classes=10, stem="small").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib, a_bits=a_bits)


@pytest.mark.slow
def test_written_top_verilog_runs(tmp_path):
    """``sephw compile``'s top.v (:func:`~sephw.flows.simulate.write_top_verilog` with the images
    baked in) simulated as written, with the pattern engine's synthesis netlist: after reset the
    boot ROM copies the images while ``host_w`` is not ready (the testbench's writes wait for
    it), then one image runs bit-exact, every instruction in the model's cycles. The network
    covers what the other whole-network tests do not: the synthesis netlist, 4-bit activations
    after the 8-bit input (the pattern engine's planes per beat set at run time) and an odd
    input size (9×9: 5×5 after the stride-2 conv). Its PRBs are 3×3 (k_max 3): the synthesis
    netlist of a 7×7 engine took 2 of this test's 4 minutes to build; the 7×7 PRB runs in
    test_two_postprocess_units_two_bit_activations_bit_exact."""
    from sephw.compiler import compile_graph
    from sephw.flows.simulate import write_top_verilog
    from sim.top_driver import memory_writes, run_top
    g = _module_graph(k=3, size=9, a_bits=4)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path,
                            engine=dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1))
    assert ir.cfg.k_max == 3
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    assert any(i.op == Op.PRB and i.k == 3 for i in ops)
    tensors = Manifest.read(tmp_path)["tensors"]
    assert {t["dtype"] for t in tensors} == {"uint8", "uint4"}
    assert [9, 9] in [t["shape"][1:] for t in tensors] and [5, 5] in [t["shape"][1:] for t in tensors]
    path = write_top_verilog(tmp_path, bake=True)
    x = torch.randint(0, 256, (1, 1, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(17))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy(), verilog=path, speed=False)
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0]
    assert r["cycles"][0] == rep["cycles_per_inference"]
    # the boot ROM held host_w for its writes (one per cycle)
    n = len(memory_writes(tmp_path))
    assert n - 5 <= r["host_w_waited"] <= n + 5


def test_baked_images_boot(sepnet_build):
    """Baked images: after reset the boot ROM writes every pattern, weight and parameter word
    of the build directory into the engines' memories, in order (Amaranth simulator)."""
    from amaranth.hdl import Value
    from amaranth.sim import Simulator

    from rtl_gen.top import Accelerator
    from sephw.arch.memmap import MEM_PARAMS, MEM_PATTERNS, MEM_WEIGHTS
    from sim.top_driver import memory_writes
    _, d, _ = sepnet_build
    writes = memory_writes(d)
    top = Accelerator(Manifest.read(d).arch, boot=writes)
    ports = {MEM_PATTERNS: top.pattern_engine.pattern_w, MEM_WEIGHTS: top.mac_array.weight_w,
             MEM_PARAMS: top.post_process.param_w}
    seen = []

    async def bench(ctx):
        for _ in range(len(writes) + 10):
            await ctx.tick()
            for sel, p in ports.items():
                if ctx.get(p.en):
                    seen.append((sel, ctx.get(p.addr), ctx.get(Value.cast(p.data))))
        assert not ctx.get(top.booting)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    width = {sel: len(Value.cast(p.data)) for sel, p in ports.items()}
    want = [(s, a, w & ((1 << width[s]) - 1)) for s, a, w in writes if s in (MEM_PATTERNS, MEM_WEIGHTS)]
    assert [x for x in seen if x[0] != MEM_PARAMS] == want
    assert [a for s, a, _ in seen if s == MEM_PARAMS] == [a for s, a, _ in writes if s == MEM_PARAMS]


@pytest.mark.slow
def test_resnet20_pattern_network_bit_exact(tmp_path):
    """ResNet-20 (random weights, k×k binarized) on 16×16 RGB images, a quarter of CIFAR's
    pixels (32×32 runs in bench/bench_compile.py --simulate): identity skips and the stride-2
    1×1 projection skips of the downsampling blocks (src_b read at row 2y, column 2x), every
    logit equal to the reference's. The overlay (8 lanes, 4 pattern channels: 8 activation
    banks) gathers two chunks per tap read (the hold register, engine-paced tiles), which the
    SEP-Net test's overlay does not; its cycles match the RTL-top model per instruction."""
    from rtl_gen.checkprog import check_program
    from sephw import binarize, models, quantize
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    torch.manual_seed(0)
    m = models.build("resnet20").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    g = quantize.quantize(m, calib)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path,
                            engine=dict(lanes=8, pe_cin=4, mac_cols=4, packed=False, pp_units=1))
    assert ir.cfg.act_banks >= 2 * ir.cfg.pe_cin
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    man = Manifest.read(tmp_path)
    shape = {t["id"]: t["shape"] for t in man["tensors"]}
    strided = [i for i in ops if i.op == Op.RESADD and shape[i.src_b][1] == 2 * shape[i.dst][1]]
    assert strided, "no stride-2 projection skip in the Program"
    assert check_program(tmp_path) == []
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())   # the testbench asserts every logit
    assert len(r["logits"]) == 1 and r["cycles"][0] > 0
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    meas = r["instruction_cycles"][0]
    assert len(meas) == len(sched)
    print(f"ResNet-20: measured {r['cycles'][0]} cycles, predicted {rep['cycles_per_inference']}")
    assert abs(r["cycles"][0] / rep["cycles_per_inference"] - 1) <= 0.01
    worst = max(abs(mc / s["cycles"] - 1) for mc, s in zip(meas, sched))
    assert worst <= 0.05, worst
    # engine-paced: the pattern engine's share of the measured cycles (useful MACs over peak)
    assert rep["utilization"]["pattern_engine"] >= 0.7


@pytest.mark.slow
@pytest.mark.parametrize("arch,depthwise", [("dsconv-resnet20", True), ("mixconv-resnet20", True),
                                            ("multiception-resnet20", True), ("dsconv-resnet20", False)],
                         ids=["dsconv", "mixconv", "multiception", "dsconv-one-channel-tiles"])
def test_model_zoo_variants_bit_exact(arch, depthwise, tmp_path):
    """DSConv-, MixConv- and Multiception-ResNet-20 (random weights, 8×8 RGB) on arty-a7-35:
    depthwise pattern layers in the pattern engine's depthwise mode, four channels per tile,
    their filters in the depthwise pattern memory (MixConv's and Multiception's branches at
    k = 3, 5 and 7, stride 1 and 2, written into their channel ranges of the concat); or, on
    an overlay without the mode, one channel per tile from whole pattern words. Int8 1×1
    pointwise convs, and residual adds whose main conv is an int8 1×1 on the MAC array beside
    a 1×1 projection skip on the same array (stride 2: the gatherer issues b's beats first,
    the top routes the MAC array's alternating results to the PostProcess's acc_b and acc_a).
    Multiception's concat is signed (BN, no ReLU: int8 codes, zero point 0), read by the MAC
    array sign-extended. Every logit equal to the reference's; every instruction's cycles
    equal to the RTL-top model's; every depthwise layer's patterns stored in at most 2x their
    bits (report.json)."""
    from sephw import binarize, models, quantize
    from rtl_gen.checkprog import check_program
    from sephw.arch.isa import FLAG_B_PATTERN, FLAG_DW_PATTERN, FLAG_SKIP_IDENTITY
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    torch.manual_seed(0)
    m = models.build(arch).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    g = quantize.quantize(m, calib)
    # (MixConv with two PostProcess units: its branches of 6, 5 and 5 channels give depthwise
    # tiles at odd first channels, whose parameter blocks start on even words)
    eng = dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=2 if arch == "mixconv-resnet20" else 1,
               depthwise=depthwise)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, engine=eng)
    assert ir.cfg.depthwise == depthwise
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    dw_tiles = [i for i in ops if i.flags & FLAG_DW_PATTERN]
    # (a branch of a channel count not a multiple of 4 ends in a narrower tile)
    assert max((i.tc for i in dw_tiles), default=0) == (4 if depthwise else 0)
    if arch == "mixconv-resnet20":
        assert any(i.c0 % 2 for i in dw_tiles) and all(i.prm % 2 == 0 for i in dw_tiles)
    dw_layers = [r for r in rep["layers"] if r["depthwise"]]
    assert dw_layers and all((r["pattern_storage_ratio"] <= 2) == depthwise for r in dw_layers), dw_layers
    tens = {t["id"]: t for t in Manifest.read(tmp_path)["tensors"]}
    shape = {i: t["shape"] for i, t in tens.items()}
    both_mac = [i for i in ops if i.op == Op.RESADD and not i.flags & (FLAG_B_PATTERN | FLAG_SKIP_IDENTITY)]
    assert both_mac and all(shape[i.src_b][1] == 2 * shape[i.dst][1] for i in both_mac), \
        "no int8 main conv beside a stride-2 projection in the Program"
    if arch != "dsconv-resnet20":
        assert {i.k for i in ops if i.op == Op.CONV_PATTERN} == {3, 5, 7}
    signed_a = {i.op for i in ops if tens[i.src_a]["dtype"] == "int8"}
    assert signed_a == ({Op.CONV_INT, Op.RESADD} if arch == "multiception-resnet20" else set())
    assert check_program(tmp_path) == []
    x = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())   # the testbench asserts every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert r["cycles"][0] == rep["cycles_per_inference"]
    assert r["instruction_cycles"][0] == [s["cycles"] for s in sched]
    if arch == "dsconv-resnet20" and depthwise:
        # signed windows in the depthwise mode, and a signed identity skip: the stem's and
        # blocks.0.conv1's outputs made signed (no ReLU), on the same hardware (the Verilator
        # model above: signedness is in the tensor descriptors)
        import copy
        gs = copy.deepcopy(g)
        for name in ("stem", "blocks.0.conv1"):
            gs.node(name).out.signed = True
        irs, reps = compile_graph(gs, "arty-a7-35", tmp_path / "signed", engine=eng)
        assert irs.arch.hash() == ir.arch.hash()
        codes = reference.run(gs, x, return_intermediates=["stem", "blocks.0.conv1"])[1]
        assert all((c < 0).float().mean() > 0.2 for c in codes.values())
        ops = decode_program((tmp_path / "signed" / "program.bin").read_bytes())
        tens = Manifest.read(tmp_path / "signed").tensors
        assert any(i.flags & FLAG_DW_PATTERN and tens[i.src_a]["dtype"] == "int8" for i in ops)
        rs = run_top(tmp_path / "signed", x.numpy(), reference.run(gs, x).numpy())   # every logit
        assert rs["cycles"][0] == reps["cycles_per_inference"]


@pytest.mark.slow
def test_sliding_window_bit_exact(sepnet_build, tmp_path):
    """The small SEP-Net on 4 lanes × 8 pattern channels: its 5×5 PRBs (8 channels) are one
    chunk at stride 1, so after a row's first position the top keeps the window, shifts it one
    column and reads only the new column (5 reads instead of 25; on the SEP-Net test's
    4-channel overlay they are two chunks, each with its own column-store entry,
    test_whole_sepnet_bit_exact). Built without the column store (``column_store = False``):
    the window register shifts in place and the multi-chunk 3x3s read whole windows, more
    cycles by the model than with the store; and without ``dense_kernels``: the 3x3 layers'
    pattern words on the 5x5 grid, no bit-plane remap (more pattern words, same cycles). Every logit equal to the reference's, every
    instruction's cycles equal to the RTL-top model's; a second image under host-side stalls
    (idle input bytes, back-pressured logits) still bit-exact."""
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    g = sepnet_build[0]
    eng = dict(lanes=4, pe_cin=8, mac_cols=4, packed=False, pp_units=1)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, engine=dict(eng, column_store=False, dense_kernels=False))
    assert not ir.cfg.column_store and not ir.cfg.dense_kernels
    with_store, dense = (compile_graph(g, "arty-a7-35", tmp_path / n, engine=e)[1]
                         for n, e in (("store", eng), ("dense", dict(eng, column_store=False))))
    assert with_store["cycles_per_inference"] < rep["cycles_per_inference"] == dense["cycles_per_inference"]
    k3 = [(r, d) for r, d in zip(rep["layers"], dense["layers"]) if r["name"] in ("features.conv2", "features.conv3")]
    assert k3 and all(r["pattern_bits_stored"] > d["pattern_bits_stored"] for r, d in k3), k3
    sliding = [i for i in decode_program((tmp_path / "program.bin").read_bytes())
               if i.op == Op.PRB and i.k == 5 and i.stride == 1 and i.na <= ir.cfg.pe_cin]
    assert sliding, "no single-chunk 5x5 PRB in the Program"
    # the second image with the host side stalling: idle cycles between the input bytes,
    # random back-pressure on the logits (the testbench asserts every logit of both)
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy(), host_stall=0.5)
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert r["cycles"][0] == rep["cycles_per_inference"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0]
    # the stalls cost cycles in LOAD and STORE only
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    slower = {ops[i].op for i, (a, b) in enumerate(zip(*r["instruction_cycles"])) if a != b}
    assert slower == {Op.LOAD, Op.STORE}, slower
    assert r["cycles"][1] > r["cycles"][0]


@pytest.mark.slow
def test_two_postprocess_units_two_bit_activations_bit_exact(tmp_path):
    """A SEP-Net with 7×7 PRBs (k_max 7) and 2-bit activations (after the 8-bit input) and an
    odd 11×11 input on an overlay with two PostProcess units (``pp_units = 2``: two channels per cycle, parameters in
    two banks at pp_units-aligned layer bases, the writer storing two bytes per cycle) and
    eight activation banks (two pattern chunks per read, the hold register): every logit equal
    to the reference's, every instruction's cycles equal to the RTL-top model's, and fewer
    cycles than with one unit. With 2-bit activations the pattern engine's beat period is the
    pattern word's 4-slice fetch, not its 2 planes (the two-chunk model used the planes: 2
    cycles short per tile)."""
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    g = _module_graph(k=7, size=11, a_bits=2)
    eng = dict(lanes=8, pe_cin=4, mac_cols=4, packed=False)
    # arty-a7-100: a 7x7 engine of 8 lanes x 4 channels is more LUTs than the 35T's budget
    one = compile_graph(g, "arty-a7-100", tmp_path / "one", engine=dict(eng, pp_units=1))[1]
    ir, rep = compile_graph(g, "arty-a7-100", tmp_path / "two", engine=dict(eng, pp_units=2))
    assert ir.cfg.k_max == 7
    assert any(i.op == Op.PRB and i.k == 7 for i in decode_program((tmp_path / "two" / "program.bin").read_bytes()))
    assert ir.cfg.pp_units == 2 and all(b % 2 == 0 for b in ir.prm_base.values())
    assert ir.cfg.two_chunk_reads and ir.cfg.pattern_slices > 2
    x = torch.randint(0, 256, (1, 1, 11, 11), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    r = run_top(tmp_path / "two", x.numpy(), reference.run(g, x).numpy())   # asserts every logit
    sched = yaml.safe_load((tmp_path / "two" / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0]
    assert r["cycles"][0] == rep["cycles_per_inference"] < one["cycles_per_inference"]


@pytest.mark.slow
def test_one_channel_tiles_with_two_postprocess_units(tmp_path):
    """A depthwise 3×3 (16 groups of one channel) compiles to one-channel pattern tiles, half
    of them at an odd first channel ``c0``: with two PostProcess units the writer stores those
    one byte per cycle (its two-byte path needs ``c0`` and the destination's channels even)
    and the others through the two-byte path with one byte valid. The two units read their
    parameter banks from an even ``prm``, so the compiler gives each one-channel tile a
    two-word parameter block (operands.param_blocks; with the layer's channels contiguous the
    odd tiles read their neighbours' parameters and the logits were wrong). Every logit equal
    to the reference's, every instruction's cycles equal to the RTL-top model's."""
    from sephw.compiler.passes import param_blocks
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    g = _depthwise_graph()
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path,
                            engine=dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=2, depthwise=False))
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    one = [i for i in ops if i.op == Op.CONV_PATTERN and i.tc == 1]
    assert {i.c0 % 2 for i in one} == {0, 1}, "no one-channel tiles at odd and even c0"
    assert all(i.prm % 2 == 0 for i in ops if i.op == Op.CONV_PATTERN)
    assert [[param_blocks(ir.cfg, lay).word(c) for c in range(lay.node.out.channels)]
            for lay in ir.layers if lay.steps] == [list(range(16)), list(range(0, 32, 2))]
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(13))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())   # asserts every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0] == r["instruction_cycles"][1]


@pytest.mark.slow
def test_lane_pairs_bit_exact(tmp_path):
    """Lane pairs (EngineConfig.lane_pairs): a grouped 3×3 of 4 groups of 4 channels on an
    8-lane overlay runs one group per tile in half the lanes; two tiles share their pattern
    words (the second's filters in lanes 4..7, its instruction's ``lane_rot``: the engine turns
    them to lanes 0..3 at its output), so the layer's patterns take half the memory bits they
    take without pairs, in a pattern memory twice as narrow (8 slices at 8-bit activations).
    The module's PRBs (3×3 in 4 groups beside a grouped 1×1 on the MAC array) pair the same
    way, their turned pattern sums meeting the MAC array's in the PostProcess. Every logit
    equal to the reference's, every instruction's cycles equal to the model's."""
    from sephw import binarize, quantize
    from sephw.arch.memmap import SELECT
    from sephw.compiler import compile_graph
    from sephw.models import ConvRow, ModuleRow, SEPNet
    from sim.top_driver import run_top
    torch.manual_seed(0)
    m = SEPNet((ConvRow("conv1", 16, 3, 1, 1), ConvRow("conv2", 16, 3, 1, 4), ModuleRow("module1", 16, 3, 1, 4, 4, 1)),
               in_channels=1, num_classes=10, stem="small").eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    eng = dict(lanes=8, pe_cin=4, mac_cols=4, packed=False)
    ir0, rep0 = compile_graph(g, "arty-a7-35", tmp_path / "unpaired", engine=dict(eng, lane_pairs=False))
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, engine=eng)
    assert ir.cfg.lane_pairs and not ir0.cfg.lane_pairs
    assert ir.cfg.pattern_slices == 2 * ir0.cfg.pattern_slices == 8
    tens = Manifest.read(tmp_path).tensors
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    conv2 = [i for i in ops if i.op == Op.CONV_PATTERN and tens[i.dst]["name"] == "features.conv2"]
    assert [(i.c0, i.tc, i.lane_rot) for i in conv2] == [(0, 4, 0), (4, 4, 1), (8, 4, 0), (12, 4, 1)]
    assert conv2[0].wa == conv2[1].wa != conv2[2].wa == conv2[3].wa
    prb = [i for i in ops if i.op == Op.PRB]
    assert len(prb) == 8 and [i.lane_rot for i in prb] == [0, 1] * 4
    ratio = [{r["name"]: r.get("pattern_storage_ratio") for r in p["layers"]}["features.conv2"] for p in (rep0, rep)]
    assert ratio == [2.0, 1.0]
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(17))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())   # asserts every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0] == r["instruction_cycles"][1]
    assert r["cycles"][0] == rep["cycles_per_inference"]
    # every word in the board's DRAM (placement="external"): a pair's two tiles each load the
    # pair's words, one copy in the external image, the same words as the on-chip image's
    # (the DMA_LOAD path itself: test_weights_from_external_memory; a second Verilator model
    # here would cost a fresh clone's suite about 20 s)
    from sephw.arch.config import dma_beats
    ext = tmp_path / "external"
    ir_x, _ = compile_graph(g, "arty-a7-35", ext, placement="external", engine=eng)
    ops_x = decode_program((ext / "program.bin").read_bytes())
    conv2_x = [i for i in ops_x if i.op == Op.CONV_PATTERN and tens[i.dst]["name"] == "features.conv2"]
    assert [i.lane_rot for i in conv2_x] == [0, 1, 0, 1]
    # the tiles' DMA_LOADs of their pattern words, in tile order
    loads = [i for i in ops_x if i.op == Op.DMA_LOAD and i.layer == conv2_x[0].layer and i.mem == SELECT["patterns"]]
    assert len(loads) == 4 and loads[0].ext_addr == loads[1].ext_addr != loads[2].ext_addr == loads[3].ext_addr
    eb = ir_x.board.external.data_bits // 8
    wb, pmb = dma_beats(ir.cfg, eb * 8) * eb, ir.cfg.pattern_mem_bytes
    image, onchip = (ext / "external.bin").read_bytes(), (tmp_path / "patterns.bin").read_bytes()
    for load, tile in zip(loads, conv2):
        assert load.length == 1 << tile.pshift
        for k in range(load.length):
            at = load.ext_addr * eb + k * wb
            assert image[at:at + pmb] == onchip[(tile.wa + k) * pmb:(tile.wa + k + 1) * pmb]


@pytest.mark.slow
def test_signed_activations_bit_exact(sepnet_build, tmp_path):
    """Signed tensors (two's complement codes, no ReLU: outputs made signed in the IntGraph,
    so they saturate at -128 and 127) through every unit that reads activations, on the small
    SEP-Net's overlay (its Verilator model is test_whole_sepnet_bit_exact's: signedness is in
    the tensor descriptors, not the ArchConfig): conv1 and conv2 signed, read by conv2 (a dense
    3×3 stride 2) and conv3 (3×3 stride 1 over 32 channels: the sliding window's column store)
    on the pattern engine; conv3 signed, read by module1's svd1 on the MAC array and by its
    residual add as the identity skip (codes sign-extended into the PostProcess); conv5
    signed, PoolFC's sums two's complement (their top byte into the MAC array as int8). The
    depthwise mode's signed windows: test_model_zoo_variants_bit_exact[dsconv]. Every logit
    equal to the reference's and every instruction's cycles as predicted (signed codes take
    the same planes and bytes)."""
    import copy

    from conftest import SMALL_ENGINE
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    g0, d0, _ = sepnet_build
    g = copy.deepcopy(g0)
    signed = ("features.conv1", "features.conv2", "features.conv3", "features.conv5")
    for name in signed:
        g.node(name).out.signed = True
    assert g.node("features.module1").skip.input == "features.conv3" and g.output.input == "features.conv5"
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, engine=SMALL_ENGINE)
    assert ir.arch.hash() == Manifest.read(d0).arch.hash()        # the same hardware
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(13))
    inter = reference.run(g, x, return_intermediates=list(signed))[1]
    for name in signed[:3]:
        codes = inter[name]
        assert codes.min() == -128 and codes.max() == 127 and (codes < 0).float().mean() > 0.2, name
    assert (inter["features.conv5"].sum((2, 3)) < 0).any()          # negative pool sums
    ops = decode_program((tmp_path / "program.bin").read_bytes())
    tens = Manifest.read(tmp_path).tensors
    reads = {(i.op, tens[i.src_a]["name"]) for i in ops if tens[i.src_a]["dtype"] == "int8"}
    assert {(Op.CONV_PATTERN, "features.conv1"), (Op.CONV_PATTERN, "features.conv2"),
            (Op.CONV_INT, "features.conv3"), (Op.POOL_FC, "features.conv5")} <= reads, reads
    assert any(i.op == Op.RESADD and i.flags & FLAG_SKIP_IDENTITY and tens[i.src_b]["name"] == "features.conv3"
               for i in ops)
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())   # asserts every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0] == r["instruction_cycles"][1]
    assert r["cycles"][0] == rep["cycles_per_inference"]


@pytest.mark.slow
def test_weights_from_external_memory(tmp_path):
    """The compiler's external placement (``placement="external"``) on a DSConv-ResNet-20 build
    (8×8, 4×4×4 overlay): every pattern and int8 weight tile comes from a behavioural DRAM
    (the board's LiteDRAM-calibrated read latency) by DMA_LOADs queued in the LoadUnit while
    the tile before computes, into the other half of the memory's buffer, two 128-bit
    external words per on-chip word. Every logit equal to the reference's; every
    instruction's cycles, the waits for loads included, as predicted. A DMA_LOAD past the
    external memory's end stops the top with its error flag before the tile that needs it."""
    import hashlib
    from sephw import binarize, models, quantize
    from sephw.arch.isa import DEP_WAIT_PREV, decode_program as dec, encode_program
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    torch.manual_seed(0)
    m = models.build("dsconv-resnet20").eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, placement="external",
                            engine=dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1))
    ops = [i.op for i in ir.instructions]
    n_dma = ops.count(Op.DMA_LOAD)
    assert n_dma > 100 and rep["external"]["bytes"] == (tmp_path / "external.bin").stat().st_size > 0
    x = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())     # asserts every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0]
    dma = [c for o, c in zip(ops, r["instruction_cycles"][0]) if o == Op.DMA_LOAD]
    print(f"{n_dma} DMA_LOADs, {sum(dma)} of {sum(r['instruction_cycles'][0])} cycles")
    # `sephw simulate BUILD --data IMAGE_FOLDER` on it: a model that names no dataset takes
    # the folder's images (class folders right in it) at its input size
    from PIL import Image
    from sephw.flows.simulate import simulate
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        Image.fromarray(np.random.default_rng(len(c)).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(
            tmp_path / "imgs" / c / "0.png")
    res = simulate(tmp_path, 2, data_root=str(tmp_path / "imgs"), log=lambda *_: None)
    assert res["dataset"] == "imagefolder" and res["bit_exact_images"] == 2 and res["images"] == 2
    # random DRAM latency and back-pressure (about 30 % of cycles the memory refuses commands
    # and holds read data back): the tokens hold every tile until its words have landed, so
    # the logits stay exact, only later
    slow = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy(), ext_stall_permille=300)
    assert sum(slow["instruction_cycles"][0]) > sum(r["instruction_cycles"][0])
    # a DMA_LOAD past the external memory's end: the top stops with its error flag at that
    # instruction (nothing loaded), never a hang or a wrong result
    man = Manifest.read(tmp_path)
    prog = dec((tmp_path / "program.bin").read_bytes())
    first = ops.index(Op.DMA_LOAD)
    prog[first].ext_addr = man["arch"]["ext_words"] - 1
    pblob = encode_program(prog)
    (tmp_path / "program.bin").write_bytes(pblob)
    man["program"]["sha256"] = hashlib.sha256(pblob).hexdigest()
    man.write()
    with pytest.raises(AssertionError, match="stopped with error at pc") as e:
        run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())
    # the queued load is refused at once: the top stops at the next DISPATCH, before the
    # tile that needs its words
    pc = int(re.search(r"stopped with error at pc (\d+)", str(e.value)).group(1))
    need = next(i for i in range(first, len(ops)) if prog[i].deps & DEP_WAIT_PREV)
    assert first < pc <= need, (first, pc, need)


@pytest.mark.slow
@pytest.mark.parametrize("engine", [dict(lanes=4, pe_cin=4, mac_cols=4), dict(lanes=8, pe_cin=4, mac_cols=4)],
                         ids=["one_chunk_reads", "two_chunk_reads"])
def test_landing_register_bit_exact(sepnet_build, engine, tmp_path):
    """The small SEP-Net compiled for the ULX3S, whose profile puts a landing register on the
    window taps' read data (EngineConfig.landing_reg: read latency 2, each pass's first tap
    read a cycle early where the pattern engine's ready says its beat will be taken) and
    splits the PostProcess's products into registered 18 x 18 pieces (mul18), here with the
    pattern engine's bit-plane registered too (plane_reg, which a profile may set: no cycle
    moves), on the SEP-Net test's overlay (one chunk per tap read: multi-chunk operands slide
    through the column store) and on 8 lanes (two chunks per read: the hold register's beat in LAND_A's
    way). Every logit equal to the reference's, every instruction's cycles equal to the
    model's, and more cycles than without the register, by about one per position."""
    from dataclasses import replace

    import boards
    from sephw.compiler import compile_graph
    from sim.top_driver import run_top
    g = sepnet_build[0]
    eng = dict(engine, packed=False, pp_units=1)
    ir, rep = compile_graph(g, replace(boards.get("ulx3s-85f"), plane_reg=True), tmp_path, engine=eng)
    assert ir.cfg.landing_reg and ir.cfg.mul18 and ir.cfg.plane_reg and ir.cfg.two_chunk_reads == (engine["lanes"] == 8)
    plain = compile_graph(g, "arty-a7-35", tmp_path / "arty", engine=eng)[1]
    assert plain["cycles_per_inference"] < rep["cycles_per_inference"] < 1.1 * plain["cycles_per_inference"]
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())     # every logit
    sched = yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
    assert [s["cycles"] for s in sched] == r["instruction_cycles"][0]
    assert r["cycles"][0] == rep["cycles_per_inference"]
