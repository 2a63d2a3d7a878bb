# amaranth: UnusedElaboratable=no
"""Load and Store in cocotb (sim/tb_hostio.py): host bytes into the activation memory's ring and
logits out on ``tx``, byte-exact with idle cycles on ``rx`` and back-pressure on ``tx`` crossed;
their stall-free cycles against the compiler's model of the top."""
import json

from sim.runner import run_testbench
from sim.tb_hostio import HostIO

DEPTH = 10                  # a 10-class network's logit memory


def test_load_store():
    d = run_testbench(HostIO(DEPTH), "hostio", "sim.tb_hostio", {"depth": DEPTH, "seed": 5000, "ops": 8})
    from sephw.arch.isa import Instruction, Op
    from sephw.compiler.hw import EngineConfig, TensorDesc, unit_cycles
    # LOAD and STORE do not depend on the engine's configuration
    cfg = EngineConfig(lanes=4, pe_cin=4, mac_cols=4, k_max=3, a_bits=4, packed=False, pp_units=1, max_width=8)
    runs = sorted(d.glob("cycles_*.json"))
    assert len(runs) == 4, runs
    checked = 0
    for run in runs:
        for op in json.loads(run.read_text()):
            if op["stalled"]:
                continue
            if op["op"] == "LOAD":
                ins = Instruction(Op.LOAD, dst=0, rows=op["rows"])
                tensors = {0: TensorDesc(height=op["rows"], width=op["width"], channels=op["channels"], bits=8)}
            else:
                ins, tensors = Instruction(Op.STORE, length=op["length"]), {}
            # the unit's cycles in the model: from its start (the top's DISPATCH) to its done
            model = unit_cycles(cfg, ins, tensors)
            assert op["cycles"] == model, (op, model)
            checked += 1
    assert checked >= 16
