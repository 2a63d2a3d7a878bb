# amaranth: UnusedElaboratable=no
"""FetchDecode (with its program and tensor-table memories) and ActivationMemory in cocotb;
both units share one harness, so one simulator build."""
import json

from sim.runner import run_testbench
from sim.tb_fetch import FetchActHarness

# ActivationMemory instances (banks, depth, units): the writer's units-wide writes, byte
# writes only, and a single bank
PARAMS = dict(program_depth=16, tensor_depth=256, act=[[8, 16, 4], [4, 8, 2], [4, 8, 1], [1, 8, 1]])
TAG = "fetch_actmem"


def test_fetch_decode():
    """Random Programs fetched in order to END and nothing after it, under random
    back-pressure, some cut short by a new ``go``: the first command is offered 5 cycles after
    ``go`` (the compiler's TOP_FETCH_FIRST), each next one 5 cycles after the previous was
    taken, whatever the sink did (TOP_FETCH_NEXT)."""
    from sephw.compiler import hw
    case = {"params": PARAMS, "seed": 5000, "runs": 40}
    d = run_testbench(FetchActHarness(**PARAMS), TAG, "sim.tb_fetch", case)
    res = json.loads((d / "result.json").read_text())
    assert res["latency"] == {"first": [hw.TOP_FETCH_FIRST], "next": [hw.TOP_FETCH_NEXT]}


def test_activation_memory():
    case = {"params": PARAMS, "seed": 5100, "cycles": 1500}
    d = run_testbench(FetchActHarness(**PARAMS), TAG, "sim.tb_actmem", case)
    for r in json.loads((d / "result.json").read_text()):
        assert r["single"] > 100 and r["wide"] > 100 and r["collisions"] > 100, r
