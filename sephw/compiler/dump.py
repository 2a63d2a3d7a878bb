"""BUILD/passes/: what each pass left in the IR, and how long it took.

:func:`summary` is taken after every pass (:func:`sephw.compiler.pipeline.compile_ir`); it
names shapes, counts, addresses, tiles and instructions, never weights, so the shipped model's
dumps stay tens of kilobytes. :func:`write_pass_dumps` writes them as ``passes/NN_<pass>.json`` and
``passes/timing.json``.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from .ir import CompileIR, PassRecord


def pass_file_stem(index: int, name: str) -> str:
    """``NN_snake_name``: ``(3, "TileLayers")`` -> ``03_tile_layers``."""
    return f"{index:02d}_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: a tile's fields in ``tile_table`` (every field of :class:`~sephw.compiler.ir.Tile` but the
#: per-operand cost records, whose cycles and busy units are ``cycles`` and ``busy``)
TILE_COLUMNS = ("layer", "step", "band", "opcode", "row0", "rows", "c0", "tc", "in_row0", "in_rows",
                "working_set", "cycles", "busy", "flags", "length", "mem", "half", "deps")
#: an instruction's prediction in ``schedule`` (ScheduleProgram)
SCHEDULE_COLUMNS = ("start", "cycles", "engine_cycles", "load_wait")


def summary(ir: CompileIR) -> dict:
    """A JSON-ready summary of ``ir``: engine config and resources, layers (steps, tile count,
    words), tensors (shape, ring rows, base, lifetime), memories, every tile (``tile_table``:
    :data:`TILE_COLUMNS` and one row per tile), the Program (one line per instruction, as
    program.txt writes it) and its schedule (:data:`SCHEDULE_COLUMNS` per instruction).
    Fields a later pass sets show their defaults (None, 0, -1, empty)."""
    tiles_per_layer = Counter(t.layer for t in ir.tiles)
    layers = []
    for lay in ir.layers:
        steps = [{"opcode": st.opcode.name, "operands": [op.describe() for op in st.operands],
                  "out_c0": st.out_c0, "out_channels": st.out_channels, "in_c0": st.in_c0, "tc": st.tc,
                  "first_words": [ir.words.get((lay.index, si, oi)) for oi in range(len(st.operands))]}
                 for si, st in enumerate(lay.steps)]
        layers.append({"index": lay.index, "name": lay.name, "type": type(lay.node).__name__,
                       "src_a": lay.src_a, "src_b": lay.src_b, "macs": lay.macs, "steps": steps,
                       "tiles": tiles_per_layer.get(lay.index, 0), "param_base": ir.prm_base.get(lay.index)})
    tensors = [{"id": t.id, "name": t.name, "spec": t.spec.describe(), "producer": t.producer,
                "consumers": list(t.consumers), "ring_rows": t.ring_rows, "base": t.base, "bytes": t.nbytes,
                "live": list(t.live)} for t in sorted(ir.tensors.values(), key=lambda t: t.id)]
    return {
        "board": ir.board.name,
        "engine": ir.cfg.to_dict() if ir.cfg is not None else None,
        "resources": {k: v for k, v in asdict(ir.resources).items() if k != "detail"}
        if ir.resources is not None else None,
        "budget_bytes": ir.budget,
        "bands": ir.bands, "anchor": ir.anchor,
        "static_memory_bytes": dict(ir.static.memory_bytes) if ir.static is not None else None,
        "onchip_bytes": dict(ir.onchip),
        "block_ram": {"block_ram": ir.memory_blocks.block_ram, "lutram_luts": ir.memory_blocks.lutram_luts}
        if ir.memory_blocks is not None else None,
        "memory": {r.name: {"word_bytes": r.word_bytes, "words": r.words, "bytes": r.nbytes}
                   for r in ir.memory.values()},
        "tiles": len(ir.tiles),
        "instructions": len(ir.program),
        "instructions_by_op": dict(Counter(e.instruction.op.name for e in ir.program)),
        "cycles": ir.cycles, "engine_cycles": ir.engine_cycles,
        "layers": layers,
        "tensors": tensors,
        "tile_table": {"columns": list(TILE_COLUMNS),
                       "rows": [[t.opcode.name if c == "opcode" else getattr(t, c) for c in TILE_COLUMNS]
                                for t in ir.tiles]},
        "program": [e.instruction.text() for e in ir.program],
        "schedule": {"columns": list(SCHEDULE_COLUMNS),
                     "rows": [[getattr(s, c) for c in SCHEDULE_COLUMNS] for s in ir.schedule]},
    }


def _flat(x) -> bool:
    """A scalar, or a dict of scalars (a tile's ``busy``)."""
    scalar = lambda y: not isinstance(y, (dict, list))      # noqa: E731
    return scalar(x) or (isinstance(x, dict) and all(map(scalar, x.values())))


def _json(v, indent: str = "") -> str:
    """``v`` as JSON, nested containers indented one space per level, every list of flat
    values on one line (a tile's row) and a long list of strings one per line (the Program):
    json.dumps(indent=1) gave the 224x224 SEP-Net's dumps 20 MB, one line per number."""
    inner = indent + " "
    if isinstance(v, dict) and v:
        return "{\n" + ",\n".join(f"{inner}{json.dumps(str(k))}: {_json(x, inner)}" for k, x in v.items()) \
            + f"\n{indent}}}"
    if isinstance(v, list) and all(isinstance(x, str) for x in v) and sum(map(len, v)) > 200:
        return "[\n" + ",\n".join(inner + json.dumps(x) for x in v) + f"\n{indent}]"
    if isinstance(v, list) and not all(map(_flat, v)):
        return "[\n" + ",\n".join(inner + _json(x, inner) for x in v) + f"\n{indent}]"
    return json.dumps(v)


def write_pass_dumps(passes: list[PassRecord], out_dir: Path) -> dict[str, float]:
    """Write ``out_dir/passes/NN_<pass>.json`` (the pass, its contract, its seconds and the
    IR summary after it) and ``out_dir/passes/timing.json``; returns ``{pass: seconds}``."""
    d = Path(out_dir) / "passes"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.json"):       # a rebuild with fewer passes leaves no stale dump
        old.unlink()
    timing = []
    for i, rec in enumerate(passes, 1):
        stem = pass_file_stem(i, rec.name)
        (d / f"{stem}.json").write_text(_json({"index": i, "pass": rec.name, "contract": rec.contract,
                                               "seconds": round(rec.seconds, 6), "ir": rec.summary}) + "\n")
        timing.append({"index": i, "pass": rec.name, "file": f"{stem}.json", "seconds": round(rec.seconds, 6)})
    total = sum(r.seconds for r in passes)
    (d / "timing.json").write_text(json.dumps({"passes": timing, "total_seconds": round(total, 6)}, indent=1))
    return {r.name: round(r.seconds, 6) for r in passes}
