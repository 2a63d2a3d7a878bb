"""The accelerator as seen from the host (docs/protocol.md): one generic driver for every
build, reading the build directory's manifest (:class:`sephw.arch.Manifest`); the same code
for a board's serial port and the simulated board (:func:`sephw.flows.run.open_device` opens
``sim:BUILD_DIR``).

    with Device.open("/dev/ttyUSB1") as dev:
        dev.load("build/")                  # refuses a build the device was not generated for
        logits = dev.infer(images)          # (N, classes) int64

Stop-and-wait: one command frame, then its reply, matched by ``SEQ``. Every read has a
deadline (transfer time at the link's baud, plus for ``RUN`` twice the predicted compute time,
times the transport's ``time_scale()``, plus its ``margin_s``). A timeout, a reply that fails
a check, or an ``ERROR BAD_CRC`` makes the driver resend the same frame (same ``SEQ``: every
command is idempotent), :attr:`Device.tries` times in all, then raise
:class:`sephw.arch.link.LinkError`. Replies with another ``SEQ`` are discarded. Any other
error reply raises at once. A reply is never accepted unless it passed both CRCs and has the
command's reply ``TYPE``, ``SEQ`` and payload length.

Needs Python, numpy and pyserial only (tests/test_imports.py): no simulator, RTL generator or
torch.
"""
from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import numpy as np

from sephw.arch import Manifest, Region

from .dram import MODEL_RECIPE, calibrate, init_done
from .protocol import (CRC_BYTES, CSR_MAX_OPS, CSR_OP, CSR_WRITE, ERROR, ERROR_NAMES, ERROR_REPLY, HEADER_BYTES,
                       INFO_FORMAT, LOAD_HEADER, LOAD_HEADER_BYTES, MAX_PAYLOAD, PING_MAX, REPLY, RUN_REPLY,
                       WRITE_INPUT_HEADER, Cmd, DramPhy, Err, Frame, FrameParser, Info, LinkError, encode_frame)
from .transport import SIM_PREFIX, Transport, open_transport, sim_port_error

__all__ = ["Device", "memory_images", "frame_bytes"]


def frame_bytes(payload_bytes: int) -> int:
    """Bytes on the link of a frame with ``payload_bytes`` of payload."""
    return HEADER_BYTES + payload_bytes + CRC_BYTES


def memory_images(build_dir) -> list[tuple[Region, bytes]]:
    """``(Region, image)`` of every memory of a build directory, in select order
    (:meth:`sephw.arch.Manifest.images`: whole words, within the memory, SHA-256 checked)."""
    return Manifest.read(build_dir).images()


class Device:
    """The accelerator behind a :class:`host.transport.Transport`.

    Parameters
    ----------
    transport : Transport
        The byte link (its ``description`` names the port in errors).
    tries : int
        Sends of one command before :class:`LinkError` (docs/protocol.md: 3).
    progress : bool
        tqdm progress bar while loading.

    Attributes
    ----------
    last_stats : list of dict
        Per image of the last :meth:`infer`: ``link_bytes`` (both directions, frames with
        their overhead), ``link_s`` (those bytes at the link's baud, 10 bits per byte),
        ``compute_cycles`` (the device's count for RUN), ``compute_s`` (cycles at the
        device's clock) and ``wall_s`` (measured on the host; on the simulated board this is
        simulation time, not link time).
    """

    def __init__(self, transport: Transport, *, tries: int = 3, progress: bool = True):
        self.transport = transport
        self.tries = int(tries)
        self.progress = progress
        self.port = transport.description
        self.last_stats: list[dict] = []
        self.retries = 0               # resends so far (all commands)
        self._seq = 0
        self._parser = FrameParser()
        self._info: Info | None = None
        self._manifest: Manifest | None = None
        self._resume: dict[str, int] = {}    # build (arch hash + images) -> first chunk not acknowledged

    @classmethod
    def open(cls, port: str, *, baud: int | None = None, timeout: float | None = None,
             tries: int = 3, progress: bool = True) -> "Device":
        """Open the serial port ``port`` (``/dev/ttyUSB1``, ``COM3``; ``baud`` default
        3,000,000). ``timeout`` replaces the transport's fixed deadline margin (seconds).
        The simulated board (``sim:BUILD_DIR``) is opened by :func:`sephw.flows.run.open_device`."""
        if port.startswith(SIM_PREFIX):
            raise sim_port_error(port)
        t = open_transport(port, baud)
        if timeout is not None:
            t.margin_s = float(timeout)
        return cls(t, tries=tries, progress=progress)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- link ----------------------------------------------------------------------------------
    def deadline(self, cmd_bytes: int, reply_bytes: int, compute_s: float = 0.0) -> float:
        """Seconds to wait for a reply: both frames at the link's baud (10 bits per byte) plus
        ``compute_s``, in wall time (``time_scale()``), plus the transport's margin."""
        link_s = (cmd_bytes + reply_bytes) * 10 / max(1, self.transport.baud)
        return (link_s + compute_s) * self.transport.time_scale() + self.transport.margin_s

    def transact(self, cmd: int, payload: bytes = b"", *, reply_len: int | tuple | None = None,
                 compute_s: float = 0.0, tries: int | None = None) -> Frame:
        """Send command ``cmd`` and return its checked reply frame.

        ``reply_len``: the reply payload's length (an int, or ``(min, max)``); a reply with any
        other length counts as a failed check. Retries as the module docstring says (``tries``
        sends in all; default :attr:`tries`)."""
        tries = self.tries if tries is None else int(tries)
        name = Cmd.NAMES.get(cmd, f"0x{cmd:02x}")
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        frame = encode_frame(cmd, seq, payload)
        lo, hi = ((reply_len, reply_len) if isinstance(reply_len, int) else reply_len or (0, MAX_PAYLOAD))
        wait = self.deadline(len(frame), frame_bytes(hi), compute_s)
        try:
            self.transport.discard_input()      # stale bytes of earlier commands
        except OSError as e:
            raise LinkError(f"{name} on {self.port}: the port failed: {e}") from e
        self._parser = FrameParser()
        seen = []
        for attempt in range(tries):
            if attempt:
                self.retries += 1
            try:
                self.transport.write(frame)
                got, why = self._await_reply(cmd, seq, lo, hi, time.monotonic() + wait)
            except OSError as e:        # the port itself failed (unplugged, simulator gone)
                note = self.transport.diagnose()
                raise LinkError(f"{name} on {self.port}: the port failed: {e}" + (f"\n{note}" if note else "")) from e
            if got is not None:
                return got
            seen.append(f"try {attempt + 1}: {why}")
        note = self.transport.diagnose()
        raise LinkError(f"{name} on {self.port}: no valid reply after {tries} tries "
                        f"({wait:.2f} s each); received: " + "; ".join(seen) + (f"\n{note}" if note else ""))

    def _await_reply(self, cmd: int, seq: int, lo: int, hi: int, end: float):
        """``(frame, None)`` for a good reply by ``end``, else ``(None, what was received)``."""
        parser, received, notes = self._parser, 0, []
        bad0, bad_payloads0 = parser.bad_frames, parser.bad_payloads
        ours_failed = False
        while True:
            left = end - time.monotonic()
            if ours_failed:
                left = 0.0          # take what has already arrived, then resend
            elif left <= 0:
                break
            data = self.transport.read(parser.needed(), left)
            if ours_failed and not data:
                return None, _summary(received, parser, bad0, notes)
            received += len(data)
            for f in parser.feed(data):
                if f.seq != seq:
                    notes.append(f"discarded {f.name} with stale SEQ {f.seq} (expected {seq})")
                    continue
                if f.type == ERROR:
                    code, detail = _error(f)
                    if code == Err.BAD_CRC:
                        notes.append(f"ERROR BAD_CRC (device received CRC 0x{detail:08x})")
                        return None, _summary(received, parser, bad0, notes)
                    hint = (": its DRAM is not initialized (Device.init_dram, which Device.load runs)"
                            if code == Err.NOT_READY else "")
                    raise LinkError(f"{Cmd.NAMES.get(cmd, hex(cmd))} on {self.port}: device replied "
                                    f"ERROR {ERROR_NAMES.get(code, f'code {code}')} (detail {detail}){hint}")
                if f.type != cmd | REPLY:
                    notes.append(f"unexpected reply {f.name} (0x{f.type:02x})")
                    continue
                if not lo <= len(f.payload) <= hi:
                    notes.append(f"{f.name} with a {len(f.payload)}-byte payload (expected "
                                 f"{lo if lo == hi else f'{lo}..{hi}'})")
                    continue
                return f, None
            if parser.bad_payloads > bad_payloads0 and parser.last_bad[1] == seq:
                # a reply with our SEQ (its header passed, so the SEQ is trustworthy) failed
                # the frame CRC: resend as soon as the bytes already received are parsed,
                # rather than wait out the deadline. Garbage that merely fails header checks
                # does not cut the wait short.
                ours_failed = True
        return None, _summary(received, parser, bad0, notes + ["timed out"])

    # -- commands ------------------------------------------------------------------------------
    def ping(self, payload: bytes = b"") -> bytes:
        """PING: the device echoes ``payload`` (0..64 bytes)."""
        payload = bytes(payload)
        if len(payload) > PING_MAX:
            raise ValueError(f"PING payload is at most {PING_MAX} bytes, not {len(payload)}")
        f = self.transact(Cmd.PING, payload, reply_len=len(payload))
        if f.payload != payload:
            raise LinkError(f"PING on {self.port}: echoed {f.payload!r} for {payload!r}")
        return f.payload

    def info(self, refresh: bool = False) -> Info:
        """The device's INFO record (cached)."""
        if self._info is None or refresh:
            self._info = Info.unpack(self.transact(Cmd.INFO, reply_len=INFO_FORMAT.size).payload)
        return self._info

    def cycles(self) -> int:
        """Clock cycles of the last RUN (READ_CYCLES)."""
        return struct.unpack("<Q", self.transact(Cmd.READ_CYCLES, reply_len=8).payload)[0]

    def reset(self) -> None:
        """RESET: sequencer and link back to idle, logits and cycle count cleared."""
        self.transact(Cmd.RESET, reply_len=0)

    def check_build(self, build_dir) -> Manifest:
        """The build's :class:`~sephw.arch.Manifest`, or :class:`LinkError` unless the device
        was generated for the build's ArchConfig: its INFO ``arch_hash`` is the manifest's.
        The hash covers every size the bitstream depends on (memory depths and words, the
        input and logit buffers, the clock), so equal hashes mean the build fits."""
        man = Manifest.read(build_dir)
        info = self.info()
        if man.arch_hash != info.arch_hash:
            raise LinkError(f"{man.build_dir} was compiled for arch {man.arch_hash} ({man.board}), but the device on "
                            f"{self.port} ({info.board}) was generated for arch {info.arch_hash}: program the "
                            f"device with the bitstream built for this build, or compile the model for the "
                            f"device's configuration")
        return man

    def csr(self, ops) -> list[int]:
        """DRAM controller CSR accesses (``CSR`` frames of at most ``CSR_MAX_OPS``
        operations, in order): ``ops`` is a list of ``(byte_addr, value)`` writes and
        ``(byte_addr, None)`` reads; returns the reads' values in order. A ``CSR`` frame with
        writes is sent once, never resent: its writes (DFII command issues, delay and bitslip
        steps) are not idempotent, so a lost reply raises :class:`LinkError` (:meth:`init_dram`
        then starts the whole initialization again); a frame of reads only is resent as any
        other command."""
        out = []
        ops = list(ops)
        for i in range(0, len(ops), CSR_MAX_OPS):
            part = ops[i:i + CSR_MAX_OPS]
            body = b""
            for addr, value in part:
                if addr % 4 or not 0 <= addr >> 2 < CSR_WRITE:
                    raise ValueError(f"CSR byte address {addr:#x} is not a word address below {CSR_WRITE * 4:#x}")
                body += CSR_OP.pack((addr >> 2) | (0 if value is None else CSR_WRITE), value or 0)
            reads = sum(v is None for _, v in part)
            f = self.transact(Cmd.CSR, body, reply_len=4 * reads, tries=None if reads == len(part) else 1)
            out += struct.unpack(f"<{reads}I", f.payload)
        return out

    def dram_recipe(self, build_dir=None) -> dict:
        """How to initialize the device's DRAM (host/dram.py): built in for the simulated
        board's behavioural memory; for LiteDRAM, the build directory's ``dram.json``
        (written by the board build from the generated controller)."""
        info = self.info()
        if info.dram_phy == DramPhy.MODEL:
            return MODEL_RECIPE
        name = DramPhy.NAMES.get(info.dram_phy, f"DRAM PHY {info.dram_phy}")
        path = Path(build_dir or ".") / "dram.json"
        if build_dir is None or not path.is_file():
            raise LinkError(f"the device on {self.port} has DRAM behind LiteDRAM ({name}) that must be initialized "
                            f"from the host, and {path} is missing: it is written by the board build "
                            f"(`sephw compile ... --board {info.board}` without --no-board)")
        try:
            recipe = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise LinkError(f"{path}: not a DRAM initialization recipe ({e})") from None
        if not isinstance(recipe, dict) or recipe.get("phy") != name:
            phy = recipe.get("phy") if isinstance(recipe, dict) else None
            raise LinkError(f"{path} initializes a {phy} controller, the device on {self.port} has {name}")
        need = ("csr", "init", "clock_hz") + (("phases", "rdphase", "wrphase", "modules", "delays", "bitslips",
                                              "databits", "dfi_databits") if recipe.get("read_leveling") else ())
        missing = [k for k in need if k not in recipe]
        if missing:
            raise LinkError(f"{path}: the DRAM initialization recipe lacks {', '.join(missing)} (rebuild it with "
                            f"the board build)")
        return recipe

    def init_dram(self, build_dir=None, *, force: bool = False, log=print) -> dict | None:
        """Initialize (and on the Arty calibrate) the device's DRAM unless it already is
        (``force``: again): host/dram.py's :func:`~host.dram.calibrate` over ``CSR`` frames,
        started again from the beginning after a link error (:attr:`tries` runs in all).
        Until then the device answers ``NOT_READY`` to anything that would use the DRAM.
        Returns calibrate's report, or None when nothing was done."""
        info = self.info()
        if not info.ext_words:
            return None
        recipe = self.dram_recipe(build_dir)
        if not force and init_done(self.csr, recipe):
            return None
        for attempt in range(self.tries):
            try:
                return calibrate(self.csr, recipe, log=log)
            except LinkError as e:
                if attempt == self.tries - 1:
                    raise LinkError(f"DRAM initialization on {self.port} failed {self.tries} times; last: {e}") from None
                self.retries += 1
                log(f"[dram] link error during the initialization, starting it again: {e}")

    def load(self, build_dir, *, resume: bool = True) -> dict:
        """Check the build (:meth:`check_build`), initialize the DRAM where the device has one
        and it is not yet (:meth:`init_dram`), then send every memory image, the board's
        DRAM image (``external.bin``, memory 5) included, in LOAD chunks of at most
        ``MAX_PAYLOAD`` bytes, each CRC-checked and acknowledged (a chunk is resent up to
        ``tries`` times). When a chunk still fails, :class:`LinkError` says how far the load
        got, and the next ``load`` of the same build on this Device resumes at that chunk
        (``resume=False`` starts over, e.g. after the board was reprogrammed). Returns
        ``{"bytes": image bytes, "frames": LOADs sent, "seconds": wall, "resumed_at": first
        chunk sent}``."""
        from tqdm import tqdm
        man = self.check_build(build_dir)
        self.init_dram(build_dir, log=print if self.progress else (lambda msg: None))
        max_payload = min(MAX_PAYLOAD, self.info().max_payload)
        images = man.images()
        chunks = []                      # (region, first word, words, payload)
        for region, blob in images:
            wb = region.word_bytes
            per = (max_payload - LOAD_HEADER_BYTES) // wb
            if per < 1:
                raise LinkError(f"{region.name} words of {wb} bytes do not fit a {max_payload}-byte payload")
            words = len(blob) // wb
            chunks += [(region, a, min(per, words - a), blob[a * wb:(a + min(per, words - a)) * wb])
                       for a in range(0, words, per)]
        total = sum(len(b) for _, b in images)
        key = hashlib.sha256(man.arch_hash.encode() + b"".join(hashlib.sha256(b).digest() for _, b in images)).hexdigest()
        first = self._resume.pop(key, 0) if resume else 0
        t0, frames = time.perf_counter(), 0
        with tqdm(total=total, initial=sum(len(c[3]) for c in chunks[:first]), unit="B", unit_scale=True,
                  desc=f"load {man.build_dir.name}", disable=not self.progress, leave=False) as bar:
            for i in range(first, len(chunks)):
                region, a, n, words = chunks[i]
                body = LOAD_HEADER.pack(mem=region.select, addr=a) + words
                try:
                    ack = struct.unpack("<H", self.transact(Cmd.LOAD, body, reply_len=2).payload)[0]
                    if ack != n:
                        raise LinkError(f"LOAD on {self.port}: {region.name} words {a}..{a + n - 1}: "
                                        f"device acknowledged {ack} words of {n}")
                except LinkError as e:
                    self._resume[key] = i
                    done = sum(len(c[3]) for c in chunks[:i])
                    raise LinkError(f"{e} (load of {man.build_dir}: {i} of {len(chunks)} chunks, {done:,} of "
                                    f"{total:,} bytes acknowledged; loading it again on this connection "
                                    f"resumes at the {region.name} memory's word {a})") from None
                frames += 1
                bar.update(len(words))
        self._manifest = man
        return {"bytes": total, "frames": frames, "seconds": time.perf_counter() - t0, "resumed_at": first}

    def attach(self, build_dir) -> Manifest:
        """Use an already loaded build (its manifest and predicted cycles) without loading."""
        self._manifest = self.check_build(build_dir)
        return self._manifest

    def run_deadline_compute_s(self) -> float:
        """Compute seconds RUN may take: twice the predicted cycles at the device's clock
        (1 s when no build was loaded or attached in this session)."""
        if self._manifest is None or not self._manifest.cycles_per_inference:
            return 1.0
        return 2 * self._manifest.cycles_per_inference / self.info().clock_hz

    def infer(self, images) -> np.ndarray:
        """Logits (N, classes) int64 of ``images`` (N, C, H, W) or (N, H, W) uint8 codes.

        Per image: WRITE_INPUT (HWC bytes, chunked), RUN, READ_LOGITS; per-image numbers in
        :attr:`last_stats`."""
        x = np.asarray(images)
        if x.dtype != np.uint8:
            if x.size and (x.min() < 0 or x.max() > 255):
                raise ValueError("images must be uint8 codes 0..255")
            x = x.astype(np.uint8)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) or (N, H, W), not shape {x.shape}")
        info = self.info()
        if self._manifest is not None and tuple(x.shape[1:]) != self._manifest.input_shape:
            raise ValueError(f"images of shape {tuple(x.shape[1:])}, the loaded build takes "
                             f"{self._manifest.input_shape}")
        chunk = min(MAX_PAYLOAD, info.max_payload) - WRITE_INPUT_HEADER
        out, self.last_stats = [], []
        for img in x:
            data = img.transpose(1, 2, 0).tobytes()
            if len(data) > info.input_bytes:
                raise ValueError(f"image of {len(data)} bytes, the device's input buffer holds {info.input_bytes}")
            t0, nbytes = time.perf_counter(), 0
            for off in range(0, len(data), chunk):
                part = data[off:off + chunk]
                f = self.transact(Cmd.WRITE_INPUT, off.to_bytes(WRITE_INPUT_HEADER, "little") + part, reply_len=2)
                if struct.unpack("<H", f.payload)[0] != len(part):
                    raise LinkError(f"WRITE_INPUT on {self.port}: device wrote {struct.unpack('<H', f.payload)[0]} "
                                    f"bytes of {len(part)} at offset {off}")
                nbytes += frame_bytes(WRITE_INPUT_HEADER + len(part)) + frame_bytes(2)
            f = self.transact(Cmd.RUN, reply_len=RUN_REPLY.size, compute_s=self.run_deadline_compute_s())
            status, cycles, logit_bytes = RUN_REPLY.unpack(f.payload)
            if status != 0:
                raise LinkError(f"RUN on {self.port}: the accelerator raised error after {cycles} cycles")
            if logit_bytes % 8 or logit_bytes == 0:
                raise LinkError(f"RUN on {self.port}: {logit_bytes} logit bytes is not a whole number of int64")
            f = self.transact(Cmd.READ_LOGITS, reply_len=logit_bytes)
            nbytes += frame_bytes(0) + frame_bytes(RUN_REPLY.size) + frame_bytes(0) + frame_bytes(logit_bytes)
            wall = time.perf_counter() - t0
            out.append(np.frombuffer(f.payload, dtype="<i8").astype(np.int64))
            self.last_stats.append({"link_bytes": nbytes, "link_s": nbytes * 10 / info.baud,
                                    "compute_cycles": cycles, "compute_s": cycles / info.clock_hz,
                                    "wall_s": wall})
        return np.stack(out) if out else np.zeros((0, 0), dtype=np.int64)


def _error(f: Frame) -> tuple[int, int]:
    if len(f.payload) != ERROR_REPLY.size:
        return -1, len(f.payload)
    return ERROR_REPLY.unpack(f.payload)


def _summary(received: int, parser: FrameParser, bad0: int, notes: list) -> str:
    parts = [f"{received} bytes" if received else "nothing"]
    bad = parser.bad_frames - bad0
    if bad:
        parts.append(f"{bad} header/frame CRC failure(s)" +
                     (f" (last: TYPE 0x{parser.last_bad[0]:02x} SEQ {parser.last_bad[1]})" if parser.last_bad else ""))
    if parser.pending():
        parts.append(f"{parser.pending()} bytes of an incomplete frame")
    return ", ".join(parts + notes)
