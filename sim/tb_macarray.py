"""cocotb testbench: MacArray (1×1 convolution / FC) against ``sephw.intops.int_conv_acc``.

Each sub-case is a 1×1 convolution of a random uint8 image ``(1, cols*chunks, h, w)`` with
random int8 weights ``(rows, cols*chunks, 1, 1)``: one beat per pixel and input-channel chunk
(chunk ``j`` reads weight word ``j``), compared in order with the integer reference.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from cocotb.triggers import RisingEdge

from rtl_gen.macarray import MacArray
from sephw.intops import int_conv_acc
from sim.tb import StreamDriver, StreamMonitor, crossed_flows, load_case, start_clock_reset, wait_for, write_memory


def make_problem(mac: MacArray, rng: torch.Generator, *, chunks: int, h: int, w: int,
                 worst: bool = False, signed: bool = False):
    """Activations uint8, or int8 with ``signed`` (worst case: all 255, or all -128)."""
    cin = mac.cols * chunks
    if worst:
        x = torch.full((1, cin, h, w), -128 if signed else 255, dtype=torch.int64)
        # rows alternate all -128 and all 127: both extremes of the accumulator
        wt = torch.tensor([-128 if p % 2 == 0 else 127 for p in range(mac.rows)], dtype=torch.int64)
        wt = wt.view(-1, 1, 1, 1).expand(mac.rows, cin, 1, 1).clone()
    else:
        x = torch.randint(0, 256, (1, cin, h, w), generator=rng) - (128 if signed else 0)
        wt = torch.randint(-128, 128, (mac.rows, cin, 1, 1), generator=rng)
    return x, wt


@cocotb.test()
async def mac_array_matches_reference(dut):
    case = load_case()
    mac = MacArray(**case["params"])
    rng = torch.Generator().manual_seed(case["seed"])
    pyrng = random.Random(case["seed"])
    await start_clock_reset(dut)
    drv = StreamDriver(dut, "pixel", mac.pixel_layout, idle=case["idle"], seed=case["seed"])
    mon = StreamMonitor(dut, "acc", mac.acc.payload.shape(), stall=case["stall"], seed=case["seed"] + 1)
    subcases = [dict(chunks=mac.weight_depth, h=2, w=2, worst=True)]
    for _ in range(case["random_cases"]):
        subcases.append(dict(chunks=pyrng.randint(1, mac.weight_depth), h=pyrng.randint(1, 4),
                             w=pyrng.randint(1, 4)))
    if case.get("signed"):
        # int8 activations (x_signed): the extremes, then random codes
        subcases += [dict(chunks=mac.weight_depth, h=2, w=2, worst=True, signed=True),
                     dict(chunks=mac.weight_depth, h=1, w=2, worst=True, signed=True, x127=True),
                     dict(chunks=pyrng.randint(1, mac.weight_depth), h=2, w=3, signed=True)]
    if case.get("throughput"):
        subcases = [dict(chunks=min(4, mac.weight_depth), h=4, w=8)]
    stats = []
    flows = crossed_flows(case["idle"], case["stall"])
    for i, sc in enumerate(subcases):
        drv.idle, mon.stall = flow = flows[i % len(flows)]
        worst, x127 = sc.pop("worst", False), sc.pop("x127", False)
        x, wt = make_problem(mac, rng, worst=worst, **sc)
        if x127:
            x.fill_(127)
        expected = int_conv_acc(x, wt, stride=1, padding=0, groups=1)
        exp = expected[0].permute(1, 2, 0).reshape(-1, mac.rows).tolist()
        if worst and not sc.get("signed"):
            bound = mac.weight_depth * mac.cols * 255 * 128
            assert min(min(r) for r in exp) == -bound
        chunks, cols = sc["chunks"], mac.cols
        words = [[[int(wt[p, j * cols + q, 0, 0]) for q in range(cols)] for p in range(mac.rows)]
                 for j in range(chunks)]
        await write_memory(dut, "weight_w", mac.weight_layout, words)
        await RisingEdge(dut.clk)
        xl = x[0].tolist()
        start, first_cycle = len(mon.received), mon._cycle
        nbeats = 0
        for yy in range(sc["h"]):
            for xx in range(sc["w"]):
                for j in range(chunks):
                    drv.send({"x": [xl[j * cols + q][yy][xx] & 0xFF for q in range(cols)], "w_addr": j,
                              "x_signed": int(sc.get("signed", False)),
                              "first": int(j == 0), "last": int(j == chunks - 1)})
                    nbeats += 1
        await wait_for(dut, lambda: len(mon.received) >= start + len(exp), timeout=40 * nbeats + 200)
        got = mon.received[start:]
        for n, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"{sc} output pixel {n}: got {g}, expected {e}"
        cycles = mon.cycles[-1] - first_cycle
        stats.append({**sc, "flow": flow, "beats": nbeats, "outputs": len(exp), "cycles": cycles})
        dut._log.info(f"{sc}: {len(exp)} outputs bit-exact, {cycles} cycles for {nbeats} beats")
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(mon.received) == start + len(exp)
    with open("result.json", "w") as f:
        json.dump(stats, f)
