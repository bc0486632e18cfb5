"""Districting: k contiguous districts, each with weight in [lower, upper], minimising the Hess moment of inertia.

This is the political-districting variant of gridengine's partition problem (Hess et al. 1965;
Validi, Buchanan & Lykhovyd 2022): every unit goes to exactly one of ``k`` districts, every
district is connected in the unit graph, its weight (population) lies in ``[lower, upper]``
(typically +-0.5 % of the mean, much tighter than :func:`~gridengine.partition.core.partition_units`
balances), and the objective is

    sum over districts D of  min over j in D of  sum over i in D of  w_i * (d_ij / 1000)^2,

with ``d_ij = round(hypot(x_i - x_j, y_i - y_j) / 1000)`` (whole kilometres), i.e. every district
is charged its weighted moment of inertia about its best *center unit*.

Method:

1. **Checks.** A unit heavier than ``upper``, a total weight outside ``[k lower, k upper]``, or
   graph components whose weights cannot be split into whole districts are reported at once
   (:class:`~gridengine.errors.InfeasibleError`, naming the unit or component).
2. **Small graphs** (``n <= exact_max_units``, the county instances), a portfolio:

   a. *spanning-tree search* (:func:`_tree_best`): plans drawn by cutting random spanning
      trees, one district at a time, at an edge that leaves the district within bounds (both
      sides of a tree cut are connected); the best of a few dozen, found in about a second even
      where the exact model finds no plan in a minute (±0.5 % bounds on 67-105 counties);
   a'. *exact CP-SAT model* (probe, ``exact_probe_s``): Hess variables ``x_ij`` (unit ``i`` in the
      district centred at unit ``j``; pairs whose lightest connecting path already weighs more
      than ``upper`` are never created), balance rows ``lower x_jj <= sum_i w_i x_ij <= upper x_jj``
      and an exact compact contiguity encoding (every non-center unit has a parent neighbour in
      its district at a smaller depth). It either finds a plan or *proves* that no contiguous
      plan exists;
   b. the Hess MIP *without* contiguity (HiGHS via :func:`scipy.optimize.milp`), whose optimum
      is often contiguous; its centers seed the next step;
   c. the *Hess alternation*: fixed centers, an exact balanced contiguous assignment (HiGHS, with
      lazy minimal vertex-separator cuts ``x_ij <= sum_{u in C} x_uj`` added while a district is
      disconnected), new centers = each district's best center unit, repeated;
   d. the exact CP-SAT model again, hinted with the best plan, for the remaining time (a proved
      optimum stops the search).
3. **Large graphs** (tracts): the spanning-tree search, then the Hess alternation from its plan's
   centers and from seeded weighted k-means starts, then a
   *neighbourhood* model (each district picks its center among its best few units, units within
   a band of hops of a district may join it; HiGHS with lazy separator cuts) while it improves.

Every returned plan is checked (contiguity, bounds). The HiGHS steps are deterministic; CP-SAT
runs with two workers and a wall-clock limit, so on small graphs where the exact model does not
finish, results can vary slightly between runs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import connected_components, dijkstra, shortest_path

from .._kernels import spanning_tree_order, subtree_sums
from ..errors import InfeasibleError

__all__ = ["DistrictingResult", "district_units", "hess_objective", "district_cost_matrix", "check_plan"]

logger = logging.getLogger(__name__)


@dataclass
class DistrictingResult:
    """Output of :func:`district_units`.

    Attributes
    ----------
    labels
        District (0..k-1) of every unit; ``None`` when no feasible plan was found.
    centers
        Center unit of each district (the unit minimising the district's moment of inertia).
    objective
        Hess objective of the plan (``inf`` when there is no plan).
    feasible
        Whether the plan is contiguous with every district weight in ``[lower, upper]``.
    diagnosis
        Why there is no plan (empty when feasible).
    proven_optimal
        Whether the plan was proved optimal (exact model, contiguous optimum).
    lower_bound
        A proven lower bound on the optimum, when known.
    elapsed_s
        Wall time of the call.
    notes
        Human-readable remarks about the search.
    """

    labels: np.ndarray | None
    centers: np.ndarray
    objective: float
    feasible: bool
    diagnosis: str = ""
    proven_optimal: bool = False
    lower_bound: float | None = None
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# objective and checks (public: the benchmark and tests use an independent copy of the formula)
# ----------------------------------------------------------------------------------------------

def district_cost_matrix(weights: np.ndarray, x: np.ndarray, y: np.ndarray, *, km: float = 1000.0) -> np.ndarray:
    """Integer cost ``w_i * d_ij**2`` with ``d_ij`` the distance in whole kilometres (rounded).

    Parameters
    ----------
    weights
        Integer-valued unit weights (populations).
    x, y
        Coordinates in metres.
    km
        Metres per distance unit (1000: whole kilometres).

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` int64 matrix; entry ``[i, j]`` is the cost of unit ``i`` served from center ``j``.
        Divide the sum by ``1e6`` to get the Hess objective.
    """
    w = np.rint(np.asarray(weights, dtype="float64")).astype(np.int64)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    d = np.rint(np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) / km).astype(np.int64)
    return w[:, None] * d * d


def hess_objective(labels: np.ndarray, cost: np.ndarray) -> tuple[float, np.ndarray]:
    """Hess objective of a plan and the best center of each district.

    Parameters
    ----------
    labels
        District of every unit (0..k-1).
    cost
        Matrix from :func:`district_cost_matrix`.

    Returns
    -------
    (float, numpy.ndarray)
        The objective (sum over districts of min over centers, divided by 1e6) and the center
        unit of each district.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    total = 0
    centers = np.full(k, -1, dtype=np.int64)
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 0:
            continue
        col = cost[np.ix_(idx, idx)].sum(axis=0)
        b = int(np.argmin(col))
        centers[c] = idx[b]
        total += int(col[b])
    return total / 1e6, centers


def check_plan(labels: np.ndarray, weights: np.ndarray, edges: tuple[np.ndarray, np.ndarray], k: int,
               lower: float, upper: float) -> list[str]:
    """Problems of a plan: wrong district count, weights outside bounds, disconnected districts.

    Returns
    -------
    list of str
        Empty when the plan is feasible.
    """
    labels = np.asarray(labels, dtype=np.int64)
    w = np.asarray(weights, dtype="float64")
    n = len(w)
    src = np.asarray(edges[0], dtype=np.int64)
    dst = np.asarray(edges[1], dtype=np.int64)
    out = []
    if len(labels) != n or labels.min() < 0 or labels.max() >= k:
        return [f"labels must be {n} values in 0..{k - 1}"]
    tot = np.bincount(labels, weights=w, minlength=k)
    for c in range(k):
        if not (lower - 1e-9 <= tot[c] <= upper + 1e-9):
            out.append(f"district {c} weighs {tot[c]:g}, outside [{lower:g}, {upper:g}]")
    pieces = _pieces(labels, src, dst, n)
    for c in range(k):
        if pieces[c] != 1:
            out.append(f"district {c} has {pieces[c]} connected pieces")
    return out


def _pieces(labels: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    same = labels[src] == labels[dst]
    g = sp.csr_matrix((np.ones(int(same.sum())), (src[same], dst[same])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    k = int(labels.max()) + 1
    pairs = np.unique(np.c_[labels, comp], axis=0)
    return np.bincount(pairs[:, 0], minlength=k)


# ----------------------------------------------------------------------------------------------
# the Hess MIP with lazy contiguity cuts
# ----------------------------------------------------------------------------------------------

class _Inst:
    """Arrays shared by every model of one call."""

    def __init__(self, w: np.ndarray, x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray,
                 k: int, lower: float, upper: float):
        self.n = n = len(w)
        self.w = w
        self.x, self.y = x, y
        self.src, self.dst = src, dst
        self.k, self.lower, self.upper = k, lower, upper
        a = sp.csr_matrix((np.ones(2 * len(src)), (np.r_[src, dst], np.r_[dst, src])), shape=(n, n))
        a.sum_duplicates()
        a.data[:] = 1
        a.setdiag(0)
        a.eliminate_zeros()
        self.adj = a.tocsr()
        self.adj.sort_indices()
        self.cost = district_cost_matrix(w, x, y)
        self.costf = self.cost.astype("float64") / 1e6
        # lightest path weight from j to i, both ends included: pw[j, i]; computed lazily per center
        self._pw: dict[int, np.ndarray] = {}
        wt = sp.csr_matrix((w[self.adj.indices] + 1e-6, self.adj.indices, self.adj.indptr), shape=(n, n))
        self._wgraph = wt
        self._hops: np.ndarray | None = None

    def nbrs(self, u: int) -> np.ndarray:
        return self.adj.indices[self.adj.indptr[u]:self.adj.indptr[u + 1]]

    def path_weight(self, centers: np.ndarray) -> np.ndarray:
        """Lightest path weight from each center to each unit (rows follow ``centers``)."""
        miss = [int(j) for j in centers if int(j) not in self._pw]
        if miss:
            d = dijkstra(self._wgraph, directed=True, indices=miss)
            for r, j in enumerate(miss):
                self._pw[j] = d[r] + self.w[j]
        return np.array([self._pw[int(j)] for j in centers])

    def hops(self) -> np.ndarray:
        if self._hops is None:
            self._hops = shortest_path(self.adj, unweighted=True, directed=False)
        return self._hops


class _Model:
    """A Hess model over allowed (unit, center) pairs; ``groups`` of centers pick one center each
    (or ``groups is None``: any ``k`` centers)."""

    def __init__(self, inst: _Inst, centers: np.ndarray, allowed: np.ndarray, groups: list[np.ndarray] | None):
        # allowed: bool (n, len(centers)); allowed[j_unit, pos_of_j] must be True
        self.inst = inst
        self.centers = np.asarray(centers, dtype=np.int64)
        m = len(self.centers)
        n = inst.n
        allowed = allowed.copy()
        allowed[self.centers, np.arange(m)] = True
        self.col = np.full((n, m), -1, dtype=np.int64)
        ii, pp = np.nonzero(allowed)
        self.col[ii, pp] = np.arange(len(ii))
        self.I, self.P = ii, pp
        self.ncol = len(ii)
        self.groups = groups
        self.cuts: list[tuple[int, int, np.ndarray]] = []  # (i, pos, separator units)
        self.cut_keys: set[tuple[int, int, bytes]] = set()

    def add_cut(self, i: int, pos: int, sep: np.ndarray) -> bool:
        key = (i, pos, np.sort(sep).tobytes())
        if key in self.cut_keys:
            return False
        self.cut_keys.add(key)
        self.cuts.append((i, pos, sep))
        return True

    def solve(self, time_limit: float, gap: float = 1e-6, zero_objective: bool = False
              ) -> tuple[str, np.ndarray | None, float]:
        inst = self.inst
        n, m = inst.n, len(self.centers)
        iu, P, col = self.I, self.P, self.col
        J = self.centers[P]
        ncol = self.ncol
        rows, cols, vals = [], [], []
        lo, hi = [], []
        r = 0
        # each unit in exactly one district
        rows.append(iu)
        cols.append(np.arange(ncol))
        vals.append(np.ones(ncol))
        lo.append(np.ones(n))
        hi.append(np.ones(n))
        r = n
        # x_ij <= x_jj
        off = iu != J
        nl = int(off.sum())
        cc = col[J[off], P[off]]
        rows += [r + np.arange(nl), r + np.arange(nl)]
        cols += [np.flatnonzero(off), cc]
        vals += [np.ones(nl), -np.ones(nl)]
        lo.append(np.full(nl, -np.inf))
        hi.append(np.zeros(nl))
        r += nl
        # balance: lower x_jj <= sum_i w_i x_ij <= upper x_jj
        wv = inst.w[iu].astype("float64")
        diag = col[self.centers, np.arange(m)]
        for bound, sign in ((inst.upper, 1), (inst.lower, -1)):
            rows += [r + P, r + np.arange(m)]
            cols += [np.arange(ncol), diag]
            vals += [sign * wv, -sign * bound * np.ones(m)]
            lo.append(np.full(m, -np.inf))
            hi.append(np.zeros(m))
            r += m
        # centers
        if self.groups is None:
            rows.append(np.full(m, r))
            cols.append(diag)
            vals.append(np.ones(m))
            lo.append(np.array([float(inst.k)]))
            hi.append(np.array([float(inst.k)]))
            r += 1
        else:
            for g in self.groups:
                rows.append(np.full(len(g), r))
                cols.append(diag[g])
                vals.append(np.ones(len(g)))
                lo.append(np.ones(1))
                hi.append(np.ones(1))
                r += 1
        # contiguity cuts: x_ij - sum_{u in sep} x_uj <= 0
        for i, pos, sep in self.cuts:
            cs = col[sep, pos]
            cs = cs[cs >= 0]
            rows.append(np.full(1 + len(cs), r))
            cols.append(np.r_[col[i, pos], cs])
            vals.append(np.r_[1.0, -np.ones(len(cs))])
            lo.append(np.array([-np.inf]))
            hi.append(np.zeros(1))
            r += 1
        a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, ncol))
        c = np.zeros(ncol) if zero_objective else inst.costf[iu, J]
        res = milp(c, integrality=np.ones(ncol), bounds=Bounds(0, 1),
                   constraints=LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)),
                   options={"time_limit": max(0.5, time_limit), "mip_rel_gap": gap})
        if res.x is None:
            return ("infeasible" if res.status == 2 else "timeout"), None, -math.inf
        xs = res.x > 0.5
        owner = np.full(n, -1, dtype=np.int64)
        owner[iu[xs]] = P[xs]
        bound = getattr(res, "mip_dual_bound", None)
        status = "optimal" if res.status == 0 else "feasible"
        return status, owner, (float(bound) if bound is not None else -math.inf)

    def separate(self, owner: np.ndarray, all_centers: bool = True) -> int:
        """Add separator cuts for every piece of a district that misses its center; returns #cuts.

        A piece ``S`` (connected, not holding its district's center) yields, for every candidate
        center ``q`` outside ``S`` and its neighbourhood ``N(S)``, and every ``i`` in ``S``, the cut
        ``x_iq <= sum of x_uq over u in N(S) next to q's side``: valid for every contiguous plan."""
        inst = self.inst
        n = inst.n
        src, dst = inst.src, inst.dst
        same = owner[src] == owner[dst]
        g = sp.csr_matrix((np.ones(int(same.sum())), (src[same], dst[same])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        added = 0
        adj = inst.adj
        m = len(self.centers)
        for pos in np.unique(owner).tolist():
            j = int(self.centers[pos])
            members = np.flatnonzero(owner == pos)
            bad = members[comp[members] != comp[j]]
            for piece in np.unique(comp[bad]).tolist():
                s_units = bad[comp[bad] == piece]
                in_s = np.zeros(n, bool)
                in_s[s_units] = True
                ns = np.zeros(n, bool)
                ns[adj[s_units].indices] = True
                ns &= ~in_s
                keep = ~ns
                ek = keep[src] & keep[dst]
                h = sp.csr_matrix((np.ones(int(ek.sum())), (src[ek], dst[ek])), shape=(n, n))
                _, c2 = connected_components(h, directed=False)
                c2[ns] = -1
                targets = range(m) if all_centers else [pos]
                seps: dict[int, np.ndarray] = {}
                for q in targets:
                    jq = int(self.centers[q])
                    if in_s[jq] or ns[jq]:
                        continue
                    rc = int(c2[jq])
                    if rc not in seps:
                        rj = c2 == rc
                        near_r = np.zeros(n, bool)
                        near_r[adj[np.flatnonzero(rj)].indices] = True
                        seps[rc] = np.flatnonzero(ns & near_r)
                    sep = seps[rc]
                    for i in s_units.tolist():
                        if self.col[i, q] >= 0:
                            added += self.add_cut(int(i), q, sep)
        return added

    def solve_contiguous(self, deadline: float, max_rounds: int = 400, gap: float = 1e-6
                         ) -> tuple[str, np.ndarray | None, float, int]:
        """Cut loop. Returns (status, owner, bound, rounds); status in
        optimal / feasible-noncontig / infeasible / timeout."""
        bound = -math.inf
        for rnd in range(max_rounds):
            left = deadline - time.perf_counter()
            if left <= 0.05:
                return "timeout", None, bound, rnd
            status, owner, b = self.solve(left, gap=gap)
            if status == "infeasible":
                return "infeasible", None, bound, rnd
            if owner is None:
                return "timeout", None, bound, rnd
            if status == "optimal" and gap < 1e-3:
                bound = max(bound, b)
            if self.separate(owner) == 0:
                return ("optimal" if status == "optimal" and gap < 1e-3 else "feasible"), owner, bound, rnd + 1
        return "timeout", None, bound, max_rounds


# ----------------------------------------------------------------------------------------------
# heuristic pieces
# ----------------------------------------------------------------------------------------------

def _seed_centers(inst: _Inst, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Weighted k-means++ then Lloyd on coordinates, snapped to distinct units."""
    k, x, y, w = inst.k, inst.x, inst.y, inst.w.astype("float64") + 1e-9
    pts = np.c_[x, y]
    first = rng.choice(inst.n, p=w / w.sum())
    cen = [pts[first]]
    for _ in range(1, k):
        d2 = np.min(((pts[:, None, :] - np.array(cen)[None]) ** 2).sum(-1), axis=1) * w
        cen.append(pts[rng.choice(inst.n, p=d2 / d2.sum())])
    cen = np.array(cen)
    for _ in range(iters):
        lab = np.argmin(((pts[:, None, :] - cen[None]) ** 2).sum(-1), axis=1)
        new = np.array([np.average(pts[lab == c], axis=0, weights=w[lab == c]) if (lab == c).any() else cen[c]
                        for c in range(k)])
        if np.allclose(new, cen):
            break
        cen = new
    out: list[int] = []
    for c in range(k):
        order = np.argsort(((pts - cen[c]) ** 2).sum(-1))
        out.append(int(next(u for u in order.tolist() if u not in out)))
    return np.array(out, dtype=np.int64)


def _tree_plan(inst: _Inst, rng: np.random.Generator, deadline: float, max_trees: int = 2000) -> np.ndarray | None:
    """A contiguous plan within bounds by random spanning-tree cuts (recursive tree partition).

    Districts are peeled one at a time: a random spanning tree of the units left (random edge
    weights, random root) is searched for an edge whose cut leaves one side weighing within
    ``[lower, upper]`` and the other within the bounds of the districts still to draw; one such
    edge is taken at random. Both sides of a tree cut are connected. A peel that finds no edge
    in ``max_trees`` trees starts the plan over. Fast and often successful where the exact
    models struggle to find a first plan under tight (±0.5 %) bounds. Returns labels or None.
    """
    n, k, lo, hi = inst.n, inst.k, inst.lower, inst.upper
    w = inst.w.astype("float64")
    coo = sp.triu(inst.adj, k=1).tocoo()
    a0, b0 = coo.row.astype(np.int64), coo.col.astype(np.int64)
    while time.perf_counter() < deadline:
        labels = np.full(n, -1, dtype=np.int64)
        units = np.arange(n)
        a, b = a0, b0
        ok_plan = True
        for d in range(k - 1):
            m = len(units)
            wu = w[units]
            tot = float(wu.sum())
            left = k - d - 1  # districts still to draw after this one
            mask = None
            for _ in range(max_trees):
                order, pred = spanning_tree_order(m, a, b, rng.random(len(a)), int(rng.integers(m)))
                if len(order) != m:
                    return None
                sw, sn = subtree_sums(order, pred, wu)
                cand = order[1:]
                sub = sw[cand]
                rest = tot - sub
                peel_sub = (sub >= lo) & (sub <= hi) & (rest >= left * lo) & (rest <= left * hi)
                peel_rest = (rest >= lo) & (rest <= hi) & (sub >= left * lo) & (sub <= left * hi)
                good = np.flatnonzero(peel_sub | peel_rest)
                if len(good) == 0:
                    continue
                i = int(good[rng.integers(len(good))])
                v0 = int(cand[i])
                start = i + 1  # cand = order[1:]: the subtree of v0 is the run of the preorder from it
                inside = np.zeros(m, dtype=bool)
                inside[order[start:start + int(sn[v0])]] = True
                mask = inside if peel_sub[i] else ~inside  # the district peeled off
                break
            if mask is None:
                ok_plan = False
                break
            labels[units[mask]] = d
            keep = ~mask
            newpos = np.cumsum(keep) - 1
            e = keep[a] & keep[b]
            a, b = newpos[a[e]], newpos[b[e]]
            units = units[keep]
            if time.perf_counter() > deadline:
                ok_plan = False
                break
        if ok_plan:
            labels[units] = k - 1
            if not check_plan(labels, inst.w, (inst.src, inst.dst), k, lo, hi):
                return labels
    return None


def _tree_best(inst: _Inst, seed: int, deadline: float, n_plans: int) -> np.ndarray | None:
    """The best (Hess objective) of up to ``n_plans`` plans of :func:`_tree_plan`, until ``deadline``."""
    rng = np.random.default_rng([seed, 7])  # its own stream: the other steps draw the same numbers as before
    best = None
    for _ in range(n_plans):
        lab = _tree_plan(inst, rng, deadline)
        if lab is None:
            break
        obj = hess_objective(lab, inst.cost)[0]
        if best is None or obj < best[0]:
            best = (obj, lab)
        if time.perf_counter() > deadline:
            break
    return None if best is None else best[1]


#: Spanning-tree plans drawn per call (:func:`_tree_best`), and the time they may take.
TREE_PLANS = 40
TREE_SEARCH_S = 4.0


def _assign(inst: _Inst, centers: np.ndarray, deadline: float) -> np.ndarray | None:
    """Exact balanced contiguous assignment to fixed centers (labels follow ``centers``)."""
    pw = inst.path_weight(centers)  # (k, n)
    allowed = (pw <= inst.upper + 1e-6).T
    mdl = _Model(inst, centers, allowed, [np.array([c]) for c in range(len(centers))])
    status, owner, _, _ = mdl.solve_contiguous(deadline, gap=1e-4)
    return owner if status in ("optimal", "feasible") else None


def _alternate(inst: _Inst, centers: np.ndarray, deadline: float, max_iter: int = 12):
    best = None
    seen = set()
    for _ in range(max_iter):
        key = tuple(sorted(centers.tolist()))
        if key in seen:
            break
        seen.add(key)
        lab = _assign(inst, centers, deadline)
        if lab is None:
            break
        obj, cen = hess_objective(lab, inst.cost)
        if best is None or obj < best[0] - 1e-9:
            best = (obj, lab, cen)
        centers = cen
        if time.perf_counter() > deadline:
            break
    return best


def _alternate_labels(inst: _Inst, centers: np.ndarray, deadline: float) -> np.ndarray | None:
    r = _alternate(inst, centers, deadline)
    return None if r is None else r[1]


def _neighbourhood(inst: _Inst, labels: np.ndarray, n_cand: int, band: int, deadline: float):
    """Each district picks its center among its ``n_cand`` best units; units within ``band``
    hops of a district may join it."""
    k = inst.k
    hops = inst.hops()
    centers, groups = [], []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        col = inst.cost[np.ix_(idx, idx)].sum(axis=0)
        best = idx[np.argsort(col, kind="stable")[:n_cand]]
        groups.append(np.arange(len(centers), len(centers) + len(best)))
        centers.extend(best.tolist())
    centers = np.array(centers, dtype=np.int64)
    dist_to = np.stack([hops[:, labels == c].min(axis=1) for c in range(k)], axis=1)  # (n, k)
    grp_of = np.concatenate([np.full(len(g), c) for c, g in enumerate(groups)])
    allowed = dist_to[:, grp_of] <= band
    allowed &= (inst.path_weight(centers) <= inst.upper + 1e-6).T
    mdl = _Model(inst, centers, allowed, groups)
    # the current plan's own rows are always allowed, so the model is feasible
    status, owner, _, _ = mdl.solve_contiguous(deadline, gap=1e-4)
    if owner is None:
        return None
    lab = grp_of[owner]
    return lab


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------

def district_units(
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    k: int,
    lower: float,
    upper: float,
    *,
    seed: int = 0,
    time_limit: float = 100.0,
    feasibility_time_limit: float = 9.0,
    exact_probe_s: float = 9.0,
    hess_mip_s: float = 40.0,
    objective: str = "hess",
    exact_max_units: int = 160,
    n_starts: int = 3,
    unit_names: list[str] | None = None,
) -> DistrictingResult:
    """Split units into ``k`` contiguous districts with weights in ``[lower, upper]``, minimising the
    Hess moment of inertia.

    Parameters
    ----------
    weights
        Weight (population) of each unit; integer values (costs are computed exactly in integers).
    x, y
        Unit coordinates in metres (a planar projection); distances are rounded to whole km.
    edges
        Adjacency as two index arrays (i, j); each undirected edge once or twice.
    k
        Number of districts.
    lower, upper
        Bounds on every district's weight.
    seed
        Seed of the heuristic starts (results are deterministic for a seed).
    time_limit
        Safety cap on the whole search, in seconds.
    feasibility_time_limit
        If no contiguous plan within bounds is found (or proved impossible) within this many
        seconds, the search stops with a diagnosis instead of running to ``time_limit``.
    objective
        Only ``"hess"`` is supported.
    exact_probe_s
        Time given to the exact model's first attempt (a plan or a proof of infeasibility).
    hess_mip_s
        Time cap of the Hess MIP without contiguity (small graphs).
    exact_max_units
        Graphs with at most this many units use the full exact model (every unit a candidate
        center); larger graphs use the heuristic plus neighbourhood models.
    n_starts
        Seeded starts of the Hess alternation (large graphs).
    unit_names
        How to name a unit in messages; default ``"unit i"``.

    Returns
    -------
    DistrictingResult
        ``feasible`` is ``False`` (with ``labels=None`` and a ``diagnosis``) only when no plan was
        found in the time allowed and infeasibility could not be proved.

    Raises
    ------
    InfeasibleError
        When the instance is proved infeasible: a unit heavier than ``upper``; total weight
        outside ``[k lower, k upper]``; graph components that cannot hold whole districts; or
        the exact model shows that no contiguous plan within bounds exists.
    """
    t0 = time.perf_counter()
    if objective != "hess":
        raise ValueError(f"objective must be 'hess', got {objective!r}")
    w = np.asarray(weights, dtype="float64")
    n = len(w)
    if n == 0:
        raise InfeasibleError("nothing to district: no units")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise InfeasibleError("unit weights must be finite and non-negative")
    if k < 1 or k > n:
        raise InfeasibleError(f"k = {k} districts but {n} units")
    if not lower <= upper:
        raise InfeasibleError(f"lower bound {lower:g} above upper bound {upper:g}")
    src = np.asarray(edges[0], dtype=np.int64)
    dst = np.asarray(edges[1], dtype=np.int64)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")

    def name(i: int) -> str:
        return unit_names[i] if unit_names is not None else f"unit {i}"

    heavy = np.flatnonzero(w > upper + 1e-9)
    if len(heavy):
        i = int(heavy[np.argmax(w[heavy])])
        raise InfeasibleError(
            f"overtly infeasible: {name(i)} has weight {w[i]:g}, above the district upper bound {upper:g} "
            f"({len(heavy)} unit(s) above it); a unit cannot be split between districts")
    total = float(w.sum())
    if not (k * lower - 1e-9 <= total <= k * upper + 1e-9):
        raise InfeasibleError(
            f"total weight {total:g} cannot make {k} districts within [{lower:g}, {upper:g}] "
            f"(needs between {k * lower:g} and {k * upper:g})")
    inst = _Inst(w, x, y, src, dst, k, float(lower), float(upper))
    _, comp = connected_components(inst.adj, directed=False)
    ncomp = int(comp.max()) + 1
    if ncomp > 1:
        cw = np.bincount(comp, weights=w)
        opts = [list(range(math.ceil(c / upper - 1e-12), math.floor(c / lower + 1e-12) + 1)) if lower > 0
                else list(range(0, k + 1)) for c in cw]
        reach = {0}
        for o in opts:
            reach = {a + b for a in reach for b in o if a + b <= k}
        if k not in reach:
            bad = [a for a in range(ncomp) if not opts[a]]
            why = (f"component {bad[0]} (weight {cw[bad[0]]:g}, {int((comp == bad[0]).sum())} units) cannot hold "
                   "a whole number of districts" if bad else "the components' weights cannot be split into "
                   f"exactly {k} districts")
            raise InfeasibleError(f"no contiguous plan: the unit graph has {ncomp} disconnected components and {why}")
    deadline = t0 + time_limit
    feas_deadline = t0 + min(time_limit, feasibility_time_limit)
    notes: list[str] = []

    def done(labels, proven=False, bound=None) -> DistrictingResult:
        obj, cen = hess_objective(labels, inst.cost)
        probs = check_plan(labels, w, (src, dst), k, lower, upper)
        if probs:  # pragma: no cover - every returned plan is checked
            raise RuntimeError("internal error: districting plan fails its checks: " + "; ".join(probs))
        return DistrictingResult(labels=np.asarray(labels, dtype=np.int64), centers=cen, objective=obj, feasible=True,
                                 proven_optimal=proven, lower_bound=bound, elapsed_s=time.perf_counter() - t0,
                                 notes=notes)

    if k == 1:
        if ncomp > 1:  # pragma: no cover - caught above (a component with no district)
            raise InfeasibleError("no contiguous plan: one district but the unit graph is disconnected")
        lab = np.zeros(n, dtype=np.int64)
        res = done(lab, proven=True)
        res.lower_bound = res.objective
        return res

    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray] | None = None

    def offer(lab: np.ndarray | None, what: str) -> None:
        nonlocal best
        if lab is None:
            return
        lab = np.unique(lab, return_inverse=True)[1]
        if check_plan(lab, w, (src, dst), k, lower, upper):
            return
        obj = hess_objective(lab, inst.cost)[0]
        if best is None or obj < best[0] - 1e-9:
            notes.append(f"{what}: objective {obj:.2f}")
            best = (obj, lab)

    def not_found() -> DistrictingResult:
        return DistrictingResult(
            labels=None, centers=np.zeros(0, dtype=np.int64), objective=math.inf, feasible=False,
            diagnosis=(f"no contiguous plan within [{lower:g}, {upper:g}] found in "
                       f"{time.perf_counter() - t0:.1f} s (not proved infeasible)"),
            elapsed_s=time.perf_counter() - t0, notes=notes)

    if n <= exact_max_units:
        # 1. random spanning-tree cuts: a first plan in about a second where the exact model finds
        # none under tight bounds (and a good hint for it in step 4)
        offer(_tree_best(inst, seed, min(feas_deadline, time.perf_counter() + TREE_SEARCH_S), TREE_PLANS),
              "spanning-tree search")
        # 1b. exact CP-SAT model: a first plan, or a proof that none exists
        status, lab, _ = _cpsat_exact(inst, max(min(feas_deadline, t0 + exact_probe_s), time.perf_counter() + 1.0),
                                      deadline, seed=seed, objective_first=True, first_only=True)
        notes.append(f"exact model probe: {status}")
        if status == "infeasible":
            raise InfeasibleError(
                f"no contiguous plan: no {k} contiguous districts with weights in [{lower:g}, {upper:g}] exist "
                f"(proved by the exact model in {time.perf_counter() - t0:.1f} s)")
        offer(lab, "exact model probe")
        if best is None and time.perf_counter() >= feas_deadline:
            return not_found()
        # 2. the Hess MIP without contiguity (HiGHS): often contiguous; else its centers seed step 3
        starts = [] if best is None else [hess_objective(best[1], inst.cost)[1]]
        mdl = _Model(inst, np.arange(n), (inst.path_weight(np.arange(n)) <= upper + 1e-6).T, None)
        left = (deadline if best is not None else feas_deadline) - time.perf_counter()
        status, owner, _ = mdl.solve(min(left, hess_mip_s), gap=1e-3)
        notes.append(f"Hess MIP without contiguity: {status}")
        if status == "infeasible":
            raise InfeasibleError(
                f"no plan: even without contiguity, no {k} districts with weights in [{lower:g}, {upper:g}] "
                "can be formed from connected pieces of the graph (proved by the Hess MIP)")
        if owner is not None:
            offer(owner, "Hess MIP without contiguity")
            starts.append(mdl.centers[np.unique(owner)])
        # 3. Hess alternation (fixed centers, exact balanced contiguous assignment) from seeded starts
        for s_i in range(n_starts):
            if best is not None and len(starts) >= n_starts:
                break
            starts.append(_seed_centers(inst, rng))
        for s_i, cen in enumerate(starts):
            if time.perf_counter() > (deadline if best is not None else feas_deadline):
                break
            offer(_alternate_labels(inst, cen, deadline if best is not None else feas_deadline), f"alternation {s_i}")
        while best is None and time.perf_counter() < feas_deadline:
            offer(_alternate_labels(inst, _seed_centers(inst, rng), feas_deadline), "alternation (extra start)")
        if best is None:
            return not_found()
        # 4. the exact model again, from the best plan, for the remaining time
        if time.perf_counter() < deadline - 1.0:
            status, lab, bound = _cpsat_exact(inst, deadline, deadline, seed=seed, hint=best[1])
            notes.append(f"exact model: {status}")
            if lab is not None:
                lab = np.unique(lab, return_inverse=True)[1]
                obj = hess_objective(lab, inst.cost)[0]
                offer(lab, "exact model")
                if status == "optimal" and obj <= best[0] + 1e-9:
                    return done(best[1], proven=True, bound=best[0])
        return done(best[1])

    # heuristic: spanning-tree plans, then the Hess alternation from their centers and seeded starts
    offer(_tree_best(inst, seed, min(deadline, time.perf_counter() + TREE_SEARCH_S), TREE_PLANS),
          "spanning-tree search")
    if best is not None:
        offer(_alternate_labels(inst, hess_objective(best[1], inst.cost)[1], deadline), "alternation from the tree plan")
    for s_i in range(n_starts):
        if time.perf_counter() > deadline or (best is None and time.perf_counter() > feas_deadline):
            break
        offer(_alternate_labels(inst, _seed_centers(inst, rng), deadline), f"start {s_i}")
    if best is None:
        return not_found()
    # neighbourhood models while they improve
    for n_cand, band in ((6, 2), (10, 3), (10, 4)):
        while time.perf_counter() < deadline:
            lab = _neighbourhood(inst, best[1], n_cand, band, deadline)
            if lab is None:
                break
            obj = hess_objective(lab, inst.cost)[0]
            if obj < best[0] - 1e-9:
                notes.append(f"neighbourhood ({n_cand} centers, {band} hops): {best[0]:.2f} -> {obj:.2f}")
                best = (obj, lab)
            else:
                break
    return done(best[1])


def _cpsat_exact(inst: _Inst, feas_deadline: float, deadline: float, workers: int = 2, seed: int = 0,
                 order: bool = False, hint: np.ndarray | None = None, objective_first: bool = False,
                 first_only: bool = False):
    """Full Hess model with an exact compact contiguity encoding, solved by CP-SAT.

    Every non-center unit has a parent neighbour in the same district at a smaller depth, so every
    district is a tree hanging from its center. Returns (status, labels, bound)."""
    from ortools.sat.python import cp_model

    n, w, k = inst.n, inst.w.astype(np.int64), inst.k
    pw = inst.path_weight(np.arange(n))  # pw[j, i]
    allowed = pw <= inst.upper + 1e-6
    m = cp_model.CpModel()
    xv: dict[tuple[int, int], object] = {}
    by_unit: list[list[tuple[int, object]]] = [[] for _ in range(n)]
    by_center: list[list[tuple[int, object]]] = [[] for _ in range(n)]
    for j in range(n):
        for i in np.flatnonzero(allowed[j]).tolist():
            v = m.NewBoolVar("")
            xv[i, j] = v
            by_unit[i].append((j, v))
            by_center[j].append((i, v))
    lab = [m.NewIntVarFromDomain(cp_model.Domain.FromValues([j for j, _ in by_unit[i]]), "") for i in range(n)]
    depth = [m.NewIntVar(0, n - 1, "") for i in range(n)]
    lo, hi = int(math.ceil(inst.lower - 1e-9)), int(math.floor(inst.upper + 1e-9))
    for i in range(n):
        m.AddExactlyOne([v for _, v in by_unit[i]])
        for j, v in by_unit[i]:
            m.Add(lab[i] == j).OnlyEnforceIf(v)
    for j in range(n):
        c = xv[j, j]
        for i, v in by_center[j]:
            if i != j:
                m.AddImplication(v, c)
        load = sum(int(w[i]) * v for i, v in by_center[j])
        m.Add(load <= hi * c)
        m.Add(load >= lo * c)
        m.Add(depth[j] == 0).OnlyEnforceIf(c)
    m.Add(sum(xv[j, j] for j in range(n)) == k)
    indptr, indices = inst.adj.indptr, inst.adj.indices
    if order:  # restriction: each unit has a neighbour strictly closer to its center in its district
        real = np.hypot(inst.x[:, None] - inst.x[None, :], inst.y[:, None] - inst.y[None, :])
        for (i, j), v in xv.items():
            if i == j:
                continue
            near = [xv[u, j] for u in indices[indptr[i]:indptr[i + 1]].tolist()
                    if (u, j) in xv and (real[u, j], u) < (real[i, j], i)]
            m.AddBoolOr(near + [v.Not()])
    for i in range(n):
        parents = []
        for u in indices[indptr[i]:indptr[i + 1]].tolist():
            a = m.NewBoolVar("")
            m.Add(lab[u] == lab[i]).OnlyEnforceIf(a)
            m.Add(depth[u] + 1 <= depth[i]).OnlyEnforceIf(a)
            parents.append(a)
        m.AddBoolOr(parents + [xv[i, i]])
    obj = sum(int(inst.cost[i, j]) * v for (i, j), v in xv.items())
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.max_time_in_seconds = max(0.1, feas_deadline - time.perf_counter())
    solver.parameters.stop_after_first_solution = hint is None
    if objective_first or hint is not None:
        m.Minimize(obj)
    if hint is not None:
        # labels -> center units of the hinted plan
        cen = hess_objective(np.unique(hint, return_inverse=True)[1], inst.cost)[1]
        hl = cen[np.unique(hint, return_inverse=True)[1]]
        for (i, j), v in xv.items():
            m.AddHint(v, int(hl[i] == j))
        for i in range(n):
            m.AddHint(lab[i], int(hl[i]))
    st = solver.Solve(m)
    if st == cp_model.INFEASIBLE:
        return "infeasible", None, None
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "timeout", None, None

    def labels_of() -> np.ndarray:
        return np.array([solver.Value(lab[i]) for i in range(n)], dtype=np.int64)

    if hint is not None:
        return ("optimal" if st == cp_model.OPTIMAL else "feasible"), labels_of(), solver.BestObjectiveBound() / 1e6
    first = labels_of()
    if first_only:
        return "feasible", first, None
    m.Minimize(obj)
    m.ClearHints()
    for (i, j), v in xv.items():
        m.AddHint(v, int(first[i] == j))
    solver.parameters.stop_after_first_solution = False
    solver.parameters.max_time_in_seconds = max(0.1, deadline - time.perf_counter())
    st = solver.Solve(m)
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ("optimal" if st == cp_model.OPTIMAL else "feasible"), labels_of(), solver.BestObjectiveBound() / 1e6
    return "feasible", first, None
