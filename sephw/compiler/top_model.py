"""The RTL top's cycle model: what the accelerator top as built spends per instruction, from
its units' latencies and throughputs (docs/isa.md, "Cycle model"). Re-exported by
:mod:`sephw.compiler.hw`."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..arch.config import EngineConfig

# What the accelerator top as built (rtl_gen/top.py and its units) spends per instruction: its
# sequencer runs one instruction at a time (FetchDecode fetching the next one meanwhile) and,
# per output position, the Gather unit reads the operands' windows one vector read per cycle,
# so the cycles follow the units' FSMs, not the engines' peak rates. The constants below are
# the units' latencies and throughputs, stated in their modules (docs/isa.md, "Cycle model");
# the pipeline latencies (engine + PostProcess up to the writer) were measured in Verilator
# (tests/test_rtl_top.py, per-instruction cycles from the top's ``pc``; the units' own
# testbenches, tests/test_rtl_{gather,writer,hostio,poolfc}.py, check them unit by unit).
CYCLE_MODEL = "RTL top as built (rtl_gen/top.py sequencer and units, docs/isa.md)"
TOP_DISPATCH = 1        # DISPATCH: the instruction's unit(s) started (rtl_gen/top.py)
TOP_FETCH_NEXT = 5      # FetchDecode: an instruction taken -> the next one in its queue (rtl_gen/fetch.py)
TOP_FETCH_FIRST = 5     # start -> the first instruction taken (its fetch: the first instruction's extra cycles)
TOP_ROW_ADDR = 19       # one RowAddress (16-step divider + multiply): start cycle + 18 waiting
TOP_ISSUE = 2           # FC: a plane's last sum read -> its beat taken: the read lands, then
                        # the beat leaves the output register (rtl_gen/poolfc.py)
TOP_ROW_ADV = 2         # ROWADV: operand a's top row moves by the stride, b's by 1 or 2
TOP_LAT_PP = 8          # + lanes / pp_units: last beat's accumulators -> its codes leave the
                        # PostProcess (pp_units channels per cycle); a pattern beat adds a_bits
                        # + TOP_PE_STAGES (+ pattern_slices - 1 when its word is fetched), a
                        # MAC result TOP_MAC_STAGES (+ 1 as operand b: acc_b's holding
                        # register), a skip 1 fewer
TOP_PE_STAGES = 3       # the pattern engine's counter-tree, popcount-row and beat-total stages
                        # between its last plane and its accumulators (rtl_gen/pattern.py, M, Q, H)
TOP_MAC_STAGES = 2      # the MAC array's registered weight word and dot product
                        # (rtl_gen/macarray.py, S1b and S3): on every MAC result's way
TOP_FC_ACC = 5          # FC: last MAC beat of a byte plane -> its accumulators (FC_ACC),
                        # + lanes - 1 (one lane per cycle)
TOP_DMA = 4             # DMA_LOAD: command taken -> first read command out, last beat -> word written -> done
TOP_FC_MUL = 32         # FC: serial multiply of a logit (one bit of M per cycle)
TOP_SPILL_DRAIN = 4     # SPILL: last piece read -> its word leaves the output FIFO -> done


@dataclass(frozen=True)
class TensorDesc:
    """What the top reads from a tensor-table entry."""
    height: int
    width: int
    channels: int
    bits: int


def _pattern_beats(cfg: EngineConfig, ins, bits: int, w: int, chunks: int, b_pos: int, slide: bool) -> int:
    """The cycle (from the tile's first row setup) in which a pattern tile's last beat loads
    into the engine's plane stage: the gatherer and the pattern engine beat by beat.

    Beat ``b`` is accepted at ``a_b = max(g_b, l_{b-1})`` (the engine's window register frees
    as the previous beat loads), where the gatherer presents it at ``g_b``: ``a_{b-1} + n``
    for the next chunk of a position (``n`` reads: ``k`` on a sliding position, else ``k^2``;
    the first read goes out with the previous accept), ``+ b_pos + 2`` more for a new position
    (operand b, ``POS_NEXT``) and ``+ TOP_ROW_ADV + k + 1`` more for a new row (the row
    table). It loads at ``l_b = max(a_b + f_b, l_{b-1} + bits)``: ``f_b = pattern_slices``
    when its word is fetched (every beat of a multi-chunk operand, a tile's first beat), else
    1 (``dw_slices + 1`` in the depthwise mode: :func:`first_fetch`). Every row after the third
    takes as long as the third, so at most three are stepped.

    With the landing register (``cfg.landing_reg``) a pass's last tap lands a cycle later
    (LAND_A): one cycle more per position; the next chunk's pass keeps its ``n`` cycles where
    its first read went out early, i.e. where the engine was ready in LAND_A (``g - 1 >=
    l_{b-1}``), else it takes one more."""
    k, kk, fetch = ins.k, ins.k * ins.k, first_fetch(cfg, ins)
    land = int(cfg.landing_reg)
    a = g = ins.k + 1 + kk + 1 + land
    lo = -(1 << 30)
    row_ends = []
    for y in range(min(ins.rows, 3)):
        if y:
            g = a + b_pos + 2 + TOP_ROW_ADV + k + 1 + kk + land
        for x in range(w):
            n = k if slide and x else kk
            if x:
                g = a + b_pos + 2 + n + land
            late = 0
            for c in range(chunks):
                if c:
                    g = a + n + late
                late = land and not (k > 1 and g - 1 >= lo)
                a = max(g, lo)
                f = fetch if chunks > 1 or (x == 0 and y == 0) else 1
                lo = max(a + f, lo + bits)
        row_ends.append(lo)
    if ins.rows > 3:
        lo += (ins.rows - 3) * (row_ends[2] - row_ends[1])
    return lo


def skip_cycles(landing_reg: bool, on_pe: bool) -> int:
    """The gatherer's cycles per position for the identity skip's codes (rtl_gen/gather.py):
    GATHER_B's read and ISSUE_B's push, 2; with the landing register (``landing_reg``) after
    a pattern operand (``on_pe``) ISSUE_B alone, 1 (the codes were read in the last pass's
    LAND_A), after a MAC operand 2 (read with its last beat, ISSUE_B waits a cycle for them)."""
    return 1 if landing_reg and on_pe else 2


def first_fetch(cfg: EngineConfig, ins) -> int:
    """Cycles from a pattern window's accept to its load into the plane stage when its word
    is fetched (rtl_gen/pattern.py): ``pattern_slices``, or in the depthwise mode
    (FLAG_DW_PATTERN) ``dw_slices(k_max, k) + 1`` (every word lands in a staging register)."""
    from ..arch.config import dw_slices
    from ..arch.isa import FLAG_DW_PATTERN
    if ins.flags & FLAG_DW_PATTERN:
        return dw_slices(cfg.k_max, ins.k) + 1
    return cfg.pattern_slices


def load_cycles(ins, dma: tuple[int, int] | None) -> int:
    """A DMA_LOAD's cycles in the LoadDMA (rtl_gen/dma.py), from the cycle it takes the
    command to its ``done``: a read command per cycle, the data ``latency`` behind in order, a
    word written as its last beat lands, ``done`` the cycle after. ``dma``: the external
    memory's ``(beats per on-chip word, read latency)``."""
    if dma is None:
        raise ValueError("DMA_LOAD's cycles need the external memory's beats and read latency")
    beats, latency = dma[:2]
    return ins.length * beats + latency + TOP_DMA


def spill_pieces(ins, d: TensorDesc, chunk: int) -> int:
    """The DRAM-aligned ``chunk``-byte pieces a SPILL writes (rtl_gen/spill.py): per row, those
    that hold one of its bytes."""
    rb = d.width * d.channels
    n = 0
    for k in range(ins.rows):
        a = ins.ext_addr + k * rb
        n += (a + rb - 1) // chunk - a // chunk + 1
    return n


def spill_cycles(ins, d: TensorDesc, chunk: int) -> int:
    """A SPILL's cycles in the Spill unit (rtl_gen/spill.py) from its start to its ``done``
    when the DRAM port takes a word per cycle: one RowAddress, a set-up cycle per row, a
    cycle per piece (:func:`spill_pieces`), then the last word's way out (TOP_SPILL_DRAIN)."""
    return TOP_ROW_ADDR + ins.rows + spill_pieces(ins, d, chunk) + TOP_SPILL_DRAIN


def fc_plane_cycles(cfg: EngineConfig, channels: int) -> int:
    """One FC pass (a byte plane of the pool sums) of one block of ``lanes`` classes in PoolFC
    (rtl_gen/poolfc.py), from its first sum read to its last beat taken: ``mac_cols`` sum reads
    per beat back to back, then the last read's landing and the beat's handshake."""
    return math.ceil(channels / cfg.mac_cols) * cfg.mac_cols + TOP_ISSUE


def top_instruction_cycles(cfg: EngineConfig, ins, tensors: dict, clear_pool_sums: bool = False,
                           first: bool = False) -> int:
    """Cycles of one instruction on the RTL top as built (rtl_gen/top.py), from the cycle it is
    taken from FetchDecode's queue to the cycle the next one is: ``DISPATCH`` plus its unit's
    cycles (:func:`unit_cycles`), at least the fetcher's ``TOP_FETCH_NEXT`` (the next
    instruction's fetch starts as this one is taken, so it is hidden behind any instruction of
    4 or more unit cycles); ``END``: its ``DISPATCH``. ``first``: the Program's first
    instruction, which also waits for the first fetch (``TOP_FETCH_FIRST``). ``DMA_LOAD``
    only queues its load (:func:`load_cycles`); the waits for loads are the Program's queue
    simulation's (sephw/compiler/schedule_program.py)."""
    from ..arch.isa import Op
    if ins.op == Op.END:
        return TOP_DISPATCH
    cyc = max(TOP_DISPATCH + unit_cycles(cfg, ins, tensors, clear_pool_sums), TOP_FETCH_NEXT)
    return cyc + (TOP_FETCH_FIRST if first else 0)


def unit_cycles(cfg: EngineConfig, ins, tensors: dict, clear_pool_sums: bool = False) -> int:
    """Cycles of one instruction's unit(s) on the RTL top as built, from the cycle after
    ``DISPATCH`` (the unit's first) to its ``done`` cycle, both included (0 for ``NOP``,
    ``SYNC`` and ``END``): each unit's latency and throughput, stated in its module under
    rtl_gen/ (Load and Store: hostio.py; Gather + Writer: gather.py, writer.py, the engines and
    the PostProcess between them; PoolFC: poolfc.py). ``tensors``: tensor id ->
    :class:`TensorDesc`; ``clear_pool_sums``: this POOL_FC is the first of the inference (the
    sums are cleared).

    Compute tiles: one RowAddress per operand at the tile's start (its first row's ring
    position; the writer's runs alongside), then per output row ``k`` row-table cycles (ring
    steps) + 1, and 2 (``ROWADV``) before every row after the first; per position
    ``chunks_a x k^2 + 1`` (pattern: one tap read per cycle, the beat issued as its last tap
    lands, the next chunk's first read in the same cycle) or ``1 + chunks_a`` (MAC: pipelined reads),
    ``+ 1 + chunks_b`` (1x1 b; before a's beats when a is on the MAC array too) or ``+ 2``
    (identity skip), ``+ 1`` (POS_NEXT). With
    ``act_banks >= 2 * pe_cin`` a pattern pass covers two chunks; otherwise a stride-1
    pattern operand slides (``k`` reads per chunk for a row's later positions; several chunks
    only with ``column_store``). The PostProcess
    (``pp_units`` channels per cycle) and the writer (``ceil(tc / pp_units)`` cycles per position
    when aligned, else ``tc``) bound a row from below, and a pattern tile cannot beat its engine
    (one beat per ``a_bits`` cycles; a beat whose pattern word is not staged starts
    ``pattern_slices - 1`` cycles later; the gatherer and the engine stepped beat by beat,
    :func:`_pattern_beats`, or in closed form with two-chunk reads); the tile ends when the
    last position's codes are written (pipeline drain)."""
    from ..arch.isa import FLAG_B_PATTERN, FLAG_FINAL, FLAG_SKIP_IDENTITY, Op
    op = ins.op
    if op in (Op.NOP, Op.SYNC, Op.END):
        return 0
    if op == Op.LOAD:
        d = tensors[ins.dst]
        return ins.rows * (TOP_ROW_ADDR + d.width * d.channels) + 1
    if op == Op.STORE:
        return 2 * ins.length + 1
    if op == Op.DMA_LOAD:
        return 0        # queued in the LoadUnit; the load runs beside the next instructions
    if op == Op.SPILL:
        return 0        # its cycles need the external memory's word (schedule_program.program_cycles)
    if op == Op.POOL_FC:
        a = tensors[ins.src_a]
        cyc = 1 + (a.channels if clear_pool_sums else 0)
        cyc += ins.rows * (TOP_ROW_ADDR + a.width * a.channels) + 1
        if ins.flags & FLAG_FINAL:
            n_ob = math.ceil(ins.tc / cfg.lanes)
            # one FC pass per byte plane of the u32 sums
            cyc += n_ob * (1 + ins.fc_passes * (fc_plane_cycles(cfg, a.channels) + TOP_FC_ACC + cfg.lanes - 1))
            cyc += (2 + TOP_FC_MUL) * ins.tc + n_ob + 1
        return cyc
    if op not in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
        raise ValueError(f"no cycle model for {op!r}")
    a, dst = tensors[ins.src_a], tensors[ins.dst]
    on_pe = op in (Op.CONV_PATTERN, Op.PRB) or (op == Op.RESADD and bool(ins.flags & FLAG_B_PATTERN))
    b_id = op == Op.RESADD and bool(ins.flags & FLAG_SKIP_IDENTITY)
    b_mac = op == Op.PRB or (op == Op.RESADD and not b_id)
    # the PostProcess takes lanes / pp_units cycles per position; the writer stores pp_units
    # bytes per cycle when the destination's channels and the tile's first channel are
    # multiples of pp_units, else one
    units = cfg.pp_units
    lat_pp = TOP_LAT_PP + cfg.lanes // units + int(cfg.mul18)      # (mul18: its partial products' stage)
    wr = -(-ins.tc // units) if dst.channels % units == 0 and ins.c0 % units == 0 else ins.tc
    kk = ins.k * ins.k
    slide = dual = False
    land = 0
    if on_pe:
        chunks_a = math.ceil(ins.na / cfg.pe_cin)
        # two chunks per gather pass when a read returns 2 x pe_cin bytes (rtl_gen/gather.py, DUAL)
        dual = cfg.two_chunk_reads and chunks_a >= 2
        # sliding window: at stride 1, a row's later positions read only each chunk's new
        # column (rtl_gen/gather.py, slide_ok; several chunks only with the column store and not
        # with two-chunk reads)
        slide = ins.stride == 1 and (chunks_a == 1 or (cfg.column_store and not dual))
        # (+ 1 with the landing register: the position's last tap lands a cycle later, LAND_A;
        # its later passes read their first tap early, _pattern_beats)
        land = int(cfg.landing_reg)
        per_a = (math.ceil(chunks_a / 2) if dual else chunks_a) * kk + 1 + land
        # + the pattern word's slice fetch: a beat whose word is not the staged one starts
        # pattern_slices cycles after its window is accepted (one cycle with one slice), so
        # every beat of a multi-chunk operand, only the tile's first beat of a single-chunk one
        fetch = first_fetch(cfg, ins) - 1
        fetch_each = fetch if chunks_a > 1 else 0
        lat_beat = lat_pp + TOP_PE_STAGES + a.bits   # a beat loaded -> its codes written
        lat_a = lat_beat + (fetch if chunks_a > 1 or ins.rows * dst.width == 1 else 0)
        # a beat whose pattern word is fetched loads pattern_slices cycles after it is accepted
        # at the earliest: back to back, the engine takes one beat per max(a_bits, slices)
        period = max(a.bits, cfg.pattern_slices) if chunks_a > 1 else a.bits
        if dual and chunks_a % 2 == 0:
            lat_a += period             # the last beat waits in the hold register for one beat
    else:
        per_a = 1 + math.ceil(ins.na / cfg.mac_cols)
        lat_a = lat_pp + TOP_MAC_STAGES
    b_pos = 1 + math.ceil(ins.nb / cfg.mac_cols) if b_mac else (skip_cycles(cfg.landing_reg, on_pe) if b_id else 0)
    # (the PostProcess takes acc_b into its holding register first: one cycle more)
    lat_b = lat_pp + TOP_MAC_STAGES + 1 if b_mac else (lat_pp - 1 if b_id else 0)
    w = dst.width
    per_pos = per_a + b_pos + 1
    next_pos = chunks_a * ins.k + 1 + land + b_pos + 1 if slide else per_pos
    out_row = w * max(cfg.lanes // units, wr)
    init = TOP_ROW_ADDR * (2 if (b_mac or b_id) else 1)
    cyc = init
    for y in range(ins.rows):
        setup = ins.k + 1 + (TOP_ROW_ADV if y else 0)
        cyc += max(setup + per_pos + (w - 1) * next_pos, out_row)
    if b_mac and not on_pe:
        # both operands on the MAC array: b's beats go first, a's last (rtl_gen/gather.py)
        drain = max(lat_a, lat_b - per_a) + wr + 1
    else:
        drain = max(lat_a - b_pos, lat_b) + wr + 1
    if on_pe:
        # or the pattern engine sets the pace; then the tile ends as the last beat's codes are
        # written
        if dual:
            # one beat per period (a_bits, or pattern_slices if more) from the first beat, the
            # gatherer running ahead by the three beats the engine and the hold register keep;
            # a row change costs the gatherer's full pass, which shows when it is longer than
            # that backlog
            first = init + ins.k + 1 + kk + 2 + fetch + land
            turn = b_pos + 1 + TOP_ROW_ADV + ins.k + 1 + kk + 1 + fetch_each + land
            gap = max(0, turn - 3 * period + 1)
            last = first + (ins.rows * w * chunks_a - 1) * period + (ins.rows - 1) * gap
        else:
            last = init + _pattern_beats(cfg, ins, a.bits, w, chunks_a, b_pos, slide)
        return max(cyc + drain, last + lat_beat + wr + 1)
    return cyc + drain
