"""Re-runs: re-partition from a previous plan, moving as little workload as balance allows."""

from __future__ import annotations

import logging
import math
from collections import deque

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from .._kernels import smooth_empty
from ..errors import InfeasibleError
from .core import Bridge, PartitionResult, _Graph, _allocate_grids, _areas_and_bridges, _csr, _recursive_bisection, _refine, grid_connectivity

__all__ = ['partition_from_previous']

logger = logging.getLogger(__name__)


def _flood_fill(g: _Graph, labels: np.ndarray) -> np.ndarray:
    """Give every unlabelled unit (-1) the label of the nearest labelled unit by graph steps (BFS, index order)."""
    labels = labels.copy()
    queue = deque(np.flatnonzero(labels >= 0).tolist())
    while queue:
        v = queue.popleft()
        for t in g.neighbours(v).tolist():
            if labels[t] < 0:
                labels[t] = labels[v]
                queue.append(t)
    return labels


def _keep_main_pieces(g: _Graph, labels: np.ndarray) -> np.ndarray:
    """Unlabel every piece of a grid but its heaviest (then largest), so each grid is connected."""
    ok = labels >= 0
    same = ok[g.src] & ok[g.dst] & (labels[g.src] == labels[g.dst])
    _, comp = connected_components(_csr(g.n, g.src[same], g.dst[same]), directed=False)
    lab = labels[ok]
    c = comp[ok]
    pw = pd.DataFrame({"lab": lab, "c": c, "w": g.w[ok] + 1e-9}).groupby(["lab", "c"])["w"].agg(["sum", "size"])
    pw = pw.reset_index().sort_values(["lab", "sum", "size", "c"], ascending=[True, False, False, True])
    main = set(pw.drop_duplicates("lab")["c"].tolist())
    out = labels.copy()
    out[ok & ~np.isin(comp, list(main))] = -1
    return out


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
    # keep ids by overlap
    old = labels[units]
    new = tmp[units]
    ov = pd.DataFrame({"new": new, "old": old, "w": g.w[units] + 1e-9}).groupby(["new", "old"])["w"].sum()
    ov = ov.reset_index().sort_values(["w", "new", "old"], ascending=[False, True, True])
    given: dict[int, int] = {}
    taken: set[int] = set()
    for nw, od in zip(ov["new"].tolist(), ov["old"].tolist()):
        if nw not in given and od not in taken:
            given[nw] = od
            taken.add(od)
    for nw in sorted(set(new.tolist()) - set(given)):
        given[nw] = next_label
        next_label += 1
    labels[units] = np.array([given[v] for v in new.tolist()], dtype="int64")
    return next_label


def partition_from_previous(
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    *,
    initial: np.ndarray,
    upper: float,
    k: int | None = None,
    target_fill: float = 0.9,
    tolerance: float = 0.05,
    n_trees: int = 6,
    bridge_share: float = 0.5,
    refine_passes: int = 60,
    churn_weight: float = 5.0,
    seed: int = 0,
) -> PartitionResult:
    """Re-partition starting from a previous plan, moving as little workload as balance allows.

    Units keep their previous grid (``initial``, -1 for units new to the tiling, which join the
    grid they touch). Grids are split only where an area needs more grids than it has (its
    heaviest grids, by bisection), a grid broken into pieces keeps its heaviest piece, and the
    refinement charges ``churn_weight`` grid spans of distance per unit of workload that leaves
    its previous grid, so only balance and capacity move customers.

    Returns
    -------
    PartitionResult
        ``origin`` maps each returned label to its ``initial`` label (new grids are absent).
    """
    w = np.asarray(weights, dtype="float64")
    n = len(w)
    initial = np.asarray(initial, dtype="int64")
    heavy = np.flatnonzero(w > upper + 1e-9)
    if len(heavy):
        i = int(heavy[0])
        raise InfeasibleError(f"unit {i} holds workload {w[i]:g}, above the capacity {upper:g}")
    g = _Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"),
               np.asarray(edges[0], dtype="int64"), np.asarray(edges[1], dtype="int64"))
    total = float(w.sum())
    target = (total / k) if k is not None else target_fill * upper
    src0, dst0 = g.src.copy(), g.dst.copy()
    g, area, big, merged, bridges, n_areas = _areas_and_bridges(g, w, target, bridge_share, None)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    kc = _allocate_grids(merged_w, big, k, upper, target_fill)
    rng = np.random.default_rng(seed)
    labels = _keep_main_pieces(g, _flood_fill(g, initial))
    labels = _flood_fill(g, labels)
    next_label = int(max(initial.max(initial=-1), labels.max(initial=-1))) + 1
    notes: list[str] = []
    for a in np.flatnonzero(big).tolist():
        units = np.flatnonzero(merged == a)
        if (labels[units] < 0).all():  # an area new to the plan: grids from scratch
            start = next_label
            box = [next_label]
            _recursive_bisection(g, units, int(kc[a]), labels, box, rng, n_trees, tolerance, "cut")
            next_label = box[0]
            notes.append(f"area {a}: new, {next_label - start} grids drawn")
    for attempt in range(50):
        # areas that need more grids than they have: redraw the heaviest grids and their
        # neighbours (a local region) with the extra grids, keeping ids where territory overlaps
        for a in np.flatnonzero(big).tolist():
            units = np.flatnonzero(merged == a)
            present = np.unique(labels[units])
            extra = int(kc[a]) - len(present)
            if extra > 0:
                loads = np.bincount(labels[units], weights=w[units])
                seeds = sorted(present.tolist(), key=lambda lab: (-loads[lab], lab))[:extra]
                region = _grow_region(g, labels, seeds, min_grids=2 * extra, within=units,
                                      target=float(merged_w[a]) / int(kc[a]), extra=extra, tol=tolerance)
                next_label = _redraw_region(g, labels, region, len(region) + extra, next_label, rng, n_trees,
                                            tolerance)
                notes.append(f"area {a}: needed {kc[a]} grids; redrew {len(region)} grids as {len(region) + extra}")
        used, dense = np.unique(labels, return_inverse=True)
        dense = dense.astype("int64")
        n_grids = len(used)
        grid_area = np.zeros(n_grids, dtype="int64")
        grid_area[dense] = merged
        area_mean = np.zeros(n_areas)
        cnt = np.bincount(grid_area, minlength=n_areas)
        area_mean[cnt > 0] = merged_w[cnt > 0] / cnt[cnt > 0]
        tgt = area_mean[grid_area]
        up = np.full(n_grids, float(upper))
        home = np.where(initial >= 0, np.searchsorted(used, initial), -1)
        home = np.where((home >= 0) & (home < n_grids) & (used[np.minimum(home, n_grids - 1)] == initial), home, -1)
        span = math.sqrt(max((g.x.max() - g.x.min()) * (g.y.max() - g.y.min()), 1.0) / max(n_grids, 1))
        _refine(g, dense, n_grids, tgt, up, tolerance, refine_passes, np.zeros(n, dtype=np.bool_), annealing=(),
                home=home, churn_w=churn_weight * span)
        loads = np.bincount(dense, weights=w, minlength=n_grids)
        over = np.unique(grid_area[loads > upper + 1e-9])
        if len(over) == 0:
            break
        labels = used[dense]
        if k is not None:  # the count is fixed: redraw the overloaded grids with their neighbours
            if attempt >= 6:
                raise InfeasibleError(f"re-run: {len(over)} area(s) cannot keep {int(kc[over[0]])} grids within "
                                      f"capacity {upper:g} even after redrawing the overloaded regions; raise k or "
                                      "the capacity")
            heavy_grids = used[np.flatnonzero(loads > upper + 1e-9)].tolist()
            region = _grow_region(g, labels, heavy_grids, min_grids=(attempt + 1) * 2 * len(heavy_grids),
                                  within=np.arange(n))
            next_label = _redraw_region(g, labels, region, len(region), next_label, rng, n_trees, tolerance)
            notes.append(f"redrew {len(region)} grids around {len(heavy_grids)} over capacity")
            continue
        for a in over.tolist():
            kc[a] += 1
    else:  # pragma: no cover
        raise InfeasibleError(f"re-run: could not fit grids within capacity {upper:g}")
    keep = np.zeros(n, dtype=np.bool_)  # as in partition_units: tidy shapes, bridge ends stay
    for b in bridges:
        keep[b.from_unit] = keep[b.to_unit] = True
    smooth_empty(g.indptr, g.indices, w, dense, keep, 50 * n + 1000)
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(dense[b.to_unit]))
               for b in bridges if dense[b.from_unit] == dense[b.to_unit]]
    conn = grid_connectivity(dense, src0, dst0, bridges)
    if not conn.all():  # pragma: no cover - pieces are merged and moves keep connectivity
        raise RuntimeError("internal error: a re-run grid is not connected")
    origin = {i: int(lab) for i, lab in enumerate(used.tolist()) if lab in set(initial.tolist())}
    res = PartitionResult(labels=dense, n_grids=n_grids, bridges=bridges, area_of_unit=area, notes=notes)
    res.origin = origin
    return res
