"""The Gather unit's rows: ring positions and the row table of the current output row.

A tensor's rows sit in a ring of ``ring_rows`` rows (docs/isa.md); a row's place is its ring
index and byte address, stepped one row at a time (:func:`~rtl_gen.rowaddr.ring_step`: an
add and a wrap, no divider) from one RowAddress per tile and operand. :class:`RowTable`
keeps, for the gatherer (rtl_gen/gather.py):

- ``ya``: operand a's top window row ``y * stride - pad`` (biased by ``ring * pad``: the same
  residue, never negative), moved by the stride per output row (ROWADV);
- ``ca``: the row-table cursor, from ``ya`` down the window rows, one per ROWSETUP cycle;
- ``yb``: operand b's row ``y`` (``2y`` for a stride-2 projection);
- the row table of the output row: per window row its ring address and whether it is inside
  the image (``rowaddr``, ``rowvalid``), row ``k - 1``'s beside the table (``row_last``,
  ``row_last_ok``: a pass's first read takes it from a register, not through a multiplexer
  indexed by the instruction's ``k``), row 0's address + ``banks`` (``rowaddr0_nb``, the
  activation memory's second address for a 1×1 MAC operand), and the row the current pass
  reads (``row_cur``: :meth:`RowTable.select`).

Latency: ``k`` ROWSETUP cycles per output row and 2 ROWADV cycles before every row after
the first (the Gather unit's cycle model, sephw/compiler/top_model.py).
"""
from __future__ import annotations

from amaranth.hdl import Array, Signal

from .rowaddr import ring_step

__all__ = ["RowTable"]


class RowTable:
    """The row registers of one Gather unit (module docstring), added to its module ``m``.

    ``da``, ``db`` are operand a's and b's tensor descriptors, ``k_max`` the engine's kernel
    size, ``banks`` the activation memory's bytes per read. The table is created here, the
    other registers by the ``add_*`` methods where the gatherer declares its neighbours (so
    its netlist keeps its order); :meth:`row_bytes` gives the operands' row bytes.
    """

    def __init__(self, m, *, da, db, k_max: int, banks: int):
        self._m, self._da, self._db, self._NB = m, da, db, banks
        self.adv = Signal(name="adv")           # ROWADV's second cycle
        self.rowaddr = Array(Signal(32, name=f"rowaddr{i}") for i in range(k_max))
        self.rowvalid = Array(Signal(name=f"rowvalid{i}") for i in range(k_max))

    def add_positions(self, rowb):
        """The ring positions (row index, byte address) ``ya``, ``ca``, ``yb``, created after
        the gatherer's ``rowb`` (operand b's row address) for the netlist's sake."""
        self.rowb = rowb
        self.ya_i, self.ya_a = Signal(16, name="ya_i"), Signal(32, name="ya_a")
        self.ca_i, self.ca_a = Signal(16, name="ca_i"), Signal(32, name="ca_a")
        self.yb_i, self.yb_a = Signal(16, name="yb_i"), Signal(32, name="yb_a")

    def add_last(self):
        """``row_last``, ``row_last_ok``: row ``k - 1``'s address and validity."""
        self.row_last, self.row_last_ok = Signal(32, name="row_last"), Signal(name="row_last_ok")
        return self.row_last, self.row_last_ok

    def add_current(self):
        """``row_cur``, ``row_cur_ok`` and ``row_cur_nb``: the row a pattern pass's reads take,
        ``rowaddr[gi]`` and ``rowvalid[gi]`` registered as the gatherer's ``gi`` is set
        (:meth:`select`), so its reads take their row from a register and not through a
        multiplexer indexed by ``gi``. (Every address register X the gather passes read has a
        twin X_nb = X + banks, the activation memory's second address: ActivationMemory.)"""
        self.row_cur, self.row_cur_ok = Signal(32, name="row_cur"), Signal(name="row_cur_ok")
        self.row_cur_nb = Signal(32, name="row_cur_nb")
        return self.row_cur, self.row_cur_ok, self.row_cur_nb

    def select(self, gi, v, k_m1, choff):
        """``gi <- v`` for the reads that follow: ``row_cur`` is row ``v``'s address plus their
        chunk's byte offset ``choff[0]`` (``ch * pe_cin`` of the pass they belong to;
        ``choff[1]``, the same + banks, for ``row_cur_nb``), so a read address is one adder
        from registers. ``v`` may be ``k_m1`` (row ``k - 1``: ``row_last``, no multiplexer)."""
        row = self.row_last if v is k_m1 else self.rowaddr[v]
        self._m.d.sync += [gi.eq(v), self.row_cur.eq(row + choff[0]), self.row_cur_nb.eq(row + choff[1]),
                           self.row_cur_ok.eq(self.row_last_ok if v is k_m1 else self.rowvalid[v])]

    def add_first_nb(self):
        """``rowaddr0_nb`` (row 0's address + banks) and ``rowb_nb`` (operand b's + banks)."""
        self.rowaddr0_nb, self.rowb_nb = Signal(32, name="rowaddr0_nb"), Signal(32, name="rowb_nb")
        return self.rowaddr0_nb, self.rowb_nb

    def row_bytes(self, rb_a, rb_b):
        """The operands' row bytes (registers, :func:`~rtl_gen.rowaddr.row_bytes_reg`)."""
        self._rb_a, self._rb_b = rb_a, rb_b

    def start_a(self, row):
        """TILE_INIT_A: operand a's first window row from the RowAddress ``row`` (its answer)."""
        self._m.d.sync += [self.ya_i.eq(row.rem), self.ya_a.eq(row.addr),
                           self.ca_i.eq(row.rem), self.ca_a.eq(row.addr)]

    def start_b(self, row):
        """TILE_INIT_B2: operand b's first row from the RowAddress ``row``."""
        self._m.d.sync += [self.yb_i.eq(row.rem), self.yb_a.eq(row.addr)]

    def setup(self, row_i, row_r, k_m1, clr_q):
        """One ROWSETUP cycle (``row_i < k``): table entry ``row_i`` from the cursor, whose
        image row is ``row_r`` (inside the image or not), the cursor one ring row on; with the
        last entry (``k_m1``) ``row_last`` and the window clear's flip-flop ``clr_q``."""
        m, da = self._m, self._da
        nxt_i, nxt_a = ring_step(self.ca_i, self.ca_a, da, self._rb_a)
        ok = (row_r >= 0) & (row_r < da.height)
        m.d.sync += [self.rowaddr[row_i].eq(self.ca_a), self.rowvalid[row_i].eq(ok),
                     self.ca_i.eq(nxt_i), self.ca_a.eq(nxt_a), row_i.eq(row_i + 1)]
        with m.If(row_i == 0):
            m.d.sync += self.rowaddr0_nb.eq(self.ca_a + self._NB)
        with m.If(row_i == k_m1):
            m.d.sync += [self.row_last.eq(self.ca_a), self.row_last_ok.eq(ok), clr_q.eq(1)]

    def operand_b_row(self):
        """As ROWSETUP ends: operand b's row address (and + banks) from ``yb``."""
        return [self.rowb.eq(self.yb_a), self.rowb_nb.eq(self.yb_a + self._NB)]

    def advance(self, stride2, b_s2, then):
        """ROWADV, two cycles: operand a's top row one ring row on (two at ``stride2``) and the
        cursor to it, operand b's one on (two with ``b_s2``, a stride-2 projection); ``then()``
        in the second cycle (the FSM's next state: ROWSETUP)."""
        m = self._m
        ya_n_i, ya_n_a = ring_step(self.ya_i, self.ya_a, self._da, self._rb_a)
        yb_n_i, yb_n_a = ring_step(self.yb_i, self.yb_a, self._db, self._rb_b)
        with m.If(~self.adv):
            m.d.sync += [self.ya_i.eq(ya_n_i), self.ya_a.eq(ya_n_a), self.yb_i.eq(yb_n_i), self.yb_a.eq(yb_n_a),
                         self.adv.eq(1)]
        with m.Else():
            with m.If(stride2):
                m.d.sync += [self.ya_i.eq(ya_n_i), self.ya_a.eq(ya_n_a), self.ca_i.eq(ya_n_i), self.ca_a.eq(ya_n_a)]
            with m.Else():
                m.d.sync += [self.ca_i.eq(self.ya_i), self.ca_a.eq(self.ya_a)]
            with m.If(b_s2):
                m.d.sync += [self.yb_i.eq(yb_n_i), self.yb_a.eq(yb_n_a)]
            m.d.sync += self.adv.eq(0)
            then()
