"""InputFeeder: the input image from the board's DRAM to the accelerator's input stream.

On a board with external memory the host link keeps the input image in DRAM (``WRITE_INPUT``
writes it at :attr:`sephw.arch.memmap.MemoryMap.input_base`), not in an on-chip buffer; the
accelerator's Program takes it, as everywhere, from its ``rx`` byte stream (LOAD
instructions, HWC order). This unit, started with the run, reads the image's DRAM words in
order and hands their bytes (low byte first) to ``rx``, one per cycle as the accelerator
takes them. It keeps at most ``buffer_words`` words requested ahead (in flight or buffered)
and never requests a word the image does not need, so a run that takes the whole image
leaves nothing in flight. ``start`` restarts it from the image's first byte.

Throughput: one byte per cycle while the DRAM returns a word per ``data_width / 8`` cycles
(16 on the Arty's 128-bit port; the DRAM's read latency is hidden behind the first row's
address computation, 19 cycles, when it is below about 15 cycles).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .dram import native_signature

__all__ = ["InputFeeder"]


class InputFeeder(wiring.Component):
    """``nbytes`` bytes from DRAM word ``base`` on to ``rx`` (see the module docstring).

    Attributes
    ----------
    start : In(1)
        A pulse: feed the image from its first byte.
    ext : Out(native_signature(data_width, addr_width))
        Reads only.
    rx : Out(stream.Signature(8))
    """

    def __init__(self, *, data_width: int, addr_width: int, base: int, nbytes: int, buffer_words: int = 4):
        check_int("data_width", data_width, 8)
        check_int("nbytes", nbytes, 1)
        check_int("base", base, 0, (1 << addr_width) - 1)
        check_int("buffer_words", buffer_words, 2)
        if data_width % 8 or (data_width // 8) & (data_width // 8 - 1):
            raise ValueError(f"data_width must be a power-of-two number of bytes, not {data_width}")
        self._dw, self._aw, self._base, self._nbytes, self._buf = data_width, addr_width, base, nbytes, buffer_words
        super().__init__({"start": In(1), "ext": Out(native_signature(data_width, addr_width)),
                          "rx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        W = self._dw // 8
        nwords = -(-self._nbytes // W)
        e = self.ext
        m.submodules.words = words = fifo.SyncFIFOBuffered(width=self._dw, depth=self._buf)
        asked = Signal(range(nwords + 1))             # words requested
        ahead = Signal(range(self._buf + 1))          # requested, not yet handed on in full
        sent = Signal(range(self._nbytes + 1))        # bytes handed on
        j = Signal(range(W))                          # byte within the FIFO's head word
        active = Signal()
        take = self.rx.valid & self.rx.ready
        word_done = take & ((j == W - 1) | (sent == self._nbytes - 1))
        m.d.comb += [e.cmd.valid.eq(active & (asked != nwords) & (ahead != self._buf)),
                     e.cmd.payload.addr.eq(self._base + asked), e.cmd.payload.we.eq(0),
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
            m.d.sync += [sent.eq(sent + 1), j.eq(0 if W == 1 else j + 1)]
            with m.If(word_done):
                m.d.sync += j.eq(0)
            with m.If(sent == self._nbytes - 1):
                m.d.sync += active.eq(0)
        with m.If(self.start):
            m.d.sync += [active.eq(1), asked.eq(0), sent.eq(0), j.eq(0)]
        return m
