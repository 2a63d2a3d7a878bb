# amaranth: UnusedElaboratable=no
"""The Artix-7 timing estimate (rtl_gen/xc7_timing.py): cell delays read from Yosys's xc7 cell
library, real LUT dependencies, DSP48E1 register settings, and the estimate on synthesized
designs with a deliberately long path (it must find it, name it and fail the clock)."""
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen import xc7_timing as xt
from rtl_gen.synth import synth_xilinx


def test_cell_delays_come_from_the_yosys_xc7_library():
    m = xt.cell_models()
    assert m["LUT6"].arcs["O"] == {"I0": 642, "I1": 631, "I2": 472, "I3": 407, "I4": 238, "I5": 127}
    assert m["CARRY4"].arcs["CO[3]"]["CI"] == 114 and m["CARRY4"].arcs["O[0]"]["S[0]"] == 223
    assert m["FDRE"].clk2q == {"Q": 303} and m["FDRE"].setup == {"D": 0, "CE": 109, "R": 404}
    # the asynchronous clear's (posedge CLR => Q) is not a clock-to-out
    assert m["FDCE"].clk2q == {"Q": 303} and m["FDCE"].setup["CLR"] == 404
    assert m["RAMB18E1"].setup["ADDRARDADDR"] == 566 and m["MUXF7"].arcs["O"]["S"] == 296
    assert m["RAM64M"].arcs["DOA"]["ADDRA[0]"] == 642


def test_lut_support_reads_the_init():
    assert xt.lut_support("1000", 2) == [0, 1]          # AND
    assert xt.lut_support("1010", 2) == [0]             # O = I0
    assert xt.lut_support("1100", 2) == [1]             # O = I1
    assert xt.lut_support("0" * 64, 6) == []
    assert xt.lut_support(format(0x6996966996696996, "064b"), 6) == list(range(6))   # parity


def test_dsp48e1_arcs_follow_its_registers():
    comb = xt.dsp48e1_timing({k: "0" for k in ("AREG", "BREG", "CREG", "MREG", "PREG")})
    assert comb.arcs["P"] == {"A": 2823, "B": 2690, "C": 1325, "PCIN": 1107} and not comb.clk2q
    assert comb.arcs["PCOUT"]["A"] == 2970 and "PCIN" not in comb.setup
    mreg = xt.dsp48e1_timing({"AREG": "0", "BREG": "0", "CREG": "0", "MREG": "1", "PREG": "0"})
    assert mreg.setup["A"] == 1416 and mreg.setup["B"] == 1285 and mreg.clk2q["P"] == 1671
    full = xt.dsp48e1_timing({"AREG": "1", "BREG": "1", "CREG": "1", "MREG": "1", "PREG": "1"})
    assert full.setup["A"] == 254 and full.clk2q["P"] == 329 and "P" not in full.arcs
    assert full.setup["PCIN"] == 1025 and full.clk2q["PCOUT"] == 435


def _hand_netlist(init: str, dst_clock: int = 2) -> dict:
    """FF q1 -> LUT2.I0; FF q2 -> five LUT1 buffers -> LUT2.I1; LUT2 -> FF d (on net ``clk``,
    bit 2, or with ``dst_clock`` 3 on net ``ctl_clk``)."""
    cells, bit = {}, iter(range(10, 100))

    def ff(name, d, q, clk=2):
        cells[name] = {"type": "FDRE", "parameters": {}, "port_directions": {"C": "input", "CE": "input", "R": "input",
                                                                             "D": "input", "Q": "output"},
                       "connections": {"C": [clk], "CE": ["1"], "R": ["0"], "D": [d], "Q": [q]}}
    q1, q2, out = next(bit), next(bit), next(bit)
    ff("r1", q1, q1)
    ff("r2", q2, q2)
    prev = q2
    for i in range(5):
        o = next(bit)
        cells[f"buf{i}"] = {"type": "LUT1", "parameters": {"INIT": "10"}, "port_directions": {"I0": "input", "O": "output"},
                            "connections": {"I0": [prev], "O": [o]}}
        prev = o
    cells["lut"] = {"type": "LUT2", "parameters": {"INIT": init},
                    "port_directions": {"I0": "input", "I1": "input", "O": "output"},
                    "connections": {"I0": [q1], "I1": [prev], "O": [out]}}
    ff("r3", out, next(bit), dst_clock)
    names = {"q1": {"hide_name": 0, "bits": [q1]}, "q2": {"hide_name": 0, "bits": [q2]},
             "dst": {"hide_name": 0, "bits": [cells["r3"]["connections"]["Q"][0]]},
             "clk": {"hide_name": 0, "bits": [2]}, "ctl_clk": {"hide_name": 0, "bits": [3]}}
    return {"modules": {"t": {"attributes": {"top": "00000000000000000000000000000001"}, "cells": cells,
                              "netnames": names}}}


def test_a_lut_input_the_init_ignores_carries_no_path():
    through_chain = xt.estimate(_hand_netlist("1000"))      # AND: depends on the chain
    assert through_chain["paths"][0]["from"] == "q2" and through_chain["lut_levels"] == 6
    ignored = xt.estimate(_hand_netlist("1010"))            # O = I0: the chain is cut
    assert ignored["paths"][0]["from"] == "q1" and ignored["lut_levels"] == 1
    assert ignored["worst_ns"] < through_chain["worst_ns"]
    assert ignored["paths"][0]["to"] == "dst"


def test_endpoints_by_clock_net_against_their_own_periods():
    """Endpoints are grouped by the net on their clock pin; one named in ``clocks`` counts
    against its own period (a DRAM controller's domain behind a crossing), the rest against
    ``period_ns``."""
    one = xt.estimate(_hand_netlist("1000"), period_ns=100.0)
    assert list(one["clocks"]) == ["clk"] and one["clocks"]["clk"]["endpoints"] == 3
    assert one["clocks"]["clk"]["worst_ns"] == pytest.approx(one["worst_ns"], abs=0.001)
    two = xt.estimate(_hand_netlist("1000", dst_clock=3), period_ns=100.0, clocks={"ctl_clk": 1.0})
    ctl, own = two["clocks"]["ctl_clk"], two["clocks"]["clk"]
    assert ctl == {"endpoints": 1, "worst_ns": pytest.approx(two["worst_ns"], abs=0.001), "over_period": 1,
                   "period_ns": 1.0}
    assert own["endpoints"] == 2 and own["over_period"] == 0 and own["period_ns"] == 100.0
    assert own["worst_ns"] < ctl["worst_ns"]


class _Chain(wiring.Component):
    """Registered inputs, ``stages`` data-dependent add/subtract steps (each a 32-bit carry
    chain behind a select), then a register; beside it a one-LUT path."""
    a: In(32)
    b: In(32)
    c: In(32)
    q: Out(32)
    s: Out(32)

    def __init__(self, stages: int):
        self._stages = stages
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        ra, rb, rc = Signal(32, name="ra"), Signal(32, name="rb"), Signal(32, name="rc")
        long_q, short_q = Signal(32, name="long_q"), Signal(32, name="short_q")
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), rc.eq(self.c)]
        x = ra
        for i in range(self._stages):
            x = Mux(x[i], x + rb, x - rc)[:32]
        m.d.sync += [long_q.eq(x), short_q.eq(ra ^ rb)]
        m.d.comb += [self.q.eq(long_q), self.s.eq(short_q)]
        return m


def _synth(tmp_path, stages):
    d = tmp_path / f"s{stages}"
    d.mkdir()
    (d / "t.v").write_text(verilog.convert(_Chain(stages), name="t"))
    synth_xilinx(d / "t.v", "t", d, netlist="t.json")
    return xt.estimate(d / "t.json", period_ns=10.0)


@pytest.mark.slow
def test_the_estimate_finds_a_deliberately_long_path(tmp_path):
    long = _synth(tmp_path, 6)
    worst = long["paths"][0]
    # six carry chains behind selects: well over a 100 MHz period, found and named
    assert worst["to"].startswith("long_q[") and worst["from"].split("[")[0] in ("ra", "rb", "rc")
    assert long["worst_ns"] > 12.0 and long["lut_levels"] >= 6 and worst["carry4"] >= 6
    assert long["endpoints_over_period"] > 0 and long["fmax_mhz"] < 100
    short = [p for p in long["paths"] if p["to"].startswith("short_q")]
    assert short and short[0]["delay_ns"] < 3.0 and short[0]["lut_levels"] == 1
    # stages sum to the path: clock-to-out + routing + cells + setup
    assert sum(s["route_ns"] + s["incr_ns"] for s in worst["stages"]) == pytest.approx(worst["delay_ns"], abs=0.01)
    # one stage: the same design meets 10 ns
    one = _synth(tmp_path, 1)
    assert one["worst_ns"] < 10.0 and one["endpoints_over_period"] == 0
    assert xt.estimate(tmp_path / "s6" / "t.json", corner="pessimistic")["worst_ns"] > long["worst_ns"]
