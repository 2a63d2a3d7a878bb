"""sephw.compiler.plots: the compile report's PNGs (timeline, cycles per layer, memory map) and
`sephw simulate`'s measured-vs-predicted plot. The drawn bars are read back from the returned
figures and compared with the schedule, the report rows and the IR (not with the plot code's
own sums)."""
from __future__ import annotations

import json
import shutil
import struct

import pytest
import torch
import yaml
from conftest import SMALL_ENGINE

from sephw.compiler import Op, compile_graph, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# (name, file, width px, height px or None where it grows with the layers)
COMPILE_PLOTS = (("timeline", "plots/timeline.png", 1600, 800),
                 ("cycles_by_layer", "plots/cycles_by_layer.png", 1400, None),
                 ("memory_map", "plots/memory_map.png", 1400, 900))


@pytest.fixture(scope="module")
def small_ir(sepnet_build):
    """The CompileIR of conftest's small SEP-Net build (same graph, board and overlay)."""
    g, d, rep = sepnet_build
    ir, _ = compile_graph(g, "arty-a7-35", None, engine=SMALL_ENGINE)
    assert ir.cycles == rep["cycles_per_inference"]
    return ir


def _png_size(path) -> tuple[int, int]:
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC, path
    assert blob[12:16] == b"IHDR"
    return struct.unpack(">II", blob[16:24])


def _bars(collection) -> list[tuple[float, float, float]]:
    """``(x0, x1, y centre)`` of every rectangle of a broken_barh collection."""
    out = []
    for p in collection.get_paths():
        v = p.vertices
        out.append((v[:, 0].min(), v[:, 0].max(), (v[:, 1].min() + v[:, 1].max()) / 2))
    return out


def _patches(ax, gid: str) -> list:
    return [p for p in ax.patches if p.get_gid() == gid]


# --------------------------------------------------------------------------- the build directory
@pytest.mark.parametrize("name,rel,width,height", COMPILE_PLOTS)
def test_compile_writes_plots_into_report(sepnet_build, name, rel, width, height):
    import matplotlib.image as mpimg
    _, d, rep = sepnet_build
    path = d / rel
    assert path.is_file() and path.stat().st_size > 10_000, path
    w, h = _png_size(path)
    assert w == width and (height is None or h == height), (w, h)
    img = mpimg.imread(path)
    assert img.shape[:2] == (h, w) and img.shape[2] in (3, 4)
    assert img.std() > 0.05        # not a blank canvas
    # report.json lists it, report.md embeds it
    assert json.loads((d / "report.json").read_text())["plots"][name] == rel
    assert rep["plots"][name] == rel
    assert f"]({rel})" in (d / "report.md").read_text()


def test_cycles_by_layer_height_grows_with_layers(sepnet_build):
    _, d, rep = sepnet_build
    _, h = _png_size(d / "plots/cycles_by_layer.png")
    n = sum(1 for r in rep["layers"] if r["tiles"])
    assert h >= 100 * 0.32 * n


# --------------------------------------------------------------------------- timeline
def test_timeline_draws_pattern_and_mac_busy_over_the_same_prb_cycles(small_ir, tmp_path):
    sched = small_ir.schedule
    fig = plots.unit_timeline([s.as_dict() for s in sched], tmp_path / "t.png", clock_hz=small_ir.board.clock_hz)
    ax = fig.axes[0]
    lanes = {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("unit:")}
    # one collection per lane however many instructions (what keeps big programs fast)
    assert sorted(lanes) == sorted(f"unit:{u}" for u in {k for s in sched for k in s.busy})
    assert len([c for c in ax.collections if c.get_gid() == "unit:pattern"]) == 1
    ticks = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    pat, mac = _bars(lanes["unit:pattern"]), _bars(lanes["unit:mac"])
    # every bar sits on its unit's labelled lane
    assert {round(y, 6) for *_, y in pat} == {ticks["pattern engine"]}
    assert {round(y, 6) for *_, y in mac} == {ticks["MAC array"]}
    assert len(pat) == sum(1 for s in sched if s.busy.get("pattern", 0) > 0)
    prbs = [s for s in sched if s.op == Op.PRB]
    assert prbs
    for s in prbs:
        t0 = s.start
        p = [b for b in pat if b[0] == t0]
        m = [b for b in mac if b[0] == t0]
        assert len(p) == 1 and len(m) == 1, s
        assert p[0][1] - t0 == min(s.busy["pattern"], s.cycles)
        assert m[0][1] - t0 == min(s.busy["mac"], s.cycles)
        # the two engines overlap on the tile: their bars share cycles
        assert min(p[0][1], m[0][1]) > t0
    # the zoom panel shows a PRB window with both engines' bars
    z = fig.axes[1]
    x0, x1 = z.get_xlim()
    zp = [b for c in z.collections if c.get_gid() == "unit:pattern" for b in _bars(c)]
    zm = [b for c in z.collections if c.get_gid() == "unit:mac" for b in _bars(c)]
    assert any(x0 <= b[0] < x1 and any(m[0] == b[0] for m in zm) for b in zp)


def test_timeline_issue_lane_covers_the_whole_program(small_ir, tmp_path):
    fig = plots.unit_timeline([s.as_dict() for s in small_ir.schedule], tmp_path / "t.png")
    bars = sorted(b for c in fig.axes[0].collections if c.get_gid() == "issue" for b in _bars(c))
    assert len(bars) == len(small_ir.instructions)
    assert bars[0][0] == 0 and bars[-1][1] == small_ir.cycles
    assert all(a[1] == b[0] for a, b in zip(bars, bars[1:]))     # in-order issue, no gaps


# --------------------------------------------------------------------------- cycles per layer
def test_cycles_by_layer_bars_match_report_rows(sepnet_build, tmp_path):
    """The bars are report.json's layer rows: the busiest unit's busy cycles (pattern engine,
    MAC array or post-process), memory (DMA) and the rest add up to the layer's cycles, and
    each label gives the row's ``bound``; PRB layers show the MAC array's concurrent busy
    cycles as a thin bar inside."""
    _, _, rep = sepnet_build
    rows = {r["name"]: r for r in rep["layers"] if r["cycles"]}
    fig = plots.cycles_by_layer(rep["layers"], tmp_path / "c.png", per_inference=rep["cycles_per_inference"])
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(names) == sorted(rows)
    width = {gid: {round(p.get_y() + p.get_height() / 2): p.get_width() for p in _patches(ax, gid)}
             for gid in ("busiest", "memory", "rest")}
    labels = {round(t.get_position()[1]): t.get_text() for t in ax.texts}
    for y, name in enumerate(names):
        r = rows[name]
        # the report's bound is the largest part (emit.layer_rows), which the label repeats
        parts = {"compute": max(r["pattern_busy"], r["mac_busy"]), "post-process": r["pp_busy"],
                 "memory": r["dma_cycles"]}
        parts["gather"] = r["cycles"] - max(parts["compute"], parts["post-process"]) - r["dma_cycles"]
        assert r["bound"] == max(parts, key=parts.get), (name, parts)
        assert width["busiest"][y] + width["memory"][y] + width["rest"][y] == r["cycles"], name
        assert width["busiest"][y] == min(r["cycles"], max(r["pattern_busy"], r["mac_busy"], r["pp_busy"])), name
        assert labels[y].split(": ", 1)[1].split(";")[0] == f"{r['bound']}-bound", (name, labels[y])
    assert {r["bound"] for r in rows.values()} >= {"compute", "gather"}
    thin = {round(p.get_y() + p.get_height() / 2 - 0.22): p.get_width() for p in _patches(ax, "other:mac")}
    prb = [y for y, n in enumerate(names) if ".prb" in n]
    assert prb and all(thin[y] == rows[names[y]]["mac_busy"] for y in prb)


def test_cycles_by_layer_draws_each_bound(tmp_path):
    """A compute-, a memory-, a post-process- and a gather-bound layer (rows as report.json
    gives them): each bar's three parts and its label, the busiest unit in its colour, the
    others as thin bars; layers without cycles are left out."""
    from matplotlib.colors import to_rgb
    row = lambda name, cyc, pat, mac, pp, dma, bound: dict(name=name, cycles=cyc, pattern_busy=pat, mac_busy=mac,
                                                           pp_busy=pp, dma_cycles=dma, bound=bound)
    rows = [row("a", 100, 95, 0, 40, 0, "compute"), row("b", 100, 20, 30, 10, 60, "memory"),
            row("c", 80, 0, 30, 70, 0, "post-process"), row("d", 50, 0, 10, 5, 0, "gather"),
            row("input", 0, 0, 0, 0, 0, "")]
    fig = plots.cycles_by_layer(rows, tmp_path / "c.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    w = {gid: [p.get_width() for p in _patches(ax, gid)] for gid in ("busiest", "memory", "rest")}
    assert w == {"busiest": [95, 30, 70, 10], "memory": [0, 60, 0, 0], "rest": [5, 10, 10, 40]}
    colors = [p.get_facecolor()[:3] for p in _patches(ax, "busiest")]
    assert colors[1] == pytest.approx(to_rgb(plots.UNIT_COLORS["mac"]))
    assert colors[2] == pytest.approx(to_rgb(plots.UNIT_COLORS["pp"]))
    labels = sorted((t.get_position()[1], t.get_text(), t.get_fontweight()) for t in ax.texts)
    assert [(l.split(": ")[1].split(";")[0], wt) for _, l, wt in labels] == [
        ("compute-bound", "bold"), ("memory-bound", "normal"), ("post-process-bound", "normal"),
        ("gather-bound", "normal")]
    assert [p.get_width() for p in _patches(ax, "other:pattern")] == [20]
    assert [p.get_width() for p in _patches(ax, "other:mac")] == [30]     # c: the MAC array beside its post-process
    assert [p.get_width() for p in _patches(ax, "other:pp")] == [40, 10, 5]


# --------------------------------------------------------------------------- memory map
def test_memory_map_regions_and_tensors_at_their_addresses(small_ir, tmp_path):
    ir = small_ir
    tensors = [{"name": t.name, "base": t.base, "bytes": t.nbytes, "live": tuple(t.live)} for t in ir.tensors.values()]
    fig = plots.memory_map(dict(ir.onchip), ir.budget, tensors, tmp_path / "m.png",
                           layer_names=[lay.name for lay in ir.layers])
    ax, ax2 = fig.axes
    left = 0
    for name, nbytes in ir.onchip.items():
        (p,) = _patches(ax, f"region:{name}")
        assert (p.get_x(), p.get_width()) == (left, nbytes), name
        left += nbytes
    (budget,) = _patches(ax, "budget")
    assert budget.get_width() == ir.budget and left <= ir.budget
    for t in ir.tensors.values():
        (p,) = _patches(ax2, f"tensor:{t.name}")
        assert (p.get_x(), p.get_width()) == (t.base, t.nbytes), t.name
        assert p.get_y() < t.live[0] and p.get_y() + p.get_height() > t.live[1]
    assert ax2.get_xlim()[1] == ir.memory["activations"].nbytes


# --------------------------------------------------------------------------- sephw simulate
def _per_layer(sched, cycles) -> dict:
    out = {}
    for s, c in zip(sched, cycles):
        name = s.get("layer") or "(SYNC / END)"
        out[name] = out.get(name, 0) + c
    return out


def test_measured_vs_predicted_per_layer(sepnet_build, tmp_path):
    _, d, _ = sepnet_build
    sched = yaml.safe_load((d / "schedule.yaml").read_text())["instructions"]
    measured = [s["cycles"] + s["index"] % 3 for s in sched]
    fig = plots.measured_vs_predicted(sched, tmp_path / "mvp.png", measured=measured)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    pred = {round(p.get_y() + p.get_height() / 2 + 0.2): p.get_width() for p in _patches(ax, "predicted")}
    meas = {round(p.get_y() + p.get_height() / 2 - 0.2): p.get_width() for p in _patches(ax, "measured")}
    want_p, want_m = _per_layer(sched, [s["cycles"] for s in sched]), _per_layer(sched, measured)
    assert sorted(names) == sorted(want_p)
    for y, n in enumerate(names):
        assert (pred[y], meas[y]) == (want_p[n], want_m[n]), n
    with pytest.raises(ValueError, match="measured instruction cycles"):
        plots.measured_vs_predicted(sched, tmp_path / "x.png", measured=measured[:-1])


def test_measured_vs_predicted_totals_only(sepnet_build, tmp_path):
    _, d, rep = sepnet_build
    sched = yaml.safe_load((d / "schedule.yaml").read_text())["instructions"]
    fig = plots.measured_vs_predicted(sched, tmp_path / "mvp.png", image_cycles=[100, 200, 300])
    ax = fig.axes[0]
    assert [p.get_height() for p in _patches(ax, "measured")] == [100, 200, 300]
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "predicted"]
    assert set(line.get_ydata()) == {rep["cycles_per_inference"]}
    assert "totals only" in ax.get_title()


@pytest.mark.parametrize("per_instruction", [True, False])
def test_simulate_writes_the_plot(sepnet_build, tmp_path, monkeypatch, per_instruction):
    """`sephw simulate` with the Verilator run replaced by its result (logits equal to the
    reference, measured cycles per instruction or per image only)."""
    import sephw.flows.simulate as simulate
    import sim.top_driver
    g, d, rep = sepnet_build
    b = tmp_path / "build"
    shutil.copytree(d, b)
    shutil.rmtree(b / "plots")
    sched = yaml.safe_load((b / "schedule.yaml").read_text())["instructions"]
    x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    exp = torch.arange(20, dtype=torch.int64).reshape(2, 10)
    monkeypatch.setattr(simulate, "test_images_and_reference",
                        lambda *a, **k: ("fashion-mnist", x, torch.tensor([9, 9]), exp))
    per_ins = [s["cycles"] + 1 for s in sched]

    def run_top(build_dir, images, expected):
        res = {"logits": expected.tolist(), "cycles": [sum(per_ins)] * len(images)}
        if per_instruction:
            res["instruction_cycles"] = [per_ins] * len(images)
        return res
    monkeypatch.setattr(sim.top_driver, "run_top", run_top)
    r = simulate.simulate(b, 2, log=lambda *a: None)
    assert r["bit_exact_images"] == 2
    plot = b / "plots" / "measured_vs_predicted.png"
    assert r["plot"] == str(plot) and plot.is_file()
    w, h = _png_size(plot)
    assert w == 1400 and (h == 500) != per_instruction     # per layer: grows with the layers


def test_importing_plots_does_not_import_matplotlib():
    import subprocess
    import sys
    code = "import sys, sephw.compiler.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
