"""startup/heap.py: a training step reuses the heap pages the step before it freed."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

glibc = pytest.mark.skipif(
    not (hasattr(os, "confstr") and os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="glibc's mallopt")

# A worker thread (as a backend's kernels run on) allocates 16 MB in 1 MB blocks,
# writes them, frees them, six times: the page faults of each round.
PROBE = """
import ctypes, json, resource, sys, threading
sys.path.insert(0, {root!r})
from startup.heap import keep_freed_memory
was_set = keep_freed_memory() if {pad!r} else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
faults = []
def step():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc(1 << 20) for _ in range(16)]
        for b in blocks:
            libc.memset(b, 1, 1 << 20)
        for b in blocks:
            libc.free(b)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=step)
worker.start()
worker.join()
print(json.dumps({{"set": was_set, "faults": faults}}))
"""


def _probe(pad: bool, **env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"} | env
    result = subprocess.run([sys.executable, "-c", PROBE.format(root=ROOT, pad=pad)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@glibc
def test_freed_step_memory_is_reused_without_page_faults():
    """16 MB is 4096 pages: glibc's defaults fault them in every round; once the
    heap keeps its padding, only the first round does."""
    plain = _probe(pad=False)["faults"]
    padded = _probe(pad=True)
    assert padded["set"] is True
    assert min(plain[1:]) > 2000, plain          # the control: defaults do fault
    assert padded["faults"][0] > 2000, padded    # the first round must fault
    assert sum(padded["faults"][1:]) < 500, padded


@glibc
def test_a_users_own_malloc_settings_win():
    seen = _probe(pad=True, MALLOC_ARENA_MAX="2")
    assert seen["set"] is False
    assert min(seen["faults"][1:]) > 2000, seen


def test_start_up_sets_it_before_the_backend_loads():
    """startup.start (main.py's first call) sets the padding before Keras loads."""
    code = ("import sys; sys.path.insert(0, {root!r}); import startup.heap as h; "
            "calls = []; h.keep_freed_memory = lambda: calls.append('keras' in sys.modules); "
            "import startup; startup.start([], 'jax'); "
            "print(calls, 'keras' in sys.modules)").format(root=ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[False]", "True"]
