"""Peak memory of long extractions: keep glibc's heap from holding on to freed model buffers.

glibc serves allocations above its mmap threshold (128 KiB) with mmap, returned to the system
when freed, but raises that threshold each time such a block is freed, up to 32 MiB; from then
on the model's per-batch buffers (attention scores, hidden states: MBs each) come from the
heap, which fragments and keeps growing batch after batch. Measured with bench/memory.py:
whisper-base on one 10-minute clip peaked at 1814 MiB against 1536 MiB for a 4-minute clip
(the same batch of 8 windows); with the threshold held at 128 KiB, 1512 MiB. Holding it fixed
(``mallopt(M_MMAP_THRESHOLD)``) makes peak memory follow the batch, not the clip length.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, no longer raised on free


def hold_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold for this process (once; a no-op off glibc, or when the user
    set ``MALLOC_MMAP_THRESHOLD_`` themselves). Returns whether it is held."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        ok = False
    log.debug("glibc mmap threshold held at %d bytes: %s", MMAP_THRESHOLD_BYTES, ok)
    return ok
