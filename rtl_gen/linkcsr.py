"""The host link's ``CSR`` command (docs/protocol.md): the DRAM controller's CSR accesses, for
the host's initialization and read leveling of the board's DRAM (host/dram.py). Its states
are part of :class:`rtl_gen.hostlink.HostLink`'s executor FSM; they share its frame buffer,
its word register and counters, and put a read's value into the input buffer, which a
system with external memory does not need for the image."""
from __future__ import annotations

from amaranth.hdl import Signal

from sephw.arch.link import CSR_OP, REPLY, Cmd, Err

__all__ = ["CSR_TIMEOUT", "SRC_CSR", "csr_states"]

SRC_CSR = 4            # the reply's payload source: the input buffer (HostLink's SRC_*)
CSR_TIMEOUT = 255      # cycles a CSR access may wait for its ack before the command fails


def csr_states(m, bus, fb_r, ib_w, r_len, rem, idx, wreg, wj, ip, csr_val, reply, error):
    """The ``CSR`` command's states: the length checked to be whole operations (by
    repeated subtraction, no divider), then each 6-byte operation from the frame buffer into
    ``wreg`` (op u16: bit 15 write, bits 0..14 word address; value u32), one access on the
    DRAM controller's CSR bus (``ERROR BAD_ADDRESS`` if it is not acknowledged within
    ``CSR_TIMEOUT`` cycles), a read's value into the input buffer (4 bytes, LE); the reply
    sends those values."""
    tmo = Signal(range(CSR_TIMEOUT + 1))
    op_adr, op_we, op_val = wreg[0:15], wreg[15], wreg[16:48]
    with m.State("CSR_DIV"):           # LEN a multiple of 6 (at most 64 cycles)
        with m.If(rem >= CSR_OP.size):
            m.d.sync += rem.eq(rem - CSR_OP.size)
        with m.Elif(rem != 0):
            error(Err.BAD_LENGTH, r_len)
        with m.Else():
            m.next = "CSR_READ"
    with m.State("CSR_READ"):          # frame buffer address idx -> data next cycle
        m.next = "CSR_BYTE"
    with m.State("CSR_BYTE"):
        m.d.sync += [wreg.word_select(wj, 8).eq(fb_r.data), idx.eq(idx + 1)]
        with m.If(wj == CSR_OP.size - 1):
            m.d.sync += [wj.eq(0), tmo.eq(0)]
            m.next = "CSR_BUS"
        with m.Else():
            m.d.sync += wj.eq(wj + 1)
            m.next = "CSR_READ"
    with m.State("CSR_BUS"):
        m.d.comb += [bus.stb.eq(1), bus.adr.eq(op_adr), bus.we.eq(op_we), bus.dat_w.eq(op_val)]
        m.d.sync += tmo.eq(tmo + 1)
        with m.If(bus.ack):
            m.d.sync += csr_val.eq(bus.dat_r)
            with m.If(op_we):
                m.next = "CSR_NEXT"
            with m.Else():
                m.next = "CSR_STORE"
        with m.Elif(tmo == CSR_TIMEOUT):
            error(Err.BAD_ADDRESS, op_adr)
    with m.State("CSR_STORE"):         # the value's 4 bytes, little-endian
        m.d.comb += ib_w.en.eq(1)
        m.d.sync += [ip.eq(ip + 1), wj.eq(wj + 1)]
        with m.If(wj == 3):
            m.d.sync += wj.eq(0)
            m.next = "CSR_NEXT"
    with m.State("CSR_NEXT"):
        with m.If(idx == r_len):
            reply(Cmd.CSR | REPLY, ip, SRC_CSR)
        with m.Else():
            m.next = "CSR_READ"
