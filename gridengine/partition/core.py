"""Partition: merge units (H3 cells, or any areal units) into contiguous grids within capacity.

The core, :func:`partition_units`, works on plain arrays (unit weights, coordinates in
metres, adjacency edges) so it serves H3 cells, census tracts or administrative areas
alike; :func:`partition_cells` adapts the H3 cell layer to it.

Method (first version, guarantees first, quality second):

1. **Areas.** The adjacency graph is split into connected components (areas cut off by
   water, islands). Each area gets whole grids sized to its own workload. An area too
   light for a grid of its own (below ``bridge_share`` of a grid's target) is joined to
   the nearest big area through an explicit *bridge* (the closest pair of units), before
   the search, so its workload is balanced like any other; the plan reports the bridge.
2. **Recursive bisection on spanning trees.** An area that needs ``k`` grids is cut in
   two along one edge of a spanning tree, so both halves are connected by construction;
   the halves get ``k // 2`` and ``k - k // 2`` grids. Several trees are tried per cut
   (minimum spanning trees whose edge weights follow a direction across the area's long
   axis, so cuts run across it); the cut with the best balance, then the fewest cut
   edges, wins.
3. **Refinement.** Boundary units move between neighbouring grids, never breaking a
   grid's connectivity and never pushing a grid over capacity: first to bring every grid
   within a band around its area's mean workload, then to make grids compact
   (workload-weighted distance to the grid centre).
4. **Checks.** Infeasible inputs are named before any search (a unit heavier than the
   capacity, more grids than units), and the result is verified (connectivity, capacity).
   When grids were derived from capacity and refinement cannot meet capacity, the area
   gets one more grid and is partitioned again.

Everything is deterministic for a given seed."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.csgraph import connected_components

from ..errors import InfeasibleError
from ._draw import allocate_grids, grow_region, recursive_bisection, redraw_region
from ._graph import Bridge, Graph, areas_and_bridges, csr, tidy_empty_units
from ._refine import REFINE_SCHEDULES, quality_key, refine_portfolio

__all__ = ['Bridge', 'PartitionResult', 'partition_units', 'grid_connectivity', 'CUT_SCORES', 'REFINE_SCHEDULES']

logger = logging.getLogger(__name__)


@dataclass
class PartitionResult:
    """Output of :func:`partition_units`.

    Attributes
    ----------
    labels
        Grid label (0..n_grids-1) of every unit.
    n_grids
        Number of grids.
    bridges
        Areas joined through bridges.
    area_of_unit
        Connected-area (component) id of every unit.
    notes
        Human-readable remarks (grids added to meet capacity, …).
    locked_labels
        Grid label of each lock group.
    origin
        Re-runs: the previous grid (initial label) each surviving grid came from.
    """

    labels: np.ndarray
    n_grids: int
    bridges: list[Bridge] = field(default_factory=list)
    area_of_unit: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    locked_labels: dict[int, int] = field(default_factory=dict)
    origin: dict[int, int] = field(default_factory=dict)


def grid_connectivity(labels: np.ndarray, src: np.ndarray, dst: np.ndarray, bridges: list[Bridge] = ()) -> np.ndarray:
    """Whether each grid is connected (through adjacency edges plus reported bridges).

    Returns a boolean array indexed by label.
    """
    n = len(labels)
    same = labels[src] == labels[dst]
    s, d = src[same], dst[same]
    if bridges:
        s = np.r_[s, [b.from_unit for b in bridges]]
        d = np.r_[d, [b.to_unit for b in bridges]]
    n_comp, comp = connected_components(csr(n, s, d), directed=False)
    k = int(labels.max()) + 1 if n else 0
    pieces = np.zeros(k, dtype="int64")
    pairs = np.unique(np.c_[labels, comp], axis=0)
    np.add.at(pieces, pairs[:, 0], 1)
    return pieces == 1


#: How a bisection chooses among its cuts that are within balance: fewest cut edges (short
#: borders) or least moment of inertia of the two halves (round halves). Both are tried.
CUT_SCORES: tuple[str, ...] = ("cut", "inertia")


def _repair_capacity(g: Graph, labels: np.ndarray, merged: np.ndarray, merged_w: np.ndarray, upper: float,
                     tol: float, n_trees: int, refine_passes: int, locked: np.ndarray, rng: np.random.Generator,
                     allow_extra: bool) -> tuple[np.ndarray, int, np.ndarray, list[str]]:
    """Relieve grids over capacity by redrawing each with its neighbouring grids, locally.

    A grid over capacity usually holds two heavy units (large compounds) that its full
    neighbours cannot take one at a time. Its region (the grid and the nearest grids around
    it, :data:`REPAIR_REGION` at first, doubling every two rounds) is redrawn by bisection with
    the same number of grids, then, where ``allow_extra`` (k derived, not given), with one
    grid more; the whole plan is refined after each round. Everything outside the regions stays.

    Returns (labels 0..n_grids-1, n_grids, area of each grid, notes).
    """
    notes: list[str] = []
    n_grids = int(labels.max()) + 1
    for rnd in range(REPAIR_ROUNDS):
        loads = np.bincount(labels, weights=g.w, minlength=n_grids)
        over = np.flatnonzero(loads > upper + 1e-9)
        if len(over) == 0:
            break
        size = REPAIR_REGION * 2 ** (rnd // 2)
        extra = 1 if allow_extra and rnd % 2 == 1 else 0
        taken: set[int] = set()
        next_label = n_grids
        redrawn = added = 0
        for gi in sorted(over.tolist(), key=lambda v: (-loads[v], v)):
            if gi in taken:
                continue
            within = np.flatnonzero(merged == merged[np.flatnonzero(labels == gi)[0]])
            region = grow_region(g, labels, [gi], min_grids=size, within=within)
            if taken & set(region):  # overlaps a region redrawn this round: next round
                continue
            taken |= set(region)
            next_label = redraw_region(g, labels, region, len(region) + extra, next_label, rng, n_trees, tol)
            redrawn += len(region)
            added += extra
        _, labels = np.unique(labels, return_inverse=True)
        labels = labels.astype("int64")
        n_grids = int(labels.max()) + 1
        grid_area = np.zeros(n_grids, dtype="int64")
        grid_area[labels] = merged
        cnt = np.bincount(grid_area, minlength=len(merged_w))
        target = (merged_w / np.maximum(cnt, 1))[grid_area]
        up = np.full(n_grids, float(upper))
        labels = refine_portfolio(g, labels, n_grids, target, up, tol, refine_passes, locked)
        notes.append(f"{len(over)} grid(s) over capacity {upper:g}: redrew {redrawn} grids around them"
                     + (f" with {added} more" if added else ""))
    grid_area = np.zeros(n_grids, dtype="int64")
    grid_area[labels] = merged
    return labels, n_grids, grid_area, notes


#: Rounds of local capacity repair (:func:`_repair_capacity`) before the whole area is redrawn.
REPAIR_ROUNDS = 6

#: Grids in a capacity-repair region in the first round (doubling every two rounds).
REPAIR_REGION = 4


def partition_units(
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    *,
    upper: float,
    k: int | None = None,
    target_fill: float = 0.9,
    tolerance: float = 0.05,
    n_trees: int = 6,
    bridge_share: float = 0.5,
    refine_passes: int = 60,
    seed: int = 0,
    unit_names: list[str] | None = None,
    locked: np.ndarray | None = None,
) -> PartitionResult:
    """Partition units into contiguous grids whose workload stays within ``upper``.

    Parameters
    ----------
    weights
        Workload of each unit (>= 0; empty units weigh 0 and still belong to a grid).
    x, y
        Unit coordinates in metres (any planar projection).
    edges
        Adjacency as two index arrays (i, j); each undirected edge once or twice.
    upper
        Largest workload a grid may hold (a specialist's capacity).
    k
        Number of grids; ``None`` derives it per area from ``target_fill * upper``.
    target_fill
        Target mean grid workload as a share of ``upper`` when ``k`` is derived.
    tolerance
        Balance goal (grids within ±tolerance of their area's mean).
    n_trees
        Spanning trees tried per bisection.
    bridge_share
        Areas lighter than this share of the target grid workload are bridged to the nearest grid.
    refine_passes
        Maximum refinement passes per phase.
    seed
        Seed of the only random generator used.
    unit_names
        How to name a unit in messages (e.g. ``"cell 89411c… at (22.54, 114.06)"``); default ``"unit i"``.
    locked
        Optional lock group of each unit (-1: free). Units of one group always end in the same
        grid, never with another group; ``PartitionResult.locked_labels`` gives each group's grid.
        A group must be contiguous.

    Returns
    -------
    PartitionResult

    Raises
    ------
    InfeasibleError
        A unit heavier than ``upper``; ``k`` too small for the capacity; more grids than units;
        or an area that cannot be split within capacity. The message names the unit or area.
    """
    w = np.asarray(weights, dtype="float64")
    n = len(w)
    if n == 0:
        raise InfeasibleError("nothing to partition: no units")
    if locked is not None and (np.asarray(locked) >= 0).any():
        return _partition_locked(np.asarray(weights, dtype="float64"), np.asarray(x, dtype="float64"),
                                 np.asarray(y, dtype="float64"), edges, np.asarray(locked, dtype="int64"),
                                 dict(upper=upper, k=k, target_fill=target_fill, tolerance=tolerance, n_trees=n_trees,
                                      bridge_share=bridge_share, refine_passes=refine_passes, seed=seed),
                                 unit_names)
    return _partition_core(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), edges,
                           upper=upper, k=k, target_fill=target_fill, tolerance=tolerance, n_trees=n_trees,
                           bridge_share=bridge_share, refine_passes=refine_passes, seed=seed,
                           unit_names=unit_names, lock=None)


def _partition_locked(w: np.ndarray, x: np.ndarray, y: np.ndarray, edges, locked: np.ndarray, opts: dict,
                      unit_names: list[str] | None) -> PartitionResult:
    """Contract each lock group to one unit, partition, and expand the labels back."""
    n = len(w)
    src = np.asarray(edges[0], dtype="int64")
    dst = np.asarray(edges[1], dtype="int64")
    groups = np.unique(locked[locked >= 0])
    # every group must be contiguous on its own
    inside = (locked[src] >= 0) & (locked[src] == locked[dst])
    _, comp = connected_components(csr(n, src[inside], dst[inside]), directed=False)
    for grp in groups.tolist():
        members = np.flatnonzero(locked == grp)
        if len(np.unique(comp[members])) > 1:
            raise InfeasibleError(f"locked group {grp}: its {len(members)} units are not contiguous, so no grid can hold them")
    free = np.flatnonzero(locked < 0)
    node = np.empty(n, dtype="int64")
    node[free] = np.arange(len(free))
    gpos = np.searchsorted(groups, locked[locked >= 0])
    node[locked >= 0] = len(free) + gpos
    m = len(free) + len(groups)
    cw = np.bincount(node, weights=w, minlength=m)
    ww = w + 1e-9
    cx = np.bincount(node, weights=ww * x, minlength=m) / np.bincount(node, weights=ww, minlength=m)
    cy = np.bincount(node, weights=ww * y, minlength=m) / np.bincount(node, weights=ww, minlength=m)
    a, b = node[src], node[dst]
    keep = a != b
    pairs = np.unique(np.sort(np.c_[a[keep], b[keep]], axis=1), axis=0)
    lock = np.zeros(m, dtype=np.int64)
    lock[len(free):] = 1
    names = None
    if unit_names is not None:
        names = [unit_names[i] for i in free.tolist()] + [f"locked group {grp}" for grp in groups.tolist()]
    res = _partition_core(cw, cx, cy, (pairs[:, 0], pairs[:, 1]), unit_names=names, lock=lock, **opts)
    labels = res.labels[node]
    first_of = {int(nd): int(u) for u, nd in reversed(list(enumerate(node.tolist())))}
    bridges = [Bridge(b.area_units, b.area_workload, first_of[b.from_unit], first_of[b.to_unit], b.distance_m, b.label)
               for b in res.bridges]
    locked_labels = {int(grp): int(res.labels[len(free) + i]) for i, grp in enumerate(groups.tolist())}
    conn = grid_connectivity(labels, src, dst, bridges)
    if not conn.all():  # pragma: no cover - groups are contiguous and contracted
        raise RuntimeError("internal error: a grid with locked units is not connected")
    return PartitionResult(labels=labels, n_grids=res.n_grids, bridges=bridges, area_of_unit=None, notes=res.notes,
                           locked_labels=locked_labels)


def _partition_core(w: np.ndarray, x: np.ndarray, y: np.ndarray, edges, *, upper: float, k: int | None,
                    target_fill: float, tolerance: float, n_trees: int, bridge_share: float, refine_passes: int,
                    seed: int, unit_names: list[str] | None, lock: np.ndarray | None) -> PartitionResult:
    n = len(w)
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise InfeasibleError("unit weights must be finite and non-negative")
    if not (upper > 0 and math.isfinite(upper)):
        raise InfeasibleError(f"capacity must be a positive number, got {upper!r}")
    def name(i: int) -> str:
        return unit_names[i] if unit_names is not None else f"unit {i}"

    def area_name(a: int, units: np.ndarray) -> str:
        return f"area {a} ({len(units)} units, workload {w[units].sum():g}, heaviest {name(int(units[np.argmax(w[units])]))})"

    heavy = np.flatnonzero(w > upper + 1e-9)
    if len(heavy):
        i = int(heavy[np.argmax(w[heavy])])
        raise InfeasibleError(
            f"{name(i)} holds workload {w[i]:g}, above the capacity {upper:g} by {w[i] - upper:g} "
            f"({len(heavy)} unit(s) too heavy); a unit cannot be split between grids: use finer units "
            "(cells.resolution) or a larger capacity"
        )
    total = float(w.sum())
    if k is not None and k > n:
        raise InfeasibleError(f"k = {k} grids but only {n} units to build them from")
    src = np.asarray(edges[0], dtype="int64")
    dst = np.asarray(edges[1], dtype="int64")
    g = Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), src, dst)
    if lock is not None:
        g.lock = lock
    target = (total / k) if k is not None else target_fill * upper
    g, area, big, merged, bridges, n_areas = areas_and_bridges(g, w, target, bridge_share, lock)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    merged_n = np.bincount(merged, minlength=n_areas)
    kc = allocate_grids(merged_w, big, k, upper, target_fill)
    if lock is not None:  # an area needs a grid for each locked group in it
        locks_in = np.bincount(merged, weights=lock, minlength=n_areas).astype("int64")
        short = np.flatnonzero(big & (locks_in > kc))
        if len(short) and k is not None:
            a = int(short[0])
            raise InfeasibleError(f"{area_name(a, np.flatnonzero(merged == a))} holds {locks_in[a]} locked groups "
                                  f"but only {kc[a]} of the k = {k} grids")
        kc = np.where(big, np.maximum(kc, locks_in), kc)
    too_many = np.flatnonzero(kc > merged_n)
    if len(too_many):
        a = int(too_many[0])
        raise InfeasibleError(f"{area_name(a, np.flatnonzero(merged == a))} needs {kc[a]} grids, more than its units")
    notes: list[str] = []
    locked = (g.lock > 0) if lock is not None else np.zeros(n, dtype=np.bool_)
    areas = np.flatnonzero(big).tolist()
    kk = {a: int(kc[a]) for a in areas}
    for attempt in range(21):
        area_mean = np.zeros(n_areas)
        for a in areas:
            area_mean[a] = merged_w[a] / kk[a]
        best = None
        for cut_score in CUT_SCORES:  # a small portfolio of starts; the best refined plan wins
            rng = np.random.default_rng(seed)
            labels = np.full(n, -1, dtype="int64")
            for a in areas:
                units = np.flatnonzero(merged == a)
                recursive_bisection(g, units, kk[a], labels, [0], rng, n_trees, tolerance, cut_score)
                labels[units] += 1_000_000 * (a + 1)  # keep areas apart until relabelled below
            # relabel 0..K-1, in area order then label order (deterministic)
            _, labels = np.unique(labels, return_inverse=True)
            labels = labels.astype("int64")
            n_grids = int(labels.max()) + 1
            grid_area = np.zeros(n_grids, dtype="int64")
            grid_area[labels] = merged
            target = area_mean[grid_area]
            up = np.full(n_grids, float(upper))
            labels = refine_portfolio(g, labels, n_grids, target, up, tolerance, refine_passes, locked)
            key = quality_key(g, labels, n_grids, target, up, tolerance)
            if best is None or key < best[0]:
                best = (key, labels, n_grids, grid_area)
        _, labels, n_grids, grid_area = best
        loads = np.bincount(labels, weights=w, minlength=n_grids)
        if (loads > upper + 1e-9).any():  # local redraws first: far cheaper than redrawing the area
            labels, n_grids, grid_area, rnotes = _repair_capacity(
                g, labels, merged, merged_w, upper, tolerance, n_trees, refine_passes, locked,
                np.random.default_rng(seed), allow_extra=k is None)
            notes.extend(rnotes)
            kk = {a: int(np.count_nonzero(grid_area == a)) for a in areas}
            loads = np.bincount(labels, weights=w, minlength=n_grids)
        over = np.unique(grid_area[loads > upper + 1e-9])
        if len(over) == 0:
            break
        for a in over.tolist():
            units = np.flatnonzero(merged == a)
            worst = float(loads[grid_area == a].max())
            if k is not None or kk[a] >= len(units) or attempt == 20:
                raise InfeasibleError(
                    f"{area_name(a, units)} could not be split into {kk[a]} contiguous grids within capacity "
                    f"{upper:g}: the heaviest grid holds {worst:g} ({worst - upper:g} over); raise k or the capacity"
                )
            notes.append(f"{area_name(a, units)}: {kk[a]} grids could not all stay within capacity {upper:g}; "
                         f"used {kk[a] + 1}")
            kk[a] += 1
    tidy_empty_units(g, labels, bridges, locked)
    # A bridge whose two ends landed in different grids carries no grid: the small area became
    # a grid of its own (or part of one) and needs no report.
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    conn = grid_connectivity(labels, src, dst, bridges)
    if not conn.all():  # pragma: no cover - refinement keeps connectivity by construction
        raise RuntimeError(f"internal error: grids {np.flatnonzero(~conn).tolist()} are not connected")
    return PartitionResult(labels=labels, n_grids=n_grids, bridges=bridges, area_of_unit=area, notes=notes)


