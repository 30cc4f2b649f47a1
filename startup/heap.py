"""Keeps a training step's freed memory in the C heap for the next step (glibc).

A training step allocates its activations and gradients with ``malloc`` on the
backend's worker threads (XLA's CPU runtime on jax, TensorFlow's and PyTorch's
kernels) and frees them when the step ends. glibc hands the free top of each
thread's heap back to the kernel at once (it keeps 128 KB), so the next step
faults the same pages in again, zero-filled by the kernel: in a 200-step jax VAE
process that was 1.7 million page faults and 9 s of system time, a third of the
process. Keeping 64 MB at the top of each heap (``M_TOP_PAD``) and serving blocks
up to 32 MB from the heap rather than from fresh ``mmap`` s
(``M_MMAP_THRESHOLD``, glibc's own upper bound) removes nearly all of them: the
jax VAE step went from ~85 to ~50 ms, for ~100 MB more resident memory
(``benchmarks/results/whole_process.md``).

A user's own ``MALLOC_*`` variables or ``GLIBC_TUNABLES`` win; other C
libraries (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os

M_TOP_PAD = -2          # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
TOP_PAD_BYTES = 64 << 20
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a glibc system
        return False


def keep_freed_memory() -> bool:
    """Sets glibc's heap padding for this process; True when it was set."""
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    if not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES)) and bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
