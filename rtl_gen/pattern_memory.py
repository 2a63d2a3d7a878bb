"""PatternMemory: the pattern engine's pattern memories and the fetch of a window's word
(the engine's stage A; rtl_gen/pattern.py describes the formats)."""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["PatternMemory"]


class PatternMemory(wiring.Component):
    """The main pattern memory (``depth * slices`` memory words, each one slice of a
    ``word_bits`` word) and, with ``dw_depth > 0``, the depthwise pattern memory (``dw_depth``
    words of ``dw_word_bits``), both written through ``pattern_w`` (the depthwise one at the
    addresses from ``depth * slices`` on, from the low data bits). ``addr`` counts memory words
    (slices) in both.

    A window accepted (``accept``, its address on ``addr``) starts the fetch of its word:

    - main memory, the ``S`` memory words from ``addr`` on, one per cycle from the accept cycle
      on (a word may start at any memory word and its last slices may be the next word's:
      rtl_gen/pattern.py reads only the bits of the window's kernel and channels); slices
      ``0 .. S-2`` land in a staging register, the last stays on the read port, and
      ``fetched`` rises ``S`` cycles after the accept (one with one slice). A window with the
      address of the staged word (no write or ``flush`` since) is not fetched again.
    - depthwise mode (``dw`` with the accept): ``dw_slices`` words from ``addr`` on, one per
      cycle, each landing in its staging register the cycle after its read: ``fetched`` rises
      ``dw_slices + 1`` cycles after the accept, not again for the staged address.

    ``word`` (the main word) and ``dw_word`` (the staged depthwise words, word ``s`` at bit
    ``s * dw_word_bits``) hold until the next fetch. No window may be accepted while
    ``fetched`` is low (the engine's stage A is full then). ``fetched`` is a flip-flop;
    ``fetched_next`` is its value in the next cycle (the engine registers its ready from it)."""

    def __init__(self, *, word_bits: int, slices: int, depth: int, write_shape, dw_depth: int = 0,
                 dw_word_bits: int = 0, dw_max_slices: int = 1, addr_bits: int = 1):
        self._word_bits, self._S, self._depth = word_bits, slices, depth
        self._write_shape = write_shape
        self._dw_depth, self._dw_bits, self._ns = dw_depth, dw_word_bits, dw_max_slices
        super().__init__({
            "pattern_w": Out(WritePort.Signature(addr_width=ceil_log2(depth * slices + dw_depth),
                                                 shape=write_shape)),
            "addr": In(addr_bits), "accept": In(1), "flush": In(1),
            "dw": In(1), "dw_slices": In(range(1, dw_max_slices + 1), init=1),
            "word": Out(word_bits), "dw_word": Out(max(1, dw_max_slices * dw_word_bits)),
            "fetched": Out(1), "fetched_next": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        S, pa, pw = self._S, self.addr, self.pattern_w
        m.submodules.patterns = mem = Memory(shape=self._write_shape, depth=self._depth * S, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        DW = self._dw_depth > 0
        if DW:
            # the depthwise pattern memory: the write port's addresses after the main memory's
            main_words = self._depth * S
            WB, NS = self._dw_bits, self._ns
            m.submodules.dw_patterns = dmem = Memory(shape=WB, depth=self._dw_depth, init=[])
            drd, dwr = dmem.read_port(), dmem.write_port()
            in_main = Signal()
            m.d.comb += [
                in_main.eq(pw.addr < main_words),
                wr.addr.eq(pw.addr), wr.data.eq(pw.data), wr.en.eq(pw.en & in_main),
                dwr.addr.eq(pw.addr - main_words), dwr.data.eq(Value.cast(pw.data)[:WB]),
                dwr.en.eq(pw.en & ~in_main),
            ]
        else:
            wiring.connect(m, wiring.flipped(pw), wr)

        f_cnt = Signal(range(S + 1), init=S)      # slices read of the staged word
        # f_cnt == S as a flip-flop (its next value from the fetch's start and step)
        main_fetched = Signal(init=1)
        main_fetched_n = Signal()
        m.d.comb += main_fetched_n.eq(main_fetched)
        m.d.sync += main_fetched.eq(main_fetched_n)
        if S > 1:
            sw = len(Value.cast(rd.data))
            a_addr = Signal(len(pa))
            a_staged = Signal()
            a_slices = Signal(sw * (S - 1), reset_less=True)
            m.d.comb += self.word.eq(Cat(a_slices, rd.data)[:self._word_bits])
            # (the address does not wait on the accept decision, only the enable does)
            m.d.comb += [rd.addr.eq(Mux(main_fetched, pa, a_addr + f_cnt)),
                         rd.en.eq(0)]     # (a read port's enable defaults to 1)
            main_accept = self.accept & ~self.dw if DW else self.accept
            with m.If(main_accept & ~(a_staged & (pa == a_addr))):
                m.d.comb += [rd.en.eq(1), main_fetched_n.eq(0)]
                m.d.sync += [a_addr.eq(pa), f_cnt.eq(1), a_staged.eq(1)]
            with m.Elif(~main_fetched):
                m.d.comb += [rd.en.eq(1), main_fetched_n.eq(f_cnt == S - 1)]
                m.d.sync += f_cnt.eq(f_cnt + 1)
            # the slice read last cycle (f_cnt - 1) lands; all but the last are staged
            with m.If((f_cnt != 0) & ~main_fetched):
                m.d.sync += a_slices.word_select((f_cnt - 1)[:ceil_log2(S)], sw).eq(rd.data)
            with m.If(pw.en | self.flush):
                m.d.sync += a_staged.eq(0)
        else:
            m.d.comb += [self.word.eq(rd.data), rd.addr.eq(pa), rd.en.eq(self.accept)]

        if not DW:
            m.d.comb += [self.fetched.eq(main_fetched), self.fetched_next.eq(main_fetched_n)]
            return m
        d_cnt = Signal(range(NS + 1))        # words read of the staged depthwise word
        d_n = Signal(range(NS + 1))          # words it has
        d_land = Signal()                    # a word read last cycle lands now
        d_li = Signal(range(NS))
        d_addr = Signal(len(pa))
        d_staged = Signal()
        d_stage = [Signal(WB, name=f"dw_stage{s}", reset_less=True) for s in range(NS)]
        # (d_cnt == d_n) & ~d_land as a flip-flop: it falls as a fetch starts and rises the
        # cycle after its last word is read (then lands)
        dw_fetched = Signal(init=1)
        dw_fetched_n = Signal()
        m.d.comb += [dw_fetched_n.eq(d_cnt == d_n),
                     self.fetched.eq(main_fetched & dw_fetched),
                     self.fetched_next.eq(main_fetched_n & dw_fetched_n),
                     self.dw_word.eq(Cat(*d_stage))]
        m.d.sync += dw_fetched.eq(dw_fetched_n)
        m.d.comb += [drd.addr.eq(Mux(d_cnt == d_n, pa, d_addr + d_cnt)), drd.en.eq(0)]
        m.d.sync += d_land.eq(0)
        with m.If(self.accept & self.dw & ~(d_staged & (pa == d_addr) & (d_n == self.dw_slices))):
            m.d.comb += [drd.en.eq(1), dw_fetched_n.eq(0)]
            m.d.sync += [d_addr.eq(pa), d_cnt.eq(1), d_n.eq(self.dw_slices), d_staged.eq(1),
                         d_land.eq(1), d_li.eq(0)]
        with m.Elif(d_cnt != d_n):
            m.d.comb += [drd.en.eq(1), dw_fetched_n.eq(0)]
            m.d.sync += [d_cnt.eq(d_cnt + 1), d_land.eq(1), d_li.eq(d_cnt)]
        with m.If(d_land):
            with m.Switch(d_li):
                for s in range(NS):
                    with m.Case(s):
                        m.d.sync += d_stage[s].eq(drd.data)
        with m.If(pw.en | self.flush):
            m.d.sync += d_staged.eq(0)
        return m
