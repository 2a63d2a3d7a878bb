"""Pass 3: TileLayers, row bands x channel groups so the on-chip working set fits."""
from __future__ import annotations

import math
from dataclasses import replace

from tqdm import tqdm

from ..arch.config import dma_beats, spill_chunk
from ..arch.isa import (DEP_SIGNAL_NEXT, DEP_WAIT_PREV, FLAG_B_PATTERN, FLAG_DEPTHWISE, FLAG_FC_MORE, FLAG_FINAL,
                        FLAG_PAD_BOTTOM, FLAG_PAD_TOP, FLAG_SKIP_IDENTITY, WORD_BYTES, Op)
from ..intgraph import DepthwiseConcatNode, InputNode, PoolFCNode, ResidualAddNode, SkipOperand
from . import hw
from .bands import band_layout, ring_rows
from .ir import (BRAM_HEADROOM, PARAM_WORD_BYTES, CompileError, CompileIR, MemoryBlocks, StaticMemory, Tensor, Tile,
                 lut_limit)
from .memory import first_fit, memory_blocks, memory_geometry, static_memory, streamable_steps
from .paging import PAGE
from .operands import block_words, fc_chunk_words, fc_chunks, params_streamed, rows_needed, tile_cost, tile_stream_words, windowed


def prefetch(tiles: list[Tile]) -> list[Tile]:
    """Ping-pong the streamed tiles: ``tiles`` has each streamed tile right after its
    DMA_LOADs (group ``k``: the loads, then the tile). Group ``k`` takes buffer half ``k mod
    2``; its loads move to right after the tile of group ``k - 2`` (the last to read that
    half; the first two groups' loads stay where the first group's were), so they run while
    the tile of group ``k - 1`` computes. The last load of a group signals a token
    (DEP_SIGNAL_NEXT) that its tile takes before it starts (DEP_WAIT_PREV)."""
    groups, pending = [], []
    for t in tiles:
        if t.opcode == Op.DMA_LOAD:
            pending.append(t)
        elif pending:
            groups.append((pending, t))
            pending = []
    assert not pending
    after = {}                # id(tile) -> the loads that follow it
    first = None
    for k, (loads, t) in enumerate(groups):
        for x in loads + [t]:
            x.half = k % 2
        loads[-1].deps |= DEP_SIGNAL_NEXT
        t.deps |= DEP_WAIT_PREV
        if k == 0:
            first = id(loads[0])
        if k >= 2:
            after[id(groups[k - 2][1])] = loads
    lead = [x for loads, _ in groups[:2] for x in loads]
    out = []
    for t in tiles:
        if t.opcode == Op.DMA_LOAD:
            if id(t) == first:
                out += lead
            continue
        out.append(t)
        out += after.get(id(t), [])
    assert len(out) == len(tiles)
    return out


class TileLayers:
    CONTRACT = "split every layer into row bands (halos included) x channel groups so the whole " \
               "on-chip working set fits the board's block RAM and 10 MB"

    def _candidates(self, ir: CompileIR) -> list:
        """``(bands, anchor)`` to try: one band; then, for every tensor a cut can follow (no
        earlier tensor read after it), band counts 2..8 and a few larger ones."""
        out = [(1, None)]
        later_reads = {}
        for lay in ir.layers:
            for name in {lay.src_a, lay.src_b} - {""}:
                later_reads[name] = max(later_reads.get(name, -1), lay.index)
        for lay in ir.layers:
            n = lay.node
            if isinstance(n, PoolFCNode):
                continue
            if any(later_reads.get(t.name, -1) > lay.index for t in ir.tensors.values()
                   if t.producer < lay.index):
                continue
            h = n.out.height
            for nb in sorted({*range(2, 9), 12, 16, 24, 32, 48, 64}):
                if nb <= h:
                    out.append((nb, n.name))
        return out

    @staticmethod
    def make_tiles(ir: CompileIR, cfg: hw.EngineConfig, plan: dict, n_bands: int, tc=None,
                   streamed: frozenset = frozenset(), reloads: dict | None = None, cuts=()) -> list[Tile]:
        """Every tile of ``n_bands`` bands of ``plan`` on the overlay ``cfg`` in issue order:
        band by band, layer by layer, step by step, channel group by channel group. ``tc(step)``:
        a step's output channels per tile (default its ``tc``, which SizeEngines sets); reads
        ``ir``, writes nothing (the sizer's estimate calls it for overlays it does not take).
        ``streamed``: the ``(layer, step)`` whose tiles each follow a DMA_LOAD per memory
        of their pattern and int8 weight words (external memory -> the memory's buffer), and
        of their parameter words where the whole layer is streamed. ``cuts``: tensors spilled to
        external memory (a SPILL after each band's tiles that produce their rows); ``reloads``:
        their rows loaded back (a LOAD in each band that needs new ones, :func:`segment_plan`)."""
        g = ir.graph
        tiles = []
        cost_of = {}        # tile_cost and tile_stream_words of a step: the bands repeat them
        if streamed:
            ext = ir.board.external
            beats = dma_beats(cfg, ext.data_bits)
        for b in range(n_bands):
            for lay in ir.layers:
                n = lay.node
                if isinstance(n, InputNode):
                    hi, _ = plan[n.name]
                    r0, r1 = hi[b], hi[b + 1]
                    if r1 > r0:
                        t = ir.tensors[n.name]
                        tiles.append(Tile(lay.index, 0, b, Op.LOAD, r0, r1 - r0, length=(r1 - r0) * t.row_bytes))
                    continue
                if isinstance(n, PoolFCNode):
                    hi, _ = plan[n.input]
                    r0, r1 = hi[b], hi[b + 1]
                    src = g.spec(n.input)
                    cyc = (r1 - r0) * src.width * math.ceil(src.channels / cfg.mac_cols)
                    flags = 0
                    final = b == n_bands - 1
                    fc_cyc = math.ceil(n.weight.shape[0] / cfg.lanes) * math.ceil(src.channels / cfg.mac_cols)
                    if final and (lay.index, 0) in streamed:
                        # the FC in chunks of classes, each after a DMA_LOAD of its weights
                        # into the weight buffer; the band's rows first
                        if r1 > r0:
                            tiles.append(Tile(lay.index, 0, b, Op.POOL_FC, r0, r1 - r0, cycles=cyc + hw.TILE_LATENCY,
                                              busy={"mac": cyc}, tc=n.weight.shape[0]))
                        chunks = fc_chunks(cfg, n)
                        for i, (c0, tcc) in enumerate(chunks):
                            n_w = fc_chunk_words(cfg, n, tcc)
                            tiles.append(Tile(lay.index, 0, b, Op.DMA_LOAD, 0, 0, c0, tcc, length=n_w, mem="weights",
                                              busy={"dma": n_w * beats}, cycles=hw.TOP_FETCH_NEXT))
                            c_cyc = math.ceil(tcc / cfg.lanes) * math.ceil(src.channels / cfg.mac_cols)
                            tiles.append(Tile(lay.index, 0, b, Op.POOL_FC, 0, 0, c0, tcc, cycles=c_cyc + hw.TILE_LATENCY,
                                              busy={"mac": c_cyc},
                                              flags=FLAG_FINAL | (FLAG_FC_MORE if i < len(chunks) - 1 else 0)))
                        flags = FLAG_FINAL
                    else:
                        if final:
                            flags = FLAG_FINAL
                            cyc += fc_cyc
                        if r1 > r0 or flags:
                            tiles.append(Tile(lay.index, 0, b, Op.POOL_FC, r0, r1 - r0, cycles=cyc + hw.TILE_LATENCY,
                                              busy={"mac": cyc}, flags=flags, tc=n.weight.shape[0]))
                    if flags:
                        tiles.append(Tile(lay.index, 0, b, Op.STORE, 0, 0, length=n.weight.shape[0] * 8,
                                          cycles=n.weight.shape[0] * 8))
                    continue
                if reloads and n.name in reloads:
                    lhi = reloads[n.name][0]
                    if lhi[b + 1] > lhi[b]:     # a spilled tensor's rows back from external memory
                        t = ir.tensors[n.name]
                        tiles.append(Tile(lay.index, 0, b, Op.LOAD, lhi[b], lhi[b + 1] - lhi[b],
                                          length=(lhi[b + 1] - lhi[b]) * t.row_bytes))
                hi, _ = plan[n.name]
                r0, r1 = hi[b], hi[b + 1]
                if r1 <= r0:
                    continue
                if n.name in cuts:
                    # after the band's tiles of the layer: its new rows to external memory
                    t = ir.tensors[n.name]
                    pieces = (r1 - r0) * -(-t.row_bytes // spill_chunk(cfg.act_banks, ir.board.external.data_bits))
                    spill = Tile(lay.index, 0, b, Op.SPILL, r0, r1 - r0, length=(r1 - r0) * t.row_bytes,
                                 cycles=pieces, busy={"dma": pieces})
                for si, st in enumerate(lay.steps):
                    step_tc = st.tc if tc is None else tc(st)
                    for c0 in range(0, st.out_channels, step_tc):
                        tc_ = min(step_tc, st.out_channels - c0)
                        if (lay.index, si) in streamed:
                            if (id(st), step_tc) not in cost_of:
                                cost_of[id(st), step_tc] = tile_stream_words(cfg, st, step_tc)
                            loads = dict(cost_of[id(st), step_tc])
                            if params_streamed(lay, streamed):
                                loads["params"] = tc_      # the tile's channels' parameter words
                            for mem, n_w in loads.items():
                                if n_w:
                                    tiles.append(Tile(lay.index, si, b, Op.DMA_LOAD, r0, r1 - r0, st.out_c0 + c0,
                                                      tc_, length=n_w, mem=mem, busy={"dma": n_w * beats},
                                                      cycles=hw.TOP_FETCH_NEXT))
                        key = (id(st), r1 - r0, tc_)
                        if key not in cost_of:
                            cost_of[key] = tile_cost(cfg, st, g, r1 - r0, tc_)
                        cyc, busy, costs, _, _ = cost_of[key]
                        op0 = st.operands[0]
                        src = g.spec(op0.input)
                        ilo, ihi = rows_needed(op0, r0, r1, src.height)
                        flags = 0
                        if windowed(op0):
                            if r0 * op0.stride - op0.padding <= 0:
                                flags |= FLAG_PAD_TOP
                            if (r1 - 1) * op0.stride - op0.padding + op0.k >= src.height:
                                flags |= FLAG_PAD_BOTTOM
                        if isinstance(n, DepthwiseConcatNode):
                            flags |= FLAG_DEPTHWISE
                        if isinstance(n, ResidualAddNode):
                            if isinstance(n.skip, SkipOperand):
                                flags |= FLAG_SKIP_IDENTITY
                            if n.main.kind == "pattern":
                                flags |= FLAG_B_PATTERN
                        opcode = st.opcode
                        if isinstance(n, DepthwiseConcatNode):
                            opcode = Op.CONV_PATTERN if op0.kind == "pattern" else Op.CONV_INT
                        wset = (ihi - ilo) * src.width * src.channels
                        wset += (r1 - r0) * n.out.width * tc_
                        for op, c in zip(st.operands, costs):
                            if isinstance(op, SkipOperand):
                                wset += (r1 - r0) * n.out.width * tc_
                            elif op.kind == "pattern":
                                wset += block_words(cfg, op, tc_) * cfg.pattern_mem_bytes
                            else:
                                wset += c.chunks * cfg.weight_word_bytes
                        wset += tc_ * PARAM_WORD_BYTES
                        tiles.append(Tile(lay.index, si, b, opcode, r0, r1 - r0, st.out_c0 + c0, tc_,
                                          ilo, ihi - ilo, wset, costs, busy, cyc, flags))
                if n.name in cuts:
                    tiles.append(spill)
        return prefetch(tiles) if streamed else tiles

    def _search(self, ir: CompileIR, streamed: frozenset, want_best: bool = True):
        """The band count (fewest tiles) whose working set fits with ``streamed`` steps in
        external memory: ``(chosen, best)``, ``chosen`` None where none fits; ``best`` the
        smallest working set tried (the not-fit message's figures), None unless
        ``want_best``. A band count whose static memory and activations alone exceed the
        budget cannot fit whatever its Program: its tiles are made only for ``best``."""
        static = static_memory(ir, ir.cfg, streamed)
        best, chosen, done = None, None, set()
        for n_bands, anchor in tqdm(self._candidates(ir), desc="tile", disable=not ir.progress, leave=False):
            if chosen is not None and chosen[0] == 1:
                break
            if anchor in done:      # more bands of the same anchor only add tiles
                continue
            layout = band_layout(ir, n_bands, anchor)
            if not want_best and static.total + layout.act_bytes > ir.budget:
                continue
            fits, total, got = self._fits(ir, layout, n_bands, streamed, static)
            tiles, blocks, lutram = got[1], got[5], got[6]
            if want_best and (best is None or total < best[0]):
                best = (total, n_bands, layout, blocks, lutram, static)
            if fits:
                done.add(anchor)
            if fits and (chosen is None or len(tiles) < len(chosen[1])):
                chosen = (n_bands, tiles, anchor) + got[3:]
        return chosen, best

    def _fits(self, ir: CompileIR, layout, n_bands: int, streamed: frozenset, static: StaticMemory):
        """Tiles and memory of one band plan: ``(fits, total bytes, chosen tuple)``. With
        streamed steps (external memory), a Program that does not fit on chip runs from
        external memory in pages (paging.py): two pages on chip."""
        tiles = self.make_tiles(ir, ir.cfg, layout.plan, n_bands, streamed=streamed, reloads=layout.loads,
                                cuts=layout.cuts)
        n = len(tiles) + 3                        # + SYNC before STORE, SYNC, END
        # (placement spill, the whole external-memory path, pages a Program that can be)
        pages = (0,) if not streamed or n <= 2 * PAGE else (PAGE,) if ir.placement == "spill" else (0, PAGE)
        for page in pages:
            words = 2 * page if page else n
            program = words * WORD_BYTES
            total = static.total + layout.act_bytes + program
            blocks, lutram, per = memory_blocks(ir.board.vendor,
                                                memory_geometry(ir.cfg, static, layout.act_bytes, words))
            # (the DRAM controller's logic too, where anything lives in DRAM)
            ctl = hw.dram_controller(ir.board)["lut"] if streamed or layout.cuts else 0
            fits = total <= ir.budget and blocks <= ir.board.resources["bram_blocks"] * BRAM_HEADROOM \
                and ir.resources.lut + lutram + ctl <= lut_limit(ir.board)
            if fits:
                break
        return fits, total, (n_bands, tiles, None, layout, program, blocks, lutram, per, static, page)

    def _spill_search(self, ir: CompileIR, streamed: frozenset, every_cut: bool = False):
        """Where no band plan fits with every streamable step streamed: cut the network into
        segments at tensors that go to external memory (spill cuts, :func:`segment_plan`).

        For an activation budget ``A`` (a few, from the whole budget less the static memories
        down): greedy from the input, each segment ends at the furthest cut whose segment
        alone keeps its rings within ``A`` with some band count, the fewest bands that do; the
        last segment is the rest. The segments' Programs add up (every band repeats its
        layers' tiles) while their rings share the activation memory, and the block RAMs come
        in whole blocks, so the byte budget alone does not say what fits: the first plan that
        fits, from the largest ``A`` down, is taken (a smaller ``A`` only adds bands and
        tiles). Returns that chosen tuple of :meth:`_search` (its band count: all segments'),
        or None. ``every_cut``: a segment ends at every cut (the
        nearest, not the furthest; placement ``spill``)."""
        static = static_memory(ir, ir.cfg, streamed)
        pool_in = ir.graph.output.input
        cands = []
        for _, name in self._candidates(ir)[1:]:
            if name not in cands and name != pool_in and \
                    not isinstance(ir.layers[ir.tensors[name].producer].node, InputNode):
                cands.append(name)
        if not cands:
            return None
        def counts(h):
            # band counts up to one row of the segment's anchor per band
            return sorted(n for n in {*range(1, 9), 12, 16, 24, 32, 48, 64, h // 2, h} if 1 <= n <= h)
        last_layer = len(ir.layers) - 1
        # each layer's tiles in one band (a band count of n repeats them up to n times)
        per_band = {}
        for t in self.make_tiles(ir, ir.cfg, band_layout(ir, 1).plan, 1, streamed=streamed):
            per_band[t.layer] = per_band.get(t.layer, 0) + 1

        def program_bytes(first, last, nb):
            # (a Program that outgrows the memory runs in pages: _fits tries that too, so a
            # segment's Program counts against its rings only up to the two pages)
            return min(2 * PAGE, nb * (2 + sum(per_band.get(i, 0) for i in range(first + 1 if first else 0,
                                                                                    last + 1)))) * WORD_BYTES

        def seg_bytes(layout, first, last, end_cut):
            # the rings live while layers first .. last run; the segment's own cut counts its
            # producer's ring only (what the next segment keeps of it is that one's)
            items = []
            for name, (rows, live) in layout.rows.items():
                if live[1] < first or live[1] == first > 0 or live[0] > last:
                    continue      # (a tensor last read by the segment's source layer: the segment before's)
                if name == end_cut:
                    rows = ring_rows(*layout.plan[name])
                t = ir.tensors[name]
                items.append((name, rows * t.row_bytes, max(live[0], first), min(live[1], last)))
            return first_fit(items)[1]

        def plan_for(act_budget):
            cuts, seg_bands, start = [], [], 0
            while True:
                later = [c for c in cands if ir.tensors[c].producer > start]
                for nb in counts(ir.graph.spec(pool_in).height) if not (every_cut and later) else ():
                    lay_ = band_layout(ir, nb, None, tuple(cuts), tuple(seg_bands))
                    if seg_bytes(lay_, start, last_layer, None) <= act_budget:
                        return nb, lay_, sum(seg_bands) + nb
                step = None
                for c in later if every_cut else reversed(later):
                    for nb in counts(ir.tensors[c].spec.height):
                        lay_ = band_layout(ir, 1, None, tuple(cuts + [c]), tuple(seg_bands + [nb]))
                        if seg_bytes(lay_, start, ir.tensors[c].producer, c) + \
                                program_bytes(start, ir.tensors[c].producer, nb) <= act_budget:
                            step = (c, nb)
                            break
                    if step is not None:
                        break
                if step is None:
                    return None
                cuts.append(step[0])
                seg_bands.append(step[1])
                start = ir.tensors[step[0]].producer

        tried = set()
        room = ir.budget - static.total
        for frac in (1.0, 0.85, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2):
            got = plan_for(int(room * frac))
            if got is None:
                return None         # (a smaller budget fits no segment either)
            if (got[1].cuts, got[1].seg_bands, got[0]) in tried:
                continue
            tried.add((got[1].cuts, got[1].seg_bands, got[0]))
            fits, _, chosen = self._fits(ir, got[1], got[2], streamed, static)
            if fits:
                return chosen       # (a smaller budget only adds bands, and tiles)
        return None

    def place(self, ir: CompileIR):
        """The band count and the streamed steps for ``ir.cfg``: ``(chosen, streamed, best,
        order)`` as :meth:`_search` gives them, ``chosen`` None where nothing fits; ``order``
        the steps that could stream. Writes only ``ir.budget`` (the board's usable bytes,
        the same for every overlay), so SizeEngines can ask it of the overlays it weighs where
        none fits whole maps."""
        ir.budget = hw.usable_onchip_bytes(ir.board)
        order = streamable_steps(ir, ir.cfg) if ir.board.external is not None and ir.placement != "onchip" else []
        streamed = frozenset(order) if ir.placement == "external" else frozenset()
        if ir.placement == "spill":
            got = self._spill_search(ir, frozenset(order), every_cut=True) if order else None
            if got is not None:
                return got, frozenset(order), None, order
            # (the not-fit figures: the smallest working set without spills)
            return None, frozenset(), self._search(ir, frozenset(order))[1], order
        bisect = ir.placement == "auto" and bool(order)
        # (the not-fit figures come from the last search that fails: the first, or with
        # every streamable step streamed)
        chosen, best = self._search(ir, streamed, want_best=not bisect)
        if chosen is None and bisect:
            # the fewest largest steps in external memory that let the rest fit: the on-chip
            # bytes fall with every step added (its words leave, at most one tile's join the
            # buffer), so the shortest fitting prefix is found by bisection
            lo, hi = 1, len(order)
            while lo <= hi:
                mid = (lo + hi) // 2
                got, b_ = self._search(ir, frozenset(order[:mid]), want_best=mid == len(order))
                if got is not None:
                    chosen, streamed, hi = got, frozenset(order[:mid]), mid - 1
                else:
                    lo = mid + 1
                    if mid == len(order):
                        best = b_
        if chosen is None and order and ir.placement != "onchip":
            # not even with every step streamed: tensors to external memory too
            got = self._spill_search(ir, frozenset(order))
            if got is not None:
                chosen, streamed = got, frozenset(order)
        return chosen, streamed, best, order

    def run(self, ir: CompileIR) -> CompileIR:
        chosen, streamed, best, order = self.place(ir)
        if chosen is not None:
            n_bands, tiles, anchor, layout, program, blocks, lutram, per, static, page = chosen
            ir.streamed = streamed
            ir.program_page = page
            ir.spills = layout.cuts
            ir.anchor = anchor or ir.graph.output.input
            ir.memory_blocks = MemoryBlocks(blocks, lutram, per)
            ctl = hw.dram_controller(ir.board) if streamed or layout.cuts else {"lut": 0, "ff": 0}
            res = ir.resources
            ir.resources = replace(res, lut=res.lut + lutram + ctl["lut"], ff=res.ff + ctl["ff"], bram_blocks=blocks,
                                   detail={**res.detail, "dram_controller_lut": ctl["lut"]})
            ir.bands, ir.band_rows = n_bands, layout.plan
            for name, (r, live) in layout.rows.items():
                ir.tensors[name].ring_rows = r
                ir.tensors[name].live = live
            ir.tiles = tiles
            ir.onchip = {"activations": layout.act_bytes, "program": program, **static.memory_bytes}
            ir.static = static
            return ir
        total, n_bands, layout, blocks, lutram, static = best
        if ir.probe:
            raise CompileError(f"does not fit {ir.board.name}")
        big = max(ir.tensors.values(), key=lambda t: layout.rows[t.name][0] * t.row_bytes)
        raise CompileError(self._not_fit_message(ir, total, n_bands, big, layout.rows[big.name][0], static,
                                                 layout.act_bytes, blocks, lutram, streamed=bool(order)
                                                 and ir.placement != "onchip"))

    def _not_fit_message(self, ir: CompileIR, total: int, n_bands: int, big: Tensor, big_rows: int,
                         static: StaticMemory, act_bytes: int, blocks: int, lutram: int = 0,
                         streamed: bool = False) -> str:
        from boards import all_boards
        from .pipeline import compile_ir     # the pipeline holds this pass
        fits = []
        for name, b in all_boards().items():
            if name == ir.board.name:
                continue
            try:
                compile_ir(ir.graph, b, ir.costs, progress=False, until=TileLayers, probe=True, record=False)
                fits.append(name)
            except CompileError:
                pass
        parts = ", ".join(f"{k} {v}" for k, v in static.memory_bytes.items())
        nb = ir.board.resources["bram_blocks"] * BRAM_HEADROOM
        if total <= ir.budget and blocks <= nb:
            ctl = hw.dram_controller(ir.board)["lut"] if streamed else 0
            why = (f"the memories fit ({total} bytes, {blocks} block RAMs) but the overlay's "
                   f"{ir.resources.lut} LUT of logic + {lutram} LUT of distributed-RAM memories"
                   + (f" + {ctl} LUT of the DRAM controller" if ctl else "")
                   + (f" exceed the part's {ir.board.resources['lut']} LUT" if ir.board.lut_fill is None else
                      f" exceed the {lut_limit(ir.board)} LUT the board's lut_fill allows "
                      f"({ir.board.lut_fill:g} of {ir.board.resources['lut']})"))
        else:
            why = (f"{total} bytes fit the byte budget but the memories need {blocks} block RAMs, usable {nb:g} "
                   f"(90 % of {ir.board.resources['bram_blocks']})"
                   if total <= ir.budget else f"bytes needed {total} > available {ir.budget}")
        if streamed:
            why += (f", with every pattern and int8 weight tile in {ir.board.name}'s external memory "
                    f"(loaded by DMA_LOAD into on-chip buffers)")
        return (f"model does not fit {ir.board.name} ({why}): the smallest on-chip working set ({n_bands} row "
                f"band(s)) needs {total} bytes, available {ir.budget} bytes "
                f"(block RAM data bytes{', capped at 10 MB' if ir.budget == hw.MAX_ONCHIP_BYTES else ''}); "
                f"largest layer buffer: {big.name} {big.spec.describe()} holds {big_rows} rows x "
                f"{big.row_bytes} bytes = {big_rows * big.row_bytes} bytes; activations {act_bytes} bytes, "
                f"{parts}; {blocks} block RAMs of {ir.board.resources['bram_blocks']}. Boards that would fit: "
                f"{', '.join(fits) if fits else 'none of the listed boards'}")

    def check(self, ir: CompileIR) -> None:
        total = sum(ir.onchip.values())
        assert total <= ir.budget <= hw.MAX_ONCHIP_BYTES, (total, ir.budget)
        assert ir.memory_blocks.block_ram <= ir.board.resources["bram_blocks"] * BRAM_HEADROOM
        assert ir.resources.lut <= lut_limit(ir.board)
        assert ir.static is not None and ir.tiles
        for t in ir.tiles:
            assert t.working_set <= ir.budget
            if t.opcode in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
                lay = ir.layers[t.layer]
                src = ir.tensors[lay.steps[t.step].operands[0].input]
                # the ring must hold the band's input rows including the halo
                assert t.in_rows <= src.ring_rows, (lay.name, t.in_rows, src.ring_rows)
                assert t.rows <= ir.tensors[lay.name].ring_rows
        # every row of every needed tensor is produced exactly once
        for name, (hi, lo) in ir.band_rows.items():
            assert all(hi[b] <= hi[b + 1] for b in range(ir.bands))
