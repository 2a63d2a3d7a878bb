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

The banks' read data also leave unrotated (``rraw``, bank ``b`` in byte ``b``) with the
rotation ``rlo`` (``A mod banks``, registered): a reader that lands a read in a register of its
own can take the raw bytes, so that register follows the block RAM with no logic between,
and rotate after it (:func:`rotated`). On the ECP5 the DP16KD's clock-to-output is 5.8 ns
before any logic, and the rotation and a byte mask after it, routed to registers across the
die, were the shipped overlay's critical path (docs/timing.md); the readers of a
``landing_reg`` build (EngineConfig) land raw.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

__all__ = ["ActivationMemory", "rotated"]


def rotated(raw, lo, n: int, ok=None):
    """Bytes ``[0, n)`` of a read from the banks' unrotated data ``raw`` (an
    ``ArrayLayout(8, banks)`` value; ``rraw``): byte ``o`` is bank ``(lo + o) mod banks``,
    ``lo`` being the read address's low bits (``rlo``); with ``ok`` (``n`` bits), byte ``o``
    reads zero where ``ok[o]`` is low. One ``banks``:1 multiplexer per bit selected by ``lo``
    itself (and one gate with ``ok``)."""
    flat = Value.cast(raw)
    nb = len(flat) // 8
    rot = Cat(flat, flat).bit_select(lo * 8, nb * 8) if nb > 1 else flat
    return Cat(*(rot[8 * o:8 * (o + 1)] if ok is None else Mux(ok[o], rot[8 * o:8 * (o + 1)], 0)
                 for o in range(n)))


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
    rraw : Out(ArrayLayout(8, banks)), rlo : Out(max(1, log2 banks))
        The same read unrotated (byte ``b`` from bank ``b``) and ``A mod banks``: ``rvec`` is
        ``rotated(rraw, rlo, banks)``.
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
            "rraw": Out(data.ArrayLayout(8, banks)), "rlo": Out(max(1, exact_log2(banks))),
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
        for b in range(NB):
            m.d.comb += self.rraw[b].eq(bank_data[b])
        m.d.comb += [self.rlo.eq(a_lo_d), self.rvec.eq(rotated(self.rraw, a_lo_d, NB))]
        return m
