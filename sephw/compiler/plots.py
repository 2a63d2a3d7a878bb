"""Plots of a compiled Program: unit timeline, cycles per layer, on-chip memory map, and the
measured-vs-predicted cycles of `sephw simulate`.

Every function takes plain data (the schedule's instruction dicts as in schedule.yaml, which
:meth:`~sephw.compiler.ir.ScheduleEntry.as_dict` gives for ``CompileIR.schedule``, memory
regions and tensors), draws on a matplotlib ``Figure`` with the Agg canvas (no pyplot: no
global backend or figure registry), writes a PNG of a fixed pixel size and returns the Figure
so callers and tests can read what was drawn. matplotlib is imported inside the functions, so
importing this module costs nothing.

The schedule's ``cycles`` are the RTL top's (hw.top_instruction_cycles); its ``busy`` cycles
per unit are the engine-level model's (hw.tile_cycles). The cycle model does not say which
of the gatherer, the pattern engine, the PostProcess or the writer bounds an instruction
(hw.top_instruction_cycles only returns the maximum), so layers are classified as a whole
(report.json's per-layer ``bound``, which :func:`cycles_by_layer` draws).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["DPI", "MAX_LAYERS", "UNIT_NAMES", "compile_plots", "cycles_by_layer", "measured_vs_predicted",
           "memory_map", "unit_timeline"]

DPI = 100
# schedule busy keys -> lane labels, top to bottom; unknown keys get a lane after these
UNIT_NAMES = {"gather": "gather", "pattern": "pattern engine", "mac": "MAC array", "pp": "post-process",
              "writer": "writer", "host_link": "host link (RX)"}
UNIT_COLORS = {"gather": "#8c564b", "pattern": "#1f77b4", "mac": "#ff7f0e", "pp": "#2ca02c",
               "writer": "#9467bd", "host_link": "#7f7f7f"}
SERIAL_OPS = {"LOAD": "#17becf", "STORE": "#bcbd22", "POOL_FC": "#e377c2"}
GATHER_COLOR = "#d9d9d9"
DMA_COLOR = "#17a589"
# Per-layer bar charts show at most this many layers (those with the most cycles, in Program
# order): more are neither readable nor quick to draw (each label is a text to render).
MAX_LAYERS = 60


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")     # no bbox_inches="tight": the size stays fixed
    return path


def _time_axis(ax, clock_hz: float | None) -> None:
    """A second x axis on top in microseconds at ``clock_hz``."""
    if clock_hz:
        sec = ax.secondary_xaxis("top", functions=(lambda c: c / clock_hz * 1e6, lambda us: us * clock_hz / 1e6))
        sec.set_xlabel(f"time (µs at {clock_hz / 1e6:g} MHz)")


def _thousands(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter
    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _lanes(schedule: list) -> list[str]:
    """Lane keys present in ``schedule``: busy units (known order first), then the serial ops."""
    units = {k for s in schedule for k, v in (s.get("busy") or {}).items() if v > 0}
    lanes = [k for k in UNIT_NAMES if k in units] + sorted(units - set(UNIT_NAMES))
    if any(s["op"] in SERIAL_OPS for s in schedule):
        lanes.append("serial")
    return lanes


def _draw_lanes(ax, schedule: list, lanes: list[str], layer_color: dict, edges: bool) -> None:
    """One ``broken_barh`` per lane (and per colour on the issue lane): bars of busy cycles from
    each instruction's start, and every instruction's span on the issue lane (y = 0). ``edges``:
    outline the bars (only where they are wide: thin bars would show their outlines only)."""
    import matplotlib.colors as mcolors
    lw = 0.4 if edges else 0
    by_color: dict = {}
    for s in schedule:
        by_color.setdefault(layer_color.get(s.get("layer") or "", "#bfbfbf"), []).append((s["start"], s["cycles"]))
    for c, iv in by_color.items():
        ax.broken_barh(iv, (-0.4, 0.8), facecolors=c, edgecolors="white", linewidth=lw, gid="issue")
    for y, lane in enumerate(lanes, start=1):
        if lane == "serial":
            for op, c in SERIAL_OPS.items():
                iv = [(s["start"], s["cycles"]) for s in schedule if s["op"] == op]
                if iv:
                    ax.broken_barh(iv, (y - 0.35, 0.7), facecolors=c, gid=f"op:{op}", label=op)
            continue
        iv = [(s["start"], min(s["busy"][lane], s["cycles"])) for s in schedule
              if (s.get("busy") or {}).get(lane, 0) > 0]
        ax.broken_barh(iv, (y - 0.35, 0.7), facecolors=UNIT_COLORS.get(lane, "#555555"),
                       edgecolors=mcolors.to_rgba("black", 0.25), linewidth=lw, gid=f"unit:{lane}",
                       label=UNIT_NAMES.get(lane, lane))
    ax.set_yticks(range(len(lanes) + 1),
                  ["issue (colour = layer)"] + [("LOAD / STORE / POOL_FC" if k == "serial" else UNIT_NAMES.get(k, k))
                                                for k in lanes])
    ax.set_ylim(len(lanes) + 0.6, -0.6)
    ax.grid(axis="x", alpha=0.3)


def _zoom_window(schedule: list) -> tuple[int, int] | None:
    """Instructions ``[i, j)`` around the first one with two engines busy on the same tile
    (a PRB, or a RESADD with a pattern main branch and a 1x1 projection)."""
    for k, s in enumerate(schedule):
        busy = s.get("busy") or {}
        if busy.get("pattern", 0) > 0 and busy.get("mac", 0) > 0:
            return max(0, k - 1), min(len(schedule), k + 3)
    return None


def unit_timeline(schedule: list, path, clock_hz: float | None = None, title: str | None = None):
    """Per-instruction timeline: x = cycles on the RTL top, one lane per unit.

    ``schedule``: instruction dicts with ``index``, ``op``, ``start``, ``cycles`` (RTL top) and
    optionally ``layer`` and ``busy`` ({unit: engine-level busy cycles}). Each instruction's busy
    cycles are drawn as a bar from its start on its unit's lane, so a PRB tile shows the pattern
    engine and the MAC array busy over the same cycles; the issue lane shows every instruction's
    span coloured by layer. A second panel zooms on the first instruction with both engines busy.
    One ``broken_barh`` per lane and colour (each bar's lane is its collection's gid,
    ``unit:<key>``), so thousands of instructions draw in about a second. Writes a
    1600 x 800 px PNG to ``path``; returns the Figure."""
    lanes = _lanes(schedule)
    layers = list(dict.fromkeys(s.get("layer") or "" for s in schedule if s.get("layer")))
    import matplotlib
    cmap = matplotlib.colormaps["Set3"]      # pastel: apart from the units' saturated colours
    layer_color = {n: cmap(i % 12) for i, n in enumerate(layers)}
    zoom = _zoom_window(schedule)
    fig = _figure(16, 8)
    axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1], "hspace": 0.55}) if zoom else [fig.subplots()]
    end = max((s["start"] + s["cycles"] for s in schedule), default=1)
    # the zoom draws its window's bars only
    for ax, part in zip(axes, [schedule, schedule[zoom[0]:zoom[1]] if zoom else []]):
        _draw_lanes(ax, part, lanes, layer_color, edges=ax is not axes[0] or len(schedule) <= 50)
        ax.set_xlabel("cycles (RTL top cycle model)")
        _thousands(ax)
    axes[0].set_xlim(0, end)
    _time_axis(axes[0], clock_hz)
    axes[0].set_title(title or f"Unit timeline: {len(schedule)} instructions, {end:,} cycles per inference "
                               f"(bars: each unit's busy cycles, engine-level model, from the instruction's start)",
                      fontsize=11, pad=12 if clock_hz else 6)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=9, frameon=False)
    if zoom:
        i, j = zoom
        ax = axes[1]
        win = schedule[i:j]
        x0, x1 = win[0]["start"], win[-1]["start"] + win[-1]["cycles"]
        ax.set_xlim(x0, x1)
        ax.set_title(f"Zoom: instructions {win[0]['index']}..{win[-1]['index']} (pattern engine and MAC array "
                     f"busy on the same tile at the same time)", fontsize=11)
        for s in win:
            if s["cycles"] > 0.08 * (x1 - x0):
                ax.text(s["start"] + s["cycles"] / 2, 0, f"#{s['index']} {s['op']}\n{s.get('layer') or ''}",
                        ha="center", va="center", fontsize=8, clip_on=True)
    _save(fig, path)
    return fig


def _largest(rows: list, key, n: int = MAX_LAYERS) -> tuple[list, list]:
    """``(shown, hidden)``: the ``n`` rows with the largest ``key``, in their original order."""
    if len(rows) <= n:
        return rows, []
    keep = set(sorted(range(len(rows)), key=lambda i: -key(rows[i]))[:n])
    return [r for i, r in enumerate(rows) if i in keep], [r for i, r in enumerate(rows) if i not in keep]


def _hidden_note(hidden: list, key=lambda r: r["cycles"]) -> str:
    return f"; {len(hidden)} smaller layers ({sum(key(r) for r in hidden):,} cycles) not shown" if hidden else ""


def cycles_by_layer(layers: list, path, clock_hz: float | None = None, per_inference: int | None = None):
    """Predicted cycles per layer (RTL top), one horizontal bar per layer: ``layers`` are
    report.json's layer rows (``name``, ``cycles``, ``pattern_busy``, ``mac_busy``,
    ``pp_busy``, ``dma_cycles``, ``bound``; rows without cycles are left out). Each bar is split
    as the report classifies the layer (emit.layer_rows): the busiest unit's busy cycles
    (pattern engine, MAC array or post-process, engine-level model, coloured by unit), memory
    (DMA: loads, spills, waits for words; teal) and the rest, gather / control / pipeline fill
    (grey, hatched); the label gives the layer's ``bound`` (bold: compute-bound). The other
    units' busy cycles are thin bars inside (the MAC array under a PRB's pattern engine above
    the middle, the post-process below it). ``per_inference``: the Program's cycles (with SYNC /
    END) for the title. Writes a 1400 px wide PNG (0.32 in per layer high) to ``path``; returns
    the Figure."""
    all_rows = [r for r in layers if r["cycles"] > 0]
    in_layers = sum(r["cycles"] for r in all_rows) or 1
    rows, hidden = _largest(all_rows, lambda r: r["cycles"])
    n = max(1, len(rows))
    fig = _figure(14, min(40.0, 2.6 + 0.32 * n))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.17, right=0.97, top=1 - 1.6 / fig.get_figheight(), bottom=0.75 / fig.get_figheight())
    y = list(range(len(rows)))
    busy = [{"pattern": r["pattern_busy"], "mac": r["mac_busy"], "pp": r["pp_busy"]} for r in rows]
    engine = [max(b, key=b.get) for b in busy]           # ties: the pattern engine, then the MAC array
    comp = [min(b[e], r["cycles"]) for r, b, e in zip(rows, busy, engine)]
    mem = [min(r["dma_cycles"], r["cycles"] - c) for r, c in zip(rows, comp)]
    rest = [r["cycles"] - c - m for r, c, m in zip(rows, comp, mem)]
    ax.barh(y, comp, color=[UNIT_COLORS[e] for e in engine], height=0.7, gid="busiest")
    ax.barh(y, mem, left=comp, color=DMA_COLOR, height=0.7, gid="memory")
    ax.barh(y, rest, left=[c + m for c, m in zip(comp, mem)], color=GATHER_COLOR, height=0.7, hatch="//",
            edgecolor="#a0a0a0", linewidth=0, gid="rest")
    for k, off in (("pattern", 0.22), ("mac", 0.22), ("pp", -0.22)):      # the units busy beside it
        yk = [yi for yi, b, e in zip(y, busy, engine) if e != k and b[k] > 0]
        wk = [min(busy[yi][k], rows[yi]["cycles"]) for yi in yk]
        if yk:
            ax.barh([yi + off for yi in yk], wk, height=0.18, color=UNIT_COLORS[k], edgecolor="black",
                    linewidth=0.4, gid=f"other:{k}")
    for yi, r, e, c, m in zip(y, rows, engine, comp, mem):
        cyc = r["cycles"]
        parts = ([f"{UNIT_NAMES[e]} {c / cyc:.0%}"] if c else []) + ([f"memory {m / cyc:.0%}"] if m else [])
        label = f"  {cyc:,} ({cyc / in_layers:.0%}): {r['bound']}-bound" + ("; " + ", ".join(parts) if parts else "")
        ax.text(cyc, yi, label, va="center", fontsize=8,
                fontweight="bold" if r["bound"] == "compute" else "normal")
    ax.set_xlim(0, max((r["cycles"] for r in rows), default=1) * 1.45)    # room for the labels
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("cycles per inference (RTL top cycle model)")
    ax.grid(axis="x", alpha=0.3)
    _thousands(ax)
    _time_axis(ax, clock_hz)
    from matplotlib.patches import Patch
    handles = [Patch(color=UNIT_COLORS[k], label=f"{UNIT_NAMES[k]} busy") for k in ("pattern", "mac", "pp")
               if any(b[k] > 0 for b in busy)]
    if any(mem):
        handles.append(Patch(color=DMA_COLOR, label="memory: DMA loads, spills, waits for words"))
    handles.append(Patch(facecolor=GATHER_COLOR, edgecolor="#a0a0a0", hatch="//",
                         label="rest: gather / control / pipeline"))
    ax.legend(handles=handles, loc="lower right", fontsize=8,
              title="wide bar: the busiest unit; thin bars: the others\nbusy on the same tiles", title_fontsize=8)
    total = f" ({per_inference:,} per inference with SYNC / END)" if per_inference else ""
    ax.set_title(f"Cycles per layer: {in_layers:,} in layers{total}{_hidden_note(hidden)}\n"
                 f"Bound per layer (report.json's `bound`): the largest of compute (the busier engine), "
                 f"post-process, memory (DMA) and the rest (gather / control)",
                 fontsize=10, pad=10 if clock_hz else 6)
    _save(fig, path)
    return fig


def memory_map(regions: dict, budget: int, tensors: list, path, layer_names: list | None = None):
    """On-chip memory map. Top: the on-chip bytes by region (``regions``: name -> bytes, e.g.
    ``CompileIR.onchip``) as one stacked bar against the board's ``budget`` bytes. Bottom: the
    activation memory, each tensor (dicts with ``name``, ``base``, ``bytes``, ``live`` = (first,
    last) layer index) a box from its base over its bytes and its lifetime, so tensors sharing
    addresses show that they are never live together. ``layer_names`` label the lifetime axis.
    Writes a 1400 x 900 px PNG to ``path``; returns the Figure."""
    import matplotlib
    fig = _figure(14, 9)
    ax, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 3], "hspace": 0.45})
    fig.subplots_adjust(left=0.17, right=0.97, top=0.93, bottom=0.07)
    cmap = matplotlib.colormaps["tab10"]
    used = int(sum(regions.values()))
    x = 0
    for i, (name, b) in enumerate(regions.items()):
        ax.barh(0, b, left=x, height=0.6, color=cmap(i % 10), edgecolor="white", gid=f"region:{name}",
                label=f"{name}: {b:,} B")
        if b > 0.045 * max(budget, used):
            ax.text(x + b / 2, 0, f"{name}\n{b:,}", ha="center", va="center", fontsize=8)
        x += b
    ax.barh(0, budget, height=0.8, fill=False, edgecolor="black", linestyle="--", gid="budget")
    ax.set_xlim(0, max(budget, used) * 1.01)
    ax.set_yticks([0], ["on-chip"])
    ax.set_xlabel("bytes")
    ax.set_title(f"On-chip memory: {used:,} of {budget:,} bytes ({used / budget:.1%}) of the board's block RAM "
                 f"budget (dashed)", fontsize=11)
    ax.legend(loc="center right", bbox_to_anchor=(0.97, 0.5), ncol=2, fontsize=8, frameon=False)
    _thousands(ax)
    act = regions.get("activations") or max((t["base"] + t["bytes"] for t in tensors), default=1)
    for i, t in enumerate(sorted(tensors, key=lambda t: t["live"][0])):
        l0, l1 = t["live"]
        ax2.add_patch(matplotlib.patches.Rectangle((t["base"], l0 - 0.4), t["bytes"], l1 - l0 + 0.8,
                                                   facecolor=cmap(i % 10), alpha=0.55, edgecolor="black",
                                                   linewidth=0.6, gid=f"tensor:{t['name']}"))
        ax2.text(t["base"] + t["bytes"] / 2, (l0 + l1) / 2, t["name"].split(".")[-1] if t["bytes"] > 0.04 * act else "",
                 ha="center", va="center", fontsize=7, clip_on=True)
    nl = max((t["live"][1] for t in tensors), default=0) + 1
    ax2.set_xlim(0, act)
    ax2.set_ylim(nl - 0.4, -0.6)
    if layer_names and len(layer_names) <= 80:
        ax2.set_yticks(range(len(layer_names)), layer_names, fontsize=7 if len(layer_names) <= 40 else 5)
    ax2.set_ylabel("lifetime (layers, producer to last consumer)")
    ax2.set_xlabel("activation memory address (bytes)")
    ax2.grid(axis="x", alpha=0.3)
    _thousands(ax2)
    ax2.set_title(f"Activation memory ({act:,} bytes): {len(tensors)} tensors at their base addresses; "
                  f"boxes sharing addresses are never live together", fontsize=11)
    _save(fig, path)
    return fig


def measured_vs_predicted(schedule: list, path, measured: list | None = None, image_cycles: list | None = None):
    """Measured (Verilator) against predicted (cycle model) cycles.

    With ``measured`` (cycles per instruction, one per ``schedule`` entry, one image): one pair
    of bars per layer, with measured / predicted at the bar ends. Without it, ``image_cycles``
    (measured cycles per image) against the predicted total per inference. Writes a 1400 px
    wide PNG to ``path``; returns the Figure."""
    pred_total = sum(s["cycles"] for s in schedule)
    if measured is not None:
        if len(measured) != len(schedule):
            raise ValueError(f"{len(measured)} measured instruction cycles for {len(schedule)} instructions")
        per: dict = {}
        for s, m in zip(schedule, measured):
            p = per.setdefault(s.get("layer") or "(SYNC / END)", [0, 0])
            p[0] += s["cycles"]
            p[1] += m
        names, hidden = _largest(list(per), lambda n: per[n][0])
        fig = _figure(14, min(40.0, 2.2 + 0.36 * len(names)))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.17, right=0.97, top=1 - 0.9 / fig.get_figheight(),
                            bottom=0.75 / fig.get_figheight())
        y = list(range(len(names)))
        ax.barh([v - 0.2 for v in y], [per[n][0] for n in names], height=0.4, color="#1f77b4",
                label="predicted (cycle model)", gid="predicted")
        ax.barh([v + 0.2 for v in y], [per[n][1] for n in names], height=0.4, color="#ff7f0e",
                label="measured (Verilator)", gid="measured")
        for yi, n in zip(y, names):
            p, m = per[n]
            ax.text(max(p, m), yi, f"  {m / p:.3f}" if p else "", va="center", fontsize=8)
        ax.set_xlim(0, max(max(v) for v in per.values()) * 1.12)      # room for the ratios
        ax.set_yticks(y, names, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel("cycles per inference (one image)")
        ax.grid(axis="x", alpha=0.3)
        _thousands(ax)
        mt = sum(measured)
        ax.set_title(f"Measured vs predicted cycles per layer: measured {mt:,}, predicted {pred_total:,} "
                     f"(ratio {mt / pred_total:.3f})\nmeasured / predicted per layer at the bar ends"
                     f"{_hidden_note(hidden, lambda n: per[n][0])}", fontsize=11)
    else:
        if not image_cycles:
            raise ValueError("neither per-instruction nor per-image measured cycles")
        fig = _figure(14, 5)
        ax = fig.subplots()
        ax.bar(range(len(image_cycles)), image_cycles, color="#ff7f0e", label="measured (Verilator)", gid="measured")
        ax.axhline(pred_total, color="#1f77b4", linestyle="--", label=f"predicted {pred_total:,} (cycle model)",
                   gid="predicted")
        for i, c in enumerate(image_cycles):
            ax.text(i, c, f"{c:,}\n{c / pred_total:.3f} x predicted", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(image_cycles)))
        ax.set_ylim(0, max(max(image_cycles), pred_total) * 1.4)       # room for the labels and legend
        ax.set_xlabel("image")
        ax.set_ylabel("cycles per inference")
        ax.grid(axis="y", alpha=0.3)
        _thousands(ax, "y")
        ax.set_title("Measured vs predicted cycles per image (the simulation returned totals only, no "
                     "per-instruction cycles)", fontsize=11)
    ax.legend(loc="lower right" if measured is not None else "upper right", fontsize=9)
    _save(fig, path)
    return fig


def compile_plots(ir, out_dir, layers: list) -> dict:
    """Write plots/timeline.png, plots/cycles_by_layer.png and plots/memory_map.png for a finished
    CompileIR into ``out_dir`` (``layers``: report.json's layer rows); returns ``{name: path
    relative to out_dir}``."""
    out = Path(out_dir)
    clock = ir.board.clock_hz
    files = {"timeline": "plots/timeline.png", "cycles_by_layer": "plots/cycles_by_layer.png",
             "memory_map": "plots/memory_map.png"}
    schedule = [s.as_dict() for s in ir.schedule]
    unit_timeline(schedule, out / files["timeline"], clock_hz=clock)
    cycles_by_layer(layers, out / files["cycles_by_layer"], clock_hz=clock, per_inference=ir.cycles)
    tensors = [{"name": t.name, "base": t.base, "bytes": t.nbytes, "live": tuple(t.live)} for t in ir.tensors.values()]
    memory_map(dict(ir.onchip), ir.budget, tensors, out / files["memory_map"],
               layer_names=[lay.name for lay in ir.layers])
    return files
