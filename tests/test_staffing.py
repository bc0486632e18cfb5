"""Staffing: hard rules, pre-solve checks, the staffing plan per area, and the staff command."""

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.assign import Rule, assign_specialists, grid_requirements, staffing_plan
from gridengine.cli import main


def test_rule_requires_language_share():
    cust = pd.DataFrame({"workload": [1.0] * 10, "language": ["粤语"] * 3 + [""] * 7})
    req = grid_requirements(cust, np.array(["G1"] * 5 + ["G2"] * 5), [Rule("language", "languages", 0.3)])
    assert req["G1"] == [frozenset({"粤语"})]  # 3 of 5
    assert req["G2"] == [frozenset()]


def test_rules_restrict_eligibility_and_name_the_grid():
    grids = pd.DataFrame({"grid_id": ["G1", "G2"], "workload": [500.0, 500.0], "centre_lat": [22.5, 22.6],
                          "centre_lon": [114.0, 114.0]})
    spec = pd.DataFrame({"specialist_id": ["A", "B"], "lat": [22.5, 22.6], "lon": [114.0, 114.0],
                         "capacity": [1000.0, 1000.0], "current_grid": ["", ""], "languages": ["普通话", "普通话;粤语"]})
    rules = [Rule("language", "languages")]
    # G1 needs Cantonese: only B can take it, although A lives next to it
    res = assign_specialists(grids, spec, requirements={"G1": [frozenset({"粤语"})], "G2": [frozenset()]}, rules=rules)
    assert res.grid_specialist.to_dict() == {"G1": "B", "G2": "A"}
    res = assign_specialists(grids, spec, requirements={"G1": [frozenset({"英语"})], "G2": [frozenset()]}, rules=rules)
    assert res.unstaffed == ["G1"]
    assert any("grid G1 (workload 500): no specialist with enough capacity meets its staffing rules" in m
               for m in res.messages)


def test_far_base_and_capacity_checks():
    grids = pd.DataFrame({"grid_id": ["G1", "G2", "G3"], "workload": [900.0, 900.0, 900.0],
                          "centre_lat": [22.5, 22.52, 22.54], "centre_lon": [114.0, 114.0, 114.0]})
    spec = pd.DataFrame({"specialist_id": ["A", "FAR"], "lat": [22.5, 39.9], "lon": [114.0, 116.4],
                         "capacity": [1000.0, 1000.0], "current_grid": ["", ""]})
    res = assign_specialists(grids, spec)
    text = "\n".join(res.messages)
    assert "specialist FAR: base is" in text and "km from the nearest grid centre (limit 30 km)" in text
    assert "total capacity 2000 is below the total workload 2700 by 700 (about 1 specialist(s) at capacity 1000)" in text
    assert "3 grids but only 2 specialists" in text


def test_staffing_plan_by_cluster():
    grids = pd.DataFrame({"grid_id": ["G1", "G2", "G3", "G4"], "specialist_id": ["A", "", "", ""],
                          "workload": [1.0, 2.0, 3.0, 4.0], "centre_lat": [22.5, 22.51, 22.52, 22.7],
                          "centre_lon": [114.0] * 4})
    adj = {("G1", "G2"), ("G2", "G3"), ("G3", "G4")}
    out = staffing_plan(grids, adj - {("G3", "G4")})
    clusters = out[out["area"] != "staffed"]
    assert sorted(clusters["specialists_missing"]) == [1, 2]
    assert clusters["workload_uncovered"].sum() == 9.0
    assert "G2 G3" in set(clusters["unstaffed_grids"])


@pytest.fixture(scope="module")
def city():
    from gridengine.synth import generate_city

    return generate_city(5000, seed=3)


def test_plan_shortfall_listed_per_district(city):
    few = city.specialists.iloc[:3]
    plan = ge.plan_city(city.customers, few, service_area=city.service_area)
    st = plan.staffing
    assert set(st["area"]) <= set(city.customers["district"])
    assert st["specialists_missing"].sum() == plan.metrics["specialists_missing"] == plan.metrics["n_grids"] - 3
    assert plan.metrics["staffing_shortfall"]


def test_plan_with_rules_from_config(city):
    cust = city.customers.copy()
    cust["language"] = np.where(cust["district"] == "龙岗区", "客家话", "")
    spec = city.specialists.copy()
    spec["languages"] = ["普通话;客家话" if i % 3 == 0 else "普通话" for i in range(len(spec))]
    cfg = ge.Config(assign=ge.AssignConfig(rules=({"customer_column": "language", "specialist_column": "languages",
                                                   "min_share": 0.5},)))
    plan = ge.plan_city(cust, spec, cfg, service_area=city.service_area)
    g = plan.grids
    a = plan.assignments.merge(cust[["customer_id", "language"]], on="customer_id")
    share = a.assign(h=a["language"] == "客家话").groupby("grid_id")["h"].mean()
    need = share[share >= 0.5].index
    langs = spec.set_index("specialist_id")["languages"]
    for gid in need:
        sid = g.set_index("grid_id").at[gid, "specialist_id"]
        assert sid == "" or "客家话" in langs[sid]
    with pytest.raises(ge.InputError, match="column 'dialect' named by a staffing rule is missing"):
        ge.plan_city(cust, spec, ge.Config(assign=ge.AssignConfig(rules=(
            {"customer_column": "dialect", "specialist_column": "languages"},))), service_area=city.service_area)


def test_staff_command(city, tmp_path, capsys):
    from gridengine.synth import write_city

    paths = write_city(city, tmp_path / "c")
    assert main(["staff", "--customers", str(paths["customers"]), "--capacity", "1000",
                 "--service-area", str(paths["service_area"]), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "specialists recommended for 5000 customers" in out and "pure-capacity minimum is 6" in out
    st = pd.read_csv(tmp_path / "o" / "staffing.csv")
    n = int(out.split("full: ")[1].split(" specialists")[0])
    assert st["grids"].sum() == n == st["specialists_missing"].sum()
    assert main(["staff", "--customers", str(paths["customers"]), "--capacity", "-5"]) == 2


def test_bad_rule_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[[assign.rules]]\ncustomer_column = 'language'\n")
    with pytest.raises(ge.ConfigError, match="assign.rules\\[0\\].specialist_column must be a column name"):
        ge.Config.from_toml(p)


def test_grids_are_sized_to_each_specialist_of_a_dual_track_roster(city):
    spec = city.specialists.copy()
    plan = ge.plan_city(city.customers, spec, service_area=city.service_area)
    m = plan.metrics
    assert m["capacity_violations"] == 0 and m["contiguous_share"] == 1.0 and m["coverage"] == 1.0
    g = plan.grids
    assert len(g) == len(spec) - len(m["spare_specialists"])  # one grid per specialist used
    assert spec["capacity"].nunique() == 2  # contract and agency
    fill = g["workload"] / g["capacity"]
    # every grid filled to about the same share of its own specialist's capacity
    assert (abs(fill / fill.mean() - 1) <= 0.05).mean() >= 0.9, fill.describe()
    assert m["within_5pct"] >= 0.9
    part = g[g["capacity"] < spec["capacity"].max()]
    assert len(part) and (part["workload"] < g.loc[g["capacity"] == spec["capacity"].max(), "workload"].mean()).all()


def test_short_roster_leaves_unstaffed_grids_where_the_work_lacks_specialists(city):
    plan = ge.plan_city(city.customers, city.specialists.iloc[:3], service_area=city.service_area)
    m = plan.metrics
    assert m["capacity_violations"] == 0 and m["n_unstaffed_grids"] >= 1 and m["coverage"] < 1.0
    assert m["n_staffed_grids"] == 3
    assert any(w.startswith("the roster cannot carry the workload") for w in plan.warnings)
    with pytest.raises(ge.CapacityShortfallError):
        ge.plan_city(city.customers, city.specialists.iloc[:3],
                     ge.Config(assign=ge.AssignConfig(require_full_staffing=True)), service_area=city.service_area)


def test_config_capacity_against_a_roster_is_applied_with_a_warning(city):
    cfg = ge.Config(partition=ge.PartitionConfig(capacity=500.0))
    plan = ge.plan_city(city.customers, city.specialists, cfg, service_area=city.service_area)
    assert any(w.startswith("partition.capacity = 500 caps") for w in plan.warnings)
    assert plan.metrics["capacity_violations"] == 0 and (plan.grids["workload"] <= 500 + 1e-9).all()


def test_island_without_local_specialist_is_reported():
    rng = np.random.default_rng(0)
    n = 1200
    lat = np.r_[22.54 + rng.normal(0, 0.01, 1000), 22.40 + rng.normal(0, 0.003, 200)]
    lon = np.r_[114.06 + rng.normal(0, 0.01, 1000), 114.30 + rng.normal(0, 0.003, 200)]
    cust = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lon": lon})
    spec = pd.DataFrame({"specialist_id": [f"s{i}" for i in range(6)], "lat": 22.54, "lon": 114.06,
                         "capacity": 300.0})
    plan = ge.plan_city(cust, spec)
    msgs = [w for w in plan.warnings if w.startswith("separate area")]
    assert len(msgs) == 1 and "workload 200 but specialists based there hold 0 (200 short)" in msgs[0]


def test_road_graph_travel_in_the_plan(tmp_path):
    import networkx as nx

    # a lattice of roads with a fast east-west avenue; specialists' travel is measured on it
    G = nx.DiGraph()
    for i in range(30):
        for j in range(30):
            G.add_node(f"{i}_{j}", y=22.50 + i * 0.002, x=114.00 + j * 0.002)
    for i in range(30):
        for j in range(30):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < 30 and j + dj < 30:
                    for a, b in ((f"{i}_{j}", f"{i + di}_{j + dj}"), (f"{i + di}_{j + dj}", f"{i}_{j}")):
                        G.add_edge(a, b, length=210.0, travel_time=30.0 if i == 15 else 60.0)
    nx.write_graphml(G, tmp_path / "roads.graphml")
    rng = np.random.default_rng(1)
    n = 900
    cust = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": 22.50 + rng.uniform(0, 0.058, n),
                         "lon": 114.00 + rng.uniform(0, 0.058, n)})
    spec = pd.DataFrame({"specialist_id": [f"s{i}" for i in range(6)], "lat": 22.53, "lon": 114.01 + 0.008 * np.arange(6),
                         "capacity": 200.0})
    plan = ge.plan_city(cust, spec, road_graph=tmp_path / "roads.graphml")
    tn = plan.metrics["travel_network"]
    assert tn["unit"] == "min" and tn["mean"] > 0
    assert plan.metrics["coverage"] == 1.0 and plan.metrics["capacity_violations"] == 0
    assert json_safe(plan.metrics)


def json_safe(obj):
    import json

    return json.dumps(obj, allow_nan=False)
