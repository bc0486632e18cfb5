"""The online geocoder against a local HTTP server speaking Nominatim's (and Baidu's) JSON."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from gridengine.cells import haversine_km
from gridengine.errors import ConfigError
from gridengine.geocode import GeocodeConfig, OnlineGeocoder, geocode_customers, wgs84_to_bd09

pytest.importorskip("geopy")


def _point(q: str) -> tuple[float, float]:
    h = sum(map(ord, q))
    return 22.5 + (h % 97) / 1000.0, 114.0 + (h % 89) / 1000.0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        q = params.get("q") or params.get("address") or ""
        with srv.lock:
            srv.log.append((time.monotonic(), url.path, q))
            n_seen = sum(1 for _, _, x in srv.log if x == q)
        status, body = 200, None
        lat, lon = _point(q)
        if "超时" in q:
            time.sleep(0.4)
        if "坏" in q:
            body = "{not json"
        elif "缺" in q:
            body = json.dumps([{"display_name": q, "lat": "abc"}])
        elif "五百" in q and n_seen == 1:
            status, body = 500, json.dumps({"error": "internal"})
        elif "无" in q:
            body = "[]"
        elif url.path.startswith("/geocoding"):  # Baidu v3: BD-09 coordinates
            blat, blon = wgs84_to_bd09(np.array([lat]), np.array([lon]))
            body = json.dumps({"status": 0, "result": {"location": {"lat": float(blat[0]), "lng": float(blon[0])},
                                                       "precise": 1, "confidence": 80, "level": "门址"}})
        else:
            body = json.dumps([{"lat": str(lat), "lon": str(lon), "display_name": q, "addresstype": "building",
                                "importance": 0.5}])
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.log, srv.lock = [], threading.Lock()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join()


def _cfg(server, tmp_path, **kw) -> GeocodeConfig:
    base = dict(order=("coordinates", "online"), provider="nominatim",
                provider_url=f"http://127.0.0.1:{server.server_address[1]}", cache=str(tmp_path / "cache.sqlite"),
                rate_per_s=200.0, timeout_s=2.0, retries=2)
    return GeocodeConfig(**{**base, **kw})


def test_answers_are_cached_and_never_asked_again(server, tmp_path):
    cfg = _cfg(server, tmp_path)
    with OnlineGeocoder(cfg) as geo:
        a = geo.geocode(["深圳市南山区甲花园1栋", "深圳市 南山区 甲花园１栋", "深圳市南山区无此地"])
        assert geo.requests == 2  # the second address is the first one, normalised
    assert a[0] == a[1] and a[0][2] == "building" and a[0][3] == pytest.approx(50.0)
    assert np.allclose(a[0][:2], _point("深圳市南山区甲花园1栋"))
    assert a[2][2] == "failed" and a[2][4] == "no result"
    with OnlineGeocoder(cfg) as geo:
        b = geo.geocode(["深圳市南山区甲花园1栋", "深圳市南山区无此地"])
        assert geo.requests == 0 and geo.cache_hits == 2  # "no result" is an answer too
    assert b == [a[0], a[2]] and len(server.log) == 2


class _Clock:
    """A clock that moves only when slept on: the rate limit is checked by the waits it asks for."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return time.time()


def test_rate_limit_spaces_requests(server, tmp_path, monkeypatch):
    import gridengine.geocode

    clock = _Clock()
    monkeypatch.setattr(gridengine.geocode, "time", clock)
    with OnlineGeocoder(_cfg(server, tmp_path, rate_per_s=20.0)) as geo:
        geo.geocode([f"乙小区{i}栋" for i in range(5)])
        assert geo.requests == 5
    # the first request goes at once, each later one waits until 1 / rate after the one before
    assert len(server.log) == 5
    assert clock.sleeps == pytest.approx([0.05] * 4)
    assert clock.now == pytest.approx(1000.0 + 4 * 0.05)


def test_retry_on_500_then_success(server, tmp_path):
    with OnlineGeocoder(_cfg(server, tmp_path)) as geo:
        (ans,) = geo.geocode(["五百花园3栋"])
        assert geo.requests == 2
    assert ans[2] == "building" and len(server.log) == 2


def test_timeout_malformed_and_missing_fields_become_rejects(server, tmp_path):
    df = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"], "row": [1, 2, 3, 4, 5],
                       "lat": [22.5, np.nan, np.nan, np.nan, np.nan], "lon": [114.0, np.nan, np.nan, np.nan, np.nan],
                       "workload": 1.0, "address": ["", "超时小区1栋", "坏小区1栋", "缺小区1栋", "好小区1栋"]})
    ok, rej = geocode_customers(df, config=_cfg(server, tmp_path, timeout_s=0.1, retries=1))
    assert len(ok) + len(rej) == len(df)
    assert ok["customer_id"].tolist() == ["a", "e"]
    assert ok["geo_source"].tolist() == ["input", "online:nominatim"]
    reasons = dict(zip(rej["customer_id"], rej["reason"]))
    assert reasons == {"b": "online:nominatim: provider timeout after 1 retry",
                       "c": "online:nominatim: malformed response", "d": "online:nominatim: malformed response"}
    # failures are not cached: a later run asks again
    n = len(server.log)
    geocode_customers(df, config=_cfg(server, tmp_path, timeout_s=0.1, retries=0))
    assert sorted(q for _, _, q in server.log[n:]) == ["坏小区1栋", "缺小区1栋", "超时小区1栋"]


def test_resume_after_interruption_asks_only_what_is_not_cached(server, tmp_path, monkeypatch):
    cfg = _cfg(server, tmp_path)
    addresses = [f"丙花园{i}栋" for i in range(6)]
    calls = []
    original = OnlineGeocoder._ask

    def interrupted(self, text):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(text)
        return original(self, text)

    monkeypatch.setattr(OnlineGeocoder, "_ask", interrupted)
    with pytest.raises(KeyboardInterrupt), OnlineGeocoder(cfg) as geo:
        geo.geocode(addresses)
    monkeypatch.setattr(OnlineGeocoder, "_ask", original)
    assert len(server.log) == 3
    with OnlineGeocoder(cfg) as geo:
        answers = geo.geocode(addresses)
        assert geo.cache_hits == 3 and geo.requests == 3
    assert [q for _, _, q in server.log[3:]] == addresses[3:]
    assert all(a[2] == "building" for a in answers)


def test_baidu_answers_are_converted_from_bd09(server, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDENGINE_TEST_AK", "k")
    cfg = _cfg(server, tmp_path, provider="baiduv3", api_key_env="GRIDENGINE_TEST_AK")
    with OnlineGeocoder(cfg) as geo:
        (ans,) = geo.geocode(["丁花园2栋"])
    lat, lon = _point("丁花园2栋")
    assert ans[2] == "house_number" and ans[3] == 80.0
    assert haversine_km(np.array([lat]), np.array([lon]), np.array([ans[0]]), np.array([ans[1]]))[0] * 1000 < 1.0
    assert server.log[0][1] == "/geocoding/v3/"


def test_missing_key_and_missing_geopy_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("GRIDENGINE_NO_SUCH_KEY", raising=False)
    cfg = GeocodeConfig(provider="baidu", api_key_env="GRIDENGINE_NO_SUCH_KEY", cache=str(tmp_path / "c.sqlite"))
    with pytest.raises(ConfigError, match="GRIDENGINE_NO_SUCH_KEY"):
        OnlineGeocoder(cfg)
    monkeypatch.setitem(sys.modules, "geopy", None)  # geopy is not needed without a provider...
    df = pd.DataFrame({"customer_id": ["a"], "row": [1], "lat": [np.nan], "lon": [np.nan], "workload": 1.0,
                       "address": ["甲花园1栋"]})
    ok, rej = geocode_customers(df, config=GeocodeConfig())
    assert len(rej) == 1 and "no geocoder" in rej["reason"].iat[0]
    with pytest.raises(ConfigError, match="needs geopy"):  # ...and named when one is configured
        OnlineGeocoder(GeocodeConfig(provider="nominatim", cache=str(tmp_path / "c.sqlite")))
