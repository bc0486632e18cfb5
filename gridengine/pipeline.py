"""The one-call API: customers and specialists in, a :class:`~gridengine.plan.Plan` out.

Stages, each a module of its own, passing plain tables:
ingest → geocode → cells → partition → assign → metrics (→ report when the plan is written).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import resource
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from ._version import __version__
from .assign import assign_specialists, design_capacity, grid_requirements, staffing_plan
from .cells import build_cells, cells_to_polygon, refine_resolution, split_heavy_cells
from .config import Config
from .errors import ConfigError, InfeasibleError, InputError
from .geocode import check_reject_share, geocode_customers
from .ingest import (
    file_sha256,
    read_customers,
    read_geometry,
    read_service_area,
    read_specialists,
    read_zones,
    table_sha256,
    validate_customers,
    validate_specialists,
)
from .locks import LockedGrids, read_locks, resolve_locks, take_locked_customers
from .metrics import compute_metrics, rerun_metrics
from .partition import partition_cells
from .partition.roster import MAX_FILL, size_to_roster
from .plan import Plan

__all__ = ["plan_city"]

logger = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    import networkx
    import ortools
    import pyarrow
    import scipy

    return {
        "gridengine": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "pandas": pd.__version__, "geopandas": gpd.__version__, "shapely": shapely.__version__,
        "h3": h3.__version__, "ortools": ortools.__version__, "scipy": scipy.__version__,
        "networkx": networkx.__version__, "pyarrow": pyarrow.__version__,
    }


def _input(obj: Any, kind: str) -> dict[str, Any]:
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        return {"name": p.name, "sha256": file_sha256(p)} if p.is_file() else {"name": p.name, "sha256": None}
    if isinstance(obj, pd.DataFrame):
        return {"name": f"<{kind} table>", "sha256": table_sha256(obj)}
    return {"name": f"<{kind} geometry>", "sha256": None if obj is None else
            __import__("hashlib").sha256(shapely.to_wkb(obj)).hexdigest()}


_BARRIER_KINDS = {"Polygon", "MultiPolygon", "LineString", "MultiLineString"}


def _blocked_pairs(cells: np.ndarray, cut: tuple[np.ndarray, np.ndarray]) -> set[tuple[str, str]]:
    """The H3 neighbour pairs that barriers or zone boundaries removed (cells as strings)."""
    return {(h3.int_to_str(int(cells[i])), h3.int_to_str(int(cells[j])))
            for i, j in zip(cut[0].tolist(), cut[1].tolist())}


def _grids_table(cells: pd.DataFrame, cell_str: np.ndarray, cell_grid: np.ndarray, cust_grid: np.ndarray,
                 located: pd.DataFrame, shared: dict[str, int]) -> tuple[pd.DataFrame, list]:
    """One row per grid (territory grids and dedicated grids of split compounds) and its geometry."""
    grid_ids = np.array(sorted(set(cell_grid.tolist()) | set(shared)), dtype=object)
    index = pd.Index(grid_ids)
    gpos = index.get_indexer(cust_grid)
    cpos = index.get_indexer(cell_grid)
    k = len(grid_ids)
    w = located["workload"].to_numpy()
    gw = np.bincount(gpos, weights=w, minlength=k)
    gn = np.bincount(gpos, minlength=k)
    wl = np.bincount(gpos, weights=w * located["lat"].to_numpy(), minlength=k)
    wn = np.bincount(gpos, weights=w * located["lon"].to_numpy(), minlength=k)
    # territory of each grid: its cells, or the one cell a dedicated grid shares
    terr_grid = np.r_[cpos, index.get_indexer(list(shared))]
    terr_cell = np.r_[np.arange(len(cell_grid)), list(shared.values())].astype("int64")
    nc = np.bincount(terr_grid, minlength=k)
    cl = np.bincount(terr_grid, weights=cells["lat"].to_numpy()[terr_cell], minlength=k) / nc
    cn = np.bincount(terr_grid, weights=cells["lon"].to_numpy()[terr_cell], minlength=k) / nc
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_lat = np.where(gw > 0, wl / np.where(gw > 0, gw, 1), cl)
        centre_lon = np.where(gw > 0, wn / np.where(gw > 0, gw, 1), cn)
    cell_area = np.array([h3.cell_area(c, "km^2") for c in cell_str])
    area_km2 = np.bincount(terr_grid, weights=cell_area[terr_cell], minlength=k)
    order = np.argsort(terr_grid, kind="stable")
    bounds = np.r_[0, np.cumsum(nc)]
    geoms = [cells_to_polygon(list(cell_str[terr_cell[order[bounds[i]:bounds[i + 1]]]])) for i in range(k)]
    grids = pd.DataFrame({
        "grid_id": grid_ids.astype(str), "workload": np.round(gw, 6), "n_customers": gn.astype("int64"),
        "n_cells": nc.astype("int64"), "area_km2": np.round(area_km2, 6),
        "centre_lat": np.round(centre_lat, 7), "centre_lon": np.round(centre_lon, 7),
    })
    return grids, geoms


def _area_staffing_checks(index, area_of_unit: np.ndarray | None, roster: pd.DataFrame,
                          skip: set[int] = frozenset()) -> list[str]:
    """Per disconnected area (island, land cut off by water): capacity based there vs its workload
    (areas in ``skip``, cut off by locked grids rather than water, are not judged)."""
    if area_of_unit is None or len(roster) == 0:
        return []
    cells = index.cells
    n_areas = int(area_of_unit.max()) + 1
    if n_areas < 2:
        return []
    from scipy.spatial import cKDTree

    area_w = np.bincount(area_of_unit, weights=cells["workload"].to_numpy(), minlength=n_areas)
    bx, by = index.projection.to_xy(roster["lat"].to_numpy(), roster["lon"].to_numpy())
    nearest = cKDTree(np.c_[cells["x"].to_numpy(), cells["y"].to_numpy()]).query(np.c_[bx, by], k=1)[1]
    home = area_of_unit[nearest]
    cap = np.bincount(home, weights=roster["capacity"].to_numpy(), minlength=n_areas)
    msgs = []
    for a in np.argsort(-area_w, kind="stable").tolist():
        if area_w[a] > 0 and cap[a] + 1e-9 < area_w[a] and a not in skip:
            m = area_of_unit == a
            lat, lon = cells["lat"].to_numpy()[m].mean(), cells["lon"].to_numpy()[m].mean()
            if index.zone_names is not None:  # areas are zones: a zone border, not water, separates them
                zn = sorted({index.zone_names[int(z)] for z in np.unique(cells["zone"].to_numpy()[m]).tolist()})
                msgs.append(f"zone {'/'.join(zn)}: workload {area_w[a]:g} but specialists based there hold "
                            f"{cap[a]:g} ({area_w[a] - cap[a]:g} short); specialists based in other zones staff "
                            "some of its grids")
                continue
            msgs.append(f"separate area around ({lat:.4f}, {lon:.4f}) ({int(m.sum())} cells): workload {area_w[a]:g} "
                        f"but specialists based there hold {cap[a]:g} ({area_w[a] - cap[a]:g} short); specialists based in "
                        "other areas (across water, a barrier or land outside the service area) staff some of its grids")
    return msgs


def _roster_capacities(roster: pd.DataFrame, config: Config, warnings: list[str]) -> np.ndarray:
    """Each specialist's usable capacity: the roster's, capped by ``partition.capacity`` when set (with a warning)."""
    caps = roster["capacity"].to_numpy(dtype="float64").copy()
    limit = config.partition.capacity
    if limit is None:
        return caps
    capped = caps > limit + 1e-9
    if capped.any():
        warnings.append(
            f"partition.capacity = {limit:g} caps {int(capped.sum())} of {len(caps)} specialists below their roster "
            f"capacity (theirs up to {caps.max():g}): the roster now holds {np.minimum(caps, limit).sum():g} instead of "
            f"{caps.sum():g}; where that is below the workload, grids stay unstaffed. Remove partition.capacity to "
            "plan to the roster's own capacities")
    else:
        warnings.append(f"partition.capacity = {limit:g} has no effect: every specialist's roster capacity is at or "
                        "below it, and grids are sized to the roster")
    return np.minimum(caps, limit)


def _roster_parts(index, located: pd.DataFrame, roster: pd.DataFrame, caps: np.ndarray, sizing,
                  split_group: np.ndarray, split_cell: np.ndarray, bx: np.ndarray, by: np.ndarray) -> pd.DataFrame:
    """The grids to draw for a roster: one per specialist used (minus those a split compound's dedicated
    grids need, nearest first), plus the unstaffed grids of a short roster.

    Columns: ``capacity``, ``x``, ``y`` (anchor, metres), ``current_grid`` (the grid the specialist
    holds, '' for none or an unstaffed grid)."""
    used = [int(j) for j in sizing.used.tolist()]
    cur = roster["current_grid"].astype(str).to_numpy()
    ded = np.flatnonzero(split_group >= 0)
    if len(ded):
        key = split_cell[ded] * 100_000 + split_group[ded]
        w_ded = pd.Series(located["workload"].to_numpy()[ded]).groupby(key).sum()
        cx = index.cells["x"].to_numpy()
        cy = index.cells["y"].to_numpy()
        for kk, wd in w_ded.items():
            c = int(kk) // 100_000
            fit = [j for j in used if caps[j] + 1e-9 >= wd]
            if not fit:
                continue
            held = [j for j in fit if cur[j].endswith(f"-S{int(kk) % 100_000 + 1}")]
            fit = held or fit  # re-runs: whoever served a dedicated grid keeps serving one
            d = np.hypot(bx[fit] - cx[c], by[fit] - cy[c])
            used.remove(fit[int(np.argmin(d))])
    parts = pd.DataFrame({"capacity": caps[used], "x": bx[used], "y": by[used], "current_grid": cur[used],
                          "staffed": True})
    if sizing.n_unstaffed:
        parts = pd.concat([parts, pd.DataFrame({
            "capacity": np.full(sizing.n_unstaffed, sizing.unstaffed_capacity), "x": sizing.unstaffed_x,
            "y": sizing.unstaffed_y, "current_grid": [""] * sizing.n_unstaffed, "staffed": False})],
            ignore_index=True)
    return parts


def _with_locked(cells: pd.DataFrame, cell_str: np.ndarray, cell_grid: np.ndarray, located: pd.DataFrame,
                 cust_grid: np.ndarray, shared: dict[str, int], frozen: LockedGrids | None,
                 held: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray,
                                                     dict[str, int]]:
    """The plan's tables with the locked grids put back beside the planned rest: cells (``cell``, ``lat``,
    ``lon``, ``workload``, ``n_customers``, sorted by H3 index), their H3 strings and grids, the customers
    and their grids, and the cell each dedicated grid shares (positions in the merged cells)."""
    if frozen is None:
        return cells, cell_str, cell_grid, located, cust_grid, shared
    fc = frozen.cells
    n_rest = len(cells)
    all_int = np.r_[cells["cell"].to_numpy(dtype="uint64"), fc["cell_int"].to_numpy(dtype="uint64")]
    order = np.argsort(all_int, kind="stable")
    new_pos = np.empty(len(all_int), dtype="int64")
    new_pos[order] = np.arange(len(all_int))
    # a locked cell's workload is its own grid's customers' (a dedicated grid's customers are counted apart)
    own = held["grid_id"].astype(str).isin(set(fc["grid_id"])).to_numpy()
    fpos = np.searchsorted(fc["cell_int"].to_numpy(dtype="uint64"), held["cell"].to_numpy(dtype="uint64")[own])
    fw = np.bincount(fpos, weights=held["workload"].to_numpy(dtype="float64")[own], minlength=len(fc))
    fn = np.bincount(fpos, minlength=len(fc))
    centres = np.array([h3.cell_to_latlng(c) for c in fc["cell"].tolist()], dtype="float64").reshape(-1, 2)
    merged = pd.DataFrame({
        "cell": all_int[order],
        "lat": np.r_[cells["lat"].to_numpy(), centres[:, 0]][order],
        "lon": np.r_[cells["lon"].to_numpy(), centres[:, 1]][order],
        "workload": np.r_[cells["workload"].to_numpy(dtype="float64"), fw][order],
        "n_customers": np.r_[cells["n_customers"].to_numpy(dtype="int64"), fn][order],
    })
    m_str = np.r_[cell_str.astype(object), fc["cell"].to_numpy(dtype=object)][order]
    m_grid = np.r_[np.asarray(cell_grid).astype(object), fc["grid_id"].to_numpy(dtype=object)][order]
    m_located = pd.concat([located, held.drop(columns=["grid_id"])], ignore_index=True)
    m_cust_grid = np.r_[np.asarray(cust_grid, dtype=object), held["grid_id"].to_numpy(dtype=object)]
    m_shared = {g: int(new_pos[p_]) for g, p_ in shared.items()}
    at = {c: n_rest + i for i, c in enumerate(fc["cell"].tolist())}
    for g, c in zip(frozen.grids["grid_id"], frozen.grids["shared_cell"]):
        if c:
            m_shared[str(g)] = int(new_pos[at[c]])
    return merged, m_str, m_grid, m_located, m_cust_grid, m_shared


def _churn(prev: Plan, located: pd.DataFrame, grid_of_customer: np.ndarray) -> float:
    """Share of continuing customers whose grid changed (before staffing; used to steer max_churn)."""
    before = prev.assignments.set_index("customer_id")["grid_id"].astype(str)
    ids = located["customer_id"].astype(str)
    cont = ids.isin(before.index).to_numpy()
    if not cont.any():
        return 0.0
    return float((before.reindex(ids[cont]).to_numpy() != grid_of_customer[cont].astype(str)).mean())


def _grid_adjacency(cell_grid: np.ndarray, edges: tuple[np.ndarray, np.ndarray]) -> set[tuple[str, str]]:
    """Pairs of grids that share a cell border."""
    a, b = cell_grid[edges[0]], cell_grid[edges[1]]
    diff = a != b
    return {(min(x, y), max(x, y)) for x, y in zip(a[diff].tolist(), b[diff].tolist())}


def _grid_districts(located: pd.DataFrame, cust_grid: np.ndarray) -> dict[str, str] | None:
    """Each grid's district (the one holding most of its workload), when customers carry ``district``."""
    if "district" not in located.columns:
        return None
    df = pd.DataFrame({"g": cust_grid.astype(str), "d": located["district"].astype(str).to_numpy(),
                       "w": located["workload"].to_numpy()})
    top = df.groupby(["g", "d"])["w"].sum().reset_index().sort_values(["g", "w", "d"], ascending=[True, False, True])
    return dict(zip(top.drop_duplicates("g")["g"], top.drop_duplicates("g")["d"]))


def plan_city(
    customers: str | Path | pd.DataFrame,
    specialists: str | Path | pd.DataFrame | None,
    config: Config | None = None,
    *,
    service_area: str | Path | Any = None,
    barriers: str | Path | Any = None,
    zones: str | Path | Any = None,
    locked: str | Path | pd.DataFrame | None = None,
    road_graph: str | Path | Any = None,
    previous: str | Path | Plan | None = None,
    progress: Callable[[str], Any] | None = None,
) -> Plan:
    """Plan one city: customers to cells to contiguous grids, one specialist per grid.

    Parameters
    ----------
    customers
        A customers file (CSV, Parquet, GeoParquet, GeoJSON, GeoPackage) or table with
        ``customer_id`` and ``lat``/``lon``; optional ``workload`` (default 1.0).
    specialists
        A roster file or table with ``specialist_id``, ``lat``, ``lon``, ``capacity``;
        optional ``current_grid``. ``None`` plans grids only and reports how many specialists
        the city needs at ``config.partition.capacity`` (every grid unstaffed).
    config
        The run's :class:`~gridengine.config.Config` (defaults if None).
    service_area
        Optional polygon file or shapely geometry (WGS-84) of the area to tile; by default a
        buffer of ``config.cells.service_area_buffer_m`` around the customers.
    barriers
        Optional file or geometry of lines and polygons no grid may cross (rivers, expressways,
        rail); empty cells inside barrier polygons are left out of the tiling.
    zones
        Optional polygon file or geometry (e.g. street / sub-district boundaries): every grid
        stays inside one zone.
    locked
        Optional locks file (CSV, ``.xlsx``, Parquet) or table, rows of ``grid_id``,
        ``specialist_id``, ``cell`` (any may be blank; :mod:`gridengine.locks`). A ``grid_id``
        or a ``specialist_id`` alone locks that grid of ``previous`` (the specialist's grid): its
        cells, customers and specialist stay exactly as they were, and the rest of the city is
        planned around it with the rest of the roster. ``cell`` with ``grid_id`` pins a cell into a
        grid that keeps that id (first plans). ``metrics["locked_grids"]`` and ``metrics["locks"]``
        say what was locked.
    road_graph
        Optional road network (GraphML or edge-list CSV, see :mod:`gridengine.travel`): travel
        from bases to grids is measured on it (time when the edges carry it, else distance).
    previous
        A previous plan (folder or :class:`Plan`) to re-run from: grids keep their ids and cells,
        new customers join the grid they fall in, and only balance and capacity move customers
        (``partition.churn_weight``, ``partition.max_churn``); specialists without a
        ``current_grid`` keep the grid they had. Metrics add ``churn``, ``customers_moved`` and
        ``grids_changed``.
    progress
        Optional callable told the name of each stage as it starts (``"ingest"``, ``"geocode"``,
        ``"cells"``, ``"partition"``, ``"grids"``, ``"assign"``, ``"metrics"``; see
        :data:`gridengine.progress.PLAN_STAGES`), e.g. :class:`gridengine.progress.StageBar`.

    Returns
    -------
    Plan
        Grids, assignments, rejects, metrics, manifest; write it with :meth:`Plan.write`.

    Raises
    ------
    InputError
        Unusable input (file, row and column named), including locks that cannot hold (a grid or
        specialist not in the previous plan, a locked specialist not in the roster, a locked grid
        over its specialist's capacity).
    InfeasibleError
        No contiguous partition within capacity exists or was found (said in domain terms).
    CapacityShortfallError
        The roster cannot staff every grid and ``config.assign.require_full_staffing`` is set.

    Examples
    --------
    >>> import gridengine as ge
    >>> plan = ge.plan_city("data/sample/customers.csv", "data/sample/specialists.csv",
    ...                     service_area="data/sample/service_area.geojson")  # doctest: +SKIP
    >>> plan.metrics["coverage"]  # doctest: +SKIP
    1.0
    """
    config = config or Config()
    stage = progress if progress is not None else (lambda name: None)
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    # ingest
    stage("ingest")
    if isinstance(customers, pd.DataFrame):
        cust, rejects0 = validate_customers(customers, config=config.input)
    else:
        cust, rejects0 = read_customers(customers, config=config.input)
    if specialists is None:  # staffing need only: how many specialists at this capacity?
        if config.partition.capacity is None:
            raise ConfigError("without a roster, give the grid capacity (partition.capacity / --capacity)")
        roster = pd.DataFrame({"specialist_id": pd.Series(dtype=str), "lat": pd.Series(dtype=float),
                               "lon": pd.Series(dtype=float), "capacity": pd.Series(dtype=float),
                               "current_grid": pd.Series(dtype=str), "row": pd.Series(dtype="int64")})
    elif isinstance(specialists, pd.DataFrame):
        roster = validate_specialists(specialists)
    else:
        roster = read_specialists(specialists, config=config.input)
    for rule in config.assign.rules:
        for table, col, src in ((cust, rule.customer_column, "customers"), (roster, rule.specialist_column, "specialists")):
            if col not in table.columns and (src == "customers" or len(roster)):
                raise InputError(f"{src}: column {col!r} named by a staffing rule is missing", field=col)
    prev_plan = Plan.read(previous) if isinstance(previous, (str, Path)) else previous
    if prev_plan is not None and len(roster) and (roster["current_grid"] == "").all():
        # continuity: a specialist stays on the grid they served in the previous plan
        had = prev_plan.specialists.set_index("specialist_id")["grid_id"].astype(str)
        roster["current_grid"] = roster["specialist_id"].map(had).fillna("").astype(str)
    area = read_service_area(service_area) if isinstance(service_area, (str, Path)) else service_area
    barrier_geom = read_geometry(barriers, kinds=_BARRIER_KINDS, coord_system=config.input.coord_system_of("barriers")
                                 ) if isinstance(barriers, (str, Path)) else barriers
    zone_geom = read_zones(zones, name_column=config.input.zone_name_column or None,
                           coord_system=config.input.coord_system_of("zones")) if isinstance(zones, (str, Path)) else zones
    # locks: whole grids of the previous plan (planned apart) and cell pins (first plans)
    locks = read_locks(locked, encoding=config.input.encoding, columns=config.input.columns) \
        if locked is not None else None
    frozen = resolve_locks(locks, prev_plan, roster if specialists is not None else None,
                           capacity_limit=config.partition.capacity if specialists is not None else None
                           ) if locks is not None else None
    pins = None
    if locks is not None and len(locks.cells):
        pins = locks.cells
        pins.attrs["source"] = locks.source
    timings["ingest"] = time.perf_counter() - t

    # geocode
    stage("geocode")
    t = time.perf_counter()
    located, rejects1 = geocode_customers(cust, coord_system=config.input.coord_system, config=config.geocode)
    try:  # too many rows not placed, or none: stop, the rejects travel with the error to be written
        check_reject_share(rejects1, len(cust), config.geocode, source=str(customers) if isinstance(customers, (str, Path)) else "customers")
        if len(located) == 0:
            raise InputError("no customer could be located: every row was rejected (see the reasons in rejects)")
    except InputError as e:
        e.rejects = pd.concat([r for r in (rejects0, rejects1) if len(r)] or [rejects0], ignore_index=True)
        raise
    if config.input.coord_system_of("specialists") != "wgs84" and len(roster):
        from .geocode import to_wgs84

        roster["lat"], roster["lon"] = to_wgs84(roster["lat"].to_numpy(), roster["lon"].to_numpy(),
                                                config.input.coord_system_of("specialists"))
    # locked grids leave the planning: their specialists leave the roster, their customers the city
    roster_all = roster
    held, rejects_locked, lock_notes, lock_records = None, rejects0.iloc[:0], [], []
    if frozen is not None:
        roster = roster.loc[~roster["specialist_id"].astype(str).isin(set(frozen.grids["specialist_id"]))
                            ].reset_index(drop=True)
        taken = take_locked_customers(frozen, located, prev_plan, max_res=refine_resolution(
            config.cells.resolution, config.cells.max_refine, config.cells.max_cell_share is not None))
        located, held, rejects_locked = taken.rest, taken.held, taken.rejects
        lock_notes, lock_records = taken.notes, taken.records
        if len(located) == 0:
            raise InputError(f"{frozen.source}: the locked grids hold every customer; nothing is left to plan",
                             path=frozen.source)
    timings["geocode"] = time.perf_counter() - t

    # cells
    stage("cells")
    t = time.perf_counter()
    sizing_warnings: list[str] = []
    has_roster = len(roster) > 0
    if has_roster:
        caps = _roster_capacities(roster, config, sizing_warnings)
        capacity = design_capacity(roster.assign(capacity=caps))
    else:
        caps = np.zeros(0)
        capacity = config.partition.capacity if config.partition.capacity is not None else \
            design_capacity(roster if len(roster) else roster_all)
    pconfig = config.partition
    if frozen is not None and pconfig.k is not None:  # k counts every grid, the locked ones included
        if pconfig.k - len(frozen.grids) < 1:
            raise InfeasibleError(f"k = {pconfig.k} grids, but {len(frozen.grids)} are locked ({frozen.source}): "
                                  "none is left for the rest of the city; raise k or lock fewer grids")
        pconfig = dataclasses.replace(pconfig, k=pconfig.k - len(frozen.grids))
    total_w = float(located["workload"].sum())
    if pconfig.k:
        target = total_w / pconfig.k
    elif has_roster:
        fill_est = min(max(total_w / float(caps.sum()), config.partition.target_fill), MAX_FILL)
        target = fill_est * float(np.median(caps))
    else:
        target = config.partition.target_fill * capacity
    max_cell = None if config.cells.max_cell_share is None else config.cells.max_cell_share * target
    index, located, rejects2 = build_cells(
        located, res=config.cells.resolution, service_area=area, buffer_m=config.cells.service_area_buffer_m,
        max_cell_workload=max_cell, max_refine=config.cells.max_refine, barriers=barrier_geom, zones=zone_geom,
        exclude=frozen.cells["cell_int"].to_numpy() if frozen is not None else None)
    if len(located) == 0:
        raise InputError("no customer lies inside the service area")
    timings["cells"] = time.perf_counter() - t

    # partition (locations heavier than a specialist first get dedicated grids at customer level)
    stage("partition")
    t = time.perf_counter()
    if zone_geom is not None:  # zones are hard: every zone with customers gets grids of its own, never a bridge
        pconfig = dataclasses.replace(pconfig, bridge_share=min(pconfig.bridge_share, 1e-9))
    cells_ = index.cells
    roster_sized = has_roster and pins is None
    if has_roster and not roster_sized:
        sizing_warnings.append(f"cell pins: grids are designed at capacity {capacity:g} and then staffed, not sized "
                               "to each specialist of the roster")
    parts = None
    if roster_sized:
        bx, by = index.projection.to_xy(roster["lat"].to_numpy(), roster["lon"].to_numpy())
        cell_w0 = cells_["workload"].to_numpy().copy()
        cell_n0 = cells_["n_customers"].to_numpy().copy()

        def sized(max_fill: float, extra: int = 0, at: tuple[float, float] | None = None):
            return size_to_roster(cell_w0, cells_["x"].to_numpy(), cells_["y"].to_numpy(), caps, bx, by,
                                  target_fill=pconfig.target_fill, k=pconfig.k,
                                  names=roster["specialist_id"].astype(str).tolist(), max_fill=max_fill,
                                  tolerance=pconfig.tolerance, keep_first=holds_grid, extra=extra, extra_at=at)

        holds_grid = roster["current_grid"].astype(str).to_numpy() != ""

        sizing = sized(1.0)
        used = sizing.used
        c_big = float(caps[used].max()) if len(used) else capacity
        chunk = max(sizing.fill, pconfig.target_fill) * c_big
        limit = min(c_big, chunk * (1 + pconfig.tolerance))
    else:
        limit, chunk = capacity, target
    too_heavy = np.flatnonzero(located["workload"].to_numpy() > (c_big if roster_sized else capacity) + 1e-9)
    if len(too_heavy):  # one customer cannot be split between specialists
        i = int(too_heavy[0])
        cap_ = c_big if roster_sized else capacity
        raise InfeasibleError(
            f"customer {located['customer_id'].iat[i]!r} (row {int(located['row'].iat[i])}): column 'workload' = "
            f"{located['workload'].iat[i]:g} is above the {'largest specialist' if roster_sized else 'grid'} capacity "
            f"{cap_:g}; one customer cannot be split "
            f"between specialists ({len(too_heavy)} such customer(s)); check the workload or raise the capacity")
    def split_for_roster(limit: float, chunk: float):
        # compounds heavier than a grid at this fill get dedicated grids; the specialists those take
        # leave the rest of the roster, so split again if a place still outweighs every grid left
        for _ in range(4):
            index.cells["workload"] = cell_w0
            index.cells["n_customers"] = cell_n0
            sg, sc = split_heavy_cells(index, located, limit=limit, chunk=chunk, even=False)
            pts = _roster_parts(index, located, roster, caps, sizing, sg, sc, bx, by)
            top = float(pts["capacity"].max()) if len(pts) else limit
            if float(index.cells["workload"].max()) <= top + 1e-9 or limit <= 1e-9:
                break
            limit = min(limit, 0.95 * top)
            chunk = min(chunk, limit)
        return sg, sc, pts, limit

    if roster_sized:
        split_group, split_cell, parts, split_limit = split_for_roster(limit, chunk)
    else:
        split_limit = limit
        split_group, split_cell = split_heavy_cells(index, located, limit=limit, chunk=chunk)
    n_dedicated = len(np.unique(np.c_[split_cell, split_group][split_group >= 0], axis=0))
    if roster_sized:
        n_dedicated_staff = int(sizing.used.size + sizing.n_unstaffed - len(parts))
        if n_dedicated and n_dedicated_staff < n_dedicated:
            sizing_warnings.append(f"{n_dedicated - n_dedicated_staff} dedicated grid(s) of split compounds have no "
                                   "specialist of their own left in the roster")
    elif n_dedicated and pconfig.k is not None:
        if pconfig.k - n_dedicated < 1:
            raise InfeasibleError(f"k = {pconfig.k} grids cannot cover {n_dedicated} dedicated grids of split compounds "
                                  "and the rest of the city; raise k")
        pconfig = dataclasses.replace(pconfig, k=pconfig.k - n_dedicated)
    prev_cells = prev_plan.cells[["cell", "grid_id"]] if prev_plan is not None else None
    reserved = frozen.ids if frozen is not None else []
    if frozen is not None:  # the locked grids are not re-planned: the rest starts from the other grids
        prev_cells = prev_cells.loc[~prev_cells["grid_id"].astype(str).isin(set(frozen.grids["territory"]))]
    try:
        cell_grid, pres = partition_cells(index, upper=capacity, config=pconfig, seed=config.seed, locked=pins,
                                          parts=parts, previous=prev_cells, reserved=reserved)
    except InfeasibleError as exc:
        if not roster_sized or pconfig.k is not None:
            raise
        # no contiguous plan within every specialist's capacity at this fill (lumpy places leave no
        # room): plan the roster as short, filled less, the rest of the workload in unstaffed grids
        first_exc, done = exc, False
        at = getattr(exc, "where", None)
        # first a few unstaffed grids where the plan failed (the fewest customers left without a
        # specialist), then the whole roster filled less
        attempts = ([(1.0, e, at) for e in (1, 2, 4, 8)] if sizing.n_unstaffed == 0 else []) + \
            [(f, 0, None) for f in (MAX_FILL, 0.9, 0.8, 0.7) if f < sizing.fill - 1e-9]
        for max_fill, extra, where in attempts:
            sizing = sized(max_fill, extra, where)
            c_big = float(caps[sizing.used].max())
            split_group, split_cell, parts, split_limit = split_for_roster(
                min(c_big, sizing.fill * c_big * (1 + pconfig.tolerance)), sizing.fill * c_big)
            n_dedicated = len(np.unique(np.c_[split_cell, split_group][split_group >= 0], axis=0))
            try:
                cell_grid, pres = partition_cells(index, upper=capacity, config=pconfig, seed=config.seed,
                                                  locked=pins, parts=parts, previous=prev_cells, reserved=reserved)
            except InfeasibleError:
                continue
            done = True
            sizing_warnings.append(f"no contiguous plan keeps every specialist within capacity at a fill of "
                                   f"{total_w / float(caps.sum()):.1%} ({first_exc}); "
                                   + (f"{extra} unstaffed grid(s) added there" if extra else
                                      f"planned the roster as short, filled to {max_fill:.0%}"))
            break
        if not done:
            raise first_exc
    if roster_sized:
        sizing_warnings.extend(sizing.notes)
    if prev_plan is not None and pconfig.max_churn is not None:
        weight = pconfig.churn_weight
        for _ in range(3):
            churn = _churn(prev_plan, located, cell_grid.to_numpy()[index.customer_cell])
            if churn <= pconfig.max_churn:
                break
            weight = max(weight, 1.0) * 4
            cell_grid, pres = partition_cells(index, upper=capacity, config=dataclasses.replace(pconfig, churn_weight=weight),
                                              seed=config.seed, locked=pins, parts=parts, previous=prev_cells,
                                              reserved=reserved)
    timings["partition"] = time.perf_counter() - t

    # grids table
    stage("grids")
    t = time.perf_counter()
    cells = index.cells
    cell_str = np.array([h3.int_to_str(int(c)) for c in cells["cell"].tolist()], dtype=object)
    cust_grid = cell_grid.to_numpy()[index.customer_cell].astype(object)
    shared: dict[str, int] = {}
    warnings: list[str] = []
    if n_dedicated:
        ded = np.flatnonzero(split_group >= 0)
        for i in ded.tolist():
            name = f"{cell_grid.iat[split_cell[i]]}-S{split_group[i] + 1}"
            cust_grid[i] = name
            shared[name] = int(split_cell[i])
        for c in sorted(set(shared.values())):
            names = sorted(nm for nm, cc in shared.items() if cc == c)
            members = (split_cell == c) | (index.customer_cell == c)
            warnings.append(
                f"split compound: cell {cell_str[c]} holds {int(members.sum())} customers (workload "
                f"{float(located['workload'].to_numpy()[members].sum()):g}) at one location, more than one grid holds "
                f"({split_limit:g}); {len(names)} dedicated grid(s) {', '.join(names)} serve part of them by address "
                f"order, the rest stay with grid {cell_grid.iat[c]}")
    # the locked grids join the tables here, exactly as the previous plan had them
    t_cells, t_cell_str, t_cell_grid, t_located, t_cust_grid, t_shared = _with_locked(
        cells, cell_str, cell_grid.to_numpy(), located, cust_grid, shared, frozen, held)
    grids, geoms = _grids_table(t_cells, t_cell_str, t_cell_grid, t_cust_grid, t_located, t_shared)
    timings["grids"] = time.perf_counter() - t

    # assign
    stage("assign")
    t = time.perf_counter()
    rules = list(config.assign.rules)
    requirements = grid_requirements(located, cust_grid, rules) if rules else None
    travel, unit = None, "km"
    # with a roster sized to, only the specialists used are staffed (the grids were drawn for them)
    staff = roster.assign(capacity=caps) if has_roster else roster
    if roster_sized:
        staff = staff.iloc[np.sort(sizing.used)]
    # locked grids keep their specialist: only the others are staffed here
    to_staff = grids.loc[~grids["grid_id"].isin(reserved)].reset_index(drop=True) if frozen is not None else grids
    if road_graph is not None and len(staff):
        from .travel import read_road_graph, travel_matrix

        rg = read_road_graph(road_graph) if isinstance(road_graph, (str, Path)) else road_graph
        travel = travel_matrix(to_staff["centre_lat"].to_numpy(), to_staff["centre_lon"].to_numpy(),
                               staff["lat"].to_numpy(), staff["lon"].to_numpy(), graph=rg)
        unit = rg.unit
    ares = assign_specialists(to_staff, staff, continuity_bonus_km=config.assign.continuity_bonus_km,
                              require_full_staffing=config.assign.require_full_staffing and specialists is not None,
                              travel=travel, travel_unit=unit, requirements=requirements, rules=rules,
                              max_base_distance=config.assign.max_base_distance_km)
    if roster_sized and len(sizing.spare):
        ares.spare = sorted(set(ares.spare) | set(roster["specialist_id"].astype(str).to_numpy()[sizing.spare]))
    grid_spec = ares.grid_specialist
    cap_of = staff.set_index("specialist_id")["capacity"]
    if frozen is not None:
        grid_spec = pd.concat([grid_spec, pd.Series(frozen.grids["specialist_id"].to_numpy(dtype=object),
                                                    index=frozen.grids["grid_id"].to_numpy(dtype=object))])
        cap_of = pd.concat([cap_of, pd.Series(frozen.capacity_of(), dtype="float64")])
    grids.insert(1, "specialist_id", grid_spec.reindex(grids["grid_id"]).to_numpy().astype(str))
    grids["capacity"] = grids["specialist_id"].map(cap_of).astype("float64")
    if index.zone_names is not None:  # zones: each grid's zone by name (a grid never spans two)
        from .cells import grid_zones

        zone_of = grid_zones(index, cell_grid.to_numpy(), grids["grid_id"], shared)
        if frozen is not None:  # a locked grid keeps its zone of the previous plan
            zone_of = np.array([frozen.zone.get(g, z) for g, z in zip(grids["grid_id"], zone_of)], dtype=object)
        grids.insert(2, "zone", zone_of)
    grids = gpd.GeoDataFrame(grids, geometry=geoms, crs="EPSG:4326")
    timings["assign"] = time.perf_counter() - t

    # tables of the plan
    stage("metrics")
    t = time.perf_counter()
    g2s = dict(zip(grids["grid_id"], grids["specialist_id"]))
    assignments = pd.DataFrame({
        "customer_id": t_located["customer_id"].astype(str).to_numpy(),
        "lat": t_located["lat"].to_numpy(), "lon": t_located["lon"].to_numpy(),
        "cell": [h3.int_to_str(int(c)) for c in t_located["cell"].tolist()],
        "grid_id": t_cust_grid.astype(str),
        "specialist_id": [g2s[g] for g in t_cust_grid],
        "workload": t_located["workload"].to_numpy(),
    }).sort_values("customer_id", kind="stable").reset_index(drop=True)
    rejects = pd.concat([r for r in (rejects0, rejects1, rejects2, rejects_locked) if len(r)] or [rejects0],
                        ignore_index=True)
    rejects = rejects.astype({"row": "int64"}).sort_values("row", kind="stable").reset_index(drop=True)
    s2g = {s: g for g, s in g2s.items() if s}
    # the whole roster (locked specialists included); without one, the locked grids' specialists
    roster_out = roster_all
    if frozen is not None and specialists is None:
        roster_out = pd.concat([roster_all[["specialist_id", "lat", "lon", "capacity"]], frozen.specialists],
                               ignore_index=True)
    spec_table = pd.DataFrame({
        "specialist_id": roster_out["specialist_id"].to_numpy(), "lat": roster_out["lat"].to_numpy(),
        "lon": roster_out["lon"].to_numpy(), "capacity": roster_out["capacity"].to_numpy(),
        "grid_id": [s2g.get(s, "") for s in roster_out["specialist_id"]],
    })
    spec_table["status"] = np.where(spec_table["grid_id"] != "", "assigned", "spare")
    cell_table = pd.DataFrame({
        "cell": t_cell_str, "grid_id": t_cell_grid.astype(str), "lat": t_cells["lat"].to_numpy(),
        "lon": t_cells["lon"].to_numpy(), "workload": t_cells["workload"].to_numpy(),
        "n_customers": t_cells["n_customers"].to_numpy(),
    })
    bridges = [(str(cell_str[b.from_unit]), str(cell_str[b.to_unit])) for b in pres.bridges]
    warnings = sizing_warnings + lock_notes + list(pres.notes) + warnings
    # areas the locked grids cut off from the rest: said so, and not judged on the specialists based there
    cut_by_locks: dict[int, list[str]] = {}
    if frozen is not None and pres.area_of_unit is not None and int(pres.area_of_unit.max(initial=0)) > 0:
        from .locks import locked_neighbours

        sizes = np.bincount(pres.area_of_unit)
        for a in np.flatnonzero(sizes).tolist():
            if a == int(np.argmax(sizes)):  # the main land is not cut off
                continue
            touching = locked_neighbours(cells["cell"].to_numpy()[pres.area_of_unit == a], frozen)
            if touching:
                cut_by_locks[a] = touching
    for b, (cf, ct) in zip(pres.bridges, bridges):
        by = cut_by_locks.get(int(pres.area_of_unit[b.from_unit])) if pres.area_of_unit is not None else None
        warnings.append(
            f"bridge: a separate area of {b.area_units} cells (workload {b.area_workload:g}) joins grid "
            f"{cell_grid.iloc[b.to_unit]} across {b.distance_m / 1000:.2f} km (cell {cf} to {ct})"
            + (f", separated by locked grid(s) {', '.join(by[:5])}{' …' if len(by) > 5 else ''}" if by else ""))
    warnings.extend(ares.messages)
    warnings.extend(_area_staffing_checks(index, pres.area_of_unit, roster, skip=set(cut_by_locks)))
    blocked = _blocked_pairs(cells["cell"].to_numpy(), index.cut_edges)
    zone_links = [(str(cell_str[i]), str(cell_str[j])) for i, j in zip(*index.zone_links)]
    locked_links = frozen.bridges if frozen is not None else []  # the locked grids' bridges, as they were
    metrics = compute_metrics(assignments, grids, cell_table, roster_out, bridges=bridges + zone_links + locked_links,
                              n_rejects=len(rejects), blocked=blocked, design_capacity=capacity,
                              drawn_parts={g: int(shapely.get_num_geometries(geom)) for g, geom in
                                           zip(grids["grid_id"], grids.geometry)})
    if index.zone_names is not None:  # zones: balance judged within each zone; parts of a zone joined
        from .metrics import zone_metrics

        metrics["n_bridges"] = len(bridges) + (len(frozen.bridge_records) if frozen is not None else 0)
        metrics.update(zone_metrics(grids, design_capacity=capacity))
        metrics["zone_links"] = [{"from_cell": a, "to_cell": b} for a, b in zone_links]
    metrics["barrier_cuts"] = int(index.n_barrier_cuts)
    if prev_plan is not None:
        metrics.update(rerun_metrics(prev_plan, assignments, cell_table))
        if pconfig.max_churn is not None and metrics["churn"] > pconfig.max_churn:
            warnings.append(f"churn {metrics['churn']:.2%} is above partition.max_churn {pconfig.max_churn:.2%}: "
                            "balance and capacity forced these moves even at the highest churn weight")
    if travel is not None:  # mean base-to-grid travel on the road graph, in its unit
        staffed_t = ares.travel[np.isfinite(ares.travel)] if ares.travel is not None else np.zeros(0)
        metrics["travel_network"] = {"mean": round(float(staffed_t.mean()), 6) if len(staffed_t) else None,
                                     "unit": unit}
    metrics["locked_grids"] = frozen.ids if frozen is not None else (
        sorted(set(pins["grid_id"].astype(str))) if pins is not None else [])
    metrics["locks"] = lock_records
    metrics["solver_status"] = {"partition": "FEASIBLE", "assign": ares.status}
    metrics["design_capacity"] = float(capacity)
    grid_adj = _grid_adjacency(cell_grid.to_numpy(), index.edges)
    staffing = staffing_plan(grids, grid_adj, zones=zone_geom, districts=_grid_districts(t_located, t_cust_grid))
    metrics["staffing_shortfall"] = staffing.loc[staffing["specialists_missing"] > 0].to_dict("records")
    metrics["unstaffed_grids"] = list(ares.unstaffed)
    metrics["spare_specialists"] = list(ares.spare)
    metrics["bridges"] = [{"from_cell": a, "to_cell": b, "area_cells": br.area_units,
                           "area_workload": round(br.area_workload, 6), "distance_km": round(br.distance_m / 1000, 3)}
                          for (a, b), br in zip(bridges, pres.bridges)] + (
                              frozen.bridge_records if frozen is not None else [])
    metrics["warnings"] = warnings
    n_input = len(cust) + len(rejects0)
    if len(assignments) + len(rejects) != n_input:  # invariant 1: nothing silently dropped
        raise RuntimeError(f"internal error: {n_input} input rows but {len(assignments)} assigned + {len(rejects)} rejected")
    timings["metrics"] = time.perf_counter() - t
    cfg = config.to_dict()
    manifest = {
        "gridengine_version": __version__,
        "config": cfg,
        "seed": config.seed,
        "design_capacity": float(capacity),
        "inputs": {"customers": _input(customers, "customers"), "specialists": _input(specialists, "specialists"),
                   "service_area": _input(service_area, "service area") if service_area is not None else None,
                   "barriers": _input(barriers, "barriers") if barriers is not None else None,
                   "zones": _input(zones, "zones") if zones is not None else None,
                   "locked": _input(locked, "locked") if locked is not None else None,
                   "gazetteer": _input(config.geocode.gazetteer, "gazetteer") if config.geocode.gazetteer else None},
        "input_rows": {"customers": int(n_input), "specialists": int(len(roster_all))},
        "previous_plan": None if prev_plan is None else {
            "grids": int(len(prev_plan.grids)),
            "manifest_sha256": __import__("hashlib").sha256(
                json.dumps(prev_plan.manifest, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        },
        "versions": _versions(),
    }
    run = {
        "started": started.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu_count": __import__("os").cpu_count(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "total_s": round(sum(timings.values()), 3),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    logger.info("plan: %d customers, %d grids, coverage %.4f in %.1fs", len(assignments), len(grids),
                metrics["coverage"], run["total_s"])
    return Plan(grids=grids, assignments=assignments.drop(columns=["workload"]), rejects=rejects,
                specialists=spec_table, cells=cell_table, metrics=metrics, manifest=manifest, run=run,
                warnings=warnings, staffing=staffing, zones=zone_geom, barriers=barrier_geom)
