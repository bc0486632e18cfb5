"""The partition stage of a city plan: from the cell table to each cell's grid.

:func:`design_targets` sizes the grids before the cells are built (to the roster: each
specialist's capacity; without one: ``partition.capacity``); :func:`partition_city` then splits
places heavier than a grid into dedicated grids, sizes the roster (:func:`~gridengine.partition.roster.size_to_roster`),
and draws the grids (:func:`~gridengine.partition.partition_cells`), falling back to fewer
specialists filled less, or unstaffed grids where the plan failed, when lumpy places leave no
contiguous plan within every capacity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..assign import design_capacity
from ..cells import CellIndex, split_heavy_cells
from ..config import PartitionConfig
from ..errors import InfeasibleError
from ..locks import LockedGrids
from ..metrics import customer_churn
from .h3cells import partition_cells
from .roster import MAX_FILL, RosterSizing, size_to_roster

__all__ = ["GridDesign", "CityPartition", "design_targets", "partition_city", "roster_capacities", "roster_parts"]


@dataclass
class GridDesign:
    """What grids are sized to (see :func:`design_targets`).

    Attributes
    ----------
    caps
        Each specialist's usable capacity (roster order; empty without a roster).
    capacity
        The design capacity: one grid's capacity without a roster; with one, the roster's typical
        capacity (:func:`gridengine.assign.design_capacity`), for reports.
    target
        The workload a grid aims at (what the cells stage refines dense cells against).
    config
        The partition config of this plan (``k`` less the locked grids).
    has_roster
        Whether grids are planned to a roster.
    warnings
        What the planner should know (a config capacity capping the roster).
    """

    caps: np.ndarray
    capacity: float
    target: float
    config: PartitionConfig
    has_roster: bool
    warnings: list[str] = field(default_factory=list)


def design_targets(roster: pd.DataFrame, roster_all: pd.DataFrame, located: pd.DataFrame, *,
                   config: PartitionConfig, frozen: LockedGrids | None = None) -> GridDesign:
    """Size the grids of a city: each specialist's capacity, the design capacity, a grid's target workload.

    Parameters
    ----------
    roster
        The specialists to plan with (locked grids' specialists left out).
    roster_all
        The whole roster (for the design capacity when no one is left to plan with).
    located
        The customers to plan (``workload``).
    config
        The partition config (``capacity``, ``k``, ``target_fill``).
    frozen
        Locked grids: ``partition.k`` counts them, so the rest gets ``k`` less their number.

    Returns
    -------
    GridDesign
    """
    warnings: list[str] = []
    has_roster = len(roster) > 0
    if has_roster:
        caps = roster_capacities(roster, config, warnings)
        capacity = design_capacity(roster.assign(capacity=caps))
    else:
        caps = np.zeros(0)
        capacity = config.capacity if config.capacity is not None else \
            design_capacity(roster if len(roster) else roster_all)
    pconfig = config
    if frozen is not None and pconfig.k is not None:  # k counts every grid, the locked ones included
        if pconfig.k - len(frozen.grids) < 1:
            raise InfeasibleError(f"k = {pconfig.k} grids, but {len(frozen.grids)} are locked ({frozen.source}): "
                                  "none is left for the rest of the city; raise k or lock fewer grids")
        pconfig = dataclasses.replace(pconfig, k=pconfig.k - len(frozen.grids))
    total_w = float(located["workload"].sum())
    if pconfig.k:
        target = total_w / pconfig.k
    elif has_roster:
        fill_est = min(max(total_w / float(caps.sum()), config.target_fill), MAX_FILL)
        target = fill_est * float(np.median(caps))
    else:
        target = config.target_fill * capacity
    return GridDesign(caps=caps, capacity=capacity, target=target, config=pconfig, has_roster=has_roster,
                      warnings=warnings)


@dataclass
class CityPartition:
    """The partition stage's result (see :func:`partition_city`).

    Attributes
    ----------
    cell_grid
        Each cell's grid id (``index.cells`` order).
    result
        The partitioner's :class:`~gridengine.partition.PartitionResult` (bridges, areas, notes).
    split_group, split_cell, split_limit
        Per customer, the dedicated grid of a split compound it belongs to (-1: none) and that
        compound's cell; the workload above which a place was split.
    sizing
        The roster's sizing (None when grids are not sized to a roster).
    roster_sized
        Whether one grid was drawn per specialist used.
    config
        The partition config used (``k`` less the dedicated and locked grids).
    reserved
        Grid ids kept off new grids (the locked grids').
    warnings
        What the planner should know (sizing, fallbacks), in order.
    """

    cell_grid: pd.Series
    result: Any
    split_group: np.ndarray
    split_cell: np.ndarray
    split_limit: float
    sizing: RosterSizing | None
    roster_sized: bool
    config: PartitionConfig
    reserved: list[str]
    warnings: list[str] = field(default_factory=list)


def partition_city(index: CellIndex, located: pd.DataFrame, roster: pd.DataFrame, design: GridDesign, *,
                   seed: int = 0, previous: Any = None, frozen: LockedGrids | None = None,
                   pins: pd.DataFrame | None = None, zones: bool = False) -> CityPartition:
    """Draw a city's grids: one per specialist used (with a roster), within each one's capacity.

    Parameters
    ----------
    index
        The cells stage's :class:`~gridengine.cells.CellIndex` (its workloads are changed in
        place where compounds are split into dedicated grids).
    located
        The customers to plan, in the order of ``index.customer_cell``.
    roster
        The specialists to plan with (``specialist_id``, ``lat``, ``lon``, ``current_grid``).
    design
        :func:`design_targets`'s result.
    seed
        The run's seed (the partition config is ``design.config``).
    previous
        The previous :class:`~gridengine.plan.Plan` of a re-run (its cells), or None.
    frozen, pins
        Locked grids (left out, their ids reserved) and cell pins (:mod:`gridengine.locks`).
    zones
        Whether zones were given (zones are hard: never bridged).

    Returns
    -------
    CityPartition

    Raises
    ------
    InfeasibleError
        A customer heavier than every specialist, ``k`` too small, or no contiguous plan within capacity.
    """
    pconfig, caps, capacity = design.config, design.caps, design.capacity
    has_roster = design.has_roster
    sizing_warnings: list[str] = []
    total_w = float(located["workload"].sum())
    if zones:  # zones are hard: every zone with customers gets grids of its own, never a bridge
        pconfig = dataclasses.replace(pconfig, bridge_share=min(pconfig.bridge_share, 1e-9))
    cells_ = index.cells
    roster_sized = has_roster and pins is None
    if has_roster and not roster_sized:
        sizing_warnings.append(f"cell pins: grids are designed at capacity {capacity:g} and then staffed, not sized "
                               "to each specialist of the roster")
    parts = None
    sizing = None
    if roster_sized:
        bx, by = index.projection.to_xy(roster["lat"].to_numpy(), roster["lon"].to_numpy())
        cell_w0 = cells_["workload"].to_numpy().copy()
        cell_n0 = cells_["n_customers"].to_numpy().copy()
        holds_grid = roster["current_grid"].astype(str).to_numpy() != ""

        def sized(max_fill: float, extra: int = 0, at: tuple[float, float] | None = None) -> RosterSizing:
            return size_to_roster(cell_w0, cells_["x"].to_numpy(), cells_["y"].to_numpy(), caps, bx, by,
                                  target_fill=pconfig.target_fill, k=pconfig.k,
                                  names=roster["specialist_id"].astype(str).tolist(), max_fill=max_fill,
                                  tolerance=pconfig.tolerance, keep_first=holds_grid, extra=extra, extra_at=at)

        sizing = sized(1.0)
        used = sizing.used
        c_big = float(caps[used].max()) if len(used) else capacity
        chunk = max(sizing.fill, pconfig.target_fill) * c_big
        limit = min(c_big, chunk * (1 + pconfig.tolerance))
    else:
        limit, chunk = capacity, design.target
    too_heavy = np.flatnonzero(located["workload"].to_numpy() > (c_big if roster_sized else capacity) + 1e-9)
    if len(too_heavy):  # one customer cannot be split between specialists
        i = int(too_heavy[0])
        cap_ = c_big if roster_sized else capacity
        raise InfeasibleError(
            f"customer {located['customer_id'].iat[i]!r} (row {int(located['row'].iat[i])}): column 'workload' = "
            f"{located['workload'].iat[i]:g} is above the {'largest specialist' if roster_sized else 'grid'} capacity "
            f"{cap_:g}; one customer cannot be split "
            f"between specialists ({len(too_heavy)} such customer(s)); check the workload or raise the capacity")

    def split_for_roster(limit: float, chunk: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, float]:
        # compounds heavier than a grid at this fill get dedicated grids; the specialists those take
        # leave the rest of the roster, so split again if a place still outweighs every grid left
        assert sizing is not None
        for _ in range(4):
            index.cells["workload"] = cell_w0
            index.cells["n_customers"] = cell_n0
            sg, sc = split_heavy_cells(index, located, limit=limit, chunk=chunk, even=False)
            pts = roster_parts(index, located, roster, caps, sizing, sg, sc, bx, by)
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
        assert sizing is not None and parts is not None
        n_dedicated_staff = int(sizing.used.size + sizing.n_unstaffed - len(parts))
        if n_dedicated and n_dedicated_staff < n_dedicated:
            sizing_warnings.append(f"{n_dedicated - n_dedicated_staff} dedicated grid(s) of split compounds have no "
                                   "specialist of their own left in the roster")
    elif n_dedicated and pconfig.k is not None:
        if pconfig.k - n_dedicated < 1:
            raise InfeasibleError(f"k = {pconfig.k} grids cannot cover {n_dedicated} dedicated grids of split compounds "
                                  "and the rest of the city; raise k")
        pconfig = dataclasses.replace(pconfig, k=pconfig.k - n_dedicated)
    prev_cells = previous.cells[["cell", "grid_id"]] if previous is not None else None
    reserved = frozen.ids if frozen is not None else []
    if frozen is not None and prev_cells is not None:  # locked grids are not re-planned: the rest starts from the others
        prev_cells = prev_cells.loc[~prev_cells["grid_id"].astype(str).isin(set(frozen.grids["territory"]))]
    try:
        cell_grid, pres = partition_cells(index, upper=capacity, config=pconfig, seed=seed, locked=pins,
                                          parts=parts, previous=prev_cells, reserved=reserved)
    except InfeasibleError as exc:
        if not roster_sized or pconfig.k is not None:
            raise
        # no contiguous plan within every specialist's capacity at this fill (lumpy places leave no
        # room): plan the roster as short, filled less, the rest of the workload in unstaffed grids
        first_exc, done = exc, False
        at = getattr(exc, "where", None)
        assert sizing is not None
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
                cell_grid, pres = partition_cells(index, upper=capacity, config=pconfig, seed=seed,
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
    if roster_sized and sizing is not None:
        sizing_warnings.extend(sizing.notes)
    if previous is not None and pconfig.max_churn is not None:
        weight = pconfig.churn_weight
        for _ in range(3):
            churn = customer_churn(previous, located, cell_grid.to_numpy()[index.customer_cell])
            if churn <= pconfig.max_churn:
                break
            weight = max(weight, 1.0) * 4
            cell_grid, pres = partition_cells(index, upper=capacity, config=dataclasses.replace(pconfig, churn_weight=weight),
                                              seed=seed, locked=pins, parts=parts, previous=prev_cells,
                                              reserved=reserved)
    return CityPartition(cell_grid=cell_grid, result=pres, split_group=split_group, split_cell=split_cell,
                         split_limit=split_limit, sizing=sizing, roster_sized=roster_sized, config=pconfig,
                         reserved=reserved, warnings=sizing_warnings)


def roster_capacities(roster: pd.DataFrame, config: PartitionConfig, warnings: list[str]) -> np.ndarray:
    """Each specialist's usable capacity: the roster's, capped by ``partition.capacity`` when set (with a warning)."""
    caps = roster["capacity"].to_numpy(dtype="float64").copy()
    limit = config.capacity
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


def roster_parts(index: CellIndex, located: pd.DataFrame, roster: pd.DataFrame, caps: np.ndarray,
                 sizing: RosterSizing, split_group: np.ndarray, split_cell: np.ndarray, bx: np.ndarray,
                 by: np.ndarray) -> pd.DataFrame:
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

