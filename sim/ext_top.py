"""The accelerator top (:class:`rtl_gen.top.Accelerator`) with its external memory port on a
behavioural memory (:class:`rtl_gen.extmem.ExtMemoryModel`) holding a build's external image
(``external.bin``: little-endian words of ``ext_data_bits``), for whole-network simulations of
builds that keep words in DRAM. Its ports are the Accelerator's, less ``ext``."""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.utils import ceil_log2

from rtl_gen.extmem import ExtMemoryModel
from rtl_gen.top import Accelerator
from sephw.arch.config import ArchConfig

__all__ = ["AcceleratorWithExtMemory", "external_words"]


def external_words(arch: ArchConfig, blob: bytes) -> list[int]:
    """An external image's words (``ext_data_bits`` each, little-endian)."""
    wb = arch.ext_data_bits // 8
    if len(blob) % wb or len(blob) // wb > arch.ext_words:
        raise ValueError(f"an external image of {len(blob)} bytes is not whole {wb}-byte words within "
                         f"{arch.ext_words} words")
    return [int.from_bytes(blob[i:i + wb], "little") for i in range(0, len(blob), wb)]


class AcceleratorWithExtMemory(wiring.Component):
    """The top and an :class:`ExtMemoryModel` of ``latency`` cycles (``stall_permille``: its
    random command and read-data stalls) holding ``ext_init``: the
    model holds the image alone (the next power of two of words), not the board's whole DRAM
    (``arch.ext_words``, what the top's DMA checks addresses against)."""

    def __init__(self, arch: ArchConfig, ext_init: list, netlist: str = "word", latency: int = 10,
                 stall_permille: int = 0):
        if not arch.ext_words:
            raise ValueError("this ArchConfig has no external memory (ext_words 0)")
        self.acc = Accelerator(arch, netlist=netlist)
        depth = min(arch.ext_words, 1 << max(1, ceil_log2(max(2, len(ext_init)))))
        self.mem = ExtMemoryModel(data_width=arch.ext_data_bits, addr_width=max(1, ceil_log2(arch.ext_words)),
                                  depth=depth, init=ext_init, latency=latency, stall_permille=stall_permille)
        super().__init__(wiring.Signature({k: v for k, v in self.acc.signature.members.items() if k != "ext"}))

    host_w_layout = property(lambda self: self.acc.host_w_layout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc, m.submodules.ext = self.acc, self.mem
        wiring.connect(m, self.acc.ext, self.mem.port)
        theirs = {path: value for path, _, value in self.acc.signature.flatten(self.acc)}
        for path, member, value in self.signature.flatten(self):
            if member.flow == wiring.In:
                m.d.comb += theirs[path].eq(value)
            else:
                m.d.comb += value.eq(theirs[path])
        return m
