"""The tile-level instruction set (docs/isa.md): opcodes, one fixed 256-bit word layout,
encoder and decoder.

Every instruction has the same field layout (unused fields are 0), packed LSB first in the
order of :data:`FIELDS`; a word is 32 bytes little-endian in program.bin. Tensors are named
by their index in the descriptor table (tensors.bin), so an instruction never carries raw
activation addresses, shapes or ring sizes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8


class Op(enum.IntEnum):
    """Opcodes. Every compute instruction ends in the fused PostProcess (docs/numerics.md)."""
    NOP = 0
    LOAD = 1          # host link -> input tensor rows [row0, row0+rows)
    CONV_PATTERN = 2  # binarized k x k conv tile on the pattern engine (+ post-process)
    CONV_INT = 3      # int8 conv tile on the MAC array (+ post-process)
    PRB = 4           # pattern engine (k x k) || MAC array (1 x 1) on the same tile, fused post-process
    RESADD = 5        # main conv (pattern or MAC) + skip (identity codes or 1 x 1 on the MAC array)
    POOL_FC = 6       # accumulate the rows of a band into per-channel sums; FLAG_FINAL: + FC -> logits
    STORE = 7         # logits -> host link
    SYNC = 8          # wait until every engine and the host link are idle
    END = 9


# flag bits
FLAG_PAD_TOP = 1        # the band starts at image row 0: apply the top zero padding
FLAG_PAD_BOTTOM = 2     # the band ends at the last image row: apply the bottom zero padding
FLAG_SKIP_IDENTITY = 4  # RESADD: acc_b is the identity codes of src_b
FLAG_FINAL = 8          # POOL_FC: last band, run the FC and write the logits
FLAG_DEPTHWISE = 16     # CONV_*: operand a is one depthwise branch starting at input channel cin0
FLAG_B_PATTERN = 32     # RESADD: the main operand (a) runs on the pattern engine

# (name, width in bits), packed from bit 0 in this order.
FIELDS = (
    ("op", 5),
    ("layer", 8),      # node index in the IntGraph (report / debug)
    ("src_a", 8),      # tensor id read by operand a (and the window generator)
    ("src_b", 8),      # tensor id read by operand b / the identity skip
    ("dst", 8),        # tensor id written
    ("wa", 20),        # operand a: first pattern word (pattern) or weight word (int8)
    ("wb", 20),        # operand b: first weight word
    ("prm", 16),       # first PostProcess parameter word of the tile (channel c0)
    ("c0", 12),        # first output channel of the tile
    ("tc", 9),         # output channels in the tile (1..511)
    ("cin0", 12),      # first input channel operand a reads (its first group's, or a depthwise branch's)
    ("row0", 12),      # first output row of the band (LOAD: first input row)
    ("rows", 12),      # output rows of the band
    ("k", 3),          # operand a kernel size (1, 3, 5, 7)
    ("stride", 2),     # 1 or 2
    ("pad", 3),        # zero padding (0..3)
    ("groups_a", 12),
    ("groups_b", 12),
    ("flags", 8),
    ("length", 24),    # LOAD / STORE bytes
    ("cin0_b", 12),    # first input channel operand b (1x1 conv or identity skip) reads
    ("na", 12),        # input channels operand a reads per position (groups in the tile x Cg)
    ("nb", 12),        # input channels operand b reads per position (identity skip: tc)
)
_USED = sum(w for _, w in FIELDS)
assert _USED <= WORD_BITS, _USED


class ISAError(ValueError):
    """A field value that does not fit its bit width, or a malformed word."""


@dataclass
class Instruction:
    """One tile instruction; field meanings in :data:`FIELDS` and docs/isa.md."""
    op: Op
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
    length: int = 0
    cin0_b: int = 0
    na: int = 0
    nb: int = 0
    comment: str = field(default="", compare=False)

    def encode(self) -> int:
        """The 256-bit word as an int; :class:`ISAError` names the field that overflows."""
        word, pos = 0, 0
        for name, width in FIELDS:
            v = int(getattr(self, name))
            if not 0 <= v < (1 << width):
                raise ISAError(f"{Op(self.op).name} (layer {self.layer}): field {name}={v} "
                               f"does not fit {width} bits")
            word |= v << pos
            pos += width
        return word

    def to_bytes(self) -> bytes:
        return self.encode().to_bytes(WORD_BYTES, "little")

    @classmethod
    def decode(cls, word: int | bytes) -> "Instruction":
        """Inverse of :meth:`encode` (``comment`` is not encoded). Rejects unknown opcodes
        and nonzero reserved bits."""
        if isinstance(word, (bytes, bytearray)):
            if len(word) != WORD_BYTES:
                raise ISAError(f"instruction word is {WORD_BYTES} bytes, got {len(word)}")
            word = int.from_bytes(word, "little")
        if word >> _USED:
            raise ISAError("reserved bits of the instruction word are not zero")
        vals, pos = {}, 0
        for name, width in FIELDS:
            vals[name] = (word >> pos) & ((1 << width) - 1)
            pos += width
        try:
            vals["op"] = Op(vals["op"])
        except ValueError:
            raise ISAError(f"unknown opcode {vals['op']}") from None
        return cls(**vals)

    def text(self) -> str:
        """One readable line (program.txt)."""
        op = Op(self.op)
        parts = [f"{op.name:<12}"]
        if op == Op.LOAD:
            parts.append(f"t{self.dst} rows[{self.row0}:{self.row0 + self.rows}] {self.length}B")
        elif op == Op.STORE:
            parts.append(f"t{self.src_a} {self.length}B")
        elif op == Op.POOL_FC:
            parts.append(f"t{self.src_a} rows[{self.row0}:{self.row0 + self.rows}] W@{self.wa} prm@{self.prm}"
                         + (" FINAL" if self.flags & FLAG_FINAL else ""))
        elif op in COMPUTE_OPS:
            parts.append(f"L{self.layer} t{self.src_a}" + (f",t{self.src_b}" if op in (Op.RESADD,) else "")
                         + f" -> t{self.dst} rows[{self.row0}:{self.row0 + self.rows}] "
                         f"ch[{self.c0}:{self.c0 + self.tc}] k{self.k} s{self.stride} p{self.pad} "
                         f"wa@{self.wa} wb@{self.wb} prm@{self.prm}")
            fl = [n for b, n in ((FLAG_PAD_TOP, "pt"), (FLAG_PAD_BOTTOM, "pb"), (FLAG_SKIP_IDENTITY, "id"),
                                 (FLAG_DEPTHWISE, f"dw@{self.cin0}"), (FLAG_B_PATTERN, "a:pattern")) if self.flags & b]
            if fl:
                parts.append("[" + ",".join(fl) + "]")
        if self.comment:
            parts.append(f"; {self.comment}")
        return " ".join(parts)


COMPUTE_OPS = (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD)


def encode_program(instrs: list[Instruction]) -> bytes:
    """program.bin: the instruction words back to back."""
    return b"".join(i.to_bytes() for i in instrs)


def decode_program(blob: bytes) -> list[Instruction]:
    """Inverse of :func:`encode_program`."""
    if len(blob) % WORD_BYTES:
        raise ISAError(f"program length {len(blob)} is not a multiple of {WORD_BYTES}")
    return [Instruction.decode(blob[i:i + WORD_BYTES]) for i in range(0, len(blob), WORD_BYTES)]
