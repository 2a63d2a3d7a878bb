"""Frames of the host link (docs/protocol.md): encoding, CRCs and an incremental parser that
resyncs after garbage or corruption.

Pure Python; the device side is rtl_gen/hostlink.py. The link's contract (frame header,
command and error codes, payload records, the INFO record, :class:`LinkError`) is
:mod:`sephw.arch.link`, which both sides are written against; it is re-exported here so that
``from host.protocol import Cmd`` keeps working.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from sephw.arch.link import (CRC_BYTES, CSR_MAX_OPS, CSR_OP, CSR_WRITE, ERROR, ERROR_NAMES, ERROR_REPLY, FRAME_HEADER, HEADER_BYTES, INFO_FORMAT,
                             LOAD_HEADER, LOAD_HEADER_BYTES, MAX_PAYLOAD, PING_MAX, PROTOCOL_VERSION, REPLY,
                             RUN_REPLY, SYNC, WRITE_INPUT_HEADER, Cmd, DramPhy, Err, Info, LinkError)

__all__ = ["SYNC", "MAX_PAYLOAD", "HEADER_BYTES", "CRC_BYTES", "PROTOCOL_VERSION", "Cmd", "Err", "ERROR",
           "REPLY", "ERROR_NAMES", "PING_MAX", "FRAME_HEADER", "LOAD_HEADER", "LOAD_HEADER_BYTES",
           "WRITE_INPUT_HEADER", "RUN_REPLY", "ERROR_REPLY", "INFO_FORMAT", "Info", "LinkError",
           "CSR_OP", "CSR_MAX_OPS", "CSR_WRITE", "DramPhy", "Frame", "FrameParser", "crc8", "crc32", "encode_frame"]

# byte offsets of the header's fields (FRAME_HEADER is byte-aligned)
_LEN_AT = FRAME_HEADER.field("len").offset // 8
_HCRC_AT = FRAME_HEADER.field("hcrc").offset // 8
_TYPE_AT = FRAME_HEADER.field("type").offset // 8


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, init 0, no reflection, no final xor (the header check)."""
    c = 0
    for b in data:
        c ^= b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (``zlib.crc32``), the frame check."""
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes

    def encode(self) -> bytes:
        return encode_frame(self.type, self.seq, self.payload)

    @property
    def name(self) -> str:
        t = self.type
        if t == ERROR:
            return "ERROR"
        base = Cmd.NAMES.get(t & ~REPLY, f"0x{t:02x}")
        return base + ("-reply" if t & REPLY else "")


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame: the header (SYNC TYPE SEQ LEN HCRC), the payload, its CRC-32 (of everything
    after SYNC)."""
    payload = bytes(payload)
    if not 0 <= type_ <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError(f"type and seq are bytes, not {type_}, {seq}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    head = FRAME_HEADER.pack(sync=SYNC, type=type_, seq=seq, len=len(payload))
    head = head[:_HCRC_AT] + bytes([crc8(head[_TYPE_AT:_HCRC_AT])]) + head[_HCRC_AT + 1:]
    body = head[1:] + payload
    return head[:1] + body + crc32(body).to_bytes(CRC_BYTES, "little")


class FrameParser:
    """Incremental frame parser: :meth:`feed` bytes, get complete, checked frames.

    Bytes before a ``SYNC`` are skipped; a header with a bad CRC-8 or ``LEN`` above
    ``max_payload`` drops that ``SYNC`` and the search resumes at the next byte; a frame with a
    bad CRC-32 is dropped the same way (and counted in :attr:`bad_frames` and
    :attr:`bad_payloads`, with the header of the last one in :attr:`last_bad`), so a corrupted
    frame never yields a result and a good frame after garbage is still found."""

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self._buf = bytearray()
        self.max_payload = max_payload
        self.skipped = 0          # bytes dropped while hunting for SYNC
        self.bad_frames = 0       # headers or frames that failed a check
        self.bad_payloads = 0     # of those, frames whose header passed but CRC-32 failed
        self.last_bad: tuple | None = None   # (type, seq) of the last frame with a bad CRC-32

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out = []
        while True:
            f = self._next()
            if f is None:
                return out
            out.append(f)

    def pending(self) -> int:
        """Bytes held (an incomplete frame, or bytes not yet searched)."""
        return len(self._buf)

    def needed(self) -> int:
        """Bytes still missing before the frame being received can complete (at least 1):
        the rest of the header while no full header is held, else the rest of the frame.
        A reader that asks for exactly this many bytes never waits on bytes that belong to
        the next frame."""
        n = len(self._buf)
        if n < HEADER_BYTES:
            return HEADER_BYTES - n
        return max(1, HEADER_BYTES + self._len() + CRC_BYTES - n)

    def _len(self) -> int:
        return int.from_bytes(self._buf[_LEN_AT:_LEN_AT + 2], "little")

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self.skipped += n

    def _next(self) -> Frame | None:
        buf = self._buf
        while True:
            i = buf.find(SYNC)
            if i < 0:
                self._drop(len(buf))
                return None
            if i:
                self._drop(i)
            if len(buf) < HEADER_BYTES:
                return None
            h = FRAME_HEADER.unpack(bytes(buf[:HEADER_BYTES]))
            length = h["len"]
            if crc8(bytes(buf[_TYPE_AT:_HCRC_AT])) != h["hcrc"] or length > self.max_payload:
                self.bad_frames += 1
                self._drop(1)
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(buf) < total:
                return None
            body = bytes(buf[1:HEADER_BYTES + length])
            crc = int.from_bytes(buf[HEADER_BYTES + length:total], "little")
            if crc32(body) != crc:
                self.bad_frames += 1
                self.bad_payloads += 1
                self.last_bad = (h["type"], h["seq"])
                self._drop(1)
                continue
            frame = Frame(h["type"], h["seq"], bytes(buf[HEADER_BYTES:HEADER_BYTES + length]))
            del buf[:total]
            return frame
