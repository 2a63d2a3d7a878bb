"""Amaranth generators for the sephw overlay: compute engines, memories, sequencer, top level.

Engines (each a :class:`amaranth.lib.wiring.Component` with :mod:`amaranth.lib.stream` ports):

- :class:`rtl_gen.pattern.PatternEngine`: binarized k×k convolution, XNOR/AND-popcount over
  activation bit-planes (LUT logic, no multipliers).
- :class:`rtl_gen.macarray.MacArray`: int8 × uint8 multiply-accumulate array on DSP slices
  (optionally two MACs per DSP48E1).
- :class:`rtl_gen.postprocess.PostProcess`: the fused requantization rule of docs/numerics.md.
- The overlay's units, one file each (latency and throughput in each docstring):
  :mod:`rtl_gen.fetch` (FetchDecode), :mod:`rtl_gen.gather` (Gather), :mod:`rtl_gen.writer`
  (Writer), :mod:`rtl_gen.poolfc` (PoolFC), :mod:`rtl_gen.hostio` (Load, Store),
  :mod:`rtl_gen.actmem` (ActivationMemory), :mod:`rtl_gen.rowaddr` (the shared RowAddress).
- :class:`rtl_gen.top.Accelerator`: the accelerator top: the memories, the units and the
  sequencer running a compiled Program over them.
- :class:`rtl_gen.uart.UartTx` / :class:`rtl_gen.uart.UartRx`: 8N1 UART with a fractional baud
  generator.
- :class:`rtl_gen.hostlink.HostLink`: the host link of docs/protocol.md (frame receiver,
  command executor, reply builder), driving the accelerator's control port
  (:mod:`rtl_gen.control`); :class:`rtl_gen.system.System` wires the two as siblings.
- :class:`rtl_gen.board.BoardTop`: the System on an amaranth-boards platform (clock, UART pins,
  LEDs); :mod:`rtl_gen.synth`: Yosys synth_xilinx resource counts.
"""
