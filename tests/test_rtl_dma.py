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
            "onchip_init": init, "seed": 21, "rounds": 6}
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
    # one beat per cycle both ways (64 beats in 74-95 cycles measured, a refresh included)
    assert r["long"]["load_cycles"] < r["long"]["beats"] + 40, r["long"]
    assert r["long"]["store_cycles"] < r["long"]["beats"] + 40, r["long"]


def test_model_latency_matches_litedram_figure():
    """The behavioural model's default latency is the LiteDRAM figure (ExtMemoryModel's
    docstring): a 64-word load of one beat each takes 78 cycles on it, as on LiteDRAM's core."""
    p = dict(data_width=128, word_bits=128, onchip_depth=64, ext_depth=1024, stall_permille=0)
    h = DmaHarness(**p, init=list(range(512)))
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": 1, "init": list(range(512)), "seed": 3, "rounds": 1}
    d = run_testbench(h, "dma_model_default", "sim.tb_dma", case)
    assert json.loads((d / "result.json").read_text())["long_load"]["cycles"] == 78


def test_ext_port_shares_dram_between_host_writes_and_dma_reads():
    """rtl_gen/extport.py in the Amaranth simulator, on the behavioural memory with ~30 %
    command and read-data stalls: host writes land exactly (all byte enables) and are held
    while reads are in flight; reads come back in order; after ``acc_reset`` the data of the
    reads issued before it never reaches the accelerator; the LiteDRAM write rule holds (a
    write command is never offered without its data word)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    from rtl_gen.extmem import ExtMemoryModel
    from rtl_gen.extport import ExtPort
    DW, AW, DEPTH = 32, 8, 256
    m = Module()
    m.submodules.port = ep = ExtPort(DW, AW)
    m.submodules.mem = mem = ExtMemoryModel(data_width=DW, addr_width=AW, depth=DEPTH, latency=6,
                                            stall_permille=300, seed=5)
    wiring.connect(m, ep.mem, mem.port)
    rng = random.Random(3)
    model = {}
    log = {"reads_in_flight_at_write": [], "rule": 0, "got": []}

    async def host_write(ctx, addr, word):
        ctx.set(ep.host.valid, 1)
        ctx.set(ep.host.payload, {"addr": addr, "data": word})
        await ctx.tick().until(ep.host.ready)
        ctx.set(ep.host.valid, 0)
        model[addr] = word

    async def reads(ctx, addrs):
        """Issue reads of ``addrs`` back to back; return their data in order."""
        out = []
        ctx.set(ep.acc.rdata.ready, 1)
        i = 0
        while len(out) < len(addrs):
            ctx.set(ep.acc.cmd.valid, i < len(addrs))
            if i < len(addrs):
                ctx.set(ep.acc.cmd.payload, {"addr": addrs[i], "we": 0})
            _, _, took, got, data = await ctx.tick().sample(ep.acc.cmd.ready, ep.acc.rdata.valid,
                                                           ep.acc.rdata.payload)
            if took and i < len(addrs):
                i += 1
            if got:
                out.append(data)
        ctx.set(ep.acc.cmd.valid, 0)
        return out

    async def rule(ctx):
        while True:
            _, _, cv, we, wv = await ctx.tick().sample(mem.port.cmd.valid, mem.port.cmd.payload.we,
                                                      mem.port.wdata.valid)
            if cv and we and not wv:
                log["rule"] += 1

    async def bench(ctx):
        # 1. host writes, then reads of every written word, in a random order
        for a in rng.sample(range(DEPTH), 40):
            await host_write(ctx, a, rng.getrandbits(DW))
        addrs = rng.sample(sorted(model), len(model))
        assert await reads(ctx, addrs) == [model[a] for a in addrs]
        # 2. a host write offered while reads are in flight waits for their data
        ctx.set(ep.acc.rdata.ready, 0)               # the accelerator holds its data back
        for a in addrs[:4]:
            ctx.set(ep.acc.cmd.valid, 1)
            ctx.set(ep.acc.cmd.payload, {"addr": a, "we": 0})
            await ctx.tick().until(ep.acc.cmd.ready)
        ctx.set(ep.acc.cmd.valid, 0)
        ctx.set(ep.host.valid, 1)
        ctx.set(ep.host.payload, {"addr": addrs[0], "data": 0x12345678})
        for _ in range(40):
            _, _, ready = await ctx.tick().sample(ep.host.ready)
            assert not ready                          # four reads still out
        # 3. the accelerator is reset with those reads in flight: their data is dropped, the
        # host's write then goes through, and the next reads see only their own data
        ctx.set(ep.acc_reset, 1)
        await ctx.tick()
        ctx.set(ep.acc_reset, 0)
        await ctx.tick().until(ep.host.ready)
        ctx.set(ep.host.valid, 0)
        model[addrs[0]] = 0x12345678
        assert await reads(ctx, addrs[:6]) == [model[a] for a in addrs[:6]]
        log["done"] = True

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(rule, background=True)
    sim.run()
    assert log.get("done") and log["rule"] == 0
