"""The Gather unit's next pattern pass: where its first reads go and when they go out.

A pattern pass reads a chunk's window one tap per cycle (rtl_gen/gather.py, GATHER_A). The
next pass's first read goes out in the cycle the current pass's beat is taken (ISSUE_A), from
registers set up while the pass runs: row k - 1's ring address plus the next chunk's channel
offset (``rl_next``), so the read address is one adder from registers.

With the landing register (``EngineConfig.landing_reg``: a tap lands two cycles after its
read) the pass's last read is followed by LAND_A, in which the next pass's first read goes
out *early* where the beat offered next cycle is sure to be taken: the pattern engine's
``window.ready`` is a flip-flop that stays high until the engine takes a beat, and the hold
register (two chunks per read) offers none then. ISSUE_A then issues the pass's second read:
tap (k-1, k-2) of a full pass, or (k-2, k-1) of a column pass (sliding window, row k - 2's
address in ``rl2_next``), and GATHER_A goes on from the third. Without the early read the
pass takes one cycle more (the compiler's ``_pattern_beats`` counts both).
"""
from __future__ import annotations

from amaranth.hdl import Mux, Signal

__all__ = ["NextPass"]


class NextPass:
    """The next pattern pass's read set-up in Gather's module ``m`` (see the module docstring).

    ``read`` is OperandRegisters.read (``rd_go`` issues what it set up); ``set_gi(v, choff)`` points the pass's row registers
    at row ``v`` plus a chunk offset; the other arguments are Gather's registers of the same
    names (``cols``: its ColumnAddresses). Attributes: ``ch_next_c`` (``ch_next * pe_cin``,
    and ``ch_next_c_nb`` the same + banks), ``end`` (the state after a pass's last read).
    """

    def __init__(self, m, *, read, rd_go, set_gi, cols, pe_cin: int, banks: int, addr_bits: int, k_max: int,
                 landing_reg: bool, ch_next, dual, nxt_dual, left_a, row_last, row_last_ok,
                 rowaddr, rowvalid, gj, col_ok, colmode, ca):
        PC, NB, K = pe_cin, banks, k_max
        self._m, self._read, self._rd_go, self._set_gi, self._cols = m, read, rd_go, set_gi, cols
        self._PC, self._K, self._LR = PC, K, landing_reg
        self._gj, self._col_ok, self._colmode, self._ca, self._nxt_dual = gj, col_ok, colmode, ca, nxt_dual
        self.end = "LAND_A" if landing_reg else "ISSUE_A"
        # the next pass's channel offset ch_next * pe_cin (its first read's address and
        # channel count then take no adder from ch)
        self.ch_next_c = Signal(addr_bits, name="ch_next_c")
        self.ch_next_c_nb = Signal(addr_bits, name="ch_next_c_nb")
        m.d.sync += [self.ch_next_c.eq(ch_next * PC), self.ch_next_c_nb.eq(ch_next * PC + NB)]
        # and row k - 1's address plus it, one cycle later (the next pass's first read: ch,
        # dual and row_last hold for the k >= 3 cycles of a pass before ISSUE_A reads it)
        self.rl_next, self.rl_next_nb = Signal(32, name="rl_next"), Signal(32, name="rl_next_nb")
        m.d.sync += [self.rl_next.eq(row_last + self.ch_next_c), self.rl_next_nb.eq(row_last + self.ch_next_c_nb)]
        self._row_last_ok = row_last_ok
        self._cnt = (left_a, (dual, 2 * PC, PC))    # the next pass's channels: left_a - ch's pass
        if landing_reg:
            k_m2 = cols.k_m2
            self.early = Signal(name="early")       # this pass's first read went out from LAND_A
            self.rl2_next, self.rl2_next_nb = Signal(32, name="rl2_next"), Signal(32, name="rl2_next_nb")
            self.rl2_ok, self.k_m3 = Signal(name="rl2_ok"), Signal(range(K), name="k_m3")
            m.d.sync += [self.rl2_next.eq(rowaddr[k_m2] + self.ch_next_c),
                         self.rl2_next_nb.eq(rowaddr[k_m2] + self.ch_next_c_nb),
                         self.rl2_ok.eq(rowvalid[k_m2]), self.k_m3.eq(k_m2 - 1)]

    def _tap(self, rl, ok, slot):
        cols = self._cols
        self._read((rl[0] + cols.colC, rl[1] + cols.colC), ok & self._col_ok, 0, slot,
                   self._cnt, self._nxt_dual, go=False)

    def first_read(self):
        """Sets up the next pass's first read, tap (k-1, k-1): gj is k - 1 then (set with the
        pass's last read), so col_ok and colC are its column."""
        self._tap((self.rl_next, self.rl_next_nb), self._row_last_ok, self._cols.slot_last)

    def issue_reads(self):
        """ISSUE_A's read (issued where the beat goes): the next pass's first, or after an
        early one its second."""
        m, cols = self._m, self._cols
        if not self._LR:
            self.first_read()
            return
        with m.If(~self.early):
            self.first_read()
        with m.Elif(self._colmode):
            self._tap((self.rl2_next, self.rl2_next_nb), self.rl2_ok, cols.slot_last - self._K)
        with m.Else():
            self._tap((self.rl_next, self.rl_next_nb), self._row_last_ok, cols.slot_last - 1)

    def land(self, early_ok):
        """LAND_A (the landing register only): the pass's last tap lands next cycle, when its
        beat is offered; the next pass's first read goes out now where ``early_ok``."""
        m, cols = self._m, self._cols
        self.first_read()
        m.d.sync += self.early.eq(early_ok)
        with m.If(early_ok):
            m.d.comb += self._rd_go.eq(1)
            with m.If(~self._colmode):
                m.d.sync += [self._gj.eq(cols.k_m2), cols.colC.eq(cols.colC - self._ca)]   # tap (k-1, k-2)'s

    def taken(self, column_store: bool, cs_next):
        """The beat is taken and another pass of the position follows (from chunk ch_next):
        the rows and columns GATHER_A goes on from; on a column pass the chunk's stored window
        loads next cycle (``cs_next``: cs_r.addr is then still cs_ra = this ch_next; the
        pass's first read lands into it, or after it)."""
        m, cols, set_gi = self._m, self._cols, self._set_gi
        nc = (self.ch_next_c, self.ch_next_c_nb)
        LR = self._LR
        if LR:
            # the pass after next's channel offset, now: after an early read a k = 3 column
            # pass reaches LAND_A (rl_next) two cycles after this one
            step = Mux(self._nxt_dual, 2 * self._PC, self._PC)
            m.d.sync += [self.ch_next_c.eq(self.ch_next_c + step), self.ch_next_c_nb.eq(self.ch_next_c_nb + step)]

        def full_pass():
            set_gi(cols.k_m1, nc)
            step = [self._gj.eq(cols.k_m2), cols.colC.eq(cols.acol + cols.kC2)]
            if LR:
                # after an early first read, from tap (k-1, k-3) (colC is (k-2)'s column here)
                with m.If(self.early):
                    m.d.sync += [self._gj.eq(self._gj - 1), cols.colC.eq(cols.colC - self._ca)]
                with m.Else():
                    m.d.sync += step
            else:
                m.d.sync += step
        if not column_store:
            full_pass()
            return
        with m.If(self._colmode):
            # the new column next: row k - 2 (k - 3 after an early read)
            if LR:
                with m.If(self.early):
                    set_gi(self.k_m3, nc)
                with m.Else():
                    set_gi(cols.k_m2, nc)
            else:
                set_gi(cols.k_m2, nc)
            m.d.sync += cs_next.eq(1)
        with m.Else():
            full_pass()
