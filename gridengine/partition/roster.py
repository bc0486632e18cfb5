"""Grids sized to the roster: one grid per specialist used, each within that specialist's capacity.

A roster is the plan's constraint (DESIGN.md, invariant 2). Three steps, each its own function:

1. :func:`size_to_roster` decides who gets a grid. Everyone, when the workload needs them all;
   when it needs fewer people (the roster's capacity at ``target_fill`` exceeds the workload),
   the specialists left with the least work by a transport of the workload to the nearest
   capacity are *spare*, and the plan names them. When the roster cannot carry the workload,
   the shortfall becomes *unstaffed* grids of the design capacity, placed where the transport
   left workload without capacity.
2. :func:`partition_roster` draws one grid per *part* (a specialist used, or an unstaffed
   grid) in first plans. Each part's grid aims at the same fill ``total workload / total
   capacity`` of its own capacity, so a dual-track roster (contract and agency staff with
   different capacities) gets grids of different sizes, equally full. Parts are shared out
   among disconnected areas (islands, land cut off by water) by workload, nearest bases first;
   inside an area, recursive bisection splits the parts by the position of their bases, then
   boundary moves balance fills and compactness. Grids still over their capacity pass workload
   to neighbours along a min-cost flow, and are redrawn locally with their neighbours if that
   is not enough: the plan has no capacity violation whenever these repairs find one.
3. :func:`partition_roster_rerun` re-plans from a previous plan when the roster changed: grids
   of specialists who stay keep their territory, a departed specialist's grid is handed to a
   new specialist or absorbed by its neighbours, new specialists get a grid carved around their
   base, and only capacity (then balance, priced by ``churn_weight``) moves other customers.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._kernels import connected_without
from ..errors import InfeasibleError
from ._draw import recursive_bisection
from ._flows import BORDER_LAYERS, flow_rebalance
from ._graph import Bridge, Graph, areas_and_bridges, csr, flood_fill, keep_main_pieces, tidy_empty_units
from ._refine import quality_key, refine, refine_portfolio
from .core import CUT_SCORES, PartitionResult, grid_connectivity

__all__ = ["RosterSizing", "size_to_roster", "partition_roster", "partition_roster_rerun", "MAX_FILL"]

logger = logging.getLogger(__name__)

#: When a roster filled beyond this cannot be drawn within every specialist's capacity (lumpy
#: compounds leave no room), it is re-sized as short: specialists filled to this share, the rest
#: of the workload drawn as unstaffed grids.
MAX_FILL = 0.97

#: Share of ``tolerance`` each grid's fill aims within, around its area's fill (see partition_roster).
AREA_BAND = 0.8

#: Rounds of capacity repair (border flows, then local redraws with growing regions).
REPAIR_ROUNDS = 8

#: Slices of each grid's room (of rising cost) when a departed specialist's territory is shared
#: out, so that it goes to the grids around it in step with their room.
ABSORB_STEPS = 4

#: Cost of passing a unit of workload across one border between staying grids, against the
#: slices' costs 0 .. ABSORB_STEPS - 1 (passing on moves a staying specialist's customers).
PASS_COST = 100

#: Compounds (and receiving grids) tried per over-full grid when a compound is handed over whole.
HAND_OVER_TRIES = 12


@dataclass
class RosterSizing:
    """Who gets a grid (output of :func:`size_to_roster`).

    Attributes
    ----------
    used
        Positions (in the roster) of the specialists who get a grid, ascending.
    spare
        Positions of the specialists left without a grid (the workload needs fewer people).
    fill
        Mean fill of the specialists used: workload / their total capacity (at most
        ``MAX_FILL`` when unstaffed grids are added).
    n_unstaffed
        Grids designed beyond the roster because its capacity is short.
    unstaffed_capacity
        The capacity those grids are designed for (the roster's most common capacity).
    unstaffed_x, unstaffed_y
        Where the unstaffed grids are centred (metres): where the workload lacks capacity.
    notes
        What was decided and why, in words.
    """

    used: np.ndarray
    spare: np.ndarray
    fill: float
    n_unstaffed: int = 0
    unstaffed_capacity: float = 0.0
    unstaffed_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unstaffed_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: list[str] = field(default_factory=list)


def _transport(w: np.ndarray, x: np.ndarray, y: np.ndarray, caps: np.ndarray, bx: np.ndarray, by: np.ndarray,
               n_near: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Ship workload (units) to specialists' capacity at least cost (km x workload), nearest ``n_near`` bases.

    Returns (workload received per specialist, workload per unit that found no capacity).
    """
    from ortools.graph.python import min_cost_flow

    units = np.flatnonzero(w > 0)
    m = len(caps)
    scale = 100.0
    supply = np.round(w[units] * scale).astype(np.int64)
    cap_i = np.floor(caps * scale).astype(np.int64)
    kk = min(n_near, m)
    d, j = cKDTree(np.c_[bx, by]).query(np.c_[x[units], y[units]], k=kk)
    d = d.reshape(len(units), kk)
    j = j.reshape(len(units), kk)
    nu = len(units)
    # nodes: units 0..nu-1, specialists nu..nu+m-1, sink nu+m; a unit may also ship to the sink
    # directly at a high price (no capacity within reach)
    sink = nu + m
    tails = np.r_[np.repeat(np.arange(nu), kk), nu + np.arange(m), np.arange(nu)]
    heads = np.r_[nu + j.ravel(), np.full(m, sink), np.full(nu, sink)]
    caps_arc = np.r_[np.repeat(supply, kk), cap_i, supply]
    big = int(max(d.max(initial=0.0), 1.0) * 1000) * 10 + 10**7
    costs = np.r_[np.round(d.ravel()).astype(np.int64), np.zeros(m, dtype=np.int64), np.full(nu, big, dtype=np.int64)]
    smcf = min_cost_flow.SimpleMinCostFlow()
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32),
                                                     caps_arc.astype(np.int64), costs.astype(np.int64))
    supplies = np.r_[supply, np.zeros(m, dtype=np.int64), [-int(supply.sum())]]
    smcf.set_nodes_supplies(np.arange(nu + m + 1, dtype=np.int32), supplies.astype(np.int64))
    if smcf.solve() != smcf.OPTIMAL:  # pragma: no cover - always feasible through the sink arcs
        raise RuntimeError("internal error: the roster transport found no solution")
    f = smcf.flows(arcs)
    got = np.bincount(j.ravel(), weights=f[:nu * kk], minlength=m) / scale
    left = np.zeros(len(w))
    left[units] = f[nu * kk + m:] / scale
    return got, left


def size_to_roster(weights: np.ndarray, x: np.ndarray, y: np.ndarray, capacities: np.ndarray,
                   base_x: np.ndarray, base_y: np.ndarray, *, target_fill: float = 0.9, k: int | None = None,
                   names: list[str] | None = None, max_fill: float = 1.0, tolerance: float = 0.05,
                   keep_first: np.ndarray | None = None, extra: int = 0,
                   extra_at: tuple[float, float] | None = None) -> RosterSizing:
    """Decide which specialists get a grid, and how many grids stay unstaffed.

    Parameters
    ----------
    weights, x, y
        Workload and position (metres) of each unit (cell).
    capacities
        Each specialist's capacity (workload units).
    base_x, base_y
        Each specialist's base (metres, the units' frame).
    target_fill, tolerance
        When the whole roster would be filled below ``target_fill * (1 - 2 * tolerance)`` (a real
        surplus: 81% by default), specialists are left spare while the others stay at or below
        ``target_fill``; otherwise everyone gets a grid (a planner who adds a few specialists
        expects them to work).
    k
        The planner's number of grids, if given: ``min(k, roster size)`` specialists are used,
        and grids beyond the roster are unstaffed.
    names
        Specialist ids, for the notes.
    keep_first
        Optional mask of specialists to keep before others (re-runs: those who hold a grid), so a
        spare is someone without customers to lose.
    extra, extra_at
        Unstaffed grids to add beside everyone used (at ``extra_at``, metres, where given): how a
        plan makes room around a place the roster's grids could not hold within capacity.
    max_fill
        The highest mean fill the roster is asked to carry. Above it, the roster is *short*: its
        specialists are filled to ``max_fill`` and the rest of the workload is drawn as unstaffed
        grids of the design capacity, where the work lacks specialists.

    Returns
    -------
    RosterSizing
    """
    w = np.asarray(weights, dtype="float64")
    caps = np.asarray(capacities, dtype="float64")
    m = len(caps)
    total = float(w.sum())
    names = names if names is not None else [f"specialist {i}" for i in range(m)]
    notes: list[str] = []
    if m == 0:
        raise InfeasibleError("the roster is empty: give specialists, or plan without a roster to size the need")
    counts = np.unique(np.round(caps, 6), return_counts=True)
    design = float(counts[0][counts[1] == counts[1].max()].max())  # the most common capacity, larger on ties
    n_use = min(int(k), m) if k is not None else m
    got, left = _transport(w, x, y, caps * min(1.0, max(target_fill, total / max(caps.sum(), 1e-12))), base_x,
                           base_y)
    pref = np.zeros(m, dtype=bool) if keep_first is None else np.asarray(keep_first, dtype=bool)
    # least needed first: without a grid to keep, then (k given) the smallest capacity, then least work
    order = np.lexsort((np.arange(m), got, caps if k is not None else np.zeros(m), pref))
    keep = np.ones(m, dtype=bool)
    if k is not None:
        keep[order[:m - n_use]] = False
    elif total < target_fill * (1 - 2 * tolerance) * caps.sum():  # a real surplus: leave some spare
        remaining = float(caps.sum())
        for j in order.tolist():
            if (remaining - caps[j]) * target_fill + 1e-9 >= total:
                keep[j] = False
                remaining -= caps[j]
            else:
                break
    used = np.flatnonzero(keep)
    spare = np.flatnonzero(~keep)
    if k is not None and k <= m and total > caps[used].sum() + 1e-9:
        raise InfeasibleError(f"k = {k} grids cannot hold the workload {total:g}: the {k} specialists with the largest "
                              f"capacities hold {caps[used].sum():g} ({total - caps[used].sum():g} short); raise k")
    cap_used = float(caps[used].sum())
    fill = total / cap_used if cap_used > 0 else math.inf
    n_un = 0
    ux = uy = np.zeros(0)
    if k is not None and k > m:
        n_un = int(k) - m
        fill = min(fill, MAX_FILL)
    elif k is None and fill > max_fill + 1e-12:
        # short: the roster carries max_fill of its capacity; the rest needs grids nobody holds
        short = total - max_fill * cap_used
        n_un = max(1, int(math.ceil(short / (target_fill * design) - 1e-9)))
        fill = max_fill
    if extra and not n_un:  # room around a place no contiguous plan could hold within capacity
        n_un = int(extra)
        fill = total / (cap_used + n_un * design)
        if extra_at is not None:
            ux = np.full(n_un, float(extra_at[0])) + np.arange(n_un) * 1.0
            uy = np.full(n_un, float(extra_at[1]))
        else:
            pts = np.flatnonzero(w > 0)
            ux, uy = _weighted_centres(x[pts], y[pts], w[pts], n_un)
        notes.append(f"{n_un} unstaffed grid(s) of capacity {design:g} make room where the roster's grids could not "
                     "all stay within capacity (compounds too heavy next to each other); the rest of the roster is "
                     f"filled to {fill:.1%}")
        return RosterSizing(used=used, spare=spare, fill=float(fill), n_unstaffed=n_un, unstaffed_capacity=design,
                            unstaffed_x=ux, unstaffed_y=uy, notes=notes)
    if n_un:
        got2, left2 = _transport(w, x, y, caps[used] * fill, base_x[used], base_y[used])
        lw = left2 if left2.sum() > 0 else w
        pts = np.flatnonzero(lw > 0)
        ux, uy = _weighted_centres(x[pts], y[pts], lw[pts], n_un)
        notes.append(
            f"the roster cannot carry the workload: {m} specialists hold {caps.sum():g} for a workload of {total:g}"
            f" ({total / caps.sum():.1%} of their capacity); {n_un} grid(s) of capacity {design:g} are drawn where "
            "the work lacks specialists and stay unstaffed (see staffing.csv)"
            if k is None else f"k = {k} grids but only {m} specialists: {n_un} grid(s) stay unstaffed")
    if len(spare):
        listed = ", ".join(names[j] for j in spare[:10].tolist()) + (" …" if len(spare) > 10 else "")
        why = (f"the workload {total:g} needs {len(used)} of the {m} specialists at a fill of at most "
               f"{target_fill:.0%}" if k is None else f"k = {k} grids for {m} specialists")
        notes.append(f"{len(spare)} specialist(s) spare ({listed}): {why}; the spares are those the nearest-capacity "
                     "transport of the workload left with the least work")
    return RosterSizing(used=used, spare=spare, fill=float(fill), n_unstaffed=n_un, unstaffed_capacity=design,
                        unstaffed_x=ux, unstaffed_y=uy, notes=notes)


def _weighted_centres(x: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, iters: int = 25) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """k weighted k-means centres (deterministic: seeded at workload quantiles along x)."""
    if len(x) == 0:
        return np.zeros(k), np.zeros(k)
    order = np.argsort(x, kind="stable")
    cw = np.cumsum(w[order])
    picks = order[np.minimum(np.searchsorted(cw, (np.arange(k) + 0.5) / k * cw[-1]), len(order) - 1)]
    cx, cy = x[picks].astype(float), y[picks].astype(float)
    pts = np.c_[x, y]
    for _ in range(iters):
        lab = cKDTree(np.c_[cx, cy]).query(pts, k=1)[1]
        sw = np.bincount(lab, weights=w, minlength=k)
        nx = np.bincount(lab, weights=w * x, minlength=k)
        ny = np.bincount(lab, weights=w * y, minlength=k)
        ok = sw > 0
        cx[ok], cy[ok] = nx[ok] / sw[ok], ny[ok] / sw[ok]
    return cx, cy


def _share_parts(g: Graph, merged: np.ndarray, big: np.ndarray, merged_w: np.ndarray, caps: np.ndarray,
                 ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
    """The area each part (specialist) serves: areas get capacity in proportion to their workload.

    Areas other than the largest take, lightest first, the parts based nearest to them (among the
    few nearest, the one whose capacity brings the area closest to the overall fill) until their
    capacity carries their workload at the overall fill and within ``MAX_FILL``; the largest area
    takes the rest.
    """
    m = len(caps)
    home = np.full(m, -1, dtype="int64")
    areas = [a for a in np.argsort(merged_w, kind="stable").tolist() if big[a]]
    if len(areas) <= 1:
        home[:] = areas[0] if areas else 0
        return home
    fill = float(merged_w[big].sum()) / max(float(caps.sum()), 1e-12)
    main = areas[-1]
    free = np.ones(m, dtype=bool)
    for a in areas[:-1]:
        units = np.flatnonzero(merged == a)
        tree = cKDTree(np.c_[g.x[units], g.y[units]])
        need = merged_w[a] / max(fill, 1e-12)
        have = 0.0
        while free.any():
            cand = np.flatnonzero(free)
            d = tree.query(np.c_[ax[cand], ay[cand]], k=1)[0]
            near = cand[np.lexsort((cand, d))[:4]]
            if have >= merged_w[a] / MAX_FILL - 1e-9 and have + 0.5 * caps[near].min() >= need:
                break
            gap = np.abs(need - (have + caps[near]))
            j = int(near[int(np.argmin(gap))]) if have >= merged_w[a] / MAX_FILL * 0.5 else int(near[0])
            home[j] = a
            free[j] = False
            have += caps[j]
            if free.sum() == 0:
                break
    home[free] = main
    return home


def _part_targets(home: np.ndarray, caps: np.ndarray, merged_w: np.ndarray) -> np.ndarray:
    """Each part's target: its capacity times its area's fill."""
    t = np.zeros(len(caps))
    for a in np.unique(home).tolist():
        mem = home == a
        t[mem] = caps[mem] * merged_w[a] / max(float(caps[mem].sum()), 1e-12)
    return t


def _centres(g: Graph, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ww = g.w + 1e-6
    s = np.bincount(labels, weights=ww, minlength=k)
    return (np.bincount(labels, weights=ww * g.x, minlength=k) / np.maximum(s, 1e-12),
            np.bincount(labels, weights=ww * g.y, minlength=k) / np.maximum(s, 1e-12))


def _redraw_parts(g: Graph, labels: np.ndarray, region: list[int], target: np.ndarray, rng: np.random.Generator,
                  n_trees: int, tol: float) -> None:
    """Redraw the grids in ``region`` (labels = parts) by bisection with their own targets, in place.

    Each part's anchor is its grid's current centre, so grids stay roughly where they were and
    keep their label (and so their specialist)."""
    units = np.flatnonzero(np.isin(labels, region))
    inside = np.zeros(g.n, dtype=bool)
    inside[units] = True
    e = inside[g.src] & inside[g.dst]
    _, piece = connected_components(csr(g.n, g.src[e], g.dst[e]), directed=False)
    parts = np.array(sorted(region), dtype="int64")
    cx, cy = _centres(g, labels, int(labels.max()) + 1)
    pieces = np.unique(piece[units])
    if len(pieces) > 1:  # a region in several pieces: redraw each with the grids it holds most of
        for p_ in pieces.tolist():
            members = units[piece[units] == p_]
            mine = np.unique(labels[members])
            tmp = labels.copy()
            recursive_bisection(g, members, len(mine), tmp, [0], rng, n_trees, tol, "cut",
                                (target[mine], cx[mine], cy[mine], mine))
            labels[members] = tmp[members]
        return
    tmp = labels.copy()
    recursive_bisection(g, units, len(parts), tmp, [0], rng, n_trees, tol, "cut",
                        (target[parts], cx[parts], cy[parts], parts))
    labels[units] = tmp[units]


def _grid_neighbours(g: Graph, labels: np.ndarray) -> dict[int, set[int]]:
    a, b = labels[g.src], labels[g.dst]
    d = a != b
    nb: dict[int, set[int]] = {}
    for x_, y_ in np.unique(np.c_[a[d], b[d]], axis=0).tolist():
        nb.setdefault(x_, set()).add(y_)
        nb.setdefault(y_, set()).add(x_)
    return nb


def _repair(g: Graph, labels: np.ndarray, k: int, target: np.ndarray, caps: np.ndarray, tol: float,
            n_trees: int, refine_passes: int, locked: np.ndarray, rng: np.random.Generator,
            home: np.ndarray | None = None, churn_w: float = 0.0, limit_share: float | None = None,
            settled: np.ndarray | None = None) -> list[str]:
    """Bring every grid within its capacity: border flows, then local redraws with growing regions.

    The flows bring grids down to ``target * (1 + tol / 2)`` (first plans), or to ``limit_share`` of
    their capacity (re-runs: capacity only, the fewest customers moved, along borders of any width).
    Locked units never move; re-runs (``home`` given) try five rounds of flows (and, from the
    second, whole compounds handed to a neighbour) before any local redraw, and their balance passes leave ``settled`` units (customers who keep their specialist)
    where they are."""
    notes: list[str] = []
    for rnd in range(REPAIR_ROUNDS):
        loads = np.bincount(labels, weights=g.w, minlength=k)
        over = np.flatnonzero(loads > caps + 1e-9)
        logger.debug("repair round %d: %d over, excess %.1f", rnd, len(over), float(np.clip(loads - caps, 0, None).sum()))
        if len(over) == 0:
            break
        if rnd == 0 and home is None and _swap_heavy(g, labels, k, caps, over, loads):
            notes.append("a grid holding a compound too heavy for its specialist swapped territory with a "
                         "neighbouring grid of a larger capacity")
            loads = np.bincount(labels, weights=g.w, minlength=k)
            over = np.flatnonzero(loads > caps + 1e-9)
            if len(over) == 0:
                break
        if (rnd >= 1 if home is not None else rnd >= 2 and rnd % 2 == 0) and _hand_over_heavy(
                g, labels, k, caps, over, loads, locked, rerun=home is not None):
            notes.append("a compound that kept its grid over capacity moved whole to a neighbouring grid, which "
                         "passed workload on to make room")
            loads = np.bincount(labels, weights=g.w, minlength=k)
            over = np.flatnonzero(loads > caps + 1e-9)
            if len(over) == 0:
                break
        if rnd % 2 == 0 or (home is not None and rnd < 5):  # pass the excess along a min-cost flow
            limit = np.minimum(caps, target * (1 + 0.5 * tol)) if limit_share is None else caps * limit_share
            mv = flow_rebalance(g, labels, k, np.full(k, -np.inf), limit, locked,
                                border_layers=np.inf if home is not None else BORDER_LAYERS)
            notes.append(f"{len(over)} grid(s) over their specialist's capacity: passed {mv:g} workload to neighbours")
        else:  # redraw each with its neighbouring grids
            size = 2 + rnd
            nb = _grid_neighbours(g, labels)
            taken: set[int] = set()
            redrawn = 0
            for gi in sorted(over.tolist(), key=lambda v: (-(loads[v] - caps[v]), v)):
                if gi in taken:
                    continue
                region = {gi}
                ring = {gi}
                while len(region) < size and ring:
                    ring = {m for r in ring for m in nb.get(r, ())} - region
                    region |= set(sorted(ring, key=lambda m: (loads[m] - caps[m], m))[:max(1, size - len(region))])
                if taken & region or locked[np.isin(labels, list(region))].any():
                    continue
                taken |= region
                _redraw_parts(g, labels, sorted(region), target, rng, n_trees, tol)
                redrawn += len(region)
            notes.append(f"{len(over)} grid(s) over their specialist's capacity: redrew {redrawn} grids around them")
        if home is None:
            _refine_best(g, labels, k, target, caps, tol, refine_passes, locked)
        else:
            hold = locked if settled is None else (locked | (settled & (home == labels)))
            refine(g, labels, k, target, caps, tol, refine_passes, hold, annealing=(), home=home, churn_w=churn_w)
    return notes


def _hand_over_heavy(g: Graph, labels: np.ndarray, k: int, caps: np.ndarray, over: np.ndarray,
                     loads: np.ndarray, locked: np.ndarray, rerun: bool = False) -> bool:
    """A grid over capacity by less than one of its compounds hands that compound whole to a neighbour
    grid, which first passes workload on (a min-cost flow) to make room for it, in place.

    Border flows move units no heavier than twice the flow, so they never move a large compound;
    two heavy compounds side by side then keep a grid over capacity. First plans try the lightest
    compound that ends the excess, its flows kept as they went; re-runs (``rerun``) try up to
    :data:`HAND_OVER_TRIES` compounds and neighbours, each on a copy, and keep only one that works
    (no customer moves for a hand-over that fails). Returns whether any moved."""
    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    stamp = np.zeros(g.n, dtype=np.int64)
    queue = np.empty(g.n, dtype=np.int64)
    moved = False
    token = 1
    for a in sorted(over.tolist(), key=lambda v: (-(loads[v] - caps[v]), v)):
        excess = loads[a] - caps[a]
        if excess <= 0:
            continue
        units = np.flatnonzero((labels == a) & ~locked & (g.w >= excess))
        # the lightest compound that ends the excess first, to the neighbour with the most room
        cands = []  # (weight, unit, room needed, neighbour grid)
        for u in units.tolist():
            for b in sorted(set(labels[g.neighbours(u)].tolist()) - {a}):
                cands.append((g.w[u], u, g.w[u] - (caps[b] - loads[b]), b))
        cands.sort()
        for wu, u, need, b in cands[:HAND_OVER_TRIES if rerun else 1]:
            token += 2
            if not connected_without(u, a, labels, indptr, indices, stamp, token, queue):
                continue
            if need > 0:  # make room in b: it passes workload to its own neighbours
                # re-runs try it on a copy, with a margin for lumpy moves, and keep it only if it works;
                # first plans keep the flow's moves as they went
                limit = np.minimum(caps * 0.995, np.maximum(loads, caps * 0.98)) if rerun else caps.copy()
                limit[b] = caps[b] - wu
                keep = locked.copy()
                keep[labels == a] = True
                trial = labels.copy() if rerun else labels
                flow_rebalance(g, trial, k, np.full(k, -np.inf), limit, keep)
                tl = np.bincount(trial, weights=g.w, minlength=k)
                failed = tl[b] + wu > caps[b] + 1e-9 or trial[u] != a or (
                    rerun and (tl > np.maximum(caps, loads) + 1e-9).any())
                if not rerun:
                    loads = tl
                if failed:
                    continue
                labels[:] = trial
                loads = tl
            labels[u] = b
            loads[a] -= wu
            loads[b] += wu
            moved = True
            break
    return moved


def _swap_heavy(g: Graph, labels: np.ndarray, k: int, caps: np.ndarray, over: np.ndarray,
                loads: np.ndarray) -> bool:
    """Grids over capacity because of one compound too heavy for their (smaller) specialist trade
    territories with a neighbouring grid whose specialist can hold it, in place. Returns whether any did."""
    nb = _grid_neighbours(g, labels)
    swapped = False
    done: set[int] = set()
    for a in sorted(over.tolist(), key=lambda v: (-(loads[v] - caps[v]), v)):
        units = np.flatnonzero(labels == a)
        if a in done or len(units) == 0 or g.w[units].max() <= 0.8 * caps[a]:
            continue
        cand = [b for b in sorted(nb.get(a, ())) if b not in done and caps[b] >= loads[a] + 1e-9
                and caps[b] > caps[a]]
        if not cand:
            continue
        b = min(cand, key=lambda v: (abs(loads[v] - caps[a] * loads[v] / caps[v]), loads[v] / caps[v], v))
        ia, ib = labels == a, labels == b
        labels[ia], labels[ib] = b, a
        done |= {a, b}
        swapped = True
    return swapped


def _refine_best(g: Graph, labels: np.ndarray, k: int, target: np.ndarray, caps: np.ndarray, tol: float,
                 passes: int, locked: np.ndarray) -> None:
    out = refine_portfolio(g, labels, k, target, caps, tol, passes, locked)
    labels[:] = out


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
    unit_names: list[str] | None = None,
) -> PartitionResult:
    """One grid per part, each sized to the part's capacity (equal fills), near the part's anchor.

    Parameters
    ----------
    weights, x, y, edges
        Units, as :func:`~gridengine.partition.partition_units`.
    capacities
        Capacity of each part (a specialist used, or an unstaffed grid of the design capacity).
    anchor_x, anchor_y
        Where each part's grid should form (a specialist's base), in the units' frame.
    tolerance, n_trees, bridge_share, refine_passes, seed
        As :func:`~gridengine.partition.partition_units`.
    unit_names
        How to name a unit in messages.

    Returns
    -------
    PartitionResult
        ``labels[u]`` is the part whose grid holds unit ``u``; ``n_grids`` the number of parts.
        Parts that got no territory (based in an area without workload) are named in ``notes``.

    Raises
    ------
    InfeasibleError
        A unit heavier than every capacity, more parts than units in an area, or grids that no
        repair could bring within their capacities (the message names the area and grids).
    """
    w = np.asarray(weights, dtype="float64")
    caps = np.asarray(capacities, dtype="float64")
    m = len(caps)
    n = len(w)
    if m == 0:
        raise InfeasibleError("no specialist to draw grids for")
    heavy = np.flatnonzero(w > caps.max() + 1e-9)
    if len(heavy):
        i = int(heavy[np.argmax(w[heavy])])
        nm = unit_names[i] if unit_names is not None else f"unit {i}"
        raise InfeasibleError(f"{nm} holds workload {w[i]:g}, above every specialist's capacity (largest "
                              f"{caps.max():g}); split it at customer level or use finer cells")
    src0 = np.asarray(edges[0], dtype="int64")
    dst0 = np.asarray(edges[1], dtype="int64")
    g = Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), src0, dst0)
    total = float(w.sum())
    fill = total / float(caps.sum())
    g0 = g
    g, area, big, merged, bridges, n_areas = areas_and_bridges(g, w, fill * float(np.median(caps)), bridge_share,
                                                               None, uneven_tol=tolerance)
    if big.sum() > m:  # more separate areas than grids: only the heaviest get grids, the others are bridged
        aw = np.sort(np.bincount(area, weights=w, minlength=n_areas))[::-1]
        g, area, big, merged, bridges, n_areas = areas_and_bridges(g0, w, float(aw[m - 1]) / max(bridge_share, 1e-9)
                                                                   * (1 - 1e-9), bridge_share, None)
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    home = _share_parts(g, merged, big, merged_w, caps, np.asarray(anchor_x, float), np.asarray(anchor_y, float))
    target = _part_targets(home, caps, merged_w)
    notes: list[str] = []
    best = None
    for cut_score in CUT_SCORES:
        rng = np.random.default_rng(seed)
        labels = np.full(n, -1, dtype="int64")
        for a in np.unique(home).tolist():
            members = np.flatnonzero(home == a)
            units = np.flatnonzero(merged == a)
            if len(members) > len(units):
                raise InfeasibleError(f"an area of {len(units)} units (workload {merged_w[a]:g}) cannot hold the "
                                      f"{len(members)} grids its workload needs")
            recursive_bisection(g, units, len(members), labels, [0], rng, n_trees, tolerance, cut_score,
                                (target[members], np.asarray(anchor_x, float)[members],
                                  np.asarray(anchor_y, float)[members], members))
        locked = np.zeros(n, dtype=np.bool_)
        # areas fill a little differently (whole specialists per area), and balance is judged on the
        # city's mean fill: aim each grid at a band a fifth narrower than the tolerance
        labels = refine_portfolio(g, labels, m, target, caps, AREA_BAND * tolerance, refine_passes, locked)
        key = quality_key(g, labels, m, target, caps, AREA_BAND * tolerance)
        if best is None or key < best[0]:
            best = (key, labels)
    labels = best[1]
    loads = np.bincount(labels, weights=w, minlength=m)
    if (loads > caps + 1e-9).any():
        notes.extend(_repair(g, labels, m, target, caps, tolerance, n_trees, refine_passes,
                             np.zeros(n, dtype=np.bool_), np.random.default_rng(seed)))
        loads = np.bincount(labels, weights=w, minlength=m)
    over = np.flatnonzero(loads > caps + 1e-9)
    if len(over):
        exc = InfeasibleError(_over_message(g, labels, over, loads, caps, unit_names))
        j = int(over[np.argmax(loads[over] - caps[over])])
        units = np.flatnonzero(labels == j)
        exc.where = (float(np.average(g.x[units], weights=g.w[units] + 1e-9)),
                     float(np.average(g.y[units], weights=g.w[units] + 1e-9)))  # the place, in metres
        raise exc
    tidy_empty_units(g, labels, bridges, np.zeros(n, dtype=np.bool_))
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    conn = grid_connectivity(labels, src0, dst0, bridges)
    if not conn.all():  # pragma: no cover - bisection and moves keep connectivity
        raise RuntimeError(f"internal error: grids {np.flatnonzero(~conn).tolist()} are not connected")
    return PartitionResult(labels=labels, n_grids=m, bridges=bridges, area_of_unit=area, notes=notes)


def _over_message(g: Graph, labels: np.ndarray, over: np.ndarray, loads: np.ndarray, caps: np.ndarray,
                  unit_names: list[str] | None) -> str:
    """Why capacity cannot be met, in domain terms: the heaviest units of the worst grid."""
    j = int(over[np.argmax(loads[over] - caps[over])])
    units = np.flatnonzero(labels == j)
    top = units[np.argsort(-g.w[units], kind="stable")[:3]]
    names = [(unit_names[u] if unit_names is not None else f"unit {u}") + f" (workload {g.w[u]:g})"
             for u in top.tolist()]
    return (f"{len(over)} grid(s) could not be kept within their specialist's capacity: the worst holds "
            f"{loads[j]:g} against {caps[j]:g} ({loads[j] - caps[j]:g} over); its heaviest places are "
            f"{'; '.join(names)}. Compounds this heavy next to each other leave no contiguous split at this "
            "fill: add specialists (or raise capacities) there, or split these compounds at customer level")


def _absorb(g: Graph, labels: np.ndarray, caps: np.ndarray) -> None:
    """Unlabelled units (-1) join a neighbouring grid, the least full (load / capacity) first, in place.

    Grids grow into the territory of a departed specialist from every side, each in step with
    the room it has, so the workload is shared out by capacity rather than by who is nearest.
    A first pass takes only what fits within each grid's capacity; what is left (the neighbours
    are full) then joins the least full neighbour, and the capacity flows pass it on.
    """
    _absorb_pass(g, labels, caps, hard=True)
    _absorb_pass(g, labels, caps, hard=False)


def _absorb_by_flow(g: Graph, labels: np.ndarray, limit: np.ndarray) -> bool:
    """Share the unlabelled units (-1) out among neighbouring grids by a least-churn flow, in place.

    Each connected piece of unlabelled units (the territory of one or more departed specialists)
    is a source of its workload; every grid can keep up to ``limit``. A min-cost flow on the grid
    adjacency graph (OR-Tools) sends the workload to grids with room: taking it from the piece
    costs nothing (those customers change specialist whatever happens), passing it on from one
    staying grid to the next costs one unit per unit of workload (each such hand-over moves a
    staying specialist's customers). The flow out of each piece becomes a quota per receiving
    grid, and the receiving grids then grow into the piece together, each in step with its quota,
    so the piece is divided where the room is reachable with the least onward passing; the
    capacity flows afterwards pass on what a grid took beyond its own room.

    Returns False (labels untouched) when the flow has no solution: the caller then absorbs by
    room alone.
    """
    import heapq

    from ortools.graph.python import min_cost_flow

    k = len(limit)
    free = labels < 0
    if not free.any():
        return True
    both = free[g.src] & free[g.dst]
    _, comp = connected_components(csr(g.n, g.src[both], g.dst[both]), directed=False)
    pieces, piece_of = np.unique(comp[free], return_inverse=True)
    hole = np.full(g.n, -1, dtype=np.int64)
    hole[free] = piece_of
    n_h = len(pieces)
    scale = 10.0
    load = np.bincount(labels[~free], weights=g.w[~free], minlength=k)
    supply = np.ceil(np.bincount(hole[free], weights=g.w[free], minlength=n_h) * scale).astype(np.int64)
    room = np.floor(np.clip(limit - load, 0, None) * scale).astype(np.int64)
    if room.sum() < supply.sum():
        return False
    node = np.where(free, k + hole, labels)
    a = np.r_[node[g.src], node[g.dst]]  # both directions of every adjacency
    b = np.r_[node[g.dst], node[g.src]]
    cross = (a != b) & (b < k)  # into a grid: from a piece, or from another grid
    pairs = np.unique(np.c_[a[cross], b[cross]], axis=0)
    sink = k + n_h
    big = int(supply.sum()) + 1
    # each grid's room in ABSORB_STEPS slices of rising (small) cost: a piece is shared out in
    # step with the room around it; passing on (cost PASS_COST per border) always costs more
    steps = ABSORB_STEPS
    part = room // steps
    slices = np.r_[np.repeat(part[None, :], steps - 1, axis=0).ravel(), room - part * (steps - 1)]
    tails = np.r_[pairs[:, 0], np.tile(np.arange(k), steps)]
    heads = np.r_[pairs[:, 1], np.full(k * steps, sink)]
    caps_ = np.r_[np.full(len(pairs), big), slices]
    costs = np.r_[np.where(pairs[:, 0] >= k, 0, PASS_COST), np.repeat(np.arange(steps), k)]
    smcf = min_cost_flow.SimpleMinCostFlow()
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32),
                                                     caps_.astype(np.int64), costs.astype(np.int64))
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[k:k + n_h] = supply
    supplies[sink] = -int(supply.sum())
    smcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supplies)
    if smcf.solve() != smcf.OPTIMAL:
        return False
    flows = smcf.flows(arcs)[:len(pairs)]
    quota: dict[tuple[int, int], float] = {}
    for (p, q), f in zip(pairs.tolist(), flows.tolist()):
        if p >= k and f > 0:
            quota[(p - k, q)] = f / scale
    onward = sum(f for (p, _), f in zip(pairs.tolist(), flows.tolist()) if p < k) / scale
    logger.debug("absorb by flow: %d piece(s), workload %.1f, onward passing %.1f", n_h, supply.sum() / scale, onward)
    taken: dict[tuple[int, int], float] = {key: 0.0 for key in quota}
    heap: list[tuple[float, int, int]] = []
    for u in np.flatnonzero(free).tolist():
        h = int(hole[u])
        for t in g.neighbours(u).tolist():
            lab = int(labels[t])
            if lab >= 0 and (h, lab) in quota:
                heap.append((0.0, u, lab))
    heapq.heapify(heap)
    while heap:
        f, u, lab = heapq.heappop(heap)
        if labels[u] >= 0:
            continue
        key = (int(hole[u]), lab)
        now = taken[key] / quota[key]
        if now > f + 1e-12:  # stale key: the grid has taken more since
            heapq.heappush(heap, (now, u, lab))
            continue
        if now >= 1.0 - 1e-9 and g.w[u] > 0:
            continue  # quota met: the piece's other neighbours take the rest
        rem = quota[key] - taken[key]
        if g.w[u] > rem + 1e-9:  # beyond the quota: only if no neighbour has more quota left
            h = key[0]
            others = [quota[(h, o)] - taken[(h, o)] for o in set(labels[g.neighbours(u)].tolist()) - {lab, -1}
                      if (h, o) in quota]
            if any(r >= g.w[u] or r > rem for r in others):
                continue
        labels[u] = lab
        taken[key] += g.w[u]
        nxt = taken[key] / quota[key]
        for t in g.neighbours(u).tolist():
            if labels[t] < 0:
                heapq.heappush(heap, (nxt, t, lab))
    return True


def _absorb_pass(g: Graph, labels: np.ndarray, caps: np.ndarray, hard: bool) -> None:
    import heapq

    k = len(caps)
    load = np.bincount(labels[labels >= 0], weights=g.w[labels >= 0], minlength=k)
    heap: list[tuple[float, int, int]] = []
    for u in np.flatnonzero(labels < 0).tolist():
        for t in g.neighbours(u).tolist():
            lab = int(labels[t])
            if lab >= 0:
                heap.append((load[lab] / caps[lab], u, lab))
    heapq.heapify(heap)
    while heap:
        f, u, lab = heapq.heappop(heap)
        if labels[u] >= 0:
            continue
        now = load[lab] / caps[lab]
        if now > f + 1e-12:  # stale key: the grid has grown since
            heapq.heappush(heap, (now, u, lab))
            continue
        if hard and load[lab] + g.w[u] > 0.995 * caps[lab] + 1e-9:
            continue  # no room: another neighbour may take it, or the second pass
        labels[u] = lab
        load[lab] += g.w[u]
        key = load[lab] / caps[lab]
        for t in g.neighbours(u).tolist():
            if labels[t] < 0:
                heapq.heappush(heap, (key, t, lab))


def _carve(g: Graph, labels: np.ndarray, part: int, ax: float, ay: float, target: float, keep: np.ndarray,
           limit: float = np.inf) -> None:
    """Give ``part`` a grid grown around (ax, ay), nearest units first, up to ``target`` workload, in place.

    The grid grows through adjacency from the unit nearest the anchor, taking units by distance
    to the anchor; a unit is taken only if its grid stays in one piece without it (so no donor
    is cut in two and no customer beyond the new grid changes specialist), and units of grids
    in ``keep`` are not taken. Units skipped for connectivity are tried again as the grid grows."""
    import heapq


    indptr, indices = g.indptr.astype(np.int64), g.indices.astype(np.int64)
    stamp = np.zeros(g.n, dtype=np.int64)
    queue = np.empty(g.n, dtype=np.int64)
    token = 1
    start = int(cKDTree(np.c_[g.x, g.y]).query([ax, ay], k=1)[1])
    taken = 0.0
    seen = {start}
    heap = [(0.0, start)]
    deferred: list[tuple[float, int]] = []
    first = True
    progress = True
    while (heap or deferred) and taken < target:
        if not heap:  # retry the units that held a donor together: the grid has grown since
            if not progress:
                break
            heap, deferred = deferred, []
            heapq.heapify(heap)
            progress = False
        d, u = heapq.heappop(heap)
        lab = int(labels[u])
        if lab == part:
            continue
        if lab >= 0 and keep[lab]:
            continue
        if not first and taken + g.w[u] > limit + 1e-9:  # a compound that would overfill the new grid
            continue
        if lab >= 0 and not first:
            token += 2
            if not connected_without(u, lab, labels, indptr, indices, stamp, token, queue):
                deferred.append((d, u))
                continue
        if lab >= 0 and first and np.count_nonzero(labels == lab) <= 1:
            continue
        first = False
        progress = True
        labels[u] = part
        taken += g.w[u]
        for t in g.neighbours(u).tolist():
            if t not in seen:
                seen.add(t)
                heapq.heappush(heap, (math.hypot(g.x[t] - ax, g.y[t] - ay), t))
    if first:  # nothing could be taken: fall back to the unit nearest the anchor
        labels[start] = part


def partition_roster_rerun(
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    *,
    initial: np.ndarray,
    capacities: np.ndarray,
    anchor_x: np.ndarray,
    anchor_y: np.ndarray,
    tolerance: float = 0.05,
    n_trees: int = 6,
    bridge_share: float = 0.5,
    refine_passes: int = 60,
    churn_weight: float = 5.0,
    seed: int = 0,
    unit_names: list[str] | None = None,
) -> PartitionResult:
    """Re-plan from a previous plan for a changed roster, moving as few customers as capacity allows.

    The territory of departed specialists is shared out two ways (see :data:`RERUN_ABSORBS`): by a
    least-churn flow on the grid adjacency graph, and by the neighbours' room alone; each is
    brought within capacity by border flows, and the plan that moves fewer staying customers'
    workload is kept.

    Parameters
    ----------
    weights, x, y, edges
        Units, as :func:`~gridengine.partition.partition_units`.
    initial
        Per unit, the part (index into ``capacities``) whose previous grid held it, or -1: a unit
        new to the tiling, or in the grid of a specialist who left. Parts absent from ``initial``
        are new specialists: each gets a grid carved around its anchor.
    capacities, anchor_x, anchor_y
        As :func:`partition_roster`.
    churn_weight
        What moving a customer out of their previous grid costs in the balance moves (grid spans of
        distance per workload unit); capacity moves are made whatever they cost.
    tolerance, n_trees, bridge_share, refine_passes, seed, unit_names
        As :func:`partition_roster`.

    Returns
    -------
    PartitionResult
        ``labels[u]`` is the part whose grid holds unit ``u``.
    """
    kw = dict(initial=initial, capacities=capacities, anchor_x=anchor_x, anchor_y=anchor_y, tolerance=tolerance,
              n_trees=n_trees, bridge_share=bridge_share, refine_passes=refine_passes, churn_weight=churn_weight,
              seed=seed, unit_names=unit_names)
    w = np.asarray(weights, dtype="float64")
    home = np.asarray(initial, dtype="int64")
    best: tuple[float, int, PartitionResult] | None = None
    error: InfeasibleError | None = None
    for rank, absorb in enumerate(RERUN_ABSORBS):
        try:
            res = _rerun(weights, x, y, edges, absorb=absorb, **kw)
        except InfeasibleError as exc:
            error = error or exc
            continue
        moved = float(w[(home >= 0) & (res.labels != home)].sum())
        if best is None or moved < best[0] - 1e-9:
            best = (moved, rank, res)
    if best is None:
        raise error  # type: ignore[misc]
    return best[2]


#: How a re-run shares out the territory of departed specialists, each tried; the plan that moves
#: the least workload of staying specialists is kept (ties: the first). "flow": a least-churn flow
#: decides how much each neighbouring grid takes; "room": the neighbours grow into it, least full first.
RERUN_ABSORBS = ("flow", "room")


def _rerun(weights: np.ndarray, x: np.ndarray, y: np.ndarray, edges: tuple[np.ndarray, np.ndarray], *,
           initial: np.ndarray, capacities: np.ndarray, anchor_x: np.ndarray, anchor_y: np.ndarray,
           tolerance: float, n_trees: int, bridge_share: float, refine_passes: int, churn_weight: float, seed: int,
           unit_names: list[str] | None, absorb: str) -> PartitionResult:
    """One re-run of :func:`partition_roster_rerun` with the given way of sharing out departed territory."""
    w = np.asarray(weights, dtype="float64")
    caps = np.asarray(capacities, dtype="float64")
    ax = np.asarray(anchor_x, dtype="float64")
    ay = np.asarray(anchor_y, dtype="float64")
    m = len(caps)
    n = len(w)
    initial = np.asarray(initial, dtype="int64")
    heavy = np.flatnonzero(w > caps.max() + 1e-9)
    if len(heavy):
        i = int(heavy[0])
        nm = unit_names[i] if unit_names is not None else f"unit {i}"
        raise InfeasibleError(f"{nm} holds workload {w[i]:g}, above every specialist's capacity")
    src0 = np.asarray(edges[0], dtype="int64")
    dst0 = np.asarray(edges[1], dtype="int64")
    g = Graph(w, np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"), src0, dst0)
    total = float(w.sum())
    fill = total / float(caps.sum())
    g, area, big, merged, bridges, n_areas = areas_and_bridges(g, w, fill * float(np.median(caps)), bridge_share,
                                                               None)
    notes: list[str] = []
    labels = keep_main_pieces(g, initial)
    absorbed = int(np.count_nonzero((labels < 0) & (w > 0)))
    if absorb == "flow":
        _absorb_by_flow(g, labels, 0.995 * caps)
    _absorb(g, labels, caps)  # what no quota reached (or all of it)
    labels = flood_fill(g, labels)
    present = np.zeros(m, dtype=bool)
    present[labels[labels >= 0]] = True
    new_parts = np.flatnonzero(~present)
    target = caps * fill
    keep = np.zeros(m, dtype=bool)
    for p_ in new_parts.tolist():  # carve each new specialist's grid around their base
        _carve(g, labels, p_, ax[p_], ay[p_], target[p_], keep, limit=0.995 * caps[p_])
        keep[p_] = True
    if (labels < 0).any():  # pragma: no cover - flood fill reaches every connected unit
        raise RuntimeError("internal error: units left without a grid in a re-run")
    if len(new_parts):
        notes.append(f"{len(new_parts)} new specialist(s): a grid carved around each base")
    if absorbed:
        notes.append(f"{absorbed} cells with customers left without their grid (specialist gone) were absorbed by "
                     "neighbouring grids")
    present = np.bincount(labels, minlength=m) > 0
    if not present.all():  # a new part whose carve was swallowed: draw it from the largest neighbour region
        for p_ in np.flatnonzero(~present).tolist():
            keep[:] = False
            _carve(g, labels, p_, ax[p_], ay[p_], target[p_], keep, limit=0.995 * caps[p_])
    # per-area targets: capacity times the area's own fill
    grid_area = np.zeros(m, dtype="int64")
    grid_area[labels] = merged
    merged_w = np.bincount(merged, weights=w, minlength=n_areas)
    target = _part_targets(grid_area, caps, merged_w)
    home = initial.copy()
    span = math.sqrt(max((g.x.max() - g.x.min()) * (g.y.max() - g.y.min()), 1.0) / max(m, 1))
    # customers who keep their grid move only for capacity; balance is sought with the others
    # (customers whose specialist left, land new to the tiling)
    roster_changed = bool(absorbed or len(new_parts))
    stay = (home >= 0) & (home == labels) if roster_changed else np.zeros(n, dtype=np.bool_)
    loads = np.bincount(labels, weights=w, minlength=m)
    if (loads > caps + 1e-9).any():
        notes.extend(_repair(g, labels, m, target, caps, tolerance, n_trees, refine_passes,
                             np.zeros(n, dtype=np.bool_), np.random.default_rng(seed), home=home,
                             churn_w=churn_weight * span, limit_share=0.995, settled=stay))
    if roster_changed:
        stay = (home >= 0) & (home == labels)
    before = labels.copy()
    refine(g, labels, m, target, caps, tolerance, refine_passes, stay, annealing=(), home=home,
           churn_w=churn_weight * span)
    if quality_key(g, before, m, target, caps, tolerance)[:2] <= quality_key(g, labels, m, target, caps,
                                                                             tolerance)[:2]:
        labels[:] = before  # the moves bought no capacity or balance: customers stay put
    loads = np.bincount(labels, weights=w, minlength=m)
    over = np.flatnonzero(loads > caps + 1e-9)
    if len(over):
        raise InfeasibleError("re-run: " + _over_message(g, labels, over, loads, caps, unit_names))
    tidy_empty_units(g, labels, bridges, np.zeros(n, dtype=np.bool_))
    bridges = [Bridge(b.area_units, b.area_workload, b.from_unit, b.to_unit, b.distance_m, int(labels[b.to_unit]))
               for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
    conn = grid_connectivity(labels, src0, dst0, bridges)
    if not conn.all():  # stray pieces (around bridges) join their neighbours; then capacity must still hold

        labels[:] = flood_fill(g, keep_main_pieces(g, labels))
        bridges = [b for b in bridges if labels[b.from_unit] == labels[b.to_unit]]
        loads = np.bincount(labels, weights=w, minlength=m)
        conn = grid_connectivity(labels, src0, dst0, bridges)
        if not conn.all() or (loads > caps + 1e-9).any():
            raise InfeasibleError(f"re-run: grids {np.flatnonzero(~conn).tolist()[:5]} could not be kept in one piece "
                                  "within capacity")
    return PartitionResult(labels=labels, n_grids=m, bridges=bridges, area_of_unit=area, notes=notes)
