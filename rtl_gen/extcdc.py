"""NativePortCDC: LiteDRAM's native port across clock domains.

A DRAM controller runs at its own clock (the ULX3S's SDRAM controller at 50 MHz) while the
accelerator may run at another (the ULX3S board clock, 25 MHz by default). This unit carries
the native port (:func:`rtl_gen.dram.native_signature`) from the user's domain to the
controller's: the command and write-data streams through one asynchronous FIFO each (user ->
controller), read data through a third (controller -> user). Order is kept on each stream,
which is all the port promises (read data in command order).

LiteDRAM takes a write beat in any cycle with ``wdata.ready``, whether ``wdata.valid`` is
high or not, so on the controller's side a write command is offered only when its data word
has already crossed: more write beats wait in the write-data FIFO than write commands have
been passed on without their beat taken. (The user side keeps the same rule itself:
:class:`~rtl_gen.dma.StoreDMA`, :class:`~rtl_gen.extport.ExtPort`.)

Latency (tests/test_rtl_dma.py prints it): with the user at 25 MHz and a 50 MHz memory of
read latency 6 (the ULX3S SDRAM core's figure), a read's round trip is 9 user cycles, what
a memory of latency 5 gives on the user's own clock.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .dram import native_signature

__all__ = ["NativePortCDC"]


class NativePortCDC(wiring.Component):
    """The native port from ``user_domain`` (``user``: the user drives commands) to
    ``mem_domain`` (``mem``: towards the controller), ``depth`` entries per stream.

    Attributes
    ----------
    user : In(native_signature(data_width, addr_width))
        In ``user_domain``.
    mem : Out(native_signature(data_width, addr_width))
        In ``mem_domain``.
    """

    def __init__(self, data_width: int, addr_width: int, *, user_domain: str = "sync", mem_domain: str = "dram",
                 depth: int = 8):
        check_int("data_width", data_width, 8)
        check_int("addr_width", addr_width, 1)
        check_int("depth", depth, 2)
        if depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, not {depth}")
        if user_domain == mem_domain:
            raise ValueError("user_domain and mem_domain are the same domain: no crossing needed")
        self._dw, self._aw, self._ud, self._md, self._depth = data_width, addr_width, user_domain, mem_domain, depth
        super().__init__({"user": In(native_signature(data_width, addr_width)),
                          "mem": Out(native_signature(data_width, addr_width))})

    def elaborate(self, platform):
        m = Module()
        u, mm = self.user, self.mem
        cmd_l = data.StructLayout({"addr": self._aw, "we": 1})
        wd_l = data.StructLayout({"data": self._dw, "we": self._dw // 8})
        m.submodules.cmd = cf = fifo.AsyncFIFO(width=cmd_l.size, depth=self._depth,
                                               w_domain=self._ud, r_domain=self._md)
        m.submodules.wdata = wf = fifo.AsyncFIFO(width=wd_l.size, depth=self._depth,
                                                 w_domain=self._ud, r_domain=self._md)
        m.submodules.rdata = rf = fifo.AsyncFIFO(width=self._dw, depth=self._depth,
                                                 w_domain=self._md, r_domain=self._ud)
        # user side: the streams into and out of the FIFOs
        m.d.comb += [cf.w_data.eq(u.cmd.payload), cf.w_en.eq(u.cmd.valid), u.cmd.ready.eq(cf.w_rdy),
                     wf.w_data.eq(u.wdata.payload), wf.w_en.eq(u.wdata.valid), u.wdata.ready.eq(wf.w_rdy),
                     u.rdata.payload.eq(rf.r_data), u.rdata.valid.eq(rf.r_rdy), rf.r_en.eq(u.rdata.ready)]
        # controller side: a write command only with its beat already across
        head = data.View(cmd_l, cf.r_data)
        owed = Signal(range(self._depth + 1))       # write commands passed on, beat not yet taken
        beat_ready = wf.r_level > owed
        m.d.comb += [mm.cmd.payload.eq(head), mm.cmd.valid.eq(cf.r_rdy & (~head.we | beat_ready)),
                     cf.r_en.eq(mm.cmd.ready & mm.cmd.valid),
                     mm.wdata.payload.eq(wf.r_data), mm.wdata.valid.eq(wf.r_rdy), wf.r_en.eq(mm.wdata.ready),
                     rf.w_data.eq(mm.rdata.payload), rf.w_en.eq(mm.rdata.valid), mm.rdata.ready.eq(rf.w_rdy)]
        passed = mm.cmd.valid & mm.cmd.ready & head.we
        taken = mm.wdata.valid & mm.wdata.ready
        m.d[self._md] += owed.eq(owed + passed - taken)
        return m
