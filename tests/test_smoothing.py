"""Shape tidying: empty units join the grid most of their neighbours belong to."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gridengine._kernels import smooth_empty
from gridengine.partition._graph import csr
from gridengine.partition.core import grid_connectivity, partition_units


def _lattice(nx: int, ny: int):
    idx = np.arange(nx * ny).reshape(ny, nx)
    src = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    dst = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float))
    return x.ravel() * 100, y.ravel() * 100, src, dst


def _cut(labels, src, dst) -> int:
    return int((labels[src] != labels[dst]).sum())


def test_a_strand_of_empty_cells_is_absorbed():
    # two grids split at column 5; grid 0 sends a 1-cell-wide empty strand along row 2 into grid 1
    x, y, src, dst = _lattice(10, 5)
    labels = (np.arange(50) % 10 >= 5).astype(np.int64)
    strand = [2 * 10 + c for c in (5, 6, 7, 8)]
    labels[strand] = 0
    w = np.ones(50)
    w[strand] = 0.0
    adj = csr(50, src, dst)
    before = labels.copy()
    moves = smooth_empty(adj.indptr, adj.indices, w, labels, np.zeros(50, np.bool_), 10_000)
    assert moves == 4 and (labels[strand] == 1).all()
    assert (labels[w > 0] == before[w > 0]).all()
    assert _cut(labels, src, dst) < _cut(before, src, dst)
    assert grid_connectivity(labels, src, dst).all()


@given(st.integers(0, 10_000), st.floats(0.2, 0.9))
def test_partition_keeps_loads_and_contiguity_with_many_empty_units(seed, empty_share):
    rng = np.random.default_rng(seed)
    x, y, src, dst = _lattice(24, 18)
    w = rng.integers(1, 5, len(x)).astype(float)
    w[rng.random(len(x)) < empty_share] = 0.0
    if w.sum() == 0:
        w[0] = 1.0
    res = partition_units(w, x, y, (src, dst), upper=max(w.sum() / 6 * 1.3, w.max()), k=6, seed=seed)
    assert grid_connectivity(res.labels, src, dst).all()
    # no empty unit could still join a grid holding more of its neighbours without cutting its own grid
    labels = res.labels.copy()
    adj = csr(len(w), src, dst)
    assert smooth_empty(adj.indptr, adj.indices, w, labels, np.zeros(len(w), np.bool_), 10_000) == 0
