"""Board profiles: ``boards/*.yaml``, validated on load.

A profile names the part, the clock, the resource budgets the compiler sizes engines and
tiles layers against, the host links, the toolchain and the amaranth-boards platform class.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
VENDORS = {"xilinx": "vivado", "lattice": "trellis"}
RESOURCE_KEYS = ("lut", "ff", "dsp", "bram_kbits", "bram_blocks")


class BoardError(ValueError):
    """An unknown board or an invalid profile; the message names the file and the field."""


@dataclass(frozen=True)
class ExternalMemory:
    """The board's DRAM as the accelerator sees it: LiteDRAM's native port (``data_bits``
    wide), ``bytes`` in all, and the read latency (cycles) of the behavioural model that
    reproduces LiteDRAM's simulation core of the board's configuration (``litedram``, a
    file under boards/): the cycle model's and the whole-network simulation's figure.
    ``controller_lut`` / ``controller_ff``: the controller's own logic in the board top
    (measured: Yosys on the generated core alone), counted against the part whenever a build
    keeps words there."""
    kind: str
    bytes: int
    data_bits: int
    read_latency: int
    litedram: str
    controller_lut: int = 0
    controller_ff: int = 0

    @property
    def words(self) -> int:
        """Native-port words."""
        return self.bytes * 8 // self.data_bits


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    vendor: str
    part: str
    family: str
    clock_hz: int
    resources: dict
    dsp_macs_per_slice: int
    host_links: dict
    toolchain: str
    platform: str
    aliases: tuple = ()
    path: Path = field(default=HERE)
    #: the frequency of the platform's clock pin; ``clock_hz`` (the design's clock) differs
    #: from it only where the board top has a clock generator (ECP5: EHXPLLL)
    oscillator_hz: int = 0
    #: the DRAM the compiler may keep weights in (None: everything on chip)
    external: ExternalMemory | None = None

    def __post_init__(self):
        if not self.oscillator_hz:
            object.__setattr__(self, "oscillator_hz", self.clock_hz)
        # the one place of this rule: profiles (parse) and overrides (at_clock) both pass here
        if self.clock_hz != self.oscillator_hz and self.family != "ecp5":
            raise BoardError(f"{self.path}: {self.name} runs from its {self.oscillator_hz / 1e6:g} MHz oscillator "
                             f"(no clock generator yet): a {self.clock_hz / 1e6:g} MHz clock needs a clock "
                             f"generator, which only ECP5 board tops have (PLL)")

    def at_clock(self, clock_hz: int) -> "Board":
        """This board with the design clocked at ``clock_hz`` (``sephw compile --clock-mhz``).
        Boards whose top has no clock generator accept only their oscillator's frequency."""
        clock_hz = int(round(clock_hz))
        if not 1_000_000 <= clock_hz <= 1_000_000_000:
            raise BoardError(f"{self.name}: clock {clock_hz} Hz outside 1 MHz .. 1 GHz")
        return replace(self, clock_hz=clock_hz)

    @property
    def onchip_bytes(self) -> int:
        """Block-RAM capacity in bytes."""
        return self.resources["bram_kbits"] * 1024 // 8

    def platform_class(self):
        """The amaranth-boards platform class named by the profile."""
        mod, _, cls = self.platform.rpartition(".")
        return getattr(importlib.import_module(mod), cls)


def _require(doc: dict, key: str, typ, path: Path):
    if key not in doc:
        raise BoardError(f"{path}: missing field {key!r}")
    val = doc[key]
    if typ is int and isinstance(val, bool) or not isinstance(val, typ):
        raise BoardError(f"{path}: field {key!r} must be {typ.__name__}, got {type(val).__name__} ({val!r})")
    return val


def parse(path: Path) -> Board:
    """Read and validate one profile."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise BoardError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise BoardError(f"{path}: a board profile is a YAML mapping")
    name = _require(doc, "name", str, path)
    vendor = _require(doc, "vendor", str, path)
    if vendor not in VENDORS:
        raise BoardError(f"{path}: vendor {vendor!r} not supported; supported: {', '.join(VENDORS)}")
    toolchain = _require(doc, "toolchain", str, path)
    if toolchain != VENDORS[vendor]:
        raise BoardError(f"{path}: toolchain {toolchain!r} does not fit vendor {vendor!r} (expected {VENDORS[vendor]!r})")
    clock = _require(doc, "clock_hz", int, path)
    if not 1_000_000 <= clock <= 1_000_000_000:
        raise BoardError(f"{path}: clock_hz {clock} outside 1 MHz .. 1 GHz")
    osc = doc.get("oscillator_hz", clock)
    if not isinstance(osc, int) or isinstance(osc, bool) or not 1_000_000 <= osc <= 1_000_000_000:
        raise BoardError(f"{path}: oscillator_hz must be an integer in 1 MHz .. 1 GHz, got {osc!r}")
    res = _require(doc, "resources", dict, path)
    for k in RESOURCE_KEYS:
        v = res.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise BoardError(f"{path}: resources.{k} must be a positive integer, got {v!r}")
    links = _require(doc, "host_links", dict, path)
    if "uart" not in links:
        raise BoardError(f"{path}: host_links must include 'uart' (every board has one)")
    platform = _require(doc, "platform", str, path)
    if "." not in platform:
        raise BoardError(f"{path}: platform must be a dotted class path, got {platform!r}")
    macs = _require(doc, "dsp_macs_per_slice", int, path)
    if macs not in (1, 2):
        raise BoardError(f"{path}: dsp_macs_per_slice must be 1 or 2, got {macs}")
    ext = doc.get("external_memory")
    if ext is not None:
        ext = _external(ext, path)
    return Board(name=name, description=str(doc.get("description", name)), vendor=vendor,
                 part=_require(doc, "part", str, path), family=_require(doc, "family", str, path),
                 clock_hz=clock, resources=dict(res), dsp_macs_per_slice=macs, host_links=dict(links),
                 toolchain=toolchain, platform=platform, aliases=tuple(doc.get("aliases") or ()), path=Path(path),
                 oscillator_hz=osc, external=ext)


def _external(doc, path: Path) -> ExternalMemory:
    """The ``external_memory`` section of a profile."""
    if not isinstance(doc, dict):
        raise BoardError(f"{path}: external_memory must be a mapping")
    kind = _require(doc, "kind", str, path)
    nbytes, bits, lat = (_require(doc, k, int, path) for k in ("bytes", "data_bits", "read_latency"))
    cfg = _require(doc, "litedram", str, path)
    if bits < 8 or bits & (bits - 1):
        raise BoardError(f"{path}: external_memory.data_bits must be a power of two >= 8, got {bits}")
    if nbytes <= 0 or nbytes * 8 % bits:
        raise BoardError(f"{path}: external_memory.bytes must be a positive multiple of the port's words, "
                         f"got {nbytes}")
    if not 1 <= lat <= 1000:
        raise BoardError(f"{path}: external_memory.read_latency must be 1 .. 1000 cycles, got {lat}")
    if not (HERE / cfg).is_file():      # the LiteDRAM configurations ship in boards/litedram
        raise BoardError(f"{path}: external_memory.litedram names {cfg}, which is not in {HERE}")
    ctl = doc.get("controller", {"lut": 0, "ff": 0})
    if not isinstance(ctl, dict) or any(not isinstance(ctl.get(k), int) or ctl[k] < 0 for k in ("lut", "ff")):
        raise BoardError(f"{path}: external_memory.controller must be a mapping of non-negative lut and ff "
                         f"counts, got {ctl!r}")
    return ExternalMemory(kind, nbytes, bits, lat, cfg, ctl["lut"], ctl["ff"])


def all_boards(folder: Path = HERE) -> dict[str, Board]:
    """Every profile in ``folder`` by name."""
    boards = {}
    for p in sorted(folder.glob("*.yaml")):
        b = parse(p)
        if b.name in boards:
            raise BoardError(f"{p}: board name {b.name!r} already defined in {boards[b.name].path}")
        boards[b.name] = b
    return boards


def get(name: str, folder: Path = HERE) -> Board:
    """A board by name or alias; an unknown name lists the known boards."""
    boards = all_boards(folder)
    for b in boards.values():
        if name == b.name or name in b.aliases:
            return b
    known = ", ".join(sorted(list(boards) + [a for b in boards.values() for a in b.aliases]))
    raise BoardError(f"unknown board {name!r}; known boards: {known}")
