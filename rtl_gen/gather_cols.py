"""The Gather unit's column addressing: running byte offsets instead of multipliers.

A tap column ``x * stride - pad + gj`` times a tensor's channel count was a DSP multiply,
behind another for ``x * stride``, in front of the activation banks' address (timing). The
gatherer instead keeps byte offsets within a row, modulo 2^``addr_bits`` like the read
address, stepped by additions as ``x`` and ``gj`` move:

- ``colC  = (xs - pad + gj) * Ca + cin0``: operand a's current tap column (pattern operand)
- ``acol  = (xs - pad) * Ca + cin0``: the same at ``gj = 0``
- ``mcol  = xs * Ca + cin0``: operand a on the MAC array (1×1)
- ``bcolm = (2x or x) * Cb + cin0_b``, ``bcoli = x * Cb + cin0_b``: operand b

with ``xs = x * stride``. The products by the instruction's small constants (stride, pad <= 7,
k - 1, k - 2) are shifts and adds, registered once per tile (:meth:`ColumnAddresses.tile_products`,
then :meth:`~ColumnAddresses.tile_sums` the cycle after). The activation memory uses only the
read address's low bits. Latency and throughput are the Gather unit's (rtl_gen/gather.py).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed

__all__ = ["ColumnAddresses"]


def _times(c: int, v):
    """``c * v`` for a constant ``c`` as shifts and adds."""
    return sum(v << i for i in range(c.bit_length()) if c >> i & 1)


class ColumnAddresses:
    """The column registers of one Gather unit, added to its module ``m``.

    ``ins``, ``da``, ``db`` are the instruction and the operands' tensor descriptors, ``x``
    the output column register, ``b_s2`` whether operand b is a stride-2 projection,
    ``k_max`` the engine's kernel size, ``addr_bits`` the offsets' width.

    Attributes: ``colC``, ``acol``, ``mcol``, ``bcolm``, ``bcoli`` (above), ``kC1``, ``kC2``
    (``(k-1) * Ca`` and ``(k-2) * Ca``), ``k_m1``, ``k_m2`` (k - 1 and k - 2, per tile),
    ``r0_biased`` (operand a's first window row, see below), ``slot_last`` (a pass's first
    window slot), ``w_m1`` (the output row's last column, ``dd.width - 1``) and ``x_end``
    (``x == w_m1``, registered as x moves).
    """

    def __init__(self, m, *, ins, da, db, dd, x, b_s2, k_max: int, addr_bits: int):
        self._m, self._ins, self._da, self._db, self._x, self._b_s2 = m, ins, da, db, x, b_s2
        # the output row's last column, following the descriptor (valid from TILE_INIT on: the
        # descriptor is set at least a cycle before start), and x == w_m1 as a register set as
        # x moves: the row-end decision and the window register's controls behind it take no
        # 16-bit compare (the small overlay's critical path on the ECP5 at a6f961d, 12.86 ns)
        self.w_m1, self.x_end = Signal(16, name="w_m1"), Signal(name="x_end")
        m.d.sync += self.w_m1.eq(dd.width - 1)
        K, AW = k_max, addr_bits
        self._ks = [kk for kk in (3, 5, 7) if kk <= K]
        # The tap column x * stride - pad + gj is inside the image iff lo_g <= gj < hi_g, with
        # lo_g = pad - x * stride and hi_g = width + pad - x * stride kept in registers beside x
        # (x_first, x_next); the k_max answers for gj = 0 .. k_max - 1 are a register set as
        # x moves (cmask, from the compares of lo_g and hi_g with constants), so a read's
        # inside-image test is a multiplexer over flip-flops, not two 18-bit compares with gj
        # (the small overlay's critical path on the ECP5 ran from gj through them into the
        # read's landing flags, 12.80 ns)
        self.lo_g, self.hi_g = Signal(signed(18), name="lo_g"), Signal(signed(18), name="hi_g")
        self.cmask = Signal(K, name="cmask")
        self.stepA, self.padC, self.kC1, self.kC2, self.stepB = (
            Signal(AW, name=n) for n in ("stepA", "padC", "kC1", "kC2", "stepB"))
        self.acol0, self.colC0 = Signal(AW, name="acol0"), Signal(AW, name="colC0")
        self.stepK1 = Signal(AW, name="stepK1")
        self.colC, self.acol, self.mcol = Signal(AW, name="colC"), Signal(AW, name="acol"), Signal(AW, name="mcol")
        self.bcolm, self.bcoli = Signal(AW, name="bcolm"), Signal(AW, name="bcoli")
        # k - 1 and k - 2 registered per tile
        self.k_m1, self.k_m2 = Signal(range(K), name="k_m1"), Signal(range(K), name="k_m2")
        # operand a's first window row row0*stride - pad, plus ring_rows*pad (pad <= 7) to stay
        # non-negative with the same residue (shifts and adds: no multiplier); a register
        # following the instruction (valid from TILE_INIT on), so no adder feeds the RowAddress
        self.r0_biased = Signal(16, name="r0_biased")
        m.d.sync += self.r0_biased.eq(Mux(ins.stride == 2, ins.row0 << 1, ins.row0) - ins.pad
                                      + sum(Mux(ins.pad[i], da.ring_rows << i, 0) for i in range(3)))
        # window slot of tap (k-1, k-1), a pass's first read (no multiplier: k is 3, 5 or 7)
        self.slot_last = Signal(range(K * K), name="slot_last")
        m.d.comb += self.slot_last.eq(sum(Mux(ins.k == kk, (kk - 1) * (K + 1), 0) for kk in (3, 5, 7) if kk <= K))

    def col_ok(self, gj):
        """Tap column ``gj`` (< k_max) of the current position is inside the image."""
        return self.cmask.bit_select(gj, 1)

    def tile_products(self):
        """Once per tile (TILE_INIT): the products by the instruction's constants."""
        m, ins, Ca = self._m, self._ins, self._da.channels
        m.d.sync += [self.k_m1.eq(ins.k - 1), self.k_m2.eq(ins.k - 2)]
        m.d.sync += [self.stepA.eq(Mux(ins.stride == 2, Ca << 1, Ca)),
                     self.padC.eq(sum(Mux(ins.pad[i], Ca << i, 0) for i in range(3))),
                     self.kC1.eq(sum(Mux(ins.k == kk, _times(kk - 1, Ca), 0) for kk in self._ks)),
                     self.kC2.eq(sum(Mux(ins.k == kk, _times(kk - 2, Ca), 0) for kk in self._ks)),
                     self.stepB.eq(Mux(self._b_s2, self._db.channels << 1, self._db.channels))]

    def tile_sums(self):
        """The next cycles (TILE_INIT_A): sums of the registered products."""
        ins = self._ins
        self._m.d.sync += [self.acol0.eq(ins.cin0 - self.padC), self.colC0.eq(ins.cin0 - self.padC + self.kC1),
                           self.stepK1.eq(self.stepA + self.kC1)]

    def x_first(self):
        """x <- 0 (and gj <- k - 1)."""
        ins = self._ins
        hi = self._da.width + ins.pad
        self._m.d.sync += [self._x.eq(0), self.x_end.eq(self.w_m1 == 0),
                           self.lo_g.eq(ins.pad), self.hi_g.eq(hi),
                           self.cmask.eq(Cat((j >= ins.pad) & (j < hi) for j in range(len(self.cmask)))),
                           self.colC.eq(self.colC0), self.acol.eq(self.acol0), self.mcol.eq(ins.cin0),
                           self.bcolm.eq(ins.cin0_b), self.bcoli.eq(ins.cin0_b)]

    def x_next(self):
        """x <- x + 1 (and gj <- k - 1)."""
        sx = Mux(self._ins.stride == 2, 2, 1)

        def ok(c):      # column c of the next position: c + sx of this one's
            return (c >= self.lo_g) & (c < self.hi_g)
        self._m.d.sync += self.cmask.eq(Cat(Mux(self._ins.stride == 2, ok(j + 2), ok(j + 1))
                                            for j in range(len(self.cmask))))
        self._m.d.sync += [self._x.eq(self._x + 1), self.x_end.eq(self._x + 1 == self.w_m1),
                           self.lo_g.eq(self.lo_g - sx), self.hi_g.eq(self.hi_g - sx),
                           self.colC.eq(self.acol + self.stepK1), self.acol.eq(self.acol + self.stepA),
                           self.mcol.eq(self.mcol + self.stepA), self.bcolm.eq(self.bcolm + self.stepB),
                           self.bcoli.eq(self.bcoli + self._db.channels)]
