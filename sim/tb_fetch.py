"""cocotb testbench: FetchDecode with the program and tensor-table memories.

Harness (:class:`FetchActHarness`, shared with sim/tb_actmem.py so both units take one
simulator build): FetchDecode wired as in rtl_gen/top.py to a program memory (``prog_w``)
and a tensor-table memory (``ttab_w``), both read with one cycle of latency; beside it,
independent :class:`~rtl_gen.actmem.ActivationMemory` instances (``am<i>_*`` ports).

Stimulus: random Programs (instruction words: ``Instruction.encode`` of a random opcode other
than ``END`` with random values in every field its layout has, and some raw random 256-bit
words whose opcode field is not ``END``; ``END`` last) and random tensor descriptors
(``TENSOR_DESC.encode``, every field random), memory entries rewritten between runs; each run
pulses ``go`` and takes the commands under random back-pressure (none in some runs), and
some runs are cut short by a new ``go``. Checked every cycle: the commands come in Program
order from instruction 0 to ``END`` and no further, each one's ``pc``, word and the three
descriptors its fields name; a command holds until taken; the first is valid 5 cycles after
``go``, each next one 5 cycles after the previous was taken.
"""
from __future__ import annotations

import json
import random

import cocotb
from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from rtl_gen.actmem import ActivationMemory
from rtl_gen.fetch import FetchDecode, command_layout
from sephw.arch import isa
from sephw.arch.formats import TENSOR_DESC
from sephw.arch.isa import LAYOUTS, Instruction, Op
from sim.tb import load_case, start_clock_reset

WORD_FIELDS = {f.name: f for f in isa.WORD.fields}


class FetchActHarness(wiring.Component):
    """FetchDecode + program and tensor-table memories; ActivationMemory instances
    ``act = [(banks, depth, units), ...]`` on ports ``am<i>_raddr``, ``am<i>_raddr_nb``, ``am<i>_rvec``,
    ``am<i>_waddr``, ``am<i>_wdata``, ``am<i>_wen``."""

    def __init__(self, program_depth: int = 16, tensor_depth: int = 256, act=((8, 16, 4),)):
        self.program_depth, self.tensor_depth = program_depth, tensor_depth
        self.act = [tuple(a) for a in act]
        self.fd = FetchDecode(ceil_log2(program_depth), ceil_log2(tensor_depth))
        self.ams = [ActivationMemory(*a) for a in self.act]
        members = {
            "prog_w": Out(WritePort.Signature(addr_width=ceil_log2(program_depth), shape=isa.WORD_BITS)),
            "ttab_w": Out(WritePort.Signature(addr_width=ceil_log2(tensor_depth), shape=TENSOR_DESC.bits)),
            "go": In(1),
            "cmd": Out(stream.Signature(command_layout())),
        }
        for i, (banks, depth, units) in enumerate(self.act):
            members.update({
                f"am{i}_raddr": In(32), f"am{i}_raddr_nb": In(32), f"am{i}_rvec": Out(data.ArrayLayout(8, banks)),
                f"am{i}_waddr": In(32), f"am{i}_wdata": In(data.ArrayLayout(8, units)),
                f"am{i}_wen": In(units),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        fd = self.fd
        m.submodules.fetch = fd
        m.submodules.program = prog = Memory(shape=isa.WORD_BITS, depth=self.program_depth, init=[])
        m.submodules.tensor_table = ttab = Memory(shape=TENSOR_DESC.bits, depth=self.tensor_depth, init=[])
        fd.connect_memories(m, prog, ttab)
        wiring.connect(m, wiring.flipped(self.prog_w), prog.write_port())
        wiring.connect(m, wiring.flipped(self.ttab_w), ttab.write_port())
        m.d.comb += [
            fd.go.eq(self.go),
        ]
        wiring.connect(m, fd.cmd, wiring.flipped(self.cmd))
        for i, am in enumerate(self.ams):
            m.submodules[f"act{i}"] = am
            m.d.comb += [am.raddr.eq(getattr(self, f"am{i}_raddr")),
                         am.raddr_nb.eq(getattr(self, f"am{i}_raddr_nb")),
                         getattr(self, f"am{i}_rvec").eq(am.rvec),
                         am.waddr.eq(getattr(self, f"am{i}_waddr")),
                         am.wdata.eq(getattr(self, f"am{i}_wdata")),
                         am.wen.eq(getattr(self, f"am{i}_wen"))]
        return m


def harness_from_case(case: dict) -> FetchActHarness:
    return FetchActHarness(**case["params"])


def random_word(rng: random.Random, tensor_depth: int) -> int:
    """A random instruction word other than ``END``: mostly an encoded Instruction, sometimes
    raw bits."""
    op_field = WORD_FIELDS["op"]
    if rng.random() < 0.2:
        w = rng.getrandbits(isa.WORD_BITS)
        if field(w, "op") == Op.END:
            w ^= 1 << op_field.offset
        return w
    op = rng.choice([o for o in Op if o != Op.END])
    vals = {}
    for f in LAYOUTS[op].fields:
        if f.name == "op":
            continue
        if f.name in ("src_a", "src_b", "dst"):
            vals[f.name] = rng.choice([0, tensor_depth - 1, rng.randrange(tensor_depth)])
        else:
            vals[f.name] = rng.choice([0, f.hi, rng.randint(f.lo, f.hi)])
    ins = Instruction(op=op, **vals)
    word = ins.encode()
    assert Instruction.decode(word) == ins
    return word


def random_desc(rng: random.Random) -> int:
    return TENSOR_DESC.encode({f.name: rng.choice([0, f.hi, rng.randint(f.lo, f.hi)]) for f in TENSOR_DESC.fields})


def field(word: int, name: str) -> int:
    f = WORD_FIELDS[name]
    return (word >> f.offset) & ((1 << f.bits) - 1)


CMD = command_layout()
CMD_FIELDS = [(name, f.offset, Shape.cast(f.shape).width) for name, f in CMD]


def split_command(bits: int) -> tuple:
    """(pc, ins, src_a, src_b, dst) of a flattened command."""
    return tuple((bits >> off) & ((1 << size) - 1) for _, off, size in CMD_FIELDS)


class FetchTB:
    """Source (memory writes, ``go``), sink with random back-pressure and monitor (every cycle:
    the command stream against the Program)."""

    def __init__(self, dut, h: FetchActHarness, rng: random.Random):
        self.dut, self.h, self.rng = dut, h, rng
        self.prog = [0] * h.program_depth
        self.ttab = [0] * h.tensor_depth
        self.cycle = 0
        self.errors = []
        self.stall = 0.0
        self.active = False
        self.expected = []          # the commands of the current run, in order
        self.taken = []             # (cycle, command) of every transfer of the current run
        self.valid_since = None     # cycle the offered command became valid
        self.offered = None
        self.latencies = []         # (kind, cycles): "first" after go, "next" after a take
        self.go_cycle = None
        self.checked = 0
        for s in ("go", "cmd__ready", "prog_w__en", "ttab_w__en"):
            getattr(dut, s).value = 0
        self._task = cocotb.start_soon(self._run())

    def error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def program_commands(self):
        out = []
        for pc in range(self.h.program_depth):
            w = self.prog[pc]
            out.append((pc, w, self.ttab[field(w, "src_a")], self.ttab[field(w, "src_b")],
                        self.ttab[field(w, "dst")]))
            if field(w, "op") == Op.END:
                break
        return out

    async def _run(self):
        dut = self.dut
        last_take = None
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            # the sink takes commands only during a run (a cut run leaves the fetcher holding one)
            dut.cmd__ready.value = int(self.active and not (self.stall and self.rng.random() < self.stall))
            await ReadOnly()
            if dut.go.value == 1:
                self.go_cycle, last_take, self.offered = self.cycle, None, None
                self.taken = []
                continue
            if not self.active:
                self.offered = None
                continue
            valid, ready = int(dut.cmd__valid.value), int(dut.cmd__ready.value)
            if not valid:
                if self.offered is not None:
                    self.error("valid dropped before the command was taken")
                continue
            cmd = split_command(dut.cmd__payload.value.to_unsigned())
            if self.offered is None:
                self.offered = cmd
                if last_take is None and self.go_cycle is not None:
                    self.latencies.append(("first", self.cycle - self.go_cycle))
                elif last_take is not None:
                    self.latencies.append(("next", self.cycle - last_take))
            elif cmd != self.offered:
                self.error("the command changed before it was taken")
            if ready:
                n = len(self.taken)
                if n >= len(self.expected):
                    self.error(f"a command after END: {cmd}")
                elif cmd != self.expected[n]:
                    names = ("pc", "ins", "src_a", "src_b", "dst")
                    self.error(f"command {n}: " + "; ".join(f"{k}: got {g:#x}, expected {e:#x}" for k, g, e
                                                             in zip(names, cmd, self.expected[n]) if g != e))
                self.taken.append((self.cycle, cmd))
                self.checked += 1
                last_take, self.offered = self.cycle, None

    # The source's coroutines are entered at the start of a cycle (just after a rising edge)
    # and return at the start of one.
    async def write(self, port: str, writes) -> None:
        dut = self.dut
        addr, dat, en = (getattr(dut, f"{port}__{n}") for n in ("addr", "data", "en"))
        for a, v in writes:
            addr.value, dat.value, en.value = a, v, 1
            (self.prog if port == "prog_w" else self.ttab)[a] = v
            await RisingEdge(dut.clk)
        en.value = 0

    async def run(self, stall: float, cut: int | None) -> None:
        """``go``, then take the commands with ``stall`` back-pressure until ``END`` (or, with
        ``cut``, until that many are taken: the next run's ``go`` restarts the fetch)."""
        self.expected = self.program_commands()
        self.stall, self.active = stall, True
        self.dut.go.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.go.value = 0
        want = len(self.expected) if cut is None else min(cut, len(self.expected))
        for _ in range(200 * len(self.expected) + 50):
            if len(self.taken) >= want:
                break
            await RisingEdge(self.dut.clk)
        assert len(self.taken) >= want, f"only {len(self.taken)} of {want} commands in time"
        if cut is None:
            # after END the sink stays ready and the monitor keeps watching: any command
            # offered now is one too many (the monitor reports it)
            self.stall = 0.0
            await ClockCycles(self.dut.clk, 8)
            assert len(self.taken) == len(self.expected), "commands after END"
        self.active = False
        self.stall = 0.0


@cocotb.test()
async def fetch_decode_matches_memories(dut):
    case = load_case()
    h = harness_from_case(case)
    rng = random.Random(case["seed"])
    for i, (banks, depth, units) in enumerate(h.act):
        getattr(dut, f"am{i}_wen").value = 0
    await start_clock_reset(dut)
    tb = FetchTB(dut, h, rng)
    await tb.write("ttab_w", [(a, random_desc(rng)) for a in range(h.tensor_depth)])
    for n in range(case["runs"]):
        length = rng.choice([1, 2, h.program_depth, rng.randint(1, h.program_depth)])
        words = [random_word(rng, h.tensor_depth) for _ in range(length - 1)]
        end = Instruction(op=Op.END).encode()
        await tb.write("prog_w", list(enumerate(words + [end])))
        if rng.random() < 0.3:
            await tb.write("ttab_w", [(rng.randrange(h.tensor_depth), random_desc(rng))
                                      for _ in range(rng.randint(1, 3))])
        stall = rng.choice([0.0, 0.0, 0.3, 0.6])
        cut = rng.randint(0, length - 1) if length > 1 and rng.random() < 0.2 else None
        await tb.run(stall, cut)
        assert not tb.errors, "\n".join(tb.errors)
    assert tb.checked >= case["runs"], f"only {tb.checked} commands checked"
    lat = {}
    for kind, c in tb.latencies:
        lat.setdefault(kind, set()).add(c)
    dut._log.info(f"{case['runs']} runs, {tb.checked} commands checked, latencies {lat}")
    with open("result.json", "w") as f:
        json.dump({"runs": case["runs"], "checked": tb.checked,
                   "latency": {k: sorted(v) for k, v in lat.items()}}, f)
