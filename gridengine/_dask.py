"""The Dask client the rollout and the visits share: an existing scheduler, or a local cluster."""

from __future__ import annotations

import logging
import os
from typing import Any

from .errors import ConfigError

__all__ = ["start_client"]


def start_client(scheduler: str | None, n_workers: int | None, memory_limit: str | float | None) -> tuple[Any, Any]:
    """A Dask client: connected to ``scheduler``, or to a new LocalCluster (worker processes, 1 thread each).

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``"tcp://HOST:8786"``); ``None``: start a LocalCluster.
    n_workers
        Worker processes of the LocalCluster (default: the CPU count).
    memory_limit
        Per-worker memory limit of the LocalCluster (Dask's format); ``None``: RAM / workers.

    Returns
    -------
    tuple
        ``(client, cluster)``; ``cluster`` is None when connected to ``scheduler``. Close both when done.

    Raises
    ------
    ConfigError
        The scheduler cannot be reached.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    n = n_workers or max(1, os.cpu_count() or 1)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,  # a task that kills its worker: fail fast
                          "distributed.admin.system-monitor.gil.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit=memory_limit if memory_limit is not None else "auto",
                               silence_logs=logging.ERROR)
    return Client(cluster), cluster
