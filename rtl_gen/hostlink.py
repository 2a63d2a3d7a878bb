"""HostLink: the device side of the host link (docs/protocol.md).

A UART (:mod:`rtl_gen.uart`) carries framed commands from the host; a frame receiver checks
them, a command executor runs them on the accelerator through the link's ``acc`` port
(:func:`rtl_gen.control.control_signature`: ``start``, ``reset``, ``host_w``, ``rx``, ``tx``,
``done``, ``error``, ``cycles``; the system top :mod:`rtl_gen.system` wires it to the
:class:`~rtl_gen.top.Accelerator`, a sibling) and a reply builder sends the reply frame back.
Every frame constant, command code and the INFO record come from :mod:`sephw.arch.link`, the
module the host driver uses too.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sephw.arch.link import (CSR_MAX_OPS, CSR_OP, ERROR, HEADER_BYTES, INFO_FORMAT, MAX_PAYLOAD, PING_MAX,
                             PROTOCOL_VERSION, REPLY, RUN_REPLY, WRITE_INPUT_HEADER, Cmd, DramPhy, Err, Info)
from sephw.arch.link import LOAD_HEADER_BYTES as LOAD_HEADER
from sephw.arch.config import ArchConfig
from sephw.arch.memmap import MEM_EXTERNAL, MemoryMap

from .arith import check_int
from .control import control_signature, dram_ctrl_signature, ext_w_layout
from .framerx import SharedCRC, frame_receiver, reply_states
from .linkcsr import SRC_CSR, csr_states
from .uart import UartRx, UartTx

__all__ = ["HostLink"]

# reply payload sources
SRC_REG, SRC_FRAME, SRC_INFO, SRC_LOGITS = range(4)      # and SRC_CSR (rtl_gen/linkcsr.py)


class HostLink(wiring.Component):
    """The host link of docs/protocol.md: UART, frame receiver, command executor, replies.

    Parameters
    ----------
    arch : ArchConfig
        The accelerator's contract (its memory map sizes ``LOAD``, ``INFO`` reports it).
    baud : int
        UART bits per second; ``clk_hz / baud >= 4``.
    board : str
        Board name for ``INFO`` (ASCII, at most 16 bytes).
    clk_hz : int, optional
        Clock frequency, Hz (the UART's baud generator, and reported by ``INFO``); default
        ``arch.clock_hz``.
    arch_hash : str, optional
        The hash ``INFO`` reports (16 hex digits); default ``arch.hash()``, the manifest's
        ``arch_hash`` of the builds this device runs.
    input_bytes : int, optional
        Input buffer bytes (one image); default ``arch.input_bytes``.
    logit_bytes : int, optional
        Logit buffer bytes (``classes * 8``); default ``arch.logit_bytes``.
    frame_timeout_cycles : int, optional
        A frame whose next byte does not arrive within this many cycles is dropped (default
        ``clk_hz // 1000``: 1 ms).
    version : int
        Device (RTL generator) version reported by ``INFO``.
    dram_phy : int, optional
        What is behind the DRAM controller (:class:`sephw.arch.link.DramPhy`, reported by
        ``INFO``): default ``MODEL`` with external memory, ``NONE`` without.

    Attributes
    ----------
    uart_rx : In(1, init=1)
        Serial line from the host (asynchronous; synchronized inside).
    uart_tx : Out(1, init=1)
        Serial line to the host.
    busy : Out(1)
        A command is being executed or answered (including a ``RUN`` in progress).
    error : Out(1)
        The last reply was an ``ERROR``, or the last ``RUN`` ended with the top's ``error``
        (for a LED; cleared by the next successful reply / run).
    acc : Out(control_signature(MemoryMap(arch)))
        The accelerator's control port (the link's side).
    dram : Out(rtl_gen.control.dram_ctrl_signature())
        Only with external memory: the DRAM controller's CSR bus and ``init_done``.

    Notes
    -----
    Receiver: hunts for ``SYNC``; checks the header's CRC-8 (a bad one drops the frame without
    a reply and hunting restarts with the next byte); a ``LEN`` above ``MAX_PAYLOAD`` is
    answered ``BAD_LENGTH`` and hunting restarts; the payload goes into the frame buffer (one
    4096-byte memory) while the CRC-32 is computed on the fly, one byte per cycle; a frame CRC
    mismatch is answered ``BAD_CRC`` (with the received CRC) and nothing is executed; a frame
    whose next byte is more than ``frame_timeout_cycles`` late is dropped silently.

    Executor (one command at a time, byte-serial): ``PING`` echoes from the frame buffer;
    ``INFO`` sends a ROM holding :meth:`Info.pack`; ``LOAD`` checks its length (``LEN - 6`` a
    positive multiple of ``word_bytes[mem]``, by repeated subtraction) and address, then
    assembles each little-endian word from the frame buffer and writes it through the top's
    ``host_w`` (memory 5, the board's DRAM where the system has one: to ``ext_w`` through a
    one-word register that the DRAM port empties); ``WRITE_INPUT`` copies into the input
    buffer (with external memory: into the DRAM's last words, one byte-enabled write per
    byte, for the system's input feeder); ``RUN`` pulses ``start``, feeds the input buffer to the
    top's ``rx`` (without external memory), captures the top's ``tx`` bytes into the logit
    buffer (bytes beyond ``logit_bytes`` are dropped) and answers ``DONE`` when the top raises
    ``done`` (``status`` 1 with ``error``); ``READ_LOGITS`` / ``READ_CYCLES`` answer from the
    logit buffer / the top's cycle counter (``NO_RESULT`` before a completed ``RUN``);
    ``RESET`` resets the top (its memories keep their contents) and clears the result;
    ``CSR`` (with external memory only; :mod:`rtl_gen.linkcsr`) accesses the DRAM controller's
    CSRs. With external memory, ``LOAD`` into memory 5, ``WRITE_INPUT`` and ``RUN`` are
    answered ``NOT_READY`` until the controller's ``init_done``. Empty-payload commands with
    a payload, and ``PING`` with more than 64 bytes, get ``BAD_LENGTH``.

    Cost and speed: about 1000 LUTs, 900 flip-flops (400 of them the widest ``host_w`` word),
    one RAMB36 (frame buffer) and a few LUT-RAMs (yosys ``synth_xilinx``, top excluded, for the
    small overlay of tests/test_rtl_hostlink.py). Back-to-back UART bytes take 10 bit periods
    + 1 clock (84.3 clocks at 100 MHz / 12 Mbaud); loading a build is UART-bound (85.7 clocks
    per frame byte including the ACKs and the per-frame processing).

    Not done: during a ``RUN`` only a ``RESET`` frame is acted on (it aborts the run); other
    frames and receive errors arriving then are ignored (the host is stop-and-wait and
    resends). While a command executes or its reply is being sent, incoming bytes are
    discarded. After a bad header CRC the receiver resumes hunting at the next byte to arrive;
    it does not rescan the dropped header's bytes for a ``SYNC`` (the host's parser does). A
    ``RUN`` whose Program takes more input bytes than the buffer holds waits for them until a
    ``RESET``; a ``RUN`` has no timeout of its own.
    """

    def __init__(self, arch: ArchConfig, *, baud: int, board: str, clk_hz: int | None = None,
                 arch_hash: str | None = None, input_bytes: int | None = None, logit_bytes: int | None = None,
                 frame_timeout_cycles: int | None = None, version: int = 1, dram_phy: int | None = None):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        clk_hz = arch.clock_hz if clk_hz is None else clk_hz
        arch_hash = arch.hash() if arch_hash is None else arch_hash
        input_bytes = arch.input_bytes if input_bytes is None else input_bytes
        logit_bytes = arch.logit_bytes if logit_bytes is None else logit_bytes
        check_int("clk_hz", clk_hz, 1)
        check_int("baud", baud, 1)
        if not isinstance(board, str):
            raise TypeError(f"board must be a str, not {board!r}")
        if not board.isascii() or len(board) > 16:
            raise ValueError(f"board must be at most 16 ASCII characters, not {board!r}")
        if not isinstance(arch_hash, str):
            raise TypeError(f"arch_hash must be a str, not {arch_hash!r}")
        if len(arch_hash) != 16 or any(ch not in "0123456789abcdefABCDEF" for ch in arch_hash):
            raise ValueError(f"arch_hash must be 16 hex digits, not {arch_hash!r}")
        # (an on-chip input buffer is at most 64 KB; with external memory the image is in DRAM)
        check_int("input_bytes", input_bytes, 1, 0xFFFF_FFFF if MemoryMap(arch).external else 0xFFFF)
        check_int("logit_bytes", logit_bytes, 1, 0xFFFF)
        if frame_timeout_cycles is None:
            frame_timeout_cycles = max(1, clk_hz // 1000)
        check_int("frame_timeout_cycles", frame_timeout_cycles, 1)
        check_int("version", version, 0, 0xFFFF)
        self._uart_tx = UartTx(clk_hz=clk_hz, baud=baud)     # checks clk_hz / baud >= 4
        self._uart_rx = UartRx(clk_hz=clk_hz, baud=baud)
        self._arch = arch
        self._memory_map = mm = MemoryMap(arch)
        self._clk_hz, self._baud = clk_hz, baud
        self._frame_timeout = frame_timeout_cycles
        self._input_bytes, self._logit_bytes = input_bytes, logit_bytes
        # the memories LOAD writes, in select order (sephw.arch.memmap): the on-chip ones behind
        # the accelerator's host_w, then the board's DRAM (ext_w) where there is one
        regions = mm.regions
        self._word_bytes = tuple(r.word_bytes for r in regions)
        self._depths = tuple(r.depth for r in regions)
        for s, d in enumerate(self._depths):
            if d > 0xFFFF:
                raise ValueError(f"memory {s} has {d} words; INFO reports depths as u16")
        ext = mm.external
        if dram_phy is None:
            dram_phy = DramPhy.MODEL if ext else DramPhy.NONE
        if dram_phy not in DramPhy.NAMES or (dram_phy == DramPhy.NONE) != (ext is None):
            raise ValueError(f"dram_phy {dram_phy!r} does not suit a link {'with' if ext else 'without'} "
                             f"external memory (sephw.arch.link.DramPhy)")
        self._info = Info(PROTOCOL_VERSION, version, arch_hash.lower(), board, clk_hz, baud,
                          MAX_PAYLOAD, self._depths, self._word_bytes, input_bytes, logit_bytes,
                          ext.depth if ext else 0, ext.word_bytes if ext else 0, dram_phy)
        self._info_bytes = self._info.pack()
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1), "acc": Out(control_signature(mm)),
                          **({"dram": Out(dram_ctrl_signature())} if ext else {})})

    arch = property(lambda self: self._arch, doc="The accelerator's :class:`~sephw.arch.ArchConfig`.")
    clk_hz = property(lambda self: self._clk_hz, doc="Clock frequency, Hz.")
    baud = property(lambda self: self._baud, doc="UART bits per second.")
    frame_timeout_cycles = property(lambda self: self._frame_timeout, doc="Inter-byte timeout, cycles.")
    input_bytes = property(lambda self: self._input_bytes, doc="Input buffer bytes.")
    logit_bytes = property(lambda self: self._logit_bytes, doc="Logit buffer bytes.")
    word_bytes = property(lambda self: self._word_bytes, doc="Bytes per word of memories 0..4.")
    depths = property(lambda self: self._depths, doc="Words of memories 0..4.")
    info = property(lambda self: self._info, doc="The :class:`host.protocol.Info` the device reports.")
    memory_map = property(lambda self: self._memory_map, doc="The :class:`~sephw.arch.memmap.MemoryMap`.")

    def elaborate(self, platform):
        m = Module()
        acc = self.acc
        m.submodules.uart_tx = utx = self._uart_tx
        m.submodules.uart_rx = urx = self._uart_rx
        m.d.comb += [urx.rx.eq(self.uart_rx), self.uart_tx.eq(utx.tx), urx.data.ready.eq(1)]
        in_bytes, lg_bytes, T = self._input_bytes, self._logit_bytes, self._frame_timeout

        # ------------------------------------------------------------------ memories
        m.submodules.frame_buf = fb = Memory(shape=8, depth=MAX_PAYLOAD, init=[])
        ext = self._memory_map.external
        # the input image: on chip, or (with external memory) in the DRAM's last words, where
        # WRITE_INPUT writes it byte by byte and the system's input feeder reads it in a run;
        # there this buffer holds a CSR command's read values instead
        m.submodules.input_buf = ib = Memory(shape=8, depth=CSR_MAX_OPS * 4 if ext else max(2, in_bytes), init=[])
        m.submodules.logit_buf = lb = Memory(shape=8, depth=max(2, lg_bytes), init=[])
        m.submodules.info_rom = rom = Memory(shape=8, depth=len(self._info_bytes), init=self._info_bytes)
        fb_w, fb_r = fb.write_port(), fb.read_port()
        ib_w, ib_r = ib.write_port(), ib.read_port()
        lb_w, lb_r = lb.write_port(), lb.read_port()
        rom_r = rom.read_port()
        idx = Signal(range(MAX_PAYLOAD + HEADER_BYTES + 1))   # payload byte (copies, replies)
        m.d.comb += [fb_r.addr.eq(idx), lb_r.addr.eq(idx), rom_r.addr.eq(idx)]

        # ------------------------------------------------------------------ CRCs, receiver
        # (rtl_gen/framerx.py; the reply builder below drives the shared CRC while it sends)
        crc = SharedCRC.build(m)
        rx = frame_receiver(m, urx.data, crc, fb_w, T)
        r_type, r_seq, r_len, phead, rcrc = rx.r_type, rx.r_seq, rx.r_len, rx.phead, rx.rcrc
        rx_err, rx_done, armed = rx.err, rx.done, rx.armed

        # ------------------------------------------------------------------ executor state
        x_seq = Signal(8)          # SEQ of the command being answered
        t_type = Signal(8)         # reply TYPE
        t_len = Signal(range(MAX_PAYLOAD + 1))
        t_src = Signal(3)
        rword = Signal(8 * RUN_REPLY.size)      # register payload, LSB byte first
        have = Signal()            # a RUN completed (READ_LOGITS / READ_CYCLES allowed)
        status = Signal()          # its status (the top raised error)
        link_err = Signal()        # the last reply was an ERROR
        m.d.comb += self.error.eq(link_err | (have & status))

        # LOAD
        loadable = self._memory_map.loadable
        wsel = Signal(3)
        wb_max = max(r.word_bytes for r in loadable)
        wb_tab = Array(Const(r.word_bytes, range(wb_max + 1)) for r in loadable)
        depth_max = max(r.depth for r in loadable)
        depth_tab = Array(Const(r.depth, range(depth_max + 1)) for r in loadable)
        wb = Signal(range(wb_max + 1))
        wb_m1 = Signal(range(wb_max + 1))
        # (registers: set with wsel from the LOAD header, so no table lookup feeds the compares)
        wreg = Signal(8 * wb_max)
        wj = Signal(range(wb_max))
        rem = Signal(range(MAX_PAYLOAD + 1))
        nwords = Signal(range(MAX_PAYLOAD + 1))
        ld_end = Signal(33)
        ld_depth = Signal(range(depth_max + 1))
        wcnt = Signal(range(MAX_PAYLOAD + 1))
        waddr = Signal(max(r.addr_bits for r in loadable))
        m.d.comb += [acc.host_w.payload.mem.eq(wsel), acc.host_w.payload.addr.eq(waddr),
                     acc.host_w.payload.data.eq(wreg)]
        to_ext = Signal()          # this LOAD writes the board's DRAM (ext_w), not host_w
        w_valid, w_ready = Signal(name="w_valid"), Signal(name="w_ready")
        if ext is not None:
            # the executor's DRAM writes (LOAD into memory 5, WRITE_INPUT) go through a register
            # to ext_w: the link waits only for it to be empty, so no path runs from the
            # executor's state through the DRAM port's arbiter and back (timing). A write is
            # in the DRAM port a few cycles after it was acknowledged, long before the reply
            # has left the UART and the host can send the next command.
            xw = Signal(ext_w_layout(self._memory_map))
            xw_valid, xw_full = Signal(name="xw_valid"), Signal(name="xw_full")
            xw_held = Signal.like(xw)
            m.d.comb += [acc.ext_w.valid.eq(xw_full), acc.ext_w.payload.eq(xw_held)]
            with m.If(acc.ext_w.ready):
                m.d.sync += xw_full.eq(0)
            with m.If(xw_valid & ~xw_full):
                m.d.sync += [xw_full.eq(1), xw_held.eq(xw)]
            m.d.comb += [xw.addr.eq(waddr), xw.data.eq(wreg), xw.we.eq(-1),
                         xw_valid.eq(w_valid & to_ext), acc.host_w.valid.eq(w_valid & ~to_ext),
                         w_ready.eq(Mux(to_ext, ~xw_full, acc.host_w.ready))]
        else:
            m.d.comb += [acc.host_w.valid.eq(w_valid), w_ready.eq(acc.host_w.ready)]
        ld_mem, ld_addr = phead.mem, phead.addr

        # WRITE_INPUT, RUN
        wi_off = phead.as_value()[0:32]               # WRITE_INPUT's u32 offset
        ip = Signal(range(max(in_bytes, CSR_MAX_OPS * 4) + 1))   # input / CSR value byte
        lg_idx = Signal(range(lg_bytes + 1))      # logit bytes captured
        feeding = Signal()
        csr_val = Signal(32)                      # a CSR read's value, stored byte by byte
        m.d.comb += [ib_w.addr.eq(ip), acc.tx.ready.eq(1), lb_w.addr.eq(lg_idx), lb_w.data.eq(acc.tx.payload)]
        if ext is None:
            # RUN feeds the input buffer to the top's rx from byte 0 as the top takes bytes
            fp = Signal(range(in_bytes + 1))          # next input byte for the top's rx
            rx_take = acc.rx.valid & acc.rx.ready
            m.d.comb += [ib_w.data.eq(fb_r.data), acc.rx.valid.eq(feeding & (fp < in_bytes)),
                         acc.rx.payload.eq(ib_r.data), ib_r.addr.eq(Mux(rx_take, fp + 1, fp))]
            with m.If(~feeding):
                m.d.sync += fp.eq(0)
            with m.Elif(rx_take):
                m.d.sync += fp.eq(fp + 1)
            dram_ready = Const(1)
        else:
            m.d.comb += [ib_w.data.eq(csr_val.word_select(wj[:2], 8)), ib_r.addr.eq(idx)]
            dram_ready = self.dram.init_done
        with m.If(feeding & acc.tx.valid & (lg_idx < lg_bytes)):
            m.d.comb += lb_w.en.eq(1)
            m.d.sync += lg_idx.eq(lg_idx + 1)

        def reply(type_, length, src=SRC_REG, word=None):
            m.d.sync += [t_type.eq(type_), t_len.eq(length), t_src.eq(src),
                         link_err.eq(1 if type_ == ERROR else 0)]
            if word is not None:
                m.d.sync += rword.eq(word)
            m.next = "TX_START"

        def error(code, detail):
            reply(ERROR, 5, SRC_REG, Cat(Const(code, 8), Value.cast(detail).as_unsigned()[:32]))

        # The header checks DISPATCH decides on, registered one cycle behind the header (which
        # holds from the end of its reception until the executor is back in IDLE): a 32-bit
        # add and compare and the length compares no longer sit in front of the reply
        # registers (timing; the answers are the same)
        f_len0, f_ping_long, f_load_short, f_mem_bad = (Signal(name=n) for n in
                                                       ("f_len0", "f_ping_long", "f_load_short", "f_mem_bad"))
        f_wi_short, f_wi_past, f_wi_empty = (Signal(name=n) for n in ("f_wi_short", "f_wi_past", "f_wi_empty"))
        f_csr_bad = Signal()       # a CSR payload of 0 or more than CSR_MAX_OPS operations' bytes
        m.d.sync += [f_len0.eq(r_len == 0), f_ping_long.eq(r_len > PING_MAX), f_load_short.eq(r_len <= LOAD_HEADER),
                     f_mem_bad.eq(ld_mem > len(loadable) - 1), f_wi_short.eq(r_len < WRITE_INPUT_HEADER),
                     f_wi_past.eq(wi_off + (r_len - WRITE_INPUT_HEADER) > in_bytes),
                     f_wi_empty.eq(r_len == WRITE_INPUT_HEADER),
                     f_csr_bad.eq((r_len == 0) | (r_len > CSR_MAX_OPS * CSR_OP.size))]

        with m.FSM(name="exec") as x_fsm:
            with m.State("IDLE"):
                m.d.comb += armed.eq(1)
                with m.If(rx_done):
                    m.d.sync += x_seq.eq(r_seq)
                    with m.If(rx_err == Err.BAD_CRC):
                        error(Err.BAD_CRC, rcrc)
                    with m.Elif(rx_err == Err.BAD_LENGTH):
                        error(Err.BAD_LENGTH, r_len)
                    with m.Else():
                        m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.Switch(r_type):
                    with m.Case(Cmd.PING):
                        with m.If(f_ping_long):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Else():
                            reply(Cmd.PING | REPLY, r_len, SRC_FRAME)
                    with m.Case(Cmd.INFO):
                        with m.If(~f_len0):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Else():
                            reply(Cmd.INFO | REPLY, INFO_FORMAT.size, SRC_INFO)
                    with m.Case(Cmd.LOAD):
                        with m.If(f_load_short):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Elif(f_mem_bad):
                            error(Err.BAD_ADDRESS, ld_addr)
                        with m.Elif((ld_mem == MEM_EXTERNAL) & ~dram_ready):
                            error(Err.NOT_READY, 0)
                        with m.Else():
                            m.d.sync += [wsel.eq(ld_mem), to_ext.eq(ld_mem == MEM_EXTERNAL),
                                         wb.eq(wb_tab[ld_mem]), wb_m1.eq(wb_tab[ld_mem] - 1),
                                         ld_depth.eq(depth_tab[ld_mem]),
                                         rem.eq(r_len - LOAD_HEADER), nwords.eq(0)]
                            m.next = "LOAD_DIV"
                    with m.Case(Cmd.WRITE_INPUT):
                        with m.If(f_wi_short):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Elif(f_wi_past):
                            error(Err.BAD_ADDRESS, wi_off)
                        with m.Elif(~dram_ready):
                            error(Err.NOT_READY, 0)
                        with m.Elif(f_wi_empty):
                            reply(Cmd.WRITE_INPUT | REPLY, 2, SRC_REG, 0)
                        with m.Else():
                            m.d.sync += [idx.eq(WRITE_INPUT_HEADER), ip.eq(wi_off)]
                            m.next = "WI_READ"
                    with m.Case(Cmd.RUN):
                        with m.If(~f_len0):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Elif(~dram_ready):
                            error(Err.NOT_READY, 0)
                        with m.Else():
                            m.next = "RUN_START"
                    with m.Case(Cmd.READ_LOGITS, Cmd.READ_CYCLES):
                        with m.If(~f_len0):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Elif(~have):
                            error(Err.NO_RESULT, 0)
                        with m.Elif(r_type == Cmd.READ_LOGITS):
                            reply(Cmd.READ_LOGITS | REPLY, lg_idx, SRC_LOGITS)
                        with m.Else():
                            reply(Cmd.READ_CYCLES | REPLY, 8, SRC_REG, acc.cycles)
                    with m.Case(Cmd.RESET):
                        with m.If(~f_len0):
                            error(Err.BAD_LENGTH, r_len)
                        with m.Else():
                            m.next = "RESET"
                    with m.Case(Cmd.CSR):
                        if ext is None:
                            error(Err.UNKNOWN_TYPE, r_type)     # no DRAM controller
                        else:
                            with m.If(f_csr_bad):
                                error(Err.BAD_LENGTH, r_len)
                            with m.Else():
                                m.d.sync += [idx.eq(0), wj.eq(0), ip.eq(0), rem.eq(r_len)]
                                m.next = "CSR_DIV"
                    with m.Default():
                        error(Err.UNKNOWN_TYPE, r_type)

            # ---------------------------------------------------------------- LOAD
            with m.State("LOAD_DIV"):
                # words = (LEN - 6) / word_bytes[mem] by repeated subtraction (<= 4090 cycles)
                with m.If(rem >= wb):
                    m.d.sync += [rem.eq(rem - wb), nwords.eq(nwords + 1)]
                with m.Elif(rem != 0):
                    error(Err.BAD_LENGTH, r_len)
                with m.Else():
                    m.d.sync += ld_end.eq(ld_addr + nwords)
                    m.next = "LOAD_CHECK"
            with m.State("LOAD_CHECK"):    # the end address registered (timing), then compared
                with m.If(ld_end > ld_depth):
                    error(Err.BAD_ADDRESS, ld_addr)
                with m.Else():
                    m.d.sync += [idx.eq(LOAD_HEADER), wj.eq(0), wcnt.eq(0), waddr.eq(ld_addr)]
                    m.next = "LOAD_READ"
            with m.State("LOAD_READ"):     # frame buffer address idx -> data next cycle
                m.next = "LOAD_BYTE"
            with m.State("LOAD_BYTE"):
                m.d.sync += [wreg.word_select(wj, 8).eq(fb_r.data), idx.eq(idx + 1)]
                with m.If(wj == wb_m1):
                    m.d.sync += wj.eq(0)
                    m.next = "LOAD_WRITE"
                with m.Else():
                    m.d.sync += wj.eq(wj + 1)
                    m.next = "LOAD_READ"
            with m.State("LOAD_WRITE"):
                m.d.comb += w_valid.eq(1)
                with m.If(w_ready):
                    m.d.sync += [waddr.eq(waddr + 1), wcnt.eq(wcnt + 1)]
                    with m.If(wcnt == nwords - 1):
                        reply(Cmd.LOAD | REPLY, 2, SRC_REG, nwords)
                    with m.Else():
                        m.next = "LOAD_READ"

            # ---------------------------------------------------------------- WRITE_INPUT
            with m.State("WI_READ"):
                m.next = "WI_WRITE"
            with m.State("WI_WRITE"):
                wi_next = Signal()
                if ext is None:
                    m.d.comb += [ib_w.en.eq(1), wi_next.eq(1)]
                else:
                    # one DRAM write per byte: the byte in every lane, only its lane enabled
                    lanes = ext.word_bytes.bit_length() - 1
                    m.d.comb += [xw_valid.eq(1), xw.addr.eq(self._memory_map.input_base + (ip >> lanes)),
                                 xw.data.eq(Cat([fb_r.data] * ext.word_bytes)),
                                 xw.we.eq(Const(1, ext.word_bytes) << ip[:lanes]), wi_next.eq(~xw_full)]
                with m.If(wi_next):
                    m.d.sync += [idx.eq(idx + 1), ip.eq(ip + 1)]
                    with m.If(idx == r_len - 1):
                        reply(Cmd.WRITE_INPUT | REPLY, 2, SRC_REG, r_len - WRITE_INPUT_HEADER)
                    with m.Else():
                        m.next = "WI_READ"

            # ---------------------------------------------------------------- CSR
            if ext is not None:
                csr_states(m, self.dram, fb_r, ib_w, r_len, rem, idx, wreg, wj, ip, csr_val, reply, error)

            # ---------------------------------------------------------------- RUN
            with m.State("RUN_START"):
                m.d.comb += acc.start.eq(1)
                m.d.sync += [have.eq(0), status.eq(0), lg_idx.eq(0)]
                m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                m.d.comb += [feeding.eq(1), armed.eq(1)]
                with m.If(acc.done):
                    m.d.sync += [have.eq(1), status.eq(acc.error)]
                    reply(Cmd.RUN | REPLY, RUN_REPLY.size, SRC_REG,
                          Cat(acc.error, Const(0, 7), acc.cycles, Const(0, 64 - len(acc.cycles)), lg_idx))
                with m.Elif(rx_done & (rx_err == 0) & (r_type == Cmd.RESET) & (r_len == 0)):
                    m.d.sync += x_seq.eq(r_seq)
                    m.next = "RESET"

            # ---------------------------------------------------------------- RESET
            with m.State("RESET"):
                m.d.sync += [have.eq(0), status.eq(0), lg_idx.eq(0)]
                reply(Cmd.RESET | REPLY, 0)

            # ---------------------------------------------------------------- reply frame
            sources = {SRC_REG: rword[:8], SRC_FRAME: fb_r.data, SRC_INFO: rom_r.data,
                       SRC_LOGITS: lb_r.data, SRC_CSR: ib_r.data}
            reply_states(m, utx.data, crc, t_type, x_seq, t_len, Array(sources[k] for k in range(len(sources)))[t_src],
                         idx, rword)
        m.d.comb += self.busy.eq(~x_fsm.ongoing("IDLE"))
        # the accelerator's reset, one cycle after RESET (during the reply's TX_START), from a
        # flip-flop: it reaches every resettable flip-flop of the accelerator
        acc_rst = Signal()
        m.d.sync += acc_rst.eq(x_fsm.ongoing("RESET"))
        m.d.comb += acc.reset.eq(acc_rst)
        return m
