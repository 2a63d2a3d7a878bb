"""PatternEngine: binarized k×k convolution on LUT logic, bit-serial over activation bit-planes."""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from sephw.arch.config import pattern_kernels

from .arith import check_int, output_stall, signed_bits
from .pattern_count import PlaneCounters
from .pattern_memory import PatternMemory
from .pattern_planes import bit_planes, group_plane
from .pattern_words import PatternWords, split_word

__all__ = ["PatternEngine", "split_word"]


class PatternEngine(PatternWords, wiring.Component):
    """Binarized (pattern) k×k convolution: ``acc[l] = sum_{c,i,j} B[l,c,i,j] * x[c,i,j]``, ``B = ±1``.

    One input beat is one k×k window of ``groups * cin`` channels (the channels of ``groups``
    consecutive convolution groups, ``cin`` each). ``lanes`` output channels are computed in
    parallel; lane ``l`` belongs to group ``l // (lanes // groups)`` and sees only that group's
    ``cin`` channels (``groups == lanes, cin == 1`` is depthwise). Each lane holds the pattern
    bits of its filter (its grid: bit ``c*k*k + i*k + j`` is 1 where ``B == +1``) from the
    pattern memory word addressed by the beat. The word is tap-major for the beat's kernel
    ``kk`` (the ``kernel`` port, one of :func:`~sephw.arch.config.pattern_kernels`): lane
    ``l``'s tap ``(c, i, j)`` is bit ``((c*kk + i)*kk + j)*lanes + l``
    (:func:`~sephw.arch.config.pattern_bit`), so a beat of fewer channels or a smaller kernel
    uses only the word's first ``lanes * channels * kk^2`` bits and its word can start at any
    memory slice (the rest is whatever follows: it meets zero plane bits). The word loads
    into B as the lanes' grids as if it were a ``k x k`` kernel's (wiring); for a smaller
    kernel the bit-plane moves instead: each grid bit's product takes the plane bit of the code
    whose pattern bit landed there (a multiplexer per grid bit of a group, shared by its
    lanes: ``groups * cin * k^2`` of them, none at ``k = 3``).

    Bit-serial: the window is processed one activation bit-plane per cycle, most significant
    plane first, for ``act_bits`` cycles per beat, in a pipeline of registered stages:

    - B: the beat's window and pattern word; the plane ``x_b`` selected from the codes.
    - P: the products ``y = x_b AND (B == -1)`` per lane, flip-flops whose synchronous reset
      is the pattern bit (no LUT), and the plane ``x_b`` itself per group.
    - M: the counter trees' columns after their first two or three levels (a register
      inside each tree).
    - Q: ``popcount(y)`` per lane and ``popcount(x_b)`` per group, each as the two rows a
      counter tree (:func:`~rtl_gen.arith.compress_columns`, :func:`~rtl_gen.xc7.compress`)
      leaves, registered before the Horner adder sums them.
    - Horner registers ``U = 2*U + popcount(y_b)`` per lane and ``X = 2*X + popcount(x_b)``
      per group (one ternary adder each), restarted at 0 after a beat's final plane, whose
      values go to H. Signed codes (``act_signed``, two's complement, zero point 0): the top
      plane weighs ``-2^(act_bits-1)``, so the step after it is ``popcount - 2*U``, where the
      adder takes ``~(2U)`` and a carry-in (no extra LUT on xc7); ``U`` and ``X`` are signed.
    - H: the beat's ``U``, ``X``; its value ``sum_b 2^b (popcount(x_b AND Bpos) -
      popcount(x_b AND Bneg)) = X - 2U`` is added to the chunk accumulator (0 for a group's
      first beat) on the way into the output register.

    So a beat's result leaves ``act_bits + 5`` cycles after it loads into B (the plane stage),
    three cycles more than with the counter trees and the accumulation in one cycle (what the
    Q and H registers buy: no path from the plane select through a popcount into an adder).
    ``act_bits`` is a run-time port: fewer activation bits cost proportionally fewer cycles.

    Beats with ``first == 0`` add to the accumulator of the previous beat (channel chunks of a
    group with more than ``cin`` input channels, up to ``max_cin``); a beat with ``last == 1``
    emits the lane accumulators. Throughput: one beat per ``act_bits`` cycles, except that a
    beat is loaded one cycle later when the pipeline may stall right after its load with the
    previous beat's products in P (the product flip-flops must keep their beat's pattern while
    a stall can freeze them): at ``act_bits <= 3`` only, when the final plane of a ``last``
    beat is about to enter H while the output may still be occupied (held by back-pressure,
    or at ``act_bits == 1`` by the ``last`` beat before it).

    Parameters
    ----------
    lanes : int
        Output channels computed in parallel.
    k : int
        Kernel size, one of 3, 5, 7.
    cin : int
        Input channels per group in one beat.
    groups : int
        Convolution groups covered by one beat; divides ``lanes``.
    a_bits : int
        Largest activation code width (1..8); windows carry ``a_bits``-bit codes (unsigned,
        or two's complement with ``act_signed``).
    max_cin : int
        Largest number of input channels per group accumulated over chunked beats (a multiple
        of ``cin``); sizes the accumulator. ``max_cin == cin`` omits the chunk accumulator.
    pattern_depth : int
        Pattern words in the pattern memory (one word = the patterns of all lanes for one
        beat at the engine's ``k``; ``pattern_depth * pattern_slices`` memory words).
    pattern_slices : int
        1 (default): the pattern memory is one word wide, read in the cycle a window is
        accepted. ``S > 1`` (a power of two, at most ``a_bits``): the memory is ``S`` times
        narrower and deeper (the word at memory word ``a`` is memory words ``a .. a + S-1``,
        slice ``s`` holding bits ``s*ceil(W/S) ..`` of the ``W``-bit word, zero-padded; a beat
        whose kernel and channels fill fewer slices leaves the rest to the next word), and an
        accepted window's word is fetched one slice per cycle into a staging register while the
        previous beat runs: block RAMs are then counted by depth rather than width (the
        accelerator top's 2,304-bit word of 16 lanes x 16 channels x 9 taps took 32 RAMB36
        side by side for 117 words, with ``S = 4`` 8). A beat can start ``S`` cycles after
        its window was accepted (one cycle with ``S = 1``); with ``S <= act_bits`` a window
        accepted when the previous beat starts costs no throughput.
    dense_kernels : bool
        True (default): the words of a kernel smaller than ``k`` hold its ``kk^2`` taps and
        the bit-plane moves to them (the ``kernel`` port). False: every word is laid out as a
        ``k x k`` kernel's (a smaller kernel's taps at their grid positions, the others 0), no
        multiplexers, the ``kernel`` port unused.
    dw_depth : int
        0 (default): no depthwise mode. ``D > 0``: a second, narrow pattern memory of ``D``
        words for depthwise layers and the engine's depthwise mode (``groups == 1`` only).
        In that mode (the ``dw`` port, sampled with each window) lane ``l < dw_lanes``
        convolves only channel ``l`` of the beat (``dw_lanes = min(lanes, cin)``): its
        pattern bits for the other channels are forced to +1 as the word loads into B (a
        flip-flop set, no LUT), so they add nothing to ``U``, and ``X`` is the lane's own
        channel's plane count (one small counter tree and Horner register per lane, selected
        in place of the group's at H). A depthwise word holds ``dw_lane_bits = 2k + 3`` bits
        per lane (:func:`sephw.arch.config.dw_lane_bits`): lane ``l``'s bits ``l*dw_lane_bits
        ..`` of word ``a + s`` are its tap-grid bits ``s*dw_lane_bits ..`` (bit ``i*k + j``);
        a window in depthwise mode fetches ``dw_slices`` words (the port, set per layer from
        its kernel: :func:`sephw.arch.config.dw_slices`) from word ``pat_addr`` one per cycle
        into staging registers, and its beat starts ``dw_slices + 1`` cycles after the accept
        (not again for the next window with the same address). So a depthwise filter is
        stored in at most 1.9x its bits, where a normal word would hold it ``cin`` times
        over (and ``(k/kernel)^2`` times for a smaller kernel). The memory is written through
        :attr:`pattern_w` at addresses from ``pattern_depth * pattern_slices`` on, from the
        low ``dw_lanes * dw_lane_bits`` data bits.
    lane_pairs : bool
        The ``lane_rot`` port (``lanes`` even): two tiles of at most ``lanes / 2`` channels
        share a pattern word (``EngineConfig.lane_pairs``), the second's filters in lanes
        ``lanes/2 ..``, which leave in lanes ``0 ..`` (a 2:1 multiplexer per accumulator bit).
    plane_reg : bool
        The plane is a register per code, loaded with the plane B holds next
        (``EngineConfig.plane_reg``, from the board profile;
        :func:`~rtl_gen.pattern_planes.bit_planes`): no cycle moves; one more multiplexer per code.
    netlist : str
        ``"lut"`` (default; what synthesis gets): product flip-flops with the pattern bit on
        their reset, popcounts as LUT6 counter trees. ``"word"``: the same registers, cycle
        behaviour and numbers, written as word-level logic (``y = ~B & x_b`` per lane, SWAR
        popcounts, :func:`~rtl_gen.arith.popcount_word`) so that a Verilator model of a large
        engine runs ~100x faster; whole-network simulations use it. The tests run both forms
        bit-exact against the reference. ``"xc7"``: the ``"lut"`` form with the counter
        trees, the Horner additions and the beat total built from Xilinx 7-series
        LUT6_2/CARRY4 counters and ternary adders (:mod:`rtl_gen.xc7`; ``X - 2U + chunk`` is
        one ternary adder with ``-2U`` as ``~(2U)`` plus the chain's carry-in): about half the
        LUTs per lane of the ``"lut"`` form. For Xilinx parts only; simulators use the cells'
        models.

    Attributes
    ----------
    window : In(stream.Signature(window_layout))
        Windows: ``window[i*k + j][c]`` codes, ``pat_addr``, ``first``, ``last``.
    acc : Out(stream.Signature(ArrayLayout(signed(acc_width), lanes)))
        Lane accumulators, one beat per ``last`` window.
    act_bits : In(range(1, a_bits + 1))
        Activation bits of the current layer (bit-planes per beat), sampled per beat.
    act_signed : In(1)
        The codes are signed (two's complement in their low ``act_bits`` bits, sampled per
        beat; ``act_bits >= 2``, as docs/numerics.md gives every signed tensor).
    pattern_flush : In(1)
        With ``pattern_slices > 1`` or in depthwise mode: the next window fetches its word
        even if it is the staged one (the accelerator top pulses it per instruction, so that a
        tile's timing does not depend on the tile before it). A write to the pattern memory
        does the same.
    dw : In(1)
        Depthwise mode for the windows accepted while it is 1 (with ``dw_depth > 0``).
    dw_slices : In(range(1, dw_max_slices + 1))
        Depthwise pattern words per window (held while a window is fetched).
    lane_rot : In(1)
        With ``lane_pairs``: output lane ``l`` takes the beat's lane ``(l + lanes/2) mod lanes``.
    kernel : In(range(k + 1))
        The beat's kernel size (3, 5 or 7, at most ``k``; sampled with each window): how the
        bit-plane meets the pattern word's grids (``k`` by default).
    pattern_w : Out(WritePort.Signature)
        Write port of the pattern memory (``unsigned(ceil(W/S))``, ``W = lanes*cin*k*k``: a
        whole word, or one slice at memory word ``a + slice``: :meth:`memory_words`).
    """

    def __init__(self, *, lanes: int, k: int, cin: int, groups: int = 1, a_bits: int = 8,
                 max_cin: int | None = None, pattern_depth: int = 16, netlist: str = "lut",
                 pattern_slices: int = 1, dw_depth: int = 0, dense_kernels: bool = True,
                 plane_reg: bool = False, lane_pairs: bool = False):
        check_int("lanes", lanes, 1)
        if netlist not in ("lut", "word", "xc7"):
            raise ValueError(f"netlist must be 'lut', 'word' or 'xc7', not {netlist!r}")
        check_int("k", k)
        if k not in (3, 5, 7):
            raise ValueError(f"k must be one of 3, 5, 7, not {k}")
        check_int("cin", cin, 1)
        check_int("groups", groups, 1)
        if lanes % groups:
            raise ValueError(f"groups ({groups}) must divide lanes ({lanes})")
        check_int("a_bits", a_bits, 1, 8)
        if max_cin is None:
            max_cin = cin
        check_int("max_cin", max_cin, cin)
        if max_cin % cin:
            raise ValueError(f"max_cin ({max_cin}) must be a multiple of cin ({cin})")
        check_int("pattern_depth", pattern_depth, 1)
        check_int("pattern_slices", pattern_slices, 1, a_bits)
        if pattern_slices & (pattern_slices - 1):
            raise ValueError(f"pattern_slices must be a power of two, not {pattern_slices}")
        self._slices = pattern_slices
        self._lanes, self._k, self._cin, self._groups = lanes, k, cin, groups
        self._a_bits, self._max_cin, self._pattern_depth = a_bits, max_cin, pattern_depth
        self._netlist = netlist
        check_int("dw_depth", dw_depth, 0)
        self._dw_depth = dw_depth
        self._dense, self._plane_reg = bool(dense_kernels), bool(plane_reg)
        self._lane_pairs = bool(lane_pairs)
        if lane_pairs and lanes % 2:
            raise ValueError(f"lane_pairs needs an even number of lanes, not {lanes}")
        if dw_depth and groups != 1:
            raise ValueError(f"the depthwise mode needs groups == 1, not {groups}")
        if dw_depth and self.dw_lanes * self.dw_lane_bits > -(-lanes * cin * k * k // pattern_slices):
            raise ValueError(f"a depthwise pattern word ({self.dw_lanes} lanes x {self.dw_lane_bits} bits) "
                             f"is wider than the pattern memory's write port")
        n = cin * k * k
        # Proven bounds: one beat |s| <= n*(2^a-1); a whole group |acc| <= max_cin*k*k*(2^a-1)
        # (signed codes: n*2^(a-1) and max_cin*k*k*2^(a-1), smaller).
        self._beat_width = signed_bits(n * (2 ** a_bits - 1))
        self._acc_width = signed_bits(max_cin * k * k * (2 ** a_bits - 1))
        super().__init__({
            "window": In(stream.Signature(self.window_layout)),
            "acc": Out(stream.Signature(data.ArrayLayout(signed(self._acc_width), lanes))),
            "act_bits": In(range(1, a_bits + 1), init=a_bits),
            "act_signed": In(1),
            "pattern_flush": In(1),
            "dw": In(1),
            "dw_slices": In(range(1, self.dw_max_slices + 1), init=1),
            "kernel": In(range(k + 1), init=k),
            "lane_rot": In(1),
            "pattern_w": Out(WritePort.Signature(addr_width=ceil_log2(pattern_depth * pattern_slices + dw_depth),
                                                 shape=self.pattern_memory_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, k, cin, groups = self._lanes, self._k, self._cin, self._groups
        taps = k * k
        n = cin * taps
        lanes_per_group = lanes // groups
        chunked = self._max_cin > cin
        width = self._beat_width

        S = self._slices
        DW = self._dw_depth > 0
        D = self.dw_lanes
        m.submodules.memory = pm = PatternMemory(
            word_bits=self.pattern_layout.size, slices=S, depth=self._pattern_depth,
            write_shape=self.pattern_memory_shape, dw_depth=self._dw_depth,
            dw_word_bits=D * self.dw_lane_bits if DW else 0, dw_max_slices=self.dw_max_slices,
            addr_bits=len(self.window.payload.pat_addr))
        wiring.connect(m, wiring.flipped(self.pattern_w), pm.pattern_w)
        m.d.comb += [pm.addr.eq(self.window.payload.pat_addr), pm.flush.eq(self.pattern_flush),
                     pm.dw.eq(self.dw), pm.dw_slices.eq(self.dw_slices)]

        # Stage A: the accepted window; its pattern word is fetched by the PatternMemory
        # (rtl_gen/pattern_memory.py) from the accept on, complete when pm.fetched rises (one
        # cycle later with one slice, S with S slices, dw_slices + 1 in the depthwise mode; a
        # window whose word is staged is not fetched again).
        a_valid = Signal()
        a_fetched = pm.fetched
        a_word = pm.word
        a_window = Signal(self.window_layout.members["window"], reset_less=True)
        a_first = Signal()
        a_last = Signal()
        a_dw = Signal()
        a_rot = Signal()
        # the beat's kernel, one flag per kernel smaller than k (the plane remap's selects)
        a_ksel = {kk: Signal(name=f"a_k{kk}") for kk in pattern_kernels(k)[:-1]} if self._dense else {}
        b_ksel = {kk: Signal(name=f"b_k{kk}") for kk in a_ksel}

        # Stage B: the window being sliced into bit-planes, one plane per cycle.
        b_busy = Signal()
        b_window = Signal.like(a_window, reset_less=True)
        b_pattern = Signal(self.pattern_layout, reset_less=True)
        b_plane = Signal(range(self._a_bits))
        b_final = Signal()    # b_plane == 0, registered (no compare on the load decision)
        b_first = Signal()
        b_last = Signal()
        b_dw = Signal()
        b_rot = Signal()
        b_signed = Signal()
        b_top = Signal()      # the beat's first (top) plane is in B
        b_neg = Signal()      # the plane after a signed beat's top plane: its Horner step negates

        # Stage P: the plane's products, registered. y[l][i] = x_b[i] AND (B[l, i] == -1) is a
        # flip-flop whose synchronous reset is the pattern bit (FDRE R on xc7): no LUT; xp[g] is
        # the plane itself (the channels of group g).
        p_valid = Signal()
        p_final = Signal()    # plane 0: the beat is complete after this plane
        p_first = Signal()
        p_last = Signal()
        p_neg, m_neg, q_neg = Signal(name="p_neg"), Signal(name="m_neg"), Signal(name="q_neg")
        y = [Signal(n, name=f"y{l}", reset_less=True) for l in range(lanes)]
        xp = [Signal(n, name=f"xp{g}", reset_less=True) for g in range(groups)]

        # Stage M: the counter trees' columns after their first levels, registered.
        m_valid = Signal()
        m_final = Signal()
        m_first = Signal()
        m_last = Signal()

        # Stage Q: the popcounts of the plane, registered as two rows each (a counter tree
        # reduces the n bits to two words whose sum is the count; the Horner adder sums them):
        # popcount(y[l]) per lane, popcount(xp[g]) per group. Word form: the count in one row.
        # Rows are exact modulo 2^hw, the Horner registers' width.
        # U, X: two's complement at `width` bits, exact: unsigned codes give 0 <= U, X <=
        # n*(2^a - 1) < 2^(width-1), signed ones |U|, |X| <= n*2^(a-1)
        hw = width
        q_valid = Signal()
        q_final = Signal()
        q_first = Signal()
        q_last = Signal()
        qy = [[Signal(hw, name=f"qy{l}_{r}", reset_less=True) for r in range(2)] for l in range(lanes)]
        qx = [[Signal(hw, name=f"qx{g}_{r}", reset_less=True) for r in range(2)] for g in range(groups)]

        # Horner registers over the planes, MSB first: u[l] = sum_b 2^b popcount(y_b) and
        # x[g] = sum_b 2^b popcount(x_b), restarted at 0 after each beat's final plane, whose
        # values go to the beat stage H (bu, bx). There the beat's value is
        # sum_b 2^b (popcount(x_b AND Bpos) - popcount(x_b AND Bneg)) = X - 2U, added to the
        # chunk accumulator (0 for a group's first beat) on the way to the output.
        u = [Signal(hw, name=f"u{l}", reset_less=True) for l in range(lanes)]
        xs = [Signal(hw, name=f"xs{g}", reset_less=True) for g in range(groups)]
        h_valid = Signal()
        h_last = Signal()
        bu = [Signal(hw, name=f"bu{l}", reset_less=True) for l in range(lanes)]
        bx = [Signal(hw, name=f"bx{g}", reset_less=True) for g in range(groups)]
        chunk_acc = [Signal(signed(self._acc_width), name=f"chunk_acc{l}") for l in range(lanes)]
        # depthwise mode: the beat's flag through P, M, Q, H, and per lane its own channel's
        # plane count (Q), Horner register and beat value
        p_dw, m_dw, q_dw, h_dw = (Signal(name=f"{s_}_dw") for s_ in "pmqh")
        # lane pairs: the beat's lane turn through P, M, Q, H
        p_rot, m_rot, q_rot, h_rot = (Signal(name=f"{s_}_rot") for s_ in "pmqh")
        if DW:
            qxd = [[Signal(hw, name=f"qxd{l}_{r}", reset_less=True) for r in range(2)] for l in range(D)]
            xsd = [Signal(hw, name=f"xsd{l}", reset_less=True) for l in range(D)]
            bxd = [Signal(hw, name=f"bxd{l}", reset_less=True) for l in range(D)]

        # The pipeline stalls while H holds a `last` beat and the output register is occupied,
        # whether or not the consumer takes the output in this cycle: acc.ready reaches no
        # further than the output register, so nothing in the engine (nor window.ready, nor
        # the gatherer behind it) waits on the consumer's handshake logic.
        # (a flip-flop, arith.output_stall: Q's `last` final plane is the beat that moves into H)
        stall, stall_n = output_stall(m, self.acc, h_valid & h_last, q_valid & q_final & q_last, with_next=True)
        advance = ~stall
        # The product flip-flops reset from b_pattern even while stalled, so b_pattern must not
        # change (a new beat must not load) on an edge after which the pipeline may stall with
        # the old beat's products in P: that is, when B's final plane moves into P while a
        # `last` beat's final plane moves from Q into H and the output may be occupied next
        # cycle (act_bits <= 3 only: with more planes Q then holds the same beat as P).
        out_busy_next = self.acc.valid | (h_valid & h_last)
        hazard = q_valid & q_final & q_last & out_busy_next
        b_done = b_busy & b_final & advance
        b_load = a_valid & a_fetched & advance & (~b_busy | (b_done & ~hazard))
        # A is free (~a_valid | b_load) as a flip-flop, registered from the next values of the
        # registers that make it, so equal in every cycle (tests/test_rtl_pattern.py): the
        # gatherer's state and A's wide enable start at a register (timing); no cycle moves.
        a_free = Signal(init=1)
        accept = self.window.valid & a_free
        a_valid_n = Mux(accept, 1, Mux(b_load, 0, a_valid))
        b_busy_n = Mux(b_load, 1, Mux(b_done, 0, b_busy))
        b_final_n = Mux(b_load, self.act_bits == 1,
                        Mux(~b_done & b_busy & advance, b_plane == 1, b_final))
        q_valid_n, q_final_n, q_last_n = (Mux(advance, mv, qv) for mv, qv in
                                          ((m_valid, q_valid), (m_final, q_final), (m_last, q_last)))
        h_valid_n = Mux(advance, q_valid & q_final, h_valid)
        h_last_n = Mux(advance, q_last, h_last)
        acc_valid_n = Mux(h_valid & h_last & advance, 1, Mux(self.acc.ready, 0, self.acc.valid))
        hazard_n = q_valid_n & q_final_n & q_last_n & (acc_valid_n | (h_valid_n & h_last_n))
        m.d.sync += a_free.eq(~a_valid_n | (pm.fetched_next & ~stall_n &
                                            (~b_busy_n | (b_final_n & ~hazard_n))))
        # (the value it equals, for the simulation check; nothing reads it in the design)
        self._a_free_check = Signal(name="a_free_check")
        m.d.comb += self._a_free_check.eq(~a_valid | b_load)

        m.d.comb += [self.window.ready.eq(a_free), pm.accept.eq(accept)]
        # Stage A's payload registers load whenever A is free, a window offered or not (then
        # a_valid stays 0): their enable does not wait on the gatherer's valid (timing: its
        # state would reach every bit of a_window)
        with m.If(a_free):
            m.d.sync += [
                a_window.eq(self.window.payload.window),
                a_first.eq(self.window.payload.first),
                a_last.eq(self.window.payload.last),
                a_dw.eq(self.dw if DW else 0),
                *([a_rot.eq(self.lane_rot)] if self._lane_pairs else []),
                *(sel.eq(self.kernel == kk) for kk, sel in a_ksel.items()),
            ]
        with m.If(accept):
            m.d.sync += a_valid.eq(1)
        with m.Elif(b_load):
            m.d.sync += a_valid.eq(0)

        with m.If(b_load):
            m.d.sync += [
                b_busy.eq(1),
                b_window.eq(a_window),
                b_pattern.eq(self._load_pattern(m, a_word, a_dw, pm.dw_word if DW else None)),
                *(b_ksel[kk].eq(sel & ~a_dw) for kk, sel in a_ksel.items()),
                b_dw.eq(a_dw),
                *([b_rot.eq(a_rot)] if self._lane_pairs else []),
                b_plane.eq(self.act_bits - 1),
                b_final.eq(self.act_bits == 1),
                b_first.eq(a_first),
                b_last.eq(a_last),
                b_signed.eq(self.act_signed),
                b_top.eq(1),
                b_neg.eq(0),
            ]
        with m.Elif(b_done):
            m.d.sync += b_busy.eq(0)
        with m.Elif(b_busy & advance):
            m.d.sync += [b_plane.eq(b_plane - 1), b_final.eq(b_plane == 1),
                         b_top.eq(0), b_neg.eq(b_top & b_signed)]

        # Bit-plane b_plane of every code, shared by the lanes (rtl_gen/pattern_planes.py)
        plane = bit_planes(m, b_window, b_plane, registered=self._plane_reg, a_window=a_window,
                           act_bits=self.act_bits, load=b_load, step=b_busy & advance & ~b_final)
        with m.If(advance):
            m.d.sync += [
                p_valid.eq(b_busy), p_final.eq(b_final), p_first.eq(b_first), p_last.eq(b_last),
                m_valid.eq(p_valid), m_final.eq(p_final), m_first.eq(p_first), m_last.eq(p_last),
                q_valid.eq(m_valid), q_final.eq(m_final), q_first.eq(m_first), q_last.eq(m_last),
                p_neg.eq(b_neg), m_neg.eq(p_neg), q_neg.eq(m_neg),
                h_valid.eq(q_valid & q_final), h_last.eq(q_last),
            ]
            if DW:
                m.d.sync += [p_dw.eq(b_dw), m_dw.eq(p_dw), q_dw.eq(m_dw), h_dw.eq(q_dw)]
            if self._lane_pairs:
                m.d.sync += [p_rot.eq(b_rot), m_rot.eq(p_rot), q_rot.eq(m_rot), h_rot.eq(q_rot)]
        word = self._netlist == "word"
        restart = Signal()
        m.d.comb += restart.eq(q_valid & q_final & advance)
        counters = PlaneCounters(m, self._netlist, hw, n, advance, restart, step=q_valid & advance)
        count_and_accumulate = counters.count_and_accumulate

        slots = {kk: self._plane_slots(kk) for kk in b_ksel}
        for g in range(groups):
            # the group's plane (X counts it) and the plane as its products see it
            xg, xr = group_plane(m, plane, g, cin, {kk: (sel, slots[kk]) for kk, sel in b_ksel.items()})
            with m.If(advance):
                m.d.sync += xp[g].eq(xg)
            count_and_accumulate(xp[g], qx[g], xs[g], bx[g], q_neg, f"x{g}")
            for l in range(g * lanes_per_group, (g + 1) * lanes_per_group):
                pat = b_pattern[l]
                if word:
                    # reset (pattern bit) wins over enable, as in the flip-flop form
                    m.d.sync += y[l].eq(~pat & Mux(advance, xr, y[l]))
                else:
                    for i in range(n):
                        # written as "reset wins over enable": maps onto FDRE (R = pattern bit)
                        with m.If(pat[i]):
                            m.d.sync += y[l][i].eq(0)
                        with m.Elif(advance):
                            m.d.sync += y[l][i].eq(xr[i])
                count_and_accumulate(y[l], qy[l], u[l], bu[l], q_neg, f"u{l}")
        if DW:
            # lane l's own channel: bits l*k*k .. of the group-0 plane xp[0]
            for l in range(D):
                count_and_accumulate(xp[0][l * taps:(l + 1) * taps], qxd[l], xsd[l], bxd[l], q_neg, f"xd{l}")

        # Stage H -> output: total = chunk_acc + X - 2U (xc7: one ternary adder, -2U as
        # ~(2U) + carry-in; X and U sign-extended). chunk_acc is cleared as a group's first
        # beat enters H (a flip-flop reset) and takes each beat's total as it leaves.
        aw = self._acc_width
        totals = []
        for l in range(lanes):
            base = chunk_acc[l] if chunked else Const(0, aw)
            xl = Mux(h_dw, bxd[l], bx[l // lanes_per_group]) if DW and l < D else bx[l // lanes_per_group]
            totals.append(counters.beat_total(base, xl, bu[l], aw, l))

        if chunked:
            with m.If(q_valid & q_final & q_first & advance):
                m.d.sync += [chunk_acc[l].eq(0) for l in range(lanes)]
            with m.Elif(h_valid & advance):
                m.d.sync += [chunk_acc[l].eq(totals[l]) for l in range(lanes)]

        with m.If(self.acc.ready):
            m.d.sync += self.acc.valid.eq(0)
        with m.If(h_valid & h_last & advance):
            m.d.sync += self.acc.valid.eq(1)
            if self._lane_pairs:
                # a turned beat (the second tile of a lane pair) leaves in lanes 0 ..
                m.d.sync += [self.acc.payload[l].eq(Mux(h_rot, totals[(l + lanes // 2) % lanes], totals[l]))
                             for l in range(lanes)]
            else:
                m.d.sync += [self.acc.payload[l].eq(totals[l]) for l in range(lanes)]
        return m
