import json
import shutil

import pytest

import boards
from boards import BoardError
from sephw.cli import main


def test_shipped_profiles_load_and_resolve_aliases():
    bs = boards.all_boards()
    assert {"arty-a7-35", "arty-a7-100", "ulx3s-85f"} <= set(bs)
    assert boards.get("arty-a7").name == "arty-a7-35"
    a35 = bs["arty-a7-35"]
    assert a35.resources["dsp"] == 90 and a35.onchip_bytes == 1800 * 1024 // 8
    assert a35.platform_class().__name__ == "ArtyA7_35Platform"
    assert bs["ulx3s-85f"].platform_class().__name__ == "ULX3S_85F_Platform"
    assert a35.lut_fill is None and bs["ulx3s-85f"].lut_fill == 0.4
    assert not a35.landing_reg and bs["ulx3s-85f"].landing_reg
    assert not a35.mul18 and bs["ulx3s-85f"].mul18
    assert not a35.plane_reg and not bs["ulx3s-85f"].plane_reg


def test_lut_fill_bounds_the_overlay():
    """The sizer fills no more of the part than the profile's ``lut_fill``: the shipped
    model's overlay on the ULX3S within 40 % of its logic cells, and a larger one without."""
    from dataclasses import replace
    from pathlib import Path

    from sephw import quantize
    from sephw.compiler import ir as cir
    from sephw.compiler.ir import lut_limit
    from sephw.compiler.pipeline import compile_ir
    from sephw.compiler.size_engines import SizeEngines
    g = quantize.load_graph(Path(__file__).resolve().parents[1] / "models" / "sepnet_fmnist_q.pt")
    ulx = boards.get("ulx3s-85f")
    assert lut_limit(ulx, cir.LUT_HEADROOM) == int(83640 * 0.4)
    assert lut_limit(replace(ulx, lut_fill=None), cir.LUT_HEADROOM) == int(83640 * cir.LUT_HEADROOM)

    def sized(board):
        ir = compile_ir(g, board, until=SizeEngines, record=False)
        return ir.cfg, ir.resources.lut
    cfg, lut = sized(ulx)
    wide, wide_lut = sized(replace(ulx, lut_fill=None))
    assert lut <= lut_limit(ulx, cir.LUT_HEADROOM) < wide_lut
    assert cfg.lanes * cfg.pe_cin < wide.lanes * wide.pe_cin


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("clock_hz: 100000000", "clock_hz: fast"), "clock_hz' must be int"),
    (lambda t: t.replace("dsp: 90 ", "dsp: -1 "), "resources.dsp must be a positive integer"),
    (lambda t: t.replace("toolchain: vivado", "toolchain: quartus"), "does not fit vendor"),
    (lambda t: t.replace("vendor: xilinx", "vendor: altera"), "vendor 'altera' not supported"),
    (lambda t: t.replace("part: xc7a35ticsg324-1L\n", ""), "missing field 'part'"),
    (lambda t: t.replace("  uart:", "  pcie:"), "must include 'uart'"),
    (lambda t: t + "\n  - : [", "not valid YAML"),
    # a family whose board top has no clock generator: its clock is its oscillator's
    (lambda t: t.replace("family: xc7", "family: ice40").replace(
        "\nclock_hz: 100000000", "\nclock_hz: 100000000\noscillator_hz: 50000000", 1),
     "no clock generator for the ice40 family"),
    (lambda t: t.replace("\nclock_hz: 100000000", "\nclock_hz: 100000000\noscillator_hz: slow", 1),
     "oscillator_hz must be an integer"),
    (lambda t: t.replace("crossing: {lut: 114, ff: 208}", "crossing: {lut: -1, ff: 208}"),
     "external_memory.crossing must be a mapping of non-negative"),
    (lambda t: t + "\nlut_fill: 1.5\n", "lut_fill must be a fraction"),
    (lambda t: t + "\nlut_fill: half\n", "lut_fill must be a fraction"),
    (lambda t: t + "\nlanding_reg: 1\n", "landing_reg must be true or false"),
    (lambda t: t + "\nmul18: yes please\n", "mul18 must be true or false"),
    (lambda t: t + "\nplane_reg: 2\n", "plane_reg must be true or false"),
    (lambda t: t + "\nplacer: fast\n", "placer must be one of heap, sa, static"),
    (lambda t: t + "\nseed: 0\n", "seed must be a positive integer"),
    (lambda t: t + "\nseed: true\n", "seed must be a positive integer"),
])
def test_profile_validation_errors_name_file_and_field(tmp_path, edit, message):
    src = boards.HERE / "arty-a7-35.yaml"
    bad = tmp_path / "arty-a7-35.yaml"
    bad.write_text(edit(src.read_text()))
    with pytest.raises(BoardError, match=message) as e:
        boards.parse(bad)
    assert str(bad) in str(e.value)


def test_unknown_board_lists_known(tmp_path):
    with pytest.raises(BoardError, match="known boards: .*arty-a7"):
        boards.get("de10-nano")
    shutil.copy(boards.HERE / "arty-a7-35.yaml", tmp_path / "a.yaml")
    shutil.copy(boards.HERE / "arty-a7-35.yaml", tmp_path / "b.yaml")
    with pytest.raises(BoardError, match="already defined"):
        boards.all_boards(tmp_path)


def test_boards_command(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "arty-a7-35" in out and "ulx3s-85f" in out and "arty-a7" in out
    # the DRAM the compiler may keep weights in (MiB): the Arty's DDR3L, the ULX3S's SDRAM
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["arty-a7-35"][6] == "256" and rows["ulx3s-85f"][6] == "32"
    assert main(["boards", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["arty-a7-100"]["external_memory"]["data_bits"] == 128
    assert js["ulx3s-85f"]["external_memory"]["data_bits"] == 16
