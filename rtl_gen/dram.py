"""External memory through LiteDRAM (issue 15): the controller core, generated at build time by
``litedram_gen`` from the board's configuration in boards/litedram/, and its Amaranth wrapper.

No generated Verilog is committed: :func:`generate` runs LiteDRAM's own generator (PyPI
``litedram``, ``litex``, ``migen``, pinned in pyproject.toml) on the configuration and keeps the
result in a build directory (regenerated when the configuration or the mode changes). The
configurations have no soft CPU and one *native* user port: commands (``addr`` in words of
the port's data width, ``we``) on one stream, write data (``data``, byte enables ``we``) on
another, read data on a third, in command order, several commands in flight. The
controller's CSRs (initialization, the PHY's calibration) are on a Wishbone bus, ``wb_ctrl``
(32-bit words; byte address = word address x 4, from the core's ``csr.csv``).

``sim=True`` generates the core with LiteDRAM's DRAM model (SDRAMPHYModel) in place of the
PHY, its clock the input ``clk``: the configuration's port and controller, simulated
(``litedram_gen --sim`` exits with an error after writing the Verilog, while it builds its
own C++ harness, which is not used here).
"""
from __future__ import annotations

import csv
import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .synth import venv_tool

try:                # the generation lock (parallel test workers); Windows has no flock
    import fcntl
except ImportError:     # pragma: no cover
    fcntl = None

__all__ = ["CONFIGS", "DramError", "LiteDRAMCore", "LiteDRAM", "config_path", "generate", "init_recipe"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "boards" / "litedram"
# board profile -> LiteDRAM configuration (boards/litedram/)
CONFIGS = {"arty-a7-35": "arty-a7.yml", "arty-a7-100": "arty-a7.yml", "ulx3s-85f": "ulx3s-85f.yml"}
# CSRs of the sim core's initialization (byte addresses from csr.csv)
INIT_CSRS = ("ddrctrl_init_done", "sdram_dfii_control")


class DramError(RuntimeError):
    """The LiteDRAM core could not be generated (missing tool, bad configuration)."""


@dataclass(frozen=True)
class LiteDRAMCore:
    """A generated core: its Verilog (module ``litedram_core``), the CSR byte addresses on
    ``wb_ctrl``, the native port's data and address widths, and the module's ports
    (name -> (direction, width))."""
    verilog: Path
    csr: dict
    data_width: int
    addr_width: int
    ports: dict
    sim: bool
    recipe: dict


def init_recipe(phy_header: str, csrs: dict, phy: str, clock_hz: int) -> dict:
    """What the host does to make a generated core's DRAM usable (host/dram.py's
    ``calibrate``), from the core's ``sdram_phy.h`` (the LiteX BIOS's source: its
    ``init_sequence()`` and ``SDRAM_PHY_*`` figures) and CSR map: ``init``, the init sequence
    as CSR writes (``{"csr", "value"}``, a ``command_pN`` expanded to its command and issue
    writes) and waits (``{"delay_cycles"}``: the BIOS's ``cdelay``); the PHY's phases, read
    and write phases, modules, IDELAY taps and bitslips; ``read_leveling`` where the PHY can
    (A7DDRPHY). A statement of ``init_sequence`` this parser does not know is an error, never
    skipped."""
    defines = {m.group(1): int(m.group(2), 0) for m in
               re.finditer(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$", phy_header, re.M)}
    flags = {m.group(1) for m in re.finditer(r"^#define\s+(\w+)\s*$", phy_header, re.M)}

    def value(expr: str) -> int:
        out = 0
        for term in expr.split("|"):
            term = term.strip()
            if term in defines:
                out |= defines[term]
            else:
                try:
                    out |= int(term, 0)
                except ValueError:
                    raise DramError(f"sdram_phy.h init_sequence: unknown value {term!r}") from None
        return out

    body = re.search(r"static inline void init_sequence\(void\)\s*\{(.*?)\n\}", phy_header, re.S)
    if body is None:
        raise DramError("sdram_phy.h has no init_sequence()")
    init = []
    for stmt in re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S).split(";"):
        stmt = stmt.strip()
        if not stmt:
            continue
        if m := re.fullmatch(r"(\w+)_write\((.*)\)", stmt):
            init.append({"csr": m.group(1), "value": value(m.group(2))})
        elif m := re.fullmatch(r"command_p(\d+)\((.*)\)", stmt):
            init += [{"csr": f"sdram_dfii_pi{m.group(1)}_command", "value": value(m.group(2))},
                     {"csr": f"sdram_dfii_pi{m.group(1)}_command_issue", "value": 1}]
        elif m := re.fullmatch(r"cdelay\((\d+)\)", stmt):
            init.append({"delay_cycles": int(m.group(1))})
        else:
            raise DramError(f"sdram_phy.h init_sequence: unknown statement {stmt!r}")
    unknown = sorted({op["csr"] for op in init if "csr" in op} - set(csrs))
    if unknown:
        raise DramError(f"sdram_phy.h init_sequence writes CSRs the core has not got: {', '.join(unknown)}")
    get = lambda name, default=0: defines.get(f"SDRAM_PHY_{name}", default)    # noqa: E731
    return {"phy": phy, "clock_hz": int(clock_hz), "csr": dict(csrs), "init": init,
            "phases": get("PHASES"), "rdphase": get("RDPHASE"), "wrphase": get("WRPHASE"),
            "modules": get("MODULES"), "delays": get("DELAYS"), "bitslips": get("BITSLIPS"),
            "databits": get("DATABITS"), "dfi_databits": get("DFI_DATABITS"),
            "read_leveling": "SDRAM_PHY_READ_LEVELING_CAPABLE" in flags}


def config_path(board: str) -> Path:
    if board not in CONFIGS:
        raise DramError(f"no LiteDRAM configuration for board {board!r} (boards/litedram/ has "
                        f"{', '.join(sorted(CONFIGS))})")
    return CONFIG_DIR / CONFIGS[board]


def _tool() -> str:
    try:
        return venv_tool("litedram_gen", "litedram, litex and migen")
    except FileNotFoundError as e:
        raise DramError(str(e)) from None


def _ports(verilog: str) -> dict:
    """The ports of module litedram_core: name -> (direction, width)."""
    head = verilog[verilog.index("module litedram_core"):]
    head = head[:head.index(");")]
    return {m.group(4): (m.group(1), int(m.group(3)) + 1 if m.group(3) else 1)
            for m in re.finditer(r"\b(input|output|inout)\s+wire\s+(\[(\d+):0\])?\s*(\w+)", head)}


def _bidir_ports(verilog: str) -> str:
    """The generated Verilog with every port that an ECP5 ``TRELLIS_IO`` drives (its ``B``
    pin: GENSDRPHY's ``sdram_dq``) declared ``inout``. litedram_gen declares them ``input``,
    which a tool builds as an input pad in front of the core's own bidirectional buffer: the
    SDRAM's data pins could never be driven (writes lost)."""
    names = set(re.findall(r"\.B\s*\((\w+)(?:\[\d+\])?\)", verilog))
    for n in sorted(names):
        verilog, k = re.subn(rf"\binput(\s+wire\s+(?:\[\d+:0\]\s*)?{n}\s*,)", r"inout\1", verilog, count=1)
        if not k and not re.search(rf"\binout\s+wire\s+(?:\[\d+:0\]\s*)?{n}\s*,", verilog):
            raise DramError(f"litedram_core: the port {n} of a TRELLIS_IO is not declared in the module's header")
    return verilog


def generate(board: str, out_dir, sim: bool = False, clock_hz: int | None = None) -> LiteDRAMCore:
    """Generate (or reuse) the LiteDRAM core of ``board`` in ``out_dir`` (one process at a
    time: a lock file beside it). ``clock_hz``: the controller's clock where it is not the
    configuration's ``sys_clk_freq`` (ULX3S builds at another ``--clock-mhz``: the SDRAM's
    timings and refresh interval are counted in cycles of it); the configuration is then
    written with that clock into ``out_dir``. The A7DDRPHY core makes its own clocks from the
    configuration's and cannot take another."""
    cfg = config_path(board)
    out_dir = Path(out_dir).resolve()      # litedram_gen runs inside it
    conf = yaml.safe_load(cfg.read_text())
    text = cfg.read_bytes()
    if clock_hz is not None and int(clock_hz) != int(float(conf["sys_clk_freq"])):
        if conf["sdram_phy"] != "GENSDRPHY":
            raise DramError(f"{cfg.name}: the {conf['sdram_phy']} core runs at its configuration's "
                            f"{float(conf['sys_clk_freq']) / 1e6:g} MHz, not {clock_hz / 1e6:g} MHz")
        conf["sys_clk_freq"] = float(int(clock_hz))
        text = yaml.safe_dump(conf, sort_keys=False).encode()
        cfg = out_dir / f"{cfg.stem}-{int(clock_hz)}hz.yml"
    # (v2: the TRELLIS_IO ports patched to inout; cores generated before are regenerated)
    key = hashlib.sha256(text + (b"sim" if sim else b"board") + b"v2").hexdigest()[:16]
    verilog, stamp = out_dir / "gateware" / "litedram_core.v", out_dir / "sephw_config.sha256"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (verilog.exists() and stamp.exists() and stamp.read_text() == key):
            out_dir.mkdir(parents=True, exist_ok=True)
            if cfg.parent == out_dir:
                cfg.write_bytes(text)
            verilog.unlink(missing_ok=True)
            cmd = [_tool(), str(cfg), "--output-dir", str(out_dir)] + (["--sim"] if sim else [])
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir)
            (out_dir / "litedram_gen.log").write_text(r.stdout + r.stderr)
            # (--sim exits 1 after writing the Verilog, building its own C++ harness)
            if not verilog.exists() or (r.returncode and not sim):
                tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
                raise DramError(f"litedram_gen {cfg.name}{' --sim' if sim else ''} failed (exit {r.returncode}): "
                                + " | ".join(tail))
            verilog.write_text(_bidir_ports(verilog.read_text()))
            stamp.write_text(key)
    text = verilog.read_text()
    ports = _ports(text)
    with open(out_dir / "csr.csv") as f:
        csrs = {row[1]: int(row[2], 16) for row in csv.reader(f) if row and row[0] == "csr_register"}
    missing = [p for p in ("user_port_native_0_cmd_addr", "user_port_native_0_wdata_data", "wb_ctrl_adr",
                           "init_done") if p not in ports] + [c for c in INIT_CSRS if c not in csrs]
    if missing:
        raise DramError(f"{verilog}: the generated core lacks {', '.join(missing)}")
    recipe = init_recipe((out_dir / "software" / "include" / "generated" / "sdram_phy.h").read_text(), csrs,
                         "litedram-sim" if sim else conf["sdram_phy"], int(float(conf["sys_clk_freq"])))
    return LiteDRAMCore(verilog=verilog, csr=csrs, data_width=ports["user_port_native_0_wdata_data"][1],
                        addr_width=ports["user_port_native_0_cmd_addr"][1], ports=ports, sim=sim, recipe=recipe)


def native_signature(data_width: int, addr_width: int) -> wiring.Signature:
    """LiteDRAM's native port, seen from its user: ``cmd`` (addr, we), ``wdata`` (data, byte
    enables ``we``) and ``rdata`` (data) streams."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(data.StructLayout({"addr": addr_width, "we": 1}))),
        "wdata": Out(stream.Signature(data.StructLayout({"data": data_width, "we": data_width // 8}))),
        "rdata": In(stream.Signature(data_width)),
    })


class LiteDRAM(wiring.Component):
    """A generated simulation core (:func:`generate` with ``sim=True``) as an Amaranth
    component in the ``sync`` domain: the native port (``port``, LiteDRAM's side), the CSR bus
    (``ctrl_*``: Wishbone, 30-bit word address, 32-bit data, one access per ``ctrl_stb`` until
    ``ctrl_ack``) and ``init_done``. The core's Verilog must be given to the simulator beside
    the design (``sim.runner.build_component``'s ``extra_sources``).

    (The board cores, with their own PLL and pins, are instantiated by the board top.)"""

    def __init__(self, core: LiteDRAMCore):
        if not core.sim:
            raise DramError("LiteDRAM wraps the simulation core (generate(..., sim=True)); a board core "
                            "runs from its own PLL")
        self.core = core
        super().__init__({
            "port": In(native_signature(core.data_width, core.addr_width)),
            "ctrl_adr": In(30), "ctrl_dat_w": In(32), "ctrl_dat_r": Out(32), "ctrl_we": In(1),
            "ctrl_stb": In(1), "ctrl_ack": Out(1), "init_done": Out(1), "init_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.port
        m.submodules.core = Instance(
            "litedram_core",
            i_clk=ClockSignal("sync"),
            i_sim_trace=0,
            o_init_done=self.init_done, o_init_error=self.init_error,
            **_user_ports(p, self.ctrl_adr, self.ctrl_dat_w, self.ctrl_dat_r, self.ctrl_we, self.ctrl_stb,
                          self.ctrl_ack),
        )
        return m


def _user_ports(port, adr, dat_w, dat_r, we, stb, ack) -> dict:
    """The ``litedram_core`` Instance's connections of the native user port (``port``, the
    user's side of :func:`native_signature`) and of the ``wb_ctrl`` CSR bus (one access per
    ``stb`` until ``ack``, all four bytes), the same in the simulation and the board cores."""
    n = "user_port_native_0_"
    return {f"i_{n}cmd_valid": port.cmd.valid, f"o_{n}cmd_ready": port.cmd.ready,
            f"i_{n}cmd_addr": port.cmd.payload.addr, f"i_{n}cmd_we": port.cmd.payload.we,
            f"i_{n}wdata_valid": port.wdata.valid, f"o_{n}wdata_ready": port.wdata.ready,
            f"i_{n}wdata_data": port.wdata.payload.data, f"i_{n}wdata_we": port.wdata.payload.we,
            f"o_{n}rdata_valid": port.rdata.valid, f"i_{n}rdata_ready": port.rdata.ready,
            f"o_{n}rdata_data": port.rdata.payload,
            "i_wb_ctrl_adr": adr, "i_wb_ctrl_dat_w": dat_w, "o_wb_ctrl_dat_r": dat_r, "i_wb_ctrl_we": we,
            "i_wb_ctrl_cyc": stb, "i_wb_ctrl_stb": stb, "i_wb_ctrl_sel": 0xF, "i_wb_ctrl_cti": 0,
            "i_wb_ctrl_bte": 0, "o_wb_ctrl_ack": ack}


# the Arty A7's DDR3 pins (amaranth-boards' "ddr3" resource) by the board core's port names;
# the core drives them through its own I/O primitives (OSERDESE2, ISERDESE2, IOBUF(DS)), so they
# are connected raw, and its active-low outputs go to the pins as they are (the resource's
# inversion does not apply)
A7_DDR3_PINS = {"ddram_a": "a", "ddram_ba": "ba", "ddram_ras_n": "ras", "ddram_cas_n": "cas", "ddram_we_n": "we",
                "ddram_cs_n": "cs", "ddram_dm": "dm", "ddram_odt": "odt", "ddram_reset_n": "rst",
                "ddram_cke": "clk_en", "ddram_dq": "dq"}
A7_DDR3_DIFF_PINS = {"ddram_clk": "clk", "ddram_dqs": "dqs"}


def board_constraints(core: LiteDRAMCore, crossing: bool = False) -> str:
    """XDC lines the board core needs beside the platform's pin constraints: bank 34's
    internal VREF for the DDR3L's SSTL135 inputs (half of 1.35 V), and LiteDRAM's own timing
    constraints (the false paths and maximum delays of its reset and clock-domain synchronizers,
    from the core's generated .xdc; its pin lines are left out, the platform places the pins).
    ``crossing``: the design runs on the MMCM (:func:`rtl_gen.clocking.xc7_clock`, cell
    ``mmcm``) from the controller's clock (the core's ``user_clk``, instance ``litedram``);
    Vivado derives both from the oscillator and would time the crossings between them as
    synchronous, so the two are declared asynchronous (the crossings synchronize every signal
    that changes while read)."""
    xdc = core.verilog.with_suffix(".xdc")
    lines = [ln for ln in xdc.read_text().splitlines()
             if ln.startswith(("set_false_path", "set_max_delay", "set_clock_groups"))] if xdc.exists() else []
    if crossing:
        lines += ["# the design's clock (MMCM) and the controller's: rtl_gen/extcdc.py crosses between them",
                  "set_clock_groups -asynchronous -group [get_clocks -of_objects [get_pins mmcm/CLKOUT0]] "
                  "-group [get_clocks -of_objects [get_pins litedram/user_clk]]"]
    return "\n".join(["# sephw: the Arty's DDR3L (LiteDRAM A7DDRPHY)",
                      "set_property INTERNAL_VREF 0.675 [get_iobanks 34]", *lines]) + "\n"


# the ULX3S's SDRAM pins (amaranth-boards' "sdram" resource) by the board core's port names:
# raw, as above (the core's IFS1P3BX/OFS1P3BX I/O flip-flops and TRELLIS_IO drive them)
SDR_PINS = {"sdram_a": "a", "sdram_ba": "ba", "sdram_ras_n": "ras", "sdram_cas_n": "cas", "sdram_we_n": "we",
            "sdram_cs_n": "cs", "sdram_dm": "dqm", "sdram_cke": "clk_en", "sdram_dq": "dq"}
#: the net of the Arty controller's clock behind the crossings (the ``dram`` domain's clock),
#: which the board build's timing estimate times against the controller's own period
CONTROLLER_CLOCK_NET = "dram_clk"
# the phase of the SDRAM's forwarded clock behind the controller's (LiteX's ULX3S target at 1:1)
SDR_CLOCK_PHASE_DEG = 180


def _raw_pins(res, core: LiteDRAMCore, names: dict) -> dict:
    """Instance connections of the core's DRAM ports to a resource's raw pins."""
    return {f"{'io' if core.ports[n][0] == 'inout' else 'o'}_{n}": getattr(res, r).io for n, r in names.items()}


def instantiate_board_core(m: Module, platform, board, core: LiteDRAMCore, port, ctrl) -> None:
    """The board's LiteDRAM core in ``m``, its DRAM on the board's pins, the ``sync`` domain at
    the board's clock. ``port``: the native port's user side (:func:`native_signature`, the
    design's ``ext``); ``ctrl``: the design's :func:`rtl_gen.control.dram_ctrl_signature` bus
    (the CSRs and ``init_done``). The core's Verilog (and on the Arty :func:`board_constraints`)
    is added to the platform's files.

    - Arty A7, A7DDRPHY: its PLL on the 100 MHz oscillator and the reset button makes its
      system clock (``user_clk``, ``user_rst``). A build at that clock runs ``sync`` on it; a
      build at another (``--clock-mhz``, below the controller's) runs ``sync`` on an MMCME2
      from ``user_clk`` (:func:`rtl_gen.clocking.xc7_clock`) and reaches the native port and
      the CSR bus through :class:`rtl_gen.extcdc.NativePortCDC` and
      :class:`~rtl_gen.extcdc.CsrCDC` (the controller's ``dram`` domain);
      :func:`board_constraints` declares the two clocks asynchronous.
    - ULX3S, GENSDRPHY: the core runs on ``sync`` (:func:`rtl_gen.clocking.board_clock`'s ECP5
      PLL at the board's clock, the core generated for it); the PLL's second output, 180°
      behind, is forwarded to the SDRAM's clock pin through an ODDRX1F (as LiteX's ULX3S
      target does: the SDRAM samples commands and write data mid-cycle)."""
    if core.sim:
        raise DramError("the board top instantiates a board core (generate(..., sim=False))")
    phy = core.recipe["phy"]
    need = {"A7DDRPHY": A7_DDR3_PINS, "GENSDRPHY": SDR_PINS}.get(phy, {})
    if not need or set(need) - set(core.ports):
        raise DramError(f"{core.verilog}: neither an A7DDRPHY nor a GENSDRPHY core (PHY {phy}; its DRAM pins are "
                        f"{sorted(p for p in core.ports if p.startswith(('ddram', 'sdram')))})")
    platform.add_file("litedram_core.v", core.verilog.read_text())
    (_sdr_board_core if phy == "GENSDRPHY" else _a7_board_core)(m, platform, board, core, port, ctrl)


def _sdr_board_core(m: Module, platform, board, core: LiteDRAMCore, port, ctrl) -> None:
    """The ULX3S's GENSDRPHY core on the design's clock (see :func:`instantiate_board_core`)."""
    from amaranth.hdl import ResetSignal
    from amaranth.lib import io

    from .clocking import board_clock
    board_clock(m, platform, board, shifted_deg=SDR_CLOCK_PHASE_DEG)
    sdram = platform.request("sdram", 0, dir="-")
    m.submodules.sdram_clk = clk = io.DDRBuffer("o", sdram.clk, o_domain="sync_ps")
    m.d.comb += [clk.o[0].eq(1), clk.o[1].eq(0)]      # a copy of the shifted clock
    m.submodules.litedram = Instance(
        "litedram_core", i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"), o_init_done=ctrl.init_done,
        **_raw_pins(sdram, core, SDR_PINS),
        **_user_ports(port, ctrl.adr, ctrl.dat_w, ctrl.dat_r, ctrl.we, ctrl.stb, ctrl.ack))


def _a7_board_core(m: Module, platform, board, core: LiteDRAMCore, port, ctrl) -> None:
    """The Arty's A7DDRPHY core, the design on its clock or behind crossings (see
    :func:`instantiate_board_core`)."""
    from amaranth.hdl import ClockDomain, ResetSignal
    from amaranth.lib import io
    ddr = platform.request("ddr3", 0, dir="-")
    pins = _raw_pins(ddr, core, A7_DDR3_PINS)
    for n, r in A7_DDR3_DIFF_PINS.items():
        d = "io" if core.ports[f"{n}_p"][0] == "inout" else "o"
        pins.update({f"{d}_{n}_p": getattr(ddr, r).p, f"{d}_{n}_n": getattr(ddr, r).n})
    m.submodules.clk100 = clk = io.Buffer("i", platform.request(platform.default_clk, 0, dir="-"))
    m.submodules.rst_btn = rst = io.Buffer("i", platform.request(platform.default_rst, 0, dir="-"))
    user_clk, user_rst = Signal(name="dram_user_clk"), Signal(name="dram_user_rst")
    crossing = board.clock_hz != core.recipe["clock_hz"]
    platform.add_file("litedram_core.xdc", board_constraints(core, crossing))
    if not crossing:        # the design on the controller's clock
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(user_clk), ResetSignal("sync").eq(user_rst)]
    else:                   # the design on an MMCM from it, both buses through crossings
        from .clocking import xc7_clock
        from .extcdc import CsrCDC, NativePortCDC
        m.domains.dram = ClockDomain("dram")
        m.d.comb += [ClockSignal("dram").eq(user_clk), ResetSignal("dram").eq(user_rst)]
        xc7_clock(m, user_clk, core.recipe["clock_hz"], board.clock_hz, user_rst)
        m.submodules.dram_port_cdc = pc = NativePortCDC(core.data_width, core.addr_width, user_domain="sync",
                                                        mem_domain="dram", depth=16)
        m.submodules.dram_csr_cdc = cc = CsrCDC(user_domain="sync", mem_domain="dram")
        wiring.connect(m, port, pc.user)
        wiring.connect(m, ctrl, cc.user)
        port, ctrl = pc.mem, cc.mem
    m.submodules.litedram = Instance(
        "litedram_core",
        i_clk=clk.i, i_rst=rst.i, o_user_clk=user_clk, o_user_rst=user_rst, o_init_done=ctrl.init_done,
        **pins, **_user_ports(port, ctrl.adr, ctrl.dat_w, ctrl.dat_r, ctrl.we, ctrl.stb, ctrl.ack))
