"""Keep freed memory in the process instead of returning it to the OS (glibc only).

Training steps allocate and free the same large activation blocks every
iteration. glibc returns blocks above 32 MiB to the OS on free, so the next
step faults every page in again: on our 2-core CPUs about a third of a VGG
feature-loss step went to page faults, and keeping the memory raised the
step's rate from 0.58 to 0.85 of the matmul rate (benchmarks/README.md). The
command-line tool does this at start; a library should not, so Python users
call :func:`keep_freed_memory` themselves or set the same ``MALLOC_*``
variables in the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks for reuse; return False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 2**31 - 1) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    return bool(ok and mallopt(_M_TOP_PAD, 256 << 20))
