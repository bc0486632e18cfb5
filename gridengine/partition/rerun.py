"""Re-runs: re-partition from a previous plan, moving as little workload as balance allows."""

from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import InfeasibleError
from ._draw import allocate_grids, grow_region, recursive_bisection, redraw_region
from ._flows import flow_rebalance
from ._graph import Bridge, Graph, areas_and_bridges, flood_fill, keep_main_pieces, tidy_empty_units
from ._refine import quality_key, refine
from .core import PartitionResult, grid_connectivity

__all__ = ['partition_from_previous']

logger = logging.getLogger(__name__)


#: After the flow passes, the redraws start from the flows' result when it has at most 1/this
#: as many grids over capacity as before the flows (else from the state before them).
FLOW_KEEP_RATIO = 4

#: Flow rebalances tried (each followed by the refinement) before over-capacity regions are redrawn.
FLOW_PASSES = 3

#: After a capacity flow, a balance flow is tried when fewer grids than this share are within tolerance.
MIN_WITHIN_AFTER_FLOW = 0.95


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
    its previous grid, so only balance and capacity move customers. With ``k`` fixed, grids left
    over capacity pass their excess across borders along a min-cost flow on the grid graph (the
    least workload handed over, see :func:`flow_rebalance`), and then, if most grids sit off the
    target, a two-sided flow evens them out; regions are redrawn only if that still fails.

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
    g = Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"),
              np.asarray(edges[0], dtype="int64"), np.asarray(edges[1], dtype="int64"))
    total = float(w.sum())
    target = (total / k) if k is not None else target_fill * upper
    src0, dst0 = g.src.copy(), g.dst.copy()
    g, area, big, merged, bridges, n_areas = areas_and_bridges(g, w, target, bridge_share, None)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    kc = allocate_grids(merged_w, big, k, upper, target_fill)
    rng = np.random.default_rng(seed)
    labels = keep_main_pieces(g, flood_fill(g, initial))
    labels = flood_fill(g, labels)
    next_label = int(max(initial.max(initial=-1), labels.max(initial=-1))) + 1
    notes: list[str] = []
    for a in np.flatnonzero(big).tolist():
        units = np.flatnonzero(merged == a)
        if (labels[units] < 0).all():  # an area new to the plan: grids from scratch
            start = next_label
            box = [next_label]
            recursive_bisection(g, units, int(kc[a]), labels, box, rng, n_trees, tolerance, "cut")
            next_label = box[0]
            notes.append(f"area {a}: new, {next_label - start} grids drawn")
    flows_left = FLOW_PASSES
    balanced_pass = False
    pre_flow: np.ndarray | None = None
    redraws = 0
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
                region = grow_region(g, labels, seeds, min_grids=2 * extra, within=units,
                                     target=float(merged_w[a]) / int(kc[a]), extra=extra, tol=tolerance)
                next_label = redraw_region(g, labels, region, len(region) + extra, next_label, rng, n_trees,
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
        before = dense.copy()
        refine(g, dense, n_grids, tgt, up, tolerance, refine_passes, np.zeros(n, dtype=np.bool_), annealing=(),
               home=home, churn_w=churn_weight * span)
        if quality_key(g, before, n_grids, tgt, up, tolerance)[:2] <= quality_key(g, dense, n_grids, tgt, up,
                                                                                  tolerance)[:2]:
            dense[:] = before  # the moves bought no capacity or balance, only shape: customers stay put
        loads = np.bincount(dense, weights=w, minlength=n_grids)
        over = np.unique(grid_area[loads > upper + 1e-9])
        if len(over) == 0 and k is not None and not balanced_pass:
            # k fixed and capacity holds; if many grids now sit off the target (workload grew, or the
            # mean rose with k fixed), one two-sided flow brings them back, kept only if capacity
            # holds and more grids end within balance
            off = np.abs(loads - tgt) > tolerance * tgt + 1e-9
            balanced_pass = True
            if off.mean() > 1.0 - MIN_WITHIN_AFTER_FLOW:
                trial = dense.copy()
                band = 0.8 * tolerance * tgt
                mv = flow_rebalance(g, trial, n_grids, tgt - band, np.minimum(up, tgt + band),
                                    np.zeros(n, dtype=np.bool_))
                refine(g, trial, n_grids, tgt, up, tolerance, refine_passes, np.zeros(n, dtype=np.bool_),
                       annealing=(), home=home, churn_w=churn_weight * span)
                tl = np.bincount(trial, weights=w, minlength=n_grids)
                t_off = np.abs(tl - tgt) > tolerance * tgt + 1e-9
                if not (tl > upper + 1e-9).any() and t_off.sum() < off.sum():
                    dense[:] = trial
                    notes.append(f"passed {mv:g} workload across grid borders to bring {int(off.sum() - t_off.sum())} "
                                 "more grids within balance")
        if len(over) == 0:
            break
        labels = used[dense]
        if k is not None and flows_left == 0 and pre_flow is not None:
            n_over = int(np.count_nonzero(loads > upper + 1e-9))
            pre_over = int(np.count_nonzero(np.bincount(np.searchsorted(used, pre_flow), weights=w,
                                                        minlength=n_grids) > upper + 1e-9))
            if n_over * FLOW_KEEP_RATIO <= pre_over:
                # the flows relieved most grids: redraw around the few still over capacity
                notes.append(f"the border flows left {n_over} grid(s) over capacity; redrawing around them")
                pre_flow = None
            else:  # the flows did not help much: back to where they started, and redraw from there
                labels, pre_flow = pre_flow, None
                notes.append("the border flows could not clear capacity; redrawing regions instead")
                dense = np.searchsorted(used, labels)
                loads = np.bincount(dense, weights=w, minlength=n_grids)
        if k is not None and flows_left > 0:
            if pre_flow is None and flows_left == FLOW_PASSES:
                pre_flow = labels.copy()
            # The count is fixed, so the overload must travel through full grids to spare capacity:
            # a min-cost flow says how much crosses each border, unit moves realise it, and the
            # next attempt's refinement polishes balance. Redrawing regions is the last resort.
            flows_left -= 1
            mv = flow_rebalance(g, dense, n_grids, np.full(n_grids, -np.inf),
                                np.minimum(up, tgt * (1 + 0.5 * tolerance)), np.zeros(n, dtype=np.bool_))
            labels = used[dense]
            notes.append(f"passed {mv:g} workload across grid borders to relieve {int((loads > upper + 1e-9).sum())} "
                         "grids over capacity")
            continue
        if k is not None:  # the count is fixed: redraw the overloaded grids with their neighbours
            if redraws >= 6:
                raise InfeasibleError(f"re-run: {len(over)} area(s) cannot keep {int(kc[over[0]])} grids within "
                                      f"capacity {upper:g} even after redrawing the overloaded regions; raise k or "
                                      "the capacity")
            heavy_grids = used[np.flatnonzero(loads > upper + 1e-9)].tolist()
            redraws += 1
            region = grow_region(g, labels, heavy_grids, min_grids=redraws * 2 * len(heavy_grids),
                                 within=np.arange(n))
            next_label = redraw_region(g, labels, region, len(region), next_label, rng, n_trees, tolerance)
            notes.append(f"redrew {len(region)} grids around {len(heavy_grids)} over capacity")
            continue
        for a in over.tolist():
            kc[a] += 1
    else:  # pragma: no cover
        raise InfeasibleError(f"re-run: could not fit grids within capacity {upper:g}")
    tidy_empty_units(g, dense, bridges, np.zeros(n, dtype=np.bool_))  # as in partition_units
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(dense[b.to_unit]))
               for b in bridges if dense[b.from_unit] == dense[b.to_unit]]
    conn = grid_connectivity(dense, src0, dst0, bridges)
    if not conn.all():  # pragma: no cover - pieces are merged and moves keep connectivity
        raise RuntimeError("internal error: a re-run grid is not connected")
    origin = {i: int(lab) for i, lab in enumerate(used.tolist()) if lab in set(initial.tolist())}
    res = PartitionResult(labels=dense, n_grids=n_grids, bridges=bridges, area_of_unit=area, notes=notes)
    res.origin = origin
    return res
