"""``compile_graph(..., engine=...)``: fixed overlay sizes, a FixedEngine or a dict of its
fields, checked where they enter the compiler (a CompileError, never a TypeError)."""
from __future__ import annotations

import pytest
from conftest import SMALL_ENGINE

from sephw.compiler import CompileError, FixedEngine, compile_graph


def test_dict_and_fixed_engine_give_the_same_overlay(sepnet_build):
    g, _, _ = sepnet_build
    from_dict, _ = compile_graph(g, "arty-a7-35", engine=dict(SMALL_ENGINE, column_store=False))
    typed, _ = compile_graph(g, "arty-a7-35", engine=FixedEngine(4, 4, 4, column_store=False))
    assert from_dict.engine == typed.engine == FixedEngine(4, 4, 4, False, 1, False, True)
    assert (from_dict.cfg.lanes, from_dict.cfg.pe_cin, from_dict.cfg.mac_cols) == (4, 4, 4)
    assert not from_dict.cfg.column_store and from_dict.cfg == typed.cfg
    assert from_dict.cycles == typed.cycles


@pytest.mark.parametrize("engine, message", [
    (dict(SMALL_ENGINE, lane=4), r"engine: unknown key 'lane'; the keys are lanes, pe_cin, mac_cols, packed, "
                                 r"pp_units, column_store, depthwise, dense_kernels, weights_bram, lane_pairs"),
    (dict(lanes=4, pe_cin=4), r"engine: missing mac_cols \(lanes, pe_cin and mac_cols are required\)"),
    (dict(SMALL_ENGINE, pp_units=0), r"engine pp_units=0: expected a positive integer"),
    (dict(SMALL_ENGINE, packed="no"), r"engine packed='no': expected True or False"),
])
def test_bad_engine_is_a_compile_error(sepnet_build, engine, message):
    g, _, _ = sepnet_build
    with pytest.raises(CompileError, match=f"^{message}$"):
        compile_graph(g, "arty-a7-35", engine=engine)


@pytest.mark.parametrize("flag", ["weights_bram", "landing_reg", "mul18", "plane_reg", "lane_pairs"])
def test_later_flags_are_hashed_only_where_set(flag):
    """An overlay without ``weights_bram``, ``landing_reg``, ``mul18``, ``plane_reg`` or
    ``lane_pairs`` keeps the hash it had before the
    flag existed (its dict has no such key, so builds and bitstreams made before still load);
    with it the hash differs, and both round-trip through their dicts."""
    from dataclasses import asdict, replace

    from sephw.arch.config import EngineConfig, _hash
    plain = EngineConfig(16, 16, 4, 3, 8, False, 2, 32, True, False, False)
    flagged = replace(plain, **{flag: True})
    before = {k: v for k, v in asdict(plain).items()
              if k not in ("weights_bram", "landing_reg", "mul18", "plane_reg", "lane_pairs")}
    assert plain.to_dict() == before and plain.hash() == _hash(before)
    assert flagged.to_dict()[flag] is True and flagged.hash() != plain.hash()
    assert EngineConfig.from_dict(plain.to_dict()) == plain and EngineConfig.from_dict(flagged.to_dict()) == flagged
