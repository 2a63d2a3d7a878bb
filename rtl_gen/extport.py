"""ExtPort: the board's DRAM port shared by the accelerator's DMA, the input feeder and the
host link's writes.

The accelerator reads external memory (its LoadUnit's DMA_LOADs, several reads in flight);
the input feeder (:mod:`rtl_gen.inputfeed`) reads the input image during a run; the host
link writes it (``LOAD`` into memory 5 and ``WRITE_INPUT``, one word at a time, between runs).
The system top (:mod:`rtl_gen.system`) puts them all on the one native port (LiteDRAM's user
side, :func:`rtl_gen.dram.native_signature`) through this unit:

- Users (``readers``: their names, highest priority first) read, and may write. Each cycle
  the first one offering a command has the port; a tag FIFO (``MAX_READS`` deep) remembers
  whose each read in flight is, and read data (in command order) goes back to that user. A
  user's write command (``we`` set) waits until no read is in flight; its data word passes
  from that user's ``wdata`` (offered with the command, as the host's is; users write one
  at a time: the accelerator's ``SPILL`` runs with no read of its own in flight).
- A host write takes the port when it is offered and no read is in flight (the readers'
  commands are held meanwhile): its command and its data word are offered together
  (LiteDRAM takes write data in any cycle with ``wdata.ready``, so data is never offered after
  its command), and the write is acknowledged (``host.ready``) once both have been taken, in
  whichever order the controller takes them; ``we``: its byte enables.
- When the readers are reset (``reset_readers``: the link's ``RESET``, which may abort a run
  with reads in flight), the data of every read issued before is dropped as it arrives, so a
  later run never takes a word meant for the aborted one, and the host's next write waits
  until it has all come back.

Cost: a tag FIFO of ``MAX_READS`` entries (LUT RAM), a stale counter and the port's
multiplexers; no added latency on a reader's path (command and data pass combinationally).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_int
from .dram import native_signature

__all__ = ["ExtPort", "MAX_READS"]

MAX_READS = 32          # reads in flight (a controller queues fewer: LiteDRAM's native port a few)


class ExtPort(wiring.Component):
    """The DRAM port's arbiter (see the module docstring).

    Attributes
    ----------
    <reader> : In(native_signature(data_width, addr_width)), one per name in ``readers``
        A user's external port (it drives commands; reads, and writes as above).
    host : In(stream.Signature(StructLayout{addr, data, we}))
        Word writes from the host link (``we``: byte enables).
    reset_readers : In(1)
        The readers are being reset: reads in flight are stale.
    mem : Out(native_signature(data_width, addr_width))
        To the controller (or a behavioural memory).
    """

    def __init__(self, data_width: int, addr_width: int, readers=("acc",)):
        check_int("data_width", data_width, 8)
        check_int("addr_width", addr_width, 1)
        readers = tuple(readers)
        if not readers or len(set(readers)) != len(readers) or {"host", "mem", "reset_readers"} & set(readers):
            raise ValueError(f"readers must be distinct names other than host, mem and reset_readers, not {readers!r}")
        self._dw, self._aw, self._readers = data_width, addr_width, readers
        super().__init__({
            **{r: In(native_signature(data_width, addr_width)) for r in readers},
            "host": In(stream.Signature(data.StructLayout({"addr": addr_width, "data": data_width,
                                                           "we": data_width // 8}))),
            "reset_readers": In(1),
            "mem": Out(native_signature(data_width, addr_width)),
        })

    readers = property(lambda self: self._readers, doc="The readers' names, highest priority first.")

    def elaborate(self, platform):
        m = Module()
        host, mem = self.host, self.mem
        rd = [getattr(self, r) for r in self._readers]
        # whose each read in flight is, in command order
        m.submodules.tags = tags = fifo.SyncFIFO(width=max(1, (len(rd) - 1).bit_length()), depth=MAX_READS)
        stale = Signal(range(MAX_READS + 1))         # the first reads in flight to drop (aborted run)
        issued = Signal()
        landed = Signal()
        m.d.comb += [issued.eq(mem.cmd.valid & mem.cmd.ready & ~mem.cmd.payload.we),
                     landed.eq(mem.rdata.valid & mem.rdata.ready),
                     tags.r_en.eq(landed)]
        with m.If(self.reset_readers):
            m.d.sync += stale.eq(tags.level + issued - landed)
        with m.Elif(landed & (stale != 0)):
            m.d.sync += stale.eq(stale - 1)

        # read data: to the reader whose read it is, or dropped while stale
        for i, r in enumerate(rd):
            m.d.comb += [r.rdata.payload.eq(mem.rdata.payload),
                         r.rdata.valid.eq(mem.rdata.valid & (stale == 0) & (tags.r_data == i))]
            with m.If((stale == 0) & (tags.r_data == i)):
                m.d.comb += mem.rdata.ready.eq(r.rdata.ready)
        with m.If(stale != 0):
            m.d.comb += mem.rdata.ready.eq(1)

        # commands and write data: the host's write while one is offered and no read is in
        # flight, else the first user offering a command (a read while the tag FIFO has room,
        # a write, with its data word, while no read is in flight)
        host_go = Signal()
        # this write's command / word already taken
        cmd_taken, data_taken = Signal(name="cmd_taken"), Signal(name="data_taken")
        m.d.comb += host_go.eq(host.valid & (tags.level == 0) & (stale == 0))
        with m.If(host_go):
            cmd_now = mem.cmd.valid & mem.cmd.ready
            data_now = mem.wdata.valid & mem.wdata.ready
            m.d.comb += [mem.cmd.valid.eq(~cmd_taken), mem.cmd.payload.addr.eq(host.payload.addr),
                         mem.cmd.payload.we.eq(1),
                         mem.wdata.valid.eq(~data_taken), mem.wdata.payload.data.eq(host.payload.data),
                         mem.wdata.payload.we.eq(host.payload.we)]
            with m.If((cmd_taken | cmd_now) & (data_taken | data_now)):
                m.d.comb += host.ready.eq(1)
                m.d.sync += [cmd_taken.eq(0), data_taken.eq(0)]
            with m.Else():
                m.d.sync += [cmd_taken.eq(cmd_taken | cmd_now), data_taken.eq(data_taken | data_now)]
        with m.Else():
            for i, r in enumerate(rd):
                with (m.Elif if i else m.If)(r.cmd.valid):
                    wr = r.cmd.payload.we
                    go = Signal(name=f"{self._readers[i]}_go")
                    m.d.comb += go.eq(Mux(wr, (tags.level == 0) & (stale == 0), tags.w_rdy))
                    m.d.comb += [mem.cmd.valid.eq(go), mem.cmd.payload.addr.eq(r.cmd.payload.addr),
                                 mem.cmd.payload.we.eq(wr), r.cmd.ready.eq(go & mem.cmd.ready),
                                 tags.w_data.eq(i), tags.w_en.eq(go & ~wr & mem.cmd.ready)]
            # a user's write data (only while no read is in flight)
            for i, r in enumerate(rd):
                with (m.Elif if i else m.If)(r.wdata.valid & (tags.level == 0) & (stale == 0)):
                    m.d.comb += [mem.wdata.valid.eq(1), mem.wdata.payload.eq(r.wdata.payload),
                                 r.wdata.ready.eq(mem.wdata.ready)]
        return m
