"""cocotb testbench: PatternEngine against ``sephw.intops.pattern_conv_acc``.

Each sub-case is a whole grouped pattern convolution (stride 1, ``pad = k//2``) on a random
image: the driver cuts it into windows (one beat per output pixel and channel chunk), the
reference is the integer executor's accumulator, compared in order for every output pixel.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from amaranth.hdl import unsigned
from cocotb.triggers import RisingEdge

from rtl_gen.pattern import PatternEngine
from sephw.intops import pattern_conv_acc
from sim.tb import StreamDriver, StreamMonitor, load_case, pack, start_clock_reset, wait_for, write_memory


def make_problem(eng: PatternEngine, rng: torch.Generator, *, act_bits: int, chunks: int,
                 h: int, w: int, worst: bool = False):
    """Random (or worst-case) image ``(1, groups*cin*chunks, h, w)`` and patterns ``(lanes, cin*chunks, k, k)``."""
    cg = eng.cin * chunks
    k = eng.k
    top = 2 ** act_bits - 1
    if worst:
        x = torch.full((1, eng.groups * cg, h, w), top, dtype=torch.int64)
        # alternate all +1 and all -1 filters: the accumulator bound in both directions
        sign = torch.tensor([1 if l % 2 == 0 else -1 for l in range(eng.lanes)], dtype=torch.int64)
        pat = sign.view(-1, 1, 1, 1).expand(eng.lanes, cg, k, k).clone()
    else:
        x = torch.randint(0, top + 1, (1, eng.groups * cg, h, w), generator=rng)
        pat = torch.randint(0, 2, (eng.lanes, cg, k, k), generator=rng) * 2 - 1
    return x, pat


def beats_and_words(eng: PatternEngine, x: torch.Tensor, pat: torch.Tensor, chunks: int):
    """Window beats in output-pixel order (chunks innermost) and the pattern memory words."""
    k, cin, groups = eng.k, eng.cin, eng.groups
    cg = cin * chunks
    p = k // 2
    xp = torch.nn.functional.pad(x[0], (p, p, p, p)).tolist()
    h, w = x.shape[2], x.shape[3]
    beats = []
    for y in range(h):
        for xx in range(w):
            for j in range(chunks):
                window = [[xp[g * cg + j * cin + c][y + i][xx + jj]
                           for g in range(groups) for c in range(cin)]
                          for i in range(k) for jj in range(k)]
                beats.append({"window": window, "pat_addr": j,
                              "first": int(j == 0), "last": int(j == chunks - 1)})
    words = []
    for j in range(chunks):
        word = []
        for l in range(eng.lanes):
            bits = 0
            for c in range(cin):
                for i in range(k):
                    for jj in range(k):
                        if pat[l, j * cin + c, i, jj] > 0:
                            bits |= 1 << (c * k * k + i * k + jj)
            word.append(bits)
        words.append(word)
    return beats, words


@cocotb.test()
async def pattern_engine_matches_reference(dut):
    case = load_case()
    eng = PatternEngine(**case["params"])
    rng = torch.Generator().manual_seed(case["seed"])
    pyrng = random.Random(case["seed"])
    await start_clock_reset(dut)
    drv = StreamDriver(dut, "window", eng.window_layout, idle=case["idle"], seed=case["seed"])
    mon = StreamMonitor(dut, "acc", eng.acc.payload.shape(), stall=case["stall"], seed=case["seed"] + 1)
    stats = []
    max_chunks = eng.max_cin // eng.cin
    subcases = [dict(act_bits=eng.a_bits, chunks=max_chunks, h=eng.k, w=eng.k + 1, worst=True)]
    for _ in range(case["random_cases"]):
        subcases.append(dict(act_bits=pyrng.randint(1, eng.a_bits),
                             chunks=pyrng.randint(1, max_chunks),
                             h=pyrng.randint(1, 4), w=pyrng.randint(1, 5)))
    if case.get("throughput"):
        subcases = [dict(act_bits=eng.a_bits, chunks=1, h=4, w=8)]
    for sc in subcases:
        worst = sc.pop("worst", False)
        x, pat = make_problem(eng, rng, worst=worst, **sc)
        groups = eng.groups
        expected = pattern_conv_acc(x, pat, stride=1, padding=eng.k // 2, groups=groups)
        exp = expected[0].permute(1, 2, 0).reshape(-1, eng.lanes).tolist()  # pixel order
        if worst:
            bound = eng.max_cin * eng.k * eng.k * (2 ** eng.a_bits - 1)
            centre = [max(abs(v) for v in row) for row in exp]
            assert max(centre) == bound, "worst case must reach the accumulator bound"
            assert min(min(row) for row in exp) == -bound
        beats, words = beats_and_words(eng, x, pat, sc["chunks"])
        mem_words = [mw for w in words for mw in eng.memory_words(pack(eng.pattern_layout, w))]
        await write_memory(dut, "pattern_w", unsigned(eng.pattern_memory_bits), mem_words)
        dut.act_bits.value = sc["act_bits"]
        await RisingEdge(dut.clk)
        start = len(mon.received)
        first_cycle = mon._cycle
        for b in beats:
            drv.send(b)
        await wait_for(dut, lambda: len(mon.received) >= start + len(exp),
                       timeout=40 * len(beats) * eng.a_bits + 200)
        got = mon.received[start:]
        assert len(got) == len(exp)
        for n, (g, e) in enumerate(zip(got, exp)):
            assert g == e, f"{sc} output pixel {n}: got {g}, expected {e}"
        cycles = mon.cycles[-1] - first_cycle
        stats.append({**sc, "beats": len(beats), "outputs": len(exp), "cycles": cycles})
        dut._log.info(f"{sc}: {len(exp)} outputs bit-exact, {cycles} cycles")
        # no spurious extra outputs
        for _ in range(5):
            await RisingEdge(dut.clk)
        assert len(mon.received) == start + len(exp)
    if case.get("lockstep"):     # sim/pattern_harness.py: the three netlists never differed
        assert int(dut.mismatch.value) == 0, "the lut, word and xc7 netlists' outputs differed"
    with open("result.json", "w") as f:
        json.dump(stats, f)
