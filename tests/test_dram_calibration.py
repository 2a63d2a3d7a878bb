"""host/dram.py: the DRAM init sequence and A7DDRPHY read leveling run from the host, against
a model of LiteDRAM's DFII and A7DDRPHY CSRs (the Arty core's addresses, from its csr.csv):
each module reads back what was written only at its (bitslip, IDELAY tap) pairs marked good,
else the data of the next phase (as a wrong bitslip would give)."""
from __future__ import annotations

import pytest

from host.dram import (DFII_CONTROL_SEL, MODEL_RECIPE, DramCalibrationError, calibrate, init_done, lfsr_pattern,
                       window)

# /tmp/ldarty/csr.csv (litedram_gen, boards/litedram/arty-a7.yml)
ARTY_CSR = {
    "ddrctrl_init_done": 0x0, "ddrctrl_init_error": 0x4,
    "ddrphy_rst": 0x800, "ddrphy_dly_sel": 0x804, "ddrphy_half_sys8x_taps": 0x808, "ddrphy_wlevel_en": 0x80c,
    "ddrphy_wlevel_strobe": 0x810, "ddrphy_rdly_dq_rst": 0x814, "ddrphy_rdly_dq_inc": 0x818,
    "ddrphy_rdly_dq_bitslip_rst": 0x81c, "ddrphy_rdly_dq_bitslip": 0x820, "ddrphy_wdly_dq_bitslip_rst": 0x824,
    "ddrphy_wdly_dq_bitslip": 0x828, "ddrphy_rdphase": 0x82c, "ddrphy_wrphase": 0x830,
    "sdram_dfii_control": 0x1000,
    **{f"sdram_dfii_pi{p}_{r}": 0x1004 + 0x18 * p + 4 * i
       for p in range(4) for i, r in enumerate(("command", "command_issue", "address", "baddress", "wrdata", "rddata"))},
}


def _mr(address, bank, cmd=15):
    return [{"csr": "sdram_dfii_pi0_address", "value": address}, {"csr": "sdram_dfii_pi0_baddress", "value": bank},
            {"csr": "sdram_dfii_pi0_command", "value": cmd}, {"csr": "sdram_dfii_pi0_command_issue", "value": 1}]


# sdram_phy.h's init_sequence() flattened
ARTY_INIT = [{"csr": "sdram_dfii_pi0_address", "value": 0}, {"csr": "sdram_dfii_pi0_baddress", "value": 0},
             {"csr": "sdram_dfii_control", "value": 12}, {"delay_cycles": 50000},
             {"csr": "sdram_dfii_pi0_address", "value": 0}, {"csr": "sdram_dfii_pi0_baddress", "value": 0},
             {"csr": "sdram_dfii_control", "value": 14}, {"delay_cycles": 10000},
             *_mr(0x200, 2), *_mr(0x0, 3), *_mr(0x6, 1), *_mr(0x930, 0), {"delay_cycles": 200},
             *_mr(0x400, 0, cmd=3), {"delay_cycles": 200}]

ARTY = {"phy": "A7DDRPHY", "memtype": "DDR3", "clock_hz": 100_000_000, "csr": ARTY_CSR, "init": ARTY_INIT,
        "phases": 4, "rdphase": 2, "wrphase": 3, "modules": 2, "delays": 32, "bitslips": 8,
        "dfi_databits": 32, "databits": 16, "read_leveling": True}

SDR_CSR = {"ddrctrl_init_done": 0x0, "ddrctrl_init_error": 0x4, "sdram_dfii_control": 0x800,
           **{f"sdram_dfii_pi0_{r}": 0x804 + 4 * i
              for i, r in enumerate(("command", "command_issue", "address", "baddress", "wrdata", "rddata"))}}
SDR = {"phy": "GENSDRPHY", "memtype": "SDR", "clock_hz": 50_000_000, "csr": SDR_CSR,
       "init": [{"csr": "sdram_dfii_control", "value": 14}, {"delay_cycles": 20000},
                *_mr(0x400, 0, cmd=11), *_mr(0, 0, cmd=13), *_mr(0, 0, cmd=13), *_mr(0x30, 0), {"delay_cycles": 200}],
       "phases": 1, "rdphase": 0, "wrphase": 0, "modules": 2, "delays": 0, "bitslips": 0,
       "dfi_databits": 16, "databits": 16, "read_leveling": False}

MODEL = MODEL_RECIPE

MASKS = (0x00FF00FF, 0xFF00FF00)     # module 0: DQ0-7, module 1: DQ8-15, in both halves of a phase word
ACT, PRE, WR, RD = 0x09, 0x0B, 0x17, 0x25


class FakeDram:
    """The DFII and A7DDRPHY CSRs of ``recipe`` over a memory; ``good[m]``: the (bitslip,
    tap) pairs at which module m reads correctly. Records every op and sleep in ``events``
    and anything a real controller would not accept in ``violations``."""

    def __init__(self, recipe, good=None):
        self.recipe = recipe
        self.names = {a: n for n, a in recipe["csr"].items()}
        self.regs = {n: 0 for n in recipe["csr"]}
        self.good = good or {}
        nm = recipe.get("modules", 0)
        self.delay, self.bitslip = [0] * nm, [0] * nm
        self.mem, self.row = {}, None
        self.events, self.violations, self.commands = [], [], []
        self.calls = 0
        self.before_call = {}           # call number -> function run before that call's ops

    def sleep(self, s):
        self.events.append(("sleep", s))

    def __call__(self, ops):
        self.calls += 1
        self.events.append(("call",))
        if self.calls in self.before_call:
            self.before_call[self.calls]()
        out = []
        for addr, v in ops:
            name = self.names[addr]
            if v is None:
                self.events.append(("r", name))
                out.append(self.regs[name])
            else:
                self.events.append(("w", name, v))
                self.write(name, v)
        return out

    def write(self, name, v):
        if name.endswith("_rddata"):
            self.violations.append(f"write to {name}")
        self.regs[name] = v
        sel = [m for m in range(len(self.delay)) if self.regs.get("ddrphy_dly_sel", 0) >> m & 1]
        if name.startswith("ddrphy_rdly") and not sel:
            self.violations.append(f"{name} with no module selected")
        for m in sel:
            if name == "ddrphy_rdly_dq_rst":
                self.delay[m] = 0
            elif name == "ddrphy_rdly_dq_inc":
                self.delay[m] = (self.delay[m] + 1) % self.recipe["delays"]
            elif name == "ddrphy_rdly_dq_bitslip_rst":
                self.bitslip[m] = 0
            elif name == "ddrphy_rdly_dq_bitslip":
                self.bitslip[m] = (self.bitslip[m] + 1) % self.recipe["bitslips"]
        if name == "ddrphy_rst" and v:
            self.delay, self.bitslip = [0] * len(self.delay), [0] * len(self.bitslip)
        if name.endswith("_command_issue"):
            self.issue(int(name[len("sdram_dfii_pi")]))

    def issue(self, p):
        r = self.regs
        cmd, a, ba = r[f"sdram_dfii_pi{p}_command"], r[f"sdram_dfii_pi{p}_address"], r[f"sdram_dfii_pi{p}_baddress"]
        self.commands.append((p, cmd, a, ba))
        if r["sdram_dfii_control"] & DFII_CONTROL_SEL:
            self.violations.append(f"DFII command {cmd:#x} under hardware control")
        phases = self.recipe["phases"]
        if cmd == ACT:
            if self.row is not None:
                self.violations.append("activate with a row open")
            self.row = (ba, a)
        elif cmd == PRE:
            self.row = None
        elif cmd in (WR, RD):
            if self.row is None or p != self.recipe["wrphase" if cmd == WR else "rdphase"]:
                self.violations.append(f"command {cmd:#x} on phase {p}, row {self.row}")
            key = (self.row, ba, a)
            if cmd == WR:
                self.mem[key] = [r[f"sdram_dfii_pi{q}_wrdata"] for q in range(phases)]
                return
            data = self.mem.get(key, [0] * phases)
            for q in range(phases):
                word = 0
                for m, mask in enumerate(MASKS):
                    ok = (self.bitslip[m], self.delay[m]) in self.good.get(m, ())
                    word |= (data[q] if ok else data[(q + 1) % phases]) & mask
                r[f"sdram_dfii_pi{q}_rddata"] = word

    def writes(self):
        return [(e[1], e[2]) for e in self.events if e[0] == "w"]


def taps(bitslip, first, last):
    return {(bitslip, t) for t in range(first, last + 1)}


def test_lfsr_pattern_is_litex():
    """The seeds' patterns as sdram.c computes them (its loop compiled with gcc)."""
    assert lfsr_pattern(42, 4, 4) == [0x07004000, 0x01B06DDB, 0x79CEB31A, 0xEEA00ABB]
    assert lfsr_pattern(84, 4, 4) == [0x0E008000, 0x0260DBB6, 0xF39C6735, 0xDC411576]
    assert lfsr_pattern(36, 4, 4) == [0x060080B6, 0xB78DA228, 0xDCE18EC4, 0x7A2D095E]


def test_window_is_sdram_c_centering():
    T, F = True, False
    assert window([F, T, F, T, T, T, F, T, T]) == (3, 5)
    assert window([T, T, F, T, T, T, T]) == (3, 6)
    assert window([T, T, T, F, T, T, T]) == (0, 2)          # the earlier of equal windows
    assert window([T, F, T, F, T]) is None                  # no two consecutive working taps
    assert window([T] * 32) == (0, 31)


def test_read_leveling_picks_bitslip_and_centre():
    """Module 0 works at bitslip 2, taps 5-20 (and a lone tap 25), with a shorter window at
    bitslip 3; module 1 at bitslip 5, taps 10-25 and 28-29, and bitslip 6 taps 0-3. Each
    ends on its best bitslip at the centre of its longest window; the controller in
    hardware control with init_done set."""
    good = {0: taps(2, 5, 20) | {(2, 25)} | taps(3, 0, 7), 1: taps(5, 10, 25) | taps(5, 28, 29) | taps(6, 0, 3)}
    dev = FakeDram(ARTY, good)
    lines = []
    assert not init_done(dev, ARTY)
    rep = calibrate(dev, ARTY, log=lines.append, sleep=dev.sleep)
    m0, m1 = rep["modules"]
    assert (m0["bitslip"], m0["window"], m0["delay"]) == (2, (5, 20), 12)
    assert (m1["bitslip"], m1["window"], m1["delay"]) == (5, (10, 25), 17)
    assert m0["windows"][3] == (0, 7) and m1["windows"][6] == (0, 3) and m1["windows"][0] is None
    mx = 3 * 64                                  # sdram.c's max_errors: 3 seeds x 64 bits
    assert m0["scores"][2] >= 17 * (mx * 32 + mx) and max(m0["scores"]) == m0["scores"][2]
    assert all(s < 32 * mx for b, s in enumerate(m1["scores"]) if b not in (5, 6))
    assert dev.delay == [12, 17] and dev.bitslip == [2, 5]
    assert dev.regs["sdram_dfii_control"] == DFII_CONTROL_SEL and dev.regs["ddrctrl_init_done"] == 1
    assert dev.regs["ddrphy_dly_sel"] == 0 and dev.regs["ddrctrl_init_error"] == 0
    assert dev.violations == [] and init_done(dev, ARTY)
    assert len(lines) == 2 and "module 0" in lines[0] and "bitslip 5, read delay 17" in lines[1]
    assert dev.writes()[-2:] == [("sdram_dfii_control", 1), ("ddrctrl_init_done", 1)]
    # the test reads back every phase after its read command, at least 10 ops later
    ev = [e for e in dev.events if e[0] in "rw"]
    issues = [i for i, e in enumerate(ev) if e[:2] == ("w", "sdram_dfii_pi2_command_issue")]
    assert issues and all(next(j for j in range(i, len(ev)) if ev[j][0] == "r") - i > 10 for i in issues)


def test_init_sequence_replayed_in_order_with_sleeps():
    """Software control, a precharge of all banks (A10), the PHY reset pulse, init_done/error
    cleared, rd/wrphase, then the recipe's init exactly, each delay a sleep of at least delay_cycles / clock_hz after the
    writes before it were sent."""
    dev = FakeDram(ARTY, {0: taps(0, 0, 31), 1: taps(0, 0, 31)})
    calibrate(dev, ARTY, log=lambda s: None, sleep=dev.sleep)
    ev = [e for e in dev.events if e[0] != "call"]
    hz = ARTY["clock_hz"]
    want = [("w", "sdram_dfii_control", 14), ("w", "sdram_dfii_pi0_address", 0x400), ("w", "sdram_dfii_pi0_baddress", 0),
            ("w", "sdram_dfii_pi0_command", 0x0B), ("w", "sdram_dfii_pi0_command_issue", 1), ("w", "ddrphy_rst", 1), ("sleep", 1000 / hz), ("w", "ddrphy_rst", 0),
            ("sleep", 1000 / hz), ("w", "ddrctrl_init_done", 0), ("w", "ddrctrl_init_error", 0),
            ("w", "ddrphy_rdphase", 2), ("w", "ddrphy_wrphase", 3)]
    want += [("sleep", s["delay_cycles"] / hz) if "delay_cycles" in s else ("w", s["csr"], s["value"]) for s in ARTY_INIT]
    got = ev[:len(want)]
    assert [e[:2] if e[0] == "sleep" else e for e in got] == [e[:2] if e[0] == "sleep" else e for e in want]
    for g, w in zip(got, want):
        if g[0] == "sleep":
            assert g[1] >= w[1] > 0
    assert [c[1:] for c in dev.commands[:6]] == [(0x0B, 0x400, 0), (15, 0x200, 2), (15, 0, 3), (15, 6, 1),
                                                 (15, 0x930, 0), (3, 0x400, 0)]
    assert dev.violations == []


@pytest.mark.parametrize("good,bad", [({0: taps(1, 3, 9)}, 1), ({0: {(b, 2 * t) for b in range(8) for t in range(16)},
                                                                  1: taps(4, 0, 31)}, 0)])
def test_module_without_window_is_an_error(good, bad):
    """No good (bitslip, tap) at all for module 1, or only isolated taps for module 0: an
    error naming the module and what was scanned; init_done never set, init_error set."""
    dev = FakeDram(ARTY, good)
    with pytest.raises(DramCalibrationError, match=rf"DRAM module {bad}: no two consecutive working read delay taps "
                                                   r"at any of the 8 bitslips x 32 taps"):
        calibrate(dev, ARTY, log=lambda s: None, sleep=dev.sleep)
    assert ("ddrctrl_init_done", 1) not in dev.writes() and dev.regs["ddrctrl_init_done"] == 0
    assert dev.regs["ddrctrl_init_error"] == 1 and dev.regs["sdram_dfii_control"] != DFII_CONTROL_SEL
    assert not init_done(dev, ARTY)


def test_window_gone_on_rescan_is_an_error():
    """Module 1's window seen in the scan of every bitslip, gone when its best bitslip is
    scanned again."""
    dev = FakeDram(ARTY, {0: taps(0, 8, 15), 1: taps(6, 20, 31)})
    dev.before_call[11] = lambda: dev.good.update({1: set()})  # 6 before, module 0: 3, module 1's scan
    with pytest.raises(DramCalibrationError, match=r"DRAM module 1: no two consecutive working read delay taps when "
                                                   r"its best bitslip 6 was scanned again \(0{32}\).*b6: 0{20}1{12}"):
        calibrate(dev, ARTY, log=lambda s: None, sleep=dev.sleep)
    assert dev.regs["ddrctrl_init_done"] == 0


def test_centre_failing_its_check_is_an_error():
    """Module 0's window found, then its centre fails (the model stops reading right after
    the rescan): 8 checks as sdram.c, then an error; init_done never set."""
    dev = FakeDram(ARTY, {0: taps(3, 8, 15), 1: taps(3, 8, 15)})
    dev.before_call[9] = lambda: dev.good.update({0: set()})   # calls: 2 PHY reset, 4 init, scan, rescan
    with pytest.raises(DramCalibrationError, match=r"DRAM module 0: bitslip 3, delay 11 \(centre of taps 8-15\) "
                                                   r"failed its check 8 times \(\d+ bit errors of 192 "):
        calibrate(dev, ARTY, log=lambda s: None, sleep=dev.sleep)
    assert dev.calls == 8 + 8 + 1 and dev.regs["ddrctrl_init_done"] == 0 and dev.regs["ddrctrl_init_error"] == 1


@pytest.mark.parametrize("recipe", [SDR, MODEL], ids=["gensdrphy", "model"])
def test_without_read_leveling_only_init(recipe):
    """GENSDRPHY (no ddrphy CSRs) and a behavioural memory: software control, a precharge of
    all banks where the DFII has command registers, init_done cleared, the init list,
    hardware control, init_done; nothing read."""
    dev = FakeDram(recipe)
    rep = calibrate(dev, recipe, log=lambda s: None, sleep=dev.sleep)
    err = [("ddrctrl_init_error", 0)] if "ddrctrl_init_error" in recipe["csr"] else []
    init = [(s["csr"], s["value"]) for s in recipe["init"] if "csr" in s]
    pre = [("sdram_dfii_pi0_address", 0x400), ("sdram_dfii_pi0_baddress", 0), ("sdram_dfii_pi0_command", 0x0B),
           ("sdram_dfii_pi0_command_issue", 1)] if "sdram_dfii_pi0_command" in recipe["csr"] else []
    assert dev.writes() == [("sdram_dfii_control", 14), *pre, ("ddrctrl_init_done", 0), *err, *init,
                            ("sdram_dfii_control", 1), ("ddrctrl_init_done", 1)]
    assert not any(e[0] == "r" for e in dev.events)
    delays = [s["delay_cycles"] for s in recipe["init"] if "delay_cycles" in s]
    assert [e[1] for e in dev.events if e[0] == "sleep"] == [n / recipe.get("clock_hz", 1) for n in delays]
    assert rep["modules"] == [] and rep["csr_calls"] == dev.calls == len(delays) + 1
    assert init_done(dev, recipe) and dev.violations == []


def test_a7_calibration_call_count():
    """A full A7 calibration (2 modules x 8 bitslips x 32 taps x 3 seeds): at most 16 csr()
    calls (2 for the PHY reset, 4 for the init's delays, 3 per module, 1 to finish)."""
    dev = FakeDram(ARTY, {0: taps(1, 4, 18), 1: taps(7, 12, 30)})
    rep = calibrate(dev, ARTY, log=lambda s: None, sleep=dev.sleep)
    print(f"A7 calibration: {rep['csr_calls']} csr() calls, {rep['csr_ops']} ops")
    assert rep["csr_calls"] == dev.calls == 13 <= 16
    assert rep["csr_ops"] == sum(e[0] in "rw" for e in dev.events) < 80_000
    assert [(m["bitslip"], m["delay"]) for m in rep["modules"]] == [(1, 11), (7, 21)]
