"""cocotb testbench: LoadDMA and StoreDMA through the behavioural external memory
(sim/dma_harness.py), with the model's random stalls (``stall_permille``): random loads of
on-chip words from random external addresses, each checked word for word against the
external memory's initial contents; random stores back to another external region, checked
the same way; a load and a store past the external memory's end refused with ``error``,
nothing moved. result.json: the cycles of a long load (the port's rate and latency).

Through LiteDRAM's simulation core (``case["litedram"]``): the controller initialized over
wb_ctrl, the on-chip memory's initial words stored to external memory and loaded back into
the other half of the on-chip memory (round trips of random lengths and addresses), each
compared; then a long store and a long load timed (and compared).

Both ways a monitor (:class:`PortRule`) checks the write side of the external port against
the rule LiteDRAM's crossbar needs (it takes a write data beat whenever ``wdata.ready`` is
high, whether ``wdata.valid`` is or not; the behavioural model takes a command's beat with it
only when both are valid, so it cannot show a DMA that breaks the rule)."""
from __future__ import annotations

import json
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb import load_case, start_clock_reset


_RULE: list = []        # the running PortRule, if any


class PortRule:
    """The write side of LiteDRAM's native port, checked every cycle (sampled after
    ``ReadOnly``) on the port the external memory sees (the harness's ``mon_*`` outputs):

    ``wdata.valid`` must be high in every cycle in which a write command is offered
    (``cmd.valid`` with ``we``) and in every cycle in which an accepted write command's beat
    has not been taken yet (commands accepted minus beats taken > 0).

    So a write command's beat is valid from the cycle the command is offered until it is
    taken, and LiteDRAM, which takes the oldest pending command's beat in any cycle with
    ``wdata.ready`` (ignoring ``wdata.valid``), always takes a real beat, the one its command
    counted. The first few violations are kept in ``violations`` (:func:`command` fails on
    them); ``max_pending``: the most write commands seen waiting for their beats."""

    def __init__(self, dut):
        self.dut, self.violations, self.pending, self.cycle = dut, [], 0, 0
        self.accepted = self.taken = self.max_pending = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            self.cycle += 1
            wcmd, crdy = int(d.mon_wcmd_valid.value), int(d.mon_cmd_ready.value)
            wv, wr = int(d.mon_wdata_valid.value), int(d.mon_wdata_ready.value)
            if (wcmd or self.pending) and not wv and len(self.violations) < 5:
                what = "a write command offered" if wcmd else f"{self.pending} accepted write command(s) waiting"
                self.violations.append(f"cycle {self.cycle}: {what} with wdata.valid low"
                                       f"{' and wdata.ready high (LiteDRAM takes a stale beat)' if wr else ''}")
            self.accepted += wcmd & crdy
            self.taken += wv & wr
            self.pending += (wcmd & crdy) - (wv & wr)
            self.max_pending = max(self.max_pending, self.pending)
            if self.pending < 0 and len(self.violations) < 5:
                self.violations.append(f"cycle {self.cycle}: a write data beat taken with no write command")
                self.pending = 0

    def check(self):
        assert not self.violations, "LiteDRAM port rule broken: " + "; ".join(self.violations)


async def command(dut, name: str, ext_addr: int, words: int, onchip: int) -> tuple[int, int]:
    """Send one command to ``name`` (load / store), wait for its ``done``: (error, cycles).
    Fails as soon as the port-rule monitor (:data:`_RULE`, when started) reports."""
    rule = _RULE[0] if _RULE else None
    valid, ready = getattr(dut, f"{name}_cmd__valid"), getattr(dut, f"{name}_cmd__ready")
    payload = getattr(dut, f"{name}_cmd__payload")
    oab = len(dut.onchip_peek_addr.value)
    payload.value = ext_addr | words << 32 | onchip << 64
    assert oab <= 8
    valid.value = 1
    await RisingEdge(dut.clk)
    while not int(ready.value):
        await RisingEdge(dut.clk)
    valid.value = 0
    n = 0
    done = getattr(dut, f"{name}_done")
    while not int(done.value):
        await RisingEdge(dut.clk)
        n += 1
        if rule is not None:
            rule.check()
        assert n < 100 * words + 1000, f"{name} of {words} words: no done after {n} cycles"
    if rule is not None:
        rule.check()
    return int(getattr(dut, f"{name}_error").value), n


async def peek(dut, which: str, addr: int) -> int:
    getattr(dut, f"{which}_peek_addr").value = addr
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    return int(getattr(dut, f"{which}_peek_data").value)


@cocotb.test()
async def dma_moves_words_exactly(dut):
    case = load_case()
    _RULE[:] = [PortRule(dut)] if case.get("port_rule", True) else []
    if case.get("litedram"):
        await through_litedram(dut, case)
        return
    rng = random.Random(case["seed"])
    DW, WB, B = case["data_width"], case["word_bits"], case["beats"]
    depth, ext_depth = case["onchip_depth"], case["ext_depth"]
    ext = list(case["init"]) + [0] * (ext_depth - len(case["init"]))
    onchip = [None] * depth
    await start_clock_reset(dut)
    stats = {}
    half = ext_depth // 2           # loads read the low half, stores write the high half
    for t in range(case["rounds"]):
        words = rng.randint(1, depth)
        a = rng.randrange(0, half - words * B + 1)
        o = rng.randrange(0, depth - words + 1)
        err, cyc = await command(dut, "load", a, words, o)
        assert err == 0
        for i in range(words):
            onchip[o + i] = sum(ext[a + i * B + b] << (b * DW) for b in range(B)) & ((1 << WB) - 1)
        stats.setdefault("load", []).append({"words": words, "cycles": cyc})
        for i in rng.sample(range(depth), min(depth, 8)):
            if onchip[i] is not None:
                assert await peek(dut, "onchip", i) == onchip[i], f"round {t}: on-chip word {i}"
        # store some loaded words back to the high half
        filled = [i for i in range(depth) if onchip[i] is not None]
        s0 = rng.choice(filled)
        n = 1
        while s0 + n < depth and onchip[s0 + n] is not None and n < 6:
            n += 1
        e = rng.randrange(half, ext_depth - n * B + 1)
        err, cyc = await command(dut, "store", e, n, s0)
        assert err == 0
        for i in range(n):
            for b in range(B):
                ext[e + i * B + b] = onchip[s0 + i] >> (b * DW) & ((1 << DW) - 1)
        for i in range(n * B):
            assert await peek(dut, "ext", e + i) == ext[e + i], f"round {t}: external word {e + i}"
        stats.setdefault("store", []).append({"words": n, "cycles": cyc})
    # past the end: refused, nothing moved
    before = [await peek(dut, "onchip", i) for i in range(depth)]
    err, _ = await command(dut, "load", ext_depth - B + 1, 1, 0)
    assert err == 1, "a load past the external memory's end was not refused"
    err, _ = await command(dut, "store", ext_depth - 1, 2, 0)
    assert err == 1, "a store past the external memory's end was not refused"
    for _ in range(10):
        await RisingEdge(dut.clk)
    assert [await peek(dut, "onchip", i) for i in range(depth)] == before
    # a long load: the port's rate
    err, cyc = await command(dut, "load", 0, depth, 0)
    assert err == 0
    stats["long_load"] = {"words": depth, "beats": depth * B, "cycles": cyc}
    onchip = [sum(ext[i * B + b] << (b * DW) for b in range(B)) & ((1 << WB) - 1) for i in range(depth)]
    # a long store of those words to the high half: the write rate
    err, cyc = await command(dut, "store", half, depth, 0)
    assert err == 0
    stats["long_store"] = {"words": depth, "beats": depth * B, "cycles": cyc}
    for i in range(depth * B):
        want = onchip[i // B] >> (i % B * DW) & ((1 << DW) - 1)
        assert await peek(dut, "ext", half + i) == want, f"long store: external word {half + i}"
    if _RULE:
        stats["max_write_pending"] = _RULE[0].max_pending
    with open("result.json", "w") as f:
        json.dump(stats, f)


async def through_litedram(dut, case):
    from sim.tb_dram import init_controller
    rng = random.Random(case["seed"])
    depth, B = case["onchip_depth"], case["beats"]
    half = depth // 2
    init = case["onchip_init"]                  # words 0 .. half-1 hold data
    await init_controller(dut, case["csr"], case["init"])
    stats = {"round_trips": []}
    for t in range(case["rounds"]):
        n = rng.randint(1, half)
        s0 = rng.randrange(0, half - n + 1)
        e = rng.randrange(0, 1 << 20) * B
        err, sc = await command(dut, "store", e, n, s0)
        assert err == 0
        d0 = rng.randrange(half, depth - n + 1)
        err, lc = await command(dut, "load", e, n, d0)
        assert err == 0
        for i in range(n):
            got = await peek(dut, "onchip", d0 + i)
            assert got == init[s0 + i], f"round {t}: word {i} of {n} from external {e:#x}: {got:#x}"
        stats["round_trips"].append({"words": n, "store_cycles": sc, "load_cycles": lc})
    err, sc = await command(dut, "store", 0, half, 0)
    err2, lc = await command(dut, "load", 0, half, half)
    assert err == err2 == 0
    for i in range(half):
        got = await peek(dut, "onchip", half + i)
        assert got == init[i], f"long: word {i} of {half}: {got:#x}"
    stats["long"] = {"words": half, "beats": half * B, "store_cycles": sc, "load_cycles": lc}
    if _RULE:
        stats["max_write_pending"] = _RULE[0].max_pending
    with open("result.json", "w") as f:
        json.dump(stats, f)
