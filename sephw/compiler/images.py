"""The memory images of a build directory: the weights laid out at the addresses pass 4
assigned (AssignAddresses), in the word formats of docs/isa.md ("Memory images"), and the
external image of the words kept in the board's DRAM."""
from __future__ import annotations

import math

import numpy as np

from ..arch.config import dma_beats, dw_pattern_words, pattern_depth
from ..arch.formats import PARAM_WORD, TENSOR_DESC
from ..arch.isa import WORD_BYTES
from ..intgraph import InputNode, PoolFCNode, SkipOperand
from . import hw
from .ir import PARAM_WORD_BYTES, CompileError
from .operands import (STREAMED, chunk_channels, chunk_slices, chunks as _chunks, lane_paired, param_blocks, param_word,
                       params_streamed, stream_memory)

B48 = PARAM_WORD.field("bias").hi


def pattern_words(ir) -> bytes:
    """The pattern memory: per pattern operand, per channel block, per input chunk of ``cc``
    channels, ``chunk_slices`` memory words of ``pattern_mem_bits`` (each zero-padded to whole
    bytes) holding the chunk's ``lanes * cc * kk^2`` pattern bits tap-major, low bits first: bit
    ``((c*kk + i)*kk + j)*lanes + l`` (:func:`sephw.arch.config.pattern_bit`) is 1 where
    ``B[o, c, i, j] = +1`` for lane ``l``'s output channel ``o`` (``c`` relative to the chunk of
    the lane's group), the rest 0; ``kk`` is the kernel ``k``, or ``k_max`` on an overlay
    without ``dense_kernels`` (``EngineConfig.kernel_layout``). ``chunk_slices`` (:func:`~sephw.compiler.operands.chunk_slices`,
    a power of two up to ``pattern_slices``) is the instruction's ``pshift``.

    Operands in the pattern engine's depthwise mode (:func:`~sephw.compiler.hw.dw_operand`)
    are in the depthwise pattern memory instead, after the main memory's depth
    (``ArchConfig.dw_base``; zero words in between): per channel block of ``dw_lanes`` channels,
    ``dw_slices(k_max, k)`` words of ``dw_lanes`` lane fields of ``2*k_max + 3`` bits; word
    ``s`` of a block holds bits ``s*(2*k_max+3) ..`` of each lane's ``k_max x k_max`` tap grid
    (bit ``i*k_max + j``, 1 where ``B[o, 0, i, j] = +1``), each word zero-padded to the main
    memory's word bytes.

    The tiles of streamed steps (``ir.streamed``) are in the external image instead
    (:func:`external_words`); their buffer, zero words, follows the resident words."""
    cfg = ir.cfg
    S = cfg.pattern_slices
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
                if (lay.index, si) in ir.streamed:
                    continue
                assert len(words) == ir.words[(lay.index, si, oi)]
                words += [w for blk in _pattern_blocks(cfg, op, st) for w in blk]
    words += [bytes(cfg.pattern_mem_bytes)] * ir.static.pattern_buffer
    if dw_words:
        zero = bytes(cfg.pattern_mem_bytes)
        words += [zero] * (pattern_depth(len(words), S) * S - len(words))      # up to dw_base
        words += dw_words
    return b"".join(words)


def _pattern_blocks(cfg, op, st) -> list[list[bytes]]:
    """A pattern operand's memory words (:func:`pattern_words`), per channel block of ``st.tc``;
    with :func:`~sephw.compiler.operands.lane_paired`, per pair of blocks (the second's filters
    in lanes ``lanes/2 ..`` of the first's words)."""
    n_sl, sbits, L = chunk_slices(cfg, op, st.tc), cfg.pattern_mem_bits, cfg.lanes
    pairs = lane_paired(cfg, op, st.tc)
    w = (op.weight > 0).numpy()                       # (O, Cg, k, k) bool
    o_tot, cg, k, _ = w.shape
    kk = cfg.kernel_layout(k)                         # the taps' grid: k, or k_max (zeros around)
    cin_eff = chunk_channels(cfg, op, st.tc)
    out = []
    for bi, b0 in enumerate(range(0, st.out_channels, st.tc)):
        n = min(st.tc, o_tot - b0)
        lane0 = L // 2 if pairs and bi % 2 else 0       # a pair's second block: the upper lanes
        blk = []
        for ch in range(_chunks(cfg, op, st.tc)):
            c_lo, c_hi = ch * cin_eff, min(cg, (ch + 1) * cin_eff)
            # tap-major: (c, i, j, lane), lane fastest (sephw.arch.config.pattern_bit)
            grid = np.zeros((c_hi - c_lo, kk, kk, L), dtype=np.uint8)
            grid[:, :k, :k, lane0:lane0 + n] = w[b0:b0 + n, c_lo:c_hi].transpose(1, 2, 3, 0)
            bits = np.zeros(n_sl * sbits, dtype=np.uint8)
            bits[:grid.size] = grid.reshape(-1)
            blk.append(bits)
        if lane0:       # into the pair's words (the lanes are disjoint)
            out[-1] = [a | b for a, b in zip(out[-1], blk)]
        else:
            out.append(blk)
    return [[np.packbits(bits[sl * sbits:(sl + 1) * sbits], bitorder="little").tobytes()
             for bits in blk for sl in range(n_sl)] for blk in out]


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
            if (lay.index, 0) not in ir.streamed:
                assert n == ir.pool_weight_word
                fc = _fc_words(cfg, node)
                out += fc
                n += len(fc)
            continue
        for si, st in enumerate(lay.steps):
            for oi, op in enumerate(st.operands):
                if isinstance(op, SkipOperand) or op.kind != "int8" or (lay.index, si) in ir.streamed:
                    continue
                assert n == ir.words[(lay.index, si, oi)], (lay.name, n, ir.words[(lay.index, si, oi)])
                blk = [w for b in _weight_blocks(cfg, op, st) for w in b]
                out += blk
                n += len(blk)
    out += [bytes(cfg.weight_word_bytes)] * ir.static.weight_buffer
    return b"".join(out)


def _fc_words(cfg, node) -> list[bytes]:
    """The FC's weight words: ``ceil(O/lanes) x ceil(C/mac_cols)``, block of ``lanes`` classes
    after block, ``w[o][c]`` at byte ``(o mod lanes)*mac_cols + c mod mac_cols``."""
    w = node.weight.numpy().astype(np.int8)
    o_tot, c_tot = w.shape
    out = []
    for ob in range(math.ceil(o_tot / cfg.lanes)):
        for cb in range(math.ceil(c_tot / cfg.mac_cols)):
            word = np.zeros((cfg.lanes, cfg.mac_cols), dtype=np.int8)
            blk = w[ob * cfg.lanes:(ob + 1) * cfg.lanes, cb * cfg.mac_cols:(cb + 1) * cfg.mac_cols]
            word[:blk.shape[0], :blk.shape[1]] = blk
            out.append(word.tobytes())
    return out


def _weight_blocks(cfg, op, st) -> list[list[bytes]]:
    """An int8 operand's weight words (:func:`weight_words`), per channel block of ``st.tc``."""
    out = []
    for b0 in range(0, st.out_channels, st.tc):
        m = _mac_word_rows(op, b0, st.tc, cfg)
        blk = []
        for ch in range(m.shape[1] // cfg.mac_cols):
            word = np.zeros((cfg.lanes, cfg.mac_cols), dtype=np.int8)
            word[:st.tc] = m[:, ch * cfg.mac_cols:(ch + 1) * cfg.mac_cols]
            blk.append(word.tobytes())
        out.append(blk)
    return out


def external_words(ir) -> bytes:
    """The external image (``external.bin``): the streamed steps' pattern and int8 weight
    words, step after step, per memory (patterns, then weights) tile block after tile block,
    each block its operands' words in operand order, after a layer's steps its parameter
    words where the whole layer streams (a streamed FC: its words in
    :func:`weight_words`' order, a chunk of classes its consecutive blocks), as a DMA_LOAD moves them: every on-chip
    word as ``dma_beats`` external words of ``ext_data_bits``, low bits first, zero-padded.
    A paged Program (paging.py) comes first."""
    cfg = ir.cfg
    if not ir.streamed:
        return b""
    eb = ir.board.external.data_bits // 8
    wbytes = dma_beats(cfg, ir.board.external.data_bits) * eb
    out = []
    if ir.program_page:         # a paged Program first, whole pages (zero words: NOP)
        words = [i.to_bytes() for i in ir.instructions]
        words += [bytes(WORD_BYTES)] * (-len(words) % ir.program_page)
        out += [w.ljust(wbytes, b"\0") for w in words]
    for lay in ir.layers:
        if (lay.index, 0) in ir.streamed and isinstance(lay.node, PoolFCNode):    # the FC, whole
            assert sum(len(w) for w in out) // eb == ir.ext_addr[(lay.index, 0, "weights")]
            out += [w.ljust(wbytes, b"\0") for w in _fc_words(cfg, lay.node)]
        for si, st in enumerate(lay.steps):
            if (lay.index, si) not in ir.streamed:
                continue
            per_mem = {mem: [] for mem in STREAMED}
            for op in st.operands:
                mem = stream_memory(cfg, op)
                if mem:
                    per_mem[mem].append(_pattern_blocks(cfg, op, st) if mem == "patterns" else
                                        _weight_blocks(cfg, op, st))
            for mem, ops in per_mem.items():
                if not ops:
                    continue
                assert sum(len(w) for w in out) // eb == ir.ext_addr[(lay.index, si, mem)]
                for b in range(len(ops[0])):
                    for blocks in ops:
                        out += [w.ljust(wbytes, b"\0") for w in blocks[b]]
        if params_streamed(lay, ir.streamed):       # the layer's parameter words, after its steps
            assert sum(len(w) for w in out) // eb == ir.ext_addr[(lay.index, 0, "params")]
            out += [w.ljust(wbytes, b"\0") for w in _layer_param_words(ir, lay)]
    blob = b"".join(out)
    assert len(blob) == ir.external.nbytes, (len(blob), ir.external.nbytes)
    return blob


def _layer_param_words(ir, lay) -> list[bytes]:
    """A layer's parameter words from its first (its ``prm_base`` on chip): one per output
    channel at :func:`~sephw.compiler.operands.param_word`, zero words between padded tile
    blocks."""
    n = lay.node
    blocks = param_blocks(ir.cfg, lay)
    if isinstance(n, PoolFCNode):
        rows = zip(n.m.tolist(), [0] * len(n.m), n.bias.tolist(), [0] * len(n.m))
    else:
        rq = n.requant
        mb = rq.m_b.tolist() if rq.m_b is not None else [0] * n.out.channels
        rows = zip(rq.m_a.tolist(), mb, rq.bias.tolist(), rq.shift.tolist())
    out = []
    for c, (ma, mb_, b, s) in enumerate(rows):
        if abs(b) > B48:
            raise CompileError(f"{n.name}: channel {c} bias {b} does not fit the 48-bit parameter field")
        out += [bytes(PARAM_WORD_BYTES)] * (param_word(blocks, c) - len(out))
        out.append(PARAM_WORD.pack(m_a=ma, m_b=mb_, bias=b, shift=s))
    return out


def param_words(ir) -> bytes:
    """PostProcess parameters: 16 bytes per output channel, little-endian ``m_a`` i32,
    ``m_b`` i32 (0 with one accumulator), ``bias`` i48, ``shift`` u8, reserved u8; a layer's
    first channel at its ``prm_base`` (a multiple of ``pp_units``; zero words in between), its
    channels contiguous or, where its tiles are narrower than ``pp_units`` allows, in padded
    tile blocks (:func:`~sephw.compiler.operands.param_blocks`). Layers whose parameters
    stream from external memory are not here; the buffer their tiles load into is (zeros)."""
    out = []
    for lay in ir.layers:
        if isinstance(lay.node, InputNode) or params_streamed(lay, ir.streamed):
            continue
        # zero words up to the layer's (pp_units-aligned) base
        out += [bytes(PARAM_WORD_BYTES)] * (ir.prm_base[lay.index] - len(out))
        out += _layer_param_words(ir, lay)
    out += [bytes(PARAM_WORD_BYTES)] * (ir.memory["params"].words - len(out))
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
