"""Gather: a compute tile's operands from the activation memory into the engines.

Per output position the gatherer reads operand a's window from the activation memory (ring
addressing ``base + (row mod ring_rows) * W * C``: one RowAddress per tile and operand, then
one ring step per row; zero outside the image = padding, zero beyond the operand's ``na`` /
``nb`` channels):

- pattern operand: one window tap of ``pe_cin`` channels per cycle into the pattern engine's
  window slot ``i*k_max + j``, taps from ``(k-1, k-1)`` down to ``(0, 0)`` (a kernel smaller
  than ``k_max`` uses the top-left taps; the other slots stay zero and add 0), the beat issued
  in the cycle its last tap lands and the next pass's first read in the same cycle:
  ``k^2`` cycles per chunk. When a read returns ``2 * pe_cin`` bytes a pass fills the windows
  of two chunks and the second waits in a hold register for the engine while the gatherer
  goes on (engine-paced). Otherwise a stride-1 operand keeps each chunk's window from one
  position to the next, shifted by one column (the *column store*, one distributed-RAM entry
  per chunk), and reads only the new column: ``k`` cycles per chunk (sliding window).
- 1×1 operand on the MAC array: one beat of ``mac_cols`` channels per cycle, reads pipelined
  (``1 + chunks`` cycles per position).
- operand b: a 1×1 on the MAC array (``1 + chunks_b`` cycles) or the identity skip's codes
  into a two-entry queue towards the PostProcess (``skip``, 2 cycles; ``landing_reg``:
  below). When operand a is on the MAC array too (an int8 1×1 beside a 1×1 projection), b's
  beats go first: the MAC array returns its results in order, and the PostProcess holds acc_b
  before it joins acc_a.

With ``landing_reg`` (the ULX3S profile's: the ECP5's block RAM is slow to its output) a
window tap lands from a register, two cycles after its read; a pass's first read then goes
out a cycle early where the engine is sure to take the beat (LAND_A, rtl_gen/gather_pass.py),
and every position takes one cycle more. The identity skip's codes are read in the last pass's
LAND_A, a cycle in which the read port is otherwise idle, and wait in a register: ISSUE_B
pushes them from there, so a skip position takes 1 cycle instead of 2. After a MAC operand
they are read with its last beat (ISSUE_A) and ISSUE_B waits a cycle for them: 2 cycles, as
without the register. The MAC beats keep latency 1. Each of these registers (the tap's, the
skip codes', the waiting MAC beat's, and the top's in front of the MAC array) takes the
activation banks' raw bytes, the rotation and the bytes' mask beside them, and rotates after
it (rtl_gen/gather_regs.py): the block RAM's read data reach a flip-flop through no logic.

Latency and throughput per tile are the compiler's RTL cycle model (sephw/compiler/hw.py,
``unit_cycles`` and ``_pattern_beats``): per row ``k`` row-table cycles + 1 (+2
for every row after the first), per position ``1`` (POS_NEXT) on top of the operands'.
``done`` rises once every position's beats are issued; the tile is over when the writer has
stored the last position too (the top's ``release``).

This file holds the sequencing (the FSM); the registers a read lands in and the engines read
from are rtl_gen/gather_regs.py, the running column addresses rtl_gen/gather_cols.py, the
next pattern pass's reads rtl_gen/gather_pass.py.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC

from .gather_cols import ColumnAddresses
from .gather_pass import NextPass
from .gather_regs import OperandRegisters
from .gather_rows import RowTable
from .rowaddr import ROW_PORT, drive_row, row_bytes_reg

__all__ = ["Gather"]


class Gather(wiring.Component):
    """The gatherer of compute tiles (see the module docstring).

    Parameters
    ----------
    lanes, pe_cin, mac_cols, k_max, a_bits : int
        The engines' sizes (``EngineConfig``).
    banks : int
        Bytes per activation-memory read (``max(pe_cin, mac_cols, lanes)``, a power of two).
    column_store : bool
        Keep every chunk's shifted window (multi-chunk sliding); else only single-chunk operands
        slide.
    max_cin : int
        The widest operand (column-store depth: ``max_cin / pe_cin`` chunks).
    window_layout, pixel_layout : Layout
        The pattern engine's ``window`` and the MAC array's ``pixel`` payloads.
    landing_reg : bool
        Window taps land in a register first (above); ``window.ready`` must then stay high
        until a beat is taken, as the pattern engine's does.

    Attributes
    ----------
    start : In(1)
        Pulse: a tile begins; ``use_pe_in``, ``b_mac_in``, ``b_id_in`` say where its operands go.
    release : In(1)
        Pulse while ``done``: the tile is over (the writer has stored it); back to idle.
    done : Out(1)
        Every beat of the tile is issued.
    use_pe, b_mac, b_id : Out(1)
        The tile's routing (held from the cycle after ``start`` to ``release``): operand a on the
        pattern engine (else the MAC array), operand b a 1×1 on the MAC array, or identity codes.
    ins : In(isa.WORD layout); src_a, src_b, dst : In(TENSOR_DESC layout)
    row : Out(ROW_PORT)
    raddr : Out(32), raddr_nb : Out(32), rvec : In(ArrayLayout(8, banks))
        The activation memory's vector read (zero when not reading): its byte address, the
        same plus ``banks`` (each read's second address comes from registers of its own, kept
        beside the first's: ActivationMemory), the bytes.
    rraw : In(ArrayLayout(8, banks)), rlo : In(max(1, log2 banks))
        The same read unrotated and its rotation (ActivationMemory), which the landing
        registers take with ``landing_reg``.
    x_raw, x_lo, x_ok : Out (only with ``landing_reg``)
        ``pixel``'s beat unrotated: bytes ``rotated(x_raw, x_lo, mac_cols, x_ok)`` are its ``x``
        (the top registers these as the beat is taken and rotates after the register).
    window : Out(stream.Signature(window_layout)), pixel : Out(stream.Signature(pixel_layout))
    skip : Out(stream.Signature(ArrayLayout(8, lanes)))
        Identity-skip codes for the PostProcess's ``acc_b``.
    """

    def __init__(self, *, lanes: int, pe_cin: int, mac_cols: int, k_max: int, a_bits: int, banks: int,
                 column_store: bool, max_cin: int, window_layout, pixel_layout, addr_bits: int = 32,
                 landing_reg: bool = False):
        for v in (lanes, pe_cin, mac_cols, banks):
            exact_log2(v)
        if not 1 <= addr_bits <= 32:
            raise ValueError(f"addr_bits must be 1..32, not {addr_bits}")
        self._AW = addr_bits
        self._L, self._PC, self._Q, self._K, self._AB = lanes, pe_cin, mac_cols, k_max, a_bits
        self._NB, self._CS, self._max_cin = banks, bool(column_store), max_cin
        self._LR = bool(landing_reg)
        lo_bits = max(1, exact_log2(banks))
        # with the landing register the MAC beat also leaves raw, for the top's register in
        # front of the MAC array (OperandRegisters)
        raw_mac = {"x_raw": Out(data.ArrayLayout(8, banks)), "x_lo": Out(lo_bits), "x_ok": Out(mac_cols)} if self._LR else {}
        super().__init__({
            **raw_mac,
            "start": In(1), "release": In(1), "done": Out(1),
            "use_pe_in": In(1), "b_mac_in": In(1), "b_id_in": In(1),
            "use_pe": Out(1), "b_mac": Out(1), "b_id": Out(1),
            "ins": In(isa.WORD.layout()),
            "src_a": In(TENSOR_DESC.layout()), "src_b": In(TENSOR_DESC.layout()), "dst": In(TENSOR_DESC.layout()),
            "row": Out(ROW_PORT),
            "raddr": Out(32), "raddr_nb": Out(32), "rvec": In(data.ArrayLayout(8, banks)),
            "rraw": In(data.ArrayLayout(8, banks)), "rlo": In(lo_bits),
            "window": Out(stream.Signature(window_layout)),
            "pixel": Out(stream.Signature(pixel_layout)),
            "skip": Out(stream.Signature(data.ArrayLayout(8, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        L, PC, Q, K, AB, NB = self._L, self._PC, self._Q, self._K, self._AB, self._NB
        ins, da, db, dd = self.ins, self.src_a, self.src_b, self.dst
        use_pe, b_mac, b_id = self.use_pe, self.b_mac, self.b_id
        win_field = self.window.payload.window.as_value()
        pat_field = self.window.payload.pat_addr

        chunks_a, chunks_b = Signal(16, name="chunks_a"), Signal(16, name="chunks_b")
        # chunks - 1 (and - 2), registered per tile: "last chunk" is an equality with a
        # register, not an adder and a compare (timing)
        ca_m1, ca_m2, cb_m1 = Signal(16, name="ca_m1"), Signal(16, name="ca_m2"), Signal(16, name="cb_m1")
        last_pass = Signal()         # ISSUE_A: ch_next == chunks_a (this pass has the last chunk)
        y, x = Signal(16, name="y"), Signal(16, name="x")
        ch = Signal(16)
        gi, gj = Signal(range(K + 1), name="gi"), Signal(range(K + 1), name="gj")
        row_i = Signal(range(K + 2))
        # the ring positions of the operands' rows and the output row's row table
        # (rtl_gen/gather_rows.py)
        rows = RowTable(m, da=da, db=db, k_max=K, banks=NB)
        rowaddr, rowvalid = rows.rowaddr, rows.rowvalid
        rowb = Signal(32)
        rows.add_positions(rowb)

        # the operand registers and the one pending read (rtl_gen/gather_regs.py)
        LR = self._LR
        ops = OperandRegisters(m, self, lanes=L, pe_cin=PC, mac_cols=Q, k_max=K, a_bits=AB, banks=NB,
                               landing_reg=LR)
        read, DUAL, dual, rd_go = ops.read, ops.DUAL, ops.dual, ops.rd_go
        win_out, win_clr, win_cs, xv, xv_out = ops.win_out, ops.win_clr, ops.win_cs, ops.xv, ops.xv_out
        skip_n, skip_push, skip_pop = ops.skip_n, ops.skip_push, ops.skip_pop
        win1 = ops.win1 if DUAL else None
        if LR:
            m.d.comb += [self.x_raw.eq(ops.x_raw_out), self.x_lo.eq(ops.x_lo_out), self.x_ok.eq(ops.x_ok_out)]
        # engine streams; the hold register's beat goes first
        ma_issue = Signal()
        pe_issue = Signal()
        pe_take = Signal()             # the gatherer's beat (win) is accepted this cycle
        m.d.comb += [
            win_field.eq(win_out),
            # a chunk's pattern word: 2^pshift memory words (slices) after the chunk before's
            pat_field.eq(ins.wa + (ch << ins.pshift)),
            self.window.payload.first.eq(ch == 0),
            self.window.payload.last.eq(ch == ca_m1),
            self.window.valid.eq(pe_issue),
            pe_take.eq(pe_issue & self.window.ready),
            self.pixel.payload.x.eq(xv_out),
            self.pixel.valid.eq(ma_issue),
        ]
        if DUAL:
            # the hold register's beat (chunk ch + 1 of a two-chunk pass) goes first
            ops.hold_stage(self.window, pe_take, win_field, pat_field,
                           ins.wa + ((ch + 1) << ins.pshift), ch + 2 == chunks_a)

        # ------------------------------------------------------------------ addressing
        # stride is 1 or 2: a shift, not a multiplier
        s_ = Signal(signed(18))
        m.d.comb += s_.eq(Mux(ins.stride == 2, y << 1, y))
        row_r = Signal(signed(18))
        m.d.comb += row_r.eq(s_ - ins.pad + row_i)
        # operand b (1x1 projection) at stride 2: src_b twice the output's width
        b_s2 = Signal()
        m.d.comb += b_s2.eq(db.width != dd.width)
        # running column addresses instead of multipliers (rtl_gen/gather_cols.py)
        Ca = da.channels
        rb_a, rb_b = row_bytes_reg(m, da, "rb_a"), row_bytes_reg(m, db, "rb_b")
        rows.row_bytes(rb_a, rb_b)
        cols = ColumnAddresses(m, ins=ins, da=da, db=db, dd=dd, x=x, b_s2=b_s2, k_max=K, addr_bits=self._AW)
        col_ok = cols.col_ok(gj)
        colC, acol, mcol, bcolm, bcoli, kC1 = cols.colC, cols.acol, cols.mcol, cols.bcolm, cols.bcoli, cols.kC1
        k_m1 = cols.k_m1

        # row k - 1's registers beside the table, and the current pass row's (rows.select)
        row_last, row_last_ok = rows.add_last()
        row_cur, row_cur_ok, row_cur_nb = rows.add_current()

        def set_gi(v, choff=(0, NB)):
            """gi <- v for the reads that follow, row_cur from row v (RowTable.select)."""
            rows.select(gi, v, k_m1, choff)

        # Sliding window: a stride-1 pattern operand keeps each chunk's window from one position
        # to the next, shifted left by one column (zeros in at column k_max - 1), and reads only
        # the new column: k reads per chunk and position instead of k^2 (not at a row's first
        # position, which reads the whole window). The shifted windows wait in the column
        # store, one entry per chunk (distributed RAM, read asynchronously): written while a
        # chunk's beat is offered, read back into the window as the same chunk's next pass
        # starts (the cycle after the previous chunk's beat is taken, or in POS_NEXT for
        # chunk 0). Not with two-chunk reads, whose passes already keep up with the engine.
        # Without the store (``column_store = False``: fewer LUTs) only single-chunk operands
        # slide, the window register shifting in place (in POS_NEXT).
        CS = self._CS
        slide_ok = Signal()
        colmode = Signal()                # this position's passes read only column k - 1
        m.d.comb += slide_ok.eq(use_pe & ((chunks_a == 1) | (CS and not DUAL)) & (ins.stride == 1))
        cs_r, (cs_req, cs_req_addr), cs_next = ops.window_update(column_store=CS, max_cin=self._max_cin)
        dual0 = Signal()                  # a position's first pass covers two chunks
        m.d.comb += dual0.eq(DUAL & use_pe & (chunks_a > 1))
        # both operands on the MAC array: a position gathers b, then a (module docstring)
        b_first = Signal()
        # the tile's last output row, following the instruction (as cols.w_m1 the descriptor)
        y_last = Signal(16, name="y_last")
        m.d.sync += y_last.eq(ins.row0 + ins.rows - 1)

        # the operands' channels from chunk ch on, na - ch * (pe_cin or mac_cols) and
        # nb - ch * mac_cols, kept beside ch (ch_zero, and a step with each step of ch): a
        # read's byte mask is a compare of a register with constants
        left_a, left_b = Signal(16, name="left_a"), Signal(16, name="left_b")
        # the next MAC-operand read addresses of a position (chunk ch + 1), stepped by mac_cols
        ma_next, mb_next = Signal(32, name="ma_next"), Signal(32, name="mb_next")
        ma_next_nb, mb_next_nb = Signal(32, name="ma_next_nb"), Signal(32, name="mb_next_nb")
        # ch * pe_cin + NB (a pass's chunk offset for row_cur_nb), kept beside ch where pattern
        # passes move it (operand b's chunk steps in ISSUE_B leave it: no pattern pass reads
        # it before the next ch_zero)
        ch_c_nb = Signal(self._AW, name="ch_c_nb")

        def read_skip():
            """Reads the identity skip's codes (operand b's row at its column) into sk."""
            read((rowb + bcoli, rowb_nb + bcoli), 1, 2, 0, (left_b, 0))

        def ch_zero():
            m.d.sync += [ch.eq(0), ch_c_nb.eq(NB), left_a.eq(ins.na), left_b.eq(ins.nb)]

        ch_next = Signal(16)           # the next pass's first chunk
        m.d.comb += [ch_next.eq(ch + 1 + dual), last_pass.eq(ch == Mux(dual, ca_m2, ca_m1))]
        if CS:
            # the column store's read address, registered one cycle behind its inputs (which
            # hold for at least the k >= 3 cycles of a pattern pass before ISSUE_A needs it), so
            # ISSUE_A's decisions do not feed it (timing): the chunk whose stored window the
            # next pass starts from (ch_next; still this chunk's the cycle after ch moves, when
            # the window loads it)
            cs_ra = Signal.like(cs_r.addr)
            m.d.sync += cs_ra.eq(Mux(ch_next < chunks_a, ch_next, 0))
        # operand a's first row (1x1 on the MAC array) and operand b's row + NB
        rowaddr0_nb, rowb_nb = rows.add_first_nb()
        nxt_dual = Signal()            # the next pass covers two chunks
        m.d.comb += nxt_dual.eq(DUAL & (ch_next + 1 < chunks_a))
        # the next pattern pass's reads (rtl_gen/gather_pass.py)
        nxt = NextPass(m, read=read, rd_go=rd_go, set_gi=set_gi, cols=cols, pe_cin=PC, banks=NB,
                       addr_bits=self._AW, k_max=K, landing_reg=LR, ch_next=ch_next, dual=dual, nxt_dual=nxt_dual,
                       left_a=left_a, row_last=row_last, row_last_ok=row_last_ok, rowaddr=rowaddr,
                       rowvalid=rowvalid, gj=gj, col_ok=col_ok, colmode=colmode, ca=Ca)
        ch_next_c_nb = nxt.ch_next_c_nb

        # the window clear, in ROWSETUP's last cycle (row_i == k; every entry to ROWSETUP has
        # reset row_i, so the cycle before it is ROWSETUP at row_i == k - 1): a flip-flop set
        # that cycle before, so the clear's fan-out over the window register starts at a
        # register and not at the state decode and the row compare (the A7-35's ResNet-20
        # estimate had its worst path through that net)
        clr_q = Signal(name="clr_q")
        m.d.sync += clr_q.eq(0)
        m.d.comb += win_clr.eq(clr_q)

        with m.FSM(name="gather") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    ch_zero()
                    m.d.sync += [
                        use_pe.eq(self.use_pe_in), b_mac.eq(self.b_mac_in), b_id.eq(self.b_id_in),
                        b_first.eq(~self.use_pe_in & self.b_mac_in),
                        y.eq(ins.row0), x.eq(0), row_i.eq(0),
                        chunks_a.eq(Mux(self.use_pe_in, (ins.na + PC - 1) >> exact_log2(PC),
                                        (ins.na + Q - 1) >> exact_log2(Q))),
                        chunks_b.eq((ins.nb + Q - 1) >> exact_log2(Q)),
                    ]
                    m.next = "TILE_INIT"
            # once per tile: the ring positions of operand a's first window row (row0*stride -
            # pad, biased by ring*pad to stay non-negative: the same residue) and of operand b's
            # first row (row0, or 2*row0 for a stride-2 projection)
            with m.State("TILE_INIT"):
                drive_row(m, self.row, cols.r0_biased, da)
                cols.tile_products()
                m.d.sync += [ca_m1.eq(chunks_a - 1), ca_m2.eq(chunks_a - 2), cb_m1.eq(chunks_b - 1)]
                m.next = "TILE_INIT_A"
            with m.State("TILE_INIT_A"):
                cols.tile_sums()
                with m.If(~self.row.busy):
                    rows.start_a(self.row)
                    with m.If(b_mac | b_id):
                        m.next = "TILE_INIT_B"
                    with m.Else():
                        m.next = "ROWSETUP"
            with m.State("TILE_INIT_B"):
                drive_row(m, self.row, Mux(b_s2, ins.row0 << 1, ins.row0), db)
                m.next = "TILE_INIT_B2"
            with m.State("TILE_INIT_B2"):
                with m.If(~self.row.busy):
                    rows.start_b(self.row)
                    m.next = "ROWSETUP"

            # row table of the output row, one operand-a row per cycle (ring steps), then
            # src_b's row y (or 2y)
            with m.State("ROWSETUP"):
                with m.If(row_i < ins.k):
                    rows.setup(row_i, row_r, k_m1, clr_q)
                with m.Else():
                    set_gi(k_m1)
                    ch_zero()
                    m.d.sync += [*rows.operand_b_row(), gj.eq(k_m1),
                                 dual.eq(dual0), colmode.eq(0)]
                    if DUAL:
                        m.d.sync += win1.eq(0)
                    cols.x_first()
                    m.next = "GATHER_A"
                    with m.If(b_first):
                        m.next = "GATHER_B"
            # next output row: operand a's top row moves by the stride, b's by 1 (2 when strided)
            with m.State("ROWADV"):
                rows.advance(ins.stride == 2, b_s2, then=lambda: setattr(m, "next", "ROWSETUP"))

            # pattern operand: taps (k-1, k-1) down to (0, 0), one read of pe_cin channels per
            # cycle into window slot i*k_max + j (the engine's grid bit c*k_max^2 + i*k_max + j);
            # the beat is issued as the last tap lands, and the next chunk's first read goes out
            # in the same cycle: k^2 cycles per chunk
            with m.State("GATHER_A"):
                with m.If(use_pe):
                    read((row_cur + colC, row_cur_nb + colC), row_cur_ok & col_ok, 0,
                         gi * K + gj, (left_a, 0), dual)
                    with m.If(colmode):
                        # sliding window: only the new column j = k-1, rows k-1 .. 0
                        with m.If(gi == 0):
                            m.next = nxt.end
                        with m.Else():
                            set_gi(gi - 1, (ch * PC, ch_c_nb))
                    with m.Elif(gj == 0):
                        m.d.sync += [gj.eq(k_m1), colC.eq(acol + kC1)]
                        with m.If(gi == 0):
                            m.next = nxt.end
                        with m.Else():
                            set_gi(gi - 1, (ch * PC, ch_c_nb))
                    with m.Else():
                        m.d.sync += [gj.eq(gj - 1), colC.eq(colC - Ca)]
                with m.Else():
                    # 1x1 on the MAC array: mac_cols input channels cin0 + ch*Q .. per beat
                    # (ch is 0 here: a MAC operand's position starts in GATHER_A and its
                    # further chunks are read from ISSUE_A, at ma_next)
                    read((rowaddr[0] + mcol, rowaddr0_nb + mcol), rowvalid[0], 1, 0, (left_a, 0))
                    m.d.sync += [ma_next.eq(rowaddr[0] + mcol + Q), ma_next_nb.eq(rowaddr0_nb + mcol + Q)]
                    m.next = "ISSUE_A"
            if LR:
                with m.State("LAND_A"):
                    # (rtl_gen/gather_pass.py; a 1x1 pattern pass has no second read)
                    early_ok = Signal()
                    m.d.comb += early_ok.eq(self.window.ready & ~last_pass & (k_m1 != 0) &
                                            (~ops.h_valid if DUAL else 1))
                    nxt.land(early_ok)
                    with m.If(last_pass & b_id):
                        # the port is free (no early read after the last pass): the skip codes,
                        # in sk before ISSUE_B (gather_regs: skip_in)
                        read_skip()
                    m.next = "ISSUE_A"
            with m.State("ISSUE_A"):
                # the next pass's first read (or its second after LAND_A's early one), set up
                # (issued below if the beat goes)
                with m.If(use_pe):
                    nxt.issue_reads()
                with m.Else():
                    read((ma_next, ma_next_nb), rowvalid[0], 1, 0, (left_a, Q), go=False)
                    if LR:
                        with m.If(last_pass & b_id):
                            # the port is free with the last chunk's beat: the skip codes (again
                            # in each cycle the beat waits), in sk for ISSUE_B
                            read_skip()
                done_a = Signal()
                if CS:
                    # the shifted window goes to the column store for every cycle of ISSUE_A,
                    # the beat taken or not (the same data each time: the write does not wait
                    # on the engine's handshake), each a cycle later from the window register
                    # (OperandRegisters.window_update); the entry is read back no earlier
                    # than the next pass
                    with m.If(slide_ok):
                        m.d.comb += [cs_req.eq(1), cs_req_addr.eq(ch)]
                with m.If(use_pe):
                    m.d.comb += [pe_issue.eq(1), done_a.eq(pe_take)]
                with m.Else():
                    m.d.comb += [ma_issue.eq(1), self.pixel.payload.w_addr.eq(ins.wa + ch),
                                 self.pixel.payload.x_signed.eq(da.signed != 0),
                                 self.pixel.payload.first.eq(ch == 0),
                                 self.pixel.payload.last.eq(ch == ca_m1),
                                 done_a.eq(self.pixel.ready)]
                with m.If(done_a):
                    # (win is not cleared after a beat: a full pass rewrites every slot of the
                    # k x k window, a column pass starts from the stored or shifted window, and
                    # the slots outside the window stay zero from the row's start)
                    m.d.sync += xv.eq(0)
                    with m.If(last_pass):
                        ch_zero()
                        with m.If((b_mac | b_id) & ~b_first):
                            m.next = "GATHER_B"
                            if LR:
                                with m.If(b_id):
                                    m.next = "ISSUE_B"        # (read in LAND_A or above)
                        with m.Else():
                            m.next = "POS_NEXT"
                    with m.Else():
                        m.d.sync += [ch.eq(ch_next), ch_c_nb.eq(ch_next_c_nb),
                                     left_a.eq(left_a - Mux(use_pe, Mux(dual, 2 * PC, PC), Q))]
                        m.d.comb += rd_go.eq(1)           # (set up above)
                        m.d.sync += [ma_next.eq(ma_next + Q), ma_next_nb.eq(ma_next_nb + Q)]
                        with m.If(use_pe):
                            m.d.sync += dual.eq(nxt_dual)
                            nxt.taken(CS, cs_next)
                            m.next = "GATHER_A"
            with m.State("GATHER_B"):
                with m.If(b_mac):
                    read((rowb + bcolm, rowb_nb + bcolm), 1, 1, 0, (left_b, 0))     # (ch is 0 here)
                    m.d.sync += [mb_next.eq(rowb + bcolm + Q), mb_next_nb.eq(rowb_nb + bcolm + Q)]
                with m.Else():
                    read_skip()
                m.next = "ISSUE_B"
            with m.State("ISSUE_B"):
                with m.If(b_mac):
                    read((mb_next, mb_next_nb), 1, 1, 0, (left_b, Q), go=False)   # (issued below)
                    m.d.comb += [ma_issue.eq(1), self.pixel.payload.w_addr.eq(ins.wb + ch),
                                 self.pixel.payload.x_signed.eq(db.signed != 0),
                                 self.pixel.payload.first.eq(ch == 0),
                                 self.pixel.payload.last.eq(ch == cb_m1)]
                    with m.If(self.pixel.ready):
                        m.d.sync += xv.eq(0)
                        with m.If(ch == cb_m1):
                            ch_zero()
                            m.next = "POS_NEXT"
                            with m.If(b_first):
                                m.next = "GATHER_A"
                        with m.Else():
                            m.d.sync += [ch.eq(ch + 1), left_b.eq(left_b - Q), mb_next.eq(mb_next + Q),
                                         mb_next_nb.eq(mb_next_nb + Q)]
                            m.d.comb += rd_go.eq(1)
                with m.Else():
                    # (with the landing register the codes enter the queue from sk: after a
                    # MAC operand's last beat, a cycle later)
                    room = (skip_n != 2) | skip_pop
                    with m.If(room & ~ops.pend if LR else room):
                        m.d.comb += skip_push.eq(1)
                        m.next = "POS_NEXT"
            with m.State("POS_NEXT"):
                set_gi(k_m1)
                ch_zero()
                m.d.sync += [gj.eq(k_m1), dual.eq(dual0)]
                with m.If(cols.x_end):
                    m.d.sync += [y.eq(y + 1), row_i.eq(0)]
                    cols.x_first()
                    with m.If(y == y_last):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "ROWADV"
                with m.Else():
                    m.d.sync += colmode.eq(slide_ok)
                    cols.x_next()
                    with m.If(slide_ok):
                        # chunk 0's window, stored as its beat was issued (cs_r.addr is 0);
                        # without the store, the single chunk's window shifted in place. A
                        # single chunk's entry may be written in this very cycle (the store
                        # is written a cycle after ISSUE_A), so it loads next cycle, from
                        # cs_ra (then 0), as the position's first read goes out: that read
                        # lands a cycle later, into the loaded window, as before
                        if CS:
                            with m.If(ca_m1 == 0):
                                m.d.sync += cs_next.eq(1)
                            with m.Else():
                                m.d.comb += win_cs.eq(1)
                        else:
                            m.d.comb += win_cs.eq(1)
                    m.next = "GATHER_A"
                    with m.If(b_first):
                        m.next = "GATHER_B"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.release):
                    m.d.sync += [use_pe.eq(0), b_mac.eq(0), b_id.eq(0)]
                    m.next = "IDLE"
        if CS:
            m.d.comb += cs_r.addr.eq(Mux(fsm.ongoing("POS_NEXT"), 0, cs_ra))
        return m
