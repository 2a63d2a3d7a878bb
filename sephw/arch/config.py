"""The hardware contract's sizes: :class:`EngineConfig` (the overlay the compiler sizes) and
:class:`ArchConfig` (every size the bitstream depends on), hashed as a whole.

A bitstream is generated from one ArchConfig; a build directory records the ArchConfig it
was compiled for (manifest.json); the host's :class:`~host.device.Device` compares the two
hashes, and nothing else, before it loads a build.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from .formats import PARAM_WORD, TENSOR_DESC
from .isa import WORD_BITS

__all__ = ["EngineConfig", "ArchConfig", "pattern_slices", "pattern_bit", "pattern_kernels", "dw_lane_bits",
           "dw_slices", "dw_pattern_words", "pattern_depth", "ConfigError", "memory_word_bits", "dma_beats"]


class ConfigError(ValueError):
    """An ArchConfig or EngineConfig with a size out of range, or a malformed dict."""


def pattern_slices(a_bits: int) -> int:
    """Slices of a pattern word in the accelerator top's pattern memory: the largest power of
    two at most ``a_bits / 2`` (4 at 8-bit activations). The memory is that many times narrower
    and deeper (block RAMs counted by depth, not by the word's width) and the engine fetches a
    beat's word one slice per cycle while the previous beat's ``a_bits`` planes run
    (rtl_gen/pattern.py, ``pattern_slices``)."""
    s = 1
    while s * 2 <= max(1, a_bits // 2):
        s *= 2
    return s


def pattern_bit(lanes: int, lane: int, c: int, i: int, j: int, k: int) -> int:
    """The bit of pattern filter tap ``(c, i, j)`` of lane ``lane`` (of ``lanes``) in a pattern
    word of a ``k x k`` kernel: the word is tap-major, ``((c*k + i)*k + j)*lanes + lane``, so
    one chunk of ``cc`` channels fills its first ``lanes * cc * k^2`` bits whatever the engine's
    ``k_max`` and ``cin`` (rtl_gen/pattern.py moves the bit-plane to match, not the bits):
    a chunk with fewer channels or a smaller kernel takes fewer memory slices."""
    return ((c * k + i) * k + j) * lanes + lane


def pattern_kernels(k_max: int) -> tuple[int, ...]:
    """The kernel sizes a pattern engine of window ``k_max`` runs (its ``kernel`` port)."""
    return tuple(k for k in (3, 5, 7) if k <= k_max)


def dw_lane_bits(k_max: int) -> int:
    """Bits of one lane in one word of the pattern engine's depthwise pattern memory
    (rtl_gen/pattern.py, ``dw_depth``): ``2*k_max + 3``, the prefix of the lane's
    ``k_max x k_max`` tap grid (bit ``i*k_max + j``) that a 3x3 kernel in its top-left corner
    reaches, so a 3x3 depthwise filter takes one word; larger kernels take
    :func:`dw_slices` consecutive words, each holding the next ``2*k_max + 3`` grid bits."""
    return 2 * k_max + 3


def dw_slices(k_max: int, k: int) -> int:
    """Depthwise pattern memory words one tile of a ``k x k`` depthwise filter takes: the
    grid prefix up to its last tap, ``(k-1)*k_max + k`` bits, in words of
    :func:`dw_lane_bits` per lane (1, 2, 3 for k = 3, 5, 7 at ``k_max = 7``: at most 1.9x the
    filter's bits)."""
    return -(-((k - 1) * k_max + k) // dw_lane_bits(k_max))


def dw_pattern_words(lane_grids: list[int], k_max: int, kernel: int) -> list[int]:
    """The depthwise pattern memory words of one tile of a ``kernel x kernel`` filter:
    ``lane_grids[l]`` is lane ``l``'s tap-grid bits (bit ``i*k_max + j`` is 1 where
    ``B == +1``); word ``s`` holds bits ``s*dw_lane_bits ..`` of each lane's grid at bit
    ``l*dw_lane_bits`` (:func:`dw_slices` words)."""
    wl = dw_lane_bits(k_max)
    mask = (1 << wl) - 1
    return [sum(((g >> (s * wl)) & mask) << (l * wl) for l, g in enumerate(lane_grids))
            for s in range(dw_slices(k_max, kernel))]


def pattern_depth(pattern_words: int, slices: int) -> int:
    """Pattern words of ``slices`` memory words each the pattern engine holds for
    ``pattern_words`` memory words: at least 2, and room for the ``slices - 1`` words a fetch
    reads past the last chunk (a fetch reads ``slices`` words from a chunk's first, whatever
    the chunk's own: rtl_gen/pattern_memory.py). The first depthwise word follows them
    (``ArchConfig.dw_base`` = this times ``slices``)."""
    return max(2, -(-(pattern_words + slices - 1) // slices))


def _hash(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EngineConfig:
    """The sized overlay. ``lanes`` output channels per tile on both engines (the PRB's two
    accumulators meet channel by channel in one PostProcess, so MAC rows = pattern lanes);
    ``pe_cin`` input channels per pattern-engine beat; ``mac_cols`` input terms per MAC beat;
    ``k_max`` the pattern engine's window (smaller kernels run with the outer taps unused);
    ``a_bits`` activation bits (bit-planes per pattern beat); ``packed`` two int8 MACs per
    DSP; ``pp_units`` PostProcess units; ``max_width`` the widest windowed map (pixels);
    ``column_store``: the top keeps each pattern chunk's window between positions (multi-chunk
    stride-1 operands slide; rtl_gen/gather.py), else only single-chunk operands slide;
    ``depthwise``: the pattern engine's depthwise mode and memory (rtl_gen/pattern.py,
    ``dw_depth``): a depthwise pattern layer runs ``dw_lanes`` channels per tile from densely
    stored filters, else one channel per tile from whole pattern words; ``dense_kernels``: a
    pattern word of a kernel smaller than ``k_max`` holds its ``k^2`` taps (the engine moves
    the bit-plane to them: ``pe_cin * k_max^2`` multiplexers), else its ``k_max^2`` grid;
    ``weights_bram``: the MAC array's weight memory in block RAM even where it is shallow
    enough for distributed RAM (Yosys's choice there: a wide, shallow weight memory then costs
    LUTs, e.g. 684 for 56 words of 512 bits on the xc7), which the sizer picks where the LUTs
    would not fit and the block RAM is free; ``landing_reg``: a window tap read from the
    activation memory lands in a register before the gatherer's window (read latency 2; the
    board profile's choice where the block RAM is slow to its output: the ECP5's DP16KD), the
    gatherer reading a pass's first tap a cycle early where the engine is sure to take the
    beat before it (rtl_gen/gather.py, LAND_A); every register a read lands in (the window
    tap's, the waiting MAC beat's, the skip codes', PoolFC's byte, the MAC array's x) then takes
    the banks' raw bytes and rotates after it (rtl_gen/actmem.py, ``rotated``: same cycles);
    ``mul18``: the board's multipliers are
    18 x 18 (the ECP5's): the PostProcess registers its products as 18 x 18 partial products
    and sums them a stage later (rtl_gen/postprocess.py; one cycle more of its latency);
    ``plane_reg``: the pattern engine's bit-plane is a register per code, loaded with the plane
    its stage B holds next (rtl_gen/pattern_planes.py; no cycle moves, one more multiplexer per
    code; a board profile's choice, set by none shipped: docs/timing.md); ``lane_pairs``: two
    tiles of at most ``lanes / 2`` output channels (a grouped pattern layer's, one group each)
    share one pattern word, the first tile's filters in lanes ``0 ..``, the second's in lanes
    ``lanes/2 ..``, and the pattern engine turns the second tile's lanes to the front at its
    output (rtl_gen/pattern.py, ``lane_rot``; ISA field ``lane_rot``); the pattern memory is
    then twice as narrow (:attr:`pattern_slices` doubled, up to ``a_bits``) so that a pair's
    word fills at least half a slice. The sizer sets it where the network has such a layer
    (the shipped model's conv5, 16 groups of 8 channels, on a 16-lane overlay: 7.41x its
    pattern bits without, 1.85x with)."""
    lanes: int
    pe_cin: int
    mac_cols: int
    k_max: int
    a_bits: int
    packed: bool
    pp_units: int
    max_width: int
    column_store: bool = True
    depthwise: bool = False
    dense_kernels: bool = True
    weights_bram: bool = False
    landing_reg: bool = False
    mul18: bool = False
    plane_reg: bool = False
    lane_pairs: bool = False

    def kernel_layout(self, k: int) -> int:
        """The kernel a ``k x k`` pattern operand's words are laid out for
        (:func:`pattern_bit`): ``k`` with :attr:`dense_kernels` (the engine moves a smaller
        kernel's bit-plane to match), else ``k_max`` (its taps at their ``k_max x k_max`` grid
        positions, the others 0)."""
        return k if self.dense_kernels else self.k_max

    @property
    def mac_rows(self) -> int:
        return self.lanes

    @property
    def dw_lanes(self) -> int:
        """Channels of a depthwise tile in the pattern engine's depthwise mode (lane ``l``
        convolves channel ``l`` of a beat of ``pe_cin``)."""
        return min(self.lanes, self.pe_cin)

    @property
    def dw_word_bits(self) -> int:
        """Width of the depthwise pattern memory (:func:`dw_lane_bits` per lane)."""
        return self.dw_lanes * dw_lane_bits(self.k_max)

    @property
    def depthwise_fits(self) -> bool:
        """A depthwise word fits the pattern memory's write port (its words carry it)."""
        return self.dw_word_bits <= self.pattern_mem_bits

    def pattern_peak(self, a_bits: int) -> float:
        """Peak pattern MACs (binary weight x a_bits activation) per cycle."""
        return self.lanes * self.pe_cin * self.k_max ** 2 / a_bits

    @property
    def act_banks(self) -> int:
        """Byte-wide activation memory banks of the RTL top (one vector read returns a window
        tap of ``pe_cin`` channels, a MAC beat of ``mac_cols`` or the ``lanes`` skip codes)."""
        return max(self.pe_cin, self.mac_cols, self.lanes)

    @property
    def mac_peak(self) -> int:
        return self.lanes * self.mac_cols

    @property
    def pattern_word_bits(self) -> int:
        return self.lanes * self.pe_cin * self.k_max ** 2

    @property
    def pattern_slices(self) -> int:
        """Pattern memory words per pattern word (:func:`pattern_slices`; twice that, up to
        ``a_bits``, with :attr:`lane_pairs`)."""
        s = pattern_slices(self.a_bits)
        return min(2 * s, self.a_bits) if self.lane_pairs else s

    @property
    def pattern_mem_bits(self) -> int:
        """Width of the pattern memory: one slice of a pattern word."""
        return -(-self.pattern_word_bits // self.pattern_slices)

    def pattern_chunk_slices(self, channels: int, k: int) -> int:
        """Pattern memory words (slices) one chunk of ``channels`` input channels of a
        ``k x k`` pattern operand takes: its ``lanes * channels * kk^2`` bits
        (:func:`pattern_bit`, ``kk`` = :meth:`kernel_layout`) in whole slices, rounded up to a
        power of two (the gatherer steps a tile's pattern address by a shift, ISA field
        ``pshift``), at most :attr:`pattern_slices`."""
        kk = self.kernel_layout(k)
        need = -(-self.lanes * min(channels, self.pe_cin) * kk * kk // self.pattern_mem_bits)
        return min(1 << (need - 1).bit_length(), self.pattern_slices)

    @property
    def pattern_mem_bytes(self) -> int:
        """Bytes per pattern memory word in the image (a slice, zero-padded to bytes)."""
        return -(-self.pattern_mem_bits // 8)

    @property
    def column_store_bits(self) -> int:
        """Bits of one column-store entry (rtl_gen/gather.py): window columns 0 .. k_max-2 of
        k_max rows, pe_cin channels of a_bits each; 0 without the store."""
        return self.k_max * (self.k_max - 1) * self.pe_cin * self.a_bits if self.column_store else 0

    @property
    def two_chunk_reads(self) -> bool:
        """A vector read returns the tap of two pattern chunks (``act_banks >= 2 pe_cin``):
        the gatherer builds the second window and the hold register (rtl_gen/gather.py, ``DUAL``)."""
        return self.act_banks >= 2 * self.pe_cin

    @property
    def weight_word_bytes(self) -> int:
        return self.lanes * self.mac_cols

    def to_dict(self) -> dict:
        d = asdict(self)
        for flag in ("weights_bram", "landing_reg", "mul18", "plane_reg", "lane_pairs"):
            if not d[flag]:
                del d[flag]             # (an overlay without it keeps its earlier hash)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EngineConfig":
        return _from_dict(cls, d)

    def hash(self) -> str:
        """Hash of the engine sizes alone (the whole contract's is :meth:`ArchConfig.hash`)."""
        return _hash(self.to_dict())


def _from_dict(cls, d: dict):
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping, not {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is f.default_factory}   # no default
    unknown, missing = set(d) - names, required - set(d)
    if unknown or missing:
        raise ConfigError(f"{cls.__name__}: " + "; ".join(
            ([f"unknown keys {sorted(unknown)}"] if unknown else []) + ([f"missing keys {sorted(missing)}"] if missing else [])))
    return cls(**d)


# host-writable memories in select order (sephw.arch.memmap); their depths are ArchConfig's
MEMORY_NAMES = ("program", "tensors", "params", "patterns", "weights")


def memory_word_bits(engine: "EngineConfig") -> dict:
    """Bits of a word of each host-writable memory (:data:`MEMORY_NAMES`) on ``engine``."""
    return {"program": WORD_BITS, "tensors": TENSOR_DESC.bits, "params": PARAM_WORD.bits,
            "patterns": engine.pattern_mem_bits, "weights": engine.lanes * engine.mac_cols * 8}


def dma_beats(engine: "EngineConfig", ext_data_bits: int) -> int:
    """External words per on-chip word of a ``DMA_LOAD``: every on-chip word travels at the
    widest memory's width (the top's LoadDMA writes through the host-write path),
    ``ceil(widest / ext_data_bits)`` external words, low bits first."""
    return -(-max(memory_word_bits(engine).values()) // ext_data_bits)


def spill_chunk(act_banks: int, ext_data_bits: int) -> int:
    """Bytes of one SPILL piece (rtl_gen/spill.py): one activation-memory vector read and one
    DRAM word write, ``min(act_banks, DRAM word bytes)`` (both powers of two)."""
    return min(act_banks, ext_data_bits // 8)


@dataclass(frozen=True)
class ArchConfig:
    """Every size the bitstream depends on: the engines, the memory depths, the widest tensor
    and the logits, the host link's buffers and the clock.

    ``act_bytes`` activation memory bytes; ``pattern_words`` pattern memory words (slices:
    a chunk of a pattern operand takes 1 .. ``pattern_slices`` of them); ``weight_words``,
    ``param_words``, ``tensors``, ``program_words`` words of those memories; ``max_channels`` the widest tensor (pattern
    chunk accumulation, pool sums); ``max_classes`` logits; ``input_bytes`` / ``logit_bytes``
    the host link's input and logit buffers; ``frame_bytes`` its frame buffer (the largest
    payload); ``clock_hz`` the clock the bitstream is built for; ``dw_words`` the depthwise
    pattern memory's words (0: none; with ``engine.depthwise`` only), written through the
    ``patterns`` memory's addresses from :attr:`dw_base` on; ``ext_data_bits`` and
    ``ext_words`` the external memory port's width and words (0: no external memory; the
    top then has no ``ext`` port and refuses ``DMA_LOAD``); ``program_page`` (with external
    memory only; 0: the whole Program on chip) the instructions of a Program page: the
    Program lives in external memory from word 0, the program memory holds two pages
    (``program_words`` = 2 pages), the top loads the first two at ``start`` and the Program
    loads the later ones (docs/isa.md, "Program pages")."""
    engine: EngineConfig
    act_bytes: int
    pattern_words: int
    weight_words: int
    param_words: int
    tensors: int
    program_words: int
    max_channels: int
    max_classes: int
    input_bytes: int
    logit_bytes: int
    frame_bytes: int
    clock_hz: int
    dw_words: int = 0
    ext_data_bits: int = 0
    ext_words: int = 0
    program_page: int = 0

    def __post_init__(self):
        if not isinstance(self.engine, EngineConfig):
            raise ConfigError(f"engine must be an EngineConfig, not {self.engine!r}")
        if bool(self.ext_words) != bool(self.ext_data_bits) or self.ext_data_bits % 8:
            raise ConfigError(f"ext_data_bits {self.ext_data_bits} and ext_words {self.ext_words}: both 0, "
                              f"or whole bytes and a size")
        if self.program_page and (not self.ext_words or self.program_words != 2 * self.program_page):
            raise ConfigError(f"program_page {self.program_page}: needs external memory and program_words "
                              f"= 2 pages (not {self.program_words})")
        if self.dw_words and not (self.engine.depthwise and self.engine.depthwise_fits):
            raise ConfigError("dw_words without the engine's depthwise mode (or its word is wider "
                              "than the pattern memory)")
        for f in fields(self):
            if f.name != "engine":
                v = getattr(self, f.name)
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ConfigError(f"ArchConfig.{f.name} must be a non-negative int, not {v!r}")

    # -- the memories behind the top's host writes ------------------------------------------
    @property
    def pattern_depth(self) -> int:
        """Pattern words the pattern engine holds (at least 2)."""
        return pattern_depth(self.pattern_words, self.engine.pattern_slices)

    @property
    def dw_base(self) -> int:
        """The first depthwise pattern word's address in the ``patterns`` memory (the main
        memory's depth: ``pattern_depth * pattern_slices``)."""
        return self.pattern_depth * self.engine.pattern_slices

    @property
    def dw_depth(self) -> int:
        """Words of the depthwise pattern memory the engine builds (0: no depthwise mode)."""
        return max(2, self.dw_words) if self.dw_words else 0

    @property
    def depths(self) -> dict:
        """Words of each host-writable memory (the RTL's depths)."""
        e = self.engine
        return {"program": max(2, self.program_words), "tensors": max(2, self.tensors),
                "params": self.param_words + e.lanes,
                "patterns": self.dw_base + self.dw_depth,
                "weights": max(2, self.weight_words)}

    @property
    def word_bits(self) -> dict:
        """Bits of a word of each host-writable memory."""
        return memory_word_bits(self.engine)

    @property
    def word_bytes(self) -> dict:
        """Bytes of a word of each host-writable memory in its image (whole bytes)."""
        return {k: -(-v // 8) for k, v in self.word_bits.items()}

    @property
    def max_cin(self) -> int:
        """Input channels the pattern engine's chunk accumulation spans (multiple of pe_cin)."""
        pc = self.engine.pe_cin
        return max(pc, -(-self.max_channels // pc) * pc)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["engine"] = self.engine.to_dict()
        if not d["program_page"]:
            del d["program_page"]       # (a contract without pages keeps its earlier hash)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"ArchConfig must be a mapping, not {type(d).__name__}")
        d = dict(d)
        d["engine"] = EngineConfig.from_dict(d.get("engine"))
        return _from_dict(cls, d)

    def hash(self) -> str:
        """The contract's hash (16 hex digits): a bitstream runs the builds of its own hash only."""
        return _hash(self.to_dict())

    def tag(self) -> str:
        """A short name for simulator build directories."""
        return "arch_" + self.hash()[:12]
