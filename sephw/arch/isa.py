"""The tile-level instruction set (docs/isa.md): opcodes, per-opcode layouts of one 256-bit
word, encoder and decoder.

Every instruction starts with the same header (``op``, ``deps``, ``layer``); the rest of the
word is the opcode's own layout (:data:`LAYOUTS`). Compute ops share the tile layout;
``LOAD`` and ``STORE`` carry a 32-bit external-memory address and a 32-bit length in bits
the tile layout gives to its weight addresses; ``POOL_FC`` uses a subset of the tile fields
at the tile's offsets. A field keeps one offset in every layout that has it, so the hardware
reads each field from one place (:data:`WORD`, the union of all views, an Amaranth
``FlexibleLayout``) whatever the opcode. Fields an opcode does not have must be 0: the
encoder refuses them, the decoder rejects a word with bits set outside the opcode's layout.
A word is 32 bytes little-endian in program.bin. Tensors are named by their index in the
descriptor table (tensors.bin), so an instruction never carries activation addresses,
shapes or ring sizes.

``deps`` holds the VTA-style dependency-token flags (:data:`DEP_WAIT_PREV` ...) the
decoupled overlay's units exchange. Today one pair is used: the last DMA_LOAD of a streamed
tile's words carries DEP_SIGNAL_NEXT (the LoadUnit pushes a token when its words have landed),
and the tile carries DEP_WAIT_PREV (the sequencer pops it before starting the tile): loads
run ahead of compute (rtl_gen/loadunit.py, the compiler's TileLayers prefetch). The other
units still run one instruction at a time, so DEP_WAIT_NEXT and DEP_SIGNAL_PREV (compute ->
load back-pressure, store tokens) are never written.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .records import Field, Record, RecordError

__all__ = ["Op", "Instruction", "ISAError", "WORD", "WORD_BITS", "WORD_BYTES", "LAYOUTS", "HEADER",
           "TILE", "COMPUTE_OPS", "encode_program", "pool_sum_planes", "decode_program", "field_max",
           "FLAG_PAD_TOP", "FLAG_PAD_BOTTOM", "FLAG_SKIP_IDENTITY", "FLAG_FINAL", "FLAG_DEPTHWISE",
           "FLAG_B_PATTERN", "FLAG_DW_PATTERN", "FLAG_FC_MORE", "LOAD_QUEUE_DEPTH", "DEP_WAIT_PREV", "DEP_WAIT_NEXT", "DEP_SIGNAL_PREV", "DEP_SIGNAL_NEXT"]

WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8


class Op(enum.IntEnum):
    """Opcodes. Every compute instruction ends in the fused PostProcess (docs/numerics.md)."""
    NOP = 0
    LOAD = 1          # input tensor rows [row0, row0+rows): from the host link, or with external
                      # memory from its bytes [ext_addr, ext_addr + length) (the input image, or
                      # a spilled tensor's rows that SPILL wrote there)
    CONV_PATTERN = 2  # binarized k x k conv tile on the pattern engine (+ post-process)
    CONV_INT = 3      # int8 conv tile on the MAC array (+ post-process)
    PRB = 4           # pattern engine (k x k) || MAC array (1 x 1) on the same tile, fused post-process
    RESADD = 5        # main conv (pattern or MAC) + skip (identity codes or 1 x 1 on the MAC array)
    POOL_FC = 6       # accumulate the rows of a band into per-channel sums; FLAG_FINAL: + FC -> logits
    STORE = 7         # logits -> host link
    SYNC = 8          # wait until every engine and the host link are idle
    END = 9
    DMA_LOAD = 10     # external memory -> one host-writable memory (mem, from word waddr), LoadDMA
    SPILL = 11        # rows [row0, row0+rows) of tensor src_a -> external memory bytes from ext_addr
                      # (length bytes), StoreDMA; waits until no DMA_LOAD is queued or running


COMPUTE_OPS = (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD)

# flag bits (field ``flags``)
FLAG_PAD_TOP = 1        # the band starts at image row 0: apply the top zero padding
FLAG_PAD_BOTTOM = 2     # the band ends at the last image row: apply the bottom zero padding
FLAG_SKIP_IDENTITY = 4  # RESADD: acc_b is the identity codes of src_b
FLAG_FINAL = 8          # POOL_FC: last band, run the FC and write the logits
FLAG_DEPTHWISE = 16     # CONV_*: operand a is one depthwise branch starting at input channel cin0
FLAG_B_PATTERN = 32     # RESADD: the main operand (a) runs on the pattern engine
FLAG_FC_MORE = 128      # POOL_FC with FLAG_FINAL: an FC chunk (classes c0 .. c0 + tc) that more
                        # chunks follow: the pool sums stay for them (the last chunk clears them)
FLAG_DW_PATTERN = 64    # operand a runs in the pattern engine's depthwise mode: lane l convolves
                        # input channel cin0 + l, its filter from the depthwise pattern memory at wa

LOAD_QUEUE_DEPTH = 8    # DMA_LOADs the top queues (rtl_gen/loadunit.py) before the sequencer waits

# dependency-token flags (field ``deps``): wait for / signal the unit before or after this
# instruction's unit in the load -> compute -> store chain (TVM VTA's pop/push prev/next)
DEP_WAIT_PREV = 1
DEP_WAIT_NEXT = 2
DEP_SIGNAL_PREV = 4
DEP_SIGNAL_NEXT = 8

# (name, bits) in word order from bit 0
_HEADER = (("op", 5), ("deps", 4), ("layer", 8))
_TILE = (
    ("src_a", 8),      # tensor id read by operand a
    ("src_b", 8),      # tensor id read by operand b / the identity skip
    ("dst", 8),        # tensor id written
    ("wa", 24),        # operand a: first pattern memory word (pattern) or weight word (int8)
    ("wb", 24),        # operand b: first weight word
    ("prm", 16),       # first PostProcess parameter word of the tile (channel c0)
    ("c0", 12),        # first output channel of the tile
    ("tc", 12),        # output channels in the tile
    ("cin0", 12),      # first input channel operand a reads (its first group's, or a depthwise branch's)
    ("row0", 12),      # first output row of the band (LOAD: first input row)
    ("rows", 12),      # output rows of the band
    ("k", 3),          # operand a kernel size (1, 3, 5, 7)
    ("stride", 2),     # 1 or 2
    ("pad", 3),        # zero padding (0..3)
    ("groups_a", 12),
    ("groups_b", 12),
    ("flags", 8),
    ("cin0_b", 12),    # first input channel operand b (1x1 conv or identity skip) reads
    ("na", 12),        # input channels operand a reads per position (groups in the tile x Cg)
    ("nb", 12),        # input channels operand b reads per position (identity skip: tc)
    ("pshift", 2),     # operand a (pattern): log2 of the pattern memory words one chunk takes
    ("lane_rot", 1),   # operand a (pattern, lane pairs): the tile's filters are the pattern
                       # words' lanes lanes/2 .., turned to the front at the engine's output
)

HEADER = Record("instruction header", WORD_BITS, _HEADER)
TILE = Record("tile instruction", WORD_BITS, HEADER.fields + Record("", WORD_BITS, _TILE, HEADER.used_bits).fields)


def _at(name: str, bits: int, offset: int) -> Field:
    return Field(name, bits, offset)


_T = TILE.field
# LOAD / STORE: a 32-bit external-memory address and a 32-bit byte length where the tile
# layout has its weight and parameter addresses (wa, wb, prm: 64 contiguous bits)
_EXT = (_at("ext_addr", 32, _T("wa").offset), _at("length", 32, _T("wa").offset + 32))
assert _EXT[1].end <= _T("prm").end

# DMA_LOAD: the external words (ext_addr, length in on-chip words) and the destination memory
# (its MEM_* select) and first word, where the tile layout has c0 and tc
_DMA = (_at("mem", 3, _T("c0").offset), _at("waddr", 24, _T("tc").offset))

# POOL_FC with FLAG_FINAL: the byte planes of the pool sums the FC runs over (0 = all four),
# in bits the tile layout leaves free (pool_sum_planes)
_FC_PLANES = _at("fc_planes", 2, TILE.used_bits)

LAYOUTS: dict = {
    Op.NOP: HEADER,
    Op.LOAD: Record("LOAD", WORD_BITS, HEADER.fields + (_T("dst"), _T("row0"), _T("rows")) + _EXT),
    Op.CONV_PATTERN: TILE, Op.CONV_INT: TILE, Op.PRB: TILE, Op.RESADD: TILE,
    Op.POOL_FC: Record("POOL_FC", WORD_BITS, HEADER.fields + tuple(
        _T(n) for n in ("src_a", "wa", "prm", "c0", "tc", "row0", "rows", "flags")) + (_FC_PLANES,)),
    Op.STORE: Record("STORE", WORD_BITS, HEADER.fields + (_T("src_a"),) + _EXT),
    Op.SYNC: HEADER,
    Op.END: HEADER,
    Op.DMA_LOAD: Record("DMA_LOAD", WORD_BITS, HEADER.fields + _EXT + _DMA),
    Op.SPILL: Record("SPILL", WORD_BITS, HEADER.fields + (_T("src_a"), _T("row0"), _T("rows")) + _EXT),
}


def _union() -> Record:
    fields = {}
    for rec in LAYOUTS.values():
        for f in rec.fields:
            if fields.setdefault(f.name, f) != f:
                raise RecordError(f"field {f.name} has two offsets in the ISA's layouts")
    return Record("instruction word", WORD_BITS, tuple(fields.values()))


WORD = _union()
"""Every field of every opcode at its one offset (fields of different opcodes overlap)."""

_ALL_FIELDS = WORD.names()


def field_max(name: str) -> int:
    """Largest value field ``name`` holds."""
    return WORD.field(name).hi


class ISAError(ValueError):
    """A field value that does not fit its bit width, a field the opcode does not have, or a
    malformed word."""


@dataclass
class Instruction:
    """One instruction; the fields its opcode has (:data:`LAYOUTS`) are meaningful, the
    others must stay 0. Meanings in :data:`_TILE` and docs/isa.md."""
    op: Op
    deps: int = 0
    layer: int = 0
    src_a: int = 0
    src_b: int = 0
    dst: int = 0
    wa: int = 0
    wb: int = 0
    prm: int = 0
    c0: int = 0
    tc: int = 0
    cin0: int = 0
    row0: int = 0
    rows: int = 0
    k: int = 0
    stride: int = 0
    pad: int = 0
    groups_a: int = 0
    groups_b: int = 0
    flags: int = 0
    cin0_b: int = 0
    na: int = 0
    nb: int = 0
    pshift: int = 0
    lane_rot: int = 0
    fc_planes: int = 0
    ext_addr: int = 0
    length: int = 0
    mem: int = 0
    waddr: int = 0
    comment: str = field(default="", compare=False)

    @property
    def fc_passes(self) -> int:
        """POOL_FC: the byte planes of the pool sums its FC runs over (``fc_planes``, 0 = four)."""
        return self.fc_planes or 4

    @property
    def layout(self) -> Record:
        return LAYOUTS[Op(self.op)]

    def encode(self) -> int:
        """The 256-bit word as an int; :class:`ISAError` names the field that overflows or
        that the opcode does not have."""
        rec = self.layout
        values = {}
        for name in _ALL_FIELDS:
            v = int(getattr(self, name))
            if name in rec:
                values[name] = v
            elif v:
                raise ISAError(f"{Op(self.op).name} (layer {self.layer}): has no field {name} "
                               f"(set to {v}); its fields: {', '.join(rec.names())}")
        try:
            return rec.encode(values)
        except RecordError as e:
            raise ISAError(f"{Op(self.op).name} (layer {self.layer}): {e}") from None

    def to_bytes(self) -> bytes:
        return self.encode().to_bytes(WORD_BYTES, "little")

    @classmethod
    def decode(cls, word: int | bytes) -> "Instruction":
        """Inverse of :meth:`encode` (``comment`` is not encoded). Rejects unknown opcodes
        and bits outside the opcode's layout."""
        if isinstance(word, (bytes, bytearray)):
            if len(word) != WORD_BYTES:
                raise ISAError(f"instruction word is {WORD_BYTES} bytes, got {len(word)}")
            word = int.from_bytes(word, "little")
        opf = HEADER.field("op")
        code = (word >> opf.offset) & ((1 << opf.bits) - 1)
        try:
            op = Op(code)
        except ValueError:
            raise ISAError(f"unknown opcode {code}") from None
        rec = LAYOUTS[op]
        vals = rec.decode(word)
        if rec.encode(vals) != word:
            raise ISAError(f"{op.name}: bits outside the opcode's fields are not zero")
        vals["op"] = op
        return cls(**vals)

    def text(self) -> str:
        """One readable line (program.txt)."""
        op = Op(self.op)
        parts = [f"{op.name:<12}"]
        if op == Op.LOAD:
            parts.append(f"t{self.dst} rows[{self.row0}:{self.row0 + self.rows}] {self.length}B"
                         + (f" <- ext@{self.ext_addr}" if self.ext_addr else ""))
        elif op == Op.SPILL:
            parts.append(f"t{self.src_a} rows[{self.row0}:{self.row0 + self.rows}] {self.length}B -> ext@{self.ext_addr}")
        elif op == Op.STORE:
            parts.append(f"t{self.src_a} {self.length}B")
        elif op == Op.DMA_LOAD:
            parts.append(f"mem{self.mem}[{self.waddr}:{self.waddr + self.length}] <- ext@{self.ext_addr}")
        elif op == Op.POOL_FC:
            parts.append(f"t{self.src_a} rows[{self.row0}:{self.row0 + self.rows}] W@{self.wa} prm@{self.prm}"
                         + (f" FINAL classes[{self.c0}:{self.c0 + self.tc}] planes {self.fc_passes}"
                            if self.flags & FLAG_FINAL else "")
                         + (" MORE" if self.flags & FLAG_FC_MORE else ""))
        elif op in COMPUTE_OPS:
            parts.append(f"L{self.layer} t{self.src_a}" + (f",t{self.src_b}" if op in (Op.RESADD,) else "")
                         + f" -> t{self.dst} rows[{self.row0}:{self.row0 + self.rows}] "
                         f"ch[{self.c0}:{self.c0 + self.tc}] k{self.k} s{self.stride} p{self.pad} "
                         f"wa@{self.wa} wb@{self.wb} prm@{self.prm}")
            fl = [n for b, n in ((FLAG_PAD_TOP, "pt"), (FLAG_PAD_BOTTOM, "pb"), (FLAG_SKIP_IDENTITY, "id"),
                                 (FLAG_DEPTHWISE, f"dw@{self.cin0}"), (FLAG_B_PATTERN, "a:pattern"),
                                 (FLAG_DW_PATTERN, "a:depthwise-mode")) if self.flags & b]
            if fl:
                parts.append("[" + ",".join(fl) + "]")
        if self.deps:
            parts.append(f"deps={self.deps:04b}")
        if self.comment:
            parts.append(f"; {self.comment}")
        return " ".join(parts)


def pool_sum_planes(pixels: int, bits: int, signed: bool) -> int:
    """The byte planes (1..4) that hold every pool sum of ``pixels`` codes of ``bits`` bits
    (two's complement with ``signed``): the FC's passes (POOL_FC's ``fc_planes``,
    rtl_gen/poolfc.py), whose top plane goes to the MAC array as int8 where the codes are
    signed. A sum of a tensor's pixels fits in 32 bits whatever the plane count (the pool
    sums' width)."""
    if pixels < 1 or not 1 <= bits <= 8:
        raise ValueError(f"pool_sum_planes: {pixels} pixels of {bits} bits")
    if signed:
        lo, hi = -pixels << (bits - 1), pixels * ((1 << (bits - 1)) - 1)
        need = max(hi.bit_length(), (-lo - 1).bit_length()) + 1
    else:
        need = (pixels * ((1 << bits) - 1)).bit_length()
    return min(4, max(1, -(-need // 8)))


def encode_program(instrs: list[Instruction]) -> bytes:
    """program.bin: the instruction words back to back."""
    return b"".join(i.to_bytes() for i in instrs)


def decode_program(blob: bytes) -> list[Instruction]:
    """Inverse of :func:`encode_program`."""
    if len(blob) % WORD_BYTES:
        raise ISAError(f"program length {len(blob)} is not a multiple of {WORD_BYTES}")
    return [Instruction.decode(blob[i:i + WORD_BYTES]) for i in range(0, len(blob), WORD_BYTES)]


def describe() -> dict:
    """The ISA for the manifest: word width, opcodes, and each opcode's fields as
    ``[name, bits, offset]``."""
    return {"word_bits": WORD_BITS, "opcodes": {o.name: int(o) for o in Op},
            "layouts": {o.name: [[f.name, f.bits, f.offset] for f in LAYOUTS[o].fields] for o in Op}}
