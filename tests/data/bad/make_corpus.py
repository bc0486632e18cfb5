"""Regenerate the bad-input corpus in this folder (deterministic; run from anywhere).

    .venv/bin/python tests/data/bad/make_corpus.py

Every file is small (tens of rows). The valid base city is 40 customers of the bundled
sample city (the 40 nearest to Futian centre, so one small service area) and a roster of
three specialists of capacity 20, so the base city plans into three grids. Each bad file
changes one thing; ``tests/test_bad_inputs.py`` says what gridengine must do with it
(and README.md in this folder lists the cases).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SAMPLE = ROOT / "data" / "sample"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


def base_customers() -> pd.DataFrame:
    """40 sample customers near Futian centre, with made-up names and phone numbers (PII to keep out of plans)."""
    c = pd.read_csv(SAMPLE / "customers.csv", dtype=str, keep_default_na=False)
    lat, lon = c["lat"].astype(float), c["lon"].astype(float)
    d = (lat - 22.545) ** 2 + ((lon - 114.055) * 0.92) ** 2
    sel = c.loc[d.sort_values(kind="stable").index[:40]].sort_values("customer_id").reset_index(drop=True)
    i = np.arange(len(sel))
    sel.insert(1, "name", [SURNAMES[k % 20] + GIVEN[(7 * k) % 20] + GIVEN[(3 * k + 5) % 20] for k in i])
    sel.insert(2, "phone", [f"1380755{k:04d}" for k in i])
    return sel


def base_specialists() -> pd.DataFrame:
    s = pd.read_csv(SAMPLE / "specialists.csv", dtype=str, keep_default_na=False)
    s = s[s["specialist_id"].isin(["S0013", "S0031", "S0033"])].reset_index(drop=True)
    s["capacity"] = "20.0"
    return s


def csv_text(df: pd.DataFrame, sep: str = ",", lineterminator: str = "\n") -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, sep=sep, lineterminator=lineterminator)
    return buf.getvalue()


def write(name: str, data: str | bytes) -> None:
    (HERE / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def main() -> None:
    cust = base_customers()
    spec = base_specialists()
    plain = cust[["customer_id", "lat", "lon", "workload"]].copy()
    write("city_customers.csv", csv_text(cust))
    write("city_specialists.csv", csv_text(spec))
    write("city_specialists_gbk.csv", csv_text(spec).encode("gbk"))
    write("city_customers_plain.csv", csv_text(plain))

    # -- the file as a whole -------------------------------------------------------------------
    write("empty.csv", b"")
    write("blank_lines.csv", "\n   \n\t\n")
    write("header_only.csv", "customer_id,lat,lon,workload\n")
    write("missing_column.csv", csv_text(plain.drop(columns=["lon"])))
    write("misspelt_column.csv", csv_text(plain.rename(columns={"lon": "lonn"})))
    dup_col = plain.copy()
    write("duplicate_column.csv", csv_text(dup_col).replace("customer_id,lat,lon,workload", "customer_id,lat,lat,workload", 1))
    write("gbk.csv", csv_text(cust).encode("gbk"))
    write("undecodable.csv", csv_text(cust).encode("utf-8").replace("蜜".encode(), b"\xff\xfe", 1))
    write("utf8_bom.csv", "\ufeff" + csv_text(cust))
    write("semicolon.csv", csv_text(cust, sep=";"))
    write("tab.tsv", csv_text(cust, sep="\t"))
    write("pipe.csv", csv_text(cust, sep="|"))
    write("crlf.csv", csv_text(cust, lineterminator="\r\n"))
    qn = cust.copy()
    qn.loc[1, "address"] = "广东省深圳市福田区\n(后门) 3栋, 1单元"      # quoted newline and comma in a value
    qn.loc[4, "address"] = 'say "hi"\nline two\nline three'
    qn.loc[6, "lat"] = "not-a-lat"                                    # row 7: must be reported as row 7
    write("quoted_newlines.csv", csv_text(qn))
    lines = csv_text(plain).splitlines(keepends=True)
    lines[6] = lines[6].rstrip("\n") + ",extra\n"                     # data row 6 has 5 fields
    write("ragged_row.csv", "".join(lines))

    # -- rows: duplicates ----------------------------------------------------------------------
    dup = pd.concat([plain, plain.iloc[[3]]], ignore_index=True)      # row 41 = row 4 (identical)
    conflict = plain.iloc[[5]].copy()
    conflict["workload"] = "9.0"
    dup = pd.concat([dup, conflict], ignore_index=True)               # row 42 conflicts with row 6
    write("duplicate_customer_ids.csv", csv_text(dup))

    # -- rows: coordinates ---------------------------------------------------------------------
    sw = plain.copy()
    for r in (2, 9, 17):
        sw.loc[r, ["lat", "lon"]] = sw.loc[r, ["lon", "lat"]].to_numpy()
    write("latlon_swapped_rows.csv", csv_text(sw))
    swall = plain.rename(columns={"lat": "lon", "lon": "lat"})[["customer_id", "lat", "lon", "workload"]]
    write("latlon_swapped_file.csv", csv_text(swall))
    oor = plain.copy()
    oor.loc[0, "lat"], oor.loc[1, "lon"], oor.loc[2, "lat"] = "95.2", "190.5", "-91"
    write("out_of_range.csv", csv_text(oor))
    zz = plain.copy()
    zz.loc[4, ["lat", "lon"]] = ["0", "0"]
    zz.loc[5, ["lat", "lon"]] = ["0.0", "0.000"]
    write("zero_zero.csv", csv_text(zz))
    nn = plain.copy()
    nn.loc[0, "lat"], nn.loc[1, "lon"], nn.loc[2, ["lat", "lon"]], nn.loc[3, "lat"] = "NaN", "nan", ["", ""], " "
    write("nan_empty_coordinates.csv", csv_text(nn))
    inf = plain.copy()
    inf.loc[7, "lat"], inf.loc[8, "lon"] = "inf", "-1e400"
    write("infinite_coordinates.csv", csv_text(inf))
    far = plain.copy()
    far.loc[10, ["lat", "lon"]] = ["39.9042", "116.4074"]             # Beijing
    far.loc[11, ["lat", "lon"]] = ["31.2304", "121.4737"]             # Shanghai
    write("far_outside_city.csv", csv_text(far))
    addr_only = cust.copy()
    addr_only.loc[[3, 4], ["lat", "lon"]] = ""                        # address but no coordinates, no geocoder
    write("address_without_coordinates.csv", csv_text(addr_only))

    # -- rows: workload ------------------------------------------------------------------------
    wl = plain.copy()
    wl.loc[0, "workload"], wl.loc[1, "workload"], wl.loc[2, "workload"] = "lots", "1,5", "1.0.0"
    write("workload_non_numeric.csv", csv_text(wl))
    wl = plain.copy()
    wl.loc[3, "workload"], wl.loc[4, "workload"] = "-1", "-0.5"
    write("workload_negative.csv", csv_text(wl))
    wl = plain.copy()
    wl.loc[5, "workload"], wl.loc[6, "workload"], wl.loc[7, "workload"], wl.loc[8, "workload"] = "NaN", "", "inf", "1e999"
    write("workload_nan_empty_infinite.csv", csv_text(wl))
    wl = plain.copy()
    wl.loc[:23, "workload"] = "n/a"                                  # 24 of 40 rows bad: the file is wrong
    write("too_many_bad_rows.csv", csv_text(wl))

    # -- degenerate cities ---------------------------------------------------------------------
    write("one_customer.csv", csv_text(plain.iloc[[0]]))
    one = pd.DataFrame({"customer_id": [f"A{i:02d}" for i in range(30)], "lat": "22.545", "lon": "114.055",
                        "workload": "1.0", "address": [f"同一小区{i // 10 + 1}栋{i % 10 + 1}01室" for i in range(30)]})
    write("one_address.csv", csv_text(one))                          # workload 30 at one point, capacity 20
    write("heavy_customer.csv", csv_text(pd.DataFrame(
        {"customer_id": ["H1"], "lat": ["22.545"], "lon": ["114.055"], "workload": ["5000"]})))
    big = spec.copy()
    big["capacity"] = "1000.0"
    write("specialists_capacity_1000.csv", csv_text(big))

    # -- specialists ---------------------------------------------------------------------------
    s = spec.copy()
    s.loc[2, "specialist_id"] = s.loc[0, "specialist_id"]
    write("duplicate_specialist_ids.csv", csv_text(s))
    s = spec.copy()
    s.loc[1, "capacity"] = "0"
    write("capacity_zero.csv", csv_text(s))
    s = spec.copy()
    s.loc[2, "capacity"] = "-20"
    write("capacity_negative.csv", csv_text(s))
    s = spec.copy()
    s.loc[1, "capacity"] = "twenty"
    write("capacity_non_numeric.csv", csv_text(s))
    write("no_specialists.csv", csv_text(spec.iloc[:0]))
    s = spec.copy()
    s.loc[1, ["lat", "lon"]] = s.loc[1, ["lon", "lat"]].to_numpy()
    write("specialists_latlon_swapped.csv", csv_text(s))
    write("specialists_missing_capacity.csv", csv_text(spec.drop(columns=["capacity"])))

    # -- Parquet -------------------------------------------------------------------------------
    import pyarrow as pa
    import pyarrow.parquet as pq

    lat = [float(v) for v in plain["lat"]]
    lon = [float(v) for v in plain["lon"]]
    ids = plain["customer_id"].tolist()
    wt = [str(v) for v in lat]
    wt[3], wt[8] = "abc", "22.5N"
    pq.write_table(pa.table({"customer_id": ids, "lat": wt, "lon": lon,
                             "workload": [int(float(v)) + 1 for v in plain["workload"]]}), HERE / "wrong_types.parquet")
    pq.write_table(pa.table({"customer_id": ids, "lat": lat, "lon": lon, "workload": [True] * len(ids)}),
                   HERE / "workload_bool.parquet")
    pq.write_table(pa.table({"customer_id": ids, "lat": ["abc"] * len(ids), "lon": lon}),
                   HERE / "wrong_types_all.parquet")
    pq.write_table(pa.table({"specialist_id": spec["specialist_id"].tolist(), "lat": spec["lat"].astype(float).tolist(),
                             "lon": spec["lon"].astype(float).tolist(), "capacity": [True, True, False]}),
                   HERE / "specialists_capacity_bool.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table({"customer_id": ids, "lat": lat, "lon": lon}), buf)
    data = buf.getvalue()
    write("truncated.parquet", data[: len(data) * 2 // 3])
    write("not_parquet.parquet", csv_text(plain))

    # -- config --------------------------------------------------------------------------------
    write("config_unknown_key.toml", "[partition]\ncapacity = 20.0\ntarget_fil = 0.8\n")
    write("config_unknown_group.toml", "[partitions]\ncapacity = 20.0\n")
    write("config_wrong_type.toml", '[partition]\ncapacity = "twenty"\n')
    write("config_wrong_type_bool.toml", "[cells]\nresolution = true\n")
    write("config_coord_system_utm.toml", '[input]\ncoord_system = "utm"\n')
    write("config_invalid.toml", "[partition\ncapacity = 20\n")


if __name__ == "__main__":
    main()
