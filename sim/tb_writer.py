"""cocotb testbench: the Writer (rtl_gen/writer.py) against a Python model of a tile's stores.

Random tiles (width, channels, first channel ``c0``, ``tc <= lanes``, ``rows``, ``row0``,
``ring_rows``, on some tiles fewer than ``rows`` so the tile wraps round its ring, ``base``),
each a compute instruction word and a tensor descriptor encoded by ``sephw.arch``: the bytes
written must be exactly the model's, in order: code ``l`` (low 8 bits) of position ``x`` of
output row ``row0 + k`` at ``base + ((row0 + k) mod ring_rows) * width * channels
+ x * channels + c0 + l`` for ``l < tc``, nothing else. With ``units`` > 1 the tiles whose
``channels`` and ``c0`` are multiples of ``units`` (``wide``) write ``units`` bytes per cycle
at a ``units``-aligned address; the others one.

Timing, checked on every tile, with and without idle cycles on ``y``: a position's bytes
take ``ceil(tc / units)`` (wide) or ``tc`` consecutive cycles from the cycle after its codes
are taken; its codes are taken as soon as both they are offered and the writer is free: in
the cycle of the previous position's last byte (the module docstring's throughput: no cycle
lost between positions), the first position's ``1 + TOP_ROW_ADDR`` cycles after ``start``
(one RowAddress; the writer's divider runs alongside the gatherer's, which the compiler's
model counts once); ``done`` rises the cycle after the last byte.

The case (``sim.runner.run_testbench``): ``lanes``, ``units``, ``seed``, ``tiles`` (per run).
The test runs twice in one simulation (``cocotb.parametrize``; one simulator start costs
more than the tiles): ``y`` never idle, and idle on 30 % of the cycles.
"""
from __future__ import annotations

import random

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.types import Logic
from cocotb.utils import get_sim_time

from sephw.arch.formats import TENSOR_DESC
from sephw.arch.isa import Instruction, Op
from sim.tb import StreamDriver, load_case, start_clock_reset, wait_for

CLOCK_NS = 10              # sim.tb.start_clock_reset
TOP_ROW_ADDR = 19          # sephw.compiler.hw (not imported: it pulls in torch; test_rtl_writer checks it)
CODE_MIN, CODE_MAX = -256, 255


def cycle() -> int:
    """The current clock cycle (one number for every coroutine of the testbench)."""
    return int(get_sim_time("ns")) // CLOCK_NS


def bits(handle) -> int:
    """A port's value as an unsigned int (one-bit ports hold a ``Logic``, wider a ``LogicArray``)."""
    v = handle.value
    return int(v) if isinstance(v, Logic) else v.to_unsigned()


async def pulse(dut, port) -> int:
    """Raise one-bit ``port`` for one cycle (from now, just after a clock edge); return that cycle."""
    port.value = 1
    t0 = cycle()
    await RisingEdge(dut.clk)
    port.value = 0
    return t0


def random_tile(rng: random.Random, lanes: int, units: int, wide: bool, wrap: bool, full: bool) -> dict:
    """One tile: instruction fields, descriptor fields and the codes offered per position;
    ``wide``: channels and c0 multiples of ``units`` (always with one unit); ``wrap``: fewer
    ring rows than the tile's rows; ``full``: ``tc == lanes``."""
    wide = wide or units == 1
    while True:
        channels = rng.randint(1, 16)
        c0 = rng.randint(0, channels - 1)
        if wide == (channels % units == 0 and c0 % units == 0) and (channels - c0 >= lanes or not full):
            break
    most = min(lanes, channels - c0)
    tc = lanes if full else rng.choice([1, most, rng.randint(1, most)])
    rows = rng.randint(2 if wrap else 1, 4)
    ring_rows = rng.randint(1, rows - 1) if wrap else rng.randint(rows, rows + 3)
    width = rng.choice([1, rng.randint(1, 5)])
    base = rng.choice([rng.randint(0, 300), rng.randint(0, 2 ** 32 - 1 - 64 * 8 * 12)])
    if wide:
        base -= base % units       # the activation memory writes a pair at an aligned address
    codes = [[rng.choice([CODE_MIN, CODE_MAX, -1, rng.randint(CODE_MIN, CODE_MAX)])
              for _ in range(lanes)] for _ in range(rows * width)]
    return {"rows": rows, "row0": rng.randint(0, 40), "c0": c0, "tc": tc, "width": width,
            "channels": channels, "ring_rows": ring_rows, "base": base, "codes": codes,
            "wide": wide}


def expected_writes(t: dict) -> list[tuple[int, int]]:
    """(byte address, byte) of every store of tile ``t``, in order (the reference)."""
    out = []
    row_bytes = t["width"] * t["channels"]
    for k in range(t["rows"]):
        row_addr = t["base"] + (t["row0"] + k) % t["ring_rows"] * row_bytes
        for x in range(t["width"]):
            code = t["codes"][k * t["width"] + x]
            for l in range(t["tc"]):
                out.append((row_addr + x * t["channels"] + t["c0"] + l, code[l] & 0xFF))
    return out


class WritePortSink:
    """The activation memory's write port: every byte stored (cycle, address, byte), in order,
    and the memory image. Flags a write of bytes ``u >= 1`` at an address not a multiple of
    ``units``, and address or data lines not zero while nothing is written (the top ORs the
    units' write ports)."""

    def __init__(self, dut, units: int):
        self.clk, self.units = dut.clk, units
        self.waddr, self.wdata, self.wen = dut.waddr, dut.wdata, dut.wen
        self.writes: list[tuple[int, int, int]] = []
        self.memory: dict[int, int] = {}
        self.errors: list[str] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            wen = bits(self.wen)
            addr, data = bits(self.waddr), bits(self.wdata)
            if not wen:
                if addr or data:
                    self.errors.append(f"cycle {cycle()}: waddr {addr:#x} wdata {data:#x} without wen")
                continue
            if wen >> 1 and addr % self.units:
                self.errors.append(f"cycle {cycle()}: {self.units} bytes at unaligned {addr:#x}")
            for u in range(self.units):
                if wen >> u & 1:
                    byte = data >> (8 * u) & 0xFF
                    self.writes.append((cycle(), addr + u, byte))
                    self.memory[(addr + u) % 2 ** 32] = byte


class TileMonitor:
    """The Writer's ``y``: the cycles codes are offered, the transfers (cycle, codes); the
    cycles ``done`` is high."""

    def __init__(self, dut, lanes: int):
        self.clk, self.dut, self.lanes = dut.clk, dut, lanes
        self.offered: list[int] = []
        self.taken: list[tuple[int, list[int]]] = []
        self.done: list[int] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            if dut.y__valid.value == 1:
                self.offered.append(cycle())
            if dut.y__valid.value == 1 and dut.y__ready.value == 1:
                word = bits(dut.y__payload)
                codes = [(word >> (9 * l) & 0x1FF) - ((word >> (9 * l) & 0x100) << 1)
                         for l in range(self.lanes)]
                self.taken.append((cycle(), codes))
            if dut.done.value == 1:
                self.done.append(cycle())


class WriterTB:
    """The Writer with its source (codes on ``y``, idle insertion), sink (the write port) and
    monitor (``y`` transfers, ``done``); :meth:`run_tile` runs one tile and checks it."""

    def __init__(self, dut, lanes: int, units: int, idle: float, seed: int):
        self.dut, self.lanes, self.units, self.idle = dut, lanes, units, idle
        self.source = StreamDriver(dut, "y", data.ArrayLayout(signed(9), lanes), idle=idle, seed=seed)
        self.sink = WritePortSink(dut, units)
        self.monitor = TileMonitor(dut, lanes)
        dut.start.value = 0
        dut.stop.value = 0

    async def run_tile(self, t: dict) -> dict:
        """Run tile ``t`` (:func:`random_tile`) from ``start`` to ``stop``; check the bytes and
        the timing; return the measured cycles."""
        dut, U = self.dut, self.units
        positions = t["rows"] * t["width"]
        ins = Instruction(Op.CONV_INT, rows=t["rows"], row0=t["row0"], c0=t["c0"], tc=t["tc"])
        dut.ins.value = ins.encode()
        dut.dst.value = TENSOR_DESC.encode({"base": t["base"], "ring_rows": t["ring_rows"],
                                            "height": t["row0"] + t["rows"], "width": t["width"],
                                            "channels": t["channels"], "bits": 8, "signed": 1})
        await RisingEdge(dut.clk)
        n_taken, n_writes = len(self.monitor.taken), len(self.sink.writes)
        t_queued = cycle()
        for codes in t["codes"]:       # before start: without idle insertion the writer never waits
            self.source.send(codes)
        await RisingEdge(dut.clk)
        t0 = await pulse(dut, dut.start)
        per_pos = -(-t["tc"] // U) if t["wide"] else t["tc"]
        # done as the monitor sampled it (a value read right after the clock edge may be stale)
        await wait_for(dut, lambda: any(c > t0 for c in self.monitor.done),
                       4 * positions * (per_pos + 4) + 100, "done")
        # the top raises stop in the done cycle; a cycle later is the same to the writer, which
        # is idle by then
        await pulse(dut, dut.stop)
        for _ in range(3):            # nothing more may be taken or written after done
            await RisingEdge(dut.clk)
        what = (f"tile rows={t['rows']} row0={t['row0']} c0={t['c0']} tc={t['tc']} width={t['width']} "
                f"channels={t['channels']} ring_rows={t['ring_rows']} base={t['base']} units={U}")
        assert not self.sink.errors, f"{what}: {self.sink.errors[:4]}"

        # data: every byte, in order, and the memory image
        taken = self.monitor.taken[n_taken:]
        writes = self.sink.writes[n_writes:]
        assert [c for _, c in taken] == t["codes"], f"{what}: y transfers differ from the codes sent"
        exp = expected_writes(t)
        got = [(a, b) for _, a, b in writes]
        for i, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"{what}: byte {i} (position {i // t['tc']}): wrote {g}, expected {e}"
        assert len(got) == len(exp), f"{what}: {len(got)} bytes written, expected {len(exp)}"
        image = {}
        for a, b in exp:
            image[a] = b
        assert {a: self.sink.memory[a] for a in image} == image, f"{what}: memory image differs"

        # timing: position p's bytes in per_pos consecutive cycles from the cycle after its take
        cycles = sorted({c for c, _, _ in writes})
        assert len(cycles) == positions * per_pos, \
            f"{what}: {len(cycles)} write cycles, expected {per_pos} per position ({'wide' if t['wide'] else 'narrow'})"
        for p, (tk, _) in enumerate(taken):
            burst = cycles[p * per_pos:(p + 1) * per_pos]
            assert burst == list(range(tk + 1, tk + 1 + per_pos)), \
                f"{what}: position {p} taken in cycle {tk - t0}, written in {[c - t0 for c in burst]}"
        free, after = t0 + 1 + TOP_ROW_ADDR, t_queued
        for p, (tk, _) in enumerate(taken):
            offered = min(c for c in self.monitor.offered if c > after)
            assert tk == max(offered, free), \
                (f"{what}: position {p} taken in cycle {tk - t0}, offered from {offered - t0}, "
                 f"writer free from {free - t0}")
            free, after = tk + per_pos, tk
        done_at = min(c for c in self.monitor.done if c > t0)
        assert done_at == cycles[-1] + 1, \
            f"{what}: done at {done_at - t0}, last byte at {cycles[-1] - t0}"
        if self.idle == 0:
            assert done_at - t0 == 1 + TOP_ROW_ADDR + positions * per_pos + 1
        return {"positions": positions, "tc": t["tc"], "wide": t["wide"], "per_position": per_pos,
                "start_to_done": done_at - t0}


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3])
async def writer_matches_model(dut, idle):
    case = load_case()
    lanes, units = case["lanes"], case["units"]
    seed = case["seed"] + int(idle * 100)
    rng = random.Random(seed)
    await start_clock_reset(dut)
    tb = WriterTB(dut, lanes, units, idle=idle, seed=seed)
    for i in range(case["tiles"]):
        # wide and narrow tiles (units > 1), rings that wrap within the tile and rings that
        # do not, crossed; every third tile with all lanes
        t = random_tile(rng, lanes, units, wide=i % 2 == 0, wrap=i // 2 % 2 == 0, full=i % 3 == 0)
        st = await tb.run_tile(t)
        dut._log.info(f"tile {i}: {st}")
