"""Pass 4: AssignAddresses, every tensor ring's base and every layer's memory words."""
from __future__ import annotations

import math

from ..intgraph import InputNode, PoolFCNode, SkipOperand
from .ir import ACT_ALIGN, FIELD_MAX, PARAM_WORD_BYTES, TENSOR_DESC_BYTES, CompileIR, Region
from .memory import first_fit
from ..arch.config import pattern_depth
from . import hw
from .operands import block_words, param_words_of


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
        for lay in ir.layers:
            n = lay.node
            if isinstance(n, InputNode):
                continue
            # a PostProcess with U units reads U parameter banks at param_base / U: every
            # layer's parameters start on a multiple of U (emit pads the image with zero words)
            prm = -(-prm // cfg.pp_units) * cfg.pp_units
            ir.prm_base[lay.index] = prm
            if isinstance(n, PoolFCNode):
                ir.pool_weight_word = wgt
                wgt += math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(n.weight.shape[1] / cfg.mac_cols)
                prm += n.weight.shape[0]
                continue
            prm += param_words_of(cfg, lay, n.out.channels)
            for si, st in enumerate(lay.steps):
                blocks = math.ceil(st.out_channels / st.tc)
                for oi, op in enumerate(st.operands):
                    if isinstance(op, SkipOperand):
                        continue
                    w = blocks * block_words(cfg, op, st.tc)
                    if hw.dw_operand(cfg, op):      # the depthwise pattern memory's words
                        ir.words[(lay.index, si, oi)] = dw
                        dw += w
                    elif op.kind == "pattern":
                        ir.words[(lay.index, si, oi)] = pat
                        pat += w
                    else:
                        ir.words[(lay.index, si, oi)] = wgt
                        wgt += w
        # the patterns image: the main memory's words, then (from the main memory's depth on,
        # ArchConfig.dw_base) the depthwise pattern memory's
        S = cfg.pattern_slices
        pat_words = pattern_depth(pat * S, S) * S + dw if dw else pat * S
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
        assert ir.memory["patterns"].words == (pattern_depth(st.pattern_words * s, s) * s + st.dw_words
                                               if st.dw_words else st.pattern_words * s)
        for key, w in ir.words.items():
            assert w <= FIELD_MAX["wa"]
