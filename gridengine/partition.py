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

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, depth_first_order, minimum_spanning_tree
from scipy.spatial import cKDTree

from .errors import InfeasibleError

__all__ = ["Bridge", "PartitionResult", "partition_units", "partition_cells", "grid_connectivity"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bridge:
    """A disconnected area joined to a grid across water or empty land.

    Attributes
    ----------
    area_units
        Number of units in the joined area.
    area_workload
        Workload of the joined area.
    from_unit, to_unit
        The closest pair of units: one in the area, one in the grid it joins.
    distance_m
        Distance between them, in metres.
    label
        The grid label the area joined.
    """

    area_units: int
    area_workload: float
    from_unit: int
    to_unit: int
    distance_m: float
    label: int


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
    """

    labels: np.ndarray
    n_grids: int
    bridges: list[Bridge] = field(default_factory=list)
    area_of_unit: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _csr(n: int, src: np.ndarray, dst: np.ndarray) -> sp.csr_matrix:
    data = np.ones(2 * len(src), dtype="int8")
    m = sp.csr_matrix((data, (np.r_[src, dst], np.r_[dst, src])), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


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
    n_comp, comp = connected_components(_csr(n, s, d), directed=False)
    k = int(labels.max()) + 1 if n else 0
    pieces = np.zeros(k, dtype="int64")
    pairs = np.unique(np.c_[labels, comp], axis=0)
    np.add.at(pieces, pairs[:, 0], 1)
    return pieces == 1


def _allocate_grids(area_w: np.ndarray, big: np.ndarray, k: int | None, upper: float, fill: float) -> np.ndarray:
    """Number of grids per area."""
    kc = np.zeros(len(area_w), dtype="int64")
    need = np.ceil(area_w / upper - 1e-9).astype("int64")
    need[big] = np.maximum(need[big], 1)
    if k is None:
        kc[big] = np.maximum(np.ceil(area_w[big] / (fill * upper) - 1e-9).astype("int64"), need[big])
        return kc
    if need[big].sum() > k:
        raise InfeasibleError(
            f"k = {k} grids cannot hold the workload within capacity {upper:g}: the areas need at least "
            f"{int(need[big].sum())} grids (total workload {area_w.sum():g}); raise k or the capacity"
        )
    idx = np.flatnonzero(big)
    share = area_w[idx] / area_w[idx].sum() * k
    alloc = np.maximum(np.floor(share).astype("int64"), need[idx])
    while alloc.sum() > k:  # too many: take from areas furthest above their share
        over = np.where(alloc > need[idx], alloc - share, -np.inf)
        alloc[int(np.argmax(over))] -= 1
    while alloc.sum() < k:  # too few: give to areas furthest below their share (largest remainder)
        alloc[int(np.argmax(share - alloc))] += 1
    kc[idx] = alloc
    return kc


class _Graph:
    """Adjacency in CSR arrays plus per-unit data, for the bisection and refinement."""

    def __init__(self, weights: np.ndarray, x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray):
        self.n = len(weights)
        self.w = weights
        self.x = x
        self.y = y
        self.src = src
        self.dst = dst
        self.adj = _csr(self.n, src, dst)
        self.indptr = self.adj.indptr
        self.indices = self.adj.indices

    def neighbours(self, u: int) -> np.ndarray:
        return self.indices[self.indptr[u]:self.indptr[u + 1]]


def _bisect(g: _Graph, units: np.ndarray, k: int, rng: np.random.Generator, n_trees: int, tol: float) -> tuple[np.ndarray, int]:
    """Split a connected unit set into two connected sets. Returns (mask of side A over units, k of side A)."""
    n = len(units)
    local = np.full(g.n, -1, dtype="int64")
    local[units] = np.arange(n)
    sub = g.adj[units][:, units].tocoo()
    keep = sub.row < sub.col
    a, b = sub.row[keep], sub.col[keep]
    w = g.w[units]
    total = float(w.sum())
    x = g.x[units]
    y = g.y[units]
    # Long axis of the set (weighted, with a floor so empty land counts a little too).
    ww = w + max(total, 1.0) / n * 0.25
    mx, my = np.average(x, weights=ww), np.average(y, weights=ww)
    cov = np.cov(np.vstack([x - mx, y - my]), aweights=ww) if n > 2 else np.eye(2)
    evals, evecs = np.linalg.eigh(np.atleast_2d(cov))
    base_angle = math.atan2(evecs[1, -1], evecs[0, -1])
    k1, k2 = k // 2, k - k // 2
    per = total / k if total > 0 else 1.0
    best = None  # (score tuple, mask, kA)
    for t in range(n_trees):
        angle = base_angle + (0.0 if t == 0 else (t - (n_trees - 1) / 2) * (math.pi / (2 * n_trees)) + rng.uniform(-0.05, 0.05))
        ux, uy = math.cos(angle), math.sin(angle)
        proj = x * ux + y * uy
        length = np.hypot(x[a] - x[b], y[a] - y[b])
        ew = np.abs(proj[a] - proj[b]) + 0.05 * length * rng.uniform(0.5, 1.5, size=len(a)) + 1e-3
        tree = minimum_spanning_tree(sp.csr_matrix((ew, (a, b)), shape=(n, n)))
        root = int(np.argmin(proj))
        # Depth-first preorder: every subtree is one contiguous run of the order.
        order, pred = depth_first_order(tree, root, directed=False, return_predecessors=True)
        if len(order) != n:  # not connected: should not happen for a component
            raise RuntimeError("bisection called on a disconnected unit set")
        sw = w.copy()
        sn = np.ones(n, dtype="int64")
        pr = pred[order[::-1]]
        for v, p in zip(order[::-1].tolist(), pr.tolist()):
            if p >= 0:
                sw[p] += sw[v]
                sn[p] += sn[v]
        cand = order[1:]  # every non-root node is the child end of one tree edge
        s = sw[cand]
        cnt = sn[cand]
        best_local = []
        for kA in sorted({k1, k2}):
            err = np.abs(s - total * kA / k) / per
            ok = (cnt >= kA) & (n - cnt >= k - kA)
            err = np.where(ok, err, np.inf)
            top = np.argsort(err, kind="stable")[:12]
            for i in top:
                if np.isfinite(err[i]):
                    best_local.append((float(err[i]), int(cand[i]), kA))
        if not best_local:
            continue
        pos = np.empty(n, dtype="int64")
        pos[order] = np.arange(n)
        for err_i, c, kA in best_local:
            mask = (pos >= pos[c]) & (pos < pos[c] + sn[c])
            cut = int(np.count_nonzero(mask[a] != mask[b]))
            score = (round(max(err_i, tol * 0.25), 6), cut / math.sqrt(n), err_i)
            if best is None or score < best[0]:
                best = (score, mask, kA)
    if best is None:
        raise InfeasibleError(f"cannot split an area of {n} units into {k} connected grids")
    return best[1], best[2]


def _recursive_bisection(g: _Graph, units: np.ndarray, k: int, labels: np.ndarray, next_label: list[int],
                         rng: np.random.Generator, n_trees: int, tol: float) -> None:
    if k == 1:
        labels[units] = next_label[0]
        next_label[0] += 1
        return
    mask, kA = _bisect(g, units, k, rng, n_trees, tol)
    _recursive_bisection(g, units[mask], kA, labels, next_label, rng, n_trees, tol)
    _recursive_bisection(g, units[~mask], k - kA, labels, next_label, rng, n_trees, tol)


def _still_connected_without(g: _Graph, labels: np.ndarray, u: int, limit: int = 400) -> bool:
    """Whether removing ``u`` keeps its grid connected (conservative: False if unsure within ``limit`` steps)."""
    lab = labels[u]
    nbrs = [int(v) for v in g.neighbours(u) if labels[v] == lab]
    if len(nbrs) <= 1:
        return len(nbrs) == 1 or False
    targets = set(nbrs[1:])
    seen = {u, nbrs[0]}
    queue = deque([nbrs[0]])
    steps = 0
    while queue and targets:
        v = queue.popleft()
        steps += 1
        if steps > limit:
            return False
        for t in g.neighbours(v).tolist():
            if t not in seen and labels[t] == lab:
                seen.add(t)
                targets.discard(t)
                queue.append(t)
    return not targets


def _refine(g: _Graph, units: np.ndarray, labels: np.ndarray, grid_ids: list[int], upper: float,
            tol: float, passes: int) -> None:
    """Boundary moves inside one area: balance first, then compactness; never break connectivity or capacity."""
    if len(grid_ids) < 2 or passes == 0:
        return
    total = float(g.w[units].sum())
    k = len(grid_ids)
    mean = total / k
    band = 0.5 * tol * mean
    lo, hi = mean - band, min(mean + band, upper)
    eps = max(mean, 1.0) / max(len(units) / k, 1.0) * 0.05  # weight of an empty unit for shape
    W = {gid: float(g.w[units][labels[units] == gid].sum()) for gid in grid_ids}
    size = {gid: int(np.count_nonzero(labels[units] == gid)) for gid in grid_ids}

    def excess(v: float) -> float:
        if v > upper:
            return (v - lo) + 10.0 * (v - upper) + mean
        return max(0.0, v - hi, lo - v)

    unit_list = np.sort(units)
    for phase in ("balance", "compact"):
        for _ in range(passes):
            # Centres (weighted, with a floor so empty land shapes grids too).
            sx: dict[int, float] = {gid: 0.0 for gid in grid_ids}
            sy: dict[int, float] = {gid: 0.0 for gid in grid_ids}
            sw: dict[int, float] = {gid: 0.0 for gid in grid_ids}
            lw = g.w[unit_list] + eps
            lab = labels[unit_list]
            for gid in grid_ids:
                m = lab == gid
                sw[gid] = float(lw[m].sum())
                sx[gid] = float((lw[m] * g.x[unit_list][m]).sum())
                sy[gid] = float((lw[m] * g.y[unit_list][m]).sum())
            cx = {gid: sx[gid] / sw[gid] for gid in grid_ids}
            cy = {gid: sy[gid] / sw[gid] for gid in grid_ids}
            if phase == "balance" and all(excess(W[gid]) == 0 for gid in grid_ids):
                break
            moved = 0
            src_lab = labels[g.src]
            dst_lab = labels[g.dst]
            boundary = np.unique(np.r_[g.src[src_lab != dst_lab], g.dst[src_lab != dst_lab]])
            boundary = boundary[np.isin(boundary, unit_list, assume_unique=True)] if len(boundary) else boundary
            for u in boundary.tolist():
                gu = int(labels[u])
                if size[gu] <= 1:
                    continue
                wu = float(g.w[u])
                cand = {int(labels[v]) for v in g.neighbours(u).tolist()} - {gu}
                if not cand:
                    continue
                du = math.hypot(g.x[u] - cx[gu], g.y[u] - cy[gu])
                best = None
                for h in sorted(cand):
                    if W[h] + wu > upper + 1e-9 and wu > 0:
                        continue
                    d_bal = (excess(W[gu] - wu) ** 2 + excess(W[h] + wu) ** 2
                             - excess(W[gu]) ** 2 - excess(W[h]) ** 2)
                    d_cmp = (wu + eps) * (math.hypot(g.x[u] - cx[h], g.y[u] - cy[h]) - du)
                    if phase == "balance":
                        ok = d_bal < -1e-12
                        key = (d_bal, d_cmp)
                    else:
                        ok = d_bal <= 1e-12 and d_cmp < -1e-9
                        key = (d_cmp, d_bal)
                    if ok and (best is None or key < best[0]):
                        best = (key, h)
                if best is None:
                    continue
                if not _still_connected_without(g, labels, u):
                    continue
                h = best[1]
                labels[u] = h
                W[gu] -= wu
                W[h] += wu
                size[gu] -= 1
                size[h] += 1
                moved += 1
            if moved == 0:
                break


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
    bridge_share: float = 0.25,
    refine_passes: int = 60,
    seed: int = 0,
    unit_names: list[str] | None = None,
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
    g = _Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), src, dst)
    n_areas, area = connected_components(g.adj, directed=False)
    area_w = np.bincount(area, weights=w, minlength=n_areas)
    target = (total / k) if k is not None else target_fill * upper
    big = area_w >= bridge_share * target
    if not big.any():
        big[int(np.argmax(area_w))] = True  # the heaviest area always gets a grid
    # Small areas join the nearest big area through a bridge edge *before* the search, so
    # bisection and refinement see their workload and balance it like any other.
    bridges = _bridge_edges(g, area, big)
    if bridges:
        src2 = np.r_[src, [b.from_unit for b in bridges]]
        dst2 = np.r_[dst, [b.to_unit for b in bridges]]
        g = _Graph(w, g.x, g.y, src2, dst2)
        root = {int(a): int(a) for a in np.flatnonzero(big)}
        for b in bridges:
            root[int(area[b.from_unit])] = int(area[b.to_unit])
        merged = np.array([root[int(a)] for a in area], dtype="int64")
    else:
        merged = area
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    merged_n = np.bincount(merged, minlength=n_areas)
    kc = _allocate_grids(merged_w, big, k, upper, target_fill)
    too_many = np.flatnonzero(kc > merged_n)
    if len(too_many):
        a = int(too_many[0])
        raise InfeasibleError(f"{area_name(a, np.flatnonzero(merged == a))} needs {kc[a]} grids, more than its units")
    rng = np.random.default_rng(seed)
    labels = np.full(n, -1, dtype="int64")
    notes: list[str] = []
    next_label = [0]
    for a in np.flatnonzero(big).tolist():
        units = np.flatnonzero(merged == a)
        kk = int(kc[a])
        for attempt in range(20):
            start = next_label[0]
            _recursive_bisection(g, units, kk, labels, next_label, rng, n_trees, tolerance)
            gids = list(range(start, next_label[0]))
            _refine(g, units, labels, gids, upper, tolerance, refine_passes)
            loads = np.bincount(labels[units] - start, weights=w[units], minlength=kk)
            if loads.max() <= upper + 1e-9:
                break
            if k is not None or kk >= len(units):
                worst = int(np.argmax(loads))
                raise InfeasibleError(
                    f"{area_name(a, units)} could not be split into {kk} contiguous "
                    f"grids within capacity {upper:g}: the heaviest grid holds {loads[worst]:g} "
                    f"({loads[worst] - upper:g} over); raise k or the capacity"
                )
            notes.append(f"{area_name(a, units)}: {kk} grids could not all stay within capacity {upper:g}; used {kk + 1}")
            next_label[0] = start
            kk += 1
        else:  # pragma: no cover - 20 extra grids never sufficed
            raise InfeasibleError(f"{area_name(a, units)} could not be split within capacity {upper:g}")
    # A bridge whose two ends landed in different grids carries no grid: the small area became
    # a grid of its own (or part of one) and needs no report.
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    conn = grid_connectivity(labels, src, dst, bridges)
    if not conn.all():  # pragma: no cover - refinement keeps connectivity by construction
        raise RuntimeError(f"internal error: grids {np.flatnonzero(~conn).tolist()} are not connected")
    return PartitionResult(labels=labels, n_grids=int(next_label[0]), bridges=bridges, area_of_unit=area, notes=notes)


def _bridge_edges(g: _Graph, area: np.ndarray, big: np.ndarray) -> list[Bridge]:
    """For each small area, the shortest link (unit pair) to a unit of a big area."""
    small = np.flatnonzero(~big)
    if len(small) == 0:
        return []
    in_big = big[area]
    anchor = np.flatnonzero(in_big)
    tree = cKDTree(np.c_[g.x[anchor], g.y[anchor]])
    area_w = np.bincount(area, weights=g.w)
    bridges = []
    for a in small.tolist():
        units = np.flatnonzero(area == a)
        d, j = tree.query(np.c_[g.x[units], g.y[units]], k=1)
        i = int(np.argmin(d))  # first minimum: deterministic
        bridges.append(Bridge(len(units), float(area_w[a]), int(units[i]), int(anchor[j[i]]), float(d[i]), -1))
    return bridges


def partition_cells(index, *, upper: float, config, seed: int = 0) -> tuple[pd.Series, PartitionResult]:
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

    Returns
    -------
    grid_id
        Grid id (``"G0001"``, …) of each cell, aligned with ``index.cells``. Ids are numbered
        in the order of each grid's smallest H3 cell, so they do not depend on the search order.
    result
        The raw :class:`PartitionResult` (bridges, notes).
    """
    cells = index.cells
    res = partition_units(
        cells["workload"].to_numpy(), cells["x"].to_numpy(), cells["y"].to_numpy(), index.edges,
        upper=upper, k=config.k, target_fill=config.target_fill, tolerance=config.tolerance,
        n_trees=config.n_trees, bridge_share=config.bridge_share, refine_passes=config.refine_passes, seed=seed,
        unit_names=[f"cell {h3.int_to_str(int(c))} at ({la:.5f}, {lo:.5f}) with {n} customers"
                    for c, la, lo, n in zip(cells["cell"].tolist(), cells["lat"].tolist(), cells["lon"].tolist(),
                                            cells["n_customers"].tolist())],
    )
    # Relabel by first unit (cells are sorted by H3 index), independent of the search order.
    first = np.full(res.n_grids, len(res.labels), dtype="int64")
    np.minimum.at(first, res.labels, np.arange(len(res.labels)))
    order = np.argsort(first, kind="stable")
    rank = np.empty(res.n_grids, dtype="int64")
    rank[order] = np.arange(res.n_grids)
    width = max(4, len(str(res.n_grids)))
    names = np.array([f"G{i + 1:0{width}d}" for i in range(res.n_grids)], dtype=object)
    res.labels = rank[res.labels]
    res.bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(rank[b.label]))
                   for b in res.bridges]
    logger.info("partition: %d cells -> %d grids (%d bridges)", len(cells), res.n_grids, len(res.bridges))
    return pd.Series(names[res.labels], index=cells.index, name="grid_id"), res
