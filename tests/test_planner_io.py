"""Planner inputs and outputs: zones and barriers as hard boundaries at customer level, Excel in and
out, header names in Chinese and English, coordinate systems per input, the diff per specialist and
per customer, ``staff`` per zone by name, and the report's words."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString

import gridengine as ge
from gridengine.cells import _zone_of
from gridengine.cli import main
from gridengine.ingest import column_mapping, parse_column_map, read_customers, read_specialists, read_zones

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lumpy_cities as lc  # noqa: E402

CN_CUSTOMERS = {"customer_id": "客户编号", "lat": "纬度", "lon": "经度", "workload": "工作量", "district": "区县"}
CN_SPECIALISTS = {"specialist_id": "专员编号", "lat": "纬度", "lon": "经度", "capacity": "产能"}


def _xlsx(df: pd.DataFrame, path: Path, sheet: str = "Sheet1", before: list[tuple[str, pd.DataFrame]] = ()) -> Path:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for name, frame in [*before, (sheet, df)]:
        ws = wb.create_sheet(name)
        ws.append([str(c) for c in frame.columns])
        for row in frame.itertuples(index=False, name=None):
            ws.append([v.item() if hasattr(v, "item") else v for v in row])
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A real-shaped Shenzhen of 30,000 customers with its district polygons and a dual-track roster."""
    c = lc.make_city("shenzhen", 30_000, seed=0)
    roster = lc.make_roster(c, kind="dual", fill=0.9, seed=0)
    d = tmp_path_factory.mktemp("sz")
    paths = lc.write_city(c, roster, d, parquet=False)
    c.districts.to_file(d / "districts.geojson", driver="GeoJSON")
    paths["zones"] = d / "districts.geojson"
    return c, roster, paths


@pytest.fixture(scope="module")
def zoned(city):
    c, roster, paths = city
    return ge.plan_city(paths["customers"], paths["specialists"], service_area=paths["service_area"],
                        zones=paths["zones"])


def _zone_by_point(plan: ge.Plan, zones_path: Path) -> np.ndarray:
    z = read_zones(zones_path)
    a = plan.assignments
    return np.asarray(z.names, dtype=object)[_zone_of(a["lat"].to_numpy(), a["lon"].to_numpy(), list(z), nearest=True)]


# ------------------------------------------------------------------------------------------- zones


def test_zones_are_hard_at_customer_level(city, zoned):
    c, roster, paths = city
    a = zoned.assignments.assign(zone=_zone_by_point(zoned, paths["zones"]))
    assert (a.groupby("grid_id")["zone"].nunique() == 1).all(), "a grid holds customers of two zones"
    # every grid carries its zone's name, the one of its customers
    g_zone = zoned.grids.set_index("grid_id")["zone"]
    assert (g_zone.reindex(a["grid_id"]).to_numpy() == a["zone"].to_numpy()).all()
    names = set(c.districts["name"])
    assert set(g_zone) <= names and "罗湖区" in set(g_zone)
    m = zoned.metrics
    assert m["zone_within_5pct"] >= 0.85 and {z["zone"] for z in m["zones"]} == set(g_zone)
    # staffing by zone name, bridges never cross zones, no "across the water" for zone borders
    assert set(zoned.staffing["area"]) == set(g_zone)
    assert not any("across the water" in w for w in zoned.warnings)
    assert m["capacity_violations"] == 0


def test_zone_names_in_staffing_report_and_map(zoned, tmp_path):
    out = zoned.write(tmp_path / "p")
    st = pd.read_csv(out / "staffing.csv")
    assert "福田区" in set(st["area"])
    assert (out / "staffing.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese names
    page = (out / "map.html").read_text(encoding="utf-8")
    assert 'id="ge-zones"' in page and "福田区" in page and 'data-layer="ge-zones"' in page
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Grids within 5% of their zone" in report
    zones = gpd.read_file(out / "zones.geojson")
    assert "罗湖区" in set(zones["name"])
    again = ge.Plan.read(out)
    assert again.zones.names == zoned.zones.names
    assert "within zones" in zoned.summary()


def test_zone_name_column_and_errors(city, tmp_path):
    c, roster, paths = city
    z = c.districts.rename(columns={"name": "名称"})
    p = tmp_path / "z.geojson"
    z.to_file(p, driver="GeoJSON")
    assert read_zones(p).names == list(c.districts["name"])
    z2 = c.districts.assign(label=[f"D{i}" for i in range(len(c.districts))])
    p2 = tmp_path / "z2.geojson"
    z2.to_file(p2, driver="GeoJSON")
    assert read_zones(p2, name_column="label").names[0] == "D0"
    with pytest.raises(ge.InputError, match="zone name column 'nope' is missing") as e:
        read_zones(p2, name_column="nope")
    assert e.value.path == str(p2) and e.value.field == "nope"
    z3 = c.districts.assign(name="同名")
    p3 = tmp_path / "z3.geojson"
    z3.to_file(p3, driver="GeoJSON")
    with pytest.raises(ge.InputError, match="row 2: column 'name': zone name '同名' also names row 1") as e:
        read_zones(p3)
    assert e.value.row == 2 and e.value.field == "name"


def test_barrier_decides_by_the_side_a_customer_is_on(city):
    c, roster, paths = city
    cust = c.customers
    # a north-south line through the middle of the busiest district
    core = cust[cust["district"] == cust["district"].value_counts().index[0]]
    x = float(core["lon"].median())
    line = LineString([(x, cust["lat"].min() - 0.05), (x, cust["lat"].max() + 0.05)])
    plan = ge.plan_city(cust, roster, service_area=c.service_area, barriers=line)
    a = plan.assignments
    west = a["lon"].to_numpy() < x
    sides = pd.Series(west).groupby(a["grid_id"].to_numpy()).nunique()
    assert (sides == 1).all(), "a grid holds customers of both sides of the barrier"
    page = __import__("gridengine.report", fromlist=["x"]).render_map_html(
        plan.grids, plan.specialists, barriers=plan.barriers)
    assert 'id="ge-barriers"' in page and 'class="barrier"' in page


# ------------------------------------------------------------------------------------------- Excel


def test_xlsx_with_chinese_headers_plans_like_the_csv(city, tmp_path):
    c, roster, paths = city
    cust = c.customers.rename(columns=CN_CUSTOMERS)
    spec = roster.rename(columns=CN_SPECIALISTS)
    cx = _xlsx(cust, tmp_path / "客户.xlsx", sheet="客户")
    sx = _xlsx(spec, tmp_path / "专员.xlsx", sheet="专员")
    out = tmp_path / "x"
    assert main(["plan", "--customers", str(cx), "--specialists", str(sx), "--service-area",
                 str(paths["service_area"]), "--out", str(out), "--xlsx", "-q"]) == 0
    ref = ge.plan_city(paths["customers"], paths["specialists"], service_area=paths["service_area"])
    got = pd.read_csv(out / "assignments.csv", dtype={"customer_id": str, "specialist_id": str}, keep_default_na=False)
    want = ref.assignments
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert got["grid_id"].tolist() == want["grid_id"].tolist()
    assert got["specialist_id"].tolist() == want["specialist_id"].astype(str).tolist()
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert man["column_mapping"]["客户.xlsx"] == {"客户编号": "customer_id", "纬度": "lat", "经度": "lon",
                                                "工作量": "workload", "区县": "district"}
    assert man["column_mapping"]["专员.xlsx"]["产能"] == "capacity"
    # the plan workbook and grids.csv
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(out / "plan.xlsx"))
    assert wb.sheet_names == ["grids", "assignments", "specialists", "staffing", "rejects"]
    assert len(wb.get_sheet_by_name("assignments").to_python()) == len(want) + 1
    grids = pd.read_csv(out / "grids.csv")
    assert len(grids) == len(ref.grids) and "fill" in grids.columns and "geometry" not in grids.columns
    for f in ("grids.csv", "assignments.csv", "specialists.csv", "rejects.csv"):
        assert (out / f).read_bytes().startswith(b"\xef\xbb\xbf"), f


def test_sheet_columns_and_mapping_said(tmp_path, capsys):
    cust = pd.DataFrame({"保单号": ["P1", "P2", "P3"], "Y坐标": [22.54, 22.55, 22.56], "X坐标": [114.05, 114.06, 114.07],
                         "权重": [1.0, 2.0, 1.5]})
    other = pd.DataFrame({"说明": ["封面"]})
    p = _xlsx(cust, tmp_path / "c.xlsx", sheet="数据", before=[("封面", other)])
    cfg = ge.InputConfig(sheet="数据", columns="customer_id=保单号")
    df, rej = read_customers(p, config=cfg)
    assert df["customer_id"].tolist() == ["P1", "P2", "P3"] and df["workload"].tolist() == [1.0, 2.0, 1.5]
    assert df["lat"].tolist() == [22.54, 22.55, 22.56] and len(rej) == 0
    df2, _ = read_customers(p, config=ge.InputConfig(sheet="2", columns="customer_id=保单号"))
    assert df2["customer_id"].tolist() == ["P1", "P2", "P3"]
    with pytest.raises(ge.InputError, match="no sheet 'x' \\(sheets: 封面, 数据\\)") as e:
        read_customers(p, config=ge.InputConfig(sheet="x"))
    assert e.value.path == str(p)
    with pytest.raises(ge.InputError, match="required column 'customer_id' is missing"):
        read_customers(p, config=ge.InputConfig(sheet="数据"))  # 保单号 is not a customer id by default
    with pytest.raises(ge.InputError, match="is not COLUMN=HEADER"):
        parse_column_map("customer_id:保单号")
    assert column_mapping(["客户号", "latitude", "LNG", "地址"], "customers") == {
        "客户号": "customer_id", "latitude": "lat", "LNG": "lon", "地址": "address"}
    # a column already named as gridengine names it stays; its alias is left alone
    assert column_mapping(["customer_id", "客户编号", "lat", "lon"], "customers") == {}
    roster = pd.DataFrame({"工号": ["S1"], "纬度": [22.55], "经度": [114.06], "容量": [10.0]})
    r = read_specialists(_xlsx(roster, tmp_path / "s.xlsx"))
    assert r["specialist_id"].tolist() == ["S1"] and r["capacity"].tolist() == [10.0]


def test_xlsx_errors_name_file(tmp_path):
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ge.InputError, match="not a readable Excel workbook") as e:
        read_customers(bad)
    assert e.value.path == str(bad)
    df = pd.DataFrame({"客户编号": ["A", "B"], "纬度": [22.5, "北"], "经度": [114.0, 114.1]})
    df2, rej = read_customers(_xlsx(df, tmp_path / "c.xlsx"), config=ge.InputConfig(max_reject_share=0.9))
    assert rej["row"].tolist() == [2] and "column 'lat': value '北' is not a number" in rej["reason"].iat[0]


# ------------------------------------------------------------------------------------- coordinates


def test_coordinate_systems_per_input(city):
    c, roster, paths = city
    from gridengine.geocode import to_wgs84  # noqa: F401  (the conversion used)

    cfg = ge.Config(input=ge.InputConfig(coord_system="gcj02", specialists_coord_system="wgs84"))
    plan = ge.plan_city(c.customers.head(3000), roster, cfg)
    spec = plan.specialists.set_index("specialist_id")
    r = roster.set_index("specialist_id")
    assert np.allclose(spec.loc[r.index, "lat"].to_numpy(), r["lat"].to_numpy())  # bases untouched
    a = plan.assignments.set_index("customer_id")
    cu = c.customers.head(3000).set_index("customer_id")
    shift = np.abs(a.loc[cu.index, "lon"].to_numpy() - cu["lon"].to_numpy())
    assert shift.mean() > 1e-3  # customers converted (GCJ-02 is a few hundred metres off)
    text = plan.summary()
    assert "customers GCJ-02, converted to WGS-84" in text and "specialists WGS-84 (as given)" in text
    cfg2 = ge.Config(input=ge.InputConfig(coord_system="gcj02"))
    plan2 = ge.plan_city(c.customers.head(3000), roster, cfg2)
    assert "specialists GCJ-02, converted to WGS-84" in plan2.summary()
    with pytest.raises(ge.ConfigError, match="input.zones_coord_system must be one of"):
        ge.InputConfig(zones_coord_system="mars")


# -------------------------------------------------------------------------------------------- diff


def test_diff_per_specialist_and_customer(city, zoned, tmp_path):
    c, roster, paths = city
    a_dir = zoned.write(tmp_path / "a")
    leave = roster["specialist_id"].iloc[:3].tolist()
    r2 = roster[~roster["specialist_id"].isin(leave)]
    cust2 = c.customers.iloc[2000:]
    # two grids more than specialists: the later plan has unstaffed grids to name
    cfg = ge.Config(partition=ge.PartitionConfig(k=len(r2) + 2))
    plan_b = ge.plan_city(cust2, r2, cfg, service_area=c.service_area, zones=paths["zones"])
    b_dir = plan_b.write(tmp_path / "b")
    d = ge.diff_plans(a_dir, b_dir)
    assert isinstance(d.summary(), str) and isinstance(d.metrics, dict)  # one convention with Plan
    sp = d.specialists.set_index("specialist_id")
    assert (sp.loc[leave, "status"] == "resigned").all()
    assert set(sp["status"]) <= {"kept", "changed", "resigned", "new", "spare"}
    assert (sp["kept"] + sp["lost"] == sp["customers_a"]).all() and (sp["kept"] + sp["gained"] == sp["customers_b"]).all()
    ch = d.customers.set_index("customer_id")["change"]
    assert (ch.reindex(c.customers["customer_id"].iloc[:2000]) == "gone").all()
    moved = d.customers[d.customers["change"] == "changed specialist"]
    assert (moved["specialist_a"] != "").all() and (moved["specialist_b"] != "").all()
    without = d.customers[d.customers["change"] == "newly without a specialist"]
    assert (without["specialist_b"] == "").all()
    both = zoned.assignments.merge(plan_b.assignments, on="customer_id")
    assert d.metrics["customers_moved"] == int((both["specialist_id_x"] != both["specialist_id_y"]).sum())
    assert d.metrics["unstaffed_grids_b"] == plan_b.metrics["n_unstaffed_grids"] == len(d.unstaffed) >= 1
    text = d.summary()
    assert "resigned" in text and "newly without a specialist" in text
    out = d.write(tmp_path / "d")
    page = (out / "diff.html").read_text(encoding="utf-8")
    n_unst = plan_b.metrics["n_unstaffed_grids"]
    assert f"Unstaffed grids in the later plan ({n_unst})" in page and f"{n_unst} unstaffed" in page
    for g in d.unstaffed["grid_id"]:
        assert g in page
    # workloads on the map are the later plan's, not zero
    heavy = plan_b.grids.sort_values("workload").iloc[-1]
    assert f'data-grid-id="{heavy["grid_id"]}"' in page and f'data-wl="{heavy["workload"]:,.1f}"' in page
    spec_csv = pd.read_csv(out / "diff_specialists.csv", dtype=str, keep_default_na=False)
    assert list(spec_csv.columns[:2]) == ["specialist_id", "status"]


# ------------------------------------------------------------------------------------------- staff


def test_staff_per_zone_with_target_fill(city, capsys):
    c, roster, paths = city
    assert main(["staff", "--customers", str(paths["customers"]), "--capacity", "1000", "--zones",
                 str(paths["zones"]), "--service-area", str(paths["service_area"]), "--target-fill", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "grids planned 80% full" in out and "pure-capacity minimum is" in out
    total = float(c.customers["workload"].sum())
    assert f"pure-capacity minimum is {int(np.ceil(total / 1000))} " in out
    assert "福田区" in out and "recommended" in out and "cluster around" not in out
    assert main(["staff", "--customers", str(paths["customers"]), "--capacity", "1000", "--target-fill", "1.5"]) == 2


# ------------------------------------------------------------------------------------------ report


def test_report_labels_in_words_and_quiet_bridges():
    from gridengine.report import _label_of, planner_warnings, render_report_html

    for key in ("fill_max", "n_cells", "zone_within_5pct", "mean_fill", "barrier_cuts"):
        assert "_" not in _label_of(key) and _label_of(key)[0].isupper()
    keep, quiet = planner_warnings([
        "bridge: a separate area of 1 cells (workload 0) joins grid G0006 across 1.22 km (cell a to b)",
        "bridge: a separate area of 9 cells (workload 7) joins grid G0020 across 1.20 km (cell c to d)",
        "something else"])
    assert quiet == 1 and len(keep) == 2
    grids = gpd.GeoDataFrame({"grid_id": ["G1"], "specialist_id": ["S1"], "workload": [5.0], "n_customers": [5],
                              "n_cells": [1], "area_km2": [0.1], "capacity": [10.0]},
                             geometry=[shapely.box(114.0, 22.5, 114.01, 22.51)], crs="EPSG:4326")
    page = render_report_html(grids, {"coverage": 1.0, "fill_max": 0.5, "n_cells": 1}, warnings=[], capacity=10,
                              map_svg="<svg></svg>")
    assert "Fullest grid&#x27;s fill" in page and '<small class="key">fill_max</small>' in page
    assert "Cells tiling the service area" in page
