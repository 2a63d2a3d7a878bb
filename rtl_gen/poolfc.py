"""PoolFC: global average pooling's per-channel sums and the FC layer, into the logit memory.

``POOL_FC`` over the rows ``[row0, row0 + rows)`` of ``src_a`` adds each byte to its
channel's 32-bit sum (pool-sum memory, cleared before the inference's first band); with
``FLAG_FINAL`` the FC follows on the MAC array for classes ``c0 .. c0 + tc`` (its weight
words from ``wa``, its ``M``, ``B`` from ``prm``; ``FLAG_FC_MORE``: more such chunks follow,
each after its weights are loaded, and the sums stay for them): one pass per byte plane of the
sums (the array takes uint8) up to the instruction's ``fc_planes`` (0: all four; the compiler
gives the planes that hold every sum, :func:`sephw.arch.isa.pool_sum_planes`: two for a 7x7
map of 8-bit codes), ``mac_cols`` sums gathered per beat, planes combined
``sum_b acc_b << 8b`` in int64 (one lane per cycle), then ``logit = acc * M + B`` (a
shift-and-add multiply, one bit of M per cycle) into the logit memory. A signed source
(its descriptor's ``signed``: two's complement codes, docs/numerics.md) adds each byte
sign-extended, so a sum is two's complement in 32 bits, and its top byte plane (the last of
``fc_planes``) goes to the MAC array as int8 (the beat's ``x_signed``; an unpacked array).

Latency / throughput (the compiler's POOL_FC model, sephw/compiler/hw.py):
- clear: ``channels`` cycles, once per inference;
- pool: per row one RowAddress (19 cycles) + one byte per cycle (each byte is added to its
  channel's sum two cycles after its read, pipelined: R, L, W);
- FC per block of ``lanes`` outputs: per byte plane (``fc_planes``) ``n_cb * mac_cols + 2``
  gather and issue cycles (one sum read per cycle, a beat issued from an output register as
  its last sum lands while the next beat's reads go on), 5 until the accumulators,
  ``lanes - 1`` lane adds; then ``2 + 32`` cycles per logit.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from sephw.arch import isa
from sephw.arch.formats import PARAM_WORD, TENSOR_DESC
from sephw.arch.isa import FLAG_FC_MORE, FLAG_FINAL

from .actmem import rotated
from .rowaddr import ROW_PORT, drive_row, row_bytes_reg

__all__ = ["PoolFC", "SUM_BITS", "FC_MUL_CYCLES"]

SUM_BITS = 32          # pool sums (two's complement); the FC runs over its 4 byte planes
FC_MUL_CYCLES = 32     # the FC's serial multiply: one bit of the 32-bit M per cycle


class PoolFC(wiring.Component):
    """Pool sums and FC (see the module docstring).

    Parameters
    ----------
    lanes, mac_cols : int
        The MAC array's rows (FC outputs per block) and columns (sums per beat).
    pixel_layout : Layout
        The MAC array's ``pixel`` payload (``x``, ``w_addr``, ``first``, ``last``).
    channels : int
        Depth of the pool-sum memory (the widest pooled tensor).
    classes : int
        Depth of the logit memory.
    param_addr_bits : int
        Address width of the parameter memory (``M`` and ``B`` of each logit).

    Attributes
    ----------
    start : In(1), done : Out(1)
    ins : In(isa.WORD layout), src : In(TENSOR_DESC layout)
    row : Out(ROW_PORT)
    raddr : Out(32), rbyte : In(8)
        The activation memory's read (zero when not reading) and byte 0 of its vector.
    rraw : In(ArrayLayout(8, raw_banks)), rlo : In(max(1, log2 raw_banks)) (with ``raw_banks``)
        The same read unrotated and its rotation (ActivationMemory), in place of ``rbyte``:
        the byte's landing register takes the banks' raw bytes, and the bank is chosen after it.
    fc_active : Out(1)
        The FC owns the MAC array (``pixel`` and ``acc``).
    pixel : Out(stream.Signature(pixel_layout)), acc : In(stream.Signature(ArrayLayout(signed(32), lanes)))
    prm_addr : Out(param_addr_bits), prm : In(PARAM_WORD layout)
        The parameter memory's read port (one cycle latency).
    logit_w_addr : Out(range(classes)), logit_w_data : Out(signed(64)), logit_w_en : Out(1)
    """

    def __init__(self, lanes: int, mac_cols: int, pixel_layout, channels: int, classes: int,
                 param_addr_bits: int, raw_banks: int = 0):
        exact_log2(mac_cols)
        self._lanes, self._cols = lanes, mac_cols
        self._channels, self._classes = max(2, channels), max(2, classes)
        self._raw = raw_banks
        read = ({"rraw": In(data.ArrayLayout(8, raw_banks)), "rlo": In(max(1, exact_log2(raw_banks)))}
                if raw_banks else {"rbyte": In(8)})
        super().__init__({
            "start": In(1), "done": Out(1),
            "ins": In(isa.WORD.layout()), "src": In(TENSOR_DESC.layout()),
            "row": Out(ROW_PORT),
            "raddr": Out(32), **read,
            "fc_active": Out(1),
            "pixel": Out(stream.Signature(pixel_layout)),
            "acc": In(stream.Signature(data.ArrayLayout(signed(32), lanes))),
            "prm_addr": Out(param_addr_bits), "prm": In(PARAM_WORD.layout()),
            "logit_w_addr": Out(range(self._classes)), "logit_w_data": Out(signed(64)),
            "logit_w_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L, Q = self._lanes, self._cols
        ins, da = self.ins, self.src
        m.submodules.pool_sums = sums = Memory(shape=SUM_BITS, depth=self._channels, init=[])
        sums_r, sums_w = sums.read_port(), sums.write_port()
        m.d.comb += sums_r.en.eq(1)

        y = Signal(16)
        e = Signal(32)
        cc = Signal(16)
        rowb = Signal(32)
        pool_clear = Signal(init=1)         # the next POOL_FC is the inference's first
        # Pool pipeline, one byte per cycle: R (the byte's read goes out, cc its channel) ->
        # L (the byte lands and is registered; its channel's sum is read) -> W (the sum lands,
        # sum + byte is written). Neither the activation banks' output multiplexer nor the sum
        # memory's output feeds an adder that also sees the other.
        src_signed = Signal()               # the codes (and so the sums) are two's complement
        rd_issue = Signal()                 # R: a byte read goes out this cycle
        l_valid, w_valid = Signal(name="l_valid"), Signal(name="w_valid")
        l_cw, w_cw = Signal(16, name="l_cw"), Signal(16, name="w_cw")
        w_byte = Signal(8)
        pool_last = Signal(SUM_BITS)        # the sum written last cycle
        pool_fwd = Signal()                 # ... is the one read: use it

        # FC: the sums of one beat (one byte plane) gathered into xv, one read per cycle; a
        # whole beat moves to the output register xo as its last read lands (or waits in xv,
        # ``hold``, while xo is still offered), so the next beat's reads go on meanwhile
        xv = Signal(Q * 8)
        pend, pend_in = Signal(name="pend"), Signal(name="pend_in")
        pend_idx = Signal(16)
        pend_last = Signal(name="pend_last")        # the landing read is its beat's last
        pend_ch, xo_ch = Signal(16, name="pend_ch"), Signal(16, name="xo_ch")   # the beat's chunk
        xo = Signal(Q * 8, name="xo")
        xo_valid, hold = Signal(name="xo_valid"), Signal(name="hold")
        hold_ch = Signal(16, name="hold_ch")
        plane = Signal(2)
        last_plane = Signal(2, name="last_plane")  # fc_planes - 1 (mod 4: 0 is all four planes)
        ch, q = Signal(16, name="ch"), Signal(16, name="q")
        ta = Signal(16)                     # channel of the MAC term
        m.d.comb += ta.eq(ch * Q + q)
        m.d.sync += pend.eq(0)
        xv_m = Signal(Q * 8, name="xv_m")           # xv with the landing byte in place
        m.d.comb += xv_m.eq(xv)
        with m.If(pend):
            m.d.comb += xv_m.word_select(pend_idx[:ceil_log2(Q + 1)], 8).eq(
                Mux(pend_in, sums_r.data.word_select(plane, 8), 0))
            m.d.sync += xv.eq(xv_m)
        xo_free = Signal(name="xo_free")            # xo takes a beat at this edge
        m.d.comb += xo_free.eq(~xo_valid | self.pixel.ready)
        with m.If(self.pixel.ready):
            m.d.sync += xo_valid.eq(0)
        with m.If(hold & xo_free):
            m.d.sync += [xo.eq(xv), xo_ch.eq(hold_ch), xo_valid.eq(1), hold.eq(0)]
        with m.Elif(pend & pend_last):
            with m.If(xo_free):
                m.d.sync += [xo.eq(xv_m), xo_ch.eq(pend_ch), xo_valid.eq(1)]
            with m.Else():
                m.d.sync += [hold.eq(1), hold_ch.eq(pend_ch)]
        # a read goes out unless a whole beat is (or is about to be) stuck in xv
        fc_read_ok = Signal(name="fc_read_ok")
        m.d.comb += fc_read_ok.eq(xo_free | ~(hold | (pend & pend_last)))

        acc_fc = Array(Signal(signed(64), name=f"acc_fc{l}") for l in range(L))
        fc_l = Signal(range(L))                     # FC_ACC: the lane being added
        fc_pay = Array(self.acc.payload[l] for l in range(L))
        # FC_MUL: multiplicand (shifted), product
        fc_mc, fc_prod = Signal(64, name="fc_mc"), Signal(64, name="fc_prod")
        fc_mp = Signal(32)                          # multiplier M (shifted)
        fc_i = Signal(range(FC_MUL_CYCLES))
        ob, p_out = Signal(16, name="ob"), Signal(16, name="p_out")
        n_cb = Signal(16)
        w_ob = Signal(24)                           # block ob's first weight word, wa + ob * n_cb
        fc_end = Signal()                           # ob * L >= tc, registered as ob moves
        # the logit's index ob * L + p_out and FC_OUT's end test, registers stepped with ob and
        # p_out: no multiply-add in front of the compare, the parameter and logit addresses
        ob_l = Signal(16, name="ob_l")              # ob * L
        o_idx = Signal(16, name="o_idx")            # ob * L + p_out
        out_end = Signal(name="out_end")            # (p_out == L) | (o_idx >= tc)

        # the end row, a row's bytes and the last channel, following the instruction and
        # descriptor (set by the cycle of start): no multiplier or adder in front of the compares
        y_end, c_m1, e_last = Signal(16, name="y_end"), Signal(16, name="c_m1"), Signal(32, name="e_last")
        row_end = Signal()          # y == y_end, registered as y moves (ROW's decision)
        rb = row_bytes_reg(m, da, "rb")
        m.d.sync += [y_end.eq(ins.row0 + ins.rows), c_m1.eq(da.channels - 1), e_last.eq(rb - 1),
                     last_plane.eq(ins.fc_planes - 1)]

        c_is1 = Signal()
        m.d.sync += [c_is1.eq(da.channels == 1), src_signed.eq(da.signed != 0)]
        m.d.sync += [l_valid.eq(rd_issue), l_cw.eq(cc), w_valid.eq(l_valid), w_cw.eq(l_cw),
                     pool_fwd.eq(w_valid & c_is1)]
        if self._raw:
            # (raw_banks) the landing register takes every bank's byte; the one read is chosen
            # after it, at W
            w_raw = Signal(8 * self._raw, name="w_raw", reset_less=True)
            w_lo = Signal(len(self.rlo), name="w_lo")
            m.d.sync += [w_raw.eq(self.rraw), w_lo.eq(self.rlo)]
            m.d.comb += w_byte.eq(rotated(w_raw, w_lo, 1))
        else:
            m.d.sync += w_byte.eq(self.rbyte)
        with m.If(l_valid):
            m.d.comb += sums_r.addr.eq(l_cw)
        with m.If(w_valid):
            # with one channel the sum read in the cycle of its own write is stale: the
            # written value is forwarded
            w_ext = Cat(w_byte, (w_byte[7] & src_signed).replicate(SUM_BITS - 8))
            pool_sum = (Mux(pool_fwd, pool_last, sums_r.data) + w_ext)[:SUM_BITS]
            m.d.comb += [sums_w.addr.eq(w_cw), sums_w.data.eq(pool_sum), sums_w.en.eq(1)]
            m.d.sync += pool_last.eq(pool_sum)

        def pool_read():
            """Read byte e of the row (it lands next cycle, its sum is written the cycle after)."""
            m.d.comb += [self.raddr.eq(rowb + e), rd_issue.eq(1)]
            m.d.sync += [e.eq(e + 1), cc.eq(Mux(cc == c_m1, 0, cc + 1))]

        m.d.comb += [self.pixel.valid.eq(xo_valid), self.pixel.payload.x.eq(xo),
                     self.pixel.payload.w_addr.eq(w_ob + xo_ch),
                     self.pixel.payload.first.eq(xo_ch == 0), self.pixel.payload.last.eq(xo_ch == n_cb - 1),
                     self.pixel.payload.x_signed.eq(src_signed & (plane == last_plane))]

        with m.FSM(name="poolfc"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [y.eq(ins.row0), row_end.eq(ins.rows == 0)]
                    m.next = "START"
            with m.State("START"):
                m.d.sync += cc.eq(0)
                with m.If(pool_clear):
                    m.next = "CLR"
                with m.Else():
                    m.next = "ROW"
            with m.State("CLR"):
                m.d.comb += [sums_w.addr.eq(cc), sums_w.data.eq(0), sums_w.en.eq(1)]
                m.d.sync += cc.eq(cc + 1)
                with m.If(cc == c_m1):
                    m.d.sync += pool_clear.eq(0)
                    m.next = "ROW"
            with m.State("ROW"):
                with m.If(row_end):
                    with m.If(ins.flags[FLAG_FINAL.bit_length() - 1]):
                        m.d.sync += [ob.eq(0), ob_l.eq(0), self.fc_active.eq(1), w_ob.eq(ins.wa),
                                     fc_end.eq(ins.tc == 0),
                                     n_cb.eq((da.channels + Q - 1) >> exact_log2(Q))]
                        m.next = "FC_OB"
                    with m.Else():
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                with m.Else():
                    drive_row(m, self.row, y, da)
                    m.next = "ROW2"
            with m.State("ROW2"):
                with m.If(~self.row.busy):
                    m.d.sync += [rowb.eq(self.row.addr), e.eq(0), cc.eq(0)]
                    m.next = "POOL"
            # one byte read per cycle (the pipeline above adds it to its channel's sum two
            # cycles later, while ROW already runs after a row's last byte)
            with m.State("POOL"):
                pool_read()
                with m.If(e == e_last):
                    m.d.sync += [y.eq(y + 1), row_end.eq(y + 1 == y_end)]
                    m.next = "ROW"
            with m.State("FC_OB"):
                with m.If(fc_end):
                    # an FC chunk that more chunks follow keeps the sums for them
                    m.d.sync += [pool_clear.eq(~ins.flags[FLAG_FC_MORE.bit_length() - 1]), self.fc_active.eq(0)]
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [plane.eq(0), ch.eq(0), q.eq(0)]
                    m.d.sync += [acc_fc[l].eq(0) for l in range(L)]
                    m.next = "FC_GATHER"
            # Q reads per beat back to back (while xo can take the beat before); the plane's
            # last beat read, FC_ISSUE waits for its transfer
            with m.State("FC_GATHER"):
                with m.If(fc_read_ok):
                    m.d.comb += sums_r.addr.eq(ta)
                    m.d.sync += [pend.eq(1), pend_in.eq(ta < da.channels), pend_idx.eq(q),
                                 pend_last.eq(q == Q - 1), pend_ch.eq(ch)]
                    with m.If(q == Q - 1):
                        m.d.sync += q.eq(0)
                        with m.If(ch == n_cb - 1):
                            m.d.sync += ch.eq(0)
                            m.next = "FC_ISSUE"
                        with m.Else():
                            m.d.sync += ch.eq(ch + 1)
                    with m.Else():
                        m.d.sync += q.eq(q + 1)
            with m.State("FC_ISSUE"):
                with m.If(xo_valid & self.pixel.ready & (xo_ch == n_cb - 1)):
                    m.next = "FC_ACC"
            # one lane per cycle through one 64-bit adder (the FC runs once per inference; L
            # adders of 64 bits were ~1,000 LUTs)
            with m.State("FC_ACC"):
                with m.If(self.acc.valid):
                    # the accumulators rotate by one per lane (lane fc_l's is acc_fc[0] here,
                    # and back in its place after the L-th): no multiplexer in front of the adder
                    m.d.sync += acc_fc[L - 1].eq(acc_fc[0] + (fc_pay[fc_l] << (plane * 8)))
                    m.d.sync += [acc_fc[i].eq(acc_fc[i + 1]) for i in range(L - 1)]
                    with m.If(fc_l == L - 1):
                        m.d.comb += self.acc.ready.eq(1)
                        m.d.sync += [fc_l.eq(0), plane.eq(plane + 1)]
                        with m.If(plane == last_plane):
                            # FC_OB let this block in only with ob * L < tc, so its first
                            # logit is never past the end
                            m.d.sync += [p_out.eq(0), o_idx.eq(ob_l), out_end.eq(0)]
                            m.next = "FC_OUT"
                        with m.Else():
                            m.next = "FC_GATHER"
                    with m.Else():
                        m.d.sync += fc_l.eq(fc_l + 1)
            with m.State("FC_OUT"):
                m.d.comb += self.prm_addr.eq(ins.prm + o_idx)
                with m.If(out_end):
                    m.d.sync += [ob.eq(ob + 1), ob_l.eq(ob_l + L), w_ob.eq(w_ob + n_cb),
                                 fc_end.eq(ob_l + L >= ins.tc)]
                    m.next = "FC_OB"
                with m.Else():
                    m.next = "FC_OUT2"
            # logit = acc * M + B (mod 2^64): a shift-and-add multiplier, one bit of M per cycle
            # (a 64 x 32-bit multiplier took about 8 DSP48E1 for 10 logits per inference)
            with m.State("FC_OUT2"):
                m.d.sync += [fc_mc.eq(acc_fc[p_out[:ceil_log2(L + 1)]]), fc_mp.eq(self.prm.m_a),
                             fc_prod.eq(self.prm.bias), fc_i.eq(0)]
                m.next = "FC_MUL"
            with m.State("FC_MUL"):
                # bit 31 of M (two's complement) weighs -2^31
                fc_next = (fc_prod + Mux(fc_mp[0], Mux(fc_i == FC_MUL_CYCLES - 1, -fc_mc, fc_mc), 0))[:64]
                m.d.sync += [fc_prod.eq(fc_next), fc_mc.eq(fc_mc << 1), fc_mp.eq(fc_mp >> 1), fc_i.eq(fc_i + 1)]
                # p_out and o_idx hold until the last cycle, which steps them: the end test of
                # the next logit, ready when FC_OUT looks at it
                m.d.sync += out_end.eq((p_out + 1 == L) | (o_idx + 1 >= ins.tc))
                with m.If(fc_i == FC_MUL_CYCLES - 1):
                    m.d.comb += [self.logit_w_addr.eq(ins.c0 + o_idx), self.logit_w_en.eq(1),
                                 self.logit_w_data.eq(fc_next)]
                    m.d.sync += [p_out.eq(p_out + 1), o_idx.eq(o_idx + 1)]
                    m.next = "FC_OUT"
        return m
