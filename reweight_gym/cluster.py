"""Ray clusters: connect to one, or start a local instance (the benchmark's ``--ray``, RLlib
training's ``--address``). Ray is imported when a connection is made, never before."""

from __future__ import annotations

import os
import socket
from typing import Any


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """``None`` if a TCP connection to the ``host:port`` of ``address`` opens, else why not."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return "expected HOST:PORT, ray://HOST:PORT or auto"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except OSError as e:
        return e.strerror or str(e)


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or else start a local
    instance (``num_cpus`` CPUs, default all); nothing if Ray is already initialised. The
    benchmark's ``--ray [ADDRESS]`` and ``reweight-gym train --lib rllib --address`` use it.

    A local instance starts its workers at niceness 0 (Ray's default is 15) unless
    ``RAY_worker_niceness`` is set. Connecting passes no resources (Ray refuses them for an
    existing cluster: its nodes declared theirs at ``ray start``). An unreachable address is a
    one-line ``ValueError`` naming it, at once (``ray.init`` itself keeps retrying it for
    minutes)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        # Ray starts its workers at niceness 15; here the workers are the work (env runners are
        # training runs, benchmark tasks are runs), and on a loaded machine niced workers starve.
        # A value set by the user is kept.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return
    why = None if address == "auto" else _unreachable(address)
    if why is not None:
        raise ValueError(f"cannot reach the Ray cluster at {address!r}: {why} (start it with "
                         "`ray start --head`, or check the address and port)")
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise ValueError(f"cannot connect to the Ray cluster at {address!r}: "
                         f"{' '.join(str(e).split())}") from None


