"""Byte links to the accelerator (docs/protocol.md): a serial port, or the simulated board.

:class:`Transport` is what :class:`host.device.Device` talks through: ``write`` bytes,
``read`` up to ``n`` bytes by a deadline (never blocking forever), ``close``; ``baud`` is the
link's rate (for the reply deadlines), ``time_scale()`` the wall seconds one second of
device time takes (1 for real hardware) and ``margin_s`` the fixed slack added to each
deadline.

:class:`SerialTransport` opens a serial port with pyserial. :class:`SimBoard`
(``--port sim:BUILD_DIR``) builds the build directory's :class:`rtl_gen.hostlink.HostLink`
in Verilator, runs it under the cocotb testbench :mod:`sim.tb_board` in a subprocess (its own
process group), which bridges the design's UART pins to a pseudo-terminal, and opens the
pseudo-terminal's slave with the same :class:`SerialTransport` a real board uses: the driver
cannot tell the two apart.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Transport", "SerialTransport", "SimBoard", "open_transport", "SIM_PREFIX"]

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


def _sim_tag(build_dir: Path, baud: int, netlist: str, frame_timeout_cycles) -> str:
    """Build cache key of the simulated board: everything HostLink.from_build depends on."""
    import hashlib

    from rtl_gen.top import TopConfig
    man = json.loads((build_dir / "manifest.json").read_text())
    # the RTL generator's sources are part of the key, so a cached simulator is reused without
    # regenerating the Verilog (seconds to minutes) and is never stale
    root = Path(__file__).resolve().parent.parent
    sources = hashlib.sha1()
    for f in sorted((root / "rtl_gen").glob("*.py")) + [root / "host" / "protocol.py"]:
        sources.update(f.name.encode() + f.read_bytes())
    key = {"top": TopConfig.from_build(build_dir).tag(), "hash": man["engine_config_hash"],
           "board": man["board"], "clock": man["clock_hz"], "input": man["input"]["shape"],
           "output": man["output"]["shape"], "baud": baud, "netlist": netlist,
           "frame_timeout": frame_timeout_cycles, "rtl": sources.hexdigest()}
    return "hostlink_" + hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


class SimBoard(Transport):
    """The simulated board of ``build_dir`` on a pseudo-terminal.

    The design is :meth:`rtl_gen.hostlink.HostLink.from_build` with the ``"word"`` pattern
    netlist (same registers and cycles as the synthesis form, ~100x faster to simulate) and
    8 clocks per bit (``baud = clock_hz // 8``); one Verilator build per configuration,
    cached under build/sim. ``baud`` and ``clock_hz`` are the simulated ones; ``time_scale()``
    follows the simulation speed the testbench measures (``rate`` below, simulated cycles/s)."""

    START_TIMEOUT_S = 180.0
    STATUS_FILE = "status.json"
    PTY_FILE = "pty.txt"

    def __init__(self, build_dir, *, netlist: str = "word", frame_timeout_cycles: int | None = None,
                 log=print):
        self.build_dir = Path(build_dir).resolve()
        man_path = self.build_dir / "manifest.json"
        if not man_path.is_file():
            raise FileNotFoundError(f"{man_path} is missing: not a build directory of `sephw compile`")
        man = json.loads(man_path.read_text())
        self.clock_hz = int(man["clock_hz"])
        self.baud = self.clock_hz // 8
        self.description = f"{SIM_PREFIX}{self.build_dir}"
        self.margin_s = 2.0
        self._log = log
        self._proc = None
        self._serial = None
        self._run_dir = None
        self._closed = False
        atexit.register(self.close)
        try:
            self._start(netlist, frame_timeout_cycles)
        except BaseException:
            self.close()
            raise

    # -- start and stop ---------------------------------------------------------------------
    def _start(self, netlist: str, frame_timeout_cycles) -> None:
        from rtl_gen.hostlink import HostLink
        from sim.runner import BUILD_ROOT, TOPLEVEL, build_component, simulator
        tag = _sim_tag(self.build_dir, self.baud, netlist, frame_timeout_cycles)
        t0 = time.perf_counter()
        # a speed build (only the top's ports visible; the testbench touches nothing else)
        sim_dir = BUILD_ROOT / simulator() / (tag + "_speed" if simulator() == "verilator" else tag)
        exe, src = sim_dir / TOPLEVEL, sim_dir / f"{TOPLEVEL}.v"
        self.cached = simulator() == "verilator" and exe.is_file() and src.is_file() and \
            exe.stat().st_mtime >= src.stat().st_mtime
        if self.cached:
            self._log(f"[sim board] simulator cached in {sim_dir}")
        else:
            self._log(f"[sim board] building the simulator (HostLink around the top, {netlist} netlist, "
                      f"{self.clock_hz / 1e6:g} MHz, {self.baud} baud; Verilator: minutes the first time, "
                      f"cached in {sim_dir})")
            dut = HostLink.from_build(self.build_dir, baud=self.baud, clk_hz=self.clock_hz, netlist=netlist,
                                      frame_timeout_cycles=frame_timeout_cycles)
            _, sim_dir = build_component(dut, tag, speed=True)
        self.build_seconds = time.perf_counter() - t0
        self._log(f"[sim board] {'found' if self.cached else 'built'} in {self.build_seconds:.1f} s; "
                  f"starting the simulator")
        self._run_dir = Path(tempfile.mkdtemp(prefix="board_", dir=sim_dir))
        case = {"clk_hz": self.clock_hz, "baud": self.baud, "driver_pid": os.getpid(),
                "pty_file": str(self._run_dir / self.PTY_FILE),
                "status_file": str(self._run_dir / self.STATUS_FILE)}
        (self._run_dir / "case.json").write_text(json.dumps(case))
        self._sim_log = self._run_dir / "sim.log"
        code = ("import sys; from host.transport import _serve_board; "
                "_serve_board(sys.argv[1], sys.argv[2])")
        root = Path(__file__).resolve().parent.parent
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        with open(self._run_dir / "launcher.log", "wb") as out:
            self._proc = subprocess.Popen([sys.executable, "-c", code, str(sim_dir), str(self._run_dir)],
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=root, env=env, start_new_session=True)
        pty_file = Path(case["pty_file"])
        end = time.monotonic() + self.START_TIMEOUT_S
        while not pty_file.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"the simulated board exited ({self._proc.returncode}) before it "
                                   f"opened its pseudo-terminal:\n{self._tail()}")
            if time.monotonic() > end:
                raise RuntimeError(f"the simulated board did not start within {self.START_TIMEOUT_S:.0f} s:\n"
                                   f"{self._tail()}")
            time.sleep(0.05)
        slave = pty_file.read_text().strip()
        self._log(f"[sim board] running (pid {self._proc.pid}); UART on {slave}")
        # the same transport as a real board; the pty ignores the rate
        self._serial = SerialTransport(slave, 115200)

    def _tail(self, n: int = 3000) -> str:
        out = []
        for name in ("launcher.log", "sim.log"):
            p = self._run_dir / name if self._run_dir else None
            if p and p.exists():
                out.append(f"--- {p}\n" + p.read_text(errors="replace")[-n:])
        return "\n".join(out)

    def close(self) -> None:
        """Stop the simulator (its whole process group) and remove the run's files."""
        if self._closed:
            return
        self._closed = True
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:
                pass
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(timeout=5)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._proc.wait(timeout=5)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    # -- Transport ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._serial.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        return self._serial.read(n, timeout)

    def discard_input(self) -> bytes:
        return self._serial.discard_input()

    def status(self) -> dict:
        """The testbench's last report: simulated ``cycles``, ``rate`` (simulated cycles per
        wall second, recent) and ``rate_min`` (slowest recent interval)."""
        try:
            return json.loads((self._run_dir / self.STATUS_FILE).read_text())
        except (OSError, ValueError, TypeError):
            return {}

    def time_scale(self) -> float:
        """Wall seconds per simulated second, from the slowest recent simulation speed (a
        floor of 5,000 cycles/s before the first measurement)."""
        rate = self.status().get("rate_min") or 5000.0
        return self.clock_hz / max(rate, 1000.0)

    def diagnose(self) -> str:
        if self._proc is not None and self._proc.poll() is not None:
            return f"the simulator exited ({self._proc.returncode}):\n{self._tail()}"
        return ""


def _serve_board(sim_dir: str, run_dir: str) -> None:
    """Subprocess entry of :class:`SimBoard`: run :mod:`sim.tb_board` on the built design."""
    from sim.runner import TOPLEVEL, _Verilator, get_runner, setup_verilator, simulator
    if simulator() == "verilator":
        setup_verilator()
        runner = _Verilator()
    else:
        runner = get_runner(simulator())
    run_dir = Path(run_dir)
    runner.test(test_module="sim.tb_board", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=sim_dir, test_dir=run_dir,
                extra_env={"SEPHW_TB_CASE": str(run_dir / "case.json")}, log_file=run_dir / "sim.log")


def open_transport(port: str, baud: int | None = None, log=print) -> Transport:
    """``sim:BUILD_DIR`` -> :class:`SimBoard`; anything else is a serial port."""
    if port.startswith(SIM_PREFIX):
        return SimBoard(port[len(SIM_PREFIX):], log=log)
    return SerialTransport(port, baud or 3_000_000)
