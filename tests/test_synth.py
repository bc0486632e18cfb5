"""Tests of the synthetic city generator (gridengine.synth)."""

from __future__ import annotations

import json
import math

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from gridengine.errors import ConfigError
from gridengine.synth import (
    CUSTOMER_COLUMNS,
    SPECIALIST_COLUMNS,
    SyntheticCity,
    _generate,
    _geography,
    generate_city,
    write_city,
)

N = 5_000
CENTER = (22.58, 114.06)


@pytest.fixture(scope="module")
def city() -> SyntheticCity:
    return generate_city(N, seed=7)


def _island_mask(city: SyntheticCity) -> np.ndarray:
    island = city.service_area.geoms[1]
    c = city.customers
    return shapely.contains_xy(island, c["lon"].to_numpy(), c["lat"].to_numpy())


def _to_local_inverse(x: float, y: float) -> tuple[float, float]:
    lat0, lon0 = CENTER
    return lon0 + x / (111.320 * math.cos(math.radians(lat0))), lat0 + y / 110.574


def _to_local(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat0, lon0 = CENTER
    return (lon - lon0) * 111.320 * math.cos(math.radians(lat0)), (lat - lat0) * 110.574


# --------------------------------------------------------------------------- #
# determinism                                                                 #
# --------------------------------------------------------------------------- #


def test_deterministic_tables_and_bytes(tmp_path):
    a = generate_city(N, seed=3)
    b = generate_city(N, seed=3)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    pd.testing.assert_frame_equal(a.specialists, b.specialists)
    assert a.service_area.equals_exact(b.service_area, 0.0)
    pa_ = write_city(a, tmp_path / "a")
    pb_ = write_city(b, tmp_path / "b")
    for key in ("customers", "specialists", "service_area"):
        assert pa_[key].read_bytes() == pb_[key].read_bytes(), key


def test_different_seeds_differ():
    a = generate_city(N, seed=1)
    b = generate_city(N, seed=2)
    assert not a.customers["lat"].equals(b.customers["lat"])


def test_does_not_touch_global_random_state():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    generate_city(500, seed=0)
    assert np.random.random() == before


# --------------------------------------------------------------------------- #
# table shape                                                                 #
# --------------------------------------------------------------------------- #


def test_customer_columns_and_dtypes(city):
    c = city.customers
    assert list(c.columns) == CUSTOMER_COLUMNS
    assert len(c) == N
    for col in ("customer_id", "address", "district"):
        assert pd.api.types.is_string_dtype(c[col]), col
    for col in ("lat", "lon", "workload"):
        assert c[col].dtype == np.float64, col
    assert c.notna().all().all()
    assert (np.round(c["lat"], 6) == c["lat"]).all()
    assert (np.round(c["lon"], 6) == c["lon"]).all()


def test_customer_ids_unique_sorted_and_formatted(city):
    ids = city.customers["customer_id"]
    assert ids.is_unique
    assert ids.is_monotonic_increasing
    assert ids.str.fullmatch(r"C\d{7}").all()
    assert ids.iloc[0] == "C0000001"
    assert ids.iloc[-1] == f"C{N:07d}"


def test_specialist_columns_and_dtypes(city):
    s = city.specialists
    assert list(s.columns) == SPECIALIST_COLUMNS
    for col in ("specialist_id", "name", "contract", "current_grid"):
        assert pd.api.types.is_string_dtype(s[col]), col
    for col in ("capacity", "lat", "lon"):
        assert s[col].dtype == np.float64, col
    assert s["specialist_id"].is_unique
    assert s["specialist_id"].str.fullmatch(r"S\d{4}").all()
    assert set(s["contract"]) <= {"contract", "agency"}
    assert (s["current_grid"] == "").all()
    assert s["name"].str.len().between(2, 3).all()


def test_addresses(city):
    c = city.customers
    assert c["address"].is_unique
    pattern = r"广东省深圳市(\w{2}区)\w+?(街道|路)\w{2}社区\w+?\d+栋\d单元\d{3,4}室"
    m = c["address"].str.extract(pattern)
    assert m[0].notna().all()
    assert (m[0] == c["district"]).all()
    assert c["district"].nunique() == 5
    # districts differ in density
    counts = c["district"].value_counts()
    assert counts.max() > 1.3 * counts.min()


# --------------------------------------------------------------------------- #
# geography                                                                   #
# --------------------------------------------------------------------------- #


def test_service_area_shape(city):
    sa = city.service_area
    assert sa.geom_type == "MultiPolygon"
    assert sa.is_valid
    assert len(sa.geoms) == 2
    mainland, island = sa.geoms
    assert mainland.area > 50 * island.area
    # about 50 km x 25 km of land
    minx, miny, maxx, maxy = mainland.bounds
    w, _ = _to_local(np.array([CENTER[0]]), np.array([minx]))
    e, _ = _to_local(np.array([CENTER[0]]), np.array([maxx]))
    assert 45 < e[0] - w[0] < 55
    assert 22 < (maxy - miny) * 110.574 < 30
    # the river and the bay are holes / cut-outs: the mainland has no interior ring
    # (the river reaches the bay), and the land is smaller than its bounding box
    assert len(mainland.interiors) == 0


def test_all_customers_inside_service_area(city):
    c = city.customers
    assert shapely.contains_xy(city.service_area, c["lon"].to_numpy(), c["lat"].to_numpy()).all()


def test_no_customers_in_water(city):
    geo = _geography()
    c = city.customers
    x, y = _to_local(c["lat"].to_numpy(), c["lon"].to_numpy())
    # not in the bay or the river, not even within 25 m of them
    assert not shapely.contains_xy(geo.water.buffer(0.025), x, y).any()
    # and at least ~25 m inside the land (30 m margin, minus rounding)
    inside = shapely.contains_xy(geo.mainland.buffer(-0.025), x, y) | shapely.contains_xy(
        geo.island.buffer(-0.025), x, y
    )
    assert inside.all()
    # the water really is water in the service area
    wx, wy = _to_local_inverse(-20.0, -8.0)  # in the bay
    assert shapely.contains_xy(geo.water, -20.0, -8.0)
    assert not shapely.contains_xy(city.service_area, wx, wy)
    assert shapely.intersection(geo.water, geo.mainland).area < 1e-9


def test_specialists_on_land(city):
    s = city.specialists
    assert shapely.contains_xy(city.service_area, s["lon"].to_numpy(), s["lat"].to_numpy()).all()


def test_island_has_customers(city):
    on_island = _island_mask(city)
    assert on_island.sum() >= 20
    big = generate_city(20_000, seed=7)
    assert _island_mask(big).sum() == 60  # 0.3 %


def test_island_not_h3_adjacent_to_mainland():
    big = generate_city(20_000, seed=5)
    c = big.customers
    cells = np.array([h3.latlng_to_cell(a, b, 9) for a, b in zip(c["lat"], c["lon"])])
    island = _island_mask(big)
    island_cells = set(cells[island])
    mainland_cells = set(cells[~island])
    ring = set().union(*(h3.grid_disk(cell, 1) for cell in island_cells))
    assert island_cells and not (ring & mainland_cells)
    geo = _geography()
    assert geo.mainland.distance(geo.island) >= 1.5


def test_mainland_is_one_piece_and_river_wide_enough():
    geo = _geography()
    assert geo.mainland.geom_type == "Polygon"
    # a north-south transect through the city centre crosses the river:
    # the land on x=0 has a water gap of >= 300 m somewhere between y=-10 and y=10
    line = shapely.LineString([(0.0, -10.0), (0.0, 10.0)])
    pieces = line.intersection(geo.mainland)
    assert pieces.geom_type == "MultiLineString"
    coords = sorted((min(p.coords[0][1], p.coords[-1][1]), max(p.coords[0][1], p.coords[-1][1])) for p in pieces.geoms)
    gaps = [b[0] - a[1] for a, b in zip(coords, coords[1:])]
    assert max(gaps) >= 0.3


# --------------------------------------------------------------------------- #
# population structure                                                        #
# --------------------------------------------------------------------------- #


def test_mega_compound_at_one_location(city):
    sizes = city.customers.groupby(["lat", "lon"]).size()
    assert sizes.max() >= 200
    # and many people share a location at all (compound-level geocoding)
    assert (sizes >= 20).sum() >= 10


def test_heavy_tail_and_sparse_points(city):
    sizes = city.customers.groupby(["lat", "lon"]).size()
    assert (sizes == 1).sum() >= 100  # scattered singles and village houses
    assert sizes.max() >= 10 * sizes.median()


def test_workload(city):
    w = city.customers["workload"]
    assert set(np.unique(w)) <= {1.0, 1.5, 2.0, 3.0}
    assert 0.10 < (w > 1).mean() < 0.22
    assert 1.12 * N < w.sum() < 1.28 * N


def test_specialist_counts_and_capacity(city):
    """A real roster: the dual track (30 % agency at 0.6 capacity), sized to the workload, no spares."""
    s = city.specialists
    total = city.customers["workload"].sum()
    contract = s[s["contract"] == "contract"]
    agency = s[s["contract"] == "agency"]
    assert (contract["capacity"] == 1000.0).all()
    assert (agency["capacity"] == 600.0).all()
    n = math.ceil(total / (0.9 * 1000.0 * 0.88))
    assert len(s) in (n, n + 1)
    assert len(agency) == round(0.3 * n)
    # enough capacity at 90 % fill, and not one specialist more than that needs
    assert s["capacity"].sum() >= total / 0.9
    assert s["capacity"].sum() - 600.0 < total / 0.9
    assert 0.8 <= total / s["capacity"].sum() <= 0.9


def test_sample_roster_is_dual_track():
    """data/sample/specialists.csv is generate_city(20_000, seed=42)'s roster."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    spec = pd.read_csv(sample / "specialists.csv", keep_default_na=False)
    cust = pd.read_csv(sample / "customers.csv", dtype={"customer_id": str})
    assert set(spec["contract"]) == {"contract", "agency"}
    assert (spec["contract"] == "agency").mean() == pytest.approx(0.3, abs=0.05)
    fill = cust["workload"].sum() / spec["capacity"].sum()
    assert 0.85 <= fill <= 0.9


def test_roster_does_not_change_customers():
    a = generate_city(3_000, seed=4)
    b = generate_city(3_000, seed=4, capacity=700.0, agency_share=0.5, agency_ratio=0.5, spare_share=0.2)
    pd.testing.assert_frame_equal(a.customers, b.customers)


def test_parameters_are_used():
    c = generate_city(2_000, seed=1, capacity=300.0, agency_share=0.0, spare_share=0.5)
    s = c.specialists
    assert (s["contract"] == "contract").all()
    assert (s["capacity"] == 300.0).all()
    total = c.customers["workload"].sum()
    n = math.ceil(total / 270.0)
    assert len(s) == n + math.ceil(0.5 * n)

    d = generate_city(2_000, seed=1, capacity=500.0, agency_share=0.5, agency_ratio=0.4, spare_share=0.0)
    caps = d.specialists.groupby("contract")["capacity"].first()
    assert caps["contract"] == 500.0 and caps["agency"] == 200.0
    assert d.specialists["capacity"].sum() >= d.customers["workload"].sum() / 0.9

    # the deprecated part_time_share still sets the agency headcount (as a share of the contract one)
    old = generate_city(2_000, seed=1, part_time_share=0.0)
    assert (old.specialists["contract"] == "contract").all()

    moved = generate_city(500, seed=1, center=(31.23, 121.47))
    assert abs(moved.customers["lat"].mean() - 31.23) < 0.15
    assert shapely.contains_xy(
        moved.service_area, moved.customers["lon"].to_numpy(), moved.customers["lat"].to_numpy()
    ).all()


def test_exact_count_for_small_and_odd_sizes():
    for n in (100, 101, 777, 1234):
        c = generate_city(n, seed=n).customers
        assert len(c) == n
        assert c["customer_id"].is_unique


def test_internal_stats_match_tables():
    city, stats = _generate(
        10_000, seed=0, capacity=1000.0, part_time_share=None, spare_share=0.1, center=CENTER
    )
    assert stats["n_customers"] == len(city.customers)
    assert stats["total_workload"] == pytest.approx(city.customers["workload"].sum())
    assert stats["n_specialists"] == len(city.specialists)
    assert stats["n_contract"] == (city.specialists["contract"] == "contract").sum()
    assert stats["n_agency"] == (city.specialists["contract"] == "agency").sum()
    assert stats["n_spare"] == math.ceil(0.1 * (stats["n_specialists"] - stats["n_spare"]))
    assert stats["n_island"] == _island_mask(city).sum()
    assert city.customers.groupby(["lat", "lon"]).size().max() == stats["largest_compound"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_customers": 10},
        {"n_customers": 1000.5},
        {"n_customers": True},
        {"n_customers": 1000, "seed": -1},
        {"n_customers": 1000, "capacity": 0.0},
        {"n_customers": 1000, "capacity": float("nan")},
        {"n_customers": 1000, "part_time_share": 1.5},
        {"n_customers": 1000, "spare_share": -0.1},
        {"n_customers": 1000, "agency_share": 1.0},
        {"n_customers": 1000, "agency_ratio": 0.0},
        {"n_customers": 1000, "center": (95.0, 0.0)},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        generate_city(**kwargs)


# --------------------------------------------------------------------------- #
# files                                                                       #
# --------------------------------------------------------------------------- #


def test_write_city_roundtrip(city, tmp_path):
    paths = write_city(city, tmp_path / "out")
    assert set(paths) == {"customers", "specialists", "service_area"}
    raw = paths["customers"].read_bytes()
    assert b"\r\n" not in raw
    assert raw.startswith(b"customer_id,address,district,lat,lon,workload\n")
    back = pd.read_csv(paths["customers"], dtype={"customer_id": str})
    assert list(back.columns) == CUSTOMER_COLUMNS
    assert (back["customer_id"].to_numpy() == city.customers["customer_id"].to_numpy()).all()
    assert np.array_equal(back["lat"].to_numpy(), city.customers["lat"].to_numpy())
    assert np.array_equal(back["lon"].to_numpy(), city.customers["lon"].to_numpy())
    spec = pd.read_csv(paths["specialists"], keep_default_na=False)
    assert list(spec.columns) == SPECIALIST_COLUMNS
    assert (spec["current_grid"] == "").all()
    gj = json.loads(paths["service_area"].read_text(encoding="utf-8"))
    assert gj["type"] == "FeatureCollection"
    assert len(gj["features"]) == 1
    assert set(gj["features"][0]["properties"]) == {"name"}
    geom = shape(gj["features"][0]["geometry"])
    assert geom.geom_type == "MultiPolygon"
    assert geom.equals_exact(city.service_area, 1e-9)
