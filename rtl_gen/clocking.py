"""The board top's clock: the board's oscillator, or an ECP5 PLL (EHXPLLL) when the build's
clock differs from it (``sephw compile --clock-mhz`` or a profile's ``clock_hz``).

EHXPLLL with its output CLKOP fed back (``FEEDBK_PATH = "CLKOP"``, as Lattice's ecppll
writes it): ``f_out = f_in * CLKFB_DIV / CLKI_DIV`` and the VCO runs at ``f_out * CLKOP_DIV``.
Limits from the ECP5 family data sheet (FPGA-DS-02012, sysCLOCK PLL timing): input 8..400 MHz,
phase detector ``f_in / CLKI_DIV`` 3.125..400 MHz, VCO 400..800 MHz, output 3.125..400 MHz,
dividers 1..128. :func:`pll_config` searches them for the output nearest the request.

The ``sync`` domain's reset is held while the PLL has not locked and for 16 cycles after
(boards without a reset pin: the ULX3S). nextpnr derives the output's frequency constraint
from the PLL's dividers and the oscillator's constraint ("Derived frequency constraint ... for
net clk"), so the open flow times the design at the clock it will run at.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

__all__ = ["PLL_LIMITS", "PllError", "pll_config", "board_clock"]

#: EHXPLLL limits in Hz (input, phase detector, VCO, output) and the divider range
PLL_LIMITS = {"in": (8e6, 400e6), "pfd": (3.125e6, 400e6), "vco": (400e6, 800e6), "out": (3.125e6, 400e6),
              "div": (1, 128)}


class PllError(ValueError):
    """No EHXPLLL setting gives the requested clock (the message says why and what can)."""


def pll_config(fin_hz: float, fout_hz: float, tolerance: float = 0.005) -> dict:
    """EHXPLLL dividers for ``fout_hz`` from ``fin_hz``: the output nearest the request (ties:
    the smaller input divider; the VCO nearest 600 MHz), within ``tolerance`` (relative).
    Returns ``clki_div``,
    ``clkfb_div``, ``clkop_div``, ``pfd_hz``, ``vco_hz``, ``out_hz``."""
    lo, hi = PLL_LIMITS["out"]
    if not lo <= fout_hz <= hi:
        raise PllError(f"{fout_hz / 1e6:g} MHz is outside the ECP5 PLL's output range "
                       f"{lo / 1e6:g}..{hi / 1e6:g} MHz")
    if not PLL_LIMITS["in"][0] <= fin_hz <= PLL_LIMITS["in"][1]:
        raise PllError(f"{fin_hz / 1e6:g} MHz is outside the ECP5 PLL's input range")
    dmin, dmax = PLL_LIMITS["div"]
    best = None
    for ci in range(dmin, dmax + 1):
        pfd = fin_hz / ci
        if not PLL_LIMITS["pfd"][0] <= pfd <= PLL_LIMITS["pfd"][1]:
            continue
        for fb in range(dmin, dmax + 1):
            out = pfd * fb
            if not lo <= out <= hi:
                continue
            ops = [d for d in range(dmin, dmax + 1) if PLL_LIMITS["vco"][0] <= out * d <= PLL_LIMITS["vco"][1]]
            if not ops:
                continue
            err = abs(out - fout_hz)
            if best is None or err < best[0] - 1e-6:
                op = min(ops, key=lambda d: abs(out * d - 600e6))     # the VCO mid-range
                best = (err, {"clki_div": ci, "clkfb_div": fb, "clkop_div": op, "pfd_hz": pfd,
                              "vco_hz": out * op, "out_hz": out})
    if best is None or best[0] > tolerance * fout_hz:
        near = f"; nearest {best[1]['out_hz'] / 1e6:.4f} MHz" if best else ""
        raise PllError(f"no ECP5 PLL setting gives {fout_hz / 1e6:g} MHz from {fin_hz / 1e6:g} MHz within "
                       f"{tolerance:.1%}{near}")
    return best[1]


def board_clock(m: Module, platform, board) -> None:
    """Set up the ``sync`` domain of a board top at ``board.clock_hz`` from the platform's
    default clock (``board.oscillator_hz``; a :class:`boards.Board` differs from it only on
    ECP5). Platforms with a reset pin and no PLL keep their own domain; otherwise ``sync``
    gets a power-on reset (16 cycles; with a PLL, from its lock)."""
    clock_hz, oscillator_hz = board.clock_hz, board.oscillator_hz
    clk = platform.lookup(platform.default_clk)
    if clk.clock is not None and round(clk.clock.frequency) != oscillator_hz:
        raise ValueError(f"platform clock {clk.clock.frequency:.0f} Hz differs from the board "
                         f"profile's oscillator_hz {oscillator_hz}")
    pll = clock_hz != oscillator_hz
    if not pll and platform.default_rst is not None:
        return                    # the platform's own sync domain, clock and reset pin
    m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
    m.domains.sync = ClockDomain("sync")
    m.domains.por = ClockDomain("por", reset_less=True)
    por = Signal(range(16), init=15)
    if pll:
        cfg = pll_config(oscillator_hz, clock_hz)
        clk_out, lock = Signal(name="pll_clkop"), Signal(name="pll_lock")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{oscillator_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{cfg['out_hz'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=cfg["clki_div"], p_CLKFB_DIV=cfg["clkfb_div"], p_CLKOP_DIV=cfg["clkop_div"],
            p_CLKOP_CPHASE=cfg["clkop_div"] - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk_out, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock)
        m.d.comb += [ClockSignal("sync").eq(clk_out), ClockSignal("por").eq(clk_out)]
        with m.If(~lock):
            m.d.por += por.eq(15)
        with m.Elif(por != 0):
            m.d.por += por.eq(por - 1)
    else:
        m.d.comb += [ClockSignal("sync").eq(clk_buf.i), ClockSignal("por").eq(clk_buf.i)]
        with m.If(por != 0):
            m.d.por += por.eq(por - 1)
    m.d.comb += ResetSignal("sync").eq(por != 0)
