"""The result object of a run, and how a plan folder is written (atomically).

A plan folder holds the files DESIGN.md lists, plus ``specialists.csv`` (the roster
with each specialist's grid, or "spare") and ``cells.parquet`` (every cell of the
tiled service area with its grid, which a later re-run starts from). It is written into a hidden
temporary folder beside the target and renamed into place only when complete, so a
folder named like a plan is always a complete plan, and a failed or interrupted
write never damages an earlier plan in the same place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from .errors import PlanWriteError

__all__ = ["Plan", "DATA_FILES"]

logger = logging.getLogger(__name__)

#: Files whose bytes are identical for identical inputs, config and seed (DESIGN.md invariant 5).
DATA_FILES = (
    "grids.parquet", "grids.geojson", "assignments.parquet", "assignments.csv", "rejects.csv",
    "specialists.csv", "cells.parquet", "staffing.csv", "metrics.json", "manifest.json",
)


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


def _clean_stale(folder: Path) -> None:
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


def _json_dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n"


def _round_coords(obj: Any, nd: int = 7) -> Any:
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, (list, tuple)):
        return [_round_coords(v, nd) for v in obj]
    return obj


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
        if m.get("churn") is not None:
            lines.append(f"  churn            {m['churn']:.2%}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

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

    def write(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the plan folder atomically.

        Parameters
        ----------
        folder
            Target folder. Written complete or not at all.
        overwrite
            Replace a plan already in ``folder``. Without it, a non-empty folder is an error.

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
        _clean_stale(folder)  # first: it may put back a plan an interrupted write had moved aside
        if folder.exists() and not folder.is_dir():
            raise PlanWriteError(f"{folder}: exists and is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not overwrite:
            raise PlanWriteError(f"{folder}: already holds files (a plan?); use --force / overwrite=True to replace it")
        parent = folder.parent if str(folder.parent) else Path(".")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=parent))
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise PlanWriteError(f"{folder}: cannot write here: {exc.strerror or exc}{where}") from None
        try:
            self.grids.to_parquet(tmp / "grids.parquet", index=False)
            (tmp / "grids.geojson").write_text(self._grids_geojson(), encoding="utf-8")
            self.assignments.to_parquet(tmp / "assignments.parquet", index=False)
            self.assignments.to_csv(tmp / "assignments.csv", index=False, lineterminator="\n")
            self.rejects.to_csv(tmp / "rejects.csv", index=False, lineterminator="\n")
            self.specialists.to_csv(tmp / "specialists.csv", index=False, lineterminator="\n")
            self.cells.to_parquet(tmp / "cells.parquet", index=False)
            if self.staffing is not None:
                self.staffing.to_csv(tmp / "staffing.csv", index=False, lineterminator="\n")
            (tmp / "metrics.json").write_text(_json_dump(self.metrics), encoding="utf-8")
            (tmp / "run.json").write_text(_json_dump(self.run), encoding="utf-8")
            density = self.cells.loc[self.cells["n_customers"] > 0, ["lat", "lon", "workload"]]
            (tmp / "map.html").write_text(
                report.render_map_html(self.grids, self.specialists, cells=density), encoding="utf-8")
            (tmp / "report.html").write_text(
                report.render_report_html(self.grids, self.metrics, warnings=self.warnings,
                                          capacity=self.manifest.get("design_capacity"),
                                          overview_png=report.render_overview_png(self.grids, self.specialists)),
                encoding="utf-8")
            # The manifest goes last: a folder with a manifest is a complete plan.
            (tmp / "manifest.json").write_text(_json_dump(self.manifest), encoding="utf-8")
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o755)
            if folder.exists():
                if _exchange(tmp, folder):  # tmp now holds the earlier plan
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
            raise PlanWriteError(f"{folder}: writing the plan failed: {exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        rejects = pd.read_csv(folder / "rejects.csv", dtype={"customer_id": str}, keep_default_na=False)
        specialists = pd.read_csv(folder / "specialists.csv", dtype={"specialist_id": str, "grid_id": str},
                                  keep_default_na=False)
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        run = json.loads((folder / "run.json").read_text(encoding="utf-8")) if (folder / "run.json").is_file() else {}
        cells = pd.read_parquet(folder / "cells.parquet")
        staffing = pd.read_csv(folder / "staffing.csv", keep_default_na=False) if (folder / "staffing.csv").is_file() else None
        return cls(grids, assignments, rejects, specialists, cells, metrics, manifest, run,
                   list(metrics.get("warnings", [])), staffing)
