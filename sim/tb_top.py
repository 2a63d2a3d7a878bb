"""cocotb testbench: the compiled Program on the accelerator top, whole network.

Loads the build directory's program and memory images through ``host_w``, then per image:
``start``, the input bytes on ``rx`` as the LOAD instructions take them (a build with
external memory: its external image written into the behavioural DRAM once, each input
image before its run), the logits from
``tx`` (STORE), ``done`` and the cycle counter, and the counter at every change of ``pc``
(per-instruction cycles, ``instruction_cycles`` in result.json). Every logit is compared with the expected
logits of the case (computed by sephw.reference in the driver). No per-cycle Python while
the network runs (edge triggers only), so Verilator runs at full speed.

The host side is a well-behaved master: every ``host_w`` word is held until a cycle with
``ready``; with ``host_stall`` > 0 every odd-numbered image is fed with idle cycles between its
``rx`` bytes and its ``tx`` bytes are taken under random back-pressure (the even-numbered
images run without, for exact cycle counts).
"""
from __future__ import annotations

import json
import random

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from rtl_gen.top import Accelerator
from sephw.arch.manifest import Manifest
from sim.tb import load_case, pack, start_clock_reset
from sim.top_driver import memory_writes


async def feed_rx(dut, data: list[int], rng: random.Random | None = None, stall: float = 0.0) -> None:
    """Offer ``data`` on ``rx`` byte by byte; sleeps on ``rx.ready`` edges while not asked.
    With ``stall`` > 0, ``valid`` stays low for 1..3 cycles before a byte with that probability."""
    for b in data:
        if stall and rng.random() < stall:
            dut.rx__valid.value = 0
            await ClockCycles(dut.clk, rng.randint(1, 3))
        dut.rx__valid.value = 1
        dut.rx__payload.value = b
        while True:
            await ReadOnly()
            if dut.rx__ready.value == 1:
                break
            await RisingEdge(dut.rx__ready)
        await RisingEdge(dut.clk)
    dut.rx__valid.value = 0


async def poke_dram(dut, data, word: int, word_bytes: int) -> None:
    """Write ``data`` (bytes: the external image, an input image) into the behavioural DRAM's
    words from ``word`` on (sim/ext_top.py's ``ext_poke`` port, one word per cycle)."""
    blob = bytes(data) + bytes(-len(data) % word_bytes)
    dut.ext_poke_en.value = 1
    for i in range(0, len(blob), word_bytes):
        dut.ext_poke_addr.value = word + i // word_bytes
        dut.ext_poke_data.value = int.from_bytes(blob[i:i + word_bytes], "little")
        await RisingEdge(dut.clk)
    dut.ext_poke_en.value = 0


async def record_pc(dut, out: list) -> None:
    """Append ``(pc, cycles)`` at every change of the top's program counter (``pc`` is the
    executing instruction's, latched as the sequencer takes it from FetchDecode's queue, so
    the cycle counter then is the boundary between two instructions); one trigger per
    instruction, not per cycle."""
    while True:
        await dut.pc.value_change
        await ReadOnly()
        out.append((int(dut.pc.value), int(dut.cycles.value)))


async def collect_tx(dut, n: int, out: list, rng: random.Random | None = None, stall: float = 0.0) -> None:
    """Record ``n`` bytes of ``tx``: ``ready`` held high (one valid pulse per byte), or with
    ``stall`` > 0 low on that fraction of cycles from the first byte on (per-cycle Python only
    while the logits go out)."""
    if not stall:
        dut.tx__ready.value = 1
        while len(out) < n:
            await RisingEdge(dut.tx__valid)
            await ReadOnly()
            out.append(int(dut.tx__payload.value))
        return
    dut.tx__ready.value = 0
    await RisingEdge(dut.tx__valid)
    while len(out) < n:
        await RisingEdge(dut.clk)
        dut.tx__ready.value = int(rng.random() >= stall)
        await ReadOnly()
        if dut.tx__valid.value == 1 and dut.tx__ready.value == 1:
            out.append(int(dut.tx__payload.value))
    await RisingEdge(dut.clk)
    dut.tx__ready.value = 1


@cocotb.test()
async def network_matches_reference(dut):
    case = load_case()
    man = Manifest.read(case["build_dir"])
    layout = Accelerator(man.arch).host_w_layout
    classes = man.classes
    ext_input = case.get("ext_input")     # the image in the behavioural DRAM, not on rx
    for s in ("start", "host_w__valid") + (("ext_poke_en",) if ext_input else ("rx__valid",)):
        getattr(dut, s).value = 0
    dut.tx__ready.value = 1
    if "ext_stall" in case:             # the behavioural DRAM's stalls (sim/ext_top.py)
        dut.ext_stall.value = case["ext_stall"]
    await start_clock_reset(dut)
    if case.get("ext_image"):             # the build's words in DRAM, from word 0
        blob = open(case["ext_image"], "rb").read()
        await poke_dram(dut, blob, 0, ext_input["word_bytes"])
        dut._log.info(f"wrote {len(blob)} bytes of external image into the DRAM model")
    writes = memory_writes(case["build_dir"])
    waited = 0                            # cycles host_w was held (baked images: the boot ROM)
    for sel, addr, word in writes:
        dut.host_w__payload.value = pack(layout, {"mem": sel, "addr": addr, "data": word})
        dut.host_w__valid.value = 1
        while True:                       # held until the top is ready
            await ReadOnly()
            taken = dut.host_w__ready.value == 1
            await RisingEdge(dut.clk)
            if taken:
                break
            waited += 1
    dut.host_w__valid.value = 0
    dut._log.info(f"loaded {len(writes)} memory words through host_w")
    results = {"logits": [], "cycles": [], "matches": [], "instruction_cycles": [], "host_w_waited": waited}
    rng = random.Random(case.get("seed", 0))
    for n, img in enumerate(case["images"]):
        tx = []
        stall = case.get("host_stall", 0.0) if n % 2 else 0.0
        collector = cocotb.start_soon(collect_tx(dut, classes * 8, tx, rng, stall))
        if ext_input:
            await poke_dram(dut, img, ext_input["word"], ext_input["word_bytes"])
            feeder = None
        else:
            feeder = cocotb.start_soon(feed_rx(dut, img, rng, stall))
        pcs = [(0, 0)]
        pc_rec = cocotb.start_soon(record_pc(dut, pcs))
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await with_timeout(RisingEdge(dut.done), case["timeout_cycles"] * 10, "ns")
        await ReadOnly()
        assert dut.error.value == 0, f"image {n}: the top stopped with error at pc {int(dut.pc.value)}"
        cycles = int(dut.cycles.value)
        pc_rec.cancel()
        # cycles of instruction i: from its start to the next one's (the last: to ``done``)
        starts = {}
        for pc_, c in pcs:
            starts.setdefault(pc_, c)
        bounds = sorted(starts.items()) + [(int(dut.pc.value) + 1, cycles)]
        results["instruction_cycles"].append([b[1] - a[1] for a, b in zip(bounds, bounds[1:])])
        await RisingEdge(dut.clk)
        assert feeder is None or feeder.done(), f"image {n}: LOAD took fewer bytes than the image has"
        collector.cancel()
        assert len(tx) == classes * 8, f"image {n}: STORE sent {len(tx)} bytes, expected {classes * 8}"
        logits = [int.from_bytes(bytes(tx[8 * o:8 * o + 8]), "little", signed=True) for o in range(classes)]
        results["logits"].append(logits)
        results["cycles"].append(cycles)
        exp = case["expected"][n] if case["expected"] else None
        results["matches"].append(exp == logits if exp else None)
        dut._log.info(f"image {n}: {cycles} cycles, logits {logits}" + ("" if exp is None else
                      f", reference {'equal' if exp == logits else exp}"))
        with open("result.json", "w") as f:
            json.dump(results, f)
    if case["expected"]:
        for n, (got, exp) in enumerate(zip(results["logits"], case["expected"])):
            assert got == exp, f"image {n}: logits {got} != reference {exp}"
