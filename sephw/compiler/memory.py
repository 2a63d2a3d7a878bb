"""On-chip memories as the RTL top builds them: the static memories of an engine config, each
memory's geometry and block-RAM / LUTRAM cost, and first-fit placement of the activation
rings (shared by SizeEngines, TileLayers and AssignAddresses)."""
from __future__ import annotations

import math

from ..arch.config import pattern_depth
from ..arch.isa import WORD_BYTES
from ..arch.link import MAX_PAYLOAD  # the host link's frame buffer (docs/protocol.md)
from ..intgraph import InputNode, PoolFCNode
from . import hw
from .ir import ACT_ALIGN, PARAM_WORD_BYTES, TENSOR_DESC_BYTES, CompileIR, StaticMemory
from .operands import (PARAMS, fc_blocks, fc_chunk_words, fc_chunks, operand_words, param_tile_words, param_words_of,
                       params_streamed, step_operands, step_words, stream_memory, streamed_steps, tile_cost,
                       tile_stream_words)


def static_memory(ir: CompileIR, cfg: hw.EngineConfig, streamed: frozenset = frozenset()) -> StaticMemory:
    """Every memory except activations and program for the engines ``cfg``, laid out as
    AssignAddresses will lay them out. ``streamed``: the ``(layer, step)`` whose pattern and
    int8 weight words stay in external memory, and the parameters of layers whose every step is
    streamed (:func:`~sephw.compiler.operands.params_streamed`); each memory then holds, after
    its resident words, a buffer of two halves of the most words one such tile loads
    (``pattern_buffer``, ``weight_buffer``, ``param_buffer``: both halves), one for the tile
    computing, one for the next tile's words loading meanwhile; the input image is then in
    external memory as well, not in the host link's buffer."""
    g = ir.graph
    pat_words = wgt_words = params = dw_words = 0
    buf = {"patterns": 0, "weights": 0, "params": 0}
    for lay in ir.layers:
        n = lay.node
        if not isinstance(n, InputNode):
            params = -(-params // cfg.pp_units) * cfg.pp_units     # as AssignAddresses aligns them
        if isinstance(n, PoolFCNode):
            if (lay.index, 0) in streamed:      # the FC's chunks through the weight buffer
                buf["weights"] = max(buf["weights"], max(fc_chunk_words(cfg, n, c) for _, c in fc_chunks(cfg, n)))
            else:
                wgt_words += math.prod(fc_blocks(cfg, n))
            params += n.weight.shape[0]
            continue
        if isinstance(n, InputNode):
            continue
        p_streamed = params_streamed(lay, streamed)
        if not p_streamed:
            params += param_words_of(cfg, lay, n.out.channels)
        for si, st in enumerate(lay.steps):
            tc = min(hw.channel_block(cfg, step_operands(st)), st.out_channels)
            if p_streamed:
                buf["params"] = max(buf["params"], param_tile_words(cfg, tc))
            if (lay.index, si) in streamed:
                for mem, w in tile_stream_words(cfg, st, tc).items():
                    buf[mem] = max(buf[mem], w)
            for op in step_operands(st):
                w = operand_words(cfg, op, st.out_channels, tc)
                if (lay.index, si) in streamed and stream_memory(cfg, op):
                    continue
                if hw.dw_operand(cfg, op):
                    dw_words += w
                elif op.kind == "pattern":
                    pat_words += w
                else:
                    wgt_words += w
    # two halves: a tile computes on one while the next tile's words load into the other
    pat_words += 2 * buf["patterns"]
    wgt_words += 2 * buf["weights"]
    if buf["params"]:       # (its halves start on multiples of pp_units, as every tile's words)
        params = -(-params // cfg.pp_units) * cfg.pp_units + 2 * buf["params"]
    pool = g.output
    # the sliding window's column store: one entry per pattern chunk of the widest tensor
    # (rtl_gen/gather.py builds it from the manifest's widest tensor, at least 2 entries)
    store_chunks = max(2, math.ceil(max(t.spec.channels for t in ir.tensors.values()) / cfg.pe_cin))
    logit_bytes = pool.weight.shape[0] * 8
    # the host link's input buffer: the whole image, unless the build keeps words in external
    # memory, where the image lives in DRAM too (sephw.arch.memmap input_base; the system's
    # input feeder reads it during the run)
    input_bytes = 0 if streamed else math.prod(g.input.out.shape)
    return StaticMemory(
        # (the depthwise pattern memory: dw_word_bits per word, counted by its bits)
        memory_bytes={"patterns": pat_words * cfg.pattern_mem_bytes + -(-dw_words * cfg.dw_word_bits // 8),
                      "weights": wgt_words * cfg.weight_word_bytes,
                      "params": params * PARAM_WORD_BYTES,
                      "column_store": -(-cfg.column_store_bits // 8) * store_chunks,
                      "tensor_table": len(ir.tensors) * TENSOR_DESC_BYTES,
                      "pool_sums": g.spec(pool.input).channels * 4 + logit_bytes,
                      "host_link": MAX_PAYLOAD + input_bytes + logit_bytes},
        pattern_words=pat_words, dw_words=dw_words, weight_words=wgt_words, param_words=params, tensors=len(ir.tensors),
        pool_channels=g.spec(pool.input).channels, store_chunks=store_chunks,
        input_bytes=input_bytes, logit_bytes=logit_bytes,
        pattern_buffer=2 * buf["patterns"], weight_buffer=2 * buf["weights"], param_buffer=2 * buf["params"])


def streamable_steps(ir: CompileIR, cfg: hw.EngineConfig) -> list[tuple[int, int]]:
    """The ``(layer, step)`` with pattern or int8 weight words external memory can hold on the
    overlay ``cfg``, the most bytes first (streaming those frees the most block RAM per
    DMA_LOAD), then ``(layer, PARAMS)`` (:func:`~sephw.compiler.operands.params_streamed`)."""
    out = []
    for lay in ir.layers:
        if isinstance(lay.node, PoolFCNode):       # the FC, in chunks of classes (step 0)
            out.append((math.prod(fc_blocks(cfg, lay.node)) * cfg.weight_word_bytes, lay.index, 0))
        for si, st in enumerate(lay.steps):
            tc = min(hw.channel_block(cfg, step_operands(st)), st.out_channels)
            words = step_words(cfg, st, tc)
            nbytes = words["patterns"] * cfg.pattern_mem_bytes + words["weights"] * cfg.weight_word_bytes
            if nbytes:
                out.append((nbytes, lay.index, si))
    steps = [(l, s) for _, l, s in sorted(out, key=lambda x: (-x[0], x[1], x[2]))]
    in_list = set(steps)
    # then the parameters of the layers whose every step is in the list, the most words
    # first: they come after every step, so a prefix streams a layer's parameters only with
    # all its steps, and only where streaming every step's words was not enough
    params = [(-param_words_of(cfg, lay, lay.node.out.channels), lay.index) for lay in ir.layers
              if lay.steps and not isinstance(lay.node, PoolFCNode)
              and all((lay.index, si) in in_list for si in range(len(lay.steps)))]
    return steps + [(l, PARAMS) for _, l in sorted(params)]


def stream_cycles(ir: CompileIR, cfg: hw.EngineConfig, streamed: frozenset) -> int:
    """Cycles the DMA_LOADs of ``streamed`` steps add per inference on the overlay ``cfg``, one
    band, as the sizer estimates them: each DMA_LOAD's issue (``TOP_FETCH_NEXT``) and, per
    tile, what its load takes beyond the tile before it computes (the next tile's words load
    into the other buffer half meanwhile; the tile's own compute stands in for the one
    before)."""
    from ..arch.config import dma_beats
    from ..arch.isa import pool_sum_planes
    if not streamed:
        return 0
    ext = ir.board.external
    beats = dma_beats(cfg, ext.data_bits)
    load = hw.TOP_DISPATCH + ext.read_latency + hw.TOP_DMA
    total = 0
    for l, si in streamed_steps(streamed):
        n = ir.layers[l].node
        if isinstance(n, PoolFCNode):
            src = ir.graph.spec(n.input)
            planes = pool_sum_planes(src.height * src.width, src.bits, src.signed)
            for _, c in fc_chunks(cfg, n):
                fc = math.ceil(c / cfg.lanes) * planes * hw.fc_plane_cycles(cfg, src.channels)
                total += hw.TOP_FETCH_NEXT + max(0, load + fc_chunk_words(cfg, n, c) * beats - fc)
            continue
        st = ir.layers[l].steps[si]
        tc = min(hw.channel_block(cfg, step_operands(st)), st.out_channels)
        compute = tile_cost(cfg, st, ir.graph, n.out.height, tc)[0]
        words = [w for w in tile_stream_words(cfg, st, tc).values() if w]
        if params_streamed(ir.layers[l], streamed):
            words.append(tc)
        per_tile = len(words) * hw.TOP_FETCH_NEXT + max(0, sum(load + w * beats for w in words) - compute)
        total += math.ceil(st.out_channels / tc) * per_tile
    return total


def memory_geometry(cfg: hw.EngineConfig, static: StaticMemory, act_bytes: int, instructions: int) -> dict:
    """``{memory: (width bits, depth words[, copies])}`` of every on-chip memory, as the RTL
    top builds them: the activations in ``max(pe_cin, mac_cols, lanes)`` byte-wide banks
    (rtl_gen/actmem.py), the sliding window's column store (rtl_gen/gather.py), the host link's frame, input and logit
    buffers (rtl_gen/hostlink.py)."""
    banks = cfg.act_banks
    return {"activations": (8, max(2, math.ceil(act_bytes / banks)), banks),
            "host_frame": (8, MAX_PAYLOAD),
            "host_input": (8, static.input_bytes),
            "host_logits": (8, static.logit_bytes),
            "patterns": (cfg.pattern_mem_bits, pattern_depth(static.pattern_words, cfg.pattern_slices)
                         * cfg.pattern_slices),
            "dw_patterns": (cfg.dw_word_bits, static.dw_words),
            "weights": (8 * cfg.weight_word_bytes, static.weight_words, 1, cfg.weights_bram),
            "params": (8 * PARAM_WORD_BYTES, static.param_words),
            "tensor_table": (8 * TENSOR_DESC_BYTES, static.tensors),
            "program": (WORD_BYTES * 8, instructions),
            "column_store": (cfg.column_store_bits, static.store_chunks),
            "pool_sums": (32, static.pool_channels)}


def memory_blocks(vendor: str, geometry: dict) -> tuple[int, int, dict]:
    """Total block RAMs, LUTRAM LUTs and the per-memory ``(blocks, luts)``; a geometry entry
    is ``(width, depth[, copies[, block RAM however shallow]])``."""
    per = {}
    for k, (w, d, *n) in geometry.items():
        copies, block = n[0] if n else 1, len(n) > 1 and n[1]
        b, lut = hw.memory_cost(vendor, w, d, block=block)
        per[k] = (b * copies, lut * copies)
    return sum(b for b, _ in per.values()), sum(l for _, l in per.values()), per


def first_fit(items: list[tuple[str, int, int, int]]) -> tuple[dict, int]:
    """Place ``(name, bytes, live_from, live_to)`` so no two overlapping lifetimes overlap in
    memory; returns ``({name: base}, total bytes)``."""
    placed, bases, top = [], {}, 0
    for name, size, t0, t1 in sorted(items, key=lambda x: (-x[1], x[2])):
        size = -(-size // ACT_ALIGN) * ACT_ALIGN
        busy = sorted((b, b + s) for (b, s, u0, u1) in placed if not (u1 < t0 or t1 < u0))
        base = 0
        for b0, b1 in busy:
            if base + size <= b0:
                break
            base = max(base, b1)
        placed.append((base, size, t0, t1))
        bases[name] = base
        top = max(top, base + size)
    return bases, top
