"""The board's DRAM brought up from the host (docs/dram.md): what the LiteX BIOS
(``liblitedram/sdram.c``, ``sdram_init``) does at boot, for a LiteDRAM controller with no
soft CPU, through the controller's CSRs (``wb_ctrl``) reached over the link.

    report = calibrate(csr, recipe)     # csr(ops) -> read values; recipe: the build's JSON
    assert init_done(csr, recipe)

The recipe is written at build time from the generated core (``csr.csv``, ``sdram_phy.h``):
CSR byte addresses, ``init`` (``init_sequence()`` flattened: CSR writes and
``{"delay_cycles": n}``), the PHY's phases, read/write phase, modules, delay taps, bitslips,
data widths, and whether it has read leveling. :func:`calibrate`:

1. DFII to software control (CKE|ODT|RESET_N); a precharge of all banks (a calibration
   started again after a link error may have left the test row open); where the PHY has
   them, a ``ddrphy_rst`` pulse, ``ddrctrl_init_done``/``init_error`` cleared,
   ``ddrphy_rdphase``/``wrphase`` set;
2. the recipe's ``init`` in order, a ``delay_cycles`` becoming ``sleep(n / clock_hz)``
   after the writes before it have been executed (the DDR3 reset, CKE, mode registers, ZQ);
3. where ``read_leveling`` (A7DDRPHY): per module, each bitslip's 32 IDELAY taps scanned
   with LiteX's test (activate row 0, write a burst of LiteX's LFSR pattern through the
   DFII on ``wrphase``, read it back on ``rdphase``, precharge; seeds 42, 84, 36; only the
   module's byte lane of each half of each phase word counts) and scored as LiteX does;
   the best bitslip is rescanned, the delay set to the middle of the longest window of
   working taps (LiteX's ``sdram_leveling_center_module``) and checked (8 tries);
4. DFII to hardware control (``DFII_CONTROL_SEL``) and ``ddrctrl_init_done = 1``.

Batched: the reads are only needed to score, so a module's whole scan (8 bitslips x 32 taps
x 3 seeds) is one ``csr()`` call; a full A7 calibration is 13 calls (2 for the PHY reset, 4
for the init's delays, 3 per module, 1 to finish). Unlike sdram.c: the module is selected
(``ddrphy_dly_sel``) once per call, not around every increment; the DFII address registers
(0 for the test row) are written once per call; ``cdelay(15)`` after a test command becomes
``settle_ops`` no-op writes; the ``cdelay(100)`` between IDELAY increments is dropped; no
memtest (no CPU); a module without a window, or whose centre fails its check, raises
:class:`DramCalibrationError` (``init_error`` set, ``init_done`` left 0) where the BIOS
carries on into its memtest.

Not verifiable without a board: the real windows; that the device's CSR executor leaves the
read data time to land (it returns ``cl_sys_latency + 6`` = 8 sys cycles after the read
command; ``2 * settle_ops + 2`` ops, 10 by default, stand between them). Each op must run
exactly once (a repeated frame would repeat its command issues and increments): the driver
never resends a ``CSR`` frame and starts the whole calibration again after a link error
(``host.device.Device.init_dram``). The tests run against a model of the DFII and A7DDRPHY
CSRs.
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["DramCalibrationError", "calibrate", "init_done", "lfsr_pattern", "window", "MODEL_RECIPE",
           "DFII_CONTROL_SEL", "DFII_CONTROL_SOFTWARE", "SEEDS"]

DFII_CONTROL_SEL, DFII_CONTROL_CKE, DFII_CONTROL_ODT, DFII_CONTROL_RESET_N = 0x01, 0x02, 0x04, 0x08
DFII_CONTROL_SOFTWARE = DFII_CONTROL_CKE | DFII_CONTROL_ODT | DFII_CONTROL_RESET_N
CS, WE, CAS, RAS, WRDATA, RDDATA = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20     # DFII_COMMAND_*
ACTIVATE, PRECHARGE = RAS | CS, RAS | WE | CS
WRITE, READ = CAS | WE | CS | WRDATA, CAS | CS | RDDATA
SEEDS = (42, 84, 36)            # sdram.c's _seed_array
CENTER_TRIES = 8                # sdram_leveling_center_module's retries
PHY_RST_CYCLES = 1000           # sdram_init: ddrphy_rst 1, cdelay(1000), 0, cdelay(1000)

Csr = Callable[[list], list]

MODEL_RECIPE = {"phy": "model", "csr": {"ddrctrl_init_done": 0x0, "sdram_dfii_control": 0x1000}, "init": [],
                "read_leveling": False}
"""The simulated board's behavioural memory (``DramPhy.MODEL``, rtl_gen/extmem.py's
``DramCtrlModel``): nothing to calibrate, ``init_done`` at byte 0 (as in both LiteDRAM
board cores); its other words ignore writes (``sdram_dfii_control`` at the Arty core's
address)."""


class DramCalibrationError(RuntimeError):
    """The DRAM could not be calibrated: a module with no window of working read taps at
    any bitslip, or whose chosen delay failed its check."""


def lfsr_pattern(seed: int, phases: int, nbytes: int) -> list[int]:
    """LiteX's test pattern (``sdram_write_read_check_test_pattern``): ``phases`` words of
    ``nbytes`` bytes from the 32-bit Galois LFSR (taps 0x80200003), one bit per step, LSB
    first in each byte; a word's first byte is its most significant (``csr_wr_buf_uint8``)."""
    prv, words = seed, []
    for _ in range(phases):
        buf = bytearray(nbytes)
        for i in range(nbytes):
            for bit in range(8):
                prv = (prv >> 1) ^ (0x80200003 if prv & 1 else 0)
                buf[i] |= (prv & 1) << bit
        words.append(int.from_bytes(buf, "big"))
    return words


def window(ok: list[bool]) -> tuple[int, int] | None:
    """``sdram_leveling_center_module``'s window over a scan: from the first two consecutive
    working taps, the longest run of working taps (the earliest of equal ones) as
    ``(first, last)``; None without two consecutive working taps."""
    lo, prev, d = -1, False, 0
    while d < len(ok):
        if ok[d] and prev:
            lo = d - 1
            break
        prev, d = ok[d], d + 1
    if lo < 0:
        return None
    hi = cur = lo
    for d in range(d, len(ok)):
        if not ok[d]:
            cur = d + 1
        elif d - cur > hi - lo:
            lo, hi = cur, d
    return lo, hi


class _Batch:
    """CSR operations queued by name, sent in one ``csr()`` call by :meth:`run`."""

    def __init__(self, csr: Csr, addrs: dict):
        self.csr, self.addrs, self.ops, self.calls, self.nops = csr, addrs, [], 0, 0

    def addr(self, name: str) -> int:
        try:
            return int(self.addrs[name])
        except KeyError:
            raise ValueError(f"the DRAM recipe has no CSR {name!r}") from None

    def w(self, name: str, value: int) -> None:
        self.ops.append((self.addr(name), int(value)))

    def run(self) -> list[int]:
        if not self.ops:
            return []
        ops, self.ops = self.ops, []
        self.calls, self.nops = self.calls + 1, self.nops + len(ops)
        got = list(self.csr(ops))
        want = sum(v is None for _, v in ops)
        if len(got) != want:
            raise RuntimeError(f"csr() returned {len(got)} values for {want} reads")
        return got


class _Leveler:
    """Read leveling of one A7DDRPHY-like PHY (the recipe's geometry)."""

    def __init__(self, b: _Batch, recipe: dict, settle_ops: int):
        self.b, self.settle = b, settle_ops
        self.phases, self.modules = int(recipe["phases"]), int(recipe["modules"])
        self.delays, self.bitslips = int(recipe["delays"]), int(recipe["bitslips"])
        self.rd, self.wr = int(recipe["rdphase"]), int(recipe["wrphase"])
        dfi, db = int(recipe["dfi_databits"]), int(recipe["databits"])
        self.nwords = max(1, dfi // 32)               # 32-bit CSR words per phase's data
        self.patterns = [lfsr_pattern(s, self.phases, dfi // 8) for s in SEEDS]
        lane = db // self.modules
        self.masks = [sum(((1 << lane) - 1) << (h * db + m * lane) for h in range(dfi // db))
                      for m in range(self.modules)]
        self.max_errors = len(SEEDS) * self.phases * bin(self.masks[0]).count("1")

    def _data(self, kind: str, p: int, value: int | None = None) -> None:
        addr = self.b.addr(f"sdram_dfii_pi{p}_{kind}")
        for k in range(self.nwords):       # csr_wr/rd_buf: the most significant word first
            shift = 32 * (self.nwords - 1 - k)
            self.b.ops.append((addr + 4 * k, None if value is None else (value >> shift) & 0xFFFFFFFF))

    def _command(self, p: int, cmd: int) -> None:
        self.b.w(f"sdram_dfii_pi{p}_command", cmd)
        self.b.w(f"sdram_dfii_pi{p}_command_issue", 1)
        for _ in range(self.settle):                     # cdelay(15): a no-op write
            self.b.w("sdram_dfii_pi0_address", 0)

    def _prologue(self, m: int) -> None:
        self.b.w("ddrphy_dly_sel", 1 << m)
        for p in sorted({0, self.rd, self.wr}):
            self.b.w(f"sdram_dfii_pi{p}_address", 0)
            self.b.w(f"sdram_dfii_pi{p}_baddress", 0)

    def _test(self) -> None:
        """Queue LiteX's test at the current taps, every seed; reads ``seeds * phases * nwords``."""
        for words in self.patterns:
            self._command(0, ACTIVATE)
            for p, w in enumerate(words):
                self._data("wrdata", p, w)
            self._command(self.wr, WRITE)
            self._command(self.rd, READ)
            self._command(0, PRECHARGE)
            for p in range(self.phases):
                self._data("rddata", p)

    def _errors(self, m: int, got) -> int:
        """Bit errors of module ``m`` in one :meth:`_test`'s reads (taken from the iterator ``got``)."""
        errors = 0
        for words in self.patterns:
            for w in words:
                v = 0
                for _ in range(self.nwords):
                    v = (v << 32) | (next(got) & 0xFFFFFFFF)
                errors += bin((v ^ w) & self.masks[m]).count("1")
        return errors

    def _scan(self) -> None:
        self.b.w("ddrphy_rdly_dq_rst", 1)
        for _ in range(self.delays):
            self._test()
            self.b.w("ddrphy_rdly_dq_inc", 1)

    def _set(self, bitslip: int | None, delay: int) -> None:
        if bitslip is not None:
            self.b.w("ddrphy_rdly_dq_bitslip_rst", 1)
            for _ in range(bitslip):
                self.b.w("ddrphy_rdly_dq_bitslip", 1)
        self.b.w("ddrphy_rdly_dq_rst", 1)
        for _ in range(delay):
            self.b.w("ddrphy_rdly_dq_inc", 1)

    def module(self, m: int) -> dict:
        n, mx = self.delays, self.max_errors
        # every bitslip's scan in one call (sdram_read_leveling_scan_module)
        self._prologue(m)
        self.b.w("ddrphy_rdly_dq_bitslip_rst", 1)
        for bs in range(self.bitslips):
            self._scan()
            if bs < self.bitslips - 1:
                self.b.w("ddrphy_rdly_dq_bitslip", 1)
        got = iter(self.b.run())
        errs = [[self._errors(m, got) for _ in range(n)] for _ in range(self.bitslips)]
        scores = [sum((e == 0) * mx * n + mx - e for e in es) for es in errs]
        best = scores.index(max(scores))         # the first of equal scores, as sdram.c
        seen = "; ".join(f"b{bs}: {''.join('1' if e == 0 else '0' for e in es)}" for bs, es in enumerate(errs))
        windows = [window([e == 0 for e in es]) for es in errs]
        if not any(windows):
            raise DramCalibrationError(
                f"DRAM module {m}: no two consecutive working read delay taps at any of the {self.bitslips} "
                f"bitslips x {n} taps scanned ({len(SEEDS)} LFSR patterns each); taps working (1) per "
                f"bitslip: {seen}")
        # the best bitslip rescanned (sdram_leveling_center_module)
        self._prologue(m)
        self._set(best, 0)
        self._scan()
        got = iter(self.b.run())
        ok = ''.join('1' if self._errors(m, got) == 0 else '0' for _ in range(n))
        win = window([c == '1' for c in ok])
        if win is None:
            raise DramCalibrationError(
                f"DRAM module {m}: no two consecutive working read delay taps when its best bitslip {best} was "
                f"scanned again ({ok}); taps working (1) per bitslip in the first scan: {seen}")
        delay = (win[0] + win[1]) // 2 % n
        for _ in range(CENTER_TRIES):
            self._set(None, delay)
            self._test()
            self.b.w("ddrphy_dly_sel", 0)
            errors = self._errors(m, iter(self.b.run()))
            if errors == 0:
                break
        else:
            raise DramCalibrationError(
                f"DRAM module {m}: bitslip {best}, delay {delay} (centre of taps {win[0]}-{win[1]}) failed its "
                f"check {CENTER_TRIES} times ({errors} bit errors of {mx} the last time); taps working per "
                f"bitslip: {seen}")
        return {"module": m, "bitslip": best, "window": win, "delay": delay, "scores": scores, "windows": windows}


def calibrate(csr: Csr, recipe: dict, *, log: Callable[[str], None] = print,
              sleep: Callable[[float], None] = time.sleep, settle_ops: int = 4) -> dict:
    """Initialize and calibrate the DRAM controller, then hand it to the hardware.

    Parameters
    ----------
    csr : callable
        ``csr(ops) -> list[int]``: ``ops`` a list of ``(byte_addr, value)`` writes and
        ``(byte_addr, None)`` reads on ``wb_ctrl``, executed in order; returns the reads'
        values in order.
    recipe : dict
        The build's DRAM recipe (module docstring).
    log : callable
        Called with one line per calibrated module.
    sleep : callable
        ``sleep(seconds)`` for the init sequence's delays.
    settle_ops : int
        No-op CSR writes after each command of the leveling test (sdram.c's ``cdelay(15)``).

    Returns
    -------
    dict
        ``modules``: per module ``module``, ``bitslip``, ``window`` (first, last tap),
        ``delay``, ``scores`` (every bitslip's) and ``windows`` (every bitslip's window or
        None); ``csr_calls`` and ``csr_ops``.

    Raises
    ------
    DramCalibrationError
        A module without a working window (``ddrctrl_init_error`` set where it exists,
        ``ddrctrl_init_done`` left 0, the DFII left in software control).
    """
    b = _Batch(csr, addrs := recipe["csr"])
    clock_hz = float(recipe.get("clock_hz") or 0)
    if clock_hz <= 0 and (any("delay_cycles" in s for s in recipe.get("init", [])) or "ddrphy_rst" in addrs):
        raise ValueError("the DRAM recipe has no clock_hz for its delays")
    b.w("sdram_dfii_control", DFII_CONTROL_SOFTWARE)
    if "sdram_dfii_pi0_command" in addrs:
        # precharge all banks (A10): a calibration started again after a link error may have
        # left the test row open
        b.w("sdram_dfii_pi0_address", 0x400)
        b.w("sdram_dfii_pi0_baddress", 0)
        b.w("sdram_dfii_pi0_command", PRECHARGE)
        b.w("sdram_dfii_pi0_command_issue", 1)
    if "ddrphy_rst" in addrs:
        for v in (1, 0):
            b.w("ddrphy_rst", v)
            b.run()
            sleep(PHY_RST_CYCLES / clock_hz)
    b.w("ddrctrl_init_done", 0)
    if "ddrctrl_init_error" in addrs:
        b.w("ddrctrl_init_error", 0)
    for name in ("rdphase", "wrphase"):
        if f"ddrphy_{name}" in addrs and name in recipe:
            b.w(f"ddrphy_{name}", recipe[name])
    for step in recipe.get("init", []):
        if "delay_cycles" in step:
            b.run()
            sleep(int(step["delay_cycles"]) / clock_hz)
        else:
            b.w(step["csr"], step["value"])
    modules = []
    if not recipe.get("read_leveling"):
        log(f"DRAM ({recipe.get('phy', '?')}): initialized, no read leveling")
    else:
        lev = _Leveler(b, recipe, settle_ops)
        try:
            for m in range(lev.modules):
                r = lev.module(m)
                modules.append(r)
                log(f"DRAM module {m}: bitslip {r['bitslip']}, read delay {r['delay']} (working taps "
                    f"{r['window'][0]}-{r['window'][1]}; bitslip scores {r['scores']})")
        except DramCalibrationError:
            b.ops = []
            if "ddrctrl_init_error" in addrs:
                b.w("ddrctrl_init_error", 1)
                b.run()
            raise
    b.w("sdram_dfii_control", DFII_CONTROL_SEL)
    b.w("ddrctrl_init_done", 1)
    b.run()
    return {"modules": modules, "csr_calls": b.calls, "csr_ops": b.nops}


def init_done(csr: Csr, recipe: dict) -> bool:
    """Whether the controller's ``ddrctrl_init_done`` reads 1."""
    return bool(csr([(int(recipe["csr"]["ddrctrl_init_done"]), None)])[0] & 1)
