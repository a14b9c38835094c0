"""hwsim's version (the installed package's, else the checkout's), kept at the bottom of the data flow so
every layer can record it (template cache keys, output files)."""
from importlib import metadata

try:
    __version__ = metadata.version("hwsim")
except metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.1.0"
