"""Ingest: valid tables pass, bad rows become rejects with reasons, bad files raise InputError."""

import re

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.ingest import read_customers, read_specialists


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


GOOD = "customer_id,lat,lon,workload,address\nC1,22.54,114.06,1,福田区\nC2,22.55,114.07,2.5,南山区\nC3,22.56,114.05,1,罗湖区\n"


def test_good_customers(tmp_path):
    cust, rej = read_customers(write(tmp_path, "c.csv", GOOD))
    assert list(cust.columns[:5]) == ["customer_id", "lat", "lon", "workload", "row"]
    assert cust["customer_id"].tolist() == ["C1", "C2", "C3"]
    assert cust["workload"].tolist() == [1.0, 2.5, 1.0]
    assert cust["row"].tolist() == [1, 2, 3]
    assert "address" in cust.columns  # other columns are carried through
    assert len(rej) == 0


def test_workload_defaults_to_one(tmp_path):
    cust, _ = read_customers(write(tmp_path, "c.csv", "customer_id,lat,lon\nA,22.5,114.0\n"))
    assert cust["workload"].tolist() == [1.0]


def test_missing_column_names_file_and_suggests(tmp_path):
    p = write(tmp_path, "c.csv", "customer_id,latt,lon\nA,22.5,114.0\n")
    with pytest.raises(ge.InputError) as exc:
        read_customers(p)
    msg = str(exc.value)
    assert str(p) in msg and "required column 'lat' is missing" in msg
    assert exc.value.field == "lat" and exc.value.path == str(p)


def test_misspelt_id_column_gets_a_hint(tmp_path):
    p = write(tmp_path, "c.csv", "custmer_id,lat,lon\nA,22.5,114.0\n")
    with pytest.raises(ge.InputError, match="did you mean 'custmer_id'"):
        read_customers(p)


@pytest.mark.parametrize("row, reason", [
    ("B,abc,114.0", "column 'lat': value 'abc' is not a number"),
    ("B,95,114.0", "column 'lat': value 95.0 is outside [-90, 90]"),
    ("B,22.5,190", "column 'lon': value 190.0 is outside [-180, 180]"),
    ("B,114.05,22.5", "lat and lon look swapped"),
    ("B,0,0", "coordinates (0, 0) are a placeholder"),
    ("B,,114.0", "column 'lat': empty"),
    ("B,nan,114.0", "column 'lat': empty"),
    (",22.5,114.0", "column 'customer_id': empty"),
    ("B,22.5,114.0,-1", "column 'workload': value -1.0 is negative"),
    ("B,22.5,114.0,lots", "column 'workload': value 'lots' is not a number"),
    ("B,22.5,114.0,NaN", "column 'workload': empty or NaN"),
    ("B,39.9,116.4", "km from the city's median location"),
])
def test_bad_rows_are_rejected_with_reason(tmp_path, row, reason):
    head = "customer_id,lat,lon,workload\n"
    good = "".join(f"G{i},22.5{i},114.0{i},1\n" for i in range(5))
    row = row if row.count(",") == 3 else row + ",1"
    cust, rej = read_customers(write(tmp_path, "c.csv", head + good + row + "\n"))
    assert len(cust) + len(rej) == 6  # nothing lost
    assert len(rej) == 1, rej
    assert rej["row"].iat[0] == 6
    assert reason in rej["reason"].iat[0]


def test_identical_duplicate_keeps_first_and_conflicting_rejects_all(tmp_path):
    text = ("customer_id,lat,lon\n"
            "A,22.5,114.0\nB,22.6,114.1\nA,22.5,114.0\n"   # identical: keep row 1, reject row 3
            "C,22.5,114.2\nD,22.7,114.0\nC,22.9,114.3\n")  # conflicting: reject rows 4 and 6
    cust, rej = read_customers(write(tmp_path, "c.csv", text))
    assert cust["customer_id"].tolist() == ["A", "B", "D"]
    assert rej["row"].tolist() == [3, 4, 6]
    assert "duplicate of row 1" in rej["reason"].iat[0]
    assert "appears in rows 4, 6 with different data" in rej["reason"].iat[1]


def test_too_many_rejects_is_an_error(tmp_path):
    text = "customer_id,lat,lon\n" + "".join(f"A{i},114.0,22.5\n" for i in range(10))
    with pytest.raises(ge.InputError) as exc:
        read_customers(write(tmp_path, "c.csv", text))
    assert "10 of 10 rows (100%) rejected" in str(exc.value)
    assert "swapped" in str(exc.value) and "first at row 1" in str(exc.value)


@pytest.mark.parametrize("text, needle", [("", "file is empty"), ("   \n", "file is empty"),
                                          ("customer_id,lat,lon\n", "no data rows (header only)")])
def test_empty_files(tmp_path, text, needle):
    with pytest.raises(ge.InputError, match=re.escape(needle)):
        read_customers(write(tmp_path, "c.csv", text))


def test_missing_file(tmp_path):
    with pytest.raises(ge.InputError, match="file not found"):
        read_customers(tmp_path / "nope.csv")


def test_gbk_bom_and_delimiters(tmp_path):
    base = "customer_id,lat,lon,address\nA,22.5,114.0,深圳市福田区\n"
    for name, data in {
        "gbk.csv": base.encode("gbk"),
        "bom.csv": "\ufeff".encode() + base.encode(),
        "semi.csv": base.replace(",", ";").encode(),
        "tab.tsv": base.replace(",", "\t").encode(),
    }.items():
        p = tmp_path / name
        p.write_bytes(data)
        cust, rej = read_customers(p)
        assert cust["address"].iat[0] == "深圳市福田区", name
        assert cust["lat"].iat[0] == 22.5


def test_explicit_wrong_encoding_is_named(tmp_path):
    p = tmp_path / "gbk.csv"
    p.write_bytes("customer_id,lat,lon,address\nA,22.5,114.0,深圳\n".encode("gbk"))
    with pytest.raises(ge.InputError, match="cannot decode as utf-8"):
        read_customers(p, config=ge.InputConfig(encoding="utf-8"))


def test_parquet_and_geoparquet(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    df = pd.DataFrame({"customer_id": [1, 2], "lat": [22.5, 22.6], "lon": [114.0, 114.1], "workload": [1.0, 2.0]})
    df.to_parquet(tmp_path / "c.parquet")
    cust, rej = read_customers(tmp_path / "c.parquet")
    assert cust["customer_id"].tolist() == ["1", "2"] and len(rej) == 0
    gdf = gpd.GeoDataFrame({"customer_id": ["a", "b"]}, geometry=[Point(114.0, 22.5), Point(114.1, 22.6)], crs="EPSG:4326")
    gdf.to_parquet(tmp_path / "g.parquet")
    cust, _ = read_customers(tmp_path / "g.parquet")
    assert cust["lat"].tolist() == [22.5, 22.6] and cust["lon"].tolist() == [114.0, 114.1]


def test_truncated_parquet(tmp_path):
    df = pd.DataFrame({"customer_id": ["a"], "lat": [22.5], "lon": [114.0]})
    df.to_parquet(tmp_path / "c.parquet")
    data = (tmp_path / "c.parquet").read_bytes()
    (tmp_path / "t.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ge.InputError, match="not a readable Parquet file"):
        read_customers(tmp_path / "t.parquet")


SPEC = "specialist_id,lat,lon,capacity\nS1,22.5,114.0,1000\nS2,22.6,114.1,500\n"


def test_good_specialists(tmp_path):
    s = read_specialists(write(tmp_path, "s.csv", SPEC))
    assert s["specialist_id"].tolist() == ["S1", "S2"]
    assert s["capacity"].tolist() == [1000.0, 500.0]
    assert s["current_grid"].tolist() == ["", ""]


@pytest.mark.parametrize("extra, needle, row, field", [
    ("S3,22.5,114.0,0", "row 3: column 'capacity': value 0.0 must be positive", 3, "capacity"),
    ("S3,22.5,114.0,-10", "row 3: column 'capacity': value -10.0 must be positive", 3, "capacity"),
    ("S3,22.5,114.0,", "row 3: column 'capacity': empty", 3, "capacity"),
    ("S1,22.5,114.0,100", "row 3: duplicate specialist_id 'S1' (first at row 1)", 3, None),
    ("S3,x,114.0,100", "row 3: column 'lat': value 'x' is not a number", 3, "lat"),
])
def test_bad_specialists_raise_with_row_and_field(tmp_path, extra, needle, row, field):
    p = write(tmp_path, "s.csv", SPEC + extra + "\n")
    with pytest.raises(ge.InputError) as exc:
        read_specialists(p)
    assert str(p) in str(exc.value) and needle in str(exc.value)
    assert exc.value.row == row and exc.value.field == field


def test_no_specialists(tmp_path):
    with pytest.raises(ge.InputError, match="no specialists"):
        read_specialists(write(tmp_path, "s.csv", "specialist_id,lat,lon,capacity\n"))


def test_every_row_accounted_for_on_messy_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(300):
        lat, lon = 22.5 + rng.random() / 10, 114 + rng.random() / 10
        r = rng.random()
        if r < 0.05:
            lat = "x"
        elif r < 0.1:
            lon = 500
        rows.append(f"C{i % 280},{lat},{lon}")
    cust, rej = read_customers(write(tmp_path, "c.csv", "customer_id,lat,lon\n" + "\n".join(rows) + "\n"))
    assert len(cust) + len(rej) == 300
    assert sorted(cust["row"].tolist() + rej["row"].tolist()) == list(range(1, 301))
    assert cust["customer_id"].is_unique
