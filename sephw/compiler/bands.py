"""Row bands: which rows of every tensor each band produces and reads (halos included), and
the activation rings and their placement that a band count implies."""
from __future__ import annotations

from dataclasses import dataclass

from ..intgraph import PoolFCNode
from .ir import CompileIR
from .memory import first_fit
from .operands import rows_needed


@dataclass(frozen=True)
class BandLayout:
    """The activation memory for one band plan."""
    plan: dict[str, tuple[list[int], list[int]]]   # tensor -> (hi, lo), :func:`plan_bands`
    bases: dict[str, int]                           # tensor -> byte address
    act_bytes: int                                  # activation memory bytes
    rows: dict[str, tuple[int, tuple[int, int]]]   # tensor -> (ring rows, live layer range)


def plan_bands(ir: CompileIR, n_bands: int, anchor: str | None = None) -> dict:
    """Row intervals per tensor and band for ``n_bands`` equal row bands of the tensor
    ``anchor`` (default: the last feature map). Layers after the anchor run in the last band
    on whole tensors (the anchor is complete by then).

    Walks the graph backwards: a tensor's rows needed in band ``b`` are the union of what its
    consumers' *new* rows of band ``b`` read (halos included). Returns ``{name: (hi, lo)}``
    with ``hi[b]`` the rows produced by the end of band ``b`` (``hi[0] = 0``) and ``lo[b]``
    the lowest row any consumer reads in band ``b``."""
    g = ir.graph
    pool = g.output
    anchor = anchor or pool.input
    ha = g.spec(anchor).height
    hf = g.spec(pool.input).height
    hi = {anchor: [(b * ha) // n_bands for b in range(n_bands + 1)]}
    if anchor != pool.input:
        hi[pool.input] = [0] * n_bands + [hf]
    edges = hi[pool.input]
    lo = {}
    for lay in reversed(ir.layers):
        n = lay.node
        if isinstance(n, PoolFCNode):
            continue
        name = n.name
        h = n.out.height
        if name not in hi:
            hi[name] = [0] * (n_bands + 1)
        los = [None] * n_bands
        for ci in ir.tensors[name].consumers:
            c = ir.layers[ci]
            if isinstance(c.node, PoolFCNode):
                for b in range(n_bands):
                    los[b] = edges[b] if los[b] is None else min(los[b], edges[b])
                continue
            ch = hi[c.name]
            for b in range(n_bands):
                a, e = ch[b], ch[b + 1]
                if e <= a:
                    continue
                for st in c.steps:
                    for op in st.operands:
                        if op.input != name:
                            continue
                        rlo, rhi = rows_needed(op, a, e, h)
                        los[b] = rlo if los[b] is None else min(los[b], rlo)
                        hi[name][b + 1] = max(hi[name][b + 1], rhi)
        for b in range(n_bands):
            hi[name][b + 1] = max(hi[name][b + 1], hi[name][b])
            if los[b] is None:
                los[b] = hi[name][b]
        lo[name] = los
    return {k: (hi[k], lo[k]) for k in hi}


def ring_rows(hi: list[int], lo: list[int]) -> int:
    """Rows a tensor's ring must hold: the most any band keeps from its lowest row read to its
    last row produced."""
    return max(1, max(hi[b + 1] - min(lo[b], hi[b]) for b in range(len(lo))))


def band_layout(ir: CompileIR, n_bands: int, anchor: str | None = None) -> BandLayout:
    """The rings and their first-fit placement for ``n_bands`` bands of ``anchor``."""
    plan = plan_bands(ir, n_bands, anchor)
    items = []
    for t in ir.tensors.values():
        hi, lo = plan[t.name]
        rows = ring_rows(hi, lo)
        # a tensor touched in one band only lives from its producer to its last consumer
        # (in layer order inside that band); one touched in several bands lives throughout
        bands = sum(1 for b in range(n_bands) if hi[b + 1] > hi[b] or lo[b] < hi[b])
        live = (t.producer if bands <= 1 else 0, max(t.consumers, default=t.producer))
        items.append((t.name, rows * t.row_bytes, live[0], live[1], rows))
    bases, act_bytes = first_fit([i[:4] for i in items])
    rows = {i[0]: (i[4], (i[2], i[3])) for i in items}
    return BandLayout(plan, bases, act_bytes, rows)
