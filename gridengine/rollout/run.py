"""Running a rollout: the per-city task on a Dask worker, the scheduling, and the progress display."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .._dask import start_client
from .._version import __version__
from ..config import Config
from ..errors import ConfigError, GridEngineError, InputError
from ..inputs import CityInputs
from ..plan import clean_stale
from ..progress import PLAN_STAGES, RolloutProgress
from .spec import INPUT_KINDS, CitySpec, RolloutSpec
from .split import atomic_write_text, split_if_needed
from .summary import RolloutResult, metrics_row, summary_table

__all__ = ["rollout", "plan_city_job"]

logger = logging.getLogger(__name__)

_TOPIC = "gridengine-rollout"


def _emit(city: str, stage: str) -> None:
    """Tell the client a city's stage started (a Dask event); nothing outside a worker."""
    try:
        from distributed import get_worker

        get_worker().log_event(_TOPIC, {"city": city, "stage": stage})
    except (ImportError, ValueError):  # not on a worker (called directly)
        pass
    except Exception:  # pragma: no cover - progress must never fail a plan
        pass


def plan_city_job(job: dict[str, Any]) -> dict[str, Any]:
    """Plan one city and write its plan folder; never raises for the city's own problems.

    ``job`` holds ``name``, ``config`` (a :class:`Config`), ``folder`` (the plan folder), the input
    paths (str or None) and ``previous`` (a plan folder to re-run from, or None). Returns
    ``{"city", "status": "planned" | "failed", "message", "seconds", ...summary columns}``.
    This is the task :func:`rollout` submits; it is public so a cluster can be tested with it.
    """
    from ..pipeline import plan_city

    name = job["name"]
    t0 = time.perf_counter()
    out: dict[str, Any] = {"city": name, "status": "failed", "message": "", "seconds": None}
    try:
        plan = plan_city(job["customers"], job["specialists"], job["config"], service_area=job.get("service_area"),
                         barriers=job.get("barriers"), zones=job.get("zones"), locked=job.get("locked"),
                         road_graph=job.get("road_graph"), previous=job.get("previous"),
                         progress=lambda stage: _emit(name, stage))
        _emit(name, "write")
        plan.write(job["folder"], overwrite=True)
        out.update(metrics_row(plan.metrics))
        out.update(status="planned", peak_memory_mb=plan.run.get("peak_memory_mb"))
    except GridEngineError as exc:
        out["message"] = str(exc)
    except MemoryError:
        out["message"] = "out of memory while planning this city (give its worker more memory)"
    except Exception as exc:  # an unexpected failure still fails only this city
        logger.exception("rollout: city %s failed unexpectedly", name)
        out["message"] = f"unexpected {type(exc).__name__}: {exc}"
    out["seconds"] = round(time.perf_counter() - t0, 3)
    _emit(name, "done")
    return out


def _json_norm(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _unchanged(folder: Path, job: dict[str, Any]) -> dict | None:
    """The existing plan's metrics if ``folder`` holds a complete plan of these inputs and config, else None."""
    man_path = folder / "manifest.json"
    if not man_path.is_file():
        return None
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
        if man.get("gridengine_version") != __version__:
            return None
        if _json_norm(man.get("config")) != _json_norm(job["config"].to_dict()):
            return None
        given = CityInputs(**{kind: job.get(kind) for kind in INPUT_KINDS})
        if not given.unchanged_since(man.get("inputs") or {}, job["config"]):
            return None
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _can_continue(folder: Path, config: Config) -> bool:
    """Whether a re-plan can start from the plan in ``folder`` (complete, same H3 resolution)."""
    try:
        man = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return man["config"]["cells"]["resolution"] == config.cells.resolution
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _city_size(path: str | None) -> int:
    """Rows of a customers file, cheaply (Parquet metadata; a CSV's bytes / 60), for ordering only."""
    if path is None:
        return 0
    try:
        p = Path(path)
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(p).metadata.num_rows)
        return int(p.stat().st_size // 60)
    except Exception:
        return 0


def rollout(
    spec: str | Path | RolloutSpec,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool | str | None = None,
    verbose: bool = False,
    memory_limit: str | float | None = None,
    stream: TextIO | None = None,
) -> RolloutResult:
    """Plan every city of a rollout in parallel on Dask and write the national summary.

    Parameters
    ----------
    spec
        A rollout TOML file (format in the :mod:`gridengine.rollout` docstring) or a :class:`RolloutSpec`.
    scheduler
        Address of an existing Dask scheduler (``"tcp://HOST:8786"``); ``None``: the spec's, else a
        new ``LocalCluster`` of ``n_workers`` worker processes with one thread each, closed at the end.
    n_workers
        Workers of the LocalCluster (default: the spec's ``workers``, else the CPU count).
    out
        The rollout folder (default: the spec's ``out``, else ``<spec stem>-out`` beside the spec).
    force
        Re-plan every city, even those whose complete plan is unchanged.
    progress
        ``"rich"`` (bars per stage and overall), ``"lines"`` (a log line per finished city), ``False``
        (nothing); ``None`` or ``True``: bars when ``stream`` is a terminal, else lines.
    verbose
        Also report each city's stages (lines mode) and planned cities (rich mode).
    memory_limit
        Per-worker memory limit of the LocalCluster (Dask's format, e.g. ``"8GiB"``; default: RAM / workers).
        A worker past it is restarted and its city fails with a message.
    stream
        Where progress goes (default ``sys.stderr``).

    Returns
    -------
    RolloutResult
        The summary (also in ``out/summary.csv``); failed cities are in ``result.failed``.

    Raises
    ------
    ConfigError
        The spec is invalid, or the scheduler cannot be reached.
    InputError
        A national file cannot be read (a bad per-city file fails that city only).

    Examples
    --------
    >>> import gridengine as ge
    >>> res = ge.rollout("national/rollout.toml", n_workers=2)  # doctest: +SKIP
    >>> res.summary.tail(1)  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if not isinstance(spec, RolloutSpec):
        spec = RolloutSpec.from_toml(spec)
    stream = stream if stream is not None else sys.stderr
    if out is None:
        out = spec.out
    if out is None:
        if spec.source is None:
            raise ConfigError("no rollout folder: give out=... or 'out' in the spec")
        out = spec.source.parent / f"{spec.source.stem}-out"
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    (out / "cities").mkdir(parents=True, exist_ok=True)
    scheduler = scheduler or spec.scheduler
    n_workers = n_workers or spec.workers
    mode = progress if isinstance(progress, str) else (
        "off" if progress is False else ("rich" if getattr(stream, "isatty", lambda: False)() else "lines"))
    if mode not in ("rich", "lines", "off") or (mode == "off" and progress is not False):
        raise ConfigError(f"progress must be 'rich', 'lines', True, False or None, got {progress!r}")
    reporter = RolloutProgress(mode, stream, verbose=verbose)
    say = reporter.line

    # 1. the national files, split per city (workers read their own city's file)
    named = [c.name for c in spec.cities] if spec.cities else None
    split = split_if_needed(spec, out / "work", named, say)
    cities = list(spec.cities) or [CitySpec(name=n, config=spec.config) for n in sorted(split.get("customers", {}))]
    if not cities:
        raise InputError(f"{spec.customers}: no city rows in column {spec.city_column!r}")

    # 2. jobs; cities whose complete plan is unchanged are skipped
    rows: dict[str, dict[str, Any]] = {}
    jobs: list[dict[str, Any]] = []
    for c in cities:
        folder = out / "cities" / c.name
        clean_stale(folder)  # leftovers of a killed earlier run; a plan moved aside is put back
        job: dict[str, Any] = {"name": c.name, "config": c.config, "folder": str(folder), "previous": None}
        for kind in INPUT_KINDS:
            p = getattr(c, kind)
            job[kind] = str(p.absolute()) if p is not None else split.get(kind, {}).get(c.name)
        if job["customers"] is None:
            rows[c.name] = {"city": c.name, "status": "failed", "seconds": 0.0,
                            "message": f"no rows for city {c.name!r} in {spec.customers} (column {spec.city_column!r})"}
            continue
        existing = None if force else _unchanged(folder, job)
        if existing is not None:
            rows[c.name] = {"city": c.name, "status": "skipped", "seconds": 0.0,
                            "message": "complete plan with unchanged inputs and config", **metrics_row(existing)}
            continue
        if spec.continuity and _can_continue(folder, c.config):
            job["previous"] = str(folder)
        jobs.append(job)
    if len(rows):
        n_skip = sum(r["status"] == "skipped" for r in rows.values())
        if n_skip:
            say(f"{n_skip} of {len(cities)} cities unchanged since their last complete plan: skipped")
    jobs.sort(key=lambda j: -_city_size(j["customers"]))  # largest first: the big cities set the finish time

    # 3. run the jobs on Dask
    n_used, address = 0, scheduler or "(none)"
    if jobs:
        from distributed import as_completed

        client, cluster = start_client(scheduler, n_workers, memory_limit)
        reporter.start(len(jobs))
        try:
            n_used = len(client.scheduler_info(n_workers=-1).get("workers", {})) if scheduler else (n_workers or os.cpu_count() or 1)
            address = client.scheduler.address
            reporter.line(f"planning {len(jobs)} cities on {n_used} Dask worker(s) at {address}")
            # Largest city first (longest-processing-time order sets the finish time), and one task per
            # worker thread at a time, so the order holds exactly and no task waits in a worker's queue.
            # Results are keyed by city and the summary follows the spec, so the completion order
            # changes nothing written.
            todo = list(jobs)
            futures: dict[Any, str] = {}
            running: set[str] = {j["name"] for j in jobs}
            lock = threading.Lock()

            def on_event(ev: Any) -> None:  # runs on the client's event thread
                ev = ev[1] if isinstance(ev, tuple) else ev
                if isinstance(ev, dict) and ev.get("stage") in PLAN_STAGES:
                    with lock:
                        if ev.get("city") in running:
                            reporter.stage(ev["city"], ev["stage"])

            client.subscribe_topic(_TOPIC, on_event)

            def slots() -> int:
                try:
                    return max(1, sum(client.nthreads().values()))
                except Exception:  # pragma: no cover - scheduler hiccup: keep going one task per known worker
                    return max(1, n_used)

            def submit(n: int) -> list[Any]:
                new: list[Any] = []
                while todo and len(new) < n:
                    job = todo.pop(0)
                    f = client.submit(plan_city_job, job, key=f"plan-city-{job['name']}-{time.time_ns()}",
                                      priority=len(todo), pure=False)
                    futures[f] = job["name"]
                    new.append(f)
                return new

            first = submit(slots())
            in_flight = len(first)
            done_iter = as_completed(first)
            for f in done_iter:
                in_flight -= 1
                name = futures.pop(f)
                try:
                    res = f.result()
                except Exception as exc:  # the worker died (memory) or the task could not run
                    kind = type(exc).__name__
                    msg = (f"the Dask worker planning this city died ({kind}: {exc}); most likely out of "
                           "memory: give workers more memory (memory_limit) or use fewer per machine"
                           if kind == "KilledWorker" else f"the task failed: {kind}: {exc}")
                    res = {"city": name, "status": "failed", "message": msg, "seconds": None}
                for g in submit(slots() - in_flight):
                    done_iter.add(g)
                    in_flight += 1
                with lock:
                    running.discard(name)
                    rows[name] = res
                    reporter.done(res)
        finally:
            reporter.close()
            try:
                client.close()
            finally:
                if cluster is not None:
                    cluster.close()
    elapsed = time.perf_counter() - t_start

    # 4. the national summary (spec order), written atomically
    summary = summary_table([{**{"city": c.name}, **rows[c.name]} for c in cities], elapsed)
    tmp = out / f".summary.csv.tmp-{os.getpid()}"
    summary.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, out / "summary.csv")
    info = {
        "gridengine_version": __version__, "spec": str(spec.source) if spec.source else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - elapsed)),
        "elapsed_s": round(elapsed, 3), "scheduler": address, "n_workers": n_used,
        "cities": {r["city"]: {"status": r["status"], "seconds": r["seconds"], "message": r["message"]}
                   for r in summary.iloc[:-1].to_dict("records")},
    }
    atomic_write_text(out / "rollout.json", json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")
    shutil.rmtree(out / "work" / ".tmp", ignore_errors=True)
    logger.info("rollout: %d cities in %.1fs", len(cities), elapsed)
    return RolloutResult(out=out, summary=summary, elapsed_s=elapsed, n_workers=n_used, scheduler=address)
