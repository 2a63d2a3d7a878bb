# amaranth: UnusedElaboratable=no
"""The host link (rtl_gen/uart.py, rtl_gen/hostlink.py, docs/protocol.md).

UART: transmitter into receiver in the Amaranth simulator at integer and fractional
clocks-per-bit ratios down to the minimum of 4, framing errors and glitches on the receiver.
HostLink: parameters against the build's manifest, then over its UART pins in Verilator
(sim/tb_hostlink.py) as the simulated board builds it (100 MHz, 25 Mbaud: 4 clocks per bit,
sim/simboard.py; the fractional ratios are the UART tests'): every command and error reply, garbage /
corrupted / truncated frames, and the whole small SEP-Net of tests/test_rtl_top.py loaded,
run and read back, logits bit-exact against sephw.reference.
"""
import json
import math
import random

import pytest
import torch

from host.protocol import MAX_PAYLOAD, PROTOCOL_VERSION, Info
from sephw import reference
from sephw.arch import Manifest
from sim.simboard import CLOCKS_PER_BIT

CLK_HZ, BAUD = 100_000_000, 12_000_000
FRAME_TIMEOUT = 3000        # cycles (~36 byte times at 12 Mbaud)


# ---------------------------------------------------------------------------- UART

def _uart_loopback(clk_hz, baud, data):
    """Bytes through UartTx -> UartRx in the Amaranth simulator; (received, clocks per byte)."""
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    from rtl_gen.uart import UartRx, UartTx
    m = Module()
    m.submodules.tx = tx = UartTx(clk_hz=clk_hz, baud=baud)
    m.submodules.rx = rx = UartRx(clk_hz=clk_hz, baud=baud)
    m.d.comb += rx.rx.eq(tx.tx)
    got, when = [], []

    async def source(ctx):
        for b in data:
            ctx.set(tx.data.valid, 1)
            ctx.set(tx.data.payload, b)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def sink(ctx):
        ctx.set(rx.data.ready, 1)
        n = 0
        while True:
            await ctx.tick()
            n += 1
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
                when.append(n)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink, background=True)
    sim.run_until(1e-8 * (len(data) + 2) * 11 * clk_hz / baud + 1e-6)
    per_byte = (when[-1] - when[0]) / (len(when) - 1) if len(when) > 1 else None
    return got, per_byte


@pytest.mark.parametrize("clk_hz,baud", [(4, 1), (8, 1), (CLK_HZ, BAUD), (CLK_HZ, 3_000_000), (9, 2)])
def test_uart_loopback(clk_hz, baud):
    rng = random.Random(clk_hz ^ baud)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80] + [rng.randrange(256) for _ in range(40)]
    got, per_byte = _uart_loopback(clk_hz, baud, data)
    assert got == data
    # back to back: 10 bit periods per byte, plus the one-cycle hand-off between bytes
    assert per_byte == pytest.approx(10 * clk_hz / baud + 1, abs=0.5)


def test_uart_rx_framing_and_glitch():
    """A byte whose stop bit is low is dropped; a start bit shorter than half a bit is a
    glitch; the bytes around them still arrive."""
    from amaranth.sim import Simulator

    from rtl_gen.uart import UartRx
    rx = UartRx(clk_hz=CLK_HZ, baud=BAUD)
    got = []
    bit = CLK_HZ / BAUD

    async def drive(ctx):
        t = 0.0
        n = 0

        async def level(v, bits):
            nonlocal t, n
            ctx.set(rx.rx, v)
            t += bits * bit
            while n < round(t):
                await ctx.tick()
                n += 1

        async def byte(b, stop=1):
            await level(0, 1)
            for i in range(8):
                await level((b >> i) & 1, 1)
            await level(stop, 1)

        await level(1, 3)
        await byte(0x3C)
        await byte(0x5A, stop=0)          # framing error: dropped
        await level(1, 2)
        await level(0, 0.3)               # glitch
        await level(1, 3)
        await byte(0xC3)
        await level(1, 3)

    async def sink(ctx):
        ctx.set(rx.data.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert got == [0x3C, 0xC3]


def test_uart_arguments():
    from rtl_gen.uart import UartRx, UartTx
    with pytest.raises(ValueError, match=r"at least 4, not 100000000 / 30000000 = 3.33"):
        UartTx(clk_hz=100_000_000, baud=30_000_000)
    with pytest.raises(ValueError, match=r"at least 4, not 7 / 2 = 3.5"):
        UartRx(clk_hz=7, baud=2)
    with pytest.raises(TypeError, match="baud must be an integer"):
        UartRx(clk_hz=100, baud=1.5)
    assert UartTx(clk_hz=CLK_HZ, baud=BAUD).clocks_per_bit == pytest.approx(8.333, abs=1e-3)


# ---------------------------------------------------------------------------- HostLink

def _system(d, **kw):
    from rtl_gen.system import System
    return System.from_build(d, baud=BAUD, clk_hz=CLK_HZ, netlist="word",
                             frame_timeout_cycles=FRAME_TIMEOUT, **kw)


def test_hostlink_parameters(sepnet_build):
    from dataclasses import replace

    from rtl_gen.hostlink import HostLink
    from rtl_gen.system import System
    _, d, _ = sepnet_build
    man = Manifest.read(d)
    arch = man.arch
    sysm = _system(d)
    hl = sysm.link
    mem = man["memories"]
    # word sizes derived from the memory map equal the compiler's image word sizes
    assert hl.word_bytes == (man["isa"]["word_bits"] // 8, mem["tensors"]["word_bytes"],
                             mem["params"]["word_bytes"], mem["patterns"]["word_bytes"],
                             mem["weights"]["word_bytes"])
    # pattern words: 4 lanes x 4 channels x 25 taps = 400 bits in 4 slices of 100 bits
    assert hl.word_bytes == (32, 16, 16, 13, 16)
    # every image fits the depth the device reports
    for k, key in enumerate(("tensors", "params", "patterns", "weights"), start=1):
        assert mem[key]["words"] <= hl.depths[k]
    assert man["program"]["instructions"] <= hl.depths[0]
    # the link and its sibling accelerator are built from one ArchConfig
    assert hl.depths == tuple(sysm.accelerator._depths[s] for s in range(5))
    assert sysm.arch == hl.arch == replace(arch, clock_hz=CLK_HZ)
    # the link's host_w is the accelerator's
    assert hl.acc.host_w.payload.shape() == sysm.accelerator.host_w_layout
    # built for another clock than the build's: another ArchConfig, so another hash
    other = System.from_build(d, baud=BAUD, clk_hz=CLK_HZ // 2)
    assert other.arch.clock_hz == CLK_HZ // 2 and other.link.info.arch_hash != man["arch_hash"]
    assert hl.info == Info(PROTOCOL_VERSION, 1, sysm.arch.hash(), "arty-a7-35", CLK_HZ, BAUD,
                           MAX_PAYLOAD, hl.depths, hl.word_bytes, 64, 80)
    assert System.from_build(d).link.info.arch_hash == man["arch_hash"]
    assert System.from_build(d).link.frame_timeout_cycles == man["clock_hz"] // 1000
    assert System.from_build(d).link.baud == 3_000_000
    kw = dict(clk_hz=CLK_HZ, baud=BAUD, board="arty-a7-35", arch_hash="0123456789abcdef",
              input_bytes=64, logit_bytes=80)
    with pytest.raises(TypeError, match="arch must be an ArchConfig"):
        HostLink(object(), **kw)
    with pytest.raises(ValueError, match="at least 4, not 100000000 / 50000000 = 2"):
        HostLink(arch, **{**kw, "baud": 50_000_000})
    with pytest.raises(ValueError, match="16 hex digits"):
        HostLink(arch, **{**kw, "arch_hash": "xyz"})
    with pytest.raises(ValueError, match="at most 16 ASCII"):
        HostLink(arch, **{**kw, "board": "a-very-long-board-name"})
    with pytest.raises(ValueError, match="input_bytes must be in 1..65535"):
        HostLink(arch, **{**kw, "input_bytes": 0})


def _run_hostlink(d, testcase, case):
    """These simulations run millions of cycles (the UART is 40 cycles a byte, the images
    37 KB): a speed build (top ports only, optimized C++; sim.runner.build_component) of the
    simulated board's own design (sim.simboard.board_system: the build's clock,
    ``CLOCKS_PER_BIT`` clocks per bit, the default frame timeout), so that this test and
    tests/test_host_device.py's simulated-board tests share one Verilator build."""
    from sim.runner import run_testbench
    from sim.simboard import board_system, sim_tag
    dut = board_system(d)
    link = dut.link
    case = {**case, "clk_hz": link.clk_hz, "baud": link.baud, "frame_timeout_cycles": link.frame_timeout_cycles,
            "info": {k: (list(v) if isinstance(v, tuple) else v) for k, v in link.info.__dict__.items()}}
    return run_testbench(dut, sim_tag(d), "sim.tb_hostlink", case, testcase=testcase, speed=True), link


@pytest.mark.slow
def test_link_commands(sepnet_build):
    """PING / INFO / every error reply, garbage, corrupted and truncated frames, over the pins."""
    _, d, _ = sepnet_build
    _, link = _run_hostlink(d, "link_commands", {"build_dir": str(d)})
    assert link.clk_hz / link.baud == CLOCKS_PER_BIT


@pytest.mark.slow
def test_whole_network_over_the_link(sepnet_build):
    """All memory images through LOAD, two images through WRITE_INPUT / RUN / READ_LOGITS /
    READ_CYCLES: logits bit-exact against the reference, cycles as the top's own."""
    g, d, rep = sepnet_build
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    expected = reference.run(g, images)
    man = Manifest.read(d)
    case = {"build_dir": str(d), "classes": man["output"]["shape"][0],
            "images": [img.permute(1, 2, 0).reshape(-1).tolist() for img in images],
            "expected": [[int(v) for v in row] for row in expected],
            "predicted_cycles": rep["cycles_per_inference"]}
    assert len(case["images"][0]) == math.prod(man["input"]["shape"])
    test_dir, link = _run_hostlink(d, "network", case)
    r = json.loads((test_dir / "result.json").read_text())
    # the top's cycles are data-independent and match the cycle model (test_rtl_top)
    assert len(r["cycles"]) == 3 and len(set(r["cycles"])) == 1
    assert 0.9 <= r["cycles"][0] / rep["cycles_per_inference"] <= 1.1
    # loading is UART-bound: ~10 bit periods per byte sent, little else
    per_byte = r["load_cycles"] / r["load_bytes"]
    print(f"LOAD: {r['load_frames']} frames, {r['load_bytes']} bytes, {per_byte:.1f} clocks per byte "
          f"({10 * link.clk_hz / link.baud:.1f} per byte on the wire); RUN {r['cycles'][0]} cycles")
    assert 10 * link.clk_hz / link.baud <= per_byte <= 1.1 * 10 * link.clk_hz / link.baud
