"""Frames of the host link (docs/protocol.md): encoding, an incremental parser that resyncs
after garbage or corruption, command and reply codes, payload records.

Pure Python; the device side is rtl_gen/hostlink.py. Every constant here is the one the
document defines; the RTL is generated from the same module so the two cannot drift.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["SYNC", "MAX_PAYLOAD", "HEADER_BYTES", "PROTOCOL_VERSION", "Cmd", "Err", "ERROR",
           "REPLY", "Frame", "FrameParser", "LinkError", "crc8", "crc32", "encode_frame",
           "Info", "INFO_FORMAT", "ERROR_NAMES"]

SYNC = 0xA5
MAX_PAYLOAD = 4096
HEADER_BYTES = 6            # SYNC TYPE SEQ LEN(2) HCRC
CRC_BYTES = 4
PROTOCOL_VERSION = 1
ERROR = 0xFF                # TYPE of the error reply
REPLY = 0x80                # a reply's TYPE: the command's | REPLY


class Cmd:
    """Command TYPE codes (host -> device)."""
    PING = 0x01
    INFO = 0x02
    LOAD = 0x10
    WRITE_INPUT = 0x20
    RUN = 0x30
    READ_LOGITS = 0x40
    READ_CYCLES = 0x41
    RESET = 0x50

    ALL = (PING, INFO, LOAD, WRITE_INPUT, RUN, READ_LOGITS, READ_CYCLES, RESET)
    NAMES = {PING: "PING", INFO: "INFO", LOAD: "LOAD", WRITE_INPUT: "WRITE_INPUT", RUN: "RUN",
             READ_LOGITS: "READ_LOGITS", READ_CYCLES: "READ_CYCLES", RESET: "RESET"}


class Err:
    """Error codes of the ERROR reply (payload: code u8, detail u32)."""
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    BAD_ADDRESS = 4
    NO_RESULT = 5


ERROR_NAMES = {Err.BAD_CRC: "BAD_CRC", Err.BAD_LENGTH: "BAD_LENGTH", Err.UNKNOWN_TYPE: "UNKNOWN_TYPE",
               Err.BAD_ADDRESS: "BAD_ADDRESS", Err.NO_RESULT: "NO_RESULT"}

PING_MAX = 64
LOAD_HEADER = 6             # mem u8, 0 u8, addr u32
WRITE_INPUT_HEADER = 4      # offset u32
RUN_REPLY = struct.Struct("<BQH")       # status, cycles, logit bytes
ERROR_REPLY = struct.Struct("<BI")      # code, detail


class LinkError(RuntimeError):
    """The link failed: no valid reply after the retries, an error reply, or a device that does
    not match the build."""


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
    """One frame: SYNC TYPE SEQ LEN HCRC PAYLOAD CRC32."""
    payload = bytes(payload)
    if not 0 <= type_ <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError(f"type and seq are bytes, not {type_}, {seq}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    head = bytes([type_, seq]) + struct.pack("<H", len(payload))
    body = head + bytes([crc8(head)]) + payload
    return bytes([SYNC]) + body + struct.pack("<I", crc32(body))


class FrameParser:
    """Incremental frame parser: :meth:`feed` bytes, get complete, checked frames.

    Bytes before a ``SYNC`` are skipped; a header with a bad CRC-8 or ``LEN`` above
    ``MAX_PAYLOAD`` drops that ``SYNC`` and the search resumes at the next byte; a frame with a
    bad CRC-32 is dropped the same way (and counted in :attr:`bad_frames` and
    :attr:`bad_payloads`, with the header of the last one in :attr:`last_bad`), so a corrupted frame never yields a result and a good frame
    after garbage is still found."""

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
        length = struct.unpack_from("<H", self._buf, 3)[0]
        return max(1, HEADER_BYTES + length + CRC_BYTES - n)

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
            head = bytes(buf[1:5])
            length = struct.unpack_from("<H", buf, 3)[0]
            if crc8(head) != buf[5] or length > self.max_payload:
                self.bad_frames += 1
                self._drop(1)
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(buf) < total:
                return None
            body = bytes(buf[1:HEADER_BYTES + length])
            (crc,) = struct.unpack_from("<I", buf, HEADER_BYTES + length)
            if crc32(body) != crc:
                self.bad_frames += 1
                self.bad_payloads += 1
                self.last_bad = (buf[1], buf[2])
                self._drop(1)
                continue
            frame = Frame(buf[1], buf[2], bytes(buf[HEADER_BYTES:HEADER_BYTES + length]))
            del buf[:total]
            return frame


# INFO record (docs/protocol.md): version, device version, hash (8 bytes), board (16 bytes),
# clock, baud, max payload, 5 memory depths, 5 word sizes, input buffer bytes, logit bytes
INFO_FORMAT = struct.Struct("<HH8s16sIIH5H5HHH")


@dataclass(frozen=True)
class Info:
    protocol_version: int
    device_version: int
    engine_config_hash: str       # 16 hex digits, as in manifest.json
    board: str
    clock_hz: int
    baud: int
    max_payload: int
    depths: tuple                 # words of memories 0..4 (program, tensors, params, patterns, weights)
    word_bytes: tuple
    input_bytes: int
    logit_bytes: int

    def pack(self) -> bytes:
        board = self.board.encode("ascii")
        if len(board) > 16:
            raise ValueError(f"board name {self.board!r} is longer than 16 bytes")
        return INFO_FORMAT.pack(self.protocol_version, self.device_version,
                                bytes.fromhex(self.engine_config_hash), board.ljust(16, b"\0"),
                                self.clock_hz, self.baud, self.max_payload, *self.depths,
                                *self.word_bytes, self.input_bytes, self.logit_bytes)

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != INFO_FORMAT.size:
            raise LinkError(f"INFO reply of {len(payload)} bytes, expected {INFO_FORMAT.size}")
        v = INFO_FORMAT.unpack(payload)
        return cls(v[0], v[1], v[2].hex(), v[3].rstrip(b"\0").decode("ascii", "replace"), v[4], v[5],
                   v[6], tuple(v[7:12]), tuple(v[12:17]), v[17], v[18])
