"""System: the host link and the accelerator, siblings wired through the control port.

:class:`System` instantiates :class:`~rtl_gen.hostlink.HostLink` and
:class:`~rtl_gen.top.Accelerator` side by side and connects the link's ``acc`` port
(:func:`rtl_gen.control.control_signature`) to the accelerator: memory writes (``host_w``),
the input and output byte streams, ``start``, and the accelerator's reset (a
``ResetInserter``: the link's ``RESET`` command resets the accelerator's logic while its
memories keep their contents). With external memory (``arch.ext_words``) the system has an
``ext`` port (LiteDRAM's native port, user side) shared through :class:`~rtl_gen.extport.ExtPort`
by the accelerator (its DMA, the input image's and spilled tensors' rows, which it reads
from DRAM itself: the link's ``WRITE_INPUT`` keeps the image there) and the link's writes
into DRAM. The board top
(:mod:`rtl_gen.board`) and the simulated board (:mod:`sim.simboard`) build this.
"""
from __future__ import annotations

from dataclasses import replace

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sephw.arch.config import ArchConfig
from sephw.arch.manifest import Manifest

from .control import dram_ctrl_signature
from .dram import native_signature
from .extport import ExtPort
from .hostlink import HostLink
from .top import Accelerator

__all__ = ["System"]


class System(wiring.Component):
    """Host link + accelerator for one :class:`~sephw.arch.ArchConfig`.

    Parameters
    ----------
    arch : ArchConfig
        The contract both are built from.
    baud : int
        UART bits per second.
    board : str
        Board name reported by ``INFO``.
    netlist : str
        The pattern engine's form (:class:`~rtl_gen.top.Accelerator`).
    **link_kw
        Further :class:`~rtl_gen.hostlink.HostLink` parameters (``frame_timeout_cycles``, ...).

    Attributes
    ----------
    uart_rx : In(1, init=1), uart_tx : Out(1, init=1)
        The serial lines.
    busy, error : Out(1)
        The host link's (LEDs).
    ext : Out(rtl_gen.dram.native_signature(ext_data_bits, ...))
        Only with ``arch.ext_words > 0``: the board's DRAM (to LiteDRAM's native port, or a
        behavioural memory in simulation).
    dram : Out(rtl_gen.control.dram_ctrl_signature())
        Only with external memory: the DRAM controller's CSR bus and ``init_done`` (the host
        link's ``CSR`` command; ``dram_phy``, a HostLink parameter, says what is behind it).
    """

    def __init__(self, arch: ArchConfig, *, baud: int, board: str, netlist: str = "lut", **link_kw):
        self._link = HostLink(arch, baud=baud, board=board, **link_kw)
        self._acc = Accelerator(arch, netlist=netlist)
        ext = self._link.memory_map.external
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1),
                          **({"ext": Out(native_signature(ext.word_bits, ext.addr_bits)),
                              "dram": Out(dram_ctrl_signature())} if ext else {})})

    @classmethod
    def from_build(cls, build_dir, *, baud: int = 3_000_000, clk_hz: int | None = None,
                   netlist: str = "lut", frame_timeout_cycles: int | None = None,
                   dram_phy: int | None = None) -> "System":
        """The system for a build directory's ArchConfig (``manifest.json``) and board.
        ``clk_hz`` builds the same design for another clock: that is another ArchConfig, so
        the device reports another hash and runs builds compiled for that clock."""
        man = Manifest.read(build_dir)
        arch = man.arch if clk_hz is None else replace(man.arch, clock_hz=int(clk_hz))
        return cls(arch, baud=baud, board=man.board, netlist=netlist,
                   frame_timeout_cycles=frame_timeout_cycles, dram_phy=dram_phy)

    link = property(lambda self: self._link, doc="The :class:`~rtl_gen.hostlink.HostLink`.")
    accelerator = property(lambda self: self._acc, doc="The :class:`~rtl_gen.top.Accelerator`.")
    arch = property(lambda self: self._acc.arch, doc="The :class:`~sephw.arch.ArchConfig`.")

    def elaborate(self, platform):
        m = Module()
        link, acc = self._link, self._acc
        m.submodules.link = link
        m.submodules.accelerator = ResetInserter(link.acc.reset)(acc)
        ctl = link.acc
        wiring.connect(m, ctl.host_w, acc.host_w)
        wiring.connect(m, acc.tx, ctl.tx)
        ext = self._link.memory_map.external
        if ext is None:
            wiring.connect(m, ctl.rx, acc.rx)
        else:
            # the accelerator reads the input image from DRAM (the link's WRITE_INPUT put it
            # there); after the link's RESET the reads the accelerator left in flight are dropped
            m.submodules.ext_port = ep = ExtPort(ext.word_bits, ext.addr_bits, readers=("acc",))
            wiring.connect(m, acc.ext, ep.acc)
            wiring.connect(m, ctl.ext_w, ep.host)
            wiring.connect(m, ep.mem, wiring.flipped(self.ext))
            wiring.connect(m, link.dram, wiring.flipped(self.dram))
            m.d.comb += ep.reset_readers.eq(ctl.reset)
        m.d.comb += [acc.start.eq(ctl.start), ctl.done.eq(acc.done), ctl.error.eq(acc.error),
                     ctl.cycles.eq(acc.cycles),
                     link.uart_rx.eq(self.uart_rx), self.uart_tx.eq(link.uart_tx),
                     self.busy.eq(link.busy), self.error.eq(link.error)]
        return m
