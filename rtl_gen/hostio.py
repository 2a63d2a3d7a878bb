"""Load and Store: the host link's byte streams <-> the accelerator's memories.

- :class:`Load` (``LOAD``): input rows from ``rx`` (HWC codes) into the destination tensor's
  ring. Latency: one RowAddress (19 cycles) per row, then one byte per cycle as ``rx``
  delivers (``rows * (19 + width * channels) + 1`` cycles when ``rx`` never stalls).
- :class:`Store` (``STORE``): ``length`` bytes of the logit memory (int64, little-endian) on
  ``tx``. Throughput: one byte per two cycles (``2 * length + 1`` when ``tx`` never stalls).

Each raises ``done`` (one cycle) in its last cycle; ``start`` is a one-cycle pulse with the
instruction (and descriptors) held until ``done``.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib.memory import Memory
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC

from .arith import check_int
from .rowaddr import ROW_PORT, drive_row, row_bytes_reg

__all__ = ["Load", "Store", "host_writes"]


def host_writes(m: Module, boot, host_w, booting_out):
    """The accelerator top's memory writes: ``host_w``'s (payload, valid), or, with baked
    ``boot`` writes (``(mem, addr, word)``), a boot ROM's replayed through the same path after
    reset first (``booting_out`` high meanwhile; ``host_w`` is not taken). Returns the write
    and its valid, both Signals the caller may override (the LoadUnit's DMA words)."""
    lay = host_w.payload.shape()
    hw_, hv = Signal(lay, name="hw_"), Signal(name="hv")
    if not boot:
        m.d.comb += [hw_.eq(host_w.payload), hv.eq(host_w.valid)]
        return hw_, hv
    words = [lay.const({"mem": sel, "addr": a, "data": w}).as_value().value for sel, a, w in boot]
    m.submodules.boot_rom = rom = Memory(shape=lay.size, depth=len(words), init=words)
    rom_r = rom.read_port()
    idx = Signal(range(len(words) + 1))
    fetched = Signal()
    m.d.comb += [rom_r.addr.eq(idx), rom_r.en.eq(1)]
    booting = Signal(init=1)
    m.d.comb += booting_out.eq(booting)
    with m.If(booting):
        m.d.sync += fetched.eq(idx < len(words))
        with m.If(idx < len(words)):
            m.d.sync += idx.eq(idx + 1)
        with m.Elif(~fetched):
            m.d.sync += booting.eq(0)
    m.d.comb += [hw_.eq(Mux(fetched, rom_r.data, host_w.payload)), hv.eq(fetched | (host_w.valid & ~booting))]
    return hw_, hv


class Load(wiring.Component):
    """Host bytes -> activation memory (see the module docstring).

    Attributes
    ----------
    start : In(1), done : Out(1)
    ins : In(isa.WORD layout)
        ``row0``, ``rows``.
    dst : In(TENSOR_DESC layout)
    rx : In(stream.Signature(8))
    row : Out(ROW_PORT)
        The shared RowAddress.
    waddr : Out(32), wdata : Out(8), wen : Out(1)
        One activation byte per cycle (zero when not writing).
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "done": Out(1),
            "ins": In(isa.WORD.layout()), "dst": In(TENSOR_DESC.layout()),
            "rx": In(stream.Signature(8)),
            "row": Out(ROW_PORT),
            "waddr": Out(32), "wdata": Out(8), "wen": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ins, dd = self.ins, self.dst
        y = Signal(16)
        e = Signal(32)
        rowb = Signal(32)
        # the end row and a row's last byte offset, following the instruction and descriptor
        # (which are set by the cycle of start; used from the cycle after): no adder or
        # multiplier in front of the compares
        y_end, e_last = Signal(16, name="y_end"), Signal(32, name="e_last")
        row_end = Signal()          # y == y_end, registered as y moves (ROW's decision)
        rb = row_bytes_reg(m, dd, "rb")
        m.d.sync += [y_end.eq(ins.row0 + ins.rows), e_last.eq(rb - 1)]
        with m.FSM(name="load"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [y.eq(ins.row0), row_end.eq(ins.rows == 0)]
                    m.next = "ROW"
            with m.State("ROW"):
                with m.If(row_end):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    drive_row(m, self.row, y, dd)
                    m.next = "ROW2"
            with m.State("ROW2"):
                with m.If(~self.row.busy):
                    m.d.sync += [rowb.eq(self.row.addr), e.eq(0)]
                    m.next = "BYTE"
            with m.State("BYTE"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.comb += [self.waddr.eq(rowb + e), self.wdata.eq(self.rx.payload), self.wen.eq(1)]
                    m.d.sync += e.eq(e + 1)
                    with m.If(e == e_last):
                        m.d.sync += [y.eq(y + 1), row_end.eq(y + 1 == y_end)]
                        m.next = "ROW"
        return m


class Store(wiring.Component):
    """Logit memory -> host bytes (see the module docstring).

    Attributes
    ----------
    start : In(1), done : Out(1)
    ins : In(isa.WORD layout)
        ``length`` (bytes).
    logit_addr : Out(range(depth)), logit : In(signed(64))
        The logit memory's read port (one cycle latency).
    tx : Out(stream.Signature(8))
    """

    def __init__(self, depth: int):
        check_int("depth", depth, 2)
        self._depth = depth
        super().__init__({
            "start": In(1), "done": Out(1),
            "ins": In(isa.WORD.layout()),
            "logit_addr": Out(max(1, ceil_log2(depth))), "logit": In(signed(64)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        e = Signal(32)
        m.d.comb += self.logit_addr.eq(e >> 3)
        with m.FSM(name="store"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += e.eq(0)
                    m.next = "RD"
            with m.State("RD"):
                with m.If(e == self.ins.length):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "TX"
            with m.State("TX"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(self.logit.word_select(e[:3], 8))]
                with m.If(self.tx.ready):
                    m.d.sync += e.eq(e + 1)
                    m.next = "RD"
        return m
