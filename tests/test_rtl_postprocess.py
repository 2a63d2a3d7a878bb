# amaranth: UnusedElaboratable=no
"""PostProcess in cocotb, bit-exact against sephw.intops.requant."""
import json

import pytest

from rtl_gen.postprocess import PostProcess
from sim.runner import run_testbench
from sim.tb import crossed_flows

CONFIGS = {
    "two_inputs": dict(lanes=4, inputs=2, param_depth=8),
    "one_input": dict(lanes=3, inputs=1, param_depth=8),
    "two_inputs_2units": dict(lanes=8, inputs=2, param_depth=20, units=2),
    # the products as 18 x 18 partial products (the ULX3S's), M_b 25-bit as in the top
    "two_inputs_mul18": dict(lanes=4, inputs=2, param_depth=8, m_b_width=25, mul18=True),
    "one_input_2units_mul18": dict(lanes=4, inputs=1, param_depth=8, units=2, mul18=True),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)], ids=["flow", "backpressure"])
def test_post_process(config, idle, stall):
    params = CONFIGS[config]
    case = {"params": params, "seed": 3000 + list(CONFIGS).index(config) * 10 + int(idle > 0),
            "idle": idle, "stall": stall, "random_cases": 4, "vectors": 24}
    d = run_testbench(PostProcess(**params), f"postprocess_{config}", "sim.tb_postprocess", case)
    stats = json.loads((d / "result.json").read_text())
    # with back-pressure the sub-cases cross it with idle insertion (sim.tb.crossed_flows)
    assert {tuple(st["flow"]) for st in stats} == set(crossed_flows(idle, stall))
    if idle == 0 and stall == 0:
        # vectors stream back to back: lanes / units cycles each (the pipeline: one stage more
        # with mul18's partial products)
        fill = 8 + params.get("mul18", False)
        for st in stats:
            assert st["cycles"] <= st["vectors"] * st["lanes"] // params.get("units", 1) + fill, st


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(lanes=4, inputs=3), ValueError, "inputs must be 1 or 2, not 3"),
    (dict(lanes=4, acc_width=33), ValueError, "acc_width must be in 2..32, not 33"),
    (dict(lanes="4"), TypeError, "lanes must be an integer, not '4'"),
    (dict(lanes=4, units=3), ValueError, "units must be a power of two dividing lanes (4), not 3"),
    (dict(lanes=6, units=4), ValueError, "units must be a power of two dividing lanes (6), not 4"),
])
def test_post_process_checks_arguments(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        PostProcess(**kwargs)
    assert str(info.value) == msg
