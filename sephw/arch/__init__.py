"""The hardware contract: every fact about the accelerator that the compiler, the RTL
generator, the simulators and the host share, written once.

- :mod:`~sephw.arch.config`: :class:`EngineConfig`, :class:`ArchConfig` (every size the
  bitstream depends on, hashed as a whole);
- :mod:`~sephw.arch.isa`: opcodes and per-opcode instruction layouts;
- :mod:`~sephw.arch.formats`: the tensor descriptor and PostProcess parameter words;
- :mod:`~sephw.arch.link`: the host link's frames, commands and INFO record;
- :mod:`~sephw.arch.memmap`: the host-writable memories as named, checked ranges;
- :mod:`~sephw.arch.manifest`: manifest.json, read and written by one class.

A leaf package: it imports nothing else of the project (tests/test_imports.py), and no
third-party package at import time (Amaranth layouts are built on request), so a host that
drives a board needs only Python and pyserial.
"""
from .config import ArchConfig, ConfigError, EngineConfig, pattern_slices
from .manifest import Manifest, ManifestError
from .memmap import MemoryMap, MemoryMapError, Region
from .records import Field, Record, RecordError

__all__ = ["ArchConfig", "ConfigError", "EngineConfig", "pattern_slices", "Manifest", "ManifestError",
           "MemoryMap", "MemoryMapError", "Region", "Field", "Record", "RecordError"]
