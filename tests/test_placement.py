"""Weights in external memory (issue 15): the compiler's placement of pattern and int8
weight words (sephw.compiler, ``placement``), the DMA_LOADs before the tiles that use them,
the external image against the on-chip image of the same words, the report, the errors; and
SEP-Net-small at full width on the RTL top with its weights in a behavioural DRAM."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import boards
from sephw import binarize, models, quantize, reference
from sephw.arch import Manifest
from sephw.arch.config import dma_beats
from sephw.arch.isa import DEP_SIGNAL_NEXT, DEP_WAIT_PREV, FLAG_FC_MORE, FLAG_FINAL
from sephw.arch.memmap import SELECT
from sephw.compiler import CompileError, Op, compile_graph, hw
from sephw.compiler.operands import block_words, params_streamed
from sephw.intgraph import PoolFCNode

ENGINE = dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1)


def _graph(arch: str, size: int, **kw):
    torch.manual_seed(0)
    m = models.build(arch, **kw).eval()
    binarize.binarize_model(m)
    x = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, x)


@pytest.fixture(scope="module")
def sepnet_full():
    """SEP-Net-small at full width (1,000 classes) on 32×32 images: 1.36 M weights."""
    return _graph("sepnet-small", 32)


def _words(blob: bytes, n: int) -> list[bytes]:
    return [blob[i:i + n] for i in range(0, len(blob), n)]


def test_external_image_holds_the_words_the_onchip_image_would(tmp_path):
    """The same network and overlay compiled with every step streamed and with nothing
    streamed: the loads each streamed tile waits for bring, from the external image, exactly
    the words the on-chip build keeps at that tile's addresses (padded to whole external
    words) into the buffer half the tile reads, and the parameter words of the layers whose
    every step streams; the compute instructions are the same but for their pattern / weight /
    parameter addresses and dependency flags."""
    g = _graph("dsconv-resnet20", 8)
    ext_ir, _ = compile_graph(g, "arty-a7-35", tmp_path / "ext", engine=ENGINE, placement="external")
    on_ir, _ = compile_graph(g, "arty-a7-35", tmp_path / "on", engine=ENGINE, placement="onchip")
    assert not on_ir.streamed and on_ir.external is None
    assert ext_ir.streamed and not (tmp_path / "on" / "external.bin").exists()
    b = boards.get("arty-a7-35").external
    beats = dma_beats(ext_ir.cfg, b.data_bits)
    eb = b.data_bits // 8
    ext = (tmp_path / "ext" / "external.bin").read_bytes()
    man = Manifest.read(tmp_path / "ext")
    assert man["external"]["bytes"] == len(ext) == ext_ir.external.nbytes
    assert man["arch"]["ext_words"] == b.words and man["arch"]["ext_data_bits"] == b.data_bits
    images = {m: (tmp_path / "on" / f"{m}.bin").read_bytes() for m in ("patterns", "weights", "params")}
    wbytes = {"patterns": ext_ir.cfg.pattern_mem_bytes, "weights": ext_ir.cfg.weight_word_bytes}
    on_compute = [i for i in on_ir.instructions if i.op in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD)]
    ext_prog = ext_ir.instructions
    # the loads in groups, each ending with the one that signals its token; the tiles that
    # wait for a token take the groups in order (tile_layers.prefetch)
    groups, cur = [], {}
    for ins in ext_prog:
        if ins.op == Op.DMA_LOAD:
            cur[ins.mem] = ins
            if ins.deps & DEP_SIGNAL_NEXT:
                groups.append(cur)
                cur = {}
    assert not cur
    checked = checked_params = k = 0
    for i, ins in enumerate(ext_prog):
        if ins.op == Op.POOL_FC and ins.deps & DEP_WAIT_PREV:       # an FC chunk: its classes' words
            d = groups.pop(0)[SELECT["weights"]]
            n_cb = -(-on_ir.graph.output.weight.shape[1] // ext_ir.cfg.mac_cols)
            first = on_ir.pool_weight_word + ins.c0 // ext_ir.cfg.lanes * n_cb
            got = _words(ext[d.ext_addr * eb:(d.ext_addr + d.length * beats) * eb], beats * eb)
            want = _words(images["weights"][first * wbytes["weights"]:(first + d.length) * wbytes["weights"]],
                          wbytes["weights"])
            assert [w[:wbytes["weights"]] for w in got] == want and ins.wa == d.waddr
            checked += 1
            continue
        if ins.op not in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
            continue
        ref = on_compute[k]
        k += 1
        assert (ins.layer, ins.c0, ins.tc, ins.row0, ins.rows, ins.flags) == \
            (ref.layer, ref.c0, ref.tc, ref.row0, ref.rows, ref.flags)
        if not ins.deps & DEP_WAIT_PREV:
            continue
        loads = groups.pop(0)           # one per memory its operands use
        lay = ext_ir.layers[ins.layer]
        st = next(s for s in lay.steps if s.out_c0 <= ins.c0 < s.out_c0 + s.out_channels)
        mems = []
        for op, (wa_ext, wa_on) in zip(st.operands, ((ins.wa, ref.wa), (ins.wb, ref.wb))):
            if getattr(op, "kind", None) not in ("pattern", "int8") or hw.dw_operand(ext_ir.cfg, op):
                continue
            mem = "patterns" if op.kind == "pattern" else "weights"
            mems.append(mem)
            d = loads[SELECT[mem]]
            n = block_words(ext_ir.cfg, op, st.tc)
            off = wa_ext - d.waddr               # the operand's place in the buffer
            got = _words(ext[(d.ext_addr + off * beats) * eb:(d.ext_addr + (off + n) * beats) * eb], beats * eb)
            want = _words(images[mem][wa_on * wbytes[mem]:(wa_on + n) * wbytes[mem]], wbytes[mem])
            assert [w[:wbytes[mem]] for w in got] == want and all(not any(w[wbytes[mem]:]) for w in got)
            checked += 1
        # a layer whose every step streams brings its parameters too: the tile's channels'
        # words, those the on-chip build reads at its prm, into the half the tile's prm names
        if params_streamed(lay, ext_ir.streamed):
            mems.append("params")
            d = loads[SELECT["params"]]
            got = _words(ext[d.ext_addr * eb:(d.ext_addr + d.length * beats) * eb], beats * eb)
            want = _words(images["params"][ref.prm * 16:(ref.prm + ins.tc) * 16], 16)
            assert d.length == ins.tc and ins.prm == d.waddr and [w[:16] for w in got] == want
            checked_params += 1
        assert sorted(loads) == sorted(SELECT[m] for m in set(mems))
    assert k == len(on_compute) and checked > 50 and checked_params > 20 and not groups


def test_auto_placement_streams_what_does_not_fit(sepnet_full, tmp_path):
    """SEP-Net-small at full width does not fit arty-a7-35's block RAM with its weights; with
    ``auto`` the largest steps and the FC (in chunks of classes) stay in its DRAM, the rest on
    chip, and the report accounts for the external bytes and DMA cycles per layer."""
    with pytest.raises(CompileError, match="does not fit arty-a7-35"):
        compile_graph(sepnet_full, "arty-a7-35", placement="onchip")
    ir, rep = compile_graph(sepnet_full, "arty-a7-35", tmp_path)
    assert sum(ir.onchip.values()) <= ir.budget
    pool = next(lay for lay in ir.layers if isinstance(lay.node, PoolFCNode))
    assert (pool.index, 0) in ir.streamed and len(ir.streamed) < sum(len(lay.steps) for lay in ir.layers) + 1
    fc = [i for i in ir.instructions if i.op == Op.POOL_FC and i.flags & FLAG_FINAL]
    assert len(fc) > 1 and all(i.flags & FLAG_FC_MORE for i in fc[:-1]) and not fc[-1].flags & FLAG_FC_MORE
    assert [(i.c0, i.tc) for i in fc] == [(sum(f.tc for f in fc[:n]), f.tc) for n, f in enumerate(fc)]
    assert sum(i.tc for i in fc) == 1000
    ext = rep["external"]
    assert ext["bytes"] == (tmp_path / "external.bin").stat().st_size
    rows = rep["layers"]
    assert ext["bytes_per_inference"] == sum(r["external_bytes"] for r in rows) >= ext["bytes"]
    # (the input image's LOADs read the DRAM too)
    assert ext["dma_cycles_per_inference"] == sum(s.cycles if s.op in (Op.DMA_LOAD, Op.LOAD, Op.SPILL)
                                                  else s.load_wait or 0 for s in ir.schedule)
    assert {r["bound"] for r in rows if r["cycles"]} <= {"compute", "post-process", "gather", "memory"}
    assert "external bytes" in (tmp_path / "report.md").read_text()


def test_placement_errors(tmp_path):
    import dataclasses
    g = _graph("resnet20", 8)
    # a board without DRAM (the ULX3S profile without its external_memory section)
    no_dram = dataclasses.replace(boards.get("ulx3s-85f"), external=None)
    with pytest.raises(CompileError, match="ulx3s-85f has no external memory"):
        compile_graph(g, no_dram, placement="external")
    with pytest.raises(CompileError, match="placement 'dram'"):
        compile_graph(g, "arty-a7-35", placement="dram")
    # placement spill on a part too small even with tensors in DRAM: the not-fit error
    a35 = boards.get("arty-a7-35")
    tiny = dataclasses.replace(a35, resources=dict(a35.resources, bram_blocks=3))
    with pytest.raises(CompileError, match="does not fit arty-a7-35 .*available 12288"):
        compile_graph(_graph("sepnet-small", 16, width=0.25, num_classes=10), tiny, placement="spill")
    from sephw.arch.isa import Instruction
    from sephw.compiler.schedule_program import program_cycles
    ir, _ = compile_graph(g, "arty-a7-35", tmp_path / "ext", engine=ENGINE, placement="external")
    with pytest.raises(ValueError, match="DMA_LOAD's cycles need"):
        program_cycles(ir.cfg, [Instruction(Op.DMA_LOAD, length=4)], {})
    # the queue simulation refuses what the top would do otherwise: a tile waiting for a
    # token no load gives, more loads queued than the LoadUnit holds
    with pytest.raises(ValueError, match="waits for a load token that no DMA_LOAD before it gives"):
        program_cycles(ir.cfg, [Instruction(Op.SYNC, deps=DEP_WAIT_PREV)], {}, (2, 10))
    with pytest.raises(ValueError, match="beyond the LoadUnit's 8 queued loads"):
        program_cycles(ir.cfg, [Instruction(Op.DMA_LOAD, length=400)] * 10, {}, (2, 10))
    # the system has the DRAM port and the controller's CSR bus (the simulated board puts a
    # memory and a CSR model there, the Arty's board top LiteDRAM: tests/test_board_build.py)
    from rtl_gen.system import System
    assert {"ext", "dram"} <= set(System(ir.arch, baud=3_000_000, board="arty-a7-35").signature.members)
    # a board profile's external memory is checked
    text = (boards.HERE / "arty-a7-35.yaml").read_text()
    p = tmp_path / "b.yaml"
    p.write_text(text.replace("data_bits: 128", "data_bits: 96"))
    with pytest.raises(boards.BoardError, match="external_memory.data_bits must be a power of two"):
        boards.parse(p)
    p.write_text(text.replace("litedram: litedram/arty-a7.yml", "litedram: nowhere.yml"))
    with pytest.raises(boards.BoardError, match="names nowhere.yml, which is not in"):
        boards.parse(p)
    p.write_text(text.replace("controller: {lut: 3141, ff: 1843}", "controller: {lut: -1, ff: 1843}"))
    with pytest.raises(boards.BoardError, match="external_memory.controller must be a mapping of non-negative"):
        boards.parse(p)
    assert (boards.get("arty-a7-35").external.controller_lut, boards.get("arty-a7-35").external.controller_ff) == \
        (3141, 1843)


@pytest.mark.slow
def test_sepnet_small_from_external_memory(tmp_path):
    """SEP-Net-small at half width (1,000 classes, 32×32 images), compiled for arty-a7-35:
    its weights do not fit on chip beside an overlay that leaves room for the DRAM controller's
    logic, so the FC's weights (the largest step's) come from the behavioural DRAM (the
    board's LiteDRAM-calibrated read latency) by DMA_LOAD, in chunks. Every logit equal to the reference's; the measured cycles within 2 % of the model
    (each instruction's, the waits for loads included, equal). The full-width network (1.36 M
    weights, 616,305 cycles predicted) runs in bench/bench_sepnet.py --simulate (a suite-sized run here:
    its Verilator model and cycles cost minutes more on a fresh clone)."""
    from sim.top_driver import run_top
    g = _graph("sepnet-small", 32, width=0.5)
    with pytest.raises(CompileError, match="does not fit arty-a7-35"):
        compile_graph(g, "arty-a7-35", placement="onchip")
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path)
    pool = next(lay for lay in ir.layers if isinstance(lay.node, PoolFCNode))
    assert (pool.index, 0) in ir.streamed and rep["resources"]["detail"]["dram_controller_lut"] == 3141
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())    # asserts every logit
    meas = r["instruction_cycles"][0]
    print(f"SEP-Net-small (width 0.5) 32x32 on arty-a7-35: measured {sum(meas)} cycles, predicted {ir.cycles}; "
          f"{rep['external']['dma_cycles_per_inference']} in DMA_LOADs, "
          f"{rep['external']['bytes_per_inference']} external bytes per inference")
    assert abs(sum(meas) - ir.cycles) <= 0.02 * ir.cycles
    diff = [(i, s.op.name, m, s.cycles, s.load_wait) for i, (m, s) in enumerate(zip(meas, ir.schedule)) if m != s.cycles]
    assert not diff, diff[:12]
    assert np.isfinite(rep["fps"])


def test_spilled_tensors_through_external_memory(tmp_path):
    """Placement ``spill`` (every streamable step's words in DRAM and a tensor spilled at every
    segment cut) on a quarter-width SEP-Net-small at 16×16: each cut tensor's rows go to the
    behavioural DRAM by SPILL as its band produces them and come back by LOAD (the
    InputFeeder, from the SPILL's addresses) for the next segment, the input image from DRAM
    too; the Program, longer than two pages, from DRAM in pages (two on chip). Every logit
    equal to the reference's, every instruction's cycles as predicted (SPILL's and SYNC's
    waits for the LoadUnit to drain, the first pages' load at start included); with random
    DRAM stalls and back-pressure the logits stay exact. A SPILL or a LOAD past the DRAM's end
    stops the top with its error flag."""
    from sim.top_driver import run_top
    g = _graph("sepnet-small", 16, width=0.25, num_classes=10)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path, engine=ENGINE, placement="spill")
    ops = [i.op for i in ir.instructions]
    assert len(ir.spills) >= 4 and ops.count(Op.SPILL) >= len(ir.spills)
    loads = [i for i in ir.instructions if i.op == Op.LOAD]
    assert len(loads) > len(ir.spills)          # the input's, and each cut's back
    ext = rep["external"]
    assert ext["spilled"] == list(ir.spills) and ext["spill_bytes"] > 0
    assert all(ir.external.nbytes <= i.ext_addr for i in ir.instructions if i.op in (Op.LOAD, Op.SPILL))
    # the Program (longer than two pages) runs from the DRAM in pages, two on chip
    page = ir.program_page
    assert page and ir.arch.program_words == 2 * page < len(ops)
    page_loads = [i for i in ir.instructions if i.op == Op.DMA_LOAD and i.mem == SELECT["program"]]
    assert [i.waddr for i in page_loads] == [(k % 2) * page for k in range(2, 2 + len(page_loads))]
    assert -(-len(ops) // page) == 2 + len(page_loads)
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    r = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())    # asserts every logit
    meas = r["instruction_cycles"][0]
    print(f"SEP-Net-small (width 0.25) 16x16, {len(ir.spills)} tensors spilled: measured {sum(meas)} cycles, "
          f"predicted {ir.cycles}; {ops.count(Op.SPILL)} SPILLs, {len(loads)} LOADs")
    diff = [(i, s.op.name, m, s.cycles, s.load_wait) for i, (m, s) in enumerate(zip(meas, ir.schedule)) if m != s.cycles]
    assert not diff, diff[:12]
    slow = run_top(tmp_path, x.numpy(), reference.run(g, x).numpy(), ext_stall_permille=300)
    assert sum(slow["instruction_cycles"][0]) > sum(meas)
    # a SPILL, then a LOAD, whose DRAM bytes end past the external memory's end: the top stops
    # with its error flag at that instruction (the word address would wrap onto other data)
    ext_bytes = ir.arch.ext_words * ir.arch.ext_data_bits // 8
    for op in (Op.SPILL, Op.LOAD):
        i = next(k for k, ins in enumerate(ir.instructions) if ins.op == op and k > 0)
        _patch_instruction(tmp_path, i, ext_addr=ext_bytes - 8)
        with pytest.raises(AssertionError, match=rf"stopped with error at pc {i}\b"):
            run_top(tmp_path, x.numpy(), reference.run(g, x).numpy())
        _patch_instruction(tmp_path, i, ext_addr=ir.instructions[i].ext_addr)


def _patch_instruction(build, i: int, **fields) -> None:
    """Set fields of instruction ``i`` in ``build``'s Program (program.bin and, for a paged
    Program, the external image's first words, which hold it) and their SHA-256s."""
    import hashlib

    from sephw.arch.isa import decode_program, encode_program
    man = Manifest.read(build)
    old = (build / "program.bin").read_bytes()
    prog = decode_program(old)
    for k, v in fields.items():
        setattr(prog[i], k, v)
    blob = encode_program(prog)
    (build / "program.bin").write_bytes(blob)
    man["program"]["sha256"] = hashlib.sha256(blob).hexdigest()
    if man["arch"].get("program_page"):
        ext = bytearray((build / "external.bin").read_bytes())
        assert ext[:len(old)] == old            # the paged Program is the image's first words
        ext[:len(blob)] = blob
        (build / "external.bin").write_bytes(bytes(ext))
        man["external"]["sha256"] = hashlib.sha256(ext).hexdigest()
    man.write()
