"""Composite: a whole PRB layer (WindowGen, PatternEngine ‖ MacArray, PostProcess) in cocotb,
bit-exact against the integer reference (pattern_conv_acc + int_conv_acc + requant)."""
import pytest

from rtl_gen.prb import PRBDatapath
from sim.runner import run_testbench

PARAMS = dict(channels=8, lanes=8, k=3, groups=2, a_bits=8, max_width=8, max_rows=8, packed=True)


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)], ids=["flow", "backpressure"])
def test_prb_layer(idle, stall):
    case = {"params": PARAMS, "seed": 5000 + int(idle > 0), "idle": idle, "stall": stall,
            "height": 6, "width": 6, "band_rows": 3, "act_bits": [8, 5]}
    run_testbench(PRBDatapath(**PARAMS), "prb_c8_l8_k3_g2", "sim.tb_prb", case)
