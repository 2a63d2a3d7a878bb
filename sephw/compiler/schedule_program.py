"""Pass 6: ScheduleProgram, each instruction's start and cycles on the RTL top as built."""
from __future__ import annotations

from ..arch.config import dma_beats, spill_chunk
from ..arch.isa import DEP_SIGNAL_NEXT, DEP_WAIT_PREV, FLAG_FC_MORE, FLAG_FINAL, LOAD_QUEUE_DEPTH, Instruction, Op
from . import hw
from .ir import CompileIR, ScheduleEntry


def tensor_descs(ir: CompileIR) -> dict[int, hw.TensorDesc]:
    """Tensor id -> what the top reads of its tensor-table entry."""
    return {t.id: hw.TensorDesc(t.spec.height, t.spec.width, t.spec.channels, t.spec.bits)
            for t in ir.tensors.values()}


LOAD_QUEUE_TAKE = 2     # a pushed load reaches the LoadDMA 2 cycles later (the queue's
                        # buffered output, rtl_gen/loadunit.py)
BOOT_FETCH = 1          # a paged Program's boot load done -> the fetcher's go (rtl_gen/top.py BOOT)


def program_cycles(cfg: hw.EngineConfig, instructions: list, desc: dict,
                   dma: tuple[int, int] | None = None, waits: list | None = None, boot_words: int = 0) -> list[int]:
    """Each instruction's cycles on the RTL top as built, in Program order: the sequencer's
    (hw.top_instruction_cycles; the first waits for the first fetch; the first POOL_FC of an
    inference, and the first after each final one, clears the pool sums) and, where the
    Program has DMA_LOADs, a queue simulation of the LoadUnit beside it: a DMA_LOAD is pushed
    in its DISPATCH cycle, its load starts ``LOAD_QUEUE_TAKE`` cycles later or when the load
    before it is done (:func:`hw.load_cycles` each), its token (DEP_SIGNAL_NEXT) counts from
    the cycle after its end; an instruction with DEP_WAIT_PREV waits in DISPATCH until the
    oldest token counts; a SPILL waits in DISPATCH until the LoadDMA has nothing left
    (``hw.spill_cycles`` then). ``dma``: the external memory's ``(beats per on-chip word, read
    latency, SPILL piece bytes)`` (:func:`dma_timing`); ``waits``: a list that gets each instruction's cycles of
    waiting for a load. ``boot_words``: a paged Program's first two pages, which the top loads
    at ``start`` before it fetches (paging.py): the first instruction waits for them, and a
    SYNC waits until the LoadDMA has nothing left."""
    out = []
    first_pool = True
    t = 0                   # the cycle the instruction's interval starts
    free = 0                # the cycle the LoadDMA can take the next load
    tokens = []             # the cycles from which the loads' tokens count, oldest first
    starts = []             # the cycles the LoadDMA takes each load
    if boot_words:
        # start -> the boot load queued (BOOT) -> taken -> done -> the fetcher starts
        starts.append(LOAD_QUEUE_TAKE)
        free = LOAD_QUEUE_TAKE + hw.load_cycles(Instruction(Op.DMA_LOAD, length=boot_words), dma)
        t = free + BOOT_FETCH       # (the first instruction's cycles include it)
    boot = t
    for i, ins in enumerate(instructions):
        cyc = hw.top_instruction_cycles(cfg, ins, desc, clear_pool_sums=first_pool, first=i == 0)
        dispatch = t + hw.TOP_DISPATCH + (hw.TOP_FETCH_FIRST if i == 0 else 0)
        wait = 0
        if ins.op == Op.SYNC and starts:
            # a SYNC waits until the LoadUnit has nothing queued or running, while the next
            # instruction's fetch goes on
            wait = max(0, hw.TOP_DISPATCH + max(0, free + 1 - dispatch) - cyc)
        elif ins.op == Op.SPILL:
            # the DRAM's writes wait in DISPATCH until the LoadUnit has nothing queued or running
            # (its busy falls the cycle after the LoadDMA's done, as a token counts)
            wait = max(0, free + 1 - dispatch) if starts else 0
            cyc = hw.spill_cycles(ins, desc[ins.src_a], dma[2])
        elif ins.op == Op.DMA_LOAD:
            if sum(1 for x in starts if x > dispatch) >= LOAD_QUEUE_DEPTH:
                raise ValueError(f"instruction {i}: a DMA_LOAD beyond the LoadUnit's {LOAD_QUEUE_DEPTH} queued "
                                 f"loads (the sequencer would wait; not modelled, and the compiler never does it)")
            start = max(dispatch + LOAD_QUEUE_TAKE, free)
            starts.append(start)
            free = start + hw.load_cycles(ins, dma)
            if ins.deps & DEP_SIGNAL_NEXT:
                tokens.append(free + 1)
        elif ins.deps & DEP_WAIT_PREV:
            if not tokens:
                raise ValueError(f"instruction {i} waits for a load token that no DMA_LOAD before it gives")
            wait = max(0, tokens.pop(0) - dispatch)
        out.append(cyc + wait + (boot if i == 0 else 0))
        if waits is not None:
            waits.append(wait + (boot if i == 0 else 0))
        t += cyc + wait
        if ins.op == Op.POOL_FC:
            # the FC (its last chunk) clears the sums again
            first_pool = bool(ins.flags & FLAG_FINAL) and not ins.flags & FLAG_FC_MORE
    return out


def dma_timing(ir: CompileIR) -> tuple[int, int, int] | None:
    """``(beats per on-chip word, read latency, SPILL piece bytes)`` of the board's external
    memory as a DMA_LOAD and a SPILL see it (None without streamed steps)."""
    if not ir.streamed:
        return None
    ext = ir.board.external
    return dma_beats(ir.cfg, ext.data_bits), ext.read_latency, spill_chunk(ir.cfg.act_banks, ext.data_bits)


class ScheduleProgram:
    CONTRACT = "predict each instruction's start and cycles on the RTL top as built (hw.top_instruction_cycles); " \
               "PRB tiles occupy the pattern engine and the MAC array over the same interval (concurrently, on " \
               "the same tile)"

    def run(self, ir: CompileIR) -> CompileIR:
        # In-order issue: every compute instruction ends in the shared PostProcess, so one
        # instruction runs at a time; inside a PRB / pattern RESADD the two engines overlap.
        # ``cycles``: the RTL top as built (hw.top_instruction_cycles, what `sephw simulate`
        # measures); ``engine_cycles``: the engine-level model (hw.tile_cycles: the engines at
        # their measured rates behind an idealised window feed, the sizing objective), kept for comparison;
        # ``busy``: engine-level busy cycles per unit.
        waits = []
        cycles = program_cycles(ir.cfg, [e.instruction for e in ir.program], tensor_descs(ir), dma_timing(ir), waits,
                                boot_words=2 * ir.program_page)
        t = 0
        sched = []
        for i, (entry, cyc, wait) in enumerate(zip(ir.program, cycles, waits)):
            ins, tile = entry.instruction, entry.tile
            if ins.op == Op.LOAD:
                eng, busy = tile.length, {"host_link": tile.length}   # 1 byte/cycle from the RX FIFO
            elif tile is not None:
                eng, busy = tile.cycles, tile.busy
            else:
                eng, busy = 1, {}
            sched.append(ScheduleEntry(
                index=i, op=ins.op, layer=ir.layers[ins.layer].name if tile is not None else "",
                band=tile.band if tile is not None else None, start=t, cycles=int(cyc), engine_cycles=int(eng),
                units=tuple(sorted(k for k, v in busy.items() if v > 0)), load_wait=int(wait) or None,
                busy={k: int(v) for k, v in busy.items() if v > 0}))
            t += int(cyc)
        ir.schedule, ir.cycles = sched, t
        ir.engine_cycles = sum(s.engine_cycles for s in sched)
        return ir

    def check(self, ir: CompileIR) -> None:
        assert len(ir.schedule) == len(ir.program)
        prev_end = 0
        for s in ir.schedule:
            assert s.start == prev_end and s.cycles >= 1
            prev_end = s.start + s.cycles
            if s.op == Op.PRB:
                assert {"pattern", "mac"} <= set(s.units), s
                assert max(s.busy["pattern"], s.busy["mac"]) <= s.engine_cycles
        assert prev_end == ir.cycles
