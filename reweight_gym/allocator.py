"""CPU allocator tuning: keep freed activation memory in the heap instead of unmapping it.

glibc's ``malloc`` serves blocks above a self-adjusting mmap threshold (128 KiB, raised up to
32 MiB as mmapped blocks are freed) with ``mmap``, and returns freed memory at the top of the heap
to the kernel once it exceeds the trim threshold (twice the mmap threshold). A training iteration
frees and re-allocates tens of MiB of activations and gradients, so with these defaults every
iteration page-faults part of them in again; meta-gradient methods, with three passes and a
retained graph, suffer most (``benchmarks/baseline_overhead.py`` measures it).

:func:`tune_cpu_allocator` sets, with ``mallopt``, the mmap threshold to 32 MiB (the ceiling of
glibc's own adjustment), the trim threshold to 1 GiB and the top pad to 64 MiB -- the same as
the environment variables ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_`` that CPU tuning guides for PyTorch recommend (or an ``LD_PRELOAD`` of
jemalloc/tcmalloc). The price is resident memory: up to 1 GiB of freed memory can stay in each
heap instead of being returned to the kernel.

The settings are process-wide (every later allocation of the process, not only training), so
the package never applies them behind a caller's back: the processes it starts call
:func:`tune_cpu_allocator` first -- the ``reweight-gym`` command (every sub-command), the
benchmark's worker processes (isolated subprocesses and Ray tasks) and the SB3 subprocess-env
workers of ``reweight-gym train``. A program that makes environments with ``gymnasium.make``
opts in with ``reweight_gym.tune_cpu_allocator()``. ``REWEIGHT_GYM_MALLOC=default`` opts out
(read at the first call; a later change takes effect in a new process). It is also skipped when
the user configured malloc (any of the three ``MALLOC_*_`` variables, or ``glibc.malloc``
tunables in ``GLIBC_TUNABLES``), when another allocator is preloaded (``LD_PRELOAD`` naming a
``malloc`` library: jemalloc, tcmalloc, mimalloc, ...), and when the C library is not glibc.
"""

from __future__ import annotations

import os
import platform
import warnings

ENV_VAR = "REWEIGHT_GYM_MALLOC"
MODES = ("tuned", "default")
# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
USER_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state: dict[str, str] = {}


def allocator_mode() -> str:
    """``REWEIGHT_GYM_MALLOC`` (``tuned`` unless set), validated (the environment calls it
    when it is made, so a bad value fails early in every process)."""
    mode = os.environ.get(ENV_VAR, "tuned").strip().lower() or "tuned"
    if mode not in MODES:
        raise ValueError(f"invalid environment variable {ENV_VAR}={mode!r}: allowed: "
                         f"{', '.join(MODES)}")
    return mode


def tune_cpu_allocator() -> str:
    """Apply the glibc settings above once per process; returns what happened: ``"tuned"``,
    or why not (``"opted out"``, ``"user settings"``, ``"preloaded allocator"``,
    ``"not glibc"``, ``"mallopt failed"``). Later calls return the first call's answer (and
    warn if ``REWEIGHT_GYM_MALLOC=default`` is asked for after the process was tuned)."""
    mode = allocator_mode()
    if "result" not in _state:
        _state["result"] = _apply(mode)
    elif mode == "default" and _state["result"] == "tuned":
        warnings.warn(f"{ENV_VAR}=default has no effect: malloc was already tuned in this "
                      "process; set it before the process starts training", stacklevel=2)
    return _state["result"]


def is_glibc() -> bool:
    """Linux with the GNU C library (the only one whose ``mallopt`` this module sets)."""
    if platform.system() != "Linux":
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):  # musl and others: no such name
        return False


def _apply(mode: str) -> str:
    if mode == "default":
        return "opted out"
    if any(v in os.environ for v in USER_VARS) or \
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "user settings"
    if "malloc" in os.environ.get("LD_PRELOAD", ""):
        return "preloaded allocator"
    if not is_glibc():
        return "not glibc"
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (ImportError, OSError, AttributeError):
        return "not glibc"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    results = [mallopt(param, value) for param, value in SETTINGS]  # all of them, in order
    return "tuned" if all(r == 1 for r in results) else "mallopt failed"
