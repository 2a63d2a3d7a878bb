"""sephw host runtime: the framed link protocol, transports (serial port, simulated board) and
the device API (docs/protocol.md)."""
