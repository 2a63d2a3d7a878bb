"""Shared cocotb testbench parts: payload packing, stream driver/monitor, memory loading.

Stream ports of an Amaranth component appear in its Verilog as ``<name>__valid``,
``<name>__ready`` and ``<name>__payload`` (the payload flattened LSB-first in layout order);
a memory write port as ``<name>__addr``, ``<name>__data``, ``<name>__en``.
"""
from __future__ import annotations

import json
import os
import random
from collections import deque

import cocotb
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

__all__ = ["load_case", "pack", "unpack", "StreamDriver", "StreamMonitor", "crossed_flows",
           "start_clock_reset", "write_memory", "wait_for"]


def load_case() -> dict:
    """The test case written by :func:`sim.runner.run_testbench`."""
    with open(os.environ["SEPHW_TB_CASE"]) as f:
        return json.load(f)


def pack(shape, value) -> int:
    """Flatten ``value`` (int, list for ArrayLayout, dict for StructLayout) into bits of ``shape``."""
    if isinstance(shape, (data.ArrayLayout, data.StructLayout)):
        out = 0
        if isinstance(shape, data.ArrayLayout):
            if len(value) != shape.length:
                raise ValueError(f"expected {shape.length} elements, got {len(value)}")
            width = data.Layout.cast(shape).size // max(1, shape.length)
            for i, v in enumerate(value):
                out |= pack(shape.elem_shape, v) << (i * width)
        else:
            for name, field in shape:
                out |= pack(field.shape, value[name]) << field.offset
        return out
    s = Shape.cast(shape)
    lo = -(1 << (s.width - 1)) if s.signed else 0
    hi = (1 << (s.width - 1)) - 1 if s.signed else (1 << s.width) - 1
    if not lo <= int(value) <= hi:
        raise ValueError(f"{value} does not fit {s}")
    return int(value) & ((1 << s.width) - 1)


def unpack(shape, bits: int):
    """Inverse of :func:`pack`."""
    if isinstance(shape, data.ArrayLayout):
        width = data.Layout.cast(shape).size // max(1, shape.length)
        return [unpack(shape.elem_shape, bits >> (i * width)) for i in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in shape}
    s = Shape.cast(shape)
    v = bits & ((1 << s.width) - 1)
    if s.signed and v >> (s.width - 1):
        v -= 1 << s.width
    return v


async def start_clock_reset(dut, cycles: int = 3):
    """Start a 10 ns clock on ``clk`` and hold ``rst`` for ``cycles`` cycles."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


async def write_memory(dut, port: str, shape, words, base: int = 0) -> None:
    """Write ``words`` (values for :func:`pack`) at addresses ``base``.. through write port ``port``."""
    addr, dat, en = (getattr(dut, f"{port}__{n}") for n in ("addr", "data", "en"))
    for a, w in enumerate(words):
        addr.value = base + a
        dat.value = pack(shape, w)
        en.value = 1
        await RisingEdge(dut.clk)
    en.value = 0


class StreamDriver:
    """Queue-backed source for stream ``name``: sends queued payloads in order.

    With ``idle`` > 0 it deasserts valid on a random fraction of cycles (idle insertion).
    Valid never waits for ready: once asserted, a beat stays until it is taken.
    """

    def __init__(self, dut, name: str, shape, *, idle: float = 0.0, seed: int = 0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.shape, self.idle = shape, idle
        self.queue = deque()
        self.sent = 0
        self._taken = False
        self._rng = random.Random(seed)
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, value) -> None:
        self.queue.append(pack(self.shape, value))

    async def _run(self):
        presenting = False
        while True:
            await RisingEdge(self.clk)
            if presenting and self._taken:
                self.queue.popleft()
                self.sent += 1
                presenting = False
            if not presenting and self.queue and not (self.idle and self._rng.random() < self.idle):
                presenting = True
            self.valid.value = int(presenting)
            if presenting:
                self.payload.value = self.queue[0]
            await ReadOnly()
            self._taken = presenting and bool(self.ready.value)

    def stop(self):
        self._task.cancel()


class StreamMonitor:
    """Sink for stream ``name``: drives ready (random back-pressure when ``stall`` > 0) and
    records every transferred payload, sampled after ``ReadOnly``."""

    def __init__(self, dut, name: str, shape, *, stall: float = 0.0, seed: int = 1):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.shape, self.stall = shape, stall
        self.received = []
        self.cycles = []  # cycle number of every transfer
        self._rng = random.Random(seed)
        self.ready.value = 0
        self._cycle = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self._cycle += 1
            self.ready.value = int(not (self.stall and self._rng.random() < self.stall))
            await ReadOnly()
            if self.valid.value == 1 and self.ready.value == 1:
                self.received.append(unpack(self.shape, self.payload.value.to_unsigned()))
                self.cycles.append(self._cycle)

    def stop(self):
        self._task.cancel()


def crossed_flows(idle: float, stall: float) -> list[tuple[float, float]]:
    """The ``(idle, stall)`` settings a unit's testbench cycles through, one per sub-case (a
    driver's ``idle`` and a monitor's ``stall`` are read every cycle): with both set, both
    together, idle insertion alone and back-pressure alone, so one simulator build crosses
    them instead of pairing them; otherwise the one setting given."""
    return [(idle, stall), (idle, 0.0), (0.0, stall)] if idle and stall else [(idle, stall)]


async def wait_for(dut, cond, timeout: int, what: str = "outputs") -> int:
    """Wait until ``cond()`` holds, at most ``timeout`` cycles; return the cycles waited."""
    for n in range(timeout):
        if cond():
            return n
        await RisingEdge(dut.clk)
    raise AssertionError(f"timed out after {timeout} cycles waiting for {what}")
