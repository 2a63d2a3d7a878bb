"""Pass 6: ScheduleProgram, each instruction's start and cycles on the RTL top as built."""
from __future__ import annotations

from ..arch.config import dma_beats
from ..arch.isa import FLAG_FC_MORE, FLAG_FINAL, Op
from . import hw
from .ir import CompileIR


def tensor_descs(ir: CompileIR) -> dict[int, hw.TensorDesc]:
    """Tensor id -> what the top reads of its tensor-table entry."""
    return {t.id: hw.TensorDesc(t.spec.height, t.spec.width, t.spec.channels, t.spec.bits)
            for t in ir.tensors.values()}


def program_cycles(cfg: hw.EngineConfig, instructions: list, desc: dict,
                   dma: tuple[int, int] | None = None) -> list[int]:
    """Each instruction's cycles on the RTL top as built (hw.top_instruction_cycles), in
    Program order: the first waits for the first fetch; the first POOL_FC of an inference (and
    the first after each final one) clears the pool sums. ``dma``: the external memory's
    ``(beats per on-chip word, read latency)`` (:func:`dma_timing`) where the Program has
    DMA_LOADs."""
    out = []
    first_pool = True
    for i, ins in enumerate(instructions):
        out.append(hw.top_instruction_cycles(cfg, ins, desc, clear_pool_sums=first_pool, first=i == 0, dma=dma))
        if ins.op == Op.POOL_FC:
            # the FC (its last chunk) clears the sums again
            first_pool = bool(ins.flags & FLAG_FINAL) and not ins.flags & FLAG_FC_MORE
    return out


def dma_timing(ir: CompileIR) -> tuple[int, int] | None:
    """``(beats per on-chip word, read latency)`` of the board's external memory as a
    DMA_LOAD sees it (None without streamed steps)."""
    if not ir.streamed:
        return None
    ext = ir.board.external
    return dma_beats(ir.cfg, ext.data_bits), ext.read_latency


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
        cycles = program_cycles(ir.cfg, [e.instruction for e in ir.program], tensor_descs(ir), dma_timing(ir))
        t = 0
        sched = []
        for i, (entry, cyc) in enumerate(zip(ir.program, cycles)):
            ins, tile = entry.instruction, entry.tile
            if ins.op == Op.LOAD:
                eng, busy = tile.length, {"host_link": tile.length}   # 1 byte/cycle from the RX FIFO
            elif tile is not None:
                eng, busy = tile.cycles, dict(tile.busy)
            else:
                eng, busy = 1, {}
            units = sorted(k for k, v in busy.items() if v > 0)
            sched.append({"index": i, "op": ins.op.name, "layer": ir.layers[ins.layer].name if tile is not None else "",
                          "band": tile.band if tile is not None else None, "start": t, "cycles": int(cyc),
                          "engine_cycles": int(eng), "units": units,
                          "busy": {k: int(v) for k, v in busy.items() if v > 0}})
            t += int(cyc)
        ir.schedule, ir.cycles = sched, t
        ir.engine_cycles = sum(s["engine_cycles"] for s in sched)
        return ir

    def check(self, ir: CompileIR) -> None:
        assert len(ir.schedule) == len(ir.program)
        prev_end = 0
        for s in ir.schedule:
            assert s["start"] == prev_end and s["cycles"] >= 1
            prev_end = s["start"] + s["cycles"]
            if s["op"] == "PRB":
                assert {"pattern", "mac"} <= set(s["units"]), s
                assert max(s["busy"]["pattern"], s["busy"]["mac"]) <= s["engine_cycles"]
        assert prev_end == ir.cycles
