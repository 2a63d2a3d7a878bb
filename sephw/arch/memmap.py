"""The memory map: the accelerator's host-writable memories as named, checked word ranges.

A build's images (program.bin, tensors.bin, ...) are written into these memories, through
the top's ``host_w`` port (memory select, word address, word) by the host link's ``LOAD`` or
by a boot ROM. With external memory (``ArchConfig.ext_words``) the host link's ``LOAD`` also
reaches the board's DRAM as memory :data:`MEM_EXTERNAL` (words of the DRAM port's width, the
build's ``external.bin``), written through the system's DRAM port, not the accelerator's
``host_w``; the input image then lives in the DRAM's last words (:attr:`MemoryMap.input_base`).
The select numbers, word widths and depths are defined here once, from the
:class:`~sephw.arch.config.ArchConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import MEMORY_NAMES, ArchConfig

__all__ = ["MemoryMap", "Region", "MemoryMapError", "SELECT", "IMAGE_FILES",
           "MEM_PROGRAM", "MEM_TENSORS", "MEM_PARAMS", "MEM_PATTERNS", "MEM_WEIGHTS", "MEM_EXTERNAL"]

SELECT = {name: i for i, name in enumerate(MEMORY_NAMES)}
MEM_PROGRAM, MEM_TENSORS, MEM_PARAMS, MEM_PATTERNS, MEM_WEIGHTS = (SELECT[n] for n in MEMORY_NAMES)
MEM_EXTERNAL = len(MEMORY_NAMES)          # the board's DRAM (host link LOAD only)
IMAGE_FILES = {name: f"{name}.bin" for name in MEMORY_NAMES + ("external",)}


class MemoryMapError(ValueError):
    """A write outside a memory, or a memory that does not exist."""


@dataclass(frozen=True)
class Region:
    """One host-writable memory: ``depth`` words of ``word_bits`` (``word_bytes`` in images)."""
    name: str
    select: int
    word_bits: int
    word_bytes: int
    depth: int
    image: str

    @property
    def addr_bits(self) -> int:
        """Bits of a word address within this memory."""
        return max(1, (self.depth - 1).bit_length())

    def check(self, addr: int, words: int = 1) -> None:
        """Raise :class:`MemoryMapError` unless words ``addr .. addr + words - 1`` exist."""
        if addr < 0 or words < 0 or addr + words > self.depth:
            raise MemoryMapError(f"{self.name} memory: words {addr}..{addr + words - 1} are outside its "
                                 f"{self.depth} words")


class MemoryMap:
    """The host-writable memories of one :class:`ArchConfig`, in select order."""

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        depths, bits, nbytes = arch.depths, arch.word_bits, arch.word_bytes
        self._regions = tuple(Region(n, SELECT[n], bits[n], nbytes[n], depths[n], IMAGE_FILES[n])
                              for n in MEMORY_NAMES)
        self._input_bytes = arch.input_bytes
        self._external = None if not arch.ext_words else Region(
            "external", MEM_EXTERNAL, arch.ext_data_bits, arch.ext_data_bits // 8, arch.ext_words,
            IMAGE_FILES["external"])

    @property
    def regions(self) -> tuple:
        """The on-chip memories (the accelerator's ``host_w``), in select order."""
        return self._regions

    @property
    def external(self) -> Region | None:
        """The board's DRAM as the host link's ``LOAD`` sees it (None: no external memory)."""
        return self._external

    @property
    def input_base(self) -> int | None:
        """With external memory: the first DRAM word of the input image (the last words of
        the DRAM, ``ceil(input_bytes / word_bytes)`` of them), which the host link's
        ``WRITE_INPUT`` writes and the input feeder reads during a run (the image is not kept
        on chip). None without external memory."""
        if self._external is None:
            return None
        return self._external.depth - -(-self._input_bytes // self._external.word_bytes)

    @property
    def loadable(self) -> tuple:
        """Every memory a host ``LOAD`` reaches: :attr:`regions`, then :attr:`external`."""
        return self._regions + ((self._external,) if self._external else ())

    def __iter__(self):
        return iter(self._regions)

    def __getitem__(self, key) -> Region:
        """A region by name or select number (the external memory included)."""
        for r in self.loadable:
            if key in (r.name, r.select):
                return r
        raise MemoryMapError(f"no memory {key!r}; memories: "
                             + ", ".join(f"{r.select} {r.name}" for r in self.loadable))

    @property
    def addr_bits(self) -> int:
        """Bits of a word address that reaches every on-chip memory."""
        return max(r.addr_bits for r in self._regions)

    @property
    def data_bits(self) -> int:
        """Bits of the widest on-chip word."""
        return max(r.word_bits for r in self._regions)
