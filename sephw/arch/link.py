"""The host link's contract (docs/protocol.md): frame constants, command and error codes,
the frame header and command records, the INFO record.

The device side (rtl_gen/hostlink.py) and the host driver (host/) are both generated from /
written against this module, so the two cannot drift. Framing, CRCs and the parser are the
host's (host/protocol.py); the RTL computes the same CRCs in hardware.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .records import Record

__all__ = ["SYNC", "MAX_PAYLOAD", "HEADER_BYTES", "CRC_BYTES", "PROTOCOL_VERSION", "Cmd", "Err",
           "ERROR", "REPLY", "ERROR_NAMES", "PING_MAX", "CSR_OP", "CSR_MAX_OPS", "CSR_WRITE", "DramPhy",
           "FRAME_HEADER", "LOAD_HEADER", "LOAD_HEADER_BYTES",
           "WRITE_INPUT_HEADER", "RUN_REPLY", "ERROR_REPLY", "INFO_FORMAT", "Info", "LinkError"]

SYNC = 0xA5
MAX_PAYLOAD = 4096          # the device's frame buffer (bytes)
CRC_BYTES = 4
PROTOCOL_VERSION = 3        # 2: INFO reports the external memory (memory 5); 3: CSR, NOT_READY, INFO's DRAM PHY
ERROR = 0xFF                # TYPE of the error reply
REPLY = 0x80                # a reply's TYPE: the command's | REPLY

FRAME_HEADER = Record("frame header", 48, (("sync", 8), ("type", 8), ("seq", 8), ("len", 16), ("hcrc", 8)))
"""SYNC TYPE SEQ LEN(2, little-endian) HCRC (CRC-8 of TYPE SEQ LEN); the payload and its
CRC-32 follow."""
HEADER_BYTES = FRAME_HEADER.nbytes

LOAD_HEADER = Record("LOAD header", 48, (("mem", 8), ("reserved", 8), ("addr", 32)))
"""A LOAD payload's first bytes: memory select (sephw.arch.memmap: 0..4 on chip, 5 the
board's DRAM), first word address; the words follow."""
LOAD_HEADER_BYTES = LOAD_HEADER.nbytes

WRITE_INPUT_HEADER = 4      # offset u32
RUN_REPLY = struct.Struct("<BQH")       # status, cycles, logit bytes
ERROR_REPLY = struct.Struct("<BI")      # code, detail
PING_MAX = 64

CSR_OP = struct.Struct("<HI")   # CSR operation: op (bit 15 CSR_WRITE, bits 0..14 word address), value
CSR_WRITE = 0x8000
CSR_MAX_OPS = 64                # operations per CSR frame (so at most 64 read values in its reply)


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
    CSR = 0x60

    ALL = (PING, INFO, LOAD, WRITE_INPUT, RUN, READ_LOGITS, READ_CYCLES, RESET, CSR)
    NAMES = {PING: "PING", INFO: "INFO", LOAD: "LOAD", WRITE_INPUT: "WRITE_INPUT", RUN: "RUN",
             READ_LOGITS: "READ_LOGITS", READ_CYCLES: "READ_CYCLES", RESET: "RESET", CSR: "CSR"}


class Err:
    """Error codes of the ERROR reply (payload: code u8, detail u32)."""
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    BAD_ADDRESS = 4
    NO_RESULT = 5
    NOT_READY = 6


ERROR_NAMES = {Err.BAD_CRC: "BAD_CRC", Err.BAD_LENGTH: "BAD_LENGTH", Err.UNKNOWN_TYPE: "UNKNOWN_TYPE",
               Err.BAD_ADDRESS: "BAD_ADDRESS", Err.NO_RESULT: "NO_RESULT", Err.NOT_READY: "NOT_READY"}


class DramPhy:
    """What sits behind a device's DRAM controller CSRs (``INFO``'s ``dram_phy``): what the
    host must do before the DRAM is usable (host/dram.py)."""
    NONE = 0        # no external memory
    MODEL = 1       # a behavioural memory (the simulated board): no calibration, init_done by CSR
    LITEDRAM_SIM = 2    # LiteDRAM with its DRAM model (SDRAMPHYModel): the init sequence
    A7DDRPHY = 3    # LiteDRAM on the Arty's DDR3: the init sequence and read leveling
    GENSDRPHY = 4   # LiteDRAM on an SDR SDRAM (ULX3S): the init sequence

    NAMES = {NONE: "none", MODEL: "model", LITEDRAM_SIM: "litedram-sim", A7DDRPHY: "A7DDRPHY",
             GENSDRPHY: "GENSDRPHY"}


class LinkError(RuntimeError):
    """The link failed: no valid reply after the retries, an error reply, a malformed reply
    record, or a device that does not match the build."""


# INFO record (docs/protocol.md): version, device version, arch hash (8 bytes), board (16
# bytes), clock, baud, max payload, 5 memory depths, 5 word sizes, input buffer bytes (u32:
# an image in DRAM may be larger than 64 KB), logit bytes, external memory words (u32, 0:
# none) and its word bytes, the DRAM PHY (DramPhy) and a reserved byte
INFO_FORMAT = struct.Struct("<HH8s16sIIH5H5HIHIHBB")


@dataclass(frozen=True)
class Info:
    """What ``INFO`` reports: the device's ArchConfig hash (:meth:`sephw.arch.ArchConfig.hash`)
    and the sizes a host needs before it loads anything."""
    protocol_version: int
    device_version: int
    arch_hash: str                # 16 hex digits, as manifest.json's arch_hash
    board: str
    clock_hz: int
    baud: int
    max_payload: int
    depths: tuple                 # words of memories 0..4 (program, tensors, params, patterns, weights)
    word_bytes: tuple
    input_bytes: int
    logit_bytes: int
    ext_words: int = 0            # words of the external memory (memory 5; 0: none)
    ext_word_bytes: int = 0
    dram_phy: int = DramPhy.NONE  # what the host does before using the DRAM (DramPhy)

    def pack(self) -> bytes:
        board = self.board.encode("ascii")
        if len(board) > 16:
            raise ValueError(f"board name {self.board!r} is longer than 16 bytes")
        return INFO_FORMAT.pack(self.protocol_version, self.device_version,
                                bytes.fromhex(self.arch_hash), board.ljust(16, b"\0"),
                                self.clock_hz, self.baud, self.max_payload, *self.depths,
                                *self.word_bytes, self.input_bytes, self.logit_bytes, self.ext_words,
                                self.ext_word_bytes, self.dram_phy, 0)

    @classmethod
    def unpack(cls, payload: bytes) -> "Info":
        if len(payload) != INFO_FORMAT.size:
            raise LinkError(f"INFO reply of {len(payload)} bytes, expected {INFO_FORMAT.size}")
        v = INFO_FORMAT.unpack(payload)
        return cls(v[0], v[1], v[2].hex(), v[3].rstrip(b"\0").decode("ascii", "replace"), v[4], v[5],
                   v[6], tuple(v[7:12]), tuple(v[12:17]), v[17], v[18], v[19], v[20], v[21])
