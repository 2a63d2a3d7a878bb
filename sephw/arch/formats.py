"""Words of the accelerator's on-chip tables, defined once (Python pack/unpack and the
Amaranth layout both come from these records): a tensor descriptor and a PostProcess
parameter word (docs/isa.md)."""
from __future__ import annotations

from .records import Record

__all__ = ["TENSOR_DESC", "PARAM_WORD"]

TENSOR_DESC = Record("tensor descriptor", 128, (
    ("base", 32), ("ring_rows", 16), ("height", 16), ("width", 16), ("channels", 16),
    ("bits", 8), ("signed", 8), ("reserved", 16)))
"""One tensor id's entry of tensors.bin: byte ``base`` of its ring in the activation memory,
``ring_rows`` rows held, ``height x width x channels`` (HWC, one code per byte), ``bits`` per
code and whether codes are ``signed``."""

PARAM_WORD = Record("PostProcess parameter word", 128, (
    ("m_a", 32, True), ("m_b", 32, True), ("bias", 48, True), ("shift", 8), ("reserved", 8)))
"""One output channel's requant parameters (docs/numerics.md): ``m_a``, ``m_b`` (0 with one
accumulator), ``bias``, ``shift``."""
