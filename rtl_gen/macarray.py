"""MacArray: int8 weights × uint8 (or int8) activations on DSP multipliers, int32 accumulators."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .actmem import rotated
from .arith import adder_tree, check_int, output_stall

__all__ = ["MacArray", "feed_late_raw", "feed_late_x"]


def feed_late_x(m, mac: "MacArray", x) -> None:
    """The register an ``x_late`` MacArray ``mac`` reads a beat's activations from: loaded
    with ``x`` (the producer's, in the cycle its beat is offered) as the beat is taken, held
    until the next one is, driving ``mac.pixel.payload.x``."""
    r = Signal.like(mac.pixel.payload.x, name="ma_x")
    with m.If(mac.pixel.valid & mac.pixel.ready):
        m.d.sync += r.eq(x)
    m.d.comb += mac.pixel.payload.x.eq(r)


def feed_late_raw(m, mac: "MacArray", use_x, x, raw) -> None:
    """:func:`feed_late_x` for a producer whose beat is the activation banks' raw bytes
    ``raw = (bytes, lo, ok)`` (ActivationMemory.rraw, its rotation and the bytes' mask: the
    Gather unit's ``x_raw``, ``x_lo``, ``x_ok``), or ``x`` itself where ``use_x`` (the FC's
    sums): the register holds them as they are, and the bytes are rotated after it
    (actmem.rotated), so the block RAM's read data reach it through no rotation."""
    data_, lo, ok = raw
    cols = len(mac.pixel.payload.x.as_value()) // 8
    r_raw = Signal(len(data_.as_value()), name="ma_x_raw", reset_less=True)
    r_lo, r_ok = Signal(len(lo), name="ma_x_lo"), Signal(cols, name="ma_x_ok")
    with m.If(mac.pixel.valid & mac.pixel.ready):
        with m.If(use_x):
            m.d.sync += [r_raw.eq(x), r_lo.eq(0), r_ok.eq((1 << cols) - 1)]
        with m.Else():
            m.d.sync += [r_raw.eq(data_), r_lo.eq(lo), r_ok.eq(ok)]
    m.d.comb += mac.pixel.payload.x.eq(rotated(r_raw, r_lo, cols, r_ok))


class MacArray(wiring.Component):
    """``rows × cols`` multiply-accumulate array for 1×1 convolutions and FC layers.

    One input beat carries ``cols`` uint8 activations (``cols`` input channels of one pixel)
    and a weight memory address; the addressed word holds the int8 weights ``w[p][q]`` of
    ``rows`` output channels × ``cols`` input channels. Per beat every row adds
    ``sum_q w[p][q] * x[q]`` to its int32 accumulator (``first`` restarts it, ``last`` emits
    all ``rows`` accumulators). Fully pipelined: one beat per cycle, ``rows*cols`` MACs/cycle;
    a ``last`` beat waits in the accumulator stage while the output register is occupied, even
    in the cycle it is taken (``acc.ready`` only clears the output register).

    With ``packed=True`` two output rows share one multiplier (the DSP48E1's 25×18 signed
    multiplier): the activation ``x`` (shared) multiplies the wide operand
    ``A = w_hi * 2^16 + (w_lo mod 2^8)`` (the low weight as an unsigned byte, so the two fields
    never interfere: ``x * (w_lo mod 2^8) <= 255*255 < 2^16``). The product's upper field is
    ``x*w_hi`` exactly, its low 16 bits are ``x*(w_lo mod 2^8)``; the correction for the sign of
    the low weight, ``-256*x`` where ``w_lo < 0``, is summed over the beat's ``cols`` activations
in parallel with the multiplies and enters the low row's adder tree as a single term.

    Parameters
    ----------
    rows : int
        Output channels in parallel (``P``); even when ``packed``.
    cols : int
        Input channels per beat (``Q``).
    packed : bool
        Two int8 MACs per multiplier (per DSP48E1).
    weight_depth : int
        Words in the weight memory.
    weights_bram : bool
        The weight memory in block RAM however shallow (Yosys's ``ram_style = "block"``; else
        a shallow one becomes distributed RAM).
    acc_width : int
        Accumulator width in bits (signed), default 32.
    x_late : bool
        ``pixel.payload.x`` is read the cycle after the beat is taken, and held by the
        producer until its next beat is taken (a register the producer loads as the beat goes:
        :func:`feed_late_x`, as the accelerator top does): the S1 stage takes ``x`` from that register instead
        of one of its own, so the activation memory's read data reach a register beside the
        memory, not the DSPs' input across the die (the ECP5's critical path after a6f961d).
        Same latency and throughput.

    Attributes
    ----------
    pixel : In(stream.Signature(pixel_layout))
        ``x`` (``cols`` uint8 codes, or int8 codes in two's complement when ``x_signed``:
        signed activations, zero point 0, docs/numerics.md), ``w_addr``, ``first``, ``last``.
        ``x_signed`` is honoured only unpacked (``packed=False``): the packed multiplier's low
        field holds ``x * (w_lo mod 2^8)`` only for ``x >= 0`` (the compiler does not pack an
        overlay whose MAC operands are signed, and ``rtl_gen.checkprog.check_program`` refuses one).
    acc : Out(stream.Signature(ArrayLayout(signed(acc_width), rows)))
        Row accumulators, one beat per ``last`` input beat.
    weight_w : Out(WritePort.Signature)
        Write port of the weight memory (word: ``ArrayLayout(ArrayLayout(signed(8), cols), rows)``).
    """

    def __init__(self, *, rows: int, cols: int, packed: bool = False, weight_depth: int = 16,
                 weights_bram: bool = False,
                 acc_width: int = 32, x_late: bool = False):
        check_int("rows", rows, 1)
        check_int("cols", cols, 1)
        if not isinstance(packed, bool):
            raise TypeError(f"packed must be a bool, not {packed!r}")
        if packed and rows % 2:
            raise ValueError(f"packed needs an even number of rows, not {rows}")
        check_int("weight_depth", weight_depth, 1)
        check_int("acc_width", acc_width, 17, 64)
        self._rows, self._cols, self._packed = rows, cols, packed
        self._weight_depth, self._acc_width = weight_depth, acc_width
        self._bram = bool(weights_bram)
        self._x_late = bool(x_late)
        super().__init__({
            "pixel": In(stream.Signature(self.pixel_layout)),
            "acc": Out(stream.Signature(data.ArrayLayout(signed(acc_width), rows))),
            "weight_w": Out(WritePort.Signature(addr_width=ceil_log2(weight_depth),
                                                shape=self.weight_layout)),
        })

    rows = property(lambda self: self._rows, doc="Output channels in parallel.")
    cols = property(lambda self: self._cols, doc="Input channels per beat.")
    packed = property(lambda self: self._packed, doc="Two MACs per multiplier.")
    weight_depth = property(lambda self: self._weight_depth, doc="Weight memory words.")
    acc_width = property(lambda self: self._acc_width, doc="Accumulator width (bits, signed).")

    @property
    def pixel_layout(self) -> data.StructLayout:
        """Payload of the pixel stream."""
        return data.StructLayout({
            "x": data.ArrayLayout(unsigned(8), self._cols),
            "x_signed": unsigned(1),
            "w_addr": unsigned(ceil_log2(self._weight_depth)),
            "first": unsigned(1),
            "last": unsigned(1),
        })

    @property
    def weight_layout(self) -> data.ArrayLayout:
        """One weight memory word: ``w[p][q]`` int8."""
        return data.ArrayLayout(data.ArrayLayout(signed(8), self._cols), self._rows)

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle at full throughput."""
        return self._rows * self._cols

    @property
    def multipliers(self) -> int:
        """Hardware multipliers (DSP48E1 slices when mapped to 7-series)."""
        return self._rows * self._cols // (2 if self._packed else 1)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols

        # (``weights_bram``: block RAM however shallow; Yosys maps a shallow memory to LUTs)
        m.submodules.weights = mem = Memory(shape=self.weight_layout, depth=self._weight_depth,
                                            init=[], attrs={"ram_style": "block"} if self._bram else None)
        rd = mem.read_port()
        wr = mem.write_port()
        wiring.connect(m, wiring.flipped(self.weight_w), wr)

        # One global stall: the pipeline moves unless its last stage holds a `last` beat while
        # the output register is occupied (whether or not the consumer takes it in this cycle:
        # acc.ready reaches no further than the output register, so neither the pipeline nor
        # pixel.ready, nor the gatherer behind it, waits on the consumer's handshake logic).
        s2_valid = Signal()
        s2_first, s2_last = Signal(name="s2_first"), Signal(name="s2_last")
        s3_valid = Signal()
        s3_first, s3_last = Signal(name="s3_first"), Signal(name="s3_last")
        # (a flip-flop, arith.output_stall: S3 is the last stage, S2 the one before)
        stall = output_stall(m, self.acc, s3_valid & s3_last, s2_valid & s2_last)
        advance = ~stall
        m.d.comb += [
            self.pixel.ready.eq(advance),
            rd.addr.eq(self.pixel.payload.w_addr),
            rd.en.eq(advance),
        ]

        # S1: activations registered (DSP B register), weights on rd.data.
        s1_valid = Signal()
        s1_x = Signal(data.ArrayLayout(unsigned(8), cols))
        s1_first, s1_last, s1_sx = Signal(name="s1_first"), Signal(name="s1_last"), Signal(name="s1_sx")
        if self._x_late:
            m.d.comb += s1_x.eq(self.pixel.payload.x)        # (the producer's register)
        with m.If(advance):
            if not self._x_late:
                m.d.sync += s1_x.eq(self.pixel.payload.x)
            m.d.sync += [
                s1_valid.eq(self.pixel.valid),
                s1_sx.eq(self.pixel.payload.x_signed),
                s1_first.eq(self.pixel.payload.first),
                s1_last.eq(self.pixel.payload.last),
            ]

        # S1b: the weight word registered out of the block RAM (a RAM's clock-to-output, 5.8 ns
        # on the ECP5's DP16KD, does not run on into a multiplier: Xilinx DSP A register,
        # ECP5 fabric flip-flops), the activations beside it.
        s1r_valid = Signal()
        s1r_x = Signal(data.ArrayLayout(unsigned(8), cols))
        s1r_first, s1r_last, s1r_sx = Signal(name="s1r_first"), Signal(name="s1r_last"), Signal(name="s1r_sx")
        w = Signal(rd.data.shape())
        with m.If(advance):
            m.d.sync += [s1r_valid.eq(s1_valid), s1r_x.eq(s1_x), s1r_sx.eq(s1_sx), s1r_first.eq(s1_first),
                         s1r_last.eq(s1_last), w.eq(rd.data)]

        # S2: registered products (DSP M register).
        terms = [[] for _ in range(rows)]  # per row: registered product terms to sum
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1r_valid), s2_first.eq(s1r_first), s2_last.eq(s1r_last)]
        for q in range(cols):
            x = s1r_x[q]
            if not self._packed:
                # 9-bit signed: uint8 zero-extended, int8 sign-extended (the multiplier's
                # operand is wider anyway: no logic beyond one gate per activation)
                xs = Cat(x, x[7] & s1r_sx).as_signed()
                for p in range(rows):
                    prod = Signal(signed(17), name=f"prod_{p}_{q}")
                    with m.If(advance):
                        m.d.sync += prod.eq(xs * w[p][q])
                    terms[p].append(prod)
            else:
                xs = Cat(x, Const(0, 1)).as_signed()  # (unsigned only: the class docstring)
                for pair in range(rows // 2):
                    w_lo = w[2 * pair][q]
                    w_hi = w[2 * pair + 1][q]
                    wide = Cat(w_lo.as_unsigned(), Const(0, 8), w_hi).as_signed()  # 24-bit signed
                    prod = Signal(signed(33), name=f"prod2_{pair}_{q}")
                    with m.If(advance):
                        m.d.sync += prod.eq(xs * wide)
                    terms[2 * pair].append(prod[:16])              # x * (w_lo mod 256), unsigned
                    terms[2 * pair + 1].append(prod[16:].as_signed())  # x * w_hi
        if self._packed:
            # Sign correction of the low rows, one term per row: -256 * sum of x where w_lo < 0.
            for pair in range(rows // 2):
                neg = [s1r_x[q] & w[2 * pair][q][7].replicate(8) for q in range(cols)]
                corr = Signal(range(255 * cols + 1), name=f"negx_{pair}")
                with m.If(advance):
                    m.d.sync += corr.eq(adder_tree(neg))
                terms[2 * pair].append(-Cat(Const(0, 8), corr, Const(0, 1)).as_signed())

        # S3: per-row sum over the cols products, registered (the DSPs' cascade and the adder
        # tree are not one path with the accumulator's adder).
        with m.If(advance):
            m.d.sync += [s3_valid.eq(s2_valid), s3_first.eq(s2_first), s3_last.eq(s2_last)]
        dots = []
        for p in range(rows):
            dot = Signal(signed(self._acc_width), name=f"dot{p}")
            with m.If(advance):
                m.d.sync += dot.eq(adder_tree(terms[p]))
            dots.append(dot)

        # S4: accumulate, emit.
        acc = [Signal(signed(self._acc_width), name=f"acc{p}") for p in range(rows)]
        with m.If(self.acc.ready):
            m.d.sync += self.acc.valid.eq(0)
        for p in range(rows):
            total = Signal(signed(self._acc_width), name=f"total{p}")
            with m.If(s3_first):
                m.d.comb += total.eq(dots[p])
            with m.Else():
                m.d.comb += total.eq(acc[p] + dots[p])
            with m.If(advance & s3_valid):
                m.d.sync += acc[p].eq(total)
                with m.If(s3_last):
                    m.d.sync += self.acc.payload[p].eq(total)
        with m.If(advance & s3_valid & s3_last):
            m.d.sync += self.acc.valid.eq(1)
        return m
