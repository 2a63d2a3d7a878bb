"""cocotb testbench: ActivationMemory (in :class:`sim.tb_fetch.FetchActHarness`, ports
``am<i>_*``), against a byte array in Python.

Every instance runs concurrently: one vector read per cycle at a random address (mostly
where ``[A, A + banks)`` lies inside the memory, sometimes at its end or anywhere: with a
power-of-two depth the vector wraps to address 0), and per cycle one of: a single-byte write
at any address (the other lanes and ``wen`` bits carry junk only where ``wen`` is 0), a
``units``-wide write at a ``units``-aligned address with a random ``wen`` mask, or no write
(junk on ``waddr``/``wdata``). Reads often hit the bytes being written. Checked every cycle:
``rvec`` equals bytes ``[A, A + banks)`` of the address ``A`` of the cycle before, as the
memory held them before that cycle's write (the banks' read ports are not transparent).
Bytes never written are not compared; the memory is first filled by ``units``-wide writes.
"""
from __future__ import annotations

import json
import random

import cocotb
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb import load_case, pack, start_clock_reset, unpack
from sim.tb_fetch import harness_from_case


class ActMemTB:
    """Source (reads and writes of instance ``i``) and monitor (``rvec`` against the model)."""

    def __init__(self, dut, i: int, banks: int, depth: int, units: int, seed: int):
        self.dut, self.banks, self.units = dut, banks, units
        self.total = banks * max(2, depth)
        self.p = {n: getattr(dut, f"am{i}_{n}") for n in ("raddr", "raddr_nb", "rvec", "waddr", "wdata", "wen")}
        self.vec = data.ArrayLayout(8, banks)
        self.wlay = data.ArrayLayout(8, units)
        self.rng = random.Random(seed)
        self.mem = [None] * self.total      # the model; None: never written
        self.errors = []
        self.checked = self.bytes_checked = 0
        self.stats = {"single": 0, "wide": 0, "collisions": 0, "wraps": 0}
        self.p["wen"].value = 0

    def _write(self, phase: str):
        """This cycle's write: (addr, [(byte address, value)]) to apply after the edge."""
        rng, U = self.rng, self.units
        junk = [rng.randrange(256) for _ in range(U)]
        if phase == "fill":
            a = self._fill
            self._fill += U
            wen, wd = (1 << U) - 1, junk
        else:
            kind = rng.random()
            if kind < 0.35:
                a, wen, wd = rng.randrange(self.total), 1, junk
                self.stats["single"] += 1
            elif kind < 0.7:
                a = rng.randrange(self.total // U) * U
                wen = rng.choice([(1 << U) - 1, rng.randrange(1, 1 << U)])
                wd = junk
                self.stats["wide"] += 1
            else:
                a, wen, wd = rng.randrange(1 << 16), 0, junk
        self.p["waddr"].value = a
        self.p["wdata"].value = pack(self.wlay, wd)
        self.p["wen"].value = wen
        return a, [(a + u, wd[u]) for u in range(U) if wen >> u & 1]

    def _raddr(self, last_w: int) -> int:
        rng, NB = self.rng, self.banks
        r = rng.random()
        if r < 0.3:         # next to the bytes written this cycle
            a = max(0, min(self.total - NB, last_w + rng.randint(-NB, NB)))
            self.stats["collisions"] += 1
        elif r < 0.4:       # the vector runs past the memory's end: it wraps to 0
            a = rng.randrange(self.total - NB + 1, self.total) if NB > 1 else self.total - 1
            self.stats["wraps"] += 1
        else:
            a = rng.randrange(self.total - NB + 1)
        return a

    async def run(self, cycles: int):
        self._fill = 0
        fill_cycles = self.total // self.units
        prev_a, prev_w, last_a = None, [], None
        for n in range(cycles + fill_cycles):
            # the write of last cycle committed at this edge; last cycle's read saw the memory
            # before it
            exp = None if prev_a is None else [self.mem[(prev_a + o) % self.total] for o in range(self.banks)]
            for addr, v in prev_w:
                self.mem[addr] = v
            wa, prev_w = self._write("fill" if n < fill_cycles else "random")
            prev_a = self._raddr(wa)
            self.p["raddr"].value = prev_a
            self.p["raddr_nb"].value = prev_a + self.banks      # (the reader's second address)
            await ReadOnly()
            if exp is not None:
                got = unpack(self.vec, self.p["rvec"].value.to_unsigned())
                for o, (g, e) in enumerate(zip(got, exp)):
                    if e is not None:
                        self.bytes_checked += 1
                        if g != e and len(self.errors) < 10:
                            self.errors.append(f"cycle {n}: rvec[{o}] = {g}, expected {e} (read address {last_a})")
                self.checked += 1
            last_a = prev_a
            await RisingEdge(self.dut.clk)
        self.p["wen"].value = 0


@cocotb.test()
async def activation_memory_matches_model(dut):
    case = load_case()
    h = harness_from_case(case)
    dut.go.value = 0
    dut.cmd__ready.value = 0
    for s in ("prog_w__en", "ttab_w__en"):
        getattr(dut, s).value = 0
    for i in range(len(h.act)):
        getattr(dut, f"am{i}_wen").value = 0
    await start_clock_reset(dut)
    tbs = [ActMemTB(dut, i, *a, seed=case["seed"] + i) for i, a in enumerate(h.act)]
    tasks = [cocotb.start_soon(tb.run(case["cycles"])) for tb in tbs]
    for t in tasks:
        await t
    out = []
    for (banks, depth, units), tb in zip(h.act, tbs):
        assert not tb.errors, f"banks={banks} depth={depth} units={units}:\n" + "\n".join(tb.errors)
        assert tb.bytes_checked >= case["cycles"] * banks // 2
        dut._log.info(f"banks={banks} depth={depth} units={units}: {tb.checked} vectors, "
                      f"{tb.bytes_checked} bytes checked; {tb.stats}")
        out.append({"banks": banks, "depth": depth, "units": units, "vectors": tb.checked, **tb.stats})
    with open("result.json", "w") as f:
        json.dump(out, f)
