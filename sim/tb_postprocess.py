"""cocotb testbench: PostProcess against ``sephw.intops.requant``.

Random accumulator vectors (int32, including both extremes), random per-channel
``M`` (int16, including -32768/32767), ``B`` (signed 48-bit), ``S`` (0..47, including 0 and 47)
and clamp ranges (ReLU and signed); with two inputs every third sub-case runs with
``b_enable = 0`` (no acc_b). Every output code is compared in order.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from cocotb.triggers import RisingEdge

from rtl_gen.postprocess import PostProcess
from sephw.intops import requant
from sim.tb import StreamDriver, StreamMonitor, crossed_flows, load_case, start_clock_reset, wait_for, write_memory

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def random_params(pp: PostProcess, rng: random.Random):
    """Per-channel (M_a, M_b, B, S) for the whole parameter memory."""
    rows = []
    for c in range(pp.param_depth):
        s = rng.choice([0, 47, rng.randint(0, 47), rng.randint(10, 40)])
        m_a = rng.choice([-32768, 32767, rng.randint(-32768, 32767)])
        half = 2 ** (pp.m_b_width - 1)          # (M_b takes the DSP's 25-bit port in the top)
        m_b = rng.choice([-half, half - 1, rng.randint(-half, half - 1)])
        if rng.random() < 0.2:
            bias = rng.choice([-(2 ** 47), 2 ** 47 - 1, rng.randint(-(2 ** 47), 2 ** 47 - 1)])
        else:
            bias = rng.randint(-(2 ** min(s + 7, 47)), 2 ** min(s + 7, 47) - 1)
        rows.append((m_a, m_b, bias, s))
    return rows


def random_acc(rng: random.Random, m: int, s: int) -> int:
    """An accumulator that usually lands near the output range after ``*m >> s``."""
    r = rng.random()
    if r < 0.05:
        return rng.choice([INT32_MIN, INT32_MAX])
    if r < 0.1:
        return rng.randint(INT32_MIN, INT32_MAX)
    mag = max(1, (1 << s) * 150 // max(1, abs(m)))
    return max(INT32_MIN, min(INT32_MAX, rng.randint(-mag, mag)))


@cocotb.test()
async def post_process_matches_reference(dut):
    case = load_case()
    pp = PostProcess(**case["params"])
    two = pp.inputs == 2
    rng = random.Random(case["seed"])
    await start_clock_reset(dut)
    vec = pp.acc_a.payload.shape()
    drv_a = StreamDriver(dut, "acc_a", vec, idle=case["idle"], seed=case["seed"])
    drv_b = StreamDriver(dut, "acc_b", vec, idle=case["idle"], seed=case["seed"] + 7) if two else None
    mon = StreamMonitor(dut, "y", pp.y.payload.shape(), stall=case["stall"], seed=case["seed"] + 1)
    stats = []
    inside = total = 0
    flows = crossed_flows(case["idle"], case["stall"])
    for sub in range(case["random_cases"]):
        flow = flows[sub % len(flows)]
        drv_a.idle, mon.stall = flow
        if drv_b:
            drv_b.idle = flow[0]
        params = random_params(pp, rng)
        words = [{"m_a": ma, "m_b": mb, "bias": b, "shift": s} if two else
                 {"m_a": ma, "bias": b, "shift": s} for (ma, mb, b, s) in params]
        await write_memory(dut, "param_w", pp.param_layout, words)
        base = rng.randint(0, (pp.param_depth - pp.lanes) // pp.units) * pp.units   # aligned to the units
        a_bits = rng.randint(1, pp.out_width - 1)
        lo, hi = rng.choice([(0, 2 ** a_bits - 1), (-(2 ** a_bits), 2 ** a_bits - 1),
                             (-(2 ** (pp.out_width - 1)), 2 ** (pp.out_width - 1) - 1)])
        dut.param_base.value = base
        # two inputs: every third sub-case runs with b_enable = 0 (acc_b not read, its term 0)
        use_b = two and sub % 3 != 2
        if two:
            dut.b_enable.value = int(use_b)
        dut.lo.value = lo & ((1 << pp.out_width) - 1)
        dut.hi.value = hi & ((1 << pp.out_width) - 1)
        await RisingEdge(dut.clk)
        ch = params[base:base + pp.lanes]
        n = case["vectors"]
        acc_a = [[random_acc(rng, ch[l][0], ch[l][3]) for l in range(pp.lanes)] for _ in range(n)]
        acc_b = [[random_acc(rng, ch[l][1], ch[l][3]) if use_b else 0 for l in range(pp.lanes)]
                 for _ in range(n)]
        col = lambda i: torch.tensor([c[i] for c in ch], dtype=torch.int64)
        exp = requant(torch.tensor(acc_a), col(0), col(2), col(3), lo, hi,
                      acc_b=torch.tensor(acc_b) if two else None, m_b=col(1) if two else None)
        exp = exp.tolist()
        inside += sum(lo < v < hi for r in exp for v in r)
        total += n * pp.lanes
        start, first_cycle = len(mon.received), mon._cycle
        for i in range(n):
            drv_a.send(acc_a[i])
            if use_b:
                drv_b.send(acc_b[i])
        await wait_for(dut, lambda: len(mon.received) >= start + n, timeout=40 * n * pp.lanes + 200)
        got = mon.received[start:]
        for i, (g, e) in enumerate(zip(got, exp)):
            assert g == e, (f"vector {i}: got {g}, expected {e}; acc_a {acc_a[i]} acc_b {acc_b[i]} "
                            f"params {ch} lo {lo} hi {hi}")
        cycles = mon.cycles[-1] - first_cycle
        stats.append({"vectors": n, "lanes": pp.lanes, "cycles": cycles, "flow": flow})
        dut._log.info(f"sub-case {sub}: {n} vectors bit-exact in {cycles} cycles")
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(mon.received) == start + n
    # the stimulus must exercise rounding, not only saturation
    assert inside >= total // 5, f"only {inside} of {total} outputs inside the clamp range"
    with open("result.json", "w") as f:
        json.dump(stats, f)
