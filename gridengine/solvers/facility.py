"""Capacitated facility location: which candidate sites to open, and which site serves each demand point.

The core of :func:`gridengine.site_service_points` (``gridengine sites``): candidate sites apart from
the demand points, a fixed cost per open site (or exactly ``p`` sites), a capacity per site and
single-source assignment, minimising assignment cost plus fixed costs. A greedy start, a swap
search with exact assignments when every demand is equal, then a MIP (SCIP through OR-Tools,
single-threaded, with a node limit) warm-started from the best start. When the candidates are the
demand points themselves, with one capacity, no fixed costs and ``p`` given, the problem is a
capacitated p-median and goes to :func:`~gridengine.solvers.pmedian.capacitated_p_median`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp

from ..errors import InfeasibleError, SolverError
from .pmedian import capacitated_p_median

__all__ = ["FacilityLocationResult", "capacitated_facility_location"]

logger = logging.getLogger(__name__)

#: Facility location with equal demands: a swap search with exact assignments up to this many points.
SWAP_MAX_POINTS = 1500


@dataclass(frozen=True)
class FacilityLocationResult:
    """The solution of :func:`capacitated_facility_location`.

    Attributes
    ----------
    open
        Sorted indices (into the candidates) of the open sites.
    assignment
        For each demand point, the index of the candidate that serves it.
    objective
        Assignment cost plus the fixed costs of the open sites.
    assignment_cost
        The assignment part of ``objective``.
    fixed_cost
        The fixed-cost part of ``objective``.
    feasible
        True when every point is assigned to an open site, no site is over capacity, the
        sites that must open are open and, when ``p`` was given, exactly ``p`` sites are open.
    lower_bound
        A proven lower bound when the MIP had every arc (``None`` otherwise).
    proven_optimal
        True when ``lower_bound`` proves ``objective`` optimal (to the MIP's tolerance).
    method
        ``"cpmp"`` (the instance is a capacitated p-median problem and went to
        :func:`capacitated_p_median`) or ``"mip"``.
    runtime_s
        Wall-clock time of the call.
    """

    open: np.ndarray
    assignment: np.ndarray
    objective: float
    assignment_cost: float
    fixed_cost: float
    feasible: bool
    lower_bound: float | None
    proven_optimal: bool
    method: str
    runtime_s: float


def _cflp_check(cost: np.ndarray, dem: np.ndarray, cap: np.ndarray, a: np.ndarray, p: int | None,
                must: np.ndarray) -> list[str]:
    problems = []
    opened = np.unique(a)
    load = np.bincount(a, weights=dem, minlength=cap.size)
    if np.any(load > cap * (1 + 1e-9) + 1e-9):
        problems.append("a site is over capacity")
    if p is not None and opened.size > p:
        problems.append(f"{opened.size} sites used, at most {p} allowed")
    return problems


def _cflp_mip(cost: np.ndarray, dem: np.ndarray, cap: np.ndarray, fixed: np.ndarray, p: int | None,
              must: np.ndarray, k_arcs: int, hint: np.ndarray | None, node_limit: int,
              time_limit: float) -> tuple[np.ndarray | None, np.ndarray | None, float, bool]:
    """Single-source CFLP as one SCIP MIP, each point restricted to its ``k_arcs`` cheapest sites.

    Strong formulation (``x_ij <= y_j``), capacity rows ``sum_i q_i x_ij <= s_j y_j``, fixed
    costs on ``y``, ``sum y = p`` when ``p`` is given, ``y_j = 1`` for the sites in ``must``.
    Returns (open flags, assignment, bound, optimal) or ``(None, None, -inf, False)``.
    """
    n, m = cost.shape
    k = min(int(k_arcs), m)
    near = np.argsort(cost, axis=1, kind="stable")[:, :k] if k < m else np.broadcast_to(np.arange(m), (n, m))
    arcs = [set(map(int, near[i])) for i in range(n)]
    if hint is not None:
        for i in range(n):
            arcs[i].add(int(hint[i]))
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - OR-Tools is built with SCIP
        raise SolverError("OR-Tools has no SCIP backend")
    solver.SetNumThreads(1)
    inf = solver.infinity()
    used = sorted(set().union(*arcs) | set(np.flatnonzero(must).tolist()))
    y = {j: solver.BoolVar(f"y{j}") for j in used}
    obj = solver.Objective()
    for j in used:
        obj.SetCoefficient(y[j], float(fixed[j]))
        if must[j]:
            y[j].SetBounds(1.0, 1.0)
    x: list[dict[int, object]] = []
    cap_ct = {j: solver.Constraint(-inf, 0.0) for j in used}
    for j in used:
        cap_ct[j].SetCoefficient(y[j], -float(cap[j]))
    for i in range(n):
        row = {}
        ct = solver.Constraint(1.0, 1.0)
        for j in sorted(arcs[i]):
            v = solver.BoolVar("")
            row[j] = v
            ct.SetCoefficient(v, 1.0)
            obj.SetCoefficient(v, float(cost[i, j]))
            if dem[i]:
                cap_ct[j].SetCoefficient(v, float(dem[i]))
            lk = solver.Constraint(-inf, 0.0)
            lk.SetCoefficient(v, 1.0)
            lk.SetCoefficient(y[j], -1.0)
        x.append(row)
    if p is not None:
        ct = solver.Constraint(float(p), float(p))
        for j in used:
            ct.SetCoefficient(y[j], 1.0)
    obj.SetMinimization()
    if hint is not None:
        hv, hval = [], []
        hopen = set(int(v) for v in hint)
        for j in used:
            hv.append(y[j])
            hval.append(1.0 if j in hopen else 0.0)
        for i in range(n):
            for j, v in x[i].items():
                hv.append(v)
                hval.append(1.0 if j == int(hint[i]) else 0.0)
        solver.SetHint(hv, hval)
    solver.SetSolverSpecificParametersAsString(
        f"limits/nodes = {int(node_limit)}\nrandomization/randomseedshift = 0\n")
    solver.SetTimeLimit(int(max(0.05, time_limit) * 1000))
    status = solver.Solve()
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None, None, -np.inf, False
    a = np.empty(n, dtype=np.int64)
    for i in range(n):
        a[i] = max(x[i].items(), key=lambda kv: (kv[1].solution_value(), -kv[0]))[0]
    is_open = np.zeros(m, dtype=bool)
    for j in used:
        is_open[j] = y[j].solution_value() > 0.5
    complete = k >= m
    bound = float(solver.Objective().BestBound()) if complete else -np.inf
    return is_open, a, bound, complete and status == pywraplp.Solver.OPTIMAL


def _cflp_greedy(cost: np.ndarray, dem: np.ndarray, cap: np.ndarray, fixed: np.ndarray, p: int | None,
                 must: np.ndarray) -> np.ndarray | None:
    """A feasible start: open sites by cost per unit of capacity until they hold the demand,
    then assign points (largest regret first) to the cheapest open site with room."""
    n, m = cost.shape
    is_open = must.copy()
    # a site's "price": fixed cost plus the cost of serving its nearest points up to capacity
    order_pts = np.argsort(cost, axis=0, kind="stable")
    price = np.empty(m)
    for j in range(m):
        c = np.cumsum(dem[order_pts[:, j]])
        k = max(1, int(np.searchsorted(c, cap[j], side="right")))
        price[j] = (fixed[j] + cost[order_pts[:k, j], j].sum()) / max(1e-12, min(cap[j], c[k - 1]))
    target = p if p is not None else None
    for j in np.argsort(price, kind="stable"):
        if cap[is_open].sum() >= dem.sum() * 1.05 and (target is None or is_open.sum() >= target):
            break
        if target is not None and is_open.sum() >= target:
            break
        is_open[j] = True
    for _ in range(m):
        opened = np.flatnonzero(is_open)
        sub = cost[:, opened]
        srt = np.sort(sub, axis=1)
        regret = srt[:, 1] - srt[:, 0] if opened.size > 1 else np.zeros(n)
        load = np.zeros(m)
        a = np.full(n, -1, dtype=np.int64)
        ok = True
        for i in np.lexsort((-regret, -dem)):
            for jj in np.argsort(sub[i], kind="stable"):
                j = int(opened[jj])
                if load[j] + dem[i] <= cap[j] + 1e-9:
                    load[j] += dem[i]
                    a[i] = j
                    break
            else:
                ok = False
                break
        if ok:
            return a
        closed = np.flatnonzero(~is_open)
        if closed.size == 0 or (p is not None and is_open.sum() >= p):
            return None
        is_open[closed[np.argmin(price[closed])]] = True
    return None


def _unit_assign(C: np.ndarray, slots: np.ndarray, opened: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Exact assignment of equal-demand points to the open sites (``slots`` points per site)."""
    from scipy.optimize import linear_sum_assignment

    n = C.shape[0]
    cols = np.repeat(opened, np.minimum(slots[opened], n))
    if cols.size < n:
        return np.inf, None
    r, c = linear_sum_assignment(C[:, cols])
    a = np.empty(n, dtype=np.int64)
    a[r] = cols[c]
    return float(C[r, cols[c]].sum()), a


def _swap_search(C: np.ndarray, slots: np.ndarray, fixed: np.ndarray, p: int | None, must: np.ndarray,
                 start: np.ndarray, deadline: float, n_near: int = 12) -> np.ndarray | None:
    """Vertex substitution for equal demands: swap an open site for one of the closed sites most like
    it (and, without ``p``, close or open one), each move judged by the exact assignment; first
    improvement, until no move improves or the deadline passes. Returns the assignment."""
    n, m = C.shape
    is_open = np.zeros(m, dtype=bool)
    is_open[np.unique(start)] = True
    is_open |= must

    def value(mask: np.ndarray) -> tuple[float, np.ndarray | None]:
        ac, a = _unit_assign(C, slots, np.flatnonzero(mask))
        return ac + float(fixed[mask].sum()), a

    best, a_best = value(is_open)
    if a_best is None:
        return None
    # the closed sites most like each site: the smallest mean cost difference over the points
    scale = C / np.maximum(C.mean(axis=0, keepdims=True), 1e-12)
    like = np.empty((m, min(n_near, m - 1)), dtype=np.int64) if m > 1 else np.zeros((m, 0), dtype=np.int64)
    for j in range(m):
        d = np.abs(C - C[:, [j]]).mean(axis=0)
        d[j] = np.inf
        like[j] = np.argsort(d, kind="stable")[:like.shape[1]]
    del scale
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for j_out in np.flatnonzero(is_open & ~must):
            for j_in in like[j_out]:
                if is_open[j_in]:
                    continue
                trial = is_open.copy()
                trial[j_out], trial[j_in] = False, True
                v, a = value(trial)
                if v < best - 1e-9 * max(1.0, abs(best)):
                    best, a_best, is_open, improved = v, a, trial, True
                    break
            if time.perf_counter() >= deadline:
                break
        if p is None and time.perf_counter() < deadline:
            for j in range(m):  # close a site, or open one
                if must[j]:
                    continue
                trial = is_open.copy()
                trial[j] = not trial[j]
                if not trial.any():
                    continue
                v, a = value(trial)
                if v < best - 1e-9 * max(1.0, abs(best)):
                    best, a_best, is_open, improved = v, a, trial, True
    return a_best


def capacitated_facility_location(
    cost: np.ndarray,
    demands: np.ndarray,
    capacities: np.ndarray | float,
    *,
    fixed_costs: np.ndarray | float | None = None,
    p: int | None = None,
    must_open: np.ndarray | None = None,
    points_are_candidates: bool = False,
    time_limit: float = 60.0,
    seed: int = 0,
    k_arcs: int = 30,
    node_limit: int = 20000,
    n_jobs: int = 1,
) -> FacilityLocationResult:
    """Single-source capacitated facility location, with the CPMP as a special case.

    Open a set of candidate sites and assign every demand point to exactly one open site so that
    no site serves more than its capacity, minimising the assignment cost plus the fixed costs of
    the open sites (with ``p``, exactly ``p`` sites open).

    When the instance is a capacitated p-median problem (``points_are_candidates``, ``p`` given,
    one capacity for all, no fixed costs and no site that must open), it is solved by
    :func:`capacitated_p_median` on ``cost`` as its distance matrix (a median serves itself).
    Otherwise it is one MIP (SCIP, single-threaded, node limit, fixed seed): strong
    formulation, each point restricted to its ``k_arcs`` cheapest sites (all of them when there
    are fewer, which makes the bound valid and lets it prove optimality), warm-started from a
    greedy solution; the arcs double while the restricted MIP finds no solution.

    Parameters
    ----------
    cost
        (n, m) cost of serving point i from site j (all of i's demand).
    demands
        (n,) non-negative demands.
    capacities
        (m,) site capacities, or one value for all.
    fixed_costs
        (m,) cost of opening each site, or one value for all; default 0.
    p
        Exact number of open sites; ``None`` lets the fixed costs decide.
    must_open
        (m,) booleans: sites that must open (with ``p``, they count towards it).
    points_are_candidates
        True when ``n == m`` and site i sits at point i (as in the CPMP).
    time_limit
        Cap on the wall-clock time in seconds; when it binds the result may depend on machine speed.
    seed
        Seed of the randomised parts of the CPMP path.
    k_arcs
        Sites per point in the MIP.
    node_limit
        Branch-and-bound node limit of the MIP.
    n_jobs
        Processes for the CPMP path's decomposition.

    Returns
    -------
    FacilityLocationResult

    Raises
    ------
    InfeasibleError
        When the capacity of the sites allowed cannot hold the demand, or no feasible
        solution is found.
    ValueError
        For malformed input.
    """
    t0 = time.perf_counter()
    C = np.asarray(cost, dtype=float)
    if C.ndim != 2:
        raise ValueError("cost must be an (n, m) matrix")
    n, m = C.shape
    dem = np.asarray(demands, dtype=float).ravel()
    if dem.size != n:
        raise ValueError(f"demands must have {n} values, got {dem.size}")
    if np.any(~np.isfinite(dem)) or np.any(dem < 0) or np.any(~np.isfinite(C)):
        raise ValueError("demands and costs must be finite, demands non-negative")
    cap = np.broadcast_to(np.asarray(capacities, dtype=float), (m,)).astype(float)
    fixed = np.zeros(m) if fixed_costs is None else \
        np.broadcast_to(np.asarray(fixed_costs, dtype=float), (m,)).astype(float)
    must = np.zeros(m, dtype=bool) if must_open is None else np.asarray(must_open, dtype=bool).ravel()
    if must.size != m:
        raise ValueError(f"must_open must have {m} values")
    if p is not None:
        p = int(p)
        if p < 1 or p > m:
            raise InfeasibleError(f"p = {p} sites requested among {m} candidates")
        if must.sum() > p:
            raise InfeasibleError(f"{int(must.sum())} sites must open but p = {p}")
        if np.sort(cap)[::-1][:p].sum() + 1e-9 < dem.sum():
            raise InfeasibleError(f"the {p} largest sites hold {np.sort(cap)[::-1][:p].sum():g}, "
                                  f"less than the demand {dem.sum():g}")
    if cap.sum() + 1e-9 < dem.sum():
        raise InfeasibleError(f"all {m} sites hold {cap.sum():g}, less than the demand {dem.sum():g}")
    if dem.max(initial=0.0) > cap.max(initial=0.0) + 1e-9:
        raise InfeasibleError(f"a demand of {dem.max():g} exceeds every site's capacity")

    cpmp = (points_are_candidates and n == m and p is not None and np.all(cap == cap[0])
            and not np.any(fixed) and not must.any())
    res = None
    if cpmp:
        try:
            res = capacitated_p_median(None, dem, p, float(cap[0]), distances=C, time_limit=time_limit,
                                       seed=seed, n_jobs=n_jobs)
        except InfeasibleError as exc:  # its construction found no start: the general path below,
            logger.info("capacitated_facility_location: CPMP path gave up (%s); general path", exc)
            t0 = time.perf_counter()  # with a time budget of its own
    if res is not None:
        a = res.assignment.astype(np.int64)
        ac = float(C[np.arange(n), a].sum())
        return FacilityLocationResult(
            open=res.medians.astype(np.int64), assignment=a, objective=ac, assignment_cost=ac, fixed_cost=0.0,
            feasible=res.feasible, lower_bound=res.lower_bound, proven_optimal=res.proven_optimal,
            method="cpmp", runtime_s=time.perf_counter() - t0)

    hint = _cflp_greedy(C, dem, cap, fixed, p, must)
    if hint is not None and p is not None and np.unique(hint).size != p:
        hint = None  # a hint must use exactly p sites; let the MIP find its own
    equal = dem.size > 0 and np.all(dem == dem[0]) and dem[0] > 0 and n <= SWAP_MAX_POINTS
    if equal and hint is None and p is not None:  # a start with exactly p sites: the p largest
        start = np.sort(np.argsort(-cap, kind="stable")[:p])
        _, hint = _unit_assign(C, np.floor(cap / dem[0] + 1e-9).astype(np.int64), start)
    if equal and hint is not None:
        # equal demands (grids counting one specialist each): exact assignments inside a swap search
        better = _swap_search(C, np.floor(cap / dem[0] + 1e-9).astype(np.int64), fixed, p, must, hint,
                              deadline=t0 + 0.5 * time_limit)
        if better is not None:
            hint = better
    k = max(1, int(k_arcs))
    is_open = a = None
    bound, optimal = -np.inf, False
    while True:
        left = time_limit - (time.perf_counter() - t0)
        is_open, a, bound, optimal = _cflp_mip(C, dem, cap, fixed, p, must, k, hint, node_limit, max(0.1, left))
        if a is not None or k >= m or left <= 0:
            break
        k = min(m, 2 * k)
    if a is None:
        if hint is None:
            raise InfeasibleError("no feasible assignment of the points to the sites was found")
        a = hint
        is_open = np.zeros(m, dtype=bool)
        is_open[np.unique(a)] = True
        is_open |= must
    opened = np.flatnonzero(is_open | must)
    ac = float(C[np.arange(n), a].sum())
    fc = float(fixed[opened].sum())
    problems = _cflp_check(C, dem, cap, a, p, must)
    if p is not None and opened.size != p:
        problems.append(f"{opened.size} sites open, {p} required")
    if problems:
        logger.warning("capacitated_facility_location: %s", "; ".join(problems))
    return FacilityLocationResult(
        open=opened.astype(np.int64), assignment=a, objective=ac + fc, assignment_cost=ac, fixed_cost=fc,
        feasible=not problems, lower_bound=bound if np.isfinite(bound) else None, proven_optimal=bool(optimal),
        method="mip", runtime_s=time.perf_counter() - t0)
