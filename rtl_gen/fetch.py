"""Fetch/Decode: the Program's instructions, each with its three tensor descriptors, into a
command queue the sequencer takes from.

The fetcher runs ahead of the sequencer: as soon as the sequencer takes an instruction
(``cmd`` transfer) it fetches the next one (the program word, then the ``src_a``, ``src_b`` and
``dst`` descriptors: one memory read each), so that instruction's fetch overlaps the current
one's execution. It stops after fetching ``END`` until the next ``go``.

Latency: a command is valid 5 cycles after ``go`` (the Program's first: the compiler's
``TOP_FETCH_FIRST``, cycles the first instruction costs beyond the others) or after the
previous one is taken (``TOP_FETCH_NEXT``). ``go`` must not coincide with ``ready`` (the top
pulses it from its idle state): it drops a command without a transfer.
Throughput: one instruction per 5 cycles; an instruction that runs for fewer cycles than that
(``SYNC``, ``NOP``) waits for the next one's fetch.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC
from sephw.arch.isa import Op

__all__ = ["FetchDecode", "command_layout"]


def command_layout() -> data.StructLayout:
    """One command of the queue: the instruction's index, its word and its tensor descriptors."""
    return data.StructLayout({
        "pc": 16, "ins": isa.WORD.layout(),
        "src_a": TENSOR_DESC.layout(), "src_b": TENSOR_DESC.layout(), "dst": TENSOR_DESC.layout(),
    })


class FetchDecode(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    program_addr_bits, tensor_addr_bits : int
        Address widths of the program and tensor-table memories (read ports, latency 1).

    Attributes
    ----------
    go : In(1)
        Pulse: (re)start fetching at instruction 0 (drops a fetched, untaken command).
    cmd : Out(stream.Signature(command_layout()))
        The next instruction; its payload holds until taken.
    prog_addr : Out, prog_data : In(isa.WORD_BITS); ttab_addr : Out, ttab_data : In(TENSOR_DESC.bits)
        The memories' read ports.
    """

    def __init__(self, program_addr_bits: int, tensor_addr_bits: int):
        super().__init__({
            "go": In(1),
            "cmd": Out(stream.Signature(command_layout())),
            "prog_addr": Out(program_addr_bits), "prog_data": In(isa.WORD_BITS),
            "ttab_addr": Out(tensor_addr_bits), "ttab_data": In(TENSOR_DESC.bits),
        })

    def elaborate(self, platform):
        m = Module()
        word = isa.WORD.layout()
        out = self.cmd.payload
        fpc = Signal(16)               # the instruction being fetched
        m.d.comb += self.prog_addr.eq(fpc)
        # ``go`` restarts the fetch at instruction 0 from any state (the last assignment to
        # ``m.next`` in a state wins)
        def restart():
            with m.If(self.go):
                m.d.comb += self.prog_addr.eq(0)
                m.d.sync += [fpc.eq(0), self.cmd.valid.eq(0)]
                m.next = "WORD"

        with m.FSM(name="fetch"):
            with m.State("IDLE"):
                restart()
            with m.State("WORD"):
                m.d.sync += [out.ins.eq(self.prog_data[:word.size]), out.pc.eq(fpc)]
                m.d.comb += self.ttab_addr.eq(word(self.prog_data[:word.size]).src_a)
                m.next = "DESC_A"
                restart()
            with m.State("DESC_A"):
                m.d.sync += out.src_a.eq(self.ttab_data)
                m.d.comb += self.ttab_addr.eq(out.ins.src_b)
                m.next = "DESC_B"
                restart()
            with m.State("DESC_B"):
                m.d.sync += out.src_b.eq(self.ttab_data)
                m.d.comb += self.ttab_addr.eq(out.ins.dst)
                m.next = "DESC_D"
                restart()
            with m.State("DESC_D"):
                m.d.sync += [out.dst.eq(self.ttab_data), self.cmd.valid.eq(1), fpc.eq(fpc + 1)]
                m.next = "FULL"
                restart()
            with m.State("FULL"):
                # the next program word is read while this command waits: its fetch starts
                # in the cycle this one is taken
                with m.If(self.cmd.ready):
                    m.d.sync += self.cmd.valid.eq(0)
                    with m.If(out.ins.op == Op.END):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "WORD"
                restart()
        return m
