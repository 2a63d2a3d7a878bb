"""Frames of the host link (host/protocol.py, docs/protocol.md) under fuzzing: the parser only
ever yields frames that were encoded (or, from random bytes, frames that pass both CRCs), finds
every valid frame among garbage in order, never turns a corrupted or truncated frame into a
different frame, and rejects oversized lengths at the header. Also: host.protocol re-exports
the link's contract from sephw.arch.link (one definition), and its records' byte layouts are
docs/protocol.md's."""
import struct
import zlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from host.protocol import (HEADER_BYTES, INFO_FORMAT, LOAD_HEADER, LOAD_HEADER_BYTES, MAX_PAYLOAD, SYNC, Frame,
                           FrameParser, Info, crc8, crc32, encode_frame)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

frames = st.builds(Frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300))


def feed_in_pieces(parser: FrameParser, data: bytes, cuts: list[int]) -> list[Frame]:
    out, pos = [], 0
    for c in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        out += parser.feed(data[pos:c])
        pos = c
    return out


def checks_pass(f: Frame) -> bool:
    """The frame re-encodes to bytes whose header and frame CRCs are right (by construction),
    and its length is legal: what any yielded frame must satisfy."""
    raw = f.encode()
    return crc8(raw[1:5]) == raw[5] and zlib.crc32(raw[1:-4]) == struct.unpack("<I", raw[-4:])[0]


def test_reference_values():
    # CRC-8/SMBUS (poly 0x07) and CRC-32/ISO-HDLC check values of "123456789"
    assert crc8(b"123456789") == 0xF4
    assert crc32(b"123456789") == 0xCBF43926
    raw = encode_frame(0x01, 7, b"hi")
    assert raw[0] == SYNC and raw[1:5] == bytes([1, 7, 2, 0]) and len(raw) == HEADER_BYTES + 2 + 4


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 4000), max_size=8))
def test_byte_soup_yields_only_checked_frames(soup, cuts):
    # random bytes: whatever comes out must have passed both CRCs (a 2^-40 event per SYNC
    # for a random header; hypothesis also tries adversarial soups built from the CRCs)
    for f in feed_in_pieces(FrameParser(), soup, cuts):
        assert checks_pass(f) and len(f.payload) <= MAX_PAYLOAD
        # ... and it occurs encoded in the soup
        assert f.encode() in soup


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=40), frames), max_size=6), st.binary(max_size=40),
       st.lists(st.integers(0, 4000), max_size=8))
def test_frames_among_garbage_found_in_order(parts, tail, cuts):
    # garbage without SYNC cannot start a bogus frame that swallows a real one
    clean = lambda b: b.replace(bytes([SYNC]), b"\x00")
    data = b"".join(clean(g) + f.encode() for g, f in parts) + clean(tail)
    p = FrameParser()
    got = feed_in_pieces(p, data, cuts)
    assert got == [f for _, f in parts]


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=40), frames), min_size=1, max_size=5), st.randoms())
def test_frames_among_arbitrary_garbage(parts, rnd):
    # arbitrary garbage (SYNC bytes included) between frames: every frame that comes out is
    # one that was sent, in order; a frame is only lost if garbage right before it forms a
    # valid-looking header (HCRC passes) whose length swallows it
    data = b"".join(g + f.encode() for g, f in parts)
    sent = [f for _, f in parts]
    rest = iter(sent)
    for f in FrameParser().feed(data):
        if f in sent:
            assert f in rest, "sent frames out of order"      # consumes `rest`: a subsequence
        else:      # formed by garbage (and possibly the start of a real frame): passed both CRCs
            assert checks_pass(f) and f.encode() in data
    # the last frame is found unless garbage before it opened a header that swallows it
    p = FrameParser()
    got = p.feed(data)
    assert sent[-1] in got or p.pending() > 0 or p.bad_frames > 0


@FUZZ
@given(frames, st.integers(0, 10_000), st.integers(1, 255), frames)
def test_single_corrupted_byte_never_yields_a_wrong_frame(f, pos, flip, nxt):
    raw = bytearray(f.encode())
    i = pos % len(raw)
    raw[i] ^= flip
    assume(f != nxt)
    # the corrupted frame, then a good one: a single byte error is always caught (CRC-8
    # covers the header, CRC-32 the frame), so only the good one may come out
    p = FrameParser()
    got = p.feed(bytes(raw) + nxt.encode())
    assert all(g == nxt for g in got)
    assert len(got) <= 1
    # the good one is found unless bytes of the corrupted frame opened a header that swallows it
    assert got == [nxt] or p.pending() > 0


def test_every_single_corruption_then_resync():
    # deterministic: every byte of a frame corrupted in turn (no SYNC inside the frame's
    # bytes after the first), the next frame is always found
    f = Frame(0x90, 5, b"hello, accelerator")
    raw = f.encode()
    assert SYNC not in raw[1:]
    nxt = encode_frame(0x81, 6, b"next")
    for i in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(raw)
            bad[i] ^= flip
            if SYNC in bad[1:]:
                continue
            assert FrameParser().feed(bytes(bad) + nxt) == [Frame(0x81, 6, b"next")], (i, flip)


@FUZZ
@given(frames, st.integers(0, 10_000))
def test_truncated_frame_yields_nothing(f, cut):
    raw = f.encode()
    cut = cut % len(raw)
    p = FrameParser()
    assert p.feed(raw[:cut]) == []
    # the rest arriving later completes it (an incomplete frame is held, not dropped)
    assert p.feed(raw[cut:]) == [f]


@FUZZ
@given(frames)
def test_truncated_frame_then_next_frame(f):
    # a frame cut short by its last byte, then two good frames: nothing but the true frames
    # ever comes out (f itself only if the next byte happens to be its missing one)
    raw = f.encode()
    nxt = Frame(0x81, 3, b"pong")
    p = FrameParser()
    got = p.feed(raw[:-1] + nxt.encode() + nxt.encode())
    assert all(g in (f, nxt) for g in got)
    assert nxt in got or p.pending() > 0


@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, 0xFFFF])
def test_oversized_len_rejected_at_header(length):
    head = bytes([0x10, 1]) + struct.pack("<H", length)
    bogus = bytes([SYNC]) + head + bytes([crc8(head)])
    good = encode_frame(0x01, 2, b"x")
    p = FrameParser()
    # the header is dropped at once (no waiting for a 64 KiB payload): the good frame right
    # after it comes out
    assert p.feed(bogus + good) == [Frame(0x01, 2, b"x")]
    assert p.bad_frames == 1


def test_needed_counts_down_to_frame_end():
    raw = encode_frame(0x40, 9, bytes(80))
    p = FrameParser()
    assert p.needed() == HEADER_BYTES
    p.feed(raw[:3])
    assert p.needed() == HEADER_BYTES - 3
    p.feed(raw[3:10])
    assert p.needed() == len(raw) - 10
    assert p.feed(raw[10:]) == [Frame(0x40, 9, bytes(80))]
    assert p.needed() == HEADER_BYTES


infos = st.builds(
    Info, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=8, max_size=8).map(bytes.hex),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=16),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF),
    st.tuples(*[st.integers(0, 0xFFFF)] * 5), st.tuples(*[st.integers(0, 0xFFFF)] * 5),
    st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF),
    st.integers(0, 255))


@FUZZ
@given(infos)
def test_info_round_trip(info):
    raw = info.pack()
    assert len(raw) == INFO_FORMAT.size == 72
    assert Info.unpack(raw) == info


def test_info_errors():
    from host.protocol import LinkError
    with pytest.raises(LinkError, match="expected 72"):
        Info.unpack(bytes(62))          # a version-1 record
    with pytest.raises(LinkError, match="expected 72"):
        Info.unpack(bytes(68))          # a version-2 record
    with pytest.raises(ValueError, match="longer than 16"):
        Info(1, 1, "00" * 8, "x" * 17, 1, 1, 1, (0,) * 5, (0,) * 5, 0, 0).pack()


def test_info_layout():
    # docs/protocol.md: the arch hash is bytes 4..11, its 16 hex digits as 8 bytes big-endian
    info = Info(1, 7, "0123456789abcdef", "arty-a7-35", 100_000_000, 3_000_000, 4096, (1, 2, 3, 4, 5),
                (32, 16, 16, 5, 16), 784, 80)
    raw = info.pack()
    assert raw[:4] == bytes([1, 0, 7, 0])
    assert raw[4:12] == bytes([0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF])
    assert raw[12:28] == b"arty-a7-35".ljust(16, b"\0")
    assert Info.unpack(raw).arch_hash == "0123456789abcdef"
    # the external memory's words u32 and word bytes u16, the DRAM PHY u8 and a reserved byte
    # close the record
    raw = replace(info, ext_words=1 << 24, ext_word_bytes=16, dram_phy=3).pack()
    assert raw[-8:] == bytes([0, 0, 0, 1, 16, 0, 3, 0])


def test_load_header_layout():
    # docs/protocol.md: a LOAD payload starts with mem u8, 0 u8, addr u32 little-endian
    assert LOAD_HEADER_BYTES == 6
    assert LOAD_HEADER.pack(mem=3, addr=0x12345678) == bytes([3, 0, 0x78, 0x56, 0x34, 0x12])
    assert LOAD_HEADER.unpack(bytes([4, 0, 1, 0, 0, 0]))["addr"] == 1


def test_contract_is_sephw_arch_link():
    # host.protocol re-exports the contract (the same objects, not copies), and every name it
    # exported before the contract moved to sephw.arch still imports from it
    import host.protocol as hp
    from sephw.arch import link
    for name in link.__all__:
        assert getattr(hp, name) is getattr(link, name), name
    for name in ("SYNC", "MAX_PAYLOAD", "HEADER_BYTES", "CRC_BYTES", "PROTOCOL_VERSION", "Cmd", "Err", "ERROR",
                 "REPLY", "Frame", "FrameParser", "LinkError", "crc8", "crc32", "encode_frame", "Info",
                 "INFO_FORMAT", "ERROR_NAMES", "PING_MAX", "LOAD_HEADER", "WRITE_INPUT_HEADER", "RUN_REPLY",
                 "ERROR_REPLY"):
        assert name in hp.__all__ and hasattr(hp, name), name
    # the frame header record and the framing agree
    raw = encode_frame(0x30, 200, bytes(300))
    h = link.FRAME_HEADER.unpack(raw[:HEADER_BYTES])
    assert h == {"sync": SYNC, "type": 0x30, "seq": 200, "len": 300, "hcrc": crc8(raw[1:5])}


def test_encode_frame_argument_errors():
    with pytest.raises(ValueError, match="exceeds MAX_PAYLOAD"):
        encode_frame(0x10, 0, bytes(MAX_PAYLOAD + 1))
    for t, s in ((256, 0), (-1, 0), (0, 256), (0, -1)):
        with pytest.raises(ValueError, match="are bytes"):
            encode_frame(t, s, b"")
    assert len(encode_frame(0x10, 0, bytes(MAX_PAYLOAD))) == 4106
