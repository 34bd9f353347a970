"""Which pages of a file the page cache holds (Linux)."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import uuid
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


def drops_written_pages(folder: Path) -> bool:
    """Whether fsync and POSIX_FADV_DONTNEED free a file's cached pages in `folder`: not on
    tmpfs (a /tmp of some systems), whose pages are the file itself."""
    probe = folder / f"probe-{uuid.uuid4()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, bytes(mmap.PAGESIZE))
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    try:
        return resident_pages(probe) == 0
    finally:
        probe.unlink()
