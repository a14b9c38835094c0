"""Simulation, reports, the Python API (`sim.api`) and the `hwsim` command line."""
from workloads.version import __version__  # noqa: F401
