"""City-by-city rollout at national scale: many per-city plans in parallel on Dask distributed.

:func:`rollout` plans every city of a rollout spec with :func:`gridengine.plan_city`, one Dask task
per city, on a ``LocalCluster`` (worker processes, one thread each) by default or on an existing
cluster (``scheduler="tcp://HOST:PORT"``). Each city's plan is written atomically to
``OUT/cities/<name>/`` by the worker that planned it; the national summary goes to
``OUT/summary.csv`` (and ``OUT/rollout.json``).

* **Failure isolation**: a city whose input is bad (or whose worker dies) fails alone, with its
  message in the summary; the other cities finish.
* **Resume**: a city whose plan folder is complete (has ``manifest.json``) and whose input file
  SHA-256 hashes, config and gridengine version equal the manifest's is skipped. A killed rollout
  leaves each city either complete or absent (plans are written to a hidden temporary folder and
  renamed), so re-running the same command finishes the rest.
* **Re-runs**: a city whose inputs or config changed is re-planned *from its existing plan*
  (``previous``, as ``gridengine plan --previous``), so customers stay with their specialist and
  the summary reports churn (``continuity = false`` plans from scratch).

Rollout TOML
------------
Paths are relative to the TOML file's folder. Every key but ``[[city]]`` ``name`` is optional::

    out = "out/rollout-2026-11"   # rollout folder (default: "<spec stem>-out" beside the spec)
    config = "base.toml"          # base config file, or an inline [config] table (below)
    workers = 2                   # LocalCluster workers (default: CPU count); CLI --workers wins
    scheduler = "tcp://10.0.0.5:8786"  # an existing cluster; CLI --scheduler wins
    continuity = true             # changed cities re-plan from their previous plan (churn)

    # one national customers file (CSV or Parquet) split by a city column (optional):
    customers = "national/customers.parquet"
    specialists = "national/specialists.csv"   # a national roster, also split (optional)
    city_column = "city"

    [config]                      # the base config, as in a config TOML (seed, [config.partition], ...)
    seed = 0
    [config.partition]
    capacity = 1000.0

    [[city]]
    name = "shanghai"             # folder name of the plan: letters, digits, '-', '_' and '.'
    customers = "shanghai/customers.parquet"   # omitted: the city's rows of the national file
    specialists = "shanghai/specialists.csv"   # omitted: the national roster's rows, else no roster
    service_area = "shanghai/service_area.geojson"
    barriers = "shanghai/rivers.geojson"
    zones = "shanghai/streets.geojson"
    config = "shanghai.toml"      # this city's config file instead of the base
    capacity = 800.0              # overrides of the city's config
    resolution = 10
    k = 120
    seed = 3

With a national file and no ``[[city]]`` table, every value of the city column is a city.
The national file is split once into ``OUT/work/<name>/customers.parquet`` (streamed in batches,
never whole in memory; reused while the national file's hash is unchanged): workers read their
city's file from disk, so no large table goes through the scheduler. Reject rows then number the
rows of the city's split file.

On a multi-machine cluster, every worker needs gridengine installed (same version) and must see
the input files and ``OUT`` at the same paths (a shared file system); start the scheduler with
``dask scheduler``, workers with ``dask worker tcp://HOST:8786 --nthreads 1`` (one thread per
process: planning is CPU-bound Python), then run ``gridengine rollout spec.toml --scheduler
tcp://HOST:8786``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from ._version import __version__
from .config import Config, read_toml
from .errors import ConfigError, GridEngineError, InputError
from .progress import PLAN_STAGES

__all__ = ["CitySpec", "RolloutSpec", "RolloutResult", "rollout", "split_national", "SUMMARY_COLUMNS"]

logger = logging.getLogger(__name__)

#: Columns of ``summary.csv`` (one row per city, then a ``TOTAL`` row).
SUMMARY_COLUMNS = (
    "city", "status", "customers", "rejected", "workload", "grids", "staffed_grids", "unstaffed_grids",
    "specialists", "spare_specialists", "specialists_missing", "coverage", "balance_max_dev", "within_5pct",
    "churn", "customers_moved", "seconds", "message",
)
_TOPIC = "gridengine-rollout"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
_TOP_KEYS = {"out", "config", "workers", "scheduler", "continuity", "customers", "specialists", "city_column", "city"}
_CITY_KEYS = {"name", "customers", "specialists", "service_area", "barriers", "zones", "config", "capacity",
              "resolution", "k", "seed"}
_INPUT_KINDS = ("customers", "specialists", "service_area", "barriers", "zones")


# --------------------------------------------------------------------------------------------- #
# The spec                                                                                       #
# --------------------------------------------------------------------------------------------- #


@dataclass(frozen=True)
class CitySpec:
    """One city of a rollout.

    Parameters
    ----------
    name
        The city's name, also its plan folder's name.
    config
        The city's full config (base config with the city's overrides).
    customers
        Its customers file; ``None``: its rows of the rollout's national file.
    specialists
        Its roster file; ``None``: its rows of the national roster, or no roster (staffing need only).
    service_area, barriers, zones
        Optional geometry files, as for :func:`gridengine.plan_city`.
    """

    name: str
    config: Config = field(default_factory=Config)
    customers: Path | None = None
    specialists: Path | None = None
    service_area: Path | None = None
    barriers: Path | None = None
    zones: Path | None = None


@dataclass(frozen=True)
class RolloutSpec:
    """A rollout: cities, where their inputs are, and the defaults.

    Parameters
    ----------
    cities
        The cities, in the order of the summary. Empty with a national file: every city in it.
    out
        The rollout folder (``cities/``, ``work/``, ``summary.csv``); ``None``: given to :func:`rollout`.
    customers, specialists
        Optional national files holding many cities' rows, told apart by ``city_column``.
    city_column
        The column naming each row's city in the national files.
    config
        Base config of cities built from the national file alone.
    continuity
        A city whose inputs changed is re-planned from its existing plan (churn reported).
    workers, scheduler
        Defaults for :func:`rollout`'s ``n_workers`` and ``scheduler``.
    source
        The TOML file it was read from, if any.
    """

    cities: tuple[CitySpec, ...] = ()
    out: Path | None = None
    customers: Path | None = None
    specialists: Path | None = None
    city_column: str = "city"
    config: Config = field(default_factory=Config)
    continuity: bool = True
    workers: int | None = None
    scheduler: str | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.cities]
        for n in names:
            if not isinstance(n, str) or not _NAME_RE.match(n) or n in (".", ".."):
                raise ConfigError(f"city name {n!r} cannot be a folder name (use letters, digits, '-', '_', '.')")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"city {dup[0]!r} is listed more than once")
        if not self.cities and self.customers is None:
            raise ConfigError("the rollout has no city: add [[city]] tables or a national customers file")
        for c in self.cities:
            if c.customers is None and self.customers is None:
                raise ConfigError(f"city {c.name!r}: no customers file, and the rollout has no national customers file")
        if self.workers is not None and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                         or self.workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {self.workers!r}")

    @classmethod
    def from_toml(cls, path: str | Path) -> "RolloutSpec":
        """Read a rollout TOML file (format in the module docstring).

        Raises
        ------
        ConfigError
            Missing file, invalid TOML, unknown keys or wrong types; the message starts with the file name.
        """
        path = Path(path)
        data = read_toml(path, "rollout")
        try:
            return cls.from_dict(data, base=path.parent, source=path)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: str | Path = ".", source: Path | None = None) -> "RolloutSpec":
        """Build a spec from the TOML structure; relative paths are taken from ``base``."""
        base = Path(base)
        if not isinstance(data, dict):
            raise ConfigError("a rollout spec must be a table")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")

        def path_of(value: Any, key: str, where: str = "") -> Path | None:
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}{key} must be a file path (a string), got {value!r}")
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        def config_of(value: Any, where: str) -> Config:
            if isinstance(value, dict):
                return Config.from_dict(value)
            p = path_of(value, "config", where)
            return Config.from_toml(p) if p is not None else Config()

        base_cfg = config_of(data.get("config"), "")
        cities = []
        raw_cities = data.get("city", [])
        if not isinstance(raw_cities, list):
            raise ConfigError("city must be an array of tables ([[city]])")
        for i, c in enumerate(raw_cities):
            if not isinstance(c, dict):
                raise ConfigError(f"city #{i + 1} must be a table")
            where = f"city {c.get('name', '#' + str(i + 1))!r}: "
            unknown = sorted(set(c) - _CITY_KEYS)
            if unknown:
                raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_CITY_KEYS))}")
            if "name" not in c:
                raise ConfigError(f"city #{i + 1} has no name")
            if not isinstance(c["name"], str):
                raise ConfigError(f"city #{i + 1}: name must be a string, got {c['name']!r}")
            try:
                cfg = config_of(c["config"], where) if "config" in c else base_cfg
                cfg = _override(cfg, capacity=c.get("capacity"), resolution=c.get("resolution"), k=c.get("k"),
                                seed=c.get("seed"))
            except ConfigError as exc:
                raise ConfigError(f"{where}{exc}") from None
            cities.append(CitySpec(name=c["name"], config=cfg, **{k: path_of(c.get(k), k, where) for k in _INPUT_KINDS}))
        col = data.get("city_column", "city")
        if not isinstance(col, str) or not col:
            raise ConfigError(f"city_column must be a column name, got {col!r}")
        cont = data.get("continuity", True)
        if not isinstance(cont, bool):
            raise ConfigError(f"continuity must be true or false, got {cont!r}")
        sched = data.get("scheduler")
        if sched is not None and not isinstance(sched, str):
            raise ConfigError(f"scheduler must be an address string, got {sched!r}")
        return cls(cities=tuple(cities), out=path_of(data.get("out"), "out"), customers=path_of(data.get("customers"), "customers"),
                   specialists=path_of(data.get("specialists"), "specialists"), city_column=col, config=base_cfg,
                   continuity=cont, workers=data.get("workers"), scheduler=sched, source=source)


def _override(cfg: Config, *, capacity: Any = None, resolution: Any = None, k: Any = None, seed: Any = None) -> Config:
    """The config with a city's overrides (checked by the config classes)."""
    def number(v: Any, name: str, kind: type) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int):
            raise ConfigError(f"{name} must be {'a number' if kind is float else 'an integer'}, got {v!r}")
        return kind(v)

    if capacity is not None:
        cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, capacity=number(capacity, "capacity", float)))
    if k is not None:
        cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, k=number(k, "k", int)))
    if resolution is not None:
        cfg = cfg.replace(cells=dataclasses.replace(cfg.cells, resolution=number(resolution, "resolution", int)))
    if seed is not None:
        cfg = cfg.replace(seed=number(seed, "seed", int))
    return cfg


# --------------------------------------------------------------------------------------------- #
# Splitting a national file                                                                      #
# --------------------------------------------------------------------------------------------- #


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str | None:
    from .ingest import file_sha256

    return file_sha256(path) if path.is_file() else None


def _batches(path: Path, column: str, batch_rows: int):
    """Record batches of a national CSV (every column as text) or Parquet file (as typed)."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})", path=str(path)) from None
        if column not in pf.schema_arrow.names:
            raise InputError(f"{path}: no column {column!r} naming each row's city", path=str(path), field=column)
        yield from pf.iter_batches(batch_size=batch_rows)
        return
    import pyarrow.csv as pcsv

    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    names = [h.strip() for h in header.split(",")]
    if column not in names:
        raise InputError(f"{path}: no column {column!r} naming each row's city (a national CSV must be UTF-8, "
                         "comma-separated)", path=str(path), field=column)
    try:
        reader = pcsv.open_csv(
            path, read_options=pcsv.ReadOptions(block_size=64 << 20),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=False))
        yield from reader
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: cannot be read as CSV: {exc}", path=str(path)) from None


def split_national(path: str | Path, folder: str | Path, *, column: str = "city", kind: str = "customers",
                   cities: Sequence[str] | None = None, batch_rows: int = 1 << 20) -> dict[str, int]:
    """Split a national file by its city column into ``folder/<city>/<kind>.parquet``, streaming.

    The file is read in batches of ``batch_rows`` rows (a Parquet file by batches, a CSV file by
    blocks, every CSV column as text, so validation later sees what was written); each city's rows
    are appended to its own Parquet file, so memory holds a batch and small per-city buffers, never
    the whole file. The city column is dropped. Files are written under a temporary name and
    renamed when complete. The output bytes depend only on the input, so an unchanged city's file
    keeps its hash and its plan is not redone.

    Parameters
    ----------
    path
        The national CSV or Parquet file.
    folder
        Where the per-city folders go.
    column
        The city column.
    kind
        File stem (``"customers"``, ``"specialists"``).
    cities
        Keep only these cities (rows of others are counted and logged); ``None``: every city.
    batch_rows
        Rows per read batch.

    Returns
    -------
    dict
        City name -> rows written (cities without rows are absent).

    Raises
    ------
    InputError
        The file cannot be read or lacks the city column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path, folder = Path(path), Path(folder)
    if not path.is_file():
        raise InputError(f"{path}: file not found", path=str(path))
    keep = None if cities is None else set(cities)
    writers: dict[str, Any] = {}
    buffers: dict[str, list] = {}
    buffered: dict[str, int] = {}
    counts: dict[str, int] = {}
    ignored: dict[str, int] = {}
    flush_rows = 1 << 18
    schema = None

    def flush(name: str) -> None:
        if not buffers.get(name):
            return
        table = pa.Table.from_batches(buffers[name], schema=schema)
        if name not in writers:
            (folder / name).mkdir(parents=True, exist_ok=True)
            writers[name] = pq.ParquetWriter(folder / name / f".{kind}.parquet.tmp", schema)
        writers[name].write_table(table, row_group_size=1 << 20)
        buffers[name], buffered[name] = [], 0

    try:
        for batch in _batches(path, column, batch_rows):
            if batch.num_rows == 0:
                continue
            city_col = pc.cast(batch.column(column), pa.string())
            rest = batch.drop_columns([column]) if hasattr(batch, "drop_columns") else \
                pa.RecordBatch.from_arrays([batch.column(i) for i, n in enumerate(batch.schema.names) if n != column],
                                           names=[n for n in batch.schema.names if n != column])
            if schema is None:
                schema = rest.schema
            elif rest.schema != schema:  # CSV blocks always agree; Parquet batches share the file schema
                rest = rest.cast(schema)
            for value in pc.unique(city_col).to_pylist():
                mask = pc.equal(city_col, value) if value is not None else pc.is_null(city_col)
                n = int(pc.sum(mask).as_py() or 0)
                name = "" if value is None else str(value).strip()
                if not name or (keep is not None and name not in keep) or not _NAME_RE.match(name):
                    ignored[name or "<empty>"] = ignored.get(name or "<empty>", 0) + n
                    continue
                buffers.setdefault(name, []).append(rest.filter(mask))
                buffered[name] = buffered.get(name, 0) + n
                counts[name] = counts.get(name, 0) + n
                if buffered[name] >= flush_rows:
                    flush(name)
        for name in list(buffers):
            flush(name)
        for name, w in writers.items():
            w.close()
            os.replace(folder / name / f".{kind}.parquet.tmp", folder / name / f"{kind}.parquet")
        writers.clear()
    finally:
        for name, w in writers.items():  # an error part-way: no half-written city file is left
            try:
                w.close()
            finally:
                (folder / name / f".{kind}.parquet.tmp").unlink(missing_ok=True)
    if ignored:
        top = ", ".join(f"{k!r} ({v} rows)" for k, v in sorted(ignored.items(), key=lambda kv: -kv[1])[:5])
        logger.warning("rollout: %s: %d rows of cities not in the rollout (or without a usable city name) "
                       "ignored: %s", path.name, sum(ignored.values()), top)
    return counts


# --------------------------------------------------------------------------------------------- #
# The per-city task (runs on a Dask worker)                                                      #
# --------------------------------------------------------------------------------------------- #


def _emit(city: str, stage: str) -> None:
    """Tell the client a city's stage started (a Dask event); nothing outside a worker."""
    try:
        from distributed import get_worker

        get_worker().log_event(_TOPIC, {"city": city, "stage": stage})
    except (ImportError, ValueError):  # not on a worker (called directly)
        pass
    except Exception:  # pragma: no cover - progress must never fail a plan
        pass


def _metrics_row(metrics: dict) -> dict[str, Any]:
    """The summary columns of one plan's metrics."""
    return {
        "customers": metrics.get("n_customers"), "rejected": metrics.get("n_rejects"),
        "workload": metrics.get("total_workload"), "grids": metrics.get("n_grids"),
        "staffed_grids": metrics.get("n_staffed_grids"), "unstaffed_grids": metrics.get("n_unstaffed_grids"),
        "specialists": metrics.get("n_specialists"), "spare_specialists": metrics.get("n_spare_specialists"),
        "specialists_missing": metrics.get("specialists_missing"), "coverage": metrics.get("coverage"),
        "balance_max_dev": metrics.get("balance_max_dev"), "within_5pct": metrics.get("within_5pct"),
        "churn": metrics.get("churn"), "customers_moved": metrics.get("customers_moved"),
        "continuing": metrics.get("continuing_customers"),
    }


def plan_city_job(job: dict[str, Any]) -> dict[str, Any]:
    """Plan one city and write its plan folder; never raises for the city's own problems.

    ``job`` holds ``name``, ``config`` (a :class:`Config`), ``folder`` (the plan folder), the input
    paths (str or None) and ``previous`` (a plan folder to re-run from, or None). Returns
    ``{"city", "status": "planned" | "failed", "message", "seconds", ...summary columns}``.
    This is the task :func:`rollout` submits; it is public so a cluster can be tested with it.
    """
    from .pipeline import plan_city

    name = job["name"]
    t0 = time.perf_counter()
    out: dict[str, Any] = {"city": name, "status": "failed", "message": "", "seconds": None}
    try:
        plan = plan_city(job["customers"], job["specialists"], job["config"], service_area=job.get("service_area"),
                         barriers=job.get("barriers"), zones=job.get("zones"), previous=job.get("previous"),
                         progress=lambda stage: _emit(name, stage))
        _emit(name, "write")
        plan.write(job["folder"], overwrite=True)
        out.update(_metrics_row(plan.metrics))
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


# --------------------------------------------------------------------------------------------- #
# Progress                                                                                       #
# --------------------------------------------------------------------------------------------- #


class _Reporter:
    """Progress of a rollout: a rich display on a terminal, plain lines otherwise, or nothing."""

    def __init__(self, mode: str, stream: TextIO, n: int, verbose: bool = False) -> None:
        self.mode, self.stream, self.n, self.verbose = mode, stream, n, verbose
        self.stage_of: dict[str, str] = {}
        self.finished = 0
        self.counts = {"planned": 0, "failed": 0}
        self.t0 = time.monotonic()
        self._progress = None
        if mode == "rich" and n:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description:<40}"), BarColumn(bar_width=30),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=Console(file=stream), refresh_per_second=4, transient=False)
            self._overall = self._progress.add_task("overall", total=n)
            self._stages = {s: self._progress.add_task(f"  {s}", total=n) for s in PLAN_STAGES}
            self._progress.start()

    def line(self, text: str) -> None:
        if self.mode == "lines":
            self.stream.write(f"{time.strftime('%H:%M:%S')} rollout: {text}\n")
            self.stream.flush()
        elif self._progress is not None:
            self._progress.console.print(f"rollout: {text}", markup=False, highlight=False)

    def _advance_to(self, city: str, stage: str | None) -> None:
        """Count the stages ``city`` finished before ``stage`` (all remaining ones with None)."""
        order = list(PLAN_STAGES)
        prev = self.stage_of.get(city)
        start = order.index(prev) if prev is not None else 0
        end = order.index(stage) if stage is not None else len(order)
        if self._progress is not None:
            for s in order[start:end]:
                self._progress.advance(self._stages[s])
        if stage is not None:
            self.stage_of[city] = stage

    def stage(self, city: str, stage: str) -> None:
        prev = self.stage_of.get(city)
        if stage not in PLAN_STAGES or (prev is not None and PLAN_STAGES.index(stage) <= PLAN_STAGES.index(prev)):
            return
        self._advance_to(city, stage)
        if self.mode == "lines" and self.verbose:
            self.line(f"{city}: {stage}")
        self._describe()

    def done(self, res: dict[str, Any]) -> None:
        city = res["city"]
        self._advance_to(city, None)
        self.stage_of.pop(city, None)
        self.finished += 1
        self.counts[res["status"]] = self.counts.get(res["status"], 0) + 1
        if res["status"] == "planned":
            text = (f"[{self.finished}/{self.n}] {city}: planned in {res['seconds']:.1f}s "
                    f"({res['customers']} customers, {res['grids']} grids)")
        else:
            text = f"[{self.finished}/{self.n}] {city}: FAILED: {res['message']}"
        if self.mode == "lines" or res["status"] != "planned" or self.verbose:
            self.line(text)
        if self._progress is not None:
            self._progress.advance(self._overall)
            self._describe()

    def _describe(self) -> None:
        if self._progress is None:
            return
        running = ", ".join(f"{c} ({s})" for c, s in list(self.stage_of.items())[:3])
        more = f" +{len(self.stage_of) - 3}" if len(self.stage_of) > 3 else ""
        self._progress.update(self._overall, description=(
            f"overall: {self.counts['planned']} planned, {self.counts['failed']} failed"
            + (f"; {running}{more}" if running else "")))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --------------------------------------------------------------------------------------------- #
# The result                                                                                     #
# --------------------------------------------------------------------------------------------- #


@dataclass
class RolloutResult:
    """The outcome of :func:`rollout`.

    Attributes
    ----------
    out
        The rollout folder; plans are in ``out / "cities" / name``.
    summary
        One row per city (in spec order) and a last ``TOTAL`` row, columns :data:`SUMMARY_COLUMNS`;
        ``status`` is ``planned``, ``skipped`` (complete and unchanged) or ``failed`` (see ``message``).
    elapsed_s
        Wall time of the rollout.
    n_workers
        Dask workers used.
    scheduler
        The scheduler's address.
    """

    out: Path
    summary: pd.DataFrame
    elapsed_s: float
    n_workers: int
    scheduler: str

    @property
    def cities(self) -> pd.DataFrame:
        """The per-city rows of the summary (without the TOTAL row)."""
        return self.summary.iloc[:-1]

    def _names(self, status: str) -> list[str]:
        c = self.cities
        return c.loc[c["status"] == status, "city"].tolist()

    @property
    def planned(self) -> list[str]:
        """Cities planned in this run."""
        return self._names("planned")

    @property
    def skipped(self) -> list[str]:
        """Cities whose complete plan was unchanged and kept."""
        return self._names("skipped")

    @property
    def failed(self) -> dict[str, str]:
        """Failed cities and their messages."""
        c = self.cities
        bad = c.loc[c["status"] == "failed"]
        return dict(zip(bad["city"], bad["message"]))

    @property
    def ok(self) -> bool:
        """No city failed."""
        return not self.failed

    def table(self) -> str:
        """The national summary as a fixed-width text table."""
        return format_table(self.summary)


def format_table(summary: pd.DataFrame) -> str:
    """A fixed-width text rendering of a rollout summary."""
    rows = [["city", "status", "customers", "rejected", "grids", "specialists", "missing", "balance", "±5%",
             "churn", "seconds"]]

    def fmt(v: Any, kind: str) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if kind == "int":
            return f"{int(v):,}"
        if kind == "pct":
            return f"{float(v):.1%}"
        return f"{float(v):.1f}"

    for r in summary.to_dict("records"):
        rows.append([str(r["city"]), str(r["status"]), fmt(r["customers"], "int"), fmt(r["rejected"], "int"),
                     fmt(r["grids"], "int"), fmt(r["specialists"], "int"), fmt(r["specialists_missing"], "int"),
                     fmt(r["balance_max_dev"], "pct"), fmt(r["within_5pct"], "pct"), fmt(r["churn"], "pct"),
                     fmt(r["seconds"], "s")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i]) for i in range(len(r))]
        lines.append("  ".join(cells).rstrip())
        if j == 0 or j == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    fails = summary.loc[summary["status"] == "failed"]
    for city, msg in zip(fails["city"], fails["message"]):
        lines.append(f"failed: {city}: {msg}")
    return "\n".join(lines)


def _summary_table(rows: list[dict[str, Any]], elapsed: float) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in (*SUMMARY_COLUMNS, "continuing"):
        if c not in df.columns:
            df[c] = np.nan
    num = lambda c: pd.to_numeric(df[c], errors="coerce")  # noqa: E731
    ok = df["status"] != "failed"
    cust = num("customers")
    grids = num("grids")
    wgt = lambda c, w: float((num(c) * w)[ok].sum() / w[ok].sum()) if w[ok].sum() > 0 else np.nan  # noqa: E731
    cont = num("continuing")
    churn_ok = ok & num("churn").notna()
    counts = df["status"].value_counts()
    total = {
        "city": "TOTAL",
        "status": ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("planned", "skipped", "failed")),
        **{c: int(num(c)[ok].sum()) for c in ("customers", "rejected", "grids", "staffed_grids", "unstaffed_grids",
                                            "specialists", "spare_specialists", "specialists_missing")},
        "workload": round(float(num("workload")[ok].sum()), 6),
        "coverage": round(wgt("coverage", cust), 6),
        "balance_max_dev": float(num("balance_max_dev")[ok].max()) if ok.any() else np.nan,
        "within_5pct": round(wgt("within_5pct", grids), 6),
        "churn": round(float((num("churn") * cont)[churn_ok].sum() / cont[churn_ok].sum()), 6)
        if churn_ok.any() and cont[churn_ok].sum() > 0 else np.nan,
        "customers_moved": int(num("customers_moved")[churn_ok].sum()) if churn_ok.any() else np.nan,
        "seconds": round(elapsed, 3),
        "message": "; ".join(f"{c}: failed" for c in df.loc[~ok, "city"]),
    }
    out = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    return out[list(SUMMARY_COLUMNS)]


# --------------------------------------------------------------------------------------------- #
# The rollout                                                                                    #
# --------------------------------------------------------------------------------------------- #


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
        inputs = man.get("inputs") or {}
        for kind in _INPUT_KINDS:
            given = job.get(kind)
            rec = inputs.get(kind)
            if given is None:
                if rec is not None:
                    return None
                continue
            if rec is None or rec.get("sha256") is None or rec.get("sha256") != _sha256(Path(given)):
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


def _clean_stale_city(folder: Path) -> None:
    from .plan import _clean_stale

    _clean_stale(folder)


def _split_if_needed(spec: RolloutSpec, work: Path, names: list[str] | None, reporter_line: Callable[[str], None]
                     ) -> dict[str, dict[str, str]]:
    """Split the national files into ``work``; returns kind -> city -> file."""
    out: dict[str, dict[str, str]] = {}
    for kind, src in (("customers", spec.customers), ("specialists", spec.specialists)):
        if src is None:
            continue
        if not src.is_file():
            raise InputError(f"{src}: national {kind} file not found", path=str(src))
        stamp_path = work / f"split-{kind}.json"
        digest = _sha256(src)
        stamp = None
        if stamp_path.is_file():
            try:
                stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
            except ValueError:
                stamp = None
        want = sorted(names) if names is not None else None
        if (stamp and stamp.get("sha256") == digest and stamp.get("column") == spec.city_column
                and stamp.get("cities_requested") == want
                and all((work / c / f"{kind}.parquet").is_file() for c in stamp.get("rows", {}))):
            rows = stamp["rows"]
            reporter_line(f"{src.name}: split unchanged, reusing {len(rows)} city files")
        else:
            t = time.perf_counter()
            reporter_line(f"splitting {src.name} by column {spec.city_column!r} ...")
            for d in work.glob(f"*/.{kind}.parquet.tmp"):
                d.unlink(missing_ok=True)
            rows = split_national(src, work, column=spec.city_column, kind=kind, cities=names)
            _atomic_write_text(stamp_path, json.dumps({"source": str(src), "sha256": digest, "column": spec.city_column,
                                                       "cities_requested": want, "rows": rows}, indent=2) + "\n")
            reporter_line(f"{src.name}: {sum(rows.values())} rows split into {len(rows)} cities in "
                          f"{time.perf_counter() - t:.1f}s")
        out[kind] = {c: str(work / c / f"{kind}.parquet") for c in rows}
    return out


def _start_client(scheduler: str | None, n_workers: int | None, memory_limit: str | float | None):
    """A Dask client: connected to ``scheduler``, or to a new LocalCluster (worker processes, 1 thread each)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    n = n_workers or max(1, os.cpu_count() or 1)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,  # a city that kills its worker: fail fast
                          "distributed.admin.system-monitor.gil.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit=memory_limit if memory_limit is not None else "auto",
                               silence_logs=logging.ERROR)
    return Client(cluster), cluster


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
        A rollout TOML file (format in the module docstring) or a :class:`RolloutSpec`.
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
        False if progress is False else ("rich" if getattr(stream, "isatty", lambda: False)() else "lines"))
    if mode not in ("rich", "lines", False):
        raise ConfigError(f"progress must be 'rich', 'lines', True, False or None, got {progress!r}")
    if mode == "rich":
        try:
            import rich  # noqa: F401
        except ImportError:  # pragma: no cover - rich is a dependency
            mode = "lines"

    def say(text: str) -> None:
        if mode == "lines":
            stream.write(f"{time.strftime('%H:%M:%S')} rollout: {text}\n")
            stream.flush()
        elif mode == "rich":
            stream.write(f"rollout: {text}\n")
            stream.flush()

    # 1. the national files, split per city (workers read their own city's file)
    named = [c.name for c in spec.cities] if spec.cities else None
    split = _split_if_needed(spec, out / "work", named, say)
    cities = list(spec.cities) or [CitySpec(name=n, config=spec.config) for n in sorted(split.get("customers", {}))]
    if not cities:
        raise InputError(f"{spec.customers}: no city rows in column {spec.city_column!r}")

    # 2. jobs; cities whose complete plan is unchanged are skipped
    rows: dict[str, dict[str, Any]] = {}
    jobs: list[dict[str, Any]] = []
    for c in cities:
        folder = out / "cities" / c.name
        _clean_stale_city(folder)  # leftovers of a killed earlier run; a plan moved aside is put back
        job: dict[str, Any] = {"name": c.name, "config": c.config, "folder": str(folder), "previous": None}
        for kind in _INPUT_KINDS:
            p = getattr(c, kind)
            job[kind] = str(p.absolute()) if p is not None else split.get(kind, {}).get(c.name)
        if job["customers"] is None:
            rows[c.name] = {"city": c.name, "status": "failed", "seconds": 0.0,
                            "message": f"no rows for city {c.name!r} in {spec.customers} (column {spec.city_column!r})"}
            continue
        existing = None if force else _unchanged(folder, job)
        if existing is not None:
            rows[c.name] = {"city": c.name, "status": "skipped", "seconds": 0.0,
                            "message": "complete plan with unchanged inputs and config", **_metrics_row(existing)}
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
        client, cluster = _start_client(scheduler, n_workers, memory_limit)
        reporter = _Reporter(mode or "off", stream, len(jobs), verbose)
        try:
            n_used = len(client.scheduler_info(n_workers=-1).get("workers", {})) if scheduler else (n_workers or os.cpu_count() or 1)
            address = client.scheduler.address
            reporter.line(f"planning {len(jobs)} cities on {n_used} Dask worker(s) at {address}")
            events: queue.Queue = queue.Queue()
            client.subscribe_topic(_TOPIC, lambda ev: events.put(ev[1] if isinstance(ev, tuple) else ev))
            # Largest city first (longest-processing-time order sets the finish time), and one task per
            # worker thread at a time, so the order holds exactly and no task waits in a worker's queue.
            todo = list(jobs)
            futures: dict[Any, str] = {}
            pending: set = set()
            rows_pending = {j["name"] for j in jobs}

            def slots() -> int:
                try:
                    return max(1, sum(client.nthreads().values()))
                except Exception:  # pragma: no cover - scheduler hiccup: keep going one task per known worker
                    return max(1, n_used)

            def top_up() -> None:
                free = slots() - len(pending)
                while todo and free > 0:
                    job = todo.pop(0)
                    f = client.submit(plan_city_job, job, key=f"plan-city-{job['name']}-{time.time_ns()}",
                                      priority=len(todo), pure=False)
                    futures[f] = job["name"]
                    pending.add(f)
                    free -= 1

            def drain() -> None:
                while True:
                    try:
                        ev = events.get_nowait()
                    except queue.Empty:
                        return
                    if isinstance(ev, dict) and ev.get("stage") in PLAN_STAGES and ev.get("city") in rows_pending:
                        reporter.stage(ev["city"], ev["stage"])

            top_up()
            while pending:
                time.sleep(0.1)
                drain()
                done = {f for f in pending if f.done()}
                pending -= done
                if done:
                    top_up()
                for f in done:
                    name = futures[f]
                    try:
                        res = f.result()
                    except Exception as exc:  # the worker died (memory) or the task could not run
                        kind = type(exc).__name__
                        msg = (f"the Dask worker planning this city died ({kind}: {exc}); most likely out of "
                               "memory: give workers more memory (memory_limit) or use fewer per machine"
                               if kind == "KilledWorker" else f"the task failed: {kind}: {exc}")
                        res = {"city": name, "status": "failed", "message": msg, "seconds": None}
                    rows_pending.discard(name)
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
    summary = _summary_table([{**{"city": c.name}, **rows[c.name]} for c in cities], elapsed)
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
    _atomic_write_text(out / "rollout.json", json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")
    shutil.rmtree(out / "work" / ".tmp", ignore_errors=True)
    logger.info("rollout: %d cities in %.1fs", len(cities), elapsed)
    return RolloutResult(out=out, summary=summary, elapsed_s=elapsed, n_workers=n_used, scheduler=address)
