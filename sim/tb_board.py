"""cocotb testbench: the simulated board. The HostLink design's UART pins, bridged to a
pseudo-terminal, so that the host driver (host.device) talks to it through a serial port
exactly as to the Arty A7's USB-UART.

Started by :class:`sim.simboard.SimBoard` (in a subprocess, its own process group). The
case file names the design's ``clk_hz`` and ``baud``, the file to write the pty's slave path
to, a status file, and the driver's pid (the board stops when the driver is gone).

- host -> device: bytes read from the pty master (non-blocking) are bit-banged onto
  ``uart_rx`` (8N1, LSB first) at the design's bit time; with nothing to send, the master is
  polled every :data:`POLL_CYCLES` simulated cycles (far below the frame timeout, so a frame
  the host wrote in one piece reaches the device in one piece).
- device -> host: ``uart_tx`` is decoded from each start bit's falling edge, sampling every
  bit in its middle; each byte goes to the master at once. A byte whose stop bit is low
  (framing error) is still passed on, as a real UART bridge would, and counted.

No per-cycle Python: one timer per bit, one per poll, one edge per received byte.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
import tty
from collections import deque

import cocotb
from cocotb.triggers import FallingEdge, Timer
from cocotb.utils import get_sim_time

from sim.tb import load_case, start_clock_reset

CLOCK_NS = 10                 # start_clock_reset's clock
POLL_CYCLES = 1000
STATUS_EVERY_S = 0.25


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _driver_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def uart_tx_to_master(dut, master: int, bit_ps: int, stats: dict) -> None:
    """Decode ``uart_tx`` and write each byte to the pty master."""
    while True:
        await FallingEdge(dut.uart_tx)
        await Timer(bit_ps + bit_ps // 2, unit="ps")      # middle of bit 0
        byte = 0
        for i in range(8):
            byte |= int(dut.uart_tx.value) << i
            await Timer(bit_ps, unit="ps")
        if int(dut.uart_tx.value) != 1:
            stats["framing_errors"] += 1
        stats["tx_bytes"] += 1
        try:
            os.write(master, bytes([byte]))
        except BlockingIOError:       # nobody reads the slave: drop, as a real port would
            stats["tx_dropped"] += 1


@cocotb.test()
async def board(dut):
    case = load_case()
    clk_hz, baud = case["clk_hz"], case["baud"]
    # bit time in the design's terms (clk_hz / baud clocks), on the simulation's 10 ns clock
    bit_ps = round(CLOCK_NS * 1000 * clk_hz / baud)
    master, slave = os.openpty()
    tty.setraw(slave)           # no echo, no line editing, no CR/LF translation
    tty.setraw(master)
    fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
    dut.uart_rx.value = 1
    await start_clock_reset(dut)
    stats = {"rx_bytes": 0, "tx_bytes": 0, "tx_dropped": 0, "framing_errors": 0}
    cocotb.start_soon(uart_tx_to_master(dut, master, bit_ps, stats))
    _write_atomic(case["pty_file"], os.ttyname(slave))
    dut._log.info(f"board up: UART {baud} baud ({bit_ps} ps per bit) on {os.ttyname(slave)}")
    pending = deque()
    clock = {"wall": time.monotonic(), "cycles": 0}
    rates = deque(maxlen=40)       # simulated cycles per wall second of the last intervals (~10 s)

    def report() -> bool:
        """Write the status file now and then; False when the driver is gone."""
        now = time.monotonic()
        if now - clock["wall"] < STATUS_EVERY_S:
            return True
        cycles = int(get_sim_time("ns")) // CLOCK_NS
        rates.append((cycles - clock["cycles"]) / (now - clock["wall"]))
        clock.update(wall=now, cycles=cycles)
        _write_atomic(case["status_file"], json.dumps(
            {"cycles": cycles, "wall": now, "rate": rates[-1], "rate_min": min(rates), **stats}))
        return _driver_alive(case["driver_pid"])

    while True:
        if not pending:
            try:
                pending.extend(os.read(master, 4096))
            except (BlockingIOError, InterruptedError):
                pass
        if pending:
            byte = pending.popleft()
            stats["rx_bytes"] += 1
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                dut.uart_rx.value = bit
                await Timer(bit_ps, unit="ps")
        else:
            await Timer(POLL_CYCLES * CLOCK_NS, unit="ns")
        if not report():
            dut._log.info("the driver is gone; stopping")
            return
