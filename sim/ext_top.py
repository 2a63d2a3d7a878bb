"""Designs with an external memory port (``ext``) beside a behavioural memory
(:class:`rtl_gen.extmem.ExtMemoryModel`), for simulations of builds that keep words in DRAM:
:class:`AcceleratorWithExtMemory`, the accelerator top (whole-network runs, ``run_top``,
whose testbench writes the build's external image, ``external.bin``, into the memory
through ``ext_poke``), and :class:`WithExtMemory` for any such design, e.g. the simulated
board's System, whose host link fills the memory by ``LOAD``. Their ports are the inner
design's, less ``ext`` (and ``dram``, the DRAM controller's CSR bus, where the design has
one: a :class:`rtl_gen.extmem.DramCtrlModel` answers it), and ``ext_stall`` and
``ext_poke_*``."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from rtl_gen.extmem import DramCtrlModel, ExtMemoryModel
from rtl_gen.top import Accelerator
from sephw.arch.config import ArchConfig

__all__ = ["AcceleratorWithExtMemory", "WithExtMemory"]


class WithExtMemory(wiring.Component):
    """``inner`` (a component with an ``ext`` port) and an :class:`ExtMemoryModel` of ``depth``
    words (a power of two; default: enough for ``ext_init``) holding ``ext_init``, with
    ``latency`` cycles. The model
    holds ``depth`` words, not the board's whole DRAM (``arch.ext_words``, what the DMA and
    the host link check addresses against); addresses beyond it wrap. The input
    ``ext_stall`` sets the memory's random command and read-data stalls at run time (cycles
    per 1024, :func:`rtl_gen.extmem.stall_threshold`; 0: none), so one simulator build runs
    with and without; ``ext_poke_*`` write a word of the memory from a testbench (while the
    design does not use it: the input image of a whole-network run)."""

    def __init__(self, inner: wiring.Component, arch: ArchConfig, *, ext_init=(), depth: int | None = None,
                 latency: int = 10):
        if not arch.ext_words:
            raise ValueError("this ArchConfig has no external memory (ext_words 0)")
        self.inner = inner
        if depth is None:
            depth = 1 << max(1, ceil_log2(max(2, len(ext_init))))
        self._depth = min(arch.ext_words, depth)
        self.mem = ExtMemoryModel(data_width=arch.ext_data_bits, addr_width=max(1, ceil_log2(arch.ext_words)),
                                  depth=self._depth, init=list(ext_init), latency=latency)
        aw = max(1, ceil_log2(self.mem_depth))
        self.ctrl = DramCtrlModel() if "dram" in inner.signature.members else None
        super().__init__(wiring.Signature({
            **{k: v for k, v in inner.signature.members.items() if k not in ("ext", "dram")},
            "ext_stall": In(range(1025)),
            "ext_poke_en": In(1), "ext_poke_addr": In(aw), "ext_poke_data": In(arch.ext_data_bits)}))

    mem_depth = property(lambda self: self._depth, doc="Words of the behavioural memory (addresses wrap).")

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner, m.submodules.ext = self.inner, self.mem
        wiring.connect(m, self.inner.ext, self.mem.port)
        if self.ctrl is not None:
            m.submodules.dram_ctrl = self.ctrl
            wiring.connect(m, self.inner.dram, self.ctrl.bus)
        m.d.comb += [self.mem.stall.eq(self.ext_stall), self.mem.poke_en.eq(self.ext_poke_en),
                     self.mem.poke_addr.eq(self.ext_poke_addr), self.mem.poke_data.eq(self.ext_poke_data)]
        theirs = {path: value for path, _, value in self.inner.signature.flatten(self.inner) if path[0] != "dram"}
        ours = {("ext_stall",), ("ext_poke_en",), ("ext_poke_addr",), ("ext_poke_data",)}
        for path, member, value in self.signature.flatten(self):
            if path in ours:
                continue
            if member.flow == wiring.In:
                m.d.comb += theirs[path].eq(value)
            else:
                m.d.comb += value.eq(theirs[path])
        return m


class AcceleratorWithExtMemory(WithExtMemory):
    """The top (:class:`rtl_gen.top.Accelerator`, ``netlist``) and an empty memory of ``depth``
    words (a testbench writes the external image through ``ext_poke``)."""

    def __init__(self, arch: ArchConfig, netlist: str = "word", latency: int = 10, depth: int = 2):
        self.acc = Accelerator(arch, netlist=netlist)
        super().__init__(self.acc, arch, latency=latency, depth=depth)

    host_w_layout = property(lambda self: self.acc.host_w_layout)
