"""The simulated board: a build directory's accelerator behind its host link, in Verilator,
its UART on a pseudo-terminal (``--port sim:BUILD_DIR``).

:class:`SimBoard` builds :class:`rtl_gen.system.System` (host link + accelerator) for the build's ArchConfig, runs
it under the cocotb testbench :mod:`sim.tb_board` in a subprocess (its own process group),
which bridges the design's UART pins to a pseudo-terminal, and opens the pseudo-terminal's
slave with the same :class:`host.transport.SerialTransport` a real board uses: the driver
(:class:`host.device.Device`) cannot tell the two apart. It lives here, not in host/, because
it needs the simulator and the RTL generator, which a host driving a real board has not got;
:func:`sephw.flows.run.open_device` picks it for ``sim:`` ports.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host.transport import SIM_PREFIX, SerialTransport, Transport
from sephw.arch import Manifest

__all__ = ["SimBoard", "board_dram", "board_system", "sim_tag"]

ROOT = Path(__file__).resolve().parent.parent
# the simulated board's UART: baud = clock_hz // 4, the fewest clocks per bit the UART takes
# (rtl_gen/uart.py MIN_CLOCKS_PER_BIT; was 8: a suite's LOADs into the simulated DRAM, 83 kB,
# took ~40 s of Verilator time at 8)
CLOCKS_PER_BIT = 4


def board_dram(man: Manifest) -> dict | None:
    """The simulated board's DRAM for a build that keeps words there: the behavioural memory's
    words (the next power of two of what the build uses: the external image, which the host
    loads, the spilled tensors after it and the input image in the DRAM's last words, which
    wrap onto the memory's last words) and read latency (the board's, which the cycle model
    assumed). None without external memory."""
    ext = man.get("external")
    if not man.arch.ext_words or not ext:
        return None
    wb = man.arch.ext_data_bits // 8
    words = sum(-(-int(n) // wb) for n in (ext["bytes"], ext.get("spill_bytes", 0), man.arch.input_bytes))
    return {"depth": 1 << max(1, (max(2, words) - 1).bit_length()), "latency": int(ext["read_latency"])}


def board_system(build_dir, netlist: str = "word", frame_timeout_cycles: int | None = None):
    """The simulated board's design: :meth:`rtl_gen.system.System.from_build` at the build's
    clock with :data:`CLOCKS_PER_BIT` clocks per bit, and for a build that keeps words in
    DRAM, a behavioural DRAM behind its ``ext`` port (:func:`board_dram`; empty: the host
    loads it). tests/test_rtl_hostlink.py drives the same design over its pins, so the two
    share one Verilator build (:func:`sim_tag`)."""
    from rtl_gen.system import System
    man = Manifest.read(build_dir)
    clock = man.arch.clock_hz
    system = System.from_build(build_dir, baud=clock // CLOCKS_PER_BIT, clk_hz=clock, netlist=netlist,
                               frame_timeout_cycles=frame_timeout_cycles)
    dram = board_dram(man)
    if dram is None:
        return system
    from sim.ext_top import WithExtMemory
    return WithExtMemory(system, system.arch, depth=dram["depth"], latency=dram["latency"])


def sim_tag(build_dir, netlist: str = "word", frame_timeout_cycles: int | None = None) -> str:
    """Build cache key of the simulated board: everything :meth:`System.from_build` depends
    on (the ArchConfig, the board name INFO reports, the link's settings) and the sources of
    the RTL generator and the hardware contract, so that a cached simulator is reused without
    regenerating the Verilog (seconds to minutes) and is never stale."""
    man = Manifest.read(build_dir)
    baud = man.arch.clock_hz // CLOCKS_PER_BIT
    sources = hashlib.sha1()
    for f in sorted((ROOT / "rtl_gen").glob("*.py")) + sorted((ROOT / "sephw" / "arch").glob("*.py")) + \
            [ROOT / "sim" / "ext_top.py"]:
        sources.update(f.parent.name.encode() + b"/" + f.name.encode() + f.read_bytes())
    key = {"arch": man.arch.tag(), "hash": man.arch_hash, "board": man.board, "baud": baud,
           "netlist": netlist, "frame_timeout": frame_timeout_cycles, "dram": board_dram(man),
           "sources": sources.hexdigest()}
    return "hostlink_" + hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


class SimBoard(Transport):
    """The simulated board of ``build_dir`` on a pseudo-terminal.

    The design is :meth:`rtl_gen.system.System.from_build` with the ``"word"`` pattern
    netlist (same registers and cycles as the synthesis form, ~100x faster to simulate) and
    :data:`CLOCKS_PER_BIT` clocks per bit; one Verilator build per configuration,
    cached under build/sim. ``baud`` and ``clock_hz`` are the simulated ones; ``time_scale()``
    follows the simulation speed the testbench measures (``rate`` below, simulated cycles/s)."""

    START_TIMEOUT_S = 180.0
    STATUS_FILE = "status.json"
    PTY_FILE = "pty.txt"

    def __init__(self, build_dir, *, netlist: str = "word", frame_timeout_cycles: int | None = None,
                 log=print):
        self.build_dir = Path(build_dir).resolve()
        # the clock the bitstream is built for: the board then reports the build's own hash
        self.clock_hz = Manifest.read(self.build_dir).arch.clock_hz
        self.baud = self.clock_hz // CLOCKS_PER_BIT
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
        from sim.runner import TOPLEVEL, build_component, build_dir_of, build_lock, simulator
        tag = sim_tag(self.build_dir, netlist, frame_timeout_cycles)
        t0 = time.perf_counter()
        # a speed build (only the top's ports visible; the testbench touches nothing else)
        sim_dir = build_dir_of(tag, speed=True)
        exe, src = sim_dir / TOPLEVEL, sim_dir / f"{TOPLEVEL}.v"
        with build_lock(sim_dir):          # not while another test worker builds it
            self.cached = simulator() == "verilator" and exe.is_file() and src.is_file() and \
                exe.stat().st_mtime >= src.stat().st_mtime
        if self.cached:
            self._log(f"[sim board] simulator cached in {sim_dir}")
        else:
            self._log(f"[sim board] building the simulator (host link + accelerator, {netlist} netlist, "
                      f"{self.clock_hz / 1e6:g} MHz, {self.baud} baud; Verilator: minutes the first time, "
                      f"cached in {sim_dir})")
            dut = board_system(self.build_dir, netlist, frame_timeout_cycles)
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
        code = ("import sys; from sim.simboard import _serve_board; "
                "_serve_board(sys.argv[1], sys.argv[2])")
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with open(self._run_dir / "launcher.log", "wb") as out:
            self._proc = subprocess.Popen([sys.executable, "-c", code, str(sim_dir), str(self._run_dir)],
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=ROOT, env=env, start_new_session=True)
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
    from sim.runner import TB_ENV, TOPLEVEL, _Verilator, get_runner, setup_verilator, simulator
    if simulator() == "verilator":
        setup_verilator()
        runner = _Verilator()
    else:
        runner = get_runner(simulator())
    run_dir = Path(run_dir)
    runner.test(test_module="sim.tb_board", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                build_dir=sim_dir, test_dir=run_dir,
                extra_env={**TB_ENV, "SEPHW_TB_CASE": str(run_dir / "case.json")}, log_file=run_dir / "sim.log")
