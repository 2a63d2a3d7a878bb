"""cocotb testbenches and simulator runner helpers (Verilator by default, Icarus with SIM=icarus)."""
