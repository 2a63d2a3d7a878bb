# amaranth: UnusedElaboratable=no
"""WindowGen in cocotb: windows equal the reference convolution's windows, band by band."""
import pytest

from rtl_gen.windowgen import WindowGen
from sim.runner import run_testbench
from sim.tb_windowgen import plan_bands

PARAMS = dict(channels=3, k=5, a_bits=8, max_width=12, max_rows=12)


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)], ids=["flow", "backpressure"])
def test_window_gen(idle, stall):
    case = {"params": PARAMS, "seed": 4000 + int(idle > 0), "idle": idle, "stall": stall,
            "images": 6}
    run_testbench(WindowGen(**PARAMS), "windowgen_k5", "sim.tb_windowgen", case)


def test_band_plan_covers_every_output_row_once():
    for h in range(1, 13):
        for stride in (1, 2):
            for pad in (0, 1, 2):
                if h + 2 * pad < 5:
                    continue
                ho = (h + 2 * pad - 5) // stride + 1
                for rows in range(1, ho + 1):
                    bands = plan_bands(h, 5, stride, pad, rows)
                    covered = [o for (o0, o1, *_ ) in bands for o in range(o0, o1)]
                    assert covered == list(range(ho))


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(channels=2, k=4), ValueError, "k must be odd, not 4"),
    (dict(channels=2, k=3, max_width=2), ValueError, "max_width must be at least 3, not 2"),
    (dict(channels=0, k=3), ValueError, "channels must be at least 1, not 0"),
])
def test_window_gen_checks_arguments(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        WindowGen(**kwargs)
    assert str(info.value) == msg
