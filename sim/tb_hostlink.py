"""cocotb testbench: the host link (rtl_gen/hostlink.py) spoken to over its UART pins.

A bit-banging host (:class:`UartHost`) drives ``uart_rx`` with edge-timed writes (one cocotb
``Timer`` per bit, bit edges scheduled on absolute times so a fractional clocks-per-bit ratio
never drifts) and decodes ``uart_tx`` (start-bit edge, samples in the middle of each bit) into
:class:`host.protocol.FrameParser`, so every reply passes the host's own header and frame
checks. Commands are encoded with :func:`host.protocol.encode_frame`. No per-cycle Python: the
clock runs in the simulator and the accelerator runs at full speed between UART events.

Tests (selected by the pytest side): ``link_commands`` (PING, INFO, the error replies, garbage,
corrupted and truncated frames, resynchronisation) and ``network`` (the whole compiled
network: every memory image through LOAD, images through WRITE_INPUT, RUN, READ_LOGITS,
READ_CYCLES, checked against the reference logits handed in by the pytest side).
"""
from __future__ import annotations

import json
import random
import struct

import cocotb
from cocotb.triggers import Event, FallingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

from host.protocol import (ERROR, ERROR_REPLY, LOAD_HEADER, LOAD_HEADER_BYTES, MAX_PAYLOAD, REPLY, RUN_REPLY, SYNC,
                           Cmd, Err, Frame, FrameParser, Info, crc8, encode_frame)
from sim.tb import load_case, start_clock_reset

CLOCK_NS = 10          # sim.tb.start_clock_reset


class UartHost:
    """The host end of the UART: :meth:`send` bytes on ``uart_rx``, frames from ``uart_tx``."""

    def __init__(self, dut, clk_hz: int, baud: int):
        self.dut = dut
        self.bit_ps = CLOCK_NS * 1000 * clk_hz / baud
        self.parser = FrameParser()
        self.frames: list[Frame] = []
        self.raw = bytearray()            # every byte received
        self.framing_errors = 0
        self._event = Event()
        dut.uart_rx.value = 1
        self._task = cocotb.start_soon(self._monitor())

    async def send(self, data: bytes) -> None:
        """Drive ``data`` on ``uart_rx``, 8N1, back to back."""
        t0 = get_sim_time("ps")
        k = 0
        now = t0
        for b in data:
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                self.dut.uart_rx.value = bit
                k += 1
                edge = t0 + round(k * self.bit_ps)
                await Timer(edge - now, unit="ps")
                now = edge

    async def idle(self, ns: float) -> None:
        await Timer(round(ns * 1000), unit="ps")

    async def _monitor(self):
        line = self.dut.uart_tx
        half, bit = round(self.bit_ps / 2), round(self.bit_ps)
        while True:
            await FallingEdge(line)
            await Timer(half, unit="ps")
            if line.value != 0:
                continue                   # not a start bit
            b = 0
            for i in range(8):
                await Timer(bit, unit="ps")
                b |= int(line.value) << i
            await Timer(bit, unit="ps")
            if line.value != 1:
                self.framing_errors += 1
                continue
            self.raw.append(b)
            new = self.parser.feed(bytes([b]))
            if new:
                self.frames += new
                self._event.set()

    async def reply(self, timeout_ns: float) -> Frame:
        """The next reply frame (fails after ``timeout_ns`` of simulated time)."""
        if not self.frames:
            self._event.clear()
            await with_timeout(self._event.wait(), timeout_ns, "ns")
        return self.frames.pop(0)

    async def request(self, type_: int, seq: int, payload: bytes = b"", timeout_ns: float = 2e6) -> Frame:
        await self.send(encode_frame(type_, seq, payload))
        return await self.reply(timeout_ns)


class Seq:
    def __init__(self):
        self.n = 0

    def __call__(self) -> int:
        self.n = (self.n + 1) & 0xFF
        return self.n


def check_reply(f: Frame, type_: int, seq: int, payload: bytes | None = None, what: str = "") -> None:
    assert f.seq == seq, f"{what}: reply SEQ {f.seq}, expected {seq} ({f})"
    assert f.type == type_, f"{what}: reply {f.name} (0x{f.type:02x}) payload {f.payload.hex()}, expected 0x{type_:02x}"
    if payload is not None:
        assert f.payload == payload, f"{what}: payload {f.payload.hex()}, expected {payload.hex()}"


def check_error(f: Frame, seq: int, code: int, detail: int, what: str) -> None:
    check_reply(f, ERROR, seq, ERROR_REPLY.pack(code, detail), what)


async def setup(dut):
    case = load_case()
    await start_clock_reset(dut)
    host = UartHost(dut, case["clk_hz"], case["baud"])
    await host.idle(1000)
    return case, host


def byte_ns(case) -> float:
    return 10 * CLOCK_NS * case["clk_hz"] / case["baud"]


@cocotb.test()
async def link_commands(dut):
    case, host = await setup(dut)
    seq = Seq()
    rng = random.Random(5)

    # a RUN of an unloaded Program (NOPs: it never ends) is aborted by RESET, heard mid-run
    s_run = seq()
    await host.send(encode_frame(Cmd.RUN, s_run))
    await host.idle(20 * byte_ns(case))
    assert not host.raw and dut.busy.value == 1, "a RUN of NOPs answered or not busy"
    s = seq()
    check_reply(await host.request(Cmd.RESET, s), Cmd.RESET | REPLY, s, b"", "RESET during a RUN")
    assert dut.busy.value == 0
    s = seq()
    check_error(await host.request(Cmd.READ_CYCLES, s), s, Err.NO_RESULT, 0, "READ_CYCLES after an aborted RUN")
    assert dut.error.value == 1, "error LED off after an ERROR reply"

    # PING echoes 0..64 bytes; 65 is BAD_LENGTH
    for n in (0, 1, 64):
        p = bytes(rng.randrange(256) for _ in range(n))
        s = seq()
        check_reply(await host.request(Cmd.PING, s, p), Cmd.PING | REPLY, s, p, f"PING {n}")
    s = seq()
    check_error(await host.request(Cmd.PING, s, bytes(65)), s, Err.BAD_LENGTH, 65, "PING 65")

    assert dut.error.value == 1
    # INFO
    s = seq()
    f = await host.request(Cmd.INFO, s)
    check_reply(f, Cmd.INFO | REPLY, s, what="INFO")
    info = case["info"]
    want = Info(**{**info, "depths": tuple(info["depths"]), "word_bytes": tuple(info["word_bytes"])})
    assert Info.unpack(f.payload) == want, f"INFO {Info.unpack(f.payload)} != {want}"
    assert dut.error.value == 0, "error LED on after a good reply"
    s = seq()
    check_error(await host.request(Cmd.INFO, s, b"x"), s, Err.BAD_LENGTH, 1, "INFO with a payload")

    # no result before a RUN
    for cmd in (Cmd.READ_LOGITS, Cmd.READ_CYCLES):
        s = seq()
        check_error(await host.request(cmd, s), s, Err.NO_RESULT, 0, f"{Cmd.NAMES[cmd]} before RUN")

    # unknown types (a reply's TYPE is not a command)
    for t in (0x00, 0x33, Cmd.PING | REPLY, ERROR):
        s = seq()
        check_error(await host.request(t, s), s, Err.UNKNOWN_TYPE, t, f"TYPE 0x{t:02x}")

    # LOAD: addresses and lengths
    wb, depths = info["word_bytes"], info["depths"]

    def load(mem, addr, nbytes):
        return LOAD_HEADER.pack(mem=mem, addr=addr) + bytes(rng.randrange(256) for _ in range(nbytes))

    for mem in range(5):
        s = seq()       # the last word of each memory: fits
        check_reply(await host.request(Cmd.LOAD, s, load(mem, depths[mem] - 1, wb[mem])), Cmd.LOAD | REPLY, s,
                    struct.pack("<H", 1), f"LOAD mem {mem} last word")
        s = seq()       # two words from the last one: past the depth
        check_error(await host.request(Cmd.LOAD, s, load(mem, depths[mem] - 1, 2 * wb[mem])), s, Err.BAD_ADDRESS,
                    depths[mem] - 1, f"LOAD mem {mem} past its depth")
    s = seq()
    check_error(await host.request(Cmd.LOAD, s, load(1, 1 << 31, wb[1])), s, Err.BAD_ADDRESS, 1 << 31, "LOAD addr 2^31")
    s = seq()
    check_error(await host.request(Cmd.LOAD, s, load(5, 3, 16)), s, Err.BAD_ADDRESS, 3, "LOAD mem 5")
    s = seq()
    check_error(await host.request(Cmd.LOAD, s, load(3, 0, wb[3] + 1)), s, Err.BAD_LENGTH,
                LOAD_HEADER_BYTES + wb[3] + 1, "LOAD not a multiple of the word")
    s = seq()
    check_error(await host.request(Cmd.LOAD, s, load(0, 0, 0)), s, Err.BAD_LENGTH, LOAD_HEADER_BYTES, "LOAD no words")
    s = seq()
    n = (MAX_PAYLOAD - LOAD_HEADER_BYTES) // wb[2]
    check_reply(await host.request(Cmd.LOAD, s, load(2, 0, n * wb[2])), Cmd.LOAD | REPLY, s,
                struct.pack("<H", n), "LOAD a full frame")

    # WRITE_INPUT bounds
    ib = info["input_bytes"]
    s = seq()
    check_reply(await host.request(Cmd.WRITE_INPUT, s, struct.pack("<I", ib - 3) + bytes(3)),
                Cmd.WRITE_INPUT | REPLY, s, struct.pack("<H", 3), "WRITE_INPUT to the end")
    s = seq()
    check_error(await host.request(Cmd.WRITE_INPUT, s, struct.pack("<I", ib - 3) + bytes(4)), s, Err.BAD_ADDRESS,
                ib - 3, "WRITE_INPUT past the buffer")
    s = seq()
    check_error(await host.request(Cmd.WRITE_INPUT, s, b"\0\0"), s, Err.BAD_LENGTH, 2, "WRITE_INPUT short")

    # LEN > MAX_PAYLOAD (good header CRC): BAD_LENGTH with LEN, then the link resyncs
    s = seq()
    head = bytes([Cmd.PING, s]) + struct.pack("<H", MAX_PAYLOAD + 904)
    await host.send(bytes([SYNC]) + head + bytes([crc8(head)]) + bytes(range(40)))
    check_error(await host.reply(1e6), s, Err.BAD_LENGTH, MAX_PAYLOAD + 904, "LEN > MAX_PAYLOAD")

    async def ping_after(what):
        s = seq()
        p = bytes(rng.randrange(256) for _ in range(16))
        check_reply(await host.request(Cmd.PING, s, p), Cmd.PING | REPLY, s, p, f"PING after {what}")
        assert not host.frames, f"extra replies after {what}: {host.frames}"

    await ping_after("LEN > MAX_PAYLOAD")

    # garbage (with SYNC bytes in it, none in its last 6 bytes): no reply, next PING answered
    garbage = bytes(rng.randrange(256) for _ in range(300)) + bytes([SYNC, 0x01, 0x07, SYNC]) + b"\x11" * 6
    nraw = len(host.raw)
    await host.send(garbage)
    await ping_after("garbage")
    assert len(host.raw) - nraw == len(encode_frame(Cmd.PING | REPLY, 0, bytes(16))), "garbage was answered"

    # a corrupted payload byte: BAD_CRC with the same SEQ and the received CRC, nothing executed
    s = seq()
    frame = bytearray(encode_frame(Cmd.PING, s, b"hello, device"))
    frame[8] ^= 0x10
    await host.send(bytes(frame))
    check_error(await host.reply(1e6), s, Err.BAD_CRC, struct.unpack_from("<I", frame, len(frame) - 4)[0],
                "corrupted payload")
    assert not host.frames

    # a corrupted header (LEN 13 -> 13 + 16*256): no reply at all, the next PING is answered
    frame = bytearray(encode_frame(Cmd.PING, seq(), b"no 0xa5 here"))
    assert SYNC not in frame[1:]
    frame[4] ^= 0x10
    nraw = len(host.raw)
    await host.send(bytes(frame))
    await host.idle(20 * byte_ns(case))
    assert len(host.raw) == nraw, "a frame with a bad header CRC was answered"
    await ping_after("a corrupted header")

    # a truncated frame, then silence longer than the frame timeout: dropped, PING answered
    frame = encode_frame(Cmd.PING, seq(), bytes(range(1, 21)))
    nraw = len(host.raw)
    await host.send(frame[:12])
    await host.idle((case["frame_timeout_cycles"] + 100) * CLOCK_NS)
    assert len(host.raw) == nraw, "a truncated frame was answered"
    await ping_after("a truncated frame and the frame timeout")

    # RESET
    s = seq()
    check_reply(await host.request(Cmd.RESET, s), Cmd.RESET | REPLY, s, b"", "RESET")
    assert host.framing_errors == 0
    assert dut.busy.value == 0


def load_frames(writes, word_bytes) -> list[tuple[int, int, bytes]]:
    """Consecutive words of one memory grouped into LOAD payloads of at most MAX_PAYLOAD bytes:
    ``(mem, words, payload)``."""
    out = []
    cur = None
    for mem, addr, word in writes:
        wb = word_bytes[mem]
        full = cur is not None and LOAD_HEADER_BYTES + (cur[2] + 1) * wb > MAX_PAYLOAD
        if cur is None or cur[0] != mem or cur[1] + cur[2] != addr or full:
            if cur is not None:
                out.append(cur)
            cur = [mem, addr, 0, bytearray(LOAD_HEADER.pack(mem=mem, addr=addr))]
        cur[2] += 1
        cur[3] += word.to_bytes(wb, "little")
    if cur is not None:
        out.append(cur)
    return [(mem, n, bytes(p)) for mem, _, n, p in out]


@cocotb.test()
async def network(dut):
    from sim.top_driver import memory_writes
    case, host = await setup(dut)
    seq = Seq()
    classes = case["classes"]
    run_timeout = 20 * case["predicted_cycles"] * CLOCK_NS + 1e6
    t0 = get_sim_time("ns")
    frames = load_frames(memory_writes(case["build_dir"]), case["info"]["word_bytes"])
    nbytes = 0
    for mem, n, payload in frames:
        s = seq()
        check_reply(await host.request(Cmd.LOAD, s, payload), Cmd.LOAD | REPLY, s, struct.pack("<H", n),
                    f"LOAD mem {mem}")
        nbytes += len(payload) + 10
    t_load = get_sim_time("ns") - t0
    dut._log.info(f"loaded {nbytes} frame bytes in {len(frames)} LOAD frames, {t_load / 1e3:.0f} us "
                  f"({t_load / CLOCK_NS / nbytes:.1f} clocks per byte sent, incl. replies and gaps)")
    results = {"logits": [], "cycles": [], "load_frames": len(frames), "load_bytes": nbytes,
               "load_cycles": t_load / CLOCK_NS}

    async def run_image(n, what):
        s = seq()
        t = get_sim_time("ns")
        f = await host.request(Cmd.RUN, s, timeout_ns=run_timeout)
        t_run = get_sim_time("ns") - t
        check_reply(f, Cmd.RUN | REPLY, s, what=f"RUN {what}")
        status, cycles, lbytes = RUN_REPLY.unpack(f.payload)
        assert status == 0, f"RUN {what}: status {status}"
        assert lbytes == classes * 8, f"RUN {what}: {lbytes} logit bytes"
        s = seq()
        f = await host.request(Cmd.READ_LOGITS, s)
        check_reply(f, Cmd.READ_LOGITS | REPLY, s, what=f"READ_LOGITS {what}")
        logits = [v for (v,) in struct.iter_unpack("<q", f.payload)]
        assert logits == case["expected"][n], f"{what}: logits {logits} != reference {case['expected'][n]}"
        s = seq()
        check_reply(await host.request(Cmd.READ_CYCLES, s), Cmd.READ_CYCLES | REPLY, s, struct.pack("<Q", cycles),
                    f"READ_CYCLES {what}")
        dut._log.info(f"{what}: {cycles} cycles, RUN answered after {t_run / CLOCK_NS:.0f} clocks, logits {logits}")
        return cycles

    for n, img in enumerate(case["images"]):
        s = seq()
        check_reply(await host.request(Cmd.WRITE_INPUT, s, struct.pack("<I", 0) + bytes(img)),
                    Cmd.WRITE_INPUT | REPLY, s, struct.pack("<H", len(img)), f"WRITE_INPUT {n}")
        results["cycles"].append(await run_image(n, f"image {n}"))

    # a WRITE_INPUT of image 0 with a corrupted byte: BAD_CRC, the buffer keeps the last image
    last = len(case["images"]) - 1
    s = seq()
    frame = bytearray(encode_frame(Cmd.WRITE_INPUT, s, struct.pack("<I", 0) + bytes(case["images"][0])))
    frame[20] ^= 0x01
    await host.send(bytes(frame))
    check_error(await host.reply(1e6), s, Err.BAD_CRC, struct.unpack_from("<I", frame, len(frame) - 4)[0],
                "corrupted WRITE_INPUT")
    results["cycles"].append(await run_image(last, "the last image again after a corrupted WRITE_INPUT"))

    # RESET clears the result
    s = seq()
    check_reply(await host.request(Cmd.RESET, s), Cmd.RESET | REPLY, s, b"", "RESET")
    s = seq()
    check_error(await host.request(Cmd.READ_LOGITS, s), s, Err.NO_RESULT, 0, "READ_LOGITS after RESET")
    assert host.framing_errors == 0
    with open("result.json", "w") as fh:
        json.dump(results, fh)
