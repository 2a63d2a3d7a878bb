# amaranth: UnusedElaboratable=no
"""Test harness for :class:`rtl_gen.pattern.PatternEngine`: its three netlists (``"lut"``,
``"word"``, ``"xc7"``) of one configuration side by side in one design, in lockstep.

Every input port of the harness (the window stream, ``acc.ready``, ``act_bits``,
``pattern_flush``, the pattern memory's write port) drives all three engines; the outputs
are the first engine's (``"lut"``, the synthesis form). ``mismatch`` goes high, and stays
high, in the first cycle any engine's outputs differ from the first's (``window.ready`` and
``acc.valid`` every cycle, ``acc.payload`` where ``acc.valid``): the testbench checks the
outputs against the reference and ``mismatch`` low at the end, so one simulator build and one
run prove all three forms bit- and cycle-equal. (Three builds and three runs before.)
With ``plane_reg`` in the parameters, the ``"word"`` engine keeps the indexed plane select:
the same run proves the registered plane (rtl_gen/pattern_planes.py) cycle-equal to it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from rtl_gen.pattern import PatternEngine

__all__ = ["NETLISTS", "PatternLockstep"]

NETLISTS = ("lut", "word", "xc7")


class PatternLockstep(wiring.Component):
    """``PatternEngine(**params, netlist=n)`` for each ``n`` of :data:`NETLISTS`, in lockstep;
    the ports are the engine's plus ``mismatch``."""

    def __init__(self, **params):
        self.engines = [PatternEngine(**{**params, "plane_reg": params.get("plane_reg", False) and n != "word"},
                                      netlist=n) for n in NETLISTS]
        members = dict(self.engines[0].signature.members.items())
        members["mismatch"] = Out(1)
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        first = self.engines[0]
        terms = []
        mine = {path: (member, value) for path, member, value in self.signature.flatten(self)}
        for i, eng in enumerate(self.engines):
            m.submodules[f"engine_{NETLISTS[i]}"] = eng
        theirs = [{path: value for path, _, value in eng.signature.flatten(eng)} for eng in self.engines]
        for path, (member, value) in mine.items():
            if path == ("mismatch",):
                continue
            if member.flow == wiring.In:
                for t in theirs:
                    m.d.comb += t[path].eq(value)
                continue
            m.d.comb += value.eq(theirs[0][path])
            for t in theirs[1:]:
                differs = Value.cast(t[path]) != Value.cast(theirs[0][path])
                if path[-1] == "payload":          # compared where the stream is valid
                    differs &= first.acc.valid
                terms.append(differs)
        m.d.sync += self.mismatch.eq(self.mismatch | Cat(*terms).any())
        return m
