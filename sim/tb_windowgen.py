"""cocotb testbench: WindowGen against the convolution reference's own windows.

The expected window at output ``(y, x)``, tap ``(i, j)``, channel ``c`` is the integer
reference convolution ``sephw.intops.int_conv_acc`` of the image with one-hot filters (filter
``c*k*k + i*k + j`` picks that tap), so padding and stride mean exactly what they mean for the
convolution. Images are cut into row bands with halo rows the way the compiler tiles a layer;
only the first band gets top padding and only the last band bottom padding.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from cocotb.triggers import RisingEdge

from rtl_gen.windowgen import WindowGen
from sephw.intops import int_conv_acc
from sim.tb import StreamDriver, StreamMonitor, load_case, start_clock_reset, wait_for


def reference_windows(x: torch.Tensor, k: int, stride: int, pad: int) -> torch.Tensor:
    """``(Ho, Wo, k*k, C)`` windows of ``x`` ``(1, C, H, W)`` as the reference convolution sees them."""
    c = x.shape[1]
    onehot = torch.zeros(c * k * k, c, k, k, dtype=torch.int8)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                onehot[ch * k * k + i * k + j, ch, i, j] = 1
    acc = int_conv_acc(x, onehot, stride=stride, padding=pad, groups=1)[0]  # (C*k*k, Ho, Wo)
    ho, wo = acc.shape[1], acc.shape[2]
    return acc.view(c, k * k, ho, wo).permute(2, 3, 1, 0)


def plan_bands(h: int, k: int, stride: int, pad: int, band_rows: int):
    """Row bands ``(o0, o1, r0, r1, pad_top, pad_bottom)``: output rows ``[o0, o1)`` from input
    rows ``[r0, r1)`` (halo included). Falls back to one band where a split would need
    padding inside the image."""
    ho = (h + 2 * pad - k) // stride + 1
    bands = []
    for o0 in range(0, ho, band_rows):
        o1 = min(ho, o0 + band_rows)
        first, last = o0 == 0, o1 == ho
        r0 = 0 if first else o0 * stride - pad
        r1 = h if last else (o1 - 1) * stride - pad + k
        if r0 < 0 or r1 > h or r1 <= r0:
            return [(0, ho, 0, h, True, True)]
        bands.append((o0, o1, r0, r1, first, last))
    return bands


@cocotb.test()
async def window_gen_matches_reference(dut):
    case = load_case()
    wg = WindowGen(**case["params"])
    k, ch = wg.k, wg.channels
    rng = torch.Generator().manual_seed(case["seed"])
    pyrng = random.Random(case["seed"])
    await start_clock_reset(dut)
    band_drv = StreamDriver(dut, "band", wg.band_layout, seed=case["seed"] + 3)
    pix_drv = StreamDriver(dut, "pixel", wg.pixel_layout, idle=case["idle"], seed=case["seed"])
    mon = StreamMonitor(dut, "window", wg.window_layout, stall=case["stall"], seed=case["seed"] + 1)
    stats = []
    images = []
    for _ in range(case["images"]):
        images.append(dict(h=pyrng.randint(1, wg.max_rows), w=pyrng.randint(1, wg.max_width),
                           stride=pyrng.choice([1, 2]), pad=pyrng.randint(0, k // 2)))
    if case.get("throughput"):
        images = [dict(h=16, w=16, stride=1, pad=k // 2, band_rows=16)]
    for im in images:
        h, w, stride, pad = im["h"], im["w"], im["stride"], im["pad"]
        h, w = max(h, k - 2 * pad), max(w, k - 2 * pad)  # at least one output
        x = torch.randint(0, 2 ** wg.a_bits, (1, ch, h, w), generator=rng)
        ref = reference_windows(x, k, stride, pad)
        ho, wo = ref.shape[0], ref.shape[1]
        bands = plan_bands(h, k, stride, pad, im.get("band_rows", pyrng.randint(1, ho)))
        xl = x[0].tolist()
        start, first_cycle = len(mon.received), mon._cycle
        expected = []
        for (o0, o1, r0, r1, first, last) in bands:
            band_drv.send({"width": w, "rows": r1 - r0, "pad": pad, "pad_top": int(first),
                           "pad_bottom": int(last), "stride": stride})
            for r in range(r0, r1):
                for c in range(w):
                    pix_drv.send([xl[cc][r][c] for cc in range(ch)])
            for oy in range(o0, o1):
                for ox in range(wo):
                    expected.append({"window": ref[oy, ox].tolist(),
                                     "last": int(oy == o1 - 1 and ox == wo - 1)})
        await wait_for(dut, lambda: len(mon.received) >= start + len(expected),
                       timeout=20 * (h + 4) * (w + 4) * len(bands) + 200)
        got = mon.received[start:]
        for n, (g, e) in enumerate(zip(got, expected)):
            assert g == e, f"{im} bands {bands}: window {n}: got {g}, expected {e}"
        cycles = mon.cycles[-1] - first_cycle
        stats.append({**im, "h": h, "w": w, "bands": len(bands), "windows": len(expected),
                      "cycles": cycles})
        dut._log.info(f"{h}x{w} stride {stride} pad {pad} in {len(bands)} bands: "
                      f"{len(expected)} windows bit-exact, {cycles} cycles")
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(mon.received) == start + len(expected)
    with open("result.json", "w") as f:
        json.dump(stats, f)
