"""The host link's frame receiver, the reply builder's states and the CRC registers they share
(docs/protocol.md; :class:`rtl_gen.hostlink.HostLink` builds them into its module).

The receiver hunts for ``SYNC``; checks the header's CRC-8 (a bad one drops the frame without
a reply and hunting restarts with the next byte); a ``LEN`` above ``MAX_PAYLOAD`` ends the
frame with ``BAD_LENGTH``; the payload goes into the frame buffer while the CRC-32 is
computed on the fly, one byte per cycle, and its first bytes (the LOAD header, WRITE_INPUT's
offset) into a register; a frame CRC mismatch ends it with ``BAD_CRC``; a frame whose next
byte is more than ``timeout`` cycles late is dropped silently. It listens only while the
executor has ``armed`` it; ``done`` pulses when a frame (or a receive error) is ready.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from sephw.arch.link import CRC_BYTES, FRAME_HEADER, HEADER_BYTES, LOAD_HEADER, LOAD_HEADER_BYTES, MAX_PAYLOAD, SYNC, Err

from .crc import crc8_byte, crc32_byte

__all__ = ["SharedCRC", "FrameRx", "frame_receiver", "reply_states"]


@dataclass(frozen=True)
class SharedCRC:
    """One CRC-8 and one CRC-32 register and their XOR networks, shared by the receiver and
    the reply builder, which never run at once (the receiver only listens while the executor
    is idle or waiting for a RUN): ``init`` clears both, ``upd8`` / ``upd32`` take ``data``."""
    crc8: Signal
    crc32: Signal
    init: Signal
    upd8: Signal
    upd32: Signal
    data: Signal

    @classmethod
    def build(cls, m: Module) -> "SharedCRC":
        c = cls(Signal(8, name="crc8"), Signal(32, init=0xFFFFFFFF, name="crc32"), Signal(name="crc_init"),
                Signal(name="upd8"), Signal(name="upd32"), Signal(8, name="crc_in"))
        with m.If(c.init):
            m.d.sync += [c.crc8.eq(0), c.crc32.eq(0xFFFFFFFF)]
        with m.If(c.upd8):
            m.d.sync += c.crc8.eq(crc8_byte(c.crc8, c.data))
        with m.If(c.upd32):
            m.d.sync += c.crc32.eq(crc32_byte(c.crc32, c.data))
        return c


@dataclass(frozen=True)
class FrameRx:
    """The receiver's outputs: the last header's ``r_type``, ``r_seq``, ``r_len``; ``phead``,
    the payload's first ``LOAD_HEADER_BYTES`` bytes; ``rcrc``, the received frame CRC; ``err``
    (0, ``Err.BAD_CRC`` or ``Err.BAD_LENGTH``); ``done`` (a pulse); and ``armed``, which the
    executor drives (high: the receiver takes bytes)."""
    r_type: Value
    r_seq: Value
    r_len: Value
    phead: Signal
    rcrc: Signal
    err: Signal
    done: Signal
    armed: Signal


def frame_receiver(m: Module, data, crc: SharedCRC, fb_w, timeout: int) -> FrameRx:
    """Build the receiver into ``m``: bytes from the UART's ``data`` stream (always taken),
    the payload into the frame buffer's write port ``fb_w``, ``timeout`` cycles between bytes
    at most. Sets ``crc.data`` to the received byte (a later assignment, the reply builder's,
    overrides it)."""
    T = timeout
    byte = data.payload
    got = Signal()             # a byte for the receiver (none while the executor is busy)
    # TYPE SEQ LEN of the last header: its bytes between SYNC and HCRC, shifted in; their fields
    # where FRAME_HEADER (sephw.arch.link) puts them
    rhead = Signal(8 * (HEADER_BYTES - 2))
    hdr = FRAME_HEADER.layout()(Cat(Const(SYNC, 8), rhead, Const(0, 8)))
    r_type, r_seq, r_len = hdr.type, hdr.seq, hdr.len
    # the first payload bytes: a LOAD's header (LOAD_HEADER's fields), a WRITE_INPUT's offset
    phead = Signal(LOAD_HEADER.layout())
    rcrc = Signal(32)          # received frame CRC
    rcnt = Signal(range(MAX_PAYLOAD + 1))
    rx_err = Signal(range(8))  # 0, Err.BAD_CRC or Err.BAD_LENGTH
    rx_done = Signal()         # pulse: a frame (or a receive error) for the executor
    armed = Signal()           # the executor takes frames
    tmo = Signal(range(T + 1))
    m.d.comb += [crc.data.eq(byte), got.eq(data.valid & armed)]

    def leave_on_timeout():
        with m.If((tmo == T) | ~armed):
            m.next = "HUNT"

    with m.FSM(name="rx") as rx_fsm:
        with m.State("HUNT"):
            with m.If(got & (byte == SYNC)):
                m.d.comb += crc.init.eq(1)
                m.d.sync += rcnt.eq(0)
                m.next = "HEADER"
        with m.State("HEADER"):
            with m.If(got):
                m.d.comb += [crc.upd8.eq(1), crc.upd32.eq(1)]
                m.d.sync += [rhead.eq(Cat(rhead[8:], byte)), rcnt.eq(rcnt + 1)]
                with m.If(rcnt == HEADER_BYTES - 3):
                    m.next = "HCRC"
            leave_on_timeout()
        with m.State("HCRC"):
            with m.If(got):
                m.d.comb += crc.upd32.eq(1)
                m.d.sync += rcnt.eq(0)
                with m.If(byte != crc.crc8):
                    m.next = "HUNT"
                with m.Elif(r_len > MAX_PAYLOAD):
                    m.d.sync += rx_err.eq(Err.BAD_LENGTH)
                    m.next = "DONE"
                with m.Elif(r_len == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            leave_on_timeout()
        with m.State("PAYLOAD"):
            m.d.comb += [fb_w.addr.eq(rcnt), fb_w.data.eq(byte), fb_w.en.eq(got)]
            with m.If(got):
                m.d.comb += crc.upd32.eq(1)
                with m.If(rcnt < LOAD_HEADER_BYTES):
                    m.d.sync += phead.as_value().word_select(rcnt[:3], 8).eq(byte)
                m.d.sync += rcnt.eq(rcnt + 1)
                with m.If(rcnt == r_len - 1):
                    m.d.sync += rcnt.eq(0)
                    m.next = "CRC"
            leave_on_timeout()
        with m.State("CRC"):
            with m.If(got):
                m.d.sync += [rcrc.eq(Cat(rcrc[8:], byte)), rcnt.eq(rcnt + 1)]
                with m.If(rcnt == CRC_BYTES - 1):
                    m.next = "CHECK"
            leave_on_timeout()
        with m.State("CHECK"):
            m.d.sync += rx_err.eq(Mux(rcrc == ~crc.crc32, 0, Err.BAD_CRC))
            m.next = "DONE"
        with m.State("DONE"):
            m.d.comb += rx_done.eq(1)
            m.next = "HUNT"
    with m.If(rx_fsm.ongoing("HUNT") | got):
        m.d.sync += tmo.eq(0)
    with m.Elif(tmo != T):
        m.d.sync += tmo.eq(tmo + 1)
    return FrameRx(r_type, r_seq, r_len, phead, rcrc, rx_err, rx_done, armed)


def reply_states(m: Module, tx, crc: SharedCRC, t_type, x_seq, t_len, payload_byte, idx, rword) -> None:
    """The executor FSM's reply states (``TX_START`` .. ``TX_SEND``, back to ``IDLE``): the
    frame SYNC TYPE SEQ LEN HCRC, ``t_len`` payload bytes, CRC-32, one byte per slot of the
    UART's ``tx`` stream. ``payload_byte`` is the payload's source: a memory addressed by
    ``idx`` (data one cycle later; ``idx`` counts from 0) or the register ``rword``, shifted
    right by a byte after each payload byte."""
    tpos = Signal(range(HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES + 1))
    txb = Signal(8)
    hdr = Cat(Const(SYNC, 8), t_type, x_seq, t_len.as_unsigned()[:16], Const(0, 16 - min(16, len(t_len))))
    # the payload's end and the frame's last byte follow t_len (set two cycles before the
    # first TX_BYTE): registers in front of the compares
    pay_end = Signal(range(HEADER_BYTES + MAX_PAYLOAD + 1))
    tx_end = Signal(range(HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES + 1))
    m.d.sync += [pay_end.eq(HEADER_BYTES + t_len), tx_end.eq(HEADER_BYTES + t_len + CRC_BYTES - 1)]
    with m.State("TX_START"):
        m.d.comb += crc.init.eq(1)
        m.d.sync += [tpos.eq(0), idx.eq(0)]
        m.next = "TX_READ"
    with m.State("TX_READ"):       # memory sources: address idx -> data next cycle
        m.next = "TX_BYTE"
    with m.State("TX_BYTE"):
        with m.If(tpos < HEADER_BYTES - 1):
            m.d.sync += txb.eq(hdr.word_select(tpos[:3], 8))
        with m.Elif(tpos == HEADER_BYTES - 1):
            m.d.sync += txb.eq(crc.crc8)
        with m.Elif(tpos < pay_end):
            m.d.sync += txb.eq(payload_byte)
        with m.Else():
            m.d.sync += txb.eq((~crc.crc32).word_select((tpos - pay_end)[:2], 8))
        m.next = "TX_SEND"
    with m.State("TX_SEND"):
        m.d.comb += [tx.valid.eq(1), tx.payload.eq(txb), crc.data.eq(txb)]
        with m.If(tx.ready):
            m.d.comb += [crc.upd8.eq((tpos >= 1) & (tpos < HEADER_BYTES - 1)),
                         crc.upd32.eq((tpos >= 1) & (tpos < pay_end))]
            m.d.sync += tpos.eq(tpos + 1)
            with m.If((tpos >= HEADER_BYTES) & (tpos < pay_end)):
                m.d.sync += [idx.eq(idx + 1), rword.eq(rword >> 8)]
            with m.If(tpos == tx_end):
                m.next = "IDLE"
            with m.Else():
                m.next = "TX_READ"
