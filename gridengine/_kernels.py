"""Compiled inner loops of the partitioner (numba).

Boundary-move refinement is sequential by nature (each move changes the loads and
centres the next one is judged by, and needs a connectivity check), so it cannot be
vectorised with numpy; numba compiles it to machine code with deterministic,
single-threaded semantics. Compiled functions are cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["subtree_sums", "refine_moves", "spanning_tree_order", "smooth_empty", "connected_without"]


@njit(cache=True)
def subtree_sums(order, pred, w):
    """Weight and size of every subtree of a rooted tree given in DFS (or BFS) order."""
    n = order.shape[0]
    sw = w.copy()
    sn = np.ones(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        v = order[i]
        p = pred[v]
        if p >= 0:
            sw[p] += sw[v]
            sn[p] += sn[v]
    return sw, sn


@njit(cache=True)
def _find(parent, u):
    while parent[u] != u:
        parent[u] = parent[parent[u]]
        u = parent[u]
    return u


@njit(cache=True)
def spanning_tree_order(n, a, b, ew, root):
    """Minimum spanning tree of the graph (edges ``a``-``b`` with weights ``ew``), in DFS preorder.

    Kruskal's algorithm (edges by weight, stable on ties, union-find), then an iterative
    depth-first walk from ``root``. Returns ``(order, pred)``: the units in preorder (every
    subtree is one contiguous run of it) and each unit's parent (-1 at the root). ``order`` is
    shorter than ``n`` when the graph is not connected.
    """
    parent = np.arange(n)
    ta = np.empty(max(n - 1, 0), dtype=np.int64)
    tb = np.empty(max(n - 1, 0), dtype=np.int64)
    cnt = 0
    if n > 1:
        for e in np.argsort(ew, kind="mergesort"):
            ru = _find(parent, a[e])
            rv = _find(parent, b[e])
            if ru != rv:
                parent[ru] = rv
                ta[cnt] = a[e]
                tb[cnt] = b[e]
                cnt += 1
                if cnt == n - 1:
                    break
    deg = np.zeros(n + 1, dtype=np.int64)
    for i in range(cnt):
        deg[ta[i] + 1] += 1
        deg[tb[i] + 1] += 1
    indptr = np.cumsum(deg)
    fill = indptr[:-1].copy()
    nbr = np.empty(2 * cnt, dtype=np.int64)
    for i in range(cnt):
        nbr[fill[ta[i]]] = tb[i]
        fill[ta[i]] += 1
        nbr[fill[tb[i]]] = ta[i]
        fill[tb[i]] += 1
    pred = np.full(n, -9999, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.bool_)
    top = 0
    stack[0] = root
    seen[root] = True
    pred[root] = -1
    top = 1
    m = 0
    while top > 0:
        top -= 1
        v = stack[top]
        order[m] = v
        m += 1
        for j in range(indptr[v + 1] - 1, indptr[v] - 1, -1):
            t = nbr[j]
            if not seen[t]:
                seen[t] = True
                pred[t] = v
                stack[top] = t
                top += 1
    return order[:m], pred


@njit(cache=True)
def _excess(v, lo, hi, upper):
    if v > upper + 1e-9:
        return (v - lo) + 10.0 * (v - upper) + (hi - lo) + 1.0
    if v > hi:
        return v - hi
    if v < lo:
        return lo - v
    return 0.0


@njit(cache=True)
def connected_without(u, g, labels, indptr, indices, stamp, token, queue):
    """Whether grid ``g`` stays connected when unit ``u`` leaves it (exact BFS with early exit).

    Parameters
    ----------
    u
        The unit that would leave.
    g
        Its grid.
    labels
        Grid label of each unit (int64).
    indptr, indices
        The adjacency in CSR form (int64).
    stamp
        Work array of one int64 per unit, shared between calls; entries at ``token`` and
        ``token + 1`` are overwritten.
    token
        A value above every earlier call's ``token + 1`` (callers add 2 per call).
    queue
        Work array of one int64 per unit.

    Returns
    -------
    bool
        True when ``u``'s neighbours in ``g`` stay connected to each other without ``u`` (so a
        connected ``g`` stays connected); False when ``u`` has no neighbour in ``g``.
    """
    first = -1
    need = 0
    for e in range(indptr[u], indptr[u + 1]):
        v = indices[e]
        if labels[v] == g:
            if first < 0:
                first = v
            need += 1
    if need <= 1:
        return need == 1
    # Mark neighbours in g as targets with token + 1, visited with token.
    for e in range(indptr[u], indptr[u + 1]):
        v = indices[e]
        if labels[v] == g:
            stamp[v] = token + 1
    remaining = need
    stamp[u] = token
    stamp[first] = token
    remaining -= 1
    head = 0
    tail = 0
    queue[tail] = first
    tail += 1
    while head < tail and remaining > 0:
        v = queue[head]
        head += 1
        for e in range(indptr[v], indptr[v + 1]):
            t = indices[e]
            if labels[t] == g and stamp[t] != token:
                if stamp[t] == token + 1:
                    remaining -= 1
                stamp[t] = token
                queue[tail] = t
                tail += 1
    return remaining == 0


@njit(cache=True)
def refine_moves(indptr, indices, w, x, y, labels, n_grids, lo, hi, upper, eps, passes, locked, lambdas, home, churn_w,
                 max_moves):
    """Move boundary units between neighbouring grids, in place on ``labels``.

    First, for each penalty weight in ``lambdas`` (increasing), moves are accepted when they
    lower ``distance + lambda * squared excess``: compactness leads while the penalty is
    small and balance takes over as it grows. Then two strict phases alternate until
    neither moves anything: *balance* (a move must reduce the sum of squared excess outside
    each grid's band [lo, hi]) and *compact* (a move must shorten the unit's weighted
    distance to its grid centre without increasing excess).
    No move breaks a grid's connectivity, empties a grid, pushes a grid above ``upper``
    or moves a locked unit. With ``churn_w > 0`` (re-runs), moving a unit away from its ``home``
    grid costs ``churn_w`` per unit of its workload (plus ``eps``, so empty land keeps its grid too),
    and moving it back earns as much: the compactness terms must outweigh it, so only balance forces
    customers to change grid.
    At most ``max_moves`` moves are made: on ordinary cities the refinement makes well under one
    move per unit, but around many giant units the compactness moves can cycle as grid centres
    shift, and the cap stops that instead of running every pass to its limit.
    Returns the number of moves made.
    """
    n = w.shape[0]
    W = np.zeros(n_grids)
    S = np.zeros(n_grids, dtype=np.int64)
    SW = np.zeros(n_grids)
    SX = np.zeros(n_grids)
    SY = np.zeros(n_grids)
    for u in range(n):
        g = labels[u]
        W[g] += w[u]
        S[g] += 1
        ww = w[u] + eps
        SW[g] += ww
        SX[g] += ww * x[u]
        SY[g] += ww * y[u]
    stamp = np.zeros(n, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    token = 1
    total_moves = 0
    n_lam = lambdas.shape[0]
    for _round in range(50 + n_lam):
        round_moves = 0
        for phase in range(2):
            if _round < n_lam and phase == 1:
                break
            lam = lambdas[_round] if _round < n_lam else 0.0
            for _p in range(passes):
                moved = 0
                for u in range(n):
                    if locked[u]:
                        continue
                    g = labels[u]
                    if S[g] <= 1:
                        continue
                    wu = w[u]
                    wwu = wu + eps
                    cgx = SX[g] / SW[g]
                    cgy = SY[g] / SW[g]
                    du = np.sqrt((x[u] - cgx) ** 2 + (y[u] - cgy) ** 2)
                    eg0 = _excess(W[g], lo[g], hi[g], upper[g])
                    eg1 = _excess(W[g] - wu, lo[g], hi[g], upper[g])
                    best_h = -1
                    bk1 = 0.0
                    bk2 = 0.0
                    for e in range(indptr[u], indptr[u + 1]):
                        h = labels[indices[e]]
                        if h == g:
                            continue
                        if wu > 0 and W[h] + wu > upper[h] + 1e-9:
                            continue
                        eh0 = _excess(W[h], lo[h], hi[h], upper[h])
                        eh1 = _excess(W[h] + wu, lo[h], hi[h], upper[h])
                        dbal = eg1 * eg1 + eh1 * eh1 - eg0 * eg0 - eh0 * eh0
                        chx = SX[h] / SW[h]
                        chy = SY[h] / SW[h]
                        dcmp = wwu * (np.sqrt((x[u] - chx) ** 2 + (y[u] - chy) ** 2) - du)
                        if churn_w > 0.0 and home[u] >= 0:  # empty land counts eps: territories stay put too
                            if h != home[u] and g == home[u]:
                                dcmp += churn_w * wwu
                            elif h == home[u] and g != home[u]:
                                dcmp -= churn_w * wwu
                        if lam > 0.0:
                            k1 = dcmp + lam * dbal
                            k2 = dbal
                            ok = k1 < -1e-9
                        elif phase == 0:
                            ok = dbal < -1e-12
                            k1 = dbal
                            k2 = dcmp
                        else:
                            ok = dbal <= 1e-12 and dcmp < -1e-9
                            k1 = dcmp
                            k2 = dbal
                        if ok and (best_h < 0 or k1 < bk1 or (k1 == bk1 and (k2 < bk2 or (k2 == bk2 and h < best_h)))):
                            best_h = h
                            bk1 = k1
                            bk2 = k2
                    if best_h < 0:
                        continue
                    token += 2
                    if not connected_without(u, g, labels, indptr, indices, stamp, token, queue):
                        continue
                    h = best_h
                    labels[u] = h
                    W[g] -= wu
                    W[h] += wu
                    S[g] -= 1
                    S[h] += 1
                    SW[g] -= wwu
                    SX[g] -= wwu * x[u]
                    SY[g] -= wwu * y[u]
                    SW[h] += wwu
                    SX[h] += wwu * x[u]
                    SY[h] += wwu * y[u]
                    moved += 1
                round_moves += moved
                if moved == 0 or total_moves + round_moves >= max_moves:
                    break
            if total_moves + round_moves >= max_moves:
                break
        total_moves += round_moves
        if (round_moves == 0 and _round >= n_lam) or total_moves >= max_moves:
            break
    return total_moves


@njit(cache=True)
def smooth_empty(indptr, indices, w, labels, locked, max_moves):
    """Move empty units to the grid most of their neighbours belong to, keeping every grid connected.

    A unit of zero weight (not ``locked``) moves from grid ``a`` to a neighbouring grid ``b`` when
    more of its edges lead into ``b`` than into ``a`` and ``a`` stays connected without it. Every
    move removes cut edges, so the loop ends; a work queue revisits only the neighbours of moved
    units. Loads never change (only empty units move). Ties go to the smaller label, and units are
    visited in index order: deterministic. Returns the number of moves; ``labels`` is updated in place.
    """
    n = len(labels)
    stamp = np.zeros(n, np.int64)
    queue = np.empty(n, np.int64)
    token = 1
    work = np.empty(n, np.int64)
    inq = np.zeros(n, np.bool_)
    head = 0
    count = 0
    for u in range(n):
        if w[u] == 0.0 and not locked[u]:
            work[count] = u
            inq[u] = True
            count += 1
    # a circular work queue holding at most n units (each unit is in it at most once)
    size = count
    tail = count % n if n > 0 else 0
    maxdeg = 0
    for u in range(n):
        if indptr[u + 1] - indptr[u] > maxdeg:
            maxdeg = indptr[u + 1] - indptr[u]
    labs = np.empty(maxdeg + 1, np.int64)
    cnts = np.empty(maxdeg + 1, np.int64)
    moves = 0
    while size > 0 and moves < max_moves:
        u = work[head]
        head = (head + 1) % n
        size -= 1
        inq[u] = False
        a = labels[u]
        m = 0
        own = 0
        for e in range(indptr[u], indptr[u + 1]):
            lv = labels[indices[e]]
            if lv == a:
                own += 1
                continue
            found = False
            for t in range(m):
                if labs[t] == lv:
                    cnts[t] += 1
                    found = True
                    break
            if not found:
                labs[m] = lv
                cnts[m] = 1
                m += 1
        best = -1
        bestc = own
        for t in range(m):
            if cnts[t] > bestc or (cnts[t] == bestc and best >= 0 and labs[t] < best):
                if cnts[t] > own:
                    best = labs[t]
                    bestc = cnts[t]
        if best < 0:
            continue
        if not connected_without(u, a, labels, indptr, indices, stamp, token, queue):
            token += 2
            continue
        token += 2
        labels[u] = best
        moves += 1
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if w[v] == 0.0 and not locked[v] and not inq[v]:
                work[tail] = v
                tail = (tail + 1) % n
                size += 1
                inq[v] = True
    return moves
