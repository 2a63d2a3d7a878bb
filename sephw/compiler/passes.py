"""Compatibility names: the compiler's passes now live one per module (docs/isa.md,
"Pipeline"); import from those modules in new code. This module only re-exports them."""
from __future__ import annotations

from .assign_addresses import AssignAddresses
from .bands import plan_bands
from .check_legalize import SUPPORTED_NODES, CheckLegalize, check_config
from .emit_instructions import EmitInstructions, arch_config
from .ir import (ACT_ALIGN, BRAM_HEADROOM, FIELD_MAX, LUT_HEADROOM, PARAM_WORD_BYTES, TENSOR_DESC_BYTES,
                 CompileError, CompileIR, Layer, ProgramEntry, Region, Step, Tensor, Tile)
from .memory import memory_blocks, memory_geometry
from .operands import param_blocks, param_word, param_words_of, tile_cost
from .pipeline import PIPELINE, compile_ir
from .schedule_program import ScheduleProgram
from .size_engines import SizeEngines, whole_network_cycles
from .tile_layers import TileLayers

__all__ = ["ACT_ALIGN", "AssignAddresses", "BRAM_HEADROOM", "CheckLegalize", "CompileError", "CompileIR",
           "EmitInstructions", "FIELD_MAX", "LUT_HEADROOM", "Layer", "PARAM_WORD_BYTES", "PIPELINE",
           "ProgramEntry", "Region", "SUPPORTED_NODES", "ScheduleProgram", "SizeEngines", "Step",
           "TENSOR_DESC_BYTES", "Tensor", "Tile", "TileLayers", "arch_config", "check_config", "compile_ir",
           "memory_blocks", "memory_geometry", "param_blocks", "param_word", "param_words_of", "plan_bands",
           "tile_cost", "whole_network_cycles"]
