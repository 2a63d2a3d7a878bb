"""PostProcess: the fused requantization rule of docs/numerics.md."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import check_int

__all__ = ["PostProcess", "feed_post_process"]

M_WIDTH = 16      # per-channel multipliers M_a, M_b: signed 16-bit
BIAS_WIDTH = 48   # per-channel bias B: signed 48-bit
SHIFT_MAX = 47    # per-channel shift S: 0..47


class PostProcess(wiring.Component):
    """Fused post-process ``y = clamp((acc_a*M_a + acc_b*M_b + B + 2^(S-1)) >> S, lo, hi)``.

    ``>>`` is an arithmetic shift (round half up), ``2^(S-1)`` is 0 for ``S == 0``. One input
    beat is a vector of ``lanes`` accumulators (channels ``param_base + l``); with
    ``inputs == 2`` a beat of ``acc_a`` and a beat of ``acc_b`` are joined (PRB: pattern +
    1×1 accumulators; residual add). Channel ``c``'s ``M_a, M_b, B, S`` are word ``c`` of the
    parameter memory. The lanes of a vector are processed ``units`` per cycle (default one)
    through a 6-stage pipeline (7 with ``mul18``; one multiplier per input and unit instead of one per lane), so
    a vector takes ``lanes / units`` cycles and vectors stream back to back.

    Parameters
    ----------
    lanes : int
        Accumulators per input beat (= the producing engine's lanes / rows).
    inputs : int
        1 or 2 accumulator streams.
    acc_width : int
        Accumulator width (signed), at most 32.
    out_width : int
        Output code width (signed two's complement; ``lo``/``hi`` choose the range).
    param_depth : int
        Words (channels) in the parameter memory.
    m_b_width : int
        Width of ``M_b`` (signed, default 16). An identity skip's ``M_b`` takes the DSP's
        25-bit port (docs/numerics.md section 4), so the accelerator top uses 25.
    mul18 : bool
        The board's multipliers are 18 x 18 (the ECP5's MULT18X18D): each product is split
        into partial products of at most 18 x 18 bits, registered, and summed a stage later
        (one pipeline stage more), so no multiplier's output runs on through the adder that
        joins the pieces in the same cycle (``EngineConfig.mul18``).
    units : int
        Lanes processed per cycle (a power of two dividing ``lanes``; default 1): ``units``
        copies of the pipeline, so a vector takes ``lanes / units`` cycles. The parameter
        memory is then ``units`` banks (channel ``c`` in bank ``c mod units``, written through the
        same port at address ``c``), and ``param_base`` must be a multiple of ``units``.

    Attributes
    ----------
    acc_a : In(stream.Signature(ArrayLayout(signed(acc_width), lanes)))
    acc_b : In(stream.Signature(ArrayLayout(signed(acc_width), lanes)))
        Only when ``inputs == 2``. A vector is taken into a holding register as soon as that
        is free (one vector ahead of the join), so the producer can finish its next vector
        while ``acc_a`` is still on its way.
    b_enable : In(1)
        Only when ``inputs == 2``; default 1. When 0, ``acc_b`` is not read and its term is
        0 (a one-accumulator layer of a two-input unit); change it only between layers, with
        no ``acc_b`` vector held.
    y : Out(stream.Signature(ArrayLayout(signed(out_width), lanes)))
    param_base : In(range(param_depth))
        Channel of lane 0 (run-time, per tile).
    lo, hi : In(signed(out_width))
        Clamp bounds (run-time, per layer; ReLU: ``0, 2^a_bits - 1``).
    param_w : Out(WritePort.Signature)
        Write port of the parameter memory (word: :attr:`param_layout`).
    """

    def __init__(self, *, lanes: int, inputs: int = 1, acc_width: int = 32, out_width: int = 9,
                 param_depth: int = 64, m_b_width: int = M_WIDTH, units: int = 1, mul18: bool = False):
        check_int("lanes", lanes, 1)
        check_int("inputs", inputs)
        if inputs not in (1, 2):
            raise ValueError(f"inputs must be 1 or 2, not {inputs}")
        check_int("acc_width", acc_width, 2, 32)
        check_int("out_width", out_width, 2, 32)
        check_int("param_depth", param_depth, 1)
        check_int("m_b_width", m_b_width, 2, 32)
        check_int("units", units, 1, lanes)
        if units & (units - 1) or lanes % units:
            raise ValueError(f"units must be a power of two dividing lanes ({lanes}), not {units}")
        self._units = units
        self._mul18 = bool(mul18)
        self._m_b_width = m_b_width
        self._lanes, self._inputs, self._acc_width = lanes, inputs, acc_width
        self._out_width, self._param_depth = out_width, param_depth
        acc_sig = stream.Signature(data.ArrayLayout(signed(acc_width), lanes))
        members = {"acc_a": In(acc_sig)}
        if inputs == 2:
            members["acc_b"] = In(acc_sig)
            members["b_enable"] = In(1, init=1)
        members.update({
            "y": Out(stream.Signature(data.ArrayLayout(signed(out_width), lanes))),
            "param_base": In(range(param_depth)),
            "lo": In(signed(out_width)),
            "hi": In(signed(out_width), init=2 ** (out_width - 1) - 1),
            "param_w": Out(WritePort.Signature(addr_width=ceil_log2(param_depth),
                                               shape=self.param_layout)),
        })
        super().__init__(members)

    lanes = property(lambda self: self._lanes, doc="Accumulators per input beat.")
    inputs = property(lambda self: self._inputs, doc="Number of accumulator streams.")
    acc_width = property(lambda self: self._acc_width, doc="Accumulator width (signed).")
    out_width = property(lambda self: self._out_width, doc="Output code width (signed).")
    param_depth = property(lambda self: self._param_depth, doc="Parameter memory words.")
    m_b_width = property(lambda self: self._m_b_width, doc="Width of M_b (signed).")
    units = property(lambda self: self._units, doc="Lanes processed per cycle.")

    @property
    def param_layout(self) -> data.StructLayout:
        """One parameter memory word (one channel)."""
        fields = {"m_a": signed(M_WIDTH)}
        if self._inputs == 2:
            fields["m_b"] = signed(self._m_b_width)
        fields["bias"] = signed(BIAS_WIDTH)
        fields["shift"] = range(SHIFT_MAX + 1)
        return data.StructLayout(fields)

    @staticmethod
    def _pieces(v):
        """The signed value ``v`` as pieces of at most 18 signed bits: ``[(piece, shift)]``
        (its low 17 bits zero-extended, then the rest with the sign)."""
        if len(v) <= 18:
            return [(v, 0)]
        assert len(v) - 17 <= 18, len(v)
        return [(Cat(v[:17], Const(0, 1)).as_signed(), 0), (v[17:].as_signed(), 17)]

    def _partials(self, m, a, b, name):
        """``a * b`` as 18 x 18 partial products assigned to registers in ``m``'s sync domain
        (under the caller's condition); returns their shifted sum, for the next stage."""
        terms = []
        for i, (pa, sa) in enumerate(self._pieces(a)):
            for j, (pb, sb) in enumerate(self._pieces(b)):
                p = Signal(signed(len(pa) + len(pb)), name=f"s2p_{name}_{i}{j}")
                m.d.sync += p.eq(pa * pb)
                terms.append(p << (sa + sb) if sa + sb else p)
        return sum(terms[1:], terms[0])

    def elaborate(self, platform):
        m = Module()
        lanes, two, U = self._lanes, self._inputs == 2, self._units
        lu = ceil_log2(U)

        # parameter memory: U banks, channel c in bank c mod U at word c // U
        rds = []
        for u in range(U):
            mem = Memory(shape=self.param_layout, depth=-(-self._param_depth // U), init=[])
            m.submodules[f"params{u}" if U > 1 else "params"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [wr.addr.eq(self.param_w.addr >> lu), wr.data.eq(self.param_w.data),
                         wr.en.eq(self.param_w.en & ((self.param_w.addr[:lu] == u) if U > 1 else 1))]
            rds.append(rd)

        advance = ~self.y.valid | self.y.ready

        # S0: the vector being serialized, U lanes per cycle (lane counter in steps of U).
        s0_busy = Signal()
        s0_lane = Signal(range(lanes))
        s0_a = Signal(self.acc_a.payload.shape())
        s0_b = Signal(self.acc_a.payload.shape()) if two else None
        s0_free = ~s0_busy | (s0_lane == lanes - U)
        take = Signal()
        if two:
            # acc_b is taken into a holding register as soon as it is free (the vector after the
            # one being joined): its producer (the MAC array, whose pipeline stalls while its
            # output waits) can finish the next vector while acc_a is still on its way.
            b_hold = Signal(self.acc_b.payload.shape())
            b_full = Signal()
            b_ok = b_full | ~self.b_enable
            # (empty, the register follows the payload: its enable is b_full alone, no handshake)
            m.d.comb += [
                self.acc_a.ready.eq(advance & s0_free & b_ok),
                self.acc_b.ready.eq(~b_full),
                take.eq(advance & s0_free & self.acc_a.valid & b_ok),
            ]
            with m.If(~b_full):
                m.d.sync += [b_full.eq(self.acc_b.valid), b_hold.eq(self.acc_b.payload)]
            with m.Elif(take):
                m.d.sync += b_full.eq(0)
        else:
            m.d.comb += [
                self.acc_a.ready.eq(advance & s0_free),
                take.eq(advance & self.acc_a.valid & s0_free),
            ]
        with m.If(take):
            m.d.sync += [s0_busy.eq(1), s0_lane.eq(0), s0_a.eq(self.acc_a.payload)]
            if two:
                with m.If(self.b_enable):
                    m.d.sync += s0_b.eq(b_hold)
                with m.Else():           # (a flip-flop reset)
                    m.d.sync += s0_b.eq(0)
        with m.Elif(advance & s0_busy):
            with m.If(s0_lane == lanes - U):
                m.d.sync += s0_busy.eq(0)
            with m.Else():
                m.d.sync += s0_lane.eq(s0_lane + U)

        for rd in rds:
            m.d.comb += [rd.addr.eq((self.param_base + s0_lane) >> lu), rd.en.eq(advance)]

        # S1: U lanes' accumulators; their parameters on the banks' rd.data.
        s1_valid = Signal()
        s1_lane = Signal(range(lanes))
        s1_a = [Signal(signed(self._acc_width), name=f"s1_a{u}") for u in range(U)]
        s1_b = [Signal(signed(self._acc_width), name=f"s1_b{u}") for u in range(U)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(s0_busy), s1_lane.eq(s0_lane)]
            for u in range(U):
                m.d.sync += s1_a[u].eq(s0_a[s0_lane + u])
                if two:
                    m.d.sync += s1_b[u].eq(s0_b[s0_lane + u])

        # S1b: the parameter word registered out of the block RAM (a RAM's clock-to-output,
        # 5.8 ns on the ECP5's DP16KD, does not run on into the multipliers), the accumulators
        # beside it.
        s1r_valid = Signal()
        s1r_lane = Signal(range(lanes))
        s1r_a = [Signal(signed(self._acc_width), name=f"s1r_a{u}") for u in range(U)]
        s1r_b = [Signal(signed(self._acc_width), name=f"s1r_b{u}") for u in range(U)]
        s1r_par = [Signal(self.param_layout, name=f"s1r_par{u}") for u in range(U)]
        with m.If(advance):
            m.d.sync += [s1r_valid.eq(s1_valid), s1r_lane.eq(s1_lane)]
            for u in range(U):
                m.d.sync += [s1r_a[u].eq(s1_a[u]), s1r_par[u].eq(rds[u].data)]
                if two:
                    m.d.sync += s1r_b[u].eq(s1_b[u])

        # S2: products.
        prod_width = self._acc_width + max(M_WIDTH, self._m_b_width if two else 0)
        sum_width = max(prod_width + 1, BIAS_WIDTH) + 2
        s2_valid, s3_valid, s4_valid = Signal(name="s2_valid"), Signal(name="s3_valid"), Signal(name="s4_valid")
        s2_lane, s3_lane, s4_lane = (Signal(range(lanes), name=f"s{i}_lane") for i in (2, 3, 4))
        # (mul18: S2p, the partial products, before S2)
        s2p_valid, s2p_lane = Signal(name="s2p_valid"), Signal(range(lanes), name="s2p_lane")
        s2_in_valid, s2_in_lane = (s2p_valid, s2p_lane) if self._mul18 else (s1r_valid, s1r_lane)
        with m.If(advance):
            m.d.sync += [s2p_valid.eq(s1r_valid), s2p_lane.eq(s1r_lane),
                         s2_valid.eq(s2_in_valid), s2_lane.eq(s2_in_lane),
                         s3_valid.eq(s2_valid), s3_lane.eq(s2_lane),
                         s4_valid.eq(s3_valid), s4_lane.eq(s3_lane)]
        ys = []
        for u in range(U):
            par = s1r_par[u]
            s2_pa = Signal(signed(prod_width), name=f"s2_pa{u}")
            s2_pb = Signal(signed(prod_width), name=f"s2_pb{u}")
            s2_bias = Signal(signed(BIAS_WIDTH), name=f"s2_bias{u}")
            s2_shift = Signal(range(SHIFT_MAX + 1), name=f"s2_shift{u}")
            if self._mul18:
                # S2p: the partial products registered (the bias and the shift beside them)
                bias_p = Signal(signed(BIAS_WIDTH), name=f"s2p_bias{u}")
                shift_p = Signal(range(SHIFT_MAX + 1), name=f"s2p_shift{u}")
                with m.If(advance):
                    m.d.sync += [bias_p.eq(par.bias), shift_p.eq(par.shift)]
                    m.d.sync += s2_pa.eq(self._partials(m, s1r_a[u], par.m_a, f"pa{u}"))
                    if two:
                        m.d.sync += s2_pb.eq(self._partials(m, s1r_b[u], par.m_b, f"pb{u}"))
                    m.d.sync += [s2_bias.eq(bias_p), s2_shift.eq(shift_p)]
            else:
                with m.If(advance):
                    m.d.sync += [s2_pa.eq(s1r_a[u] * par.m_a), s2_bias.eq(par.bias), s2_shift.eq(par.shift)]
                    if two:
                        m.d.sync += s2_pb.eq(s1r_b[u] * par.m_b)

            # S3: the sum with the rounding constant 2^(S-1) (= (1 << S) >> 1, 0 for S = 0).
            s3_sum = Signal(signed(sum_width), name=f"s3_sum{u}")
            s3_shift = Signal(range(SHIFT_MAX + 1), name=f"s3_shift{u}")
            rnd = (Const(1, SHIFT_MAX + 1) << s2_shift) >> 1
            with m.If(advance):
                m.d.sync += [s3_sum.eq(s2_pa + s2_pb + s2_bias + rnd), s3_shift.eq(s2_shift)]

            # S4: arithmetic shift (registered: the barrel shifter and the clamp's compares are
            # not one path). S5: clamp, into the output vector.
            shifted = Signal(signed(sum_width), name=f"shifted{u}")
            y = Signal(signed(self._out_width), name=f"y{u}")
            with m.If(advance):
                m.d.sync += shifted.eq(s3_sum >> s3_shift)
            with m.If(shifted < self.lo):
                m.d.comb += y.eq(self.lo)
            with m.Elif(shifted > self.hi):
                m.d.comb += y.eq(self.hi)
            with m.Else():
                m.d.comb += y.eq(shifted)
            ys.append(y)

        # collect the vector, emit
        staging = Signal(self.y.payload.shape())
        with m.If(self.y.ready):
            m.d.sync += self.y.valid.eq(0)
        with m.If(advance & s4_valid):
            for u in range(U):
                m.d.sync += staging[s4_lane + u].eq(ys[u])
            with m.If(s4_lane == lanes - U):
                m.d.sync += self.y.valid.eq(1)
                for l in range(lanes - U):
                    m.d.sync += self.y.payload[l].eq(staging[l])
                for u in range(U):
                    m.d.sync += self.y.payload[lanes - U + u].eq(ys[u])
        return m


def feed_post_process(m: Module, pp: "PostProcess", *, pe, ma, pf, ga, wr, ins, db, dd) -> None:
    """The accelerator top's wiring around its PostProcess ``pp`` (rtl_gen/top.py): ``acc_a``
    from the pattern engine ``pe`` or the MAC array ``ma``; ``acc_b`` from the MAC array, the
    gatherer's identity-skip codes, or none (``b_enable`` low); the MAC array's results to
    the PoolFC ``pf`` while its FC runs; the clamp bounds and parameter base from the
    instruction ``ins`` and the destination descriptor ``dd`` (``db``: operand b's); the
    output to the writer ``wr``. Which source is live follows the gatherer's tile routing
    (``use_pe``, ``b_mac``, ``b_id``)."""
    L = pp.lanes
    full = Signal(10)          # 2^bits of the dst codes
    m.d.comb += full.eq(Const(1, 10) << dd.bits[:4])
    half = full >> 1
    # the clamp bounds registered (the PostProcess reads them a pipeline later than the
    # DISPATCH that loads the instruction): no path from the instruction register through
    # the shift, negation and select into the clamp compares
    pp_lo, pp_hi = Signal.like(pp.lo), Signal.like(pp.hi)
    m.d.sync += [pp_lo.eq(Mux(dd.signed != 0, -half, 0)),
                 pp_hi.eq(Mux(dd.signed != 0, half - 1, full - 1))]
    m.d.comb += [pp.param_base.eq(ins.prm), pp.lo.eq(pp_lo), pp.hi.eq(pp_hi)]
    skip_signed = Signal()
    m.d.sync += skip_signed.eq(db.signed != 0)
    m.d.comb += [pf.acc.valid.eq(ma.acc.valid), pf.acc.payload.eq(ma.acc.payload)]
    # both operands on the MAC array (an int8 1x1 beside a 1x1 projection): its results
    # alternate b, a, b, ... (the gatherer issues b's beats first), routed by a toggle
    mac_b = Signal()
    with m.If(ga.start):
        m.d.sync += mac_b.eq(1)
    with m.Elif(ma.acc.valid & ma.acc.ready & ~ga.use_pe & ga.b_mac):
        m.d.sync += mac_b.eq(~mac_b)
    with m.If(ga.use_pe):
        m.d.comb += [pp.acc_a.valid.eq(pe.acc.valid), pe.acc.ready.eq(pp.acc_a.ready)]
        for l in range(L):
            m.d.comb += pp.acc_a.payload[l].eq(pe.acc.payload[l])
    with m.Elif(pf.fc_active):
        m.d.comb += ma.acc.ready.eq(pf.acc.ready)
    with m.Elif(~(ga.b_mac & mac_b)):
        m.d.comb += [pp.acc_a.valid.eq(ma.acc.valid), ma.acc.ready.eq(pp.acc_a.ready)]
        for l in range(L):
            m.d.comb += pp.acc_a.payload[l].eq(ma.acc.payload[l])
    with m.If(ga.b_mac & (ga.use_pe | mac_b)):
        m.d.comb += [pp.acc_b.valid.eq(ma.acc.valid), ma.acc.ready.eq(pp.acc_b.ready)]
        for l in range(L):
            m.d.comb += pp.acc_b.payload[l].eq(ma.acc.payload[l])
    with m.Elif(ga.b_mac):
        pass                 # (a's result on the MAC array: b is held in the PostProcess)
    with m.Elif(ga.b_id):
        # the skip's codes: uint8, or int8 sign-extended (src_b's descriptor, registered
        # like the clamp bounds)
        m.d.comb += [pp.acc_b.valid.eq(ga.skip.valid), ga.skip.ready.eq(pp.acc_b.ready)]
        for l in range(L):
            code = ga.skip.payload[l]
            m.d.comb += pp.acc_b.payload[l].eq(Cat(code, (code[7] & skip_signed).replicate(9)).as_signed())
    with m.Else():
        m.d.comb += pp.b_enable.eq(0)
    wiring.connect(m, pp.y, wr.y)
