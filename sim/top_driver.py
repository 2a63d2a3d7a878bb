"""Host side of the whole-network simulation: memory images of a build directory -> writes
into the accelerator top (:class:`rtl_gen.top.Accelerator`), images in, logits and cycles out.

:func:`run_top` builds the top for the build directory's engine configuration (one Verilator
build per configuration, cached under build/sim), runs ``sim/tb_top.py`` on the images and
returns the logits and measured cycles; the testbench compares every logit with the
expected values handed to it (from :mod:`sephw.reference`, never from the RTL).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sephw.arch.manifest import Manifest
from sephw.arch.memmap import MemoryMap

__all__ = ["memory_writes", "run_top"]

def memory_writes(build_dir) -> list[tuple[int, int, int]]:
    """``(memory select, word address, word)`` for every word of the build directory's
    program and memory images (:meth:`sephw.arch.Manifest.writes`)."""
    return Manifest.read(build_dir).writes()


def run_top(build_dir, images: np.ndarray, expected: np.ndarray | None = None,
            timeout_cycles: int | None = None, netlist: str = "word", speed: bool = True,
            host_stall: float = 0.0, verilog=None, ext_stall_permille: int = 0) -> dict:
    """Run ``images`` (N, C, H, W uint8) through the RTL top in Verilator (or ``SIM``).

    ``netlist`` is the pattern engine's form (:class:`rtl_gen.pattern.PatternEngine`):
    ``"word"`` (default) simulates ~100x faster than the synthesis form ``"lut"``; both have
    the same registers and cycle behaviour and are tested in lockstep in test_rtl_pattern.
    ``speed``: a Verilator build for long runs (only the top's ports visible, optimized C++;
    :func:`sim.runner.build_component`).

    ``verilog``: a Verilog file of the top to simulate as written (``sephw compile``'s top.v,
    :func:`sephw.flows.simulate.write_top_verilog`) instead of generating one.
    ``ext_stall_permille``: builds with words in DRAM run beside a behavioural memory at the
    board's read latency (manifest ``external``); this makes it refuse commands and hold read
    data back on about that many cycles per thousand (random latency and back-pressure).
    ``host_stall`` (0..1): every odd-numbered image is fed with idle cycles on ``rx`` and
    read under random back-pressure on ``tx`` (sim/tb_top.py); the others run without.

    Returns ``{"logits": [[int]], "cycles": [int], "build_seconds": float, ...}``; with
    ``expected`` (N, classes) the testbench asserts every logit equals it."""
    from rtl_gen.checkprog import check_program
    from rtl_gen.top import Accelerator
    from sim.runner import run_testbench
    build_dir = Path(build_dir).resolve()
    problems = check_program(build_dir)
    if problems:
        raise NotImplementedError("the RTL top does not implement: " + "; ".join(problems))
    man = Manifest.read(build_dir)
    cfg = man.arch
    imgs = np.asarray(images, dtype=np.uint8)
    case = {"build_dir": str(build_dir),
            "images": [img.transpose(1, 2, 0).reshape(-1).tolist() for img in imgs],
            "expected": None if expected is None else [[int(v) for v in row] for row in expected],
            "timeout_cycles": int(timeout_cycles or 400 * man.cycles_per_inference + 100000),
            "host_stall": float(host_stall), "seed": 1}
    if verilog is not None:
        import hashlib
        dut = Path(verilog)
        tag = "topv_" + hashlib.sha1(dut.read_bytes()).hexdigest()[:12]
    elif cfg.ext_words:
        # the build keeps words in external memory: a behavioural memory beside the top, at
        # the board's read latency (the cycle model's) and as deep as the build uses; the
        # testbench writes the external image (external.bin) into it before the first image,
        # and each input image at input_base (which wraps onto its last words), so one
        # simulator build serves every build of the same contract and memory
        from rtl_gen.extmem import stall_threshold
        from sim.ext_top import AcceleratorWithExtMemory
        from sim.simboard import board_dram
        dram = board_dram(man)
        dut = AcceleratorWithExtMemory(cfg, netlist=netlist, latency=dram["latency"], depth=dram["depth"])
        tag = cfg.tag() + f"_{netlist}_ext{dram['latency']}_{dram['depth']}"
        # the stalls are an input of the same simulator build (tb_top sets it)
        case["ext_stall"] = stall_threshold(ext_stall_permille)
        wb = cfg.ext_data_bits // 8
        case["ext_image"] = str(man.path("external.bin"))
        case["ext_input"] = {"word": MemoryMap(cfg).input_base % dram["depth"], "word_bytes": wb}
    else:
        dut = Accelerator(cfg, netlist=netlist)
        tag = cfg.tag() + ("" if netlist == "lut" else f"_{netlist}")
    test_dir = run_testbench(dut, tag, "sim.tb_top", case, speed=speed)
    return json.loads((test_dir / "result.json").read_text())
