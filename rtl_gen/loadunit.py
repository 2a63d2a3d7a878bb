"""LoadUnit: the accelerator top's ``DMA_LOAD`` unit (issue 15): a queue of load commands in
front of a :class:`~rtl_gen.dma.LoadDMA`, and the load -> compute dependency tokens.

The sequencer pushes a ``DMA_LOAD``'s command and goes on with the next instruction while
the load runs (the Program prefetches the next tile's words into the other half of a
ping-pong buffer while the engines compute on this one). A command with ``signal`` set adds
a token when its last word is written; an instruction with ``DEP_WAIT_PREV`` takes one
before it starts (it waits in ``DISPATCH`` while there is none), so it never reads a buffer
half before its words have landed (TVM VTA's load -> compute token queue).

Latency / throughput (the compiler's cycle model, sephw/compiler/top_model.py):
- a push is taken in the cycle it is offered while the queue has room (``depth``
  commands); the LoadDMA takes it 2 cycles later (the queue's buffered output) or in the
  cycle of the previous command's ``done``, whichever is later;
- LoadDMA: a read command per cycle from the cycle after it takes the command, the data
  ``latency`` behind, a word written as its last beat lands, ``done`` the cycle after;
- a token counts from the cycle after that ``done``.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sephw.arch.isa import LOAD_QUEUE_DEPTH

from .dma import LoadDMA
from .dram import native_signature

__all__ = ["LoadUnit", "load_command_layout"]


def load_command_layout(onchip_addr_bits: int) -> data.StructLayout:
    """A queued load: the LoadDMA's command (``ext_addr``, ``words``, ``onchip``), the
    destination memory's select (``mem``) and whether its end adds a token (``signal``)."""
    return data.StructLayout({"ext_addr": 32, "words": 32, "onchip": onchip_addr_bits, "mem": 3, "signal": 1})


class LoadUnit(wiring.Component):
    """Queued DMA loads into the host-writable memories, with dependency tokens.

    Parameters
    ----------
    data_width, addr_width : int
        The external memory port (LiteDRAM's native port, user side).
    word_bits, onchip_depth, ext_words : int
        As :class:`~rtl_gen.dma.LoadDMA` (the widest memory's word, the address space of the
        host-write path, the external memory's words).
    depth : int
        Commands the queue holds.

    Attributes
    ----------
    push : In(stream of load_command_layout)
        A ``DMA_LOAD`` from the sequencer.
    ext : Out(native_signature)
    w_en, w_mem, w_addr, w_data : Out
        The word being written, for the top's host-write path (``w_en`` one cycle per word).
    busy : Out(1)
        A command queued or running (the host's writes wait).
    token : Out(1), take : In(1)
        A token is there; take one (with ``token`` only).
    error : Out(1)
        A command was refused (its external range ends past ``ext_words``); sticky until
        ``clear``.
    clear : In(1)
        The start of an inference: tokens and ``error`` back to zero.
    """

    TOKEN_BITS = 4

    def __init__(self, *, data_width: int, addr_width: int, word_bits: int, onchip_depth: int,
                 ext_words: int, depth: int = LOAD_QUEUE_DEPTH):
        self._dma = LoadDMA(data_width=data_width, addr_width=addr_width, word_bits=word_bits,
                            onchip_depth=onchip_depth, ext_words=ext_words)
        self._oab = max(1, ceil_log2(onchip_depth))
        self._depth, self._wb = depth, word_bits
        super().__init__({
            "push": In(stream.Signature(load_command_layout(self._oab))),
            "ext": Out(native_signature(data_width, addr_width)),
            "w_en": Out(1), "w_mem": Out(3), "w_addr": Out(self._oab), "w_data": Out(word_bits),
            "busy": Out(1), "token": Out(1), "take": In(1), "error": Out(1), "clear": In(1),
        })

    beats = property(lambda self: self._dma.beats, doc="External words per on-chip word.")

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self._dma
        lay = load_command_layout(self._oab)
        m.submodules.queue = q = fifo.SyncFIFOBuffered(width=lay.size, depth=self._depth)
        wiring.connect(m, dma.ext, wiring.flipped(self.ext))
        m.d.comb += [q.w_data.eq(self.push.payload), q.w_en.eq(self.push.valid), self.push.ready.eq(q.w_rdy)]
        head = lay(q.r_data)
        c = dma.cmd.payload
        m.d.comb += [c.ext_addr.eq(head.ext_addr), c.words.eq(head.words), c.onchip.eq(head.onchip),
                     dma.cmd.valid.eq(q.r_rdy), q.r_en.eq(dma.cmd.ready)]
        mem, signal = Signal(3, name="mem"), Signal(name="signal")
        with m.If(dma.cmd.valid & dma.cmd.ready):
            m.d.sync += [mem.eq(head.mem), signal.eq(head.signal)]
        w = dma.onchip
        m.d.comb += [self.w_en.eq(w.en), self.w_mem.eq(mem), self.w_addr.eq(w.addr), self.w_data.eq(w.data),
                     self.busy.eq(q.r_rdy | dma.busy)]
        tokens = Signal(self.TOKEN_BITS)
        add = dma.done & ~dma.error & signal
        m.d.comb += self.token.eq(tokens != 0)
        m.d.sync += tokens.eq(tokens + add - (self.take & self.token))
        with m.If(dma.done & dma.error):
            m.d.sync += self.error.eq(1)
        with m.If(self.clear):
            m.d.sync += [tokens.eq(0), self.error.eq(0)]
        return m
