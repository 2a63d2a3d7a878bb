"""ExtPort: the board's DRAM port shared by the accelerator's DMA and the host link's LOAD.

The accelerator reads external memory (its LoadUnit's DMA_LOADs, several reads in flight);
the host link writes it (``LOAD`` into memory 5, one word at a time, between runs). The system
top (:mod:`rtl_gen.system`) puts both on the one native port (LiteDRAM's user side,
:func:`rtl_gen.dram.native_signature`) through this unit:

- A host write takes the port when it is offered and no read is in flight (the accelerator's
  commands are held meanwhile): its command and its data word are offered together (LiteDRAM
  takes write data in any cycle with ``wdata.ready``, so data is never offered after its
  command), and the write is acknowledged (``host.ready``) once both have been taken, in
  whichever order the controller takes them. All byte enables are set.
- Read data goes back to the accelerator in command order. When the accelerator is reset
  (``acc_reset``: the link's ``RESET``, which may abort a run with reads in flight), the data
  of every read issued before is dropped as it arrives, so a later run never takes a word
  meant for the aborted one, and the host's next write waits until it has all come back.

Cost: two counters of 10 bits and the port's multiplexers; no added latency on the
accelerator's path (its command and data pass combinationally).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .dram import native_signature

__all__ = ["ExtPort"]

MAX_READS = 1023        # reads in flight the counters track (a controller queues far fewer)


class ExtPort(wiring.Component):
    """The DRAM port's arbiter (see the module docstring).

    Attributes
    ----------
    acc : In(native_signature(data_width, addr_width))
        The accelerator's external port (it is the user: it drives commands).
    host : In(stream.Signature(StructLayout{addr, data}))
        Word writes from the host link.
    acc_reset : In(1)
        The accelerator is being reset: reads in flight are stale.
    mem : Out(native_signature(data_width, addr_width))
        To the controller (or a behavioural memory).
    """

    def __init__(self, data_width: int, addr_width: int):
        check_int("data_width", data_width, 8)
        check_int("addr_width", addr_width, 1)
        self._dw, self._aw = data_width, addr_width
        super().__init__({
            "acc": In(native_signature(data_width, addr_width)),
            "host": In(stream.Signature(data.StructLayout({"addr": addr_width, "data": data_width}))),
            "acc_reset": In(1),
            "mem": Out(native_signature(data_width, addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        acc, host, mem = self.acc, self.host, self.mem
        outstanding = Signal(range(MAX_READS + 1))   # reads issued, data not yet back
        stale = Signal(range(MAX_READS + 1))         # the first of them to drop (aborted run)
        issued = Signal()
        landed = Signal()
        m.d.comb += [issued.eq(mem.cmd.valid & mem.cmd.ready & ~mem.cmd.payload.we),
                     landed.eq(mem.rdata.valid & mem.rdata.ready)]
        after = outstanding + issued - landed
        m.d.sync += outstanding.eq(after)
        with m.If(self.acc_reset):
            m.d.sync += stale.eq(after)
        with m.Elif(landed & (stale != 0)):
            m.d.sync += stale.eq(stale - 1)

        # read data: to the accelerator, or dropped while stale
        m.d.comb += [acc.rdata.payload.eq(mem.rdata.payload),
                     acc.rdata.valid.eq(mem.rdata.valid & (stale == 0)),
                     mem.rdata.ready.eq(Mux(stale != 0, 1, acc.rdata.ready))]

        # commands and write data: the host's write while one is offered and no read is in
        # flight, else the accelerator's
        host_go = Signal()
        cmd_taken, data_taken = Signal(), Signal()     # this write's command / word already taken
        m.d.comb += host_go.eq(host.valid & (outstanding == 0) & (stale == 0))
        with m.If(host_go):
            cmd_now = mem.cmd.valid & mem.cmd.ready
            data_now = mem.wdata.valid & mem.wdata.ready
            m.d.comb += [mem.cmd.valid.eq(~cmd_taken), mem.cmd.payload.addr.eq(host.payload.addr),
                         mem.cmd.payload.we.eq(1),
                         mem.wdata.valid.eq(~data_taken), mem.wdata.payload.data.eq(host.payload.data),
                         mem.wdata.payload.we.eq(-1)]
            with m.If((cmd_taken | cmd_now) & (data_taken | data_now)):
                m.d.comb += host.ready.eq(1)
                m.d.sync += [cmd_taken.eq(0), data_taken.eq(0)]
            with m.Else():
                m.d.sync += [cmd_taken.eq(cmd_taken | cmd_now), data_taken.eq(data_taken | data_now)]
        with m.Else():
            m.d.comb += [mem.cmd.valid.eq(acc.cmd.valid), mem.cmd.payload.eq(acc.cmd.payload),
                         acc.cmd.ready.eq(mem.cmd.ready),
                         mem.wdata.valid.eq(acc.wdata.valid), mem.wdata.payload.eq(acc.wdata.payload),
                         acc.wdata.ready.eq(mem.wdata.ready)]
        return m
