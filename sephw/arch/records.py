"""Record layouts defined once: the bit fields of a word that both the hardware and Python read.

A :class:`Record` is an ordered list of :class:`Field` s, each at an explicit bit offset (LSB
first) of a word of ``bits`` bits. It packs and unpacks Python values to and from the
little-endian bytes the build images and frames carry, and gives the Amaranth
``data.Layout`` of the same word (a ``FlexibleLayout``: fields of different record *views*
may share bits, as an instruction's per-opcode layouts do). Amaranth is imported only when a
layout is asked for, so the host side needs nothing but Python.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Field", "Record", "RecordError"]


class RecordError(ValueError):
    """A value that does not fit its field, a malformed word, or a bad record definition."""


@dataclass(frozen=True)
class Field:
    """One field: ``bits`` wide at bit ``offset``; ``signed`` fields hold two's complement."""
    name: str
    bits: int
    offset: int
    signed: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.bits

    @property
    def lo(self) -> int:
        """Smallest value the field holds."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest value the field holds."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


class Record:
    """A word of ``bits`` bits made of named fields.

    Parameters
    ----------
    name : str
        What the word is (error messages).
    bits : int
        Word width; a multiple of 8 (words travel as whole bytes).
    fields : sequence of (name, bits[, signed]) or Field
        Tuples are placed one after the other from bit 0 (or from ``start``); :class:`Field`
        objects keep their own offsets, so views of one word can share bits.
    """

    def __init__(self, name: str, bits: int, fields, start: int = 0):
        if not isinstance(bits, int) or bits <= 0 or bits % 8:
            raise RecordError(f"{name}: word width must be a positive multiple of 8 bits, not {bits!r}")
        placed, pos = [], start
        for f in fields:
            if not isinstance(f, Field):
                fname, fbits, *sg = f
                f = Field(fname, fbits, pos, bool(sg and sg[0]))
            if f.bits <= 0 or f.offset < 0 or f.end > bits:
                raise RecordError(f"{name}: field {f.name} ({f.bits} bits at {f.offset}) is outside the "
                                  f"{bits}-bit word")
            placed.append(f)
            pos = f.end
        names = [f.name for f in placed]
        if len(set(names)) != len(names):
            raise RecordError(f"{name}: duplicate field names {names}")
        self.name, self.bits = name, bits
        self.fields = tuple(placed)
        self._by_name = {f.name: f for f in placed}

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    @property
    def used_bits(self) -> int:
        """One past the highest bit any field uses."""
        return max((f.end for f in self.fields), default=0)

    def field(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise RecordError(f"{self.name} has no field {name!r}; fields: "
                              f"{', '.join(self._by_name)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def names(self) -> tuple:
        return tuple(f.name for f in self.fields)

    def overlaps(self) -> bool:
        """Whether any two fields share a bit (then :meth:`layout` is a FlexibleLayout)."""
        used = 0
        for f in self.fields:
            m = ((1 << f.bits) - 1) << f.offset
            if used & m:
                return True
            used |= m
        return False

    # -- Python values ----------------------------------------------------------------------
    def encode(self, values: dict) -> int:
        """The word as an int. Missing fields are 0; a value outside its field or a name that
        is not a field raises :class:`RecordError` naming it."""
        word = 0
        for k in values:
            if k not in self._by_name:
                raise RecordError(f"{self.name} has no field {k!r}")
        for f in self.fields:
            v = values.get(f.name, 0)
            v = int(v)
            if not f.lo <= v <= f.hi:
                raise RecordError(f"{self.name}: field {f.name}={v} does not fit {f.bits} "
                                  f"{'signed ' if f.signed else ''}bits")
            word |= (v & ((1 << f.bits) - 1)) << f.offset
        return word

    def decode(self, word: int) -> dict:
        """Field values of a word (inverse of :meth:`encode` for non-overlapping records)."""
        out = {}
        for f in self.fields:
            v = (word >> f.offset) & ((1 << f.bits) - 1)
            if f.signed and v >> (f.bits - 1):
                v -= 1 << f.bits
            out[f.name] = v
        return out

    def pack(self, **values) -> bytes:
        """The word's bytes, little-endian."""
        return self.encode(values).to_bytes(self.nbytes, "little")

    def unpack(self, data: bytes) -> dict:
        """Field values of ``nbytes`` little-endian bytes."""
        if len(data) != self.nbytes:
            raise RecordError(f"{self.name} is {self.nbytes} bytes, got {len(data)}")
        return self.decode(int.from_bytes(data, "little"))

    # -- hardware ---------------------------------------------------------------------------
    def layout(self):
        """The Amaranth ``data.Layout`` of the word (``StructLayout`` semantics: fields by
        name, ``signed`` fields as signed shapes; always the full ``bits`` wide)."""
        from amaranth.hdl import signed, unsigned
        from amaranth.lib import data
        return data.FlexibleLayout(self.bits, {
            f.name: data.Field(signed(f.bits) if f.signed else unsigned(f.bits), f.offset)
            for f in self.fields})

    def __repr__(self) -> str:
        return f"Record({self.name!r}, {self.bits} bits, {len(self.fields)} fields)"
