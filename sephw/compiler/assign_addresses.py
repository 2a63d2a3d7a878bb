"""Pass 4: AssignAddresses, every tensor ring's base and every layer's memory words."""
from __future__ import annotations

import math

from ..intgraph import InputNode, PoolFCNode, SkipOperand
from .ir import ACT_ALIGN, FIELD_MAX, PARAM_WORD_BYTES, TENSOR_DESC_BYTES, CompileError, CompileIR, Region
from .memory import first_fit
from ..arch.config import dma_beats, pattern_depth
from . import hw
from .paging import paged_length
from .operands import (STREAMED, block_words, fc_blocks, operand_words, param_words_of, params_streamed, step_words,
                       stream_memory)


def spilled_bytes(ir: CompileIR, name: str) -> int:
    """External-memory bytes of spilled tensor ``name``: its rows packed (HWC), to whole words."""
    t, wb = ir.tensors[name], ir.board.external.data_bits // 8
    return -(-t.row_bytes * t.spec.height // wb) * wb


def program_region_words(ir: CompileIR) -> int:
    """On-chip program words of a paged Program's pages in the external image (0: not paged)."""
    if not ir.program_page:
        return 0
    from .emit_instructions import program_of
    n = paged_length(len(program_of(ir.tiles, lambda t: None)), ir.program_page)
    return -(-n // ir.program_page) * ir.program_page


class AssignAddresses:
    CONTRACT = "give every tensor ring a base in the activation memory and every layer its " \
               "pattern, weight and parameter words; no two live regions overlap"

    def run(self, ir: CompileIR) -> CompileIR:
        items = [(t.name, t.nbytes, t.live[0], t.live[1]) for t in ir.tensors.values()]
        bases, top = first_fit(items)
        for name, base in bases.items():
            ir.tensors[name].base = base
        cfg = ir.cfg
        pat = wgt = prm = dw = 0
        # streamed steps: each tile's blocks in the memory's buffer after its resident words
        # (operand after operand), and in the external image tile block after tile block
        st_mem = ir.static
        buf_base = {mem: st_mem.buffer_base(mem) for mem in STREAMED}
        beats = dma_beats(cfg, ir.board.external.data_bits) if ir.streamed else 0
        # a paged Program takes the external image's first words (paging.py), whole pages
        ext = program_region_words(ir) * beats
        for lay in ir.layers:
            n = lay.node
            if isinstance(n, InputNode):
                continue
            # a PostProcess with U units reads U parameter banks at param_base / U: every
            # layer's parameters start on a multiple of U (emit pads the image with zero words)
            prm = -(-prm // cfg.pp_units) * cfg.pp_units
            ir.prm_base[lay.index] = prm
            if isinstance(n, PoolFCNode):
                if (lay.index, 0) in ir.streamed:     # chunk by chunk through the weight buffer
                    ir.pool_weight_word = buf_base["weights"]
                    ir.ext_addr[(lay.index, 0, "weights")] = ext
                    ext += math.prod(fc_blocks(cfg, n)) * beats
                else:
                    ir.pool_weight_word = wgt
                    wgt += math.prod(fc_blocks(cfg, n))
                prm += n.weight.shape[0]
                continue
            if params_streamed(lay, ir.streamed):
                # the layer's parameter words (their on-chip layout, padding included) in the
                # external image after its steps' blocks; each tile loads its channels' words
                # into the parameter buffer's half
                n_prm = param_words_of(cfg, lay, n.out.channels)
            else:
                prm += param_words_of(cfg, lay, n.out.channels)
                n_prm = 0
            for si, st in enumerate(lay.steps):
                streamed = (lay.index, si) in ir.streamed
                if streamed:
                    for mem, words in step_words(cfg, st, st.tc).items():
                        if words:
                            ir.ext_addr[(lay.index, si, mem)] = ext
                            ext += words * beats
                    off = dict(buf_base)
                for oi, op in enumerate(st.operands):
                    if isinstance(op, SkipOperand):
                        continue
                    w = operand_words(cfg, op, st.out_channels, st.tc)
                    mem = stream_memory(cfg, op)
                    if streamed and mem:
                        ir.words[(lay.index, si, oi)] = off[mem]
                        off[mem] += block_words(cfg, op, st.tc)
                    elif hw.dw_operand(cfg, op):      # the depthwise pattern memory's words
                        ir.words[(lay.index, si, oi)] = dw
                        dw += w
                    elif op.kind == "pattern":
                        ir.words[(lay.index, si, oi)] = pat
                        pat += w
                    else:
                        ir.words[(lay.index, si, oi)] = wgt
                        wgt += w
            if n_prm:
                for si in range(len(lay.steps)):
                    ir.ext_addr[(lay.index, si, "params")] = ext
                ext += n_prm * beats
        pat += st_mem.pattern_buffer
        wgt += st_mem.weight_buffer
        if st_mem.param_buffer:
            prm = -(-prm // cfg.pp_units) * cfg.pp_units + st_mem.param_buffer
        if ir.streamed:
            ir.external = Region("external", ir.board.external.data_bits // 8, ext)
            wb = ir.external.word_bytes
            # spilled tensors after the external image, each from a word on (rows packed, HWC)
            spill = 0
            for name in ir.spills:
                ir.spill_addr[name] = ir.external.nbytes + spill
                spill += spilled_bytes(ir, name)
            # the input image takes the DRAM's last words (sephw.arch.memmap input_base)
            image = -(-math.prod(ir.graph.input.out.shape) // wb) * wb
            ir.input_addr = ir.board.external.bytes - image
            if ir.external.nbytes + spill + image > ir.board.external.bytes:
                raise CompileError(f"the streamed pattern and weight words take {ir.external.nbytes} bytes of "
                                   f"external memory, the spilled tensors {spill} and the input image {image}, "
                                   f"{ir.board.name} has {ir.board.external.bytes}")
        # the patterns image: the main memory's words, then (from the main memory's depth on,
        # ArchConfig.dw_base) the depthwise pattern memory's
        S = cfg.pattern_slices
        pat_words = pattern_depth(pat, S) * S + dw if dw else pat
        ir.memory = {"activations": Region("activations", 1, top),
                     "patterns": Region("patterns", cfg.pattern_mem_bytes, pat_words),
                     "weights": Region("weights", cfg.weight_word_bytes, wgt),
                     "params": Region("params", PARAM_WORD_BYTES, prm),
                     "tensors": Region("tensors", TENSOR_DESC_BYTES, len(ir.tensors))}
        return ir

    def check(self, ir: CompileIR) -> None:
        ts = list(ir.tensors.values())
        for i, a in enumerate(ts):
            assert a.base >= 0 and a.base % ACT_ALIGN == 0 and a.base + a.nbytes <= ir.memory["activations"].words
            for b in ts[i + 1:]:
                if a.live[1] < b.live[0] or b.live[1] < a.live[0]:
                    continue
                assert a.base + a.nbytes <= b.base or b.base + b.nbytes <= a.base, (a.name, b.name)
        for r in ir.memory.values():
            assert r.nbytes <= ir.budget
        assert ir.memory["activations"].nbytes == ir.onchip["activations"]
        # the words TileLayers counted are the words laid out here
        assert ir.memory["weights"].words == ir.static.weight_words
        assert ir.memory["params"].words == ir.static.param_words
        s, st = ir.cfg.pattern_slices, ir.static
        assert ir.memory["patterns"].words == (pattern_depth(st.pattern_words, s) * s + st.dw_words
                                               if st.dw_words else st.pattern_words)
        for key, w in ir.words.items():
            assert w <= FIELD_MAX["wa"]
        # streamed operands address the buffers, one tile's words after the resident ones
        for (l, si, oi), w in ir.words.items():
            mem = stream_memory(ir.cfg, ir.layers[l].steps[si].operands[oi]) if ir.layers[l].steps else None
            if (l, si) in ir.streamed and mem:
                assert st.buffer_base(mem) <= w < st.buffer_base(mem, 1), (l, si, oi, w)   # half 0
        assert (ir.external is not None) == bool(ir.streamed)
