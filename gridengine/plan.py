"""The result object of a run, and how a plan folder is written (atomically).

A plan folder holds the files DESIGN.md lists, plus ``specialists.csv`` (the roster
with each specialist's grid, or "spare") and ``cells.parquet`` (every cell of the
tiled service area with its grid, which a later re-run starts from). It is written into a hidden
temporary folder beside the target and renamed into place only when complete, so a
folder named like a plan is always a complete plan, and a failed or interrupted
write never damages an earlier plan in the same place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from .errors import PlanWriteError

__all__ = ["Plan", "DATA_FILES", "CSV_ENCODING", "grids_table", "write_workbook"]

logger = logging.getLogger(__name__)

#: Files whose bytes are identical for identical inputs, config and seed (DESIGN.md invariant 5).
DATA_FILES = (
    "grids.parquet", "grids.geojson", "grids.csv", "assignments.parquet", "assignments.csv", "rejects.csv",
    "specialists.csv", "cells.parquet", "staffing.csv", "metrics.json", "manifest.json",
)

#: CSVs are written UTF-8 with a byte-order mark, so Excel opens Chinese text correctly (pandas,
#: Python's ``utf-8-sig`` and every spreadsheet read it; gridengine reads its own CSVs either way).
CSV_ENCODING = "utf-8-sig"


def _locked_lines(m: dict) -> list[str]:
    """The summary's line on what was locked (grids kept whole, grids holding pinned cells)."""
    recs = list(m.get("locks") or [])
    ids = [str(g) for g in m.get("locked_grids") or []]
    if recs:
        names = ", ".join(r["grid_id"] for r in recs[:8]) + (" …" if len(recs) > 8 else "")
        joined = sum(int(r.get("joined", 0)) for r in recs)
        away = sum(int(r.get("turned_away", 0)) for r in recs)
        return [f"  locked           {len(recs)} grid(s) kept as in the previous plan ({names}), with their "
                f"specialists; {joined} new customer(s) joined them, {away} turned away (at capacity)"]
    if ids:
        return [f"  locked           {len(ids)} grid(s) hold pinned cells ({', '.join(ids[:8])}"
                f"{' …' if len(ids) > 8 else ''})"]
    return []


def _csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n", encoding=CSV_ENCODING)


def grids_table(grids: pd.DataFrame) -> pd.DataFrame:
    """The per-grid table without geometry (what ``grids.csv`` and the workbook's grids sheet hold)."""
    out = pd.DataFrame(grids.drop(columns=[c for c in ("geometry",) if c in grids.columns]))
    if "capacity" in out.columns and "workload" in out.columns:
        cap = out["capacity"].to_numpy(dtype="float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            out["fill"] = np.round(out["workload"].to_numpy(dtype="float64") / cap, 6)
    return out


def write_workbook(plan: "Plan", path: str | Path) -> Path:
    """The plan as one Excel workbook: sheets grids, assignments, specialists, staffing, rejects.

    Written with openpyxl (write-only mode); Excel's limit of 1,048,575 data rows per sheet
    applies (a larger assignments table is cut there, said in the sheet's last row).
    """
    from openpyxl import Workbook

    path = Path(path)
    wb = Workbook(write_only=True)
    limit = 1_048_575
    sheets = [("grids", grids_table(plan.grids)), ("assignments", plan.assignments),
              ("specialists", plan.specialists), ("staffing", plan.staffing if plan.staffing is not None
                                                  else pd.DataFrame()), ("rejects", plan.rejects)]
    for name, df in sheets:
        ws = wb.create_sheet(name)
        ws.append([str(c) for c in df.columns])
        n = min(len(df), limit - 1)
        for row in df.iloc[:n].itertuples(index=False, name=None):
            ws.append([None if isinstance(v, float) and v != v else (v.item() if hasattr(v, "item") else v)
                       for v in row])
        if len(df) > n:
            ws.append([f"… {len(df) - n} more rows in the CSV"])
    wb.save(path)
    return path


#: When this process started writing plans: hidden temporary siblings older than this are leftovers
#: of an interrupted run (a killed process never cleans up after itself) and are removed.
_PROCESS_START = time.time()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported.

    With it, the target folder is never absent: an interrupted swap leaves either the old
    or the new complete plan in place, never neither.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system or kernel cannot; fall back
        return False
    raise OSError(err, os.strerror(err), str(a))


def clean_stale(folder: Path) -> None:
    """Remove ``.{name}.tmp-*`` / ``.{name}.old-*`` siblings left by interrupted earlier runs.

    Only those last touched before this process started are removed (a concurrent writer's
    folder is newer). If an interrupted non-atomic swap left the target missing, the earlier
    plan parked in ``.{name}.old-*/plan`` is put back first.
    """
    parent = folder.parent if str(folder.parent) else Path(".")
    try:
        if not parent.is_dir():
            return
        siblings = sorted(parent.glob(f".{folder.name}.old-*")) + sorted(parent.glob(f".{folder.name}.tmp-*"))
    except OSError:
        return
    for d in siblings:
        try:
            if not d.is_dir() or d.stat().st_mtime >= _PROCESS_START:
                continue
            parked = d / "plan"
            if d.name.startswith(f".{folder.name}.old-") and not folder.exists() and (parked / "manifest.json").is_file():
                os.rename(parked, folder)
                logger.warning("report: restored the earlier plan %s from an interrupted write", folder)
            shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def json_dump(obj: Any) -> str:
    """``obj`` as the indented JSON text of a plan's metrics, run and manifest files (no NaN, ends with a newline)."""
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n"


def _round_coords(obj: Any, nd: int = 7) -> Any:
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, (list, tuple)):
        return [_round_coords(v, nd) for v in obj]
    return obj


@contextlib.contextmanager
def atomic_folder(folder: str | Path, *, overwrite: bool, what: str,
                  occupied: str = "already holds files") -> Iterator[Path]:
    """Write a folder complete or not at all: yield an empty sibling folder to fill, then swap it in.

    Shared by every writer of an output folder (plans, visits, service points). Stale temporary
    siblings of interrupted runs are cleaned first; the filled folder's files are synced, and it
    replaces ``folder`` by an atomic exchange where the system has one (two renames elsewhere).

    Parameters
    ----------
    folder
        The target folder.
    overwrite
        Replace what ``folder`` holds. Without it, a non-empty folder is an error.
    what
        What is written, for messages ("the plan", "the visits", ...).
    occupied
        How a non-empty target is described in the error.

    Raises
    ------
    PlanWriteError
        The folder holds something and ``overwrite`` is False, or it cannot be written; the
        earlier folder is then left as it was.
    """
    folder = Path(folder)
    clean_stale(folder)  # first: it may put back a folder an interrupted write had moved aside
    if folder.exists() and not folder.is_dir():
        raise PlanWriteError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise PlanWriteError(f"{folder}: {occupied}; use --force / overwrite=True to replace it")
    parent = folder.parent if str(folder.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=parent))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise PlanWriteError(f"{folder}: cannot write here: {exc.strerror or exc}{where}") from None
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        if folder.exists():
            if _exchange(tmp, folder):  # tmp now holds the earlier folder
                shutil.rmtree(tmp, ignore_errors=True)
            else:  # two renames: a tiny window without the folder, repaired by the next write
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=parent))
                os.rename(folder, old / "plan")
                os.rename(tmp, folder)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PlanWriteError(f"{folder}: writing {what} failed: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class Plan:
    """One city's plan: grids, customer assignments, rejects, metrics and provenance.

    Attributes
    ----------
    grids
        GeoDataFrame (EPSG:4326), one row per grid: ``grid_id``, ``specialist_id`` ('' where unstaffed),
        ``workload``, ``n_customers``, ``n_cells``, ``area_km2``, ``capacity`` (the specialist's, NaN
        where unstaffed), ``centre_lat``, ``centre_lon``, geometry.
    assignments
        One row per assigned customer, sorted by ``customer_id``: ``customer_id``, ``lat``, ``lon``,
        ``cell`` (H3 string), ``grid_id``, ``specialist_id``.
    rejects
        One row per rejected input row, sorted by ``row``: ``customer_id``, ``row``, ``reason``.
    specialists
        The roster: ``specialist_id``, ``lat``, ``lon``, ``capacity``, ``grid_id`` ('' if spare),
        ``status`` (``"assigned"`` or ``"spare"``).
    cells
        Every cell of the tiled service area: ``cell`` (H3 string), ``grid_id``, ``lat``, ``lon``,
        ``workload``, ``n_customers``.
    metrics
        DESIGN.md metrics, counts, solver status and warnings (no timings).
    manifest
        Version, full config, input hashes, seed.
    run
        Per-stage timings, peak memory, start time and host (differs between identical runs).
    warnings
        Things a planner should look at (bridges, unstaffed grids, grids added for capacity).
    staffing
        Where specialists are missing, per area (:func:`gridengine.assign.staffing_plan`).
    zones
        The zone polygons the plan kept grids inside (a list with ``.names``), or None; written
        as ``zones.geojson`` and drawn on the map.
    barriers
        The barrier geometry the plan kept grids from crossing, or None; written as
        ``barriers.geojson`` and drawn on the map.
    """

    grids: gpd.GeoDataFrame
    assignments: pd.DataFrame
    rejects: pd.DataFrame
    specialists: pd.DataFrame
    cells: pd.DataFrame
    metrics: dict
    manifest: dict
    run: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    staffing: pd.DataFrame | None = None
    zones: Any = None
    barriers: Any = None

    def is_fully_staffed(self) -> bool:
        """Whether every grid has a specialist."""
        return bool((self.grids["specialist_id"].astype(str) != "").all())

    def summary(self) -> str:
        """A short human-readable summary of the plan (what the CLI prints)."""
        m = self.metrics
        lines = [
            f"gridengine plan: {m['n_customers']} customers assigned, {m['n_rejects']} rejected "
            f"(workload {m['total_workload']:g})",
            f"  grids            {m['n_grids']} ({m['n_staffed_grids']} staffed, {m['n_unstaffed_grids']} unstaffed), "
            f"{m['n_cells']} cells, {m['n_bridges']} bridges",
            f"  specialists      {m['n_specialists']} ({m['n_spare_specialists']} spare, {m['specialists_missing']} missing)",
            f"  coverage         {m['coverage']:.2%}",
            f"  capacity         {m['capacity_violations']} violations",
            f"  contiguous       {m['contiguous_share']:.2%} of grids",
            f"  balance          max deviation {m['balance_max_dev']:.2%}, {m['within_5pct']:.1%} of grids within ±5% "
            + (f"of the mean fill {m['mean_fill']:.1%} (mean workload {m['mean_grid_workload']:g})"
               if m.get("mean_fill") is not None else f"(mean workload {m['mean_grid_workload']:g})"),
            f"  capacity use     {m['fill_min']:.1%} to {m['fill_max']:.1%} of the specialist's capacity"
            if m.get("fill_min") is not None else "  capacity use     (no staffed grid)",
            f"  compactness      {m['compactness_km']:.3f} km (workload-weighted distance to grid centre)",
            f"  travel           {m['travel_km']:.3f} km (mean base to grid centre)",
        ]
        if m.get("coverage", 1.0) < 1.0:  # a customer without a specialist is said first (DESIGN.md, invariant 2)
            n_out = int(round((1.0 - m["coverage"]) * m["n_customers"]))
            lines.insert(1, f"  NOT COVERED      {n_out} customers ({1 - m['coverage']:.2%}) have no specialist: "
                            f"{m['n_unstaffed_grids']} grid(s) unstaffed, {m['specialists_missing']} specialist(s) "
                            "missing (where: staffing.csv)")
        if m.get("zone_within_5pct") is not None:
            zs = m.get("zones") or []
            lines.append(f"  within zones     {m['zone_within_5pct']:.1%} of grids within ±5% of their zone's mean fill "
                         f"({len(zs)} zones: {', '.join(str(z['zone']) for z in zs[:12])}{' …' if len(zs) > 12 else ''}; "
                         "no grid spans two zones)")
        coords = self.coordinate_systems()
        if coords:
            lines.append("  coordinates      " + "; ".join(f"{k} {v}" for k, v in coords.items()))
        for src, mapping in (self.manifest.get("column_mapping") or {}).items():
            if mapping:
                lines.append(f"  columns          {src}: " + ", ".join(f"{a} → {b}" for a, b in mapping.items()))
        if m.get("churn") is not None:
            lines.append(f"  churn            {m['churn']:.2%}")
        lines.extend(_locked_lines(m))
        shown, quiet = self.planner_warnings()
        for w in shown:
            lines.append(f"  warning: {w}")
        if quiet:
            lines.append(f"  ({quiet} bridge(s) joining empty land to a grid not listed: they change no one's work)")
        return "\n".join(lines)

    def planner_warnings(self) -> tuple[list[str], int]:
        """The warnings worth a planner's attention, with each bridge's separation said in words
        (water, a barrier, a zone border, empty land), and how many bridges without workload were left out."""
        import re

        from .report import describe_separation, planner_warnings

        keep, quiet = planner_warnings(list(self.warnings))
        if not any(w.startswith("bridge:") for w in keep):
            return keep, quiet
        tiled = set(self.cells["cell"].astype(str))
        given = bool((self.manifest.get("inputs") or {}).get("service_area"))
        out = []
        for w in keep:
            m = re.match(r"bridge: .*\(cell (\w+) to (\w+)\)$", w)
            if m and "separated by" not in w:
                what = describe_separation(m.group(1), m.group(2), tiled, zones=self.zones, barriers=self.barriers,
                                           service_area_given=given)
                w = f"{w}, separated by {what}"
            out.append(w)
        return out, quiet

    def __str__(self) -> str:
        return self.summary()

    def coordinate_systems(self) -> dict[str, str]:
        """What each input's coordinates were taken to be (from the manifest's config), in words.

        Returns
        -------
        dict
            ``{"customers": "WGS-84 (as given)", "specialists": "GCJ-02, converted to WGS-84", …}``
            for the inputs the plan was made from.
        """
        inp = (self.manifest.get("config") or {}).get("input") or {}
        given = self.manifest.get("inputs") or {}
        if not inp:
            return {}
        label = {"wgs84": "WGS-84", "gcj02": "GCJ-02", "bd09": "BD-09"}
        base = inp.get("coord_system", "wgs84")
        out = {}
        for kind in ("customers", "specialists", "zones", "barriers"):
            if kind != "customers" and not given.get(kind):
                continue
            cs = base if kind == "customers" else (inp.get(f"{kind}_coord_system") or base)
            out[kind] = (f"{label.get(cs, cs)} (as given)" if cs == "wgs84"
                         else f"{label.get(cs, cs)}, converted to WGS-84")
        return out

    # -- writing ---------------------------------------------------------------------------

    def _grids_geojson(self) -> str:
        feats = []
        props = [c for c in self.grids.columns if c != "geometry"]
        for rec, geom in zip(self.grids[props].to_dict("records"), self.grids.geometry):
            gi = geom.__geo_interface__
            feats.append({
                "type": "Feature",
                "properties": {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()},
                "geometry": {"type": gi["type"], "coordinates": _round_coords(gi["coordinates"])},
            })
        return json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False,
                          separators=(",", ":")) + "\n"

    def write(self, folder: str | Path, *, overwrite: bool = False, xlsx: bool = False) -> Path:
        """Write the plan folder atomically.

        CSVs (``grids.csv``, ``assignments.csv``, ``specialists.csv``, ``staffing.csv``,
        ``rejects.csv``) are UTF-8 with a byte-order mark, so Excel shows Chinese text correctly.

        Parameters
        ----------
        folder
            Target folder. Written complete or not at all.
        overwrite
            Replace a plan already in ``folder``. Without it, a non-empty folder is an error.
        xlsx
            Also write ``plan.xlsx`` (sheets grids, assignments, specialists, staffing, rejects).

        Returns
        -------
        Path
            The folder.

        Raises
        ------
        PlanWriteError
            If the folder holds something and ``overwrite`` is False, or it cannot be written.
        """
        from . import report

        folder = Path(folder)
        with atomic_folder(folder, overwrite=overwrite, what="the plan",
                           occupied="already holds files (a plan?)") as tmp:
            self.grids.to_parquet(tmp / "grids.parquet", index=False)
            (tmp / "grids.geojson").write_text(self._grids_geojson(), encoding="utf-8")
            self.assignments.to_parquet(tmp / "assignments.parquet", index=False)
            _csv(grids_table(self.grids), tmp / "grids.csv")
            _csv(self.assignments, tmp / "assignments.csv")
            _csv(self.rejects, tmp / "rejects.csv")
            _csv(self.specialists, tmp / "specialists.csv")
            self.cells.to_parquet(tmp / "cells.parquet", index=False)
            if self.staffing is not None:
                _csv(self.staffing, tmp / "staffing.csv")
            if xlsx:
                write_workbook(self, tmp / "plan.xlsx")
            (tmp / "metrics.json").write_text(json_dump(self.metrics), encoding="utf-8")
            (tmp / "run.json").write_text(json_dump(self.run), encoding="utf-8")
            density = self.cells.loc[self.cells["n_customers"] > 0, ["lat", "lon", "workload"]]
            (tmp / "map.html").write_text(
                report.render_map_html(self.grids, self.specialists, cells=density, zones=self.zones,
                                       barriers=self.barriers), encoding="utf-8")
            if self.zones is not None:
                names = list(getattr(self.zones, "names", None) or [f"zone {i + 1}" for i in range(len(self.zones))])
                gpd.GeoDataFrame({"name": names}, geometry=list(self.zones), crs="EPSG:4326").to_file(
                    tmp / "zones.geojson", driver="GeoJSON")
            if self.barriers is not None:
                gpd.GeoDataFrame({"kind": ["barrier"]}, geometry=[self.barriers], crs="EPSG:4326").to_file(
                    tmp / "barriers.geojson", driver="GeoJSON")
            (tmp / "report.html").write_text(
                report.render_report_html(self.grids, self.metrics, warnings=self.planner_warnings()[0],
                                          capacity=self.manifest.get("design_capacity"),
                                          overview_png=report.render_overview_png(self.grids, self.specialists)),
                encoding="utf-8")
            # The manifest goes last: a folder with a manifest is a complete plan.
            (tmp / "manifest.json").write_text(json_dump(self.manifest), encoding="utf-8")
        logger.info("report: plan written to %s", folder)
        return folder

    @classmethod
    def read(cls, folder: str | Path) -> "Plan":
        """Load a plan folder written by :meth:`write`.

        Raises
        ------
        PlanWriteError
            If the folder is not a complete plan (no manifest).
        """
        folder = Path(folder)
        if folder.name.startswith(".") and (".tmp-" in folder.name or ".old-" in folder.name):
            raise PlanWriteError(f"{folder}: a temporary folder of an unfinished or replaced write, not a plan")
        if not (folder / "manifest.json").is_file():
            raise PlanWriteError(f"{folder}: not a complete plan folder (no manifest.json)")
        grids = gpd.read_parquet(folder / "grids.parquet")
        assignments = pd.read_parquet(folder / "assignments.parquet")
        rejects = pd.read_csv(folder / "rejects.csv", dtype={"customer_id": str}, keep_default_na=False,
                              encoding="utf-8-sig")
        specialists = pd.read_csv(folder / "specialists.csv", dtype={"specialist_id": str, "grid_id": str},
                                  keep_default_na=False, encoding="utf-8-sig")
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        run = json.loads((folder / "run.json").read_text(encoding="utf-8")) if (folder / "run.json").is_file() else {}
        cells = pd.read_parquet(folder / "cells.parquet")
        staffing = pd.read_csv(folder / "staffing.csv", keep_default_na=False, encoding="utf-8-sig") if (folder / "staffing.csv").is_file() else None
        zones = barriers = None
        if (folder / "zones.geojson").is_file():
            from .ingest import read_zones

            zones = read_zones(folder / "zones.geojson", name_column="name")
        if (folder / "barriers.geojson").is_file():
            barriers = gpd.read_file(folder / "barriers.geojson").geometry.union_all()
        return cls(grids, assignments, rejects, specialists, cells, metrics, manifest, run,
                   list(metrics.get("warnings", [])), staffing, zones, barriers)
