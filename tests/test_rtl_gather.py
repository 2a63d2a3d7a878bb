# amaranth: UnusedElaboratable=no
"""Gather (rtl_gen/gather.py) in cocotb with the activation memory and RowAddress
(sim/gather_harness.py), every beat against the golden model of sim/tb_gather.py.

Two simulator builds, each with two gatherers (column store on and off):

- ``banks4``: lanes 4, pe_cin 4, mac_cols 4, k_max 5, a_bits 8 (a sephw-like overlay): one
  chunk per tap read; multi-chunk operands slide with the column store, not without it.
- ``banks8``: lanes 8 (eight banks, two chunks per tap read: the second window and the hold
  register), a_bits 4 (codes truncated to their low bits).

``flow``: free-running sinks, and the window beats' cycles against the compiler's cycle
model (sephw.compiler.hw._pattern_beats; MAC beats: unit_cycles's per-position cycles); ``crossed``: idle gaps (start and release) x back-pressure on all three streams.
"""
import json
from types import SimpleNamespace

import pytest

from sephw.compiler import hw
from sim.gather_harness import GatherHarness
from sim.runner import run_testbench
from sim.tb_gather import chunks, out_size, tile_rows

CONFIGS = {
    "banks4": dict(lanes=4, pe_cin=4, mac_cols=4, k_max=5, a_bits=8, max_cin=16, act_bytes=4096),
    "banks8": dict(lanes=8, pe_cin=4, mac_cols=4, k_max=5, a_bits=4, max_cin=16, act_bytes=4096),
}
# the same with the landing register (EngineConfig.landing_reg: the ULX3S's), on the same tiles
for _n in list(CONFIGS):
    CONFIGS[_n + "_land"] = dict(CONFIGS[_n], landing_reg=True)


def _t(name, *, k, stride, pad, a, na, use_pe=1, wa=3, cin0=0, **kw):
    return dict(name=name, k=k, stride=stride, pad=pad, a=a, na=na, use_pe=use_pe, wa=wa, cin0=cin0, **kw)


def _img(h, w, c, **kw):
    return dict(h=h, w=w, c=c, **kw)


TILES = {
    "banks4": [
        # pattern operand: single chunk slides (column store or the in-place shift)
        _t("k3_s1_p1_1chunk", k=3, stride=1, pad=1, a=_img(5, 7, 6), cin0=1, na=4, wa=5),
        # three chunks (the last partial): slides only with the column store
        # (pshift: a chunk's pattern word takes 2^pshift memory words, wa + (ch << pshift))
        _t("k5_s1_p2_3chunks", k=5, stride=1, pad=2, a=_img(4, 6, 12, base=1), cin0=1, na=10, wa=62, pshift=2),
        _t("k3_s2_p1_2chunks", k=3, stride=2, pad=1, a=_img(7, 7, 8), na=8, wa=9, pshift=1),
        _t("k5_s2_p2_partial", k=5, stride=2, pad=2, a=_img(6, 9, 3, base=0), na=3, wa=0),
        _t("k3_s1_p0_band", k=3, stride=1, pad=0, a=_img(7, 6, 5), na=5, row0=2, rows=3),
        # ring wrap: input rows 4..9 in a 7-row ring (slots 4, 5, 6, 0, 1, 2)
        _t("k5_ring_wrap", k=5, stride=1, pad=2, a=_img(12, 5, 4, ring=7), na=4, row0=6, rows=2),
        _t("k3_ring_top", k=3, stride=1, pad=1, a=_img(9, 5, 6, ring=4), na=6, row0=0, rows=2),
        _t("k3_s2_ring_bottom", k=3, stride=2, pad=1, a=_img(9, 6, 6, ring=4), na=6, row0=3, rows=2),
        # PRB: pattern a || 1x1 b on the MAC array (stride-2 projection and stride 1)
        _t("prb_s2_projection", k=3, stride=2, pad=1, a=_img(6, 6, 4), na=4, b_mac=1,
           b=_img(6, 6, 7), cin0_b=1, nb=6, wb=9),
        _t("prb_s1_2chunks", k=3, stride=1, pad=1, a=_img(4, 5, 5), na=5, b_mac=1, b=_img(4, 5, 4), nb=4, wb=2),
        # RESADD: pattern a + identity skip codes (partial nb)
        _t("resadd_k5_identity", k=5, stride=1, pad=2, a=_img(4, 5, 4), na=4, b_id=1,
           b=_img(4, 5, 6), cin0_b=2, nb=3),
        # 1x1 on the MAC array
        _t("int1x1_3beats", k=1, stride=1, pad=0, use_pe=0, a=_img(3, 5, 11), cin0=1, na=10, wa=7),
        _t("int1x1_s2_identity", k=1, stride=2, pad=0, use_pe=0, a=_img(6, 8, 4), na=4, b_id=1,
           b=_img(3, 4, 4), nb=4),
        _t("int1x1_bmac", k=1, stride=1, pad=0, use_pe=0, a=_img(3, 4, 4), na=4, b_mac=1, b=_img(3, 4, 8),
           nb=8, wb=60),
    ],
    "banks8": [
        _t("k3_s1_p1_1chunk", k=3, stride=1, pad=1, a=_img(5, 6, 5), cin0=1, na=4),
        # two chunks per read: 2 (the last beat in the hold register), 3 (dual + single), 4
        _t("k5_s1_p2_2chunks", k=5, stride=1, pad=2, a=_img(4, 5, 9, base=6), cin0=1, na=8, wa=20, pshift=1),
        _t("k3_s2_p1_3chunks", k=3, stride=2, pad=1, a=_img(7, 7, 12), na=12, pshift=2),
        _t("k3_s1_p1_4chunks", k=3, stride=1, pad=1, a=_img(3, 4, 16), na=16, wa=61, pshift=1),
        _t("k5_ring_2chunks_partial", k=5, stride=1, pad=2, a=_img(10, 5, 7, ring=6), na=6, row0=3, rows=2),
        _t("prb_s2_projection_dual", k=3, stride=2, pad=1, a=_img(6, 6, 8), na=8, b_mac=1,
           b=_img(6, 6, 8), nb=8, wb=1),
        _t("resadd_dual_identity", k=3, stride=1, pad=1, a=_img(4, 5, 8), na=8, b_id=1, b=_img(4, 5, 8), nb=8),
        _t("resadd_k5_identity_partial", k=5, stride=1, pad=2, a=_img(4, 5, 3), na=3, b_id=1,
           b=_img(4, 5, 9), cin0_b=3, nb=5),
        _t("int1x1_identity", k=1, stride=1, pad=0, use_pe=0, a=_img(3, 4, 12), cin0=2, na=10, b_id=1,
           b=_img(3, 4, 8), nb=8),
        _t("int1x1_s2", k=1, stride=2, pad=0, use_pe=0, a=_img(6, 6, 8), na=8),
    ],
}
TILES.update({n + "_land": TILES[n] for n in list(TILES)})

# (idle, stall[, skip stall]): idle gaps before start and release, back-pressure on the
# streams; the third mode starves ``skip`` so that its two-entry queue fills, the last holds
# every stream back most of the time, so that beats still wait as the gatherer is done (with
# two chunks per read, the hold register's)
MODES = {
    "flow": [(0.0, 0.0)],
    "crossed": [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4, 0.95), (0.0, 0.8)],
}


def model_window_cycles(t: dict, p: dict, column_store: bool) -> tuple[list[int], int] | None:
    """The compiler's cycle model of the window beats (sephw/compiler/hw.py ``_pattern_beats``,
    engine never blocking): cycle of each beat from the tile's first row setup, and the value
    ``_pattern_beats`` itself returns for the tile (last beat + 1 with a one-slice fetch and
    0 bits per beat). None where the model is the closed form (two-chunk reads)."""
    ca, cb = chunks(t, p)
    banks = max(p["pe_cin"], p["mac_cols"], p["lanes"])
    dual = banks >= 2 * p["pe_cin"] and ca >= 2
    if dual:
        return None
    slide = t["stride"] == 1 and (ca == 1 or (column_store and not dual))   # top_instruction_cycles
    b_pos = 1 + cb if t.get("b_mac") else (hw.skip_cycles(p.get("landing_reg", False), True) if t.get("b_id") else 0)
    k, kk = t["k"], t["k"] ** 2
    _, w = out_size(t)
    _, rows = tile_rows(t)
    # the beat-by-beat recurrence of _pattern_beats with a = g (no engine in the loop: with
    # the landing register every later pass's first read goes out early)
    land = int(p.get("landing_reg", False))
    out = []
    a = g = k + 1 + kk + 1 + land
    for y in range(rows):
        if y:
            g = a + b_pos + 2 + hw.TOP_ROW_ADV + k + 1 + kk + land
        for x in range(w):
            n = k if slide and x else kk
            if x:
                g = a + b_pos + 2 + n + land
            for c in range(ca):
                if c:
                    g = a + n
                a = g
                out.append(a)
    ret = hw._pattern_beats(SimpleNamespace(pattern_slices=1, landing_reg=bool(land)),
                            SimpleNamespace(k=k, rows=rows, flags=0), 0, w, ca, b_pos, slide)
    return out, ret


def mac_first_cycles(t: dict, p: dict) -> list[int]:
    """The compiler's cycle of every position's first MAC beat of operand a, from the tile's
    first row setup: ``1 + chunks_a + b_pos + 1`` cycles per position, ``TOP_ROW_ADV + k + 1``
    more at a new row (hw.unit_cycles); ``b_pos`` later when operand b is a 1x1 on the MAC
    array too (its beats go first)."""
    ca, cb = chunks(t, p)
    b_pos = 1 + cb if t.get("b_mac") else (hw.skip_cycles(p.get("landing_reg", False), False) if t.get("b_id") else 0)
    per_pos = 1 + ca + b_pos + 1
    _, w = out_size(t)
    _, rows = tile_rows(t)
    want = [t["k"] + 1 + 1 + (b_pos if t.get("b_mac") else 0)]
    for i in range(1, rows * w):
        want.append(want[-1] + per_pos + (0 if i % w else hw.TOP_ROW_ADV + t["k"] + 1))
    return want


def check_timing(stats: list, tiles: list, p: dict) -> None:
    """Every window beat where _pattern_beats applies (one chunk per read) sits at the same
    offset from the model (the RTL hands a beat over one cycle before the model's a_b, which
    counts the cycle after the handshake from the first row setup); every MAC position's first
    beat exactly where the model puts it."""
    by_name = {t["name"]: t for t in tiles}
    offsets, macs = [], 0
    for st in stats:
        t = by_name[st["tile"]]
        if "window_rtl" in st:
            m = model_window_cycles(t, p, st["column_store"])
            if m is None:
                continue
            model, ret = m
            rtl = st["window_rtl"]
            assert len(rtl) == len(model), (st["tile"], len(rtl), len(model))
            offs = {r - mo for r, mo in zip(rtl, model)}
            assert len(offs) == 1, (st["tile"], st["column_store"], rtl[:8], model[:8])
            offsets += list(offs)
            assert ret == model[-1] + 1, (st["tile"], ret, model[-1])
        elif "pixel_firsts_rtl" in st:
            assert st["pixel_firsts_rtl"] == mac_first_cycles(t, p), st["tile"]
            macs += 1
    assert offsets and set(offsets) == {-1}, offsets
    assert macs


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_gather(config, mode):
    harness = CONFIGS[config]
    flow = mode == "flow"
    # flow: every tile on both gatherers; crossed: each mode's tiles alternate between them
    seed = 4000 + 10 * list(CONFIGS).index(config) + list(MODES).index(mode)
    case = {"harness": harness, "seed": seed,
            "modes": MODES[mode], "tiles": TILES[config], "timing": flow, "rotate": not flow}
    d = run_testbench(GatherHarness(**harness), f"gather_{config}", "sim.tb_gather", case)
    res = json.loads((d / "result.json").read_text())
    assert not res["failures"]
    stats = res["stats"]
    assert len(stats) == len(TILES[config]) * (2 if flow else 1) * len(MODES[mode])
    if flow:
        check_timing(stats, TILES[config], harness)
    else:
        # done before the last beats were taken: the identity skip's queue full (two beats
        # waiting), and with two chunks per read the hold register's beat
        assert max(s["pending_at_done"]["skip"] for s in stats) == 2
        if harness["lanes"] >= 2 * harness["pe_cin"]:
            assert max(s["pending_at_done"]["window"] for s in stats) == 1
