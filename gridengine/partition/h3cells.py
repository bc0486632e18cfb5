"""The H3 adapter: partition a plan's cell layer (locked cells, roster mode, re-runs) and name the grids."""

from __future__ import annotations

import logging
from collections.abc import Collection

import h3
import numpy as np
import pandas as pd

from ..errors import InfeasibleError
from ._draw import match_by_overlap
from .core import Bridge, PartitionResult, partition_units
from .rerun import partition_from_previous
from .roster import partition_roster, partition_roster_rerun

__all__ = ['partition_cells', 'locked_groups', 'previous_grid_of_cells']

logger = logging.getLogger(__name__)


def locked_groups(cells: np.ndarray, locked: pd.DataFrame | None) -> tuple[np.ndarray, list[str]]:
    """Lock group of each tiling cell from a planner's table of ``cell`` → ``grid_id``.

    A locked cell coarser than the tiling (it was refined) locks all its descendants; a locked
    cell finer than the tiling locks the tiling cell that contains it. Messages name the table's
    source (``locked.attrs["source"]``, as :func:`gridengine.locks.read_locks` sets it) and each
    pin's row (its ``row`` column, as a spreadsheet shows it; else the position, header = row 1).

    Returns
    -------
    group
        Group index per cell (-1: free).
    names
        Grid id of each group.

    Raises
    ------
    InputError
        If a locked cell is not a valid H3 cell or lies outside the tiled service area, or if one
        cell is locked to two grids.
    """
    from ..cells import cell_resolution_vec
    from ..errors import InputError

    group = np.full(len(cells), -1, dtype="int64")
    if locked is None or len(locked) == 0:
        return group, []
    source = str(locked.attrs.get("source", "locks table"))
    for col in ("cell", "grid_id"):
        if col not in locked.columns:
            raise InputError(f"{source}: row 1, column {col!r}: required column {col!r} is missing", path=source,
                             row=1, field=col)
    rows = locked["row"].astype(int).tolist() if "row" in locked.columns else list(range(2, len(locked) + 2))
    names = sorted(set(locked["grid_id"].astype(str)))
    gid = {nm: i for i, nm in enumerate(names)}
    pos = {int(c): i for i, c in enumerate(cells.tolist())}
    res = cell_resolution_vec(cells)
    by_parent: dict[int, list[int]] = {}
    for i, (c, r) in enumerate(zip(cells.tolist(), res.tolist())):
        for rr in range(int(res.min()), r):
            by_parent.setdefault(h3.cell_to_parent(h3.int_to_str(c), rr), []).append(i)
    first_row: dict[int, int] = {}
    for row, c, g_name in zip(rows, locked["cell"].astype(str), locked["grid_id"].astype(str)):
        if not h3.is_valid_cell(c):
            raise InputError(f"{source}: row {row}, column 'cell': {c!r} is not an H3 cell", path=source, row=row,
                             field="cell")
        hits = []
        ci = h3.str_to_int(c)
        if ci in pos:
            hits = [pos[ci]]
        elif c in by_parent:
            hits = by_parent[c]
        else:
            for rr in range(h3.get_resolution(c) - 1, -1, -1):
                p_ = h3.str_to_int(h3.cell_to_parent(c, rr))
                if p_ in pos:
                    hits = [pos[p_]]
                    break
        if not hits:
            raise InputError(f"{source}: row {row}, column 'cell': cell {c} is outside the tiled service area",
                             path=source, row=row, field="cell")
        for i in hits:
            if group[i] >= 0 and group[i] != gid[g_name]:
                raise InputError(f"{source}: row {row}, column 'grid_id': cell {c} is locked to both "
                                 f"{names[group[i]]} (row {first_row[i]}) and {g_name} (the two pinned cells "
                                 "overlap)", path=source, row=row, field="grid_id")
            group[i] = gid[g_name]
            first_row.setdefault(i, row)
    return group, names


def previous_grid_of_cells(cells: np.ndarray, previous: pd.DataFrame) -> np.ndarray:
    """Each tiling cell's grid in a previous plan (-1 where the previous plan had no territory).

    Cells are matched through H3's hierarchy, so a re-run whose adaptive refinement differs still
    finds its grids: the same cell, else an ancestor of it, else the grid holding most of its
    descendants.
    """
    prev_cells = previous["cell"].astype(str).tolist()
    prev_grid = previous["grid_id"].astype(str).tolist()
    names = sorted(set(prev_grid))
    gi = {nm: i for i, nm in enumerate(names)}
    by_cell = {h3.str_to_int(c): gi[g] for c, g in zip(prev_cells, prev_grid)}
    prev_res = sorted({h3.get_resolution(c) for c in prev_cells}) if prev_cells else []
    descendants: dict[int, dict[int, int]] = {}
    for c, g in by_cell.items():
        for r in prev_res:
            if r < h3.get_resolution(h3.int_to_str(c)):
                p_ = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), r))
                d = descendants.setdefault(p_, {})
                d[g] = d.get(g, 0) + 1
    out = np.full(len(cells), -1, dtype="int64")
    for i, c in enumerate(cells.tolist()):
        c = int(c)
        if c in by_cell:
            out[i] = by_cell[c]
            continue
        s_ = h3.int_to_str(c)
        r_c = h3.get_resolution(s_)
        for r in reversed([r for r in prev_res if r < r_c]):
            p_ = h3.str_to_int(h3.cell_to_parent(s_, r))
            if p_ in by_cell:
                out[i] = by_cell[p_]
                break
        else:
            d = descendants.get(c)
            if d:
                out[i] = min(d, key=lambda g: (-d[g], g))
    return out, names


def _origin_by_overlap(labels: np.ndarray, initial: np.ndarray, w: np.ndarray) -> dict[int, int]:
    """For each new grid, the previous grid (index into the previous names) it shares most workload
    with, greedily by overlap (each previous grid given once); grids without one are new."""
    known = initial >= 0
    return match_by_overlap(labels[known], initial[known], w[known])


def _inherit(prev_names: list[str], initial: np.ndarray, parts: pd.DataFrame, x: np.ndarray, y: np.ndarray,
             w: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Which part takes over each previous grid: its own specialist's part (``current_grid``), else a
    part without a grid (a new specialist), matched by distance with capacity fit; -1: absorbed."""
    from scipy.optimize import linear_sum_assignment

    from .roster import MAX_FILL

    owner = np.full(len(prev_names), -1, dtype="int64")
    pos = {nm: i for i, nm in enumerate(prev_names)}
    cur = parts["current_grid"].astype(str).tolist()
    for p_, nm in enumerate(cur):
        if nm in pos and owner[pos[nm]] < 0:
            owner[pos[nm]] = p_
    free = [p_ for p_ in range(len(parts)) if p_ not in set(owner.tolist())]
    orphans = [i for i in range(len(prev_names)) if owner[i] < 0]
    notes = []
    known = initial >= 0
    gw = np.bincount(initial[known], weights=w[known], minlength=len(prev_names))
    if free and orphans:
        ww = w[known] + 1e-6
        s_ = np.bincount(initial[known], weights=ww, minlength=len(prev_names))
        gx = np.bincount(initial[known], weights=ww * x[known], minlength=len(prev_names)) / np.maximum(s_, 1e-12)
        gy = np.bincount(initial[known], weights=ww * y[known], minlength=len(prev_names)) / np.maximum(s_, 1e-12)
        px = parts["x"].to_numpy()[free]
        py = parts["y"].to_numpy()[free]
        pc = parts["capacity"].to_numpy()[free]
        o = np.array(orphans)
        d = np.hypot(gx[o][:, None] - px[None, :], gy[o][:, None] - py[None, :])
        over = np.clip(gw[o][:, None] - MAX_FILL * pc[None, :], 0, None) / np.maximum(pc[None, :], 1e-9)
        r, c = linear_sum_assignment(d + 1e9 * over)
        staffed = parts["staffed"].to_numpy() if "staffed" in parts.columns else np.ones(len(parts), dtype=bool)
        for i, j in zip(r.tolist(), c.tolist()):
            owner[o[i]] = free[j]
        n_new = sum(1 for j in c.tolist() if staffed[free[j]])
        if n_new:
            notes.append(f"{n_new} grid(s) whose specialist left were handed whole to a specialist without a grid")
        if len(r) - n_new:
            notes.append(f"{len(r) - n_new} grid(s) whose specialist left stay as they were, unstaffed: the roster is "
                         "short")
    gone = [prev_names[i] for i in range(len(prev_names)) if owner[i] < 0 and gw[i] > 0]
    if gone:
        notes.append(f"{len(gone)} grid(s) whose specialist left ({', '.join(gone[:10])}{' …' if len(gone) > 10 else ''})"
                     " were absorbed by their neighbours")
    return owner, notes


def partition_cells(index, *, upper: float, config, seed: int = 0, locked: pd.DataFrame | None = None,
                    parts: pd.DataFrame | None = None,
                    previous: pd.DataFrame | None = None,
                    reserved: Collection[str] = ()) -> tuple[pd.Series, PartitionResult]:
    """Partition the H3 cell layer into grids.

    Parameters
    ----------
    index
        The :class:`~gridengine.cells.CellIndex` of the plan.
    upper
        Capacity of a grid (workload units).
    config
        :class:`~gridengine.config.PartitionConfig`.
    seed
        Random seed.
    locked
        Optional planner table ``cell`` (H3) → ``grid_id``: those cells stay together in a grid
        that keeps that id.
    parts
        The grids a roster asks for (``capacity``, anchor ``x``, ``y`` in the cells' metres,
        ``current_grid``): one grid per part, sized to its capacity (:func:`partition_roster`;
        :func:`partition_roster_rerun` from a previous plan, where each specialist keeps the grid
        named by ``current_grid``). ``None``: grids of one capacity ``upper``.
    previous
        A previous plan's cells (``cell``, ``grid_id``): re-partition from it, keeping grid ids and
        moving as little workload as balance allows (:func:`partition_from_previous`).
    reserved
        Grid ids no new grid may take (the locked grids of a previous plan, planned apart); new
        ids of a re-run are numbered after them too.

    Returns
    -------
    grid_id
        Grid id of each cell, aligned with ``index.cells``. Locked grids keep their ids; the others
        are ``"G0001"``, … numbered in the order of each grid's smallest H3 cell (skipping ids
        taken by locked grids), so they do not depend on the search order.
    result
        The raw :class:`PartitionResult` (bridges, notes).
    """
    cells = index.cells
    names_ = [f"cell {h3.int_to_str(int(c))} at ({la:.5f}, {lo:.5f}) with {n} customers"
              for c, la, lo, n in zip(cells["cell"].tolist(), cells["lat"].tolist(), cells["lon"].tolist(),
                                      cells["n_customers"].tolist())]
    prev_names: list[str] = []

    def fresh(lock_groups: np.ndarray | None) -> PartitionResult:  # a partition from scratch
        return partition_units(
            cells["workload"].to_numpy(), cells["x"].to_numpy(), cells["y"].to_numpy(), index.edges,
            upper=upper, k=config.k, target_fill=config.target_fill, tolerance=config.tolerance,
            n_trees=config.n_trees, bridge_share=config.bridge_share, refine_passes=config.refine_passes, seed=seed,
            unit_names=names_, locked=lock_groups)

    if previous is not None and locked is not None and len(locked):
        raise InfeasibleError("locked cells are not supported together with a previous plan yet: a re-run already "
                              "keeps every cell in its grid unless balance or capacity force a move")
    w_, x_, y_ = cells["workload"].to_numpy(), cells["x"].to_numpy(), cells["y"].to_numpy()
    if parts is not None and len(parts):
        pc = parts["capacity"].to_numpy(dtype="float64")
        px, py = parts["x"].to_numpy(dtype="float64"), parts["y"].to_numpy(dtype="float64")
        common = dict(capacities=pc, anchor_x=px, anchor_y=py, tolerance=config.tolerance, n_trees=config.n_trees,
                      bridge_share=config.bridge_share, refine_passes=config.refine_passes, seed=seed,
                      unit_names=names_)
        if previous is None:
            res = partition_roster(w_, x_, y_, index.edges, **common)
        else:
            initial, prev_names = previous_grid_of_cells(cells["cell"].to_numpy(), previous)
            owner, inotes = _inherit(prev_names, initial, parts, x_, y_, w_)
            init_parts = np.where(initial >= 0, owner[np.maximum(initial, 0)], -1)
            try:
                res = partition_roster_rerun(w_, x_, y_, index.edges, initial=init_parts,
                                             churn_weight=config.churn_weight, **common)
                res.notes = inotes + res.notes
                res.origin = {int(p_): int(i) for i, p_ in enumerate(owner.tolist()) if p_ >= 0}
            except InfeasibleError as exc:
                # the local re-run cannot keep capacity: a fresh plan (which raises in domain terms if
                # even that is impossible), grids keeping the ids they overlap most
                res = partition_roster(w_, x_, y_, index.edges, **common)
                res.origin = _origin_by_overlap(res.labels, initial, w_)
                res.notes.append(f"{exc}; re-planned the whole city instead (grids keep the ids they overlap most, "
                                 "but many customers change specialist)")
        used = np.unique(res.labels)
        if len(used) < len(pc):
            res.notes.append(f"{len(pc) - len(used)} grid(s) of the roster got no territory (based in an area "
                             "without workload)")
        res.origin = {int(np.searchsorted(used, p_)): o for p_, o in res.origin.items() if p_ in set(used.tolist())}
        res.labels = np.searchsorted(used, res.labels)
        res.bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m,
                              int(np.searchsorted(used, b.label))) for b in res.bridges]
        res.n_grids = len(used)
        group, lock_names = np.full(len(cells), -1), []
    elif previous is not None:
        initial, prev_names = previous_grid_of_cells(cells["cell"].to_numpy(), previous)
        try:
            res = partition_from_previous(
                cells["workload"].to_numpy(), cells["x"].to_numpy(), cells["y"].to_numpy(), index.edges,
                initial=initial, upper=upper, k=config.k, target_fill=config.target_fill, tolerance=config.tolerance,
                n_trees=config.n_trees, bridge_share=config.bridge_share, refine_passes=config.refine_passes,
                churn_weight=config.churn_weight, seed=seed)
        except InfeasibleError as exc:
            if config.k is None:
                raise
            # k fixed and the local re-run cannot keep capacity: a fresh partition (which raises
            # in domain terms if even that is impossible), grids keeping the ids they overlap most
            res = fresh(None)
            res.origin = _origin_by_overlap(res.labels, initial, cells["workload"].to_numpy())
            res.notes.append(f"{exc}; re-partitioned the whole city instead (grids keep the ids they overlap most, "
                             "but many customers change specialist)")
        group, lock_names = np.full(len(cells), -1), []
    else:
        group, lock_names = locked_groups(cells["cell"].to_numpy(), locked)
        res = fresh(group if lock_names else None)
    # Relabel by first unit (cells are sorted by H3 index), independent of the search order.
    first = np.full(res.n_grids, len(res.labels), dtype="int64")
    np.minimum.at(first, res.labels, np.arange(len(res.labels)))
    order = np.argsort(first, kind="stable")
    rank = np.empty(res.n_grids, dtype="int64")
    rank[order] = np.arange(res.n_grids)
    width = max(4, len(str(res.n_grids)))
    fixed = {int(rank[lab]): lock_names[grp] for grp, lab in res.locked_labels.items()}
    fixed.update({int(rank[lab]): prev_names[o] for lab, o in res.origin.items()})
    # a removed grid's id is not given to a new grid, nor a locked grid's
    taken = set(fixed.values()) | set(prev_names) | {str(r) for r in reserved}
    nums = [int(nm[1:]) for nm in taken if nm[:1] == "G" and nm[1:].isdigit()]
    start = max(nums, default=0) + 1 if previous is not None else 1
    free_names = (f"G{i:0{width}d}" for i in range(start, start + 10 * (res.n_grids + len(taken)) + 2))
    names = np.empty(res.n_grids, dtype=object)
    for r in range(res.n_grids):
        if r in fixed:
            names[r] = fixed[r]
        else:
            nm = next(free_names)
            while nm in taken:
                nm = next(free_names)
            names[r] = nm
    res.labels = rank[res.labels]
    res.bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(rank[b.label]))
                   for b in res.bridges]
    res.locked_labels = {grp: int(rank[lab]) for grp, lab in res.locked_labels.items()}
    logger.info("partition: %d cells -> %d grids (%d bridges, %d locked grids)", len(cells), res.n_grids,
                len(res.bridges), len(lock_names))
    return pd.Series(names[res.labels], index=cells.index, name="grid_id"), res
