"""Tests of the lumpy real-geography cities used by benchmarks/roster_bench.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lumpy_cities as lc  # noqa: E402

CAP = 1300.0


@pytest.fixture(scope="module")
def city() -> lc.LumpyCity:
    return lc.make_city("shenzhen", 20_000, seed=3, capacity_hint=CAP, above_capacity=1)


def test_deterministic_and_seed_dependent(city):
    again = lc.make_city("shenzhen", 20_000, seed=3, capacity_hint=CAP, above_capacity=1)
    pd.testing.assert_frame_equal(city.customers, again.customers)
    assert city.service_area.equals_exact(again.service_area, 0.0)
    other = lc.make_city("shenzhen", 20_000, seed=4, capacity_hint=CAP, above_capacity=1)
    assert not other.customers["lat"].equals(city.customers["lat"])


def test_customers_on_land_not_in_water_or_empty_land(city):
    c = city.customers
    assert list(c.columns) == ["customer_id", "lat", "lon", "workload", "district"]
    assert len(c) == 20_000 and c["customer_id"].is_unique and c["customer_id"].is_monotonic_increasing
    x, y = c["lon"].to_numpy(), c["lat"].to_numpy()
    assert shapely.contains_xy(city.service_area, x, y).all()
    assert not shapely.contains_xy(city.water, x, y).any()
    assert not shapely.contains_xy(city.empty, x, y).any()
    assert 0.15 <= city.stats["empty_share"] <= 0.31
    assert set(c["district"]) <= set(city.districts["name"])
    assert city.districts["name"].nunique() == 8


def test_compounds_heavy_tail_and_caps(city):
    c = city.customers
    pts = c.groupby(["lat", "lon"])["workload"].agg(["sum", "size"])
    assert pts["size"][pts["size"] >= 20].sum() > 0.6 * len(c)  # most live in compounds at one point
    above = pts["sum"] > CAP
    assert above.sum() == 1  # the one compound above capacity
    assert pts["sum"][~above].max() <= 0.85 * CAP + 1e-9
    assert (pts["size"] == 1).sum() > 200  # scattered houses
    w = c["workload"]
    assert set(np.unique(w)) <= {1.0, 1.5, 2.0, 3.0}
    assert 1.13 < w.mean() < 1.22
    # densities differ a lot by district
    dens = c.groupby("district").size() / city.districts.set_index("name").to_crs(3857).area
    assert dens.max() > 5 * dens.min()


@pytest.mark.parametrize("name", ["wuhan", "guiyang"])
def test_other_cities(name):
    c = lc.make_city(name, 5_000, seed=1)
    assert len(c.customers) == 5_000
    assert shapely.contains_xy(c.service_area, c.customers["lon"].to_numpy(), c.customers["lat"].to_numpy()).all()
    assert c.water.area > 0


def test_rosters(city):
    w = city.workload
    exact = lc.make_roster(city, kind="exact", fill=0.91, seed=0, k=15)
    assert len(exact) == 15 and exact["capacity"].nunique() == 1
    assert w / exact["capacity"].sum() == pytest.approx(0.91, abs=1e-3)
    assert shapely.contains_xy(city.service_area, exact["lon"].to_numpy(), exact["lat"].to_numpy()).all()
    dual = lc.make_roster(city, kind="dual", fill=1 / 1.10, seed=0)
    caps = dual.groupby("contract")["capacity"].first()
    assert caps["agency"] == pytest.approx(0.6 * caps["contract"], abs=0.01)
    assert (dual["contract"] == "agency").mean() == pytest.approx(0.3, abs=0.03)
    assert dual["capacity"].sum() == pytest.approx(1.10 * w, rel=1e-3)
    left, gone = lc.roster_leave(exact, 0.10, seed=1)
    assert len(gone) == 2 and len(left) == 13 and not left["specialist_id"].isin(gone).any()
    joined, new = lc.roster_join(exact, city, 0.05, seed=1)
    assert new == ["S0016"] and len(joined) == 16 and joined["specialist_id"].is_unique
    assert (joined["capacity"] == exact["capacity"].iloc[0]).all()
