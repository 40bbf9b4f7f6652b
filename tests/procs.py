"""Processes a test started in a session of its own: list them, kill them (by pid)."""

from __future__ import annotations

import os
import signal
import time


def session_pids(sid: int) -> list[int]:
    """The live processes of the session ``sid`` (a command started with
    ``start_new_session=True`` and everything it started); zombies are dead already."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d))
    return pids


def kill_session(sid: int, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> list[int]:
    """Send ``sig`` to every process of the session until none is left (processes may fork
    while we kill), at most ``timeout_s``; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    while session_pids(sid) and time.monotonic() < deadline:
        for pid in session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return session_pids(sid)
