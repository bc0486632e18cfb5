"""Capacitated p-median (CPMP): choose p medians among the points and assign every point to one.

Problem
-------
Given n points with demands ``q_i``, a number of medians ``p`` and a capacity ``Q`` (the same for
every median), choose exactly ``p`` of the points as medians and assign every point to one median
(single source) so that the demand assigned to each median, its own included (a median serves
itself), is at most ``Q``, minimising the sum of distances from each point to its median.

Method (a matheuristic)
-----------------------
1. **Starts**. When clusters average at most ``LP_START_MAX_CLUSTER`` points, the first start
   takes the ``p`` points with the largest "open" value in the LP relaxation (strong
   formulation on each point's nearest arcs, HiGHS interior point): under tight capacities it
   knows how many medians each part of the instance needs. Further starts are demand-weighted
   k-means++ seedings (``seed``) with an uncapacitated Lloyd alternation (nearest median /
   1-median of each cluster). Each start gets a regret-greedy capacitated assignment and a
   local search (numba): point *shift* and *swap* moves between clusters; *median moves*
   (close a median, open a nearby point, repair the assignment greedily); *pair re-splits*
   (the points of two neighbouring clusters, up to ``PAIR_MAX_POINTS``, split exactly into two
   clusters with both medians chosen anew, by subset enumeration); moving each median to its
   cluster's 1-median. The best start is kept.
2. **Global MIP** (instances up to ``max_full_mip_points`` points): the whole CPMP as one MIP
   (SCIP), each point restricted to its nearest points as possible medians, warm-started from
   the best start.
3. **Decomposition**: sweeps of region MIPs: a median, its nearest medians and all points
   assigned to them form a sub-CPMP (same number of medians, any of its points may become a
   median) solved by SCIP from the current solution; strict improvements are kept and the local
   search runs again after each improving sweep. Regions start small (``MIN_REGION_POINTS``:
   many MIPs of a fraction of a second) and double after a sweep that improves nothing, up to
   ``max_region_points``. Stops after a few sweeps at the largest size without improvement.

Determinism: every MIP runs single-threaded with a node limit and a fixed SCIP seed, and the
random parts use ``seed``, so the result is reproducible as long as no time cap binds
(``time_limit``, the per-region cap, the share of time given to the starts and the global MIP).
On large instances these caps usually bind, and the result then depends on machine speed.

Memory: the full n×n distance matrix is held (8 n² bytes; 160 MB at n = 4461).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numba as nb
import numpy as np
import scipy.sparse as sp
from ortools.linear_solver import pywraplp
from scipy.spatial.distance import cdist

from ..errors import InfeasibleError, SolverError

if TYPE_CHECKING:
    import highspy

__all__ = ["PMedianResult", "capacitated_p_median", "cpmp_objective", "cpmp_check"]

logger = logging.getLogger(__name__)

_EPS = 1e-7
#: Exact pair re-splits (:func:`_pair_kernel`): each cluster with this many nearest clusters,
#: when the two hold at most ``PAIR_MAX_POINTS`` points (2**PAIR_MAX_POINTS subsets).
PAIR_NEIGHBOURS = 8
PAIR_MAX_POINTS = 16
#: The LP start (:func:`_lp_medians`) runs when clusters average at most this many points.
LP_START_MAX_CLUSTER = 12
#: Smallest decomposition region (points); regions double up to ``max_region_points``.
MIN_REGION_POINTS = 30
_SCIP_EXTRA = ("heuristics/rins/freq = -1\nheuristics/rens/freq = -1\nheuristics/alns/freq = -1\n"
               "heuristics/crossover/freq = -1\nheuristics/gins/freq = -1\nheuristics/locks/freq = -1\n")


@dataclass(frozen=True)
class PMedianResult:
    """The solution of :func:`capacitated_p_median`.

    Attributes
    ----------
    medians
        Sorted indices (into the input points) of the ``p`` medians.
    assignment
        For each point, the index of the median that serves it (a median serves itself).
    objective
        Sum of the distances from each point to its median, with the distance convention used.
    feasible
        True when exactly ``p`` medians are open, each median serves itself, every point is
        assigned to an open median and no median's load exceeds the capacity.
    lower_bound
        A proven lower bound on the optimum, when the whole instance was solved as one MIP
        with every point-median arc (tiny instances, or ``full_mip_complete_points``);
        ``None`` otherwise.
    proven_optimal
        True when ``lower_bound`` proves ``objective`` optimal (to the MIP's tolerance).
    loads
        The demand served by each median, in the order of ``medians``.
    runtime_s
        Wall-clock time of the call.
    iterations
        Number of sub-MIPs solved in the decomposition phase.
    """

    medians: np.ndarray
    assignment: np.ndarray
    objective: float
    feasible: bool
    lower_bound: float | None
    proven_optimal: bool
    loads: np.ndarray
    runtime_s: float
    iterations: int


def cpmp_objective(dist: np.ndarray, assignment: np.ndarray) -> float:
    """Sum of ``dist[i, assignment[i]]`` over all points.

    Parameters
    ----------
    dist
        The (n, n) distance matrix.
    assignment
        The median index of each point.

    Returns
    -------
    float
        The total distance.
    """
    a = np.asarray(assignment, dtype=np.int64)
    return float(dist[np.arange(a.size), a].sum())


def cpmp_check(assignment: np.ndarray, demands: np.ndarray, p: int, capacity: float,
               tol: float = 1e-9) -> list[str]:
    """List the ways a CPMP solution breaks the rules (empty when feasible).

    Parameters
    ----------
    assignment
        The median index of each point.
    demands
        The demand of each point.
    p
        The required number of medians.
    capacity
        The capacity of every median.
    tol
        Relative tolerance on the capacity.

    Returns
    -------
    list of str
        One message per violated rule.
    """
    a = np.asarray(assignment, dtype=np.int64)
    q = np.asarray(demands, dtype=float)
    n = a.size
    problems: list[str] = []
    if n == 0:
        return problems
    if a.min() < 0 or a.max() >= n:
        return ["assignment holds an index outside 0..n-1"]
    meds = np.unique(a)
    if meds.size != p:
        problems.append(f"{meds.size} medians used, {p} required")
    not_self = meds[a[meds] != meds]
    if not_self.size:
        problems.append(f"{not_self.size} medians do not serve themselves")
    loads = np.bincount(a, weights=q, minlength=n)
    over = np.flatnonzero(loads > capacity * (1 + tol) + tol)
    if over.size:
        problems.append(f"{over.size} medians over capacity (max load {loads.max():g} > {capacity:g})")
    return problems


# --------------------------------------------------------------------------------------------
# MIP on a region
# --------------------------------------------------------------------------------------------

@dataclass
class _MipOut:
    assign: np.ndarray | None  # global median index of each region point, or None
    objective: float
    bound: float
    optimal: bool


def _solve_region(D: np.ndarray, dem: np.ndarray, cap: float, pts: np.ndarray, q: int,
                  cand: np.ndarray, k_arcs: int, hint: np.ndarray | None, node_limit: int,
                  time_limit: float, fixed_medians: bool = False) -> _MipOut:
    """Solve the CPMP restricted to ``pts`` with ``q`` medians chosen among ``cand`` by SCIP.

    Each point may only be served by its ``k_arcs`` nearest candidates (plus its hinted median).
    With ``fixed_medians`` every candidate is open (``q == len(cand)``): a generalised assignment.
    ``hint`` (global median index per region point) warm-starts the search.
    """
    r = pts.size
    c = cand.size
    sub = D[np.ix_(pts, cand)]
    k = min(k_arcs, c)
    if k < c:
        near = np.argpartition(sub, k - 1, axis=1)[:, :k]
    else:
        near = np.broadcast_to(np.arange(c), (r, c))
    cand_pos = {int(g): j for j, g in enumerate(cand)}
    pt_pos = {int(g): i for i, g in enumerate(pts)}
    arcs: list[set[int]] = [set(map(int, near[i])) for i in range(r)]
    self_col = np.full(r, -1, dtype=np.int64)
    for j, g in enumerate(cand):
        i = pt_pos.get(int(g))
        if i is not None:
            self_col[i] = j
            arcs[i].add(j)
    if hint is not None:
        for i in range(r):
            arcs[i].add(cand_pos[int(hint[i])])

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - OR-Tools is built with SCIP
        raise SolverError("OR-Tools has no SCIP backend")
    solver.SetNumThreads(1)
    inf = solver.infinity()
    # Column j's "open" variable: x[jj] (a median serves itself); with fixed medians it is 1.
    open_var: list = [None] * c
    x: list[dict[int, object]] = [dict() for _ in range(r)]
    obj = solver.Objective()
    for i in range(r):
        for j in sorted(arcs[i]):
            if fixed_medians and self_col[i] >= 0:
                if j != self_col[i]:
                    continue
            v = solver.BoolVar("")
            x[i][j] = v
            d = float(sub[i, j])
            if d:
                obj.SetCoefficient(v, d)
            if j == self_col[i]:
                open_var[j] = v
    for j in range(c):
        if open_var[j] is None:
            raise SolverError("candidate median outside the region")  # pragma: no cover
    # assignment
    for i in range(r):
        ct = solver.Constraint(1.0, 1.0)
        for v in x[i].values():
            ct.SetCoefficient(v, 1.0)
    # capacity and linking
    cap_ct = []
    for j in range(c):
        gj = int(cand[j])
        if fixed_medians:
            ct = solver.Constraint(-inf, cap - float(dem[gj]))
            open_var[j].SetBounds(1.0, 1.0)
        else:
            ct = solver.Constraint(-inf, 0.0)
            ct.SetCoefficient(open_var[j], -(cap - float(dem[gj])))
        cap_ct.append(ct)
    for i in range(r):
        qi = float(dem[pts[i]])
        for j, v in x[i].items():
            if j == self_col[i]:
                continue
            if qi:
                cap_ct[j].SetCoefficient(v, qi)
            if not fixed_medians:
                lk = solver.Constraint(-inf, 0.0)
                lk.SetCoefficient(v, 1.0)
                lk.SetCoefficient(open_var[j], -1.0)
    if not fixed_medians:
        ct = solver.Constraint(float(q), float(q))
        for j in range(c):
            ct.SetCoefficient(open_var[j], 1.0)
    obj.SetMinimization()

    if hint is not None:
        hv, hval = [], []
        for i in range(r):
            hj = cand_pos[int(hint[i])]
            for j, v in x[i].items():
                hv.append(v)
                hval.append(1.0 if j == hj else 0.0)
        solver.SetHint(hv, hval)
    solver.SetSolverSpecificParametersAsString(
        f"limits/nodes = {int(node_limit)}\nrandomization/randomseedshift = 0\n" + _SCIP_EXTRA)
    solver.SetTimeLimit(int(max(0.05, time_limit) * 1000))
    status = solver.Solve()
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return _MipOut(None, np.inf, -np.inf, False)
    out = np.empty(r, dtype=np.int64)
    for i in range(r):
        best_j, best_v = -1, -1.0
        for j, v in x[i].items():
            val = v.solution_value()
            if val > best_v:
                best_j, best_v = j, val
        out[i] = cand[best_j]
    objective = float(sub[np.arange(r), np.searchsorted(cand, out) if _is_sorted(cand) else
                          np.array([cand_pos[int(g)] for g in out])].sum())
    bound = float(solver.Objective().BestBound())
    return _MipOut(out, objective, bound, status == pywraplp.Solver.OPTIMAL)


def _is_sorted(a: np.ndarray) -> bool:
    return bool(np.all(a[1:] > a[:-1]))


# --------------------------------------------------------------------------------------------
# Local search (shift / swap of points between fixed medians)
# --------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def _ls_kernel(D, dem, cap, a, load, is_med, nearmed, nearpt, max_passes):  # pragma: no cover - numba
    """First-improvement shift and swap moves; medians fixed. Returns the total gain."""
    n = a.size
    km = nearmed.shape[1]
    kp = nearpt.shape[1]
    gain = 0.0
    for _ in range(max_passes):
        improved = False
        for i in range(n):
            if is_med[i]:
                continue
            ai = a[i]
            di = D[i, ai]
            # shift
            best = -1
            bestd = di - 1e-9
            for t in range(km):
                m = nearmed[i, t]
                if m == ai:
                    continue
                if D[i, m] < bestd and load[m] + dem[i] <= cap + 1e-9:
                    best = m
                    bestd = D[i, m]
            if best >= 0:
                load[ai] -= dem[i]
                load[best] += dem[i]
                a[i] = best
                gain += di - bestd
                improved = True
                continue
            # swap with a neighbouring point of another cluster
            bj = -1
            bdelta = -1e-9
            for t in range(kp):
                j = nearpt[i, t]
                if is_med[j]:
                    continue
                aj = a[j]
                if aj == ai:
                    continue
                delta = D[i, aj] + D[j, ai] - di - D[j, aj]
                if delta < bdelta:
                    if load[aj] - dem[j] + dem[i] <= cap + 1e-9 and load[ai] - dem[i] + dem[j] <= cap + 1e-9:
                        bj = j
                        bdelta = delta
            if bj >= 0:
                aj = a[bj]
                load[ai] += dem[bj] - dem[i]
                load[aj] += dem[i] - dem[bj]
                a[i] = aj
                a[bj] = ai
                gain -= bdelta
                improved = True
        if not improved:
            break
    return gain


@nb.njit(cache=True)
def _reassign(a, load, dem, j, new, jp, jo, nj):  # pragma: no cover - numba
    jp[nj] = j
    jo[nj] = a[j]
    load[a[j]] -= dem[j]
    load[new] += dem[j]
    a[j] = new
    return nj + 1


@nb.njit(cache=True)
def _median_moves(D, dem, cap, a, load, is_med, nearmed, nearpt):  # pragma: no cover - numba
    """Try moving each median m to a nearby point u (close m, open u), repairing greedily.

    The members of m go to their nearest open median with room (u included), then the
    neighbours of u that are closer to u than to their median join u while it has room.
    A move is kept when it lowers the total distance. Returns the total gain.
    """
    n = a.size
    km = nearmed.shape[1]
    kp = nearpt.shape[1]
    mem = np.empty(n, dtype=np.int64)
    jp = np.empty(n + kp + 2, dtype=np.int64)
    jo = np.empty(n + kp + 2, dtype=np.int64)
    total = 0.0
    for m in range(n):
        if not is_med[m]:
            continue
        for t in range(kp):
            if not is_med[m]:
                break
            u = nearpt[m, t]
            if is_med[u]:
                continue
            cnt = 0
            for i in range(n):
                if a[i] == m:
                    mem[cnt] = i
                    cnt += 1
            nj = 0
            delta = -D[u, a[u]]
            nj = _reassign(a, load, dem, u, u, jp, jo, nj)
            is_med[u] = True
            is_med[m] = False
            ok = True
            for c in range(cnt):
                i = mem[c]
                if i == u:
                    continue
                best = -1
                bd = 1e300
                if load[u] + dem[i] <= cap + 1e-9:
                    best = u
                    bd = D[i, u]
                for tt in range(km):
                    mm = nearmed[i, tt]
                    if is_med[mm] and D[i, mm] < bd and load[mm] + dem[i] <= cap + 1e-9:
                        best = mm
                        bd = D[i, mm]
                if best < 0:
                    ok = False
                    break
                delta += bd - D[i, m]
                nj = _reassign(a, load, dem, i, best, jp, jo, nj)
            if ok:
                for tt in range(kp):
                    j = nearpt[u, tt]
                    if is_med[j] or a[j] == u:
                        continue
                    if D[j, u] < D[j, a[j]] - 1e-12 and load[u] + dem[j] <= cap + 1e-9:
                        delta += D[j, u] - D[j, a[j]]
                        nj = _reassign(a, load, dem, j, u, jp, jo, nj)
            if ok and delta < -1e-9:
                total -= delta
                continue
            # undo
            for r in range(nj - 1, -1, -1):
                j = jp[r]
                load[a[j]] -= dem[j]
                load[jo[r]] += dem[j]
                a[j] = jo[r]
            is_med[u] = False
            is_med[m] = True
    return total


@nb.njit(cache=True)
def _best_split(D, dem, cap, S, s, cost, load, best, bestm):  # pragma: no cover - numba
    """Best split of the points ``S[:s]`` into two clusters, each served by its best median.

    Enumerates all 2**s subsets: ``cost[mask, j]`` is the distance from the points of ``mask``
    to ``S[j]``, ``best[mask]`` the cost of ``mask`` as one cluster (inf above the capacity).
    Returns (value, mask of the first cluster, its median, the other cluster's median) as
    positions in ``S``; value is inf when no split fits.
    """
    full = (1 << s) - 1
    for j in range(s):
        cost[0, j] = 0.0
    load[0] = 0.0
    for mask in range(1, full + 1):
        low = mask & (-mask)
        i = 0
        while (1 << i) != low:
            i += 1
        prev = mask ^ low
        load[mask] = load[prev] + dem[S[i]]
        if load[mask] > cap + 1e-9:  # so is every superset: its costs are never needed
            best[mask] = 1e300
            bestm[mask] = -1
            continue
        bv = 1e300
        bm = -1
        for j in range(s):
            c = cost[prev, j] + D[S[i], S[j]]
            cost[mask, j] = c
            if (mask >> j) & 1 and c < bv:
                bv = c
                bm = j
        best[mask] = bv
        bestm[mask] = bm
    bval = 1e300
    bmask = -1
    for mask in range(1, full, 2):  # the first point's side; both sides non-empty
        v = best[mask] + best[full ^ mask]
        if v < bval:
            bval = v
            bmask = mask
    if bmask < 0:
        return 1e300, -1, -1, -1
    return bval, bmask, bestm[bmask], bestm[full ^ bmask]


@nb.njit(cache=True)
def _pair_kernel(D, dem, cap, a, meds, nbr, max_pts, max_passes):  # pragma: no cover - numba
    """Re-split pairs of neighbouring clusters optimally; ``a`` is updated in place.

    For each cluster and each of its neighbours ``nbr[c]`` (cluster positions in ``meds``) with
    at most ``max_pts`` points together, the union is split exactly into the two clusters with
    the least total distance (both medians chosen anew, capacity respected). This subsumes
    shift, swap and within-cluster median moves of the two clusters. Passes repeat over the
    clusters changed in the previous pass. Returns the total gain.
    """
    n = a.size
    p = meds.size
    pos = -np.ones(n, dtype=np.int64)
    for c in range(p):
        pos[meds[c]] = c
    cnt = np.zeros(p, dtype=np.int64)
    for i in range(n):
        cnt[pos[a[i]]] += 1
    width = max(max_pts, cnt.max())
    mem = np.empty((p, width), dtype=np.int64)
    cid = np.empty(n, dtype=np.int64)
    cnt[:] = 0
    for i in range(n):
        c = pos[a[i]]
        cid[i] = c
        mem[c, cnt[c]] = i
        cnt[c] += 1
    med = meds.copy()
    size = 1 << max_pts
    cost = np.empty((size, max_pts))
    load = np.empty(size)
    best = np.empty(size)
    bestm = np.empty(size, dtype=np.int64)
    S = np.empty(max_pts, dtype=np.int64)
    total = 0.0
    dirty = np.ones(p, dtype=np.bool_)
    for _ in range(max_passes):
        improved = False
        nxt = np.zeros(p, dtype=np.bool_)
        for c1 in range(p):
            for t in range(nbr.shape[1]):
                c2 = nbr[c1, t]
                if c2 == c1 or not (dirty[c1] or dirty[c2]):
                    continue
                s = cnt[c1] + cnt[c2]
                if s > max_pts:
                    continue
                cur = 0.0
                for k in range(cnt[c1]):
                    S[k] = mem[c1, k]
                    cur += D[S[k], med[c1]]
                for k in range(cnt[c2]):
                    S[cnt[c1] + k] = mem[c2, k]
                    cur += D[mem[c2, k], med[c2]]
                v, mask, m1, m2 = _best_split(D, dem, cap, S, s, cost, load, best, bestm)
                if mask < 0 or v >= cur - 1e-9 * max(1.0, cur):
                    continue
                total += cur - v
                cnt[c1] = 0
                cnt[c2] = 0
                for k in range(s):
                    i = S[k]
                    c = c1 if (mask >> k) & 1 else c2
                    mem[c, cnt[c]] = i
                    cnt[c] += 1
                    cid[i] = c
                med[c1] = S[m1]
                med[c2] = S[m2]
                nxt[c1] = True
                nxt[c2] = True
                improved = True
        dirty = nxt
        if not improved:
            break
    for i in range(n):
        a[i] = med[cid[i]]
    return total


def _nearest_cols(D: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """For every row, the k columns among ``cols`` with the smallest distance (sorted)."""
    k = min(k, cols.size)
    out = np.empty((D.shape[0], k), dtype=np.int64)
    step = 512
    for s in range(0, D.shape[0], step):
        sub = D[s:s + step][:, cols]
        idx = np.argpartition(sub, k - 1, axis=1)[:, :k] if k < cols.size else \
            np.broadcast_to(np.arange(cols.size), sub.shape).copy()
        order = np.argsort(np.take_along_axis(sub, idx, axis=1), axis=1, kind="stable")
        out[s:s + step] = cols[np.take_along_axis(idx, order, axis=1)]
    return out


def _local_search(D: np.ndarray, dem: np.ndarray, cap: float, a: np.ndarray,
                  nearpt: np.ndarray, rounds: int = 50, median_moves: bool = True) -> np.ndarray:
    """Shift/swap moves, median moves, exact re-splits of neighbouring cluster pairs and moving
    each median to its cluster's 1-median, repeated until a round improves nothing."""
    a = a.copy()
    n = a.size
    best = cpmp_objective(D, a)
    for _ in range(rounds):
        meds = np.unique(a)
        is_med = np.zeros(n, dtype=np.bool_)
        is_med[meds] = True
        load = np.bincount(a, weights=dem, minlength=n).astype(float)
        nearmed = _nearest_cols(D, meds, 10)
        _ls_kernel(D, dem, cap, a, load, is_med, nearmed, nearpt, 100)
        if median_moves:
            _median_moves(D, dem, cap, a, load, is_med, nearmed, nearpt)
            meds = np.flatnonzero(is_med)
            nearmed = _nearest_cols(D, meds, 10)
            _ls_kernel(D, dem, cap, a, load, is_med, nearmed, nearpt, 100)
        if meds.size > 1:
            nbr = np.searchsorted(meds, _nearest_cols(D[meds], meds, min(meds.size, PAIR_NEIGHBOURS + 1))[:, 1:])
            _pair_kernel(D, dem, cap, a, meds, nbr, PAIR_MAX_POINTS, 50)
            meds = np.unique(a)
        a = _one_medians(D, a, meds)
        obj = cpmp_objective(D, a)
        if obj < best - _EPS * max(1.0, best):
            best = obj
        else:
            break
    return a


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------

def _kmeanspp(D: np.ndarray, dem: np.ndarray, p: int, rng: np.random.Generator) -> np.ndarray:
    """Demand-weighted k-means++ seeding on the distance matrix."""
    n = D.shape[0]
    w = dem.astype(float) + 1e-9
    first = int(rng.choice(n, p=w / w.sum()))
    meds = [first]
    closest = D[first].copy()
    for _ in range(1, p):
        prob = w * closest ** 2
        s = prob.sum()
        if s <= 0:
            free = np.setdiff1d(np.arange(n), meds)
            nxt = int(rng.choice(free))
        else:
            nxt = int(rng.choice(n, p=prob / s))
        meds.append(nxt)
        np.minimum(closest, D[nxt], out=closest)
    return np.array(sorted(set(meds)), dtype=np.int64)


_HIGHS_BANNER_DONE = False


def _highspy() -> Any:
    """The ``highspy`` module (HiGHS), imported when the LP start first runs rather than with gridengine."""
    import highspy

    return highspy


def _quiet_highs() -> highspy.Highs:
    """A HiGHS instance with its output off.

    HiGHS prints a copyright banner on stdout when the first instance of a process is made,
    before any option can be set; that one construction runs with file descriptor 1 sent to
    /dev/null, so a CLI's or a notebook's output stays clean.
    """
    global _HIGHS_BANNER_DONE
    highspy = _highspy()
    if _HIGHS_BANNER_DONE:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
            try:
                ctypes.CDLL(None).fflush(None)  # C stdio buffers, before stdout comes back
            except (OSError, TypeError, AttributeError):  # pragma: no cover - no libc (Windows)
                pass
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _HIGHS_BANNER_DONE = True
    h.setOptionValue("output_flag", False)
    return h


def _lp_medians(D: np.ndarray, dem: np.ndarray, cap: float, p: int, k_arcs: int,
                time_limit: float) -> np.ndarray | None:
    """The ``p`` points with the largest "open" value in the LP relaxation of the CPMP.

    The LP (HiGHS, interior point) has the strong formulation: assignment rows, capacity rows
    ``sum_i q_i x_ij <= (Q - q_j) y_j``, links ``x_ij <= y_j`` and ``sum y = p``, with each
    point's arcs restricted to its ``k_arcs`` nearest points. Its ``y`` says how many medians
    every part of the instance needs, which a k-means seeding does not know under tight
    capacities. Returns ``None`` when the restricted LP is infeasible or not solved in time.
    """
    highspy = _highspy()
    n = D.shape[0]
    near = _nearest_cols(D, np.arange(n), min(n, k_arcs))
    ai = np.repeat(np.arange(n), near.shape[1])
    aj = near.ravel()
    keep = ai != aj
    ai, aj = ai[keep], aj[keep]
    na = ai.size
    nv = n + na  # columns: y_j (j = 0..n-1, y_i is also i's self-assignment), then x arcs
    rows = np.concatenate([
        ai, np.arange(n),                        # assignment: sum_j x_ij + y_i = 1
        n + aj, n + np.arange(n),                # capacity
        2 * n + np.arange(na), 2 * n + np.arange(na),  # x_ij - y_j <= 0
        np.full(n, 2 * n + na)])                 # sum y = p
    cols = np.concatenate([n + np.arange(na), np.arange(n), n + np.arange(na), np.arange(n),
                           n + np.arange(na), aj, np.arange(n)])
    vals = np.concatenate([np.ones(na), np.ones(n), dem[ai], -(cap - dem), np.ones(na),
                           -np.ones(na), np.ones(n)])
    nr = 2 * n + na + 1
    A = sp.csc_matrix((vals, (rows, cols)), shape=(nr, nv))
    lp = highspy.HighsLp()
    lp.num_col_ = nv
    lp.num_row_ = nr
    lp.col_cost_ = np.concatenate([np.zeros(n), D[ai, aj]])
    lp.col_lower_ = np.zeros(nv)
    lp.col_upper_ = np.ones(nv)
    inf = highspy.kHighsInf
    lp.row_lower_ = np.concatenate([np.ones(n), np.full(n + na, -inf), [float(p)]])
    lp.row_upper_ = np.concatenate([np.ones(n), np.zeros(n + na), [float(p)]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    h = _quiet_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("time_limit", float(max(0.1, time_limit)))
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    y = np.asarray(h.getSolution().col_value[:n])
    return np.sort(np.argsort(-np.round(y, 6), kind="stable")[:p])


def _greedy_hint(D: np.ndarray, dem: np.ndarray, cap: float, meds: np.ndarray) -> np.ndarray | None:
    """A quick feasible assignment to fixed medians (largest demands first, nearest with room)."""
    n = D.shape[0]
    load = {int(m): float(dem[m]) for m in meds}
    a = np.full(n, -1, dtype=np.int64)
    a[meds] = meds
    rest = np.setdiff1d(np.arange(n), meds)
    sub = D[np.ix_(rest, meds)]
    # regret order: points whose nearest two medians differ most go first, ties by demand
    srt = np.sort(sub, axis=1)
    regret = srt[:, 1] - srt[:, 0] if meds.size > 1 else np.zeros(rest.size)
    order = np.lexsort((-regret, -dem[rest]))
    for idx in order:
        i = rest[idx]
        for j in np.argsort(sub[idx]):
            m = int(meds[j])
            if load[m] + dem[i] <= cap + 1e-9:
                load[m] += float(dem[i])
                a[i] = m
                break
        else:
            return None
    return a


def _assign_fixed(D: np.ndarray, dem: np.ndarray, cap: float, meds: np.ndarray,
                  hint: np.ndarray | None, node_limit: int, time_limit: float) -> np.ndarray | None:
    """Best (or near-best) single-source assignment of all points to the fixed medians."""
    n = D.shape[0]
    pts = np.arange(n)
    if hint is None:
        hint = _greedy_hint(D, dem, cap, meds)
    k = min(meds.size, 8)
    while True:
        res = _solve_region(D, dem, cap, pts, meds.size, meds, k, hint, node_limit, time_limit,
                            fixed_medians=True)
        if res.assign is not None:
            if hint is not None and cpmp_objective(D, hint) <= res.objective:
                return hint
            return res.assign
        if k >= meds.size:
            return hint
        k = min(meds.size, 2 * k)


def _one_medians(D: np.ndarray, a: np.ndarray, meds: np.ndarray) -> np.ndarray:
    """Move each median to the point of its cluster minimising the cluster's total distance."""
    new = a.copy()
    for m in meds:
        members = np.flatnonzero(a == m)
        if members.size <= 1:
            continue
        cost = D[np.ix_(members, members)].sum(axis=0)
        best = members[int(np.argmin(cost))]
        if cost.min() < cost[np.searchsorted(members, m)] - _EPS:
            new[members] = best
    return new


# --------------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------------

def _distance_matrix(points: np.ndarray | None, distances: np.ndarray | None, distance: str,
                     n: int) -> np.ndarray:
    if distances is not None:
        D = np.asarray(distances, dtype=float)
        if D.shape != (n, n):
            raise ValueError(f"distances must be ({n}, {n}), got {D.shape}")
        return D
    if points is None:
        raise ValueError("give points or distances")
    P = np.asarray(points, dtype=float)
    if P.ndim != 2 or P.shape[0] != n:
        raise ValueError(f"points must be (n, d) with n = {n} (the number of demands)")
    D = cdist(P, P)
    if distance == "euclidean":
        return D
    if distance == "euclidean_floor":
        return np.floor(D + 1e-9)
    raise ValueError(f"distance must be 'euclidean' or 'euclidean_floor', got {distance!r}")


def capacitated_p_median(
    points: np.ndarray | None,
    demands: np.ndarray,
    p: int,
    capacity: float,
    *,
    distances: np.ndarray | None = None,
    distance: str = "euclidean",
    time_limit: float = 30.0,
    seed: int = 0,
    max_region_points: int = 120,
    max_region_medians: int = 30,
    region_nodes: int = 5,
    n_starts: int | None = None,
    max_full_mip_points: int = 320,
    full_mip_complete_points: int = 0,
    full_mip_arcs: int = 20,
    full_mip_nodes: int = 2000,
    n_jobs: int = 1,
) -> PMedianResult:
    """Solve a capacitated p-median problem heuristically (exactly for small instances).

    Choose exactly ``p`` medians among the points and assign every point to one median so that
    the demand served by each median (its own included: a median serves itself) is at most
    ``capacity``, minimising the total point-to-median distance.

    Parameters
    ----------
    points
        (n, d) coordinates, or ``None`` when ``distances`` is given.
    demands
        (n,) non-negative demands (may be fractional).
    p
        Number of medians, ``1 <= p <= n``.
    capacity
        Capacity of every median.
    distances
        Optional (n, n) distance matrix; overrides ``points`` and ``distance``.
    distance
        ``"euclidean"`` (unrounded) or ``"euclidean_floor"`` (each distance truncated to an
        integer, the OR-Library convention).
    time_limit
        Safety cap on the wall-clock time in seconds. The search normally stops on its own
        (no improving region left); if the cap is reached, the best solution so far is returned
        and the result may then depend on machine speed.
    seed
        Seed of the randomised parts (initial medians, region order).
    max_region_points
        Largest decomposition region (points); regions start at ``MIN_REGION_POINTS`` and
        double when a sweep improves nothing. At least two medians per region.
    max_region_medians
        Most medians in a region.
    region_nodes
        Branch-and-bound node limit of each region MIP.
    n_starts
        Number of constructions (the LP start when it applies, then k-means++ seedings; each
        with a capacitated assignment and the local search); the best is improved further.
        Default: 20000 // n, clipped to [5, 200]. Later starts are skipped once a quarter of
        ``time_limit`` is spent (a tenth when the LP start ran).
    max_full_mip_points
        Instances with at most this many points are first solved as one MIP, warm-started
        from the constructed solution, each point restricted to its ``full_mip_arcs`` nearest
        points as possible medians.
    full_mip_complete_points
        Up to this many points that MIP has every arc, so its bound is valid
        (``lower_bound``) and it may prove optimality.
    full_mip_arcs
        Arcs per point of the global MIP for larger instances.
    full_mip_nodes
        Node limit of the global MIP.
    n_jobs
        Processes solving decomposition regions in parallel (fork start method; on systems
        without it, 1). With 1 (default) everything runs in the calling process.

    Returns
    -------
    PMedianResult
        The medians, the assignment, the objective and a feasibility flag.

    Raises
    ------
    InfeasibleError
        When ``p > n``, a demand exceeds ``capacity``, or the total demand exceeds
        ``p * capacity``.
    ValueError
        For malformed input (shapes, negative demands, unknown distance, ``n_jobs < 1``).

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[0, 0], [1, 0], [10, 0], [11, 0]])
    >>> res = capacitated_p_median(pts, np.ones(4), 2, 2)
    >>> res.medians.size, res.objective
    (2, 2.0)
    """
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit)
    dem = np.asarray(demands, dtype=float).ravel()
    n = dem.size
    p = int(p)
    cap = float(capacity)
    if n == 0:
        raise ValueError("no points")
    if np.any(~np.isfinite(dem)) or np.any(dem < 0):
        raise ValueError("demands must be finite and non-negative")
    if p < 1:
        raise ValueError("p must be at least 1")
    if int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be at least 1, got {n_jobs}")
    if p > n:
        raise InfeasibleError(f"p = {p} medians requested but there are only {n} points")
    if dem.max() > cap:
        raise InfeasibleError(
            f"point {int(dem.argmax())} has demand {dem.max():g}, more than the capacity {cap:g}")
    if dem.sum() > p * cap * (1 + 1e-12):
        raise InfeasibleError(
            f"total demand {dem.sum():g} exceeds p x capacity = {p} x {cap:g} = {p * cap:g}")
    D = _distance_matrix(points, distances, distance, n)
    rng = np.random.default_rng(seed)

    def remaining() -> float:
        return deadline - time.perf_counter()

    lower_bound: float | None = None
    proven = False
    iterations = 0
    if p == n:
        a = np.arange(n)
    else:
        nearpt = _nearest_cols(D, np.arange(n), min(n, 31))[:, 1:]
        a = None
        best = np.inf
        starts = n_starts if n_starts is not None else max(5, min(200, 20000 // n))
        lp_meds = None
        if n <= LP_START_MAX_CLUSTER * p:
            lp_meds = _lp_medians(D, dem, cap, p, max(12, int(np.ceil(2.5 * n / p))),
                                  time_limit=0.1 * remaining())
            logger.debug("LP start: %s after %.2fs", "found" if lp_meds is not None else "none",
                         time.perf_counter() - t0)
        for s_i in range(max(1, starts)):
            # later starts get a quarter of the time; a tenth after an LP start (usually best)
            if s_i and remaining() < (0.9 if lp_meds is not None else 0.75) * time_limit:
                break
            a_s = _construct(D, dem, cap, p, rng, remaining, nearpt,
                             meds=lp_meds if s_i == 0 else None)
            obj_s = cpmp_objective(D, a_s)
            logger.debug("start %d: %.3f", s_i, obj_s)
            if obj_s < best - _EPS:
                a, best = a_s, obj_s
        logger.debug("construction: %.3f after %.2fs", cpmp_objective(D, a), time.perf_counter() - t0)
        if n <= max_full_mip_points:
            # the whole instance as one MIP; complete arcs (and a valid bound) when n is small
            k_full = n if n <= full_mip_complete_points else \
                min(n, max(full_mip_arcs, int(np.ceil(3 * n / p))))
            res = _solve_region(D, dem, cap, np.arange(n), p, np.arange(n), k_full, a,
                                node_limit=full_mip_nodes, time_limit=max(0.1, 0.7 * remaining()))
            iterations += 1
            if res.assign is not None and np.unique(res.assign).size == p \
                    and res.objective < cpmp_objective(D, a) - _EPS:
                a = res.assign
            if res.assign is not None and k_full >= n:
                lower_bound = res.bound
                proven = res.optimal
            logger.debug("full MIP: %.3f bound %.3f after %.2fs", cpmp_objective(D, a), res.bound,
                         time.perf_counter() - t0)
        if not proven:
            pool = None
            if n_jobs > 1 and "fork" in mp.get_all_start_methods():
                pool = ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("fork"),
                                           initializer=_worker_init, initargs=(D, dem, cap))
            try:
                a, it = _decompose(D, dem, cap, p, a, rng, remaining, max_region_points,
                                   max_region_medians, nearpt, node_limit=region_nodes,
                                   pool=pool, n_jobs=n_jobs)
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)
            iterations += it
    meds = np.unique(a)
    problems = cpmp_check(a, dem, p, cap)
    if problems:
        logger.warning("capacitated_p_median: infeasible result: %s", "; ".join(problems))
    loads = np.bincount(a, weights=dem, minlength=n)[meds]
    return PMedianResult(
        medians=meds,
        assignment=a.astype(np.int64),
        objective=cpmp_objective(D, a),
        feasible=not problems,
        lower_bound=lower_bound,
        proven_optimal=proven,
        loads=loads,
        runtime_s=time.perf_counter() - t0,
        iterations=iterations,
    )


def _lloyd(D: np.ndarray, meds: np.ndarray, iters: int = 30) -> np.ndarray:
    """Uncapacitated alternation: nearest-median assignment, then 1-median of each cluster."""
    for _ in range(iters):
        a = meds[np.argmin(D[:, meds], axis=1)]
        a[meds] = meds
        new = np.unique(_one_medians(D, a, meds))
        if new.size != meds.size or np.array_equal(new, meds):
            break
        meds = new
    return meds


def _construct(D: np.ndarray, dem: np.ndarray, cap: float, p: int, rng: np.random.Generator,
               remaining, nearpt: np.ndarray, meds: np.ndarray | None = None) -> np.ndarray:
    """Given medians (default: k-means++ and Lloyd), a capacitated assignment, then local search."""
    if meds is None:
        meds = _lloyd(D, _kmeanspp(D, dem, p, rng))
    a = None
    for _ in range(20):
        a = _greedy_hint(D, dem, cap, meds)
        if a is None:
            a = _assign_fixed(D, dem, cap, meds, None, node_limit=50,
                              time_limit=max(0.1, remaining() / 4))
        if a is not None:
            break
        # capacity too tight for these medians: reseed
        meds = _kmeanspp(D, dem, p, rng)
    if a is None:
        raise InfeasibleError("no feasible assignment found for the capacity (bin packing too tight?)")
    return _local_search(D, dem, cap, a, nearpt)


_WORKER: dict = {}


def _worker_init(D: np.ndarray, dem: np.ndarray, cap: float) -> None:
    """Pool initializer: the distance matrix reaches forked workers without pickling."""
    _WORKER.update(D=D, dem=dem, cap=cap)


def _worker_solve(job: tuple) -> _MipOut:
    pts, q, cand, k_arcs, hint, node_limit, cap_s, deadline = job
    w = _WORKER
    tl = min(cap_s, deadline - time.perf_counter())
    if tl <= 0:
        return _MipOut(None, np.inf, -np.inf, False)
    return _solve_region(w["D"], w["dem"], w["cap"], pts, q, cand, k_arcs, hint,
                         node_limit=node_limit, time_limit=tl)


def _region(D: np.ndarray, a: np.ndarray, m: int, lim: int, max_q: int, k_arcs_sparse: int,
            taken: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The region seeded by median ``m``: it and its nearest medians not in ``taken``, up to
    ``lim`` points (at least two medians) and ``max_q`` medians; its points, the candidate
    medians and the number of arcs per point of its MIP."""
    n = a.size
    meds = np.unique(a)
    meds = meds[~taken[meds]]
    sizes = np.bincount(a, minlength=n)
    near = meds[np.argsort(D[m, meds], kind="stable")]
    region = [int(near[0])]
    total = int(sizes[near[0]])
    for mm in near[1:]:
        if len(region) >= max_q:
            break
        s = int(sizes[mm])
        if len(region) >= 2 and total + s > lim:
            break
        region.append(int(mm))
        total += s
    region_arr = np.array(sorted(region), dtype=np.int64)
    pts = np.flatnonzero(np.isin(a, region_arr))
    q = region_arr.size
    if pts.size <= 60:
        return region_arr, pts, pts, int(pts.size)
    if pts.size <= 12 * q:
        return region_arr, pts, pts, k_arcs_sparse
    per = max(6, min(25, int(np.ceil(60 / q))))
    cs = []
    for mm in region_arr:
        members = pts[a[pts] == mm]
        # best 1-median candidates of the cluster: smallest total distance to members
        cost = D[np.ix_(members, members)].sum(axis=0)
        cs.append(members[np.argsort(cost, kind="stable")[:per]])
        cs.append([mm])
    cand = np.unique(np.concatenate(cs))
    return region_arr, pts, cand, max(8, min(cand.size, 3 * per))


def _decompose(D: np.ndarray, dem: np.ndarray, cap: float, p: int, a: np.ndarray,
               rng: np.random.Generator, remaining, max_pts: int, max_q: int,
               nearpt: np.ndarray, k_arcs_sparse: int = 15, node_limit: int = 5,
               max_idle_sweeps: int = 3, region_time: float = 1.0, pool=None, n_jobs: int = 1):
    """Improve ``a`` by solving sub-CPMPs on groups of neighbouring clusters.

    A sweep covers every cluster once: a random uncovered median seeds a region (it and its
    nearest medians up to a size limit in points); all of the region's medians are then
    covered. The limit starts at ``MIN_REGION_POINTS`` (small MIPs, solved fast, so many of
    them per second) and doubles after each sweep that improves nothing, up to ``max_pts``;
    it drops back after an improving sweep. Sweeps repeat (with new random seeds, hence new
    region boundaries) until ``max_idle_sweeps`` in a row at ``max_pts`` improve nothing.

    With a process ``pool`` of ``n_jobs`` workers, regions are built in batches of
    ``4 * n_jobs`` disjoint regions of the same solution and solved in parallel; each
    improvement is kept (disjoint regions do not interact). Without, batches hold one region.
    """
    n = D.shape[0]
    cur = cpmp_objective(D, a)
    seen: dict[int, float] = {}  # region -> longest time cap it was solved with (inf: optimal)
    iterations = 0
    idle = 0
    levels = [max_pts]
    while levels[0] > MIN_REGION_POINTS:
        levels.insert(0, max(MIN_REGION_POINTS, levels[0] // 2))
    # per-region time cap: region_time for the smallest regions, 10x that for the largest
    top = max(1, len(levels) - 1)
    caps = [region_time * 10.0 ** ((i if len(levels) > 1 else 1) / top) for i in range(len(levels))]
    batch_size = 4 * n_jobs if pool is not None else 1
    level = 0
    for _sweep in range(1000):
        lim = levels[level]
        improved = False
        covered = np.zeros(n, dtype=np.bool_)
        order = rng.permutation(np.unique(a))
        idx = 0
        while idx < order.size:
            if remaining() <= 0:
                return a, iterations
            batch, keys = [], []
            taken = np.zeros(n, dtype=np.bool_)
            while idx < order.size and len(batch) < batch_size:
                m = int(order[idx])
                idx += 1
                if a[m] != m or covered[m] or taken[m]:  # closed, or already covered
                    continue
                region_arr, pts, cand, k_arcs = _region(D, a, m, lim, max_q, k_arcs_sparse, taken)
                covered[region_arr] = True
                key = hash((region_arr.tobytes(), pts.tobytes()))
                if seen.get(key, 0.0) >= caps[level]:  # solved already, with as much time
                    continue
                seen[key] = caps[level]
                keys.append(key)
                taken[region_arr] = True
                batch.append((pts, region_arr.size, cand, k_arcs, a[pts], node_limit, caps[level],
                              time.perf_counter() + remaining()))
            if not batch:
                continue
            t_r = time.perf_counter()
            results = list(pool.map(_worker_solve, batch)) if pool is not None else \
                [_solve_region(D, dem, cap, *job[:5], node_limit=node_limit,
                               time_limit=min(max(0.05, remaining()), caps[level])) for job in batch]
            iterations += len(batch)
            for (pts, q, cand, k_arcs, *_rest), key, res in zip(batch, keys, results):
                if res.optimal:  # no retry with a longer cap
                    seen[key] = np.inf
                before = float(D[pts, a[pts]].sum())
                logger.debug("region q=%d pts=%d cand=%d arcs<=%d: %.2fs opt=%s obj=%.2f before=%.2f",
                             q, pts.size, cand.size, k_arcs, time.perf_counter() - t_r, res.optimal,
                             res.objective, before)
                if res.assign is None:
                    continue
                if res.objective < before - 1e-9 * max(1.0, before) and np.unique(res.assign).size == q:
                    a = a.copy()
                    a[pts] = res.assign
                    cur -= before - res.objective
                    improved = True
        logger.debug("sweep %d (regions <= %d points): %.3f (%d sub-MIPs so far)", _sweep, lim,
                     cur, iterations)
        if improved:
            idle = 0
            level = 0
            a2 = _local_search(D, dem, cap, a, nearpt)
            if cpmp_objective(D, a2) < cpmp_objective(D, a) - _EPS:
                a = a2
                cur = cpmp_objective(D, a)
        elif level + 1 < len(levels):
            level += 1
        else:
            idle += 1
            if idle >= max_idle_sweeps:
                break
    return a, iterations
