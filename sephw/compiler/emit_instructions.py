"""Pass 5: EmitInstructions, one instruction per tile, and the ArchConfig the Program needs."""
from __future__ import annotations

import math

from tqdm import tqdm

from ..arch.config import ArchConfig, dma_beats
from ..arch.memmap import SELECT, MemoryMap
from ..arch.isa import FLAG_DW_PATTERN, FLAG_FINAL, WORD_BYTES, Instruction, Op, pool_sum_planes
from ..arch.link import MAX_PAYLOAD  # the host link's frame buffer (docs/protocol.md)
from ..intgraph import PoolFCNode, SkipOperand
from .hw import EngineConfig, dw_operand
from .ir import CompileError, CompileIR, ProgramEntry, Tile
from .paging import paginate
from .operands import block_place, block_words, chunk_slices, fc_blocks, operand_reads, param_blocks, param_word, params_streamed, stream_memory


def arch_config(ir: CompileIR) -> ArchConfig:
    """The ArchConfig the Program and images need: the sized engines, the memory depths the
    addresses reached, the widest tensor, the logits, the host link's buffers, the clock."""
    g = ir.graph
    classes = int(g.output.weight.shape[0])
    return ArchConfig(engine=ir.cfg, act_bytes=ir.memory["activations"].nbytes,
                      pattern_words=ir.static.pattern_words,
                      dw_words=ir.static.dw_words, weight_words=ir.memory["weights"].words,
                      param_words=ir.memory["params"].words, tensors=ir.memory["tensors"].words,
                      program_words=2 * ir.program_page if ir.program_page else len(ir.program),
                      program_page=ir.program_page,
                      max_channels=max(t.spec.channels for t in ir.tensors.values()),
                      max_classes=classes, input_bytes=math.prod(g.input.out.shape), logit_bytes=8 * classes,
                      frame_bytes=MAX_PAYLOAD, clock_hz=int(ir.board.clock_hz),
                      # the external memory port where steps are streamed: the board's DRAM whole
                      ext_data_bits=ir.board.external.data_bits if ir.streamed else 0,
                      ext_words=ir.board.external.words if ir.streamed else 0)


def program_of(tiles, instruction) -> list[ProgramEntry]:
    """The Program of ``tiles`` in order, ``instruction(tile)`` each: a SYNC before the STORE of
    the logits, then SYNC and END."""
    out = []
    for t in tiles:
        if t.opcode == Op.STORE:
            out.append(ProgramEntry(Instruction(Op.SYNC, comment="logits complete"), None))
        out.append(ProgramEntry(instruction(t), t))
    out.append(ProgramEntry(Instruction(Op.SYNC), None))
    out.append(ProgramEntry(Instruction(Op.END), None))
    return out


class EmitInstructions:
    CONTRACT = "one instruction per tile (LOAD, DMA_LOAD, SPILL, CONV_PATTERN, CONV_INT, PRB, RESADD, POOL_FC, STORE), " \
               "then SYNC and END; every field fits its width"

    def run(self, ir: CompileIR) -> CompileIR:
        tid = {name: tensor.id for name, tensor in ir.tensors.items()}
        def instruction(t: Tile) -> Instruction:
            ins = tile_instruction(ir, ir.cfg, t, tid)
            ins.encode()      # raises ISAError naming the field that does not fit
            return ins
        ir.program = program_of(tqdm(ir.tiles, desc="emit", disable=not ir.progress, leave=False), instruction)
        if ir.program_page:
            ir.program = paginate(ir.program, ir.program_page, dma_beats(ir.cfg, ir.board.external.data_bits))
        ir.arch = arch_config(ir)
        return ir

    def check(self, ir: CompileIR) -> None:
        assert ir.program[-1].instruction.op == Op.END
        assert (2 * ir.program_page if ir.program_page else len(ir.program)) * WORD_BYTES == ir.onchip["program"], \
            (len(ir.program), ir.onchip["program"])
        if ir.streamed:         # the input image's DRAM words, as the device's memory map has them
            assert ir.input_addr == MemoryMap(ir.arch).input_base * ir.external.word_bytes
        for e in ir.program:
            ins = e.instruction
            assert Instruction.decode(ins.encode()) == ins
            # a tile's instruction computes that tile's layer; SYNC / END and the Program's
            # page loads have none
            assert (e.tile is None) == (ins.op in (Op.SYNC, Op.END) or ins.op == Op.DMA_LOAD
                                        and ins.mem == SELECT["program"]), ins.text()
            assert e.tile is None or (e.tile.layer == ins.layer and e.tile.opcode == ins.op), ins.text()
            if ins.op == Op.DMA_LOAD and e.tile is None:     # a Program page, within the Program's pages
                beats = dma_beats(ir.cfg, ir.board.external.data_bits)
                assert ins.ext_addr + ins.length * beats <= -(-len(ir.program) // ir.program_page) * \
                    ir.program_page * beats, ins.text()
            elif ins.op == Op.DMA_LOAD:     # within the external image and the memory's buffer
                beats = dma_beats(ir.cfg, ir.board.external.data_bits)
                assert ins.ext_addr + ins.length * beats <= ir.external.words, ins.text()
                assert ins.waddr + ins.length <= ir.memory[e.tile.mem].words, ins.text()
            if ins.op in (Op.LOAD, Op.SPILL) and ir.streamed:     # the rows' bytes in external memory
                assert ir.external.nbytes <= ins.ext_addr and \
                    ins.ext_addr + ins.length <= ir.board.external.bytes, ins.text()


def tile_instruction(ir: CompileIR, cfg: EngineConfig, t: Tile, tid: dict[str, int],
                     addresses: bool = True) -> Instruction:
    """The instruction that computes tile ``t`` on the overlay ``cfg``; ``tid`` maps tensor
    names to ids. ``addresses=False``: its shape only, the weight, pattern and parameter
    addresses 0 (AssignAddresses has not run; the cycle model does not read them: the sizer's
    estimate, size_engines.top_cycles)."""
    lay = ir.layers[t.layer]
    n = lay.node
    if t.opcode in (Op.LOAD, Op.SPILL):
        ext_addr = 0
        if ir.streamed and addresses:       # the rows' bytes in external memory
            base = ir.spill_addr[n.name] if n.name in ir.spills else ir.input_addr
            ext_addr = base + t.row0 * ir.tensors[n.name].row_bytes
        if t.opcode == Op.SPILL:
            return Instruction(Op.SPILL, layer=t.layer, src_a=tid[n.name], row0=t.row0, rows=t.rows,
                               ext_addr=ext_addr, length=t.length, comment=f"band {t.band}: rows to external memory")
        what = "input rows from the host link" if not ir.streamed else \
            "spilled rows from external memory" if n.name in ir.spills else "input rows from external memory"
        return Instruction(Op.LOAD, layer=t.layer, dst=tid[n.name], row0=t.row0, rows=t.rows,
                           ext_addr=ext_addr, length=t.length, comment=f"band {t.band}: {what}")
    if t.opcode == Op.DMA_LOAD:
        ext_addr = waddr = 0
        if addresses:       # the tile's block in the external image -> the memory's buffer
            beats = dma_beats(cfg, ir.board.external.data_bits)
            if isinstance(n, PoolFCNode):      # an FC chunk: its classes' blocks
                first = (t.c0 // cfg.lanes) * fc_blocks(cfg, n)[1]
            elif t.mem == "params":            # the tile's channels' words of the layer's
                first = param_word(param_blocks(cfg, lay), t.c0)
            else:                              # the tile's block (a lane pair's: the pair's)
                st = lay.steps[t.step]
                blk = (t.c0 - st.out_c0) // st.tc
                op = next(op for op in st.operands if stream_memory(cfg, op) == t.mem)
                first = block_place(cfg, op, st.tc, blk)[0] * t.length
            ext_addr = ir.ext_addr[(t.layer, t.step, t.mem)] + first * beats
            waddr = ir.static.buffer_base(t.mem, t.half)
        return Instruction(Op.DMA_LOAD, layer=t.layer, deps=t.deps, mem=SELECT[t.mem], waddr=waddr, ext_addr=ext_addr,
                           length=t.length,
                           comment=f"band {t.band}: {n.name} {t.mem} of {'classes' if isinstance(n, PoolFCNode) else 'channels'} "
                                   f"{t.c0}..{t.c0 + t.tc - 1} from external memory")
    if t.opcode == Op.STORE:
        return Instruction(Op.STORE, layer=t.layer, src_a=tid[n.input], length=t.length,
                           comment="logits (int64) to the host link")
    if t.opcode == Op.POOL_FC:
        streamed = (t.layer, 0) in ir.streamed
        src = ir.tensors[n.input].spec
        # the FC's passes: the byte planes every pool sum fits in (the RTL's 0 is all four)
        planes = pool_sum_planes(src.height * src.width, src.bits, src.signed) % 4 if t.flags & FLAG_FINAL else 0
        return Instruction(Op.POOL_FC, layer=t.layer, deps=t.deps, src_a=tid[n.input], row0=t.row0, rows=t.rows,
                           fc_planes=planes,
                           wa=(ir.static.buffer_base("weights", t.half) if streamed else ir.pool_weight_word)
                           if addresses else 0,
                           prm=ir.prm_base[t.layer] + t.c0 if addresses else 0, c0=t.c0, tc=t.tc, flags=t.flags,
                           comment=f"band {t.band}: {n.name}")
    st = lay.steps[t.step]
    op_a = st.operands[0]
    op_b = st.operands[1] if len(st.operands) > 1 else None
    wa = wb = prm = lane_rot = 0
    if addresses:
        # a streamed step's operands sit in the buffers, the tile's block alone (DMA_LOAD)
        streamed = (t.layer, t.step) in ir.streamed
        blk = (t.c0 - st.out_c0) // st.tc

        def word(oi, op):
            """The operand's first word: its block, or its place in the tile's buffer half."""
            if streamed and stream_memory(cfg, op):
                mem = stream_memory(cfg, op)
                return ir.words[(t.layer, t.step, oi)] + ir.static.buffer_base(mem, t.half) - ir.static.buffer_base(mem)
            return ir.words[(t.layer, t.step, oi)] + block_place(cfg, op, st.tc, blk)[0] * block_words(cfg, op, st.tc)
        wa = word(0, op_a)
        # lane pairs: the second block of a pair reads its filters from the words' upper lanes
        lane_rot = block_place(cfg, op_a, st.tc, blk)[1]
        if op_b is not None and not isinstance(op_b, SkipOperand):
            wb = word(1, op_b)
    # input channels each operand reads (precomputed here so the sequencer needs no
    # divider): the tile's first group times Cg, and groups in the tile times Cg
    cin0, na = operand_reads(op_a, t.c0 - st.out_c0, t.tc, st.in_c0)
    if isinstance(op_b, SkipOperand):
        cin0_b, nb = t.c0, t.tc
    elif op_b is not None:
        cin0_b, nb = operand_reads(op_b, t.c0 - st.out_c0, t.tc, 0)
    else:
        cin0_b, nb = 0, 0
    if addresses and params_streamed(lay, ir.streamed):     # loaded into the buffer's half
        prm = ir.static.buffer_base("params", t.half)
    elif addresses:
        prm = ir.prm_base[t.layer] + param_word(param_blocks(cfg, lay), t.c0)
    if prm % cfg.pp_units:
        raise CompileError(f"{n.name}: the tile at channel {t.c0} has parameter word {prm}, "
                           f"not a multiple of the {cfg.pp_units} PostProcess units")
    return Instruction(t.opcode, layer=t.layer, deps=t.deps, src_a=tid[op_a.input],
                       src_b=tid[op_b.input] if op_b is not None else tid[op_a.input],
                       dst=tid[n.name], wa=wa, wb=wb, prm=prm,
                       c0=t.c0, tc=t.tc, cin0=cin0, cin0_b=cin0_b, na=na, nb=nb,
                       row0=t.row0, rows=t.rows, k=op_a.k,
                       stride=op_a.stride, pad=op_a.padding, groups_a=op_a.groups,
                       groups_b=getattr(op_b, "groups", 0) if op_b is not None else 0,
                       flags=t.flags | (FLAG_DW_PATTERN if dw_operand(cfg, op_a) else 0),
                       pshift=chunk_slices(cfg, op_a, st.tc).bit_length() - 1
                       if op_a.kind == "pattern" and not dw_operand(cfg, op_a) else 0,
                       lane_rot=lane_rot, comment=f"band {t.band}: {n.name}")
