"""The flows: the commands that compose the compiler, the RTL generator, the simulators and
the host driver (DESIGN.md: ``flows/cli -> {compiler, rtl_gen, sim, host} -> arch``)."""
