"""UART transmitter and receiver for the host link (docs/protocol.md, "UART").

8 data bits, no parity, 1 stop bit (8N1), LSB first, idle high. Both directions use a
fractional baud generator (a phase accumulator: ``acc += baud`` per clock, one bit step each
time it passes ``clk_hz``, with the ratio reduced by its gcd), so any ``clk_hz / baud >= 4``
works and the bit timing error never accumulates over a byte (100 MHz / 12 Mbaud = 8.33
clocks per bit: bit edges within one clock of the ideal ones).
"""
from __future__ import annotations

from math import gcd

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .arith import check_int

__all__ = ["UartTx", "UartRx", "MIN_CLOCKS_PER_BIT"]

MIN_CLOCKS_PER_BIT = 4      # the receiver needs a start-bit middle and a margin either side


def _baud_ratio(clk_hz, baud) -> tuple[int, int]:
    """``(num, den)``: ``baud / clk_hz`` in lowest terms, after checking the arguments."""
    check_int("clk_hz", clk_hz, 1)
    check_int("baud", baud, 1)
    if clk_hz < MIN_CLOCKS_PER_BIT * baud:
        raise ValueError(f"clk_hz / baud must be at least {MIN_CLOCKS_PER_BIT}, not "
                         f"{clk_hz} / {baud} = {clk_hz / baud:.3g}")
    g = gcd(clk_hz, baud)
    return baud // g, clk_hz // g


class _BaudComponent(wiring.Component):
    def __init__(self, clk_hz: int, baud: int, members: dict):
        self._num, self._den = _baud_ratio(clk_hz, baud)
        self._clk_hz, self._baud = clk_hz, baud
        super().__init__(members)

    clk_hz = property(lambda self: self._clk_hz, doc="Clock frequency, Hz.")
    baud = property(lambda self: self._baud, doc="Bits per second.")
    clocks_per_bit = property(lambda self: self._clk_hz / self._baud,
                              doc="Clock cycles per bit (may be fractional).")

    def _ticker(self, m, acc, run):
        """Comb ``tick``: one bit period elapsed (``acc`` advances by ``num`` mod ``den``
        while ``run``)."""
        tick = Signal()
        num, den = self._num, self._den
        with m.If(run):
            with m.If(acc + num >= den):
                m.d.comb += tick.eq(1)
                m.d.sync += acc.eq(acc + num - den)
            with m.Else():
                m.d.sync += acc.eq(acc + num)
        return tick


class UartTx(_BaudComponent):
    """UART transmitter, 8N1.

    Parameters
    ----------
    clk_hz : int
        Clock frequency in Hz.
    baud : int
        Bits per second; ``clk_hz / baud >= 4``.

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` while the line is idle (a new byte's start bit follows the
        previous stop bit directly: 10 bit periods per byte at full rate).
    tx : Out(1, init=1)
        The serial line (idle high).
    """

    def __init__(self, *, clk_hz: int, baud: int):
        super().__init__(clk_hz, baud, {"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(9)                  # data bits then the stop bit, LSB next out
        left = Signal(range(11))           # bit periods left of the current byte
        acc = Signal(range(self._den))
        tick = self._ticker(m, acc, left != 0)
        m.d.comb += self.data.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.data.valid):
                # acc keeps its phase from the last byte: back-to-back bytes average exactly
                # 10 * clk_hz / baud cycles (+1 for the hand-off), not a rounded-up bit time
                m.d.sync += [shreg.eq(Cat(self.data.payload, Const(1, 1))), self.tx.eq(0), left.eq(10)]
        with m.Elif(tick):
            # start bit -> d0 .. d7 -> stop bit -> (idle, high: shreg fills with ones)
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1)]
        return m


class UartRx(_BaudComponent):
    """UART receiver, 8N1.

    The pin goes through a 2-flip-flop synchronizer; a falling edge on the idle line starts a
    byte, sampled in the middle of each bit (half a bit period after the edge, then one bit
    period apart). A start bit that is high again in its middle is a glitch (ignored); a
    byte whose stop bit samples low (framing error, a break) is dropped.

    Parameters
    ----------
    clk_hz : int
        Clock frequency in Hz.
    baud : int
        Bits per second; ``clk_hz / baud >= 4``.

    Attributes
    ----------
    rx : In(1, init=1)
        The serial line (asynchronous).
    data : Out(stream.Signature(8))
        Received bytes. ``valid`` stays up until ``ready``; a byte not taken before the next
        one completes is overwritten (no buffering: the host link consumes every byte the
        cycle it arrives).
    """

    def __init__(self, *, clk_hz: int, baud: int):
        super().__init__(clk_hz, baud, {"rx": In(1, init=1), "data": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        prev = Signal(init=1)
        m.d.sync += prev.eq(line)
        shreg = Signal(8)
        step = Signal(range(11))           # 0 idle, 1 start bit, 2..9 data bits, 10 stop bit
        acc = Signal(range(self._den))
        tick = self._ticker(m, acc, step != 0)
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(step == 0):
            with m.If(prev & ~line):
                # half a bit period to the start bit's middle
                m.d.sync += [step.eq(1), acc.eq(self._den // 2)]
        with m.Elif(tick):
            with m.If(step == 1):
                m.d.sync += step.eq(Mux(line, 0, 2))      # high again: a glitch, not a start bit
            with m.Elif(step < 10):
                m.d.sync += [shreg.eq(Cat(shreg[1:], line)), step.eq(step + 1)]
            with m.Else():
                with m.If(line):
                    m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                m.d.sync += step.eq(0)
        return m
