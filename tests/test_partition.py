"""The partition core on plain arrays: contiguity, capacity, islands, infeasibility, determinism."""

import h3.api.basic_int as h3i
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gridengine as ge
from gridengine.cells import LocalProjection, cell_adjacency
from gridengine.partition import grid_connectivity, partition_units


def hex_units(centres, radius, res=9):
    cells = set()
    for lat, lon in centres:
        cells.update(h3i.grid_disk(h3i.latlng_to_cell(lat, lon, res), radius))
    cells = np.array(sorted(cells), dtype="uint64")
    ll = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
    x, y = LocalProjection.around(ll[:, 0], ll[:, 1]).to_xy(ll[:, 0], ll[:, 1])
    return cells, x, y, cell_adjacency(cells)


def lumpy_weights(n, rng, compounds=30, size=(20, 200)):
    w = rng.poisson(0.3, n).astype(float)
    idx = rng.integers(0, n, compounds)
    np.add.at(w, idx, rng.integers(*size, compounds))
    return w


def check(res, w, edges, upper):
    loads = np.bincount(res.labels, weights=w, minlength=res.n_grids)
    assert (res.labels >= 0).all()
    assert loads.max() <= upper + 1e-9
    assert grid_connectivity(res.labels, *edges, res.bridges).all()
    assert sorted(set(res.labels.tolist())) == list(range(res.n_grids))
    return loads


def test_contiguous_balanced_within_capacity():
    cells, x, y, e = hex_units([(22.54, 114.06)], 25)
    rng = np.random.default_rng(0)
    w = lumpy_weights(len(cells), rng)
    upper = w.sum() / 8 * 1.1
    res = partition_units(w, x, y, e, upper=upper, k=8)
    loads = check(res, w, e, upper)
    assert res.n_grids == 8
    assert np.abs(loads / loads.mean() - 1).max() <= 0.05


def test_k_derived_from_capacity_and_fill():
    cells, x, y, e = hex_units([(22.54, 114.06)], 20)
    w = np.ones(len(cells))
    res = partition_units(w, x, y, e, upper=200, target_fill=0.9)
    assert res.n_grids == int(np.ceil(len(cells) / 180))
    check(res, w, e, 200)


def test_islands_get_own_grids_and_tiny_island_is_bridged():
    # mainland, a big island, a tiny island with a few customers
    cells, x, y, e = hex_units([(22.54, 114.06), (22.40, 114.30), (22.45, 113.90)], 12)
    ll = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
    w = np.ones(len(cells))
    tiny = ll[:, 1] < 114.0
    w[tiny] = 0.0
    w[np.flatnonzero(tiny)[:5]] = 3.0
    res = partition_units(w, x, y, e, upper=120, target_fill=0.9)
    check(res, w, e, 120)
    assert len(res.bridges) == 1
    b = res.bridges[0]
    assert b.area_workload == 15.0 and b.area_units == tiny.sum()
    assert tiny[b.from_unit] and not tiny[b.to_unit]
    # the big island's grids do not mix with the mainland's
    island = ll[:, 1] > 114.2
    assert not set(res.labels[island]) & set(res.labels[~island & ~tiny])


def test_empty_island_is_bridged_not_lost():
    cells, x, y, e = hex_units([(22.54, 114.06), (22.40, 114.30)], 8)
    w = np.where(np.arange(len(cells)) < len(cells) // 2, 1.0, 0.0)
    ll = np.array([h3i.cell_to_latlng(int(c)) for c in cells])
    w = np.where(ll[:, 1] < 114.2, 1.0, 0.0)
    res = partition_units(w, x, y, e, upper=100)
    check(res, w, e, 100)
    assert len(res.bridges) == 1 and res.bridges[0].area_workload == 0


def test_unit_heavier_than_capacity_is_named_before_search():
    cells, x, y, e = hex_units([(22.54, 114.06)], 5)
    w = np.ones(len(cells))
    w[7] = 500
    with pytest.raises(ge.InfeasibleError, match="unit 7 holds workload 500, above the capacity 100 by 400"):
        partition_units(w, x, y, e, upper=100)


def test_k_too_small_for_capacity():
    cells, x, y, e = hex_units([(22.54, 114.06)], 5)
    w = np.ones(len(cells))
    with pytest.raises(ge.InfeasibleError, match="k = 2 grids cannot hold the workload within capacity 30"):
        partition_units(w, x, y, e, upper=30, k=2)


def test_more_grids_than_units():
    cells, x, y, e = hex_units([(22.54, 114.06)], 1)
    with pytest.raises(ge.InfeasibleError, match="k = 9 grids but only 7 units"):
        partition_units(np.ones(7), x, y, e, upper=10, k=9)


def test_deterministic_for_a_seed():
    cells, x, y, e = hex_units([(22.54, 114.06)], 15)
    w = lumpy_weights(len(cells), np.random.default_rng(3))
    a = partition_units(w, x, y, e, upper=w.sum() / 5 * 1.1, k=5, seed=7)
    b = partition_units(w, x, y, e, upper=w.sum() / 5 * 1.1, k=5, seed=7)
    assert (a.labels == b.labels).all()


@given(
    radius=st.integers(2, 9),
    k=st.integers(1, 9),
    slack=st.floats(1.3, 1.6),
    seed=st.integers(0, 10_000),
)
def test_property_one_area_with_room_is_always_planned(radius, k, slack, seed):
    """Feasible by construction: one area, capacity 30% or more above the mean grid, no unit above half
    a grid, at least four units per grid. Such an instance must be planned into exactly k grids."""
    rng = np.random.default_rng(seed)
    cells, x, y, e = hex_units([(22.54, 114.06)], radius)
    k = min(k, len(cells) // 4)
    w = lumpy_weights(len(cells), rng, compounds=max(1, len(cells) // 10), size=(1, 40))
    upper = max(w.sum() / k * slack, 2 * w.max(), 1.0)
    res = partition_units(w, x, y, e, upper=upper, k=k, seed=seed)
    check(res, w, e, upper)
    assert res.n_grids == k


@given(
    radius=st.integers(2, 9),
    slack=st.floats(1.05, 1.6),
    seed=st.integers(0, 10_000),
    blobs=st.integers(1, 3),
)
def test_property_islands_with_k_from_the_capacity_are_always_planned(radius, slack, seed, blobs):
    """Feasible by construction: k is left to the capacity, so every area gets the grids it needs."""
    rng = np.random.default_rng(seed)
    centres = [(22.54 + 0.05 * i, 114.06 + 0.08 * (i % 2)) for i in range(blobs)]
    cells, x, y, e = hex_units(centres, radius)
    w = lumpy_weights(len(cells), rng, compounds=max(1, len(cells) // 10), size=(1, 40))
    upper = max(w.sum() / 4 * slack, w.max(), 1.0)
    res = partition_units(w, x, y, e, upper=upper, seed=seed)
    check(res, w, e, upper)


@given(
    radius=st.integers(2, 6),
    k=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    short=st.floats(0.5, 0.98),
)
def test_property_infeasible_instances_raise_the_specific_error(radius, k, seed, short):
    """Infeasible by construction: a unit heavier than the capacity, or k grids whose capacity is short of
    the workload; each is an InfeasibleError that says which."""
    rng = np.random.default_rng(seed)
    cells, x, y, e = hex_units([(22.54, 114.06)], radius)
    w = lumpy_weights(len(cells), rng, compounds=max(1, len(cells) // 10), size=(1, 40))
    heavy = w.copy()
    heavy[int(rng.integers(len(w)))] = w.sum()
    with pytest.raises(ge.InfeasibleError, match=r"holds workload .*, above the capacity"):
        partition_units(heavy, x, y, e, upper=w.sum() * short, k=k, seed=seed)
    upper = max(w.sum() / k * short, w.max())
    if upper * k < w.sum():
        with pytest.raises(ge.InfeasibleError, match=rf"k = {k} grids cannot hold the workload within capacity"):
            partition_units(w, x, y, e, upper=upper, k=k, seed=seed)
