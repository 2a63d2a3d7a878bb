"""The activation memory: ``banks`` byte-wide block RAMs read as one vector.

Byte ``a`` lives in bank ``a mod banks``, so one read returns ``banks`` consecutive bytes
(one window tap of pe_cin channels, a MAC beat of mac_cols channels, or the skip codes of a
tile) from any byte address. Latency: ``rvec`` holds bytes ``[A, A + banks)`` of the address
``A`` on ``raddr`` the cycle before (one cycle). The reader also gives ``A + banks`` on
``raddr_nb`` (from its own registers: no adder behind its address multiplexer): the banks
below ``A mod banks`` read the row after ``A``'s, and their row address is then a choice
between two ready values, not an incrementer after the reader's address logic (timing). A
reader of byte 0 alone (bank ``A mod banks``, which reads ``A``'s row) may leave it zero.
Throughput: one vector read and one write per cycle; a write stores byte 0 at ``waddr``
and, with ``wen[u]`` (``u`` < ``units``, only at a ``units``-aligned ``waddr``), byte ``u``
at ``waddr + u``: the writer's ``pp_units`` bytes per cycle without per-bank address logic.

Several units read (Gather, PoolFC) and write (Load, Writer) the memory, one at a time in
the in-order overlay; each drives its address lines with zero when it is not accessing, and
the top ORs them.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

__all__ = ["ActivationMemory"]


class ActivationMemory(wiring.Component):
    """``banks`` (a power of two) byte banks of ``depth`` bytes each; see the module docstring.

    Attributes
    ----------
    raddr : In(32)
        Byte address of this cycle's vector read.
    raddr_nb : In(32)
        ``raddr + banks`` (only bytes 1.. of the vector use it).
    rvec : Out(ArrayLayout(8, banks))
        Bytes ``[A, A + banks)`` of last cycle's ``raddr`` ``A``.
    waddr : In(32), wdata : In(ArrayLayout(8, units)), wen : In(units)
        One write per cycle: byte 0 at ``waddr`` (``wen[0]``), bytes ``u >= 1`` at
        ``waddr + u`` (``wen[u]``, ``waddr`` a multiple of ``units``).
    """

    def __init__(self, banks: int, depth: int, units: int = 1):
        exact_log2(banks)
        exact_log2(units)
        if units > banks:
            raise ValueError(f"units ({units}) must not exceed banks ({banks})")
        self._banks, self._depth, self._units = banks, max(2, depth), units
        super().__init__({
            "raddr": In(32), "raddr_nb": In(32),
            "rvec": Out(data.ArrayLayout(8, banks)),
            "waddr": In(32),
            "wdata": In(data.ArrayLayout(8, units)),
            "wen": In(units),
        })

    def elaborate(self, platform):
        m = Module()
        NB, U = self._banks, self._units
        LNB, LU = exact_log2(NB), exact_log2(U)
        a_lo_d = Signal(LNB)
        m.d.sync += a_lo_d.eq(self.raddr[:LNB])
        bank_data = []
        for b in range(NB):
            bank = Memory(shape=8, depth=self._depth, init=[])
            m.submodules[f"act_bank{b}"] = bank
            rp, wp = bank.read_port(), bank.write_port()
            # byte raddr + ((b - raddr) mod NB) is in bank b, row (raddr >> LNB) + [raddr mod NB > b]:
            # the row of raddr or of raddr + NB, chosen by a compare of the low bits (one LUT)
            m.d.comb += [rp.en.eq(1),
                         rp.addr.eq(Mux(self.raddr[:LNB] > b, self.raddr_nb >> LNB, self.raddr >> LNB)),
                         wp.addr.eq(self.waddr >> LNB), wp.data.eq(self.wdata[0]),
                         wp.en.eq(self.wen[0] & (self.waddr[:LNB] == b))]
            if b % U:
                hit = self.wen[b % U] & (self.waddr[LU:LNB] == b >> LU)
                with m.If(hit):
                    m.d.comb += [wp.data.eq(self.wdata[b % U]), wp.en.eq(1)]
            bank_data.append(rp.data)
        # byte o of the vector is bank (a_lo + o) mod NB: the banks rotated by a_lo, one
        # NB:1 multiplexer per bit selected by a_lo itself (no adder per byte before it)
        rot = Cat(*bank_data, *bank_data).bit_select(a_lo_d * 8, NB * 8) if NB > 1 else bank_data[0]
        for o in range(NB):
            m.d.comb += self.rvec[o].eq(rot[8 * o:8 * (o + 1)])
        return m
