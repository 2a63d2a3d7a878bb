"""sephw: FPGA hardware generation and co-design for SEP-Nets."""
__version__ = "0.1.0"
