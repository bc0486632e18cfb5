"""Drawing grids: how many per area, recursive bisection on spanning trees, and local redraws.

Shared by the partitioners of :mod:`gridengine.partition`: :func:`allocate_grids` gives each
connected area its number of grids, :func:`recursive_bisection` draws them (every cut along one
edge of a spanning tree, so both halves stay connected), and :func:`grow_region` with
:func:`redraw_region` redraws a few neighbouring grids in place, new grids keeping the id of the
old grid they overlap most (:func:`match_by_overlap`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from .._kernels import spanning_tree_order, subtree_sums
from ..errors import InfeasibleError
from ._graph import Graph, csr

__all__ = ["allocate_grids", "recursive_bisection", "grow_region", "match_by_overlap", "redraw_region",
           "UNEVEN_SPLIT_FLOOR"]


#: An uneven bisection (grids split other than k//2 : k - k//2, at least a quarter of them on each
#: side) is taken only when it misses its share by less than the best even cut does, and by
#: less than this share of ``tolerance`` at best (even cuts: a quarter of it). Even cuts keep the
#: recursion shallow; uneven ones serve areas no even cut fits, such as a city with three arms.
UNEVEN_SPLIT_FLOOR = 0.5


def allocate_grids(area_w: np.ndarray, big: np.ndarray, k: int | None, upper: float, fill: float) -> np.ndarray:
    """Number of grids per area.

    Parameters
    ----------
    area_w
        Workload of each area.
    big
        Whether each area gets grids of its own (the others are bridged to one that does).
    k
        Total number of grids, shared by the big areas in proportion to their workload (largest
        remainder, never fewer than capacity needs); ``None``: each area's own
        ``ceil(workload / (fill * upper))``.
    upper
        Capacity of a grid.
    fill
        Target fill when ``k`` is derived.

    Returns
    -------
    numpy.ndarray
        Grids of each area (0 for areas that are not big).

    Raises
    ------
    InfeasibleError
        ``k`` is below the grids the areas need within ``upper``.
    """
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


def _sub_edges(g: Graph, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _bisect(g: Graph, units: np.ndarray, k: int, rng: np.random.Generator, n_trees: int, tol: float,
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


def recursive_bisection(g: Graph, units: np.ndarray, k: int, labels: np.ndarray, next_label: list[int],
                        rng: np.random.Generator, n_trees: int, tol: float, cut_score: str,
                        parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                        edges: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Label ``units`` with ``k`` connected grids, in place, by recursive bisection on spanning trees.

    Parameters
    ----------
    g
        The units' graph.
    units
        A connected set of units (sorted).
    k
        Number of grids to draw on them.
    labels
        Grid label of each unit of ``g``; the labels of ``units`` are set.
    next_label
        A one-element box holding the next free label (advanced by ``k``; not used in roster mode).
    rng
        The random generator of the spanning trees.
    n_trees
        Spanning trees tried per cut.
    tol
        Balance tolerance of a cut.
    cut_score
        How a cut is chosen among those within balance, one of ``core.CUT_SCORES``.
    parts
        Roster mode: (targets, anchor x, anchor y, part ids); each leaf takes its part id as label.
    edges
        The edges among ``units`` (computed when not given); passed down the recursion, so each
        level costs its own size only.

    Raises
    ------
    InfeasibleError
        A set cannot be split into its number of connected grids.
    """
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
        recursive_bisection(g, units[mask], kA, labels, next_label, rng, n_trees, tol, cut_score, edges=e_a)
        recursive_bisection(g, units[~mask], k - kA, labels, next_label, rng, n_trees, tol, cut_score, edges=e_b)
        return
    other = np.setdiff1d(np.arange(k), side)
    for m_, idx, e_ in ((mask, np.sort(side), e_a), (~mask, other, e_b)):
        recursive_bisection(g, units[m_], len(idx), labels, next_label, rng, n_trees, tol, cut_score,
                            tuple(a[idx] for a in parts), e_)


def grow_region(g: Graph, labels: np.ndarray, seeds: list[int], *, min_grids: int, within: np.ndarray,
                target: float | None = None, extra: int = 0, tol: float = 0.05) -> list[int]:
    """Seed grids plus rings of neighbouring grids (inside ``within``) until at least ``min_grids``.

    With ``target`` and ``extra`` (the region is to be redrawn with ``extra`` more grids), the
    region also grows until it holds enough surplus workload for its grids to come out within
    ``tol / 2`` of ``target``: ``sum(load - target) >= target * (extra - tol / 2 * (m + extra))`` for
    ``m`` grids. Otherwise the new grids are light and the refinement, moving one unit at a
    time, cannot bring them the missing workload across their full neighbours.

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label of each unit.
    seeds
        The grids the region starts from.
    min_grids
        Least number of grids in the region.
    within
        The units the region may reach (its grids neighbour through these).
    target, extra, tol
        Grow for surplus workload too (see above).

    Returns
    -------
    list of int
        The region's grids, sorted.
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


def match_by_overlap(new: np.ndarray, old: np.ndarray, w: np.ndarray) -> dict[int, int]:
    """Each new label -> the old label it shares most workload with (greedily by overlap, each
    old label given once; ties by label). New labels left out have no old one to take.

    Parameters
    ----------
    new, old
        New and old label of each unit.
    w
        Workload of each unit.

    Returns
    -------
    dict
        New label -> old label.
    """
    ov = pd.DataFrame({"new": new, "old": old, "w": w + 1e-9}).groupby(["new", "old"])["w"].sum()
    ov = ov.reset_index().sort_values(["w", "new", "old"], ascending=[False, True, True])
    given: dict[int, int] = {}
    taken: set[int] = set()
    for nw, od in zip(ov["new"].tolist(), ov["old"].tolist()):
        if nw not in given and od not in taken:
            given[int(nw)] = int(od)
            taken.add(od)
    return given


def redraw_region(g: Graph, labels: np.ndarray, region: list[int], k_region: int, next_label: int,
                  rng: np.random.Generator, n_trees: int, tol: float) -> int:
    """Redraw the grids in ``region`` as ``k_region`` grids (bisection per connected piece), in place.

    New grids take the id of the old grid they overlap most (by workload, greedily), so customers
    who stay in that territory keep their grid; the others get new ids from ``next_label``.

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label of each unit, changed in place.
    region
        The grids to redraw.
    k_region
        Number of grids to redraw them as.
    next_label
        The first free label.
    rng, n_trees, tol
        As for :func:`recursive_bisection`.

    Returns
    -------
    int
        The next free label.
    """
    units = np.flatnonzero(np.isin(labels, region))
    sub_src_in = np.isin(g.src, units) & np.isin(g.dst, units)
    n_pieces, piece = connected_components(csr(g.n, g.src[sub_src_in], g.dst[sub_src_in]), directed=False)
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
        recursive_bisection(g, members, int(kp), tmp, box, rng, n_trees, tol, "cut")
    new = tmp[units]
    given = match_by_overlap(new, labels[units], g.w[units])
    for nw in sorted(set(new.tolist()) - set(given)):
        given[nw] = next_label
        next_label += 1
    labels[units] = np.array([given[v] for v in new.tolist()], dtype="int64")
    return next_label
