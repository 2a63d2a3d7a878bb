"""cocotb testbench: PoolFC (POOL_FC: pool sums, FLAG_FINAL: FC on a real MacArray) against
``sephw.intops.pool_fc_logits``.

Harness (:class:`PoolFCHarness`): PoolFC wired as in rtl_gen/top.py to a real
:class:`~rtl_gen.macarray.MacArray` (weights written from the testbench through
``weight_w``), an :class:`~rtl_gen.actmem.ActivationMemory` (bytes written through
``act_w*``), a :class:`~rtl_gen.rowaddr.RowAddress` and a parameter memory (``prm_w``; read
latency 1). Two testbench-driven gates sit on the streams between PoolFC and the MacArray:
``pix_gate`` blocks the ``pixel`` handshake (back-pressure as PoolFC sees it) and ``acc_gate``
the ``acc`` handshake (idle cycles on PoolFC's ``acc`` input, back-pressure on the MacArray's
output). Taps show both streams' raw handshakes and payloads.

Each inference: random HWC uint8 ring contents, weights and parameters (``M`` and ``B``
including their extremes), then one to three ``POOL_FC`` bands (random ``row0``, including
rows past the ring so the ring wraps, and ``rows``, sometimes 0), the last one with
``FLAG_FINAL``. Checked: every ``pixel`` beat (byte planes of the running sums, ``w_addr``,
``first``/``last``), every ``acc`` vector the FC consumes, every logit write (address order,
value) against docs/numerics.md section 7 over all rows the bands pooled (result.json keeps
the operands: the test checks them with ``sephw.intops.pool_fc_logits``), the stream rules on
``pixel`` (valid held, payload stable until taken), ``fc_active`` around the FC, the idle
zeros the top ORs (``raddr`` and the RowAddress request), and the cycles from ``start`` to
``done`` of every instruction (written to result.json; the test compares them with the
compiler's model).
"""
from __future__ import annotations

import json
import random

import cocotb
from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from cocotb.triggers import Event, First, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from rtl_gen.actmem import ActivationMemory
from rtl_gen.macarray import MacArray
from rtl_gen.poolfc import PoolFC
from rtl_gen.rowaddr import RowAddress
from sephw.arch import isa
from sephw.arch.formats import PARAM_WORD, TENSOR_DESC
from sephw.arch.isa import FLAG_FINAL, Instruction, Op
from sim.tb import load_case, pack, start_clock_reset, unpack

MASK64 = (1 << 64) - 1


class PoolFCHarness(wiring.Component):
    """PoolFC + MacArray + ActivationMemory + RowAddress + parameter memory (see the module
    docstring). ``act_bytes`` is rounded up to whole banks of ``max(lanes, mac_cols)``."""

    def __init__(self, lanes: int, mac_cols: int, channels: int = 12, classes: int = 12,
                 weight_depth: int = 32, param_depth: int = 32, act_bytes: int = 1024,
                 landing_reg: bool = False):
        self.ma = MacArray(rows=lanes, cols=mac_cols, packed=False, weight_depth=weight_depth)
        self.param_depth = param_depth
        pab = ceil_log2(param_depth)
        banks = max(lanes, mac_cols)
        # (landing_reg: PoolFC's landing register takes the banks' raw bytes, as in a ULX3S build)
        self.pf = PoolFC(lanes, mac_cols, self.ma.pixel_layout, channels, classes, pab,
                         raw_banks=banks if landing_reg else 0)
        self.act = ActivationMemory(banks, -(-act_bytes // banks), 1)
        self.act_bytes = banks * (-(-act_bytes // banks))
        super().__init__({
            "start": In(1), "done": Out(1),
            "ins": In(isa.WORD.layout()), "src": In(TENSOR_DESC.layout()),
            "act_waddr": In(32), "act_wdata": In(8), "act_wen": In(1),
            "weight_w": Out(WritePort.Signature(addr_width=ceil_log2(weight_depth),
                                                shape=self.ma.weight_layout)),
            "prm_w": Out(WritePort.Signature(addr_width=pab, shape=PARAM_WORD.bits)),
            "logit_w_addr": Out(len(self.pf.logit_w_addr)), "logit_w_data": Out(signed(64)),
            "logit_w_en": Out(1),
            "fc_active": Out(1),
            "pix_gate": In(1), "acc_gate": In(1),
            "pix_valid": Out(1), "pix_ready": Out(1), "pix_payload": Out(self.ma.pixel_layout),
            "acc_valid": Out(1), "acc_ready": Out(1),
            "acc_payload": Out(data.ArrayLayout(signed(32), lanes)),
            "raddr": Out(32), "row_start": Out(1), "row_req_dirty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ma, pf, act = self.ma, self.pf, self.act
        m.submodules.mac_array = ma
        m.submodules.pool_fc = pf
        m.submodules.act = act
        m.submodules.row_addr = ra = RowAddress()
        m.submodules.params = prm = Memory(shape=PARAM_WORD.bits, depth=self.param_depth, init=[])
        prm_r, prm_w = prm.read_port(), prm.write_port()
        wiring.connect(m, wiring.flipped(self.weight_w), ma.weight_w)
        wiring.connect(m, wiring.flipped(self.prm_w), prm_w)
        wiring.connect(m, pf.row, ra)
        if "rraw" in pf.signature.members:
            m.d.comb += [pf.rraw.eq(act.rraw), pf.rlo.eq(act.rlo)]
        else:
            m.d.comb += pf.rbyte.eq(act.rvec[0])
        m.d.comb += [
            pf.start.eq(self.start), self.done.eq(pf.done), pf.ins.eq(self.ins), pf.src.eq(self.src),
            prm_r.en.eq(1), prm_r.addr.eq(pf.prm_addr), pf.prm.eq(prm_r.data),
            act.raddr.eq(pf.raddr),
            act.waddr.eq(self.act_waddr), act.wdata[0].eq(self.act_wdata), act.wen.eq(self.act_wen),
            self.logit_w_addr.eq(pf.logit_w_addr), self.logit_w_data.eq(pf.logit_w_data),
            self.logit_w_en.eq(pf.logit_w_en), self.fc_active.eq(pf.fc_active),
            # the streams between PoolFC and the MacArray, each behind a gate
            ma.pixel.payload.eq(pf.pixel.payload),
            ma.pixel.valid.eq(pf.pixel.valid & ~self.pix_gate),
            pf.pixel.ready.eq(ma.pixel.ready & ~self.pix_gate),
            pf.acc.payload.eq(ma.acc.payload),
            pf.acc.valid.eq(ma.acc.valid & ~self.acc_gate),
            ma.acc.ready.eq(pf.acc.ready & ~self.acc_gate),
            # taps: PoolFC's side of pixel, the MacArray's side of acc
            self.pix_valid.eq(pf.pixel.valid), self.pix_ready.eq(pf.pixel.ready),
            self.pix_payload.eq(pf.pixel.payload),
            self.acc_valid.eq(ma.acc.valid), self.acc_ready.eq(ma.acc.ready),
            self.acc_payload.eq(ma.acc.payload),
            self.raddr.eq(pf.raddr), self.row_start.eq(pf.row.start),
            self.row_req_dirty.eq(~pf.row.start & ((pf.row.r != 0) | (pf.row.ring != 0) |
                                                   (pf.row.base != 0) | (pf.row.row_bytes != 0))),
        ]
        return m


def harness_from_case(case: dict) -> PoolFCHarness:
    return PoolFCHarness(**case["params"])


# --------------------------------------------------------------------------- golden model
def byte_plane(v: int, plane: int) -> int:
    return (v >> (8 * plane)) & 0xFF


def expected_fc(sums, C, tc, wa, L, Q, wmem, signed: bool = False, planes: int = 4):
    """Pixel beats and acc vectors the FC of ``sums`` (channel sums, C of them) must produce:
    per block ``ob`` of L outputs, per byte plane up to ``planes``, per chunk ``ch`` of Q
    channels (``signed`` sums: two's complement in 32 bits, the last plane's bytes int8,
    ``x_signed``)."""
    n_cb = -(-C // Q)
    n_ob = -(-tc // L)
    beats, accs = [], []
    for ob in range(n_ob):
        for plane in range(planes):
            acc = [0] * L
            for ch in range(n_cb):
                x = [byte_plane(sums[ch * Q + q], plane) if ch * Q + q < C else 0 for q in range(Q)]
                addr = wa + ob * n_cb + ch
                xs = int(signed and plane == planes - 1)
                beats.append({"x": x, "x_signed": xs, "w_addr": addr, "first": int(ch == 0),
                              "last": int(ch == n_cb - 1)})
                xv = [v - 256 if xs and v >= 128 else v for v in x]
                for p in range(L):
                    acc[p] += sum(wmem[addr][p][q] * xv[q] for q in range(Q))
            accs.append(acc)
    return beats, accs


def fc_weight_matrix(C, tc, wa, L, Q, wmem):
    """W[o][c] as the FC reads it: word ``wa + (o // L) * n_cb + c // Q``, row o % L, column c % Q."""
    n_cb = -(-C // Q)
    return [[wmem[wa + (o // L) * n_cb + c // Q][o % L][c % Q] for c in range(C)] for o in range(tc)]


# --------------------------------------------------------------------------- testbench
class PoolFCTB:
    """Source (instructions, memory images), sink (logit writes) and monitor (the pixel and acc
    streams, fc_active, idle zeros), all sampled by one per-cycle loop."""

    def __init__(self, dut, h: PoolFCHarness, *, pix_stall: float, acc_stall: float, seed: int):
        self.dut, self.h = dut, h
        self.L, self.Q = h.ma.rows, h.ma.cols
        self.pix_layout = h.ma.pixel_layout
        self.acc_layout = data.ArrayLayout(signed(32), self.L)
        self.pix_stall, self.acc_stall = pix_stall, acc_stall
        self.gate_rng = random.Random(seed + 99)
        self.cycle = 0          # the clock cycle (from the simulation time: 10 ns per cycle)
        self.sleep = False      # a long band without FLAG_FINAL runs: wake on done / fc_active only
        self.logits = []        # sink: (addr, value, cycle)
        self.pix_beats = []     # monitor: transferred pixel payloads
        self.acc_vecs = []      # monitor: transferred acc vectors
        self.starts, self.dones = [], []
        self.done_evt = Event()
        self.busy = False       # an instruction is running (start .. done)
        self.errors = []
        self._pix_pending = None
        for s in ("start", "act_wen", "weight_w__en", "prm_w__en", "pix_gate", "acc_gate"):
            getattr(dut, s).value = 0
        self._task = cocotb.start_soon(self._sample())

    def error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    async def _sample(self):
        dut = self.dut
        while True:
            if self.sleep:      # no per-cycle Python while a long band pools (edge triggers only)
                await First(RisingEdge(dut.done), RisingEdge(dut.fc_active))
                self.sleep = False
            else:
                await RisingEdge(dut.clk)
                dut.pix_gate.value = int(self.gate_rng.random() < self.pix_stall)
                dut.acc_gate.value = int(self.gate_rng.random() < self.acc_stall)
            await ReadOnly()
            self.cycle = int(get_sim_time("ns")) // 10
            fc = int(dut.fc_active.value)
            if int(dut.start.value):
                self.starts.append(self.cycle)
            if int(dut.done.value):
                self.dones.append(self.cycle)
                self.done_evt.set()
            if int(dut.row_req_dirty.value):
                self.error("RowAddress request fields not zero without row.start")
            if (not self.busy or fc) and int(dut.raddr.value):
                self.error(f"raddr {int(dut.raddr.value)} not zero while not pooling")
            # pixel: valid held and payload stable until taken
            pv, pr = int(dut.pix_valid.value), int(dut.pix_ready.value)
            if pv or self._pix_pending is not None:
                pay = dut.pix_payload.value.to_unsigned()
                if self._pix_pending is not None and (not pv or pay != self._pix_pending):
                    self.error("pixel: valid dropped or payload changed before the transfer")
                if pv and not fc:
                    self.error("pixel valid without fc_active")
                if pv and pr:
                    self.pix_beats.append(unpack(self.pix_layout, pay))
                    self._pix_pending = None
                else:
                    self._pix_pending = pay if pv else None
            if int(dut.acc_valid.value) and int(dut.acc_ready.value):
                if not fc:
                    self.error("acc taken without fc_active")
                self.acc_vecs.append(unpack(self.acc_layout, dut.acc_payload.value.to_unsigned()))
            if int(dut.logit_w_en.value):
                if not fc:
                    self.error("logit write without fc_active")
                v = dut.logit_w_data.value.to_unsigned()
                self.logits.append((int(dut.logit_w_addr.value), v - (1 << 64) if v >> 63 else v,
                                    self.cycle))

    # ------------------------------------------------------------------ source
    async def write_port(self, port: str, shape, writes) -> None:
        """``writes``: (addr, value) through write port ``port`` (one per cycle)."""
        dut = self.dut
        addr, dat, en = (getattr(dut, f"{port}__{n}") for n in ("addr", "data", "en"))
        for a, v in writes:
            await RisingEdge(dut.clk)
            addr.value, dat.value, en.value = a, pack(shape, v), 1
        await RisingEdge(dut.clk)
        en.value = 0

    async def write_act(self, base: int, data_bytes) -> None:
        dut = self.dut
        for i, b in enumerate(data_bytes):
            await RisingEdge(dut.clk)
            dut.act_waddr.value, dut.act_wdata.value, dut.act_wen.value = base + i, b, 1
        await RisingEdge(dut.clk)
        dut.act_wen.value = 0

    async def run(self, ins_word: int, desc_word: int, timeout: int, sleep: bool = False) -> int:
        """Pulse ``start`` with the instruction and descriptor, wait for ``done``; return the
        cycles from ``start`` to ``done``. ``sleep``: the monitor sleeps until ``done`` or
        ``fc_active`` (a long band)."""
        dut = self.dut
        self.done_evt.clear()
        n0 = len(self.dones)
        await RisingEdge(dut.clk)
        dut.ins.value, dut.src.value, dut.start.value = ins_word, desc_word, 1
        self.busy, self.sleep = True, sleep
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await with_timeout(self.done_evt.wait(), timeout * 10, "ns")     # resumes in ReadOnly
        assert len(self.dones) == n0 + 1, f"done pulsed {len(self.dones) - n0} times"
        await RisingEdge(dut.clk)
        self.busy = False
        return self.dones[-1] - self.starts[-1]


def random_inference(rng: random.Random, h: PoolFCHarness, big: bool = False, signed: bool = False):
    """One inference: tensor descriptor, ring image (bytes; ``signed``: two's complement
    codes), bands, weights, params."""
    L, Q = h.ma.rows, h.ma.cols
    chans, classes = h.pf._channels, h.pf._classes
    if big:
        # one channel, 1024 bytes per row, one ring row of 255s (signed: -128s): 66 rows take
        # the sums past 2^24 (-2^23: byte plane 3 nonzero)
        C, W, ring = 1, h.act_bytes, 1
        base = 0
        image = [128 if signed else 255] * W
        bands = [(0, 30, 0), (30, 36, FLAG_FINAL)]
    else:
        C = rng.choice([1, 2, 3, Q, Q + 1, rng.randint(1, chans), chans])
        W = rng.randint(1, 4)
        ring = rng.randint(1, 4)
        size = ring * W * C
        base = rng.randint(0, h.act_bytes - size)
        image = [rng.choice([0, 255, rng.randint(0, 255), rng.randint(128, 255)]) for _ in range(size)]
        bands = []
        for i in range(rng.randint(1, 3)):
            rows = rng.choice([1, 2, 3, rng.randint(1, 4)]) if rng.random() < 0.9 else 0
            bands.append((rng.randint(0, 9), rows, 0))
        bands[-1] = (*bands[-1][:2], FLAG_FINAL)
    tc = rng.choice([1, L, L + 1, rng.randint(1, classes), classes])
    n_cb, n_ob = -(-C // Q), -(-tc // L)
    wd = h.ma.weight_depth
    wa = rng.randint(0, wd - n_cb * n_ob)
    prm = rng.randint(0, h.param_depth - tc)
    wmem = [[[rng.randint(-128, 127) for _ in range(Q)] for _ in range(L)] for _ in range(wd)]
    if big:
        wmem[wa][0][0], wmem[wa][1 % L][0] = -128, 127
    params = []
    for _ in range(h.param_depth):
        m_a = rng.choice([-(1 << 31), (1 << 31) - 1, -1, 0, 1, rng.randint(-(1 << 15), 1 << 15),
                          rng.randint(-(1 << 31), (1 << 31) - 1)])
        bias = rng.choice([-(1 << 47), (1 << 47) - 1, 0, rng.randint(-(1 << 47), (1 << 47) - 1)])
        params.append({"m_a": m_a, "m_b": rng.randint(-(1 << 31), (1 << 31) - 1), "bias": bias,
                       "shift": rng.randint(0, 255)})
    return dict(C=C, W=W, ring=ring, base=base, image=image, bands=bands, tc=tc, wa=wa, prm=prm,
                wmem=wmem, params=params, signed=signed)


@cocotb.test()
async def pool_fc_matches_reference(dut):
    case = load_case()
    h = harness_from_case(case)
    L, Q = h.ma.rows, h.ma.cols
    rng = random.Random(case["seed"])
    await start_clock_reset(dut)
    tb = PoolFCTB(dut, h, pix_stall=0.0, acc_stall=0.0, seed=case["seed"])
    records, fc_checks = [], []
    # (acc_stall, pix_stall) per inference: idle cycles on acc x back-pressure on pixel, crossed
    flows = [tuple(f) for f in case["flows"]]
    # every other inference signed (the flows cycle through both)
    infs = [dict(random_inference(rng, h, signed=i % 2 == 1), flow=flows[i // 2 % len(flows)])
            for i in range(case["inferences"])]
    if case.get("big"):
        infs[1:1] = [dict(random_inference(rng, h, big=True, signed=s), flow=(0.0, 0.0)) for s in (False, True)]
    clear = True                      # the first POOL_FC after reset clears the sums
    for n, inf in enumerate(infs):
        C, W, ring, base, tc = inf["C"], inf["W"], inf["ring"], inf["base"], inf["tc"]
        tb.acc_stall, tb.pix_stall = inf["flow"]
        await tb.write_act(base, inf["image"])
        await tb.write_port("weight_w", h.ma.weight_layout, list(enumerate(inf["wmem"])))
        await tb.write_port("prm_w", PARAM_WORD.bits, [(a, PARAM_WORD.encode(p)) for a, p in enumerate(inf["params"])])
        sgn = inf["signed"]
        desc = TENSOR_DESC.encode({"base": base, "ring_rows": ring, "height": rng.randint(1, 100), "width": W,
                                   "channels": C, "bits": 8, "signed": int(sgn)})
        codes = [b - 256 if sgn and b >= 128 else b for b in inf["image"]]
        rows_read = []                # HWC rows pooled, in order
        sums = [0] * C
        # the FC's byte planes (fc_planes, 0 = four): any count that holds the inference's sums
        final_sums = [0] * C
        for (row0, rows, _) in inf["bands"]:
            for r in range(row0, row0 + rows):
                off = (r % ring) * W * C
                for i in range(W * C):
                    final_sums[i % C] += codes[off + i]
        need = next(p for p in (1, 2, 3, 4) if all(
            (-(1 << 8 * p - 1) <= v < 1 << 8 * p - 1) if sgn else v < 1 << 8 * p for v in final_sums))
        planes = rng.randint(need, 4)
        for (row0, rows, flags) in inf["bands"]:
            flags |= rng.choice([0, 0, 1, 2, 3, 4, 16, 32])      # other flags must not matter
            ins = Instruction(op=Op.POOL_FC, layer=rng.randint(0, 255), src_a=rng.randint(0, 255), wa=inf["wa"],
                              prm=inf["prm"], tc=tc, row0=row0, rows=rows, flags=flags, fc_planes=planes % 4)
            before = len(tb.logits), len(tb.pix_beats), len(tb.acc_vecs)
            c0 = len(tb.errors)
            timeout = 200 + rows * (40 + W * C) + 80 * (C + 4) * 8 * (tc + 4) * (3 if tb.pix_stall or tb.acc_stall else 1)
            cycles = await tb.run(ins.encode(), desc, timeout, sleep=rows * W * C > 2000)
            assert len(tb.errors) == c0, "\n".join(tb.errors)
            for r in range(row0, row0 + rows):
                off = (r % ring) * W * C
                rows_read.append(codes[off:off + W * C])
                for i in range(W * C):
                    sums[i % C] += rows_read[-1][i]
            assert all(-(1 << 31) <= v < 1 << 31 for v in sums)
            records.append({"inference": n, "signed": sgn, "C": C, "W": W, "row0": row0, "rows": rows, "flags": flags,
                            "tc": tc, "clear": clear, "cycles": cycles, "fc_planes": planes % 4,
                            "acc_stall": tb.acc_stall, "pix_stall": tb.pix_stall})
            clear = False
            if not flags & FLAG_FINAL:
                assert (len(tb.logits), len(tb.pix_beats), len(tb.acc_vecs)) == before, \
                    f"inference {n}: a band without FLAG_FINAL touched the FC or the logits"
                continue
            clear = True
            got_logits = tb.logits[before[0]:]
            got_beats = tb.pix_beats[before[1]:]
            got_accs = tb.acc_vecs[before[2]:]
            assert sums == final_sums
            beats, accs = expected_fc([v & 0xFFFFFFFF for v in sums], C, tc, inf["wa"], L, Q, inf["wmem"], sgn, planes)
            where = (f"inference {n} (C={C} W={W} ring={ring} bands={inf['bands']} tc={tc} flow={inf['flow']} "
                     f"planes={planes}"
                     f"{' signed' if sgn else ''})")
            assert len(got_beats) == len(beats), f"{where}: {len(got_beats)} pixel beats, expected {len(beats)}"
            for i, (g, e) in enumerate(zip(got_beats, beats)):
                assert g == e, f"{where}: pixel beat {i}: got {g}, expected {e} (sums {sums})"
            assert got_accs == accs, f"{where}: acc vectors {got_accs}, expected {accs}"
            # docs/numerics.md section 7 in Python integers: acc[o] = sum_c W[o,c] * pooled[c],
            # logit = acc * M + B in int64 (mod 2^64); the test checks the same operands and
            # logits with sephw.intops.pool_fc_logits (torch stays out of the simulator process)
            wt = fc_weight_matrix(C, tc, inf["wa"], L, Q, inf["wmem"])
            prm = inf["params"][inf["prm"]:inf["prm"] + tc]
            acc = [sum(sums[c] * wt[o][c] for c in range(C)) for o in range(tc)]
            exp = [((acc[o] * p["m_a"] + p["bias"]) & MASK64) for o, p in enumerate(prm)]
            exp = [v - (1 << 64) if v >> 63 else v for v in exp]
            got = [(a, v) for a, v, _ in got_logits]
            fc_checks.append({"rows": rows_read, "C": C, "W": W, "w": wt, "m": [p["m_a"] for p in prm],
                              "b": [p["bias"] for p in prm], "logits": [v for _, v in got]})
            assert got == list(enumerate(exp)), f"{where}: logits {got}, expected {list(enumerate(exp))}"
            dut._log.info(f"{where}: {tc} logits, {len(beats)} beats bit-exact; sums {min(sums)}..{max(sums)}; "
                          f"cycles {[r['cycles'] for r in records if r['inference'] == n]}")
        for _ in range(rng.choice([0, 1, 3])):
            await RisingEdge(dut.clk)
    for _ in range(5):
        await RisingEdge(dut.clk)
    assert not tb.errors, "\n".join(tb.errors)
    with open("result.json", "w") as f:
        json.dump({"instructions": records, "fc": fc_checks}, f)
