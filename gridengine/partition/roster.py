"""Roster mode: one grid per specialist, sized to their own capacity, near their base."""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InfeasibleError
from .core import Bridge, PartitionResult, _Graph, _areas_and_bridges, _recursive_bisection, _refine_portfolio

__all__ = ['partition_roster']

logger = logging.getLogger(__name__)


def partition_roster(
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    *,
    capacities: np.ndarray,
    anchor_x: np.ndarray,
    anchor_y: np.ndarray,
    tolerance: float = 0.05,
    n_trees: int = 6,
    bridge_share: float = 0.5,
    refine_passes: int = 60,
    seed: int = 0,
) -> PartitionResult:
    """Grids sized to a roster: one grid per specialist, sized to their capacity, near their base.

    Heterogeneous rosters (salaried and agency tracks, part-time staff) get grids in proportion
    to each specialist's capacity: every grid is filled to the same share ``total workload /
    total capacity`` of its specialist's capacity. Each specialist belongs to the area (island,
    land cut off by water) nearest their base; areas short of capacity borrow the nearest
    specialists of areas with spare capacity. Bisection splits the specialists by the position
    of their bases along each cut, so grids form around their specialists.

    Parameters
    ----------
    weights, x, y, edges
        Units, as :func:`partition_units`.
    capacities
        Capacity of each specialist.
    anchor_x, anchor_y
        Base of each specialist, in the units' metric frame.
    tolerance, n_trees, bridge_share, refine_passes, seed
        As :func:`partition_units`.

    Returns
    -------
    PartitionResult
        ``labels[u]`` is the index of the specialist whose grid holds unit ``u``.

    Raises
    ------
    InfeasibleError
        Total capacity below the workload, or an area that no specialist can cover.
    """
    w = np.asarray(weights, dtype="float64")
    caps = np.asarray(capacities, dtype="float64")
    m = len(caps)
    total = float(w.sum())
    if m == 0:
        raise InfeasibleError("roster mode needs at least one specialist")
    if total > caps.sum() + 1e-9:
        raise InfeasibleError(
            f"roster mode: total capacity {caps.sum():g} is below the workload {total:g} by {total - caps.sum():g}; "
            "plan in design mode to see the unstaffed grids and where specialists are missing")
    g = _Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"),
               np.asarray(edges[0], dtype="int64"), np.asarray(edges[1], dtype="int64"))
    fill = total / caps.sum()
    g, area, big, merged, bridges, n_areas = _areas_and_bridges(g, w, fill * float(np.median(caps)), bridge_share, None)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    big_units = np.flatnonzero(big[merged])
    tree = cKDTree(np.c_[g.x[big_units], g.y[big_units]])
    home = merged[big_units[tree.query(np.c_[anchor_x, anchor_y], k=1)[1]]]
    # areas short of capacity take the nearest specialists of areas that can spare them
    for a in np.flatnonzero(big).tolist():
        units_a = np.flatnonzero(merged == a)
        t_a = cKDTree(np.c_[g.x[units_a], g.y[units_a]])
        while caps[home == a].sum() + 1e-9 < merged_w[a] / max(fill, 1e-9) * fill and caps[home == a].sum() < merged_w[a]:
            have = np.bincount(home, weights=caps, minlength=n_areas)
            spare = have - merged_w
            cand = np.flatnonzero((home != a) & (spare[home] - caps >= -1e-9))
            if len(cand) == 0:
                raise InfeasibleError(
                    f"roster mode: area {a} ({len(units_a)} units, workload {merged_w[a]:g}) cannot be covered: "
                    f"specialists based there hold {caps[home == a].sum():g} and no other area can spare one")
            d = t_a.query(np.c_[anchor_x[cand], anchor_y[cand]], k=1)[0]
            home[cand[int(np.argmin(d))]] = a
    labels = np.full(len(w), -1, dtype="int64")
    target = np.zeros(m)
    rng = np.random.default_rng(seed)
    for a in np.flatnonzero(big).tolist():
        members = np.flatnonzero(home == a)
        units = np.flatnonzero(merged == a)
        if len(members) == 0:
            continue
        if len(members) > len(units):
            raise InfeasibleError(f"roster mode: area {a} has {len(units)} units for {len(members)} specialists")
        t = caps[members] * merged_w[a] / caps[members].sum()
        target[members] = t
        _recursive_bisection(g, units, len(members), labels, [0], rng, n_trees, tolerance, "cut",
                             (t, anchor_x[members], anchor_y[members], members))
    used = np.unique(labels[labels >= 0])
    # specialists of an area without workload keep no grid: relabel to 0..K-1 over used ones
    remap = np.full(m, -1, dtype="int64")
    remap[used] = np.arange(len(used))
    labels = remap[labels]
    k = len(used)
    locked = np.zeros(len(w), dtype=np.bool_)
    labels = _refine_portfolio(g, labels, k, target[used], caps[used], tolerance, refine_passes, locked)
    loads = np.bincount(labels, weights=w, minlength=k)
    over = np.flatnonzero(loads > caps[used] + 1e-9)
    if len(over):
        j = int(used[over[0]])
        raise InfeasibleError(f"roster mode: the grid of specialist {j} holds {loads[over[0]]:g}, above their capacity "
                              f"{caps[j]:g}; the roster is too tight (filled to {fill:.0%}) for contiguous grids")
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    labels = used[labels]  # back to specialist indices
    notes = [f"roster mode: {k} grids sized to their specialists' capacities, each filled to {fill:.1%}"]
    if k < m:
        notes.append(f"roster mode: {m - k} specialist(s) based in areas without workload got no grid")
    return PartitionResult(labels=labels, n_grids=m, bridges=bridges, area_of_unit=area, notes=notes)
