"""Build-directory writers: program, memory images (sephw/compiler/images.py), schedule,
manifest, report.

Everything here reads a finished :class:`~sephw.compiler.ir.CompileIR`; nothing is
computed that the passes did not decide (the memory images are the weights laid out at the
addresses pass 4 assigned, in the word formats of docs/isa.md).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import yaml
from tqdm import tqdm

from ..arch import isa
from ..arch.config import dma_beats
from ..arch.isa import WORD_BITS, WORD_BYTES, Op, encode_program
from ..arch.manifest import FORMAT, VERSION, Manifest
from ..intgraph import InputNode, PoolFCNode, SkipOperand
from . import hw
from .assign_addresses import spilled_bytes
from .dump import write_pass_dumps
from .images import external_words, param_words, pattern_words, tensor_words, weight_words
from .ir import PARAM_WORD_BYTES, TENSOR_DESC_BYTES, CompileError
from .operands import operand_words, pattern_storage, streamed_steps


def spill_bytes(ir) -> int:
    """External-memory bytes the spilled tensors take after the external image."""
    return sum(spilled_bytes(ir, name) for name in ir.spills)


def _hex(blob: bytes, word_bytes: int) -> str:
    """One word per line, most significant byte first ($readmemh)."""
    return "".join(blob[i:i + word_bytes][::-1].hex() + "\n" for i in range(0, len(blob), word_bytes))


# --------------------------------------------------------------------------- report
def layer_rows(ir) -> list[dict]:
    """Per layer: MACs, on-chip bytes, predicted cycles, engine utilization; its pattern bits
    (the ±1 weights) and the pattern memory bits that hold them (``pattern_storage_ratio``:
    stored / held, 0 without patterns); ``depthwise``: the layer has depthwise pattern
    convolutions (:func:`~sephw.compiler.hw.depthwise_pattern`), in the depthwise mode or not."""
    cfg = ir.cfg
    per = {lay.index: {"cycles": 0, "pattern_busy": 0, "mac_busy": 0, "pp_busy": 0, "tiles": 0, "dma_cycles": 0,
                       "dma_loads": 0, "external_bytes": 0} for lay in ir.layers}
    ext_word_bytes = dma_beats(cfg, ir.board.external.data_bits) * ir.board.external.data_bits // 8 \
        if ir.streamed else 0
    for s, entry in zip(ir.schedule, ir.program):
        t = entry.tile
        if t is None:
            continue
        p = per[t.layer]
        p["cycles"] += s.cycles
        if t.opcode == Op.DMA_LOAD:
            p["dma_cycles"] += s.cycles
            p["dma_loads"] += 1
            p["external_bytes"] += t.length * ext_word_bytes
            continue
        if t.opcode == Op.SPILL or (t.opcode == Op.LOAD and ir.streamed):
            # rows to or from external memory (spilled tensors, the input image)
            p["dma_cycles"] += s.cycles
            p["external_bytes"] += t.length
            continue
        p["dma_cycles"] += s.load_wait or 0      # waiting for its words to land
        p["pattern_busy"] += s.busy.get("pattern", 0)
        p["mac_busy"] += s.busy.get("mac", 0)
        p["pp_busy"] += s.busy.get("pp", 0)
        p["tiles"] += 1
    rows = []
    for lay in ir.layers:
        n = lay.node
        p = per[lay.index]
        cyc = p["cycles"]
        pbits = stored = 0
        depthwise = False
        if isinstance(n, PoolFCNode):
            fc_onchip = (lay.index, 0) not in ir.streamed
            onchip = fc_onchip * ir.memory["weights"].word_bytes * math.ceil(n.weight.shape[0] / cfg.lanes) \
                * math.ceil(n.weight.shape[1] / cfg.mac_cols) + n.weight.shape[0] * PARAM_WORD_BYTES
            kind, shape = "POOL_FC", f"logits[{n.weight.shape[0]}]"
            bits = 8
        else:
            t = ir.tensors[n.name]
            onchip = t.nbytes
            shape = n.out.describe()
            kind = type(n).__name__.replace("Node", "")
            for si, st in enumerate(lay.steps):
                # a streamed step's words are in external memory (its tiles' share of the
                # buffers is not the layer's)
                resident = 0 if (lay.index, si) in ir.streamed else 1
                for op in st.operands:
                    if isinstance(op, SkipOperand):
                        continue
                    w = operand_words(cfg, op, st.out_channels, st.tc)
                    if op.kind != "pattern":
                        onchip += resident * w * cfg.weight_word_bytes
                        continue
                    dw = hw.dw_operand(cfg, op)
                    depthwise |= hw.depthwise_pattern(op)
                    held, bits_stored = pattern_storage(cfg, op, st.out_channels, st.tc)
                    pbits += held
                    stored += bits_stored
                    onchip += (1 if dw else resident) * w * (-(-cfg.dw_word_bits // 8) if dw else cfg.pattern_mem_bytes)
            if not isinstance(n, InputNode):
                onchip += n.out.channels * PARAM_WORD_BYTES
            src = ir.graph.spec(lay.src_a) if lay.src_a else n.out
            bits = src.bits
        pe_peak = cfg.pattern_peak(bits)
        util = {"pattern_engine": lay.pattern_macs / (cyc * pe_peak) if cyc and lay.pattern_macs else 0.0,
                "mac_array": lay.int8_macs / (cyc * cfg.mac_peak) if cyc and lay.int8_macs else 0.0}
        # what bounds the layer: the busiest engine, the PostProcess (pp_units channels per
        # cycle, the writer storing as many bytes), the DMA_LOADs before its tiles, or the
        # rest (window gather, control) -- the top runs the loads and the tiles one after another
        parts = {"compute": max(p["pattern_busy"], p["mac_busy"]), "post-process": p["pp_busy"],
                 "memory": p["dma_cycles"]}
        parts["gather"] = cyc - max(parts["compute"], parts["post-process"]) - parts["memory"]
        rows.append({"index": lay.index, "name": n.name, "type": kind, "shape": shape,
                     "macs": lay.macs, "pattern_macs": lay.pattern_macs, "int8_macs": lay.int8_macs,
                     "onchip_bytes": int(onchip), "tiles": p["tiles"], "cycles": int(cyc),
                     "pattern_busy": int(p["pattern_busy"]), "mac_busy": int(p["mac_busy"]),
                     "pp_busy": int(p["pp_busy"]),
                     "utilization": {k: round(v, 4) for k, v in util.items()},
                     "pattern_bits": int(pbits), "pattern_bits_stored": int(stored), "depthwise": depthwise,
                     "pattern_storage_ratio": round(stored / pbits, 3) if pbits else 0.0,
                     "dma_loads": p["dma_loads"], "dma_cycles": int(p["dma_cycles"]),
                     "external_bytes": int(p["external_bytes"]),
                     "bound": max(parts, key=parts.get) if cyc else ""})
    return rows


def report_dict(ir, compile_seconds: float | None = None) -> dict:
    cfg, b = ir.cfg, ir.board
    rows = layer_rows(ir)
    clock = b.clock_hz
    cyc = ir.cycles
    pat = sum(r["pattern_macs"] for r in rows)
    i8 = sum(r["int8_macs"] for r in rows)
    # pattern peak at the graph's activation width (the bit-serial engine's rate)
    pe_peak = cfg.pattern_peak(ir.graph.a_bits)
    onchip = int(sum(ir.onchip.values()))
    res, mem = ir.resources, ir.memory_blocks
    bram_blocks = mem.block_ram
    uart_baud = b.host_links["uart"].get("default_baud", 0)
    in_bytes = ir.graph.input.out.channels * ir.graph.input.out.height * ir.graph.input.out.width
    util = {
        "pattern_engine": round(pat / (cyc * pe_peak), 4) if cyc else 0.0,
        "mac_array": round(i8 / (cyc * cfg.mac_peak), 4) if cyc else 0.0,
        "engines": round((pat / pe_peak + i8 / cfg.mac_peak) / cyc, 4) if cyc else 0.0,
        "lut": round(res.lut / b.resources["lut"], 4),
        "ff": round(res.ff / b.resources["ff"], 4),
        "dsp": round(res.dsp / b.resources["dsp"], 4),
        "bram_bytes": round(onchip / ir.budget, 4),
        "bram_blocks": round(bram_blocks / b.resources["bram_blocks"], 4),
    }
    return {
        "format": "sephw-report", "version": VERSION,
        "board": b.name, "part": b.part, "clock_hz": clock,
        "model": dict((k, v) for k, v in ir.graph.meta.items() if isinstance(v, (str, int, float))),
        "engine_config": cfg.to_dict(), "arch_hash": ir.arch.hash(),
        "cost_source": ir.costs.source,
        "bands": ir.bands, "instructions": len(ir.instructions),
        "cycles_per_inference": int(cyc),
        "cycle_model": hw.CYCLE_MODEL,
        "engine_model_cycles_per_inference": int(ir.engine_cycles),
        "latency_s": cyc / clock, "fps": clock / cyc if cyc else 0.0,
        "macs_per_inference": pat + i8, "pattern_macs": pat, "int8_macs": i8,
        "onchip_bytes": onchip, "onchip_budget_bytes": ir.budget,
        "onchip_breakdown": {k: int(v) for k, v in ir.onchip.items()},
        "resources": {"lut": res.lut, "ff": res.ff, "dsp": res.dsp, "bram_blocks": bram_blocks,
                      "budget": {k: b.resources[k] for k in ("lut", "ff", "dsp", "bram_blocks")},
                      "detail": dict(res.detail),
                      "memories": {k: {"blocks": blocks, "lutram_luts": luts}
                                   for k, (blocks, luts) in mem.per_memory.items()},
                      "lutram_luts": mem.lutram_luts, "estimate": True},
        "utilization": util,
        "host_link": {"uart_baud": uart_baud, "input_bytes": in_bytes,
                      "input_transfer_s": in_bytes * 10 / uart_baud if uart_baud else None,
                      # at the default and the bridge's highest rate (10 bits a byte: 8N1)
                      "input_transfer_s_at_baud": {str(bd): in_bytes * 10 / bd for bd in sorted(
                          {uart_baud, b.host_links["uart"].get("max_baud", 0)} - {0})},
                      "note": "not included in cycles_per_inference (image already in the RX FIFO)"},
        "external": None if not ir.streamed else {
            "kind": b.external.kind, "bytes": ir.external.nbytes, "data_bits": b.external.data_bits,
            "read_latency": b.external.read_latency, "streamed_steps": len(streamed_steps(ir.streamed)),
            "streamed_param_layers": len(ir.streamed) - len(streamed_steps(ir.streamed)),
            "spilled": list(ir.spills), "spill_bytes": spill_bytes(ir),
            "bytes_per_inference": sum(r["external_bytes"] for r in rows),
            # (the layers', and what belongs to no layer: the Program pages' DMA_LOADs, the
            # SYNCs' waits for the LoadUnit)
            "dma_cycles_per_inference": sum(r["dma_cycles"] for r in rows) + sum(
                s.cycles if s.op == Op.DMA_LOAD else s.load_wait or 0
                for s, e in zip(ir.schedule, ir.program) if e.tile is None),
            "note": "pattern and int8 weight words of the streamed steps, loaded by DMA_LOADs into one buffer half "
                    "while the tile before computes on the other; spilled tensors written by SPILL and loaded back "
                    "by LOAD, as is the input image; dma cycles: the DMA_LOAD instructions' issue (the Program "
                    "pages' too), the tiles' and SYNCs' waits for words to land, SPILL and LOAD"},
        "compile_seconds": compile_seconds,
        "pass_seconds": {p.name: round(p.seconds, 6) for p in ir.passes},
        "layers": rows,
    }


def report_md(rep: dict) -> str:
    u = rep["utilization"]
    ec = rep["engine_config"]
    lines = [f"# sephw compile report: {rep['board']} ({rep['part']})", "",
             f"- clock {rep['clock_hz'] / 1e6:g} MHz; **{rep['cycles_per_inference']} cycles per inference** "
             f"= {rep['latency_s'] * 1e3:.3f} ms, **{rep['fps']:.1f} FPS** (predicted by the cycle model of the "
             f"{rep['cycle_model']}; the engine-level model, engines at their measured rates behind an idealised window feed "
             f"(the sizing objective), predicts {rep['engine_model_cycles_per_inference']} cycles)",
             f"- engines: {ec['lanes']} lanes (pattern engine, k_max {ec['k_max']}, {ec['pe_cin']} input channels "
             f"per beat) || MAC array {ec['lanes']}x{ec['mac_cols']} ({'packed 2 MACs/DSP' if ec['packed'] else '1 MAC/DSP'}), "
             f"{ec['pp_units']} post-process unit(s); arch hash `{rep['arch_hash']}`",
             f"- MACs per inference: {rep['macs_per_inference']:,} (pattern {rep['pattern_macs']:,}, int8 {rep['int8_macs']:,})",
             f"- engine utilization (useful MACs / (cycles x peak)): pattern engine {u['pattern_engine']:.1%}, "
             f"MAC array {u['mac_array']:.1%}, both engines {u['engines']:.1%}",
             f"- on-chip memory {rep['onchip_bytes']:,} / {rep['onchip_budget_bytes']:,} bytes "
             f"({u['bram_bytes']:.1%}); {rep['bands']} row band(s); {rep['instructions']} instructions",
             f"- estimated resources: LUT {rep['resources']['lut']} ({u['lut']:.1%}), FF {rep['resources']['ff']} "
             f"({u['ff']:.1%}), DSP {rep['resources']['dsp']} ({u['dsp']:.1%}), block RAM {rep['resources']['bram_blocks']} "
             f"({u['bram_blocks']:.1%}); costs: {rep['cost_source']}",
             f"- host link: {rep['host_link']['input_bytes']:,} input bytes per image over UART = "
             + ", ".join(f"{t * 1e3:,.2f} ms at {int(bd):,} baud" for bd, t in
                         rep["host_link"]["input_transfer_s_at_baud"].items())
             + f", beside {rep['latency_s'] * 1e3:,.2f} ms of compute (not in the cycle count)"
             if rep["host_link"]["input_transfer_s"] else ""]
    ext = rep.get("external")
    if ext:
        lines.append(f"- external memory ({ext['kind']}): {ext['bytes']:,} bytes of pattern and weight words of "
                     f"{ext['streamed_steps']} layer step(s); per inference {ext['bytes_per_inference']:,} bytes in "
                     f"{ext['dma_cycles_per_inference']:,} DMA cycles ({ext['note']})"
                     + (f"; spilled to external memory ({ext['spill_bytes']:,} bytes): {', '.join(ext['spilled'])}"
                        if ext.get("spilled") else ""))
    lines += ["", "| # | layer | type | output | MACs | on-chip bytes | external bytes | pattern stored / bits | tiles "
              "| cycles | DMA cycles | bound | pattern busy | MAC busy | PP busy | util PE | util MAC |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["layers"]:
        ratio = f"{r['pattern_storage_ratio']:.2f}x" if r.get("pattern_bits") else ""
        lines.append(f"| {r['index']} | {r['name']} | {r['type']} | {r['shape']} | {r['macs']:,} | {r['onchip_bytes']:,} "
                     f"| {r['external_bytes']:,} | {ratio} | {r['tiles']} | {r['cycles']:,} | {r['dma_cycles']:,} "
                     f"| {r['bound']} | {r['pattern_busy']:,} | {r['mac_busy']:,} | {r['pp_busy']:,} "
                     f"| {r['utilization']['pattern_engine']:.1%} | {r['utilization']['mac_array']:.1%} |")
    lines += ["", "On-chip memory (bytes): " + ", ".join(f"{k} {v:,}" for k, v in rep["onchip_breakdown"].items()), ""]
    captions = {"timeline": "Unit timeline: each instruction's busy cycles on the pattern engine, the MAC array, the "
                            "post-process and the host link, so the two engines' overlap inside PRB tiles shows (zoom below).",
                "cycles_by_layer": "Cycles per layer, split into the busiest unit's busy cycles (pattern engine, MAC "
                                   "array or post-process), memory (DMA) and the rest (gather / control), labelled "
                                   "with the layer's bound (the table's).",
                "memory_map": "On-chip memory by region against the board's budget, and the activation tensors at "
                              "their addresses over their lifetimes."}
    for name, path in rep.get("plots", {}).items():
        lines += [f"![{name}]({path})", "", captions.get(name, ""), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- writer
def write_build(ir, out_dir: Path, compile_seconds: float | None = None, progress: bool = False) -> dict:
    """Write the build directory; returns the report dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    steps = [("patterns", pattern_words, ir.memory["patterns"].word_bytes),
             ("weights", weight_words, ir.memory["weights"].word_bytes),
             ("params", param_words, PARAM_WORD_BYTES),
             ("tensors", tensor_words, TENSOR_DESC_BYTES)]
    for name, fn, wb in tqdm(steps, desc="memory images", disable=not progress, leave=False):
        blob = fn(ir)
        if len(blob) != ir.memory[name].nbytes:
            raise CompileError(f"internal error: {name} image is {len(blob)} bytes, pass 4 reserved "
                               f"{ir.memory[name].nbytes}")
        (out / f"{name}.bin").write_bytes(blob)
        (out / f"{name}.hex").write_text(_hex(blob, wb))
        images[name] = {"file": f"{name}.bin", "hex": f"{name}.hex", "word_bytes": wb,
                        "words": ir.memory[name].words, "bytes": len(blob),
                        "sha256": hashlib.sha256(blob).hexdigest()}
    external = None
    if ir.streamed:     # the streamed steps' words, for the board's DRAM (docs/isa.md)
        blob = external_words(ir)
        (out / "external.bin").write_bytes(blob)
        ext = ir.board.external
        external = {"file": "external.bin", "bytes": len(blob), "words": ir.external.words,
                    "spill_bytes": spill_bytes(ir),
                    "data_bits": ext.data_bits, "read_latency": ext.read_latency, "kind": ext.kind,
                    "sha256": hashlib.sha256(blob).hexdigest()}
    else:
        (out / "external.bin").unlink(missing_ok=True)
    prog = encode_program(ir.instructions)
    (out / "program.bin").write_bytes(prog)
    (out / "program.hex").write_text(_hex(prog, WORD_BYTES))
    txt = [f"; sephw program for {ir.board.name}, arch {ir.arch.hash()}, {len(ir.instructions)} "
           f"instructions of {WORD_BITS} bits; start/cycles predicted by the cycle model of the {hw.CYCLE_MODEL}"]
    for s, ins in zip(ir.schedule, ir.instructions):
        txt.append(f"{s.index:5d} @{s.start:>9d} +{s.cycles:<7d} {ins.text()}")
    (out / "program.txt").write_text("\n".join(txt) + "\n")
    sched = {"board": ir.board.name, "clock_hz": ir.board.clock_hz, "engine_config": ir.cfg.to_dict(),
             "bands": ir.bands,
             "note": "in-order issue; cycles: the RTL top as built (per instruction, docs/isa.md); "
                     "engine_cycles and busy: the engine-level model, where PRB (and RESADD with a pattern "
                     "main branch and a 1x1 projection) keep the pattern engine and the MAC array busy on "
                     "the same tile at the same time",
             "cycle_model": hw.CYCLE_MODEL,
             "cycles_per_inference": int(ir.cycles),
             "engine_model_cycles_per_inference": int(ir.engine_cycles),
             "instructions": [s.as_dict() for s in ir.schedule]}
    (out / "schedule.yaml").write_text(yaml.safe_dump(sched, sort_keys=False, width=120))
    g = ir.graph
    pool = g.output
    manifest = {
        "format": FORMAT, "version": VERSION,
        "board": ir.board.name, "part": ir.board.part, "clock_hz": ir.board.clock_hz,
        "engine_config": ir.cfg.to_dict(), "arch": ir.arch.to_dict(), "arch_hash": ir.arch.hash(),
        "isa": isa.describe(),
        "program": {"file": "program.bin", "hex": "program.hex", "instructions": len(ir.instructions),
                    "sha256": hashlib.sha256(prog).hexdigest()},
        "memories": {"activations": {"bytes": ir.memory["activations"].nbytes, "layout": "HWC, one code per byte, "
                                     "row r of a tensor at base + (r mod ring_rows) * width * channels"},
                     **images},
        "tensors": [{"id": t.id, "name": t.name, "shape": list(t.spec.shape), "layout": "HWC",
                     "dtype": ("int" if t.spec.signed else "uint") + str(t.spec.bits), "scale": t.spec.scale,
                     "base": t.base, "ring_rows": t.ring_rows, "bytes": t.nbytes} for t in
                    sorted(ir.tensors.values(), key=lambda t: t.id)],
        "input": {"tensor": ir.tensors[g.input.name].id, "shape": list(g.input.out.shape), "dtype": "uint8",
                  "layout": "HWC", "load": "LOAD instructions take input rows band by band from the host link"},
        "output": {"dtype": "int64", "shape": [int(pool.weight.shape[0])], "logit_scale": pool.logit_scale,
                   "store": "STORE sends the logits little-endian after the final POOL_FC"},
        "cycles_per_inference": int(ir.cycles),
    }
    if external is not None:
        manifest["external"] = external
    # the IntGraph itself, so `sephw simulate` can compare the RTL with the reference
    import torch
    torch.save(ir.graph.to_dict(), out / "intgraph.pt")
    manifest["intgraph"] = "intgraph.pt"
    manifest["dataset"] = ir.graph.meta.get("dataset")
    man = Manifest(manifest, out)
    for r in man.memory_map:       # the images and the hardware contract agree word for word
        if r.name in images and images[r.name]["word_bytes"] != r.word_bytes:
            raise CompileError(f"internal error: {r.name} image words are {images[r.name]['word_bytes']} bytes, "
                               f"the memory's {r.word_bytes}")
    man.images()
    man.write()
    write_pass_dumps(ir.passes, out)
    rep = report_dict(ir, compile_seconds)
    from .plots import compile_plots      # matplotlib loads only when a build is written
    rep["plots"] = compile_plots(ir, out, rep["layers"])
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    (out / "report.md").write_text(report_md(rep))
    return rep
