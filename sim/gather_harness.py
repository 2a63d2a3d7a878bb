# amaranth: UnusedElaboratable=no
"""Test harness for :class:`rtl_gen.gather.Gather`: the gatherer with the activation memory
and the shared RowAddress, wired as in :mod:`rtl_gen.top` (``act.raddr <- ga.raddr``,
``ga.rvec <- act.rvec`` (and rraw, rlo), ``ga.row <-> RowAddress`` with the requests ORed).

One harness can hold several gatherers that differ only in ``column_store`` (one Verilator
build covers both forms): ``sel`` picks the one that gets ``start``/``release`` and whose
streams and status reach the ports; the others stay idle, drive zeros on their shared
request lines (which are ORed, as in the top) and see ``ready`` low.
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.actmem import ActivationMemory
from rtl_gen.gather import Gather
from rtl_gen.macarray import MacArray
from rtl_gen.pattern import PatternEngine
from rtl_gen.rowaddr import RowAddress, or_all, share
from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC

__all__ = ["GatherHarness"]


class GatherHarness(wiring.Component):
    """Gather(s) + ActivationMemory + RowAddress.

    Parameters
    ----------
    lanes, pe_cin, mac_cols, k_max, a_bits, max_cin : int
        The engine sizes (as the top's ``EngineConfig``); ``banks = max(pe_cin, mac_cols, lanes)``.
    column_stores : tuple of bool
        One gatherer per entry (``sel`` = its index).
    act_bytes : int
        Activation memory size; written ``banks`` bytes per cycle (``units = banks``).
    pattern_depth, weight_depth : int
        Set the widths of ``pat_addr`` and ``w_addr``.
    landing_reg : bool
        The gatherers' landing register (``EngineConfig.landing_reg``: window taps land a cycle
        later; ``window.ready`` must then stay high until a beat is taken, as the pattern
        engine's does).

    Attributes
    ----------
    sel : In(range(len(column_stores)))
    start, tile_release, use_pe_in, b_mac_in, b_id_in : In(1); done, use_pe, b_mac, b_id : Out(1)
        Gather's ports of the same names (``tile_release`` is its ``release``: a Verilog keyword).
    ins : In(isa.WORD layout); src_a, src_b, dst : In(TENSOR_DESC layout)
    waddr : In(32), wdata : In(ArrayLayout(8, banks)), wen : In(banks)
        The activation memory's write port.
    raddr : Out(32)
        The activation memory's read address (ORed over the gatherers; 0 when none reads).
    window, pixel, skip : Out(stream)
    """

    def __init__(self, *, lanes: int, pe_cin: int, mac_cols: int, k_max: int, a_bits: int,
                 max_cin: int, column_stores=(True, False), act_bytes: int = 4096,
                 pattern_depth: int = 64, weight_depth: int = 64, landing_reg: bool = False):
        self.banks = max(pe_cin, mac_cols, lanes)
        self.params = dict(lanes=lanes, pe_cin=pe_cin, mac_cols=mac_cols, k_max=k_max, a_bits=a_bits,
                           max_cin=max_cin)
        self.column_stores = tuple(bool(c) for c in column_stores)
        self.act_bytes = act_bytes
        self.landing_reg = bool(landing_reg)
        pe = PatternEngine(lanes=lanes, k=k_max, cin=pe_cin, groups=1, a_bits=a_bits, max_cin=max_cin,
                           pattern_depth=pattern_depth)
        ma = MacArray(rows=lanes, cols=mac_cols, weight_depth=weight_depth)
        self.window_layout = pe.window_layout
        self.pixel_layout = ma.pixel_layout
        self.skip_layout = data.ArrayLayout(8, lanes)
        self.ins_layout = isa.WORD.layout()
        self.desc_layout = TENSOR_DESC.layout()
        nb = self.banks
        super().__init__({
            "sel": In(range(max(2, len(self.column_stores)))),
            "start": In(1), "tile_release": In(1), "done": Out(1),
            "use_pe_in": In(1), "b_mac_in": In(1), "b_id_in": In(1),
            "use_pe": Out(1), "b_mac": Out(1), "b_id": Out(1),
            "ins": In(self.ins_layout),
            "src_a": In(self.desc_layout), "src_b": In(self.desc_layout), "dst": In(self.desc_layout),
            "waddr": In(32), "wdata": In(data.ArrayLayout(8, nb)), "wen": In(nb),
            "raddr": Out(32),
            "window": Out(stream.Signature(self.window_layout)),
            "pixel": Out(stream.Signature(self.pixel_layout)),
            "skip": Out(stream.Signature(self.skip_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        p, nb = self.params, self.banks
        m.submodules.act = act = ActivationMemory(nb, -(-self.act_bytes // nb), nb)
        m.submodules.row_addr = ra = RowAddress()
        m.d.comb += [act.waddr.eq(self.waddr), act.wdata.eq(self.wdata), act.wen.eq(self.wen)]
        gathers = []
        for i, cs in enumerate(self.column_stores):
            ga = Gather(lanes=p["lanes"], pe_cin=p["pe_cin"], mac_cols=p["mac_cols"], k_max=p["k_max"],
                        a_bits=p["a_bits"], banks=nb, column_store=cs, max_cin=p["max_cin"],
                        window_layout=self.window_layout, pixel_layout=self.pixel_layout,
                        landing_reg=self.landing_reg)
            m.submodules[f"gather{i}"] = ga
            gathers.append(ga)
            on = self.sel == i
            m.d.comb += [
                ga.start.eq(self.start & on), ga.release.eq(self.tile_release & on),
                ga.use_pe_in.eq(self.use_pe_in), ga.b_mac_in.eq(self.b_mac_in), ga.b_id_in.eq(self.b_id_in),
                ga.ins.eq(self.ins), ga.src_a.eq(self.src_a), ga.src_b.eq(self.src_b), ga.dst.eq(self.dst),
                ga.rvec.eq(act.rvec), ga.rraw.eq(act.rraw), ga.rlo.eq(act.rlo),
                ga.window.ready.eq(self.window.ready & on),
                ga.pixel.ready.eq(self.pixel.ready & on),
                ga.skip.ready.eq(self.skip.ready & on),
            ]
            with m.If(on):
                m.d.comb += [
                    self.done.eq(ga.done), self.use_pe.eq(ga.use_pe), self.b_mac.eq(ga.b_mac),
                    self.b_id.eq(ga.b_id),
                    self.window.valid.eq(ga.window.valid), self.window.payload.eq(ga.window.payload),
                    self.pixel.valid.eq(ga.pixel.valid), self.pixel.payload.eq(ga.pixel.payload),
                    self.skip.valid.eq(ga.skip.valid), self.skip.payload.eq(ga.skip.payload),
                ]
        # the shared RowAddress and the read address: idle units drive zeros, requests ORed
        share(m, ra, (ga.row for ga in gathers))
        m.d.comb += [act.raddr.eq(or_all(ga.raddr for ga in gathers)),
                     act.raddr_nb.eq(or_all(ga.raddr_nb for ga in gathers)), self.raddr.eq(act.raddr)]
        return m
