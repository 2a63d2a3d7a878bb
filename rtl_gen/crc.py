"""CRC-8 and CRC-32 of one byte per cycle as XOR networks (the host link's frame checks,
docs/protocol.md; the host computes the same with :mod:`host.protocol` and :mod:`zlib`)."""
from __future__ import annotations

from amaranth.hdl import Cat, Const

__all__ = ["crc8_byte", "crc32_byte"]

CRC32_POLY_REFLECTED = 0xEDB88320
CRC8_POLY = 0x07


def _xor_terms(width, poly, reflected):
    """For one byte step of a CRC register of ``width`` bits: per output bit, the register
    bits (``("c", i)``) and byte bits (``("b", i)``) it is the XOR of (the step is linear over
    GF(2), so it is worked out once, symbolically, here in Python)."""
    reg = [{("c", i)} for i in range(width)]
    for i in range(8):     # the byte enters the register's low bits (reflected) or high bits
        j = i if reflected else width - 8 + i
        reg[j] = reg[j] ^ {("b", i)}
    for _ in range(8):
        if reflected:
            out = reg[0]
            reg = [reg[i + 1] if i + 1 < width else set() for i in range(width)]
        else:
            out = reg[width - 1]
            reg = [reg[i - 1] if i else set() for i in range(width)]
        reg = [r ^ out if poly >> i & 1 else r for i, r in enumerate(reg)]
    return reg


def _crc_step(crc, byte, width, poly, reflected):
    bits = {"c": crc, "b": byte}
    out = []
    for terms in _xor_terms(width, poly, reflected):
        v = Const(0, 1)
        for src, i in sorted(terms):
            v = v ^ bits[src][i]
        out.append(v)
    return Cat(*out)


def crc8_byte(crc, byte):
    """Next CRC-8 (poly 0x07, MSB first: :func:`host.protocol.crc8`) after ``byte``: one XOR
    per output bit, one byte per cycle."""
    return _crc_step(crc, byte, 8, CRC8_POLY, reflected=False)


def crc32_byte(crc, byte):
    """Next CRC-32/ISO-HDLC register (reflected, without the final inversion) after ``byte``;
    the register starts at 0xFFFFFFFF and the CRC is its complement (:func:`zlib.crc32`)."""
    return _crc_step(crc, byte, 32, CRC32_POLY_REFLECTED, reflected=True)
