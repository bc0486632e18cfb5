"""Border flows: pass workload between neighbouring grids along a min-cost flow, unit by unit.

Shared by the re-runs (:mod:`gridengine.partition.rerun`) and the roster partitioner
(:mod:`gridengine.partition.roster`): :func:`flow_rebalance` plans the least churn that relieves
every grid (a min-cost flow on the grids' adjacency) and :func:`realise_flows` carries each
border's flow by moving the sender's border units, never breaking a grid's connectivity."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .._kernels import connected_without
from ._graph import Graph

__all__ = ["flow_rebalance", "realise_flows", "THROUGH_SHARE", "BORDER_LAYERS"]

logger = logging.getLogger(__name__)


#: Workload a grid may pass on (receive and send on) cheaply in a flow, as a share of its own.
THROUGH_SHARE = 0.5


#: How many layers of a sender's border units a border may pass in the flow rebalance.
BORDER_LAYERS = 3.0


def flow_rebalance(g: Graph, dense: np.ndarray, n_grids: int, lower: np.ndarray, limit: np.ndarray,
                   locked: np.ndarray, rounds: int = 6, border_layers: float = BORDER_LAYERS) -> float:
    """Flow rebalance (:func:`_flow_round`), re-planned from the new loads while borders stall.

    A border whose flow could not be realised (units that hold the sender together, a bridge)
    is avoided by the next round's flow.

    Parameters
    ----------
    g
        The units' graph.
    dense
        Grid label (0..n_grids-1) of each unit, changed in place.
    n_grids
        Number of grids.
    lower, limit
        Per grid: the least workload it should hold (``-np.inf``: none) and the most.
    locked
        Units that never move.
    rounds
        Most flow rounds.
    border_layers
        How many layers of a sender's border units a border passes cheaply (``np.inf``: no
        bound, the least workload moved).

    Returns
    -------
    float
        The workload moved.
    """
    stalled: set[tuple[int, int]] = set()
    moved = 0.0
    for _ in range(rounds):
        mv, left = _flow_round(g, dense, n_grids, lower, limit, locked, stalled, border_layers)
        moved += mv
        if not left or mv == 0:
            break
        stalled |= left
    return moved


def _flow_round(g: Graph, dense: np.ndarray, n_grids: int, lower: np.ndarray, limit: np.ndarray,
                locked: np.ndarray, stalled: set[tuple[int, int]],
                border_layers: float = BORDER_LAYERS) -> tuple[float, set[tuple[int, int]]]:
    """Pass workload from grids above ``limit`` to grids below ``lower`` (or with room), hop by hop, in place.

    The excess travels along a min-cost flow on the grid adjacency graph (one unit of cost per
    unit of workload per border crossed: each crossing hands that workload to another
    specialist, so the flow is the least churn that relieves every grid, fractionally). Each
    border's flow is then realised by moving that grid's units that touch the receiving grid,
    the best-fitting first, never breaking the sender's connectivity or emptying it, and
    never overshooting the flow by the unit's own weight. Borders in ``stalled`` cost 100x.
    Returns the workload moved and the borders whose flow was not fully realised.
    """
    from ortools.graph.python import min_cost_flow

    w = g.w
    scale = 10.0
    loads = np.bincount(dense, weights=w, minlength=n_grids)
    sup = np.ceil(np.clip(loads - limit, 0, None) * scale).astype(np.int64)
    need = np.ceil(np.clip(lower - loads, 0, None) * scale).astype(np.int64)
    # beyond the mandatory moves, grids may take (up to limit) or give (down to lower) freely
    room = np.floor(np.clip(limit - np.maximum(loads, lower), 0, None) * scale).astype(np.int64)
    spare = np.floor(np.clip(np.minimum(loads, limit) - np.maximum(lower, 0.0), 0, None) * scale).astype(np.int64)
    spare[~np.isfinite(lower)] = 0  # one-sided (no lower bound): nobody must give beyond the excess
    excess = int(sup.sum()) - int(need.sum())
    if (sup.sum() == 0 and need.sum() == 0) or (excess > 0 and room.sum() < excess) or \
            (excess < 0 and spare.sum() < -excess):
        return 0.0, set()
    a, b = dense[g.src], dense[g.dst]
    cross = a != b
    pairs = np.unique(np.c_[a[cross], b[cross]], axis=0)
    big = int(sup.sum() + need.sum()) + 1
    # A border carries at most a few layers of the sender's units that touch it: a narrow
    # border (a bridge, a corridor) cannot pass a grid's worth of workload.
    su = g.src[cross]
    key = np.unique(np.c_[a[cross], b[cross], su], axis=0)
    border_w = pd.Series(w[key[:, 2]]).groupby([key[:, 0], key[:, 1]]).sum()
    bw = border_w.reindex(pd.MultiIndex.from_arrays([pairs[:, 0], pairs[:, 1]])).fillna(0.0).to_numpy()
    # each border: a cheap arc up to its capacity, and a dear one beyond it (so the flow stays
    # feasible where an overloaded grid has only narrow borders); node n_grids balances the total
    np_ = len(pairs)
    bad = np.array([(int(x), int(y)) in stalled for x, y in pairs.tolist()], dtype=bool)
    if excess >= 0:
        rg = np.flatnonzero(room > 0)
        t_x, h_x, c_x = rg, np.full(len(rg), n_grids), room[rg]
    else:
        rg = np.flatnonzero(spare > 0)
        t_x, h_x, c_x = np.full(len(rg), n_grids), rg, spare[rg]
    # Each grid is two nodes: "in" (workload it receives, node i) and "out" (what it sends, node
    # n_grids + 1 + i). Its own excess leaves from "out"; workload passing through it crosses
    # in -> out, cheaply up to THROUGH_SHARE of its load (more would mean moving most of the grid)
    X, OUT = n_grids, n_grids + 1
    gi = np.arange(n_grids)
    smcf = min_cost_flow.SimpleMinCostFlow()
    if excess >= 0:
        t_x, h_x = rg, np.full(len(rg), X)
    else:
        t_x, h_x = np.full(len(rg), X), OUT + rg
    tails = np.r_[OUT + pairs[:, 0], OUT + pairs[:, 0], t_x, gi, gi]
    heads = np.r_[pairs[:, 1], pairs[:, 1], h_x, OUT + gi, OUT + gi]
    thr = np.floor(THROUGH_SHARE * loads * scale).astype(np.int64)
    cheap = np.full(np_, big) if not np.isfinite(border_layers) else np.ceil(border_layers * bw * scale)
    caps = np.r_[cheap.astype(np.int64), np.full(np_, big), c_x, thr,
                 np.full(n_grids, big)]
    costs = np.r_[np.where(bad, 1000, 10), np.where(bad, 20000, 200), np.zeros(len(rg)), np.zeros(n_grids),
                  np.full(n_grids, 300)].astype(np.int64)
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32),
                                                     caps.astype(np.int64), costs)
    supplies = np.zeros(2 * n_grids + 1, dtype=np.int64)
    supplies[OUT + gi] += sup
    supplies[gi] -= need
    supplies[X] = -excess
    smcf.set_nodes_supplies(np.arange(2 * n_grids + 1, dtype=np.int32), supplies)
    flows = None
    if smcf.solve() == smcf.OPTIMAL:
        f_all = smcf.flows(arcs)
        logger.debug("flow round: excess %.1f, flow x hops %.1f", sup.sum() / scale,
                     float((f_all[:np_] + f_all[np_:2 * np_]).sum()) / scale)
        flows = (f_all[:np_] + f_all[np_:2 * np_]) / scale
    if flows is None:
        return 0.0, set()
    edges = [(int(u), int(v), float(f)) for (u, v), f in zip(pairs.tolist(), flows.tolist()) if f > 0]
    moved, remaining = realise_flows(g, dense, n_grids, edges, locked)
    return moved, {e for e, f in remaining.items() if f > 0.5 * scale ** -1}


def realise_flows(g: Graph, dense: np.ndarray, n_grids: int, edges: list[tuple[int, int, float]],
                  locked: np.ndarray) -> tuple[float, dict[tuple[int, int], float]]:
    """Move units across grid borders to carry the flows ``edges`` (sender, receiver, workload), in place.

    Each border's flow is realised by moving the sender's units that touch the receiving grid,
    the best-fitting first, never breaking the sender's connectivity or emptying it, and never
    overshooting the flow by more than the unit's own weight.

    Parameters
    ----------
    g
        The units' graph.
    dense
        Grid label (0..n_grids-1) of each unit, changed in place.
    n_grids
        Number of grids.
    edges
        The flows: (sending grid, receiving grid, workload).
    locked
        Units that never move.

    Returns
    -------
    tuple
        (workload moved, flow left unrealised per border (sender, receiver)).
    """
    w = g.w
    # senders first in flow order: a grid passes workload on after it has received its own
    order_in = np.zeros(n_grids)
    for u, v, f in edges:
        order_in[v] += f
    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    stamp = np.zeros(g.n, dtype=np.int64)
    queue = np.empty(g.n, dtype=np.int64)
    token = [1]
    size = np.bincount(dense, minlength=n_grids)
    moved = 0.0
    remaining = {(u, v): f for u, v, f in edges}
    for _round in range(50):  # borders stalled by connectivity may open up once others have moved
        progress = False
        for (src_grid, dst_grid) in sorted(remaining, key=lambda e: (order_in[e[0]] > 0, e)):
            left = remaining[(src_grid, dst_grid)]
            skip: list[int] = []
            while left > 0 and size[src_grid] > 1:
                best = _best_border_unit(dense, src_grid, dst_grid, left, w, indptr, indices, locked, skip)
                if best < 0:
                    break
                token[0] += 2
                if not connected_without(best, src_grid, dense, indptr, indices, stamp, token[0], queue):
                    skip.append(best)  # it holds the sender together, for now
                    continue
                dense[best] = dst_grid
                size[src_grid] -= 1
                size[dst_grid] += 1
                left -= w[best]
                moved += w[best]
                progress = True
            remaining[(src_grid, dst_grid)] = left
        remaining = {e: f for e, f in remaining.items() if f > 0}
        if not remaining or not progress:
            break
    return moved, remaining


def _best_border_unit(dense: np.ndarray, src_grid: int, dst_grid: int, left: float, w: np.ndarray,
                      indptr: np.ndarray, indices: np.ndarray, locked: np.ndarray, skip: list[int]) -> int:
    """The sender's unit to move next across the border: the one touching the receiving grid most,
    then the one whose workload best fits the flow left, then the lowest index; units heavier than
    twice the flow left (overshoot by at most the unit itself), locked or in ``skip`` are passed
    over. Returns -1 when none is left."""
    cand = np.flatnonzero(dense == src_grid)
    cand = cand[~locked[cand]]
    if skip:
        cand = cand[~np.isin(cand, skip)]
    if len(cand) == 0:
        return -1
    starts = indptr[cand]
    lens = indptr[cand + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return -1
    first = np.cumsum(lens) - lens
    pos = np.arange(total) - np.repeat(first, lens) + np.repeat(starts, lens)
    touch = np.bincount(np.repeat(np.arange(len(cand)), lens), weights=dense[indices[pos]] == dst_grid,
                        minlength=len(cand))
    ok = (touch > 0) & ~(w[cand] > 2.0 * left)
    if not ok.any():
        return -1
    c, t = cand[ok], touch[ok]
    return int(c[np.lexsort((c, np.abs(left - w[c]), -t))[0]])
