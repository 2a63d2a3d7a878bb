"""The memory map: the accelerator's host-writable memories as named, checked word ranges.

A build's images (program.bin, tensors.bin, ...) are written into these memories, through
the top's ``host_w`` port (memory select, word address, word) by the host link's ``LOAD`` or
by a boot ROM. The select numbers, word widths and depths are defined here once, from the
:class:`~sephw.arch.config.ArchConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import MEMORY_NAMES, ArchConfig

__all__ = ["MemoryMap", "Region", "MemoryMapError", "SELECT", "IMAGE_FILES",
           "MEM_PROGRAM", "MEM_TENSORS", "MEM_PARAMS", "MEM_PATTERNS", "MEM_WEIGHTS"]

SELECT = {name: i for i, name in enumerate(MEMORY_NAMES)}
MEM_PROGRAM, MEM_TENSORS, MEM_PARAMS, MEM_PATTERNS, MEM_WEIGHTS = (SELECT[n] for n in MEMORY_NAMES)
IMAGE_FILES = {name: f"{name}.bin" for name in MEMORY_NAMES}


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

    @property
    def regions(self) -> tuple:
        return self._regions

    def __iter__(self):
        return iter(self._regions)

    def __getitem__(self, key) -> Region:
        """A region by name or select number."""
        for r in self._regions:
            if key in (r.name, r.select):
                return r
        raise MemoryMapError(f"no memory {key!r}; memories: "
                             + ", ".join(f"{r.select} {r.name}" for r in self._regions))

    @property
    def addr_bits(self) -> int:
        """Bits of a word address that reaches every memory."""
        return max(max(1, (r.depth - 1).bit_length()) for r in self._regions)

    @property
    def data_bits(self) -> int:
        """Bits of the widest word."""
        return max(r.word_bits for r in self._regions)
