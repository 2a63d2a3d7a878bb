"""InputFeeder: the LoadDMA's activation path: DRAM bytes to the accelerator's ``LOAD``.

On a board with external memory the accelerator takes every ``LOAD``'s rows from the board's
DRAM, not from the host link: the input image (``WRITE_INPUT`` writes it at
:attr:`sephw.arch.memmap.MemoryMap.input_base`) and the rows of spilled tensors (written by
``SPILL``, :mod:`rtl_gen.spill`). ``start`` (with the ``LOAD``) gives a byte address and a
byte count; this unit reads the DRAM words that hold them, in order, and hands their bytes
on ``rx`` (low byte first, from the address's byte within its word), one per cycle as the
Load unit takes them. It keeps at most ``buffer_words`` words requested ahead (in flight or
buffered) and never requests a word the bytes do not need, so a ``LOAD`` that takes its
bytes leaves nothing in flight.

Throughput: one byte per cycle while the DRAM returns a word per ``data_width / 8`` cycles
(16 on the Arty's 128-bit port, 2 on the ULX3S's 16-bit one; the DRAM's read latency is
hidden behind the first row's address computation, 19 cycles, when it is below about 15
cycles). For that the words requested ahead cover :data:`AHEAD_CYCLES` cycles of bytes
(``buffer_words`` by default, at least 4): the read latency, the port's arbitration and the
FIFO between them. With 4 words on the 16-bit port a LOAD took 1.77 cycles per byte (the
32×32 input image of the SEP-Net test: 5,447 cycles where the cycle model has 3,687).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from amaranth.utils import exact_log2

from .arith import check_int
from .dram import native_signature

__all__ = ["InputFeeder", "AHEAD_CYCLES"]

# cycles of bytes the words requested ahead cover (the default ``buffer_words``)
AHEAD_CYCLES = 32


class InputFeeder(wiring.Component):
    """``nbytes`` bytes from DRAM byte ``addr`` on to ``rx`` (see the module docstring).

    Attributes
    ----------
    start : In(1)
        A pulse: feed the bytes ``[addr, addr + nbytes)`` (sampled in this cycle), once the
        last ``start``'s bytes have all been taken.
    addr, nbytes : In(32)
    ext : Out(native_signature(data_width, addr_width))
        Reads only.
    rx : Out(stream.Signature(8))
    """

    def __init__(self, *, data_width: int, addr_width: int, buffer_words: int | None = None):
        check_int("data_width", data_width, 8)
        if data_width % 8 or (data_width // 8) & (data_width // 8 - 1):
            raise ValueError(f"data_width must be a power-of-two number of bytes, not {data_width}")
        if buffer_words is None:
            buffer_words = max(4, AHEAD_CYCLES // (data_width // 8))
        check_int("buffer_words", buffer_words, 2)
        self._dw, self._aw, self._buf = data_width, addr_width, buffer_words
        super().__init__({"start": In(1), "addr": In(32), "nbytes": In(32),
                          "ext": Out(native_signature(data_width, addr_width)),
                          "rx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        W = self._dw // 8
        LW = exact_log2(W)
        e = self.ext
        m.submodules.words = words = fifo.SyncFIFOBuffered(width=self._dw, depth=self._buf)
        base = Signal(32)                             # the first word
        nwords = Signal(32)                           # words holding the bytes
        asked = Signal(32)                            # words requested
        ahead = Signal(range(self._buf + 1))          # requested, not yet handed on in full
        left = Signal(32)                             # bytes still to hand on
        j = Signal(range(W))                          # byte within the FIFO's head word
        active = Signal()
        take = self.rx.valid & self.rx.ready
        word_done = take & ((j == W - 1) | (left == 1))
        m.d.comb += [e.cmd.valid.eq(active & (asked != nwords) & (ahead != self._buf)),
                     e.cmd.payload.addr.eq(base + asked), e.cmd.payload.we.eq(0),
                     e.rdata.ready.eq(words.w_rdy),
                     words.w_data.eq(e.rdata.payload), words.w_en.eq(e.rdata.valid),
                     self.rx.valid.eq(active & words.r_rdy),
                     self.rx.payload.eq(words.r_data.word_select(j, 8)),
                     words.r_en.eq(word_done)]
        asking = e.cmd.valid & e.cmd.ready
        m.d.sync += ahead.eq(ahead + asking - word_done)
        with m.If(asking):
            m.d.sync += asked.eq(asked + 1)
        with m.If(take):
            m.d.sync += [left.eq(left - 1), j.eq(0 if W == 1 else j + 1)]
            with m.If(word_done):
                m.d.sync += j.eq(0)
            with m.If(left == 1):
                m.d.sync += active.eq(0)
        with m.If(self.start):
            lo = self.addr[:LW] if LW else 0
            m.d.sync += [active.eq(self.nbytes != 0), asked.eq(0), left.eq(self.nbytes), j.eq(lo),
                         base.eq(self.addr >> LW), nwords.eq((self.addr[:LW] + self.nbytes + W - 1) >> LW if LW
                                                            else self.nbytes)]
        return m
