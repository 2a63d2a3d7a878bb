"""cocotb testbench: Gather (with the activation memory and RowAddress, sim/gather_harness.py)
against a numpy golden model of the beats a compute tile must produce.

Per tile the testbench fills the operands' rings in the activation memory (random codes; ring
slots the tile must not read hold random garbage), sets the instruction and the tensor
descriptors, pulses ``start``, collects the ``window``, ``pixel`` and ``skip`` beats (sinks with
random back-pressure), waits for ``done`` and pulses ``tile_release`` (after a random gap with
idle insertion), then compares every beat in order with the golden model:

- pattern operand (``use_pe``): per output position (y, x) and chunk ``ch`` of ``pe_cin``
  channels, window slot ``i*k_max + j`` = input pixel ``(y*stride - pad + i, x*stride - pad + j)``,
  channels ``cin0 + ch*pe_cin ..`` (zero outside the image or beyond ``na``, slots with
  ``i, j >= k`` zero), low ``a_bits`` of each code; ``pat_addr = wa + (ch << pshift)``;
- 1x1 MAC operand: ``mac_cols`` channels of pixel ``(y*stride, x*stride)`` per beat, ``w_addr = wa + ch``;
- operand b after operand a: a 1x1 on the MAC array (``pixel``, ``w_addr = wb + ch``, src_b at
  ``(2y, 2x)`` when src_b is twice dst's width) or the identity skip (``skip``: ``lanes`` codes
  of src_b at ``(y, x)`` from ``cin0_b``, zero beyond ``nb``).

Monitors check, besides the payloads: the stream protocol (a beat offered and not taken stays,
unchanged), the read address is zero between tiles (the top ORs the units' addresses),
``done`` only once the gatherer's beats are issued (the two-chunk hold register may hold one
window beat, the skip queue two beats), the routing outputs, no beat after the tile's last.
With a free-running sink (no idle, no back-pressure) the cycle of every window beat and of
every position's first MAC beat goes to result.json, where tests/test_rtl_gather.py compares
them with the compiler's cycle model (the testbench, in sim/, does not import the compiler).
"""
from __future__ import annotations

import json
import math
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event, First, ReadOnly, RisingEdge

from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC
from sephw.arch.isa import FLAG_B_PATTERN, FLAG_SKIP_IDENTITY, Op
from sim.gather_harness import GatherHarness
from sim.tb import load_case, start_clock_reset, unpack

ROWADDR_CYCLES = 19      # TILE_INIT + TILE_INIT_A waiting for the RowAddress (rtl_gen/rowaddr.py)


def out_size(t: dict) -> tuple[int, int]:
    """(height, width) of the tile's destination."""
    a, k, s, p = t["a"], t["k"], t["stride"], t["pad"]
    return (a["h"] + 2 * p - k) // s + 1, (a["w"] + 2 * p - k) // s + 1


def tile_rows(t: dict) -> tuple[int, int]:
    hd, _ = out_size(t)
    row0 = t.get("row0", 0)
    return row0, t.get("rows", hd - row0)


def b_stride(t: dict) -> int:
    _, wd = out_size(t)
    return 2 if t["b"]["w"] != wd else 1


def chunks(t: dict, p: dict) -> tuple[int, int]:
    ca = math.ceil(t["na"] / (p["pe_cin"] if t["use_pe"] else p["mac_cols"]))
    cb = math.ceil(t.get("nb", 0) / p["mac_cols"]) if t.get("b_mac") else 0
    return ca, cb


# --------------------------------------------------------------------------- golden model
def golden(t: dict, A: np.ndarray, B, p: dict, h: GatherHarness):
    """Expected ``window``, ``pixel`` and ``skip`` beats in order, and each position's
    (y, x, kind, ch) per beat for messages."""
    L, PC, Q, K, AB = p["lanes"], p["pe_cin"], p["mac_cols"], p["k_max"], p["a_bits"]
    pat_mod = 1 << h.window_layout.members["pat_addr"].width
    w_mod = 1 << h.pixel_layout.members["w_addr"].width
    k, s, pad, na, cin0 = t["k"], t["stride"], t["pad"], t["na"], t.get("cin0", 0)
    ha, wa_, _ = A.shape
    _, wd = out_size(t)
    row0, rows = tile_rows(t)
    ca, cb = chunks(t, p)
    mask = (1 << AB) - 1
    win, pix, skip = [], [], []
    for y in range(row0, row0 + rows):
        for x in range(wd):
            pa, pb = [], []            # this position's MAC beats of operand a and b
            if t["use_pe"]:
                for ch in range(ca):
                    n = min(PC, na - ch * PC)
                    w = np.zeros((K * K, PC), dtype=np.int64)
                    for i in range(k):
                        for j in range(k):
                            r, c = y * s - pad + i, x * s - pad + j
                            if 0 <= r < ha and 0 <= c < wa_:
                                w[i * K + j, :n] = A[r, c, cin0 + ch * PC:cin0 + ch * PC + n] & mask
                    win.append(({"window": w.tolist(), "pat_addr": (t["wa"] + (ch << t.get("pshift", 0))) % pat_mod,
                                 "first": int(ch == 0), "last": int(ch == ca - 1)}, (y, x, "a", ch)))
            else:
                for ch in range(ca):
                    n = min(Q, na - ch * Q)
                    v = np.zeros(Q, dtype=np.int64)
                    v[:n] = A[y * s, x * s, cin0 + ch * Q:cin0 + ch * Q + n]
                    pa.append(({"x": v.tolist(), "x_signed": 0, "w_addr": (t["wa"] + ch) % w_mod,
                                 "first": int(ch == 0), "last": int(ch == ca - 1)}, (y, x, "a", ch)))
            if t.get("b_mac"):
                f = b_stride(t)
                nb, c0 = t["nb"], t.get("cin0_b", 0)
                for ch in range(cb):
                    n = min(Q, nb - ch * Q)
                    v = np.zeros(Q, dtype=np.int64)
                    v[:n] = B[f * y, f * x, c0 + ch * Q:c0 + ch * Q + n]
                    pb.append(({"x": v.tolist(), "x_signed": 0, "w_addr": (t["wb"] + ch) % w_mod,
                                 "first": int(ch == 0), "last": int(ch == cb - 1)}, (y, x, "b", ch)))
            # both operands on the MAC array: b's beats first (rtl_gen/gather.py)
            pix += pb + pa if pa else pb
            if t.get("b_id"):
                nb, c0 = t["nb"], t.get("cin0_b", 0)
                v = np.zeros(L, dtype=np.int64)
                v[:nb] = B[y, x, c0:c0 + nb]
                skip.append((v.tolist(), (y, x, "id", 0)))
    return win, pix, skip


# --------------------------------------------------------------------------- testbench parts
class ActMemSource:
    """Writes byte images into the activation memory, ``banks`` aligned bytes per cycle."""

    def __init__(self, dut, banks: int):
        self.dut, self.banks = dut, banks
        dut.wen.value = 0
        dut.waddr.value = 0
        dut.wdata.value = 0

    async def write(self, image: dict[int, int]):
        U = self.banks
        blocks = {}
        for a, v in image.items():
            blocks.setdefault(a - a % U, {})[a % U] = v
        for base in sorted(blocks):
            blk = blocks[base]
            self.dut.waddr.value = base
            self.dut.wdata.value = sum((blk.get(u, 0) & 0xFF) << (8 * u) for u in range(U))
            self.dut.wen.value = sum(1 << u for u in blk)
            await RisingEdge(self.dut.clk)
        self.dut.wen.value = 0


class StreamSinks:
    """The three output streams' sinks and the monitors, in one coroutine (the simulation is
    slow enough at -O0 that one wake-up per cycle matters):

    - sink: drives each stream's ``ready`` (low with probability ``stall[name]``: back-pressure)
      and records every transfer's payload and cycle;
    - protocol: a beat offered and not taken is offered again, unchanged, next cycle;
    - ``raddr`` is zero while no tile runs (``active`` False; the top ORs the units' addresses);
    - the cycle ``done`` first rises in a tile, and ``event`` once ``done`` is up and
      ``expect`` beats of every stream arrived.
    """

    def __init__(self, dut, layouts: dict, seed: int, sticky=()):
        self.dut = dut
        # streams whose ready, once high, stays high until a beat is taken (the pattern
        # engine's window.ready: a gatherer with the landing register relies on it)
        self.sticky = set(sticky)
        self.streams = {n: (getattr(dut, f"{n}__valid"), getattr(dut, f"{n}__ready"),
                            getattr(dut, f"{n}__payload"), lay) for n, lay in layouts.items()}
        self.stall = {n: 0.0 for n in layouts}
        self.received = {n: [] for n in layouts}
        self.cycles = {n: [] for n in layouts}
        self.errors = []
        self.active = False
        self.cycle = 0
        self.done_cycle = None
        self.expect = None
        self.event = Event()
        self._held = {n: None for n in layouts}
        self._up = {}
        self._rng = random.Random(seed)
        for valid, ready, payload, lay in self.streams.values():
            ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        rng = self._rng
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            for n, (valid, ready, payload, lay) in self.streams.items():
                st = self.stall[n]
                if n in self.sticky and self._up.get(n):
                    continue
                r = int(not (st and rng.random() < st))
                ready.value = r
                self._up[n] = bool(r)
            await ReadOnly()
            for n, (valid, ready, payload, lay) in self.streams.items():
                v = int(valid.value)
                held = self._held[n]
                bits = payload.value.to_unsigned() if (v or held is not None) else None
                if held is not None and len(self.errors) < 20:
                    if not v:
                        self.errors.append(f"cycle {self.cycle}: {n} dropped valid before the beat was taken")
                    elif bits != held:
                        self.errors.append(f"cycle {self.cycle}: {n} payload changed while waiting for ready")
                if v:
                    if int(ready.value):
                        self._up[n] = False
                        self.received[n].append(unpack(lay, bits))
                        self.cycles[n].append(self.cycle)
                        self._held[n] = None
                    else:
                        self._held[n] = bits
                else:
                    self._held[n] = None
            if not self.active:
                if int(dut.raddr.value) != 0 and len(self.errors) < 20:
                    self.errors.append(f"cycle {self.cycle}: raddr {int(dut.raddr.value)} between tiles")
            else:
                if self.done_cycle is None and int(dut.done.value):
                    self.done_cycle = self.cycle
                if self.done_cycle is not None and self.expect is not None and \
                        all(len(self.received[n]) >= c for n, c in self.expect.items()):
                    self.expect = None
                    self.event.set()


class GatherTB:
    """Sources (activation memory images, the tile's control), sinks (the three streams with
    back-pressure) and monitors (protocol, cycles) around the harness."""

    def __init__(self, dut, h: GatherHarness, seed: int):
        self.dut, self.h, self.p = dut, h, h.params
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.mem = ActMemSource(dut, h.banks)
        self.sinks = StreamSinks(dut, {"window": h.window_layout, "pixel": h.pixel_layout,
                                       "skip": h.skip_layout}, seed + 1,
                                  sticky=("window",) if h.landing_reg else ())
        for name in ("start", "tile_release", "use_pe_in", "b_mac_in", "b_id_in", "sel"):
            getattr(dut, name).value = 0
        self.stats = []
        self.failures = []

    # -- stimulus ---------------------------------------------------------------------------
    def tensors(self, t: dict):
        a = t["a"]
        A = self.nprng.integers(0, 256, (a["h"], a["w"], a["c"]), dtype=np.int64)
        B = None
        if t.get("b_mac") or t.get("b_id"):
            b = t["b"]
            B = self.nprng.integers(0, 256, (b["h"], b["w"], b["c"]), dtype=np.int64)
        return A, B

    def layout(self, t: dict):
        """Descriptors (base, ring) of src_a, src_b, dst and the memory image: every ring slot
        random garbage, then the rows the tile reads at ``base + (r mod ring) * W * C``."""
        a = t["a"]
        base_a = a.get("base", 3)
        ring_a = a.get("ring", a["h"])
        row0, rows = tile_rows(t)
        k, s, pad = t["k"], t["stride"], t["pad"]
        lo, hi = max(0, row0 * s - pad), min(a["h"] - 1, (row0 + rows - 1) * s - pad + k - 1)
        rows_a = range(lo, hi + 1)
        assert len(rows_a) <= ring_a, f"{t['name']}: {len(rows_a)} input rows in a ring of {ring_a}"
        descs = {"src_a": dict(base=base_a, ring_rows=ring_a, height=a["h"], width=a["w"], channels=a["c"],
                               bits=self.p["a_bits"]), "src_b": {}}
        end = base_a + ring_a * a["w"] * a["c"]
        plan = [("a", descs["src_a"], rows_a)]
        if t.get("b_mac") or t.get("b_id"):
            b = t["b"]
            f = b_stride(t)
            ring_b = b.get("ring", b["h"])
            rows_b = range(f * row0, f * (row0 + rows - 1) + 1)
            assert len(rows_b) <= ring_b
            descs["src_b"] = dict(base=end + b.get("gap", 5), ring_rows=ring_b, height=b["h"], width=b["w"],
                                  channels=b["c"], bits=8)
            end = descs["src_b"]["base"] + ring_b * b["w"] * b["c"]
            plan.append(("b", descs["src_b"], rows_b))
        assert end <= self.h.act_bytes, f"{t['name']}: {end} bytes of tensors"
        hd, wd = out_size(t)
        descs["dst"] = dict(base=0, ring_rows=hd, height=hd, width=wd, channels=self.p["lanes"], bits=8)
        return descs, plan

    def image(self, plan, A, B) -> dict:
        img = {}
        for which, d, rows in plan:
            T = A if which == "a" else B
            rb = d["width"] * d["channels"]
            garbage = self.nprng.integers(0, 256, d["ring_rows"] * rb)
            for i in range(d["ring_rows"] * rb):
                img[d["base"] + i] = int(garbage[i])
            for r in rows:
                flat = T[r].reshape(-1)
                for i in range(rb):
                    img[d["base"] + (r % d["ring_rows"]) * rb + i] = int(flat[i])
        return img

    def instruction(self, t: dict) -> int:
        if t["use_pe"]:
            op = Op.PRB if t.get("b_mac") else (Op.RESADD if t.get("b_id") else Op.CONV_PATTERN)
        else:
            op = Op.RESADD if (t.get("b_mac") or t.get("b_id")) else Op.CONV_INT
        flags = (FLAG_SKIP_IDENTITY if t.get("b_id") else 0) | \
            (FLAG_B_PATTERN if op == Op.RESADD and t["use_pe"] else 0)
        row0, rows = tile_rows(t)
        return isa.WORD.encode(dict(
            op=int(op), src_a=1, src_b=2, dst=3, wa=t["wa"], wb=t.get("wb", 0), tc=self.p["lanes"],
            cin0=t.get("cin0", 0), row0=row0, rows=rows, k=t["k"], stride=t["stride"], pad=t["pad"],
            groups_a=1, groups_b=1, flags=flags, cin0_b=t.get("cin0_b", 0), na=t["na"], nb=t.get("nb", 0),
            pshift=t.get("pshift", 0)))

    # -- one tile ---------------------------------------------------------------------------
    async def run_tile(self, t: dict, sel: int, idle: float, stall: float, timing: bool,
                       skip_stall: float | None = None) -> bool:
        """Run tile ``t`` on gatherer ``sel`` (``idle``: random gaps before start and release;
        ``stall``: back-pressure on the three streams, ``skip_stall`` on ``skip`` if given);
        record mismatches in ``failures``. False when the tile did not finish (the harness
        is then in an unknown state)."""
        dut, p = self.dut, self.p
        skip_stall = stall if skip_stall is None else skip_stall
        label = (f"{t['name']} [column_store={self.h.column_stores[sel]}, idle={idle}, stall={stall}"
                 + (f", skip stall={skip_stall}" if skip_stall != stall else "") + "]")
        sk = self.sinks
        for n in sk.stall:
            sk.stall[n] = skip_stall if n == "skip" else stall
        A, B = self.tensors(t)
        descs, plan = self.layout(t)
        await self.mem.write(self.image(plan, A, B))
        exp = dict(zip(("window", "pixel", "skip"), golden(t, A, B, p, self.h)))
        dut.sel.value = sel
        dut.ins.value = self.instruction(t)
        for name in ("src_a", "src_b", "dst"):
            dut_sig = getattr(dut, name)
            dut_sig.value = TENSOR_DESC.encode(descs[name]) if descs[name] else 0
        dut.use_pe_in.value = int(t["use_pe"])
        dut.b_mac_in.value = int(bool(t.get("b_mac")))
        dut.b_id_in.value = int(bool(t.get("b_id")))
        if idle:
            for _ in range(self.rng.randint(0, 12)):
                await RisingEdge(dut.clk)
        n0 = {n: len(sk.received[n]) for n in exp}
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await ReadOnly()
        c_start = sk.cycle
        await RisingEdge(dut.clk)
        dut.start.value = 0
        sk.done_cycle = None
        sk.event.clear()
        sk.expect = {n: n0[n] + len(exp[n]) for n in exp}
        sk.active = True
        ca, cb = chunks(t, p)
        npos = len(exp["window"]) // max(1, ca) if t["use_pe"] else len(exp["pixel"])
        kk = t["k"] ** 2
        budget = 200 + 3 * ROWADDR_CYCLES + sum(len(v) for v in exp.values()) * (kk + 8) + npos * 8
        if stall:
            budget = int(budget / (1 - stall) * 3)
        await First(sk.event.wait(), ClockCycles(dut.clk, budget))
        await RisingEdge(dut.clk)
        await ReadOnly()
        finished = sk.event.is_set()
        got = {n: sk.received[n][n0[n]:] for n in exp}
        cyc = {n: sk.cycles[n][n0[n]:] for n in exp}
        if not finished:
            self.failures.append(f"{label}: timed out after {budget} cycles: done at {sk.done_cycle}, "
                                 f"beats {({n: (len(got[n]), len(exp[n])) for n in exp})}")
            return False
        routing = (int(dut.use_pe.value), int(dut.b_mac.value), int(dut.b_id.value))
        want = (int(t["use_pe"]), int(bool(t.get("b_mac"))), int(bool(t.get("b_id"))))
        if routing != want:
            self.failures.append(f"{label}: use_pe/b_mac/b_id {routing}, expected {want}")
        done_cycle = sk.done_cycle
        await RisingEdge(dut.clk)
        if idle:
            for _ in range(self.rng.randint(0, 8)):
                await RisingEdge(dut.clk)
        dut.tile_release.value = 1
        await RisingEdge(dut.clk)
        dut.tile_release.value = 0
        await RisingEdge(dut.clk)
        sk.active = False
        for _ in range(6):
            await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.done.value) or int(dut.use_pe.value) or int(dut.b_mac.value) or int(dut.b_id.value):
            self.failures.append(f"{label}: done/routing still high after release")
        await RisingEdge(dut.clk)
        # -- compare --------------------------------------------------------------------
        ok = True
        for n in exp:
            extra = sk.received[n][n0[n] + len(exp[n]):]
            if extra:
                self.failures.append(f"{label}: {len(extra)} {n} beats beyond the expected {len(exp[n])}")
                ok = False
            bad = 0
            for i, ((e, where), g) in enumerate(zip(exp[n], got[n])):
                if g != e:
                    bad += 1
                    if bad <= 3:
                        self.failures.append(f"{label}: {n} beat {i} (y, x, operand, chunk) {where}: "
                                             f"{describe(n, g, e, p)}")
            if bad:
                self.failures.append(f"{label}: {bad} of {len(exp[n])} {n} beats differ")
                ok = False
        # done once every beat is issued: all MAC beats taken; the window's hold register
        # and the skip queue may still hold beats
        pending = {}
        for n, slack in (("pixel", 0), ("window", 1 if self._dual(t) else 0), ("skip", 2)):
            pending[n] = len(exp[n]) - sum(1 for c in cyc[n] if c <= done_cycle)
            if pending[n] > slack:
                self.failures.append(f"{label}: done in cycle {done_cycle} with {pending[n]} of {len(exp[n])} "
                                     f"{n} beats not taken")
                ok = False
        stat = {"tile": t["name"], "column_store": self.h.column_stores[sel], "idle": idle, "stall": stall,
                "skip_stall": skip_stall, "beats": {n: len(exp[n]) for n in exp}, "start": c_start,
                "done": done_cycle - c_start, "pending_at_done": pending}
        if timing and not idle and not stall and not skip_stall:
            ok &= self.check_timing(t, sel, label, c_start, cyc, exp, stat)
        self.stats.append(stat)
        if ok:
            dut._log.info(f"{label}: {stat['beats']} beats as expected, done after {stat['done']} cycles")
        return True

    def _dual(self, t):
        ca, _ = chunks(t, self.p)
        return t["use_pe"] and self.h.banks >= 2 * self.p["pe_cin"] and ca >= 2

    def check_timing(self, t, sel, label, c_start, cyc, exp, stat) -> bool:
        """Free-running sinks: record the beats' cycles from the tile's first row setup for
        the pytest side, which compares them with the compiler's cycle model (the testbench
        does not import the compiler): every window beat, and the first MAC beat of operand a
        at every position."""
        has_b = bool(t.get("b_mac") or t.get("b_id"))
        t0 = c_start + 1 + ROWADDR_CYCLES * (2 if has_b else 1)     # the first ROWSETUP cycle
        if t["use_pe"]:
            stat["window_rtl"] = [c - t0 for c in cyc["window"]]
            stat["dual"] = bool(self._dual(t))
        else:
            stat["pixel_firsts_rtl"] = [c - t0 for c, (e, where) in zip(cyc["pixel"], exp["pixel"])
                                        if where[2] == "a" and where[3] == 0]
        return True


def describe(stream: str, got, exp, p) -> str:
    """What differs between two beats (window: the slots)."""
    if stream != "window":
        return f"got {got}, expected {exp}"
    K = p["k_max"]
    diffs = [f"slot ({s // K},{s % K}) got {g} expected {e}"
             for s, (g, e) in enumerate(zip(got["window"], exp["window"])) if g != e]
    meta = [f"{f} got {got[f]} expected {exp[f]}" for f in ("pat_addr", "first", "last") if got[f] != exp[f]]
    return "; ".join(meta + diffs[:6]) + (f" (+{len(diffs) - 6} slots)" if len(diffs) > 6 else "")


@cocotb.test()
async def gather_matches_golden_model(dut):
    case = load_case()
    h = GatherHarness(**case["harness"])
    await start_clock_reset(dut)
    tb = GatherTB(dut, h, case["seed"])
    nv = len(h.column_stores)
    # every tile on every gatherer, or (``rotate``) each mode's tiles spread over them
    runs = [(sel, mode, t) for mi, mode in enumerate(case["modes"]) for sel in range(nv)
            for ti, t in enumerate(case["tiles"])
            if not case.get("rotate") or (ti + mi) % nv == sel]
    for sel, mode, t in runs:
        if not await tb.run_tile(t, sel, *mode[:2], case.get("timing", True), *mode[2:]):
            break
    failures = tb.failures + tb.sinks.errors
    with open("result.json", "w") as f:
        json.dump({"stats": tb.stats, "failures": failures}, f, indent=1)
    assert not failures, "\n".join(failures[:40])
