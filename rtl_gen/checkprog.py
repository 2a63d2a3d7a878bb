"""check_program: what in a build directory's Program the accelerator top
(:mod:`rtl_gen.top`) does not implement, checked before a run (the top would raise ``error``
and stop there)."""
from __future__ import annotations

from sephw.arch.isa import (FLAG_B_PATTERN, FLAG_DEPTHWISE, FLAG_DW_PATTERN, FLAG_FINAL, FLAG_SKIP_IDENTITY, Op,
                            decode_program, pool_sum_planes)
from sephw.arch.manifest import Manifest

__all__ = ["check_program"]


def check_program(build_dir) -> list[str]:
    """What in a build directory's Program the top does not implement (empty: runnable)."""
    man = Manifest.read(build_dir)
    tens = man.tensors
    problems = []
    for i, ins in enumerate(decode_program(man.path("program.bin").read_bytes())):
        if ins.op in (Op.DMA_LOAD, Op.SPILL) and not man.arch.ext_words:
            problems.append(f"instruction {i}: {ins.op.name} on an overlay without external memory")
        mac_reads = [ins.src_a] if ins.op == Op.POOL_FC else []     # the tensors the MAC array reads
        if ins.op == Op.POOL_FC and ins.flags & FLAG_FINAL:
            # the FC runs over fc_planes byte planes of the sums (0: four): fewer than hold a
            # sum of the pooled map would drop its high bytes
            src = tens[ins.src_a]
            c, h, w = src["shape"]
            dtype = src["dtype"]
            need = pool_sum_planes(h * w, int(dtype.lstrip("uint")), dtype.startswith("int"))
            if ins.fc_passes < need:
                problems.append(f"instruction {i}: POOL_FC over {ins.fc_planes} byte planes of the pool sums, "
                                f"which need {need} ({h}x{w} {dtype} codes)")
        if ins.op in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
            on_pe = ins.op in (Op.CONV_PATTERN, Op.PRB) or (ins.op == Op.RESADD and ins.flags & FLAG_B_PATTERN)
            dw = bool(ins.flags & FLAG_DW_PATTERN)
            if dw and not (on_pe and man.arch.dw_words):
                problems.append(f"instruction {i}: the pattern engine's depthwise mode on an overlay without it")
            if on_pe and not dw and ins.groups_a and ins.na > tens[ins.src_a]["shape"][0] // ins.groups_a:
                problems.append(f"instruction {i}: a pattern tile spanning several groups (groups per beat)")
            if not on_pe and ins.k != 1:
                problems.append(f"instruction {i}: int8 {ins.k}x{ins.k} convolution")
            if ins.op == Op.RESADD and not ins.flags & FLAG_SKIP_IDENTITY:
                (_, hb, wb), (_, hd, wd) = tens[ins.src_b]["shape"], tens[ins.dst]["shape"]
                if (hb, wb) not in ((hd, wd), (2 * hd, 2 * wd)):
                    problems.append(f"instruction {i}: 1x1 projection skip with a stride other than 1 or 2")
            if ins.op in (Op.RESADD, Op.PRB) and ins.flags & FLAG_SKIP_IDENTITY:
                if tens[ins.src_b]["shape"][1:] != tens[ins.dst]["shape"][1:]:
                    problems.append(f"instruction {i}: identity skip between maps of different sizes")
            if ins.flags & FLAG_DEPTHWISE and ins.na > 1 and on_pe and not dw:
                problems.append(f"instruction {i}: depthwise pattern tile over several channels")
            b_mac = ins.op == Op.PRB or (ins.op == Op.RESADD and not ins.flags & FLAG_SKIP_IDENTITY)
            mac_reads += [t for t, mac in ((ins.src_a, not on_pe), (ins.src_b, b_mac)) if mac]
        # signed sources: every unit reads them but a packed MAC array
        for t in mac_reads:
            if man.engine.packed and tens[t]["dtype"].startswith("int"):
                problems.append(f"instruction {i}: signed input tensor {tens[t]['name']} on a packed MAC array")
    return sorted(set(problems), key=problems.index)
