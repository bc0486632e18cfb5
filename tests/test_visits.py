"""The visits stage: accounting, own-specialist rule, day length, windows, due dates, urgency, booked
visits, determinism (serial and on Dask), bad inputs and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.cli import main
from gridengine.visits.core import DATA_FILES

START = "2026-12-07"  # a Monday: the horizon is 07..11 December


def _mins(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def make_plan(folder: Path, *, n_per_grid: int = 30, seed: int = 0) -> Path:
    """A small plan folder: four staffed grids around their specialists' bases and one unstaffed grid."""
    rng = np.random.default_rng(seed)
    bases = {"S1": (22.54, 114.05), "S2": (22.56, 114.08), "S3": (22.52, 114.10), "S4": (22.58, 114.02)}
    rows = []
    for k, (sid, (la, lo)) in enumerate(list(bases.items()) + [("", (22.60, 114.12))]):
        for j in range(n_per_grid):
            rows.append({"customer_id": f"C{k}{j:03d}", "lat": la + rng.normal(0, 0.01),
                         "lon": lo + rng.normal(0, 0.01), "cell": "x", "grid_id": f"G{k + 1}", "specialist_id": sid})
    # a compound: 40 customers of grid G1 at one address
    for j in range(40):
        rows.append({"customer_id": f"K{j:03d}", "lat": 22.545, "lon": 114.055, "cell": "x", "grid_id": "G1",
                     "specialist_id": "S1"})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "assignments.parquet", index=False)
    sp = pd.DataFrame([{"specialist_id": s, "lat": la, "lon": lo, "capacity": 1000.0, "grid_id": f"G{k + 1}",
                        "status": "assigned"} for k, (s, (la, lo)) in enumerate(bases.items())])
    sp.to_csv(folder / "specialists.csv", index=False)
    (folder / "manifest.json").write_text("{}\n")
    return folder


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    return make_plan(tmp_path_factory.mktemp("vplan") / "plan")


def risk_rows() -> pd.DataFrame:
    rows = [{"customer_id": f"C0{j:03d}", "priority": "1" if j < 5 else "2"} for j in range(20)]
    rows += [{"customer_id": f"C1{j:03d}", "due_date": "2026-12-08" if j < 6 else ""} for j in range(20)]
    rows += [{"customer_id": f"C2{j:03d}", "window_start": "14:00", "window_end": "15:30"} for j in range(8)]
    rows += [{"customer_id": f"C3{j:03d}", "visit_minutes": "45", "note": "bring the renewal form"} for j in range(10)]
    rows += [{"customer_id": f"C4{j:03d}"} for j in range(3)]  # unstaffed grid G5
    rows += [
        {"customer_id": "C3010", "due_date": "2026-12-01"},  # due date already passed
        {"customer_id": "C3011", "window_start": "06:00", "window_end": "07:00"},  # before the day starts
        {"customer_id": "C3012", "window_start": "12:00", "window_end": "12:20"},  # shorter than the visit
        {"customer_id": "C3013", "due_date": "2026-13-01"},  # bad date
        {"customer_id": "C3014", "priority": "high"},  # bad priority
        {"customer_id": "C3015", "window_start": "16:00", "window_end": "15:00"},  # window end before start
        {"customer_id": "NOPE", "priority": "1"},  # not in the plan
        {"customer_id": ""},  # empty id
        {"customer_id": "C3016", "visit_minutes": "0"},  # bad visit length
    ]
    df = pd.DataFrame(rows).fillna("")
    return df


@pytest.fixture(scope="module")
def result(plan_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("risk") / "risk.csv"
    risk_rows().to_csv(path, index=False)
    res = ge.plan_visits(plan_dir, path, ge.VisitsConfig(start=START, jobs=1))
    return res, path


def test_accounting_every_row_once(result):
    res, path = result
    n = len(pd.read_csv(path, dtype=str, keep_default_na=False))
    rows_v = res.visits["customer_id"].tolist()
    rows_u = res.unscheduled["row"].tolist()
    rows_r = res.rejects.loc[res.rejects["file"] == "at_risk", "row"].tolist()
    risk = pd.read_csv(path, dtype=str, keep_default_na=False)
    row_of = {c: i + 1 for i, c in enumerate(risk["customer_id"]) if c}
    visited_rows = [row_of[c] for c in rows_v]
    every = sorted(visited_rows + rows_u + rows_r)
    assert every == list(range(1, n + 1))
    assert res.metrics["n_scheduled"] + res.metrics["n_unscheduled"] + res.metrics["n_rejected"] == n
    assert (res.unscheduled["reason"].str.len() > 20).all()


def test_rejects_name_row_and_field(result):
    res, path = result
    rej = res.rejects.set_index("customer_id")
    assert "column 'due_date'" in rej.loc["C3013", "reason"] and "2026-13-01" in rej.loc["C3013", "reason"]
    assert "column 'priority'" in rej.loc["C3014", "reason"]
    assert "column 'window_end'" in rej.loc["C3015", "reason"]
    assert "not a customer of the plan" in rej.loc["NOPE", "reason"]
    assert "column 'visit_minutes'" in rej.loc["C3016", "reason"]
    assert rej.loc["", "reason"] == "column 'customer_id': empty"
    risk = pd.read_csv(path, dtype=str, keep_default_na=False)
    for r in res.rejects.itertuples():
        assert risk["customer_id"].iat[r.row - 1] == r.customer_id


def test_unscheduled_reasons_actionable(result):
    res, _ = result
    u = res.unscheduled.set_index("customer_id")
    assert u.loc["C3010", "reason"].startswith("due date 2026-12-01 already passed")
    assert "cannot be reached" in u.loc["C3011", "reason"]
    assert "cannot be reached" in u.loc["C3012", "reason"]
    for c in ("C4000", "C4001", "C4002"):
        assert u.loc[c, "reason"].startswith("no specialist for grid G5")
    assert res.metrics["unscheduled_by_reason"]["no specialist for the grid"] == 3
    assert "no specialist for the grid" in res.summary().splitlines()[1]


def test_own_specialist(result, plan_dir):
    res, _ = result
    a = pd.read_parquet(plan_dir / "assignments.parquet").set_index("customer_id")
    assert len(res.visits) > 50
    own = a.loc[res.visits["customer_id"], "specialist_id"].to_numpy()
    assert (res.visits["specialist_id"].to_numpy() == own).all()
    assert (res.visits["grid_id"].to_numpy() == a.loc[res.visits["customer_id"], "grid_id"].to_numpy()).all()


def check_days(visits: pd.DataFrame, days: pd.DataFrame, start: int = 9 * 60, end: int = 17 * 60) -> None:
    """Times add up along each route and stay within the day, from and back to the base."""
    for (sid, date), g in visits.groupby(["specialist_id", "date"]):
        g = g.sort_values("seq")
        assert g["seq"].tolist() == list(range(1, len(g) + 1))
        t = start
        for r in g.itertuples():
            arr, dep = _mins(r.arrival), _mins(r.departure)
            assert arr >= t + r.travel_min - 1, (sid, date, r.seq)  # minutes are rounded
            assert dep - arr == pytest.approx(r.visit_minutes, abs=1)
            t = dep
        last = g.iloc[-1]
        assert t + last["return_min"] <= end + 1
        d = days[(days["specialist_id"] == sid) & (days["date"] == date)].iloc[0]
        assert _mins(d["depart"]) >= start and _mins(d["back"]) <= end + 1


def test_day_length_and_service_times(result):
    res, _ = result
    check_days(res.visits, res.days)
    c3 = res.visits[res.visits["customer_id"].str.startswith("C3")]
    assert (c3["visit_minutes"] == 45).all() and (c3["note"] == "bring the renewal form").all()


def test_time_windows(result):
    res, _ = result
    w = res.visits[res.visits["customer_id"].str.startswith("C2")]
    assert len(w) == 8
    assert (w["arrival"].map(_mins) >= 14 * 60).all() and (w["departure"].map(_mins) <= 15 * 60 + 30).all()


def test_due_dates_met_when_there_is_room(result):
    res, _ = result
    due = res.visits[res.visits["due_date"] != ""]
    assert len(due) == 6
    assert (due["date"] <= due["due_date"]).all() and due["on_time"].all()
    assert res.metrics["on_time_share"] == 1.0


def test_urgent_first_when_the_week_is_full(plan_dir, tmp_path):
    """S1's compound alone is more than a week (40 + 30 visits in 5 days of 8 h at 45 min):
    every priority-1 customer is visited, the least urgent are the ones left out, with the reason."""
    cid = [f"K{j:03d}" for j in range(40)] + [f"C0{j:03d}" for j in range(30)]
    pri = ["1"] * 10 + ["3"] * 30 + ["2"] * 30
    risk = pd.DataFrame({"customer_id": cid, "priority": pri, "visit_minutes": "45"})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1))
    pri_of = dict(zip(cid, pri))
    visited = set(res.visits["customer_id"])
    assert all(c in visited for c in cid if pri_of[c] == "1")
    left = res.unscheduled["customer_id"].tolist()
    assert left and all(pri_of[c] == "3" for c in left)
    assert res.unscheduled["reason"].str.startswith("more visits than the horizon holds: S1 has 70").all()
    assert len(visited) + len(left) == 70
    check_days(res.visits, res.days)
    # priority 1 in the first days
    p1 = res.visits[res.visits["customer_id"].map(pri_of) == "1"]
    assert p1["date"].max() <= "2026-12-08"


def test_booked_visits_stay_fixed(plan_dir, tmp_path, result):
    res0, path = result
    first = res0.visits[(res0.visits["specialist_id"] == "S2")].iloc[[0, 3]]
    booked = first[["specialist_id", "date", "customer_id", "arrival"]].copy()
    booked = pd.concat([booked, pd.DataFrame([{"specialist_id": "S1", "date": "2026-12-03",
                                               "customer_id": "C0000", "arrival": "10:00"}])])
    booked.to_csv(tmp_path / "booked.csv", index=False)
    res = ge.plan_visits(plan_dir, path, ge.VisitsConfig(start=START, jobs=1), booked=tmp_path / "booked.csv")
    v = res.visits.set_index("customer_id")
    for r in first.itertuples():
        assert v.loc[r.customer_id, "date"] == r.date and v.loc[r.customer_id, "arrival"] == r.arrival
        assert v.loc[r.customer_id, "booked"]
    assert res.unscheduled.set_index("customer_id").loc["C0000", "reason"].startswith("already visited on 2026-12-03")
    assert res.metrics["n_booked_kept"] == 2 and res.metrics["n_booked_retimed"] == 0
    check_days(res.visits, res.days)


def test_deterministic_serial_and_dask(plan_dir, tmp_path, result):
    _, path = result
    outs = []
    for k, jobs in enumerate((1, 1, 2)):
        res = ge.plan_visits(plan_dir, path, ge.VisitsConfig(start=START, jobs=jobs))
        outs.append(res.write(tmp_path / f"v{k}"))
    for f in DATA_FILES:
        b = (outs[0] / f).read_bytes()
        assert (outs[1] / f).read_bytes() == b, f
        assert (outs[2] / f).read_bytes() == b, f
    assert (outs[0] / "index.html").is_file() and len(list((outs[0] / "pages").glob("*.html"))) == 4


def test_inputs_parquet_xlsx_and_bad_files(plan_dir, tmp_path):
    risk = pd.DataFrame({"customer_id": ["C0001", "C1002"], "due_date": ["2026-12-09", ""], "priority": ["1", ""]})
    risk.to_parquet(tmp_path / "r.parquet", index=False)
    risk.to_excel(tmp_path / "r.xlsx", index=False)
    a = ge.plan_visits(plan_dir, tmp_path / "r.parquet", ge.VisitsConfig(start=START, jobs=1))
    b = ge.plan_visits(plan_dir, tmp_path / "r.xlsx", ge.VisitsConfig(start=START, jobs=1))
    assert a.metrics["n_scheduled"] == b.metrics["n_scheduled"] == 2
    (tmp_path / "nocol.csv").write_text("id,priority\nC0001,1\n")
    with pytest.raises(ge.InputError, match="required column 'customer_id' is missing"):
        ge.plan_visits(plan_dir, tmp_path / "nocol.csv", ge.VisitsConfig(start=START, jobs=1))
    (tmp_path / "empty.csv").write_text("customer_id\n")
    with pytest.raises(ge.InputError, match="no data rows"):
        ge.plan_visits(plan_dir, tmp_path / "empty.csv", ge.VisitsConfig(start=START, jobs=1))
    with pytest.raises(ge.InputError, match="not a complete plan folder"):
        ge.plan_visits(tmp_path, risk, ge.VisitsConfig(start=START, jobs=1))
    (tmp_path / "bad.xlsx").write_text("not a workbook")
    with pytest.raises(ge.InputError, match="not a readable xlsx"):
        ge.plan_visits(plan_dir, tmp_path / "bad.xlsx", ge.VisitsConfig(start=START, jobs=1))
    with pytest.raises(ge.ConfigError, match="visits.start"):
        ge.VisitsConfig(start="07/12/2026")
    with pytest.raises(ge.ConfigError, match="visits.day_hours"):
        ge.VisitsConfig(day_hours=0)


def test_pii_only_when_asked(plan_dir, tmp_path):
    risk = pd.DataFrame({"customer_id": ["C0001"], "name": ["张三"], "phone": ["13800000000"], "note": ["回访"]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1))
    out = res.write(tmp_path / "a")
    text = (out / "visits.csv").read_text() + (out / "pages" / "S1.html").read_text(encoding="utf-8")
    assert "13800000000" not in text and "张三" not in text and "回访" in text
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1, include_pii=True))
    out = res.write(tmp_path / "b")
    assert "13800000000" in (out / "pages" / "S1.html").read_text(encoding="utf-8")
    assert res.manifest["pii_columns"] == ["name", "phone"]


def test_write_atomic_and_no_overwrite(result, tmp_path):
    res, _ = result
    out = res.write(tmp_path / "v")
    before = (out / "visits.csv").read_bytes()
    with pytest.raises(ge.PlanWriteError, match="already holds files"):
        res.write(out)
    assert (out / "visits.csv").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_end_to_end(plan_dir, tmp_path, capsys):
    risk_rows().to_csv(tmp_path / "risk.csv", index=False)
    out = tmp_path / "visits"
    rc = main(["visits", "--plan", str(plan_dir), "--at-risk", str(tmp_path / "risk.csv"), "--out", str(out),
               "--start", START, "--days", "3", "--day-hours", "6", "--visit-minutes", "40", "--speed-kmh", "25",
               "--jobs", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "UNSCHEDULED" in printed and "visits written to" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["dates"] == ["2026-12-07", "2026-12-08", "2026-12-09"]
    v = pd.read_csv(out / "visits.csv", dtype=str, keep_default_na=False)
    assert list(v.columns[:8]) == ["specialist_id", "date", "seq", "customer_id", "arrival", "departure",
                                   "travel_km", "travel_min"]
    assert v["departure"].map(_mins).max() <= 15 * 60
    days = pd.DataFrame({"specialist_id": [], "date": []})
    assert (pd.read_csv(out / "unscheduled.csv")["reason"] != "").all() and len(days) == 0
    # out holds files: exit 2 with one line; a bad date: exit 2
    assert main(["visits", "--plan", str(plan_dir), "--at-risk", str(tmp_path / "risk.csv"), "--out", str(out),
                 "--start", START]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert main(["visits", "--plan", str(plan_dir), "--at-risk", str(tmp_path / "risk.csv"), "--out",
                 str(tmp_path / "x"), "--start", "2026-02-30"]) == 2
    assert "visits.start" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_road_graph_distances(plan_dir, tmp_path):
    """Along a street lattice (500 m blocks) every leg is at least the straight line, and the run
    records the graph's hash."""
    import math

    import networkx as nx

    from gridengine.visits.solve import haversine_m

    lat0, lon0, step = 22.48, 113.98, 0.0045
    dlon = step / math.cos(math.radians(lat0 + 0.07))
    g = nx.MultiDiGraph()
    for i in range(36):
        for j in range(40):
            g.add_node(f"{i}_{j}", y=lat0 + i * step, x=lon0 + j * dlon)
    for i in range(36):
        for j in range(40):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < 36 and j + dj < 40:
                    a, b = f"{i}_{j}", f"{i + di}_{j + dj}"
                    g.add_edge(a, b, length=500.0)
                    g.add_edge(b, a, length=500.0)
    nx.write_graphml(g, tmp_path / "roads.graphml")
    risk = pd.DataFrame({"customer_id": [f"C1{j:03d}" for j in range(12)]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1), road_graph=tmp_path / "roads.graphml")
    assert res.metrics["n_scheduled"] == 12 and "road_graph_sha256" in res.manifest
    a = pd.read_parquet(plan_dir / "assignments.parquet").set_index("customer_id")
    base = (22.56, 114.08)
    for (sid, date), grp in res.visits.groupby(["specialist_id", "date"]):
        prev = base
        for r in grp.sort_values("seq").itertuples():
            here = (a.loc[r.customer_id, "lat"], a.loc[r.customer_id, "lon"])
            straight = haversine_m(prev[0], prev[1], here[0], here[1]) / 1000.0
            assert r.travel_km >= straight - 0.3  # snapping to the nearest corner may cut a little
            assert r.travel_min == pytest.approx(r.travel_km / 20.0 * 60.0, abs=0.2)
            prev = here
    check_days(res.visits, res.days)


def test_booked_visit_of_a_customer_not_on_the_list_is_kept(plan_dir, tmp_path):
    risk = pd.DataFrame({"customer_id": ["C0001", "C0002"]})
    booked = pd.DataFrame({"specialist_id": ["S3"], "date": ["2026-12-09"], "customer_id": ["C2005"],
                           "arrival": ["11:00"]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1), booked=booked)
    kept = res.visits[res.visits["customer_id"] == "C2005"]
    assert len(kept) == 1 and kept["specialist_id"].iat[0] == "S3" and kept["arrival"].iat[0] == "11:00"
    assert kept["date"].iat[0] == "2026-12-09" and kept["booked"].iat[0]
    assert res.metrics["n_scheduled"] == 2 and res.metrics["n_visits"] == 3
    bad = pd.DataFrame({"specialist_id": ["S9"], "date": ["2026-12-09"], "customer_id": ["C2005"],
                        "arrival": ["25:00"]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1), booked=bad)
    r = res.rejects[res.rejects["file"] == "booked"]
    assert len(r) == 1 and r["row"].iat[0] == 1 and "column 'specialist_id'" in r["reason"].iat[0]


def test_clashing_bookings_keep_their_day(plan_dir):
    """Two bookings of one specialist at the same time in different places cannot both keep their
    time: both stay on their day, one at another time, and the run says so."""
    risk = pd.DataFrame({"customer_id": ["C0001", "C0002", "C0003"]})
    booked = pd.DataFrame({"specialist_id": ["S1", "S1"], "date": ["2026-12-08", "2026-12-08"],
                           "customer_id": ["C0001", "C0002"], "arrival": ["10:00", "10:00"]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1), booked=booked)
    v = res.visits.set_index("customer_id")
    assert (v.loc[["C0001", "C0002"], "date"] == "2026-12-08").all()
    assert res.metrics["n_booked_retimed"] == 1 and "could not keep their time" in res.summary()
    assert res.metrics["n_scheduled"] == 3
    check_days(res.visits, res.days)


def test_every_row_rejected_still_writes_a_folder(plan_dir, tmp_path):
    risk = pd.DataFrame({"customer_id": ["NOPE1", "NOPE2"], "priority": ["1", "x"]})
    res = ge.plan_visits(plan_dir, risk, ge.VisitsConfig(start=START, jobs=1))
    assert len(res.visits) == 0 and len(res.unscheduled) == 0 and len(res.rejects) == 2
    assert res.metrics["n_rejected"] == 2 and res.metrics["n_scheduled"] == 0
    out = res.write(tmp_path / "v")
    assert (out / "index.html").is_file() and (out / "visits.csv").read_text().startswith("specialist_id,date,seq")


def test_rerun_with_its_own_visits_as_booked_is_unchanged(result, plan_dir, tmp_path):
    """Last run's visits.csv as --booked: every visit stays where it was."""
    res0, path = result
    out = res0.write(tmp_path / "week")
    res = ge.plan_visits(plan_dir, path, ge.VisitsConfig(start=START, jobs=1), booked=out / "visits.csv")
    cols = ["specialist_id", "date", "customer_id", "arrival"]
    key = ["specialist_id", "date", "arrival", "customer_id"]
    a = res0.visits[cols].sort_values(key).reset_index(drop=True)
    b = res.visits[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert res.visits["booked"].all() and res.metrics["n_booked_retimed"] == 0


def test_weekends_option(plan_dir, tmp_path, capsys):
    risk = pd.DataFrame({"customer_id": ["C0001"]})
    risk.to_csv(tmp_path / "r.csv", index=False)
    assert main(["visits", "--plan", str(plan_dir), "--at-risk", str(tmp_path / "r.csv"), "--out",
                 str(tmp_path / "o"), "--start", "2026-12-12", "--days", "2", "--weekends", "--jobs", "1", "-q"]) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["dates"] == ["2026-12-12", "2026-12-13"]
    assert ge.VisitsConfig(start="2026-12-12", days=2).dates()[0].isoformat() == "2026-12-14"
