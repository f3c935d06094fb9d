"""Keep freed memory inside the process instead of handing it back to the OS (glibc only).

Why: a training step frees and allocates the same large activation buffers batch after batch.
By default glibc serves large blocks with fresh ``mmap`` pages and trims the heap's free top, so
every step pays page faults to zero that memory again. Measured on one CPU thread beside two
sweep jobs (batch 80, 69 regions, forward + backward + Adam; `benchmarks/bench_allocator.py`):
ASTGCN took about 120,000 minor page faults per step (about 0.5 GB zeroed) and its step is 1.33×
faster with freed memory kept; ST-WA 1.19×, the student 1.15×, STID 1.12×, STSGCN and ST-MLP
1.07×, the LLM teacher's fine-tuning step 1.13×; less on a quiet machine. Peak memory is unchanged:
the process keeps what it already needed once. `Trainer` calls it (Python API users get it too),
and so does every CLI command that sets its threads (`cli.common.set_threads`: the cost table's
timings included).
"""

from __future__ import annotations

import ctypes
import os
import sys

OPT_OUT = "FLOWDISTILL_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap and are reused
_TRIM_THRESHOLD = 2**31 - 1  # never give the heap's free top back

_state: bool | None = None


def retain_freed_memory() -> bool:
    """Tune glibc's allocator once per process; True if it took effect.

    A no-op (False) off Linux, on a C library without ``mallopt`` or with the environment variable
    ``FLOWDISTILL_KEEP_FREED_MEMORY=0``.
    """
    global _state
    if _state is not None:
        return _state
    _state = False
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _state = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
              and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    return _state
