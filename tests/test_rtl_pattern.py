# amaranth: UnusedElaboratable=no
"""PatternEngine in cocotb, bit-exact against sephw.intops.pattern_conv_acc."""
import json

import pytest

from rtl_gen.pattern import PatternEngine
from sim.pattern_harness import PatternLockstep
from sim.runner import run_testbench
from sim.tb import crossed_flows

# One simulator build per configuration; shapes, act_bits and chunking vary at run time.
CONFIGS = {
    "k3_groups2_chunked": dict(lanes=4, k=3, cin=2, groups=2, a_bits=8, max_cin=4, pattern_depth=4),
    "k5_depthwise": dict(lanes=4, k=5, cin=1, groups=4, a_bits=8, pattern_depth=2),
    "k7_dense_4bit": dict(lanes=2, k=7, cin=2, groups=1, a_bits=4, pattern_depth=2),
    # the depthwise mode (3x3, 5x5 and 7x7 filters on the 7x7 engine) between normal beats
    # (2 lanes x 2 channels: at 4 x 4 its three-netlist build took 85 s of a fresh clone's suite)
    "k7_depthwise_mode": dict(lanes=2, k=7, cin=2, groups=1, a_bits=4, pattern_depth=2, dw_depth=8),
    # the registered bit-plane (EngineConfig.plane_reg, the ULX3S's): the harness's "word"
    # engine keeps the indexed select, so the run proves the two cycle-equal; dense 3x3 and
    # 5x5 kernels on the 7x7 grid go through the plane remap after the register
    "k7_plane_reg": dict(lanes=2, k=7, cin=2, groups=1, a_bits=8, max_cin=4, pattern_depth=4,
                         plane_reg=True),
    # lane pairs (EngineConfig.lane_pairs): every other sub-case's beats leave with their
    # lanes turned by lanes / 2 (the lane_rot port), chunked and not
    "k5_lane_pairs": dict(lanes=4, k=5, cin=2, groups=1, a_bits=8, max_cin=4, pattern_depth=4,
                          lane_pairs=True),
}


# depthwise mode with fewer lanes than beat channels (the other channels must be ignored) and
# a sliced main memory (its fetch must not run for depthwise windows)
SLICED_ONLY = {"k5_depthwise_mode_narrow": dict(lanes=2, k=5, cin=4, groups=1, a_bits=8, pattern_depth=2,
                                                dw_depth=6)}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_pattern_engine(config):
    """The engine's three netlists in lockstep in one build (sim/pattern_harness.py): the
    synthesis form ``"lut"``, whose outputs are compared with sephw.intops; the word-level form
    whole-network simulations use; the Xilinx form (LUT6_2/CARRY4 counters, simulated with the
    cells' behavioural models from rtl_gen/xc7_cells_sim.v). The harness flags any cycle in
    which the other two differ from the first (the testbench asserts it never did). Two runs
    on the one build, one after the other: at full rate, then with idle insertion and
    back-pressure (in one test, so that no second pytest worker waits for the build: the
    k7 depthwise-mode pair took 85 s each on a fresh clone, one of them waiting)."""
    params = CONFIGS[config]
    for idle, stall in ((0.0, 0.0), (0.3, 0.4)):
        case = {"params": params, "seed": 1000 + list(CONFIGS).index(config) * 10 + int(idle > 0),
                "idle": idle, "stall": stall, "random_cases": 3, "lockstep": True}
        d = run_testbench(PatternLockstep(**params), f"pattern_{config}_lockstep", "sim.tb_pattern", case)
        # with back-pressure the sub-cases cross it with idle insertion (sim.tb.crossed_flows)
        flows = {tuple(st["flow"]) for st in json.loads((d / "result.json").read_text())}
        assert flows == set(crossed_flows(idle, stall))


@pytest.mark.parametrize("config,slices,netlist,dense", [("k3_groups2_chunked", 4, "lut", True),
                                                          ("k7_dense_4bit", 4, "word", True),
                                                          ("k7_dense_4bit", 4, "lut", False),
                                                          ("k5_depthwise_mode_narrow", 4, "word", True)])
def test_pattern_engine_sliced_pattern_memory(config, slices, netlist, dense):
    """A pattern memory ``slices`` times narrower and deeper (the accelerator top's): each beat's
    word is fetched one slice per cycle. Bit-exact with idle and back-pressure insertion, also at
    ``act_bits`` below ``slices`` (the 4-bit engine's random cases go down to 1 bit, where the
    fetch, not the planes, sets the pace). ``dense = False``: the words of 3x3 and 5x5 kernels
    on the 7x7 grid (``dense_kernels``), no bit-plane remap."""
    params = dict(CONFIGS.get(config) or SLICED_ONLY[config], netlist=netlist, pattern_slices=slices,
                  dense_kernels=dense)
    eng = PatternEngine(**params)
    assert eng.pattern_memory_bits == -(-eng.pattern_layout.size // slices)
    case = {"params": params, "seed": 4000 + len(config), "idle": 0.3,
            "stall": 0.4, "random_cases": 4}
    d = run_testbench(eng, f"pattern_{config}_s{slices}_{netlist}" + ("" if dense else "_grid"),
                      "sim.tb_pattern", case)
    kernels = {st.get("kernel") for st in json.loads((d / "result.json").read_text()) if not st.get("dw")}
    assert eng.k == 3 or kernels - {eng.k}, "no smaller kernel ran"


def test_pattern_engine_sliced_memory_keeps_the_beat_rate():
    """With ``pattern_slices <= act_bits`` the slice fetch overlaps the previous beat: a stream
    of single-chunk beats still takes ``act_bits`` cycles per beat (4 x 8 outputs at 8 bits)."""
    params = dict(lanes=4, k=3, cin=2, a_bits=8, pattern_depth=4, pattern_slices=4, netlist="word")
    case = {"params": params, "seed": 4100, "idle": 0.0, "stall": 0.0, "random_cases": 0,
            "throughput": True}
    d = run_testbench(PatternEngine(**params), "pattern_s4_rate", "sim.tb_pattern", case)
    (st,) = json.loads((d / "result.json").read_text())
    assert st["beats"] == 32
    # first beat: accept, 4 slice cycles, 8 planes, counter trees (M, Q), Horner, beat total
    # to the output; then one beat per 8 cycles
    assert st["cycles"] <= st["beats"] * 8 + 11, st


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(lanes=4, k=4, cin=1), ValueError, "k must be one of 3, 5, 7, not 4"),
    (dict(lanes=4, k=3, cin=1, groups=3), ValueError, "groups (3) must divide lanes (4)"),
    (dict(lanes=4, k=3, cin=1, a_bits=9), ValueError, "a_bits must be in 1..8, not 9"),
    (dict(lanes=4, k=3, cin=2, max_cin=3), ValueError, "max_cin (3) must be a multiple of cin (2)"),
    (dict(lanes=2.0, k=3, cin=1), TypeError, "lanes must be an integer, not 2.0"),
    (dict(lanes=4, k=3, cin=1, netlist="fast"), ValueError, "netlist must be 'lut', 'word' or 'xc7', not 'fast'"),
    (dict(lanes=4, k=3, cin=1, pattern_slices=3), ValueError, "pattern_slices must be a power of two, not 3"),
    (dict(lanes=4, k=3, cin=1, a_bits=4, pattern_slices=8), ValueError, "pattern_slices must be in 1..4, not 8"),
    (dict(lanes=4, k=3, cin=1, groups=4, dw_depth=4), ValueError, "the depthwise mode needs groups == 1, not 4"),
    (dict(lanes=1, k=3, cin=1, a_bits=8, pattern_slices=4, dw_depth=4), ValueError,
     "a depthwise pattern word (1 lanes x 9 bits) is wider than the pattern memory's write port"),
])
def test_pattern_engine_checks_arguments(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        PatternEngine(**kwargs)
    assert str(info.value) == msg


def test_pattern_engine_accumulator_width_from_bound():
    eng = PatternEngine(lanes=2, k=3, cin=8, a_bits=8, max_cin=16)
    bound = 16 * 9 * 255
    assert -(2 ** (eng.acc_width - 1)) <= -bound and bound <= 2 ** (eng.acc_width - 1) - 1
    assert bound > 2 ** (eng.acc_width - 2) - 1  # and not one bit wider than needed


@pytest.mark.parametrize("other", [None, dict(pattern_slices=2)], ids=["same", "different"])
def test_lockstep_harness_flags_any_difference(other):
    """The harness's ``mismatch`` (Amaranth simulator): low while the three netlists run the
    same beats, high once one engine behaves differently (here the word form with its pattern
    word fetched in two slices: its first result comes later)."""
    from amaranth.sim import Simulator
    params = CONFIGS["k3_groups2_chunked"]
    h = PatternLockstep(**params)
    if other is not None:
        h.engines[1] = PatternEngine(**params, netlist="word", **other)
    seen = []

    async def bench(ctx):
        ctx.set(h.acc.ready, 1)
        ctx.set(h.window.payload.first, 1)       # one-chunk beats: each gives a result
        ctx.set(h.window.payload.last, 1)
        ctx.set(h.window.valid, 1)
        for _ in range(60):
            await ctx.tick()
            seen.append((ctx.get(h.acc.valid), ctx.get(h.mismatch)))

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert any(v for v, _ in seen), "no result came out"
    assert seen[-1][1] == (other is not None)


@pytest.mark.parametrize("params", [
    dict(lanes=4, k=3, cin=2, groups=2, a_bits=8, max_cin=4, pattern_depth=4, netlist="word"),
    dict(lanes=2, k=3, cin=2, a_bits=4, max_cin=4, pattern_depth=4, pattern_slices=4, netlist="word"),
    dict(lanes=2, k=5, cin=4, a_bits=8, pattern_depth=2, dw_depth=6, pattern_slices=4, netlist="word"),
], ids=["one_slice", "four_slices", "depthwise_mode"])
def test_pattern_engine_registered_ready_equals_stage_a_free(params):
    """The engine's ready is a flip-flop registered from next values (rtl_gen/pattern.py): in
    every cycle of a random run (windows offered or not, word addresses repeated or not, 1 to
    a_bits planes, the depthwise mode, flushes and pattern writes, the consumer's ready) it
    equals stage A's free condition ``~a_valid | b_load`` computed from the registers, and the
    run covers both values of it with windows offered, beats loading and results stalled.
    Once high it stays high until a window is taken (a gatherer with the landing register
    issues a pass's first read on that: rtl_gen/gather.py, LAND_A)."""
    import random

    from amaranth.sim import Simulator
    eng = PatternEngine(**params)
    rng = random.Random(7)
    S, DW = eng.pattern_slices, params.get("dw_depth", 0) > 0
    seen = {"mismatch": 0, "offered_free": 0, "offered_busy": 0, "acc_held": 0, "dropped": 0, "kept": 0}

    async def bench(ctx):
        act = eng.a_bits
        was_free = False              # ready high last cycle and no window taken
        for cycle in range(3000):
            if rng.random() < 0.02:
                act = rng.randint(1, eng.a_bits)
            ctx.set(eng.act_bits, act)
            ctx.set(eng.window.valid, rng.random() < 0.6)
            ctx.set(eng.window.payload.pat_addr, rng.choice([0, S, 2 * S] if not DW else [0, S, 8, 9]))
            ctx.set(eng.window.payload.first, rng.random() < 0.5)
            ctx.set(eng.window.payload.last, rng.random() < 0.5)
            ctx.set(eng.acc.ready, rng.random() < 0.5)
            ctx.set(eng.pattern_flush, rng.random() < 0.02)
            ctx.set(eng.pattern_w.en, rng.random() < 0.02)
            if DW:
                ctx.set(eng.dw, rng.random() < 0.4)
                ctx.set(eng.dw_slices, rng.randint(1, eng.dw_max_slices))
            ready, free = ctx.get(eng.window.ready), ctx.get(eng._a_free_check)
            seen["mismatch"] += ready != free
            if was_free:
                seen["kept" if ready else "dropped"] += 1
            was_free = bool(ready) and not ctx.get(eng.window.valid)
            if ctx.get(eng.window.valid):
                seen["offered_free" if ready else "offered_busy"] += 1
            seen["acc_held"] += ctx.get(eng.acc.valid) and not ctx.get(eng.acc.ready)
            await ctx.tick()

    sim = Simulator(eng)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["mismatch"] == 0 and seen["dropped"] == 0, seen
    assert min(seen["offered_free"], seen["offered_busy"], seen["acc_held"], seen["kept"]) > 100, seen
