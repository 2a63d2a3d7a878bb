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
PLACERS = ("heap", "sa", "static")          # nextpnr-ecp5's --placer
#: families whose board top makes other clocks than the oscillator's (rtl_gen/clocking.py)
CLOCK_GENERATORS = {"ecp5": "EHXPLLL", "xc7": "MMCME2"}


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
    keeps words there. ``clock_hz``: the controller's own clock where it is fixed (the Arty's
    A7DDRPHY core makes its 100 MHz clock itself), 0 where the controller is generated for the
    design's clock (the ULX3S's GENSDRPHY core). A board at another design clock
    (:meth:`Board.at_clock`) reaches a fixed-clock controller through a clock-domain crossing
    (rtl_gen/extcdc.py): its ``read_latency`` is then the crossing's
    (:func:`crossing_latency` of ``controller_latency``, the profile's figure), in the design's
    cycles; ``crossing_lut`` / ``crossing_ff``: the two crossings' logic (measured), counted
    then beside the controller's."""
    kind: str
    bytes: int
    data_bits: int
    read_latency: int
    litedram: str
    controller_lut: int = 0
    controller_ff: int = 0
    clock_hz: int = 0
    controller_latency: int = 0
    crossing_lut: int = 0
    crossing_ff: int = 0

    def __post_init__(self):
        if not self.controller_latency:
            object.__setattr__(self, "controller_latency", self.read_latency)

    @property
    def words(self) -> int:
        """Native-port words."""
        return self.bytes * 8 // self.data_bits


def crossing_latency(latency: int, mem_hz: int, user_hz: int) -> int:
    """The read latency, in the user's cycles, of a memory of ``latency`` cycles at ``mem_hz``
    seen through rtl_gen/extcdc.py's NativePortCDC from a user at ``user_hz`` <= ``mem_hz``:
    the latency at which the behavioural memory on the user's own clock streams a long load in
    the same cycles. ``ceil((latency + 6) * user_hz / mem_hz) - 1``: the command and the data
    each cross an asynchronous FIFO (a write, a two-flop synchronizer of its pointer, a read),
    six memory cycles and about one user cycle less than on one clock. Fitted to the crossing
    in the Amaranth simulator and checked there (tests/test_rtl_dma.py
    ``test_crossing_latency_matches_the_cdc``: 64 reads at 50..90 MHz behind a 100 MHz memory
    of latency 10: the median over four phases of the two clocks exact, none more than one
    cycle off)."""
    if user_hz > mem_hz:
        raise BoardError(f"a {user_hz / 1e6:g} MHz design behind a {mem_hz / 1e6:g} MHz DRAM controller would wait "
                         f"on it every beat (the cycle model's DMA takes a beat per cycle)")
    if user_hz == mem_hz:
        return latency
    return -(-(latency + 6) * user_hz // mem_hz) - 1


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
    #: from it where the board top's clock generator makes another (ECP5: EHXPLLL; Artix-7:
    #: MMCME2)
    oscillator_hz: int = 0
    #: the DRAM the compiler may keep weights in (None: everything on chip)
    external: ExternalMemory | None = None
    #: the fraction of the part's LUTs the compiler's overlay may fill (None: the compiler's
    #: own headroom); a profile sets less where the board's place-and-route stalls above it
    lut_fill: float | None = None
    #: window taps from the activation memory land in a register before the gatherer's window
    #: (``EngineConfig.landing_reg``): where the block RAM is slow to its output (ECP5)
    landing_reg: bool = False
    #: the pattern engine's bit-plane is a register per code (``EngineConfig.plane_reg``):
    #: where routing the plane select sets the clock and the engine's region has wires to spare
    plane_reg: bool = False
    #: nextpnr's placer for the open flow (``heap``, ``sa`` or ``static``; None: nextpnr's
    #: default, HeAP)
    placer: str | None = None
    #: nextpnr's seed for its placer's and router's random choices (None: nextpnr's default);
    #: another seed is another placement of the same netlist (``sephw compile --seed``)
    seed: int | None = None
    #: the part's multipliers are 18 x 18 (``EngineConfig.mul18``: the PostProcess registers
    #: partial products of that size before their sum)
    mul18: bool = False

    def __post_init__(self):
        if not self.oscillator_hz:
            object.__setattr__(self, "oscillator_hz", self.clock_hz)
        # the one place of this rule: profiles (parse) and overrides (at_clock) both pass here
        if self.clock_hz != self.oscillator_hz and self.family not in CLOCK_GENERATORS:
            raise BoardError(f"{self.path}: {self.name} runs from its {self.oscillator_hz / 1e6:g} MHz oscillator "
                             f"(no clock generator for the {self.family} family): a {self.clock_hz / 1e6:g} MHz "
                             f"clock needs one (board tops have them on {', '.join(sorted(CLOCK_GENERATORS))})")

    def at_clock(self, clock_hz: int) -> "Board":
        """This board with the design clocked at ``clock_hz`` (``sephw compile --clock-mhz``),
        its external memory's read latency in that clock's cycles where it sits behind a
        clock-domain crossing (:func:`crossing_latency`; from the profile's, so overrides do
        not compound). Boards whose top has no clock generator accept only their oscillator's
        frequency."""
        clock_hz = int(round(clock_hz))
        if not 1_000_000 <= clock_hz <= 1_000_000_000:
            raise BoardError(f"{self.name}: clock {clock_hz} Hz outside 1 MHz .. 1 GHz")
        ext = self.external
        if ext is not None and ext.clock_hz:
            try:
                ext = replace(ext, read_latency=crossing_latency(ext.controller_latency, ext.clock_hz, clock_hz))
            except BoardError as e:
                raise BoardError(f"{self.name}: {e}: compile for {ext.clock_hz / 1e6:g} MHz or less") from None
        return replace(self, clock_hz=clock_hz, external=ext)

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
    fill = doc.get("lut_fill")
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 < fill <= 1):
        raise BoardError(f"{path}: lut_fill must be a fraction in (0, 1], got {fill!r}")
    placer = doc.get("placer")
    if placer is not None and placer not in PLACERS:
        raise BoardError(f"{path}: placer must be one of {', '.join(PLACERS)}, got {placer!r}")
    seed = doc.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 1):
        raise BoardError(f"{path}: seed must be a positive integer, got {seed!r}")
    flags = {k: doc.get(k, False) for k in ("landing_reg", "plane_reg", "mul18")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise BoardError(f"{path}: {k} must be true or false, got {v!r}")
    return Board(name=name, description=str(doc.get("description", name)), vendor=vendor,
                 part=_require(doc, "part", str, path), family=_require(doc, "family", str, path),
                 clock_hz=clock, resources=dict(res), dsp_macs_per_slice=macs, host_links=dict(links),
                 toolchain=toolchain, platform=platform, aliases=tuple(doc.get("aliases") or ()), path=Path(path),
                 oscillator_hz=osc, external=ext, lut_fill=None if fill is None else float(fill),
                 placer=placer, seed=seed, **flags)


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
    clk = doc.get("controller_clock_hz", 0)
    if not isinstance(clk, int) or isinstance(clk, bool) or clk < 0:
        raise BoardError(f"{path}: external_memory.controller_clock_hz must be a non-negative integer (0: the "
                         f"controller runs the design's clock), got {clk!r}")
    cross = doc.get("crossing", {"lut": 0, "ff": 0})
    if not isinstance(cross, dict) or any(not isinstance(cross.get(k), int) or cross[k] < 0 for k in ("lut", "ff")):
        raise BoardError(f"{path}: external_memory.crossing must be a mapping of non-negative lut and ff counts, "
                         f"got {cross!r}")
    return ExternalMemory(kind, nbytes, bits, lat, cfg, ctl["lut"], ctl["ff"], clk, crossing_lut=cross["lut"],
                          crossing_ff=cross["ff"])


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
