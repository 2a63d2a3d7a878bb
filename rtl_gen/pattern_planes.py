"""The pattern engine's bit-plane select, its stage B (rtl_gen/pattern.py)."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value

__all__ = ["bit_planes", "group_plane"]


def bit_planes(m, b_window, b_plane: Value, *, registered: bool = False, a_window=None,
               act_bits: Value | None = None, load: Value | None = None,
               step: Value | None = None) -> list[list[Value]]:
    """Plane ``b_plane`` of every code of ``b_window`` (``[tap][channel]`` codes), as
    ``[tap][channel]`` bits.

    Indexed (default): an ``a_bits:1`` multiplexer per code from the plane counter, in the
    same cycle (a ``$shiftx`` each; Yosys/ABC makes about 3 LUTs of an 8:1 multiplexer on
    the xc7). The counter drives every code's multiplexer, and the plane goes on from there
    to the kernel remap and the lanes' product flip-flops: on the ECP5 that was the shipped
    overlay's critical path (docs/timing.md).

    Registered (``EngineConfig.plane_reg``, a board profile's ``plane_reg``): a flip-flop per
    code that loads the plane B holds next: the top plane, bit ``act_bits - 1`` of A's code
    (``a_window``), where B loads a beat (``load``), and bit ``b_plane - 1`` of B's code
    where B steps to its next plane (``step``); else it holds. So it equals the indexed select
    in every cycle B is busy (no cycle moves), and the multiplexers end at a register beside
    their codes: two per code instead of one (the load's, indexed by ``act_bits``, which
    changes between layers only). The step's select reads ``Cat(0, code)`` at ``b_plane``: no
    subtraction on its index; the load's index ``act_bits - 1`` is one shared subtraction.
    Measured (docs/timing.md): the small ULX3S overlay routed at 80.0 MHz with it (75.2
    without); on the shipped one its 1,419 cells more congested the router four times as badly."""
    taps, channels = len(b_window), len(b_window[0])
    if not registered:
        return [[b_window[t][c].bit_select(b_plane, 1) for c in range(channels)] for t in range(taps)]
    if a_window is None or act_bits is None or load is None or step is None:
        raise ValueError("a registered plane needs a_window, act_bits, load and step")
    plane = [[Signal(name=f"plane{t}_{c}", reset_less=True) for c in range(channels)] for t in range(taps)]
    bits = len(b_window[0][0])
    top = Signal(range(bits), name="plane_top")     # act_bits - 1, shared: 8:1 multiplexers
    m.d.comb += top.eq(act_bits - 1)
    with m.If(load):
        m.d.sync += [plane[t][c].eq(a_window[t][c].bit_select(top, 1))
                     for t in range(taps) for c in range(channels)]
    with m.Elif(step):
        m.d.sync += [plane[t][c].eq(Cat(Const(0, 1), b_window[t][c]).bit_select(b_plane, 1))
                     for t in range(taps) for c in range(channels)]
    return plane


def group_plane(m, plane: list[list[Value]], g: int, cin: int, remaps: dict) -> tuple[Signal, Signal]:
    """``(xg, xr)`` of group ``g`` (channels ``g*cin ..``): ``xg`` its plane, bit ``c*k*k + t``
    (what ``X`` counts), and ``xr`` the plane as the products see it: for a kernel smaller
    than ``k`` (``remaps[kk] = (select, slots)``, :meth:`PatternWords._plane_slots`), its codes
    at the grid bits where the tap-major word has their pattern bits (one multiplexer per
    grid bit, shared by the group's lanes); ``xr`` is ``xg`` where no select is high."""
    taps = len(plane)
    n = cin * taps
    xg = Signal(n, name=f"xg{g}")
    m.d.comb += xg.eq(Cat(*[plane[t][g * cin + c] for c in range(cin) for t in range(taps)]))
    xr = Signal(n, name=f"xr{g}")
    for q in range(n):
        v = xg[q]
        for sel, slots in remaps.values():
            src = slots[q]
            v = Mux(sel, plane[src[0]][g * cin + src[1]] if src else 0, v)
        m.d.comb += xr[q].eq(v)
    return xg, xr
