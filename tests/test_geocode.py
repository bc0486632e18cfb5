import numpy as np
import pandas as pd

from gridengine.cells import haversine_km
from gridengine.geocode import bd09_to_wgs84, gcj02_to_wgs84, geocode_customers, wgs84_to_bd09, wgs84_to_gcj02


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
