"""cocotb testbench: Load and Store (rtl_gen/hostio.py) against Python models of their transfers.

:class:`HostIO` wires the two units as the accelerator top does: Load's row port on a real
RowAddress, Store's read port on a logit memory (``lib.memory``, one cycle of read latency)
that the testbench fills through ``logit_w``.

- Load (:class:`LoadTB`): random ``LOAD`` instructions (``row0``, ``rows``) into random
  destination tensors (``base``, ``width``, ``channels``, ``ring_rows``, fewer than ``rows``
  on some so the rows wrap round the ring): the bytes sent on ``rx`` must be written, in
  order, byte ``e`` of row ``y`` at ``base + (y mod ring_rows) * width * channels + e``, and
  nothing else; one RowAddress start per row; the row port's request fields zero while no
  row starts, and the write port's lines zero while not writing (the top ORs the units).
- Store (:class:`StoreTB`): random int64 logits (both extremes included) and ``length``
  (0, whole words, a partial last word): ``tx`` must carry their first ``length`` bytes,
  little-endian, and hold ``valid`` and the byte while ``ready`` is low.

Each unit's ``done`` must be a one-cycle pulse; without stalls (no idle cycle on ``rx`` for
Load, no back-pressure on ``tx`` for Store) it must come the module docstring's cycles after
``start``: ``rows * (19 + width * channels) + 1`` and ``2 * length + 1``. Those are written to
``cycles_*.json`` for the pytest side to hold against the compiler's model.

The case (``sim.runner.run_testbench``): ``depth`` (logit memory words), ``seed``, ``ops``
(loads and as many stores per run). The test runs once per idle (``rx``) x back-pressure
(``tx``) pair in one simulation (``cocotb.parametrize``; a simulator start costs more than
the transfers).
"""
from __future__ import annotations

import json
import random
import struct

import cocotb
from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from cocotb.triggers import ReadOnly, RisingEdge

from rtl_gen.hostio import Load, Store
from rtl_gen.rowaddr import RowAddress
from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC
from sephw.arch.isa import Instruction, Op
from sim.tb import StreamDriver, StreamMonitor, load_case, start_clock_reset, wait_for, write_memory
from sim.tb_writer import WritePortSink, bits, cycle, pulse

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class HostIO(wiring.Component):
    """Load and Store as the top wires them (see the module docstring).

    Parameters
    ----------
    depth : int
        Words of the logit memory (Store's ``depth``).

    Attributes
    ----------
    load_start, store_start : In(1)
    load_done, store_done : Out(1)
    ins : In(isa.WORD layout), dst : In(TENSOR_DESC layout)
        Both units' instruction; Load's destination tensor.
    rx : In(stream.Signature(8)), tx : Out(stream.Signature(8))
    waddr : Out(32), wdata : Out(8), wen : Out(1)
        Load's activation memory write port.
    logit_w : Out(WritePort.Signature)
        The logit memory's write port.
    row_start : Out(1)
        Load starts its RowAddress.
    row_stray : Out(1)
        A request field of Load's row port is not zero while ``row_start`` is low.
    """

    def __init__(self, depth: int):
        self._depth = depth
        super().__init__({
            "load_start": In(1), "load_done": Out(1), "store_start": In(1), "store_done": Out(1),
            "ins": In(isa.WORD.layout()), "dst": In(TENSOR_DESC.layout()),
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
            "waddr": Out(32), "wdata": Out(8), "wen": Out(1),
            # the memory port's signature, as the memory sees it: its lines are our inputs
            "logit_w": Out(WritePort.Signature(addr_width=max(1, ceil_log2(depth)), shape=signed(64))),
            "row_start": Out(1), "row_stray": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.load = ld = Load()
        m.submodules.store = st = Store(self._depth)
        m.submodules.row_addr = ra = RowAddress()
        m.submodules.logits = lg = Memory(shape=signed(64), depth=self._depth, init=[])
        rd, wr = lg.read_port(), lg.write_port()
        wiring.connect(m, ld.row, ra)
        wiring.connect(m, wiring.flipped(self.rx), ld.rx)
        wiring.connect(m, st.tx, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.logit_w), wr)
        m.d.comb += [
            ld.start.eq(self.load_start), self.load_done.eq(ld.done), ld.ins.eq(self.ins), ld.dst.eq(self.dst),
            st.start.eq(self.store_start), self.store_done.eq(st.done), st.ins.eq(self.ins),
            self.waddr.eq(ld.waddr), self.wdata.eq(ld.wdata), self.wen.eq(ld.wen),
            rd.addr.eq(st.logit_addr), st.logit.eq(rd.data),
            self.row_start.eq(ld.row.start),
            self.row_stray.eq(~ld.row.start & ((ld.row.r | ld.row.ring | ld.row.base | ld.row.row_bytes) != 0)),
        ]
        return m


class PulseMonitor:
    """The cycles in which one-bit port ``name`` is high."""

    def __init__(self, dut, name: str):
        self.clk, self.port = dut.clk, getattr(dut, name)
        self.cycles: list[int] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            if self.port.value == 1:
                self.cycles.append(cycle())


def check_done(what: str, done: list[int], t0: int) -> int:
    """The cycle of the one ``done`` pulse after ``t0``."""
    after = [c for c in done if c > t0]
    assert len(after) == 1, f"{what}: done high in cycles {[c - t0 for c in after]} after start"
    return after[0]


def random_load(rng: random.Random, wrap: bool) -> dict:
    """A LOAD: instruction fields, the destination's fields and the host's bytes."""
    rows = rng.randint(2 if wrap else 1, 4)
    t = {"rows": rows, "row0": rng.choice([0, rng.randint(0, 40)]),
         "width": rng.randint(1, 6), "channels": rng.choice([1, 3, rng.randint(1, 6)]),
         "ring_rows": rng.randint(1, rows - 1) if wrap else rng.randint(rows, rows + 3),
         "base": rng.choice([rng.randint(0, 500), rng.randint(0, 2 ** 32 - 2 ** 10)])}
    t["bytes"] = [rng.randrange(256) for _ in range(rows * t["width"] * t["channels"])]
    return t


def expected_load(t: dict) -> list[tuple[int, int]]:
    """(address, byte) of every store of LOAD ``t``, in order (the reference)."""
    row_bytes = t["width"] * t["channels"]
    return [(t["base"] + (t["row0"] + k) % t["ring_rows"] * row_bytes + e, t["bytes"][k * row_bytes + e])
            for k in range(t["rows"]) for e in range(row_bytes)]


class LoadTB:
    """Load with its source (host bytes on ``rx``, idle insertion), sink (the activation
    memory's write port) and monitor (``done``, the row port's starts and stray requests)."""

    def __init__(self, dut, idle: float, seed: int):
        self.dut, self.idle = dut, idle
        self.source = StreamDriver(dut, "rx", 8, idle=idle, seed=seed)
        self.sink = WritePortSink(dut, 1)
        self.done = PulseMonitor(dut, "load_done")
        self.row_starts = PulseMonitor(dut, "row_start")
        self.stray = PulseMonitor(dut, "row_stray")
        dut.load_start.value = 0

    async def run(self, t: dict) -> int:
        """Run LOAD ``t`` (:func:`random_load`); check it; return its cycles from start to done."""
        dut = self.dut
        dut.ins.value = Instruction(Op.LOAD, rows=t["rows"], row0=t["row0"]).encode()
        dut.dst.value = TENSOR_DESC.encode({k: t[k] for k in ("base", "ring_rows", "width", "channels")}
                                           | {"height": t["row0"] + t["rows"], "bits": 8})
        for b in t["bytes"]:
            self.source.send(b)
        await RisingEdge(dut.clk)
        n_writes = len(self.sink.writes)
        t0 = await pulse(dut, dut.load_start)
        row_bytes = t["width"] * t["channels"]
        await wait_for(dut, lambda: any(c > t0 for c in self.done.cycles),
                       t["rows"] * (20 + 4 * row_bytes) + 100, "load done")
        for _ in range(3):             # nothing more may be written after done
            await RisingEdge(dut.clk)
        what = (f"LOAD rows={t['rows']} row0={t['row0']} width={t['width']} channels={t['channels']} "
                f"ring_rows={t['ring_rows']} base={t['base']}")
        assert not self.sink.errors, f"{what}: {self.sink.errors[:4]}"
        assert not self.stray.cycles, f"{what}: row request fields set without start in {self.stray.cycles[:4]}"
        writes = self.sink.writes[n_writes:]
        exp = expected_load(t)
        got = [(a, b) for _, a, b in writes]
        for i, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"{what}: byte {i}: wrote {g}, expected {e}"
        assert len(got) == len(exp), f"{what}: {len(got)} bytes written, expected {len(exp)}"
        assert not self.source.queue, f"{what}: {len(self.source.queue)} bytes of rx not taken"
        done = check_done(what, self.done.cycles, t0)
        starts = [c for c in self.row_starts.cycles if t0 < c < done]
        assert len(starts) == t["rows"], f"{what}: {len(starts)} RowAddress starts for {t['rows']} rows"
        assert done == writes[-1][0] + 1, f"{what}: done {done - writes[-1][0]} cycles after the last byte"
        if self.idle == 0:
            assert done - t0 == t["rows"] * (19 + row_bytes) + 1, f"{what}: done {done - t0} cycles after start"
        return done - t0


def random_store(rng: random.Random, depth: int) -> dict:
    """A STORE: the logit memory's words and ``length``."""
    words = [rng.choice([INT64_MIN, INT64_MAX, -1, 0, rng.randint(INT64_MIN, INT64_MAX),
                         rng.randint(-(2 ** 20), 2 ** 20)]) for _ in range(depth)]
    length = rng.choice([8 * depth, 8 * rng.randint(1, depth), rng.randint(1, 8 * depth)])
    return {"words": words, "length": 0 if rng.random() < 0.1 else length}


class StoreTB:
    """Store with its source (the logit memory, filled through ``logit_w``), sink (``tx``,
    back-pressure insertion) and monitor (``done``; ``tx`` holds ``valid`` and the byte until
    taken)."""

    def __init__(self, dut, depth: int, stall: float, seed: int):
        self.dut, self.depth, self.stall = dut, depth, stall
        self.sink = StreamMonitor(dut, "tx", 8, stall=stall, seed=seed)
        self.done = PulseMonitor(dut, "store_done")
        self.errors: list[str] = []
        dut.store_start.value = 0
        dut.logit_w__en.value = 0
        self._task = cocotb.start_soon(self._hold())

    async def _hold(self):
        held = None
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            valid, ready = bits(self.dut.tx__valid), bits(self.dut.tx__ready)
            byte = bits(self.dut.tx__payload)
            if held is not None and (not valid or byte != held):
                self.errors.append(f"cycle {cycle()}: tx valid {valid} byte {byte:#x} after {held:#x} was not taken")
            held = byte if valid and not ready else None

    async def run(self, t: dict) -> int:
        """Run STORE ``t`` (:func:`random_store`); check it; return its cycles from start to done."""
        dut = self.dut
        await write_memory(dut, "logit_w", signed(64), t["words"])
        dut.ins.value = Instruction(Op.STORE, length=t["length"]).encode()
        await RisingEdge(dut.clk)
        n = len(self.sink.received)
        t0 = await pulse(dut, dut.store_start)
        await wait_for(dut, lambda: any(c > t0 for c in self.done.cycles), 10 * t["length"] + 100, "store done")
        for _ in range(3):             # nothing more may be sent after done
            await RisingEdge(dut.clk)
        what = f"STORE length={t['length']}"
        assert not self.errors, f"{what}: {self.errors[:4]}"
        exp = list(b"".join(struct.pack("<q", w) for w in t["words"])[:t["length"]])
        got = self.sink.received[n:]
        for i, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"{what}: byte {i} (logit {i // 8} = {t['words'][i // 8]}): sent {g:#x}, expected {e:#x}"
        assert len(got) == len(exp), f"{what}: {len(got)} bytes sent, expected {len(exp)}"
        done = check_done(what, self.done.cycles, t0)
        if self.stall == 0:
            assert done - t0 == 2 * t["length"] + 1, f"{what}: done {done - t0} cycles after start"
        return done - t0


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], stall=[0.0, 0.4])
async def load_store_match_model(dut, idle, stall):
    case = load_case()
    seed = case["seed"] + int(idle * 100) + int(stall * 1000)
    rng = random.Random(seed)
    await start_clock_reset(dut)
    load = LoadTB(dut, idle, seed)
    store = StoreTB(dut, case["depth"], stall, seed + 1)
    cycles = []
    for i in range(case["ops"]):
        t = random_load(rng, wrap=i % 2 == 0)
        n = await load.run(t)
        cycles.append({"op": "LOAD", "rows": t["rows"], "width": t["width"], "channels": t["channels"],
                       "cycles": n, "stalled": idle > 0})
        t = random_store(rng, case["depth"])
        n = await store.run(t)
        cycles.append({"op": "STORE", "length": t["length"], "cycles": n, "stalled": stall > 0})
    dut._log.info(f"cycles: {cycles}")
    with open(f"cycles_idle{idle}_stall{stall}.json", "w") as f:
        json.dump(cycles, f)
