"""Compressor trees built from Xilinx 7-series primitives (LUT6, LUT6_2, CARRY4).

Yosys/ABC maps a popcount to LUT6 counters (three LUTs remove three bits: a 6:3 counter) and
plain carry-chain adders; it never puts counter logic *on* the carry chain, nor uses both
outputs of a LUT6_2. The generalized parallel counters here do both, and remove two bits per
LUT (after Kumm and Zipf's slice-based GPCs):

- ``(5;3)``: one LUT6_2 and half a CARRY4. Bits ``x0..x3`` feed the LUT; ``O6 = x0^x1^x2^x3``
  and ``O5 = [x0+x1+x2 >= 2]`` are the chain's select inputs, ``x3`` is its first DI and
  ``x4`` its carry-in (CYINIT). The chain computes ``x4 + x3 + (x0^x1^x2) + 2*[x0+x1+x2>=2]
  = x0+..+x4`` on ``O[0]``, ``O[1]``, ``CO[1]``.
- ``(7;3)``: a LUT6 (``S0 = x5 ^ parity(x0..x4)``) and a LUT6_2 (``S1 = [c in {2,3}]``,
  ``DI1 = [c >= 2]``, ``c = x0+..+x4``), ``x5`` as DI0 and ``x6`` as carry-in: the chain adds
  ``x6 + x5 + parity(c) + 2*([c>=2] + [c>=4]) = x0+..+x6``.
- ``(3;2)``: a full adder in one LUT6_2 (sum on O6, majority on O5).

A ternary adder (``a + b + c``, one LUT6_2 per bit on a CARRY4 chain) sums the last rows.

The primitives are Amaranth ``Instance`` s: Yosys ``synth_xilinx`` and Vivado take them as
they are. Simulators get behavioural models of the three cells from :data:`SIM_MODELS`
(``sim.runner`` adds the file when the Verilog instantiates them), so the INIT values and
chain wiring are what the bit-exact tests check.
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, Const, Instance, Signal, Value

__all__ = ["SIM_MODELS", "uses_xc7_cells", "lut6", "lut6_2", "carry4", "compress", "ternary_add"]

SIM_MODELS = Path(__file__).with_name("xc7_cells_sim.v")
_CELLS = ("LUT6_2 ", "LUT6 ", "CARRY4 ")


def uses_xc7_cells(verilog_text: str) -> bool:
    """Whether Verilog text instantiates one of the cells modelled in :data:`SIM_MODELS`."""
    return any(c in verilog_text for c in _CELLS)


def _bit(v) -> Value:
    return Const(v, 1) if isinstance(v, int) else v


def _table(fn, n: int) -> int:
    """Truth table (LSB = all-zero input) of ``fn(bits)`` over ``n`` inputs as an int."""
    init = 0
    for idx in range(2 ** n):
        if fn([(idx >> i) & 1 for i in range(n)]):
            init |= 1 << idx
    return init


def lut6(m, name: str, inputs: list, fn) -> Signal:
    """A LUT6 computing ``fn(list of input bits)`` of up to six inputs; returns its output."""
    if len(inputs) > 6:
        raise ValueError(f"a LUT6 has 6 inputs, not {len(inputs)}")
    ins = [_bit(i) for i in inputs] + [Const(0, 1)] * (6 - len(inputs))
    k = len(inputs)
    init = _table(lambda b: fn(b[:k]), 6)
    o = Signal(name=f"{name}_o")
    m.submodules[name] = Instance("LUT6", p_INIT=Const(init, 64), o_O=o,
                                  **{f"i_I{i}": v for i, v in enumerate(ins)})
    return o


def lut6_2(m, name: str, inputs: list, fn6, fn5) -> tuple:
    """A LUT6_2 in dual-output mode (I5 = 1): ``O6 = fn6(bits)``, ``O5 = fn5(bits)`` of the
    same up to five inputs; returns ``(o6, o5)``."""
    if len(inputs) > 5:
        raise ValueError(f"a dual-output LUT6_2 has 5 shared inputs, not {len(inputs)}")
    ins = [_bit(i) for i in inputs] + [Const(0, 1)] * (5 - len(inputs))
    k = len(inputs)
    init = (_table(lambda b: fn6(b[:k]), 5) << 32) | _table(lambda b: fn5(b[:k]), 5)
    o6, o5 = Signal(name=f"{name}_o6"), Signal(name=f"{name}_o5")
    m.submodules[name] = Instance("LUT6_2", p_INIT=Const(init, 64), o_O6=o6, o_O5=o5,
                                  i_I5=Const(1, 1), **{f"i_I{i}": v for i, v in enumerate(ins)})
    return o6, o5


def carry4(m, name: str, s: list, di: list, cyinit=0, ci=0) -> tuple:
    """A CARRY4: ``CO[i] = S[i] ? c_i : DI[i]``, ``O[i] = S[i] ^ c_i`` with ``c_0 = CI | CYINIT``;
    returns ``(O, CO)`` as 4-bit signals."""
    s = [_bit(v) for v in s] + [Const(0, 1)] * (4 - len(s))
    di = [_bit(v) for v in di] + [Const(0, 1)] * (4 - len(di))
    o, co = Signal(4, name=f"{name}_o"), Signal(4, name=f"{name}_co")
    m.submodules[name] = Instance("CARRY4", i_S=Cat(*s), i_DI=Cat(*di), i_CYINIT=_bit(cyinit),
                                  i_CI=_bit(ci), o_O=o, o_CO=co)
    return o, co


def _c3(m, name, x):
    """(3;2) full adder: one LUT6_2 -> bits of weight 1, 2."""
    s, c = lut6_2(m, name, x, lambda b: sum(b) & 1, lambda b: int(sum(b) >= 2))
    return [s, c]


def _c5(m, name, x):
    """(5;3) on half a CARRY4, one LUT6_2 -> bits of weight 1, 2, 4."""
    s0, s1 = lut6_2(m, name + "_l", x[:4], lambda b: sum(b) & 1, lambda b: int(sum(b[:3]) >= 2))
    o, co = carry4(m, name + "_c", [s0, s1], [x[3], 0], cyinit=x[4])
    return [o[0], o[1], co[1]]


def _c7(m, name, x):
    """(7;3) on half a CARRY4, a LUT6 and a LUT6_2 -> bits of weight 1, 2, 4."""
    s0 = lut6(m, name + "_l0", x[:6], lambda b: sum(b) & 1)
    s1, d1 = lut6_2(m, name + "_l1", x[:5], lambda b: int(sum(b) in (2, 3)), lambda b: int(sum(b) >= 2))
    o, co = carry4(m, name + "_c", [s0, s1], [x[5], d1], cyinit=x[6])
    return [o[0], o[1], co[1]]


def compress(m, columns: list, *, rows: int = 2, name: str = "gpc", width: int | None = None,
             max_levels: int | None = None) -> list:
    """Reduce weighted bit columns (``columns[w]``: bits of weight ``2^w``) with (7;3), (5;3)
    and (3;2) counters until no column has more than ``rows`` bits (or after ``max_levels``
    levels of counters); returns the new columns (same sum). Columns at or above ``width``
    are dropped (arithmetic modulo ``2^width``)."""
    cols = [[_bit(b) for b in c] for c in columns]
    count = 0
    level = 0
    while max((len(c) for c in cols), default=0) > rows and (max_levels is None or level < max_levels):
        level += 1
        nxt = [[] for _ in range(len(cols) + 2)]
        for w, col in enumerate(cols):
            i = 0
            left = len(col)
            # each counter leaves one bit in its column; count those to stop early
            while left > rows and len(col) - i >= 3:
                avail = len(col) - i
                # (7;3) and (5;3) remove two bits per LUT, (3;2) one
                take = 7 if avail >= 7 and left - rows >= 3 else 5 if avail >= 5 else 3
                x = col[i:i + take]
                count += 1
                outs = {7: _c7, 5: _c5, 3: _c3}[take](m, f"{name}{count}", x)
                for j, o in enumerate(outs):
                    nxt[w + j].append(o)
                i += take
                left -= take - 1
            nxt[w].extend(col[i:])
        while nxt and not nxt[-1]:
            nxt.pop()
        cols = nxt if width is None else nxt[:width]
    return cols


def ternary_add(m, a: Value, b: Value, c: Value, width: int, *, invert_c: bool | Value = False,
                carry_in: int | Value = 0, name: str = "tadd") -> Signal:
    """``(a + b + c + carry_in) mod 2^width`` with one LUT6_2 per bit on a CARRY4 chain: bit
    ``i``'s LUT gives ``a_i ^ b_i ^ c_i ^ m_(i-1)`` (chain select) and ``m_i = maj(a_i, b_i,
    c_i)`` (to the next bit's LUT and chain DI); ``carry_in`` (0, 1 or a 1-bit signal) is the
    chain's. Operands are zero-extended to ``width``. ``invert_c``: the LUTs take ``~c`` (``c``
    zero-extended, then inverted, at ``width`` bits); with ``carry_in=1`` that is ``a + b -
    c``, at no extra LUT. ``invert_c`` may be a 1-bit signal (the LUTs' fifth input): then
    ``c`` is inverted where it is 1 (``carry_in=invert_c`` gives ``a + b +/- c``)."""
    if isinstance(carry_in, int) and carry_in not in (0, 1):
        raise ValueError(f"carry_in must be 0 or 1, not {carry_in!r}")
    inv = _bit(int(bool(invert_c)) if isinstance(invert_c, (bool, int)) else invert_c)

    def bit(v, i):
        v = _bit(v)
        return v[i] if i < len(v) else Const(0, 1)
    s_bits, di_bits = [], []
    m_prev = Const(0, 1)
    for i in range(width):
        s, mj = lut6_2(m, f"{name}_l{i}", [bit(a, i), bit(b, i), bit(c, i), m_prev, inv],
                       lambda x: x[0] ^ x[1] ^ x[2] ^ x[4] ^ x[3],
                       lambda x: int(x[0] + x[1] + (x[2] ^ x[4]) >= 2))
        s_bits.append(s)
        di_bits.append(m_prev)
        m_prev = mj
    out = Signal(width, name=f"{name}_sum")
    carry = Const(0, 1)
    outs = []
    for q in range(0, width, 4):
        o, co = carry4(m, f"{name}_c{q // 4}", s_bits[q:q + 4], di_bits[q:q + 4],
                       cyinit=carry_in if q == 0 else 0, ci=carry)
        outs.append(o[:min(4, width - q)])
        carry = co[3]
    m.d.comb += out.eq(Cat(*outs))
    return out
