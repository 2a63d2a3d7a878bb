"""Writer: the PostProcess's output codes -> the destination tensor's ring in the activation
memory.

A compute tile's ``tc`` codes per output position, positions in raster order over
``rows`` output rows of ``dst``: one RowAddress per tile for its first row (its own divider,
running alongside the gatherer's), then the rows step through the ring.
Latency: a waiting writer takes a position's codes from ``y`` in the cycle they are offered
(``ready`` is high while it waits), a busy one in the cycle of the previous position's last
byte; the bytes are written from the next cycle, one per cycle, or ``units`` per cycle when
the destination's channels and the tile's first channel ``c0`` are multiples of ``units``
(``wide``; the destination's ``base`` is aligned by the compiler). The tile's first codes
are taken 20 cycles after ``start`` at the earliest (its RowAddress). ``done`` rises the cycle
after the last byte (it is stale in the ``start`` cycle).
Throughput: ``ceil(tc / units)`` (wide) or ``tc`` cycles per position; the next position's
codes are taken in the cycle of the last byte, so back-to-back positions lose no cycle.
The position's-last-bytes and tile's-last-position conditions are registered a cycle ahead,
so ``y.ready`` (and, behind it, the PostProcess's and the engines' handshakes) does not
wait on the writer's adders and compares.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC

from .arith import check_int
from .rowaddr import RowAddress, drive_row, row_bytes_reg

__all__ = ["Writer"]


class Writer(wiring.Component):
    """Stores a tile's output codes (see the module docstring).

    Parameters
    ----------
    lanes : int
        Codes per position offered on ``y`` (the PostProcess's lanes).
    units : int
        Bytes written per cycle on the wide path (the PostProcess's units; a power of two).

    Attributes
    ----------
    start : In(1)
        Pulse: a tile begins (``ins`` and ``dst`` hold it from this cycle to ``done``).
    stop : In(1)
        Pulse: the tile is over (``done`` seen), or the run stopped.
    ins : In(isa.WORD layout)
        The instruction (``rows``, ``row0``, ``c0``, ``tc``).
    dst : In(TENSOR_DESC layout)
        The destination tensor.
    y : In(stream.Signature(ArrayLayout(signed(9), lanes)))
        Output codes, one position per transfer (the low 8 bits are stored).
    done : Out(1)
        Every position of the tile is written.
    waddr : Out(32), wdata : Out(ArrayLayout(8, units)), wen : Out(units)
        The activation memory's write port (zero when not writing).
    """

    def __init__(self, lanes: int, units: int = 1):
        check_int("lanes", lanes, 1)
        check_int("units", units, 1, lanes)
        if units & (units - 1):
            raise ValueError(f"units must be a power of two, not {units}")
        self._lanes, self._units = lanes, units
        super().__init__({
            "start": In(1), "stop": In(1),
            "ins": In(isa.WORD.layout()), "dst": In(TENSOR_DESC.layout()),
            "y": In(stream.Signature(data.ArrayLayout(signed(9), lanes))),
            "done": Out(1),
            "waddr": Out(32), "wdata": Out(data.ArrayLayout(8, units)), "wen": Out(units),
        })

    def elaborate(self, platform):
        m = Module()
        L, U = self._lanes, self._units
        LU = exact_log2(U)
        ins, dd = self.ins, self.dst
        m.submodules.row_addr = rw = RowAddress()
        active = Signal()
        positions = Signal(32)
        wx, wl = Signal(16, name="wx"), Signal(16, name="wl")
        wcount = Signal(32)
        # the current row: its index in the ring and its address + c0 (the position base at
        # x = 0); the ring's base + c0 and last index following the descriptor and the
        # instruction: the next row's base is one adder (or the registered base) chosen by an
        # equality with a register, not a ring step followed by the + c0 adder (timing)
        wt_i, wt_ac0 = Signal(16, name="wt_i"), Signal(32, name="wt_ac0")
        base_c0, ring_m1 = Signal(32, name="base_c0"), Signal(16, name="ring_m1")
        rb_d = row_bytes_reg(m, dd, "rb_d")
        m.d.sync += [base_c0.eq(dd.base + ins.c0), ring_m1.eq(dd.ring_rows - 1)]
        # the current position's first byte, row + wx * channels + c0, kept in a register
        # (stepped by channels per position) and the row's last column following the
        # descriptor: no multiplier and one adder in front of the write address
        wbase = Signal(32)
        w_m1 = Signal(16)
        m.d.sync += w_m1.eq(dd.width - 1)
        yv = Signal(self.y.payload.shape())
        w_en = Signal()
        wide = Signal()          # U bytes per cycle (dst channels and c0 multiples of U)
        w_last, w_final = Signal(name="w_last"), Signal(name="w_final")
        w_step = Signal(range(U + 1))
        # done (wcount == positions) as a flip-flop kept equal to that compare: both registers
        # change only at start (wcount 0, positions rows * width: equal where that is 0) and at
        # a position's last byte (wcount + 1, equal to positions where w_final said so), so
        # the 32-bit compare is not in front of the sequencer's handshakes (it was the small
        # ULX3S overlay's critical path under another nextpnr seed: docs/timing.md)
        fin = Signal(init=1, name="fin")
        m.d.comb += [w_step.eq(Mux(wide, U, 1)), self.done.eq(fin)]
        with m.If(self.start):
            m.d.sync += [active.eq(1), wx.eq(0), wcount.eq(0), positions.eq(ins.rows * dd.width),
                         fin.eq((ins.rows == 0) | (dd.width == 0)),
                         wide.eq((dd.channels[:LU] == 0) & (ins.c0[:LU] == 0) if U > 1 else 0)]
        with m.If(self.stop):
            m.d.sync += active.eq(0)
        code = yv.as_value()
        # wl_in[u]: byte wl + u of the vector is one of the tile's channels (registered with
        # wl: no adder or compare in front of the banks' write enables)
        wl_in = {u: Signal(name=f"wl_in{u}") for u in range(1, U)}
        with m.If(w_en):
            m.d.comb += [self.waddr.eq(wbase + wl), self.wen[0].eq(1),
                         self.wdata[0].eq(code.word_select(wl[:ceil_log2(L + 1)], 9)[:8])]
            for u in range(1, U):
                m.d.comb += [self.wdata[u].eq(code.word_select((wl + u)[:ceil_log2(L + 1)], 9)[:8]),
                             self.wen[u].eq(wide & wl_in[u])]

        def take():
            m.d.sync += [yv.eq(self.y.payload), wl.eq(0), w_last.eq(w_step >= ins.tc)]
            m.d.sync += [wl_in[u].eq(u < ins.tc) for u in range(1, U)]

        with m.FSM(name="writer"):
            with m.State("IDLE"):
                with m.If(active & ~fin):
                    drive_row(m, rw, ins.row0, dd)
                    m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += w_final.eq(positions == 1)
                with m.If(~rw.busy):
                    m.d.sync += [wt_i.eq(rw.rem), wt_ac0.eq(rw.addr + ins.c0), wbase.eq(rw.addr + ins.c0)]
                    m.next = "WAIT_Y"
            with m.State("WAIT_Y"):
                m.d.comb += self.y.ready.eq(1)
                with m.If(self.y.valid):
                    take()
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += w_en.eq(1)
                m.d.sync += [wl.eq(wl + w_step), w_last.eq(wl + (w_step << 1) >= ins.tc)]
                m.d.sync += [wl_in[u].eq(wl + w_step + u < ins.tc) for u in range(1, U)]
                with m.If(w_last):
                    m.d.sync += [wcount.eq(wcount + 1), w_final.eq(wcount + 2 == positions), fin.eq(w_final)]
                    with m.If(wx == w_m1):
                        wrap = wt_i == ring_m1            # (ring_step's row after wt_i, + c0)
                        nxt = Mux(wrap, base_c0, wt_ac0 + rb_d)
                        m.d.sync += [wx.eq(0), wt_i.eq(Mux(wrap, 0, wt_i + 1)), wt_ac0.eq(nxt), wbase.eq(nxt)]
                    with m.Else():
                        m.d.sync += [wx.eq(wx + 1), wbase.eq(wbase + dd.channels)]
                    with m.If(w_final):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.y.ready.eq(1)
                        with m.If(self.y.valid):
                            take()
                        with m.Else():
                            m.next = "WAIT_Y"
        return m
