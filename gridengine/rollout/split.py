"""Splitting a national file per city, streamed, into the rollout's work folder."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..ingest import file_sha256
from .spec import CITY_NAME_RE, RolloutSpec

__all__ = ["split_national", "split_if_needed", "atomic_write_text", "sha256_if_file"]

logger = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` under a temporary name and rename it into place (complete or absent)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sha256_if_file(path: Path) -> str | None:
    """The SHA-256 of a file, or None if there is no such file."""
    return file_sha256(path) if path.is_file() else None


def _batches(path: Path, column: str, batch_rows: int) -> Iterator[Any]:
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
                if not name or (keep is not None and name not in keep) or not CITY_NAME_RE.match(name):
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


def split_if_needed(spec: RolloutSpec, work: Path, names: list[str] | None, reporter_line: Callable[[str], None]
                     ) -> dict[str, dict[str, str]]:
    """Split the rollout's national files into ``work`` unless an earlier split of the same files is there.

    Parameters
    ----------
    spec
        The rollout; its ``customers`` and ``specialists`` national files are split by ``city_column``.
    work
        The work folder: ``work/<city>/<kind>.parquet`` and a ``split-<kind>.json`` stamp per file.
    names
        Keep only these cities; ``None``: every city of the file.
    reporter_line
        Told one line of progress at a time.

    Returns
    -------
    dict
        Kind (``"customers"``, ``"specialists"``) -> city -> its split file.
    """
    out: dict[str, dict[str, str]] = {}
    for kind, src in (("customers", spec.customers), ("specialists", spec.specialists)):
        if src is None:
            continue
        if not src.is_file():
            raise InputError(f"{src}: national {kind} file not found", path=str(src))
        stamp_path = work / f"split-{kind}.json"
        digest = sha256_if_file(src)
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
            atomic_write_text(stamp_path, json.dumps({"source": str(src), "sha256": digest, "column": spec.city_column,
                                                       "cities_requested": want, "rows": rows}, indent=2) + "\n")
            reporter_line(f"{src.name}: {sum(rows.values())} rows split into {len(rows)} cities in "
                          f"{time.perf_counter() - t:.1f}s")
        out[kind] = {c: str(work / c / f"{kind}.parquet") for c in rows}
    return out
