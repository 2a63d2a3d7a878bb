"""The host driver (host/device.py) against (a) a scripted fake device that injects link
faults, and (b) the simulated board (the host link beside the accelerator top in Verilator, its
UART on a pseudo-terminal: `sim:BUILD_DIR`, the same driver and serial transport as a real
board), bit-exact against the integer reference.

The fake device keeps what it is sent (memories, input buffer) and answers RUN with logits
computed from the input bytes and a checksum of every loaded memory word, so a wrong load or a
wrong input shows up in the logits. Its build directories carry version-2 manifests written
through sephw.arch.Manifest for a small ArchConfig.
"""
import hashlib
import json
import random
import shutil
import struct
import time
import zlib
from collections import deque

import numpy as np
import pytest

from host.device import Device, memory_images
from host.protocol import (CSR_OP, CSR_WRITE, ERROR, LOAD_HEADER, LOAD_HEADER_BYTES, REPLY, RUN_REPLY, Cmd, DramPhy, Err, Frame,
                           FrameParser, Info, LinkError, encode_frame)
from host.transport import Transport
from sim.simboard import CLOCKS_PER_BIT
from sephw.arch import ArchConfig, EngineConfig, Manifest, ManifestError, MemoryMap
from sephw.arch.isa import describe

ARCH = ArchConfig(EngineConfig(lanes=8, pe_cin=16, mac_cols=8, k_max=5, a_bits=8, packed=False, pp_units=1,
                               max_width=8, column_store=False),
                  act_bytes=1024, pattern_words=64, weight_words=8, param_words=504, tensors=4, program_words=8,
                  max_channels=16, max_classes=3, input_bytes=64, logit_bytes=24, frame_bytes=4096,
                  clock_hz=100_000_000)
HASH = ARCH.hash()
OTHER_HASH = "fedcba9876543210"
# ARCH's memories (program, tensors, params, patterns, weights): a pattern word of 8 lanes x 16
# channels x 5x5 taps is 3200 bits in 4 slices of 100 bytes (64 of them, and the 3 a fetch
# may read past the last, in whole words of 4: 68); a weight word is 8 x 8 bytes
WORD_BYTES = (32, 16, 16, 100, 64)
DEPTHS = (8, 4, 512, 68, 8)
# words of each image of the fake build: params and patterns take two LOADs each
IMAGE_WORDS = {"program": 8, "tensors": 3, "params": 400, "patterns": 50, "weights": 5}
IN_SHAPE = (1, 4, 5)
CLASSES = 3
CYCLES = 12345


def fake_info(**kw) -> Info:
    args = dict(protocol_version=1, device_version=1, arch_hash=HASH, board="fake", clock_hz=100_000_000,
                baud=1_000_000, max_payload=4096, depths=DEPTHS, word_bytes=WORD_BYTES, input_bytes=64,
                logit_bytes=8 * CLASSES)
    args.update(kw)
    return Info(**args)


def model_logits(input_bytes: bytes, memories: dict) -> np.ndarray:
    """The fake device's 'network': depends on every input byte and every loaded word."""
    mem_sum = zlib.crc32(b"".join(bytes(memories[s].get(a, b"")) for s in range(5) for a in sorted(memories[s])))
    x = np.frombuffer(input_bytes, dtype=np.uint8).astype(np.int64)
    w = np.arange(1, len(x) + 1, dtype=np.int64)
    return np.array([int((x * w).sum()) * (k + 1) - (mem_sum >> k) for k in range(CLASSES)], dtype=np.int64)


class FakeDevice(Transport):
    """A device model behind the Transport interface.

    ``faults``: one entry per reply, consumed in order (``None``: no fault); then
    ``fault_fn(frame)`` if given. Faults: ``drop`` (no reply), ``corrupt`` (one reply byte
    flipped), ``stale`` (a reply with the previous SEQ first), ``stale_only``, ``bad_crc``
    (ERROR BAD_CRC instead), ``late`` (the reply after ``late_s``), ``garbage`` (random bytes,
    SYNC included, before the reply), ``truncate`` (the reply's first half only)."""

    def __init__(self, info=None, faults=(), fault_fn=None, late_s=0.3, seed=0):
        self.dev = info or fake_info()
        self.baud, self.description, self.margin_s = self.dev.baud, "fake:0", 0.05
        self.faults, self.fault_fn, self.late_s = deque(faults), fault_fn, late_s
        self.rng = random.Random(seed)
        self.mem = {s: {} for s in range(5)}
        self.csr_target = None          # CSR: a callable ops -> read values (a fake DRAM controller)
        self.input = bytearray(self.dev.input_bytes)
        self.logits = self.cycles = None
        self.parser = FrameParser()
        self.pending = []               # (time available, bytes)
        self.received = []              # (type, seq) of every command frame that arrived
        self.closed = False

    # -- device behaviour ---------------------------------------------------------------------
    def handle(self, f: Frame):
        p = f.payload
        if f.type == Cmd.PING:
            return 0x81, p
        if f.type == Cmd.INFO:
            return 0x82, self.dev.pack()
        if f.type == Cmd.LOAD:
            h = LOAD_HEADER.unpack(p[:LOAD_HEADER_BYTES])
            sel, addr, data = h["mem"], h["addr"], p[LOAD_HEADER_BYTES:]
            wb = self.dev.word_bytes[sel] if sel < 5 else 1
            words = len(data) // wb
            if sel >= 5 or addr + words > self.dev.depths[sel]:
                return ERROR, struct.pack("<BI", Err.BAD_ADDRESS, addr)
            for i in range(words):
                self.mem[sel][addr + i] = data[i * wb:(i + 1) * wb]
            return Cmd.LOAD | REPLY, struct.pack("<H", words)
        if f.type == Cmd.WRITE_INPUT:
            off = struct.unpack_from("<I", p)[0]
            data = p[4:]
            if off + len(data) > len(self.input):
                return ERROR, struct.pack("<BI", Err.BAD_ADDRESS, off)
            self.input[off:off + len(data)] = data
            return Cmd.WRITE_INPUT | REPLY, struct.pack("<H", len(data))
        if f.type == Cmd.RUN:
            n_in = int(np.prod(IN_SHAPE))
            self.logits = model_logits(bytes(self.input[:n_in]), self.mem).astype("<i8").tobytes()
            self.cycles = CYCLES
            return Cmd.RUN | REPLY, RUN_REPLY.pack(0, CYCLES, len(self.logits))
        if f.type in (Cmd.READ_LOGITS, Cmd.READ_CYCLES):
            if self.logits is None:
                return ERROR, struct.pack("<BI", Err.NO_RESULT, 0)
            return f.type | REPLY, self.logits if f.type == Cmd.READ_LOGITS else struct.pack("<Q", self.cycles)
        if f.type == Cmd.RESET:
            self.logits = self.cycles = None
            return Cmd.RESET | REPLY, b""
        if f.type == Cmd.CSR and self.csr_target is not None:
            ops = [CSR_OP.unpack_from(p, i) for i in range(0, len(p), CSR_OP.size)]
            vals = self.csr_target([((op & 0x7FFF) * 4, v if op & CSR_WRITE else None) for op, v in ops])
            return Cmd.CSR | REPLY, struct.pack(f"<{len(vals)}I", *vals)
        return ERROR, struct.pack("<BI", Err.UNKNOWN_TYPE, f.type)

    # -- Transport ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        now = time.monotonic()
        for f in self.parser.feed(data):
            self.received.append((f.type, f.seq))
            fault = self.faults.popleft() if self.faults else (self.fault_fn(f) if self.fault_fn else None)
            if fault in ("drop", "silent"):
                continue
            if fault == "bad_crc":
                self.pending.append((now, encode_frame(ERROR, f.seq, struct.pack("<BI", Err.BAD_CRC, 0))))
                continue
            rtype, payload = self.handle(f)
            raw = encode_frame(rtype, f.seq, payload)
            if fault == "corrupt":
                b = bytearray(raw)
                b[self.rng.randrange(1, len(b))] ^= 1 << self.rng.randrange(8)
                raw = bytes(b)
            elif fault in ("stale", "stale_only"):
                old = encode_frame(rtype, (f.seq - 1) & 0xFF, payload)
                raw = old + (b"" if fault == "stale_only" else raw)
            elif fault == "garbage":
                raw = bytes(self.rng.choice((0xA5, self.rng.randrange(256))) for _ in range(40)) + raw
            elif fault == "truncate":
                raw = raw[:len(raw) // 2]
            self.pending.append((now + (self.late_s if fault == "late" else 0.0), raw))

    def read(self, n: int, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            ready = [p for p in self.pending if p[0] <= now]
            if ready or now >= end:
                break
            time.sleep(min(0.002, max(0.0, end - now)))
        out = bytearray()
        keep = []
        for t, raw in self.pending:
            if t <= now and len(out) < n:
                take = raw[:n - len(out)]
                out += take
                if len(take) < len(raw):
                    keep.append((t, raw[len(take):]))
            else:
                keep.append((t, raw))
        self.pending = keep
        return bytes(out)

    def discard_input(self) -> bytes:
        now = time.monotonic()
        out = b"".join(r for t, r in self.pending if t <= now)
        self.pending = [(t, r) for t, r in self.pending if t > now]
        return out

    def close(self):
        self.closed = True


def write_build(d, arch=ARCH, image_words=None, seed=0):
    """A build directory shaped like `sephw compile`'s for ``arch``: random memory images of
    ``image_words`` words and a version-2 manifest (sephw.arch.Manifest, which checks it)."""
    rng = np.random.default_rng(seed)
    image_words = image_words or IMAGE_WORDS
    recorded = {}
    for r in MemoryMap(arch):
        blob = rng.integers(0, 256, image_words[r.name] * r.word_bytes, dtype=np.uint8).tobytes()
        (d / r.image).write_bytes(blob)
        recorded[r.name] = {"file": r.image, "word_bytes": r.word_bytes, "words": image_words[r.name],
                            "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    program = recorded.pop("program")
    Manifest({"format": "sephw-build", "version": 2, "board": "fake", "part": "fake-part",
              "clock_hz": arch.clock_hz, "arch": arch.to_dict(), "arch_hash": arch.hash(), "isa": describe(),
              "program": {"file": "program.bin", "instructions": program["words"], "sha256": program["sha256"]},
              "memories": recorded,
              "tensors": [{"id": 0, "name": "input", "shape": list(IN_SHAPE), "layout": "HWC", "dtype": "uint8",
                           "base": 0, "ring_rows": IN_SHAPE[1], "bytes": int(np.prod(IN_SHAPE))}],
              "input": {"tensor": 0, "shape": list(IN_SHAPE), "dtype": "uint8", "layout": "HWC"},
              "output": {"dtype": "int64", "shape": [CLASSES]}, "cycles_per_inference": CYCLES,
              "dataset": "fashion-mnist"}, d).write()
    return d


@pytest.fixture(scope="module")
def fake_build(tmp_path_factory):
    """A build directory of ARCH with random images."""
    d = write_build(tmp_path_factory.mktemp("fake_build"))
    man = Manifest.read(d)
    assert man.arch_hash == HASH
    assert tuple(r.word_bytes for r in man.memory_map) == WORD_BYTES
    assert tuple(r.depth for r in man.memory_map) == DEPTHS
    return d


def images(n=3, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, *IN_SHAPE), dtype=np.uint8)


def expected(build_dir, imgs):
    mem = {s: {} for s in range(5)}
    for region, blob in memory_images(build_dir):
        wb = region.word_bytes
        for a in range(len(blob) // wb):
            mem[region.select][a] = blob[a * wb:(a + 1) * wb]
    return np.stack([model_logits(img.transpose(1, 2, 0).tobytes(), mem) for img in imgs])


def test_clean_link_load_infer(fake_build):
    fake = FakeDevice()
    with Device(fake, progress=False) as dev:
        assert dev.ping(b"abc") == b"abc"
        assert dev.info() == fake_info()
        r = dev.load(fake_build)
        # params: 400 words of 16 bytes = 2 LOADs of <= 4096 bytes; patterns 50 x 100 = 2
        assert r["frames"] == 1 + 1 + 2 + 2 + 1
        assert r["bytes"] == sum(n * wb for n, wb in zip(IMAGE_WORDS.values(), WORD_BYTES))
        for region, blob in memory_images(fake_build):
            wb = region.word_bytes
            assert b"".join(fake.mem[region.select][a] for a in range(len(blob) // wb)) == blob
        x = images()
        got = dev.infer(x)
        assert got.dtype == np.int64 and got.shape == (3, CLASSES)
        np.testing.assert_array_equal(got, expected(fake_build, x))
        assert dev.cycles() == CYCLES
        s = dev.last_stats[0]
        assert s["compute_cycles"] == CYCLES and s["compute_s"] == CYCLES / 1e8
        # WRITE_INPUT(4+20)+ACK(2), RUN(0)+DONE(11), READ_LOGITS(0)+reply(24); 10 bytes of framing each
        assert s["link_bytes"] == 6 * 10 + 24 + 2 + 11 + 24
        assert dev.retries == 0
        dev.reset()
        with pytest.raises(LinkError, match="READ_CYCLES on fake:0: device replied ERROR NO_RESULT"):
            dev.cycles()
    assert fake.closed


@pytest.mark.parametrize("fault", ["drop", "corrupt", "stale", "stale_only", "bad_crc", "late", "garbage",
                                   "truncate"])
def test_one_fault_per_command_recovers(fake_build, fault):
    # every command's first reply is faulty: each is resent once and the results are exact
    fake = FakeDevice(fault_fn=lambda f, seen=set(): None if (f.seq in seen or seen.add(f.seq)) else fault)
    dev = Device(fake, progress=False)
    dev.load(fake_build)
    x = images(2)
    t0 = time.monotonic()
    np.testing.assert_array_equal(dev.infer(x), expected(fake_build, x))
    assert time.monotonic() - t0 < 10
    assert dev.ping(b"ok") == b"ok"
    # stale replies are discarded and the right one after them taken, without a resend;
    # garbage before the right reply costs a resend only where it forms a header that passes
    # CRC-8 and swallows the reply; every other fault costs exactly one resend per command
    if fault == "stale":
        assert dev.retries == 0
    elif fault == "garbage":
        assert dev.retries < len({s for _, s in fake.received}) / 2
    else:
        assert dev.retries == len({s for _, s in fake.received})
    # a resend repeats the command's SEQ
    seqs = [s for _, s in fake.received]
    assert all(seqs.count(s) <= 2 for s in set(seqs))


def test_late_reply_never_answers_the_next_command(fake_build):
    # INFO's reply comes after its deadline: the resend's reply is taken, and the late copy
    # (same SEQ, arriving during PING) is discarded as stale, not taken as PING's echo
    fake = FakeDevice(faults=["late"], late_s=0.12)
    dev = Device(fake, progress=False)
    assert dev.info().arch_hash == HASH
    time.sleep(0.0)
    assert dev.ping(b"x" * 62) == b"x" * 62
    assert dev.ping(b"y") == b"y"


@pytest.mark.parametrize("fault, what", [("silent", "timed out"), ("corrupt", "CRC failure"),
                                         ("stale_only", "stale SEQ"), ("bad_crc", "ERROR BAD_CRC"),
                                         ("truncate", "incomplete frame")])
def test_persistent_fault_raises_within_deadline(fault, what):
    fake = FakeDevice(fault_fn=lambda f: fault)
    dev = Device(fake, progress=False)
    per_try = dev.deadline(10 + 5, 10 + 5)
    t0 = time.monotonic()
    with pytest.raises(LinkError) as e:
        dev.ping(b"hello")
    took = time.monotonic() - t0
    msg = str(e.value)
    assert msg.startswith("PING on fake:0: no valid reply after 3 tries")
    assert what in msg
    assert len(fake.received) == 3                      # sent 3 times, then gave up
    assert took < 3 * per_try + 0.5


def test_error_reply_raises_at_once():
    fake = FakeDevice(info=fake_info(depths=(1, 1, 1, 1, 1)))
    dev = Device(fake, progress=False)
    with pytest.raises(LinkError, match="LOAD on fake:0: device replied ERROR BAD_ADDRESS"):
        dev.transact(Cmd.LOAD, struct.pack("<BBI", 2, 0, 5) + bytes(16), reply_len=2)
    with pytest.raises(LinkError, match="ERROR UNKNOWN_TYPE"):
        dev.transact(0x33, b"")
    assert len(fake.received) == 2                     # no resends


def test_wrong_reply_length_not_accepted():
    # a reply that passes both CRCs but has the wrong length for its command is not taken
    fake = FakeDevice()
    orig = fake.handle
    fake.handle = lambda f: (0x81, f.payload + b"!") if f.type == Cmd.PING else orig(f)
    with pytest.raises(LinkError, match="PING-reply with a 3-byte payload"):
        Device(fake, progress=False).ping(b"ab")


def test_load_resumes_after_a_link_error(fake_build):
    """A LOAD chunk that fails all its sends: LinkError saying how far the load got; loading
    the same build again on the same connection resumes at that chunk (the chunks before it
    are not resent), and the device ends up with every word."""
    drop, chunks = {"on": True}, []

    def fault(f):
        if f.type == Cmd.LOAD:
            if f.payload[:LOAD_HEADER_BYTES] not in chunks:
                chunks.append(f.payload[:LOAD_HEADER_BYTES])
            if drop["on"] and chunks.index(f.payload[:LOAD_HEADER_BYTES]) == 2:
                return "drop"
        return None
    fake = FakeDevice(fault_fn=fault)
    dev = Device(fake, progress=False)
    # program 1 chunk, tensors 1, params 2, patterns 2, weights 1: the third is params word 0
    with pytest.raises(LinkError, match=r"2 of 7 chunks, 304 of .* bytes acknowledged; loading it again on "
                                        r"this connection resumes at the params memory's word 0"):
        dev.load(fake_build)
    assert [t for t, _ in fake.received].count(Cmd.LOAD) == 2 + dev.tries
    drop["on"] = False
    sent = len(fake.received)
    r = dev.load(fake_build)
    assert r["resumed_at"] == 2 and r["frames"] == 5
    assert [t for t, _ in fake.received[sent:]] == [Cmd.LOAD] * 5
    x = images()
    np.testing.assert_array_equal(dev.infer(x), expected(fake_build, x))
    # a completed load leaves nothing to resume: the next one sends every chunk
    assert dev.load(fake_build)["resumed_at"] == 0


def test_hash_mismatch_refused(fake_build):
    fake = FakeDevice(info=fake_info(arch_hash=OTHER_HASH))
    dev = Device(fake, progress=False)
    with pytest.raises(LinkError, match=f"compiled for arch {HASH} \\(fake\\), but the device on "
                                        f"fake:0 \\(fake\\) was generated for arch {OTHER_HASH}: program the device"):
        dev.load(fake_build)
    with pytest.raises(LinkError, match=OTHER_HASH):
        dev.attach(fake_build)
    assert not any(fake.mem.values())                 # nothing was loaded
    assert [t for t, _ in fake.received] == [Cmd.INFO]


def test_another_arch_of_the_same_sizes_refused(tmp_path):
    # the hash covers every size of the ArchConfig, not just the memories a load touches: a
    # build for another clock (same images, same memories) is refused by a device of ARCH
    from dataclasses import replace
    other = replace(ARCH, clock_hz=50_000_000)
    assert other.hash() != HASH
    d = write_build(tmp_path, arch=other)
    fake = FakeDevice()
    with pytest.raises(LinkError, match=f"compiled for arch {other.hash()}"):
        Device(fake, progress=False).load(d)
    assert not any(fake.mem.values())


def test_depthwise_pattern_memory_in_the_contract():
    """The depthwise pattern memory's words follow the main pattern memory's in the patterns
    region (its depth grows by them, the hash changes with them); depthwise words on an
    overlay without the depthwise mode are a ConfigError."""
    from dataclasses import replace
    from sephw.arch import ConfigError
    dw = replace(ARCH, engine=replace(ARCH.engine, depthwise=True), dw_words=10)
    assert dw.dw_base == ARCH.depths["patterns"] == 68
    assert dw.depths["patterns"] == 68 + 10 and dw.hash() != HASH
    assert MemoryMap(dw)["patterns"].depth == 78
    with pytest.raises(ConfigError, match="dw_words without the engine's depthwise mode"):
        replace(ARCH, dw_words=10)


def test_bad_images_refused_before_loading(fake_build, tmp_path):
    # an image with more words than its memory holds, and an image edited after compiling:
    # the manifest's checks refuse both before a single LOAD is sent
    (tmp_path / "big").mkdir()
    big = write_build(tmp_path / "big", image_words=dict(IMAGE_WORDS, params=DEPTHS[2] + 1))
    fake = FakeDevice()
    with pytest.raises(ManifestError, match="params.bin: 513 params words, the memory holds 512"):
        Device(fake, progress=False).load(big)
    edited = tmp_path / "edited"
    shutil.copytree(fake_build, edited)
    blob = bytearray((edited / "weights.bin").read_bytes())
    blob[7] ^= 1
    (edited / "weights.bin").write_bytes(bytes(blob))
    with pytest.raises(ManifestError, match="weights.bin: contents do not match the manifest's SHA-256"):
        Device(fake, progress=False).load(edited)
    assert not any(fake.mem.values())
    assert all(t == Cmd.INFO for t, _ in fake.received)


@pytest.mark.parametrize("seed", range(12))
def test_random_faults_never_a_wrong_result(fake_build, seed):
    # a third of all replies faulty: every command either succeeds with the exact result or
    # raises LinkError; never a hang, never a wrong logit
    rng = random.Random(seed)
    faults = ["drop", "corrupt", "stale", "stale_only", "bad_crc", "late", "garbage", "truncate"]
    fake = FakeDevice(fault_fn=lambda f: rng.choice(faults) if rng.random() < 0.33 else None, late_s=0.08,
                      seed=seed)
    dev = Device(fake, progress=False)
    x = images(2, seed)
    t0 = time.monotonic()
    try:
        dev.load(fake_build)
        got = dev.infer(x)
    except LinkError as e:
        assert "no valid reply after 3 tries" in str(e)
    else:
        np.testing.assert_array_equal(got, expected(fake_build, x))
    assert time.monotonic() - t0 < 30


def test_infer_argument_checks(fake_build):
    dev = Device(FakeDevice(), progress=False)
    dev.load(fake_build)
    with pytest.raises(ValueError, match="shape"):
        dev.infer(np.zeros((1, 2, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 codes"):
        dev.infer(np.full((1, *IN_SHAPE), 300))
    with pytest.raises(ValueError, match="at most 64"):
        dev.ping(bytes(65))


def test_port_failure_is_a_link_error():
    class Unplugged(FakeDevice):
        def write(self, data):
            raise OSError(5, "Input/output error")
    with pytest.raises(LinkError, match="INFO on fake:0: the port failed: .*Input/output error"):
        Device(Unplugged(), progress=False).info()


def test_open_bad_port():
    with pytest.raises(OSError, match="cannot open serial port '/dev/does-not-exist'"):
        Device.open("/dev/does-not-exist")


def test_device_open_refuses_sim_ports(fake_build):
    # host/ drives serial ports only; the simulated board is opened by the flows
    with pytest.raises(ValueError, match=f"'sim:{fake_build}' is the simulated board.*"
                                         f"`sephw run BUILD --port sim:{fake_build}`.*sephw.flows.run.open_device"):
        Device.open(f"sim:{fake_build}")


def test_open_device_picks_the_transport(fake_build, monkeypatch):
    from sephw.flows.run import open_device
    boards = []

    def sim_board(build_dir, log=print):
        boards.append(build_dir)
        return FakeDevice()
    monkeypatch.setattr("sim.simboard.SimBoard", sim_board)
    with open_device(f"sim:{fake_build}", timeout=1.5, tries=5, progress=False) as dev:
        assert boards == [str(fake_build)]
        assert isinstance(dev.transport, FakeDevice) and dev.transport.margin_s == 1.5 and dev.tries == 5
        dev.load(fake_build)
    assert dev.transport.closed
    serial = []
    monkeypatch.setattr("host.device.open_transport",
                        lambda port, baud=None: serial.append((port, baud)) or FakeDevice())
    open_device("/dev/ttyUSB7", baud=12_000_000)
    assert serial == [("/dev/ttyUSB7", 12_000_000)] and boards == [str(fake_build)]


# -- (b) the simulated board ---------------------------------------------------------------------

@pytest.mark.slow
def test_sim_board_end_to_end(sepnet_build):
    import torch

    from sephw import reference
    from sephw.flows.run import open_device
    g, d, _ = sepnet_build
    man = Manifest.read(d)
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    x[0] = 0
    exp = reference.run(g, x).numpy()
    with open_device(f"sim:{d}", progress=False) as dev:
        info = dev.info()
        assert info.arch_hash == man.arch_hash
        assert info.clock_hz == man.clock_hz and info.baud == man.clock_hz // CLOCKS_PER_BIT
        assert dev.ping(b"board?") == b"board?"
        with pytest.raises(LinkError, match="NO_RESULT"):
            dev.cycles()
        dev.load(d)
        got = dev.infer(x.numpy())
        np.testing.assert_array_equal(got, exp)        # every logit, bit-exact
        cyc = dev.cycles()
        assert cyc > 0 and cyc == dev.last_stats[-1]["compute_cycles"]
        # fuzz: garbage, corrupted frames, a truncated frame; then the link must recover
        rng = random.Random(3)
        t = dev.transport
        t.write(bytes(rng.randrange(256) for _ in range(200)) + bytes([0xA5] * 20))
        good = bytearray(encode_frame(Cmd.PING, 77, b"zz"))
        good[-1] ^= 0x10                                   # bad CRC-32: device answers BAD_CRC
        t.write(bytes(good))
        bad_head = bytearray(encode_frame(Cmd.LOAD, 78, bytes(40)))
        bad_head[3] ^= 0xFF                                # bad header: silently dropped
        t.write(bytes(bad_head))
        t.write(encode_frame(Cmd.WRITE_INPUT, 79, bytes(30))[:12])   # truncated
        assert dev.ping(b"still there") == b"still there"
        # memories unharmed: the same image gives the same logits
        np.testing.assert_array_equal(dev.infer(x[1:].numpy()), exp[1:])
        print(f"sim board: {dev.last_stats[-1]}, retries {dev.retries}, "
              f"{t.status().get('rate', 0):.0f} simulated cycles/s")
    # close() stopped the simulator and removed its files
    assert t._proc.poll() is not None and not t._run_dir.exists()


@pytest.mark.slow
def test_sim_board_with_dram(sepnet_build, tmp_path):
    """A build whose pattern and int8 weight words all live in the board's DRAM, with a tensor
    spilled there at every segment cut and its Program in DRAM pages (``placement="spill"``),
    on the simulated board, whose System has the DRAM port (here a behavioural memory at the
    board's read latency, empty at start): INFO reports the DRAM; ``Device.load`` writes
    external.bin (the Program's pages first) into it by LOADs into memory 5 through the host
    link and the DRAM port's arbiter, and nothing into the program memory; the run boots the
    first pages, its DMA_LOADs, SPILLs and LOADs go through the DRAM: every logit bit-exact,
    the device's cycle count as predicted. A LOAD past the DRAM's end is refused
    (BAD_ADDRESS)."""
    import torch

    from sephw import reference
    from sephw.compiler import compile_graph
    from sephw.flows.run import open_device
    from conftest import SMALL_ENGINE
    g, _, _ = sepnet_build
    d = tmp_path / "dram_build"
    ir, rep = compile_graph(g, "arty-a7-35", d, engine=SMALL_ENGINE, placement="spill")
    assert ir.spills and ir.program_page
    man = Manifest.read(d)
    ext_bytes = rep["external"]["bytes"]
    assert ext_bytes == (d / "external.bin").stat().st_size > 8192     # several LOAD chunks
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    exp = reference.run(g, x).numpy()
    with open_device(f"sim:{d}", progress=False) as dev:
        info = dev.info()
        assert info.arch_hash == man.arch_hash
        assert (info.ext_words, info.ext_word_bytes) == (man.arch.ext_words, 16) == (1 << 24, 16)
        with pytest.raises(LinkError, match="BAD_ADDRESS"):
            dev.transact(Cmd.LOAD, LOAD_HEADER.pack(mem=6, addr=0) + bytes(16), reply_len=2)
        # the DRAM is unusable until the host initializes it (the model: init_done by CSR):
        # anything that would touch it is refused, nothing hangs
        assert info.dram_phy == DramPhy.MODEL
        assert dev.csr([(0, None), (0x1000, None)]) == [0, 0]
        for cmd, body in ((Cmd.LOAD, LOAD_HEADER.pack(mem=5, addr=0) + bytes(16)), (Cmd.RUN, b""),
                          (Cmd.WRITE_INPUT, bytes(5))):
            with pytest.raises(LinkError, match="NOT_READY.*not initialized"):
                dev.transact(cmd, body, reply_len=(0, 64))
        for bad in (b"", bytes(5), bytes(6 * 65)):     # not 1..64 whole 6-byte operations
            with pytest.raises(LinkError, match="BAD_LENGTH"):
                dev.transact(Cmd.CSR, bad, reply_len=(0, 256))
        # 64 operations in one frame, reads and writes interleaved, values in order
        ops = [(0, 1 if i % 3 == 1 else None) if i % 3 != 2 else (0, None) for i in range(64)]
        vals = dev.csr(ops)
        assert len(vals) == sum(v is None for _, v in ops) and vals[0] == 0 and set(vals[1:]) == {1}
        dev.csr([(0, 0)])
        with pytest.raises(LinkError, match="BAD_ADDRESS.*detail 16384"):   # never acknowledged
            dev.csr([(0, None), (0x10000, None)])
        ld = dev.load(d)                # initializes the DRAM first
        assert dev.csr([(0, None)]) == [1]
        with pytest.raises(LinkError, match="BAD_ADDRESS"):
            dev.transact(Cmd.LOAD, LOAD_HEADER.pack(mem=5, addr=info.ext_words - 1) + bytes(32), reply_len=2)
        on_chip = sum(len(b) for r, b in man.images(external=False))
        assert "program" not in {r.name for r, _ in man.images(external=False)}
        assert ld["bytes"] == on_chip + ext_bytes
        assert ld["frames"] >= -(-ext_bytes // 4080) + len(man.images(external=False))
        got = dev.infer(x.numpy())
        np.testing.assert_array_equal(got, exp)        # every logit, bit-exact
        cyc = dev.last_stats[-1]["compute_cycles"]
        print(f"sim board with DRAM: {ext_bytes:,} bytes loaded into DRAM in {ld['frames']} frames; "
              f"{cyc} cycles, predicted {man.cycles_per_inference}")
        assert abs(cyc - man.cycles_per_inference) <= 0.02 * man.cycles_per_inference


@pytest.mark.slow
def test_sephw_run_on_sim_board(sepnet_build, monkeypatch, capsys):
    """`sephw run BUILD --port sim:BUILD`: loads, streams the images, reports bit-exactness,
    accuracy and the latency split; exit code 0 when every logit equals the reference."""
    import torch

    from sephw import data, reference
    from sephw.cli import build_parser
    g, d, _ = sepnet_build
    x = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))
    labels = reference.run(g, x).argmax(1).clone()
    labels[1] = (labels[1] + 1) % 10                 # one wrong label: accuracy 1/2 if the logits are right
    monkeypatch.setattr(data, "load", lambda ds, split, root=None: (x, labels))
    a = build_parser().parse_args(["run", str(d), "--port", f"sim:{d}", "--images", "2", "--json"])
    assert a.func(a) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact_images"] == 2 and r["mismatched_images"] == []
    assert r["accuracy"] == pytest.approx(0.5)
    assert len(r["compute_cycles"]) == 2 and min(r["compute_cycles"]) > 0
    # the device's count is the cycle model's (tests/test_rtl_top.py: within 10 %)
    assert 0.9 <= r["compute_cycles"][0] / r["predicted_cycles"] <= 1.1
    assert r["link_bytes_per_image"] == (10 + 4 + 64) + (10 + 2) + 10 + (10 + 11) + 10 + (10 + 80)


def test_sephw_run_refuses_other_build(fake_build, monkeypatch, capsys):
    """A device generated for another ArchConfig: `sephw run` loads nothing and exits 2 with
    the reason."""
    import torch

    import sephw.flows.run as run_mod
    from sephw import data
    from sephw.cli import build_parser
    fake = FakeDevice(info=fake_info(arch_hash=OTHER_HASH))
    monkeypatch.setattr("host.device.open_transport", lambda port, baud=None: fake)
    monkeypatch.setattr(data, "load", lambda ds, split, root=None: (torch.zeros((1, *IN_SHAPE), dtype=torch.uint8),
                                                                    torch.zeros(1, dtype=torch.int64)))
    monkeypatch.setattr("sephw.flows.simulate.load_build_graph", lambda d: None)
    monkeypatch.setattr("sephw.reference.run", lambda g, x: torch.zeros(1, CLASSES, dtype=torch.int64))
    a = build_parser().parse_args(["run", str(fake_build), "--port", "/dev/ttyFAKE", "--images", "1"])
    assert a.func(a) == 2
    err = capsys.readouterr().err
    assert f"compiled for arch {HASH}" in err and OTHER_HASH in err
    assert not any(fake.mem.values())
    assert run_mod.cmd_run is a.func


def test_init_dram_over_csr_frames(tmp_path):
    """Device.init_dram on a device with the Arty's DDR3 (a fake controller: the DFII and
    A7DDRPHY CSRs of tests/test_dram_calibration.py behind the CSR command): the recipe from
    BUILD/dram.json, read leveling through CSR frames of at most 64 operations, the controller
    left in hardware control with init_done set, and nothing done the second time. A CSR reply
    lost on the link is never resent when it writes (the writes are not idempotent): the
    initialization starts again from the beginning; a frame of reads only is resent. A missing
    or foreign recipe is a one-line LinkError."""
    from test_dram_calibration import ARTY, FakeDram, taps
    info = fake_info(ext_words=1 << 24, ext_word_bytes=16, dram_phy=DramPhy.A7DDRPHY, board="arty-a7-35")
    dev_t = FakeDevice(info)
    dev = Device(dev_t, progress=False)
    with pytest.raises(LinkError, match="dram.json is missing.*board build"):
        dev.init_dram(tmp_path)
    (tmp_path / "dram.json").write_text(json.dumps({**ARTY, "phy": "GENSDRPHY"}))
    with pytest.raises(LinkError, match="initializes a GENSDRPHY controller, the device .* has A7DDRPHY"):
        dev.init_dram(tmp_path)
    (tmp_path / "dram.json").write_text(json.dumps({k: v for k, v in ARTY.items() if k != "bitslips"}))
    with pytest.raises(LinkError, match="dram.json: the DRAM initialization recipe lacks bitslips"):
        dev.init_dram(tmp_path)
    (tmp_path / "dram.json").write_text("[1, 2]")
    with pytest.raises(LinkError, match="initializes a None controller"):
        dev.init_dram(tmp_path)
    (tmp_path / "dram.json").write_text(json.dumps(ARTY))
    dram = dev_t.csr_target = FakeDram(ARTY, {0: taps(1, 4, 19), 1: taps(6, 8, 27)})
    n_csr = lambda: sum(t == Cmd.CSR for t, _ in dev_t.received)      # noqa: E731
    dev_t.fault_fn = lambda f: "drop" if f.type == Cmd.CSR and n_csr() == 40 else None
    lines = []
    rep = dev.init_dram(tmp_path, log=lines.append)
    assert [(m["bitslip"], m["delay"]) for m in rep["modules"]] == [(1, 11), (6, 17)]
    assert dram.delay == [11, 17] and dram.bitslip == [1, 6] and dram.violations == []
    assert dram.regs["ddrctrl_init_done"] == 1 and dev.retries == 1     # one restart, no resend
    assert sum("starting it again" in ln for ln in lines) == 1
    frames = n_csr()
    assert frames >= -(-rep["csr_ops"] // 64)      # frames of at most 64 operations
    assert dev.init_dram(tmp_path) is None and n_csr() == frames + 1      # one read: already done
    # a frame of reads only is idempotent: resent like any other command
    dev_t.fault_fn = lambda f: "drop" if f.type == Cmd.CSR and n_csr() == frames + 2 else None
    assert dev.init_dram(tmp_path) is None and n_csr() == frames + 3 and dev.retries == 2
