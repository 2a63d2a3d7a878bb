# amaranth: UnusedElaboratable=no
"""Writer in cocotb: every byte of random tiles against the model, and its cycles per position
(sim/tb_writer.py; each run covers ``y`` without and with idle cycles)."""
import pytest

from rtl_gen.writer import Writer
from sim.runner import run_testbench

CONFIGS = {
    "l4_u1": dict(lanes=4, units=1),
    "l6_u2": dict(lanes=6, units=2),     # wide (two bytes per cycle) and narrow tiles
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_writer(config):
    params = CONFIGS[config]
    case = {**params, "seed": 4000 + list(CONFIGS).index(config) * 10, "tiles": 16}
    run_testbench(Writer(**params), f"writer_{config}", "sim.tb_writer", case)


def test_writer_testbench_row_address_cost_is_the_models():
    """The testbench's RowAddress cost (it does not import the compiler) is the cycle model's."""
    from sephw.compiler import hw
    from sim import tb_writer
    assert tb_writer.TOP_ROW_ADDR == hw.TOP_ROW_ADDR
