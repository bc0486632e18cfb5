"""The adjacency graph of a partition's units, and what the partitioners read off it.

Shared by the partitioners of :mod:`gridengine.partition` (first plans, roster plans and
re-runs): the graph itself (:class:`Graph`, CSR arrays plus per-unit workload and
coordinates), its connected areas with the small ones joined through bridges
(:func:`areas_and_bridges`), and label operations that keep grids whole (:func:`flood_fill`,
:func:`keep_main_pieces`, :func:`tidy_empty_units`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._kernels import smooth_empty

__all__ = ["Bridge", "Graph", "csr", "areas_and_bridges", "tidy_empty_units", "flood_fill", "keep_main_pieces"]


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


def csr(n: int, src: np.ndarray, dst: np.ndarray) -> sp.csr_matrix:
    """Symmetric adjacency matrix of ``n`` units from undirected edges.

    Parameters
    ----------
    n
        Number of units.
    src, dst
        Edge ends (each undirected edge once or twice; duplicates are summed).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``n x n``, int8, with sorted indices.
    """
    data = np.ones(2 * len(src), dtype="int8")
    m = sp.csr_matrix((data, (np.r_[src, dst], np.r_[dst, src])), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


class Graph:
    """Adjacency in CSR arrays plus per-unit data, for the bisection and refinement.

    Parameters
    ----------
    weights
        Workload of each unit (``w``).
    x, y
        Unit coordinates in metres.
    src, dst
        Adjacency edges (kept as given; ``adj``, ``indptr`` and ``indices`` hold the symmetric CSR form).

    Attributes
    ----------
    lock
        1 on units that carry a locked group, else 0.
    """

    def __init__(self, weights: np.ndarray, x: np.ndarray, y: np.ndarray, src: np.ndarray,
                 dst: np.ndarray) -> None:
        self.n = len(weights)
        self.w = weights
        self.x = x
        self.y = y
        self.src = src
        self.dst = dst
        self.adj = csr(self.n, src, dst)
        self.indptr = self.adj.indptr
        self.indices = self.adj.indices
        self.lock = np.zeros(self.n, dtype=np.int64)  # 1 on units that carry a locked group

    def neighbours(self, u: int) -> np.ndarray:
        """The units adjacent to unit ``u`` (sorted)."""
        return self.indices[self.indptr[u]:self.indptr[u + 1]]


def areas_and_bridges(g: Graph, w: np.ndarray, target: float, bridge_share: float, lock: np.ndarray | None,
                      uneven_tol: float | None = None
                      ) -> tuple[Graph, np.ndarray, np.ndarray, np.ndarray, list[Bridge], int]:
    """Connected areas; small ones joined to the nearest big area through a bridge edge.

    Small areas join *before* the search, so bisection and refinement see their workload and
    balance it like any other.

    Parameters
    ----------
    g
        The units' graph.
    w
        Workload of each unit.
    target
        Target workload of a grid.
    bridge_share
        Areas lighter than this share of ``target`` are bridged to the nearest big area.
    lock
        Unused here (the graph's own ``lock`` is carried over to the bridged graph).
    uneven_tol
        When given, an area whose workload is further than this from a whole number of grids
        (and lighter than three) is bridged too, unless it is the heaviest.

    Returns
    -------
    tuple
        (graph with the bridge edges added, area of each unit, whether each area is big, merged
        area of each unit (a bridged area takes the big area it joins), bridges, number of areas).
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
        g2 = Graph(w, g.x, g.y, np.r_[g.src, [b.from_unit for b in bridges]], np.r_[g.dst, [b.to_unit for b in bridges]])
        g2.lock = g.lock
        g = g2
        root = {int(a): int(a) for a in np.flatnonzero(big)}
        for b in bridges:
            root[int(area[b.from_unit])] = int(area[b.to_unit])
        merged = np.array([root[int(a)] for a in area], dtype="int64")
    return g, area, big, merged, bridges, n_areas


def _bridge_edges(g: Graph, area: np.ndarray, big: np.ndarray) -> list[Bridge]:
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


def tidy_empty_units(g: Graph, labels: np.ndarray, bridges: list[Bridge], locked: np.ndarray) -> None:
    """Tidy the territories' shapes, in place: empty units (land with no customer) join the grid most
    of their neighbours belong to, which removes thin strands and notches without changing any
    workload. Locked units and bridge ends stay put (a bridge is reported for the grid holding both
    its ends).

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label of each unit, changed in place.
    bridges
        The plan's bridges (their ends stay put).
    locked
        Whether each unit is locked.
    """
    keep = np.asarray(locked, dtype=np.bool_).copy()
    for b in bridges:
        keep[b.from_unit] = keep[b.to_unit] = True
    smooth_empty(g.indptr, g.indices, g.w, labels, keep, 50 * g.n + 1000)


def flood_fill(g: Graph, labels: np.ndarray) -> np.ndarray:
    """Give every unlabelled unit (-1) the label of the nearest labelled unit by graph steps (BFS, index order).

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label of each unit, -1 for none (not changed).

    Returns
    -------
    numpy.ndarray
        The labels, with every unit reachable from a labelled one labelled.
    """
    labels = labels.copy()
    queue = deque(np.flatnonzero(labels >= 0).tolist())
    while queue:
        v = queue.popleft()
        for t in g.neighbours(v).tolist():
            if labels[t] < 0:
                labels[t] = labels[v]
                queue.append(t)
    return labels


def keep_main_pieces(g: Graph, labels: np.ndarray) -> np.ndarray:
    """Unlabel every piece of a grid but its heaviest (then largest), so each grid is connected.

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label of each unit, -1 for none (not changed).

    Returns
    -------
    numpy.ndarray
        The labels, with the units of every other piece set to -1.
    """
    ok = labels >= 0
    same = ok[g.src] & ok[g.dst] & (labels[g.src] == labels[g.dst])
    _, comp = connected_components(csr(g.n, g.src[same], g.dst[same]), directed=False)
    lab = labels[ok]
    c = comp[ok]
    pw = pd.DataFrame({"lab": lab, "c": c, "w": g.w[ok] + 1e-9}).groupby(["lab", "c"])["w"].agg(["sum", "size"])
    pw = pw.reset_index().sort_values(["lab", "sum", "size", "c"], ascending=[True, False, False, True])
    main = set(pw.drop_duplicates("lab")["c"].tolist())
    out = labels.copy()
    out[ok & ~np.isin(comp, list(main))] = -1
    return out
