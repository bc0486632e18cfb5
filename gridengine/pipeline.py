"""The one-call API: customers and specialists in, a :class:`~gridengine.plan.Plan` out.

:func:`plan_city` chains the stages, each a module of its own passing plain tables:
ingest (:func:`~gridengine.ingest.read_city`) → geocode (:func:`~gridengine.geocode.place_customers`)
→ cells (:func:`~gridengine.cells.index_customers`) → partition (:func:`~gridengine.partition.stage.partition_city`)
→ grids (:func:`~gridengine.grids.draw_grids`) → assign (:func:`~gridengine.assign.staff_grids`)
→ metrics (:func:`~gridengine.metrics.plan_metrics`); the report is written with the plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import resource
import socket
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from ._version import __version__
from .assign import StaffedGrids, staff_grids, staffing_plan
from .cells import CellIndex, index_customers, refine_resolution
from .config import Config
from .errors import InputError
from .geocode import place_customers
from .grids import DrawnGrids, draw_grids, grid_adjacency, grid_districts
from .ingest import CityTables, read_city
from .inputs import CityInputs
from .locks import set_apart
from .metrics import plan_metrics
from .partition.stage import CityPartition, GridDesign, design_targets, partition_city
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



def _blocked_pairs(cells: np.ndarray, cut: tuple[np.ndarray, np.ndarray]) -> set[tuple[str, str]]:
    """The H3 neighbour pairs that barriers or zone boundaries removed (cells as strings)."""
    return {(h3.int_to_str(int(cells[i])), h3.int_to_str(int(cells[j])))
            for i, j in zip(cut[0].tolist(), cut[1].tolist())}



def _area_staffing_checks(index: CellIndex, area_of_unit: np.ndarray | None, roster: pd.DataFrame,
                          skip: AbstractSet[int] = frozenset()) -> list[str]:
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
    inputs = CityInputs(customers, specialists, service_area=service_area, barriers=barriers, zones=zones,
                        locked=locked, road_graph=road_graph)
    clock = _StageClock(progress)
    with clock("ingest"):
        city = read_city(inputs, config, previous=previous)
    with clock("geocode"):
        located, rejects1 = place_customers(city.customers, city.rejects, coord_system=config.input.coord_system,
                                            config=config.geocode, source=_source(customers))
        roster, taken = city.roster, None
        if city.frozen is not None:  # locked grids leave the planning: their specialists, their customers
            taken, roster = set_apart(city.frozen, located, roster, city.previous, max_res=refine_resolution(
                config.cells.resolution, config.cells.max_refine, config.cells.max_cell_share is not None))
            located = taken.rest
    with clock("cells"):
        design = design_targets(roster, city.roster, located, config=config.partition, frozen=city.frozen)
        index, located, rejects2 = index_customers(
            located, config=config.cells, target=design.target, service_area=city.service_area,
            barriers=city.barriers, zones=city.zones,
            exclude=city.frozen.cells["cell_int"].to_numpy() if city.frozen is not None else None)
        if len(located) == 0:
            raise InputError("no customer lies inside the service area")
    with clock("partition"):
        part = partition_city(index, located, roster, design, seed=config.seed, previous=city.previous, frozen=city.frozen,
                              pins=city.pins, zones=city.zones is not None)
    with clock("grids"):
        drawn = draw_grids(index, located, part.cell_grid, split_group=part.split_group, split_cell=part.split_cell,
                           split_limit=part.split_limit, frozen=city.frozen,
                           held=taken.held if taken is not None else None)
    with clock("assign"):
        staffed = staff_grids(drawn.grids, roster, config=config.assign, caps=design.caps,
                              sizing=part.sizing if part.roster_sized else None, customers=located,
                              customer_grid=drawn.rest_customer_grid, locked=city.frozen, road_graph=road_graph,
                              require_full_staffing=config.assign.require_full_staffing and city.has_roster)
    with clock("metrics"):
        plan = _assemble(inputs, config, city, roster, taken, [rejects1, rejects2], index, design, part, drawn,
                         staffed)
    plan.run.update(clock.record())
    logger.info("plan: %d customers, %d grids, coverage %.4f in %.1fs", len(plan.assignments), len(plan.grids),
                plan.metrics["coverage"], plan.run["total_s"])
    return plan


def _source(customers: Any) -> str:
    return str(customers) if isinstance(customers, (str, Path)) else "customers"


class _StageClock:
    """Tells ``progress`` each stage as it starts, and times it."""

    def __init__(self, progress: Callable[[str], Any] | None) -> None:
        self.progress = progress
        self.started = datetime.now(timezone.utc)
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name)
        t = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t

    def record(self) -> dict[str, Any]:
        """The run record's start time, host, per-stage timings and peak memory."""
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "total_s": round(sum(self.timings.values()), 3),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def _assemble(inputs: CityInputs, config: Config, city: CityTables, roster: pd.DataFrame, taken: Any,
              later_rejects: list[pd.DataFrame], index: CellIndex, design: GridDesign, part: CityPartition,
              drawn: DrawnGrids, staffed: StaffedGrids) -> Plan:
    """The plan's tables (assignments, rejects, specialists, cells), warnings, metrics and manifest."""
    grids = gpd.GeoDataFrame(staffed.grids, geometry=drawn.geoms, crs="EPSG:4326")
    frozen, pres, ares = city.frozen, part.result, staffed.result
    g2s = dict(zip(grids["grid_id"], grids["specialist_id"]))
    t_located, t_cust_grid = drawn.customers, drawn.customer_grid
    assignments = pd.DataFrame({
        "customer_id": t_located["customer_id"].astype(str).to_numpy(),
        "lat": t_located["lat"].to_numpy(), "lon": t_located["lon"].to_numpy(),
        "cell": [h3.int_to_str(int(c)) for c in t_located["cell"].tolist()],
        "grid_id": t_cust_grid.astype(str),
        "specialist_id": [g2s[g] for g in t_cust_grid],
        "workload": t_located["workload"].to_numpy(),
    }).sort_values("customer_id", kind="stable").reset_index(drop=True)
    rejects_locked = taken.rejects if taken is not None else city.rejects.iloc[:0]
    rejects = pd.concat([r for r in (city.rejects, *later_rejects, rejects_locked) if len(r)] or [city.rejects],
                        ignore_index=True)
    rejects = rejects.astype({"row": "int64"}).sort_values("row", kind="stable").reset_index(drop=True)
    s2g = {s: g for g, s in g2s.items() if s}
    # the whole roster (locked specialists included); without one, the locked grids' specialists
    roster_out = city.roster
    if frozen is not None and not city.has_roster:
        roster_out = pd.concat([city.roster[["specialist_id", "lat", "lon", "capacity"]], frozen.specialists],
                               ignore_index=True)
    spec_table = pd.DataFrame({
        "specialist_id": roster_out["specialist_id"].to_numpy(), "lat": roster_out["lat"].to_numpy(),
        "lon": roster_out["lon"].to_numpy(), "capacity": roster_out["capacity"].to_numpy(),
        "grid_id": [s2g.get(s, "") for s in roster_out["specialist_id"]],
    })
    spec_table["status"] = np.where(spec_table["grid_id"] != "", "assigned", "spare")
    t_cells = drawn.cells
    cell_table = pd.DataFrame({
        "cell": drawn.cell_str, "grid_id": drawn.cell_grid.astype(str), "lat": t_cells["lat"].to_numpy(),
        "lon": t_cells["lon"].to_numpy(), "workload": t_cells["workload"].to_numpy(),
        "n_customers": t_cells["n_customers"].to_numpy(),
    })
    cells, cell_str = index.cells, drawn.rest_cell_str
    bridges = [(str(cell_str[b.from_unit]), str(cell_str[b.to_unit])) for b in pres.bridges]
    lock_notes = taken.notes if taken is not None else []
    warnings = design.warnings + part.warnings + lock_notes + list(pres.notes) + drawn.warnings
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
            f"{part.cell_grid.iloc[b.to_unit]} across {b.distance_m / 1000:.2f} km (cell {cf} to {ct})"
            + (f", separated by locked grid(s) {', '.join(by[:5])}{' …' if len(by) > 5 else ''}" if by else ""))
    warnings.extend(ares.messages)
    warnings.extend(_area_staffing_checks(index, pres.area_of_unit, roster, skip=set(cut_by_locks)))
    grid_adj = grid_adjacency(part.cell_grid.to_numpy(), index.edges)
    staffing = staffing_plan(grids, grid_adj, zones=city.zones, districts=grid_districts(t_located, t_cust_grid))
    metrics = plan_metrics(
        assignments, grids, cell_table, roster_out, rejects=rejects, bridges=bridges, bridge_results=pres.bridges,
        zone_links=[(str(cell_str[i]), str(cell_str[j])) for i, j in zip(*index.zone_links)],
        blocked=_blocked_pairs(cells["cell"].to_numpy(), index.cut_edges), zones=index.zone_names is not None,
        barrier_cuts=int(index.n_barrier_cuts), design_capacity=design.capacity, previous=city.previous,
        max_churn=part.config.max_churn, travel=staffed.travel, travel_unit=staffed.unit, assignment=ares,
        locked=frozen, pins=city.pins, lock_records=taken.records if taken is not None else [],
        staffing=staffing, warnings=warnings)
    n_input = len(city.customers) + len(city.rejects)
    if len(assignments) + len(rejects) != n_input:  # invariant 1: nothing silently dropped
        raise RuntimeError(f"internal error: {n_input} input rows but {len(assignments)} assigned + {len(rejects)} rejected")
    manifest = {
        "gridengine_version": __version__,
        "config": config.to_dict(),
        "seed": config.seed,
        "design_capacity": float(design.capacity),
        "inputs": inputs.record(config),
        "input_rows": {"customers": int(n_input), "specialists": int(len(city.roster))},
        "previous_plan": None if city.previous is None else {
            "grids": int(len(city.previous.grids)),
            "manifest_sha256": hashlib.sha256(
                json.dumps(city.previous.manifest, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        },
        "versions": _versions(),
    }
    return Plan(grids=grids, assignments=assignments.drop(columns=["workload"]), rejects=rejects,
                specialists=spec_table, cells=cell_table, metrics=metrics, manifest=manifest, run={},
                warnings=warnings, staffing=staffing, zones=city.zones, barriers=city.barriers)

