"""LiteDRAM's native port (NativePortCDC) and its CSR bus (CsrCDC) across clock domains.

A DRAM controller may run at its own clock (the Arty's A7DDRPHY core makes its 100 MHz system
clock itself) while the accelerator runs at another (a DRAM build compiled with
``--clock-mhz``: rtl_gen/dram.py's board top puts both crossings between them). NativePortCDC
carries
the native port (:func:`rtl_gen.dram.native_signature`) from the user's domain to the
controller's: the command and write-data streams through one asynchronous FIFO each (user ->
controller), read data through a third (controller -> user). Order is kept on each stream,
which is all the port promises (read data in command order).

LiteDRAM takes a write beat in any cycle with ``wdata.ready``, whether ``wdata.valid`` is
high or not, so on the controller's side a write command is offered only when its data word
has already crossed: more write beats wait in the write-data FIFO than write commands have
been passed on without their beat taken. (The user side keeps the same rule itself:
:class:`~rtl_gen.dma.StoreDMA`, :class:`~rtl_gen.extport.ExtPort`.)

Latency: a long load through the crossing takes what the memory on the user's clock takes at
``boards.crossing_latency(latency, mem_hz, user_hz)`` (tests/test_rtl_dma.py checks it at
50..100 MHz behind a 100 MHz memory); the compiler's cycle model uses that figure for a build
whose controller runs another clock (``boards.Board.at_clock``).

CsrCDC carries the controller's CSR bus (``rtl_gen.control.dram_ctrl_signature``: one access
per ``stb`` until ``ack``) with a request toggle and a done toggle, each through a two-flop
synchronizer (the access's address, data and direction held in the user's domain until its
reply, read there by the controller's domain only after the toggle has crossed), and
``init_done`` through a two-flop synchronizer. An access the user gives up (``stb`` dropped
before ``ack``: the link's CSR timeout) still completes on the controller's side; its reply is
dropped, never given to the next access. About 5 user plus 4 controller cycles an access.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import cdc, data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .control import dram_ctrl_signature
from .dram import native_signature

__all__ = ["NativePortCDC", "CsrCDC"]


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
        # controller side: a write command only with its beat already across. ``beat_ready``
        # is a register (the FIFO's level and the comparison off the controller's ready path):
        # the beats across at the last edge, less those taken since, exceed the commands owed;
        # beats only arrive otherwise, so it never claims one too many
        head = data.View(cmd_l, cf.r_data)
        owed = Signal(range(self._depth + 1))       # write commands passed on, beat not yet taken
        beat_ready = Signal()
        m.d.comb += [mm.cmd.payload.eq(head), mm.cmd.valid.eq(cf.r_rdy & (~head.we | beat_ready)),
                     cf.r_en.eq(mm.cmd.ready & mm.cmd.valid),
                     mm.wdata.payload.eq(wf.r_data), mm.wdata.valid.eq(wf.r_rdy), wf.r_en.eq(mm.wdata.ready),
                     rf.w_data.eq(mm.rdata.payload), rf.w_en.eq(mm.rdata.valid), mm.rdata.ready.eq(rf.w_rdy)]
        passed = mm.cmd.valid & mm.cmd.ready & head.we
        taken = mm.wdata.valid & mm.wdata.ready
        # (both comparisons from registers; the controller's ready only picks one)
        m.d[self._md] += [owed.eq(owed + passed - taken),
                          beat_ready.eq(Mux(passed, wf.r_level > owed + 1, wf.r_level > owed))]
        return m


class CsrCDC(wiring.Component):
    """The DRAM controller's CSR bus and ``init_done`` from ``user_domain`` (``user``: the host
    link's side) to ``mem_domain`` (``mem``: the controller's ``wb_ctrl``); see the module
    docstring.

    Attributes
    ----------
    user : In(dram_ctrl_signature())
        In ``user_domain``.
    mem : Out(dram_ctrl_signature())
        In ``mem_domain``.
    """

    def __init__(self, *, user_domain: str = "sync", mem_domain: str = "dram"):
        if user_domain == mem_domain:
            raise ValueError("user_domain and mem_domain are the same domain: no crossing needed")
        self._ud, self._md = user_domain, mem_domain
        super().__init__({"user": In(dram_ctrl_signature()), "mem": Out(dram_ctrl_signature())})

    def elaborate(self, platform):
        m = Module()
        u, mm = self.user, self.mem
        ud, md = m.d[self._ud], m.d[self._md]
        # user side: the access in flight, held until its reply
        req, done_seen = Signal(name="req"), Signal(name="done_seen")
        busy, wanted = Signal(name="busy"), Signal(name="wanted")
        adr, dat_w, we = Signal.like(u.adr), Signal.like(u.dat_w), Signal(name="we")
        # controller side: the reply (read by the user's side after the done toggle crossed)
        req_seen, done, dat_r = Signal(name="req_seen"), Signal(name="done"), Signal(32, name="dat_r")
        req_s, done_s = Signal(name="req_s"), Signal(name="done_s")
        m.submodules.req_sync = cdc.FFSynchronizer(req, req_s, o_domain=self._md)
        m.submodules.done_sync = cdc.FFSynchronizer(done, done_s, o_domain=self._ud)
        m.submodules.init_sync = cdc.FFSynchronizer(mm.init_done, u.init_done, o_domain=self._ud)

        arrived = done_s != done_seen
        m.d.comb += [u.dat_r.eq(dat_r), u.ack.eq(arrived & wanted & u.stb)]
        with m.If(arrived):
            ud += [done_seen.eq(done_s), busy.eq(0), wanted.eq(0)]
        with m.Elif(~busy & u.stb):
            ud += [req.eq(~req), busy.eq(1), wanted.eq(1), adr.eq(u.adr), dat_w.eq(u.dat_w), we.eq(u.we)]
        with m.Elif(~u.stb):
            ud += wanted.eq(0)          # given up: its reply will be dropped

        go = req_s != req_seen
        m.d.comb += [mm.stb.eq(go), mm.adr.eq(adr), mm.dat_w.eq(dat_w), mm.we.eq(we)]
        with m.If(go & mm.ack):
            md += [req_seen.eq(req_s), done.eq(~done), dat_r.eq(mm.dat_r)]
        return m
