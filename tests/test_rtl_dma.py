# amaranth: UnusedElaboratable=no
"""LoadDMA / StoreDMA (rtl_gen/dma.py) through the behavioural external memory
(rtl_gen/extmem.py) in cocotb: every word moved exactly, with random stalls of the port's
commands and read data; past-the-end commands refused; the load and store rates. Every run
checks the LiteDRAM port rule for write data (sim/tb_dma.py's PortRule: a write command
offered or waiting for its beat ⇒ ``wdata.valid``), which the model alone cannot show; slow:
the same through LiteDRAM's simulation cores of the Arty (128-bit DDR3) and the ULX3S
(16-bit SDR)."""
import json
import random

import pytest

from amaranth.hdl import Signal

from rtl_gen.dma import LoadDMA, StoreDMA
from sim.dma_harness import DmaHarness
from sim.runner import run_testbench

CASES = {
    # three 32-bit beats per 72-bit on-chip word (the last one's top bits dropped / zero),
    # commands and read data stalled on ~30 % of cycles
    "w72_d32_stalls": dict(data_width=32, word_bits=72, onchip_depth=24, ext_depth=512, latency=5,
                           stall_permille=300),
    # the Arty's 128-bit port, one beat per word, LiteDRAM-like latency, no stalls: full rate
    "w128_d128": dict(data_width=128, word_bits=128, onchip_depth=64, ext_depth=1024, latency=20,
                      stall_permille=0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dma_through_external_memory_model(name):
    p = CASES[name]
    rng = random.Random(len(name))
    init = [rng.getrandbits(p["data_width"]) for _ in range(p["ext_depth"] // 2)]
    h = DmaHarness(**p, init=init, seed=7)
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": h.load.beats, "init": init, "seed": 11, "rounds": 12}
    d = run_testbench(h, f"dma_{name}", "sim.tb_dma", case)
    r = json.loads((d / "result.json").read_text())
    assert len(r["load"]) == len(r["store"]) == 12
    long = r["long_load"]
    store = r["long_store"]
    if not p["stall_permille"]:
        # one beat per cycle once the first word is back: the port's latency + its beats
        assert long["cycles"] <= long["beats"] + p["latency"] + 4, long
        # stores: one beat (command + write data) per cycle after a few cycles of start
        assert store["cycles"] <= store["beats"] + 4, store
    else:
        assert long["cycles"] > long["beats"] + p["latency"], long     # the stalls did bite


class _CommandsAheadStoreDMA(StoreDMA):
    """The StoreDMA with its write commands offered regardless of its write data (as the
    StoreDMA once did): against the model it still moves every word right (the model takes a
    command only with a valid beat); LiteDRAM would take data that is not there."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        left = Signal(40)
        with m.If(self.cmd.valid & ~self.busy):
            m.d.sync += left.eq(self.cmd.payload.words * self.beats)
        with m.If(self.ext.cmd.valid & self.ext.cmd.ready):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.ext.cmd.valid.eq(self.busy & (left != 0))     # (overrides the StoreDMA's)
        return m


def test_port_rule_catches_commands_ahead_of_data():
    """The testbench's LiteDRAM port-rule monitor fails a StoreDMA that offers write commands
    before their data, through the behavioural model that would not notice."""
    p = CASES["w128_d128"]
    init = list(range(p["ext_depth"] // 2))
    h = DmaHarness(**p, init=init, seed=7, store_cls=_CommandsAheadStoreDMA)
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": 1, "init": init, "seed": 11, "rounds": 2}
    with pytest.raises(AssertionError, match="LiteDRAM port rule broken: cycle [0-9]+: a write command offered"):
        run_testbench(h, "dma_commands_ahead", "sim.tb_dma", case)
    # without the monitor the model's checks all pass
    run_testbench(h, "dma_commands_ahead", "sim.tb_dma", {**case, "port_rule": False})


def test_dma_checks_arguments():
    with pytest.raises(ValueError, match="data_width must be at least 8, not 4"):
        LoadDMA(data_width=4, addr_width=8, word_bits=8, onchip_depth=4, ext_words=16)


def _through_litedram(board: str, depth: int, word_bits: int):
    """The DMA testbench on ``board``'s LiteDRAM simulation core: ``depth // 2`` random
    on-chip words of ``word_bits`` stored to random DRAM addresses and loaded back into the
    other half (6 rounds, every word compared), a long store and load timed. Returns the
    core, the harness and the testbench's result."""
    from rtl_gen import dram
    from sim.runner import BUILD_ROOT
    core = dram.generate(board, BUILD_ROOT / "litedram" / f"{board}-sim", sim=True)
    rng = random.Random(5)
    init = [rng.getrandbits(word_bits) for _ in range(depth // 2)]
    h = DmaHarness(data_width=0, word_bits=word_bits, onchip_depth=depth, ext_depth=0, onchip_init=init,
                   litedram=core)
    case = {"litedram": True, "onchip_depth": depth, "beats": h.load.beats, "csr": core.csr,
            "init": core.recipe["init"], "onchip_init": init, "seed": 21, "rounds": 6}
    d = run_testbench(h, f"dma_litedram_{board.split('-')[0]}", "sim.tb_dma", case, extra_sources=[core.verilog])
    return core, h, json.loads((d / "result.json").read_text())


@pytest.mark.slow
def test_dma_through_litedram_sim_core():
    """LoadDMA and StoreDMA on the Arty configuration's LiteDRAM controller (its simulation
    core with SDRAMPHYModel, the board build's 128-bit native port): 160-bit on-chip words (two
    beats each) stored to random DRAM addresses and loaded back into the on-chip memory's other
    half, every word compared; a 32-word store and load timed."""
    core, h, r = _through_litedram("arty-a7-35", depth=64, word_bits=160)
    print(f"DMA through the LiteDRAM sim core: {r}")
    assert h.load.beats == 2 and len(r["round_trips"]) == 6
    # reads stream with commands in flight: well under the 2 x 40 cycles one read at a time would take
    assert r["long"]["load_cycles"] < 2 * r["long"]["beats"] + 60, r["long"]
    assert r["long"]["store_cycles"] < 2 * r["long"]["beats"] + 60, r["long"]


@pytest.mark.slow
def test_dma_through_litedram_ulx3s_sim_core():
    """As above on the ULX3S configuration's LiteDRAM controller (16-bit SDR native port):
    16-bit on-chip words (one beat each, the full-rate case) stored and loaded back, every word
    compared; a 64-word store and load timed. LiteDRAM takes write data whenever
    ``wdata.ready`` is high, whether ``wdata.valid`` is or not: a StoreDMA that sends commands
    ahead of their data never finishes such a store here (its beat count and the
    controller's part ways), which the Arty core's timing happened to hide."""
    core, h, r = _through_litedram("ulx3s-85f", depth=128, word_bits=16)
    print(f"DMA through the ULX3S LiteDRAM sim core: {r}")
    assert core.data_width == 16 and h.load.beats == 1 and len(r["round_trips"]) == 6
    # one beat per cycle both ways (at 25 MHz: 64 beats loaded in 83 cycles, a refresh inside,
    # stored in 78; docs/dram.md)
    assert r["long"]["load_cycles"] < r["long"]["beats"] + 40, r["long"]
    assert r["long"]["store_cycles"] < r["long"]["beats"] + 40, r["long"]


@pytest.mark.parametrize("board,words,cycles", [("arty-a7-35", 64, 78), ("ulx3s-85f", 128, 138)])
def test_model_latency_matches_litedram_figure(board, words, cycles):
    """The behavioural model at a board profile's ``external_memory.read_latency`` takes as long
    as LiteDRAM's simulation core of that board's configuration for a load of ``words`` one-beat
    words (78 cycles for 64 on the Arty's 128-bit DDR3 port at 100 MHz,
    test_dma_through_litedram_sim_core; 138 for 128 on the ULX3S's 16-bit SDR port at 25 MHz
    with no refresh inside, docs/dram.md). The Arty's figure is also the model's default."""
    import boards
    ext = boards.get(board).external
    lat = None if board == "arty-a7-35" else ext.read_latency
    p = dict(data_width=ext.data_bits, word_bits=ext.data_bits, onchip_depth=words, ext_depth=1024, stall_permille=0)
    h = DmaHarness(**p, latency=lat, init=list(range(512)))
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": 1, "init": list(range(512)), "seed": 3, "rounds": 1}
    d = run_testbench(h, f"dma_model_{board.split('-')[0]}", "sim.tb_dma", case)
    assert json.loads((d / "result.json").read_text())["long_load"]["cycles"] == cycles


def test_ext_port_shares_dram_between_host_writes_and_readers():
    """rtl_gen/extport.py in the Amaranth simulator, on the behavioural memory with ~30 %
    command and read-data stalls: host writes land exactly (their byte enables only) and are
    held while reads are in flight; two readers reading at the same time each get their own
    words, in order; after ``reset_readers`` the data of the reads issued before it never
    reaches a reader; the LiteDRAM write rule holds (a write command is never offered without
    its data word)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extmem import ExtMemoryModel
    from rtl_gen.extport import ExtPort
    DW, AW, DEPTH = 32, 8, 256
    m = Module()
    m.submodules.port = ep = ExtPort(DW, AW, readers=("a", "b"))
    m.submodules.mem = mem = ExtMemoryModel(data_width=DW, addr_width=AW, depth=DEPTH, latency=6,
                                            stall_permille=300, seed=5)
    wiring.connect(m, ep.mem, mem.port)
    rng = random.Random(3)
    model = {a: 0 for a in range(DEPTH)}
    log = {"rule": 0, "done": set()}

    async def host_write(ctx, addr, word, we=0xF):
        ctx.set(ep.host.valid, 1)
        ctx.set(ep.host.payload, {"addr": addr, "data": word, "we": we})
        await ctx.tick().until(ep.host.ready)
        ctx.set(ep.host.valid, 0)
        model[addr] = sum(((word if we >> i & 1 else model[addr]) >> 8 * i & 0xFF) << 8 * i for i in range(4))

    async def reads(ctx, r, addrs, ready_p=1.0, seed=0):
        """Reader ``r`` issues reads of ``addrs`` as fast as the port takes them, takes its
        data with probability ``ready_p`` per cycle; returns the data in order."""
        rr = random.Random(seed)
        out, i = [], 0
        while len(out) < len(addrs):
            ctx.set(r.cmd.valid, i < len(addrs))
            if i < len(addrs):
                ctx.set(r.cmd.payload, {"addr": addrs[i], "we": 0})
            ctx.set(r.rdata.ready, rr.random() < ready_p)
            _, _, took, got, ready, data = await ctx.tick().sample(r.cmd.ready, r.rdata.valid, r.rdata.ready,
                                                                  r.rdata.payload)
            i += bool(took and i < len(addrs))
            if got and ready:
                out.append(data)
        ctx.set(r.cmd.valid, 0)
        return out

    async def rule(ctx):
        while True:
            _, _, cv, we, wv = await ctx.tick().sample(mem.port.cmd.valid, mem.port.cmd.payload.we,
                                                      mem.port.wdata.valid)
            if cv and we and not wv:
                log["rule"] += 1

    async def reader_b(ctx):
        await ctx.tick().until(ep.host.valid)        # after the first writes have started
        for _ in range(400):
            await ctx.tick()
        addrs = [rng.randrange(64) for _ in range(50)]
        want = [model[a] for a in addrs]            # the host writes nothing meanwhile
        assert await reads(ctx, ep.b, addrs, 0.6, 2) == want
        log["done"].add("b")

    async def bench(ctx):
        # 1. host writes (some with partial byte enables), then both readers at once
        for a in range(64):
            await host_write(ctx, a, rng.getrandbits(DW), rng.choice((0xF, 0xF, 0x5, 0x8)))
        addrs = rng.sample(range(64), 64)
        assert await reads(ctx, ep.a, addrs, 0.8, 1) == [model[a] for a in addrs]
        await ctx.tick().until(ep.b.cmd.valid == 0)
        for _ in range(100):
            await ctx.tick()
        # 2. a host write offered while reads are in flight waits for their data
        ctx.set(ep.a.rdata.ready, 0)                 # the reader holds its data back
        for a in addrs[:4]:
            ctx.set(ep.a.cmd.valid, 1)
            ctx.set(ep.a.cmd.payload, {"addr": a, "we": 0})
            await ctx.tick().until(ep.a.cmd.ready)
        ctx.set(ep.a.cmd.valid, 0)
        ctx.set(ep.host.valid, 1)
        ctx.set(ep.host.payload, {"addr": addrs[0], "data": 0x12345678, "we": 0xF})
        for _ in range(40):
            _, _, ready = await ctx.tick().sample(ep.host.ready)
            assert not ready                          # four reads still out
        # 3. the readers are reset with those reads in flight: their data is dropped, the
        # host's write then goes through, and the next reads see only their own data
        ctx.set(ep.reset_readers, 1)
        await ctx.tick()
        ctx.set(ep.reset_readers, 0)
        await ctx.tick().until(ep.host.ready)
        ctx.set(ep.host.valid, 0)
        model[addrs[0]] = 0x12345678
        assert await reads(ctx, ep.a, addrs[:6]) == [model[a] for a in addrs[:6]]
        log["done"].add("a")

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(reader_b)
    sim.add_testbench(rule, background=True)
    sim.run_until(1e-8 * 20_000)                     # (a hang fails below, not forever)
    assert log["done"] == {"a", "b"} and log["rule"] == 0


@pytest.mark.parametrize("width,latency", [(16, 6), (128, 10)], ids=["ulx3s-16bit", "arty-128bit"])
def test_input_feeder_keeps_one_byte_per_cycle(width, latency):
    """The feeder's throughput, which the cycle model of a LOAD from DRAM assumes: one byte per
    cycle once the first word is in, on the ULX3S's 16-bit port (a word per 2 cycles, read
    latency 6: the board profile's) as on the Arty's 128-bit one. With 4 words requested ahead
    the 16-bit port gave 1.77 cycles per byte (whole-network LOADs 0.3-1.5 % slower than
    predicted); the default ``buffer_words`` now covers AHEAD_CYCLES."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extmem import ExtMemoryModel
    from rtl_gen.inputfeed import InputFeeder
    W, n = width // 8, 600
    m = Module()
    m.submodules.feed = feed = InputFeeder(data_width=width, addr_width=10)
    m.submodules.mem = mem = ExtMemoryModel(data_width=width, addr_width=10, depth=1024, latency=latency,
                                            init=list(range(1024)))
    wiring.connect(m, feed.ext, mem.port)
    got = {}

    async def bench(ctx):
        ctx.set(feed.rx.ready, 1)
        ctx.set(feed.start, 1)
        ctx.set(feed.addr, 3)
        ctx.set(feed.nbytes, n)
        await ctx.tick()
        ctx.set(feed.start, 0)
        cycle, first, last, count = 0, None, None, 0
        while count < n and cycle < 20 * n:
            _, _, v = await ctx.tick().sample(feed.rx.valid)
            cycle += 1
            if v:
                first = cycle if first is None else first
                last, count = cycle, count + 1
        got.update(first=first, last=last, count=count)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got["count"] == n
    # the first byte after the read latency and a few cycles of port and FIFO; then one a cycle
    assert got["first"] <= latency + 6, got
    assert got["last"] - got["first"] == n - 1, (got, W)


@pytest.mark.parametrize("nbytes,width", [(147, 128), (64, 16)])
def test_input_feeder_hands_on_the_bytes_in_order(nbytes, width):
    """rtl_gen/inputfeed.py on the behavioural memory (30 % stalls): the bytes ``[addr, addr +
    n)`` from DRAM, low byte first, under random back-pressure, exactly ``n`` of them (the
    words' other bytes never offered), for ranges starting and ending inside words; each
    ``start`` feeds its own range."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extmem import ExtMemoryModel
    from rtl_gen.inputfeed import InputFeeder
    rng = random.Random(nbytes)
    W = width // 8
    dram = bytes(rng.randrange(256) for _ in range(64 * W))
    init = [int.from_bytes(dram[i:i + W], "little") for i in range(0, len(dram), W)]
    m = Module()
    m.submodules.feed = feed = InputFeeder(data_width=width, addr_width=6)
    m.submodules.mem = mem = ExtMemoryModel(data_width=width, addr_width=6, depth=64, latency=5,
                                            stall_permille=300, init=init)
    wiring.connect(m, feed.ext, mem.port)
    ranges = [(5 * W, nbytes), (5 * W + 3, nbytes), (W - 1, 1), (7, 2 * W + 1), (0, 0), (3, nbytes)]
    runs = []

    async def bench(ctx):
        for addr, n in ranges:
            ctx.set(feed.start, 1)
            ctx.set(feed.addr, addr)
            ctx.set(feed.nbytes, n)
            await ctx.tick()
            ctx.set(feed.start, 0)
            got, idle = bytearray(), 0
            while idle < 200:
                ctx.set(feed.rx.ready, rng.random() < 0.7)
                _, _, v, r, b = await ctx.tick().sample(feed.rx.valid, feed.rx.ready, feed.rx.payload)
                if v and r:
                    got.append(b)
                    idle = 0
                else:
                    idle += 1
            runs.append(bytes(got))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(1e-8 * 40_000)
    assert runs == [dram[a:a + n] for a, n in ranges]


@pytest.mark.parametrize("banks,width", [(16, 128), (4, 16)])
def test_spill_writes_ring_rows_to_dram(banks, width):
    """rtl_gen/spill.py (SPILL) beside the activation memory and a RowAddress, writing into
    the behavioural memory through an ExtPort (30 % stalls, so the writes see back-pressure):
    random tensors (row bytes not multiples of the DRAM word, rings that wrap, DRAM addresses
    anywhere in a word) and row ranges; the DRAM then holds exactly the rows, packed from
    ``ext_addr`` on, and no other byte changed. Without stalls each SPILL takes the cycles
    ``hw.spill_cycles`` says."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.actmem import ActivationMemory
    from rtl_gen.extmem import ExtMemoryModel
    from rtl_gen.extport import ExtPort
    from rtl_gen.rowaddr import RowAddress, share
    from rtl_gen.spill import Spill
    from sephw.arch.config import spill_chunk
    from sephw.arch.formats import TENSOR_DESC
    from sephw.arch.isa import Instruction, Op
    from sephw.compiler.hw import TensorDesc, spill_cycles
    W, DEPTH, ACT = width // 8, 256, 1024
    rng = random.Random(banks * width)
    m = Module()
    m.submodules.act = act = ActivationMemory(banks, ACT // banks)
    m.submodules.ra = ra = RowAddress()
    m.submodules.spill = sp = Spill(banks=banks, data_width=width, addr_width=8)
    m.submodules.port = ep = ExtPort(width, 8, readers=("acc",))
    m.submodules.mem = mem = ExtMemoryModel(data_width=width, addr_width=8, depth=DEPTH, latency=4, seed=9)
    share(m, ra, [sp.row])
    wiring.connect(m, sp.w, ep.host)
    wiring.connect(m, ep.mem, mem.port)
    m.d.comb += [act.raddr.eq(sp.raddr), act.raddr_nb.eq(sp.raddr_nb), sp.rvec.eq(act.rvec)]
    act_bytes = [rng.randrange(256) for _ in range(ACT)]
    dram = bytearray(DEPTH * W)          # the model starts zero
    cases, measured = [], []
    for stall in (0, 300):
        for _ in range(6):
            channels, width_px = rng.choice([(3, 5), (16, 3), (5, 7), (32, 2), (1, 9)])
            rb = channels * width_px
            ring = rng.randint(2, 6)
            base = rng.randrange(0, ACT - ring * rb)
            row0, rows = rng.randrange(0, 20), rng.randint(1, ring)
            addr = rng.randrange(0, DEPTH * W - rows * rb)
            cases.append((stall, channels, width_px, ring, base, row0, rows, addr))

    async def bench(ctx):
        for a, b in enumerate(act_bytes):
            ctx.set(act.waddr, a)
            ctx.set(act.wdata[0], b)
            ctx.set(act.wen, 1)
            await ctx.tick()
        ctx.set(act.wen, 0)
        for stall, channels, width_px, ring, base, row0, rows, addr in cases:
            ctx.set(mem.stall, stall * 1024 // 1000)
            ctx.set(sp.src.as_value(), TENSOR_DESC.encode({"base": base, "ring_rows": ring, "height": 64, "width": width_px,
                                                "channels": channels, "bits": 8, "signed": 0}))
            ctx.set(sp.ins.as_value(), Instruction(Op.SPILL, row0=row0, rows=rows, ext_addr=addr,
                                        length=rows * channels * width_px).encode())
            await ctx.tick()          # (the row-bytes register follows the descriptor)
            ctx.set(sp.start, 1)
            await ctx.tick()
            ctx.set(sp.start, 0)
            n = 1
            while not (await ctx.tick().sample(sp.done))[2]:
                n += 1
            measured.append(n)
            rb = channels * width_px
            for k in range(rows):
                src = base + (row0 + k) % ring * rb
                dram[addr + k * rb:addr + (k + 1) * rb] = bytes(act_bytes[src:src + rb])
        for _ in range(20):
            await ctx.tick()
        got = bytearray()
        for a in range(DEPTH):
            ctx.set(mem.peek_addr, a)
            await ctx.tick()
            got += int(ctx.get(mem.peek_data)).to_bytes(W, "little")
        assert bytes(got) == bytes(dram)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run_until(1e-8 * 200_000)
    assert len(measured) == len(cases)
    for (stall, channels, width_px, ring, base, row0, rows, addr), n in zip(cases, measured):
        if not stall:
            ins = Instruction(Op.SPILL, row0=row0, rows=rows, ext_addr=addr, length=rows * channels * width_px)
            assert n == spill_cycles(ins, TensorDesc(64, width_px, channels, 8), spill_chunk(banks, width)), (n, channels,
                                                                                                 width_px, addr)


@pytest.mark.parametrize("user_ns,mem_ns", [(40, 20), (10, 27)])
def test_native_port_cdc_between_clock_domains(user_ns, mem_ns):
    """rtl_gen/extcdc.py in the Amaranth simulator: the user at one clock, the behavioural
    memory (30 % stalls) at another (the ULX3S: 25 MHz user, 50 MHz SDRAM controller; and a
    user faster than the memory). Random writes with partial byte enables, their command and
    data offered independently, then reads under random back-pressure: every word exact, in
    order; on the controller's side a write command is never offered without its data word
    (LiteDRAM's rule). Prints the round trip of one read in user cycles."""
    from amaranth.hdl import DomainRenamer, Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extcdc import NativePortCDC
    from rtl_gen.extmem import ExtMemoryModel
    DW, AW, DEPTH = 16, 7, 128
    m = Module()
    m.submodules.cdc = cdc = NativePortCDC(DW, AW, user_domain="sync", mem_domain="dram")
    m.submodules.mem = mem = DomainRenamer("dram")(ExtMemoryModel(data_width=DW, addr_width=AW, depth=DEPTH,
                                                                  latency=6, stall_permille=300, seed=3))
    wiring.connect(m, cdc.mem, mem.port)
    rng = random.Random(user_ns)
    model = {a: 0 for a in range(DEPTH)}
    log = {"rule": 0, "done": False}
    u = cdc.user

    async def writes(ctx, items):
        """Command and data streams driven independently (each advances on its own ready)."""
        ci = di = 0
        while ci < len(items) or di < len(items):
            ctx.set(u.cmd.valid, ci < len(items) and rng.random() < 0.7)
            ctx.set(u.wdata.valid, di < len(items) and rng.random() < 0.7)
            if ci < len(items):
                ctx.set(u.cmd.payload, {"addr": items[ci][0], "we": 1})
            if di < len(items):
                ctx.set(u.wdata.payload, {"data": items[di][1], "we": items[di][2]})
            _, _, cv, cr, dv, dr = await ctx.tick("sync").sample(u.cmd.valid, u.cmd.ready, u.wdata.valid,
                                                                u.wdata.ready)
            ci += bool(cv and cr)
            di += bool(dv and dr)
        ctx.set(u.cmd.valid, 0)
        ctx.set(u.wdata.valid, 0)

    async def reads(ctx, addrs, ready_p):
        out, i, n = [], 0, 0
        while len(out) < len(addrs):
            ctx.set(u.cmd.valid, i < len(addrs))
            if i < len(addrs):
                ctx.set(u.cmd.payload, {"addr": addrs[i], "we": 0})
            ctx.set(u.rdata.ready, rng.random() < ready_p)
            _, _, cr, rv, rr, rd = await ctx.tick("sync").sample(u.cmd.ready, u.rdata.valid, u.rdata.ready,
                                                                u.rdata.payload)
            i += bool(cr and i < len(addrs))
            n += 1
            if rv and rr:
                out.append(rd)
        ctx.set(u.cmd.valid, 0)
        return out, n

    async def rule(ctx):
        while True:
            _, _, cv, we, wv = await ctx.tick("dram").sample(mem.port.cmd.valid, mem.port.cmd.payload.we,
                                                            mem.port.wdata.valid)
            log["rule"] += bool(cv and we and not wv)

    async def bench(ctx):
        items = []
        for a in rng.sample(range(DEPTH), 100):
            word, we = rng.getrandbits(DW), rng.choice((3, 3, 1, 2))
            items.append((a, word, we))
            model[a] = sum(((word if we >> i & 1 else model[a]) >> 8 * i & 0xFF) << 8 * i for i in range(2))
        await writes(ctx, items)
        addrs = [rng.randrange(DEPTH) for _ in range(150)]
        got, _ = await reads(ctx, addrs, 0.6)
        assert got == [model[a] for a in addrs]
        for _ in range(50):
            await ctx.tick("sync")
        ctx.set(mem.stall, 0)
        (one,), n = await reads(ctx, [addrs[0]], 1.0)
        assert one == model[addrs[0]]
        print(f"user {user_ns} ns, memory {mem_ns} ns (latency 6): one read {n} user cycles")
        log["done"] = True

    sim = Simulator(m)
    sim.add_clock(user_ns * 1e-9, domain="sync")
    sim.add_clock(mem_ns * 1e-9, domain="dram")
    sim.add_testbench(bench)
    sim.add_testbench(rule, background=True)
    sim.run_until(user_ns * 1e-9 * 20_000)
    assert log["done"] and log["rule"] == 0


def _stream_reads(user_ns: float, mem_ns: float | None, latency: int, n: int, phase: float = 0.0) -> int:
    """User cycles from the first of ``n`` back-to-back reads offered to the last word's
    arrival: through rtl_gen/extcdc.py's NativePortCDC to the behavioural memory at ``mem_ns``
    (its clock ``phase`` of a period late), or on the user's own clock (``mem_ns`` None)."""
    from amaranth.hdl import DomainRenamer, Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extcdc import NativePortCDC
    from rtl_gen.extmem import ExtMemoryModel
    m = Module()
    mem = ExtMemoryModel(data_width=16, addr_width=8, depth=256, latency=latency, stall_permille=0)
    if mem_ns is None:
        m.submodules.mem = mem
        u = mem.port
    else:
        m.submodules.cdc = c = NativePortCDC(16, 8, user_domain="sync", mem_domain="dram", depth=16)
        m.submodules.mem = mem = DomainRenamer("dram")(mem)
        wiring.connect(m, c.mem, mem.port)
        u = c.user
    out = {}

    async def bench(ctx):
        for _ in range(40):
            await ctx.tick("sync")
        i = cyc = got = 0
        ctx.set(u.rdata.ready, 1)
        while got < n:
            ctx.set(u.cmd.valid, i < n)
            ctx.set(u.cmd.payload, {"addr": i, "we": 0})
            _, _, cr, rv = await ctx.tick("sync").sample(u.cmd.ready, u.rdata.valid)
            i += bool(cr and i < n)
            cyc += 1
            got += bool(rv)
        out["cycles"] = cyc

    sim = Simulator(m)
    sim.add_clock(user_ns * 1e-9, domain="sync")
    if mem_ns is not None:
        sim.add_clock(mem_ns * 1e-9, domain="dram", phase=phase * mem_ns * 1e-9)
    sim.add_testbench(bench)
    sim.run_until(user_ns * 1e-9 * 4000)
    return out["cycles"]


@pytest.mark.parametrize("user_mhz", [50, 65, 70, 80, 90])
def test_crossing_latency_matches_the_cdc(user_mhz):
    """``boards.crossing_latency``, the cycle model's read latency for a design behind a
    DRAM controller on another clock (an Arty DRAM build at ``--clock-mhz``): 64 reads
    streamed through NativePortCDC to a 100 MHz memory of latency 10 (the Arty's figure) take
    as many user cycles as on one clock with a memory of that latency, within the one cycle the
    two clocks' phase decides (four phases of the memory's clock; at most one off)."""
    from boards import crossing_latency
    lat = crossing_latency(10, 100_000_000, user_mhz * 1_000_000)
    same = _stream_reads(1000 / user_mhz, None, lat, 64)
    got = [_stream_reads(1000 / user_mhz, 10, 10, 64, phase) for phase in (0.0, 0.25, 0.5, 0.75)]
    assert all(abs(g - same) <= 1 for g in got) and sorted(got)[len(got) // 2] == same, (user_mhz, lat, same, got)
    assert crossing_latency(10, 100_000_000, 100_000_000) == 10


def test_csr_cdc_between_clock_domains():
    """rtl_gen/extcdc.py's CsrCDC in the Amaranth simulator, the user at 70 MHz, the
    controller's CSRs at 100 MHz answering after 0-3 cycles: random writes and reads of a
    register file, every read exact; an access given up before its reply (``stb`` dropped, as
    the link's CSR timeout does) leaves its reply unseen by the next access; ``init_done``
    crosses."""
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    from rtl_gen.extcdc import CsrCDC
    m = Module()
    m.submodules.cdc = c = CsrCDC(user_domain="sync", mem_domain="dram")
    u, mm = c.user, c.mem
    rng = random.Random(4)
    regs = {a: rng.getrandbits(32) for a in range(16)}
    log = {"done": False, "accesses": 0}

    async def controller(ctx):
        while True:
            await ctx.tick("dram")
            if ctx.get(mm.stb):
                for _ in range(rng.randrange(4)):
                    await ctx.tick("dram")
                a = ctx.get(mm.adr) % 16
                if ctx.get(mm.we):
                    regs[a] = ctx.get(mm.dat_w)
                ctx.set(mm.dat_r, regs[a])
                ctx.set(mm.ack, 1)
                log["accesses"] += 1
                await ctx.tick("dram")
                ctx.set(mm.ack, 0)

    async def access(ctx, adr, we=0, val=0):
        ctx.set(u.adr, adr)
        ctx.set(u.we, we)
        ctx.set(u.dat_w, val)
        ctx.set(u.stb, 1)
        for n in range(200):
            _, _, ack, dat = await ctx.tick("sync").sample(u.ack, u.dat_r)
            if ack:
                ctx.set(u.stb, 0)
                return dat, n
        raise AssertionError("no ack")

    async def bench(ctx):
        model = dict(regs)
        for _ in range(60):
            a = rng.randrange(16)
            if rng.random() < 0.4:
                v = rng.getrandbits(32)
                await access(ctx, a, 1, v)
                model[a] = v
            else:
                got, _ = await access(ctx, a)
                assert got == model[a], (a, hex(got), hex(model[a]))
            for _ in range(rng.randrange(3)):
                await ctx.tick("sync")
        # given up after two cycles: its write still lands, its reply is not the next read's
        ctx.set(u.adr, 3)
        ctx.set(u.we, 1)
        ctx.set(u.dat_w, 0xDEAD)
        ctx.set(u.stb, 1)
        await ctx.tick("sync").repeat(2)
        ctx.set(u.stb, 0)
        await ctx.tick("sync")
        got, n = await access(ctx, 5)
        assert got == model[5] and n > 4, (hex(got), n)
        got, _ = await access(ctx, 3)
        assert got == 0xDEAD
        assert not ctx.get(u.init_done)
        ctx.set(mm.init_done, 1)
        await ctx.tick("sync").repeat(4)
        assert ctx.get(u.init_done)
        log["done"] = True

    sim = Simulator(m)
    sim.add_clock(1 / 70e6, domain="sync")
    sim.add_clock(10e-9, domain="dram")
    sim.add_testbench(bench)
    sim.add_testbench(controller, background=True)
    sim.run_until(100e-6)
    assert log["done"] and log["accesses"] == 60 + 3
