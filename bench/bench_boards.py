"""Board-build benchmark (issue 5): the accelerator + UART host link built for real boards.

For each (model, board): compile (``sephw.compiler.compile_graph``), then the board build
(``sephw.flows.boardbuild.board_build``): for arty-a7-35 the Vivado project, the Yosys
``synth_xilinx`` utilization against the part and the Artix-7 timing estimate of that netlist
(rtl_gen/xc7_timing.py, docs/timing.md), for ulx3s-85f the full open flow (yowasp
yosys -> nextpnr-ecp5 -> ecppack) with the bitstream size, nextpnr's utilisation and Fmax
(MODEL:BOARD@MHZ builds for that clock, the ECP5's PLL making it; issue 17's target is 75).
Models: the shipped Fashion-MNIST SEP-Net, the ResNet-20 pattern network of
bench/bench_compile.py (random weights, CIFAR shape), the small SEP-Net of the tests (random
weights, 8x8 input, 4-lane overlay), ``spill``: that network with every weight, spilled tensor
and its Program in the board's DRAM (the board top with LiteDRAM's controller: DDR3 on the Arty,
SDR SDRAM on the ULX3S), and ``sepnet224``: SEP-Net-small at 224x224 (bench/bench_sepnet.py).

Run: .venv/bin/python bench/bench_boards.py [--cases shipped:arty-a7-35 small:ulx3s-85f@75 ...]
     .venv/bin/python bench/bench_boards.py --name boards_dram --cases spill:arty-a7-35 spill:ulx3s-85f@50 ...
     .venv/bin/python bench/bench_boards.py --name boards_seeds --cases small:ulx3s-85f@75#1 small:ulx3s-85f@75#2 ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402

import boards  # noqa: E402
from sephw import binarize, models, quantize  # noqa: E402
from sephw.flows.compile import board_at_clock  # noqa: E402
from sephw.flows.boardbuild import TimingNotMet, board_build  # noqa: E402
from sephw.compiler import compile_graph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMALL_ENGINE = dict(lanes=4, pe_cin=4, mac_cols=4, packed=False, pp_units=1)
DEFAULT_CASES = ["shipped:arty-a7-35", "resnet20:arty-a7-35", "small:ulx3s-85f@75", "shipped:ulx3s-85f@75"]


def small_graph():
    """The small SEP-Net of tests/conftest.py (random weights)."""
    torch.manual_seed(0)
    m = models.build("sepnet-small", in_channels=1, num_classes=10, stem="small", width=0.25).eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return quantize.quantize(m, calib)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=DEFAULT_CASES,
                    help="MODEL:BOARD or MODEL:BOARD@MHZ, built for that clock (ECP5: from the PLL), "
                         "each with an optional #SEED: nextpnr's seed (the spread over seeds is summarised); "
                         "model: shipped, resnet20, small, spill or sepnet224")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_boards"), help="build directories")
    ap.add_argument("--name", default="boards",
                    help="results file in bench/results (default boards; boards_dram: the builds with DRAM)")
    ap.add_argument("--merge", nargs="*", default=[], metavar="RESULTS_JSON",
                    help="earlier results of this bench (bench/results/NAME.json, its .md beside it): their "
                         "cases that this run does not build are kept, each with the git commit, date and "
                         "command it was measured with (an hour-long ECP5 case need not be rebuilt with the "
                         "quick ones)")
    a = ap.parse_args()
    results, rows = {}, []
    kept, kept_rows = _kept_cases(a.merge, a.cases)
    for case in a.cases:
        model, board = case.split(":")
        board, _, seed = board.partition("#")
        board, _, mhz = board.partition("@")
        board = boards.get(board)
        if mhz:                     # MODEL:BOARD@MHZ: built for that clock (ECP5: the PLL's)
            board = board_at_clock(board, float(mhz))
        if seed:                    # ...#SEED: nextpnr's seed (another placement of the netlist)
            board = dataclasses.replace(board, seed=int(seed))
        if model == "shipped":
            graph = quantize.load_graph(ROOT / "models" / "sepnet_fmnist_q.pt")
        elif model == "resnet20":
            from bench_compile import resnet20_graph
            graph = resnet20_graph()
        elif model == "sepnet224":
            from bench_sepnet import sepnet_graph
            graph = sepnet_graph(224)
        else:
            graph = small_graph()
        out = Path(a.out) / case.replace(":", "_").replace("@", "_").replace("#", "_seed")
        t0 = time.perf_counter()
        _, rep = compile_graph(graph, board, out, engine=SMALL_ENGINE if model in ("small", "spill") else None,
                               placement="spill" if model == "spill" else "auto")
        print(f"== {case}: compiled ({rep['engine_config']})", flush=True)
        try:
            bb = board_build(out, board, synth=True)
        except TimingNotMet as e:          # recorded (board_build.json), not fatal to the bench
            print(f"   {e}", flush=True)
            bb = json.loads((out / "board_build.json").read_text())
        secs = time.perf_counter() - t0
        bb.pop("files", None)
        if "estimate" in bb:
            bb["estimate"].pop("cells", None)
        for p in bb.get("timing", {}).get("paths", []):
            p.pop("stages", None)
        results[case] = {"engine_config": rep["engine_config"], "cycles_per_inference": rep["cycles_per_inference"],
                         "compiler_estimate": {k: rep["resources"][k] for k in ("lut", "ff", "dsp", "bram_blocks")}
                         | {"lutram_luts": rep["resources"].get("lutram_luts")},
                         "board_build": bb, "clock_reached": rep_clock(out), "seconds": round(secs, 1)}
        ec = rep["engine_config"]
        dram = f", with LiteDRAM {bb['dram_controller']['phy']}" if bb.get("dram_controller") else ""
        overlay = f"{ec['lanes']}L x {ec['pe_cin']}c k{ec['k_max']}, MAC {ec['lanes']}x{ec['mac_cols']}"
        if "estimate" in bb:
            e = bb["estimate"]
            res = (f"LUT {e['lut']:,}/{e['budget']['lut']:,}, FF {e['ff']:,}, DSP {e['dsp']}/{e['budget']['dsp']}, "
                   f"BRAM36 {e['bram_blocks']}/{e['budget']['bram_blocks']}")
            t = bb["timing"]
            fmax = (f"estimate: worst path {t['worst_ns']:.2f} ns, {t['lut_levels']} LUT levels = {t['fmax_mhz']} MHz "
                    f"(pessimistic {t['pessimistic_worst_ns']:.2f} ns); `{t['paths'][0]['from']}` -> "
                    f"`{t['paths'][0]['to']}`")
            rows.append([case, overlay, "Yosys synth_xilinx + timing estimate" + dram, res,
                         "fits" if e["fits"] else "DOES NOT FIT", fmax, "Vivado project (no Vivado here)",
                         _speed(rep, out), f"{secs:.0f}"])
        else:
            u = bb.get("utilisation", {})
            res = ", ".join(f"{k} {v['used']:,}/{v['available']:,}" for k, v in u.items()
                            if k in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD"))
            fm = "; ".join(f"{v['mhz']:.1f} MHz ({'PASS' if v['pass'] else 'FAIL'} at {v['target_mhz']:g})"
                           for v in bb.get("fmax", {}).values())
            rows.append([case, overlay, "yosys + nextpnr-ecp5 (placed and routed)" + dram, res, "fits (routed)",
                         fm, f"{bb.get('bitstream_bytes'):,} bytes" if bb.get("bitstream_bytes") else "none",
                         _speed(rep, out), f"{secs:.0f}"])
        print(f"   {rows[-1]}", flush=True)
        _write(a, results, rows, kept, kept_rows)
    if not a.cases:
        _write(a, results, rows, kept, kept_rows)


def _kept_cases(paths: list[str], building: list[str]) -> tuple[dict, list[list]]:
    """The cases of earlier results files (``--merge``) this run does not build: their JSON
    entries (with the run's ``git``, ``date`` and ``command`` added) and their Markdown rows
    as that run wrote them."""
    kept, rows = {}, []
    for p in map(Path, paths):
        try:
            old = json.loads(p.read_text())
            md = p.with_suffix(".md").read_text().splitlines()
        except (OSError, ValueError) as e:
            raise SystemExit(f"--merge {p}: {e}")
        for case, r in old.get("results", {}).items():
            if case in building or case in kept:
                continue
            row = next((l for l in md if l.startswith(f"| {case} |")), None)
            if row is None:
                raise SystemExit(f"--merge {p}: no row for {case} in {p.with_suffix('.md')}")
            # (a case the earlier run had itself kept from another keeps where it was measured)
            kept[case] = {**r, "measured": r.get("measured") or {k: old.get(k) for k in ("git", "date", "command",
                                                                                         "machine")}}
            rows.append([c.strip() for c in row.strip().strip("|").split("|")])
    return kept, rows


def seed_spread(results: dict) -> list[str]:
    """Per ECP5 case built with several nextpnr seeds (``MODEL:BOARD@MHZ#SEED``; no ``#``:
    nextpnr's default seed): the routed Fmax's minimum, median and maximum over the seeds
    and the flow's seconds, one sentence each."""
    runs: dict[str, list] = {}
    for case, r in results.items():
        fm = r.get("board_build", {}).get("fmax") or {}
        if not fm:
            continue
        base, _, seed = case.partition("#")
        runs.setdefault(base, []).append((seed or "default", min(v["mhz"] for v in fm.values()),
                                          r["board_build"].get("flow_seconds")))
    out = []
    for base, rs in runs.items():
        if len(rs) < 2:
            continue
        mhz = sorted(m for _, m, _ in rs)
        secs = [t for _, _, t in rs if t]
        out.append(f"{base} over {len(rs)} seeds ({', '.join(s for s, _, _ in rs)}): routed Fmax "
                   f"{mhz[0]:.1f} / {statistics.median(mhz):.1f} / {mhz[-1]:.1f} MHz (min / median / max)"
                   + (f", flow {min(secs):,.0f} to {max(secs):,.0f} s" if secs else ""))
    return out


def _write(a, results: dict, rows: list[list], kept: dict, kept_rows: list[list]) -> None:
    notes = "".join(f"{line}.\n\n" for line in seed_spread({**results, **kept}))
    if kept:
        notes += "Kept from earlier runs (`--merge`; not rebuilt by the command above): " + "; ".join(
            f"{case} measured at git {r['measured']['git']} on {r['measured']['date']} "
            f"(`{r['measured']['command']}`)" for case, r in kept.items()) + ".\n\n"
    results_io.write(
        a.name, {"results": {**results, **kept}},
        ["model:board", "overlay", "tool", "resources", "fit", "Fmax", "bitstream", "cycles, FPS at the clock reached",
         "seconds"], rows + kept_rows,
        command="python bench/bench_boards.py " + " ".join(sys.argv[1:]),
        notes=notes + "The board top is rtl_gen/board.py: the accelerator behind its UART host link "
              "(docs/protocol.md) on the board's clock, UART pins and two LEDs; a build keeping words in "
              "DRAM (spill, sepnet224) also holds LiteDRAM's controller (docs/dram.md: the Arty's A7DDRPHY at "
              "100 MHz, behind clock-domain crossings when the case names another clock; the ULX3S's "
              "GENSDRPHY on the design's clock). Xilinx: the "
              "Vivado project is emitted by amaranth-boards; without Vivado the utilization is "
              "Yosys synth_xilinx with ABC LUT mapping (LUTRAM counted in LUTs). ECP5: the full "
              "open flow; Fmax is nextpnr's after routing, constrained to the clock the case names "
              "(MODEL:BOARD@MHZ: the ECP5 PLL's output; without it the board's 25 MHz oscillator); "
              "a FAIL is recorded, not fatal. "
              "Artix-7 Fmax: the timing estimate of the synthesized netlist (typical corner; "
              "docs/timing.md), no placement or routing. FPS: the predicted cycles at the clock the "
              "build reaches (report.json clock_reached).")


def rep_clock(build_dir: Path) -> dict:
    """report.json's clock_reached after the board build."""
    import json
    return json.loads((build_dir / "report.json").read_text()).get("clock_reached", {})


def _speed(rep: dict, build_dir: Path) -> str:
    c = rep_clock(build_dir)
    return (f"{rep['cycles_per_inference']:,} cycles; {c['fps']:,.0f} FPS at {c['hz'] / 1e6:g} MHz "
            f"({rep['fps']:,.0f} at the nominal {rep['clock_hz'] / 1e6:g} MHz)")


if __name__ == "__main__":
    main()
