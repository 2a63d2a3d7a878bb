"""PRBDatapath: one Pattern Residual Block layer, WindowGen -> (PatternEngine ‖ MacArray) -> PostProcess."""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .macarray import MacArray
from .pattern import PatternEngine
from .postprocess import PostProcess
from .windowgen import WindowGen

__all__ = ["PRBDatapath"]


class PRBDatapath(wiring.Component):
    """The PRB co-design: ``y = requant(C_kxk(x) * M_a + C_1x1(x) * M_b)`` on one row band.

    The window generator's k×k windows go to the pattern engine (LUT logic) and, at the same
    time, their centre pixel goes to the MAC array (DSP): the 1×1 convolution of a stride-1,
    ``pad = k//2`` PRB reads exactly the centre tap. Both engines run concurrently on the same
    window stream (a two-way stream fork), and the post-process joins their accumulators.

    All ``channels`` input channels and ``lanes`` output channels are covered in one pass
    (pattern memory word 0, weight memory word 0); the compiler's output-channel passes use the
    engines' addresses directly.

    Parameters
    ----------
    channels : int
        Input channels.
    lanes : int
        Output channels.
    k : int
        Pattern kernel size (3, 5, 7).
    groups : int
        Groups of the pattern convolution (the 1×1 is dense).
    a_bits : int
        Activation code width.
    max_width, max_rows : int
        Largest image width / band height.
    packed : bool
        Two MACs per DSP48E1 in the MAC array.

    Attributes
    ----------
    band, pixel : In(stream.Signature)
        As :class:`~rtl_gen.windowgen.WindowGen`.
    y : Out(stream.Signature(ArrayLayout(signed(out_width), lanes)))
        Output codes, one vector per output pixel.
    act_bits, lo, hi, param_base :
        Run-time configuration (see the engines).
    pattern_w, weight_w, param_w : Out(WritePort.Signature)
        Memory write ports of the engines.
    """

    def __init__(self, *, channels: int, lanes: int, k: int = 3, groups: int = 1,
                 a_bits: int = 8, max_width: int = 16, max_rows: int = 16, packed: bool = True):
        check_int("channels", channels, 1)
        check_int("lanes", lanes, 1)
        check_int("groups", groups, 1)
        if channels % groups:
            raise ValueError(f"groups ({groups}) must divide channels ({channels})")
        self._wg = WindowGen(channels=channels, k=k, a_bits=a_bits, max_width=max_width,
                             max_rows=max_rows)
        self._pe = PatternEngine(lanes=lanes, k=k, cin=channels // groups, groups=groups,
                                 a_bits=a_bits, pattern_depth=2)
        self._ma = MacArray(rows=lanes, cols=channels, packed=packed, weight_depth=2)
        self._pp = PostProcess(lanes=lanes, inputs=2, param_depth=max(2, lanes))
        self._channels, self._lanes, self._k, self._groups = channels, lanes, k, groups
        self._a_bits = a_bits
        super().__init__({
            "band": In(self._wg.band.signature.flip()),
            "pixel": In(self._wg.pixel.signature.flip()),
            "y": Out(self._pp.y.signature),
            "act_bits": In(range(1, a_bits + 1), init=a_bits),
            "lo": In(self._pp.lo.shape()),
            "hi": In(self._pp.hi.shape(), init=2 ** a_bits - 1),
            "param_base": In(self._pp.param_base.shape()),
            "pattern_w": Out(self._pe.pattern_w.signature),
            "weight_w": Out(self._ma.weight_w.signature),
            "param_w": Out(self._pp.param_w.signature),
        })

    channels = property(lambda self: self._channels, doc="Input channels.")
    lanes = property(lambda self: self._lanes, doc="Output channels.")
    k = property(lambda self: self._k, doc="Pattern kernel size.")
    groups = property(lambda self: self._groups, doc="Pattern convolution groups.")
    a_bits = property(lambda self: self._a_bits, doc="Activation code width.")
    window_gen = property(lambda self: self._wg, doc="The :class:`WindowGen`.")
    pattern_engine = property(lambda self: self._pe, doc="The :class:`PatternEngine`.")
    mac_array = property(lambda self: self._ma, doc="The :class:`MacArray`.")
    post_process = property(lambda self: self._pp, doc="The :class:`PostProcess`.")

    def elaborate(self, platform):
        m = Module()
        wg, pe, ma, pp = self._wg, self._pe, self._ma, self._pp
        m.submodules.window_gen = wg
        m.submodules.pattern_engine = pe
        m.submodules.mac_array = ma
        m.submodules.post_process = pp
        wiring.connect(m, wiring.flipped(self.band), wg.band)
        wiring.connect(m, wiring.flipped(self.pixel), wg.pixel)
        wiring.connect(m, wiring.flipped(self.pattern_w), pe.pattern_w)
        wiring.connect(m, wiring.flipped(self.weight_w), ma.weight_w)
        wiring.connect(m, wiring.flipped(self.param_w), pp.param_w)
        wiring.connect(m, pp.y, wiring.flipped(self.y))
        m.d.comb += [
            pe.act_bits.eq(self.act_bits),
            pp.lo.eq(self.lo), pp.hi.eq(self.hi), pp.param_base.eq(self.param_base),
        ]

        # Two-way fork of the window stream: each branch takes the beat once; the source
        # advances when both have it. Branch valid depends on registers only, never on ready.
        sent_pe, sent_ma = Signal(), Signal()
        done_pe = sent_pe | pe.window.ready
        done_ma = sent_ma | ma.pixel.ready
        win = wg.window.payload
        centre = (self._k // 2) * self._k + self._k // 2
        m.d.comb += [
            pe.window.valid.eq(wg.window.valid & ~sent_pe),
            pe.window.payload.window.eq(win.window),
            pe.window.payload.pat_addr.eq(0),
            pe.window.payload.first.eq(1),
            pe.window.payload.last.eq(1),
            ma.pixel.valid.eq(wg.window.valid & ~sent_ma),
            ma.pixel.payload.x.eq(win.window[centre]),
            ma.pixel.payload.w_addr.eq(0),
            ma.pixel.payload.first.eq(1),
            ma.pixel.payload.last.eq(1),
            wg.window.ready.eq(done_pe & done_ma),
        ]
        with m.If(wg.window.valid):
            with m.If(done_pe & done_ma):
                m.d.sync += [sent_pe.eq(0), sent_ma.eq(0)]
            with m.Else():
                m.d.sync += [sent_pe.eq(done_pe), sent_ma.eq(done_ma)]

        # Join: pattern accumulators -> acc_a, 1×1 accumulators -> acc_b (sign-extended).
        m.d.comb += [
            pp.acc_a.valid.eq(pe.acc.valid), pe.acc.ready.eq(pp.acc_a.ready),
            pp.acc_b.valid.eq(ma.acc.valid), ma.acc.ready.eq(pp.acc_b.ready),
        ]
        for l in range(self._lanes):
            m.d.comb += [
                pp.acc_a.payload[l].eq(pe.acc.payload[l]),
                pp.acc_b.payload[l].eq(ma.acc.payload[l]),
            ]
        return m
