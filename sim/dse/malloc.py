"""Keep freed memory in the process for reuse while a sweep runs (glibc's malloc; elsewhere nothing to do).

A chunk's costing allocates and frees hundreds of temporary arrays of 0.1-2 MB. With glibc's defaults the
larger ones are mapped fresh from the kernel or the heap's top is trimmed back after each free, so every
chunk touches tens of thousands of new pages (measured: 18,000 minor page faults in one 10,496-point Mixtral
chunk, a third to half of its CPU time). `keep_freed_memory()` raises the trim threshold (freed memory stays
in the heap up to `TRIM` bytes) and the mmap threshold (arrays below `MMAP` bytes come from the heap), once
per process: the page faults per chunk drop to a few hundred. Set HWSIM_MALLOC_DEFAULTS=1 to keep the
defaults (e.g. to return memory to the system sooner in a notebook).
"""
from __future__ import annotations

import os

TRIM = 256 << 20
MMAP = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameters
_SET: list = []                                   # the one result, once tried


def keep_freed_memory() -> bool:
    """Set the thresholds once per process (a forked worker keeps them); True where they are set."""
    if not _SET:
        _SET.append(_set())
    return _SET[0]


def _set() -> bool:
    if os.environ.get("HWSIM_MALLOC_DEFAULTS", "") not in ("", "0"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
            return False
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM)) and bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP))
    except (OSError, AttributeError):
        return False
