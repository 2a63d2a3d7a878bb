"""Board top: the accelerator behind its UART host link, wired to an amaranth-boards platform.

``BoardTop`` puts :class:`rtl_gen.system.System` (the UART host link,
:class:`rtl_gen.hostlink.HostLink`, beside the :class:`rtl_gen.top.Accelerator`) on the
board's clock (:func:`rtl_gen.clocking.board_clock`: the oscillator, or an ECP5 PLL when the
build's clock differs from it), the USB-UART pins (``uart`` resource 0: Arty A7 and ULX3S FTDI
bridges) and two LEDs (0: busy, 1: error). The design's clock is the board's ``clock_hz``
(Arty A7: 100 MHz, ULX3S: 25 MHz unless ``sephw compile --clock-mhz`` sets it); the board build
takes it from the build's manifest, so the UART divisor is right by construction.

A build that keeps words in DRAM (``arch.ext_words``) gets the board's LiteDRAM controller
(:func:`rtl_gen.dram.instantiate_board_core`, generated at build time into ``BUILD/litedram``):
on the Arty A7 its A7DDRPHY on the DDR3L pins, its PLL making the design's 100 MHz clock (a
build at a lower ``--clock-mhz``: an MMCM from it and clock-domain crossings); on
the ULX3S its GENSDRPHY on the SDR SDRAM's pins, on the design's clock (the ECP5 PLL, whose
second output, 180° behind, is the SDRAM's clock). The System's ``ext`` port is on its native
port and the host link's ``CSR`` command on its ``wb_ctrl`` (the host initializes the DRAM, and
read-levels the Arty's DDR3, through it: host/dram.py).
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from .clocking import board_clock
from .dram import instantiate_board_core

__all__ = ["BoardTop", "netlist_for"]


def netlist_for(vendor: str) -> str:
    """The pattern engine's netlist form for a board vendor (``"xc7"`` on Xilinx parts)."""
    return "xc7" if vendor == "xilinx" else "lut"


class BoardTop(Elaboratable):
    """The whole accelerator for one board.

    Parameters
    ----------
    build_dir : path
        Build directory of ``sephw compile`` (manifest.json sizes the top and the link).
    board : boards.Board
        Board profile; its ``oscillator_hz`` must equal the platform's default clock, its
        ``clock_hz`` the build's clock (``Board.at_clock``).
    baud : int, optional
        UART baud rate (default: the profile's ``host_links.uart.default_baud``).
    dram_dir : path, optional
        Where the board's LiteDRAM core is generated and reused, for a build that keeps words
        in DRAM (default ``BUILD_DIR/litedram``).

    The pattern engine's netlist follows the part: ``"xc7"`` (LUT6_2/CARRY4 counters,
    :mod:`rtl_gen.xc7`) on Xilinx boards, the generic ``"lut"`` form elsewhere.
    """

    def __init__(self, build_dir, board, baud: int | None = None, dram_dir=None):
        from sephw.arch import Manifest
        from sephw.arch.link import DramPhy

        from .system import System
        uart = board.host_links.get("uart")
        if uart is None:
            raise ValueError(f"board {board.name} has no UART host link in {board.path}")
        self._baud = int(baud or uart["default_baud"])
        if self._baud > uart["max_baud"]:
            raise ValueError(f"baud {self._baud} exceeds {board.name}'s UART bridge maximum {uart['max_baud']}")
        self._board = board
        self._dram = None
        dram_phy = None
        if Manifest.read(build_dir).arch.ext_words:
            self._dram = self._dram_core(board, Path(dram_dir or Path(build_dir) / "litedram"))
            dram_phy = {"A7DDRPHY": DramPhy.A7DDRPHY, "GENSDRPHY": DramPhy.GENSDRPHY}[self._dram.recipe["phy"]]
        self._system = System.from_build(build_dir, baud=self._baud, clk_hz=board.clock_hz,
                                         netlist=netlist_for(board.vendor), dram_phy=dram_phy)
        ext = self._system.link.memory_map.external
        if self._dram is not None and (self._dram.data_width, self._dram.addr_width) != (ext.word_bits, ext.addr_bits):
            raise ValueError(f"{board.name}'s LiteDRAM port has {self._dram.data_width}-bit words and "
                             f"{self._dram.addr_width} address bits; the build was compiled for {ext.word_bits} "
                             f"and {ext.addr_bits} (boards/{board.name}.yaml external_memory)")

    @staticmethod
    def _dram_core(board, out_dir):
        """The board's LiteDRAM core (rtl_gen.dram.generate, reused while its configuration is
        unchanged): the Arty's A7DDRPHY core runs its own 100 MHz clock (a slower build reaches
        it through clock-domain crossings); the ULX3S's GENSDRPHY core is generated for the
        build's clock."""
        from . import dram
        if board.name not in dram.CONFIGS:
            raise ValueError(
                f"this build keeps words in {board.name}'s external memory, and no DRAM controller is "
                f"configured for it (boards/litedram/: {', '.join(sorted(dram.CONFIGS))}); run it on the "
                f"simulated board (`sephw run BUILD --port sim:BUILD`) or with `sephw simulate`")
        sdr = board.family == "ecp5"
        core = dram.generate(board.name, out_dir, clock_hz=board.clock_hz if sdr else None)
        if core.recipe["clock_hz"] < board.clock_hz:
            raise ValueError(f"{board.name}'s DRAM controller runs at {core.recipe['clock_hz'] / 1e6:g} MHz "
                             f"(boards/litedram/); this build is compiled for {board.clock_hz / 1e6:g} MHz, which "
                             f"would wait on it: compile it for {core.recipe['clock_hz'] / 1e6:g} MHz or less")
        return core

    system = property(lambda self: self._system, doc="The :class:`~rtl_gen.system.System`.")
    dram = property(lambda self: self._dram, doc="The board's :class:`~rtl_gen.dram.LiteDRAMCore`, or None.")
    dram_crossing = property(
        lambda self: self._dram is not None and self._dram.recipe["clock_hz"] != self._board.clock_hz,
        doc="Whether the design reaches its DRAM controller through clock-domain crossings (the "
            "controller on its own clock: an Arty build at another ``--clock-mhz``).")
    link = property(lambda self: self._system.link, doc="The :class:`~rtl_gen.hostlink.HostLink`.")
    baud = property(lambda self: self._baud, doc="UART baud rate.")

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = system = self._system
        if platform is None:
            return m
        # No reset pin (ULX3S): the platform's default domain would be reset-less, but the
        # engines and the link reset their state; a power-on reset holds `sync` in reset for 16
        # cycles after configuration (after the PLL's lock where there is one).
        if self._dram is None:
            board_clock(m, platform, self._board)
        else:   # the clock with the DRAM controller (its own PLL on the Arty, a PLL for two on the ULX3S)
            instantiate_board_core(m, platform, self._board, self._dram, system.ext, system.dram)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [system.uart_rx.eq(rx.i), tx.o.eq(system.uart_tx)]
        for i, sig in enumerate((system.busy, system.error)):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(sig)
        return m
