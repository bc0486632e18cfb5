"""Service points (sites stage): accounting, capacity, determinism, re-runs, bad inputs, CLI, solver."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.cli import main
from gridengine.sites import SITES_DATA_FILES, SitesConfig, read_candidates, site_service_points
from gridengine.solvers.facility import capacitated_facility_location

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sites_bench import CAP_DIR, load_cap  # noqa: E402  (the published instances' reader)


@pytest.fixture(scope="module")
def sites6(sample_plan):
    return site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6))


def _premises(plan: ge.Plan, n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = plan.cells[plan.cells["n_customers"] > 0].sort_values("cell").reset_index(drop=True)
    pick = rng.choice(len(cells), n, replace=False)
    return pd.DataFrame({"site_id": [f"P{k:02d}" for k in range(n)], "lat": cells["lat"].to_numpy()[pick],
                         "lon": cells["lon"].to_numpy()[pick], "capacity": [6] * n})


def test_every_grid_once_within_capacity(sample_plan, sites6):
    gs, sites = sites6.grid_sites, sites6.sites
    assert sorted(gs["grid_id"]) == sorted(sample_plan.grids["grid_id"].astype(str))
    assert gs["grid_id"].is_unique and set(gs["site_id"]) == set(sites["site_id"])
    counts = gs["site_id"].value_counts()
    assert (sites.set_index("site_id")["n_grids"] == counts.reindex(sites["site_id"]).to_numpy()).all()
    assert (sites["n_grids"] <= sites["capacity"]).all()
    assert sites["n_grids"].sum() == len(sample_plan.grids)
    assert np.isclose(sites["workload"].sum(), sample_plan.grids["workload"].sum())
    # fewest sites: 31 grids at 6 per site need 6
    assert len(sites) == int(np.ceil(len(sample_plan.grids) / 6)) == sites6.metrics["n_sites"]
    m = sites6.metrics
    assert m["capacity_violations"] == 0 and 0 < m["mean_customer_site_km"] <= m["p95_customer_site_km"]
    assert m["cross_area_grids"] == 0


def test_n_sites_and_site_cost(sample_plan, sites6):
    r = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, n_sites=9))
    assert len(r.sites) == 9 and r.metrics["mode"] == "n_sites"
    assert r.metrics["distance_cost"] < sites6.metrics["distance_cost"]  # more sites, shorter distances
    cheap = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, site_cost=100.0))
    dear = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, site_cost=1e6))
    assert len(cheap.sites) > len(dear.sites) >= 6
    assert cheap.metrics["site_costs"] == pytest.approx(100.0 * len(cheap.sites))
    with pytest.raises(ge.InfeasibleError):
        site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, n_sites=5))
    with pytest.raises(ge.ConfigError):
        SitesConfig(n_sites=3, site_cost=10.0)


def test_candidates_and_rejects(sample_plan, tmp_path):
    prem = _premises(sample_plan)
    bad = pd.DataFrame({"site_id": ["", "P00", "X1", "X2", "X3", "X4", "X5"],
                        "lat": ["22.6", "22.6", "abc", "22.6", "95", "22.6", "40.0"],
                        "lon": ["114.0", "114.0", "114.0", "114.0", "114.0", "114.0", "116.4"],
                        "capacity": ["6", "6", "6", "2.5", "6", "6", "6"],
                        "cost": ["", "", "", "", "", "-1", ""]})
    path = tmp_path / "premises.csv"
    pd.concat([prem.astype(str), bad], ignore_index=True).to_csv(path, index=False)
    r = site_service_points(sample_plan, path, SitesConfig())
    rej = r.rejects.set_index("row")
    n = len(prem)
    assert list(rej.index) == [n + k for k in range(1, 8)]
    assert rej.loc[n + 1, "field"] == "site_id" and "empty" in rej.loc[n + 1, "reason"]
    assert "repeats row 1" in rej.loc[n + 2, "reason"]
    assert rej.loc[n + 3, "field"] == "lat" and "not a number" in rej.loc[n + 3, "reason"]
    assert rej.loc[n + 4, "field"] == "capacity"
    assert rej.loc[n + 5, "field"] == "lat" and "outside [-90, 90]" in rej.loc[n + 5, "reason"]
    assert rej.loc[n + 6, "field"] == "cost"
    assert "outside the service area" in rej.loc[n + 7, "reason"]  # Beijing, for a Shenzhen plan
    for k, reason in rej["reason"].items():
        assert reason.startswith(f"row {k}:")
    # accounting: every candidate row is a candidate or a reject
    assert r.metrics["n_candidates"] + r.metrics["n_rejects"] == n + len(bad)
    assert set(r.sites["site_id"]) <= set(prem["site_id"])
    assert (r.sites["n_grids"] <= 6).all()


def test_missing_column_and_no_valid_candidate(sample_plan, tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("site_id,lat\nA,22.6\n")
    with pytest.raises(ge.InputError, match="no column 'lon'"):
        read_candidates(p)
    p.write_text("site_id,lat,lon\nA,x,114\n")
    with pytest.raises(ge.InputError, match="no valid candidate"):
        site_service_points(sample_plan, p)
    with pytest.raises(ge.InputError, match="not found"):
        site_service_points(sample_plan, tmp_path / "nope.csv")


def test_too_little_capacity(sample_plan):
    prem = _premises(sample_plan, n=4)
    with pytest.raises(ge.InfeasibleError, match="places short"):
        site_service_points(sample_plan, prem)


def test_rerun_keeps_sites_and_says_why(sample_plan, sites6):
    prev = sites6.sites.copy()
    same = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6), previous_sites=prev)
    assert set(same.sites["site_id"]) == set(prev["site_id"])
    assert (same.changes["change"] == "kept").all() and same.metrics["rerun"]["closed"] == 0
    # smaller sites: the previous ones cannot hold everyone, one more opens, with the reason
    prev5 = prev.assign(capacity=5)
    more = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=5), previous_sites=prev5)
    assert set(prev["site_id"]) <= set(more.sites["site_id"])
    opened = more.changes[more.changes["change"] == "opened"]
    assert len(opened) == 1 and "capacity" in opened["reason"].iloc[0]
    assert (more.sites["n_grids"] <= more.sites["capacity"]).all()
    # a bad previous layout (all sites on one spot) is re-sited only for a large gain, said in the reason
    bad = prev.assign(lat=prev["lat"].iloc[0], lon=prev["lon"].iloc[0] + np.arange(len(prev)) * 1e-4)
    moved = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6), previous_sites=bad)
    closed = moved.changes[moved.changes["change"] == "closed"]
    assert moved.metrics["rerun"]["resited"] and len(closed) >= 1
    assert "lowers the objective by" in closed["reason"].iloc[0]
    kept = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, rerun_gain=0.99),
                               previous_sites=bad)
    assert set(kept.sites["site_id"]) == set(bad["site_id"])


def test_deterministic_and_atomic(sample_plan_dir, tmp_path):
    cfg = SitesConfig(max_specialists_per_site=6)
    a = site_service_points(sample_plan_dir, config=cfg).write(tmp_path / "a")
    b = site_service_points(sample_plan_dir, config=cfg).write(tmp_path / "b")
    for f in SITES_DATA_FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    with pytest.raises(ge.PlanWriteError):
        site_service_points(sample_plan_dir, config=cfg).write(a)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    gj = json.loads((a / "sites.geojson").read_text())
    props = gj["features"][0]["properties"]
    for k in ("site_id", "lat", "lon", "n_grids", "n_specialists", "workload", "capacity"):
        assert k in props
    assert list(pd.read_csv(a / "grid_sites.csv").columns) == ["grid_id", "site_id", "distance_km"]


def test_cli_end_to_end(sample_plan_dir, tmp_path, capsys):
    out = tmp_path / "sites"
    assert main(["sites", "--plan", str(sample_plan_dir), "--out", str(out), "--max-specialists-per-site", "6"]) == 0
    assert "6 sites for 31 grids" in capsys.readouterr().out
    for f in ("sites.csv", "sites.geojson", "grid_sites.csv", "metrics.json", "map.html", "report.html"):
        assert (out / f).is_file()
    out2 = tmp_path / "sites2"
    assert main(["sites", "--plan", str(sample_plan_dir), "--out", str(out2), "--max-specialists-per-site", "6",
                 "--previous-sites", str(out / "sites.csv")]) == 0
    assert "6 kept, 0 opened, 0 closed" in capsys.readouterr().out
    assert main(["sites", "--plan", str(sample_plan_dir), "--out", str(tmp_path / "x"), "--n-sites", "2",
                 "--max-specialists-per-site", "6"]) == 2
    assert "n_sites = 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sites", "--plan", str(sample_plan_dir), "--out", str(tmp_path / "y"), "--n-sites", "7",
              "--site-cost", "5"])


def test_water_separates(sample_plan):
    """The sample city has an island (a bridged separate area): its grid is served from its own side
    when a candidate there has room."""
    r = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6))
    assert r.metrics["cross_area_grids"] == 0


@pytest.mark.parametrize("name", ["cap71", "cap101", "cap131"])
def test_cflp_orlib_optimal(name):
    inst = load_cap(CAP_DIR / name)
    s, f, d, c, opt = inst["cap"], inst["fixed"], inst["demand"], inst["cost"], inst["opt"]
    r = capacitated_facility_location(c, d, s, fixed_costs=f, time_limit=60)
    assert r.feasible and r.method == "mip"
    assert r.objective == pytest.approx(opt, abs=0.1)


def test_cflp_cpmp_path_and_exact_small():
    rng = np.random.default_rng(3)
    pts = rng.random((30, 2)) * 10
    D = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    r = capacitated_facility_location(D, np.ones(30), 8, p=4, points_are_candidates=True, time_limit=20)
    ref = ge.capacitated_p_median(pts, np.ones(30), 4, 8, time_limit=20)
    assert r.method == "cpmp" and r.objective == pytest.approx(ref.objective)
    # with must-open sites and fixed costs: the MIP with every arc proves optimality
    must = np.zeros(30, dtype=bool)
    must[[0, 5]] = True
    r2 = capacitated_facility_location(D, np.ones(30), 8, fixed_costs=5.0, must_open=must, k_arcs=30)
    assert r2.proven_optimal and set([0, 5]) <= set(r2.open.tolist())
    assert np.bincount(r2.assignment, minlength=30).max() <= 8


def test_zone_border(sample_plan, tmp_path):
    """With zones, every grid is served from a site in its own zone (where most of its workload is)."""
    import shapely.geometry as sg

    cells = sample_plan.cells
    mid = float(np.median(cells["lon"]))
    lo, hi = cells["lat"].min() - 1, cells["lat"].max() + 1
    w, e = cells["lon"].min() - 1, cells["lon"].max() + 1
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": n}, "geometry": sg.mapping(sg.box(a, lo, b, hi))}
        for n, a, b in (("west", w, mid), ("east", mid, e))]}
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(zones))
    r = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6, zones=str(path)))
    assert r.metrics["cross_area_grids"] == 0
    occ = cells[cells["workload"] > 0]
    side = occ.assign(east=occ["lon"] > mid).groupby("grid_id").apply(
        lambda d: bool(d.loc[d["east"], "workload"].sum() > d.loc[~d["east"], "workload"].sum()))
    site_east = r.sites.set_index("site_id")["lon"] > mid
    for gid, sid in zip(r.grid_sites["grid_id"], r.grid_sites["site_id"]):
        assert side[gid] == site_east[sid], gid
    plain = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6))
    assert r.metrics["n_sites"] >= plain.metrics["n_sites"]


def test_cflp_falls_back_when_cpmp_construction_gives_up(monkeypatch):
    """If the p-median core finds no start (it can, under a tight capacity and a busy machine), the general
    path still returns a feasible layout."""
    import gridengine.solvers.facility as facility

    def give_up(*a, **k):
        raise ge.InfeasibleError("no feasible assignment found for the capacity (bin packing too tight?)")

    monkeypatch.setattr(facility, "capacitated_p_median", give_up)
    rng = np.random.default_rng(5)
    pts = rng.random((40, 2)) * 10
    D = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    r = capacitated_facility_location(D, np.ones(40), 8, p=5, points_are_candidates=True, time_limit=10)
    assert r.method == "mip" and r.feasible and r.open.size == 5
    assert np.bincount(r.assignment, minlength=40).max() <= 8
