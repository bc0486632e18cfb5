import numpy as np
import pandas as pd
import pytest

from gridengine._address import Address
from gridengine.cells import haversine_km
from gridengine.errors import ConfigError, InputError
from gridengine.geocode import (Gazetteer, GeocodeConfig, bd09_to_wgs84, gcj02_to_wgs84, geocode_customers,
                                normalise_address, parse_address, read_gazetteer, wgs84_to_bd09, wgs84_to_gcj02)
from gridengine.synth import build_gazetteer, generate_city, generate_messy_addresses


def test_gcj02_offset_in_shenzhen_is_hundreds_of_metres_and_inverts():
    lat, lon = np.array([22.54, 22.60]), np.array([114.06, 113.90])
    glat, glon = wgs84_to_gcj02(lat, lon)
    shift = haversine_km(lat, lon, glat, glon) * 1000
    assert ((shift > 300) & (shift < 800)).all()
    back = gcj02_to_wgs84(glat, glon)
    assert (haversine_km(lat, lon, *back) * 1000 < 0.01).all()


def test_bd09_inverts():
    lat, lon = np.array([22.54]), np.array([114.06])
    b = wgs84_to_bd09(lat, lon)
    assert haversine_km(lat, lon, *b)[0] > 0.5
    assert haversine_km(lat, lon, *bd09_to_wgs84(*b))[0] * 1000 < 0.05


def test_outside_china_unchanged():
    lat, lon = wgs84_to_gcj02(np.array([48.85]), np.array([2.35]))
    assert lat[0] == 48.85 and lon[0] == 2.35


def test_address_only_rows_are_rejected_with_reason():
    df = pd.DataFrame({"customer_id": ["a", "b"], "lat": [22.5, np.nan], "lon": [114.0, np.nan],
                       "workload": [1.0, 1.0], "row": [1, 2], "address": ["x", "深圳市福田区"]})
    ok, rej = geocode_customers(df)
    assert ok["customer_id"].tolist() == ["a"] and ok["geo_precision"].tolist() == ["exact"]
    assert rej["row"].tolist() == [2] and "no geocoder" in rej["reason"].iat[0]


# --------------------------------------------------------------------------- #
# Coordinate systems                                                          #
# --------------------------------------------------------------------------- #


def test_gcj02_round_trip_under_one_metre_over_china():
    lat, lon = np.meshgrid(np.arange(3.0, 54.0, 0.5), np.arange(73.0, 135.5, 0.5))
    lat, lon = lat.ravel(), lon.ravel()
    glat, glon = wgs84_to_gcj02(lat, lon)
    assert (haversine_km(lat, lon, glat, glon) > 0.02).all()  # the shift is real everywhere...
    back = gcj02_to_wgs84(glat, glon)
    assert (haversine_km(lat, lon, *back) * 1000).max() < 1.0  # ...and undone to well under a metre
    b = bd09_to_wgs84(*wgs84_to_bd09(lat, lon))
    assert (haversine_km(lat, lon, *b) * 1000).max() < 1.0


def test_points_outside_china_are_left_untouched():
    lat, lon = np.array([48.85, 35.68, 40.71, -33.87, 60.0]), np.array([2.35, 139.77, -74.0, 151.2, 100.0])
    for f in (wgs84_to_gcj02, gcj02_to_wgs84):
        out = f(lat, lon)
        assert np.array_equal(out[0], lat) and np.array_equal(out[1], lon)


# --------------------------------------------------------------------------- #
# Address normalisation                                                       #
# --------------------------------------------------------------------------- #

CLEAN = "南山区丽华街道金蜜社区丰芳家园9栋2单元3902室"


@pytest.mark.parametrize("text", [
    "广东省深圳市南山区丽华街道金蜜社区丰芳家园9栋2单元3902室",   # prefix present
    "深圳市南山区丽华街道金蜜社区丰芳家园9栋2单元3902室",         # city only
    "南山区丽华街道金蜜社区丰芳家园９栋２单元３９０２室",            # full-width digits
    " 南山区  丽华街道　金蜜社区 丰芳家园 9栋 2单元 3902室 ",       # half- and full-width spaces
    "南山区丽华街道金蜜社区丰芳家园9幢2单元3902室",               # 幢
    "南山区丽华街道金蜜社区丰芳家园9座2单元3902号",               # 座, 号 for the room
    "南山区丽华街道金蜜社区丰芳家园9号楼2单元3902房",              # 号楼, 房
    "南山區丽华街道金蜜社區丰芳家园9棟2單元3902室",               # traditional forms
    "南山区丽华街道金蜜社区丰芳家园2单元9栋3902室",               # unit before building
    "南山区丽华街道金蜜社区丰芳家园9-2-3902",                   # dashed building-unit-room
    "南山区丽华街道金蜜社区丰芳家园九栋二单元3902",               # Chinese numerals, bare room
    "南山区，丽华街道、金蜜社区（丰芳家园）9栋2单元3902室",         # punctuation
])
def test_normalise_address_variants(text):
    assert normalise_address(text) == CLEAN


def test_parse_address_parts_and_missing_district():
    a = parse_address("丽华街道金蜜社区丰芳家园二期12號2单元801室")
    assert a == Address("", "丽华街道", "金蜜社区", "丰芳家园二期", "12", "2", "801")  # 12號 before a unit: building
    a = parse_address("广东省深圳市福田区蜜荔街道泉松社区宁豪小区3栋")
    assert (a.district, a.street, a.community, a.compound, a.building, a.unit, a.room) == (
        "福田区", "蜜荔街道", "泉松社区", "宁豪小区", "3", "", "")
    assert parse_address("金蜜社区丰芳小区9栋").district == ""  # 社区/小区 are not districts
    assert normalise_address("北京市朝阳区建国路国贸小区3栋") == "朝阳区建国路国贸小区3栋"


# --------------------------------------------------------------------------- #
# Gazetteer                                                                   #
# --------------------------------------------------------------------------- #

GAZ = pd.DataFrame({
    "address": ["广东省深圳市南山区丽华街道金蜜社区丰芳家园9栋2单元3902室",
                "广东省深圳市南山区丽华街道金蜜社区丰芳家园9栋1单元101室",
                "广东省深圳市南山区丽华街道金蜜社区丰芳家园3栋1单元101室",
                "广东省深圳市南山区丽华街道金蜜社区丰芳家园二期",
                "广东省深圳市南山区丽华街道金蜜社区宁豪花园1栋1单元101室",
                "广东省深圳市南山区丽华街道云丽社区金阳小区1栋1单元101室",
                "广东省深圳市南山区丽华街道云丽社区金阳小区2栋1单元101室",
                "广东省深圳市南山区丽华街道云丽社区金月小区1栋1单元101室",
                "广东省深圳市南山区丽华街道云丽社区月金小区1栋1单元101室"],
    "lat": [22.5300, 22.5300, 22.5304, 22.5310, 22.5350, 22.5400, 22.5402, 22.5500, 22.5600],
    "lon": [113.9200, 113.9200, 113.9204, 113.9210, 113.9250, 113.9300, 113.9302, 113.9400, 113.9500],
})


@pytest.fixture()
def gaz_path(tmp_path):
    p = tmp_path / "gazetteer.csv"
    GAZ.to_csv(p, index=False)
    return p


def _customers(addresses, lat=None):
    n = len(addresses)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "row": np.arange(1, n + 1),
                         "lat": lat if lat is not None else np.full(n, np.nan),
                         "lon": [114.0 if x == x else np.nan for x in lat] if lat is not None else np.full(n, np.nan),
                         "workload": 1.0, "address": addresses})


def test_exact_fuzzy_and_coarse_fallbacks(gaz_path):
    g = read_gazetteer(gaz_path)
    cases = {
        "深圳 丽华街道金蜜社区丰芳家园２单元9幢3902号": ("exact", 100.0, (22.5300, 113.9200)),
        "南山区丽华街道金蜜社区丰方家园9栋2单元3902室": ("fuzzy", None, (22.5300, 113.9200)),   # typo
        "南山区丽华街道金蜜社区丰芳家园3栋2单元999室": ("compound", 100.0, (22.5304, 113.9204)),  # unknown room: its building
        "南山区丽华街道金蜜社区丰芳家园7栋": ("compound", 100.0, (22.5302, 113.9202)),         # unknown building: compound mean
        "南山区丽华街道金蜜社区丰芳家园二期5栋": ("compound", 100.0, (22.5310, 113.9210)),     # compound row of its own
        "南山区丽华街道金蜜社区不知名大厦1栋": ("community", 100.0, None),
        "南山区丽华街道不存在社区某某苑": ("street", 100.0, None),
        "南山区": ("district", 100.0, None),
        "北京市朝阳区建国路国贸小区3栋": ("failed", 0.0, None),
    }
    res = g.match(list(cases), min_score=85.0)
    for (text, (prec, score, pt)), r in zip(cases.items(), res.itertuples()):
        assert r.precision == prec, (text, r)
        if score is not None:
            assert r.score == score
        if pt is not None:
            assert (r.lat, r.lon) == pytest.approx(pt, abs=1e-6)
    assert 85.0 <= res["score"].iat[1] < 100.0
    assert "not in the gazetteer" in res["reason"].iat[-1] or "no compound" in res["reason"].iat[-1]


def test_ties_are_ambiguous_rather_than_guessed(gaz_path):
    g = read_gazetteer(gaz_path)
    # one typo away from 金阳小区 and from 金月小区, 1.4 km apart: not guessed
    r = g.match_one("丽华街道云丽社区金星小区1栋1单元101室")
    assert r.precision == "community" and "ambiguous" in r.reason
    # a transposition (阳金 for 金阳) ties with a substitution (月金): the same characters win
    r = g.match_one("丽华街道云丽社区阳金小区1栋1单元101室")
    assert r.precision == "fuzzy" and r.lat == pytest.approx(22.54)
    # two typos in a short name are too many, however well street and community match
    assert g.match_one("丽华街道云丽社区银星小区1栋1单元101室").precision == "community"


def test_threshold_and_accept_list_send_rows_to_rejects_with_reasons(gaz_path):
    addresses = ["南山区丽华街道金蜜社区丰芳家园9栋2单元3902室", "南山区丽华街道金蜜社区丰方家园9栋2单元3902室",
                 "南山区丽华街道金蜜社区丰芳家园7栋", "南山区丽华街道金蜜社区不知名大厦1栋", "北京市朝阳区某小区3栋", ""]
    cust = _customers(addresses)
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path)))
    assert len(ok) + len(rej) == len(cust)
    assert ok["geo_precision"].tolist() == ["exact", "fuzzy", "compound"]
    assert set(ok["geo_source"]) == {"gazetteer"}
    assert rej["row"].tolist() == [4, 5, 6]
    assert "community level" in rej["reason"].iat[0] and "geocode.accept" in rej["reason"].iat[0]
    assert rej["reason"].iat[1].startswith("gazetteer: ")
    assert rej["reason"].iat[2] == "no coordinates and no address"
    # stricter: only exact; a threshold of 100 turns the typo into a coarser match
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path), accept=("exact",)))
    assert ok["customer_id"].tolist() == ["c0"] and len(rej) == 5
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path), min_score=100.0,
                                                           accept=("exact", "fuzzy", "compound", "community")))
    assert ok["geo_precision"].tolist() == ["exact", "community", "compound", "community"]


def test_chain_order_and_accounting(gaz_path):
    cust = _customers(["南山区丽华街道金蜜社区丰芳家园9栋2单元3902室", "南山区丽华街道金蜜社区丰芳家园9栋2单元3902室",
                       "", "南山区丽华街道金蜜社区宁豪花园1栋1单元101室"], lat=np.array([22.6, np.nan, 22.61, np.nan]))
    ok, rej = geocode_customers(cust, coord_system="gcj02", config=GeocodeConfig(gazetteer=str(gaz_path)))
    assert len(ok) + len(rej) == len(cust) and len(rej) == 0
    assert ok["geo_source"].tolist() == ["input:gcj02", "gazetteer", "input:gcj02", "gazetteer"]
    assert ok["geo_score"].tolist() == [100.0] * 4
    # the gazetteer first: an address wins over given coordinates
    ok, _ = geocode_customers(cust, config=GeocodeConfig(order=("gazetteer", "coordinates"), gazetteer=str(gaz_path)))
    assert ok["geo_source"].tolist() == ["gazetteer", "gazetteer", "input", "gazetteer"]
    assert ok["lat"].iat[0] == pytest.approx(22.53)
    # without the coordinates geocoder, coordinates alone are not enough
    ok, rej = geocode_customers(cust, config=GeocodeConfig(order=("gazetteer",), gazetteer=str(gaz_path)))
    assert rej["row"].tolist() == [3] and "coordinates" in rej["reason"].iat[0]


@pytest.mark.parametrize("content, row, field", [
    ("address,lat\n甲花园,22.5\n", None, "lon"),
    ("address,lat,lon\n甲花园,22.5,114.0\n乙花园,north,114.0\n", 2, "lat"),
    ("address,lat,lon\n甲花园,22.5,114.0\n乙花园,22.5,214.0\n", 2, "lon"),
    ("address,lat,lon\n甲花园,22.5,114.0\n,22.5,114.0\n", 2, "address"),
    ("address,lat,lon,coord_system\n甲花园,22.5,114.0,gcj02\n乙花园,22.5,114.0,mars\n", 2, "coord_system"),
])
def test_gazetteer_errors_name_file_row_and_column(tmp_path, content, row, field):
    p = tmp_path / "gz.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_gazetteer(p)
    assert e.value.path is not None and e.value.path.endswith("gz.csv") and "gz.csv" in str(e.value)
    assert e.value.row == row and e.value.field == field and field in str(e.value)
    if row:
        assert f"row {row}" in str(e.value)


def test_gazetteer_coord_system_column_is_converted(tmp_path):
    glat, glon = wgs84_to_gcj02(np.array([22.53]), np.array([113.92]))
    p = tmp_path / "gz.csv"
    pd.DataFrame({"address": ["丽华街道金蜜社区丰芳家园"], "lat": glat, "lon": glon, "coord_system": ["gcj02"]}).to_csv(p, index=False)
    r = read_gazetteer(p).match_one("丽华街道金蜜社区丰芳家园")
    assert r.precision == "exact" and haversine_km(np.array([22.53]), np.array([113.92]), np.array([r.lat]), np.array([r.lon]))[0] < 1e-3


def test_config_validation_names_the_setting():
    import gridengine.config
    import gridengine.geocode

    assert gridengine.geocode.COORD_SYSTEMS == gridengine.config.COORD_SYSTEMS
    with pytest.raises(ConfigError, match="geocode.min_score"):
        GeocodeConfig(min_score=120)
    with pytest.raises(ConfigError, match="geocode.accept"):
        GeocodeConfig(accept=("exact", "failed"))
    with pytest.raises(ConfigError, match="geocode.order"):
        GeocodeConfig(order=("gazetteer", "gazetteer"))
    with pytest.raises(ConfigError, match="geocode.provider"):
        GeocodeConfig(provider="amap")
    with pytest.raises(ConfigError, match="geocode.retries"):
        GeocodeConfig(retries=1.5)
    with pytest.raises(ConfigError, match="geocode: unknown setting.*gazeteer"):
        GeocodeConfig.from_dict({"gazeteer": "x.csv"})
    with pytest.raises(ConfigError, match="geocode.rate_per_s"):
        GeocodeConfig.from_dict({"rate_per_s": "fast"})
    cfg = GeocodeConfig.from_dict({"order": ["gazetteer", "online"], "accept": ["exact"], "gazetteer": "g.csv"})
    assert cfg.order == ("gazetteer", "online") and cfg.accept == ("exact",)


def test_messy_sample_matches_the_clean_city():
    city = generate_city(600, seed=3)
    messy = generate_messy_addresses(city.customers, seed=1)
    assert messy.columns.tolist() == ["customer_id", "address", "workload"]
    assert messy.equals(generate_messy_addresses(city.customers, seed=1))
    assert (messy["address"] != city.customers["address"]).mean() > 0.5
    gz = build_gazetteer(city.customers)
    assert len(gz) == city.customers["address"].nunique()
    res = Gazetteer(gz["address"], gz["lat"], gz["lon"]).match(messy["address"])
    d = haversine_km(city.customers["lat"].to_numpy(), city.customers["lon"].to_numpy(),
                     res["lat"].to_numpy(), res["lon"].to_numpy()) * 1000
    placed = res["precision"].isin(["exact", "fuzzy", "compound"]).to_numpy()
    assert (placed & (d <= 50)).mean() >= 0.98 and (placed & (d > 200)).sum() == 0
