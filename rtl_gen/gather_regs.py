"""The Gather unit's operand registers: what a read brings and what the engines see.

The window register (a pattern beat's ``k_max^2`` taps of ``pe_cin`` channels), with a second
window and a hold register when one read returns two chunks; the MAC array's beat; the
identity skip's two-entry queue; the one pending activation read (memory latency 1) and the
merge of the landing read into what the engines see, so a beat is issued in the cycle its
last read lands; the column store of the sliding window. The sequencing (which read, when a
beat goes) is the Gather unit's FSM (rtl_gen/gather.py), whose latency and throughput these
registers serve.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from .actmem import rotated

__all__ = ["OperandRegisters"]


class OperandRegisters:
    """The operand registers of Gather ``g`` (its ports ``skip``, ``rvec``, ``raddr``,
    ``raddr_nb``), added to its module ``m``; ``lanes`` .. ``banks`` as Gather's.

    Attributes: the registers and controls the FSM drives or reads (``win``, ``win1``,
    ``hold`` ..., see the code), and :meth:`read`, which issues an activation read.
    """

    def __init__(self, m, g, *, lanes: int, pe_cin: int, mac_cols: int, k_max: int, a_bits: int, banks: int,
                 landing_reg: bool = False):
        L, PC, Q, K, AB, NB = lanes, pe_cin, mac_cols, k_max, a_bits, banks
        KK = K * K
        self._m, self._K, self._PC, self._AB = m, K, PC, AB
        # gather registers and the one pending read (memory latency 1)
        # (the window registers are reset-less: every slot is written or cleared at a row's
        # start before the engine sees it, and the reset net would reach thousands of
        # flip-flops beside their own clear)
        win = Signal(KK * PC * AB, reset_less=True)
        # (the MAC beat's register xv and the skip codes' sk: below, per landing_reg)
        # identity-skip codes waiting for the PostProcess: a two-entry queue (sk_out at its head),
        # so the gatherer can post a position's codes while the previous position's beat is
        # still in the pattern engine (with one entry the two waited on each other: 8.5 cycles
        # per position where the engine, the PostProcess and the writer each take 8)
        sk_out, sk_next = Signal(L * 8, name="sk_out"), Signal(L * 8, name="sk_next")
        skip_n = Signal(range(3))
        skip_push = Signal()               # the gatherer posts this cycle (ISSUE_B)
        skip_pop = Signal()                # the PostProcess takes the head this cycle
        m.d.comb += [g.skip.valid.eq(skip_n != 0), g.skip.payload.as_value().eq(sk_out),
                     skip_pop.eq(g.skip.valid & g.skip.ready)]
        pend = Signal()                # a read is in flight
        pend_dst = Signal(2)           # 0 window, 1 MAC vector, 2 skip
        pend_idx = Signal(16)
        # per byte of the vector: inside the operand's channel range (pend_mask), and the whole
        # read inside the image (pend_in), else the byte lands as zero; decided when the read is
        # issued, so the landing vector's mask is one gate from registers. The two are apart so
        # that the image test, a multiplexer over the state's row and column flags, ends at one
        # flip-flop and not at a register per byte (on the ECP5 that fan-out crossed the die:
        # the shipped overlay's critical path, docs/timing.md)
        pend_mask, pend_in = Signal(NB, name="pend_mask"), Signal(name="pend_in")

        def masked(n, width, first=0):
            return Cat(Mux(pend_in & pend_mask[first + i], g.rvec[first + i], 0)[:width]
                       for i in range(n))

        # the landing read's vectors, each built once: a window tap (chunk ch, and ch + 1 from
        # bytes pe_cin.. of a two-chunk read), a MAC beat, the skip codes
        land_tap, land_tap1 = Signal(PC * AB, name="land_tap"), Signal(PC * AB, name="land_tap1")
        # (a MAC beat's mask is its own register and q_ok its landing, low unless a MAC read
        # lands inside the image: its bytes then merge into xv_out with an OR, one gate with
        # the mask)
        q_mask, q_ok = Signal(Q, name="q_mask"), Signal(name="q_ok")
        # With ``landing_reg`` every register a read lands in (the window tap's, the waiting MAC
        # beat's, the skip codes') takes the banks' raw bytes (ActivationMemory.rraw) with the
        # rotation and the bytes' mask beside them, and rotates after it (actmem.rotated): no
        # logic between the block RAM and the register (the ECP5's DP16KD: docs/timing.md)
        land_ok = Cat(pend_in & pend_mask[i] for i in range(NB))     # the landing bytes inside

        def raw_reg(name, n):
            return (Signal(NB * 8, name=f"{name}_raw", reset_less=True), Signal(len(g.rlo), name=f"{name}_lo"),
                    Signal(n, name=f"{name}_ok"))
        DUAL = NB >= 2 * PC               # two chunks per tap read (below)
        # Two chunks per tap read: when a read returns at least 2 * pe_cin bytes, a gather pass
        # fills the windows of chunks ch (win) and ch + 1 (win1) together. win's beat is issued
        # as the pass ends and win1 moves into the hold register at the same time, which the
        # pattern engine takes next, while the gatherer goes on: the engine (a_bits cycles per
        # beat) rather than the gatherer (k^2 reads per pass) sets the pace.
        pend_dual = Signal()           # the pending window read also fills win1
        dual = Signal()                # the current pass covers chunks ch and ch + 1
        if DUAL:
            win1 = Signal(KK * PC * AB, reset_less=True)
            hold = Signal(KK * PC * AB, reset_less=True)
            h_valid, h_last = Signal(name="h_valid"), Signal(name="h_last")
            h_pat = Signal.like(g.window.payload.pat_addr)
        # A window tap's landing: ``tland`` (a tap lands this cycle), into slot ``tidx``, and
        # into win1 too where ``tdual``. With ``landing_reg`` the tap's bytes go through a
        # register first (the landing register, raw: rotated and masked after it): a tap lands
        # a cycle later (read latency 2), so the window register, its slot multiplexers and
        # the engine's window start at a flip-flop, not at the block RAM's read data through
        # the banks' rotation (the ECP5's DP16KD takes 5.83 ns to its output: docs/timing.md);
        # the gatherer issues a pass's first read a cycle early to keep its k or k^2 cycles
        # (rtl_gen/gather.py, LAND_A). The MAC beat keeps latency 1; the skip codes below.
        tland, tidx, tdual = Signal(name="tland"), Signal(16, name="tidx"), Signal(name="tdual")
        if landing_reg:
            nt = 2 * PC if DUAL else PC
            t_raw, t_lo, t_ok = raw_reg("tap", nt)
            m.d.sync += [t_raw.eq(g.rraw), t_lo.eq(g.rlo), t_ok.eq(land_ok[:nt]),
                         tland.eq(pend & (pend_dst == 0)), tidx.eq(pend_idx), tdual.eq(pend_dual)]
            t_vec = rotated(t_raw, t_lo, nt, t_ok)
            m.d.comb += land_tap.eq(Cat(t_vec[8 * i:8 * i + AB] for i in range(PC)))
            if DUAL:
                m.d.comb += land_tap1.eq(Cat(t_vec[8 * i:8 * i + AB] for i in range(PC, 2 * PC)))
        else:
            m.d.comb += [land_tap.eq(masked(PC, AB)), tland.eq(pend & (pend_dst == 0)), tidx.eq(pend_idx),
                         tdual.eq(pend_dual)]
            if DUAL:
                m.d.comb += land_tap1.eq(masked(PC, AB, PC))

        # A read: the state sets up its fields (rd_*, raddr) and raises rd_go; the pend_*
        # registers take the fields every cycle, pend alone takes rd_go.
        rd_go, rd_dst, rd_idx = Signal(name="rd_go"), Signal(2, name="rd_dst"), Signal(16, name="rd_idx")
        rd_mask, rd_in, rd_dual = Signal(NB, name="rd_mask"), Signal(name="rd_in"), Signal(name="rd_dual")
        m.d.sync += [pend.eq(rd_go), pend_dst.eq(rd_dst), pend_idx.eq(rd_idx), pend_mask.eq(rd_mask),
                     pend_in.eq(rd_in), q_mask.eq(rd_mask[:Q]), q_ok.eq(rd_go & (rd_dst == 1) & rd_in),
                     pend_dual.eq(rd_dual)]
        # the window register's controls in this cycle: the stored window, cleared, a tap
        # landing (kept as nets; the clear becomes the flip-flops' reset)
        win_cs, win_clr = Signal(attrs={"keep": 1}, name="win_cs"), Signal(attrs={"keep": 1}, name="win_clr")
        win_land = Signal(attrs={"keep": 1})
        m.d.comb += win_land.eq(tland)
        if DUAL:
            with m.If(tland & tdual):
                m.d.sync += win1.word_select(tidx[:ceil_log2(KK + 1)], PC * AB).eq(land_tap1)
        if landing_reg:
            # the waiting MAC beat (xv: its bytes' mask, cleared as the beat goes) and the skip
            # codes (sk), raw; what leaves for the MAC array is raw too (x_raw_out, x_lo_out,
            # x_ok_out: the top's register before the MAC array rotates after it), and rotated
            # in xv_out for a reader without that register
            x_raw, x_lo, xv = raw_reg("xv", Q)
            s_raw, s_lo, s_ok = raw_reg("sk", L)
            with m.If(pend):
                with m.Switch(pend_dst):
                    with m.Case(1):
                        m.d.sync += [x_raw.eq(g.rraw), x_lo.eq(g.rlo), xv.eq(Mux(q_ok, q_mask, 0))]
                    with m.Case(2):
                        m.d.sync += [s_raw.eq(g.rraw), s_lo.eq(g.rlo), s_ok.eq(land_ok[:L])]
            sk = rotated(s_raw, s_lo, L, s_ok)
            # (xv is zero whenever a MAC read lands: below)
            self.x_raw_out = Mux(q_ok, g.rraw.as_value(), x_raw)
            self.x_lo_out = Mux(q_ok, g.rlo, x_lo)
            self.x_ok_out = Mux(q_ok, q_mask, xv)
        else:
            # the landing read's MAC beat and skip codes (rotated by the activation memory)
            xv, sk = Signal(Q * 8, name="xv"), Signal(L * 8, name="sk")
            land_q, land_sk = Signal(Q * 8, name="land_q"), Signal(L * 8, name="land_sk")
            m.d.comb += [land_q.eq(Cat(Mux(q_ok & q_mask[i], g.rvec[i], 0) for i in range(Q))),
                         land_sk.eq(masked(L, 8))]
            with m.If(pend):
                with m.Switch(pend_dst):
                    with m.Case(1):
                        m.d.sync += xv.eq(land_q)
                    with m.Case(2):
                        m.d.sync += sk.eq(land_sk)
        # What the engines see: the gather registers with the read landing this cycle merged
        # in, so a beat is issued in the cycle its last read lands. The last tap of a window
        # is always slot 0 (taps are read from (k-1, k-1) down to (0, 0)).
        win_out = Signal(KK * PC * AB)
        xv_out = Signal(Q * 8)
        # (xv holds a MAC beat only while it waits, and no MAC read lands then: the next one
        # is issued as the beat is taken, which clears xv)
        m.d.comb += win_out.eq(win)
        if landing_reg:
            m.d.comb += xv_out.eq(rotated(self.x_raw_out, self.x_lo_out, Q, self.x_ok_out))
        else:
            m.d.comb += xv_out.eq(land_q | xv)
        # the last read of a full pass lands in slot 0, that of a column pass (sliding window)
        # in slot k - 1
        for slot in sorted({0} | {kk - 1 for kk in (3, 5, 7) if kk <= K}):
            with m.If(tland & (tidx == slot)):
                m.d.comb += win_out.word_select(slot, PC * AB).eq(land_tap)

        def read(addr, inside, dst, idx, cnt, both=0, go=True):
            """Issue one activation read this cycle (its data lands next cycle). ``addr``: the
            byte address and the same plus NB, each one adder from registers. ``cnt``:
            (``left``, ``off``), the channels of the vector inside the operand being
            ``left - off``. ``go=False`` sets the read up without issuing it: a state does so
            whether or not it reads (a read nobody waits for is harmless) and raises ``rd_go``
            where it decides, so the handshake that decides does not select the address and
            the fields (timing)."""
            m.d.comb += [g.raddr.eq(addr[0]), g.raddr_nb.eq(addr[1])]
            left, off = cnt       # the read's channels inside: left - off (off: a constant or
            #                        a choice of two), byte i inside iff left > i + off
            if isinstance(off, tuple):
                sel, o1, o0 = off
                mask = Cat(Mux(sel, left > i + o1, left > i + o0) for i in range(NB))
            else:
                mask = Cat(left > i + off for i in range(NB))
            m.d.comb += [rd_dst.eq(dst), rd_idx.eq(idx), rd_dual.eq(both), rd_in.eq(inside), rd_mask.eq(mask)]
            if go:
                m.d.comb += rd_go.eq(1)

        # The skip codes enter the queue from the landing read (latency 1), or with
        # ``landing_reg`` from ``sk`` alone: their read then goes out two cycles before the push
        # (rtl_gen/gather.py, LAND_A), so the queue's input multiplexer starts at a flip-flop
        # and not at the block RAM's read data
        skip_in = sk if landing_reg else Mux(pend, land_sk, sk)
        with m.If(skip_pop):
            with m.If(skip_push):
                with m.If(skip_n == 2):
                    m.d.sync += [sk_out.eq(sk_next), sk_next.eq(skip_in)]
                with m.Else():
                    m.d.sync += sk_out.eq(skip_in)
            with m.Else():
                m.d.sync += [sk_out.eq(sk_next), skip_n.eq(skip_n - 1)]
        with m.Elif(skip_push):
            with m.If(skip_n == 0):
                m.d.sync += sk_out.eq(skip_in)
            with m.Else():
                m.d.sync += sk_next.eq(skip_in)
            m.d.sync += skip_n.eq(skip_n + 1)

        self.read = read
        self.win = win
        self.xv = xv
        self.sk = sk
        self.skip_n = skip_n
        self.skip_push = skip_push
        self.skip_pop = skip_pop
        self.pend = pend
        self.pend_dst = pend_dst
        self.pend_idx = pend_idx
        self.tland, self.tidx, self.tdual = tland, tidx, tdual
        self.land_tap = land_tap
        self.land_tap1 = land_tap1
        self.DUAL = DUAL
        self.pend_dual = pend_dual
        self.dual = dual
        self.rd_go = rd_go
        self.win_cs = win_cs
        self.win_clr = win_clr
        self.win_land = win_land
        self.win_out = win_out
        self.xv_out = xv_out
        if DUAL:
            self.win1 = win1
            self.hold = hold
            self.h_valid = h_valid
            self.h_last = h_last
            self.h_pat = h_pat

    def hold_stage(self, window, pe_take, win_field, pat_field, next_pat, next_last) -> None:
        """Two chunks per read: the hold register's beat goes to the pattern engine (stream
        ``window``, whose ``win_field`` and ``pat_field`` it drives) before the gatherer's own
        (``pe_take`` low meanwhile). The hold register follows win1 (with the landing tap of
        chunk ch + 1) and its beat's fields (``next_pat``, ``next_last``) while it is free, and
        is taken when win's beat goes: its enable is h_valid, not the engine's handshake. win1
        is not cleared per pass: a two-chunk pass reads every tap of the k x k window (no
        sliding), so it rewrites every slot the engine counts; the slots outside it stay zero
        from the row's start (ROWSETUP)."""
        m, PC, AB = self._m, self._PC, self._AB
        win1_out = Signal(len(self.win1))
        m.d.comb += win1_out.eq(self.win1)
        with m.If(self.tland & self.tdual):
            m.d.comb += win1_out[:PC * AB].eq(self.land_tap1)
        with m.If(self.h_valid):
            m.d.comb += [win_field.eq(self.hold), pat_field.eq(self.h_pat),
                         window.payload.first.eq(0), window.payload.last.eq(self.h_last),
                         window.valid.eq(1), pe_take.eq(0)]
            with m.If(window.ready):
                m.d.sync += self.h_valid.eq(0)
        with m.If(~self.h_valid):
            m.d.sync += [self.hold.eq(win1_out), self.h_pat.eq(next_pat), self.h_last.eq(next_last)]
        with m.If(pe_take & self.dual):
            m.d.sync += self.h_valid.eq(1)

    def window_update(self, *, column_store: bool, max_cin: int):
        """The window register's next value (cleared, loaded from the column store or shifted,
        a tap landing) and the column store (``column_store``: one entry per chunk of the
        widest operand, ``max_cin / pe_cin``). Returns the store's read port ``cs_r`` (None
        without it), its write request ``(cs_req, cs_req_addr)`` and ``cs_next``, which loads
        the stored window next cycle.

        A write requested in a cycle (the gatherer's ISSUE_A, while a chunk's beat is offered)
        is made in the next one, from the window register: by then the beat's last tap, which
        lands in the request's first cycle, is in it, and the register still holds the beat
        (the next pass changes it at the end of that cycle at the earliest). So the store's
        write data start at a register, not at the activation memory's read data through the
        landing merge (the ECP5's block RAM is slow to its output: that path was the small
        overlay's critical one). The entry written is read back no earlier than the cycle
        after (a single-chunk operand's next position loads it a cycle later: rtl_gen/gather.py,
        POS_NEXT)."""
        m, K, PC, AB = self._m, self._K, self._PC, self._AB
        KK = K * K
        CS = column_store
        win, win_out, win_clr, win_cs, win_land = self.win, self.win_out, self.win_clr, self.win_cs, self.win_land
        tidx, land_tap = self.tidx, self.land_tap
        cs_r = None
        cs_req, cs_req_addr = Signal(name="cs_req"), Signal(range(max(2, max_cin // PC)), name="cs_req_addr")
        TAP = PC * AB
        if CS:
            m.submodules.column_store = cstore = Memory(shape=K * (K - 1) * TAP,
                                                        depth=max(2, max_cin // PC), init=[])
            cs_r, cs_w = cstore.read_port(domain="comb"), cstore.write_port()
            # written: window slots (i, j + 1) for j < k_max - 1; read back into slots (i, j)
            cs_we, cs_wa = Signal(name="cs_we"), Signal.like(cs_w.addr)
            m.d.sync += [cs_we.eq(cs_req), cs_wa.eq(cs_req_addr)]
            m.d.comb += [cs_w.en.eq(cs_we), cs_w.addr.eq(cs_wa),
                         cs_w.data.eq(Cat(*[win.word_select(i * K + j + 1, TAP)
                                            for i in range(K) for j in range(K - 1)]))]
            win_stored = Cat(*[cs_r.data.word_select(i * (K - 1) + j, TAP) if j + 1 < K else Const(0, TAP)
                               for i in range(K) for j in range(K)])
        else:
            win_shifted = Cat(*[win_out.word_select(i * K + j + 1, TAP) if j + 1 < K else Const(0, TAP)
                                for i in range(K) for j in range(K)])
        # clear first (at a row's start, never with the stored window: a flip-flop reset from
        # the state alone), then the stored window (the shifted one without the store), then
        # a landing tap
        # (a tap landing in the cycle the stored window loads goes into its slot of it)
        with m.If(win_clr):
            m.d.sync += win.eq(0)
        with m.Else():
            with m.If(win_cs):
                m.d.sync += win.eq(win_stored if CS else win_shifted)
            with m.If(win_land):
                m.d.sync += win.word_select(tidx[:ceil_log2(KK + 1)], PC * AB).eq(land_tap)
        # win_cs after a beat is taken: one cycle later (cs_next), from a flip-flop, so the
        # engine's handshake does not reach the window register's thousands of bits
        cs_next = Signal()
        m.d.sync += cs_next.eq(0)
        m.d.comb += win_cs.eq(cs_next)
        return cs_r, (cs_req, cs_req_addr), cs_next
