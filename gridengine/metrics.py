"""Metrics: the figures of DESIGN.md, computed from a plan's output tables.

They are recomputed from the written tables (assignments, grids, cells), not taken
from the solvers' own bookkeeping, so they check the solvers as much as report them.
Names are the DESIGN.md names everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components

from .cells import haversine_km

__all__ = ["zone_metrics", "compute_metrics", "rerun_metrics", "grid_contiguity", "customer_churn", "plan_metrics", "METRIC_NAMES"]

METRIC_NAMES = (
    "coverage", "capacity_violations", "balance_max_dev", "within_5pct", "contiguous_share",
    "compactness_km", "travel_km", "churn",
)


def grid_contiguity(cell_grid: pd.DataFrame, bridges: Sequence[tuple[str, str]] = (),
                    blocked: AbstractSet[tuple[str, str]] = frozenset()) -> pd.Series:
    """Whether each grid's cells form one connected set under H3 adjacency plus reported bridges.

    Parameters
    ----------
    cell_grid
        ``cell`` (H3 string) and ``grid_id`` for every cell of the plan.
    bridges
        Reported bridges as (cell, cell) pairs of H3 strings.
    blocked
        Neighbour pairs (cell, cell), in H3-integer order, that barriers or zone boundaries cut.

    Returns
    -------
    Series of bool indexed by ``grid_id``.
    """
    from .cells import cell_adjacency

    as_int = np.array([h3.str_to_int(c) for c in cell_grid["cell"].astype(str)], dtype="uint64")
    order = np.argsort(as_int, kind="stable")
    cells = as_int[order]
    grid = cell_grid["grid_id"].astype(str).to_numpy()[order]
    pos = {h3.int_to_str(int(c)): i for i, c in enumerate(cells.tolist())}
    a, b = cell_adjacency(cells)
    same = grid[a] == grid[b]
    if blocked:
        names = [h3.int_to_str(int(c)) for c in cells.tolist()]
        same &= np.array([(names[i], names[j]) not in blocked for i, j in zip(a.tolist(), b.tolist())], dtype=bool)
    src, dst = list(a[same]), list(b[same])
    for x, y in bridges:
        if x in pos and y in pos:
            src.append(pos[x])
            dst.append(pos[y])
    n = len(cells)
    m = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, comp = connected_components(m, directed=False)
    pieces = pd.DataFrame({"g": grid, "c": comp}).drop_duplicates().groupby("g").size()
    return pieces == 1


def compute_metrics(
    assignments: pd.DataFrame,
    grids: pd.DataFrame,
    cell_grid: pd.DataFrame,
    specialists: pd.DataFrame,
    *,
    bridges: Sequence[tuple[str, str]] = (),
    n_rejects: int = 0,
    blocked: AbstractSet[tuple[str, str]] = frozenset(),
    design_capacity: float | None = None,
    drawn_parts: dict[str, int] | None = None,
) -> dict:
    """Compute the plan metrics.

    Parameters
    ----------
    assignments
        ``customer_id``, ``lat``, ``lon``, ``grid_id``, ``specialist_id``, ``workload``.
    grids
        ``grid_id``, ``specialist_id``, ``workload``, ``capacity``, ``centre_lat``, ``centre_lon``.
    cell_grid
        ``cell`` (H3 string), ``grid_id``: every cell of the tiled service area.
    specialists
        ``specialist_id``, ``lat``, ``lon`` (the roster).
    bridges
        Reported bridges as (cell, cell).
    n_rejects
        Rejected input rows.
    blocked
        Neighbour pairs cut by barriers or zone boundaries (not counted as adjacency).
    drawn_parts
        Optional number of polygon parts of each grid as drawn. With it, a grid counts as
        contiguous only if it is also drawn in one piece, or in one piece per reported bridge
        more (``contiguous_share`` is measured on what is drawn), and ``unreported_parts`` counts
        the pieces no bridge explains.
    design_capacity
        The capacity an unstaffed grid is judged against. With it, balance (``balance_max_dev``,
        ``within_5pct``) is measured on fill (grid workload / its specialist's capacity, or this
        for unstaffed grids), so a dual-track roster's smaller grids count as balanced when they
        are as full as the others; without it, on workload.

    Returns
    -------
    dict
        The DESIGN.md metrics (``churn`` is None without a previous plan) plus counts.
    """
    n = len(assignments)
    staffed = grids["specialist_id"].astype(str) != ""
    staffed_ids = set(grids.loc[staffed, "grid_id"])
    coverage = float(assignments["grid_id"].isin(staffed_ids).mean()) if n else 1.0
    cap = grids["capacity"].to_numpy(dtype="float64")
    gw = grids["workload"].to_numpy(dtype="float64")
    violations = int(np.count_nonzero(staffed.to_numpy() & (gw > cap + 1e-9)))
    mean = float(gw.mean()) if len(gw) else 0.0
    cap_eff = np.where(staffed.to_numpy() & (cap > 0), cap, design_capacity if design_capacity else np.nan)
    if len(gw) and np.isfinite(cap_eff).all():  # balance judged on fill (DESIGN.md: mixed rosters)
        fills = gw / cap_eff
        mean_fill = float(fills.mean())
        dev = np.abs(fills - mean_fill) / mean_fill if mean_fill > 0 else np.zeros(len(gw))
    else:
        mean_fill = float("nan")
        dev = np.abs(gw - mean) / mean if mean > 0 else np.zeros(len(gw))
    contiguous = grid_contiguity(cell_grid, bridges, blocked)
    # dedicated grids of a split compound hold no territory of their own: one shared cell
    one_cell = pd.Series(grids["n_cells"].to_numpy() == 1, index=grids["grid_id"].to_numpy())
    contiguous = contiguous.reindex(grids["grid_id"]).fillna(one_cell).astype(bool)
    unreported = 0
    if drawn_parts is not None:
        grid_of_cell = dict(zip(cell_grid["cell"].astype(str), cell_grid["grid_id"].astype(str)))
        n_br = pd.Series([grid_of_cell.get(a, "") for a, _ in bridges], dtype=object).value_counts()
        parts = pd.Series(drawn_parts).reindex(grids["grid_id"]).fillna(1).astype("int64")
        allowed = 1 + n_br.reindex(grids["grid_id"]).fillna(0).astype("int64")
        extra = np.clip(parts.to_numpy() - allowed.to_numpy(), 0, None)
        unreported = int(extra.sum())
        contiguous = contiguous & pd.Series(extra == 0, index=contiguous.index)
    centre = grids.set_index("grid_id")[["centre_lat", "centre_lon"]]
    c = centre.loc[assignments["grid_id"]].to_numpy()
    w = assignments["workload"].to_numpy(dtype="float64")
    d = haversine_km(assignments["lat"].to_numpy(), assignments["lon"].to_numpy(), c[:, 0], c[:, 1])
    compact = float((w * d).sum() / w.sum()) if w.sum() > 0 else 0.0
    sp_xy = specialists.set_index("specialist_id")[["lat", "lon"]]
    sg = grids.loc[staffed]
    if len(sg):
        b = sp_xy.loc[sg["specialist_id"]].to_numpy()
        travel = float(haversine_km(b[:, 0], b[:, 1], sg["centre_lat"].to_numpy(), sg["centre_lon"].to_numpy()).mean())
    else:
        travel = 0.0
    n_unstaffed = int((~staffed).sum())
    fill = gw[staffed.to_numpy()] / cap[staffed.to_numpy()] if staffed.any() else np.zeros(0)

    def r(v: float) -> float:
        return float(round(v, 6)) if math.isfinite(v) else v

    return {
        "coverage": r(coverage),
        "capacity_violations": violations,
        "balance_max_dev": r(float(dev.max()) if len(dev) else 0.0),
        "within_5pct": r(float((dev <= 0.05 + 1e-12).mean()) if len(dev) else 1.0),
        "contiguous_share": r(float(contiguous.mean()) if len(contiguous) else 1.0),
        "compactness_km": r(compact),
        "travel_km": r(travel),
        "churn": None,
        "n_customers": int(n),
        "n_rejects": int(n_rejects),
        "total_workload": r(float(w.sum())),
        "n_grids": int(len(grids)),
        "n_staffed_grids": int(staffed.sum()),
        "n_unstaffed_grids": n_unstaffed,
        "specialists_missing": n_unstaffed,
        "n_specialists": int(len(specialists)),
        "n_spare_specialists": int(len(specialists) - staffed.sum()),
        "mean_grid_workload": r(mean),
        "mean_fill": r(mean_fill) if math.isfinite(mean_fill) else None,
        "fill_min": r(float(fill.min())) if len(fill) else None,
        "fill_max": r(float(fill.max())) if len(fill) else None,
        "n_cells": int(len(cell_grid)),
        "n_bridges": int(len(bridges)),
        "unreported_parts": unreported,
    }


def rerun_metrics(prev: Any, assignments: pd.DataFrame, cell_table: pd.DataFrame) -> dict:
    """Churn and what changed against a previous plan (DESIGN.md names).

    Parameters
    ----------
    prev
        The previous :class:`~gridengine.plan.Plan` (its ``assignments`` and ``cells``).
    assignments
        The new plan's ``customer_id`` → ``specialist_id`` table.
    cell_table
        The new plan's ``cell`` → ``grid_id`` table.

    Returns
    -------
    dict
        ``churn`` (share of continuing customers whose specialist changed), ``customers_moved``,
        ``continuing_customers``, ``new_customers``, ``departed_customers``, ``grids_changed``,
        ``grids_added``, ``grids_removed``.
    """
    before = prev.assignments.set_index("customer_id")
    after = assignments.set_index("customer_id")
    common = before.index.intersection(after.index)
    moved = before.loc[common, "specialist_id"].astype(str) != after.loc[common, "specialist_id"].astype(str)
    old_cells = prev.cells.groupby("grid_id")["cell"].apply(lambda c: tuple(sorted(c)))
    new_cells = cell_table.groupby("grid_id")["cell"].apply(lambda c: tuple(sorted(c)))
    ids = set(old_cells.index) | set(new_cells.index)
    changed = sum(1 for g in ids if old_cells.get(g) != new_cells.get(g))
    return {
        "churn": round(float(moved.mean()), 6) if len(common) else 0.0,
        "customers_moved": int(moved.sum()),
        "continuing_customers": int(len(common)),
        "new_customers": int(len(after.index.difference(before.index))),
        "departed_customers": int(len(before.index.difference(after.index))),
        "grids_changed": int(changed),
        "grids_added": int(len(set(new_cells.index) - set(old_cells.index))),
        "grids_removed": int(len(set(old_cells.index) - set(new_cells.index))),
    }


def zone_metrics(grids: pd.DataFrame, *, design_capacity: float | None = None) -> dict:
    """Balance judged within each zone (grids never span zones, so each zone is planned on its own).

    Parameters
    ----------
    grids
        ``grid_id``, ``zone``, ``specialist_id``, ``workload``, ``capacity``.
    design_capacity
        The capacity unstaffed grids are judged against.

    Returns
    -------
    dict
        ``zone_within_5pct`` (share of grids whose fill is within ±5% of their zone's mean fill),
        ``zone_balance_max_dev`` and ``zones`` (one record per zone: ``zone``, ``grids``,
        ``staffed``, ``workload``, ``mean_fill``, ``within_5pct``, ``max_dev``).
    """
    if "zone" not in grids.columns or not len(grids):
        return {}
    staffed = (grids["specialist_id"].astype(str) != "").to_numpy()
    cap = grids["capacity"].to_numpy(dtype="float64")
    gw = grids["workload"].to_numpy(dtype="float64")
    cap_eff = np.where(staffed & (cap > 0), cap, design_capacity if design_capacity else np.nan)
    fill = gw / cap_eff
    zone = grids["zone"].astype(str).to_numpy()
    dev = np.zeros(len(grids))
    recs = []
    for z in sorted(set(zone.tolist())):
        m = zone == z
        f = fill[m]
        mean = float(np.nanmean(f)) if np.isfinite(f).any() else float("nan")
        d = np.abs(f - mean) / mean if mean > 0 else np.zeros(int(m.sum()))
        d = np.nan_to_num(d, nan=0.0)
        dev[m] = d
        recs.append({"zone": z, "grids": int(m.sum()), "staffed": int(staffed[m].sum()),
                     "workload": round(float(gw[m].sum()), 6),
                     "mean_fill": round(mean, 6) if math.isfinite(mean) else None,
                     "within_5pct": round(float((d <= 0.05 + 1e-12).mean()), 6),
                     "max_dev": round(float(d.max()), 6)})
    return {"zone_within_5pct": round(float((dev <= 0.05 + 1e-12).mean()), 6),
            "zone_balance_max_dev": round(float(dev.max()), 6), "zones": recs}


def customer_churn(prev: Any, located: pd.DataFrame, grid_of_customer: np.ndarray) -> float:
    """Share of continuing customers whose grid changed (before staffing; steers ``partition.max_churn``).

    Parameters
    ----------
    prev
        The previous :class:`~gridengine.plan.Plan` (its ``assignments``: ``customer_id``, ``grid_id``).
    located
        The customers of this plan (``customer_id``).
    grid_of_customer
        Each customer's grid id in this plan.

    Returns
    -------
    float
        Between 0 and 1; 0 when no customer continues.
    """
    before = prev.assignments.set_index("customer_id")["grid_id"].astype(str)
    ids = located["customer_id"].astype(str)
    cont = ids.isin(before.index).to_numpy()
    if not cont.any():
        return 0.0
    return float((before.reindex(ids[cont]).to_numpy() != grid_of_customer[cont].astype(str)).mean())



def plan_metrics(assignments: pd.DataFrame, grids: Any, cell_table: pd.DataFrame, roster: pd.DataFrame, *,
                 rejects: pd.DataFrame, bridges: list[tuple[str, str]], bridge_results: list,
                 zone_links: list[tuple[str, str]], blocked: set[tuple[str, str]], zones: bool, barrier_cuts: int,
                 design_capacity: float, previous: Any = None, max_churn: float | None = None,
                 travel: np.ndarray | None = None, travel_unit: str = "km", assignment: Any = None,
                 locked: Any = None, pins: pd.DataFrame | None = None, lock_records: list[dict] | None = None,
                 staffing: pd.DataFrame | None = None, warnings: list[str] | None = None) -> dict:
    """The metrics stage: every figure of ``metrics.json``, recomputed from the plan's tables.

    Parameters
    ----------
    assignments, grids, cell_table, roster
        The plan's tables (as :func:`compute_metrics`; ``grids`` with its polygons).
    rejects
        The rejected rows.
    bridges, bridge_results
        The partition's bridges as (cell, cell) pairs, and as the partitioner reported them
        (``area_units``, ``area_workload``, ``distance_m``).
    zone_links, blocked
        Cell pairs joining parts of one zone; neighbour pairs cut by barriers or zone borders.
    zones
        Whether zones were given (balance is then also judged within each zone).
    barrier_cuts
        Cell adjacencies the barriers removed.
    design_capacity
        The design capacity (:class:`~gridengine.partition.stage.GridDesign`).
    previous, max_churn
        The previous plan of a re-run and ``partition.max_churn`` (a warning when churn is above it).
    travel, travel_unit
        Base-to-grid travel on a road graph and its unit, or None.
    assignment
        The assign stage's :class:`~gridengine.assign.AssignmentResult` (status, unstaffed, spare).
    locked, pins, lock_records
        Locked grids, cell pins, and one record per locked grid.
    staffing
        The staffing table (shortfalls are listed).
    warnings
        The plan's warnings; appended to here, and stored.

    Returns
    -------
    dict
    """
    warnings = warnings if warnings is not None else []
    locked_links = locked.bridges if locked is not None else []  # the locked grids' bridges, as they were
    metrics = compute_metrics(assignments, grids, cell_table, roster, bridges=bridges + zone_links + locked_links,
                              n_rejects=len(rejects), blocked=blocked, design_capacity=design_capacity,
                              drawn_parts={g: int(shapely.get_num_geometries(geom)) for g, geom in
                                           zip(grids["grid_id"], grids.geometry)})
    if zones:  # zones: balance judged within each zone; parts of a zone joined
        metrics["n_bridges"] = len(bridges) + (len(locked.bridge_records) if locked is not None else 0)
        metrics.update(zone_metrics(grids, design_capacity=design_capacity))
        metrics["zone_links"] = [{"from_cell": a, "to_cell": b} for a, b in zone_links]
    metrics["barrier_cuts"] = int(barrier_cuts)
    if previous is not None:
        metrics.update(rerun_metrics(previous, assignments, cell_table))
        if max_churn is not None and metrics["churn"] > max_churn:
            warnings.append(f"churn {metrics['churn']:.2%} is above partition.max_churn {max_churn:.2%}: "
                            "balance and capacity forced these moves even at the highest churn weight")
    if travel is not None:  # mean base-to-grid travel on the road graph, in its unit
        staffed_t = assignment.travel[np.isfinite(assignment.travel)] if assignment.travel is not None else np.zeros(0)
        metrics["travel_network"] = {"mean": round(float(staffed_t.mean()), 6) if len(staffed_t) else None,
                                     "unit": travel_unit}
    metrics["locked_grids"] = locked.ids if locked is not None else (
        sorted(set(pins["grid_id"].astype(str))) if pins is not None else [])
    metrics["locks"] = lock_records or []
    metrics["solver_status"] = {"partition": "FEASIBLE", "assign": assignment.status}
    metrics["design_capacity"] = float(design_capacity)
    metrics["staffing_shortfall"] = staffing.loc[staffing["specialists_missing"] > 0].to_dict("records") \
        if staffing is not None else []
    metrics["unstaffed_grids"] = list(assignment.unstaffed)
    metrics["spare_specialists"] = list(assignment.spare)
    metrics["bridges"] = [{"from_cell": a, "to_cell": b, "area_cells": br.area_units,
                           "area_workload": round(br.area_workload, 6), "distance_km": round(br.distance_m / 1000, 3)}
                          for (a, b), br in zip(bridges, bridge_results)] + (
                              locked.bridge_records if locked is not None else [])
    metrics["warnings"] = warnings
    return metrics
