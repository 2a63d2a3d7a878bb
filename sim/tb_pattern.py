"""cocotb testbench: PatternEngine against ``sephw.intops.pattern_conv_acc``.

Each sub-case is a whole grouped pattern convolution (stride 1, ``pad = kernel//2``, any
kernel the engine takes and any channel count up to ``max_cin``) on a random image: the
driver cuts it into windows (one beat per output pixel and channel chunk), its tap-major
pattern words written from a random memory word on, the reference is the integer executor's
accumulator, compared in order for every output pixel.
With ``dw_depth > 0`` some sub-cases run the engine's depthwise mode: a depthwise convolution
of ``dw_lanes`` channels with a ``kernel x kernel`` filter (3, 5 or 7, at most ``k``; its
window in the top-left corner of the engine's, as the gatherer places it), the beat's other
channels random (the mode must ignore them), its words in the depthwise pattern memory.
"""
from __future__ import annotations

import json
import random

import cocotb
import torch
from amaranth.hdl import unsigned
from cocotb.triggers import RisingEdge

from rtl_gen.pattern import PatternEngine
from sephw.arch.config import dw_slices, pattern_kernels
from sephw.intops import pattern_conv_acc
from sim.tb import (StreamDriver, StreamMonitor, crossed_flows, load_case, start_clock_reset, wait_for,
                    write_memory)


def code_range(act_bits: int, signed: bool) -> tuple[int, int]:
    """The codes' range: ``[0, 2^bits - 1]``, or ``[-2^(bits-1), 2^(bits-1) - 1]`` signed."""
    return (-(1 << act_bits - 1), (1 << act_bits - 1) - 1) if signed else (0, (1 << act_bits) - 1)


def make_problem(eng: PatternEngine, rng: torch.Generator, *, act_bits: int, channels: int, kernel: int,
                 h: int, w: int, worst: bool = False, signed: bool = False):
    """Random (or worst-case) image ``(1, groups*channels, h, w)`` and patterns ``(lanes,
    channels, kernel, kernel)``; ``signed``: two's complement codes (worst case: all
    ``-2^(bits-1)``)."""
    cg, k = channels, kernel
    lo, top = code_range(act_bits, signed)
    if worst:
        x = torch.full((1, eng.groups * cg, h, w), lo if signed else top, dtype=torch.int64)
        # alternate all +1 and all -1 filters: the accumulator bound in both directions
        sign = torch.tensor([1 if l % 2 == 0 else -1 for l in range(eng.lanes)], dtype=torch.int64)
        pat = sign.view(-1, 1, 1, 1).expand(eng.lanes, cg, k, k).clone()
    else:
        x = torch.randint(lo, top + 1, (1, eng.groups * cg, h, w), generator=rng)
        pat = torch.randint(0, 2, (eng.lanes, cg, k, k), generator=rng) * 2 - 1
    return x, pat


def beats_and_words(eng: PatternEngine, x: torch.Tensor, pat: torch.Tensor):
    """Window beats in output-pixel order (chunks innermost; codes as the window carries them:
    two's complement in ``a_bits`` bits, a smaller kernel in the window's top-left corner,
    zeros for the channels past the group's, as the gatherer sends them) and the pattern
    memory words: chunk ``j``'s word at ``pat_addr = j*n`` of them, ``n`` the slices its kernel
    and channels fill (the rest of its fetch reads the next chunk's words, or whatever the
    memory holds after the last); the caller moves both to its first memory word."""
    K, cin, groups = eng.k, eng.cin, eng.groups
    lanes, cg, kernel = pat.shape[0], pat.shape[1], pat.shape[2]
    chunks = -(-cg // cin)
    n = eng.memory_slices(kernel, min(cg, cin))
    p = kernel // 2
    xp = (torch.nn.functional.pad(x[0], (p, p, p, p)) & ((1 << eng.a_bits) - 1)).tolist()
    h, w = x.shape[2], x.shape[3]
    beats = []
    for y in range(h):
        for xx in range(w):
            for j in range(chunks):
                window = [[xp[g * cg + j * cin + c][y + i][xx + jj]
                           if i < kernel and jj < kernel and j * cin + c < cg else 0
                           for g in range(groups) for c in range(cin)]
                          for i in range(K) for jj in range(K)]
                beats.append({"window": window, "pat_addr": j * n,
                              "first": int(j == 0), "last": int(j == chunks - 1)})
    words = []
    for j in range(chunks):
        filters = [(pat[l, j * cin:(j + 1) * cin] > 0).tolist() for l in range(lanes)]
        words += eng.memory_words(eng.pattern_word(filters, kernel), n)
    return beats, words


def dw_problem(eng: PatternEngine, rng: torch.Generator, *, act_bits: int, kernel: int, h: int,
               w: int, addr: int, signed: bool = False):
    """A depthwise sub-case: beats (every one at ``pat_addr = addr``), the depthwise pattern
    memory words, and the expected lane values (``dw_lanes`` of them) in pixel order."""
    K, D = eng.k, eng.dw_lanes
    lo, top = code_range(act_bits, signed)
    x = torch.randint(lo, top + 1, (1, eng.channels, h, w), generator=rng)
    pat = torch.randint(0, 2, (D, 1, kernel, kernel), generator=rng) * 2 - 1
    expected = pattern_conv_acc(x[:, :D], pat, stride=1, padding=kernel // 2, groups=D)
    p = kernel // 2
    xp = (torch.nn.functional.pad(x[0], (p, p, p, p)) & ((1 << eng.a_bits) - 1)).tolist()
    beats = []
    for y in range(h):
        for xx in range(w):
            window = [[xp[c][y + i][xx + j] if i < kernel and j < kernel else 0
                       for c in range(eng.channels)] for i in range(K) for j in range(K)]
            beats.append({"window": window, "pat_addr": addr, "first": 1, "last": 1})
    grids = [sum(1 << (i * K + j) for i in range(kernel) for j in range(kernel) if pat[l, 0, i, j] > 0)
             for l in range(D)]
    return beats, eng.dw_memory_words(grids, kernel), expected[0].permute(1, 2, 0).reshape(-1, D).tolist()


async def run_beats(dut, drv, mon, beats: list, exp: list, lanes: int, label: str, a_bits: int) -> int:
    """Send ``beats`` (a cycle after the memory writes and port settings), check that exactly
    ``exp`` comes out (the first ``lanes`` lanes of each result), return the cycles from the
    first send to the last result."""
    await RisingEdge(dut.clk)
    start, first_cycle = len(mon.received), mon._cycle
    for b in beats:
        drv.send(b)
    await wait_for(dut, lambda: len(mon.received) >= start + len(exp), timeout=40 * len(beats) * a_bits + 200)
    got = mon.received[start:]
    assert len(got) == len(exp)
    for n, (g, e) in enumerate(zip(got, exp)):
        assert g[:lanes] == e, f"{label} output pixel {n}: got {g}, expected {e}"
    cycles = mon.cycles[-1] - first_cycle
    dut._log.info(f"{label}: {len(exp)} outputs bit-exact, {cycles} cycles")
    for _ in range(5):           # no spurious extra outputs
        await RisingEdge(dut.clk)
    assert len(mon.received) == start + len(exp)
    return cycles


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
    # worst cases first: the largest unsigned codes, then the most negative signed ones (the
    # sign plane's negation at the accumulator bound); random cases half signed (>= 2 bits)
    # random cases: any kernel the engine takes, any channel count up to max_cin (a last
    # chunk with fewer channels), the words from a random memory word on
    subcases = [dict(act_bits=eng.a_bits, channels=eng.max_cin, kernel=eng.k, h=eng.k, w=eng.k + 1,
                     worst=True, signed=s) for s in ((False, True) if eng.a_bits >= 2 else (False,))]
    for _ in range(case["random_cases"]):
        sgn = eng.a_bits >= 2 and pyrng.random() < 0.5
        subcases.append(dict(act_bits=pyrng.randint(2 if sgn else 1, eng.a_bits), signed=sgn,
                             channels=pyrng.randint(1, eng.max_cin), kernel=pyrng.choice(pattern_kernels(eng.k)),
                             h=pyrng.randint(1, 4), w=pyrng.randint(1, 5)))
    if case.get("throughput"):
        subcases = [dict(act_bits=eng.a_bits, channels=eng.cin, kernel=eng.k, h=4, w=8, signed=False)]
    if eng.dw_depth:
        # depthwise sub-cases between the normal ones (the mode switches both ways), each
        # kernel the engine takes, at a different address each (the staged word refetched)
        kernels = [kk for kk in (3, 5, 7) if kk <= eng.k]
        dw = [dict(dw=True, kernel=kk, act_bits=pyrng.randint(2, eng.a_bits), signed=i % 2 == 1,
                   h=pyrng.randint(1, 4), w=pyrng.randint(1, 5)) for i, kk in enumerate(kernels + kernels[-1:])]
        n_worst = sum(1 for sc in subcases if sc.get("worst"))
        subcases = subcases[:n_worst] + dw + subcases[n_worst:]
    main_words = eng.pattern_depth * eng.pattern_slices
    S = eng.pattern_slices
    wbits = len(dut.pattern_w__data.value)
    dw_next = 0
    # the flows change every two sub-cases: the unsigned and the signed worst case both run
    # with idle insertion and back-pressure together
    flows = crossed_flows(case["idle"], case["stall"])
    for i, sc in enumerate(subcases):
        drv.idle, mon.stall = flow = flows[i // 2 % len(flows)]
        if sc.pop("dw", False):
            n = dw_slices(eng.k, sc["kernel"])
            addr = dw_next if dw_next + n <= eng.dw_depth else 0
            dw_next = addr + n
            beats, words, exp = dw_problem(eng, rng, addr=addr, **sc)
            await write_memory(dut, "pattern_w", unsigned(wbits), words, base=main_words + addr)
            dut.act_bits.value = sc["act_bits"]
            dut.act_signed.value = int(sc["signed"])
            dut.dw.value = 1
            dut.dw_slices.value = n
            cycles = await run_beats(dut, drv, mon, beats, exp, eng.dw_lanes, f"depthwise {sc}", eng.a_bits)
            stats.append({**sc, "dw": True, "flow": flow, "beats": len(beats), "outputs": len(exp), "cycles": cycles})
            dut.dw.value = 0
            continue
        worst = sc.pop("worst", False)
        x, pat = make_problem(eng, rng, worst=worst, **sc)
        groups = eng.groups
        expected = pattern_conv_acc(x, pat, stride=1, padding=sc["kernel"] // 2, groups=groups)
        exp = expected[0].permute(1, 2, 0).reshape(-1, eng.lanes).tolist()  # pixel order
        # lane pairs: every other sub-case turned (its lanes lanes/2 .. leave first)
        rot = int(eng.lane_pairs and i % 2 == 1)
        if rot:
            h = eng.lanes // 2
            exp = [row[h:] + row[:h] for row in exp]
        sc["lane_rot"] = rot
        if worst:
            lo, top = code_range(eng.a_bits, sc["signed"])
            bound = eng.max_cin * eng.k * eng.k * max(-lo, top)
            centre = [max(abs(v) for v in row) for row in exp]
            assert max(centre) == bound, "worst case must reach the accumulator bound"
            assert min(min(row) for row in exp) == -bound
        beats, mem_words = beats_and_words(eng, x, pat)
        # from a random first memory word (a fetch reads S words from a beat's first: the
        # last one's S - 1 past the words)
        sc["base"] = 0 if worst else pyrng.randint(0, main_words - len(mem_words) - (S - 1))
        for b in beats:
            b["pat_addr"] += sc["base"]
        await write_memory(dut, "pattern_w", unsigned(eng.pattern_memory_bits), mem_words, base=sc["base"])
        dut.act_bits.value = sc["act_bits"]
        dut.kernel.value = sc["kernel"]
        dut.lane_rot.value = rot
        dut.act_signed.value = int(sc["signed"])
        cycles = await run_beats(dut, drv, mon, beats, exp, eng.lanes, str(sc), eng.a_bits)
        stats.append({**sc, "flow": flow, "beats": len(beats), "outputs": len(exp), "cycles": cycles})
    if case.get("lockstep"):     # sim/pattern_harness.py: the three netlists never differed
        assert int(dut.mismatch.value) == 0, "the lut, word and xc7 netlists' outputs differed"
    with open("result.json", "w") as f:
        json.dump(stats, f)
