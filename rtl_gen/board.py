"""Board top: the accelerator behind its UART host link, wired to an amaranth-boards platform.

``BoardTop`` puts :class:`rtl_gen.system.System` (the UART host link,
:class:`rtl_gen.hostlink.HostLink`, beside the :class:`rtl_gen.top.Accelerator`) on the
board's clock (:func:`rtl_gen.clocking.board_clock`: the oscillator, or an ECP5 PLL when the
build's clock differs from it), the USB-UART pins (``uart`` resource 0: Arty A7 and ULX3S FTDI
bridges) and two LEDs (0: busy, 1: error). The design's clock is the board's ``clock_hz``
(Arty A7: 100 MHz, ULX3S: 25 MHz unless ``sephw compile --clock-mhz`` sets it); the board build
takes it from the build's manifest, so the UART divisor is right by construction.
"""
from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from .clocking import board_clock

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

    The pattern engine's netlist follows the part: ``"xc7"`` (LUT6_2/CARRY4 counters,
    :mod:`rtl_gen.xc7`) on Xilinx boards, the generic ``"lut"`` form elsewhere.
    """

    def __init__(self, build_dir, board, baud: int | None = None):
        from .system import System
        uart = board.host_links.get("uart")
        if uart is None:
            raise ValueError(f"board {board.name} has no UART host link in {board.path}")
        self._baud = int(baud or uart["default_baud"])
        if self._baud > uart["max_baud"]:
            raise ValueError(f"baud {self._baud} exceeds {board.name}'s UART bridge maximum {uart['max_baud']}")
        self._board = board
        self._system = System.from_build(build_dir, baud=self._baud, clk_hz=board.clock_hz,
                                         netlist=netlist_for(board.vendor))
        ext = self._system.link.memory_map.external
        if ext is not None:
            # the board's DRAM controller (LiteDRAM, its clocks and pins) is not in the board
            # top yet (issue 15): refuse rather than build a top whose DMA_LOADs wait forever
            # on an unconnected port (a ValueError: the CLI reports it in one line)
            raise ValueError(
                f"this build keeps pattern and weight words in external memory ({ext.depth} words of "
                f"{ext.word_bits} bits): the board top with the DRAM controller is not built yet; run it on "
                f"the simulated board (`sephw run BUILD --port sim:BUILD`) or with `sephw simulate`, or "
                f"compile with `--weights onchip` where the model fits on chip")

    system = property(lambda self: self._system, doc="The :class:`~rtl_gen.system.System`.")
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
        board_clock(m, platform, self._board)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [system.uart_rx.eq(rx.i), tx.o.eq(system.uart_tx)]
        for i, sig in enumerate((system.busy, system.error)):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(sig)
        return m
