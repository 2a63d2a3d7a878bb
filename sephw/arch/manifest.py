"""manifest.json: what a build directory holds, read and written by one class.

The compiler writes it (:meth:`Manifest.write`); the RTL generator, the simulators, the host
driver and the flows read it through :meth:`Manifest.read`, which checks it before anyone
uses it: the format, the keys every reader needs, the ArchConfig and that its hash is the
recorded one. A foreign, truncated or edited file is a :class:`ManifestError` naming the file
and what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from .config import ArchConfig, ConfigError, EngineConfig
from .memmap import MemoryMap

__all__ = ["Manifest", "ManifestError", "FORMAT", "VERSION", "FILE"]

FORMAT = "sephw-build"
VERSION = 2          # 2: the whole ArchConfig and its hash (1 hashed the engine sizes only)
FILE = "manifest.json"

_REQUIRED = ("format", "version", "board", "part", "clock_hz", "arch", "arch_hash", "isa", "program",
             "memories", "tensors", "input", "output", "cycles_per_inference")


class ManifestError(ValueError):
    """A build directory's manifest that is missing, unreadable, foreign or inconsistent."""


class Manifest:
    """A checked manifest.json.

    Parameters
    ----------
    data : dict
        The JSON object.
    build_dir : path, optional
        The directory it belongs to (image and IntGraph paths are relative to it).
    """

    def __init__(self, data: dict, build_dir=None):
        self._dir = Path(build_dir) if build_dir is not None else None
        where = str(self._dir / FILE) if self._dir is not None else FILE
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: not a JSON object")
        if data.get("format") != FORMAT:
            raise ManifestError(f"{where}: not a sephw build manifest (format {data.get('format')!r})")
        if data.get("version") != VERSION:
            raise ManifestError(f"{where}: manifest version {data.get('version')!r}, this sephw reads "
                                f"version {VERSION}: recompile the build with `sephw compile`")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ManifestError(f"{where}: missing keys {', '.join(missing)}")
        try:
            self._arch = ArchConfig.from_dict(data["arch"])
        except (ConfigError, TypeError) as e:
            raise ManifestError(f"{where}: bad arch: {e}") from None
        if self._arch.hash() != data["arch_hash"]:
            raise ManifestError(f"{where}: arch_hash {data['arch_hash']} is not the hash of its arch "
                                f"({self._arch.hash()}): the file was edited or is corrupt")
        try:
            self._tensors = {int(t["id"]): t for t in data["tensors"]}
            self._input_shape = tuple(int(v) for v in data["input"]["shape"])
            self._classes = int(data["output"]["shape"][0])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ManifestError(f"{where}: malformed tensors, input or output ({e!r})") from None
        self._data = data
        self._where = where

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def read(cls, build_dir) -> "Manifest":
        """The manifest of ``build_dir`` (:class:`ManifestError` when it is missing or bad)."""
        d = Path(build_dir)
        p = d / FILE
        if not p.is_file():
            raise ManifestError(f"{p} is missing: {d} is not a build directory of `sephw compile`")
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ManifestError(f"{p}: not readable JSON ({e})") from None
        return cls(data, d)

    def write(self, build_dir=None) -> Path:
        """Write manifest.json into ``build_dir`` (default: the one it was read from)."""
        d = Path(build_dir) if build_dir is not None else self._dir
        if d is None:
            raise ValueError("no build directory to write the manifest into")
        p = d / FILE
        p.write_text(json.dumps(self._data, indent=1))
        return p

    @property
    def build_dir(self) -> Path | None:
        return self._dir

    def path(self, name: str) -> Path:
        """A file of the build directory."""
        if self._dir is None:
            raise ValueError("this manifest belongs to no build directory")
        return self._dir / name

    # -- the contract -----------------------------------------------------------------------
    @property
    def arch(self) -> ArchConfig:
        return self._arch

    @property
    def arch_hash(self) -> str:
        return self._data["arch_hash"]

    @property
    def engine(self) -> EngineConfig:
        return self._arch.engine

    @property
    def memory_map(self) -> MemoryMap:
        return MemoryMap(self._arch)

    # -- what was compiled ------------------------------------------------------------------
    @property
    def data(self) -> dict:
        """The JSON object (read-only use)."""
        return self._data

    def __getitem__(self, key):
        return self._data[key]

    def get(self, key, default=None):
        return self._data.get(key, default)

    board = property(lambda self: self._data["board"], doc="Board profile name.")
    part = property(lambda self: self._data["part"], doc="FPGA part.")
    clock_hz = property(lambda self: int(self._data["clock_hz"]), doc="Clock the build assumes (Hz).")
    cycles_per_inference = property(lambda self: int(self._data["cycles_per_inference"]),
                                    doc="Predicted cycles of one inference.")
    dataset = property(lambda self: self._data.get("dataset"), doc="Dataset the model was trained on.")
    input_shape = property(lambda self: self._input_shape, doc="(C, H, W) of the input image.")
    classes = property(lambda self: self._classes, doc="Logits per inference.")
    program_instructions = property(lambda self: int(self._data["program"]["instructions"]))

    @property
    def input_bytes(self) -> int:
        return math.prod(self._input_shape)

    @property
    def logit_bytes(self) -> int:
        return 8 * self._classes

    @property
    def tensors(self) -> dict:
        """Tensor id -> its entry (name, shape (C, H, W), dtype, base, ring_rows, bytes)."""
        return self._tensors

    @property
    def intgraph_path(self) -> Path:
        return self.path(self._data.get("intgraph", "intgraph.pt"))

    def images(self, verify: bool = True, external: bool = True) -> list:
        """``(Region, bytes)`` of every memory image in select order, the external memory's
        (``external.bin``, where the build keeps words in DRAM) last unless ``external`` is
        False (a paged Program's image is not one: its pages are in the external image);
        with ``verify`` each must be whole words of the region's width, within its
        depth, and (where recorded) match its SHA-256."""
        out = []
        recorded = dict(self._data["memories"], program=self._data["program"])
        regions = list(self.memory_map)
        if external and self.memory_map.external is not None and self._data.get("external"):
            recorded["external"] = self._data["external"]
            regions.append(self.memory_map.external)
        for r in regions:
            if r.name == "program" and self.arch.program_page:
                continue        # a paged Program is in the external image (its first words)
            p = self.path(r.image)
            try:
                blob = p.read_bytes()
            except OSError as e:
                raise ManifestError(f"{p}: cannot read the {r.name} image ({e.strerror or e})") from None
            if verify:
                if len(blob) % r.word_bytes:
                    raise ManifestError(f"{p}: {len(blob)} bytes is not a whole number of "
                                        f"{r.word_bytes}-byte {r.name} words")
                if len(blob) // r.word_bytes > r.depth:
                    raise ManifestError(f"{p}: {len(blob) // r.word_bytes} {r.name} words, the memory "
                                        f"holds {r.depth}")
                sha = (recorded.get(r.name) or {}).get("sha256")
                if sha and hashlib.sha256(blob).hexdigest() != sha:
                    raise ManifestError(f"{p}: contents do not match the manifest's SHA-256 (edited or "
                                        f"from another build)")
            out.append((r, blob))
        return out

    def writes(self) -> list:
        """``(memory select, word address, word)`` for every word of every on-chip image (the
        accelerator's ``host_w`` writes: a boot ROM's, and the host link's LOADs but those
        into DRAM)."""
        out = []
        for r, blob in self.images(external=False):
            wb = r.word_bytes
            out += [(r.select, a, int.from_bytes(blob[a * wb:(a + 1) * wb], "little"))
                    for a in range(len(blob) // wb)]
        return out
