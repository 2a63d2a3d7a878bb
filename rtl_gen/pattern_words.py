"""The PatternEngine's pattern words: how a beat's ±1 filters are laid out in a word and in the
pattern memory's slices (:meth:`PatternWords.pattern_word`, :meth:`PatternWords.memory_words`,
the depthwise words), and how the engine reads a word back into its lanes' grids (the
wiring, the bit-plane's slots for a kernel smaller than ``k``, the depthwise mode's grids).
The layout itself is the hardware contract's (:func:`sephw.arch.config.pattern_bit`).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from sephw.arch.config import dw_lane_bits, dw_pattern_words, dw_slices, pattern_bit

__all__ = ["PatternWords", "split_word"]


def split_word(word: int, bits: int, slices: int) -> list[int]:
    """``word`` (``bits`` wide) as ``slices`` words of ``ceil(bits / slices)`` bits, low first."""
    w = -(-bits // slices)
    return [(word >> (s * w)) & ((1 << w) - 1) for s in range(slices)]


class PatternWords:
    """The pattern-word side of :class:`~rtl_gen.pattern.PatternEngine` and the engine's sizes
    and window layout (a mixin: it reads the sizes the engine's constructor checked and kept,
    ``_lanes``, ``_k``, ``_cin``, ``_slices``, ``_dense`` ...)."""

    lanes = property(lambda self: self._lanes, doc="Output channels computed in parallel.")
    k = property(lambda self: self._k, doc="Kernel size.")
    cin = property(lambda self: self._cin, doc="Input channels per group in one beat.")
    groups = property(lambda self: self._groups, doc="Groups covered by one beat.")
    a_bits = property(lambda self: self._a_bits, doc="Largest activation code width.")
    max_cin = property(lambda self: self._max_cin, doc="Largest input channels per group.")
    pattern_depth = property(lambda self: self._pattern_depth,
                             doc="Pattern words (of pattern_slices memory words) in the pattern memory.")
    acc_width = property(lambda self: self._acc_width, doc="Accumulator width (bits, signed).")
    netlist = property(lambda self: self._netlist, doc='``"lut"``, ``"word"`` or ``"xc7"`` (see above).')
    pattern_slices = property(lambda self: self._slices, doc="Memory words per pattern word.")
    dw_depth = property(lambda self: self._dw_depth, doc="Depthwise pattern memory words (0: no depthwise mode).")
    lane_pairs = property(lambda self: self._lane_pairs, doc="The ``lane_rot`` port turns a beat's lanes.")

    @property
    def channels(self) -> int:
        """Channels in one window beat (``groups * cin``)."""
        return self._groups * self._cin

    @property
    def window_layout(self) -> data.StructLayout:
        """Payload of the window stream."""
        return data.StructLayout({
            "window": data.ArrayLayout(data.ArrayLayout(unsigned(self._a_bits), self.channels),
                                       self._k * self._k),
            "pat_addr": unsigned(ceil_log2(max(self._pattern_depth * self._slices, self._dw_depth))),
            "first": unsigned(1),
            "last": unsigned(1),
        })

    @property
    def peak_macs_per_cycle(self) -> float:
        """Binary-weight × ``act_bits`` MACs per cycle at full throughput (for ``act_bits = a_bits``)."""
        return self._lanes * self._cin * self._k * self._k / self._a_bits

    @property
    def dw_lanes(self) -> int:
        """Lanes the depthwise mode computes: lane ``l`` convolves channel ``l`` of the beat."""
        return min(self._lanes, self._cin)

    @property
    def dw_lane_bits(self) -> int:
        """Bits per lane in a depthwise pattern word (:func:`sephw.arch.config.dw_lane_bits`)."""
        return dw_lane_bits(self._k)

    @property
    def dw_max_slices(self) -> int:
        """Depthwise words of a ``k x k`` filter, the engine's own kernel (the most a window
        fetches)."""
        return dw_slices(self._k, self._k)

    @property
    def pattern_layout(self) -> data.ArrayLayout:
        """The lanes' grids a beat runs with: ``cin*k*k`` pattern bits (1 = +1) per lane."""
        return data.ArrayLayout(unsigned(self._cin * self._k * self._k), self._lanes)

    @property
    def pattern_memory_shape(self):
        """One word of the pattern memory: a pattern word, or one slice of it."""
        return unsigned(self.pattern_memory_bits)

    @property
    def pattern_memory_bits(self) -> int:
        """Width of the pattern memory (bits)."""
        return -(-self.pattern_layout.size // self._slices)

    def dw_memory_words(self, lane_grids: list[int], kernel: int) -> list[int]:
        """The depthwise pattern memory words of one window: ``lane_grids[l]`` is lane ``l``'s
        tap-grid bits (bit ``i*k + j`` is 1 where ``B == +1``) of a ``kernel x kernel`` filter."""
        return dw_pattern_words(lane_grids, self._k, kernel)

    def _layout(self, kernel: int) -> int:
        """The kernel a ``kernel x kernel`` filter's word is laid out for: its own with
        ``dense_kernels``, else ``k`` (as ``EngineConfig.kernel_layout``)."""
        return kernel if self._dense else self._k

    def pattern_word(self, filters, kernel: int | None = None) -> int:
        """The pattern word of one beat: ``filters[l][c][i][j]`` (truthy where ``B == +1``) of
        a ``kernel x kernel`` filter (default ``k``) over up to ``cin`` channels per lane,
        tap-major (:func:`~sephw.arch.config.pattern_bit`)."""
        kk = self._k if kernel is None else kernel
        lay = self._layout(kk)
        return sum(1 << pattern_bit(self._lanes, l, c, i, j, lay)
                   for l, f in enumerate(filters) for c, fc in enumerate(f)
                   for i in range(kk) for j in range(kk) if fc[i][j])

    def memory_slices(self, kernel: int, channels: int) -> int:
        """Memory words one beat's word of ``channels`` channels and a ``kernel x kernel``
        filter fills (the rest of its ``pattern_slices`` may be the next word's; the engine
        takes a word at any memory word: the compiler's power of two, ``pshift``, is the
        gatherer's)."""
        lay = self._layout(kernel)
        return -(-self._lanes * channels * lay * lay // self.pattern_memory_bits)

    def memory_words(self, word: int, slices: int | None = None) -> list[int]:
        """The first ``slices`` (default ``pattern_slices``) pattern memory words holding
        pattern word ``word`` (:meth:`pattern_word`)."""
        return split_word(word, self.pattern_layout.size, self._slices)[:slices]

    def _grids(self, m: Module, aw: Value) -> list[Value]:
        """Each lane's grid (:attr:`pattern_layout`) from the tap-major word ``aw``, read as a
        ``k x k`` kernel's (grid bit ``q`` of lane ``l`` is word bit ``q*lanes + l``: wiring).
        A smaller kernel's taps land where :meth:`_plane_slots` puts its codes. (One signal
        per lane: one concatenation of every lane's bits is a Verilog line Verilator refuses,
        over 40,000 tokens, at 16 lanes x 64 channels x 9 taps.)"""
        n, L = self._cin * self._k * self._k, self._lanes
        grids = [Signal(n, name=f"grid{l}") for l in range(L)]
        for l, g in enumerate(grids):
            m.d.comb += g.eq(Cat(*[aw[q * L + l] for q in range(n)]))
        return grids

    def _plane_slots(self, kk: int) -> list:
        """For a ``kk x kk`` kernel, per grid bit ``q = c*k*k + t`` of a group: the ``(tap, channel)``
        of the code whose plane bit meets the pattern bit there (the tap-major word's bit
        ``q*lanes + l`` is lane ``l``'s tap ``(c, i, j)`` with ``q = (c*kk + i)*kk + j``), or
        None past the group's ``cin`` channels (a zero plane bit)."""
        K = self._k
        out = []
        for q in range(self._cin * K * K):
            c, ti = divmod(q, kk * kk)
            out.append((ti // kk * K + ti % kk, c) if c < self._cin else None)
        return out

    def _load_pattern(self, m: Module, a_word, a_dw: Signal, dw_word: Value | None) -> Value:
        """The grids B loads: the tap-major word as its lanes' grids (:meth:`_grids`), or in
        depthwise mode (``a_dw``) each lane's own channel's taps from the staged depthwise
        words and +1 (bit 1) everywhere else."""
        grids = self._grids(m, Value.cast(a_word))
        if dw_word is None:
            return Cat(*grids)
        k2, cin = self._k * self._k, self._cin
        n = cin * k2
        D, WL = self.dw_lanes, self.dw_lane_bits
        lanes = []
        for l in range(self._lanes):
            normal = grids[l]
            if l < D:
                grid = [dw_word[t // WL * D * WL + l * WL + t % WL] for t in range(k2)]
                dw = Cat(Const((1 << l * k2) - 1, l * k2), *grid,
                         Const((1 << (cin - 1 - l) * k2) - 1, (cin - 1 - l) * k2))
            else:
                dw = Const((1 << n) - 1, n)
            lanes.append(Mux(a_dw, dw, normal))
        return Cat(*lanes)
