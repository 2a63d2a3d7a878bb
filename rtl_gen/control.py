"""The accelerator's control port: what a controller (the host link today, a DMA or a soft CPU
tomorrow) sees of the accelerator, as a signature both sides are built from.

The host link and the accelerator are siblings: the system top (:mod:`rtl_gen.system`)
instantiates both and wires the link's ``acc`` port (:func:`control_signature`) to the
accelerator's ports, so neither owns the other.
"""
from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sephw.arch.memmap import MemoryMap

__all__ = ["host_w_layout", "ext_w_layout", "control_signature", "dram_ctrl_signature", "CYCLES_BITS"]

CYCLES_BITS = 48       # the accelerator's cycle counter


def host_w_layout(memory_map: MemoryMap) -> data.StructLayout:
    """Payload of a memory write: ``mem`` (MEM_* select), word ``addr``, ``data`` (the image
    word, as wide as the widest memory's)."""
    return data.StructLayout({
        "mem": unsigned(3),
        "addr": unsigned(memory_map.addr_bits),
        "data": unsigned(memory_map.data_bits),
    })


def ext_w_layout(memory_map: MemoryMap) -> data.StructLayout:
    """Payload of a write into the board's DRAM (:attr:`MemoryMap.external`): word ``addr``
    (words of the DRAM port's width), ``data`` and its byte enables ``we``."""
    ext = memory_map.external
    return data.StructLayout({"addr": unsigned(ext.addr_bits), "data": unsigned(ext.word_bits),
                              "we": unsigned(ext.word_bytes)})


def control_signature(memory_map: MemoryMap) -> wiring.Signature:
    """The controller's side of the accelerator's control port.

    - ``start`` (pulse), ``reset`` (held: the accelerator's logic in reset, its memories keep
      their contents);
    - ``host_w``: memory writes (the accelerator takes one per cycle when ready);
    - ``rx`` (only without external memory): input bytes for the Program's ``LOAD`` (with
      external memory the accelerator reads them from DRAM itself); ``tx``: the bytes of its
      ``STORE``;
    - ``done``, ``error``, ``cycles``: the run's end, status and cycle count;
    - ``ext_w`` (only with external memory): word writes into the board's DRAM (``LOAD`` into
      memory 5, ``WRITE_INPUT`` byte by byte), which the system top puts on the DRAM port
      beside the accelerator's DMA and the input feeder (:mod:`rtl_gen.extport`).
    """
    if memory_map.external:
        ext = {"ext_w": Out(stream.Signature(ext_w_layout(memory_map)))}
    else:
        ext = {"rx": Out(stream.Signature(8))}
    return wiring.Signature({
        **ext,
        "start": Out(1), "reset": Out(1),
        "host_w": Out(stream.Signature(host_w_layout(memory_map))),
        "tx": In(stream.Signature(8)),
        "done": In(1), "error": In(1), "cycles": In(CYCLES_BITS),
    })


def dram_ctrl_signature() -> wiring.Signature:
    """The controller's side of a DRAM controller's CSR bus (LiteDRAM's ``wb_ctrl``, a
    Wishbone bus of 32-bit words: ``adr`` word address, one access per ``stb`` until ``ack``,
    ``we`` for a write of ``dat_w``, ``dat_r`` valid with ``ack``) and ``init_done`` (the
    controller is initialized and calibrated: the DRAM port is usable). The host link's
    ``CSR`` command drives it (docs/protocol.md)."""
    return wiring.Signature({"adr": Out(15), "dat_w": Out(32), "we": Out(1), "stb": Out(1),
                             "dat_r": In(32), "ack": In(1), "init_done": In(1)})
