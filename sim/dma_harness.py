"""Test harness for :mod:`rtl_gen.dma`: a LoadDMA and a StoreDMA sharing one external memory
(the StoreDMA has the port while it is busy), an on-chip memory between them (the LoadDMA
writes it, the StoreDMA reads it; ``onchip_init`` its first contents), and peek ports for the
testbench (sim/tb_dma.py). The external memory is the behavioural
:class:`~rtl_gen.extmem.ExtMemoryModel` (peekable), or with ``litedram`` (a
:class:`~rtl_gen.dram.LiteDRAMCore` generated with ``sim=True``) LiteDRAM's own simulation
core, its CSR bus on the ``ctrl_*`` ports. ``mon_*``: the shared port's handshakes as the
external memory sees them (``mon_wcmd_valid``: a write command offered), for the testbench's
port-rule monitor. ``store_cls``: the StoreDMA (a variant for the monitor's own test)."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl_gen.dma import LoadDMA, StoreDMA, dma_command_layout
from rtl_gen.dram import LiteDRAM
from rtl_gen.extmem import ExtMemoryModel

__all__ = ["DmaHarness"]


class DmaHarness(wiring.Component):
    def __init__(self, *, data_width: int, word_bits: int, onchip_depth: int, ext_depth: int,
                 latency: int | None = None, stall_permille: int = 0, init=(), seed: int = 1, onchip_init=(),
                 litedram=None, store_cls=StoreDMA):
        if litedram is not None:
            data_width, aw = litedram.data_width, litedram.addr_width
            ext_depth = 1 << aw
            self.ext = LiteDRAM(litedram)
        else:
            aw = max(1, ceil_log2(ext_depth))
            lat = {} if latency is None else {"latency": latency}      # (default: the model's)
            self.ext = ExtMemoryModel(data_width=data_width, addr_width=aw, depth=ext_depth, **lat,
                                      stall_permille=stall_permille, seed=seed, init=init)
        kw = dict(data_width=data_width, addr_width=aw, word_bits=word_bits, onchip_depth=onchip_depth,
                  ext_words=ext_depth)
        self.load, self.store = LoadDMA(**kw), store_cls(**kw)
        self._wb, self._depth, self._init = word_bits, onchip_depth, list(onchip_init)
        self._litedram = litedram is not None
        ctrl = {"ctrl_adr": In(30), "ctrl_dat_w": In(32), "ctrl_dat_r": Out(32), "ctrl_we": In(1),
                "ctrl_stb": In(1), "ctrl_ack": Out(1), "init_done": Out(1), "init_error": Out(1)}
        oab = max(1, ceil_log2(onchip_depth))
        super().__init__({
            "load_cmd": In(stream.Signature(dma_command_layout(oab))),
            "store_cmd": In(stream.Signature(dma_command_layout(oab))),
            "load_done": Out(1), "load_error": Out(1), "store_done": Out(1), "store_error": Out(1),
            "onchip_peek_addr": In(oab), "onchip_peek_data": Out(word_bits),
            "ext_peek_addr": In(aw), "ext_peek_data": Out(data_width),
            "mon_wcmd_valid": Out(1), "mon_cmd_ready": Out(1), "mon_wdata_valid": Out(1),
            "mon_wdata_ready": Out(1),
            **(ctrl if self._litedram else {}),
        })

    def elaborate(self, platform):
        m = Module()
        ld, st, ext = self.load, self.store, self.ext
        m.submodules.load, m.submodules.store, m.submodules.ext = ld, st, ext
        m.submodules.onchip = mem = Memory(shape=self._wb, depth=self._depth, init=self._init)
        wr, rd, pk = mem.write_port(), mem.read_port(), mem.read_port()
        wiring.connect(m, wiring.flipped(self.load_cmd), ld.cmd)
        wiring.connect(m, wiring.flipped(self.store_cmd), st.cmd)
        wiring.connect(m, ld.onchip, wr)
        wiring.connect(m, st.onchip, rd)
        if self._litedram:
            for n in ("ctrl_adr", "ctrl_dat_w", "ctrl_we", "ctrl_stb"):
                m.d.comb += getattr(ext, n).eq(getattr(self, n))
            for n in ("ctrl_dat_r", "ctrl_ack", "init_done", "init_error"):
                m.d.comb += getattr(self, n).eq(getattr(ext, n))
        else:
            m.d.comb += [ext.peek_addr.eq(self.ext_peek_addr), self.ext_peek_data.eq(ext.peek_data)]
        m.d.comb += [pk.addr.eq(self.onchip_peek_addr), self.onchip_peek_data.eq(pk.data),
                     self.load_done.eq(ld.done), self.load_error.eq(ld.error),
                     self.store_done.eq(st.done), self.store_error.eq(st.error)]
        p = ext.port
        with m.If(st.busy):
            m.d.comb += [p.cmd.payload.eq(st.ext.cmd.payload), p.cmd.valid.eq(st.ext.cmd.valid),
                         st.ext.cmd.ready.eq(p.cmd.ready),
                         p.wdata.payload.eq(st.ext.wdata.payload), p.wdata.valid.eq(st.ext.wdata.valid),
                         st.ext.wdata.ready.eq(p.wdata.ready)]
        with m.Else():
            m.d.comb += [p.cmd.payload.eq(ld.ext.cmd.payload), p.cmd.valid.eq(ld.ext.cmd.valid),
                         ld.ext.cmd.ready.eq(p.cmd.ready)]
        m.d.comb += [self.mon_wcmd_valid.eq(p.cmd.valid & p.cmd.payload.we), self.mon_cmd_ready.eq(p.cmd.ready),
                     self.mon_wdata_valid.eq(p.wdata.valid), self.mon_wdata_ready.eq(p.wdata.ready)]
        m.d.comb += [ld.ext.rdata.payload.eq(p.rdata.payload), ld.ext.rdata.valid.eq(p.rdata.valid),
                     p.rdata.ready.eq(ld.ext.rdata.ready)]
        return m
