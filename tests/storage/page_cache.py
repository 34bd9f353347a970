"""Which pages of a file the page cache holds (Linux)."""

from __future__ import annotations

import ctypes
import mmap
import sys
from pathlib import Path

import pytest


def resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore on a private mapping,
    which reads the cache until it is written to)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    page = mmap.PAGESIZE
    vector = (ctypes.c_ubyte * ((size + page - 1) // page))()
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)
        try:
            if libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del start  # the mapping cannot close while a view of it exists
    return sum(byte & 1 for byte in vector)


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="mincore and fadvise: Linux")
