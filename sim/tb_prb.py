# amaranth: UnusedElaboratable=no
"""cocotb testbench: one whole PRB layer on the PRBDatapath against the integer reference.

``y = requant(pattern_conv_acc(x, B) * M_a + int_conv_acc(x, W1x1) * M_b + B, S, 0, 2^a - 1)``
for a random image, random patterns (grouped), random int8 1×1 weights and random per-channel
requantization, computed band by band (two row bands with a halo row each side) through
WindowGen -> PatternEngine ‖ MacArray -> PostProcess, compared bit-exactly for every pixel.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from cocotb.triggers import RisingEdge

from rtl_gen.prb import PRBDatapath
from sephw.intops import int_conv_acc, pattern_conv_acc, requant
from sim.tb import StreamDriver, StreamMonitor, load_case, start_clock_reset, wait_for, write_memory
from sim.tb_windowgen import plan_bands


@cocotb.test()
async def prb_layer_matches_reference(dut):
    case = load_case()
    prb = PRBDatapath(**case["params"])
    c, lanes, k, groups = prb.channels, prb.lanes, prb.k, prb.groups
    cg = c // groups
    rng = torch.Generator().manual_seed(case["seed"])
    pyrng = random.Random(case["seed"])
    await start_clock_reset(dut)
    band_drv = StreamDriver(dut, "band", prb.window_gen.band_layout, seed=case["seed"] + 3)
    pix_drv = StreamDriver(dut, "pixel", prb.window_gen.pixel_layout, idle=case["idle"],
                           seed=case["seed"])
    mon = StreamMonitor(dut, "y", prb.y.payload.shape(), stall=case["stall"], seed=case["seed"] + 1)
    h, w = case["height"], case["width"]
    stats = []
    inside = total = 0
    for a_bits in case["act_bits"]:
        x = torch.randint(0, 2 ** a_bits, (1, c, h, w), generator=rng)
        pat = torch.randint(0, 2, (lanes, cg, k, k), generator=rng) * 2 - 1
        w1 = torch.randint(-128, 128, (lanes, c, 1, 1), generator=rng)
        shift = torch.full((lanes,), 16, dtype=torch.int64)
        scale = 2 ** a_bits / 256
        m_a = torch.tensor([int(pyrng.randint(-8000, 8000) * scale) for _ in range(lanes)])
        m_b = torch.tensor([int(pyrng.randint(-300, 300) * scale) for _ in range(lanes)])
        bias = torch.tensor([pyrng.randint(-(2 ** 22), 2 ** 23) for _ in range(lanes)])
        hi = 2 ** a_bits - 1
        acc_a = pattern_conv_acc(x, pat, stride=1, padding=k // 2, groups=groups)
        acc_b = int_conv_acc(x, w1, stride=1, padding=0, groups=1)
        y = requant(acc_a, m_a, bias, shift, 0, hi, acc_b=acc_b, m_b=m_b)
        exp = y[0].permute(1, 2, 0).reshape(-1, lanes).tolist()
        inside += sum(0 < v < hi for r in exp for v in r)
        total += len(exp) * lanes

        pat_word = []
        for l in range(lanes):
            bits = 0
            for ci in range(cg):
                for i in range(k):
                    for j in range(k):
                        if pat[l, ci, i, j] > 0:
                            bits |= 1 << (ci * k * k + i * k + j)
            pat_word.append(bits)
        await write_memory(dut, "pattern_w", prb.pattern_engine.pattern_layout, [pat_word])
        await write_memory(dut, "weight_w", prb.mac_array.weight_layout,
                           [[[int(w1[p, q, 0, 0]) for q in range(c)] for p in range(lanes)]])
        await write_memory(dut, "param_w", prb.post_process.param_layout,
                           [{"m_a": int(m_a[l]), "m_b": int(m_b[l]), "bias": int(bias[l]),
                             "shift": int(shift[l])} for l in range(lanes)])
        dut.act_bits.value = a_bits
        dut.lo.value = 0
        dut.hi.value = hi
        dut.param_base.value = 0
        await RisingEdge(dut.clk)

        bands = plan_bands(h, k, 1, k // 2, case["band_rows"])
        xl = x[0].tolist()
        start, first_cycle = len(mon.received), mon._cycle
        for (o0, o1, r0, r1, first, last) in bands:
            band_drv.send({"width": w, "rows": r1 - r0, "pad": k // 2, "pad_top": int(first),
                           "pad_bottom": int(last), "stride": 1})
            for r in range(r0, r1):
                for cc in range(w):
                    pix_drv.send([xl[ch][r][cc] for ch in range(c)])
        await wait_for(dut, lambda: len(mon.received) >= start + len(exp),
                       timeout=40 * h * w * a_bits + 500)
        got = mon.received[start:]
        for n, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"act_bits {a_bits}: pixel {n} (row {n // w}, col {n % w}): got {g}, expected {e}"
        cycles = mon.cycles[-1] - first_cycle
        stats.append({"act_bits": a_bits, "bands": len(bands), "pixels": len(exp),
                      "cycles": cycles})
        dut._log.info(f"PRB {c}->{lanes} k={k} groups={groups} {h}x{w}, a={a_bits}, "
                      f"{len(bands)} bands: {len(exp)} pixels bit-exact in {cycles} cycles")
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(mon.received) == start + len(exp)
    assert inside >= total // 4, f"only {inside} of {total} outputs inside the clamp range"
    with open("result.json", "w") as f:
        json.dump(stats, f)
