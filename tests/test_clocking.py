"""The board top's clock (rtl_gen/clocking.py): ECP5 PLL and Artix-7 MMCM settings within their
limits, boards without a clock generator refusing other clocks, an Arty build below its DRAM
controller's clock getting the crossing's read latency, and ``sephw compile --clock-mhz``
stopping with one line before compiling when a clock cannot be made."""
from dataclasses import replace

import pytest

import boards
from rtl_gen.clocking import MMCM_LIMITS, PLL_LIMITS, PllError, mmcm_config, pll_config
from sephw.cli import main
from sephw.flows.compile import board_at_clock


@pytest.mark.parametrize("mhz", [25, 30, 40, 50, 62.5, 75, 100, 33.333333])
def test_pll_settings_are_inside_the_ehxplll_limits(mhz):
    cfg = pll_config(25e6, mhz * 1e6)
    assert cfg["out_hz"] == pytest.approx(mhz * 1e6, rel=1e-6)
    assert cfg["out_hz"] == pytest.approx(25e6 * cfg["clkfb_div"] / cfg["clki_div"])
    assert cfg["vco_hz"] == pytest.approx(cfg["out_hz"] * cfg["clkop_div"])
    for key, v in (("pfd", cfg["pfd_hz"]), ("vco", cfg["vco_hz"]), ("out", cfg["out_hz"])):
        lo, hi = PLL_LIMITS[key]
        assert lo <= v <= hi, key
    for d in ("clki_div", "clkfb_div", "clkop_div"):
        assert 1 <= cfg[d] <= 128


def test_pll_refuses_clocks_it_cannot_make():
    with pytest.raises(PllError, match="outside the ECP5 PLL's output range"):
        pll_config(25e6, 500e6)
    # 12 MHz would need a 1 MHz phase detector (< 3.125 MHz): the nearest is named
    with pytest.raises(PllError, match=r"nearest 12\.5000 MHz"):
        pll_config(25e6, 12e6)


def test_board_clock_override():
    ulx3s, arty = boards.get("ulx3s-85f"), boards.get("arty-a7-35")
    assert ulx3s.oscillator_hz == ulx3s.clock_hz == 25_000_000
    b = board_at_clock(ulx3s, 100 / 3)
    assert b.clock_hz == 33_333_333 and b.oscillator_hz == 25_000_000 and b.name == ulx3s.name
    assert board_at_clock(arty, 100).clock_hz == 100_000_000
    # the Arty's MMCM; its DRAM controller stays at 100 MHz, reached through the crossing
    a = board_at_clock(arty, 70)
    assert a.clock_hz == 70_000_000 and a.oscillator_hz == 100_000_000
    assert a.external.read_latency == boards.crossing_latency(10, 100_000_000, 70_000_000) == 11
    assert a.external.controller_latency == 10 and a.at_clock(100_000_000).external.read_latency == 10
    # the compiler counts the crossings' logic beside the controller's only behind a crossing
    from sephw.compiler.hw import dram_controller
    assert dram_controller(a)["lut"] == dram_controller(arty)["lut"] + arty.external.crossing_lut > 3141
    assert ulx3s.at_clock(40_000_000).external.read_latency == ulx3s.external.read_latency  # generated for it
    with pytest.raises(boards.BoardError, match="would wait on it every beat.*compile for 100 MHz or less"):
        board_at_clock(arty, 120)
    with pytest.raises(boards.BoardError, match="no clock generator for the ice40 family"):
        replace(arty, family="ice40", clock_hz=50_000_000)


@pytest.mark.parametrize("mhz", [20, 50, 62.5, 65, 70, 72, 83.333333, 100, 150])
def test_mmcm_settings_are_inside_the_mmcme2_limits(mhz):
    cfg = mmcm_config(100e6, mhz * 1e6)
    assert cfg["out_hz"] == pytest.approx(mhz * 1e6, rel=1e-6)
    assert cfg["vco_hz"] == pytest.approx(100e6 * cfg["mult"] / cfg["div"])
    assert cfg["out_hz"] == pytest.approx(cfg["vco_hz"] / cfg["odiv"])
    for key, v in (("pfd", cfg["pfd_hz"]), ("vco", cfg["vco_hz"]), ("out", cfg["out_hz"])):
        lo, hi = MMCM_LIMITS[key]
        assert lo <= v <= hi, key
    with pytest.raises(PllError, match="outside the Artix-7 MMCM's output range"):
        mmcm_config(100e6, 900e6)


def test_compile_clock_mhz_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["compile", "missing_q.pt", "--board", "arty-a7", "--clock-mhz", "120", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sephw compile: error: --clock-mhz 120:") and "\n" not in err
    assert "would wait on it" in err
    assert main(["compile", "missing_q.pt", "--board", "ulx3s", "--clock-mhz", "12", "-o", str(out)]) == 2
    assert "nearest 12.5000 MHz" in capsys.readouterr().err
    assert not out.exists()


def test_compile_seed_reaches_nextpnr_and_is_refused_where_nothing_places(tmp_path, capsys):
    """``sephw compile --seed N``: nextpnr's seed in the ECP5 flow's options (the profile's
    placer kept); a one-line error where the board's vendor tool places (the Arty) or the seed
    is not positive."""
    from sephw.flows.boardbuild import nextpnr_options
    ulx = boards.get("ulx3s")
    assert nextpnr_options(ulx) == "--timing-allow-fail --placer static"
    assert nextpnr_options(replace(ulx, seed=7)) == "--timing-allow-fail --placer static --seed 7"
    out = tmp_path / "b"
    assert main(["compile", "missing_q.pt", "--board", "arty-a7", "--seed", "3", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sephw compile: error: --seed 3: only the ECP5 open flow") and "\n" not in err
    assert main(["compile", "missing_q.pt", "--board", "ulx3s", "--seed", "0", "-o", str(out)]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert not out.exists()
