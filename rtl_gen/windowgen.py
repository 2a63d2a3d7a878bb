"""WindowGen: line buffer turning a row-major pixel stream into k×k windows of a row band."""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import check_int

__all__ = ["WindowGen"]


class WindowGen(wiring.Component):
    """k×k window generator with zero padding, stride 1 or 2, working on one row band at a time.

    Input order: row-major, one beat per pixel, a beat holds all ``channels`` codes of that
    ``(row, col)`` (pixel-parallel, not channel-serial). A band descriptor (``band`` stream)
    gives the band's input ``rows`` (including halo rows), the image ``width``, the padding
    ``pad`` (left/right always; top only with ``pad_top`` = first band of the image, bottom
    only with ``pad_bottom`` = last band) and the ``stride``. The band's windows come out in
    row-major order of their output positions; a band of ``R`` output rows needs
    ``(R-1)*stride + k`` input rows, fewer the padding rows it is granted at the image edges.

    Padding positions are walked like pixels (one cycle each, zero codes, no input beat), so
    the band costs ``(rows + pads) * (width + 2*pad)`` cycles when not stalled.

    The line buffer is one :class:`~amaranth.lib.memory.Memory` whose word at column ``c``
    holds the ``k-1`` previous rows of that column (one read and one write per cycle); the
    k×k window is a shift register of k columns.

    Parameters
    ----------
    channels : int
        Codes per pixel.
    k : int
        Window size (odd, 1..7).
    a_bits : int
        Code width (1..8).
    max_width : int
        Largest image width (columns).
    max_rows : int
        Largest band height (input rows).

    Attributes
    ----------
    band : In(stream.Signature(band_layout))
        Band descriptors; a new band starts when the previous one is complete.
    pixel : In(stream.Signature(ArrayLayout(unsigned(a_bits), channels)))
    window : Out(stream.Signature(window_layout))
        ``window[i*k + j][c]`` and ``last`` (the band's last window).
    """

    def __init__(self, *, channels: int, k: int, a_bits: int = 8, max_width: int = 64,
                 max_rows: int = 64):
        check_int("channels", channels, 1)
        check_int("k", k, 1, 7)
        if k % 2 == 0:
            raise ValueError(f"k must be odd, not {k}")
        check_int("a_bits", a_bits, 1, 8)
        check_int("max_width", max_width, k)
        check_int("max_rows", max_rows, 1)
        self._channels, self._k, self._a_bits = channels, k, a_bits
        self._max_width, self._max_rows = max_width, max_rows
        super().__init__({
            "band": In(stream.Signature(self.band_layout)),
            "pixel": In(stream.Signature(self.pixel_layout)),
            "window": Out(stream.Signature(self.window_layout)),
        })

    channels = property(lambda self: self._channels, doc="Codes per pixel.")
    k = property(lambda self: self._k, doc="Window size.")
    a_bits = property(lambda self: self._a_bits, doc="Code width.")
    max_width = property(lambda self: self._max_width, doc="Largest image width.")
    max_rows = property(lambda self: self._max_rows, doc="Largest band height (input rows).")

    @property
    def pixel_layout(self) -> data.ArrayLayout:
        """One pixel: ``channels`` codes."""
        return data.ArrayLayout(unsigned(self._a_bits), self._channels)

    @property
    def band_layout(self) -> data.StructLayout:
        """Band descriptor."""
        return data.StructLayout({
            "width": range(self._max_width + 1),
            "rows": range(self._max_rows + 1),
            "pad": range(self._k // 2 + 1),
            "pad_top": unsigned(1),
            "pad_bottom": unsigned(1),
            "stride": range(1, 3),
        })

    @property
    def window_layout(self) -> data.StructLayout:
        """One window: ``k*k`` pixels, tap ``i*k + j`` (row ``i``, column ``j``), and ``last``."""
        return data.StructLayout({
            "window": data.ArrayLayout(self.pixel_layout, self._k * self._k),
            "last": unsigned(1),
        })

    def elaborate(self, platform):
        m = Module()
        k, p_max = self._k, self._k // 2
        vw_max = self._max_width + 2 * p_max
        vr_max = self._max_rows + 2 * p_max

        m.submodules.lines = mem = Memory(shape=data.ArrayLayout(self.pixel_layout, max(k - 1, 1)),
                                          depth=vw_max, init=[])
        rd = mem.read_port()
        wr = mem.write_port()

        running = Signal()
        cfg = Signal(self.band_layout)
        vw = Signal(range(vw_max + 1))      # virtual (padded) width
        vr_n = Signal(range(vr_max + 1))    # virtual rows
        top = Signal(range(p_max + 1))      # zero rows before the band's first input row
        vr = Signal(range(vr_max))
        vc = Signal(range(vw_max))

        advance = ~self.window.valid | self.window.ready
        real = (vr >= top) & (vr < top + cfg.rows) & (vc >= cfg.pad) & (vc < cfg.pad + cfg.width)
        step = Signal()
        m.d.comb += step.eq(running & advance & (~real | self.pixel.valid))
        m.d.comb += self.pixel.ready.eq(running & advance & real)

        accept = ~running & self.band.valid
        m.d.comb += self.band.ready.eq(~running)
        with m.If(accept):
            d = self.band.payload
            pt = Mux(d.pad_top, d.pad, 0)
            pb = Mux(d.pad_bottom, d.pad, 0)
            m.d.sync += [
                running.eq(1), cfg.eq(d), vr.eq(0), vc.eq(0),
                vw.eq(d.width + 2 * d.pad), vr_n.eq(d.rows + pt + pb), top.eq(pt),
            ]

        end_of_row = vc == vw - 1
        next_vc = Mux(end_of_row, 0, vc + 1)
        with m.If(step):
            m.d.sync += vc.eq(next_vc)
            with m.If(end_of_row):
                m.d.sync += vr.eq(vr + 1)
                with m.If(vr == vr_n - 1):
                    m.d.sync += running.eq(0)
        # Read the column word of the next position one cycle ahead (synchronous BRAM read).
        m.d.comb += [rd.addr.eq(Mux(running, next_vc, 0)), rd.en.eq(step | accept)]

        px = Signal(self.pixel_layout)
        with m.If(real):
            m.d.comb += px.eq(self.pixel.payload)
        column = [rd.data[i] for i in range(k - 1)] + [px]   # rows vr-k+1 .. vr
        m.d.comb += [wr.addr.eq(vc), wr.en.eq(step)]
        for i in range(k - 1):
            m.d.comb += wr.data[i].eq(column[i + 1])

        win = [[Signal(self.pixel_layout, name=f"win_{i}_{j}") for j in range(k)] for i in range(k)]
        new_win = [[win[i][j + 1] if j < k - 1 else column[i] for j in range(k)] for i in range(k)]
        with m.If(step):
            for i in range(k):
                for j in range(k):
                    m.d.sync += win[i][j].eq(new_win[i][j])

        # Emit where the window's top-left corner is on the stride grid (k-1 is even).
        stride2 = cfg.stride == 2
        emit = ((vr >= k - 1) & (vc >= k - 1) & ~(stride2 & (vr[0] | vc[0])))
        last = (vr + cfg.stride >= vr_n) & (vc + cfg.stride >= vw)
        with m.If(self.window.ready):
            m.d.sync += self.window.valid.eq(0)
        with m.If(step & emit):
            m.d.sync += [self.window.valid.eq(1), self.window.payload.last.eq(last)]
            for i in range(k):
                for j in range(k):
                    m.d.sync += self.window.payload.window[i * k + j].eq(new_win[i][j])
        return m
