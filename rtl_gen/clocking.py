"""The board top's clock: the board's oscillator, or a clock generator when the build's clock
differs from it (``sephw compile --clock-mhz`` or a profile's ``clock_hz``): an ECP5 PLL
(EHXPLLL), or an Artix-7 MMCME2 (:func:`mmcm_config`, :func:`xc7_clock`).

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

__all__ = ["PLL_LIMITS", "MMCM_LIMITS", "PllError", "pll_config", "mmcm_config", "board_clock", "xc7_clock"]

#: EHXPLLL limits in Hz (input, phase detector, VCO, output) and the divider range
PLL_LIMITS = {"in": (8e6, 400e6), "pfd": (3.125e6, 400e6), "vco": (400e6, 800e6), "out": (3.125e6, 400e6),
              "div": (1, 128)}


#: MMCME2_BASE limits in Hz for the Artix-7 -1 / -1L speed grades (DS181, MMCM switching
#: characteristics: input 10..800 MHz, phase detector 10..450 MHz, VCO 600..1200 MHz, output
#: 4.69..800 MHz); multiplier 2..64, input divider 1..106, output divider 1..128 (integers here)
MMCM_LIMITS = {"in": (10e6, 800e6), "pfd": (10e6, 450e6), "vco": (600e6, 1200e6), "out": (4.69e6, 800e6),
               "mult": (2, 64), "div": (1, 106), "odiv": (1, 128)}


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


def mmcm_config(fin_hz: float, fout_hz: float, tolerance: float = 0.005) -> dict:
    """MMCME2 settings for ``fout_hz`` from ``fin_hz``: ``f_out = f_in * mult / (div * odiv)``
    with the VCO at ``f_in * mult / div``; the output nearest the request (ties: the smaller
    input divider, then the VCO nearest 1 GHz), within ``tolerance``. Returns ``mult``, ``div``,
    ``odiv``, ``pfd_hz``, ``vco_hz``, ``out_hz``."""
    L = MMCM_LIMITS
    if not L["out"][0] <= fout_hz <= L["out"][1]:
        raise PllError(f"{fout_hz / 1e6:g} MHz is outside the Artix-7 MMCM's output range "
                       f"{L['out'][0] / 1e6:g}..{L['out'][1] / 1e6:g} MHz")
    best = None
    for div in range(L["div"][0], L["div"][1] + 1):
        pfd = fin_hz / div
        if not L["pfd"][0] <= pfd <= L["pfd"][1]:
            continue
        for mult in range(L["mult"][0], L["mult"][1] + 1):
            vco = pfd * mult
            if not L["vco"][0] <= vco <= L["vco"][1]:
                continue
            odiv = min(max(round(vco / fout_hz), L["odiv"][0]), L["odiv"][1])
            out = vco / odiv
            key = (abs(out - fout_hz), div, abs(vco - 1e9))
            if best is None or key < best[0]:
                best = (key, {"mult": mult, "div": div, "odiv": odiv, "pfd_hz": pfd, "vco_hz": vco, "out_hz": out})
    if best is None or best[0][0] > tolerance * fout_hz:
        near = f"; nearest {best[1]['out_hz'] / 1e6:.4f} MHz" if best else ""
        raise PllError(f"no Artix-7 MMCM setting gives {fout_hz / 1e6:g} MHz from {fin_hz / 1e6:g} MHz within "
                       f"{tolerance:.1%}{near}")
    return best[1]


def xc7_clock(m: Module, clk_in, fin_hz: float, fout_hz: float, rst=0) -> None:
    """The ``sync`` domain at ``fout_hz`` from an Artix-7 MMCME2_BASE on ``clk_in`` (the
    oscillator's input buffer, or a global clock such as the LiteDRAM core's system clock), its
    output on a BUFG; ``sync`` is held in reset while the MMCM has not locked or ``rst`` is
    high, and for 16 cycles after."""
    cfg = mmcm_config(fin_hz, fout_hz)
    fb, out, clk, lock = (Signal(name=n) for n in ("mmcm_fb", "mmcm_clkout0", "mmcm_clk", "mmcm_locked"))
    m.submodules.mmcm = Instance(
        "MMCME2_BASE",
        p_BANDWIDTH="OPTIMIZED", p_CLKIN1_PERIOD=round(1e9 / fin_hz, 3), p_CLKFBOUT_MULT_F=float(cfg["mult"]),
        p_DIVCLK_DIVIDE=cfg["div"], p_CLKOUT0_DIVIDE_F=float(cfg["odiv"]), p_CLKOUT0_PHASE=0.0,
        p_CLKOUT0_DUTY_CYCLE=0.5, p_STARTUP_WAIT="FALSE",
        i_CLKIN1=clk_in, i_CLKFBIN=fb, o_CLKFBOUT=fb, o_CLKOUT0=out, o_LOCKED=lock, i_RST=0, i_PWRDWN=0)
    m.submodules.mmcm_bufg = Instance("BUFG", i_I=out, o_O=clk)
    _sync_with_por(m, clk, ~lock | rst)


def _sync_with_por(m: Module, clk, hold) -> None:
    """The ``sync`` domain on ``clk``, held in reset while ``hold`` and for 16 cycles after
    (a ``por`` counter on the same clock)."""
    m.domains.sync = ClockDomain("sync")
    m.domains.por = ClockDomain("por", reset_less=True)
    por = Signal(range(16), init=15)
    m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk), ResetSignal("sync").eq(por != 0)]
    with m.If(hold):
        m.d.por += por.eq(15)
    with m.Elif(por != 0):
        m.d.por += por.eq(por - 1)


def board_clock(m: Module, platform, board, shifted_deg: float | None = None) -> None:
    """Set up the ``sync`` domain of a board top at ``board.clock_hz`` from the platform's
    default clock (``board.oscillator_hz``; a :class:`boards.Board` differs from it only on
    ECP5). Platforms with a reset pin and no PLL keep their own domain; otherwise ``sync``
    gets a power-on reset (16 cycles; with a PLL, from its lock).

    ``shifted_deg``: also a reset-less ``sync_ps`` domain, the same clock from the PLL's second
    output (CLKOS) delayed by that phase (an SDR SDRAM's forwarded clock: the ULX3S's LiteDRAM
    core, :func:`rtl_gen.dram.instantiate_board_core`); the PLL is then used even at the
    oscillator's frequency. Each VCO period of delay is one step of ``CLKOS_CPHASE``, each
    eighth one of ``CLKOS_FPHASE`` (as Lattice's ecppll writes them)."""
    clock_hz, oscillator_hz = board.clock_hz, board.oscillator_hz
    clk = platform.lookup(platform.default_clk)
    if clk.clock is not None and round(clk.clock.frequency) != oscillator_hz:
        raise ValueError(f"platform clock {clk.clock.frequency:.0f} Hz differs from the board "
                         f"profile's oscillator_hz {oscillator_hz}")
    pll = clock_hz != oscillator_hz or shifted_deg is not None
    if not pll and platform.default_rst is not None:
        return                    # the platform's own sync domain, clock and reset pin
    if board.family == "xc7":
        if shifted_deg is not None:
            raise ValueError("a phase-shifted second clock is made on ECP5 boards only")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        rst = 0
        if platform.default_rst is not None:
            m.submodules.rst_buf = rst_buf = io.Buffer("i", platform.request(platform.default_rst, dir="-"))
            rst = rst_buf.i
        xc7_clock(m, clk_buf.i, oscillator_hz, clock_hz, rst)
        return
    m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
    if pll:
        cfg = pll_config(oscillator_hz, clock_hz)
        clk_out, lock = Signal(name="pll_clkop"), Signal(name="pll_lock")
        div = cfg["clkop_div"]
        shifted = {}
        if shifted_deg is not None:
            steps = round(shifted_deg % 360 / 360 * div * 8)         # eighths of a VCO period
            clk_ps = Signal(name="pll_clkos")
            m.domains.sync_ps = ClockDomain("sync_ps", reset_less=True)
            m.d.comb += ClockSignal("sync_ps").eq(clk_ps)
            shifted = dict(a_FREQUENCY_PIN_CLKOS=f"{cfg['out_hz'] / 1e6:g}", p_CLKOS_ENABLE="ENABLED",
                           p_CLKOS_DIV=div, p_CLKOS_CPHASE=div - 1 + steps // 8, p_CLKOS_FPHASE=steps % 8,
                           o_CLKOS=clk_ps, i_ENCLKOS=0)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{oscillator_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{cfg['out_hz'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=cfg["clki_div"], p_CLKFB_DIV=cfg["clkfb_div"], p_CLKOP_DIV=div,
            p_CLKOP_CPHASE=div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk_out, i_CLKFB=clk_out,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock, **shifted)
        _sync_with_por(m, clk_out, ~lock)
    else:
        _sync_with_por(m, clk_buf.i, 0)
