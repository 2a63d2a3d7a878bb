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

The tensor table has two read ports (:meth:`FetchDecode.connect_memories`; LUT RAM, so a port
is a copy of a small memory): ``src_a``'s descriptor is read at the program word's field
itself, as the word leaves the program memory, and ``src_b``'s and ``dst``'s at the fetched
word's registered fields. (With one port, a multiplexer between the program memory's output,
slow on the ECP5's block RAM, and the table's read was the small overlay's critical path.)
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
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
    prog_addr : Out, prog_data : In(isa.WORD_BITS)
        The program memory's read port.
    ttab_addr_a : Out, ttab_data_a : In(TENSOR_DESC.bits); ttab_addr : Out, ttab_data : In
        The tensor table's read ports: ``src_a``'s descriptor, and ``src_b``'s then ``dst``'s.
    """

    def __init__(self, program_addr_bits: int, tensor_addr_bits: int):
        super().__init__({
            "go": In(1),
            "cmd": Out(stream.Signature(command_layout())),
            "prog_addr": Out(program_addr_bits), "prog_data": In(isa.WORD_BITS),
            "ttab_addr_a": Out(tensor_addr_bits), "ttab_data_a": In(TENSOR_DESC.bits),
            "ttab_addr": Out(tensor_addr_bits), "ttab_data": In(TENSOR_DESC.bits),
        })

    def connect_memories(self, m, program, tensor_table) -> None:
        """Read ports of the ``program`` and ``tensor_table`` memories (latency 1, always
        enabled) wired to this unit in module ``m``: the one wiring, for the top and tests."""
        prog_r, ttab_a, ttab_bd = program.read_port(), tensor_table.read_port(), tensor_table.read_port()
        m.d.comb += [prog_r.en.eq(1), ttab_a.en.eq(1), ttab_bd.en.eq(1),
                     prog_r.addr.eq(self.prog_addr), self.prog_data.eq(prog_r.data),
                     ttab_a.addr.eq(self.ttab_addr_a), self.ttab_data_a.eq(ttab_a.data),
                     ttab_bd.addr.eq(self.ttab_addr), self.ttab_data.eq(ttab_bd.data)]

    def elaborate(self, platform):
        m = Module()
        word = isa.WORD.layout()
        out = self.cmd.payload
        fpc = Signal(16)               # the instruction being fetched
        desc_b = Signal()              # the B/D port reads src_b (else dst)
        m.d.comb += [self.prog_addr.eq(fpc),
                     # (read in every cycle; DESC_A takes the one of the word read in WORD)
                     self.ttab_addr_a.eq(word(self.prog_data[:word.size]).src_a),
                     # (from registers only: src_b in DESC_A, dst in DESC_B)
                     self.ttab_addr.eq(Mux(desc_b, out.ins.src_b, out.ins.dst))]
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
                m.next = "DESC_A"
                restart()
            with m.State("DESC_A"):
                m.d.sync += out.src_a.eq(self.ttab_data_a)
                m.d.comb += desc_b.eq(1)
                m.next = "DESC_B"
                restart()
            with m.State("DESC_B"):
                m.d.sync += out.src_b.eq(self.ttab_data)
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
