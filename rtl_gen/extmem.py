"""ExtMemoryModel: a fast behavioural external memory behind LiteDRAM's native port (issue 15),
for simulations of the accelerator with its weights in DRAM: the port's protocol (commands
in flight, read data in command order, write data with byte enables) with a fixed read
latency and optional pseudo-random stalls, without a DRAM controller's state.

The LiteDRAM simulation core (rtl_gen/dram.py, ``LiteDRAM``) is the reference for the
protocol and the figures; this model runs whole networks in Verilator at a fraction of its
cost. Both take the same user-side port (:func:`rtl_gen.dram.native_signature`).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import check_int
from .control import dram_ctrl_signature
from .dram import native_signature

__all__ = ["DramCtrlModel", "ExtMemoryModel", "stall_threshold"]


def stall_threshold(permille: int) -> int:
    """ExtMemoryModel's ``stall`` input (cycles per 1024) for ``permille`` per thousand."""
    return permille * 1024 // 1000


class ExtMemoryModel(wiring.Component):
    """``depth`` words of ``data_width`` bits behind a native port (``port``, the controller's
    side), a read-only ``peek`` port and a write-only ``poke`` port for testbenches (a
    poked word replaces the port's write of that cycle: poke while the user is idle).

    Reads: a command is taken when the return FIFO has room for every read in flight; its
    word leaves the memory ``latency`` cycles later into the FIFO, which feeds ``rdata`` in
    command order (the user may hold ``rdata.ready`` low). Writes: a write command is taken
    together with its ``wdata`` word (both valid in the same cycle; byte enables ``we``).

    ``stall``: a 16-bit LFSR (``seed``) holds ``cmd.ready`` low and ``rdata`` back on about
    ``stall`` cycles per 1024 each, so a user sees random latency and back-pressure (as from
    refresh and bank conflicts). It is an input, so one simulator build runs with and without
    stalls; undriven it stays at ``stall_permille`` (per thousand) converted. ``init``: the
    initial words.

    The default ``latency`` matches LiteDRAM's simulation core of the Arty configuration as a
    LoadDMA sees it (tests/test_rtl_dma.py, idle controller, 128-bit port): 64 beats in 78
    cycles there, 78 here."""

    def __init__(self, *, data_width: int, addr_width: int, depth: int, latency: int = 10,
                 stall_permille: int = 0, seed: int = 1, init=()):
        check_int("data_width", data_width, 8)
        check_int("depth", depth, 2)
        check_int("latency", latency, 1)
        check_int("stall_permille", stall_permille, 0, 999)
        if data_width % 8:
            raise ValueError(f"data_width must be whole bytes, not {data_width}")
        self._dw, self._aw, self._depth, self._lat = data_width, addr_width, depth, latency
        self._stall, self._seed, self._init = stall_permille, seed, list(init)
        super().__init__({
            "port": In(native_signature(data_width, addr_width)),
            "peek_addr": In(ceil_log2(depth)), "peek_data": Out(data_width),
            "poke_en": In(1), "poke_addr": In(ceil_log2(depth)), "poke_data": In(data_width),
            "stall": In(range(1025), init=stall_threshold(stall_permille)),
        })

    def elaborate(self, platform):
        m = Module()
        DW, L = self._dw, self._lat
        p = self.port
        m.submodules.mem = mem = Memory(shape=DW, depth=self._depth, init=self._init)
        rd, pk, wr = mem.read_port(), mem.read_port(), mem.write_port(granularity=8)
        m.d.comb += [pk.addr.eq(self.peek_addr), self.peek_data.eq(pk.data)]
        # the return FIFO holds every read in flight: the latency pipe and the read port
        m.submodules.ret = ret = fifo.SyncFIFOBuffered(width=DW, depth=L + 4)
        inflight = Signal(range(L + 6))

        stall_cmd, stall_out = Signal(name="stall_cmd"), Signal(name="stall_out")
        lfsr = Signal(16, init=self._seed & 0xFFFF or 1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        m.d.comb += [stall_cmd.eq(lfsr[:10] < self.stall), stall_out.eq(lfsr[6:16] < self.stall)]

        room = inflight < L + 4
        take = p.cmd.valid & ~stall_cmd & Mux(p.cmd.payload.we, p.wdata.valid, room)
        m.d.comb += [p.cmd.ready.eq(take), p.wdata.ready.eq(take & p.cmd.payload.we)]
        m.d.comb += [wr.addr.eq(p.cmd.payload.addr), wr.data.eq(p.wdata.payload.data)]
        with m.If(take & p.cmd.payload.we):
            m.d.comb += wr.en.eq(p.wdata.payload.we)
        with m.If(self.poke_en):         # a testbench's write (while the port is idle)
            m.d.comb += [wr.addr.eq(self.poke_addr), wr.data.eq(self.poke_data), wr.en.eq(-1)]

        # reads: the address through the latency pipe, then the read port (one cycle) and the FIFO
        pipe = [Signal(data.StructLayout({"v": 1, "a": self._aw}), name=f"pipe{i}") for i in range(L)]
        m.d.sync += pipe[0].eq(Cat(take & ~p.cmd.payload.we, p.cmd.payload.addr))
        for i in range(1, L):
            m.d.sync += pipe[i].eq(pipe[i - 1])
        land = Signal()
        m.d.comb += [rd.addr.eq(pipe[-1].a), rd.en.eq(1)]
        m.d.sync += land.eq(pipe[-1].v)
        m.d.comb += [ret.w_data.eq(rd.data), ret.w_en.eq(land)]
        # (a word once offered stays offered until taken: the stall only delays the next one)
        held = Signal()
        m.d.sync += held.eq(p.rdata.valid & ~p.rdata.ready)
        m.d.comb += [p.rdata.payload.eq(ret.r_data), p.rdata.valid.eq(ret.r_rdy & (~stall_out | held)),
                     ret.r_en.eq(p.rdata.ready & p.rdata.valid)]
        issued = take & ~p.cmd.payload.we
        left = p.rdata.valid & p.rdata.ready
        m.d.sync += inflight.eq(inflight + issued - left)
        return m


class DramCtrlModel(wiring.Component):
    """The CSR side of a behavioural DRAM controller (beside :class:`ExtMemoryModel`, which needs
    no calibration): ``bus`` (:func:`rtl_gen.control.dram_ctrl_signature`, the controller's
    side) acknowledges an access one cycle after ``stb``; word 0 is ``init_done`` (LiteDRAM's
    ``ddrctrl_init_done``, at byte address 0 in both board configurations: the host sets it
    after the initialization, docs/protocol.md), 0 after reset; other words read 0 and ignore
    writes, and word addresses from ``UNMAPPED`` up are never acknowledged (a bus with
    nothing there: the host link's CSR timeout). The simulated board puts it behind the host link's ``CSR`` command, so a driver
    must initialize the DRAM there as on a board before it may use it."""

    UNMAPPED = 0x4000

    def __init__(self):
        super().__init__({"bus": In(dram_ctrl_signature())})

    def elaborate(self, platform):
        m = Module()
        b = self.bus
        done, ack = Signal(name="done"), Signal(name="ack")
        m.d.sync += ack.eq(b.stb & ~ack & (b.adr < self.UNMAPPED))
        with m.If(b.stb & ~ack & b.we & (b.adr == 0)):
            m.d.sync += done.eq(b.dat_w[0])
        m.d.comb += [b.ack.eq(ack), b.dat_r.eq(Mux(b.adr == 0, done, 0)), b.init_done.eq(done)]
        return m
