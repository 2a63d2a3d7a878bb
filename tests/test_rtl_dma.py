# amaranth: UnusedElaboratable=no
"""LoadDMA / StoreDMA (rtl_gen/dma.py) through the behavioural external memory
(rtl_gen/extmem.py) in cocotb: every word moved exactly, with random stalls of the port's
commands and read data; past-the-end commands refused; the load rate."""
import json
import random

import pytest

from rtl_gen.dma import LoadDMA
from sim.dma_harness import DmaHarness
from sim.runner import run_testbench

CASES = {
    # three 32-bit beats per 72-bit on-chip word (the last one's top bits dropped / zero),
    # commands and read data stalled on ~30 % of cycles
    "w72_d32_stalls": dict(data_width=32, word_bits=72, onchip_depth=24, ext_depth=512, latency=5,
                           stall_permille=300),
    # the Arty's 128-bit port, one beat per word, LiteDRAM-like latency, no stalls: full rate
    "w128_d128": dict(data_width=128, word_bits=128, onchip_depth=64, ext_depth=1024, latency=20,
                      stall_permille=0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dma_through_external_memory_model(name):
    p = CASES[name]
    rng = random.Random(len(name))
    init = [rng.getrandbits(p["data_width"]) for _ in range(p["ext_depth"] // 2)]
    h = DmaHarness(**p, init=init, seed=7)
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": h.load.beats, "init": init, "seed": 11, "rounds": 12}
    d = run_testbench(h, f"dma_{name}", "sim.tb_dma", case)
    r = json.loads((d / "result.json").read_text())
    assert len(r["load"]) == len(r["store"]) == 12
    long = r["long_load"]
    if not p["stall_permille"]:
        # one beat per cycle once the first word is back: the port's latency + its beats
        assert long["cycles"] <= long["beats"] + p["latency"] + 4, long
    else:
        assert long["cycles"] > long["beats"] + p["latency"], long     # the stalls did bite


def test_dma_checks_arguments():
    with pytest.raises(ValueError, match="data_width must be at least 8, not 4"):
        LoadDMA(data_width=4, addr_width=8, word_bits=8, onchip_depth=4, ext_words=16)


@pytest.mark.slow
def test_dma_through_litedram_sim_core():
    """LoadDMA and StoreDMA on the Arty configuration's LiteDRAM controller (its simulation
    core with SDRAMPHYModel, the board build's 128-bit native port): 160-bit on-chip words (two
    beats each) stored to random DRAM addresses and loaded back into the on-chip memory's other
    half, every word compared; a 32-word store and load timed."""
    from rtl_gen import dram
    from sim.runner import BUILD_ROOT
    core = dram.generate("arty-a7-35", BUILD_ROOT / "litedram" / "arty-a7-35-sim", sim=True)
    rng = random.Random(5)
    depth, wb = 64, 160
    init = [rng.getrandbits(wb) for _ in range(depth // 2)]
    h = DmaHarness(data_width=0, word_bits=wb, onchip_depth=depth, ext_depth=0, onchip_init=init,
                   litedram=core)
    case = {"litedram": True, "onchip_depth": depth, "beats": h.load.beats, "csr": core.csr,
            "onchip_init": init, "seed": 21, "rounds": 6}
    d = run_testbench(h, "dma_litedram_arty", "sim.tb_dma", case, extra_sources=[core.verilog])
    r = json.loads((d / "result.json").read_text())
    print(f"DMA through the LiteDRAM sim core: {r}")
    assert h.load.beats == 2 and len(r["round_trips"]) == 6
    # reads stream with commands in flight: well under the 2 x 40 cycles one read at a time would take
    assert r["long"]["load_cycles"] < 2 * r["long"]["beats"] + 60, r["long"]
    assert r["long"]["store_cycles"] < 2 * r["long"]["beats"] + 60, r["long"]


def test_model_latency_matches_litedram_figure():
    """The behavioural model's default latency is the LiteDRAM figure (ExtMemoryModel's
    docstring): a 64-word load of one beat each takes 78 cycles on it, as on LiteDRAM's core."""
    p = dict(data_width=128, word_bits=128, onchip_depth=64, ext_depth=1024, stall_permille=0)
    h = DmaHarness(**p, init=list(range(512)))
    case = {**{k: p[k] for k in ("data_width", "word_bits", "onchip_depth", "ext_depth")},
            "beats": 1, "init": list(range(512)), "seed": 3, "rounds": 1}
    d = run_testbench(h, "dma_model_default", "sim.tb_dma", case)
    assert json.loads((d / "result.json").read_text())["long_load"]["cycles"] == 78
