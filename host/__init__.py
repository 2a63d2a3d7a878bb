"""sephw host runtime: the framed link protocol, transports (serial port; the simulated board is sim/simboard.py) and
the device API (docs/protocol.md)."""
