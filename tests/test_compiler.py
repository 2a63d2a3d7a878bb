"""sephw.compiler: ISA round trip, whole-network compiles for every listed board, tile and
address invariants checked from the outputs (not from the passes' own asserts), memory images
against the IntGraph weights, the not-fit error, unsupported nodes, the CLI."""
from __future__ import annotations

import json
import math
import struct
from collections import Counter

import numpy as np
import pytest
import torch
import yaml

import boards
from sephw import binarize, checkpoint, models, quantize
from sephw import intgraph as ig
from sephw.arch import Manifest
from sephw.compiler import (CompileError, Instruction, ISAError, Op, compile_graph, decode_program,
                            encode_program)
from sephw.arch.isa import FLAG_FINAL, LAYOUTS, WORD_BYTES
from sephw.compiler import hw, pipeline
from sephw.compiler.ir import Step
from sephw.compiler.operands import tile_cost
from sephw.flows.compile import register_cli

BOARDS = ("arty-a7-35", "arty-a7-100", "ulx3s-85f")


def _graph(arch: str, size: int, **kw) -> ig.IntGraph:
    torch.manual_seed(0)
    m = models.build(arch, **kw).eval()
    binarize.binarize_model(m)
    x = torch.randint(0, 256, (2, kw.get("in_channels", 3), size, size), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, x)


@pytest.fixture(scope="module")
def sepnet() -> ig.IntGraph:
    return _graph("sepnet-small", 28, in_channels=1, num_classes=10, stem="small", width=0.25)


@pytest.fixture(scope="module")
def builds(sepnet, tmp_path_factory):
    out = {}
    for b in BOARDS:
        d = tmp_path_factory.mktemp(b)
        ir, rep = compile_graph(sepnet, b, d)
        out[b] = (ir, rep, d)
    return out


# --------------------------------------------------------------------------- ISA
def test_isa_roundtrip_random_words():
    rng = np.random.default_rng(0)
    for _ in range(300):
        op = Op(int(rng.integers(0, len(Op))))
        vals = {f.name: int(rng.integers(0, 1 << f.bits)) for f in LAYOUTS[op].fields if f.name != "op"}
        ins = Instruction(op, **vals)
        blob = ins.to_bytes()
        assert len(blob) == WORD_BYTES
        assert Instruction.decode(blob) == ins
    prog = [Instruction(Op.PRB, layer=3, src_a=1, dst=2, wa=1000, wb=77, c0=16, tc=8, k=5, stride=1, pad=2),
            Instruction(Op.END)]
    assert decode_program(encode_program(prog)) == prog


def test_isa_rejects_overflow_and_garbage():
    with pytest.raises(ISAError, match="field rows=4096 does not fit 12 bits"):
        Instruction(Op.CONV_INT, rows=4096).encode()
    with pytest.raises(ISAError, match="unknown opcode"):
        Instruction.decode(31)
    with pytest.raises(ISAError, match="bits outside the opcode's fields"):
        Instruction.decode(1 << 250)
    # a field the opcode does not have: refused when encoding, rejected when decoding
    with pytest.raises(ISAError, match="LOAD .*has no field wa"):
        Instruction(Op.LOAD, wa=3).encode()
    tile_word = Instruction(Op.PRB, k=3).encode()
    with pytest.raises(ISAError, match="LOAD: bits outside"):
        Instruction.decode(tile_word & ~0x1F | int(Op.LOAD))
    # LOAD / STORE carry 32-bit external addresses and lengths
    ins = Instruction(Op.STORE, src_a=2, ext_addr=0xFFFF_FFFF, length=0xFFFF_FFFF)
    assert Instruction.decode(ins.to_bytes()) == ins
    # one field's bits never leak into a neighbour
    w = Instruction(Op.PRB, wa=(1 << 24) - 1).encode()
    d = Instruction.decode(w)
    assert d.wa == (1 << 24) - 1 and d.src_b == 0 and d.dst == 0 and d.wb == 0


# --------------------------------------------------------------------------- whole network
@pytest.mark.parametrize("board", BOARDS)
def test_sepnet_compiles_for_board(builds, board):
    ir, rep, d = builds[board]
    b = boards.get(board)
    for f in ("program.bin", "program.txt", "patterns.bin", "weights.bin", "params.bin", "tensors.bin",
              "schedule.yaml", "manifest.json", "report.md", "report.json"):
        assert (d / f).is_file(), f
    r = json.loads((d / "report.json").read_text())
    for k in ("cycles_per_inference", "fps", "clock_hz", "onchip_bytes", "onchip_budget_bytes", "utilization"):
        assert k in r
    assert r["clock_hz"] == b.clock_hz
    assert r["fps"] == pytest.approx(b.clock_hz / r["cycles_per_inference"])
    assert 0 < r["onchip_bytes"] <= r["onchip_budget_bytes"] <= 10 * 2 ** 20
    assert r["onchip_budget_bytes"] <= b.onchip_bytes
    assert r["resources"]["lut"] <= b.resources["lut"] and r["resources"]["dsp"] <= b.resources["dsp"]
    assert r["resources"]["bram_blocks"] <= b.resources["bram_blocks"]
    # useful MACs are the IntGraph's, independent of the tiling
    macs = 0
    for n in ir.graph.nodes:
        if isinstance(n, ig.PoolFCNode):
            macs += n.weight.numel()
        for op in ig.node_operands(n):
            if isinstance(op, ig.SkipOperand):
                continue
            s = ir.graph.spec(op.input)
            ho, wo = ig.conv_out_hw(s.height, s.width, op.k, op.stride, op.padding)
            macs += ho * wo * op.weight[:, :, :, :].numel()
    assert r["macs_per_inference"] == macs
    # the cycle total is the sum of the schedule, and utilization is a fraction
    sched = yaml.safe_load((d / "schedule.yaml").read_text())
    assert sum(i["cycles"] for i in sched["instructions"]) == r["cycles_per_inference"]
    assert sum(i["engine_cycles"] for i in sched["instructions"]) == r["engine_model_cycles_per_inference"]
    assert r["cycle_model"] == hw.CYCLE_MODEL and r["cycle_model"].startswith("RTL top as built")
    assert "RTL top as built" in (d / "report.md").read_text()
    # the image's UART time at the link's default and highest rates (8N1: 10 bits a byte)
    uart, nbytes = b.host_links["uart"], r["host_link"]["input_bytes"]
    assert r["host_link"]["input_transfer_s_at_baud"] == {
        str(bd): nbytes * 10 / bd for bd in sorted({uart["default_baud"], uart["max_baud"]})}
    assert f"ms at {uart['max_baud']:,} baud, beside" in (d / "report.md").read_text()
    # the top as built is slower than its engines at their measured rates (window gather)
    assert r["cycles_per_inference"] > r["engine_model_cycles_per_inference"]
    assert 0 < r["utilization"]["engines"] <= 1 and 0 < r["utilization"]["pattern_engine"] <= 1


@pytest.mark.parametrize("board", BOARDS)
def test_program_covers_every_output_once_and_tiles_fit(builds, board):
    ir, rep, d = builds[board]
    prog = decode_program((d / "program.bin").read_bytes())
    assert prog[-1].op == Op.END and len(prog) == rep["instructions"]
    g = ir.graph
    covered = {}
    for ins in prog:
        if ins.op in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
            n = g.nodes[ins.layer]
            cov = covered.setdefault(n.name, np.zeros((n.out.channels, n.out.height), dtype=np.int32))
            cov[ins.c0:ins.c0 + ins.tc, ins.row0:ins.row0 + ins.rows] += 1
            # the input band incl. halo fits the source ring
            src = [t for t in ir.tensors.values() if t.id == ins.src_a][0]
            s = src.spec
            if ins.k > 1:
                lo = max(0, ins.row0 * ins.stride - ins.pad)
                hi = min(s.height, (ins.row0 + ins.rows - 1) * ins.stride - ins.pad + ins.k)
            else:
                lo, hi = ins.row0 * ins.stride, (ins.row0 + ins.rows) * ins.stride
            assert hi - lo <= src.ring_rows
            assert ins.tc <= ir.cfg.lanes
    for n in g.nodes:
        if isinstance(n, (ig.InputNode, ig.PoolFCNode)):
            continue
        assert (covered[n.name] == 1).all(), n.name
    for t in ir.tiles:
        assert t.working_set <= rep["onchip_budget_bytes"]


@pytest.mark.parametrize("board", BOARDS)
def test_addresses_do_not_overlap(builds, board):
    ir, rep, d = builds[board]
    man = Manifest.read(d)
    ts = man["tensors"]
    desc = (d / "tensors.bin").read_bytes()
    live = {t.id: t.live for t in ir.tensors.values()}
    for t in ts:
        base, ring, h, w, c, bits, signed, _ = struct.unpack_from("<IHHHHBBH", desc, 16 * t["id"])
        assert (base, ring, [c, h, w]) == (t["base"], t["ring_rows"], t["shape"])
        assert t["bytes"] == ring * w * c and base + t["bytes"] <= man["memories"]["activations"]["bytes"]
    for i, a in enumerate(ts):
        for b in ts[i + 1:]:
            la, lb = live[a["id"]], live[b["id"]]
            if la[1] < lb[0] or lb[1] < la[0]:
                continue
            assert a["base"] + a["bytes"] <= b["base"] or b["base"] + b["bytes"] <= a["base"], (a["name"], b["name"])
    # pattern words of different tiles do not overlap: a word belongs to one (layer, channel
    # block), or with lane pairs to two blocks of a layer, the second (lane_rot) the block
    # after the first; row bands of the same tile read the same words again
    owner, paired = {}, 0
    for ins in decode_program((d / "program.bin").read_bytes()):
        if ins.op in (Op.CONV_PATTERN, Op.PRB) or (ins.op == Op.RESADD and ins.flags & 32):
            c0 = ins.c0 - ins.tc if ins.lane_rot else ins.c0
            assert owner.setdefault(ins.wa, (ins.layer, c0)) == (ins.layer, c0), ins
            paired += ins.lane_rot
    assert owner
    assert paired == 0 or ir.cfg.lane_pairs


def test_prb_runs_both_engines_on_the_same_tile(builds):
    ir, rep, d = builds["arty-a7-35"]
    sched = yaml.safe_load((d / "schedule.yaml").read_text())
    prbs = [i for i in sched["instructions"] if i["op"] == "PRB"]
    n_prb_nodes = sum(isinstance(n, ig.PRBNode) for n in ir.graph.nodes)
    assert n_prb_nodes == 10 and len(prbs) >= n_prb_nodes
    for i in prbs:
        assert i["busy"]["pattern"] > 0 and i["busy"]["mac"] > 0
        assert i["engine_cycles"] >= max(i["busy"]["pattern"], i["busy"]["mac"])
        assert i["cycles"] >= i["engine_cycles"]
    # concurrent: dropping the 1x1 branch (the MAC array's work) from a PRB tile whose pattern
    # branch is the longer one leaves its cycles unchanged; serial engines would lose mac cycles
    checked = 0
    for ins, s in zip(ir.instructions, ir.schedule):
        if s.op != Op.PRB or s.busy["mac"] >= s.busy["pattern"]:
            continue
        n = ir.graph.nodes[ins.layer]
        alone = Step([n.kxk], Op.CONV_PATTERN, 0, n.out.channels)
        cyc = tile_cost(ir.cfg, alone, ir.graph, ins.rows, ins.tc)[0]
        assert cyc == s.engine_cycles, (s, cyc)
        checked += 1
    assert checked


def test_top_cycle_model_matches_verilator():
    """hw.top_instruction_cycles against the cycles measured per instruction on the RTL top in
    Verilator (tests/test_rtl_top.py's SEP-Net-small, overlay 4 lanes x 4 pattern channels x 4
    MAC columns, k_max 5, a_bits 8, pattern words in 4 slices; the top's ``pc``): one
    instruction of each kind. The stride-1 multi-chunk pattern operands (the 3x3 on 32
    channels: 8 chunks, the 5x5 PRBs: 2) slide, each chunk's window kept in the column store,
    so they run at the pattern engine's pace: 4 x 4 x 8 beats of 8 cycles is 1,024 of the 3x3's
    1,125 cycles (132 more with a full k^2 gather per chunk and position)."""
    cfg = hw.EngineConfig(lanes=4, pe_cin=4, mac_cols=4, k_max=5, a_bits=8, packed=False, pp_units=1,
                          max_width=8)
    T = {0: hw.TensorDesc(8, 8, 1, 8), 1: hw.TensorDesc(8, 8, 16, 8), 2: hw.TensorDesc(4, 4, 32, 8),
         3: hw.TensorDesc(4, 4, 16, 8), 4: hw.TensorDesc(2, 2, 16, 8), 5: hw.TensorDesc(1, 1, 128, 8)}
    cases = [  # (instruction, measured cycles)
        (Instruction(Op.LOAD, dst=0, row0=0, rows=8, length=64), 218),
        (Instruction(Op.CONV_PATTERN, src_a=0, src_b=0, dst=1, row0=0, rows=8, k=3, stride=1, pad=1,
                     tc=4, na=1, flags=3), 584),
        (Instruction(Op.CONV_PATTERN, src_a=1, src_b=1, dst=2, row0=0, rows=4, k=3, stride=2, pad=1,
                     tc=4, na=16, flags=3), 681),
        (Instruction(Op.CONV_PATTERN, src_a=2, src_b=2, dst=2, row0=0, rows=4, k=3, stride=1, pad=1,
                     tc=4, na=32, flags=3), 1125),
        (Instruction(Op.CONV_INT, src_a=2, src_b=2, dst=3, row0=0, rows=4, k=1, stride=1, tc=4, na=32), 213),
        (Instruction(Op.PRB, src_a=3, src_b=3, dst=3, row0=0, rows=4, k=5, stride=1, pad=2, tc=4, na=8,
                     nb=4, flags=3), 498),
        (Instruction(Op.PRB, src_a=4, src_b=4, dst=4, row0=0, rows=2, k=5, stride=1, pad=2, tc=4, na=8,
                     nb=4, flags=3), 221),
        (Instruction(Op.RESADD, src_a=3, src_b=3, dst=2, row0=0, rows=4, k=1, stride=1, tc=4, na=16, nb=4,
                     flags=4), 198),
        (Instruction(Op.SYNC), 5),
        (Instruction(Op.STORE, src_a=5, length=80), 162),
        (Instruction(Op.END), 1),
    ]
    for ins, measured in cases:
        assert hw.top_instruction_cycles(cfg, ins, T) == measured, (ins.text(), measured)
    # the Program's first instruction also waits for the first fetch
    assert hw.top_instruction_cycles(cfg, cases[0][0], T, first=True) == 223
    # the FC over one byte plane (the compiler's fc_planes for a 1x1 map of 8-bit codes: every
    # sum < 256); tests/test_rtl_poolfc.py checks 1 to 4 planes against the PoolFC unit alone
    fc = Instruction(Op.POOL_FC, src_a=5, row0=0, rows=1, tc=10, flags=8, fc_planes=1)
    assert hw.top_instruction_cycles(cfg, fc, T, clear_pool_sums=True) == 1039
    # without the clear (a later band's POOL_FC): the 128 clear cycles fewer
    assert hw.top_instruction_cycles(cfg, fc, T) == 1039 - 128


def test_memory_images_hold_the_graph_weights(builds):
    ir, rep, d = builds["arty-a7-35"]
    cfg = ir.cfg
    prog = decode_program((d / "program.bin").read_bytes())
    pat = (d / "patterns.bin").read_bytes()
    wgt = np.frombuffer((d / "weights.bin").read_bytes(), dtype=np.int8)
    prm = (d / "params.bin").read_bytes()
    # a chunk's pattern word is 2^pshift memory words of pattern_mem_bits (each padded to
    # bytes) from memory word wa on, tap-major: lane l's tap (c, i, j) at bit
    # ((c*k + i)*k + j)*lanes + l
    sbytes = cfg.pattern_mem_bytes
    assert len(pat) == ir.memory["patterns"].words * sbytes

    def word_bits(wa, n):
        return np.concatenate([np.unpackbits(np.frombuffer(pat[(wa + s) * sbytes:(wa + s + 1) * sbytes],
                                                           dtype=np.uint8), bitorder="little")[:cfg.pattern_mem_bits]
                               for s in range(n)])
    checked = 0
    for ins in prog:
        n = ir.graph.nodes[ins.layer] if ins.op != Op.END else None
        if ins.op == Op.PRB and ins.row0 == 0:
            # first chunk word of the pattern operand: lane l = output channel c0 + l
            w = n.kxk.weight
            og, k = w.shape[0] // n.kxk.groups, w.shape[-1]
            gt = max(1, math.ceil(ins.tc / og)) if og < ins.tc else 1
            cin = min(w.shape[1], cfg.pe_cin // gt)
            bits = word_bits(ins.wa, 1 << ins.pshift)
            assert bits.size >= cfg.lanes * cin * k * k
            for l in range(ins.tc):
                want = (w[ins.c0 + l, :cin] > 0).numpy().astype(np.uint8)
                got = [bits[((c * k + i) * k + j) * cfg.lanes + l] for c in range(cin) for i in range(k) for j in range(k)]
                assert got == want.reshape(-1).tolist()
            # 1x1 weights: row p of the first word = output channel c0 + p, block-diagonal
            b = n.p1x1.weight[:, :, 0, 0]
            ogb = b.shape[0] // n.p1x1.groups
            word = wgt[ins.wb * cfg.weight_word_bytes:(ins.wb + 1) * cfg.weight_word_bytes].reshape(cfg.lanes, cfg.mac_cols)
            g0 = ins.c0 // ogb
            for p in range(ins.tc):
                slot = (ins.c0 + p) // ogb - g0
                row = np.zeros(cfg.mac_cols * 64, dtype=np.int8)
                row[slot * b.shape[1]:(slot + 1) * b.shape[1]] = b[ins.c0 + p].numpy()
                assert (word[p] == row[:cfg.mac_cols]).all()
            # parameters of the tile's first channel
            ma, mb = struct.unpack_from("<ii", prm, 16 * ins.prm)
            bias = int.from_bytes(prm[16 * ins.prm + 8:16 * ins.prm + 14], "little", signed=True)
            assert (ma, mb, bias, prm[16 * ins.prm + 14]) == (int(n.requant.m_a[ins.c0]), int(n.requant.m_b[ins.c0]),
                                                              int(n.requant.bias[ins.c0]), int(n.requant.shift[ins.c0]))
            checked += 1
    assert checked >= 10


def test_resnet20_pattern_network_compiles(tmp_path):
    g = _graph("resnet20", 32, in_channels=1, num_classes=10)
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path)
    assert rep["cycles_per_inference"] > 0 and rep["onchip_bytes"] <= rep["onchip_budget_bytes"]
    ops = {i["op"] for i in yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]}
    assert {"CONV_PATTERN", "RESADD", "POOL_FC", "LOAD", "STORE"} <= ops
    # the projection shortcuts (1x1 int8) run on the MAC array concurrently with the pattern conv
    proj = [i for i in yaml.safe_load((tmp_path / "schedule.yaml").read_text())["instructions"]
            if i["op"] == "RESADD" and "mac" in i.get("busy", {})]
    assert proj and all("pattern" in i["busy"] for i in proj)


def test_sizing_keeps_the_column_store_only_where_it_pays():
    """The column store (multi-chunk stride-1 pattern operands slide) costs LUTs: the sizer
    admits overlays with it and drops it where the Program runs as fast without. ResNet-20 on
    arty-a7-35 (16 pattern channels per beat: stages 2 and 3 are 2 and 4 chunks) keeps it and
    loses cycles without it; on arty-a7-100 (64 channels per beat, every operand one chunk)
    it goes, with the same cycles and fewer LUTs."""
    g = _graph("resnet20", 32, in_channels=3, num_classes=10)
    small = pipeline.compile_ir(g, boards.get("arty-a7-35"))
    assert small.cfg.column_store
    eng = dict(lanes=small.cfg.lanes, pe_cin=small.cfg.pe_cin, mac_cols=small.cfg.mac_cols,
               packed=small.cfg.packed, pp_units=small.cfg.pp_units)
    without = pipeline.compile_ir(g, boards.get("arty-a7-35"), engine=dict(eng, column_store=False))
    assert without.cycles > 1.1 * small.cycles
    assert without.resources.lut < small.resources.lut
    big = pipeline.compile_ir(g, boards.get("arty-a7-100"))
    assert not big.cfg.column_store
    eng = dict(lanes=big.cfg.lanes, pe_cin=big.cfg.pe_cin, mac_cols=big.cfg.mac_cols,
               packed=big.cfg.packed, pp_units=big.cfg.pp_units)
    assert pipeline.compile_ir(g, boards.get("arty-a7-100"), engine=dict(eng, column_store=True)).cycles == big.cycles


def test_sizing_picks_fewest_rtl_top_cycles_among_fitting_configs():
    """The engine model's favourite is not necessarily the fastest on the RTL top: the chosen
    overlay takes no more top cycles than the engine model's best and its neighbours."""
    g = _graph("resnet20", 32, in_channels=3, num_classes=10)
    board = boards.get("arty-a7-35")
    ir = pipeline.compile_ir(g, board)
    alts = 0
    for eng in ({"lanes": 8, "pe_cin": 16, "mac_cols": 8}, {"lanes": 8, "pe_cin": 8, "mac_cols": 8},
                {"lanes": 16, "pe_cin": 8, "mac_cols": 4}, {"lanes": 16, "pe_cin": 4, "mac_cols": 8}):
        try:
            alt = pipeline.compile_ir(g, board, engine=dict(eng, packed=False, pp_units=1))
        except CompileError:
            continue
        alts += 1
        assert ir.cycles <= alt.cycles, (eng, alt.cycles, ir.cycles)
    assert alts >= 2


def test_sizer_puts_a_shallow_weight_memory_in_block_ram_where_luts_run_out():
    """ResNet-20 on arty-a7-35: with four MAC columns the 16 x 16 overlay's weight memory is
    512 bits x 56 words, shallow enough for distributed RAM, whose LUTs take the overlay past
    the LUT limit; in block RAM (free there) it fits, and it is faster than the overlay the
    sizer picks without the option (two MAC columns: the projection shortcuts' 1x1 beats take
    twice the cycles)."""
    g = _graph("resnet20", 32, in_channels=3, num_classes=10)
    board = boards.get("arty-a7-35")
    ir = pipeline.compile_ir(g, board)
    assert ir.cfg.weights_bram and ir.cfg.mac_cols == 4
    blocks, luts = ir.memory_blocks.per_memory["weights"]
    assert blocks > 0 and luts == 0
    assert ir.resources.lut <= board.resources["lut"]
    assert ir.resources.bram_blocks <= board.resources["bram_blocks"]
    eng = dict(lanes=ir.cfg.lanes, pe_cin=ir.cfg.pe_cin, mac_cols=ir.cfg.mac_cols, packed=ir.cfg.packed,
               pp_units=ir.cfg.pp_units, column_store=ir.cfg.column_store)
    with pytest.raises(CompileError, match="distributed-RAM memories"):
        pipeline.compile_ir(g, board, engine=dict(eng, weights_bram=False))
    two = pipeline.compile_ir(g, board, engine=dict(eng, mac_cols=2))
    assert not two.cfg.weights_bram and ir.cycles < two.cycles
    # the estimate's memory costs follow the flag: block RAM however shallow, else LUTs
    assert hw.memory_cost("xilinx", 512, 56, block=True) == (hw.bram_blocks("xilinx", 512, 56), 0)
    assert hw.memory_cost("xilinx", 512, 56)[0] == 0 and hw.memory_cost("xilinx", 512, 56)[1] > 600
    # and through memory_blocks: copies alone do not make a memory block RAM
    from sephw.compiler.memory import memory_blocks
    blocks, luts, per = memory_blocks("xilinx", {"banks": (8, 32, 4), "w": (512, 56, 1, True), "x": (512, 56)})
    assert per["banks"] == (0, 4 * hw.memory_cost("xilinx", 8, 32)[1]) and per["w"] == (7.5, 0)
    assert per["x"] == (0, 684) and (blocks, luts) == (7.5, per["banks"][1] + 684)


def test_sizing_is_an_outer_search_over_pure_estimates(monkeypatch):
    """The sizer runs no pass per candidate: one compile runs each pass once. Its RTL-top
    estimate of an overlay (size_engines.top_cycles: the tiles and instructions the passes
    would make, without addresses) is the compiled Program's cycles, and estimating leaves the
    IR as it was."""
    import copy

    from sephw.compiler import size_engines
    g = _graph("resnet20", 32, in_channels=3, num_classes=10)
    runs = Counter()
    for cls in pipeline.PIPELINE:
        orig = cls.run
        monkeypatch.setattr(cls, "run", lambda self, ir, _orig=orig, _name=cls.__name__:
                            runs.update([_name]) or _orig(self, ir))
    ir = pipeline.compile_ir(g, boards.get("arty-a7-35"))
    assert set(runs.values()) == {1} and len(runs) == len(pipeline.PIPELINE), runs
    assert ir.bands == 1
    before = copy.deepcopy((ir.tiles, ir.cfg, [st.tc for lay in ir.layers for st in lay.steps]))
    assert size_engines.top_cycles(ir, ir.cfg) == ir.cycles
    # another overlay's estimate: a full compile fixed to it predicts the same cycles
    other = hw.EngineConfig(8, 8, 8, ir.cfg.k_max, ir.cfg.a_bits, False, 1, ir.cfg.max_width, True)
    fixed = pipeline.compile_ir(g, boards.get("arty-a7-35"),
                                engine=dict(lanes=8, pe_cin=8, mac_cols=8, packed=False, pp_units=1))
    assert fixed.bands == 1 and size_engines.top_cycles(ir, other) == fixed.cycles
    est = size_engines.estimate(ir, other, size_engines.band_layout(ir, 1).act_bytes)
    assert est.fits_logic and est.fits_maps and est.resources.dsp == fixed.resources.dsp
    assert est.resources.lut + est.lutram == fixed.resources.lut    # logic + distributed RAM
    assert (ir.tiles, ir.cfg, [st.tc for lay in ir.layers for st in lay.steps]) == before


def test_fixed_overlay_that_does_not_fit_names_its_needs(sepnet):
    """A fixed overlay over the part's logic: the error gives its LUT/FF/DSP needs (and the
    distributed-RAM share when that is what tips it) against the budget."""
    with pytest.raises(CompileError) as e:
        pipeline.compile_ir(sepnet, boards.get("arty-a7-35"),
                          engine=dict(lanes=64, pe_cin=16, mac_cols=8, packed=False, pp_units=1))
    msg = str(e.value)
    assert msg.startswith("board arty-a7-35: the overlay (64 lanes, 16-channel pattern beats, 8 MAC columns) needs ")
    need = int(msg.split(" needs ")[1].split(" LUT")[0])
    assert need > 17680 and msg.endswith("; the budget is 17680 LUT / 35360 FF / 90 DSP")


def test_no_overlay_message_counts_the_dram_controller():
    """Where the overlay would stream words from DRAM, the LUTs it needs include the DRAM
    controller's, and the message says so (it read 51,377 'needed' against a 53,890 budget for
    the 224x224 SEP-Net's 16 x 32 overlay on arty-a7-100, which the controller's 3,141 tip)."""
    from types import SimpleNamespace

    from sephw.compiler import size_engines
    b = boards.get("arty-a7-100")
    cfg = hw.EngineConfig(16, 32, 4, 5, 8, False, 2, 224, True)
    e = size_engines.Estimate(cfg, hw.Resources(lut=45737, ff=101193, dsp=89), 5640, 100.0, False, True, 0, 0,
                              frozenset({(3, 0)}))
    msg = size_engines.SizeEngines._no_overlay_message(SimpleNamespace(board=b), [e])
    ctl = hw.dram_controller(b)["lut"]
    assert f"needs 45737 LUT of logic + 5640 LUT of distributed-RAM memories + {ctl} LUT of the DRAM " \
           f"controller = {45737 + 5640 + ctl} LUT / 101193 FF / 89 DSP" in msg


def test_memories_over_a_boards_lut_fill_are_named(sepnet):
    """Where the overlay's logic and distributed-RAM memories fit the part but not the share a
    profile's ``lut_fill`` allows (the ULX3S: what nextpnr places), the not-fit message says
    which limit; the banding's fit test and the pass's invariant use the same limit."""
    from dataclasses import replace
    from types import SimpleNamespace

    from sephw.compiler.ir import lut_limit
    from sephw.compiler.tile_layers import TileLayers
    ulx = replace(boards.get("ulx3s-85f"), lut_fill=0.1)
    assert lut_limit(ulx) == 8364 and lut_limit(boards.get("arty-a7-35")) == 20800
    ir = SimpleNamespace(board=ulx, graph=sepnet, costs=hw.load_costs(), budget=10 ** 6,
                         resources=hw.Resources(lut=5000, ff=0, dsp=0))
    big = SimpleNamespace(name="t", spec=SimpleNamespace(describe=lambda: "1x8x8"), row_bytes=8)
    msg = TileLayers()._not_fit_message(ir, 1000, 1, big, 2, SimpleNamespace(memory_bytes={"weights": 100}),
                                        16, 1, lutram=4000)
    assert "5000 LUT of logic + 4000 LUT of distributed-RAM memories exceed the 8364 LUT the board's " \
           "lut_fill allows (0.1 of 83640)" in msg


# --------------------------------------------------------------------------- bands and errors
@pytest.fixture(scope="module")
def sepnet112() -> ig.IntGraph:
    """The same small SEP-Net at 112x112: its whole feature maps do not fit one small board."""
    return _graph("sepnet-small", 112, in_channels=1, num_classes=10, stem="small", width=0.25)


@pytest.mark.slow
def test_not_fit_error_names_layer_and_numbers(sepnet112):
    # on chip alone it does not fit arty-a7-35 (with the board's DRAM it does: its weights
    # stream and a tensor is spilled there, test_placement.py)
    with pytest.raises(CompileError) as e:
        compile_graph(sepnet112, "arty-a7-35", placement="onchip")
    msg = str(e.value)
    assert "does not fit arty-a7-35" in msg and "available 204800 bytes" in msg
    assert "largest layer buffer: features." in msg
    needed = int(msg.split("needs ")[1].split(" bytes")[0])
    assert needed > 204800
    # the listed boards that would fit really compile it
    fits = msg.split("Boards that would fit: ")[1].split(", ")
    assert fits and fits[0] in BOARDS
    for b in fits:
        ir, _ = compile_graph(sepnet112, b)
        assert sum(ir.onchip.values()) <= ir.budget


def test_row_bands_with_halos_when_maps_do_not_fit(sepnet112):
    import dataclasses
    # shrink arty-a7-100's block RAM until whole maps no longer fit: the compiler must band
    # (and only then fail with the not-fit error)
    a100 = boards.get("arty-a7-100")
    # a fixed overlay whose weights leave room for whole maps (the sizer's own pick on the full
    # part is wide enough that it already bands there)
    eng = dict(lanes=8, pe_cin=8, mac_cols=8, packed=True, pp_units=1)
    full = pipeline.compile_ir(sepnet112, a100, engine=eng)
    assert full.bands == 1
    ir = None
    for blocks in range(math.ceil(full.memory_blocks.block_ram) - 1, 40, -3):
        b = dataclasses.replace(a100, resources=dict(a100.resources, bram_blocks=blocks))
        try:
            ir = pipeline.compile_ir(sepnet112, b, engine=eng)
        except CompileError as e:
            assert "does not fit" in str(e)
            break
        if ir.bands > 1:
            break
    assert ir is not None and ir.bands > 1, "never banded before failing"
    assert ir.memory_blocks.block_ram <= blocks and sum(ir.onchip.values()) <= ir.budget
    # the layers up to the anchor run in row bands: rings smaller than their maps, but each
    # holds one band of the consumer's input rows including the halo (k=3: s*(rows-1)+3)
    anchor = ir.tensors[ir.anchor]
    band = math.ceil(anchor.spec.height / ir.bands)
    src = ir.graph.node(ir.anchor).conv
    ring = ir.tensors[src.input]
    assert ring.ring_rows < ring.spec.height
    assert ring.ring_rows >= src.stride * (band - 1) + src.k - src.padding
    # every row of every layer is produced exactly once over the bands
    for name, (hi, lo) in ir.band_rows.items():
        assert hi[0] == 0 and all(hi[i] <= hi[i + 1] for i in range(ir.bands))
    covered = {}
    for t in ir.tiles:
        if t.opcode in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
            n = ir.graph.nodes[t.layer]
            cov = covered.setdefault(n.name, np.zeros((n.out.channels, n.out.height), dtype=np.int32))
            cov[t.c0:t.c0 + t.tc, t.row0:t.row0 + t.rows] += 1
    assert all((c == 1).all() for c in covered.values())
    assert {t.band for t in ir.tiles if t.layer <= ir.graph.nodes.index(ir.graph.node(ir.anchor))} == set(range(ir.bands))


def test_unsupported_node_is_named(sepnet):
    import copy

    class FancyNode:
        name = "features.fancy"
    g = copy.copy(sepnet)
    g.nodes = list(sepnet.nodes)
    g.nodes.insert(2, FancyNode())
    g.validate = lambda: g
    with pytest.raises(CompileError, match=r"features.fancy: FancyNode is not supported .*supported node types: "
                                           r"InputNode, PatternConvNode, IntConvNode, PRBNode"):
        compile_graph(g, "arty-a7-35")


def test_costs_read_from_engine_benchmark(tmp_path):
    p = tmp_path / "engines.json"
    p.write_text(json.dumps({"instances": [
        {"engine": "PatternEngine", "params": {"lanes": 4, "cin": 4, "k": 3, "groups": 1},
         "resources": {"LUT_total": 720, "FF": 144, "DSP48E1": 0}},
        {"engine": "PatternEngine", "params": {"lanes": 4, "cin": 4, "k": 3, "groups": 1, "netlist": "xc7"},
         "resources": {"LUT": 288, "LUT_total": 400, "FF": 144, "DSP48E1": 0}},
        {"engine": "PatternEngine", "params": {"lanes": 4, "cin": 4, "k": 3, "groups": 1, "netlist": "word"},
         "resources": {"LUT": 1440, "LUT_total": 1440, "FF": 144, "DSP48E1": 0}},
        {"engine": "MacArray", "params": {"rows": 2, "cols": 2, "packed": True},
         "resources": {"LUT_total": 100, "FF": 40, "DSP48E1": 2}}]}))
    c = hw.load_costs(p)
    assert c.pattern_lut_per_op == 5.0 and c.pattern_ff_per_op == 1.0
    assert c.pattern_lut_per_op_xc7 == 2.0    # logic LUTs of the xc7 netlist; "word" is ignored
    cfg = hw.EngineConfig(4, 4, 2, 3, 8, True, 1, 8)
    assert hw.resources(cfg, c, "xilinx").detail["pattern_engine_lut"] == 288
    # the generic netlist on the ECP5, in its logic cells
    assert hw.resources(cfg, c, "lattice").detail["pattern_engine_lut"] == round(720 * c.ecp5_comb_per_lut)
    x, e = hw.resources(cfg, c, "xilinx"), hw.resources(cfg, c, "lattice")
    assert abs(e.lut - ((x.lut - 288 + 720) * c.ecp5_comb_per_lut + c.ecp5_comb_fixed)) < 2
    assert (e.ff, e.dsp) == (x.ff, x.dsp)
    assert c.mac_lut_packed == 25.0 and c.mac_dsp_packed == 0.5
    assert c.pp_lut == hw.UnitCosts().pp_lut         # not measured: the estimate stays
    assert hw.load_costs(tmp_path / "missing.json") == hw.UnitCosts()


# --------------------------------------------------------------------------- typed IR, BUILD/passes
PASS_FILES = ["01_check_legalize.json", "02_size_engines.json", "03_tile_layers.json",
              "04_assign_addresses.json", "05_emit_instructions.json", "06_schedule_program.json"]


def test_build_keeps_the_ir_and_time_of_every_pass(builds):
    """BUILD/passes/ holds one dump per PIPELINE pass, in order, each the IR as that pass left
    it (checked against the build's own outputs), and the time each pass took."""
    ir, rep, d = builds["arty-a7-35"]
    names = [cls.__name__ for cls in pipeline.PIPELINE]
    assert names == ["CheckLegalize", "SizeEngines", "TileLayers", "AssignAddresses", "EmitInstructions",
                     "ScheduleProgram"]
    assert sorted(p.name for p in (d / "passes").iterdir()) == PASS_FILES + ["timing.json"]
    dumps = [json.loads((d / "passes" / f).read_text()) for f in PASS_FILES]
    assert [x["pass"] for x in dumps] == names and [x["index"] for x in dumps] == [1, 2, 3, 4, 5, 6]
    assert all(x["contract"] == cls.CONTRACT for x, cls in zip(dumps, pipeline.PIPELINE))
    for f in PASS_FILES:       # a summary, not the weights
        assert (d / "passes" / f).stat().st_size < 100_000, f
    timing = json.loads((d / "passes" / "timing.json").read_text())
    assert [(t["pass"], t["file"]) for t in timing["passes"]] == list(zip(names, PASS_FILES))
    secs = [t["seconds"] for t in timing["passes"]]
    assert all(s >= 0 for s in secs) and timing["total_seconds"] == pytest.approx(sum(secs), abs=1e-5)
    assert list(rep["pass_seconds"]) == names and list(rep["pass_seconds"].values()) == secs
    assert sum(secs) <= rep["compile_seconds"] + 1e-3
    man = Manifest.read(d)
    legal, sized, tiled, placed, emitted, scheduled = (x["ir"] for x in dumps)
    # each pass's fields appear after it, not before
    assert legal["engine"] is None and len(legal["layers"]) == len(ir.graph.nodes)
    assert [t["name"] for t in legal["tensors"]] == [t["name"] for t in man["tensors"]]
    assert all(t["ring_rows"] == 0 and t["base"] == -1 for t in legal["tensors"])
    assert sized["engine"] == rep["engine_config"] and sized["tiles"] == 0
    assert tiled["bands"] == rep["bands"] and tiled["tiles"] == rep["instructions"] - 3
    assert sum(lay["tiles"] for lay in tiled["layers"]) == tiled["tiles"]
    assert [t["ring_rows"] for t in tiled["tensors"]] == [t["ring_rows"] for t in man["tensors"]]
    assert all(t["base"] == -1 for t in tiled["tensors"]) and tiled["instructions"] == 0
    assert tiled["onchip_bytes"] == rep["onchip_breakdown"]
    assert [t["base"] for t in placed["tensors"]] == [t["base"] for t in man["tensors"]]
    assert placed["memory"]["activations"]["bytes"] == man["memories"]["activations"]["bytes"]
    for name in ("patterns", "weights", "params", "tensors"):
        assert placed["memory"][name]["bytes"] == man["memories"][name]["bytes"], name
    prog = decode_program((d / "program.bin").read_bytes())
    assert emitted["instructions"] == len(prog) and emitted["cycles"] == 0
    assert emitted["instructions_by_op"] == dict(Counter(i.op.name for i in prog))
    assert scheduled["cycles"] == rep["cycles_per_inference"]
    assert scheduled["engine_cycles"] == rep["engine_model_cycles_per_inference"]
    # the tiles, the Program and its schedule themselves, from the pass that makes them on
    cols = tiled["tile_table"]["columns"]
    assert sized["tile_table"]["rows"] == [] and len(tiled["tile_table"]["rows"]) == tiled["tiles"]
    assert [dict(zip(cols, r)) for r in placed["tile_table"]["rows"]] == [
        {c: (t.opcode.name if c == "opcode" else getattr(t, c)) for c in cols} for t in ir.tiles]
    txt = (d / "program.txt").read_text().splitlines()[1:]       # "  i @start +cycles <the line>"
    assert placed["program"] == [] and len(emitted["program"]) == len(prog) == len(txt)
    assert all(t.endswith(" " + line) for t, line in zip(txt, emitted["program"]))
    assert emitted["schedule"]["rows"] == []
    sched = yaml.safe_load((d / "schedule.yaml").read_text())["instructions"]
    assert [r[:2] for r in scheduled["schedule"]["rows"]] == [[s["start"], s["cycles"]] for s in sched]


def test_program_entries_pair_each_instruction_with_its_tile(builds):
    """ir.program pairs every tile's instruction with that tile (SYNC / END with none), and the
    report's per-layer tile counts follow from it; compare with program.bin's layer fields."""
    ir, rep, d = builds["arty-a7-35"]
    prog = decode_program((d / "program.bin").read_bytes())
    assert [e.instruction for e in ir.program] == prog == ir.instructions
    assert [e.tile for e in ir.program if e.tile is not None] == ir.tiles
    compute = (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD)
    for e in ir.program:
        ins, t = e.instruction, e.tile
        if ins.op in (Op.SYNC, Op.END):
            assert t is None
            continue
        assert t.layer == ins.layer and t.opcode == ins.op and (t.row0, t.rows) == (ins.row0, ins.rows), ins.text()
        if ins.op in compute:
            assert (t.c0, t.tc) == (ins.c0, ins.tc), ins.text()
    per_layer = {}
    for ins in prog:
        if ins.op not in (Op.SYNC, Op.END):
            per_layer[ins.layer] = per_layer.get(ins.layer, 0) + 1
    assert {r["index"]: r["tiles"] for r in rep["layers"] if r["tiles"]} == per_layer


def test_ir_objects_carry_only_declared_attributes(builds):
    """No side channels: nothing is attached to an instruction, and every IR node holds only
    the fields its class declares."""
    import dataclasses
    ir, rep, d = builds["arty-a7-35"]
    for ins in ir.instructions:
        assert not [k for k in vars(ins) if k.startswith("_")], ins.text()
    objs = [ir, *ir.layers, *(st for lay in ir.layers for st in lay.steps), *ir.tensors.values(), *ir.tiles,
            *ir.memory.values(), *ir.program, *(e.instruction for e in ir.program), ir.static, *ir.passes,
            ir.resources, ir.memory_blocks, *ir.schedule]
    for o in objs:
        assert set(vars(o)) <= {f.name for f in dataclasses.fields(o)}, (type(o).__name__, vars(o).keys())

# --------------------------------------------------------------------------- CLI
def test_cli_compile(sepnet, tmp_path, monkeypatch, capsys):
    import argparse

    from sephw.flows import simulate
    ck = tmp_path / "m_q.pt"
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25)
    checkpoint.save(ck, m, "sepnet-small", {"in_channels": 1, "num_classes": 10, "stem": "small", "width": 0.25},
                    {"stage": "quantized"}, intgraph=sepnet.to_dict())
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    register_cli(sub)
    out = tmp_path / "build"
    from sephw.flows import boardbuild
    tops, boards_ = [], []
    # the top's Verilog and the board build run for real in tests/test_rtl_top.py and
    # tests/test_board_build.py; here only that compile calls them with the right arguments
    monkeypatch.setattr(simulate, "write_top_verilog", lambda d, bake=False: tops.append((d, bake)) or out / "top.v")
    monkeypatch.setattr(boardbuild, "board_build",
                        lambda d, b, synth=True, baud=None: boards_.append((d, b.name, b.clock_hz, synth, baud)) or {})
    a = p.parse_args(["compile", str(ck), "--board", "arty-a7", "-o", str(out), "--no-board"])
    assert a.func(a) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["board"] == "arty-a7-35"
    # where the time goes, from the report's per-layer bound
    rows = [r for r in rep["layers"] if r["cycles"]]
    top = max(rows, key=lambda r: r["cycles"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("layers by bound: "))
    assert sum(int(part.split()[0]) for part in line.split(";")[0][len("layers by bound: "):].split(", ")) == len(rows)
    assert f"the longest, {top['name']}: {top['cycles']:,} cycles" in line and f"{top['bound']}-bound" in line
    assert tops == [(str(out), False)] and boards_ == []
    a = p.parse_args(["compile", str(ck), "--board", "arty-a7", "-o", str(out), "--no-synth", "--baud", "1000000"])
    assert a.func(a) == 0
    assert boards_ == [(str(out), "arty-a7-35", 100_000_000, False, 1000000)]
    a = p.parse_args(["compile", str(ck), "--board", "arty-a7", "-o", str(out), "--bake-images"])
    assert a.func(a) == 0
    assert tops[-1] == (str(out), True) and boards_[-1] == (str(out), "arty-a7-35", 100_000_000, True, None)
    # --clock-mhz on the ULX3S: compiled for the PLL's clock, the board build gets that board
    a = p.parse_args(["compile", str(ck), "--board", "ulx3s", "-o", str(out), "--clock-mhz", "40"])
    assert a.func(a) == 0
    assert boards_[-1] == (str(out), "ulx3s-85f", 40_000_000, True, None)
    assert json.loads((out / "report.json").read_text())["clock_hz"] == 40_000_000
    assert "sephw simulate" in capsys.readouterr().out
    # --weights external: the words in the board's DRAM; the Arty's board top has the DRAM
    # controller, so the board build runs
    n = len(boards_)
    a = p.parse_args(["compile", str(ck), "--board", "arty-a7", "-o", str(out), "--weights", "external"])
    assert a.func(a) == 0
    assert len(boards_) == n + 1 and (out / "external.bin").stat().st_size > 0
    assert "in external memory (" in capsys.readouterr().out


def test_signed_mac_operands_get_an_unpacked_array(tmp_path):
    """Multiception's concat is signed (int8 codes): the MAC array reads it sign-extended,
    which its packed multipliers cannot (rtl_gen/macarray.py). The overlay search then offers
    only unpacked arrays on a board with two MACs per DSP (and the top runs the build), and a
    fixed packed overlay is a clear compile error."""
    from rtl_gen.checkprog import check_program
    torch.manual_seed(0)
    m = models.build("multiception-resnet20").eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    assert boards.get("arty-a7-100").dsp_macs_per_slice == 2
    ir, _ = compile_graph(g, "arty-a7-100", tmp_path / "auto")
    assert not ir.cfg.packed
    assert check_program(tmp_path / "auto") == []
    eng = dict(lanes=4, pe_cin=4, mac_cols=4, pp_units=1)
    with pytest.raises(CompileError, match=r"engine packed=True: the MAC array's packed multipliers take "
                                           r"unsigned activations, and blocks\.0\.conv1\.bn_dw .* is signed"):
        compile_graph(g, "arty-a7-100", tmp_path / "packed", engine=dict(eng, packed=True))
    # a signed FC input: PoolFC's sums are two's complement and their top byte plane goes to
    # the array as int8, so the same holds for it (a ReLU layer's output marked signed)
    from sephw.models import ConvRow, SEPNet
    m = SEPNet((ConvRow("conv1", 8, 3, 1, 1),), in_channels=1, num_classes=10, stem="small").eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    assert g.output.input == "features.conv1"
    g.node("features.conv1").out.signed = True
    assert not compile_graph(g, "arty-a7-100", tmp_path / "fc")[0].cfg.packed
    with pytest.raises(CompileError, match=r"features\.conv1 \(an int8 convolution's or the FC's input\) is signed"):
        compile_graph(g, "arty-a7-100", tmp_path / "fc_packed", engine=dict(eng, packed=True))
    # its FC runs over the two byte planes that hold a sum of 8x8 int8 codes (|sum| <= 8,192);
    # a Program with fewer is refused before a run (its logits would lose the high bytes)
    from sephw.arch.isa import encode_program
    prog = decode_program((tmp_path / "fc" / "program.bin").read_bytes())
    fc = [i for i in prog if i.op == Op.POOL_FC and i.flags & FLAG_FINAL]
    assert [i.fc_planes for i in fc] == [2] and check_program(tmp_path / "fc") == []
    fc[0].fc_planes = 1
    (tmp_path / "fc" / "program.bin").write_bytes(encode_program(prog))
    assert any("POOL_FC over 1 byte planes of the pool sums, which need 2 (8x8 int8 codes)" in p
               for p in check_program(tmp_path / "fc"))


def test_sizer_keeps_depthwise_storage_within_2x(tmp_path):
    """MixConv's stage-1 branches (6, 5, 5 channels for k = 3, 5, 7) fill a third of a 16-lane
    overlay's depthwise words (3.85x their bits), the overlay the sizer picked for arty-a7-100
    by cycles alone; it now keeps to overlays whose depthwise layers stay within 2x
    (STORAGE_MAX), here 8-channel depthwise tiles, and report.json says so per layer."""
    from dataclasses import replace

    from sephw.compiler.size_engines import STORAGE_MAX, grouped_storage_ratio
    torch.manual_seed(0)
    m = models.build("mixconv-resnet20").eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    ir, rep = compile_graph(g, "arty-a7-100", tmp_path)
    dw_rows = [r for r in rep["layers"] if r["depthwise"]]
    assert ir.cfg.depthwise and dw_rows
    worst = max(r["pattern_storage_ratio"] for r in dw_rows)
    assert worst <= STORAGE_MAX and worst == pytest.approx(grouped_storage_ratio(ir, ir.cfg), abs=1e-3)
    # the overlay with 16 depthwise lanes would store the 5-channel branches at 3.85x
    wide = replace(ir.cfg, lanes=16, pe_cin=16)
    assert wide.dw_lanes == 16 and grouped_storage_ratio(ir, wide) == pytest.approx(1632 / 424)


@pytest.mark.parametrize("arch", ["dsconv-resnet20", "mixconv-resnet20", "multiception-resnet20"])
def test_depthwise_patterns_stored_densely(arch, tmp_path):
    """The zoo's depthwise pattern layers on an auto-sized arty-a7-35 overlay run in the
    pattern engine's depthwise mode: their filters take at most 2x their bits in the depthwise
    pattern memory (report.json, per layer; 3x3 filters 17/9 = 1.89x on a k_max 7 engine), and
    the patterns image, read back the way the engine reads it (each lane's tap-grid bits from
    ``dw_slices`` words from ``dw_base + wa``), gives every tile's filters."""
    from sephw.arch.config import dw_lane_bits, dw_slices
    from sephw.arch.isa import FLAG_DW_PATTERN
    torch.manual_seed(0)
    m = models.build(arch).eval()
    binarize.binarize_model(m)
    g = quantize.quantize(m, torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(1)))
    ir, rep = compile_graph(g, "arty-a7-35", tmp_path)
    cfg = ir.cfg
    assert cfg.depthwise
    dw_rows = [r for r in rep["layers"] if r["depthwise"]]
    assert {r["name"] for r in dw_rows} == {r["name"] for r in rep["layers"] if r["type"] == "DepthwiseConcat"
                                            or r["name"].endswith(".depthwise")}
    assert dw_rows and all(0 < r["pattern_storage_ratio"] <= 2 for r in dw_rows), dw_rows
    man = Manifest.read(tmp_path)
    assert man.arch.dw_words == ir.static.dw_words > 0
    blob = dict((r.name, b) for r, b in man.images())["patterns"]
    wb, wl, K = cfg.pattern_mem_bytes, dw_lane_bits(cfg.k_max), cfg.k_max
    word = lambda a: int.from_bytes(blob[a * wb:(a + 1) * wb], "little")   # noqa: E731
    weights = {}
    for lay in ir.layers:
        for st in lay.steps:
            for op in st.operands:
                if hw.dw_operand(cfg, op):
                    for c in range(st.out_channels):
                        weights[(lay.index, st.out_c0 + c)] = op.weight[c, 0]
    seen = 0
    for ins in decode_program((tmp_path / "program.bin").read_bytes()):
        if not ins.flags & FLAG_DW_PATTERN:
            continue
        words = [word(man.arch.dw_base + ins.wa + s) for s in range(dw_slices(K, ins.k))]
        for l in range(ins.tc):
            grid = sum(((w >> (l * wl)) & ((1 << wl) - 1)) << (s * wl) for s, w in enumerate(words))
            got = torch.tensor([[1 if grid >> (i * K + j) & 1 else -1 for j in range(ins.k)] for i in range(ins.k)])
            assert torch.equal(got, weights[(ins.layer, ins.c0 + l)].to(torch.int64)), (ins.text(), l)
            seen += 1
    assert seen == len(weights)
