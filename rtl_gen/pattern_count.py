"""PlaneCounters: the pattern engine's popcounts and Horner sums over bit-planes (its stages
M, Q and the Horner registers; rtl_gen/pattern.py)."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, ResetSignal, Signal, Value, signed

from . import xc7
from .arith import column_rows, compress_columns, popcount_word

__all__ = ["PlaneCounters"]


class PlaneCounters:
    """Builds, in module ``m``, counter trees with one register inside (stage M) and their
    two registered rows (stage Q), and the Horner registers that sum a beat's planes, MSB
    first (``acc = 2*acc + popcount``, or ``popcount - 2*acc`` where ``neg``: the plane after
    a signed code's top plane, whose weight is ``-2^(bits-1)``), restarted after the beat's
    final plane (``restart``), whose value goes to the beat stage H. ``netlist``: ``"lut"`` (LUT6 counter trees),
    ``"word"`` (word-level popcounts, one row) or ``"xc7"`` (LUT6_2/CARRY4 counters and
    ternary adders); ``width`` the rows' and registers' width (exact modulo ``2^width``);
    ``n`` the widest count (a lane's products: its tree is cut after three levels above 128
    bits, two otherwise); ``advance`` the pipeline's enable, ``step`` a plane in Q moves on."""

    def __init__(self, m, netlist: str, width: int, n: int, advance: Value, restart: Value, step: Value):
        self._m, self._word, self._gpc = m, netlist == "word", netlist == "xc7"
        self._hw, self._n = width, n
        self._advance, self._restart, self._step = advance, restart, step

    def beat_total(self, base: Value, x: Value, u: Value, aw: int, lane: int) -> Signal:
        """Stage H's total of lane ``lane``: ``base + X - 2U`` as ``signed(aw)``, ``X`` and ``U``
        sign-extended (cut to ``aw`` bits: every total fits them); xc7: one ternary adder with
        ``-2U`` as ``~(2U)`` plus the chain's carry-in."""
        m = self._m

        def sext(v: Value) -> Value:
            v = Value.cast(v)
            return Cat(v, v[-1].replicate(aw - len(v))) if len(v) < aw else v[:aw]
        total = Signal(signed(aw), name=f"total{lane}")
        xl = sext(x)
        if self._gpc:
            m.d.comb += total.eq(xc7.ternary_add(m, base, xl, sext(Cat(Const(0, 1), u)), aw,
                                                 invert_c=True, carry_in=1, name=f"beat{lane}"))
        else:
            m.d.comb += total.eq(base.as_signed() + xl.as_signed() - (u.as_signed() << 1))
        return total

    def rows(self, bits: Value, name: str) -> list:
        """popcount(bits) as two rows whose sum is the count (exact modulo 2^width), one
        register (stage M) inside the counter tree."""
        m, hw, advance = self._m, self._hw, self._advance
        nb = len(bits)
        if self._word:
            mid = Signal(hw, name=f"{name}m", reset_less=True)
            with m.If(advance):
                m.d.sync += mid.eq(popcount_word(bits, nb))
            return [mid, Const(0, hw)]
        compress = xc7.compress if self._gpc else compress_columns
        mid_levels = 3 if nb == self._n and nb > 128 else 2
        cols = compress(m, [[bits[i] for i in range(nb)]], rows=2, name=name, width=hw, max_levels=mid_levels)
        regs = []
        for w, col in enumerate(cols):
            if not col:
                regs.append([])
                continue
            r = Signal(len(col), name=f"{name}m{w}", reset_less=True)
            with m.If(advance):
                m.d.sync += r.eq(Cat(*col))
            regs.append([r[i] for i in range(len(col))])
        cols = compress(m, regs, rows=2, name=f"{name}r", width=hw)
        return column_rows(cols, 2)

    def horner(self, acc: Signal, rows: list, neg: Value, name: str) -> Value:
        """rows[0] + rows[1] + 2*acc, or - 2*acc where ``neg`` (mod 2^width): one ternary
        adder (xc7: ``neg`` inverts the third operand in its LUTs and is the chain's carry-in)."""
        m, hw = self._m, self._hw
        if self._gpc:
            return xc7.ternary_add(m, rows[0], rows[1], acc << 1, hw, invert_c=neg, carry_in=neg, name=name)
        nxt = Signal(hw, name=name, attrs={"keep": 1})
        m.d.comb += nxt.eq(rows[0] + rows[1] + ((acc << 1) ^ neg.replicate(hw)) + neg)
        return nxt

    def count_and_accumulate(self, bits: Signal, q: list, acc: Signal, beat: Signal, neg: Value, name: str):
        """Q: popcount(bits) as two registered rows ``q``; ``acc``: their Horner sum over the
        planes (``neg``: the plane in Q follows a signed code's top plane), restarted after the
        final plane, whose value goes to ``beat`` (stage H)."""
        m = self._m
        rows = self.rows(bits, f"pc{name}_")
        with m.If(self._advance):
            m.d.sync += [q[r].eq(v) for r, v in enumerate(rows)]
        nxt = self.horner(acc, q, neg, f"{name}next")
        with m.If(self._restart | ResetSignal()):
            m.d.sync += acc.eq(0)
        with m.Elif(self._step):
            m.d.sync += acc.eq(nxt)
        with m.If(self._restart):
            m.d.sync += beat.eq(nxt)
