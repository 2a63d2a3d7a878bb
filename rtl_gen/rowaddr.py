"""RowAddress: the byte address of a ring buffer's row, shared by the units that start rows.

Latency: ``busy`` is high for 17 cycles from the cycle after ``start``; ``addr`` and ``rem``
are valid from the cycle it falls, 18 cycles after ``start`` (a row start costs 19 cycles
with the cycle that sees ``busy`` low: the compiler's ``TOP_ROW_ADDR``).
Throughput: one row at a time. The units step further rows through the ring themselves
(:func:`ring_step`), so one divider serves a whole tile.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RowAddress", "ROW_PORT", "ring_step", "row_bytes_reg", "drive_row", "share", "or_all"]

# A unit's port to the shared RowAddress (the unit's side): it drives the request fields only
# in the cycle it raises ``start`` (zero otherwise), so the top ORs the units' requests.
ROW_PORT = wiring.Signature({
    "start": Out(1), "r": Out(16), "ring": Out(16), "base": Out(32), "row_bytes": Out(32),
    "busy": In(1), "addr": In(32), "rem": In(16),
})


def ring_step(idx, addr, d, row_bytes):
    """The ring position after (``idx``, ``addr``) of tensor descriptor ``d``: the next row
    (row index in the ring, byte address). ``row_bytes`` is ``d.width * d.channels`` from a
    register (:func:`row_bytes_reg`), so no multiplier feeds the unit's row registers."""
    wrap = idx + 1 == d.ring_rows
    return Mux(wrap, 0, idx + 1)[:16], Mux(wrap, d.base, addr + row_bytes)[:32]


def row_bytes_reg(m, d, name):
    """A register following ``d.width * d.channels`` (one cycle behind the descriptor, which
    holds while its unit runs; the multiplier's output register)."""
    rb = Signal(32, name=name)
    m.d.sync += rb.eq(d.width * d.channels)
    return rb


def drive_row(m, port, r, d):
    """Start ``port``'s RowAddress on row ``r`` of tensor descriptor ``d`` (this cycle)."""
    m.d.comb += [port.start.eq(1), port.r.eq(r), port.ring.eq(d.ring_rows), port.base.eq(d.base),
                 port.row_bytes.eq(d.width * d.channels)]


def or_all(values):
    """The OR of ``values``: signals several units drive one at a time, idle ones with zeros."""
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


def share(m, ra: "RowAddress", ports) -> None:
    """Connect the units' ``ports`` (``ROW_PORT``) to one RowAddress ``ra``: their requests
    ORed (a unit drives its request fields only in the cycle it starts a row), the results
    fanned out."""
    ports = list(ports)
    for name in ("start", "r", "ring", "base", "row_bytes"):
        m.d.comb += getattr(ra, name).eq(or_all(getattr(p, name) for p in ports))
    for p in ports:
        m.d.comb += [p.busy.eq(ra.busy), p.addr.eq(ra.addr), p.rem.eq(ra.rem)]


class RowAddress(wiring.Component):
    """Address of row ``r`` of a ring buffer: ``base + (r mod ring) * row_bytes``.

    Restoring division, one quotient bit per cycle (16 cycles), then one multiply: ``busy``
    is high for the 17 cycles after ``start``; ``addr`` and ``rem`` (``r mod ring``) are valid
    when it falls."""

    def __init__(self):
        super().__init__(ROW_PORT.flip())

    def elaborate(self, platform):
        m = Module()
        rem = Signal(17)
        num = Signal(16)
        step = Signal(range(18))
        ring, base, row_bytes = Signal(16, name="ring"), Signal(32, name="base"), Signal(32, name="row_bytes")
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), rem.eq(0), num.eq(self.r), step.eq(0), ring.eq(self.ring),
                         base.eq(self.base), row_bytes.eq(self.row_bytes)]
        with m.Elif(self.busy):
            with m.If(step < 16):
                t = Cat(num[15], rem[:16])
                m.d.sync += [num.eq(num << 1), step.eq(step + 1),
                             rem.eq(Mux(t >= ring, t - ring, t))]
            with m.Else():
                m.d.sync += [self.addr.eq(base + rem * row_bytes), self.busy.eq(0)]
        m.d.comb += self.rem.eq(rem)
        return m
