"""The board top's clock (rtl_gen/clocking.py): ECP5 PLL settings within the EHXPLLL's limits,
boards without a clock generator refusing other clocks, and ``sephw compile --clock-mhz``
stopping with one line before compiling when a clock cannot be made."""
import pytest

import boards
from rtl_gen.clocking import PLL_LIMITS, PllError, pll_config
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
    with pytest.raises(boards.BoardError, match="no clock generator"):
        board_at_clock(arty, 50)


def test_compile_clock_mhz_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["compile", "missing_q.pt", "--board", "arty-a7", "--clock-mhz", "50", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sephw compile: error: --clock-mhz 50:") and "\n" not in err
    assert main(["compile", "missing_q.pt", "--board", "ulx3s", "--clock-mhz", "12", "-o", str(out)]) == 2
    assert "nearest 12.5000 MHz" in capsys.readouterr().err
    assert not out.exists()
