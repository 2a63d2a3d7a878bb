"""Byte links to the accelerator (docs/protocol.md).

:class:`Transport` is what :class:`host.device.Device` talks through: ``write`` bytes,
``read`` up to ``n`` bytes by a deadline (never blocking forever), ``close``; ``baud`` is the
link's rate (for the reply deadlines), ``time_scale()`` the wall seconds one second of
device time takes (1 for real hardware) and ``margin_s`` the fixed slack added to each
deadline.

:class:`SerialTransport` opens a serial port with pyserial: a board's USB-UART, or the
simulated board's pseudo-terminal. The simulated board itself (``sim:BUILD_DIR``) is
:class:`sim.simboard.SimBoard`, opened by :func:`sephw.flows.run.open_device`: host/ never imports
the simulator or the RTL generator, so a real board is driven with pyserial alone.
"""
from __future__ import annotations

import time

__all__ = ["Transport", "SerialTransport", "open_transport", "SIM_PREFIX"]

SIM_PREFIX = "sim:"
SERIAL_MARGIN_S = 0.2      # docs/protocol.md: fixed slack of every reply deadline on a serial port


class Transport:
    """A byte link. Subclasses implement ``write``, ``read`` and ``close``."""

    baud: int = 0
    description: str = "?"
    margin_s: float = SERIAL_MARGIN_S

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes: returns as soon as ``n`` have arrived, else what arrived within
        ``timeout`` seconds (possibly nothing)."""
        raise NotImplementedError

    def discard_input(self) -> bytes:
        """Drop (and return) the bytes already received and not read."""
        return self.read(1 << 16, 0.0)

    def time_scale(self) -> float:
        """Wall seconds per second of device time (1 for real hardware)."""
        return 1.0

    def diagnose(self) -> str:
        """A note for error messages when the link itself has failed (else empty)."""
        return ""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A serial port (pyserial): the board's USB-UART, or the simulated board's pseudo-terminal.

    ``baud`` is the UART rate, 8N1, no flow control."""

    POLL_S = 0.02          # pyserial read timeout; ``read`` loops on it up to its deadline

    def __init__(self, port: str, baud: int = 3_000_000):
        import serial
        self.port, self.baud = port, int(baud)
        self.description = port
        try:
            self._ser = serial.Serial(port, self.baud, timeout=self.POLL_S, write_timeout=10.0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise OSError(f"cannot open serial port {port!r} at {self.baud} baud: {e}") from None

    def write(self, data: bytes) -> None:
        self._ser.write(data)
        self._ser.flush()

    def read(self, n: int, timeout: float) -> bytes:
        end = time.monotonic() + max(0.0, timeout)
        buf = bytearray()
        while len(buf) < n:
            waiting = self._ser.in_waiting
            if waiting:
                buf += self._ser.read(min(waiting, n - len(buf)))
                continue
            if time.monotonic() >= end:
                break
            buf += self._ser.read(1)       # blocks at most POLL_S
        return bytes(buf)

    def discard_input(self) -> bytes:
        waiting = self._ser.in_waiting
        return self._ser.read(waiting) if waiting else b""

    def close(self) -> None:
        if self._ser.is_open:
            self._ser.close()


def sim_port_error(port: str) -> ValueError:
    """The error for a ``sim:BUILD_DIR`` port handed to the host runtime, which drives serial
    ports only."""
    return ValueError(f"{port!r} is the simulated board, which host/ does not start (it needs the simulator and "
                      f"the RTL generator): use `sephw run BUILD --port {port}` or sephw.flows.run.open_device({port!r})")


def open_transport(port: str, baud: int | None = None) -> Transport:
    """The serial port ``port`` (``/dev/ttyUSB1``, ``COM3``) at ``baud`` (default 3,000,000).
    A ``sim:BUILD_DIR`` port is a :class:`ValueError` (see :func:`sephw.flows.run.open_device`)."""
    if port.startswith(SIM_PREFIX):
        raise sim_port_error(port)
    return SerialTransport(port, baud or 3_000_000)
