"""Locked cells, barriers, zones and infeasible inputs through the partitioner and the pipeline."""

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import LineString, box
from test_partition import check, hex_units, lumpy_weights

import gridengine as ge
from gridengine.partition import partition_units


def test_locked_groups_stay_together_apart_and_fixed():
    cells, x, y, e = hex_units([(22.54, 114.06)], 15)
    w = lumpy_weights(len(cells), np.random.default_rng(5))
    locked = np.full(len(cells), -1)
    # two groups: a small patch and a single far cell
    locked[[0, 1]] = 0
    locked[len(cells) - 1] = 1
    # make group 0 contiguous: cells 0 and 1 are sorted neighbours? use a real neighbour pair
    a, b = e
    locked[:] = -1
    locked[[a[0], b[0]]] = 0
    locked[len(cells) // 2] = 1
    upper = w.sum() / 6 * 1.15
    res = partition_units(w, x, y, e, upper=upper, k=6, locked=locked)
    check(res, w, e, upper)
    assert res.labels[a[0]] == res.labels[b[0]] == res.locked_labels[0]
    assert res.labels[len(cells) // 2] == res.locked_labels[1] != res.locked_labels[0]


def test_locked_group_must_be_contiguous():
    cells, x, y, e = hex_units([(22.54, 114.06)], 6)
    locked = np.full(len(cells), -1)
    locked[[0, len(cells) - 1]] = 3
    with pytest.raises(ge.InfeasibleError, match="locked group 3: its 2 units are not contiguous"):
        partition_units(np.ones(len(cells)), x, y, e, upper=50, locked=locked)


def test_more_locked_groups_than_grids():
    cells, x, y, e = hex_units([(22.54, 114.06)], 6)
    locked = np.full(len(cells), -1)
    locked[[0, 40, 80]] = [0, 1, 2]
    with pytest.raises(ge.InfeasibleError, match="holds 3 locked groups but only 2 of the k = 2 grids"):
        partition_units(np.ones(len(cells)), x, y, e, upper=200, k=2, locked=locked)


@given(seed=st.integers(0, 10_000), k=st.integers(2, 7), n_locks=st.integers(1, 3))
def test_property_locks_hold(seed, k, n_locks):
    rng = np.random.default_rng(seed)
    cells, x, y, e = hex_units([(22.54, 114.06)], 8)
    w = lumpy_weights(len(cells), rng, compounds=20, size=(1, 30))
    locked = np.full(len(cells), -1)
    for g, u in enumerate(rng.choice(len(cells), size=min(n_locks, k), replace=False)):
        locked[u] = g
    upper = w.sum() / k * 1.3
    try:
        res = partition_units(w, x, y, e, upper=upper, k=k, locked=locked, seed=seed)
    except ge.InfeasibleError as exc:
        assert str(exc)
        return
    check(res, w, e, upper)
    labs = [res.labels[np.flatnonzero(locked == g)[0]] for g in range(min(n_locks, k))]
    assert len(set(labs)) == len(labs)


@pytest.fixture(scope="module")
def small_city():
    from gridengine.synth import generate_city

    return generate_city(6000, seed=7)


def test_pipeline_locked_cells_keep_grid_ids(small_city, tmp_path):
    city = small_city
    first = ge.plan_city(city.customers, city.specialists, service_area=city.service_area)
    # pin the cells of two grids' customers' first cells to named grids
    a = first.assignments
    pins = pd.DataFrame({"cell": [a["cell"].iat[0], a["cell"].iat[1000]], "grid_id": ["NORTH-1", "ZZ-7"]})
    if first.cells.set_index("cell").loc[pins["cell"], "grid_id"].nunique() < 2:
        pins.loc[1, "cell"] = a.loc[a["grid_id"] != a["grid_id"].iat[0], "cell"].iat[0]
    pins.to_csv(tmp_path / "locked.csv", index=False)
    plan = ge.plan_city(city.customers, city.specialists, service_area=city.service_area, locked=tmp_path / "locked.csv")
    cell_grid = plan.cells.set_index("cell")["grid_id"]
    assert cell_grid[pins["cell"].iat[0]] == "NORTH-1" and cell_grid[pins["cell"].iat[1]] == "ZZ-7"
    assert plan.metrics["contiguous_share"] == 1.0 and plan.metrics["capacity_violations"] == 0
    assert plan.metrics["locked_grids"] == ["NORTH-1", "ZZ-7"]


def test_pipeline_barrier_and_zones(small_city):
    city = small_city
    c = city.customers
    mid_lon = float(c["lon"].median())
    wall = LineString([(mid_lon, 22.0), (mid_lon, 23.2)])
    plan = ge.plan_city(c, city.specialists, service_area=city.service_area, barriers=wall)
    assert plan.metrics["barrier_cuts"] > 0 and plan.metrics["contiguous_share"] == 1.0
    crossing = plan.cells.groupby("grid_id")["lon"].agg(lambda s: ((s > mid_lon).any() and (s <= mid_lon).any()))
    # only a grid joined through a reported bridge may have cells on both sides
    assert crossing.sum() <= plan.metrics["n_bridges"]
    zones = [box(113.0, 22.0, mid_lon, 23.5), box(mid_lon, 22.0, 115.0, 23.5)]
    plan2 = ge.plan_city(c, city.specialists, service_area=city.service_area, zones=zones)
    crossing2 = plan2.assignments.groupby("grid_id")["lon"].agg(lambda s: ((s > mid_lon).any() and (s <= mid_lon).any()))
    assert crossing2.sum() == 0  # zones are hard at customer level: no grid holds customers of both


def test_bad_locked_cell_is_named(small_city):
    city = small_city
    pins = pd.DataFrame({"cell": ["not-a-cell"], "grid_id": ["G1"]})
    with pytest.raises(ge.InputError, match="locks table: row 2, column 'cell': 'not-a-cell' is not an H3 cell"):
        ge.plan_city(city.customers, city.specialists, service_area=city.service_area, locked=pins)
    far = pd.DataFrame({"cell": [h3.latlng_to_cell(40.0, 116.0, 9)], "grid_id": ["G1"]})
    with pytest.raises(ge.InputError, match="is outside the tiled service area"):
        ge.plan_city(city.customers, city.specialists, service_area=city.service_area, locked=far)


def test_location_heavier_than_capacity_is_split_at_customer_level_and_reported():
    n = 3000
    cust = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "lat": 22.54, "lon": 114.06,
                         "address": [f"B{i // 100:02d}-{i % 100:02d}" for i in range(n)]})
    cust.loc[2500:, "lat"] = 22.56  # 2500 customers at one point, 500 elsewhere
    spec = pd.DataFrame({"specialist_id": [f"s{i}" for i in range(5)], "lat": 22.55, "lon": 114.06, "capacity": 1000.0})
    plan = ge.plan_city(cust, spec)
    m = plan.metrics
    assert m["capacity_violations"] == 0 and m["coverage"] == 1.0 and m["contiguous_share"] == 1.0
    assert len(plan.assignments) == n
    split = [w for w in plan.warnings if w.startswith("split compound")]
    assert len(split) == 1 and "holds 2500 customers" in split[0]
    dedicated = plan.grids[plan.grids["grid_id"].str.contains("-S")]
    assert len(dedicated) >= 2 and (dedicated["n_cells"] == 1).all()
    # address order keeps buildings together: each dedicated grid holds a contiguous run of addresses
    a = plan.assignments.merge(cust[["customer_id", "address"]], on="customer_id")
    for gid in dedicated["grid_id"]:
        addr = sorted(a.loc[a["grid_id"] == gid, "address"])
        all_addr = sorted(cust.loc[:2499, "address"])
        i = all_addr.index(addr[0])
        assert all_addr[i:i + len(addr)] == addr
    # the shared cell belongs to exactly one territory grid
    assert plan.cells["cell"].is_unique


def test_k_given_counts_dedicated_grids():
    n = 3000
    cust = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "lat": 22.54, "lon": 114.06})
    cust.loc[2500:, "lat"] = 22.56
    spec = pd.DataFrame({"specialist_id": [f"s{i}" for i in range(6)], "lat": 22.55, "lon": 114.06, "capacity": 1000.0})
    plan = ge.plan_city(cust, spec, ge.Config(partition=ge.PartitionConfig(k=5, capacity=1000.0)))
    assert plan.metrics["n_grids"] == 5 and plan.metrics["capacity_violations"] == 0
