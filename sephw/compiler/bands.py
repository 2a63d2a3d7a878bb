"""Row bands: which rows of every tensor each band produces and reads (halos included), and
the activation rings and their placement that a band count implies."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    # spilled tensors (:func:`segment_plan`): tensor -> (hi, lo) of its rows loaded back
    # from external memory, band by band, for the next segment's layers
    loads: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    cuts: tuple = ()                                # the spilled tensors, in layer order
    seg_bands: tuple = ()                           # band count of each segment


def plan_bands(ir: CompileIR, n_bands: int, anchor: str | None = None, first: int = 0,
               last: int | None = None) -> dict:
    """Row intervals per tensor and band for ``n_bands`` equal row bands of the tensor
    ``anchor`` (default: the last feature map). Layers after the anchor run in the last band
    on whole tensors (the anchor is complete by then).

    Walks the graph backwards: a tensor's rows needed in band ``b`` are the union of what its
    consumers' *new* rows of band ``b`` read (halos included). Returns ``{name: (hi, lo)}``
    with ``hi[b]`` the rows produced by the end of band ``b`` (``hi[0] = 0``) and ``lo[b]``
    the lowest row any consumer reads in band ``b``.

    ``first``, ``last`` (layer indices): plan only the layers ``first .. last`` (a segment
    between spill cuts, :func:`segment_plan`): ``first``'s tensor is the segment's source
    (the input, or the spilled tensor the segment loads back), ``last``'s the anchor; with
    ``last`` given, ``anchor`` must be ``last``'s tensor and nothing after it is planned."""
    g = ir.graph
    pool = g.output
    layers = ir.layers[first:None if last is None else last + 1]
    anchor = anchor or pool.input
    ha = g.spec(anchor).height
    hi = {anchor: [(b * ha) // n_bands for b in range(n_bands + 1)]}
    final = last is None
    if final and anchor != pool.input:
        hi[pool.input] = [0] * n_bands + [g.spec(pool.input).height]
    edges = hi[pool.input] if final else None
    end = len(ir.layers) if final else last + 1
    lo = {}
    for lay in reversed(layers):
        n = lay.node
        if isinstance(n, PoolFCNode):
            continue
        name = n.name
        h = n.out.height
        if name not in hi:
            hi[name] = [0] * (n_bands + 1)
        los = [None] * n_bands
        for ci in ir.tensors[name].consumers:
            if ci >= end:
                continue          # a spilled anchor's readers: the next segment's
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


def segment_plan(ir: CompileIR, cuts: tuple, seg_bands: tuple, anchor: str | None = None):
    """The band plan of a network cut into segments at the tensors ``cuts`` (layer order),
    each spilled to external memory as its rows are produced and loaded back, band by band,
    for the next segment's layers. Segment ``s`` runs ``seg_bands[s]`` bands (of its last
    tensor, the cut; the last segment's of ``anchor``, default the last feature map) after
    every band of segment ``s - 1``: bands are numbered across the segments. Returns
    ``(plan, loads)``: ``plan`` as :func:`plan_bands` for every tensor where it is produced,
    ``loads`` the same for each cut where the next segment loads it."""
    prod = [ir.tensors[c].producer for c in cuts]
    total = sum(seg_bands)
    plan, loads = {}, {}
    g0 = 0
    for s, nb in enumerate(seg_bands):
        first = prod[s - 1] if s else 0
        last = prod[s] if s < len(cuts) else None
        local = plan_bands(ir, nb, cuts[s] if s < len(cuts) else anchor, first, last)
        for name, (hi, lo) in local.items():
            gh = [0] * g0 + hi + [hi[-1]] * (total - g0 - nb)
            gl = gh[:g0] + lo + gh[g0 + nb:total]
            (loads if s and name == cuts[s - 1] else plan)[name] = (gh, gl)
        g0 += nb
    return plan, loads


def ring_rows(hi: list[int], lo: list[int]) -> int:
    """Rows a tensor's ring must hold: the most any band keeps from its lowest row read to its
    last row produced."""
    return max(1, max(hi[b + 1] - min(lo[b], hi[b]) for b in range(len(lo))))


def band_layout(ir: CompileIR, n_bands: int, anchor: str | None = None, cuts: tuple = (),
                seg_bands: tuple = ()) -> BandLayout:
    """The rings and their first-fit placement for ``n_bands`` bands of ``anchor``; with spill
    ``cuts`` (:func:`segment_plan`), ``n_bands`` is the last segment's band count and
    ``seg_bands`` the earlier segments'. A spilled tensor's ring holds what its producer
    writes in a band and what the next segment keeps of it."""
    if cuts:
        bands = tuple(seg_bands) + (n_bands,)
        plan, loads = segment_plan(ir, tuple(cuts), bands, anchor)
        starts = [0] + [ir.tensors[c].producer for c in cuts]     # each segment's first layer
    else:
        bands, plan, loads, starts = (n_bands,), plan_bands(ir, n_bands, anchor), {}, [0]
    total = sum(bands)
    items = []
    for t in ir.tensors.values():
        hi, lo = plan[t.name]
        rows = ring_rows(hi, lo)
        touched = [b for b in range(total) if hi[b + 1] > hi[b] or lo[b] < hi[b]]
        if t.name in loads:
            lhi, llo = loads[t.name]
            rows = max(rows, ring_rows(lhi, llo))
            touched += [b for b in range(total) if lhi[b + 1] > lhi[b] or llo[b] < lhi[b]]
        # a tensor touched in one band only lives from its producer to its last consumer
        # (in layer order inside that band); one touched in several bands lives from its
        # segment's first layer on
        # (a cut's layer ends its segment; the next one's tensors live from the layer after it)
        seg = sum(1 for x in starts[1:] if x < t.producer)
        seg_start = starts[seg] + 1 if seg else 0
        live = (t.producer if len(set(touched)) <= 1 else seg_start, max(t.consumers, default=t.producer))
        items.append((t.name, rows * t.row_bytes, live[0], live[1], rows))
    bases, act_bytes = first_fit([i[:4] for i in items])
    rows = {i[0]: (i[4], (i[2], i[3])) for i in items}
    return BandLayout(plan, bases, act_bytes, rows, loads, tuple(cuts), tuple(bands[:-1]))
