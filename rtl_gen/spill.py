"""Spill: the accelerator's StoreDMA (``SPILL``): activation rows -> external memory.

A tensor that does not stay on chip between the layer that writes it and the layers that
read it (the compiler's spill cuts, docs/isa.md "Memory placement") is written to the
board's DRAM band by band as its rows are produced, and read back into a ring by ``LOAD``
(:class:`~rtl_gen.inputfeed.InputFeeder`). ``SPILL`` copies rows ``[row0, row0 + rows)`` of
tensor ``src`` from its ring to the DRAM bytes from ``ext_addr`` on (row ``row0 + k`` at
``ext_addr + k * width * channels``: the tensor's rows packed, HWC).

Each row is cut into ``chunk``-byte pieces aligned in DRAM (``chunk`` = min(activation
banks, DRAM word bytes), both powers of two): one activation-memory vector read per piece
(:class:`~rtl_gen.actmem.ActivationMemory` returns ``banks`` consecutive bytes from any
address), written as one DRAM word with only the row's bytes enabled (a piece that straddles
two rows is written twice, each time with its own row's bytes). Words leave on ``w`` (word
address, data, byte enables); a write stream, not a native port, so the top's arbiter
(:class:`~rtl_gen.extport.ExtPort`) offers each word's command and data together.

Latency / throughput (``hw.spill_cycles``): one RowAddress (19 cycles) for the first row,
then per row one cycle to set up and one cycle per piece while ``w`` takes a word per
cycle; ``done`` once the last piece's word has been taken. A piece's read waits while four
words wait in the (8-word) output FIFO, so back-pressure on ``w`` stalls it without losing a
read.

A row that would end past the external memory's end (``ext_bytes``; the word address would
wrap onto other data) is not written: the rows before it are, then ``done`` comes with
``error`` (the top stops with its error flag). The check sits in the row's set-up cycle: no
cycle is added.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from sephw.arch import isa
from sephw.arch.config import spill_chunk
from sephw.arch.formats import TENSOR_DESC

from .arith import check_int
from .rowaddr import ROW_PORT, drive_row, ring_step, row_bytes_reg

__all__ = ["Spill", "write_layout"]


def write_layout(data_width: int, addr_width: int) -> data.StructLayout:
    """One DRAM word write: word ``addr``, ``data``, byte enables ``we``."""
    return data.StructLayout({"addr": addr_width, "data": data_width, "we": data_width // 8})


class Spill(wiring.Component):
    """Activation rows -> DRAM words (see the module docstring).

    Parameters
    ----------
    banks : int
        The activation memory's banks (bytes per vector read).
    data_width, addr_width : int
        The DRAM port's word bits and word-address bits.
    ext_bytes : int, optional
        The external memory's bytes (default: what ``addr_width`` addresses).

    Attributes
    ----------
    start : In(1), done : Out(1)
    error : Out(1)
        With ``done``: a row past ``ext_bytes`` was refused.
    ins : In(isa.WORD layout)
        ``row0``, ``rows``, ``ext_addr`` (byte address of row ``row0``).
    src : In(TENSOR_DESC layout)
    row : Out(ROW_PORT)
        The shared RowAddress.
    raddr, raddr_nb : Out(32)
        The activation memory's vector read (zero when not reading).
    rvec : In(ArrayLayout(8, banks))
    w : Out(stream.Signature(write_layout(data_width, addr_width)))
    """

    def __init__(self, *, banks: int, data_width: int, addr_width: int, ext_bytes: int | None = None):
        check_int("banks", banks, 1)
        check_int("data_width", data_width, 8)
        check_int("addr_width", addr_width, 1)
        exact_log2(banks)
        exact_log2(data_width // 8)
        self._nb, self._dw, self._aw = banks, data_width, addr_width
        self._ext_bytes = (data_width // 8) << addr_width if ext_bytes is None else ext_bytes
        check_int("ext_bytes", self._ext_bytes, 1)
        self._chunk = spill_chunk(banks, data_width)
        super().__init__({
            "start": In(1), "done": Out(1), "error": Out(1),
            "ins": In(isa.WORD.layout()), "src": In(TENSOR_DESC.layout()),
            "row": Out(ROW_PORT),
            "raddr": Out(32), "raddr_nb": Out(32),
            "rvec": In(data.ArrayLayout(8, banks)),
            "w": Out(stream.Signature(write_layout(data_width, addr_width))),
        })

    def elaborate(self, platform):
        m = Module()
        ins, sd = self.ins, self.src
        S, W, NB = self._chunk, self._dw // 8, self._nb
        LS, LW = exact_log2(S), exact_log2(W)
        lay = write_layout(self._dw, self._aw)
        m.submodules.out = out = fifo.SyncFIFOBuffered(width=lay.size, depth=8)
        m.d.comb += [self.w.payload.eq(out.r_data), self.w.valid.eq(out.r_rdy), out.r_en.eq(self.w.ready)]

        rb = row_bytes_reg(m, sd, "rb")
        y_left = Signal(16)             # rows still to start
        idx, rowb = Signal(16, name="idx"), Signal(32, name="rowb")    # the row's ring index and byte address
        dram = Signal(32)               # DRAM byte address of the row's first byte
        a = Signal(32)                  # activation byte address of the piece being read
        e = Signal(signed(33))          # its first byte's offset in the row (negative: before it)
        d = Signal(32)                  # its DRAM byte address (a multiple of S)
        last = Signal()                 # this piece is the row's last
        pend = Signal()                 # a read was issued last cycle: its vector is on rvec
        pe, pd = Signal(signed(33), name="pe"), Signal(32, name="pd")   # that read's e and d

        # the vector read last cycle -> its DRAM word into the FIFO
        lanes = Cat(*[self.rvec[i] for i in range(S)])
        valid = Cat(*[(pe + i >= 0) & (pe + i < rb) for i in range(S)])
        word = lay(out.w_data)
        lane = pd[LS:LW] if LW > LS else Const(0, 1)
        m.d.comb += [out.w_en.eq(pend), word.addr.eq(pd >> LW),
                     word.data.eq(lanes << (lane * (8 * S))), word.we.eq(valid << (lane * S))]

        issue = Signal()
        m.d.sync += pend.eq(issue)
        with m.If(issue):
            m.d.comb += [self.raddr.eq(a), self.raddr_nb.eq(a + NB)]
            m.d.sync += [pe.eq(e), pd.eq(d), a.eq(a + S), e.eq(e + S), d.eq(d + S),
                         last.eq(e + 2 * S >= rb)]

        bad = Signal()                  # a row past the external memory's end: refused
        with m.FSM(name="spill"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [y_left.eq(ins.rows), dram.eq(ins.ext_addr), bad.eq(0)]
                    with m.If(ins.rows == 0):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "ROW"
            with m.State("ROW"):
                drive_row(m, self.row, ins.row0, sd)
                m.next = "ROW2"
            with m.State("ROW2"):
                with m.If(~self.row.busy):
                    m.d.sync += [idx.eq(self.row.rem), rowb.eq(self.row.addr)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                # the row's first piece: the DRAM-aligned S bytes holding its first byte
                off = dram[:LS] if LS else Const(0, 1)
                m.d.sync += [a.eq(rowb - off), e.eq(-off), d.eq(dram - off),
                             last.eq(S - off >= rb), y_left.eq(y_left - 1)]
                with m.If(dram + rb > self._ext_bytes):
                    m.d.sync += bad.eq(1)
                    m.next = "DRAIN"
                with m.Else():
                    m.next = "PIECES"
            with m.State("PIECES"):
                m.d.comb += issue.eq(out.level < 4)
                with m.If(issue & last):
                    nidx, naddr = ring_step(idx, rowb, sd, rb)
                    m.d.sync += [idx.eq(nidx), rowb.eq(naddr), dram.eq(dram + rb)]
                    with m.If(y_left == 0):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "SETUP"
            with m.State("DRAIN"):
                with m.If(~pend & (out.level == 0)):
                    m.d.comb += [self.done.eq(1), self.error.eq(bad)]
                    m.next = "IDLE"
        return m
