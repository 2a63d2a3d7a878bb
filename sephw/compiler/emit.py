"""Build-directory writers: program, memory images, schedule, manifest, report.

Everything here reads a finished :class:`~sephw.compiler.ir.CompileIR`; nothing is
computed that the passes did not decide (the memory images are the weights laid out at the
addresses pass 4 assigned, in the word formats of docs/isa.md).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from ..arch import isa
from ..arch.config import dw_pattern_words, pattern_depth
from ..arch.formats import PARAM_WORD, TENSOR_DESC
from ..arch.isa import WORD_BITS, WORD_BYTES, encode_program
from ..arch.manifest import FORMAT, VERSION, Manifest
from ..intgraph import InputNode, PoolFCNode, SkipOperand
from . import hw
from .dump import write_pass_dumps
from .ir import PARAM_WORD_BYTES, TENSOR_DESC_BYTES, CompileError
from .operands import block_words, chunks as _chunks, param_blocks, param_word

B48 = PARAM_WORD.field("bias").hi


# --------------------------------------------------------------------------- memory images
def pattern_words(ir) -> bytes:
    """The pattern memory: per pattern operand, per channel block, per input chunk, one word of
    ``lanes`` lane fields of ``pe_cin * k_max^2`` bits; bit ``c*k_max^2 + i*k_max + j`` of a lane
    is 1 where ``B[o, c, i, j] = +1`` (``c`` relative to the chunk of the lane's group; a kernel
    smaller than ``k_max`` fills the top-left ``k x k`` taps, the others are 0). Each word is
    stored as ``pattern_slices`` memory words of ``pattern_mem_bits`` (low bits first, each
    zero-padded to whole bytes): word ``w`` is memory words ``w*S .. w*S + S-1``.

    Operands in the pattern engine's depthwise mode (:func:`~sephw.compiler.hw.dw_operand`)
    are in the depthwise pattern memory instead, after the main memory's depth
    (``ArchConfig.dw_base``; zero words in between): per channel block of ``dw_lanes`` channels,
    ``dw_slices(k_max, k)`` words of ``dw_lanes`` lane fields of ``2*k_max + 3`` bits; word
    ``s`` of a block holds bits ``s*(2*k_max+3) ..`` of each lane's ``k_max x k_max`` tap grid
    (bit ``i*k_max + j``, 1 where ``B[o, 0, i, j] = +1``), each word zero-padded to the main
    memory's word bytes."""
    cfg = ir.cfg
    lane_bits = cfg.pe_cin * cfg.k_max ** 2
    S, sbits = cfg.pattern_slices, cfg.pattern_mem_bits
    wbytes = math.ceil(S * sbits / 8)
    words, dw_words = [], []
    for lay in ir.layers:
        for si, st in enumerate(lay.steps):
            for oi, op in enumerate(st.operands):
                if isinstance(op, SkipOperand) or op.kind != "pattern":
                    continue
                if hw.dw_operand(cfg, op):
                    assert len(dw_words) == ir.words[(lay.index, si, oi)]
                    dw_words += _dw_pattern_words(cfg, op, st)
                    continue
                assert len(words) == ir.words[(lay.index, si, oi)] * S
                w = (op.weight > 0).numpy()                       # (O, Cg, k, k) bool
                o_tot, cg, k, _ = w.shape
                og = o_tot // op.groups
                for b0 in range(0, st.out_channels, st.tc):
                    tc = st.tc
                    gt = max(1, math.ceil(tc / og)) if og < tc else 1
                    cin_eff = max(1, cfg.pe_cin // gt)
                    for ch in range(_chunks(cfg, op, st.tc)):
                        bits = np.zeros(wbytes * 8, dtype=np.uint8)
                        c_lo, c_hi = ch * cin_eff, min(cg, (ch + 1) * cin_eff)
                        for l in range(min(tc, o_tot - b0)):
                            # the k x k kernel in the top-left corner of the k_max x k_max
                            # tap grid: bit c*k_max^2 + i*k_max + j (one window tap = one
                            # slot of the engine, whatever the layer's k)
                            grid = np.zeros((cfg.pe_cin, cfg.k_max, cfg.k_max), dtype=np.uint8)
                            grid[:c_hi - c_lo, :k, :k] = w[b0 + l, c_lo:c_hi]
                            base = l * lane_bits
                            bits[base:base + lane_bits] = grid.reshape(-1)
                        for sl in range(S):
                            words.append(np.packbits(bits[sl * sbits:(sl + 1) * sbits],
                                                     bitorder="little").tobytes())
    if dw_words:
        zero = bytes(cfg.pattern_mem_bytes)
        words += [zero] * (pattern_depth(len(words), S) * S - len(words))      # up to dw_base
        words += dw_words
    return b"".join(words)


def _dw_pattern_words(cfg, op, st) -> list[bytes]:
    """The depthwise pattern memory words of a depthwise operand (see :func:`pattern_words`),
    each as the main memory's word bytes."""
    w = (op.weight > 0).numpy()                               # (C, 1, k, k) bool
    K, k = cfg.k_max, op.k
    out = []
    for b0 in range(0, st.out_channels, st.tc):
        grids = [sum(1 << (i * K + j) for i in range(k) for j in range(k) if w[b0 + l, 0, i, j])
                 for l in range(min(st.tc, st.out_channels - b0))]
        out += [v.to_bytes(cfg.pattern_mem_bytes, "little") for v in dw_pattern_words(grids, K, k)]
    return out


def _mac_word_rows(op, b0: int, tc: int, cfg) -> np.ndarray:
    """Block-diagonal weight matrix (tc, chunks*Q) of one channel block of an int8 operand:
    row p = output channel b0+p, term (slot*Cg + c)*k*k + i*k + j, zero off the row's group."""
    w = op.weight.numpy().astype(np.int8)
    o_tot, cg, k, _ = w.shape
    og = o_tot // op.groups
    gt = max(1, math.ceil(tc / og)) if og < tc else 1
    g0 = b0 // og
    terms = gt * cg * k * k
    chunks = _chunks(cfg, op, tc)
    m = np.zeros((tc, chunks * cfg.mac_cols), dtype=np.int8)
    for p in range(min(tc, o_tot - b0)):
        o = b0 + p
        slot = o // og - g0 if gt > 1 else 0
        t0 = slot * cg * k * k
        m[p, t0:t0 + cg * k * k] = w[o].reshape(-1)
    assert terms <= chunks * cfg.mac_cols
    return m


def weight_words(ir) -> bytes:
    """The int8 weight memory: words of ``lanes x mac_cols`` bytes, ``w[p][q]`` at byte
    ``p*mac_cols + q``; per int8 operand, per channel block, per chunk of ``mac_cols`` terms;
    then the FC as ``ceil(O/lanes) x ceil(C/mac_cols)`` words."""
    cfg = ir.cfg
    out = []
    n = 0
    for lay in ir.layers:
        node = lay.node
        if isinstance(node, PoolFCNode):
            assert n == ir.pool_weight_word
            w = node.weight.numpy().astype(np.int8)
            o_tot, c_tot = w.shape
            for ob in range(math.ceil(o_tot / cfg.lanes)):
                for cb in range(math.ceil(c_tot / cfg.mac_cols)):
                    word = np.zeros((cfg.lanes, cfg.mac_cols), dtype=np.int8)
                    blk = w[ob * cfg.lanes:(ob + 1) * cfg.lanes, cb * cfg.mac_cols:(cb + 1) * cfg.mac_cols]
                    word[:blk.shape[0], :blk.shape[1]] = blk
                    out.append(word.tobytes())
                    n += 1
            continue
        for si, st in enumerate(lay.steps):
            for oi, op in enumerate(st.operands):
                if isinstance(op, SkipOperand) or op.kind != "int8":
                    continue
                assert n == ir.words[(lay.index, si, oi)], (lay.name, n, ir.words[(lay.index, si, oi)])
                for b0 in range(0, st.out_channels, st.tc):
                    m = _mac_word_rows(op, b0, st.tc, cfg)
                    for ch in range(m.shape[1] // cfg.mac_cols):
                        word = np.zeros((cfg.lanes, cfg.mac_cols), dtype=np.int8)
                        word[:st.tc] = m[:, ch * cfg.mac_cols:(ch + 1) * cfg.mac_cols]
                        out.append(word.tobytes())
                        n += 1
    return b"".join(out)


def param_words(ir) -> bytes:
    """PostProcess parameters: 16 bytes per output channel, little-endian ``m_a`` i32,
    ``m_b`` i32 (0 with one accumulator), ``bias`` i48, ``shift`` u8, reserved u8; a layer's
    first channel at its ``prm_base`` (a multiple of ``pp_units``; zero words in between), its
    channels contiguous or, where its tiles are narrower than ``pp_units`` allows, in padded
    tile blocks (:func:`~sephw.compiler.passes.param_blocks`)."""
    out = []
    for lay in ir.layers:
        n = lay.node
        if isinstance(n, InputNode):
            continue
        blocks = param_blocks(ir.cfg, lay)
        if isinstance(n, PoolFCNode):
            rows = zip(n.m.tolist(), [0] * len(n.m), n.bias.tolist(), [0] * len(n.m))
        else:
            rq = n.requant
            mb = rq.m_b.tolist() if rq.m_b is not None else [0] * n.out.channels
            rows = zip(rq.m_a.tolist(), mb, rq.bias.tolist(), rq.shift.tolist())
        for c, (ma, mb_, b, s) in enumerate(rows):
            if abs(b) > B48:
                raise CompileError(f"{n.name}: channel {c} bias {b} does not fit the 48-bit parameter field")
            # zero words up to the layer's (pp_units-aligned) base and between tile blocks
            # padded to pp_units (passes.param_blocks)
            out += [bytes(PARAM_WORD_BYTES)] * (ir.prm_base[lay.index] + param_word(blocks, c) - len(out))
            out.append(PARAM_WORD.pack(m_a=ma, m_b=mb_, bias=b, shift=s))
    blob = b"".join(out)
    assert len(blob) == ir.memory["params"].nbytes
    return blob


def tensor_words(ir) -> bytes:
    """Descriptor table: one :data:`~sephw.arch.formats.TENSOR_DESC` word per tensor id."""
    out = []
    for t in sorted(ir.tensors.values(), key=lambda t: t.id):
        s = t.spec
        out.append(TENSOR_DESC.pack(base=t.base, ring_rows=t.ring_rows, height=s.height, width=s.width,
                                    channels=s.channels, bits=s.bits, signed=int(s.signed)))
    return b"".join(out)


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
    per = {lay.index: {"cycles": 0, "pattern_busy": 0, "mac_busy": 0, "tiles": 0} for lay in ir.layers}
    for s, entry in zip(ir.schedule, ir.program):
        t = entry.tile
        if t is None:
            continue
        p = per[t.layer]
        p["cycles"] += s["cycles"]
        p["pattern_busy"] += s["busy"].get("pattern", 0)
        p["mac_busy"] += s["busy"].get("mac", 0)
        p["tiles"] += 1
    rows = []
    for lay in ir.layers:
        n = lay.node
        p = per[lay.index]
        cyc = p["cycles"]
        pbits = stored = 0
        depthwise = False
        if isinstance(n, PoolFCNode):
            onchip = ir.memory["weights"].word_bytes * math.ceil(n.weight.shape[0] / cfg.lanes) \
                * math.ceil(n.weight.shape[1] / cfg.mac_cols) + n.weight.shape[0] * PARAM_WORD_BYTES
            kind, shape = "POOL_FC", f"logits[{n.weight.shape[0]}]"
            bits = 8
        else:
            t = ir.tensors[n.name]
            onchip = t.nbytes
            shape = n.out.describe()
            kind = type(n).__name__.replace("Node", "")
            for st in lay.steps:
                for op in st.operands:
                    if isinstance(op, SkipOperand):
                        continue
                    blocks = math.ceil(st.out_channels / st.tc)
                    w = blocks * block_words(cfg, op, st.tc)
                    if op.kind != "pattern":
                        onchip += w * cfg.weight_word_bytes
                        continue
                    dw = hw.dw_operand(cfg, op)
                    depthwise |= hw.depthwise_pattern(op)
                    pbits += op.weight.numel()
                    stored += w * (cfg.dw_word_bits if dw else cfg.pattern_word_bits)
                    onchip += w * (-(-cfg.dw_word_bits // 8) if dw else cfg.pattern_word_bytes)
            if not isinstance(n, InputNode):
                onchip += n.out.channels * PARAM_WORD_BYTES
            src = ir.graph.spec(lay.src_a) if lay.src_a else n.out
            bits = src.bits
        pe_peak = cfg.pattern_peak(bits)
        util = {"pattern_engine": lay.pattern_macs / (cyc * pe_peak) if cyc and lay.pattern_macs else 0.0,
                "mac_array": lay.int8_macs / (cyc * cfg.mac_peak) if cyc and lay.int8_macs else 0.0}
        rows.append({"index": lay.index, "name": n.name, "type": kind, "shape": shape,
                     "macs": lay.macs, "pattern_macs": lay.pattern_macs, "int8_macs": lay.int8_macs,
                     "onchip_bytes": int(onchip), "tiles": p["tiles"], "cycles": int(cyc),
                     "pattern_busy": int(p["pattern_busy"]), "mac_busy": int(p["mac_busy"]),
                     "utilization": {k: round(v, 4) for k, v in util.items()},
                     "pattern_bits": int(pbits), "pattern_bits_stored": int(stored), "depthwise": depthwise,
                     "pattern_storage_ratio": round(stored / pbits, 3) if pbits else 0.0})
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
    res = ir.resources
    bram_blocks = ir.memory_blocks["block_ram"]
    uart_baud = b.host_links["uart"].get("default_baud", 0)
    in_bytes = ir.graph.input.out.channels * ir.graph.input.out.height * ir.graph.input.out.width
    util = {
        "pattern_engine": round(pat / (cyc * pe_peak), 4) if cyc else 0.0,
        "mac_array": round(i8 / (cyc * cfg.mac_peak), 4) if cyc else 0.0,
        "engines": round((pat / pe_peak + i8 / cfg.mac_peak) / cyc, 4) if cyc else 0.0,
        "lut": round(res["lut"] / b.resources["lut"], 4),
        "ff": round(res["ff"] / b.resources["ff"], 4),
        "dsp": round(res["dsp"] / b.resources["dsp"], 4),
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
        "resources": {"lut": res["lut"], "ff": res["ff"], "dsp": res["dsp"], "bram_blocks": bram_blocks,
                      "budget": {k: b.resources[k] for k in ("lut", "ff", "dsp", "bram_blocks")},
                      "detail": res["detail"], "memories": ir.memory_blocks["per_memory"],
                      "lutram_luts": ir.memory_blocks["lutram_luts"], "estimate": True},
        "utilization": util,
        "host_link": {"uart_baud": uart_baud, "input_bytes": in_bytes,
                      "input_transfer_s": in_bytes * 10 / uart_baud if uart_baud else None,
                      "note": "not included in cycles_per_inference (image already in the RX FIFO)"},
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
             f"- host link: {rep['host_link']['input_bytes']} input bytes at {rep['host_link']['uart_baud']} baud "
             f"= {rep['host_link']['input_transfer_s'] * 1e3:.2f} ms per image over UART (not in the cycle count)"
             if rep["host_link"]["input_transfer_s"] else "", "",
             "| # | layer | type | output | MACs | on-chip bytes | pattern stored / bits | tiles | cycles | pattern busy "
             "| MAC busy | util PE | util MAC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["layers"]:
        ratio = f"{r['pattern_storage_ratio']:.2f}x" if r.get("pattern_bits") else ""
        lines.append(f"| {r['index']} | {r['name']} | {r['type']} | {r['shape']} | {r['macs']:,} | {r['onchip_bytes']:,} "
                     f"| {ratio} | {r['tiles']} | {r['cycles']:,} | {r['pattern_busy']:,} | {r['mac_busy']:,} "
                     f"| {r['utilization']['pattern_engine']:.1%} | {r['utilization']['mac_array']:.1%} |")
    lines += ["", "On-chip memory (bytes): " + ", ".join(f"{k} {v:,}" for k, v in rep["onchip_breakdown"].items()), ""]
    captions = {"timeline": "Unit timeline: each instruction's busy cycles on the pattern engine, the MAC array, the "
                            "post-process and the host link, so the two engines' overlap inside PRB tiles shows (zoom below).",
                "cycles_by_layer": "Cycles per layer, split into the busiest unit's busy cycles and the rest "
                                   "(gather / control), with each layer classified engine-bound or gather/control.",
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
    prog = encode_program(ir.instructions)
    (out / "program.bin").write_bytes(prog)
    (out / "program.hex").write_text(_hex(prog, WORD_BYTES))
    txt = [f"; sephw program for {ir.board.name}, arch {ir.arch.hash()}, {len(ir.instructions)} "
           f"instructions of {WORD_BITS} bits; start/cycles predicted by the cycle model of the {hw.CYCLE_MODEL}"]
    for s, ins in zip(ir.schedule, ir.instructions):
        txt.append(f"{s['index']:5d} @{s['start']:>9d} +{s['cycles']:<7d} {ins.text()}")
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
             "instructions": [{k: v for k, v in s.items() if v not in (None, "", [], {})} for s in ir.schedule]}
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
    rep["plots"] = compile_plots(ir, out)
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    (out / "report.md").write_text(report_md(rep))
    return rep
