"""Re-runs from a previous plan: nothing changed → nothing moves; small changes → small churn; diff."""

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.cli import main

STABLE_FILES = ("grids.parquet", "grids.geojson", "assignments.parquet", "assignments.csv", "rejects.csv",
                "specialists.csv", "cells.parquet")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from gridengine.synth import generate_city

    city = generate_city(8000, seed=11)
    folder = tmp_path_factory.mktemp("rerun") / "p0"
    plan = ge.plan_city(city.customers, city.specialists, service_area=city.service_area)
    plan.write(folder)
    return city, plan, folder


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def check_invariants(plan, full_staffing=True):
    m = plan.metrics
    assert m["capacity_violations"] == 0 and m["contiguous_share"] == 1.0
    assert m["coverage"] == 1.0 if full_staffing else m["specialists_missing"] == m["n_unstaffed_grids"]
    assert plan.grids["specialist_id"].is_unique


def test_nothing_changed_moves_nothing_byte_for_byte(base, tmp_path):
    city, plan, folder = base
    again = ge.plan_city(city.customers, city.specialists, service_area=city.service_area, previous=folder)
    again.write(tmp_path / "p1")
    assert again.metrics["churn"] == 0.0 and again.metrics["customers_moved"] == 0
    assert again.metrics["grids_changed"] == 0
    for f in STABLE_FILES:
        assert sha(tmp_path / "p1" / f) == sha(folder / f), f
    assert again.manifest["previous_plan"]["grids"] == len(plan.grids)


def test_customers_leave_and_arrive_small_churn_ids_kept(base):
    city, plan, folder = base
    c = city.customers
    rng = np.random.default_rng(3)
    keep = c.sample(frac=0.95, random_state=1)
    new = c.sample(frac=0.05, random_state=2).copy()
    new["customer_id"] = [f"N{i:07d}" for i in range(len(new))]
    new["lat"] += rng.normal(0, 0.001, len(new))
    new["lon"] += rng.normal(0, 0.001, len(new))
    c2 = pd.concat([keep, new]).sort_values("customer_id")
    again = ge.plan_city(c2, city.specialists, service_area=city.service_area, previous=folder)
    check_invariants(again)
    m = again.metrics
    assert m["churn"] <= 0.02, m["churn"]
    placed_new = again.assignments["customer_id"].str.startswith("N").sum()
    assert len(again.rejects) == len(new) - placed_new  # a jittered newcomer may land in the water
    assert m["new_customers"] == placed_new and m["departed_customers"] == len(c) - len(keep)
    assert set(again.grids["grid_id"]) == set(plan.grids["grid_id"])  # surviving grids keep their ids
    # new customers are in the grid their cell belongs to
    cell_grid = again.cells.set_index("cell")["grid_id"]
    a = again.assignments
    assert (a["cell"].map(cell_grid) == a["grid_id"]).all()
    scratch = ge.plan_city(c2, city.specialists, service_area=city.service_area)
    from gridengine.metrics import rerun_metrics

    assert rerun_metrics(plan, scratch.assignments, scratch.cells)["churn"] > 5 * max(m["churn"], 0.001)


def test_departed_specialist_grid_is_absorbed_by_neighbours(base):
    # no spare in the roster: the departed specialist's customers go to the neighbouring grids, every
    # customer keeps a specialist, and the others move only where capacity forces it
    city, plan, folder = base
    gone = plan.grids["specialist_id"].iloc[0]
    roster = city.specialists[city.specialists["specialist_id"] != gone]
    again = ge.plan_city(city.customers, roster, service_area=city.service_area, previous=folder)
    check_invariants(again)
    g = plan.grids["grid_id"].iloc[0]
    assert g not in set(again.grids["grid_id"]) and len(again.grids) == len(plan.grids) - 1
    assert any("were absorbed by their neighbours" in w for w in again.warnings)
    served = (plan.assignments["specialist_id"] == gone).mean()
    # the neighbours' room is short of the departed grid, so some workload cascades on (9.3% churn for
    # a 5.4% departed share here; the benchmark tracks the +1 pp goal)
    assert again.metrics["churn"] <= served + 0.05, (again.metrics["churn"], served)


def test_departed_specialist_grid_goes_whole_to_a_newcomer(base):
    city, plan, folder = base
    gone = plan.grids["specialist_id"].iloc[0]
    newcomer = city.specialists[city.specialists["specialist_id"] == gone].assign(specialist_id="NEW1")
    roster = pd.concat([city.specialists[city.specialists["specialist_id"] != gone], newcomer], ignore_index=True)
    again = ge.plan_city(city.customers, roster, service_area=city.service_area, previous=folder)
    check_invariants(again)
    g = plan.grids["grid_id"].iloc[0]
    assert again.grids.set_index("grid_id").at[g, "specialist_id"] == "NEW1"
    served = (plan.assignments["specialist_id"] == gone).mean()
    assert again.metrics["churn"] <= served + 0.01


def test_new_specialists_get_grids_with_new_ids(base):
    city, plan, folder = base
    pick = city.customers.sample(1, random_state=4)
    new = pd.DataFrame({"specialist_id": ["N1"], "lat": pick["lat"].to_numpy(), "lon": pick["lon"].to_numpy(),
                        "capacity": 300.0})  # a part-time agency specialist joins (fill stays above 81%: no spare)
    roster = pd.concat([city.specialists, new], ignore_index=True)
    again = ge.plan_city(city.customers, roster, service_area=city.service_area, previous=folder)
    check_invariants(again)
    got = again.specialists.set_index("specialist_id").loc[["N1"], "grid_id"]
    assert (got != "").all()
    new_ids = set(again.grids["grid_id"]) - set(plan.grids["grid_id"])
    assert len(new_ids) == 1
    assert min(int(x[1:5]) for x in new_ids) > max(int(x[1:5]) for x in plan.grids["grid_id"])
    assert again.metrics["churn"] <= 0.20


def test_max_churn_setting_and_weight_validation():
    with pytest.raises(ge.ConfigError, match="partition.max_churn must be in"):
        ge.PartitionConfig(max_churn=1.5)
    with pytest.raises(ge.ConfigError, match="partition.churn_weight must be >= 0"):
        ge.PartitionConfig(churn_weight=-1)


def test_diff_command(base, tmp_path, capsys):
    city, plan, folder = base
    c2 = city.customers.sample(frac=0.9, random_state=5).sort_values("customer_id")
    p1 = ge.plan_city(c2, city.specialists, service_area=city.service_area, previous=folder)
    p1.write(tmp_path / "p1")
    assert main(["diff", str(folder), str(tmp_path / "p1"), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "continuing customers" in out and "change specialist" in out and "gone" in out
    d = pd.read_csv(tmp_path / "d" / "diff.csv", dtype=str, keep_default_na=False)
    assert list(d.columns) == ["customer_id", "change", "grid_a", "grid_b", "specialist_a", "specialist_b"]
    continuing = d["change"].isin(["changed specialist", "newly without a specialist", "newly with a specialist"])
    assert continuing.sum() == p1.metrics["customers_moved"]
    assert (d["change"] == "gone").sum() == len(city.customers) - len(c2)
    page = (tmp_path / "d" / "diff.html").read_text()
    offline = re.sub(r' data-tiles="[^"]*"', "", page)  # the optional online base map, fetched only on request
    assert "http://" not in offline and "https://" not in offline and "What changed" in page
    assert main(["diff", str(folder), str(tmp_path / "p1"), "--out", str(tmp_path / "d")]) == 2  # no overwrite
    assert main(["diff", str(folder), str(tmp_path / "nope")]) == 2


def test_growth_keeps_the_roster_and_capacity(sample_paths, sample_plan_dir):
    # one district grows 10%: the same roster carries it, fuller, within every specialist's capacity
    customers = pd.read_csv(sample_paths["customers"])
    grown = customers.assign(workload=np.where(customers["district"] == "南山区", customers["workload"] * 1.05,
                                               customers["workload"]))
    again = ge.plan_city(grown, sample_paths["specialists"], service_area=sample_paths["service_area"],
                         previous=sample_plan_dir)
    m = again.metrics
    assert m["capacity_violations"] == 0 and m["contiguous_share"] == 1.0
    assert m["n_grids"] == len(pd.read_csv(sample_paths["specialists"]))
    assert m["coverage"] == 1.0
    assert m["churn"] <= 0.15, m["churn"]


@pytest.mark.parametrize("k", [28, 35])
def test_rerun_honours_k_both_ways(sample_paths, sample_plan_dir, k):
    # -k on a re-run: fewer grids (specialists left spare, grids absorbed) or more (unstaffed, said so)
    cfg = ge.Config(partition=ge.PartitionConfig(k=k))
    again = ge.plan_city(sample_paths["customers"], sample_paths["specialists"], cfg,
                         service_area=sample_paths["service_area"], previous=sample_plan_dir)
    m = again.metrics
    assert m["n_grids"] == k and m["capacity_violations"] == 0
    n_spec = len(pd.read_csv(sample_paths["specialists"]))
    if k < n_spec:
        assert len(m["spare_specialists"]) == n_spec - k
        assert any("spare" in w for w in again.warnings)
        with pytest.raises(ge.InfeasibleError, match="k = 20 grids cannot hold the workload"):
            ge.plan_city(sample_paths["customers"], sample_paths["specialists"],
                         ge.Config(partition=ge.PartitionConfig(k=20)), service_area=sample_paths["service_area"],
                         previous=sample_plan_dir)
    else:
        assert m["n_unstaffed_grids"] == k - n_spec and m["coverage"] < 1.0
        assert any("stay unstaffed" in w for w in again.warnings)


def test_fallback_ids_follow_the_largest_overlap():
    # when a k-fixed re-run falls back to a whole new partition, each new grid keeps the id of the
    # previous grid it shares most workload with (each previous id used once)
    from gridengine.partition.h3cells import _origin_by_overlap

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    initial = np.array([5, 5, 3, 3, 3, 3, -1, 5])
    w = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 0.5, 9.0, 0.5])
    assert _origin_by_overlap(labels, initial, w) == {1: 3, 0: 5}
