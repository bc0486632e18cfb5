"""End to end through the library on the bundled sample city: the six DESIGN.md invariants."""

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.metrics import grid_contiguity
from gridengine.plan import DATA_FILES

DESIGN_GRID_COLUMNS = ["grid_id", "specialist_id", "workload", "n_customers", "n_cells", "area_km2"]
DESIGN_ASSIGNMENT_COLUMNS = ["customer_id", "lat", "lon", "cell", "grid_id", "specialist_id"]
PLAN_FILES = {"grids.parquet", "grids.geojson", "assignments.parquet", "assignments.csv", "rejects.csv",
              "metrics.json", "manifest.json", "run.json", "map.html", "report.html"}


def digest(folder):
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in DATA_FILES}


def test_plan_folder_has_every_design_file(sample_plan_dir):
    names = {p.name for p in sample_plan_dir.iterdir()}
    assert PLAN_FILES <= names
    grids = gpd.read_parquet(sample_plan_dir / "grids.parquet")
    assert list(grids.columns[:6]) == DESIGN_GRID_COLUMNS and grids.crs.to_epsg() == 4326
    a = pd.read_csv(sample_plan_dir / "assignments.csv", dtype=str)
    assert list(a.columns) == DESIGN_ASSIGNMENT_COLUMNS
    assert list(pd.read_csv(sample_plan_dir / "rejects.csv").columns) == ["customer_id", "row", "reason"]
    gj = json.loads((sample_plan_dir / "grids.geojson").read_text())
    assert len(gj["features"]) == len(grids)
    metrics = json.loads((sample_plan_dir / "metrics.json").read_text())
    for name in ge.compute_metrics.__globals__["METRIC_NAMES"]:
        assert name in metrics
    manifest = json.loads((sample_plan_dir / "manifest.json").read_text())
    assert manifest["inputs"]["customers"]["sha256"] and manifest["config"]["seed"] == 0
    run = json.loads((sample_plan_dir / "run.json").read_text())
    assert set(run["timings_s"]) >= {"ingest", "cells", "partition", "assign"}


def test_invariant_1_accounting(sample_plan, sample_paths):
    raw = pd.read_csv(sample_paths["customers"], dtype=str)
    assigned = set(sample_plan.assignments["customer_id"])
    rejected = sample_plan.rejects
    assert len(sample_plan.assignments) + len(rejected) == len(raw)
    assert sample_plan.assignments["customer_id"].is_unique
    assert not assigned & set(rejected["customer_id"].dropna())
    assert set(raw["customer_id"]) == assigned | set(rejected["customer_id"])
    assert rejected["reason"].str.len().gt(0).all()


def test_invariant_2_coverage(sample_plan):
    a, g = sample_plan.assignments, sample_plan.grids
    assert a["grid_id"].isin(g["grid_id"]).all()
    assert (g["specialist_id"] != "").all()  # the sample roster can staff every grid
    assert sample_plan.metrics["coverage"] == 1.0
    assert g["specialist_id"].is_unique  # one person, one grid
    merged = a.merge(g[["grid_id", "specialist_id"]], on="grid_id", suffixes=("", "_grid"))
    assert (merged["specialist_id"] == merged["specialist_id_grid"]).all()


def test_invariant_3_capacity(sample_plan):
    g = sample_plan.grids
    cap = sample_plan.specialists.set_index("specialist_id")["capacity"]
    assert (g["workload"] <= g["specialist_id"].map(cap) + 1e-9).all()
    assert sample_plan.metrics["capacity_violations"] == 0
    # grid workloads are the sums of their customers' workloads
    raw = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "sample" / "customers.csv",
                      dtype={"customer_id": str}).set_index("customer_id")
    a = sample_plan.assignments.join(raw["workload"], on="customer_id")
    sums = a.groupby("grid_id")["workload"].sum()
    assert np.allclose(sums.reindex(g["grid_id"]).fillna(0).to_numpy(), g["workload"].to_numpy())


def test_invariant_4_contiguity(sample_plan):
    bridges = [(b["from_cell"], b["to_cell"]) for b in sample_plan.metrics["bridges"]]
    assert grid_contiguity(sample_plan.cells[["cell", "grid_id"]], bridges).all()
    assert sample_plan.metrics["contiguous_share"] == 1.0
    # the cells tile the area without overlap, every customer's cell is one of them
    assert sample_plan.cells["cell"].is_unique
    assert sample_plan.assignments["cell"].isin(sample_plan.cells["cell"]).all()
    cell_grid = sample_plan.cells.set_index("cell")["grid_id"]
    assert (sample_plan.assignments["cell"].map(cell_grid) == sample_plan.assignments["grid_id"]).all()


def test_sample_city_has_islands_and_reports_them(sample_plan):
    # the offshore island is a separate area of the tiling: its own grid or a reported bridge
    import h3

    from gridengine.cells import cell_adjacency

    cells = np.array([h3.str_to_int(c) for c in sample_plan.cells["cell"]], dtype="uint64")
    order = np.argsort(cells)
    a, b = cell_adjacency(cells[order])
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(cells)
    ncomp, _ = connected_components(sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    assert ncomp >= 2
    assert sample_plan.metrics["n_bridges"] == len(sample_plan.metrics["bridges"])


def test_invariant_5_determinism(sample_paths, sample_plan_dir, tmp_path):
    again = ge.plan_city(sample_paths["customers"], sample_paths["specialists"], ge.Config(),
                         service_area=sample_paths["service_area"])
    again.write(tmp_path / "again")
    assert digest(sample_plan_dir) == digest(tmp_path / "again")


def test_invariant_6_atomic_write_never_damages_earlier_plan(sample_plan, sample_plan_dir, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "plan"
    shutil.copytree(sample_plan_dir, target)
    before = digest(target)
    with pytest.raises(ge.PlanWriteError, match="already holds files"):
        sample_plan.write(target)
    from gridengine import report

    def boom(*a, **k):
        raise RuntimeError("simulated crash while rendering")

    monkeypatch.setattr(report, "render_report_html", boom)
    with pytest.raises(RuntimeError):
        sample_plan.write(target, overwrite=True)
    assert digest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]  # no temporary folder left behind


def test_plan_roundtrip_read(sample_plan_dir, sample_plan):
    p = ge.Plan.read(sample_plan_dir)
    assert p.metrics == json.loads(json.dumps(sample_plan.metrics))
    assert len(p.grids) == len(sample_plan.grids) and len(p.cells) == len(sample_plan.cells)


def test_balance_and_summary(sample_plan):
    m = sample_plan.metrics
    assert m["within_5pct"] >= 0.9, m
    text = sample_plan.summary()
    assert "coverage         100.00%" in text and "0 violations" in text


def test_shortfall_is_reported_not_overloaded(sample_paths):
    roster = pd.read_csv(sample_paths["specialists"], dtype={"specialist_id": str, "current_grid": str},
                         keep_default_na=False)
    few = roster.iloc[:10]
    plan = ge.plan_city(sample_paths["customers"], few, service_area=sample_paths["service_area"])
    m = plan.metrics
    assert m["capacity_violations"] == 0
    assert m["n_unstaffed_grids"] == m["n_grids"] - m["n_staffed_grids"] > 0
    assert m["specialists_missing"] == m["n_unstaffed_grids"]
    assert m["coverage"] < 1.0
    assert any("specialist(s) missing" in w for w in plan.warnings)
    with pytest.raises(ge.CapacityShortfallError):
        ge.plan_city(sample_paths["customers"], few, ge.Config(assign=ge.AssignConfig(require_full_staffing=True)),
                     service_area=sample_paths["service_area"])


def test_without_service_area_uses_buffer(tmp_path):
    rng = np.random.default_rng(0)
    n = 800
    cust = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": 22.55 + rng.normal(0, 0.01, n),
                         "lon": 114.05 + rng.normal(0, 0.01, n), "workload": 1.0})
    spec = pd.DataFrame({"specialist_id": ["a", "b", "c", "d", "e"], "lat": 22.55, "lon": 114.05, "capacity": 200.0})
    plan = ge.plan_city(cust, spec)
    assert plan.metrics["coverage"] == 1.0 and plan.metrics["contiguous_share"] == 1.0
    assert plan.metrics["n_grids"] == 5  # ceil(800 / (0.9 * 200))
    assert (plan.cells["n_customers"] == 0).sum() > 0  # empty buffer land is part of grids


def test_gcj02_input_is_converted(tmp_path):
    from gridengine.geocode import wgs84_to_gcj02

    lat = np.array([22.54, 22.55, 22.56])
    lon = np.array([114.05, 114.06, 114.07])
    glat, glon = wgs84_to_gcj02(lat, lon)
    cust = pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": glat, "lon": glon})
    spec = pd.DataFrame({"specialist_id": ["s"], "lat": [22.55], "lon": [114.06], "capacity": [10.0]})
    cfg = ge.Config(input=ge.InputConfig(coord_system="gcj02"))
    plan = ge.plan_city(cust, spec, cfg)
    got = plan.assignments.sort_values("customer_id")
    assert np.allclose(got["lat"], lat, atol=1e-6) and np.allclose(got["lon"], lon, atol=1e-6)
