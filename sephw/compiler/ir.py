"""The compiler's IR: what the passes read and write, every attribute declared with its type.

A :class:`CompileIR` starts holding the IntGraph, the board and the unit costs; each pass of
:data:`sephw.compiler.pipeline.PIPELINE` fills in the fields its contract names. Nothing is
attached to an object that its class does not declare.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from ..arch.config import ArchConfig
from ..arch.formats import PARAM_WORD, TENSOR_DESC
from ..arch.isa import WORD, Instruction, Op
from ..intgraph import (ActSpec, ConvOperand, DepthwiseConcatNode, InputNode, IntConvNode, IntGraph,
                        PatternConvNode, PoolFCNode, PRBNode, ResidualAddNode, SkipOperand)
from . import hw

if TYPE_CHECKING:
    from boards import Board


class CompileError(ValueError):
    """The model cannot be compiled for the board; the message says why, with numbers."""


# where pattern and int8 weight words live: auto (the fewest steps in external memory that let
# the rest fit; tensors spilled there too where even that does not fit), onchip, external
# (every step that can stream), spill (every step streamed and a tensor spilled at every
# segment cut: the whole external-memory path, for checking it on small networks)
PLACEMENTS = ("auto", "onchip", "external", "spill")


Node = InputNode | PatternConvNode | IntConvNode | PRBNode | ResidualAddNode | DepthwiseConcatNode | PoolFCNode
Operand = ConvOperand | SkipOperand

FIELD_MAX = {f.name: f.hi for f in WORD.fields}   # largest value of each instruction field
ACT_ALIGN = 64            # activation ring buffers start on 64-byte boundaries
PARAM_WORD_BYTES = PARAM_WORD.nbytes
TENSOR_DESC_BYTES = TENSOR_DESC.nbytes
LUT_HEADROOM = 0.85       # leave 15 % of LUT/FF for routing and the host link's growth
BRAM_HEADROOM = 0.9       # Yosys's block RAM mapping of the board top came out 3.5 blocks above the
                          # memory model on the shipped overlay (51 vs 47.5 RAMB36): keep 10 % free


def lut_limit(board, headroom: float = 1.0) -> int:
    """The LUTs a build may take on ``board``: the profile's ``lut_fill`` of the part where
    it sets one (what the board's place-and-route manages: the ULX3S, docs/timing.md), else
    ``headroom`` of it (1.0: the hard limit of a build with its memories and DRAM controller;
    ``LUT_HEADROOM``: what the sizer lets an overlay fill)."""
    return int(board.resources["lut"] * (headroom if board.lut_fill is None else board.lut_fill))


@dataclass
class Step:
    """One schedulable computation of a layer: the node's operands on one engine pass.
    A DepthwiseConcat node has one step per branch; other nodes one step."""
    operands: list[Operand]      # [a] or [a, b]
    opcode: Op
    out_c0: int                  # first output channel this step writes
    out_channels: int
    in_c0: int = 0               # depthwise branch: first input channel
    tc: int = 0                  # output channels per tile (set by SizeEngines)


@dataclass
class Layer:
    """A node of the IntGraph as the compiler sees it."""
    index: int                   # position in the IntGraph (the instructions' ``layer`` field)
    node: Node
    steps: list[Step]            # none for the input and the PoolFC
    src_a: str = ""              # first input tensor ("" for the input layer)
    src_b: str = ""              # second input tensor (src_a where there is one input)
    macs: int = 0                # useful MACs per inference (pattern + int8)
    pattern_macs: int = 0
    int8_macs: int = 0

    @property
    def name(self) -> str:
        return self.node.name


@dataclass
class Tensor:
    """A stored activation tensor: HWC bytes (one code per byte) in a ring of ``ring_rows``."""
    name: str
    id: int                      # the instructions' src/dst and the descriptor table's index
    spec: ActSpec
    producer: int                # layer index
    consumers: list[int] = field(default_factory=list)   # layer indices
    ring_rows: int = 0           # rows held on chip (TileLayers)
    base: int = -1               # byte address in the activation memory (AssignAddresses)
    live: tuple[int, int] = (0, 0)   # first and last layer index the ring is in use

    @property
    def row_bytes(self) -> int:
        return self.spec.width * self.spec.channels

    @property
    def nbytes(self) -> int:
        return self.ring_rows * self.row_bytes


@dataclass
class Tile:
    """A band x channel-group of one step (or a LOAD / POOL_FC / STORE)."""
    layer: int
    step: int
    band: int
    opcode: Op
    row0: int                    # first output row
    rows: int
    c0: int = 0                  # first output channel (absolute in the layer's output)
    tc: int = 0                  # output channels (POOL_FC: classes)
    in_row0: int = 0             # first input row read (halo included)
    in_rows: int = 0
    working_set: int = 0         # on-chip bytes the tile touches
    costs: list[hw.OpCost] = field(default_factory=list)   # per operand
    busy: dict[str, int] = field(default_factory=dict)      # unit -> busy cycles (engine model)
    cycles: int = 0              # engine-level model (hw.tile_cycles)
    flags: int = 0               # the instruction's FLAG_* bits
    length: int = 0              # LOAD / STORE bytes; DMA_LOAD on-chip words
    mem: str = ""                # DMA_LOAD: the memory it fills (operands.STREAMED)
    half: int = 0                # streamed tiles and their DMA_LOADs: the buffer half (0, 1)
    deps: int = 0                # the instruction's dependency tokens (DEP_*)


@dataclass
class Region:
    """One on-chip memory: ``words`` x ``word_bytes`` (bytes for the activation memory)."""
    name: str
    word_bytes: int
    words: int

    @property
    def nbytes(self) -> int:
        return self.word_bytes * self.words


@dataclass(frozen=True)
class StaticMemory:
    """Every on-chip memory except the activations and the program, for one engine config."""
    memory_bytes: dict[str, int] # memory -> bytes: patterns, weights, params, column_store,
                                 # tensor_table, pool_sums, host_link (report order)
    pattern_words: int
    weight_words: int
    param_words: int
    tensors: int                 # descriptor table entries
    pool_channels: int           # pooled sums (the PoolFC's input channels)
    store_chunks: int            # column-store entries
    input_bytes: int             # the host link's on-chip input buffer (0: the image is in DRAM)
    logit_bytes: int             # the host link's logit buffer
    dw_words: int = 0            # depthwise pattern memory words (the engine's depthwise mode)
    pattern_buffer: int = 0      # the last pattern memory words: the buffer streamed tiles are loaded into
    weight_buffer: int = 0       # the last weight words: the same for int8 weights
    param_buffer: int = 0        # the last parameter words: the same for streamed layers' parameters

    @property
    def total(self) -> int:
        return sum(self.memory_bytes.values())

    def buffer_base(self, mem: str, half: int = 0) -> int:
        """The first memory word (a slice for ``patterns``) of half ``half`` of ``mem``'s
        buffer for streamed tiles, which follows the memory's resident words."""
        words, buf = {"patterns": (self.pattern_words, self.pattern_buffer),
                      "weights": (self.weight_words, self.weight_buffer),
                      "params": (self.param_words, self.param_buffer)}[mem]
        return words - buf + half * (buf // 2)


@dataclass(frozen=True)
class FixedEngine:
    """Overlay sizes a caller fixes instead of the sizer's search (e.g. a small overlay for
    simulation); SizeEngines still checks that it fits the board. :meth:`from_dict` takes the
    plain ``dict`` that ``compile_graph(..., engine=...)`` accepts."""
    lanes: int                   # output channels per beat (pattern engine lanes, MAC array rows)
    pe_cin: int                  # input channels per pattern-engine beat
    mac_cols: int                # input terms per MAC beat
    packed: bool = False         # two multiplies per DSP slice (unsigned activations only)
    pp_units: int = 1            # PostProcess lanes per cycle
    column_store: bool = True    # the column store for multi-chunk stride-1 pattern operands
    depthwise: bool = True       # the pattern engine's depthwise mode, where the network has depthwise layers
    dense_kernels: bool = True   # kernels smaller than k_max stored as their k^2 taps (EngineConfig)
    weights_bram: bool = False   # the MAC array's weight memory in block RAM however shallow (EngineConfig)
    lane_pairs: bool = True      # two half-lane tiles share pattern words, where the network has them (EngineConfig)

    def __post_init__(self):
        for name in ("lanes", "pe_cin", "mac_cols", "pp_units"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CompileError(f"engine {name}={v!r}: expected a positive integer")
        for name in ("packed", "column_store", "depthwise", "dense_kernels", "weights_bram", "lane_pairs"):
            if not isinstance(getattr(self, name), bool):
                raise CompileError(f"engine {name}={getattr(self, name)!r}: expected True or False")

    @classmethod
    def from_dict(cls, d: dict) -> FixedEngine:
        """``d``'s keys are the fields' names; ``lanes``, ``pe_cin`` and ``mac_cols`` are required."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in names]
        if unknown:
            raise CompileError(f"engine: unknown key {unknown[0]!r}; the keys are {', '.join(names)}")
        missing = [n for n in ("lanes", "pe_cin", "mac_cols") if n not in d]
        if missing:
            raise CompileError(f"engine: missing {', '.join(missing)} (lanes, pe_cin and mac_cols are required)")
        return cls(**d)


@dataclass(frozen=True)
class MemoryBlocks:
    """The on-chip memories as the part maps them (:func:`~sephw.compiler.memory.memory_blocks`)."""
    block_ram: float             # block RAMs in all, in RAMB36 where Xilinx maps RAMB18 halves
    lutram_luts: int             # LUTs of the memories shallow enough for distributed RAM
    per_memory: dict[str, tuple[float, int]]   # memory -> (block RAMs, distributed-RAM LUTs)


@dataclass(frozen=True)
class ScheduleEntry:
    """One instruction as ScheduleProgram predicts it; :meth:`as_dict` is its schedule.yaml row."""
    index: int                   # position in the Program
    op: Op
    layer: str                   # the tile's layer ("" for SYNC / END)
    band: int | None             # the tile's row band (None for SYNC / END)
    start: int                   # first cycle, RTL top as built (hw.top_instruction_cycles)
    cycles: int                  # RTL top as built, load_wait included
    engine_cycles: int           # engine-level model (hw.tile_cycles; a LOAD's bytes; 1 for SYNC / END)
    units: tuple[str, ...]       # the units busy at all, sorted
    load_wait: int | None        # cycles waiting for a load: a DMA_LOAD's words, a paged Program's
                                 # first pages (None: no wait)
    busy: dict[str, int]         # unit -> busy cycles (engine-level model), units busy at all only

    def as_dict(self) -> dict:
        """schedule.yaml's row (what the plots read): the fields in order, ``op`` by name, the
        empty ones (None, "", no units, no busy unit) left out."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row.update(op=self.op.name, units=list(self.units), busy=dict(self.busy))
        return {k: v for k, v in row.items() if v not in (None, "", [], {})}


@dataclass(frozen=True)
class ProgramEntry:
    """One instruction of the Program and the tile it computes (None for SYNC / END)."""
    instruction: Instruction
    tile: Tile | None


@dataclass(frozen=True)
class PassRecord:
    """One pass as it ran: its wall time and a summary of the IR after it
    (:func:`sephw.compiler.dump.summary`)."""
    name: str                    # the pass's class name
    contract: str                # its CONTRACT
    seconds: float               # wall time of its run and invariant check
    summary: dict                # :func:`~sephw.compiler.dump.summary` of the IR after it


@dataclass
class CompileIR:
    """The whole compilation state; each field says which pass sets it."""
    graph: IntGraph              # the model (input)
    board: Board                 # the board profile (input)
    costs: hw.UnitCosts          # measured unit resources (input)
    progress: bool = False       # show progress bars
    probe: bool = False          # fit check for another board: no message, no recursion
    engine: FixedEngine | None = None   # fixed overlay sizes: no search (input)
    placement: str = "auto"      # where pattern and int8 weight words live (input, PLACEMENTS)
    budget: int = 0              # usable on-chip bytes (TileLayers)
    layers: list[Layer] = field(default_factory=list)           # one per node (CheckLegalize)
    tensors: dict[str, Tensor] = field(default_factory=dict)    # stored tensors by name (CheckLegalize)
    cfg: hw.EngineConfig | None = None    # the sized engines (SizeEngines)
    arch: ArchConfig | None = None        # the whole hardware contract (EmitInstructions)
    resources: hw.Resources | None = None # the logic (SizeEngines); with the memories and the DRAM
                                          # controller (TileLayers)
    bands: int = 0                        # row bands (TileLayers)
    band_rows: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # tensor -> (hi rows
                                          # after each band, lowest row read in each band) (TileLayers)
    streamed: frozenset = frozenset()     # (layer, step) whose pattern and int8 weight words stay in
                                          # external memory, a DMA_LOAD before each tile (TileLayers)
    anchor: str = ""                      # the tensor whose row bands drive the banded layers (TileLayers)
    spills: tuple = ()                    # tensors written to external memory as they are produced and
                                          # loaded back band by band (segment cuts, TileLayers)
    spill_addr: dict[str, int] = field(default_factory=dict)  # spilled tensor -> its first byte in
                                          # external memory (AssignAddresses)
    program_page: int = 0                 # instructions per Program page where the Program runs from
                                          # external memory (TileLayers; 0: on chip; paging.py)
    input_addr: int = 0                   # with external memory: the input image's first byte there
                                          # (AssignAddresses; sephw.arch.memmap input_base)
    static: StaticMemory | None = None    # memories besides activations and program (TileLayers)
    tiles: list[Tile] = field(default_factory=list)             # in issue order (TileLayers)
    onchip: dict[str, int] = field(default_factory=dict)        # on-chip memory -> bytes (TileLayers)
    memory_blocks: MemoryBlocks | None = None   # the memories' block RAMs and LUTs (TileLayers)
    memory: dict[str, Region] = field(default_factory=dict)     # region name -> Region (AssignAddresses)
    words: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (layer, step, operand) -> first
                                          # pattern or weight word (AssignAddresses)
    ext_addr: dict[tuple[int, int, str], int] = field(default_factory=dict)  # (layer, step, memory) ->
                                          # first external word of a streamed step's blocks (AssignAddresses)
    external: Region | None = None        # the external image, in external words (AssignAddresses)
    prm_base: dict[int, int] = field(default_factory=dict)      # layer -> first param word (AssignAddresses)
    pool_weight_word: int = 0             # first weight word of the FC (AssignAddresses)
    program: list[ProgramEntry] = field(default_factory=list)   # the Program (EmitInstructions)
    schedule: list[ScheduleEntry] = field(default_factory=list)  # one per instruction (ScheduleProgram;
                                          # written to schedule.yaml)
    cycles: int = 0              # per inference, RTL top as built (hw.top_instruction_cycles)
    engine_cycles: int = 0       # per inference, engine-level model (hw.tile_cycles)
    passes: list[PassRecord] = field(default_factory=list)      # time and summary per pass run (compile_ir)

    @property
    def instructions(self) -> list[Instruction]:
        """The Program's instructions in order (without their tiles)."""
        return [e.instruction for e in self.program]
