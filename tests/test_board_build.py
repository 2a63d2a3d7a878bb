# amaranth: UnusedElaboratable=no
"""Board builds (sephw/flows/boardbuild.py, rtl_gen/board.py) of the small SEP-Net build: the Vivado
project amaranth-boards emits for the Arty A7 with its Yosys utilization estimate, and the
ECP5 open flow for the ULX3S to a real bitstream with nextpnr's Fmax."""
import json
import math
import shutil
import time

import pytest

import boards
from sephw.arch import Manifest
from sephw.flows.boardbuild import board_build, flow_progress, parse_nextpnr


@pytest.fixture
def build_copy(sepnet_build, tmp_path):
    """A private copy of the small build directory (board builds write into it)."""
    _, d, _ = sepnet_build
    dst = tmp_path / "build"
    shutil.copytree(d, dst)
    return dst


def _k3_compile(board, out):
    """A two-layer network of 3×3 pattern convs (16 and 32 channels, the second at stride 2)
    compiled on the small overlay: k_max 3, so its pattern engine is 9 taps wide, not the
    SEP-Net test's 25, and its board top synthesizes in well under half the time."""
    import torch

    from conftest import SMALL_ENGINE
    from sephw import binarize, quantize
    from sephw.compiler import compile_graph
    from sephw.models import ConvRow, SEPNet
    torch.manual_seed(0)
    m = SEPNet((ConvRow("conv1", 16, 3, 1, 1), ConvRow("conv2", 32, 3, 2, 1)),
               in_channels=1, num_classes=10, stem="small").eval()
    binarize.binarize_model(m)
    calib = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ir, rep = compile_graph(quantize.quantize(m, calib), board, out, engine=SMALL_ENGINE)
    assert ir.cfg.k_max == 3
    return rep


@pytest.fixture
def k3_build(tmp_path):
    """The network of :func:`_k3_compile` built for the Arty A7-35."""
    _k3_compile("arty-a7-35", tmp_path / "build")
    return tmp_path / "build"


def test_ulx3s_board_top_at_a_pll_clock(tmp_path):
    """``sephw compile --clock-mhz 40 --board ulx3s``: the build is compiled for 40 MHz (its
    ArchConfig, report and UART divisor) and the board top makes 40 MHz from the 25 MHz
    oscillator with an EHXPLLL (5 : 8, VCO in range); the pin keeps its 25 MHz constraint."""
    from rtl_gen.clocking import pll_config
    from sephw.flows.compile import board_at_clock
    board = board_at_clock(boards.get("ulx3s"), 40)
    out = tmp_path / "b40"
    rep = _k3_compile(board, out)
    assert rep["clock_hz"] == 40_000_000 and Manifest.read(out).arch.clock_hz == 40_000_000
    # the board build takes the clock from the build, given the board by name
    r = board_build(out, "ulx3s-85f", synth=False, log=lambda s: None)
    assert r["clock_hz"] == 40_000_000 and r["oscillator_hz"] == 25_000_000
    il = (out / "ecp5" / "sephw.il").read_text()
    cfg = pll_config(25e6, 40e6)
    assert "EHXPLLL" in il and (cfg["clki_div"], cfg["clkfb_div"]) == (5, 8)
    for p in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"):
        assert f"parameter \\{p} {cfg[p.lower()]}\n" in il, p
    lpf = (out / "ecp5" / "sephw.lpf").read_text()
    assert "FREQUENCY PORT" in lpf and "25000000" in lpf
    assert "--timing-allow-fail" in (out / "ecp5" / "build_sephw.sh").read_text()


@pytest.mark.slow
def test_arty_vivado_project_and_yosys_estimate(k3_build):
    build_copy = k3_build
    r = board_build(build_copy, "arty-a7", synth=True, log=lambda s: None)
    proj = build_copy / "vivado"
    for f in ("sephw.v", "sephw.xdc", "sephw.tcl", "build_sephw.sh"):
        assert (proj / f).is_file(), f
    xdc = (proj / "sephw.xdc").read_text()
    # the Arty's 100 MHz clock (E3) and the FTDI UART pins (rx A9, tx D10)
    for pin in ("E3", "A9", "D10"):
        assert f"set_property LOC {pin} " in xdc, pin
    assert "xc7a35ticsg324-1L" in (proj / "sephw.tcl").read_text()
    v = (proj / "sephw.v").read_text()
    assert "module sephw" in v and "uart" in v
    # the pattern engine's Xilinx netlist: counters on LUT6_2 + CARRY4 cells
    assert "LUT6_2 #(" in v and "CARRY4 " in v
    e = r["estimate"]
    # the small overlay: 16 MAC cells on DSPs plus the post-process multipliers; logic and
    # block RAM present; fits the part
    assert e["dsp"] >= 16 and e["lut"] > 1000 and e["ff"] > 500 and e["bram_blocks"] >= 1
    assert e["fits"] and e["budget"]["lut"] == boards.get("arty-a7").resources["lut"]
    assert json.loads((build_copy / "board_build.json").read_text())["estimate"]["lut"] == e["lut"]
    assert json.loads((build_copy / "report.json").read_text())["board_build"]["estimate"]["dsp"] == e["dsp"]
    # the timing estimate of the same netlist: register-to-register paths named by RTL signal
    t = r["timing"]
    assert t["endpoints"] > 1000 and t["worst_ns"] > 2 and t["lut_levels"] >= 1 and not t["unmodelled_cells"]
    # (rst: the board top's reset flip-flop, which resets the accelerator's registers)
    assert all(p["from"].startswith("system.") or p["from"] == "rst" for p in t["paths"]) and len(t["paths"]) == 10
    assert t["pessimistic_worst_ns"] > t["worst_ns"]
    assert t["reached_mhz"] == min(100, math.floor(1000 / t["worst_ns"])) <= t["fmax_mhz"] + 0.05
    md = (build_copy / "timing.md").read_text()
    assert f"{t['worst_ns']:.2f} ns" in md and t["paths"][0]["from"] in md and "Pessimistic corner" in md
    rep = json.loads((build_copy / "report.json").read_text())
    assert rep["clock_reached"]["hz"] == t["reached_mhz"] * 1e6 and "timing estimate" in rep["clock_reached"]["basis"]
    assert rep["clock_reached"]["fps"] == pytest.approx(t["reached_mhz"] * 1e6 / rep["cycles_per_inference"])
    # users with Vivado get the routed WNS/TNS printed after route_design
    assert "source sephw_wns_tns.tcl" in (proj / "sephw.tcl").read_text()
    assert "open_checkpoint sephw_route.dcp" in (proj / "sephw_wns_tns.tcl").read_text()
    # unchanged Verilog: the estimates are reused, not synthesized again
    again = board_build(build_copy, "arty-a7", synth=True, log=lambda s: None)
    assert again["estimate"]["cached"] and again["estimate"]["lut"] == e["lut"]
    assert again["timing"]["cached"] and again["timing"]["worst_ns"] == t["worst_ns"]


def test_ulx3s_open_flow_project(build_copy):
    """The ECP5 open-flow project (the full yosys -> nextpnr-ecp5 -> ecppack run takes ~5 min
    for this small overlay and runs in bench/bench_boards.py, which records the bitstream and
    Fmax): pins, clock constraint, the flow script with the yowasp tools' variables."""
    r = board_build(build_copy, "ulx3s-85f", synth=False, log=lambda s: None)
    proj = build_copy / "ecp5"
    assert r["bitstream"] is None and r["toolchain"] == "trellis"
    lpf = (proj / "sephw.lpf").read_text()
    for comp, site in (("uart_0__rx__io", "M1"), ("uart_0__tx__io", "L4"), ("clk25_0__io", "G2")):
        assert f'LOCATE COMP "{comp}" SITE "{site}";' in lpf, (comp, site)
    assert "FREQUENCY PORT" in lpf and "25000000" in lpf
    assert "synth_ecp5" in (proj / "sephw.ys").read_text()
    script = (proj / "build_sephw.sh").read_text()
    assert "NEXTPNR_ECP5" in script and "ECPPACK" in script and "--85k" in script
    # the profile's placer (boards/ulx3s-85f.yaml: static)
    assert "--placer static" in script
    # the power-on reset (ULX3S has no reset pin) is in the design
    assert "por" in (proj / "sephw.il").read_text()
    # and the generic LUT netlist of the pattern engine, no Xilinx cells
    assert "CARRY4" not in (proj / "sephw.il").read_text()


def test_flow_progress_follows_the_open_flow():
    """The phase the ECP5 flow reports while it runs, from its logs as yosys and nextpnr write
    them (lines in the formats of a real build's sephw.rpt and sephw.tim)."""
    rpt = "2.30.4. Executing OPT_CLEAN pass (remove unused cells and wires).\n" \
          "2.31. Executing ABC9 pass.\n"
    assert flow_progress("", "") == "synthesis (yosys)"
    assert flow_progress(rpt, "") == "synthesis (yosys): ABC9"
    tim = "Info: Packing IOs..\n"
    assert flow_progress(rpt, tim) == "nextpnr: packing and placement set-up"
    tim += ("Info:     at iteration #1, type ALL: wirelen solved = 10149, spread = 805891, legal = 923727; "
            "time = 30.14s\n"
            "Info:     at iteration #12, type ALL: wirelen solved = 175013, spread = 297710, legal = 458107; "
            "time = 44.13s\n")
    assert flow_progress(rpt, tim) == "placement (HeAP): iteration 12"
    # the static placer (a profile's ``placer: static``)
    st = "Info: Packing IOs..\nInfo: Running Static placer...\n" \
         "Info: iter=39 steplen=0.389854 a=21.260744 penalty=[0.00, 0.00, 0.00, 0.00]\n"
    assert flow_progress(rpt, st) == "placement (static): iteration 39"
    # nextpnr's timing estimate after placement is not the end of the flow
    tim += ("Info: Running simulated annealing placer for refinement.\n"
            "Info: Max frequency for clock '$glbnet$clk': 53.94 MHz (FAIL at 75.00 MHz)\n")
    assert flow_progress(rpt, tim) == "placement: refinement"
    r1 = tim + ("Info: Routing 157820 arcs.\n"
                "Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |\n"
                "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|\n"
                "Info:       1000 |       50        949 |   50   949 |    156891|       4.37       4.37|\n"
                "Info:     730000 |   225844     499107 |  437   563 |      9726|       3.67    3789.41|\n")
    assert flow_progress(rpt, r1) == "routing: 9,726 of 157,820 arcs left"
    r2 = tim + "Info:     iter=8 wires=735426 overused=15431 overuse=15767 archfail=NA\n"
    assert flow_progress(rpt, r2) == "routing (router2): iteration 8, 15,431 overused wires"
    done = r1 + "Info: Routing complete.\nInfo: Router1 time 4493.84s\n"
    assert flow_progress(rpt, done) == "timing analysis and bitstream (ecppack)"


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_open_flow_stops_its_tools(tmp_path, how):
    """Ctrl-C during the open flow (here: raised by the progress log) or a SIGTERM to the
    process kills the flow's tools, not only its shell; a previous build's logs are removed
    first."""
    import os
    import signal
    import threading
    if how == "sigterm" and threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are the main thread's")     # (SIGTERM would end this worker)

    from sephw.flows.boardbuild import NAME, _run_with_progress
    (tmp_path / f"{NAME}.tim").write_text("Info: Routing complete.\n")     # a previous build's
    pidfile = tmp_path / "child.pid"
    seen = []

    def log(line):
        seen.append(line)
        for _ in range(100):              # the tool has started
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)                     # the handler raises within this
            pytest.fail("SIGTERM did not interrupt the flow")
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        _run_with_progress(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], tmp_path, None, None, log)
    assert seen == ["[board]   synthesis (yosys) (0 min)"]          # not the stale log's phase
    assert signal.getsignal(signal.SIGTERM) is before                      # the handler is restored
    pid = int(pidfile.read_text())
    for _ in range(100):
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            break
        if state in ("Z", "X"):           # killed, not yet reaped by whoever adopted it
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the flow's tool (pid {pid}) survived the interrupt")


def test_parse_nextpnr_reads_the_last_report():
    log = """Info: Max frequency for clock '$glbnet$clk': 40.10 MHz (PASS at 25.00 MHz)
Info: Device utilisation:
Info: \t          TRELLIS_IO:     4/  365     1%
Info: \t        TRELLIS_COMB:  9001/83640    10%
Info: \t          MULT18X18D:    20/  156    12%
Info: Placed 10 cells
Info: Max frequency for clock '$glbnet$clk': 31.52 MHz (PASS at 25.00 MHz)
Info: Max frequency for clock 'other': 12.00 MHz (FAIL at 25.00 MHz)
"""
    r = parse_nextpnr(log)
    assert r["fmax"]["$glbnet$clk"] == {"mhz": 31.52, "pass": True, "target_mhz": 25.0}
    assert r["fmax"]["other"]["pass"] is False
    assert r["utilisation"] == {"TRELLIS_IO": {"used": 4, "available": 365},
                                "TRELLIS_COMB": {"used": 9001, "available": 83640},
                                "MULT18X18D": {"used": 20, "available": 156}}


def test_board_top_checks_baud(sepnet_build):
    from rtl_gen.board import BoardTop
    _, d, _ = sepnet_build
    with pytest.raises(ValueError, match="exceeds arty-a7-35's UART bridge maximum 12000000"):
        BoardTop(d, boards.get("arty-a7"), baud=20_000_000)


@pytest.fixture(scope="module")
def arty_dram_core():
    """The Arty's LiteDRAM board core, generated once (litedram_gen, ~45 s) and reused."""
    from rtl_gen import dram
    from sim.runner import BUILD_ROOT
    out = BUILD_ROOT / "litedram" / "arty-a7-35"
    dram.generate("arty-a7-35", out)
    return out


@pytest.mark.slow
def test_arty_board_top_with_ddr3(sepnet_build, tmp_path, arty_dram_core):
    """A build that keeps its weights, spilled tensors and Program in DRAM gets the Arty's
    LiteDRAM controller in its Vivado project: the core's Verilog and constraints (bank 34's
    internal VREF, LiteDRAM's false paths), the DDR3L pins placed by amaranth-boards' ddr3
    resource with their SSTL135 standards, the design clocked by the controller's PLL; and
    the host's initialization recipe (init sequence and read leveling) in BUILD/dram.json.
    The same build on the ULX3S, whose SDRAM port has 16-bit words, is refused in one line."""
    from conftest import SMALL_ENGINE
    from rtl_gen.board import BoardTop
    from sephw.arch.link import DramPhy
    from sephw.compiler import compile_graph
    g, _, _ = sepnet_build
    d = tmp_path / "spill"
    compile_graph(g, "arty-a7-35", d, engine=SMALL_ENGINE, placement="spill")
    r = board_build(d, "arty-a7-35", synth=False, log=lambda s: None, dram_dir=arty_dram_core)
    proj = d / "vivado"
    assert {"litedram_core.v", "litedram_core.xdc"} <= set(r["files"])
    v, xdc = (proj / "sephw.v").read_text(), (proj / "sephw.xdc").read_text()
    assert "litedram_core litedram (" in v and "module litedram_core" in (proj / "litedram_core.v").read_text()
    # the DDR3L pins: address A0 R2, DQ0 K5, the clock pair U9/V9, DQS0 N2; SSTL135 at 1.35 V
    for pin in ("R2", "K5", "U9", "V9", "N2", "E3"):
        assert f"set_property LOC {pin} " in xdc, pin
    assert 'IOSTANDARD "DIFF_SSTL135" [get_ports "ddr3_0__clk__p"]' in xdc and "UNTUNED_SPLIT_40" in xdc
    cons = (proj / "litedram_core.xdc").read_text()
    assert "set_property INTERNAL_VREF 0.675 [get_iobanks 34]" in cons and "set_false_path" in cons
    tcl = (proj / "sephw.tcl").read_text()
    assert 'add_files "litedram_core.v"' in tcl and 'read_xdc "litedram_core.xdc"' in tcl
    recipe = json.loads((d / "dram.json").read_text())
    assert recipe["phy"] == "A7DDRPHY" and recipe["read_leveling"]
    assert (recipe["modules"], recipe["delays"], recipe["bitslips"]) == (2, 32, 8)
    # the mode registers as the BIOS writes them: MR0 CL=7 BL=8 (0x930), then ZQ calibration
    assert {"csr": "sdram_dfii_pi0_address", "value": 0x930} in recipe["init"]
    assert recipe["init"][-3:-1] == [{"csr": "sdram_dfii_pi0_command", "value": 3},
                                     {"csr": "sdram_dfii_pi0_command_issue", "value": 1}]
    top = BoardTop(d, boards.get("arty-a7-35"), dram_dir=arty_dram_core)
    assert top.link.info.dram_phy == DramPhy.A7DDRPHY
    with pytest.raises(ValueError, match="ulx3s-85f's LiteDRAM port has 16-bit words and 24 address bits; "
                                         "the build was compiled for 128 and 24"):
        BoardTop(d, boards.get("ulx3s-85f"), dram_dir=tmp_path / "ulx3s-core")


@pytest.mark.slow
def test_arty_ddr3_board_top_below_the_controllers_clock(sepnet_build, tmp_path, arty_dram_core):
    """The same build compiled for the Arty at 70 MHz (``--clock-mhz 70``: a clock its timing
    estimate can reach): the LiteDRAM core keeps its own 100 MHz, the design runs on an
    MMCME2 from it (7 x 100 MHz / 10), the native port and the CSR bus pass through
    rtl_gen/extcdc.py's crossings, the XDC declares the two clocks asynchronous, and the
    compiler's cycle model reads DRAM at the crossing's latency (11 cycles of 70 MHz for the
    controller's 10 of 100 MHz). A build for 120 MHz is refused (it would wait on the
    controller)."""
    import re

    from conftest import SMALL_ENGINE
    from rtl_gen.board import BoardTop
    from sephw.compiler import compile_graph
    from sephw.flows.compile import board_at_clock
    g, _, _ = sepnet_build
    d = tmp_path / "spill70"
    board = board_at_clock(boards.get("arty-a7-35"), 70)
    _, rep = compile_graph(g, board, d, engine=SMALL_ENGINE, placement="spill")
    assert rep["clock_hz"] == 70_000_000 and rep["external"]["read_latency"] == 11
    r = board_build(d, "arty-a7-35", synth=False, log=lambda s: None, dram_dir=arty_dram_core)
    assert r["dram_controller"] == {"phy": "A7DDRPHY", "clock_hz": 100_000_000}
    v = (d / "vivado" / "sephw.v").read_text()
    mmcm = v[v.index("MMCME2_BASE #("):]
    mmcm = mmcm[:mmcm.index(");")]
    for p, val in (("CLKFBOUT_MULT_F", "7.0"), ("CLKOUT0_DIVIDE_F", "10.0"), ("DIVCLK_DIVIDE", "32'd1"),
                   ("CLKIN1_PERIOD", "10.0")):
        assert re.search(rf"\.{p}\({re.escape(val)}\)", mmcm), (p, mmcm[:600])
    assert re.search(r"\.CLKIN1\(dram_clk\)", mmcm) and re.search(r"\.user_clk\(dram_clk\)", v) and "BUFG" in v
    assert "dram_port_cdc" in v and "dram_csr_cdc" in v
    cons = (d / "vivado" / "litedram_core.xdc").read_text()
    assert ("set_clock_groups -asynchronous -group [get_clocks -of_objects [get_pins mmcm/CLKOUT0]] "
            "-group [get_clocks -of_objects [get_pins litedram/user_clk]]") in cons
    man = Manifest.read(d)
    assert man["arch"]["clock_hz"] == 70_000_000
    assert BoardTop(d, board, dram_dir=arty_dram_core).dram.recipe["clock_hz"] == 100_000_000
    with pytest.raises(boards.BoardError, match="would wait on it"):
        board_at_clock(boards.get("arty-a7-35"), 120)


@pytest.mark.slow
def test_ulx3s_board_top_with_sdram(sepnet_build, tmp_path):
    """The same build compiled for the ULX3S at 40 MHz gets its LiteDRAM controller (GENSDRPHY,
    generated for 40 MHz: the SDRAM's timings and refresh in cycles of the design's clock) in the
    open-flow project: the SDRAM pins placed by amaranth-boards' sdram resource, the data pins
    bidirectional (litedram_gen declares them inputs: rtl_gen.dram._bidir_ports), one ECP5 PLL
    making the design's clock and a copy 180° behind it (CLKOS: 15 VCO periods behind CLKOP at
    15 x 40 = 600 MHz) that an ODDRX1F forwards to the SDRAM's clock pin; the host's recipe
    (the init sequence only: no read leveling on SDR) in BUILD/dram.json."""
    import re

    from conftest import SMALL_ENGINE
    from rtl_gen.board import BoardTop
    from rtl_gen.clocking import pll_config
    from sephw.arch.link import DramPhy
    from sephw.compiler import compile_graph
    g, _, _ = sepnet_build
    d = tmp_path / "spill"
    board = boards.get("ulx3s-85f").at_clock(40_000_000)
    compile_graph(g, board, d, engine=SMALL_ENGINE, placement="spill")
    r = board_build(d, "ulx3s-85f", synth=False, log=lambda s: None)
    proj = d / "ecp5"
    assert r["clock_hz"] == 40_000_000 and "litedram_core.v" in r["files"]
    core_v = (proj / "litedram_core.v").read_text()
    assert re.search(r"inout\s+wire\s+\[15:0\]\s+sdram_dq,", core_v) and "TRELLIS_IO" in core_v
    recipe = json.loads((d / "dram.json").read_text())
    assert recipe["phy"] == "GENSDRPHY" and not recipe["read_leveling"] and recipe["clock_hz"] == 40_000_000
    # LiteX's SDR sequence: precharge-all (RAS|WE|CS), auto-refresh (RAS|CAS|CS), the mode
    # register (CL=2, BL=1: 0x120)
    for op in ({"csr": "sdram_dfii_pi0_command", "value": 0x0B}, {"csr": "sdram_dfii_pi0_command", "value": 0x0D},
               {"csr": "sdram_dfii_pi0_address", "value": 0x120}):
        assert op in recipe["init"], op
    lpf = (proj / "sephw.lpf").read_text()
    for port, pin in (("clk__io", "F19"), ("dq__io[0]", "J16"), ("a__io[0]", "M20"), ("cs__io", "P20"),
                      ("dqm__io[1]", "E20")):
        assert f'LOCATE COMP "sdram_0__{port}" SITE "{pin}";' in lpf, port
    il = (proj / "sephw.il").read_text()
    cfg = pll_config(25e6, 40e6)
    div = cfg["clkop_div"]
    pll = il[il.index("cell \\EHXPLLL"):]
    pll = pll[:pll.index("end\n")]
    for p, v in (("CLKOP_DIV", div), ("CLKOS_DIV", div), ("CLKOP_CPHASE", div - 1),
                 ("CLKOS_CPHASE", div - 1 + div // 2), ("CLKOS_FPHASE", 4 * (div % 2))):
        assert re.search(rf"parameter \\{p} {v}\b", pll), (p, v)
    assert il.count("cell \\ODDRX1F") == 1 and "connect \\sdram_dq \\sdram_0__dq__io [15:0]" in il
    top = BoardTop(d, board)
    assert top.link.info.dram_phy == DramPhy.GENSDRPHY and top.dram.recipe["clock_hz"] == 40_000_000


def test_reached_clock_of_a_dram_build_its_controller_clocks():
    """The clock a build reaches is the timing estimate's; where the DRAM controller clocks the
    design at the board clock (an Arty DRAM build at 100 MHz that the estimate misses), the
    basis says how to run it at the clock reached (``--clock-mhz``, behind the crossings)."""
    from sephw.flows.boardbuild import reached_clock
    arty = boards.get("arty-a7-35")
    hz, basis = reached_clock({"timing": {"worst_ns": 13.52, "reached_mhz": 73}, "dram_clock_warning": "..."}, arty)
    assert hz == 73e6 and basis.endswith("clocks it at 100 MHz: compile with --clock-mhz 73 to run it there")
    hz, basis = reached_clock({"timing": {"worst_ns": 9.5, "reached_mhz": 100}}, arty)
    assert hz == 100e6 and "--clock-mhz" not in basis


def test_bench_boards_merge_keeps_earlier_cases(tmp_path):
    """bench/bench_boards.py ``--merge``: an earlier run's cases that this run does not build
    are kept with that run's commit, date and command, and their table rows as written; a
    results file without a case's row is an error naming the file."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_boards
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"git": "abc1234", "date": "2026-12-07 15:43 UTC", "machine": "m",
                               "command": "python bench/bench_boards.py --cases a:b c:d",
                               "results": {"a:b": {"cycles_per_inference": 7}, "c:d": {"cycles_per_inference": 9}}}))
    old.with_suffix(".md").write_text("# old\n\n| model:board | x |\n|---|---|\n| a:b | 68.8 MHz |\n| c:d | 80 MHz |\n")
    kept, rows = bench_boards._kept_cases([str(old)], ["c:d"])
    assert list(kept) == ["a:b"] and rows == [["a:b", "68.8 MHz"]]
    assert kept["a:b"]["cycles_per_inference"] == 7
    assert kept["a:b"]["measured"] == {"git": "abc1234", "date": "2026-12-07 15:43 UTC",
                                       "command": "python bench/bench_boards.py --cases a:b c:d", "machine": "m"}
    assert bench_boards._kept_cases([str(old)], ["a:b", "c:d"]) == ({}, [])
    # merged again: the kept case keeps its own run's provenance, not the merging run's
    again = tmp_path / "again.json"
    again.write_text(json.dumps({"git": "def5678", "date": "2026-12-08 10:00 UTC", "machine": "m2",
                                 "command": "python bench/bench_boards.py --cases c:d --merge old.json",
                                 "results": {**kept, "c:d": {"cycles_per_inference": 9}}}))
    again.with_suffix(".md").write_text("# again\n\n| model:board | x |\n|---|---|\n| c:d | 81 MHz |\n"
                                        "| a:b | 68.8 MHz |\n")
    kept2, _ = bench_boards._kept_cases([str(again)], [])
    assert kept2["a:b"]["measured"]["git"] == "abc1234" and kept2["c:d"]["measured"]["git"] == "def5678"
    old.with_suffix(".md").write_text("# old\n\n| model:board | x |\n|---|---|\n| c:d | 80 MHz |\n")
    with pytest.raises(SystemExit, match=r"no row for a:b"):
        bench_boards._kept_cases([str(old)], ["c:d"])
