"""Accelerator top: the sequencer that runs a compiled Program over the engines and memories.

The top holds the on-chip memories of docs/isa.md (activations, program, tensor table,
parameters, pool sums, logits; the pattern and weight memories live in the engines) and a
sequencer that executes the Program instruction by instruction (in order, one at a time):

- ``LOAD``: input rows from the host link (``rx`` byte stream) into the input tensor's ring.
- ``CONV_PATTERN`` / ``CONV_INT`` / ``PRB`` / ``RESADD``: per output position a *gatherer*
  reads the operand's window from the activation memory (ring addressing
  ``base + (row mod ring_rows) * W * C``: one divider run per tile and operand, then one ring
  step per row; zero outside the image = padding, zero beyond the operand's ``na`` / ``nb``
  channels): one window tap of ``pe_cin`` channels per cycle into the pattern engine's window
  slot ``i*k_max + j``, taps from ``(k-1, k-1)`` down to ``(0, 0)`` (a kernel smaller than
  ``k_max`` uses the top-left taps, as the compiler's pattern words do; the other slots stay
  zero and add 0), the beat issued in the cycle its last tap lands and the next pass's first
  read in the same cycle; when a read returns ``2 * pe_cin`` bytes a pass fills the windows
  of two chunks and the second waits in a hold register for the engine while the gatherer
  goes on; otherwise a stride-1 operand keeps each chunk's window from one position to the
  next, shifted by one column (in the *column store*, one distributed-RAM entry per chunk),
  and reads only the new column (sliding window: ``k`` reads per chunk instead of ``k^2``,
  so multi-chunk operands run at the pattern engine's ``a_bits`` cycles per beat; built with
  ``EngineConfig.column_store``, else only single-chunk operands slide). One MAC
  beat of ``mac_cols`` channels per cycle (1×1 operands) or the skip codes
  of the tile (identity skip, through a two-entry queue); the PostProcess (``pp_units``
  channels per cycle) joins ``acc_a`` and ``acc_b`` and a *writer* stores the ``tc`` output
  codes of each position into the ``dst`` ring, ``pp_units`` bytes per cycle where aligned.
- ``POOL_FC``: per-channel sums of the band's rows (pool-sum memory, one byte per cycle);
  ``FINAL``: the FC on the MAC array, one pass per byte plane of the sums (the array takes
  uint8), planes combined ``sum_b acc_b << 8b`` in int64 (one lane per cycle), then
  ``logit = acc * M + B`` (shift-and-add, 32 cycles) into the logit memory.
- ``STORE``: the logits, int64 little-endian, on the ``tx`` byte stream.
- ``SYNC`` (every unit is idle between instructions here), ``NOP``; ``END`` raises ``done``.

Memories are written at run time through ``host_w`` (memory select, word address, word),
the words of the build directory's ``*.bin`` images, or baked in (``boot``: a boot ROM
replays the same writes after reset); ``cycles`` counts the clock cycles from ``start`` to
``done``.

Not implemented (``error`` is raised, the run stops): int8 k×k convolutions (MAC operand
with ``k > 1``). Pattern tiles must cover one group (``groups in the tile == 1``) and sources
must be unsigned: :func:`check_program` checks both before a run.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from sephw.arch import isa
from sephw.arch.config import ArchConfig
from sephw.arch.formats import PARAM_WORD, TENSOR_DESC
from sephw.arch.isa import FLAG_B_PATTERN, FLAG_FINAL, FLAG_SKIP_IDENTITY, Op
from sephw.arch.memmap import MEM_PARAMS, MEM_PATTERNS, MEM_PROGRAM, MEM_TENSORS, MEM_WEIGHTS, MemoryMap

from .arith import check_int
from .macarray import MacArray
from .pattern import PatternEngine
from .postprocess import PostProcess

__all__ = ["Accelerator", "RowAddress", "INSTR_LAYOUT", "TENSOR_LAYOUT", "PARAM_LAYOUT"]

INSTR_LAYOUT = isa.WORD.layout()
TENSOR_LAYOUT = TENSOR_DESC.layout()
PARAM_LAYOUT = PARAM_WORD.layout()
SUM_BITS = 32          # pool sums (unsigned); the FC runs over its 4 byte planes
M_B_WIDTH = 25         # identity-skip M_b takes the DSP's 25-bit port (docs/numerics.md)
FC_MUL_CYCLES = 32     # the FC's serial multiply: one bit of the 32-bit M per cycle


class RowAddress(wiring.Component):
    """Address of row ``r`` of a ring buffer: ``base + (r mod ring) * row_bytes``.

    Restoring division, one quotient bit per cycle (16 cycles), then one multiply: ``busy``
    rises the cycle after ``start`` and falls when ``addr`` and ``rem`` (``r mod ring``) are
    valid (17 cycles). The compute tiles use it once per tile and operand, then step their
    rows incrementally (the ring step in :class:`Accelerator`: the next slot, or ``base``
    after the last)."""

    def __init__(self):
        super().__init__({"start": In(1), "r": In(16), "ring": In(16), "base": In(32),
                          "row_bytes": In(32), "busy": Out(1), "addr": Out(32), "rem": Out(16)})

    def elaborate(self, platform):
        m = Module()
        rem = Signal(17)
        num = Signal(16)
        step = Signal(range(18))
        ring, base, row_bytes = Signal(16), Signal(32), Signal(32)
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), rem.eq(0), num.eq(self.r), step.eq(0), ring.eq(self.ring),
                         base.eq(self.base), row_bytes.eq(self.row_bytes)]
        with m.Elif(self.busy):
            with m.If(step < 16):
                t = Cat(num[15], rem[:16])
                m.d.sync += [num.eq(num << 1), step.eq(step + 1),
                             rem.eq(Mux(t >= ring, t - ring, t))]
            with m.Else():
                m.d.sync += [self.addr.eq(base + rem * row_bytes), self.busy.eq(0)]
        m.d.comb += self.rem.eq(rem)
        return m


class Accelerator(wiring.Component):
    """The sephw accelerator: sequencer + PatternEngine ‖ MacArray + PostProcess + memories.

    Parameters
    ----------
    arch : ArchConfig
        The hardware contract: engine sizes and memory depths (``Manifest.read(d).arch``).
    boot : list of (mem, addr, word), optional
        Memory writes baked into a boot ROM and replayed after reset (standalone use without a
        host: ``sim.top_driver.memory_writes(build_dir)``). This keeps a second copy of the
        images on chip (the engines' memories are written through their write ports).
    netlist : str
        The pattern engine's form: ``"lut"`` (synthesis, the default) or ``"word"`` (the same
        registers and numbers as word-level logic; whole-network simulations use it for
        speed). See :class:`~rtl_gen.pattern.PatternEngine`.

    Attributes
    ----------
    start : In(1)
        Pulse: run the Program from word 0 (the memories must be loaded).
    done : Out(1)
        High after ``END`` until the next ``start``.
    error : Out(1)
        An instruction the top does not implement stopped the run (see the module docstring).
    cycles : Out(48)
        Cycles from ``start`` to ``done``.
    pc : Out(16)
        Current instruction (debug).
    host_w : In(stream.Signature(host_w_layout))
        Memory writes: ``mem`` (MEM_*), word ``addr``, ``data`` (the image word); ready (one
        word per cycle) except while booting.
    booting : Out(1)
        The boot ROM (``boot`` writes baked into the bitstream) is being copied into the
        memories; 0 without baked images.
    rx : In(stream.Signature(8))
        Host-link bytes for ``LOAD`` (HWC codes of the input rows).
    tx : Out(stream.Signature(8))
        Host-link bytes of ``STORE`` (int64 logits, little-endian).
    """

    def __init__(self, arch: ArchConfig, boot: list | None = None, netlist: str = "lut"):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        c = arch.engine
        for name in ("lanes", "pe_cin", "mac_cols"):
            v = getattr(c, name)
            check_int(name, v, 1)
            if v & (v - 1):
                raise ValueError(f"{name} must be a power of two, not {v}")
        if c.k_max not in (3, 5, 7):
            raise ValueError(f"k_max must be one of 3, 5, 7, not {c.k_max}")
        self._arch = arch
        self._boot = list(boot) if boot else []
        mm = self._memory_map = MemoryMap(arch)
        self._pe = PatternEngine(lanes=c.lanes, k=c.k_max, cin=c.pe_cin, groups=1, a_bits=c.a_bits,
                                 max_cin=arch.max_cin, netlist=netlist, pattern_slices=c.pattern_slices,
                                 pattern_depth=arch.pattern_depth)
        self._ma = MacArray(rows=c.lanes, cols=c.mac_cols, packed=c.packed,
                            weight_depth=mm["weights"].depth)
        self._pp = PostProcess(lanes=c.lanes, inputs=2, acc_width=32, out_width=9,
                               param_depth=mm["params"].depth, m_b_width=M_B_WIDTH,
                               units=c.pp_units)
        # the engines' write ports and the contract's memory map must agree word for word
        for name, port in (("patterns", self._pe.pattern_w), ("weights", self._ma.weight_w)):
            got = len(Value.cast(port.data))
            if got != mm[name].word_bits:
                raise ValueError(f"internal error: the {name} write port is {got} bits, the memory map's "
                                 f"words {mm[name].word_bits}")
        self._depths = {r.select: r.depth for r in mm}
        self._host_w_layout = data.StructLayout({
            "mem": unsigned(3),
            "addr": unsigned(mm.addr_bits),
            "data": unsigned(mm.data_bits),
        })
        super().__init__({
            "start": In(1), "done": Out(1), "error": Out(1), "cycles": Out(48), "pc": Out(16),
            "booting": Out(1),
            "host_w": In(stream.Signature(self._host_w_layout)),
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
        })

    arch = property(lambda self: self._arch, doc="The :class:`~sephw.arch.ArchConfig`.")
    memory_map = property(lambda self: self._memory_map, doc="The host-writable memories.")
    boot = property(lambda self: list(self._boot), doc="Baked ``(mem, addr, word)`` writes.")
    host_w_layout = property(lambda self: self._host_w_layout, doc="Payload of ``host_w``.")
    pattern_engine = property(lambda self: self._pe)
    mac_array = property(lambda self: self._ma)
    post_process = property(lambda self: self._pp)

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        c = arch.engine
        pe, ma, pp = self._pe, self._ma, self._pp
        m.submodules.pattern_engine = pe
        m.submodules.mac_array = ma
        m.submodules.post_process = pp
        L, Q, PC, K, AB = c.lanes, c.mac_cols, c.pe_cin, c.k_max, c.a_bits
        KK = K * K

        # ------------------------------------------------------------------ memories
        m.submodules.program = prog = Memory(shape=isa.WORD_BITS, depth=self._depths[MEM_PROGRAM], init=[])
        m.submodules.tensor_table = ttab = Memory(shape=TENSOR_DESC.bits, depth=self._depths[MEM_TENSORS], init=[])
        m.submodules.params = prm = Memory(shape=PARAM_WORD.bits, depth=self._depths[MEM_PARAMS], init=[])
        m.submodules.pool_sums = sums = Memory(shape=SUM_BITS, depth=max(2, arch.max_channels), init=[])
        m.submodules.logits = lg = Memory(shape=signed(64), depth=max(2, arch.max_classes), init=[])
        prog_r, ttab_r, prm_r = prog.read_port(), ttab.read_port(), prm.read_port()
        sums_r = sums.read_port()
        lg_r = lg.read_port()
        prog_w, ttab_w, prm_w = prog.write_port(), ttab.write_port(), prm.write_port()
        sums_w, lg_w = sums.write_port(), lg.write_port()
        for p in (prog_r, ttab_r, prm_r, sums_r, lg_r):
            m.d.comb += p.en.eq(1)

        # activation memory: NB byte-wide banks, byte a in bank a mod NB, so one read returns
        # NB consecutive bytes (one window tap of pe_cin channels, a MAC beat of mac_cols
        # channels, or the skip codes of a tile) from any address; writes are one byte
        NB = max(PC, Q, L)
        LNB = exact_log2(NB)
        act_raddr = Signal(32)         # byte address of the vector read (this cycle)
        act_waddr, act_wdata, act_wen = Signal(32), Signal(8), Signal()
        # the writer's bytes 1 .. U-1 of a U-aligned group (PostProcess units): byte u goes to
        # the bank after byte 0's by u, at the same word address (no per-bank address logic)
        U = c.pp_units
        LU = exact_log2(U)
        act_wdata_u = {u: Signal(8, name=f"act_wdata_{u}") for u in range(1, U)}
        act_wen_u = {u: Signal(name=f"act_wen_{u}") for u in range(1, U)}
        a_lo_d = Signal(LNB)
        m.d.sync += a_lo_d.eq(act_raddr[:LNB])
        bank_data = []
        for b in range(NB):
            bank = Memory(shape=8, depth=max(2, -(-arch.act_bytes // NB)), init=[])
            m.submodules[f"act_bank{b}"] = bank
            rp, wp = bank.read_port(), bank.write_port()
            off = Signal(LNB, name=f"act_off{b}")
            m.d.comb += [off.eq(Const(b, LNB) - act_raddr[:LNB]), rp.en.eq(1),
                         rp.addr.eq((act_raddr + off) >> LNB),
                         wp.addr.eq(act_waddr >> LNB), wp.data.eq(act_wdata),
                         wp.en.eq(act_wen & (act_waddr[:LNB] == b))]
            if b % U:
                hit = act_wen_u[b % U] & (act_waddr[LU:LNB] == b >> LU)
                with m.If(hit):
                    m.d.comb += [wp.data.eq(act_wdata_u[b % U]), wp.en.eq(1)]
            bank_data.append(rp.data)
        bank_arr = Array(bank_data)
        act_vec = []                   # bytes [A, A + NB) of the previous cycle's read address A
        for o in range(NB):
            v = Signal(8, name=f"act_vec{o}")
            m.d.comb += v.eq(bank_arr[(a_lo_d + o)[:LNB]] if NB > 1 else bank_data[0])
            act_vec.append(v)

        # host writes; with baked images a boot ROM replays them through the same path after
        # reset (``booting``; ``start`` waits for it)
        hw_ = Signal(self._host_w_layout)
        hv = Signal()
        m.d.comb += self.host_w.ready.eq(~self.booting)
        if self._boot:
            lay = self._host_w_layout
            words = [lay.const({"mem": sel, "addr": a, "data": w}).as_value().value for sel, a, w in self._boot]
            m.submodules.boot_rom = rom = Memory(shape=lay.size, depth=len(words), init=words)
            rom_r = rom.read_port()
            idx = Signal(range(len(words) + 1))
            fetched = Signal()
            m.d.comb += [rom_r.addr.eq(idx), rom_r.en.eq(1)]
            booting = Signal(init=1)
            m.d.comb += self.booting.eq(booting)
            with m.If(booting):
                m.d.sync += fetched.eq(idx < len(words))
                with m.If(idx < len(words)):
                    m.d.sync += idx.eq(idx + 1)
                with m.Elif(~fetched):
                    m.d.sync += booting.eq(0)
            m.d.comb += [hw_.eq(Mux(fetched, rom_r.data, self.host_w.payload)),
                         hv.eq(fetched | (self.host_w.valid & ~booting))]
        else:
            m.d.comb += [hw_.eq(self.host_w.payload), hv.eq(self.host_w.valid)]
        for port, sel in ((prog_w, MEM_PROGRAM), (ttab_w, MEM_TENSORS), (prm_w, MEM_PARAMS)):
            m.d.comb += [port.addr.eq(hw_.addr), port.data.eq(hw_.data), port.en.eq(hv & (hw_.mem == sel))]
        pw = PARAM_LAYOUT(hw_.data[:PARAM_WORD.bits])
        m.d.comb += [
            pe.pattern_w.addr.eq(hw_.addr), pe.pattern_w.data.eq(hw_.data),
            pe.pattern_w.en.eq(hv & (hw_.mem == MEM_PATTERNS)),
            ma.weight_w.addr.eq(hw_.addr), ma.weight_w.data.eq(hw_.data),
            ma.weight_w.en.eq(hv & (hw_.mem == MEM_WEIGHTS)),
            pp.param_w.addr.eq(hw_.addr),
            pp.param_w.data.m_a.eq(pw.m_a), pp.param_w.data.m_b.eq(pw.m_b),
            pp.param_w.data.bias.eq(pw.bias), pp.param_w.data.shift.eq(pw.shift),
            pp.param_w.en.eq(hv & (hw_.mem == MEM_PARAMS)),
        ]

        # ------------------------------------------------------------------ state
        ins = Signal(INSTR_LAYOUT)
        da, db, dd = Signal(TENSOR_LAYOUT), Signal(TENSOR_LAYOUT), Signal(TENSOR_LAYOUT)
        running = Signal()
        pc = Signal(16)
        m.d.comb += self.pc.eq(pc)
        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        ra = RowAddress()          # first rows of a tile's operands / LOAD / POOL rows
        rw = RowAddress()          # the writer's first row of a tile
        m.submodules.row_addr = ra
        m.submodules.row_addr_writer = rw

        def ring_step(idx, addr, d):
            """The ring position after (``idx``, ``addr``) of tensor ``d``: the next row."""
            wrap = idx + 1 == d.ring_rows
            return Mux(wrap, 0, idx + 1)[:16], Mux(wrap, d.base, addr + d.width * d.channels)[:32]

        # modes of the current compute instruction
        use_pe = Signal()          # operand a on the pattern engine (else MAC array)
        b_mac = Signal()           # operand b: 1x1 on the MAC array
        b_id = Signal()            # operand b: identity skip codes
        fc_mode = Signal()         # MAC array results go to the FC combiner
        chunks_a, chunks_b = Signal(16), Signal(16)
        positions = Signal(32)

        # loop counters
        y, x = Signal(16), Signal(16)
        ch = Signal(16)
        gi, gj = Signal(range(K + 1)), Signal(range(K + 1))
        q = Signal(16)
        e = Signal(32)
        cc = Signal(16)
        row_i = Signal(range(K + 2))
        adv = Signal()
        rowaddr = Array(Signal(32, name=f"rowaddr{i}") for i in range(K))
        rowvalid = Array(Signal(name=f"rowvalid{i}") for i in range(K))
        rowb = Signal(32)
        # ring positions (row index in the ring, byte address) of operand a's top window row
        # y*stride - pad (ya), of the row table cursor (ca), of operand b's row (yb)
        ya_i, ya_a = Signal(16), Signal(32)
        ca_i, ca_a = Signal(16), Signal(32)
        yb_i, yb_a = Signal(16), Signal(32)

        # gather registers and the one pending read (memory latency 1)
        win = Signal(KK * PC * AB)
        xv = Signal(Q * 8)
        sk = Signal(L * 8)
        # identity-skip codes waiting for the PostProcess: a two-entry queue (sk_out at its head),
        # so the gatherer can post a position's codes while the previous position's beat is
        # still in the pattern engine (with one entry the two waited on each other: 8.5 cycles
        # per position where the engine, the PostProcess and the writer each take 8)
        sk_out, sk_next = Signal(L * 8), Signal(L * 8)
        skip_n = Signal(range(3))
        skip_valid = Signal()
        skip_push = Signal()               # the gatherer posts this cycle (ISSUE_B)
        skip_pop = Signal()                # the PostProcess takes the head this cycle
        m.d.comb += skip_valid.eq(skip_n != 0)
        pend = Signal()                # a read is in flight
        pend_in = Signal()             # inside the image / channel range (else zero)
        pend_dst = Signal(2)           # 0 window, 1 MAC vector, 2 skip, 3 FC vector (byte plane)
        pend_idx = Signal(16)
        pend_cnt = Signal(16)          # channels of the vector that are inside the operand
        plane = Signal(2)

        def masked(n, width, first=0):
            return Cat(Mux(pend_in & (first + i < pend_cnt), act_vec[first + i], 0)[:width]
                       for i in range(n))

        # the landing read's vectors, each built once: a window tap (chunk ch, and ch + 1 from
        # bytes pe_cin.. of a two-chunk read), a MAC beat, the skip codes
        land_tap, land_tap1 = Signal(PC * AB), Signal(PC * AB)
        land_q, land_sk = Signal(Q * 8), Signal(L * 8)
        m.d.comb += [land_tap.eq(masked(PC, AB)), land_q.eq(masked(Q, 8)), land_sk.eq(masked(L, 8))]
        DUAL = NB >= 2 * PC               # two chunks per tap read (below)
        if DUAL:
            m.d.comb += land_tap1.eq(masked(PC, AB, PC))

        # Two chunks per tap read: when a read returns at least 2 * pe_cin bytes, a gather pass
        # fills the windows of chunks ch (win) and ch + 1 (win1) together. win's beat is issued
        # as the pass ends and win1 moves into the hold register at the same time, which the
        # pattern engine takes next, while the gatherer goes on: the engine (a_bits cycles per
        # beat) rather than the gatherer (k^2 reads per pass) sets the pace.
        pend_dual = Signal()           # the pending window read also fills win1
        dual = Signal()                # the current pass covers chunks ch and ch + 1
        if DUAL:
            win1 = Signal(KK * PC * AB)
            hold = Signal(KK * PC * AB)
            h_valid, h_last = Signal(), Signal()
            h_pat = Signal.like(pe.window.payload.pat_addr)
        m.d.sync += pend.eq(0)
        with m.If(pend):
            with m.Switch(pend_dst):
                with m.Case(0):
                    m.d.sync += win.word_select(pend_idx[:ceil_log2(KK + 1)], PC * AB).eq(land_tap)
                    if DUAL:
                        with m.If(pend_dual):
                            m.d.sync += win1.word_select(pend_idx[:ceil_log2(KK + 1)], PC * AB).eq(land_tap1)
                with m.Case(1):
                    m.d.sync += xv.eq(land_q)
                with m.Case(2):
                    m.d.sync += sk.eq(land_sk)
                with m.Case(3):
                    m.d.sync += xv.word_select(pend_idx[:ceil_log2(Q + 1)], 8).eq(
                        Mux(pend_in, sums_r.data.word_select(plane, 8), 0))
        # What the engines see: the gather registers with the read landing this cycle merged
        # in, so a beat is issued in the cycle its last read lands. The last tap of a window
        # is always slot 0 (taps are read from (k-1, k-1) down to (0, 0)).
        win_out = Signal(KK * PC * AB)
        xv_out = Signal(Q * 8)
        m.d.comb += [
            win_out.eq(win),
            xv_out.eq(Mux(pend & (pend_dst == 1), land_q, xv)),
        ]
        # the last read of a full pass lands in slot 0, that of a column pass (sliding window)
        # in slot k - 1
        for slot in sorted({0} | {kk - 1 for kk in (3, 5, 7) if kk <= K}):
            with m.If(pend & (pend_dst == 0) & (pend_idx == slot)):
                m.d.comb += win_out.word_select(slot, PC * AB).eq(land_tap)

        def read(addr, inside, dst, idx, cnt, both=0):
            """Issue one activation read this cycle (its data lands next cycle)."""
            m.d.comb += act_raddr.eq(addr)
            m.d.sync += [pend.eq(1), pend_in.eq(inside), pend_dst.eq(dst), pend_idx.eq(idx),
                         pend_cnt.eq(cnt), pend_dual.eq(both)]

        # engine streams (defaults: idle); the hold register's beat goes first
        ma_issue = Signal()
        pe_issue = Signal()
        pe_take = Signal()             # the gatherer's beat (win) is accepted this cycle
        m.d.comb += [
            pe.act_bits.eq(da.bits[:ceil_log2(AB + 1)]),
            pe.window.payload.window.eq(win_out),
            pe.window.payload.pat_addr.eq(ins.wa + ch),
            pe.window.payload.first.eq(ch == 0),
            pe.window.payload.last.eq(ch == chunks_a - 1),
            pe.window.valid.eq(pe_issue),
            pe_take.eq(pe_issue & pe.window.ready),
            ma.pixel.payload.x.eq(xv_out),
            ma.pixel.valid.eq(ma_issue),
        ]
        if DUAL:
            win1_out = Signal(KK * PC * AB)
            m.d.comb += win1_out.eq(win1)
            with m.If(pend & (pend_dst == 0) & pend_dual):
                m.d.comb += win1_out[:PC * AB].eq(land_tap1)
            with m.If(h_valid):
                m.d.comb += [pe.window.payload.window.eq(hold), pe.window.payload.pat_addr.eq(h_pat),
                             pe.window.payload.first.eq(0), pe.window.payload.last.eq(h_last),
                             pe.window.valid.eq(1), pe_take.eq(0)]
                with m.If(pe.window.ready):
                    m.d.sync += h_valid.eq(0)
            with m.If(pe_take & dual):
                m.d.sync += [hold.eq(win1_out), h_valid.eq(1), h_pat.eq(ins.wa + ch + 1),
                             h_last.eq(ch + 2 == chunks_a), win1.eq(0)]

        # PostProcess inputs: acc_a from the pattern engine or the MAC array; acc_b from the
        # MAC array, the identity skip codes, or zero (one accumulator)
        full = Signal(10)          # 2^bits of the dst codes
        m.d.comb += full.eq(Const(1, 10) << dd.bits[:4])
        half = full >> 1
        m.d.comb += [pp.param_base.eq(ins.prm),
                     pp.lo.eq(Mux(dd.signed != 0, -half, 0)),
                     pp.hi.eq(Mux(dd.signed != 0, half - 1, full - 1))]
        with m.If(use_pe):
            m.d.comb += [pp.acc_a.valid.eq(pe.acc.valid), pe.acc.ready.eq(pp.acc_a.ready)]
            for l in range(L):
                m.d.comb += pp.acc_a.payload[l].eq(pe.acc.payload[l])
        with m.Elif(~fc_mode):
            m.d.comb += [pp.acc_a.valid.eq(ma.acc.valid), ma.acc.ready.eq(pp.acc_a.ready)]
            for l in range(L):
                m.d.comb += pp.acc_a.payload[l].eq(ma.acc.payload[l])
        with m.If(b_mac):
            m.d.comb += [pp.acc_b.valid.eq(ma.acc.valid), ma.acc.ready.eq(pp.acc_b.ready)]
            for l in range(L):
                m.d.comb += pp.acc_b.payload[l].eq(ma.acc.payload[l])
        with m.Elif(b_id):
            m.d.comb += [pp.acc_b.valid.eq(skip_valid), skip_pop.eq(skip_valid & pp.acc_b.ready)]
            for l in range(L):
                m.d.comb += pp.acc_b.payload[l].eq(sk_out.word_select(l, 8))
        with m.Else():
            m.d.comb += pp.acc_b.valid.eq(1)
        skip_in = Mux(pend, land_sk, sk)
        with m.If(skip_pop):
            with m.If(skip_push):
                with m.If(skip_n == 2):
                    m.d.sync += [sk_out.eq(sk_next), sk_next.eq(skip_in)]
                with m.Else():
                    m.d.sync += sk_out.eq(skip_in)
            with m.Else():
                m.d.sync += [sk_out.eq(sk_next), skip_n.eq(skip_n - 1)]
        with m.Elif(skip_push):
            with m.If(skip_n == 0):
                m.d.sync += sk_out.eq(skip_in)
            with m.Else():
                m.d.sync += sk_next.eq(skip_in)
            m.d.sync += skip_n.eq(skip_n + 1)

        # ------------------------------------------------------------------ writer
        # One RowAddress per tile for its first row, then the rows step through the ring;
        # ``tc`` cycles per position (the next position's codes are taken with the last byte).
        w_active = Signal()
        wx, wl = Signal(16), Signal(16)
        wcount = Signal(32)
        wt_i, wt_a = Signal(16), Signal(32)
        yv = Signal(pp.y.payload.shape())
        act_w_load = Signal()
        load_addr, load_data = Signal(32), Signal(8)
        w_en = Signal()
        w_addr = Signal(32)
        w_wide = Signal()          # this tile writes U bytes per cycle (dst channels, c0 aligned)
        # registered a cycle ahead, so that the PostProcess's ready (and through it the pattern
        # engine's and the gatherer's handshakes) does not wait on the writer's adders: this
        # cycle stores the position's last bytes (w_last), of the tile's last position (w_final)
        w_last, w_final = Signal(), Signal()
        w_step = Signal(range(U + 1))
        m.d.comb += w_step.eq(Mux(w_wide, U, 1))
        m.d.comb += [act_waddr.eq(Mux(act_w_load, load_addr, w_addr)),
                     act_wdata.eq(Mux(act_w_load, load_data, yv.as_value().word_select(wl[:ceil_log2(L + 1)], 9)[:8])),
                     act_wen.eq(act_w_load | w_en)]
        for u in range(1, U):
            m.d.comb += [act_wdata_u[u].eq(yv.as_value().word_select((wl + u)[:ceil_log2(L + 1)], 9)[:8]),
                         act_wen_u[u].eq(w_en & w_wide & (wl + u < ins.tc))]
        m.d.comb += [rw.ring.eq(dd.ring_rows), rw.base.eq(dd.base), rw.row_bytes.eq(dd.width * dd.channels),
                     rw.r.eq(ins.row0)]
        with m.FSM(name="writer"):
            with m.State("IDLE"):
                with m.If(w_active & (wcount != positions)):
                    m.d.comb += rw.start.eq(1)
                    m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += w_final.eq(positions == 1)
                with m.If(~rw.busy):
                    m.d.sync += [wt_i.eq(rw.rem), wt_a.eq(rw.addr)]
                    m.next = "WAIT_Y"
            with m.State("WAIT_Y"):
                m.d.comb += pp.y.ready.eq(1)
                with m.If(pp.y.valid):
                    m.d.sync += [yv.eq(pp.y.payload), wl.eq(0), w_last.eq(w_step >= ins.tc)]
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [w_en.eq(1), w_addr.eq(wt_a + wx * dd.channels + ins.c0 + wl)]
                m.d.sync += [wl.eq(wl + w_step), w_last.eq(wl + (w_step << 1) >= ins.tc)]
                with m.If(w_last):
                    m.d.sync += [wcount.eq(wcount + 1), w_final.eq(wcount + 2 == positions)]
                    with m.If(wx == dd.width - 1):
                        nxt_i, nxt_a = ring_step(wt_i, wt_a, dd)
                        m.d.sync += [wx.eq(0), wt_i.eq(nxt_i), wt_a.eq(nxt_a)]
                    with m.Else():
                        m.d.sync += wx.eq(wx + 1)
                    with m.If(w_final):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += pp.y.ready.eq(1)
                        with m.If(pp.y.valid):
                            m.d.sync += [yv.eq(pp.y.payload), wl.eq(0), w_last.eq(w_step >= ins.tc)]
                        with m.Else():
                            m.next = "WAIT_Y"

        # ------------------------------------------------------------------ FC combiner
        acc_fc = Array(Signal(signed(64), name=f"acc_fc{l}") for l in range(L))
        fc_l = Signal(range(L))                     # FC_ACC: the lane being added
        fc_pay = Array(ma.acc.payload[l].as_signed() for l in range(L))
        fc_mc, fc_prod = Signal(64), Signal(64)     # FC_MUL: multiplicand (shifted), product
        fc_mp = Signal(32)                          # multiplier M (shifted)
        fc_i = Signal(range(FC_MUL_CYCLES))
        ob, p_out = Signal(16), Signal(16)
        n_cb = Signal(16)
        o_idx = Signal(16)
        m.d.comb += o_idx.eq(ob * L + p_out)

        # ------------------------------------------------------------------ sequencer
        s_ = Signal(signed(18))
        m.d.comb += s_.eq(y * ins.stride)
        row_r = Signal(signed(18))
        m.d.comb += row_r.eq(s_ - ins.pad + row_i)
        xs = Signal(signed(18))
        m.d.comb += xs.eq(x * ins.stride)
        col = Signal(signed(18))
        m.d.comb += col.eq(xs - ins.pad + gj)
        col_ok = (col >= 0) & (col < da.width)
        # operand a's first window row row0*stride - pad, plus ring_rows*pad (pad <= 7) to stay
        # non-negative with the same residue (shifts and adds: no multiplier)
        r0_biased = Signal(16)
        m.d.comb += r0_biased.eq(Mux(ins.stride == 2, ins.row0 << 1, ins.row0) - ins.pad
                                 + sum(Mux(ins.pad[i], da.ring_rows << i, 0) for i in range(3)))
        # Sliding window: a stride-1 pattern operand keeps each chunk's window from one position
        # to the next, shifted left by one column (zeros in at column k_max - 1), and reads only
        # the new column: k reads per chunk and position instead of k^2 (not at a row's first
        # position, which reads the whole window). The shifted windows wait in the column
        # store, one entry per chunk (distributed RAM, read asynchronously): written as a
        # chunk's beat is issued, read back into the window as the same chunk's next pass
        # starts (at the next chunk's issue, or in POS_NEXT for chunk 0). Not with two-chunk
        # reads, whose passes already keep up with the engine. Without the store
        # (``column_store = False``: fewer LUTs) only single-chunk operands slide, the window
        # register shifting in place.
        CS = c.column_store
        slide_ok = Signal()
        colmode = Signal()                # this position's passes read only column k - 1
        m.d.comb += slide_ok.eq(use_pe & ((chunks_a == 1) | (CS and not DUAL)) & (ins.stride == 1))
        TAP = PC * AB
        if CS:
            m.submodules.column_store = cstore = Memory(shape=K * (K - 1) * TAP,
                                                        depth=max(2, arch.max_cin // PC), init=[])
            cs_r, cs_w = cstore.read_port(domain="comb"), cstore.write_port()
            # written: window slots (i, j + 1) for j < k_max - 1; read back into slots (i, j)
            m.d.comb += cs_w.data.eq(Cat(*[win_out.word_select(i * K + j + 1, TAP)
                                           for i in range(K) for j in range(K - 1)]))
            win_stored = Cat(*[cs_r.data.word_select(i * (K - 1) + j, TAP) if j + 1 < K else Const(0, TAP)
                               for i in range(K) for j in range(K)])
        else:
            win_shifted = Cat(*[win_out.word_select(i * K + j + 1, TAP) if j + 1 < K else Const(0, TAP)
                                for i in range(K) for j in range(K)])
        dual0 = Signal()                  # a position's first pass covers two chunks
        m.d.comb += dual0.eq(DUAL & use_pe & (chunks_a > 1))
        # window slot of tap (k-1, k-1), a pass's first read (no multiplier: k is 3, 5 or 7)
        slot_last = Signal(range(KK))
        m.d.comb += slot_last.eq(sum(Mux(ins.k == kk, (kk - 1) * (K + 1), 0) for kk in (3, 5, 7) if kk <= K))
        b_s2 = Signal()        # operand b (1x1 projection) at stride 2: src_b twice the output's width
        m.d.comb += b_s2.eq(db.width != dd.width)
        ta = Signal(16)        # FC: channel of the MAC term
        m.d.comb += ta.eq(ch * Q + q)

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(self.start & ~self.booting):
                    m.d.sync += [pc.eq(0), self.cycles.eq(0), running.eq(1), self.done.eq(0),
                                 self.error.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += prog_r.addr.eq(pc)
                m.next = "FETCH2"
            with m.State("FETCH2"):
                m.d.sync += ins.eq(prog_r.data[:INSTR_LAYOUT.size])
                m.d.comb += ttab_r.addr.eq(INSTR_LAYOUT(prog_r.data[:INSTR_LAYOUT.size]).src_a)
                m.next = "DESC_A"
            with m.State("DESC_A"):
                m.d.sync += da.eq(ttab_r.data)
                m.d.comb += ttab_r.addr.eq(ins.src_b)
                m.next = "DESC_B"
            with m.State("DESC_B"):
                m.d.sync += db.eq(ttab_r.data)
                m.d.comb += ttab_r.addr.eq(ins.dst)
                m.next = "DESC_D"
            with m.State("DESC_D"):
                m.d.sync += dd.eq(ttab_r.data)
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                # a tile fetches its first pattern word whatever the tile before it left staged
                m.d.comb += pe.pattern_flush.eq(1)
                op = ins.op
                is_pe = (op == Op.CONV_PATTERN) | (op == Op.PRB) | \
                    ((op == Op.RESADD) & ins.flags[FLAG_B_PATTERN.bit_length() - 1])
                m.d.sync += [
                    use_pe.eq(0), b_mac.eq(0), b_id.eq(0), fc_mode.eq(0),
                    y.eq(ins.row0), x.eq(0), ch.eq(0), row_i.eq(0),
                    positions.eq(ins.rows * dd.width),
                ]
                with m.Switch(op):
                    with m.Case(Op.LOAD):
                        m.next = "LOAD_ROW"
                    with m.Case(Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
                        skip_id = (op == Op.RESADD) & ins.flags[FLAG_SKIP_IDENTITY.bit_length() - 1]
                        m.d.sync += [
                            use_pe.eq(is_pe),
                            b_mac.eq((op == Op.PRB) | ((op == Op.RESADD) & ~skip_id)),
                            b_id.eq(skip_id),
                            chunks_a.eq(Mux(is_pe, (ins.na + PC - 1) >> exact_log2(PC),
                                            (ins.na + Q - 1) >> exact_log2(Q))),
                            chunks_b.eq((ins.nb + Q - 1) >> exact_log2(Q)),
                            wx.eq(0), wcount.eq(0), w_active.eq(1),
                            w_wide.eq((dd.channels[:LU] == 0) & (ins.c0[:LU] == 0) if U > 1 else 0),
                        ]
                        with m.If(~is_pe & (ins.k != 1)):
                            m.next = "ERROR"      # int8 k x k: not implemented
                        with m.Else():
                            m.next = "TILE_INIT"
                    with m.Case(Op.POOL_FC):
                        m.next = "POOL_START"
                    with m.Case(Op.STORE):
                        m.d.sync += e.eq(0)
                        m.next = "STORE_RD"
                    with m.Case(Op.END):
                        m.d.sync += [running.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Case(Op.NOP, Op.SYNC):
                        m.next = "NEXT"
                    with m.Default():
                        m.next = "ERROR"
            with m.State("NEXT"):
                m.d.sync += pc.eq(pc + 1)
                m.next = "FETCH"
            with m.State("ERROR"):
                m.d.sync += [running.eq(0), self.error.eq(1), self.done.eq(1), w_active.eq(0)]
                m.next = "IDLE"

            # ---------------------------------------------------------------- LOAD
            with m.State("LOAD_ROW"):
                m.d.comb += [ra.r.eq(y), ra.ring.eq(dd.ring_rows), ra.base.eq(dd.base),
                             ra.row_bytes.eq(dd.width * dd.channels)]
                with m.If(y == ins.row0 + ins.rows):
                    m.next = "NEXT"
                with m.Else():
                    m.d.comb += ra.start.eq(1)
                    m.next = "LOAD_ROW2"
            with m.State("LOAD_ROW2"):
                with m.If(~ra.busy):
                    m.d.sync += [rowb.eq(ra.addr), e.eq(0)]
                    m.next = "LOAD_BYTE"
            with m.State("LOAD_BYTE"):
                m.d.comb += [self.rx.ready.eq(1), load_addr.eq(rowb + e), load_data.eq(self.rx.payload)]
                with m.If(self.rx.valid):
                    m.d.comb += act_w_load.eq(1)
                    m.d.sync += e.eq(e + 1)
                    with m.If(e == dd.width * dd.channels - 1):
                        m.d.sync += y.eq(y + 1)
                        m.next = "LOAD_ROW"

            # ---------------------------------------------------------------- compute tiles
            # once per tile: the ring positions of operand a's first window row (row0*stride -
            # pad, biased by ring*pad to stay non-negative: the same residue) and of operand b's
            # first row (row0, or 2*row0 for a stride-2 projection)
            with m.State("TILE_INIT"):
                m.d.comb += [ra.start.eq(1), ra.r.eq(r0_biased),
                             ra.ring.eq(da.ring_rows), ra.base.eq(da.base),
                             ra.row_bytes.eq(da.width * da.channels)]
                m.next = "TILE_INIT_A"
            with m.State("TILE_INIT_A"):
                with m.If(~ra.busy):
                    m.d.sync += [ya_i.eq(ra.rem), ya_a.eq(ra.addr), ca_i.eq(ra.rem), ca_a.eq(ra.addr)]
                    with m.If(b_mac | b_id):
                        m.next = "TILE_INIT_B"
                    with m.Else():
                        m.next = "ROWSETUP"
            with m.State("TILE_INIT_B"):
                m.d.comb += [ra.start.eq(1), ra.r.eq(Mux(b_s2, ins.row0 << 1, ins.row0)), ra.ring.eq(db.ring_rows),
                             ra.base.eq(db.base), ra.row_bytes.eq(db.width * db.channels)]
                m.next = "TILE_INIT_B2"
            with m.State("TILE_INIT_B2"):
                with m.If(~ra.busy):
                    m.d.sync += [yb_i.eq(ra.rem), yb_a.eq(ra.addr)]
                    m.next = "ROWSETUP"

            # row table of the output row, one operand-a row per cycle (ring steps), then
            # src_b's row y (or 2y)
            with m.State("ROWSETUP"):
                with m.If(row_i < ins.k):
                    nxt_i, nxt_a = ring_step(ca_i, ca_a, da)
                    m.d.sync += [rowaddr[row_i].eq(ca_a), rowvalid[row_i].eq((row_r >= 0) & (row_r < da.height)),
                                 ca_i.eq(nxt_i), ca_a.eq(nxt_a), row_i.eq(row_i + 1)]
                with m.Else():
                    m.d.sync += [rowb.eq(yb_a), x.eq(0), ch.eq(0), gi.eq(ins.k - 1), gj.eq(ins.k - 1), q.eq(0),
                                 dual.eq(dual0), colmode.eq(0), win.eq(0)]
                    m.next = "GATHER_A"
            # next output row: operand a's top row moves by the stride, b's by 1 (2 when strided)
            with m.State("ROWADV"):
                ya_n_i, ya_n_a = ring_step(ya_i, ya_a, da)
                yb_n_i, yb_n_a = ring_step(yb_i, yb_a, db)
                with m.If(~adv):
                    m.d.sync += [ya_i.eq(ya_n_i), ya_a.eq(ya_n_a), yb_i.eq(yb_n_i), yb_a.eq(yb_n_a), adv.eq(1)]
                with m.Else():
                    with m.If(ins.stride == 2):
                        m.d.sync += [ya_i.eq(ya_n_i), ya_a.eq(ya_n_a), ca_i.eq(ya_n_i), ca_a.eq(ya_n_a)]
                    with m.Else():
                        m.d.sync += [ca_i.eq(ya_i), ca_a.eq(ya_a)]
                    with m.If(b_s2):
                        m.d.sync += [yb_i.eq(yb_n_i), yb_a.eq(yb_n_a)]
                    m.d.sync += adv.eq(0)
                    m.next = "ROWSETUP"

            # pattern operand: taps (k-1, k-1) down to (0, 0), one read of pe_cin channels per
            # cycle into window slot i*k_max + j (the pattern words hold bit c*k_max^2 + i*k_max + j);
            # the beat is issued as the last tap lands, and the next chunk's first read goes out
            # in the same cycle: k^2 cycles per chunk
            with m.State("GATHER_A"):
                with m.If(use_pe):
                    read(rowaddr[gi] + col * da.channels + ins.cin0 + ch * PC, rowvalid[gi] & col_ok, 0,
                         gi * K + gj, ins.na - ch * PC, dual)
                    with m.If(colmode):
                        # sliding window: only the new column j = k-1, rows k-1 .. 0
                        with m.If(gi == 0):
                            m.next = "ISSUE_A"
                        with m.Else():
                            m.d.sync += gi.eq(gi - 1)
                    with m.Elif(gj == 0):
                        m.d.sync += gj.eq(ins.k - 1)
                        with m.If(gi == 0):
                            m.next = "ISSUE_A"
                        with m.Else():
                            m.d.sync += gi.eq(gi - 1)
                    with m.Else():
                        m.d.sync += gj.eq(gj - 1)
                with m.Else():
                    # 1x1 on the MAC array: mac_cols input channels cin0 + ch*Q .. per beat
                    read(rowaddr[0] + xs * da.channels + ins.cin0 + ch * Q, rowvalid[0], 1, 0, ins.na - ch * Q)
                    m.next = "ISSUE_A"
            with m.State("ISSUE_A"):
                done_a = Signal()
                with m.If(use_pe):
                    m.d.comb += [pe_issue.eq(1), done_a.eq(pe_take)]
                with m.Else():
                    m.d.comb += [ma_issue.eq(1), ma.pixel.payload.w_addr.eq(ins.wa + ch),
                                 ma.pixel.payload.first.eq(ch == 0),
                                 ma.pixel.payload.last.eq(ch == chunks_a - 1),
                                 done_a.eq(ma.pixel.ready)]
                ch_next = Signal(16)       # the next pass's first chunk
                m.d.comb += ch_next.eq(ch + 1 + dual)
                with m.If(done_a):
                    m.d.sync += xv.eq(0)
                    if CS:
                        m.d.sync += win.eq(0)
                        with m.If(slide_ok):
                            m.d.comb += [cs_w.addr.eq(ch), cs_w.en.eq(1)]
                    else:
                        m.d.sync += win.eq(Mux(slide_ok, win_shifted, 0))
                    with m.If(ch_next == chunks_a):
                        m.d.sync += ch.eq(0)
                        with m.If(b_mac | b_id):
                            m.next = "GATHER_B"
                        with m.Else():
                            m.next = "POS_NEXT"
                    with m.Else():
                        m.d.sync += ch.eq(ch_next)
                        with m.If(use_pe):
                            nxt_dual = Signal()
                            m.d.comb += nxt_dual.eq(DUAL & (ch_next + 1 < chunks_a))
                            # gj is k - 1 here (set with the pass's last read), so col is
                            # tap (k-1, k-1)'s column: one address multiplier serves both
                            read(rowaddr[ins.k - 1] + col * da.channels + ins.cin0 + ch_next * PC,
                                 rowvalid[ins.k - 1] & col_ok, 0, slot_last,
                                 ins.na - ch_next * PC, nxt_dual)
                            m.d.sync += dual.eq(nxt_dual)
                            if CS:
                                with m.If(colmode):
                                    # the next chunk's window from the store, its new column next
                                    m.d.comb += cs_r.addr.eq(ch_next)
                                    m.d.sync += [win.eq(win_stored), gi.eq(ins.k - 2)]
                                with m.Else():
                                    m.d.sync += [gi.eq(ins.k - 1), gj.eq(ins.k - 2)]
                            else:
                                m.d.sync += [gi.eq(ins.k - 1), gj.eq(ins.k - 2)]
                            m.next = "GATHER_A"
                        with m.Else():
                            read(rowaddr[0] + xs * da.channels + ins.cin0 + (ch + 1) * Q, rowvalid[0], 1, 0,
                                 ins.na - (ch + 1) * Q)
            with m.State("GATHER_B"):
                with m.If(b_mac):
                    read(rowb + Mux(b_s2, x << 1, x) * db.channels + ins.cin0_b + ch * Q, 1, 1, 0, ins.nb - ch * Q)
                with m.Else():
                    read(rowb + x * db.channels + ins.cin0_b, 1, 2, 0, ins.nb)
                m.next = "ISSUE_B"
            with m.State("ISSUE_B"):
                with m.If(b_mac):
                    m.d.comb += [ma_issue.eq(1), ma.pixel.payload.w_addr.eq(ins.wb + ch),
                                 ma.pixel.payload.first.eq(ch == 0),
                                 ma.pixel.payload.last.eq(ch == chunks_b - 1)]
                    with m.If(ma.pixel.ready):
                        m.d.sync += xv.eq(0)
                        with m.If(ch == chunks_b - 1):
                            m.d.sync += ch.eq(0)
                            m.next = "POS_NEXT"
                        with m.Else():
                            m.d.sync += ch.eq(ch + 1)
                            read(rowb + Mux(b_s2, x << 1, x) * db.channels + ins.cin0_b + (ch + 1) * Q, 1, 1, 0,
                                 ins.nb - (ch + 1) * Q)
                with m.Else():
                    with m.If((skip_n != 2) | skip_pop):
                        m.d.comb += skip_push.eq(1)
                        m.next = "POS_NEXT"
            with m.State("POS_NEXT"):
                m.d.sync += [ch.eq(0), gi.eq(ins.k - 1), gj.eq(ins.k - 1), q.eq(0), dual.eq(dual0)]
                with m.If(x == dd.width - 1):
                    m.d.sync += [x.eq(0), y.eq(y + 1), row_i.eq(0)]
                    with m.If(y + 1 == ins.row0 + ins.rows):
                        m.next = "TILE_WAIT"
                    with m.Else():
                        m.next = "ROWADV"
                with m.Else():
                    m.d.sync += [x.eq(x + 1), colmode.eq(slide_ok)]
                    if CS:
                        with m.If(slide_ok):
                            # chunk 0's window, stored as its beat was issued (cs_r.addr is 0)
                            m.d.sync += win.eq(win_stored)
                    m.next = "GATHER_A"
            with m.State("TILE_WAIT"):
                with m.If(wcount == positions):
                    m.d.sync += [w_active.eq(0), use_pe.eq(0), b_mac.eq(0), b_id.eq(0)]
                    m.next = "NEXT"

            # ---------------------------------------------------------------- POOL_FC
            pool_clear = Signal(init=1)
            pool_cw = Signal(16)                # channel of the sum written this cycle
            pool_last = Signal(SUM_BITS)        # the sum written last cycle
            pool_fwd = Signal()                 # ... is the one read: use it
            with m.State("POOL_START"):
                m.d.sync += cc.eq(0)
                with m.If(pool_clear):
                    m.next = "POOL_CLR"
                with m.Else():
                    m.next = "POOL_ROW"
            with m.State("POOL_CLR"):
                m.d.comb += [sums_w.addr.eq(cc), sums_w.data.eq(0), sums_w.en.eq(1)]
                m.d.sync += cc.eq(cc + 1)
                with m.If(cc == da.channels - 1):
                    m.d.sync += pool_clear.eq(0)
                    m.next = "POOL_ROW"
            with m.State("POOL_ROW"):
                m.d.comb += [ra.r.eq(y), ra.ring.eq(da.ring_rows), ra.base.eq(da.base),
                             ra.row_bytes.eq(da.width * da.channels)]
                with m.If(y == ins.row0 + ins.rows):
                    with m.If(ins.flags[FLAG_FINAL.bit_length() - 1]):
                        m.d.sync += [ob.eq(0), fc_mode.eq(1),
                                     n_cb.eq((da.channels + Q - 1) >> exact_log2(Q))]
                        m.next = "FC_OB"
                    with m.Else():
                        m.next = "NEXT"
                with m.Else():
                    m.d.comb += ra.start.eq(1)
                    m.next = "POOL_ROW2"
            with m.State("POOL_ROW2"):
                with m.If(~ra.busy):
                    m.d.sync += [rowb.eq(ra.addr), e.eq(0), cc.eq(0)]
                    m.next = "POOL_A"
            # one byte per cycle: the read of byte e (and of its channel's sum) goes out while
            # byte e-1's sum is written; with one channel the sum read in the cycle of its own
            # write is stale, so the written value is forwarded
            def pool_read():
                """Read byte e of the row and its channel's sum (both land next cycle)."""
                m.d.comb += [act_raddr.eq(rowb + e), sums_r.addr.eq(cc)]
                m.d.sync += [pool_cw.eq(cc), e.eq(e + 1), cc.eq(Mux(cc == da.channels - 1, 0, cc + 1))]

            with m.State("POOL_A"):
                pool_read()
                m.d.sync += pool_fwd.eq(0)
                m.next = "POOL_B"
            with m.State("POOL_B"):
                pool_sum = Mux(pool_fwd, pool_last, sums_r.data) + act_vec[0]
                m.d.comb += [sums_w.addr.eq(pool_cw), sums_w.data.eq(pool_sum), sums_w.en.eq(1)]
                m.d.sync += [pool_last.eq(pool_sum), pool_fwd.eq(da.channels == 1)]
                with m.If(e == da.width * da.channels):
                    m.d.sync += y.eq(y + 1)
                    m.next = "POOL_ROW"
                with m.Else():
                    pool_read()
            with m.State("FC_OB"):
                with m.If(ob * L >= ins.tc):
                    m.d.sync += [pool_clear.eq(1), fc_mode.eq(0)]
                    m.next = "NEXT"
                with m.Else():
                    m.d.sync += [plane.eq(0), ch.eq(0), q.eq(0), xv.eq(0)]
                    m.d.sync += [acc_fc[l].eq(0) for l in range(L)]
                    m.next = "FC_GATHER"
            with m.State("FC_GATHER"):
                m.d.comb += sums_r.addr.eq(ta)
                m.d.sync += [pend.eq(1), pend_in.eq(ta < da.channels), pend_dst.eq(3), pend_idx.eq(q)]
                with m.If(q == Q - 1):
                    m.d.sync += q.eq(0)
                    m.next = "FC_ISSUE"
                with m.Else():
                    m.d.sync += q.eq(q + 1)
            with m.State("FC_ISSUE"):
                m.d.comb += [ma_issue.eq(~pend), ma.pixel.payload.w_addr.eq(ins.wa + ob * n_cb + ch),
                             ma.pixel.payload.first.eq(ch == 0), ma.pixel.payload.last.eq(ch == n_cb - 1)]
                with m.If(~pend & ma.pixel.ready):
                    m.d.sync += xv.eq(0)
                    with m.If(ch == n_cb - 1):
                        m.d.sync += ch.eq(0)
                        m.next = "FC_ACC"
                    with m.Else():
                        m.d.sync += ch.eq(ch + 1)
                        m.next = "FC_GATHER"
            # one lane per cycle through one 64-bit adder (the FC runs once per inference; L
            # adders of 64 bits were ~1,000 LUTs)
            with m.State("FC_ACC"):
                with m.If(ma.acc.valid):
                    m.d.sync += acc_fc[fc_l].eq(acc_fc[fc_l] + (fc_pay[fc_l] << (plane * 8)))
                    with m.If(fc_l == L - 1):
                        m.d.comb += ma.acc.ready.eq(1)
                        m.d.sync += [fc_l.eq(0), plane.eq(plane + 1)]
                        with m.If(plane == SUM_BITS // 8 - 1):
                            m.d.sync += p_out.eq(0)
                            m.next = "FC_OUT"
                        with m.Else():
                            m.next = "FC_GATHER"
                    with m.Else():
                        m.d.sync += fc_l.eq(fc_l + 1)
            with m.State("FC_OUT"):
                m.d.comb += prm_r.addr.eq(ins.prm + o_idx)
                with m.If((p_out == L) | (o_idx >= ins.tc)):
                    m.d.sync += ob.eq(ob + 1)
                    m.next = "FC_OB"
                with m.Else():
                    m.next = "FC_OUT2"
            # logit = acc * M + B (mod 2^64): a shift-and-add multiplier, one bit of M per cycle
            # (a 64 x 32-bit multiplier took about 8 DSP48E1 for 10 logits per inference)
            with m.State("FC_OUT2"):
                par = PARAM_LAYOUT(prm_r.data)
                m.d.sync += [fc_mc.eq(acc_fc[p_out[:ceil_log2(L + 1)]]), fc_mp.eq(par.m_a),
                             fc_prod.eq(par.bias), fc_i.eq(0)]
                m.next = "FC_MUL"
            with m.State("FC_MUL"):
                # bit 31 of M (two's complement) weighs -2^31
                fc_next = (fc_prod + Mux(fc_mp[0], Mux(fc_i == FC_MUL_CYCLES - 1, -fc_mc, fc_mc), 0))[:64]
                m.d.sync += [fc_prod.eq(fc_next), fc_mc.eq(fc_mc << 1), fc_mp.eq(fc_mp >> 1), fc_i.eq(fc_i + 1)]
                with m.If(fc_i == FC_MUL_CYCLES - 1):
                    m.d.comb += [lg_w.addr.eq(o_idx), lg_w.en.eq(1), lg_w.data.eq(fc_next)]
                    m.d.sync += p_out.eq(p_out + 1)
                    m.next = "FC_OUT"

            # ---------------------------------------------------------------- STORE
            with m.State("STORE_RD"):
                m.d.comb += lg_r.addr.eq(e >> 3)
                with m.If(e == ins.length):
                    m.next = "NEXT"
                with m.Else():
                    m.next = "STORE_TX"
            with m.State("STORE_TX"):
                m.d.comb += [lg_r.addr.eq(e >> 3), self.tx.valid.eq(1),
                             self.tx.payload.eq(lg_r.data.word_select(e[:3], 8))]
                with m.If(self.tx.ready):
                    m.d.sync += e.eq(e + 1)
                    m.next = "STORE_RD"
        return m


def check_program(build_dir) -> list[str]:
    """What in a build directory's Program this top does not implement (empty: runnable)."""
    from sephw.arch.isa import FLAG_DEPTHWISE, decode_program
    from sephw.arch.manifest import Manifest
    man = Manifest.read(build_dir)
    tens = man.tensors
    problems = []
    for i, ins in enumerate(decode_program(man.path("program.bin").read_bytes())):
        if ins.op in (Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
            on_pe = ins.op in (Op.CONV_PATTERN, Op.PRB) or (ins.op == Op.RESADD and ins.flags & FLAG_B_PATTERN)
            if on_pe and ins.groups_a and ins.na > tens[ins.src_a]["shape"][0] // ins.groups_a:
                problems.append(f"instruction {i}: a pattern tile spanning several groups (groups per beat)")
            if not on_pe and ins.k != 1:
                problems.append(f"instruction {i}: int8 {ins.k}x{ins.k} convolution")
            if ins.op == Op.RESADD and not ins.flags & FLAG_SKIP_IDENTITY:
                (_, hb, wb), (_, hd, wd) = tens[ins.src_b]["shape"], tens[ins.dst]["shape"]
                if not on_pe:
                    problems.append(f"instruction {i}: 1x1 projection skip beside an int8 main conv")
                elif (hb, wb) not in ((hd, wd), (2 * hd, 2 * wd)):
                    problems.append(f"instruction {i}: 1x1 projection skip with a stride other than 1 or 2")
            if ins.op in (Op.RESADD, Op.PRB) and ins.flags & FLAG_SKIP_IDENTITY:
                if tens[ins.src_b]["shape"][1:] != tens[ins.dst]["shape"][1:]:
                    problems.append(f"instruction {i}: identity skip between maps of different sizes")
            if ins.flags & FLAG_DEPTHWISE and ins.na > 1 and on_pe:
                problems.append(f"instruction {i}: depthwise pattern tile over several channels")
            for t in (ins.src_a, ins.src_b):
                if tens[t]["dtype"].startswith("int"):
                    problems.append(f"instruction {i}: signed input tensor {tens[t]['name']}")
    return sorted(set(problems), key=problems.index)
