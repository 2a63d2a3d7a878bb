"""MacArray with ``x_late`` behind the register the accelerator top loads a beat's ``x`` into
as the beat is taken (rtl_gen/top.py, ``ma_x``): the ports and the behaviour of a plain
MacArray, for its cocotb testbench (sim/tb_macarray.py)."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from rtl_gen.macarray import MacArray, feed_late_x

__all__ = ["LateXMacArray"]


class LateXMacArray(wiring.Component):
    """``MacArray(**params, x_late=True)`` fed as the top feeds it; same ports as MacArray."""

    def __init__(self, **params):
        self._mac = MacArray(**params, x_late=True)
        super().__init__(self._mac.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self._mac
        wiring.connect(m, wiring.flipped(self.acc), mac.acc)
        wiring.connect(m, mac.weight_w, wiring.flipped(self.weight_w))
        m.d.comb += [mac.pixel.valid.eq(self.pixel.valid), self.pixel.ready.eq(mac.pixel.ready),
                     mac.pixel.payload.eq(self.pixel.payload)]
        feed_late_x(m, mac, self.pixel.payload.x)
        return m
