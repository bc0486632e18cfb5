import numpy as np
import pandas as pd
import pytest

from gridengine.cells import haversine_km
from gridengine.errors import ConfigError, InputError
from gridengine.geocode import (
    Gazetteer,
    GeocodeConfig,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    geocode_customers,
    normalise_address,
    parse_address,
    read_gazetteer,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
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
    assert ok["customer_id"].tolist() == ["a"] and ok["geo_precision"].tolist() == ["building"]
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
# Parsing addresses as they are written                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("text, parts", [
    # the standard form, every part given
    ("广东省深圳市南山区粤海街道科技园社区科技南路18号丰芳家园3栋2单元1102室",
     dict(district="南山区", street="粤海街道", community="科技园社区", road="科技南路", number="18",
          compound="丰芳家园", building="3", unit="2", room="1102")),
    # road + number first, no compound: the number is the building's
    ("深圳市龙岗区康乐南路53号4栋3006室", dict(district="龙岗区", road="康乐南路", number="53", compound="", building="4",
                                       room="3006")),
    ("水径路193号", dict(road="水径路", number="193", compound="", building="")),
    ("福田区华强北路1002号赛格广场B座1201", dict(road="华强北路", number="1002", compound="赛格广场", building="B", room="1201")),
    ("莲花路12之3号", dict(road="莲花路", number="12-3")),
    # urban-village lanes, numerals in the lane name
    ("龙岗区布吉街道水径村三巷12号", dict(street="布吉街道", road="水径村3巷", number="12")),
    # compound only, building spelt every way
    ("丰芳家园九栋二单元三幺零二", dict(compound="丰芳家园", building="9", unit="2", room="3102")),
    ("丰芳家园9幢", dict(compound="丰芳家园", building="9")),
    ("丰芳家园9号楼", dict(compound="丰芳家园", building="9")),
    ("丰芳家园9#1102", dict(compound="丰芳家园", building="9", room="1102")),
    ("丰芳家园A座", dict(compound="丰芳家园", building="A")),
    ("名门嘉园A2206", dict(compound="名门嘉园", building="A", room="2206")),
    ("丰芳家园2单元9栋3902室", dict(compound="丰芳家园", building="9", unit="2", room="3902")),
    ("丰芳家园5-1-1102", dict(compound="丰芳家园", building="5", unit="1", room="1102")),
    ("丰芳家园11楼02", dict(compound="丰芳家园", building="", room="1102")),
    # a road number glued to a building by a dash
    ("宝安区新安六路1672-6栋908", dict(road="新安六路", number="1672", compound="", building="6", room="908")),
    # width, traditional characters, spaces and punctuation
    ("深圳市 南山區 科技南路１８號 丰芳家园（3棟）", dict(district="南山区", road="科技南路", number="18", compound="丰芳家园",
                                          building="3")),
])
def test_parse_address_real_forms(text, parts):
    a = parse_address(text)
    for k, v in parts.items():
        assert getattr(a, k) == v, (text, k, a)


@pytest.mark.parametrize("text", [
    "广东省深圳市南山区科技南路18号丰芳家园3栋2单元1102室",
    "深圳南山区科技南路18号丰芳家园3幢2单元1102",
    "南山区 科技南路１８号 丰芳家园 ３座 ２单元 １１０２室",
    "南山区科技南路十八号丰芳家园三栋二单元幺幺零二",
    "南山区科技南路18号丰芳家园3号楼2单元1102房",
    "南山区，科技南路18号，丰芳家园（3栋）2单元1102室",
    "南山區科技南路18號丰芳家园3棟2單元1102室",
    "南山区科技南路18号丰芳家园2单元3栋1102室",
    "南山区科技南路18号丰芳家园3-2-1102",
])
def test_normalise_address_variants(text):
    assert normalise_address(text) == "南山区科技南路18号丰芳家园3栋2单元1102室"


# --------------------------------------------------------------------------- #
# The gazetteer: matching by keys                                             #
# --------------------------------------------------------------------------- #

P = "广东省深圳市"
GAZ = pd.DataFrame([
    # a compound behind road + number, three buildings 30 m apart; its phase 2 behind the next even number
    (P + "南山区粤海街道科技园社区科技南路18号丰芳家园1栋", 22.54000, 113.95000),
    (P + "南山区粤海街道科技园社区科技南路18号丰芳家园2栋", 22.54027, 113.95000),
    (P + "南山区粤海街道科技园社区科技南路18号丰芳家园3栋", 22.54054, 113.95000),
    (P + "南山区粤海街道科技园社区科技南路20号丰芳家园二期1栋", 22.54200, 113.95100),
    # single buildings along 康乐南路; 55 is missing
    (P + "龙岗区龙城街道爱联社区康乐南路51号1栋", 22.72000, 114.24000),
    (P + "龙岗区龙城街道爱联社区康乐南路53号1栋", 22.72010, 114.24010),
    (P + "龙岗区龙城街道爱联社区康乐南路53号4栋", 22.72020, 114.24020),
    (P + "龙岗区龙城街道爱联社区康乐南路57号1栋", 22.72050, 114.24050),
    # 水径路 119 exists, 193 does not (and must never become 119, 1.8 km away)
    (P + "龙岗区布吉街道水径社区水径路119号宏发大厦", 22.60000, 114.12000),
    (P + "龙岗区布吉街道水径社区水径路121号", 22.60010, 114.12000),
    # 凤凰 in 光明区 (a 街道) must not answer for 盐田区
    (P + "光明区凤凰街道凤凰社区光侨路100号凤凰花园1栋", 22.75000, 113.93000),
    (P + "盐田区沙头角街道东和社区深盐路2000号海景花园1栋", 22.55000, 114.23000),
    # one road name in two districts
    (P + "罗湖区东门街道城东社区人民路10号", 22.54500, 114.12000),
    (P + "龙华区龙华街道景龙社区人民路10号", 22.65000, 114.03000),
    # a compound name in two districts, 30 km apart
    (P + "福田区华富街道莲花社区彩田路7018号阳光花园1栋", 22.55000, 114.06000),
    (P + "福田区华富街道莲花社区彩田路7018号阳光花园5栋", 22.55030, 114.06030),
    (P + "宝安区新安街道海裕社区宝安大道500号阳光花园1栋", 22.56000, 113.88000),
], columns=["address", "lat", "lon"])


@pytest.fixture()
def gaz_path(tmp_path):
    p = tmp_path / "gazetteer.csv"
    GAZ.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("text, precision, point", [
    ("南山区科技南路18号丰芳家园2栋1102", "building", (22.54027, 113.95)),
    ("科技南路18号2幢", "building", (22.54027, 113.95)),                      # road + number + building
    ("丰芳家园二栋", "building", (22.54027, 113.95)),                           # compound + building
    ("丰芳2栋1102", "building", (22.54027, 113.95)),                            # name without its kind
    ("丰芳小区2栋", "building", (22.54027, 113.95)),                            # another kind
    ("丰方家园2栋", "building", (22.54027, 113.95)),                            # a typo in the name
    ("科技南路18号", "house_number", (22.54027, 113.95)),                       # centre of the number
    ("科技南路18号9栋", "house_number", (22.54027, 113.95)),                    # unknown building: the number
    ("丰芳家园", "compound", None),
    ("丰芳家园二期1栋", "building", (22.542, 113.951)),
    ("深圳市龙岗区康乐南路53号4栋3006室", "building", (22.7202, 114.2402)),  # the address
    ("康乐南路51号", "building", (22.72, 114.24)),                              # one building on the number
    ("康乐南路55号", "nearest_house_number", (22.720325, 114.240325)),          # between 53 and 57
    ("水径路119号", "building", (22.6, 114.12)),
    ("1102室，2栋，丰芳家园，科技南路18号，南山区，深圳市", "building", (22.54027, 113.95)),  # reversed
    ("王先生 13812345678 广东省深圳市南山区科技南路18号丰芳家园2栋 518057", "building", (22.54027, 113.95)),
    ("就是那个南山科技南路十八号丰芳家园二栋，靠近地铁站", "building", (22.54027, 113.95)),
    ("罗湖区人民路10号", "building", (22.545, 114.12)),
])
def test_match_by_keys(gaz_path, text, precision, point):
    r = read_gazetteer(gaz_path).match_one(text)
    assert r.precision == precision, (text, r)
    if point is not None:
        assert (r.lat, r.lon) == pytest.approx(point, abs=2e-5), (text, r)


@pytest.mark.parametrize("text, precision, why", [
    ("水径路193号", "road", "not in the gazetteer"),                 # a number is never matched fuzzily
    ("盐田区凤凰街", "district", ""),                                  # never the 凤凰 of 光明区
    ("人民路10号", "failed", "2 districts"),                           # the road is in two districts
    ("阳光花园1栋", "failed", "ambiguous"),                            # the name is in two districts
    ("北京市朝阳区建国路88号", "failed", "北京市"),                      # another city
    ("No. 18 Keji South Road, Nanshan District, Shenzhen", "failed", "not a Chinese address"),
    ("Unioninkatu 8 F 44, Helsinki", "failed", "not a Chinese address"),
    ("", "failed", ""),
])
def test_what_is_not_known_is_not_guessed(gaz_path, text, precision, why):
    r = read_gazetteer(gaz_path).match_one(text)
    assert r.precision == precision, (text, r)
    assert why in r.reason


def test_building_range_rules_out_a_namesake(gaz_path):
    g = read_gazetteer(gaz_path)
    assert g.match_one("阳光花园1栋").precision == "failed"  # both have a 1栋
    r = g.match_one("阳光花园5栋1102")  # only the one in 福田区 reaches 5栋
    assert (r.precision, r.score, r.lat) == ("building", 90.0, pytest.approx(22.5503)) and "only 1 of the 2" in r.reason
    assert g.match_one("阳光花园9栋").precision == "failed"  # neither does: not guessed


def test_named_district_is_never_left(gaz_path):
    g = read_gazetteer(gaz_path)
    assert g.match_one("宝安区阳光花园1栋").lat == pytest.approx(22.56)
    assert g.match_one("福田区阳光花园1栋").lat == pytest.approx(22.55)
    r = g.match_one("龙华区科技南路18号")  # the road is in 南山区 only
    assert r.precision in ("district", "failed") and "not in 龙华区" in r.reason


def test_radius_says_how_far_the_truth_may_be(gaz_path):
    g = read_gazetteer(gaz_path)
    assert g.match_one("科技南路18号2栋").radius_m == 0.0
    r = g.match_one("科技南路18号")
    assert 25 < r.radius_m < 35  # the outer buildings are 30 m from the centre
    r = g.match_one("康乐南路55号")
    assert r.radius_m == pytest.approx(haversine_km(np.array([22.72015]), np.array([114.24015]), np.array([22.7205]),
                                                    np.array([114.2405]))[0] * 500, rel=0.05)


def _customers(addresses, lat=None):
    n = len(addresses)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "row": np.arange(1, n + 1),
                         "lat": lat if lat is not None else np.full(n, np.nan),
                         "lon": [114.0 if x == x else np.nan for x in lat] if lat is not None else np.full(n, np.nan),
                         "workload": 1.0, "address": addresses})


def test_accept_radius_and_score_send_rows_to_rejects_with_reasons(gaz_path):
    addresses = ["科技南路18号2栋", "科技南路18号", "丰方家园2栋", "水径路193号", "No. 18 Keji South Road", ""]
    cust = _customers(addresses)
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path)))
    assert len(ok) + len(rej) == len(cust)
    assert ok["geo_precision"].tolist() == ["building", "house_number", "building"]
    assert ok["geo_score"].tolist() == [100.0, 100.0, 85.0] and set(ok["geo_source"]) == {"gazetteer"}
    assert rej["row"].tolist() == [4, 5, 6]
    assert "road level" in rej["reason"].iat[0] and "geocode.accept" in rej["reason"].iat[0]
    assert "not a Chinese address" in rej["reason"].iat[1]
    assert rej["reason"].iat[2] == "no coordinates and no address"
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path), max_radius_m=10))
    assert ok["customer_id"].tolist() == ["c0", "c2"] and "geocode.max_radius_m" in rej["reason"].iat[0]
    ok, rej = geocode_customers(cust, config=GeocodeConfig(gazetteer=str(gaz_path), min_score=100))
    assert ok["customer_id"].tolist() == ["c0", "c1"] and "geocode.min_score" in rej["reason"].iat[0]


def test_chain_order_and_accounting(gaz_path):
    cust = _customers(["科技南路18号2栋", "科技南路18号2栋", "", "康乐南路53号4栋"], lat=np.array([22.6, np.nan, 22.61, np.nan]))
    ok, rej = geocode_customers(cust, coord_system="gcj02", config=GeocodeConfig(gazetteer=str(gaz_path)))
    assert len(ok) + len(rej) == len(cust) and len(rej) == 0
    assert ok["geo_source"].tolist() == ["input:gcj02", "gazetteer", "input:gcj02", "gazetteer"]
    ok, _ = geocode_customers(cust, config=GeocodeConfig(order=("gazetteer", "coordinates"), gazetteer=str(gaz_path)))
    assert ok["geo_source"].tolist() == ["gazetteer", "gazetteer", "input", "gazetteer"]
    ok, rej = geocode_customers(cust, config=GeocodeConfig(order=("gazetteer",), gazetteer=str(gaz_path)))
    assert rej["row"].tolist() == [3] and "coordinates" in rej["reason"].iat[0]


# --------------------------------------------------------------------------- #
# No silent success                                                           #
# --------------------------------------------------------------------------- #


def test_reject_share_above_threshold_stops_with_the_commonest_reasons(gaz_path):
    from gridengine.geocode import check_reject_share, reject_summary

    addresses = ["科技南路18号2栋"] * 6 + ["银河小区3栋", "星河小区5栋", "水径路193号", "No. 1 Main Street"]
    cust = _customers(addresses)
    cfg = GeocodeConfig(gazetteer=str(gaz_path), max_reject_share=0.3)
    ok, rej = geocode_customers(cust, config=cfg)
    assert len(rej) == 4
    top = reject_summary(rej)
    assert top[0][:3] == ("gazetteer: compound … not in the gazetteer", 2, 7)
    with pytest.raises(InputError) as e:
        check_reject_share(rej, len(cust), cfg, source="c.csv")
    msg = str(e.value)
    assert "4 of 10 rows (40.0%)" in msg and "geocode.max_reject_share = 0.3" in msg
    assert "2 x 'gazetteer: compound … not in the gazetteer' (e.g. row 7: gazetteer: compound 银河小区" in msg
    assert "not a Chinese address" in msg and e.value.field == "address" and e.value.rejects is rej
    check_reject_share(rej, len(cust), GeocodeConfig(max_reject_share=0.5))  # below: nothing said


def test_cli_writes_rejects_even_without_a_gazetteer(sample_paths, tmp_path, capsys):
    from gridengine.cli import main as cli_main

    root = sample_paths["customers"].parent
    out = tmp_path / "addr"
    args = ["plan", "--customers", str(root / "customers_addresses.csv"), "--specialists", str(sample_paths["specialists"]),
            "--service-area", str(sample_paths["service_area"]), "--out", str(out), "-q"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "could not be placed" in err and "geocode.max_reject_share" in err and str(out / "rejects.csv") in err
    rej = pd.read_csv(out / "rejects.csv", dtype={"customer_id": str})
    assert len(rej) == 20000 and rej["reason"].str.contains("no geocoder").all()


def test_cli_summary_tells_the_share_of_input_rows_placed(sample_paths, tmp_path, capsys):
    from gridengine.cli import main as cli_main

    root = sample_paths["customers"].parent
    cust = pd.read_csv(root / "customers_addresses.csv", dtype=str).head(3000)
    cust.loc[:99, "address"] = "北京市朝阳区建国路88号"  # 100 rows of another city
    p = tmp_path / "c.csv"
    cust.to_csv(p, index=False)
    out = tmp_path / "plan"
    args = ["plan", "--customers", str(p), "--gazetteer", str(root / "gazetteer.csv"), "--specialists",
            str(sample_paths["specialists"]), "--service-area", str(sample_paths["service_area"]), "--out", str(out)]
    assert cli_main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  coverage"))
    rej = pd.read_csv(out / "rejects.csv")
    assert len(rej) >= 100 and (rej["reason"].str.contains("北京市").sum() == 100)
    share = 1 - len(rej) / 3000
    assert f"{share:.2%} of input rows placed ({len(rej)} of 3000 rejected" in line


# --------------------------------------------------------------------------- #
# Properties                                                                  #
# --------------------------------------------------------------------------- #

import functools  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_CN = "零一二三四五六七八九"


def _cn(n: int) -> str:
    return _CN[n] if n < 10 else ("十" if n < 20 else _CN[n // 10] + "十") + (_CN[n % 10] if n % 10 else "")


_ROADS = st.sampled_from(["科技南路", "康乐南路", "人民路", "水径路", "深盐路", "彩田路", "宝安大道", "光侨路"])
_PREFIXES = ["", "深圳市", "广东省深圳市", "广东深圳", "深圳", "广东省 深圳市 ", "深圳市龙岗区"]


@functools.cache
def _gaz() -> Gazetteer:
    return Gazetteer(GAZ["address"], GAZ["lat"], GAZ["lon"])


@settings(max_examples=300, deadline=None)
@given(road=_ROADS, number=st.integers(1, 9999), building=st.integers(1, 39), room=st.integers(101, 3308),
       prefix=st.sampled_from(_PREFIXES), bword=st.sampled_from(["栋", "幢", "座", "号楼", "#"]), spoken=st.booleans(),
       wide=st.booleans(), compound=st.sampled_from(["", "丰芳家园", "赛格广场"]), with_gazetteer=st.booleans())
def test_property_parts_survive_every_writing(road, number, building, room, prefix, bword, spoken, wide, compound,
                                              with_gazetteer):
    b = _cn(building) if spoken else str(building)
    text = f"{prefix}{road}{number}号{compound}{b}{bword}{room}室"
    if wide:
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if not with_gazetteer and prefix.strip() in ("广东深圳", "深圳"):
        prefix = ""  # a city written without 市 is known only from the gazetteer's own rows
        text = f"{road}{number}号{compound}{b}{bword}{room}室"
    a = _gaz().parse(text)[0] if with_gazetteer else parse_address(text)
    assert (a.road, a.number, a.compound, a.building, a.room) == (road, str(number), compound, str(building), str(room))


@settings(max_examples=200, deadline=None)
@given(number=st.integers(1, 400))
def test_property_numbers_are_never_fuzzy(number):
    r = _gaz().match_one(f"龙岗区康乐南路{number}号")
    if number in (51, 53, 57):
        assert r.precision in ("building", "house_number")
    elif number == 55:
        assert r.precision == "nearest_house_number"
    else:  # outside the known numbers or of the other side: never another number's point
        assert r.precision in ("road", "district", "failed"), (number, r)


# --------------------------------------------------------------------------- #
# Corpus                                                                      #
# --------------------------------------------------------------------------- #


def test_messy_corpus_small_run():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from address_corpus import DEV_STYLES, build_city, build_corpus, gazetteer

    city = build_city(1)
    corpus = build_corpus(3000, 1, city)
    assert corpus.equals(build_corpus(3000, 1, city))  # deterministic
    gz = gazetteer(city, 0.0, 1)
    res = Gazetteer(gz["address"], gz["lat"], gz["lon"]).match(corpus["address"])
    d = haversine_km(corpus["lat"].to_numpy(), corpus["lon"].to_numpy(), res["lat"].to_numpy(), res["lon"].to_numpy()) * 1000
    placed = (res["precision"].isin(GeocodeConfig().accept) & (res["radius_m"] <= 150)).to_numpy()
    dev = corpus["style"].isin(DEV_STYLES).to_numpy()
    assert (placed & (d <= 50))[dev].mean() >= 0.93
    assert (placed & (d > 200)).mean() <= 0.005
    assert not placed[(corpus["style"] == "latin").to_numpy()].any()


def test_messy_sample_matches_the_clean_city():
    city = generate_city(600, seed=3)
    messy = generate_messy_addresses(city.customers, seed=1)
    gz = build_gazetteer(city.customers)
    res = Gazetteer(gz["address"], gz["lat"], gz["lon"]).match(messy["address"])
    d = haversine_km(city.customers["lat"].to_numpy(), city.customers["lon"].to_numpy(),
                     res["lat"].to_numpy(), res["lon"].to_numpy()) * 1000
    placed = res["precision"].isin(GeocodeConfig().accept).to_numpy()
    assert (placed & (d <= 50)).mean() >= 0.98 and (placed & (d > 200)).sum() == 0


# --------------------------------------------------------------------------- #
# Gazetteer files and settings                                                #
# --------------------------------------------------------------------------- #


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
    assert r.precision == "compound" and haversine_km(np.array([22.53]), np.array([113.92]), np.array([r.lat]), np.array([r.lon]))[0] < 1e-3


def test_config_validation_names_the_setting():
    import gridengine.config
    import gridengine.geocode

    assert gridengine.geocode.COORD_SYSTEMS == gridengine.config.COORD_SYSTEMS
    with pytest.raises(ConfigError, match="geocode.min_score"):
        GeocodeConfig(min_score=120)
    with pytest.raises(ConfigError, match="geocode.accept"):
        GeocodeConfig(accept=("building", "failed"))
    with pytest.raises(ConfigError, match="geocode.accept"):
        GeocodeConfig(accept=("exact",))  # the old level names are gone, and said to be
    with pytest.raises(ConfigError, match="geocode.max_reject_share"):
        GeocodeConfig(max_reject_share=0)
    with pytest.raises(ConfigError, match="geocode.max_radius_m"):
        GeocodeConfig(max_radius_m=-5)
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
    cfg = GeocodeConfig.from_dict({"order": ["gazetteer", "online"], "accept": ["building"], "gazetteer": "g.csv",
                                   "max_reject_share": 0.05})
    assert cfg.order == ("gazetteer", "online") and cfg.accept == ("building",) and cfg.max_reject_share == 0.05


