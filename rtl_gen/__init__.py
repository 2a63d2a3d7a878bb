"""Amaranth generators for the sephw overlay: compute engines, memories, sequencer, top level.

Engines (each a :class:`amaranth.lib.wiring.Component` with :mod:`amaranth.lib.stream` ports):

- :class:`rtl_gen.pattern.PatternEngine`: binarized k×k convolution, XNOR/AND-popcount over
  activation bit-planes (LUT logic, no multipliers).
- :class:`rtl_gen.macarray.MacArray`: int8 × uint8 multiply-accumulate array on DSP slices
  (optionally two MACs per DSP48E1).
- :class:`rtl_gen.postprocess.PostProcess`: the fused requantization rule of docs/numerics.md.
- :class:`rtl_gen.top.Accelerator`: the accelerator top: sequencer running a compiled Program
  over the engines and the on-chip memories.
- :class:`rtl_gen.uart.UartTx` / :class:`rtl_gen.uart.UartRx`: 8N1 UART with a fractional baud
  generator.
- :class:`rtl_gen.hostlink.HostLink`: the host link of docs/protocol.md around the accelerator
  top (frame receiver, command executor, reply builder).
- :class:`rtl_gen.board.BoardTop`: HostLink on an amaranth-boards platform (clock, UART pins,
  LEDs); :mod:`rtl_gen.synth`: Yosys synth_xilinx resource counts.
"""
