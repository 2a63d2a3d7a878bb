# amaranth: UnusedElaboratable=no
"""PoolFC in cocotb (pool sums over bands, FC on a real MacArray), bit-exact against
sephw.intops.pool_fc_logits, and its cycles against the compiler's POOL_FC model."""
import json

import pytest
import torch

from sephw.arch.config import EngineConfig
from sephw.arch.isa import FLAG_FINAL, Instruction, Op
from sephw.compiler import hw
from sephw.intops import pool_fc_logits
from sim.runner import run_testbench
from sim.tb_poolfc import PoolFCHarness

CONFIGS = {
    "l4_q4": dict(lanes=4, mac_cols=4, channels=12, classes=12, weight_depth=32, param_depth=32,
                  act_bytes=1024),
    "l4_q2": dict(lanes=4, mac_cols=2, channels=12, classes=12, weight_depth=32, param_depth=32,
                  act_bytes=1024),
    # the landing register on the banks' raw bytes (landing_reg, the ULX3S's): same cycles
    "l4_q2_land": dict(lanes=4, mac_cols=2, channels=12, classes=12, weight_depth=32, param_depth=32,
                       act_bytes=1024, landing_reg=True),
}
# (acc_stall, pix_stall) per inference, in turn: idle cycles on PoolFC's acc input (the
# MacArray's output back-pressured) x back-pressure on PoolFC's pixel output
FLOWS = [(0.0, 0.0), (0.4, 0.0), (0.0, 0.4), (0.3, 0.4)]


def model_cycles(params: dict, rec: dict) -> int:
    """The compiler's POOL_FC unit cycles (start to done)."""
    cfg = EngineConfig(lanes=params["lanes"], pe_cin=4, mac_cols=params["mac_cols"], k_max=3, a_bits=8,
                       packed=False, pp_units=1, max_width=16)
    ins = Instruction(op=Op.POOL_FC, tc=rec["tc"], row0=rec["row0"], rows=rec["rows"], flags=rec["flags"],
                      fc_planes=rec["fc_planes"])
    tens = {0: hw.TensorDesc(height=1, width=rec["W"], channels=rec["C"], bits=8)}
    return hw.unit_cycles(cfg, ins, tens, clear_pool_sums=rec["clear"])


@pytest.mark.parametrize("config", list(CONFIGS))
def test_pool_fc(config):
    """Random inferences (1-3 bands each) in every stream-flow combination, unsigned and signed
    codes (two's complement sums, the top byte plane int8 into the MAC array); lanes=4 with
    mac_cols=4 adds two band sets whose sums pass 2^24 and -2^23 (all four byte planes)."""
    params = CONFIGS[config]
    case = {"params": params, "seed": 4000 + list(CONFIGS).index(config), "flows": FLOWS,
            "inferences": 12 if config == "l4_q4" else 8, "big": config == "l4_q4"}
    d = run_testbench(PoolFCHarness(**params), f"poolfc_{config}", "sim.tb_poolfc", case)
    res = json.loads((d / "result.json").read_text())
    recs = res["instructions"]
    # the logits the RTL wrote against the reference executor's pool + FC on the same operands
    assert len(res["fc"]) == sum(1 for r in recs if r["flags"] & FLAG_FINAL)
    for fc in res["fc"]:
        x = torch.tensor(fc["rows"], dtype=torch.int64).view(1, len(fc["rows"]), fc["W"], fc["C"]).permute(0, 3, 1, 2)
        t = lambda v: torch.tensor(v, dtype=torch.int64)
        assert pool_fc_logits(x, t(fc["w"]), t(fc["m"]), t(fc["b"]))[0].tolist() == fc["logits"]
    assert any(r["flags"] & FLAG_FINAL for r in recs) and any(not r["flags"] & FLAG_FINAL for r in recs)
    assert {(r["acc_stall"], r["pix_stall"], r["signed"]) for r in recs} == {(*f, s) for f in FLOWS for s in (0, 1)}
    if config == "l4_q4":
        # the FC over 1, 2, 3 and all 4 byte planes (fc_planes 0)
        assert {r["fc_planes"] for r in recs if r["flags"] & FLAG_FINAL} == {0, 1, 2, 3}
    bad = []
    for r in recs:
        model = model_cycles(params, r)
        if (r["acc_stall"], r["pix_stall"]) == (0.0, 0.0):
            if r["cycles"] != model:
                bad.append(f"{r}: {r['cycles']} cycles, the compiler's model {model}")
        elif r["cycles"] < model:
            bad.append(f"{r}: {r['cycles']} cycles, fewer than the model's {model}")
    assert not bad, "\n".join(bad)
