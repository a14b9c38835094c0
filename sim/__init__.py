"""Simulation, reports and the `hwsim` command line."""
from importlib import metadata

try:
    __version__ = metadata.version("hwsim")
except metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.1.0"
