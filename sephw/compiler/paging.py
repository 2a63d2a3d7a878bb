"""Program pages: a Program longer than the program memory runs from external memory.

On a build with external memory whose on-chip working set does not fit with the whole
Program on chip (TileLayers), the Program lives in external memory from word 0, in pages
of :data:`PAGE` instructions (zero words after its end: ``NOP``), and the program memory
holds two pages, page ``k`` in half ``k mod 2`` (``ArchConfig.program_page``). The fetcher's
instruction index wraps round the two halves (rtl_gen/fetch.py). The top loads pages 0 and
1 at ``start``; the Program loads every later page ``k``:

- a ``DMA_LOAD`` of page ``k`` into half ``k mod 2`` at index ``(k - 1) * PAGE + 1``: the
  instruction at ``(k - 1) * PAGE`` has run, so page ``k - 2``, which that half held, is
  done and fetched;
- a ``SYNC`` at index ``k * PAGE - 2``: it waits until the LoadUnit has nothing queued or
  running (the page has landed) before the sequencer takes the next instruction, in whose
  cycle the fetcher reads ``k * PAGE - 1``; ``k * PAGE`` is read only after that one is taken.

No token is involved, so the streamed tiles' load -> compute tokens keep their order.
"""
from __future__ import annotations

from ..arch.isa import Instruction, Op
from ..arch.memmap import MEM_PROGRAM
from .ir import ProgramEntry

__all__ = ["PAGE", "paginate", "paged_length"]

PAGE = 256      # instructions per page: two pages are 16 KB of program memory (4 RAMB36 at 72 bits
                # wide, the blocks 256 instructions would take too)


def paginate(entries: list, page: int = PAGE, beats: int = 1) -> list[ProgramEntry]:
    """``entries`` (ProgramEntry, the Program in order) with the page loads and waits added;
    ``beats``: external words per on-chip word (the page loads' external addresses)."""
    out: list[ProgramEntry] = []
    k = 2
    loaded = False              # page k's DMA_LOAD is in
    for i, e in enumerate(entries):
        while True:
            p = len(out)
            left = len(entries) - i
            if not loaded and p == (k - 1) * page + 1 and p + left + 2 > k * page:
                out.append(ProgramEntry(Instruction(
                    Op.DMA_LOAD, mem=MEM_PROGRAM, waddr=(k % 2) * page, length=page, ext_addr=k * page * beats,
                    comment=f"program page {k} -> half {k % 2}"), None))
                loaded = True
                continue
            if loaded and p == k * page - 2:
                out.append(ProgramEntry(Instruction(Op.SYNC, comment=f"program page {k} loaded"), None))
                loaded, k = False, k + 1
                continue
            break
        out.append(e)
    return out


def paged_length(n: int, page: int = PAGE) -> int:
    """Instructions of a paged Program of ``n`` entries (:func:`paginate`)."""
    dummy = [ProgramEntry(Instruction(Op.NOP), None)] * n
    return len(paginate(dummy, page))
