"""Accelerator top: the on-chip memories, the overlay's units and the sequencer that runs a
compiled Program over them.

The top holds the memories of docs/isa.md that no single unit owns (program, tensor table,
FC parameters, logits; the activation memory is :class:`~rtl_gen.actmem.ActivationMemory`,
the pattern, weight and parameter memories live in the engines) and wires the units, each
a ``wiring.Component`` in its own file with its latency and throughput stated there:

- :class:`~rtl_gen.fetch.FetchDecode`: the next instruction and its tensor descriptors, fetched
  while the current one runs (a one-entry command queue);
- :class:`~rtl_gen.hostio.Load` (``LOAD``: input rows from the host link's ``rx``, or with
  external memory from the :class:`~rtl_gen.inputfeed.InputFeeder`, which reads the
  instruction's bytes in DRAM) and :class:`~rtl_gen.hostio.Store` (``STORE``: the logits on
  ``tx``);
- with external memory, the :class:`~rtl_gen.loadunit.LoadUnit` (``DMA_LOAD``) and the
  :class:`~rtl_gen.spill.Spill` (``SPILL``: activation rows to DRAM), the three sharing the
  DRAM port through an :class:`~rtl_gen.extport.ExtPort`;
- :class:`~rtl_gen.gather.Gather` (``CONV_PATTERN`` / ``CONV_INT`` / ``PRB`` / ``RESADD``):
  windows and 1×1 beats from the activation memory into the
  :class:`~rtl_gen.pattern.PatternEngine` and the :class:`~rtl_gen.macarray.MacArray`
  (concurrently within a PRB), identity-skip codes towards the PostProcess;
- :class:`~rtl_gen.postprocess.PostProcess` (the fused rule) -> :class:`~rtl_gen.writer.Writer`
  (codes into the destination's ring);
- :class:`~rtl_gen.poolfc.PoolFC` (``POOL_FC``: pool sums; ``FLAG_FINAL``: the FC on the MAC
  array into the logit memory).

The sequencer runs the Program in order, one instruction at a time: it takes an instruction
from FetchDecode's queue, starts its unit(s) in ``DISPATCH`` and waits for their ``done``, in
whose cycle it takes the next one (``NOP`` waits only for the next fetch, ``SYNC`` and
``SPILL`` first until the LoadUnit is idle; ``END`` raises ``done``). A paged Program
(``ArchConfig.program_page``) is loaded from DRAM (its first two pages, ``BOOT``) before the
first fetch. ``DMA_LOAD`` alone does not wait: it is queued in the
:class:`~rtl_gen.loadunit.LoadUnit`, which runs it while the next instructions do; an
instruction with ``DEP_WAIT_PREV`` waits in ``DISPATCH`` for a load token. The compiler's
cycle model is built from the same figures (``hw.unit_cycles`` per unit,
``hw.top_instruction_cycles`` per instruction, a queue simulation of the LoadUnit). The units meet the engines through lib.stream
handshakes; the shared RowAddress divider and the activation memory's ports are driven by one
unit at a time (idle units drive zeros, the top ORs them).

Memories are written at run time through ``host_w`` (memory select, word address, word),
the words of the build directory's ``*.bin`` images, or baked in (``boot``: a boot ROM
replays the same writes after reset); ``cycles`` counts the clock cycles from ``start`` to
``done``.

Not implemented (``error`` is raised, the run stops): int8 k×k convolutions (MAC operand
with ``k > 1``). Pattern tiles must cover one group (``groups in the tile == 1``), and signed
sources (int8 codes, zero point 0) are read by every unit but a packed MAC array (the
pattern engine's ``act_signed``, the MAC array's ``x_signed``, the identity skip's codes
sign-extended, PoolFC's two's complement sums): :func:`rtl_gen.checkprog.check_program`
checks these before a run.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sephw.arch import isa
from sephw.arch.config import ArchConfig, dw_slices
from sephw.arch.formats import PARAM_WORD, TENSOR_DESC
from sephw.arch.isa import DEP_SIGNAL_NEXT, DEP_WAIT_PREV, FLAG_B_PATTERN, FLAG_DW_PATTERN, FLAG_SKIP_IDENTITY, Op
from sephw.arch.memmap import MEM_PARAMS, MEM_PATTERNS, MEM_PROGRAM, MEM_TENSORS, MEM_WEIGHTS, MemoryMap

from .actmem import ActivationMemory
from .arith import check_int
from .control import CYCLES_BITS, host_w_layout
from .dram import native_signature
from .extport import ExtPort
from .fetch import FetchDecode, command_layout
from .gather import Gather
from .hostio import Load, Store, host_writes
from .inputfeed import InputFeeder
from .loadunit import LoadUnit
from .macarray import MacArray, feed_late_raw, feed_late_x
from .pattern import PatternEngine
from .poolfc import PoolFC
from .postprocess import PostProcess, feed_post_process
from .rowaddr import RowAddress, or_all, share as share_rows
from .spill import Spill
from .writer import Writer

__all__ = ["Accelerator", "RowAddress", "INSTR_LAYOUT", "TENSOR_LAYOUT", "PARAM_LAYOUT"]

INSTR_LAYOUT = isa.WORD.layout()
TENSOR_LAYOUT = TENSOR_DESC.layout()
PARAM_LAYOUT = PARAM_WORD.layout()
M_B_WIDTH = 25         # identity-skip M_b takes the DSP's 25-bit port (docs/numerics.md)


class Accelerator(wiring.Component):
    """The sephw accelerator: sequencer + units (Gather, PatternEngine ‖ MacArray, PostProcess,
    Writer, PoolFC, Load, Store) + memories.

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
        word per cycle) except while booting or while a ``DMA_LOAD`` runs.
    booting : Out(1)
        The boot ROM (``boot`` writes baked into the bitstream) is being copied into the
        memories; 0 without baked images.
    rx : In(stream.Signature(8))
        Only without external memory: host-link bytes for ``LOAD`` (HWC codes of the input
        rows).
    tx : Out(stream.Signature(8))
        Host-link bytes of ``STORE`` (int64 logits, little-endian).
    ext : Out(rtl_gen.dram.native_signature(ext_data_bits, ...))
        Only with ``arch.ext_words > 0``: the external memory (LiteDRAM's native port, user
        side), shared by an :class:`~rtl_gen.extport.ExtPort`: the
        :class:`~rtl_gen.inputfeed.InputFeeder` reads ``LOAD``'s rows (the input image, spilled
        rows), the :class:`~rtl_gen.loadunit.LoadUnit` ``DMA_LOAD``'s words (which take the
        host-write path), and the :class:`~rtl_gen.spill.Spill` writes ``SPILL``'s rows
        (docs/dram.md).
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
                                 dense_kernels=c.dense_kernels, plane_reg=c.plane_reg,
                                 pattern_depth=arch.pattern_depth, dw_depth=arch.dw_depth,
                                 lane_pairs=c.lane_pairs)
        self._ma = MacArray(rows=c.lanes, cols=c.mac_cols, packed=c.packed,
                            weight_depth=mm["weights"].depth, weights_bram=c.weights_bram, x_late=True)
        self._pp = PostProcess(lanes=c.lanes, inputs=2, acc_width=32, out_width=9,
                               param_depth=mm["params"].depth, m_b_width=M_B_WIDTH,
                               units=c.pp_units, mul18=c.mul18)
        # the engines' write ports and the contract's memory map must agree word for word
        for name, port in (("patterns", self._pe.pattern_w), ("weights", self._ma.weight_w)):
            got = len(Value.cast(port.data))
            if got != mm[name].word_bits:
                raise ValueError(f"internal error: the {name} write port is {got} bits, the memory map's "
                                 f"words {mm[name].word_bits}")
        self._depths = {r.select: r.depth for r in mm}
        self._host_w_layout = host_w_layout(mm)
        if arch.ext_words:
            # external memory: the LoadUnit's queued loads into any host-writable memory
            # (DMA_LOAD), words of the widest memory's width as ceil(width / ext_data_bits)
            # external words each; LOAD's rows from DRAM (InputFeeder); SPILL (Spill)
            aw = mm.external.addr_bits
            self._loads = LoadUnit(data_width=arch.ext_data_bits, addr_width=aw, word_bits=mm.data_bits,
                                   onchip_depth=1 << mm.addr_bits, ext_words=arch.ext_words)
            # the input rows come from DRAM: no host byte stream
            io_ports = {"ext": Out(native_signature(arch.ext_data_bits, aw))}
        else:
            self._loads = None
            io_ports = {"rx": In(stream.Signature(8))}
        super().__init__({
            **io_ports,
            "start": In(1), "done": Out(1), "error": Out(1), "cycles": Out(CYCLES_BITS), "pc": Out(16),
            "booting": Out(1),
            "host_w": In(stream.Signature(self._host_w_layout)),
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
        L, Q, PC = c.lanes, c.mac_cols, c.pe_cin
        NB = max(PC, Q, L)
        U = c.pp_units

        # ------------------------------------------------------------------ memories
        m.submodules.program = prog = Memory(shape=isa.WORD_BITS, depth=self._depths[MEM_PROGRAM], init=[])
        m.submodules.tensor_table = ttab = Memory(shape=TENSOR_DESC.bits, depth=self._depths[MEM_TENSORS], init=[])
        m.submodules.params = prm = Memory(shape=PARAM_WORD.bits, depth=self._depths[MEM_PARAMS], init=[])
        m.submodules.logits = lg = Memory(shape=signed(64), depth=max(2, arch.max_classes), init=[])
        prm_r, lg_r = prm.read_port(), lg.read_port()
        prog_w, ttab_w, prm_w, lg_w = prog.write_port(), ttab.write_port(), prm.write_port(), lg.write_port()
        for p in (prm_r, lg_r):
            m.d.comb += p.en.eq(1)
        m.submodules.act = act = ActivationMemory(NB, -(-arch.act_bytes // NB), U)

        # host writes; with baked images a boot ROM replays them through the same path after
        # reset (``booting``; ``start`` waits for it)
        m.d.comb += self.host_w.ready.eq(~self.booting)
        hw_, hv = host_writes(m, self._boot, self.host_w, self.booting)
        lu = self._loads
        if lu is not None:
            # DMA_LOAD's words take the host-write path (the link waits meanwhile)
            m.submodules.load_unit = lu
            m.d.comb += self.host_w.ready.eq(~self.booting & ~lu.busy)
            with m.If(lu.w_en):
                m.d.comb += [hw_.mem.eq(lu.w_mem), hw_.addr.eq(lu.w_addr), hw_.data.eq(lu.w_data), hv.eq(1)]
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

        # ------------------------------------------------------------------ units
        m.submodules.fetch = fd = FetchDecode(len(prog_w.addr), len(ttab_w.addr))
        fd.connect_memories(m, prog, ttab)
        # the instruction being executed (taken from the fetcher's queue, which meanwhile
        # fetches the next one)
        cur = Signal(command_layout())
        ins, da, db, dd = cur.ins, cur.src_a, cur.src_b, cur.dst
        m.submodules.load = ld = Load()
        m.submodules.store = st = Store(max(2, arch.max_classes))
        m.submodules.gather = ga = Gather(lanes=L, pe_cin=PC, mac_cols=Q, k_max=c.k_max, a_bits=c.a_bits,
                                          banks=NB, column_store=c.column_store, max_cin=arch.max_cin,
                                          window_layout=pe.window_layout, pixel_layout=ma.pixel_layout,
                                          addr_bits=max(1, ceil_log2(arch.act_bytes)), landing_reg=c.landing_reg)
        m.submodules.writer = wr = Writer(L, U)
        # (landing_reg: the landing registers take the activation banks' raw bytes: Gather,
        # PoolFC and the MAC array's x register below)
        LR = c.landing_reg
        m.submodules.pool_fc = pf = PoolFC(L, Q, ma.pixel_layout, arch.max_channels, arch.max_classes,
                                           len(prm_r.addr), raw_banks=NB if LR else 0)
        for u in (ld, st, ga, wr, pf):
            m.d.comb += u.ins.eq(ins)
        m.d.comb += [ld.dst.eq(dd), ga.src_a.eq(da), ga.src_b.eq(db), ga.dst.eq(dd), wr.dst.eq(dd),
                     pf.src.eq(da)]
        if lu is None:
            wiring.connect(m, wiring.flipped(self.rx), ld.rx)
            sp = None
        else:
            # the external memory's users: LOAD's rows (first), DMA_LOAD's words, SPILL's writes
            ext = arch.ext_data_bits, self._memory_map.external.addr_bits
            m.submodules.input_feeder = feed = InputFeeder(data_width=ext[0], addr_width=ext[1])
            ext_bytes = arch.ext_words * arch.ext_data_bits // 8
            m.submodules.spill = sp = Spill(banks=NB, data_width=ext[0], addr_width=ext[1], ext_bytes=ext_bytes)
            m.submodules.ext_port = ep = ExtPort(*ext, readers=("input", "loads"))
            wiring.connect(m, feed.ext, ep.input)
            wiring.connect(m, lu.ext, ep.loads)
            wiring.connect(m, sp.w, ep.host)
            wiring.connect(m, ep.mem, wiring.flipped(self.ext))
            wiring.connect(m, feed.rx, ld.rx)
            m.d.comb += [feed.start.eq(ld.start), feed.addr.eq(ins.ext_addr), feed.nbytes.eq(ins.length),
                         sp.ins.eq(ins), sp.src.eq(da), sp.rvec.eq(act.rvec)]
        wiring.connect(m, st.tx, wiring.flipped(self.tx))
        m.d.comb += [lg_r.addr.eq(st.logit_addr), st.logit.eq(lg_r.data),
                     lg_w.addr.eq(pf.logit_w_addr), lg_w.data.eq(pf.logit_w_data), lg_w.en.eq(pf.logit_w_en),
                     prm_r.addr.eq(pf.prm_addr), pf.prm.eq(prm_r.data)]

        # the shared RowAddress and the activation memory's ports: one unit at a time drives
        # them (the others drive zeros), so the requests are ORed (PoolFC reads byte 0 alone,
        # whose bank uses raddr's row: raddr_nb is the gatherer's)
        m.submodules.row_addr = ra = RowAddress()
        readers = (ga, pf) if sp is None else (ga, pf, sp)
        share_rows(m, ra, [ld.row] + [u.row for u in readers])
        m.d.comb += [act.raddr.eq(or_all(u.raddr for u in readers)),
                     act.raddr_nb.eq(ga.raddr_nb if sp is None else ga.raddr_nb | sp.raddr_nb),
                     ga.rvec.eq(act.rvec), ga.rraw.eq(act.rraw), ga.rlo.eq(act.rlo),
                     act.waddr.eq(ld.waddr | wr.waddr), act.wdata.eq(wr.wdata), act.wen.eq(wr.wen)]
        if LR:
            m.d.comb += [pf.rraw.eq(act.rraw), pf.rlo.eq(act.rlo)]
        else:
            m.d.comb += pf.rbyte.eq(act.rvec[0])
        with m.If(ld.wen):
            m.d.comb += [act.wdata[0].eq(ld.wdata), act.wen[0].eq(1)]

        # the engines: operand a's windows from the gatherer; the MAC array's beats from the
        # gatherer or the FC
        wiring.connect(m, ga.window, pe.window)
        m.d.comb += [pe.act_bits.eq(da.bits[:ceil_log2(c.a_bits + 1)]), pe.act_signed.eq(da.signed != 0),
                     pe.kernel.eq(ins.k),     # where the beat's kernel puts its taps in the pattern word
                     pe.lane_rot.eq(ins.lane_rot)]    # lane pairs: the tile's lanes are the word's upper half
        if arch.dw_depth:
            # the depthwise mode and its words per filter (registered: the first window comes
            # a RowAddress after DISPATCH)
            dw_n = Signal.like(pe.dw_slices)
            with m.Switch(ins.k):
                for kk in (3, 5, 7):
                    if kk <= c.k_max:
                        with m.Case(kk):
                            m.d.sync += dw_n.eq(dw_slices(c.k_max, kk))
            m.d.comb += [pe.dw.eq(ins.flags[FLAG_DW_PATTERN.bit_length() - 1]), pe.dw_slices.eq(dw_n)]
        with m.If(pf.fc_active):
            m.d.comb += [ma.pixel.payload.eq(pf.pixel.payload), ma.pixel.valid.eq(pf.pixel.valid),
                         pf.pixel.ready.eq(ma.pixel.ready)]
        with m.Else():
            m.d.comb += [ma.pixel.payload.eq(ga.pixel.payload), ma.pixel.valid.eq(ga.pixel.valid),
                         ga.pixel.ready.eq(ma.pixel.ready)]
        # the MAC array reads a beat's x a cycle after taking it (x_late), from a register
        if LR:
            # ... which holds the activation banks' raw bytes (the gatherer's beat), rotated
            # after it
            feed_late_raw(m, ma, pf.fc_active, pf.pixel.payload.x, (ga.x_raw, ga.x_lo, ga.x_ok))
        else:
            feed_late_x(m, ma, Mux(pf.fc_active, pf.pixel.payload.x, ga.pixel.payload.x))

        # PostProcess inputs (rtl_gen/postprocess.py): acc_a from the pattern engine or the MAC
        # array; acc_b from the MAC array, the identity skip codes, or zero; its output to the writer
        feed_post_process(m, pp, pe=pe, ma=ma, pf=pf, ga=ga, wr=wr, ins=ins, db=db, dd=dd)

        # ------------------------------------------------------------------ sequencer
        # In order, one instruction at a time: take the next instruction from the fetcher's
        # queue, start its unit(s), wait for their ``done`` (and take the next instruction in
        # that cycle). Units: Load, Store, PoolFC; compute tiles: Gather + Writer (the tile
        # ends when the writer has stored its last position).
        running = Signal()
        m.d.comb += self.pc.eq(cur.pc)
        with m.If(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        tile_done = Signal()
        m.d.comb += tile_done.eq(ga.done & wr.done)

        def take_next():
            """Take the fetched instruction, if there is one (``DISPATCH`` next), else wait."""
            m.d.comb += fd.cmd.ready.eq(1)
            with m.If(fd.cmd.valid):
                m.d.sync += cur.eq(fd.cmd.payload)
                m.next = "DISPATCH"
            with m.Else():
                m.next = "WAIT"

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(self.start & ~self.booting):
                    if lu is not None:
                        m.d.comb += lu.clear.eq(1)      # no tokens or load error left over
                    m.d.sync += [self.cycles.eq(0), running.eq(1), self.done.eq(0), self.error.eq(0)]
                    if arch.program_page:
                        m.next = "BOOT"
                    else:
                        m.d.comb += fd.go.eq(1)
                        m.next = "WAIT"
            if arch.program_page:
                # a paged Program (sephw/compiler/paging.py): its first two pages from
                # external word 0 into the program memory, then the fetch starts
                seen = Signal()
                with m.State("BOOT"):
                    c = lu.push.payload
                    m.d.comb += [lu.push.valid.eq(1), c.ext_addr.eq(0), c.words.eq(2 * arch.program_page),
                                 c.onchip.eq(0), c.mem.eq(MEM_PROGRAM), c.signal.eq(0)]
                    m.d.sync += seen.eq(0)
                    with m.If(lu.push.ready):
                        m.next = "BOOT_WAIT"
                with m.State("BOOT_WAIT"):
                    with m.If(lu.busy):
                        m.d.sync += seen.eq(1)
                    with m.If(lu.error):
                        m.next = "ERROR"
                    with m.Elif(seen & ~lu.busy):
                        m.d.comb += fd.go.eq(1)
                        m.next = "WAIT"
            with m.State("WAIT"):
                take_next()
            with m.State("DISPATCH"):
                # a tile fetches its first pattern word whatever the tile before it left staged
                m.d.comb += pe.pattern_flush.eq(1)
                op = ins.op
                is_pe = (op == Op.CONV_PATTERN) | (op == Op.PRB) | \
                    ((op == Op.RESADD) & ins.flags[FLAG_B_PATTERN.bit_length() - 1])
                wait = Signal()
                if lu is not None:
                    # DEP_WAIT_PREV: the instruction takes a load token first (its buffer
                    # half has landed), waiting here while there is none; a refused load
                    # (past the external memory's end) stops the top here
                    dep = ins.deps[DEP_WAIT_PREV.bit_length() - 1]
                    m.d.comb += [wait.eq(lu.error | (dep & ~lu.token)),
                                 lu.take.eq(dep & ~wait & ((op != Op.DMA_LOAD) | lu.push.ready))]
                    with m.If(lu.error):
                        m.next = "ERROR"
                # a LOAD from DRAM (where there is one) whose bytes end past its end: refused
                oob = ins.ext_addr + ins.length > ext_bytes if sp is not None else Const(0)
                with m.If(~wait), m.Switch(op):
                    with m.Case(Op.LOAD):
                        with m.If(oob):
                            m.next = "ERROR"
                        with m.Else():
                            m.d.comb += ld.start.eq(1)
                            m.next = "RUN"
                    with m.Case(Op.CONV_PATTERN, Op.CONV_INT, Op.PRB, Op.RESADD):
                        skip_id = (op == Op.RESADD) & ins.flags[FLAG_SKIP_IDENTITY.bit_length() - 1]
                        m.d.comb += [ga.use_pe_in.eq(is_pe), ga.b_id_in.eq(skip_id),
                                     ga.b_mac_in.eq((op == Op.PRB) | ((op == Op.RESADD) & ~skip_id))]
                        with m.If(~is_pe & (ins.k != 1)):
                            m.next = "ERROR"      # int8 k x k: not implemented
                        with m.Else():
                            m.d.comb += [ga.start.eq(1), wr.start.eq(1)]
                            m.next = "RUN"
                    with m.Case(Op.POOL_FC):
                        m.d.comb += pf.start.eq(1)
                        m.next = "RUN"
                    with m.Case(Op.STORE):
                        m.d.comb += st.start.eq(1)
                        m.next = "RUN"
                    with m.Case(Op.END):
                        m.d.sync += [running.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Case(Op.NOP):
                        m.next = "WAIT"
                    with m.Case(Op.SYNC):
                        # every unit idle: the in-order engines are; the LoadUnit's queue drains
                        with m.If(Const(1) if lu is None else ~lu.busy):
                            m.next = "WAIT"
                    if lu is not None:
                        with m.Case(Op.SPILL):
                            # the DRAM port's writes wait for no read in flight: the
                            # LoadUnit's queue drains first
                            with m.If(~lu.busy):
                                m.d.comb += sp.start.eq(1)
                                m.next = "RUN"
                        with m.Case(Op.DMA_LOAD):
                            # queued: the next instruction runs while the load does
                            c = lu.push.payload
                            m.d.comb += [lu.push.valid.eq(1), c.ext_addr.eq(ins.ext_addr), c.words.eq(ins.length),
                                         c.onchip.eq(ins.waddr), c.mem.eq(ins.mem),
                                         c.signal.eq(ins.deps[DEP_SIGNAL_NEXT.bit_length() - 1])]
                            with m.If(lu.push.ready):
                                take_next()
                    with m.Default():
                        m.next = "ERROR"
            with m.State("RUN"):
                with m.If(tile_done):
                    m.d.comb += [ga.release.eq(1), wr.stop.eq(1)]
                with m.If(Const(0) if sp is None else sp.done & sp.error):
                    m.next = "ERROR"        # a SPILL row past the external memory's end
                with m.Elif(or_all([ld.done, st.done, pf.done, tile_done] + ([sp.done] if sp is not None else []))):
                    take_next()
            with m.State("ERROR"):
                m.d.sync += [running.eq(0), self.error.eq(1), self.done.eq(1)]
                m.d.comb += wr.stop.eq(1)
                m.next = "IDLE"
        return m

