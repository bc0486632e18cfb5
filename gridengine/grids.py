"""The grids stage: from each cell's grid to the grids table.

:func:`draw_grids` names the dedicated grids of split compounds, puts locked grids back beside
the planned rest, and builds one row per grid with its polygon (and its zone, with zones).
Its result, :class:`DrawnGrids`, holds the plan's cell and customer tables as the later stages use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd

from .cells import CellIndex, cells_to_polygon, grid_zones
from .locks import LockedGrids

__all__ = ["DrawnGrids", "draw_grids", "grids_table", "merge_locked", "grid_adjacency", "grid_districts"]


@dataclass
class DrawnGrids:
    """The grids stage's result.

    Attributes
    ----------
    grids
        :func:`grids_table`'s table, with a ``zone`` column (after ``grid_id``) when zones were given.
    geoms
        Each grid's polygon, in the order of ``grids``.
    cells, cell_str, cell_grid
        Every cell of the plan (the locked grids' included): ``cell`` (H3, uint64), ``lat``,
        ``lon``, ``workload``, ``n_customers``; its H3 string; its grid id.
    customers, customer_grid
        Every located customer (the locked grids' included) and their grid id.
    rest_customer_grid
        The grid of each customer planned here (the locked grids' customers left out), in the
        order of the partition stage's customers.
    rest_cell_str
        The H3 string of each cell planned here, in the order of the cell index.
    shared
        The cell (position in ``cells``) each dedicated grid of a split compound shares.
    warnings
        What the planner should know (split compounds).
    """

    grids: pd.DataFrame
    geoms: list
    cells: pd.DataFrame
    cell_str: np.ndarray
    cell_grid: np.ndarray
    customers: pd.DataFrame
    customer_grid: np.ndarray
    rest_customer_grid: np.ndarray
    rest_cell_str: np.ndarray
    shared: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def draw_grids(index: CellIndex, located: pd.DataFrame, cell_grid: pd.Series, *, split_group: np.ndarray,
               split_cell: np.ndarray, split_limit: float, frozen: LockedGrids | None = None,
               held: pd.DataFrame | None = None) -> DrawnGrids:
    """The grids table of a partition: dedicated grids named, locked grids put back, zones named.

    Parameters
    ----------
    index
        The cells stage's :class:`~gridengine.cells.CellIndex` (its ``cells`` and ``customer_cell``).
    located
        The customers planned here, in the order of ``index.customer_cell``.
    cell_grid
        Each cell's grid id (the partition stage's result).
    split_group, split_cell, split_limit
        Per customer, the dedicated grid of a split compound it belongs to (-1: none) and that
        compound's cell; the workload above which a place was split.
    frozen, held
        Locked grids and their customers (:mod:`gridengine.locks`), put back as they were.

    Returns
    -------
    DrawnGrids
    """
    cells = index.cells
    cell_str = np.array([h3.int_to_str(int(c)) for c in cells["cell"].tolist()], dtype=object)
    cust_grid = cell_grid.to_numpy()[index.customer_cell].astype(object)
    shared: dict[str, int] = {}
    warnings: list[str] = []
    if len(np.unique(np.c_[split_cell, split_group][split_group >= 0], axis=0)):
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
    t_cells, t_cell_str, t_cell_grid, t_located, t_cust_grid, t_shared = merge_locked(
        cells, cell_str, cell_grid.to_numpy(), located, cust_grid, shared, frozen, held)
    grids, geoms = grids_table(t_cells, t_cell_str, t_cell_grid, t_cust_grid, t_located, t_shared)
    if index.zone_names is not None:  # zones: each grid's zone by name (a grid never spans two)
        zone_of = grid_zones(index, cell_grid.to_numpy(), grids["grid_id"], shared)
        if frozen is not None:  # a locked grid keeps its zone of the previous plan
            zone_of = np.array([frozen.zone.get(g, z) for g, z in zip(grids["grid_id"], zone_of)], dtype=object)
        grids.insert(1, "zone", zone_of)
    return DrawnGrids(grids=grids, geoms=geoms, cells=t_cells, cell_str=t_cell_str, cell_grid=t_cell_grid,
                      customers=t_located, customer_grid=t_cust_grid, rest_customer_grid=cust_grid,
                      rest_cell_str=cell_str, shared=shared,
                      warnings=warnings)


def grids_table(cells: pd.DataFrame, cell_str: np.ndarray, cell_grid: np.ndarray, cust_grid: np.ndarray,
                 located: pd.DataFrame, shared: dict[str, int]) -> tuple[pd.DataFrame, list]:
    """One row per grid (territory grids and dedicated grids of split compounds), and its polygon.

    Parameters
    ----------
    cells
        The cell table (``lat``, ``lon`` of each cell), in the order of ``cell_str`` and ``cell_grid``.
    cell_str, cell_grid
        Each cell's H3 index (string) and grid id.
    cust_grid, located
        Each customer's grid id, and the customers (``workload``, ``lat``, ``lon``).
    shared
        The cell (position in ``cells``) each dedicated grid of a split compound shares.

    Returns
    -------
    (pandas.DataFrame, list)
        ``grid_id``, ``workload``, ``n_customers``, ``n_cells``, ``area_km2``, ``centre_lat``,
        ``centre_lon`` (workload-weighted; the territory's centre for a grid without workload),
        sorted by ``grid_id``; and each grid's polygon (shapely, WGS-84).
    """
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


def merge_locked(cells: pd.DataFrame, cell_str: np.ndarray, cell_grid: np.ndarray, located: pd.DataFrame,
                 cust_grid: np.ndarray, shared: dict[str, int], frozen: LockedGrids | None,
                 held: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray,
                                                     dict[str, int]]:
    """The plan's tables with the locked grids put back beside the planned rest: cells (``cell``, ``lat``,
    ``lon``, ``workload``, ``n_customers``, sorted by H3 index), their H3 strings and grids, the customers
    and their grids, and the cell each dedicated grid shares (positions in the merged cells)."""
    if frozen is None:
        return cells, cell_str, cell_grid, located, cust_grid, shared
    assert held is not None, "locked grids come with their customers"
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


def grid_adjacency(cell_grid: np.ndarray, edges: tuple[np.ndarray, np.ndarray]) -> set[tuple[str, str]]:
    """Pairs of grids that share a cell border."""
    a, b = cell_grid[edges[0]], cell_grid[edges[1]]
    diff = a != b
    return {(min(x, y), max(x, y)) for x, y in zip(a[diff].tolist(), b[diff].tolist())}


def grid_districts(located: pd.DataFrame, cust_grid: np.ndarray) -> dict[str, str] | None:
    """Each grid's district (the one holding most of its workload), when customers carry ``district``."""
    if "district" not in located.columns:
        return None
    df = pd.DataFrame({"g": cust_grid.astype(str), "d": located["district"].astype(str).to_numpy(),
                       "w": located["workload"].to_numpy()})
    top = df.groupby(["g", "d"])["w"].sum().reset_index().sort_values(["g", "w", "d"], ascending=[True, False, True])
    return dict(zip(top.drop_duplicates("g")["g"], top.drop_duplicates("g")["d"]))

