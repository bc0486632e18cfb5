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
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._kernels import refine_moves, smooth_empty, spanning_tree_order, subtree_sums
from ..errors import InfeasibleError

__all__ = ['Bridge', 'PartitionResult', 'partition_units', 'grid_connectivity', 'CUT_SCORES', 'REFINE_SCHEDULES']

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
        self.lock = np.zeros(self.n, dtype=np.int64)  # 1 on units that carry a locked group

    def neighbours(self, u: int) -> np.ndarray:
        return self.indices[self.indptr[u]:self.indptr[u + 1]]


def _sub_edges(g: _Graph, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges among ``units`` (sorted), in positions of ``units``: (i, j) with i < j, sorted."""
    sub = g.adj[units][:, units].tocoo()
    keep = sub.row < sub.col
    a, b = sub.row[keep].astype(np.int64), sub.col[keep].astype(np.int64)
    o = np.lexsort((b, a))
    return a[o], b[o]


def _split_edges(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                          tuple[np.ndarray, np.ndarray]]:
    """The edges inside each side of a bisection, renumbered to positions within that side (order kept)."""
    out = []
    for m in (mask, ~mask):
        pos = np.cumsum(m) - 1
        keep = m[a] & m[b]
        out.append((pos[a[keep]], pos[b[keep]]))
    return out[0], out[1]


def _bisect(g: _Graph, units: np.ndarray, k: int, rng: np.random.Generator, n_trees: int, tol: float,
            cut_score: str, parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            edges: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Split a connected unit set into two connected sets.

    With ``parts`` (targets and anchor coordinates of the grids to build, roster mode), the
    parts are split by their anchors' position along the set's long axis, and each side of a
    cut gets the group on its own side, with that group's target workload.

    ``edges``: the edges among ``units`` as from :func:`_sub_edges` (computed when not given).

    Returns (mask of side A over units, number of grids of side A, part indices of side A or None).
    """
    n = len(units)
    a, b = _sub_edges(g, units) if edges is None else edges
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
    best = None  # (score tuple, mask, kA, parts of A)
    if parts is not None:
        p_t, p_x, p_y = parts
        bu, bv = math.cos(base_angle), math.sin(base_angle)
        p_order = np.lexsort((np.arange(k), (p_x - mx) * bu + (p_y - my) * bv))
        scale_t = total / max(float(p_t.sum()), 1e-12)
        # split points of the parts (ordered along the axis): the even one, and a few uneven ones
        # for areas no even cut fits (taken only when they balance better)
        splits = [k1] + [k1 + d for d in (-1, 1, -2, 2) if 1 <= k1 + d <= k - 1 and k >= 4]
        part_sides = {}
        for sp_ in splits:
            low, high = p_order[:sp_], p_order[sp_:]
            part_sides[sp_] = (low, high, float(p_t[low].sum()) * scale_t, float(p_t[high].sum()) * scale_t)
    iw = w + max(total, 1.0) / n * 0.05  # inertia weights: empty land counts a little, for shape
    xm, ym = x - mx, y - my
    r2 = xm * xm + ym * ym
    x, y = xm, ym

    def pos_of(order: np.ndarray) -> np.ndarray:
        p_ = np.empty(n, dtype="int64")
        p_[order] = np.arange(n)
        return p_

    for t in range(n_trees):
        angle = base_angle + (0.0 if t == 0 else (t - (n_trees - 1) / 2) * (math.pi / (2 * n_trees)) + rng.uniform(-0.05, 0.05))
        ux, uy = math.cos(angle), math.sin(angle)
        proj = x * ux + y * uy
        length = np.hypot(x[a] - x[b], y[a] - y[b])
        ew = np.abs(proj[a] - proj[b]) + 0.05 * length * rng.uniform(0.5, 1.5, size=len(a)) + 1e-3
        root = int(np.argmin(proj))
        # Depth-first preorder: every subtree is one contiguous run of the order.
        order, pred = spanning_tree_order(n, a, b, ew, root)
        if len(order) != n:  # not connected: should not happen for a component
            raise RuntimeError("bisection called on a disconnected unit set")
        sw, sn = subtree_sums(order, pred, w)
        pos = pos_of(order)
        cand = order[1:]  # every non-root node is the child end of one tree edge
        s = sw[cand]
        cnt = sn[cand]
        # Moment of inertia of both halves for every cut at once: a subtree is a contiguous run
        # of the DFS order, so its weighted sums are differences of prefix sums.
        cw = np.r_[0.0, np.cumsum(iw[order])]
        cx = np.r_[0.0, np.cumsum((iw * x)[order])]
        cy = np.r_[0.0, np.cumsum((iw * y)[order])]
        cr = np.r_[0.0, np.cumsum((iw * r2)[order])]
        lo_ = pos[cand]
        hi_ = lo_ + cnt
        aw, ax, ay, ar = cw[hi_] - cw[lo_], cx[hi_] - cx[lo_], cy[hi_] - cy[lo_], cr[hi_] - cr[lo_]
        bw, bx, by, br = cw[-1] - aw, cx[-1] - ax, cy[-1] - ay, cr[-1] - ar
        inertia = (ar - (ax * ax + ay * ay) / np.maximum(aw, 1e-12)) + (br - (bx * bx + by * by) / np.maximum(bw, 1e-12))
        lock_total = int(g.lock[units].sum())
        if lock_total:
            cl = np.r_[0, np.cumsum(g.lock[units][order])]
            lock_a = cl[hi_] - cl[lo_]
        if parts is not None:  # which group each subtree gets: the one on its side of the long axis
            pa = (ax * bu + ay * bv) / np.maximum(aw, 1e-12)
            pb = (bx * bu + by * bv) / np.maximum(bw, 1e-12)
            sub_low = pa <= pb
        options = [(kA, False) for kA in sorted({k1, k2})] if parts is None else [(sp_, sp_ != k1) for sp_ in splits]
        if parts is None and k >= 4:  # uneven splits too, for areas no even cut fits (a Y-shaped city)
            options.append((None, True))
        for kA, flex in options:
            if parts is not None:
                low, high, t_low, t_high = part_sides[kA]
                k_sub = np.where(sub_low, len(low), len(high))
                err = np.abs(s - np.where(sub_low, t_low, t_high)) / per
                ok = (cnt >= k_sub) & (n - cnt >= k - k_sub)
            elif flex:  # each cut takes the number of grids nearest its own workload
                k_sub = np.clip(np.rint(s / per), max(1, k // 4), k - max(1, k // 4)).astype(np.int64)
                err = np.abs(s - k_sub * per) / per
                ok = (cnt >= k_sub) & (n - cnt >= k - k_sub)
            elif parts is None:
                err = np.abs(s - total * kA / k) / per
                ok = (cnt >= kA) & (n - cnt >= k - kA)
                k_sub = kA
            if lock_total:  # at most one locked group per grid: never more groups than grids on a side
                ok &= (lock_a <= k_sub) & (lock_total - lock_a <= k - k_sub)
            if not ok.any():
                continue
            err = np.where(ok, err, np.inf)
            emin = float(err.min())
            floor = tol * (UNEVEN_SPLIT_FLOOR if flex else 0.25)
            thr = max(emin, floor)
            good = np.flatnonzero(err <= thr + 1e-12)
            if cut_score == "inertia":
                i = int(good[np.argmin(inertia[good])])
                sec = float(inertia[i])
            else:
                top = good[np.argsort(err[good], kind="stable")[:12]]
                pa_, pb_ = pos[a], pos[b]
                cuts = [int(np.count_nonzero(((pa_ >= lo_[t]) & (pa_ < hi_[t])) != ((pb_ >= lo_[t]) & (pb_ < hi_[t]))))
                        for t in top]
                i = int(top[int(np.argmin(cuts))])
                sec = min(cuts) / math.sqrt(n)
            score = (round(max(float(err[i]), floor), 6), flex, sec, float(err[i]))
            if best is None or score < best[0]:
                mask = (pos >= pos[cand[i]]) & (pos < pos[cand[i]] + cnt[i])
                if parts is not None:
                    side = low if sub_low[i] else high
                    best = (score, mask, len(side), side)
                elif flex:
                    best = (score, mask, int(k_sub[i]), None)
                else:
                    best = (score, mask, kA, None)
    if best is None:
        raise InfeasibleError(f"cannot split an area of {n} units into {k} connected grids")
    return best[1], best[2], best[3]


def _recursive_bisection(g: _Graph, units: np.ndarray, k: int, labels: np.ndarray, next_label: list[int],
                         rng: np.random.Generator, n_trees: int, tol: float, cut_score: str,
                         parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                         edges: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Label ``units`` with ``k`` connected grids. In roster mode ``parts`` = (targets, anchor x,
    anchor y, part ids) and each leaf takes its part id as label. ``edges`` (from
    :func:`_sub_edges`) are passed down the recursion, so each level costs its own size only."""
    if k == 1:
        labels[units] = next_label[0] if parts is None else int(parts[3][0])
        if parts is None:
            next_label[0] += 1
        return
    if edges is None:
        edges = _sub_edges(g, units)
    sub = None if parts is None else parts[:3]
    mask, kA, side = _bisect(g, units, k, rng, n_trees, tol, cut_score, sub, edges)
    e_a, e_b = _split_edges(edges[0], edges[1], mask)
    if parts is None:
        _recursive_bisection(g, units[mask], kA, labels, next_label, rng, n_trees, tol, cut_score, edges=e_a)
        _recursive_bisection(g, units[~mask], k - kA, labels, next_label, rng, n_trees, tol, cut_score, edges=e_b)
        return
    other = np.setdiff1d(np.arange(k), side)
    for m_, idx, e_ in ((mask, np.sort(side), e_a), (~mask, other, e_b)):
        _recursive_bisection(g, units[m_], len(idx), labels, next_label, rng, n_trees, tol, cut_score,
                             tuple(a[idx] for a in parts), e_)


def _grow_region(g: _Graph, labels: np.ndarray, seeds: list[int], *, min_grids: int, within: np.ndarray,
                 target: float | None = None, extra: int = 0, tol: float = 0.05) -> list[int]:
    """Seed grids plus rings of neighbouring grids (inside ``within``) until at least ``min_grids``.

    With ``target`` and ``extra`` (the region is to be redrawn with ``extra`` more grids), the
    region also grows until it holds enough surplus workload for its grids to come out within
    ``tol / 2`` of ``target``: ``sum(load - target) >= target * (extra - tol / 2 * (m + extra))`` for
    ``m`` grids. Otherwise the new grids are light and the refinement, moving one unit at a
    time, cannot bring them the missing workload across their full neighbours.
    """
    inside = np.zeros(g.n, dtype=bool)
    inside[within] = True
    e = inside[g.src] & inside[g.dst] & (labels[g.src] != labels[g.dst])
    pairs = np.unique(np.c_[labels[g.src][e], labels[g.dst][e]], axis=0)
    nbrs: dict[int, set[int]] = {}
    for x, y in pairs.tolist():
        nbrs.setdefault(x, set()).add(y)
        nbrs.setdefault(y, set()).add(x)
    load = np.bincount(labels[within], weights=g.w[within], minlength=int(labels.max()) + 1)
    region = set(seeds)
    frontier = set(seeds)

    def short() -> bool:
        if target is None or extra <= 0:
            return False
        surplus = float(sum(load[m] for m in region)) - target * len(region)
        return surplus < target * (extra - 0.5 * tol * (len(region) + extra))

    while (len(region) < min_grids or short()) and frontier:
        ring = sorted({m for f in sorted(frontier) for m in nbrs.get(f, ())} - region, key=lambda m: (-load[m], m))
        if len(region) < min_grids:
            ring = ring[:min_grids - len(region)]  # the heaviest neighbours first, no more than needed
        else:  # for surplus: one neighbour at a time, the heaviest first
            ring = ring[:1]
        frontier = (frontier | set(ring)) if len(region) >= min_grids else set(ring)
        region |= set(ring)
        if not ring:
            break
    return sorted(region)


def _match_by_overlap(new: np.ndarray, old: np.ndarray, w: np.ndarray) -> dict[int, int]:
    """Each new label -> the old label it shares most workload with (greedily by overlap, each
    old label given once; ties by label). New labels left out have no old one to take."""
    ov = pd.DataFrame({"new": new, "old": old, "w": w + 1e-9}).groupby(["new", "old"])["w"].sum()
    ov = ov.reset_index().sort_values(["w", "new", "old"], ascending=[False, True, True])
    given: dict[int, int] = {}
    taken: set[int] = set()
    for nw, od in zip(ov["new"].tolist(), ov["old"].tolist()):
        if nw not in given and od not in taken:
            given[int(nw)] = int(od)
            taken.add(od)
    return given


def _redraw_region(g: _Graph, labels: np.ndarray, region: list[int], k_region: int, next_label: int,
                   rng: np.random.Generator, n_trees: int, tol: float) -> int:
    """Redraw the grids in ``region`` as ``k_region`` grids (bisection per connected piece), in place.

    New grids take the id of the old grid they overlap most (by workload, greedily), so customers
    who stay in that territory keep their grid; the others get new ids from ``next_label``.
    Returns the next free label.
    """
    units = np.flatnonzero(np.isin(labels, region))
    sub_src_in = np.isin(g.src, units) & np.isin(g.dst, units)
    n_pieces, piece = connected_components(_csr(g.n, g.src[sub_src_in], g.dst[sub_src_in]), directed=False)
    pieces = np.unique(piece[units])
    pw = np.array([g.w[units][piece[units] == p_].sum() for p_ in pieces])
    pn = np.array([int((piece[units] == p_).sum()) for p_ in pieces])
    share = pw / max(pw.sum(), 1e-12) * k_region
    alloc = np.minimum(np.maximum(np.floor(share).astype("int64"), 1), pn)
    while alloc.sum() > k_region:
        i = int(np.argmax(np.where(alloc > 1, alloc - share, -np.inf)))
        alloc[i] -= 1
    while alloc.sum() < k_region:
        i = int(np.argmax(np.where(alloc < pn, share - alloc, -np.inf)))
        alloc[i] += 1
    tmp = np.full(g.n, -1, dtype="int64")
    box = [0]
    for p_, kp in zip(pieces.tolist(), alloc.tolist()):
        members = units[piece[units] == p_]
        _recursive_bisection(g, members, int(kp), tmp, box, rng, n_trees, tol, "cut")
    new = tmp[units]
    given = _match_by_overlap(new, labels[units], g.w[units])
    for nw in sorted(set(new.tolist()) - set(given)):
        given[nw] = next_label
        next_label += 1
    labels[units] = np.array([given[v] for v in new.tolist()], dtype="int64")
    return next_label


def _refine(g: _Graph, labels: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
            tol: float, passes: int, locked: np.ndarray, annealing=(1.0, 4.0, 16.0, 64.0, 256.0),
            home: np.ndarray | None = None, churn_w: float = 0.0) -> int:
    """Balance then compact all grids by boundary moves (compiled kernel); returns the number of moves.

    ``target`` and ``upper`` are per grid: the workload a grid aims at and the most it may hold.
    """
    if passes == 0 or n_grids < 2:
        return 0
    band = 0.9 * tol * target
    lo = target - band
    hi = np.minimum(target + band, upper)
    n_units = max(g.n, 1)
    eps = max(float(g.w.sum()) / n_units, 1e-6) * 0.05  # weight of empty land, so it shapes grids too
    # Penalty schedule: lambda * (excess)^2 is compared with workload x metres of distance; a
    # grid 5% off its band costs mu/400 of (mean workload x grid radius) at lambda = mu * R / mean.
    span = math.sqrt(max((g.x.max() - g.x.min()) * (g.y.max() - g.y.min()), 1.0) / max(n_grids, 1))
    lambdas = np.array([mu * span / max(float(target.max()), 1e-9) for mu in annealing], dtype=np.float64)
    if home is None:
        home = np.full(g.n, -1, dtype=np.int64)
    return int(refine_moves(g.indptr.astype(np.int64), g.indices.astype(np.int64), g.w, g.x, g.y, labels,
                            n_grids, lo, hi, upper.astype(np.float64), eps, passes, locked, lambdas,
                            home.astype(np.int64), float(churn_w), int(REFINE_MAX_MOVES_PER_UNIT * g.n + 1000)))


#: An uneven bisection (grids split other than k//2 : k - k//2, at least a quarter of them on each
#: side) is taken only when it misses its share by less than the best even cut does, and by
#: less than this share of ``tolerance`` at best (even cuts: a quarter of it). Even cuts keep the
#: recursion shallow; uneven ones serve areas no even cut fits, such as a city with three arms.
UNEVEN_SPLIT_FLOOR = 0.5

#: Cap on refinement moves per call, per unit (ordinary cities make under 0.5; around many giant
#: compounds the compactness moves can cycle, 30-250 per unit, and the cap ends that).
REFINE_MAX_MOVES_PER_UNIT = 20

#: How a bisection chooses among its cuts that are within balance: fewest cut edges (short
#: borders) or least moment of inertia of the two halves (round halves). Both are tried.
CUT_SCORES: tuple[str, ...] = ("cut", "inertia")

#: Penalty schedules tried by the refinement (see :func:`gridengine._kernels.refine_moves`): none
#: (strict balance, then compactness within the band) and two annealing schedules that let
#: compactness lead first. Lumpy cities reward different ones; the best result is kept.
REFINE_SCHEDULES: tuple[tuple[float, ...], ...] = (
    (),
    (16.0, 64.0, 256.0, 1024.0, 4096.0),
    (8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0),
)


def _quality_key(g: _Graph, lab: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
                 tol: float) -> tuple[int, int, float]:
    """(grids over capacity, grids outside ±tol of their target, workload-weighted distance to centres)."""
    loads = np.bincount(lab, weights=g.w, minlength=n_grids)
    off = int(np.count_nonzero(np.abs(loads - target) > tol * target + 1e-9))
    cx = np.bincount(lab, weights=g.w * g.x, minlength=n_grids) / np.maximum(loads, 1e-12)
    cy = np.bincount(lab, weights=g.w * g.y, minlength=n_grids) / np.maximum(loads, 1e-12)
    cost = float((g.w * np.hypot(g.x - cx[lab], g.y - cy[lab])).sum())
    return int(np.count_nonzero(loads > upper + 1e-9)), off, round(cost, 3)


def _refine_portfolio(g: _Graph, labels: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
                      tol: float, passes: int, locked: np.ndarray) -> np.ndarray:
    """Refine with each schedule of :data:`REFINE_SCHEDULES` and keep the best result.

    Best = fewest grids over capacity, then fewest grids outside ±``tol`` of their target,
    then the smallest workload-weighted distance to grid centres; ties keep the earlier schedule.
    """
    best = None
    for sched in REFINE_SCHEDULES if passes else ((),):
        lab = labels.copy()
        _refine(g, lab, n_grids, target, upper, tol, passes, locked, annealing=sched)
        key = _quality_key(g, lab, n_grids, target, upper, tol)
        if best is None or key < best[0]:
            best = (key, lab)
    return best[1]


def _repair_capacity(g: _Graph, labels: np.ndarray, merged: np.ndarray, merged_w: np.ndarray, upper: float,
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
            region = _grow_region(g, labels, [gi], min_grids=size, within=within)
            if taken & set(region):  # overlaps a region redrawn this round: next round
                continue
            taken |= set(region)
            next_label = _redraw_region(g, labels, region, len(region) + extra, next_label, rng, n_trees, tol)
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
        labels = _refine_portfolio(g, labels, n_grids, target, up, tol, refine_passes, locked)
        notes.append(f"{len(over)} grid(s) over capacity {upper:g}: redrew {redrawn} grids around them"
                     + (f" with {added} more" if added else ""))
    grid_area = np.zeros(n_grids, dtype="int64")
    grid_area[labels] = merged
    return labels, n_grids, grid_area, notes


#: Rounds of local capacity repair (:func:`_repair_capacity`) before the whole area is redrawn.
REPAIR_ROUNDS = 6

#: Grids in a capacity-repair region in the first round (doubling every two rounds).
REPAIR_REGION = 4


def _areas_and_bridges(g: _Graph, w: np.ndarray, target: float, bridge_share: float, lock: np.ndarray | None,
                       uneven_tol: float | None = None):
    """Connected areas; small ones joined to the nearest big area through a bridge edge.

    Small areas join *before* the search, so bisection and refinement see their workload and
    balance it like any other. Returns (graph with bridge edges, area, big, merged area, bridges, n_areas).
    """
    n_areas, area = connected_components(g.adj, directed=False)
    area_w = np.bincount(area, weights=w, minlength=n_areas)
    big = area_w >= bridge_share * target
    if uneven_tol is not None and big.sum() > 1 and bridge_share >= 1e-6:  # (hard zones pass ~0: never bridged)
        # an area whose workload is far from a whole number of grids (an island of 0.6 or 1.3 grids)
        # would get grids far off the target: it joins its nearest area through a bridge instead,
        # unless it is the heaviest or large enough (3+ grids) to even out on its own
        n_best = np.maximum(np.rint(area_w / target), 1)
        off = np.abs(area_w / (n_best * target) - 1) > uneven_tol
        light = area_w < 3 * target
        heaviest = int(np.argmax(area_w))
        demote = big & off & light
        demote[heaviest] = False
        big &= ~demote
    if not big.any():
        big[int(np.argmax(area_w))] = True  # the heaviest area always gets a grid
    bridges = _bridge_edges(g, area, big)
    merged = area
    if bridges:
        g2 = _Graph(w, g.x, g.y, np.r_[g.src, [b.from_unit for b in bridges]], np.r_[g.dst, [b.to_unit for b in bridges]])
        g2.lock = g.lock
        g = g2
        root = {int(a): int(a) for a in np.flatnonzero(big)}
        for b in bridges:
            root[int(area[b.from_unit])] = int(area[b.to_unit])
        merged = np.array([root[int(a)] for a in area], dtype="int64")
    return g, area, big, merged, bridges, n_areas


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
    _, comp = connected_components(_csr(n, src[inside], dst[inside]), directed=False)
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
    g = _Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), src, dst)
    if lock is not None:
        g.lock = lock
    target = (total / k) if k is not None else target_fill * upper
    g, area, big, merged, bridges, n_areas = _areas_and_bridges(g, w, target, bridge_share, lock)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    merged_n = np.bincount(merged, minlength=n_areas)
    kc = _allocate_grids(merged_w, big, k, upper, target_fill)
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
                _recursive_bisection(g, units, kk[a], labels, [0], rng, n_trees, tolerance, cut_score)
                labels[units] += 1_000_000 * (a + 1)  # keep areas apart until relabelled below
            # relabel 0..K-1, in area order then label order (deterministic)
            _, labels = np.unique(labels, return_inverse=True)
            labels = labels.astype("int64")
            n_grids = int(labels.max()) + 1
            grid_area = np.zeros(n_grids, dtype="int64")
            grid_area[labels] = merged
            target = area_mean[grid_area]
            up = np.full(n_grids, float(upper))
            labels = _refine_portfolio(g, labels, n_grids, target, up, tolerance, refine_passes, locked)
            key = _quality_key(g, labels, n_grids, target, up, tolerance)
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
    _tidy_empty_units(g, labels, bridges, locked)
    # A bridge whose two ends landed in different grids carries no grid: the small area became
    # a grid of its own (or part of one) and needs no report.
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    conn = grid_connectivity(labels, src, dst, bridges)
    if not conn.all():  # pragma: no cover - refinement keeps connectivity by construction
        raise RuntimeError(f"internal error: grids {np.flatnonzero(~conn).tolist()} are not connected")
    return PartitionResult(labels=labels, n_grids=n_grids, bridges=bridges, area_of_unit=area, notes=notes)


def _tidy_empty_units(g: _Graph, labels: np.ndarray, bridges: list[Bridge], locked: np.ndarray) -> None:
    """Tidy the territories' shapes, in place: empty units (land with no customer) join the grid most
    of their neighbours belong to, which removes thin strands and notches without changing any
    workload. Locked units and bridge ends stay put (a bridge is reported for the grid holding both
    its ends)."""
    keep = np.asarray(locked, dtype=np.bool_).copy()
    for b in bridges:
        keep[b.from_unit] = keep[b.to_unit] = True
    smooth_empty(g.indptr, g.indices, g.w, labels, keep, 50 * g.n + 1000)


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
