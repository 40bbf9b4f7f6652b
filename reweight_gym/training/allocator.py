"""CPU allocator tuning: keep freed activation memory in the heap instead of unmapping it.

glibc's ``malloc`` serves blocks above a (dynamic, at most 32 MiB) threshold with ``mmap`` and
returns freed memory at the top of the heap to the kernel once it exceeds the trim threshold.
A training iteration frees and re-allocates tens of MiB of activations and gradients, so with
the defaults every iteration page-faults them in again: measured here, 0.9 million minor faults
in 100 small-CNN iterations, and the zero-fill of a max-pool gradient (6.5 MB) took up to 20 ms
instead of ~1 ms. Meta-gradient methods, with three passes and a retained graph, suffer most.

:func:`tune_cpu_allocator` sets the mmap threshold to 32 MiB (the glibc maximum), the trim
threshold to 1 GiB and the top pad to 64 MiB with ``mallopt`` -- the same as the environment
variables ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` that CPU
tuning guides for PyTorch recommend (or an ``LD_PRELOAD`` of jemalloc/tcmalloc). Measured: minor
faults 0.70 M -> 0.15 M, a plain small-CNN iteration ~10% and an MW-Net iteration ~15% faster,
peak RSS +4%. ``DuplicateTrainer`` calls it once per process when it trains on the CPU.

Opt out with ``REWEIGHT_GYM_MALLOC=default``. It is also skipped when any of the three
``MALLOC_*_`` variables is set (the user's choice wins), when the C library is not glibc, and
when an allocator is preloaded (``LD_PRELOAD`` names jemalloc or tcmalloc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV_VAR = "REWEIGHT_GYM_MALLOC"
MODES = ("tuned", "default")
# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
USER_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state: dict[str, str] = {}


def allocator_mode() -> str:
    """``REWEIGHT_GYM_MALLOC`` (``tuned`` unless set), validated."""
    mode = os.environ.get(ENV_VAR, "tuned").strip().lower() or "tuned"
    if mode not in MODES:
        raise ValueError(f"invalid environment variable {ENV_VAR}={mode!r}: allowed: "
                         f"{', '.join(MODES)}")
    return mode


def tune_cpu_allocator() -> str:
    """Apply the glibc settings above once per process; returns what happened: ``"tuned"``,
    or why not (``"opted out"``, ``"user settings"``, ``"preloaded allocator"``,
    ``"not glibc"``). Later calls return the first call's answer."""
    if "result" in _state:
        return _state["result"]
    result = _apply()
    _state["result"] = result
    return result


def _apply() -> str:
    if allocator_mode() == "default":
        return "opted out"
    if any(v in os.environ for v in USER_VARS):
        return "user settings"
    preload = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload:
        return "preloaded allocator"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "not glibc"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return "tuned" if ok else "not glibc"
