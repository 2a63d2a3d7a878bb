"""LoadDMA and StoreDMA: words between external memory (LiteDRAM's native port,
:func:`rtl_gen.dram.native_signature`) and an on-chip memory (issue 15).

An on-chip word of ``word_bits`` is ``beats = ceil(word_bits / data_width)`` consecutive
external words, low bits first (a word's last beat zero-padded in external memory). A
command moves ``words`` on-chip words between external word address ``ext_addr`` (in
``data_width`` words) and on-chip word address ``onchip``; a command whose external range
ends beyond ``ext_words`` is refused: ``done`` with ``error`` set, nothing moved.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import check_int
from .dram import native_signature

__all__ = ["LoadDMA", "StoreDMA", "dma_command_layout"]


def dma_command_layout(onchip_addr_bits: int) -> data.StructLayout:
    """A DMA command: ``ext_addr`` (external words), ``words`` (on-chip words), ``onchip``
    (the first on-chip word)."""
    return data.StructLayout({"ext_addr": 32, "words": 32, "onchip": onchip_addr_bits})


class _DMA(wiring.Component):
    """What LoadDMA and StoreDMA share: the command port, the external port, ``done``,
    ``error`` (the last command was refused), ``busy``; ``onchip_port(addr_bits, shape)`` gives
    the on-chip memory's port member."""

    def __init__(self, onchip_port, *, data_width: int, addr_width: int, word_bits: int,
                 onchip_depth: int, ext_words: int):
        check_int("data_width", data_width, 8)
        check_int("word_bits", word_bits, 1)
        check_int("onchip_depth", onchip_depth, 1)
        check_int("ext_words", ext_words, 1)
        self._dw, self._aw, self._wb = data_width, addr_width, word_bits
        self._beats = -(-word_bits // data_width)
        self._ext_words, self._depth = ext_words, onchip_depth
        self._oab = max(1, ceil_log2(onchip_depth))
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(self._oab))),
            "ext": Out(native_signature(data_width, addr_width)),
            "done": Out(1), "error": Out(1), "busy": Out(1),
            "onchip": onchip_port(self._oab, word_bits),
        })

    beats = property(lambda self: self._beats, doc="External words per on-chip word.")

    def _start(self, m, ext: Signal, left: Signal, oaddr: Signal):
        """Take a command when idle: its beats, first external word and on-chip word; refuse
        it (``done`` + ``error``) when its external range ends beyond ``ext_words``."""
        c = self.cmd.payload
        m.d.comb += self.cmd.ready.eq(~self.busy)
        m.d.sync += self.done.eq(0)
        beats = c.words * self._beats
        with m.If(self.cmd.valid & ~self.busy):
            m.d.sync += [ext.eq(c.ext_addr), oaddr.eq(c.onchip), left.eq(beats)]
            with m.If((c.ext_addr + beats > self._ext_words) | (c.words == 0)):
                m.d.sync += [self.done.eq(1), self.error.eq(c.words != 0)]
            with m.Else():
                m.d.sync += [self.busy.eq(1), self.error.eq(0)]


class LoadDMA(_DMA):
    """External memory -> an on-chip memory's write port ``onchip`` (``word_bits`` data).

    Read commands go out one per cycle while the port takes them (as many in flight as the
    controller allows); read data is always taken and shifted into the word being assembled,
    which is written when its last beat lands: one word per ``beats`` cycles at the port's
    full rate. ``done`` pulses in the cycle after the last word is written."""

    def __init__(self, **kw):
        super().__init__(lambda a, w: In(WritePort.Signature(addr_width=a, shape=w)), **kw)

    def elaborate(self, platform):
        m = Module()
        B, DW = self._beats, self._dw
        ext, issue_left, land_left = Signal(32, name="ext"), Signal(40, name="issue_left"), Signal(40, name="land_left")
        waddr = Signal(self._oab)
        self._start(m, ext, issue_left, waddr)
        with m.If(self.cmd.valid & ~self.busy):
            m.d.sync += land_left.eq(self.cmd.payload.words * B)
        e = self.ext
        m.d.comb += [e.cmd.payload.addr.eq(ext), e.cmd.payload.we.eq(0),
                     e.cmd.valid.eq(self.busy & (issue_left != 0)), e.rdata.ready.eq(1)]
        with m.If(e.cmd.valid & e.cmd.ready):
            m.d.sync += [ext.eq(ext + 1), issue_left.eq(issue_left - 1)]
        # assembly: beats shift in from the top (the last beat lands in the top bits)
        asm = Signal(B * DW)
        beat = Signal(range(B))
        word = (asm >> DW) | (e.rdata.payload << (B - 1) * DW)      # with the landing beat on top
        w = self.onchip
        m.d.comb += [w.addr.eq(waddr), w.data.eq(word[:self._wb])]
        with m.If(self.cmd.valid & ~self.busy):
            m.d.sync += beat.eq(0)
        with m.If(e.rdata.valid & self.busy):
            m.d.sync += [asm.eq(word), land_left.eq(land_left - 1)]
            if B > 1:
                m.d.sync += beat.eq(Mux(beat == B - 1, 0, beat + 1))
            with m.If(beat == B - 1):
                m.d.comb += w.en.eq(1)
                m.d.sync += waddr.eq(waddr + 1)
            with m.If(land_left == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m


class StoreDMA(_DMA):
    """An on-chip memory's read port ``onchip`` (one cycle of read latency) -> external memory.

    On-chip words are read ahead into a three-word FIFO; the head word's beats go one a cycle
    into a queue of ``queue_depth`` beats, whose head is the write data (``wdata.valid`` while
    the queue holds a beat; full byte enables). A write command goes out only for a beat
    already in the queue: ``cmd.valid`` while the queue holds a beat whose command has not been
    taken yet. The queue then always holds every beat whose command was taken, in order, so
    ``wdata.valid`` is high in every cycle a write command is offered and in every cycle an
    accepted command's beat waits to be taken: right for a controller that takes a beat in
    any cycle with ``wdata.ready``, whether ``wdata.valid`` is high or not (LiteDRAM's
    crossbar; :class:`litedram.frontend.dma.LiteDRAMDMAWriter` likewise queues a command's
    data as the command is taken), and for one that takes a command's beat with it (the
    behavioural :class:`~rtl_gen.extmem.ExtMemoryModel`).

    Throughput: one beat (command and write data) per cycle, the port's full rate, while the
    controller takes them and the queue has room (it holds the beats of the commands the
    controller has taken but not their data, and those not yet offered: the full rate as long
    as the controller takes a command's beat within about ``queue_depth - 2`` cycles of the
    command). The first command is offered 3 cycles after ``busy`` rises (the on-chip read, the
    read-ahead FIFO, the queue). Measured (sim/tb_dma.py): 64 beats in 68 cycles on the
    behavioural model; on LiteDRAM's simulation cores 64 beats in 77-78 cycles on the ULX3S
    (16-bit SDR) and 86 on the Arty (128-bit DDR3), more with a refresh in between; the same
    with a queue of 8 to 32 beats (the controller's own rate). ``done`` pulses after the last
    command and beat are taken (LiteDRAM then has them; a later read returns them)."""

    queue_depth = 16        # beats (write data) queued; LUT RAM, ``data_width`` bits wide

    def __init__(self, **kw):
        super().__init__(lambda a, w: In(ReadPort.Signature(addr_width=a, shape=w)), **kw)

    def elaborate(self, platform):
        m = Module()
        B, DW, D = self._beats, self._dw, self.queue_depth
        ext = Signal(32)
        left = Signal(40)               # write commands (beats) not yet taken
        raddr = Signal(self._oab)
        self._start(m, ext, left, raddr)
        start = self.cmd.valid & ~self.busy
        e = self.ext
        # on-chip words read ahead into a small FIFO (reads go out while it has room for them
        # and the one in flight); first-word-fall-through, so a word lands and is seen at once
        m.submodules.ahead = ahead = fifo.SyncFIFO(width=self._wb, depth=3)
        words_left = Signal(32)          # on-chip words not yet read
        reading = Signal()
        with m.If(start):
            m.d.sync += words_left.eq(self.cmd.payload.words)
        want = self.busy & (words_left != 0) & (ahead.level + reading < 3)
        r = self.onchip
        m.d.comb += [r.addr.eq(raddr), r.en.eq(1), ahead.w_data.eq(r.data), ahead.w_en.eq(reading)]
        m.d.sync += reading.eq(want)
        with m.If(want):
            m.d.sync += [raddr.eq(raddr + 1), words_left.eq(words_left - 1)]
        # the head word's beats, low first, one a cycle into the beat queue
        m.submodules.queue = q = fifo.SyncFIFO(width=DW, depth=D)
        word = Signal(B * DW)
        j = Signal(range(B))            # the head word's next beat
        m.d.comb += [word.eq(ahead.r_data), q.w_data.eq(word.word_select(j, DW)),
                     q.w_en.eq(self.busy & ahead.r_rdy)]
        push = q.w_en & q.w_rdy
        with m.If(push & (j == B - 1)):
            m.d.comb += ahead.r_en.eq(1)
        if B > 1:
            with m.If(push):
                m.d.sync += j.eq(Mux(j == B - 1, 0, j + 1))
        with m.If(start):
            m.d.sync += j.eq(0)
        # a command only for a beat in the queue (``unsent``: queued beats without a command);
        # the queue's head is the oldest taken command's beat (or the next command's)
        unsent = Signal(range(D + 1))
        dat_left = Signal(40)           # beats not yet taken
        with m.If(start):
            m.d.sync += dat_left.eq(self.cmd.payload.words * B)
        m.d.comb += [e.cmd.payload.addr.eq(ext), e.cmd.payload.we.eq(1),
                     e.cmd.valid.eq(self.busy & (unsent != 0)),
                     e.wdata.payload.data.eq(q.r_data), e.wdata.payload.we.eq((1 << (DW // 8)) - 1),
                     e.wdata.valid.eq(self.busy & q.r_rdy), q.r_en.eq(self.busy & e.wdata.ready),
                     e.rdata.ready.eq(1)]
        cmd_go = e.cmd.valid & e.cmd.ready
        dat_go = e.wdata.valid & e.wdata.ready
        m.d.sync += unsent.eq(unsent + push - cmd_go)
        with m.If(start):
            m.d.sync += unsent.eq(0)
        with m.If(cmd_go):
            m.d.sync += [ext.eq(ext + 1), left.eq(left - 1)]
        with m.If(dat_go):
            m.d.sync += dat_left.eq(dat_left - 1)
        # the end: every command and every beat taken
        with m.If(self.busy & (left - cmd_go == 0) & (dat_left - dat_go == 0)):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
