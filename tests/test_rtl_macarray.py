# amaranth: UnusedElaboratable=no
"""MacArray in cocotb, bit-exact against sephw.intops.int_conv_acc (1×1 convolution); the
unpacked array also on int8 activations (x_signed: all -128, all 127, random)."""
import json

import pytest

from rtl_gen.macarray import MacArray
from sim.macarray_harness import LateXMacArray
from sim.runner import run_testbench
from sim.tb import crossed_flows

CONFIGS = {
    "4x4_packed": dict(rows=4, cols=4, packed=True, weight_depth=4),
    "3x5_unpacked": dict(rows=3, cols=5, packed=False, weight_depth=4),
    # x read a cycle after the beat is taken, from the register the top loads (x_late)
    "4x4_packed_late_x": dict(rows=4, cols=4, packed=True, weight_depth=4, x_late=True),
    "3x5_unpacked_late_x": dict(rows=3, cols=5, packed=False, weight_depth=4, x_late=True),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)], ids=["flow", "backpressure"])
def test_mac_array(config, idle, stall):
    """Bit-exact; with back-pressure the sub-cases cross idle insertion and back-pressure
    (both, each alone: sim.tb.crossed_flows)."""
    params = CONFIGS[config]
    case = {"params": params, "seed": 2000 + list(CONFIGS).index(config) * 10 + int(idle > 0),
            "idle": idle, "stall": stall, "random_cases": 4, "signed": not params["packed"]}
    late = dict(params)
    dut = LateXMacArray(**late) if late.pop("x_late", False) else MacArray(**params)
    d = run_testbench(dut, f"macarray_{config}", "sim.tb_macarray", case)
    assert {tuple(st["flow"]) for st in json.loads((d / "result.json").read_text())} == set(crossed_flows(idle, stall))


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(rows=3, cols=2, packed=True), ValueError, "packed needs an even number of rows, not 3"),
    (dict(rows=2, cols=2, packed=1), TypeError, "packed must be a bool, not 1"),
    (dict(rows=0, cols=2), ValueError, "rows must be at least 1, not 0"),
    (dict(rows=2, cols=2, acc_width=16), ValueError, "acc_width must be in 17..64, not 16"),
])
def test_mac_array_checks_arguments(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        MacArray(**kwargs)
    assert str(info.value) == msg


def test_packed_halves_the_multipliers():
    assert MacArray(rows=8, cols=4, packed=True).multipliers == 16
    assert MacArray(rows=8, cols=4, packed=False).multipliers == 32


@pytest.mark.parametrize("bram", [False, True])
def test_weights_bram_maps_a_shallow_weight_memory_to_block_ram(tmp_path, bram):
    """``weights_bram`` (EngineConfig.weights_bram, the sizer's choice where LUTs run out):
    Yosys synth_xilinx puts a 16-word weight memory into a RAMB18E1 with it and into
    distributed RAM (RAM32M) without it."""
    from amaranth.back import verilog

    from rtl_gen.synth import synth_xilinx
    (tmp_path / "m.v").write_text(verilog.convert(MacArray(rows=4, cols=4, weight_depth=16, weights_bram=bram),
                                                  name="m"))
    got = synth_xilinx(tmp_path / "m.v", "m", tmp_path)
    if bram:
        assert got["BRAM36"] > 0 and got["LUTRAM_LUTs"] == 0, got["cells"]
    else:
        assert got["BRAM36"] == 0 and got["LUTRAM_LUTs"] > 0, got["cells"]
