"""Service points (设网点): where a plan's grid stations go.

A service point is a physical station (a leased shop, a desk in a community centre) that a
group of neighbouring grids' specialists work from. It holds a limited number of
specialists and may cost rent. :func:`site_service_points` takes a plan folder (or
:class:`~gridengine.plan.Plan`) and, optionally, a file of candidate premises, and decides
which sites open and which grids each serves.

Model
-----
Single-source capacitated facility location, grids as the demand points:

* every grid belongs to exactly one open site, and counts one specialist towards the site's
  capacity (an unstaffed grid counts too: its specialist is still to be hired);
* the cost of serving grid *g* from site *s* is the workload-weighted straight-line distance
  from the grid's customers (aggregated per H3 cell) to the site, in workload·km;
* with ``site_cost`` (or a ``cost`` column among the candidates) each open site adds its
  cost, in the same unit (one site must save that many workload·km to be worth its rent);
  with ``n_sites`` exactly that many sites open; with neither, the fewest sites that hold
  every specialist open, and distance decides where;
* a grid is served across water or a zone border only when its own area has no site that
  can take it: such arcs carry a penalty larger than any in-area cost.

Without candidates, each grid offers one candidate, the cell of its territory that minimises
its own workload-weighted distance, so the instance is a capacitated p-median problem solved
by :func:`gridengine.capacitated_p_median`; each open site then moves to the best cell of the
territory it serves and the grids are re-assigned exactly (unit demands: an assignment
problem). With premises, fixed costs or a previous site list, the problem goes to
:func:`gridengine.capacitated_facility_location` (a MIP).

Re-runs
-------
With ``previous_sites``, the previous sites are candidates that must stay open. New sites are
added only when the previous ones cannot hold the specialists (the reason says how many are
missing). A solution that also closes or moves sites is computed too and taken only when it
lowers the objective by at least ``rerun_gain`` (default 20%); each change then names that gain.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import resource
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .errors import ConfigError, InfeasibleError, InputError
from .solvers.facility import capacitated_facility_location

__all__ = ["SitesConfig", "SitesResult", "site_service_points", "read_candidates", "SITES_DATA_FILES"]

logger = logging.getLogger(__name__)

_EARTH_KM = 6371.0088
#: Files whose bytes are identical for identical inputs and config.
SITES_DATA_FILES = ("sites.csv", "sites.geojson", "grid_sites.csv", "rejects.csv", "site_changes.csv",
                    "metrics.json", "manifest.json")
SITE_COLUMNS = ["site_id", "lat", "lon", "n_grids", "n_specialists", "workload", "capacity", "status", "reason"]
#: A candidate farther than this from every cell of the service area is rejected (km).
OUTSIDE_KM = 2.0


@dataclass(frozen=True)
class SitesConfig:
    """Options of :func:`site_service_points`.

    Attributes
    ----------
    max_specialists_per_site
        Capacity of a site in specialists, for candidates without their own ``capacity``.
    n_sites
        Open exactly this many sites (excludes ``site_cost``).
    site_cost
        Cost of opening a site, in workload·km, for candidates without their own ``cost``.
    rerun_gain
        With previous sites: the share by which a re-sited solution must lower the objective
        before previous sites are closed or moved.
    zones
        Optional zones file (polygons); a grid is then served from a site in its own zone
        when one can take it.
    time_limit
        Cap on the solver's wall-clock time per solve, seconds.
    seed
        Seed of the solver's randomised parts.
    """

    max_specialists_per_site: int = 8
    n_sites: int | None = None
    site_cost: float | None = None
    rerun_gain: float = 0.2
    zones: str | None = None
    time_limit: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.max_specialists_per_site) < 1:
            raise ConfigError(f"max_specialists_per_site must be at least 1, got {self.max_specialists_per_site}")
        if self.n_sites is not None and int(self.n_sites) < 1:
            raise ConfigError(f"n_sites must be at least 1, got {self.n_sites}")
        if self.site_cost is not None and (not math.isfinite(self.site_cost) or self.site_cost < 0):
            raise ConfigError(f"site_cost must be a non-negative number, got {self.site_cost}")
        if self.n_sites is not None and self.site_cost is not None:
            raise ConfigError("give n_sites or site_cost, not both")
        if not 0 <= self.rerun_gain < 1:
            raise ConfigError(f"rerun_gain must be in [0, 1), got {self.rerun_gain}")


@dataclass
class SitesResult:
    """The result of :func:`site_service_points`.

    Attributes
    ----------
    sites
        One row per open site: ``site_id``, ``lat``, ``lon``, ``n_grids``, ``n_specialists``,
        ``workload``, ``capacity``, ``status`` (``new``, ``kept`` or ``opened``), ``reason``.
    grid_sites
        One row per grid: ``grid_id``, ``site_id``, ``distance_km`` (the grid's
        workload-weighted mean customer-to-site distance).
    rejects
        Rejected candidate rows: ``site_id``, ``row``, ``field``, ``reason``.
    changes
        With previous sites: each previous site kept or closed and each site opened, with the reason.
    metrics
        Figures (no timings).
    manifest
        Version, config, input hashes.
    run
        Timings (differs between identical runs).
    grids
        The plan's grids (for the map), with ``site_id``.
    warnings
        Things a planner should look at.
    specialists
        The plan's roster (drawn on the map).
    density
        Occupied cells (``lat``, ``lon``, ``workload``), drawn as the map's density layer.
    """

    sites: pd.DataFrame
    grid_sites: pd.DataFrame
    rejects: pd.DataFrame
    changes: pd.DataFrame
    metrics: dict
    manifest: dict
    run: dict = field(default_factory=dict)
    grids: Any = None
    warnings: list[str] = field(default_factory=list)
    specialists: pd.DataFrame | None = None
    density: pd.DataFrame | None = None

    def summary(self) -> str:
        """A short human-readable summary (what the CLI prints)."""
        m = self.metrics
        lines = [
            f"gridengine sites: {m['n_sites']} sites for {m['n_grids']} grids ({m['n_specialists']} specialists), "
            f"{m['n_candidates']} candidates, {m['n_rejects']} rejected",
            f"  customer to site mean {m['mean_customer_site_km']:.3f} km, 95th percentile "
            f"{m['p95_customer_site_km']:.3f} km (workload-weighted mean {m['weighted_mean_customer_site_km']:.3f} km)",
            f"  fill             mean {m['fill_mean']:.1%}, {m['fill_min']:.1%} to {m['fill_max']:.1%} of site capacity",
            f"  objective        {m['objective']:.1f} (distance {m['distance_cost']:.1f} workload-km"
            + (f", site costs {m['site_costs']:.1f})" if m['site_costs'] else ")"),
        ]
        if m.get("rerun"):
            r = m["rerun"]
            lines.append(f"  re-run           {r['kept']} kept, {r['opened']} opened, {r['closed']} closed")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def write(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the sites folder atomically (complete or absent).

        Raises
        ------
        PlanWriteError
            If the folder holds files and ``overwrite`` is False, or it cannot be written.
        """
        from .plan import atomic_folder, json_dump

        folder = Path(folder)
        with atomic_folder(folder, overwrite=overwrite, what="the sites", occupied="already holds files") as tmp:
            csv = dict(index=False, lineterminator="\n")
            self.sites.to_csv(tmp / "sites.csv", **csv)
            (tmp / "sites.geojson").write_text(_sites_geojson(self.sites), encoding="utf-8")
            self.grid_sites.to_csv(tmp / "grid_sites.csv", **csv)
            self.rejects.to_csv(tmp / "rejects.csv", **csv)
            self.changes.to_csv(tmp / "site_changes.csv", **csv)
            (tmp / "metrics.json").write_text(json_dump(self.metrics), encoding="utf-8")
            (tmp / "run.json").write_text(json_dump(self.run), encoding="utf-8")
            (tmp / "map.html").write_text(render_sites_map_html(self.grids, self.sites, self.specialists,
                                                                self.density), encoding="utf-8")
            (tmp / "report.html").write_text(render_sites_report_html(self), encoding="utf-8")
            (tmp / "manifest.json").write_text(json_dump(self.manifest), encoding="utf-8")
        return folder


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def _read_table(path: str | Path, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {what} file not found", path=str(p))
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
            return df.astype({c: str for c in df.columns}).replace({"None": "", "nan": ""})
        return pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot read the {what} file: {exc}", path=str(p)) from None


def read_candidates(source: str | Path | pd.DataFrame, *, what: str = "candidates"
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a file of candidate premises.

    Parameters
    ----------
    source
        CSV or Parquet path, or a DataFrame, with ``site_id``, ``lat``, ``lon`` and optional
        ``capacity`` (specialists, a positive whole number) and ``cost`` (non-negative).
    what
        Name used in messages (``candidates`` or ``previous sites``).

    Returns
    -------
    (valid, rejects)
        ``valid``: ``site_id``, ``lat``, ``lon``, ``capacity`` (NaN where not given), ``cost``
        (NaN where not given), ``row``; ``rejects``: ``site_id``, ``row``, ``field``, ``reason``,
        one row per rejected input row (row N is the N-th data row, line N + 1 of a CSV).

    Raises
    ------
    InputError
        When the file is missing or unreadable, or a required column is absent.
    """
    df = source.astype(str) if isinstance(source, pd.DataFrame) else _read_table(source, what)
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in ("site_id", "lat", "lon") if c not in df.columns]
    if missing:
        name = "table" if isinstance(source, pd.DataFrame) else str(source)
        raise InputError(f"{name}: the {what} file has no column {', '.join(repr(c) for c in missing)} "
                         f"(columns: {', '.join(map(str, df.columns))})", field=missing[0])
    n = len(df)
    rows = np.arange(1, n + 1)
    sid = df["site_id"].astype(str).str.strip()
    reason = np.full(n, None, dtype=object)
    fld = np.full(n, None, dtype=object)

    def bad(mask: np.ndarray, f: str, msg) -> None:
        take = mask & (reason == None)  # noqa: E711
        for i in np.flatnonzero(take):
            reason[i] = msg(i) if callable(msg) else msg
            fld[i] = f

    bad((sid == "").to_numpy(), "site_id", lambda i: f"row {rows[i]}: site_id is empty")
    dup = sid.duplicated(keep="first").to_numpy() & (sid != "").to_numpy()
    first = {}
    for i, s in enumerate(sid):
        first.setdefault(s, rows[i])
    bad(dup, "site_id", lambda i: f"row {rows[i]}: site_id {sid.iloc[i]!r} repeats row {first[sid.iloc[i]]}")
    num = {}
    for col, lo, hi in (("lat", -90, 90), ("lon", -180, 180)):
        txt = df[col].astype(str).str.strip()
        v = pd.to_numeric(txt, errors="coerce").to_numpy(dtype=float)
        bad((txt == "").to_numpy(), col, lambda i, c=col: f"row {rows[i]}: {c} is empty")
        bad(~np.isfinite(v), col, lambda i, c=col, t=txt: f"row {rows[i]}: {c} {t.iloc[i]!r} is not a number")
        bad((v < lo) | (v > hi), col, lambda i, c=col, vv=v, a=lo, b=hi: f"row {rows[i]}: {c} {vv[i]:g} is outside [{a}, {b}]")
        num[col] = v
    for col in ("capacity", "cost"):
        if col not in df.columns:
            num[col] = np.full(n, np.nan)
            continue
        txt = df[col].astype(str).str.strip()
        empty = (txt == "").to_numpy()
        v = pd.to_numeric(txt.where(~empty, None), errors="coerce").to_numpy(dtype=float)
        bad(~empty & ~np.isfinite(v), col, lambda i, c=col, t=txt: f"row {rows[i]}: {c} {t.iloc[i]!r} is not a number")
        if col == "capacity":
            bad(~empty & np.isfinite(v) & ((v < 1) | (v != np.round(v))), col,
                lambda i, vv=v: f"row {rows[i]}: capacity {vv[i]:g} is not a whole number of specialists >= 1")
        else:
            bad(~empty & np.isfinite(v) & (v < 0), col, lambda i, vv=v: f"row {rows[i]}: cost {vv[i]:g} is negative")
        num[col] = np.where(empty, np.nan, v)
    ok = reason == None  # noqa: E711
    valid = pd.DataFrame({"site_id": sid.to_numpy()[ok], "lat": num["lat"][ok], "lon": num["lon"][ok],
                          "capacity": num["capacity"][ok], "cost": num["cost"][ok], "row": rows[ok]})
    rejects = pd.DataFrame({"site_id": sid.to_numpy()[~ok], "row": rows[~ok], "field": fld[~ok],
                            "reason": reason[~ok]})
    return valid.reset_index(drop=True), _rejects_frame(rejects)


def _rejects_frame(df: pd.DataFrame | None = None) -> pd.DataFrame:
    cols = ["site_id", "row", "field", "reason"]
    if df is None or not len(df):
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else object) for c in cols})
    return df[cols].astype({"row": "int64"}).reset_index(drop=True)


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------

class _Local:
    """Equirectangular km around the plan's mean latitude (city scale: error well under 1%)."""

    def __init__(self, lat0: float) -> None:
        self.kx = _EARTH_KM * math.radians(1.0) * math.cos(math.radians(lat0))
        self.ky = _EARTH_KM * math.radians(1.0)

    def xy(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.column_stack([np.asarray(lon, float) * self.kx, np.asarray(lat, float) * self.ky])


def _haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _cell_areas(cells: pd.DataFrame, xy: np.ndarray) -> np.ndarray:
    """Connected parts of the tiling (cells whose centres are neighbour-close): land cut off by
    water (cells left out of the tiling) is a part of its own."""
    res = np.array([h3.get_resolution(c) for c in cells["cell"].tolist()])
    edge = {r: h3.average_hexagon_edge_length(int(r), unit="km") for r in np.unique(res)}
    e = np.array([edge[r] for r in res])
    tree = cKDTree(xy)
    pairs = tree.query_pairs(r=1.2 * math.sqrt(3) * e.max(), output_type="ndarray")
    if len(pairs):
        d = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T)
        keep = d <= 1.2 * (math.sqrt(3) / 2) * (e[pairs[:, 0]] + e[pairs[:, 1]])
        pairs = pairs[keep]
    n = len(cells)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
                   shape=(n, n))
    return connected_components(g, directed=False)[1]


def _cell_zones(cells: pd.DataFrame, zones_path: str | None) -> np.ndarray:
    if not zones_path:
        return np.zeros(len(cells), dtype=np.int64)
    import geopandas as gpd

    from .ingest import read_zones

    geoms = read_zones(zones_path)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(cells["lon"], cells["lat"]), crs="EPSG:4326")
    zg = gpd.GeoDataFrame({"zone": np.arange(len(geoms))}, geometry=list(geoms), crs="EPSG:4326")
    j = gpd.sjoin(pts, zg, how="left", predicate="within")
    j = j[~j.index.duplicated(keep="first")]
    return j["zone"].fillna(-1).to_numpy(dtype=np.int64)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

def _cost_matrix(ax: np.ndarray, aw: np.ndarray, ag: np.ndarray, n_grids: int, sx: np.ndarray) -> np.ndarray:
    """(grids, sites) workload-weighted distance from each grid's demand atoms to each site."""
    out = np.empty((n_grids, len(sx)))
    step = max(1, 4_000_000 // max(1, len(ax)))
    for s in range(0, len(sx), step):
        d = np.sqrt(((ax[:, None, :] - sx[None, s:s + step, :]) ** 2).sum(axis=2))
        for k in range(d.shape[1]):
            out[:, s + k] = np.bincount(ag, weights=aw * d[:, k], minlength=n_grids)
    return out


def _assign_unit(cost: np.ndarray, cap: np.ndarray, opened: np.ndarray) -> np.ndarray | None:
    """Exact assignment of unit-demand grids to the open sites within capacity (Hungarian)."""
    cols = np.repeat(opened, cap[opened].astype(np.int64))
    if cols.size < cost.shape[0]:
        return None
    r, c = linear_sum_assignment(cost[:, cols])
    a = np.empty(cost.shape[0], dtype=np.int64)
    a[r] = cols[c]
    return a


@dataclass
class _Instance:
    cost: np.ndarray        # (grids, candidates) with penalties
    real: np.ndarray        # (grids, candidates) without penalties
    cap: np.ndarray
    fixed: np.ndarray
    cand: pd.DataFrame      # site_id, lat, lon, x, y, region, previous
    grid_region: np.ndarray


def _fewest(n_by_region: dict[int, int], cand: pd.DataFrame, cap: np.ndarray) -> int:
    """Fewest sites holding every grid, each area (water, zones) served from inside where its candidates can."""
    total, short = 0, 0.0
    region = cand["region"].to_numpy()
    for r, need in sorted(n_by_region.items()):
        caps = np.sort(cap[region == r])[::-1]
        cum = np.cumsum(caps)
        if len(cum) and cum[-1] >= need - 1e-9:
            total += int(np.searchsorted(cum, need - 1e-9)) + 1
        else:  # the area cannot hold its own grids: all its sites, the rest from outside
            total += len(caps)
            short += need - (cum[-1] if len(cum) else 0.0)
    if short > 0:
        total += 1
    caps_all = np.sort(cap)[::-1]
    need_all = sum(n_by_region.values())
    p = max(total, 1)
    while p < len(caps_all) and caps_all[:p].sum() < need_all - 1e-9:
        p += 1
    return min(p, len(cap))


def _solve(inst: _Instance, p: int | None, must: np.ndarray, self_cand: bool, cfg: SitesConfig,
           allowed: np.ndarray | None = None):
    """Solve on the allowed candidates; returns (open indices, assignment) in candidate indices."""
    idx = np.arange(len(inst.cap)) if allowed is None else np.flatnonzero(allowed)
    cost = inst.cost[:, idx]
    res = capacitated_facility_location(
        cost, np.ones(cost.shape[0]), inst.cap[idx], fixed_costs=inst.fixed[idx], p=p, must_open=must[idx],
        points_are_candidates=self_cand and allowed is None, time_limit=cfg.time_limit, seed=cfg.seed)
    opened = idx[res.open]
    a = idx[res.assignment]
    better = _assign_unit(inst.cost, inst.cap, opened)
    if better is not None and inst.cost[np.arange(len(a)), better].sum() < inst.cost[np.arange(len(a)), a].sum() - 1e-9:
        a = better
    return opened, a, res


def _objective(inst: _Instance, opened: np.ndarray, a: np.ndarray) -> float:
    return float(inst.cost[np.arange(len(a)), a].sum() + inst.fixed[opened].sum())


def site_service_points(plan: Any, candidates: str | Path | pd.DataFrame | None = None,
                        config: SitesConfig | None = None, *,
                        previous_sites: str | Path | pd.DataFrame | None = None) -> SitesResult:
    """Choose the service points of a plan and the grids each serves.

    Parameters
    ----------
    plan
        A plan folder or a :class:`~gridengine.plan.Plan`.
    candidates
        Candidate premises (CSV/Parquet path or table: ``site_id``, ``lat``, ``lon``, optional
        ``capacity``, ``cost``); ``None``: any cell of the service area (one candidate per grid,
        each open site then moves to the best cell of the territory it serves).
    config
        :class:`SitesConfig`; default capacity 8 specialists, fewest sites.
    previous_sites
        The ``sites.csv`` of an earlier run: those sites stay open unless capacity or a large
        gain forces a change.

    Returns
    -------
    SitesResult
        Sites, grid-to-site table, rejects, changes, metrics; ``.write(folder)`` writes them.

    Raises
    ------
    InputError
        Unreadable or malformed candidates, or no valid candidate.
    InfeasibleError
        When the candidates cannot hold every specialist (or ``n_sites`` is too few).

    Examples
    --------
    >>> res = site_service_points("out/sample", config=SitesConfig(max_specialists_per_site=6))  # doctest: +SKIP
    >>> res.write("out/sample-sites")  # doctest: +SKIP
    """
    from . import __version__
    from .plan import Plan

    t_start = time.perf_counter()
    started = datetime.now(timezone.utc)
    cfg = config or SitesConfig()
    plan_dir = None
    if not isinstance(plan, Plan):
        plan_dir = Path(plan)
        plan = Plan.read(plan_dir)
    grids = plan.grids.sort_values("grid_id", kind="stable").reset_index(drop=True)
    ng = len(grids)
    if ng == 0:
        raise InputError("the plan has no grids")
    cells = plan.cells.reset_index(drop=True)
    lat0 = float(np.nanmean(cells["lat"].to_numpy()))
    loc = _Local(lat0)
    cxy = loc.xy(cells["lat"].to_numpy(), cells["lon"].to_numpy())
    gindex = pd.Index(grids["grid_id"].astype(str))
    cgrid = gindex.get_indexer(cells["grid_id"].astype(str))
    region_of_cell = _cell_areas(cells, cxy)
    zones = _cell_zones(cells, cfg.zones)
    region_of_cell = pd.factorize(pd.Series(list(zip(region_of_cell.tolist(), zones.tolist()))), sort=True)[0]
    # demand atoms: a grid's customers per cell (mean position, the cell's workload per customer)
    asg = plan.assignments
    cust_grid = gindex.get_indexer(asg["grid_id"].astype(str))
    cinfo = cells.set_index("cell")
    per = (cinfo["workload"] / cinfo["n_customers"].where(cinfo["n_customers"] > 0)).reindex(asg["cell"].astype(str))
    per = per.fillna(1.0).to_numpy(dtype=float)
    at = pd.DataFrame({"g": cust_grid, "cell": asg["cell"].astype(str).to_numpy(), "lat": asg["lat"].to_numpy(float),
                       "lon": asg["lon"].to_numpy(float), "w": per})
    at = at[at["g"] >= 0].groupby(["g", "cell"], sort=True).agg(lat=("lat", "mean"), lon=("lon", "mean"),
                                                                   w=("w", "sum")).reset_index()
    empty_grids = np.setdiff1d(np.arange(ng), at["g"].unique())
    if empty_grids.size:
        at = pd.concat([at, pd.DataFrame({"g": empty_grids, "cell": "", "lat": grids["centre_lat"].to_numpy(float)[empty_grids],
                                          "lon": grids["centre_lon"].to_numpy(float)[empty_grids], "w": 1e-6})],
                       ignore_index=True)
    ax, ag = loc.xy(at["lat"].to_numpy(), at["lon"].to_numpy()), at["g"].to_numpy(np.int64)
    aw = np.maximum(at["w"].to_numpy(float), 1e-6)
    cell_tree = cKDTree(cxy)
    atom_region = region_of_cell[cell_tree.query(ax)[1]]
    gw_reg = pd.DataFrame({"g": ag, "r": atom_region, "w": aw}).groupby(["g", "r"], sort=True)["w"].sum()
    gw_reg = gw_reg.reset_index().sort_values(["g", "w", "r"], ascending=[True, False, True], kind="stable")
    grid_region = gw_reg.drop_duplicates("g").set_index("g")["r"].reindex(np.arange(ng)).fillna(-1).to_numpy(np.int64)

    rejects = _rejects_frame()
    warnings: list[str] = []
    cap_default = int(cfg.max_specialists_per_site)
    inputs: dict[str, Any] = {"plan": str(plan_dir.name) if plan_dir else "<plan>",
                              "plan_manifest_sha256": hashlib.sha256(json.dumps(
                                  plan.manifest, sort_keys=True, ensure_ascii=False).encode()).hexdigest()}

    def located(df: pd.DataFrame, kind: str) -> pd.DataFrame:
        df = df.copy()
        xy = loc.xy(df["lat"].to_numpy(), df["lon"].to_numpy())
        d, nearest = cell_tree.query(xy) if len(df) else (np.zeros(0), np.zeros(0, dtype=np.int64))
        df["x"], df["y"] = xy[:, 0], xy[:, 1]
        df["region"] = region_of_cell[nearest] if len(df) else np.zeros(0, dtype=np.int64)
        df["outside_km"] = d
        return df

    def split_outside(df: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        out = df["outside_km"].to_numpy() > OUTSIDE_KM
        rej = pd.DataFrame({"site_id": df.loc[out, "site_id"], "row": df.loc[out, "row"], "field": "lat",
                            "reason": [f"row {r}: ({la:.6f}, {lo:.6f}) is {d:.1f} km outside the service area"
                                       + (f" ({kind})" if kind != "candidates" else "")
                                       for r, la, lo, d in zip(df.loc[out, "row"], df.loc[out, "lat"],
                                                               df.loc[out, "lon"], df.loc[out, "outside_km"])]})
        return df.loc[~out].reset_index(drop=True), rej

    # previous sites
    prev = None
    prev_closed_outside: list[tuple[str, str]] = []
    if previous_sites is not None:
        pv, prej = read_candidates(previous_sites, what="previous sites")
        if len(prej):
            warnings.append(f"{len(prej)} previous site row(s) unreadable and left out (first: {prej['reason'].iloc[0]})")
        pv = located(pv, "previous site")
        pv, pout = split_outside(pv, "previous site")
        prev_closed_outside = [(s, r) for s, r in zip(pout["site_id"], pout["reason"])]
        prev = pv
        if not isinstance(previous_sites, pd.DataFrame):
            inputs["previous_sites"] = {"name": Path(previous_sites).name, "sha256": _sha256(previous_sites)}

    self_cand = candidates is None
    if candidates is None:
        # one candidate per grid: the cell of its territory minimising its own weighted distance
        rows = []
        order = np.argsort(cgrid, kind="stable")
        bounds = np.searchsorted(cgrid[order], np.arange(ng + 1))
        for g in range(ng):
            cs = order[bounds[g]:bounds[g + 1]]
            m = ag == g
            if cs.size == 0:  # a grid sharing another's cell: the cell nearest its customers
                best = int(cell_tree.query((ax[m] * aw[m][:, None]).sum(axis=0) / aw[m].sum())[1])
            else:
                d = np.sqrt(((cxy[cs][:, None, :] - ax[m][None, :, :]) ** 2).sum(axis=2)) @ aw[m]
                best = int(cs[np.argmin(d)])
            rows.append((f"C{g + 1:04d}", float(cells["lat"].iat[best]), float(cells["lon"].iat[best]), best))
        cand = pd.DataFrame(rows, columns=["site_id", "lat", "lon", "cell_index"])
        cand["capacity"] = np.nan
        cand["cost"] = np.nan
        cand["row"] = 0
        cand = located(cand, "candidates")
        inputs["candidates"] = None
    else:
        cand, rejects = read_candidates(candidates)
        cand = located(cand, "candidates")
        cand, out_rej = split_outside(cand, "candidates")
        rejects = _rejects_frame(pd.concat([rejects, out_rej], ignore_index=True).sort_values("row", kind="stable")) \
            if len(out_rej) else rejects
        if not isinstance(candidates, pd.DataFrame):
            inputs["candidates"] = {"name": Path(candidates).name, "sha256": _sha256(candidates)}
        if len(cand) == 0 and prev is None:
            raise InputError(f"no valid candidate site: {len(rejects)} rejected"
                             + (f" (first: {rejects['reason'].iloc[0]})" if len(rejects) else ""))
    cand["previous"] = False
    if prev is not None:
        p2 = prev.copy()
        p2["previous"] = True
        if self_cand:  # default candidates get ids that cannot clash with the previous ones
            cand = cand[~cand["site_id"].isin(set(p2["site_id"]))]
        else:
            cand = cand[~cand["site_id"].isin(set(p2["site_id"]))]
        cand = pd.concat([p2, cand], ignore_index=True)
        self_cand = False
    cand = cand.reset_index(drop=True)
    m = len(cand)
    cap = np.where(np.isfinite(cand["capacity"].to_numpy(float)), cand["capacity"].to_numpy(float), cap_default)
    fixed = np.where(np.isfinite(cand["cost"].to_numpy(float)), cand["cost"].to_numpy(float),
                     cfg.site_cost if cfg.site_cost is not None else 0.0)
    sxy = cand[["x", "y"]].to_numpy()
    real = _cost_matrix(ax, aw, ag, ng, sxy)
    cross = grid_region[:, None] != cand["region"].to_numpy()[None, :]
    penalty = 10.0 * (real.max() + 1.0) if cross.any() else 0.0
    inst = _Instance(cost=real + penalty * cross, real=real, cap=cap.astype(float), fixed=fixed, cand=cand,
                     grid_region=grid_region)
    n_by_region = pd.Series(grid_region).value_counts().to_dict()
    if cap.sum() < ng:
        raise InfeasibleError(f"the {m} candidate sites hold {cap.sum():g} specialists, but the plan has {ng} grids "
                              f"(one specialist each): {ng - cap.sum():g} places short")

    has_cost = cfg.site_cost is not None or np.isfinite(cand["cost"].to_numpy(float)).any()
    if cfg.n_sites is not None:
        mode, p_target = "n_sites", int(cfg.n_sites)
        if p_target > m:
            raise InfeasibleError(f"n_sites = {p_target} but there are only {m} candidate sites")
        if np.sort(cap)[::-1][:p_target].sum() < ng:
            raise InfeasibleError(f"n_sites = {p_target}: the largest {p_target} candidates hold "
                                  f"{np.sort(cap)[::-1][:p_target].sum():g} specialists, fewer than the {ng} grids")
    elif has_cost:
        mode, p_target = "site_cost", None
    else:
        mode, p_target = "fewest", _fewest(n_by_region, cand, cap)

    no_must = np.zeros(m, dtype=bool)
    changes_rows: list[dict] = []
    rerun = None
    if prev is None:
        opened, a, res = _solve(inst, p_target, no_must, self_cand, cfg)
        status = {s: ("new", "") for s in cand["site_id"].iloc[opened]}
    else:
        is_prev = cand["previous"].to_numpy()
        n_prev = int(is_prev.sum())
        # keep: every previous site open, new ones only as capacity needs
        if mode == "n_sites" and p_target < n_prev:
            keep_p, keep_must, keep_allowed = p_target, no_must, is_prev
        else:
            keep_allowed = None
            keep_must = is_prev
            if mode == "fewest":
                prev_cap = cap[is_prev].sum()
                extra = 0
                caps_new = np.sort(cap[~is_prev])[::-1]
                while prev_cap + caps_new[:extra].sum() < ng and extra < caps_new.size:
                    extra += 1
                keep_p = max(n_prev + extra, 1)
            else:
                keep_p = p_target
        k_open, k_a, _ = _solve(inst, keep_p, keep_must, False, cfg, allowed=keep_allowed)
        k_obj = _objective(inst, k_open, k_a)
        f_open, f_a, _ = _solve(inst, p_target, no_must, False, cfg)
        f_obj = _objective(inst, f_open, f_a)
        gain = (k_obj - f_obj) / k_obj if k_obj > 0 else 0.0
        take_free = gain >= cfg.rerun_gain
        opened, a = (f_open, f_a) if take_free else (k_open, k_a)
        ids = cand["site_id"].to_numpy()
        open_set = set(opened.tolist())
        status = {}
        prev_cap = float(cap[is_prev].sum())
        for j in range(m):
            sid = str(ids[j])
            if is_prev[j] and j in open_set:
                status[sid] = ("kept", "previous site, kept open")
                changes_rows.append({"site_id": sid, "change": "kept", "reason": "previous site, kept open"})
            elif is_prev[j]:
                why = (f"re-siting lowers the objective by {gain:.1%} (at least {cfg.rerun_gain:.0%}): "
                       f"{k_obj:.1f} -> {f_obj:.1f}") if take_free else \
                      f"n_sites = {p_target} is below the {n_prev} previous sites"
                changes_rows.append({"site_id": sid, "change": "closed", "reason": why})
            elif j in open_set:
                if take_free:
                    why = (f"re-siting lowers the objective by {gain:.1%} (at least {cfg.rerun_gain:.0%}): "
                           f"{k_obj:.1f} -> {f_obj:.1f}")
                elif mode == "fewest":
                    why = f"capacity: the {n_prev} previous sites hold {prev_cap:g} specialists, the plan has {ng} grids"
                elif mode == "n_sites":
                    why = f"n_sites = {p_target} is above the {n_prev} previous sites"
                else:
                    why = "the site cost is outweighed by the distance it saves"
                status[sid] = ("opened", why)
                changes_rows.append({"site_id": sid, "change": "opened", "reason": why})
        for sid, why in prev_closed_outside:
            changes_rows.append({"site_id": sid, "change": "closed", "reason": why})
        rerun = {"previous_sites": n_prev + len(prev_closed_outside),
                 "kept": sum(1 for r in changes_rows if r["change"] == "kept"),
                 "opened": sum(1 for r in changes_rows if r["change"] == "opened"),
                 "closed": sum(1 for r in changes_rows if r["change"] == "closed"),
                 "objective_keeping": round(k_obj, 3), "objective_resited": round(f_obj, 3),
                 "gain_resited": round(gain, 6), "resited": bool(take_free), "rerun_gain": cfg.rerun_gain}

    # default candidates: move each open site to the best cell of the territory it serves
    if self_cand and prev is None:
        new_xy = sxy.copy()
        for j in opened:
            served = np.flatnonzero(a == j)
            cs = np.flatnonzero(np.isin(cgrid, served) & (region_of_cell == cand["region"].iat[j]))
            if cs.size == 0:
                continue
            m_at = np.isin(ag, served)
            best_d, best_c = np.inf, -1
            for s in range(0, cs.size, 256):
                blk = cs[s:s + 256]
                d = np.sqrt(((cxy[blk][:, None, :] - ax[m_at][None, :, :]) ** 2).sum(axis=2)) @ aw[m_at]
                k = int(np.argmin(d))
                if d[k] < best_d - 1e-9:
                    best_d, best_c = float(d[k]), int(blk[k])
            cur = real[served, j].sum()
            if best_c >= 0 and best_d < cur - 1e-9:
                cand.loc[j, ["lat", "lon"]] = [float(cells["lat"].iat[best_c]), float(cells["lon"].iat[best_c])]
                new_xy[j] = cxy[best_c]
        sub_real = _cost_matrix(ax, aw, ag, ng, new_xy[opened])
        sub_cost = sub_real + penalty * cross[:, opened]
        r, c = linear_sum_assignment(sub_cost[:, np.repeat(np.arange(opened.size), cap[opened].astype(np.int64))])
        cols = np.repeat(np.arange(opened.size), cap[opened].astype(np.int64))
        a = np.empty(ng, dtype=np.int64)
        a[r] = opened[cols[c]]
        real[:, opened] = sub_real
        inst.cost[:, opened] = sub_cost
        used = np.unique(a)
        opened = used  # a site left without grids after the moves closes
        status = {s: ("new", "") for s in cand["site_id"].iloc[opened]}

    # ---- tables and metrics
    gw = grids["workload"].to_numpy(dtype=float)
    staffed = (grids["specialist_id"].astype(str) != "").to_numpy()
    site_ids = cand["site_id"].astype(str).to_numpy()
    sites = pd.DataFrame({
        "site_id": site_ids[opened], "lat": np.round(cand["lat"].to_numpy(float)[opened], 7),
        "lon": np.round(cand["lon"].to_numpy(float)[opened], 7),
        "n_grids": np.bincount(a, minlength=m)[opened].astype("int64"),
        "n_specialists": np.bincount(a, weights=staffed.astype(float), minlength=m)[opened].astype("int64"),
        "workload": np.round(np.bincount(a, weights=gw, minlength=m)[opened], 6),
        "capacity": cap[opened].astype("int64"),
        "status": [status.get(s, ("new", ""))[0] for s in site_ids[opened]],
        "reason": [status.get(s, ("new", ""))[1] for s in site_ids[opened]],
    })
    # site ids for default candidates: numbered by position, west to east within north to south
    if self_cand and prev is None:
        order = np.lexsort((sites["lon"].to_numpy(), -sites["lat"].to_numpy()))
        rename = {old: f"S{k + 1:03d}" for k, old in enumerate(sites["site_id"].to_numpy()[order])}
        sites["site_id"] = sites["site_id"].map(rename)
        site_ids = np.array([rename.get(s, s) for s in site_ids], dtype=object)
    sites = sites.sort_values("site_id", kind="stable").reset_index(drop=True)
    grid_w = np.bincount(ag, weights=aw, minlength=ng)
    dist_g = real[np.arange(ng), a] / np.where(grid_w > 0, grid_w, 1.0)
    grid_sites = pd.DataFrame({"grid_id": grids["grid_id"].astype(str).to_numpy(), "site_id": site_ids[a],
                               "distance_km": np.round(dist_g, 4)})
    # customer-to-site distances, per customer (great circle)
    cg = gindex.get_indexer(asg["grid_id"].astype(str))
    okc = cg >= 0
    s_lat = cand["lat"].to_numpy(float)[a[cg[okc]]]
    s_lon = cand["lon"].to_numpy(float)[a[cg[okc]]]
    dc = _haversine_km(asg["lat"].to_numpy(float)[okc], asg["lon"].to_numpy(float)[okc], s_lat, s_lon)
    cross_grids = int(cross[np.arange(ng), a].sum())
    if cross_grids:
        warnings.append(f"{cross_grids} grid(s) are served from a site across water or a zone border: their own "
                        "area has no candidate site with room (add premises there)")
    fill = sites["n_grids"].to_numpy() / sites["capacity"].to_numpy()
    dist_cost = float(real[np.arange(ng), a].sum())
    site_costs = float(fixed[opened].sum())
    over = int((sites["n_grids"] > sites["capacity"]).sum())
    metrics = {
        "n_grids": int(ng), "n_specialists": int(staffed.sum()), "n_unstaffed_grids": int((~staffed).sum()),
        "n_candidates": int(m), "n_rejects": int(len(rejects)), "n_sites": int(len(sites)), "mode": mode,
        "mean_customer_site_km": round(float(dc.mean()), 4) if dc.size else 0.0,
        "p95_customer_site_km": round(float(np.percentile(dc, 95)), 4) if dc.size else 0.0,
        "weighted_mean_customer_site_km": round(dist_cost / max(grid_w.sum(), 1e-12), 4),
        "max_grid_site_km": round(float(dist_g.max()), 4),
        "fill_mean": round(float(fill.mean()), 6), "fill_min": round(float(fill.min()), 6),
        "fill_max": round(float(fill.max()), 6), "capacity_violations": over,
        "cross_area_grids": cross_grids, "distance_cost": round(dist_cost, 3), "site_costs": round(site_costs, 3),
        "objective": round(dist_cost + site_costs, 3), "rerun": rerun, "warnings": warnings,
    }
    manifest = {"gridengine_version": __version__, "config": asdict(cfg), "inputs": inputs,
                "distance": "straight line (great circle for metrics, local equirectangular for the model)"}
    run = {"started": started.isoformat(timespec="seconds"), "host": socket.gethostname(),
           "total_s": round(time.perf_counter() - t_start, 3),
           "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    changes = pd.DataFrame(changes_rows, columns=["site_id", "change", "reason"])
    g2 = plan.grids.merge(grid_sites[["grid_id", "site_id"]], on="grid_id", how="left")
    logger.info("sites: %d sites for %d grids in %.1fs", len(sites), ng, run["total_s"])
    density = cells.loc[cells["n_customers"] > 0, ["lat", "lon", "workload"]].reset_index(drop=True)
    return SitesResult(sites=sites, grid_sites=grid_sites, rejects=rejects, changes=changes, metrics=metrics,
                       manifest=manifest, run=run, grids=g2, warnings=warnings, specialists=plan.specialists,
                       density=density)


# --------------------------------------------------------------------------------------------
# Output pages
# --------------------------------------------------------------------------------------------

def _sites_geojson(sites: pd.DataFrame) -> str:
    feats = []
    for rec in sites.to_dict("records"):
        props = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        feats.append({"type": "Feature", "properties": props,
                      "geometry": {"type": "Point", "coordinates": [round(float(rec["lon"]), 7),
                                                                    round(float(rec["lat"]), 7)]}})
    return json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False,
                      separators=(",", ":")) + "\n"


def _sites_svg(grids: Any, sites: pd.DataFrame, width: int = 1000) -> str:
    from .report import SvgProjection, city_bounds, colour_hex, fit_size, project_geoms, svg_path_d

    b = city_bounds(grids, sites)
    w, h = fit_size(b, width)
    proj = SvgProjection(b, w, h, 12)
    g = grids.sort_values("grid_id", kind="stable").reset_index(drop=True)
    pg = project_geoms(g.geometry.values, proj, 0.4)
    sidx = {s: k for k, s in enumerate(sites["site_id"].tolist())}
    parts = []
    for rec, geom in zip(g[["grid_id", "site_id", "workload"]].itertuples(index=False), pg):
        k = sidx.get(rec.site_id, -1)
        fill = colour_hex(k) if k >= 0 else "#eeeeee"
        parts.append(f'<path class="grid" data-grid-id="{html.escape(str(rec.grid_id))}" '
                     f'data-site-id="{html.escape(str(rec.site_id))}" fill="{fill}" d="{svg_path_d(geom)}">'
                     f'<title>grid {html.escape(str(rec.grid_id))}: site {html.escape(str(rec.site_id))}, '
                     f'workload {float(rec.workload):g}</title></path>')
    xy = proj(sites[["lon", "lat"]].to_numpy(float)) if len(sites) else np.zeros((0, 2))
    marks = []
    for (x, y), rec in zip(xy, sites.itertuples(index=False)):
        marks.append(f'<g class="site" data-site-id="{html.escape(str(rec.site_id))}">'
                     f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12"/>'
                     f'<text x="{x + 8:.1f}" y="{y + 4:.1f}">{html.escape(str(rec.site_id))}</text>'
                     f'<title>site {html.escape(str(rec.site_id))}: {rec.n_grids} grids, {rec.n_specialists} '
                     f'specialists of {rec.capacity}, workload {float(rec.workload):g}</title></g>')
    css = (".grid{stroke:#37474f;stroke-width:.6;fill-opacity:.75;vector-effect:non-scaling-stroke}"
           ".site rect{fill:#b71c1c;stroke:#fff;stroke-width:1.5}"
           ".site text{font:600 11px system-ui,Arial,sans-serif;paint-order:stroke;stroke:#fff;stroke-width:3px}")
    return (f'<svg id="sites-map" viewBox="0 0 {w} {h}" width="100%" role="img" '
            f'aria-label="{len(sites)} service points and the grids each serves"><style>{css}</style>'
            f'<g id="layer-grids">{"".join(parts)}</g><g id="layer-sites">{"".join(marks)}</g></svg>')


def render_sites_map_html(grids: Any, sites: pd.DataFrame, specialists: pd.DataFrame | None = None,
                          density: pd.DataFrame | None = None) -> str:
    """The plan's interactive map (:func:`gridengine.report.render_map_html`) with a service-point layer.

    Parameters
    ----------
    grids
        The plan's grids (EPSG:4326) with a ``site_id`` column.
    sites
        The open sites (``site_id``, ``lat``, ``lon``, ``n_grids``, ``n_specialists``, ``capacity``, ``workload``).
    specialists
        The roster (bases drawn as on the plan's map); ``None``: none drawn.
    density
        Occupied cells for the density layer, or ``None``.

    Returns
    -------
    str
        The HTML page (opens offline; layer toggles show or hide the sites and the grid-to-site links).
    """
    from .report import render_map_html

    return render_map_html(grids, specialists if specialists is not None else pd.DataFrame(
        columns=["specialist_id", "lat", "lon", "capacity", "grid_id"]), cells=density,
        title="gridengine service points", sites=sites)


def sites_report_section(result: SitesResult) -> str:
    """The service-points section of a report: figures, the site table and the changes."""
    m = result.metrics
    rows = "".join(
        f"<tr><td>{html.escape(str(r.site_id))}</td><td>{r.lat:.5f}</td><td>{r.lon:.5f}</td><td>{r.n_grids}</td>"
        f"<td>{r.n_specialists}</td><td>{r.capacity}</td><td>{float(r.workload):g}</td>"
        f"<td>{html.escape(str(r.status))}</td><td>{html.escape(str(r.reason))}</td></tr>"
        for r in result.sites.itertuples(index=False))
    figures = [("sites opened", m["n_sites"]), ("grids / specialists", f"{m['n_grids']} / {m['n_specialists']}"),
               ("mean customer-to-site distance", f"{m['mean_customer_site_km']:.3f} km"),
               ("95th percentile", f"{m['p95_customer_site_km']:.3f} km"),
               ("fill (grids / capacity)", f"mean {m['fill_mean']:.1%}, {m['fill_min']:.1%} to {m['fill_max']:.1%}"),
               ("grids served across water or a zone border", m["cross_area_grids"]),
               ("candidates (rejected)", f"{m['n_candidates']} ({m['n_rejects']})")]
    fig = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in figures)
    ch = ""
    if len(result.changes):
        ch = "<h3>Changes from the previous sites</h3><table><tr><th>site</th><th>change</th><th>reason</th></tr>" + "".join(
            f"<tr><td>{html.escape(str(r.site_id))}</td><td>{html.escape(str(r.change))}</td>"
            f"<td>{html.escape(str(r.reason))}</td></tr>" for r in result.changes.itertuples(index=False)) + "</table>"
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    return ('<section id="service-points"><h2>Service points</h2>'
            + (f"<ul class=\"warnings\">{warn}</ul>" if warn else "")
            + f"<table class=\"figures\">{fig}</table>{_sites_svg(result.grids, result.sites, 900)}"
            "<h3>Sites</h3><table class=\"sites\"><tr><th>site</th><th>lat</th><th>lon</th><th>grids</th>"
            f"<th>specialists</th><th>capacity</th><th>workload</th><th>status</th><th>reason</th></tr>{rows}</table>"
            f"{ch}</section>")


def render_sites_report_html(result: SitesResult) -> str:
    """A self-contained report page holding :func:`sites_report_section`."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Service points report</title>"
            "<style>body{font:14px system-ui,Arial,sans-serif;margin:20px;max-width:1100px}table{border-collapse:"
            "collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
            ".warnings{color:#b71c1c}</style></head><body><h1>Service points</h1>"
            f"{sites_report_section(result)}</body></html>\n")
