"""Geocode: bring every customer to WGS-84 coordinates, or reject it with a reason.

Geocoders are chained in the order :class:`GeocodeConfig` gives; each one tries the rows
still unplaced (or placed at a precision the config does not accept):

``coordinates``
    ``lat``/``lon`` given in the input, in one of the coordinate systems Chinese map
    providers use (GCJ-02 "Mars coordinates", Baidu's BD-09) converted to WGS-84: taken as
    WGS-84 they shift a point by roughly 500 m in Shenzhen, often into the next grid.
``gazetteer``
    A planner-supplied CSV of addresses and coordinates (a standard address library, one row
    per building), matched by keys: road + house number, compound, building (see
    :mod:`gridengine._address`); names may carry one typo, numbers never.
``online``
    A geocoding service through geopy (Nominatim, ArcGIS, Baidu, ...), with an SQLite cache
    keyed by (provider, normalised address), a rate limit, retries with back-off and
    timeouts. Answers are cached as they arrive, so a run that is interrupted resumes
    without asking again for what is cached. geopy is imported only when configured.

Added columns: ``geo_precision`` (``building``, ``house_number``, ``nearest_house_number``,
``compound``, ``road``, ``community``, ``district``; given coordinates are ``building``),
``geo_source`` (``input``, ``input:gcj02``, ``gazetteer``, ``online:nominatim``, ...) and
``geo_score`` (0-100: 100 for given coordinates and names found as written, 95 a compound
named by another kind (丰芳小区 for 丰芳家园), 90 a road read through a typo, 85 a compound
read through a typo; the provider's confidence where it gives one, else NaN).

Rows not placed go to the rejects with the reasons of every geocoder tried. When more than
``geocode.max_reject_share`` of the rows are rejected, :func:`check_reject_share` stops the
run with the commonest reasons and an example of each.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._address import LEVELS, Gazetteer, normalise_address, parse_address
from .config import GeocodeConfig
from .errors import ConfigError, InputError

__all__ = ["gcj02_to_wgs84", "bd09_to_wgs84", "wgs84_to_gcj02", "wgs84_to_bd09", "to_wgs84", "geocode_customers", "place_customers",
           "GeocodeConfig", "Gazetteer", "read_gazetteer", "normalise_address", "parse_address", "OnlineGeocoder",
           "PRECISIONS", "check_reject_share", "reject_summary"]

logger = logging.getLogger(__name__)

# The same as gridengine.config.COORD_SYSTEMS, not imported so that config.py may import this module.
COORD_SYSTEMS = ("wgs84", "gcj02", "bd09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _out_of_china(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlat, dlon


def wgs84_to_gcj02(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 to GCJ-02 (identity outside China), vectorised."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    dlat, dlon = _delta(lat, lon)
    out = _out_of_china(lat, lon)
    return np.where(out, lat, lat + dlat), np.where(out, lon, lon + dlon)


def gcj02_to_wgs84(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 to WGS-84 by fixed-point iteration of the forward transform (error < 1 mm)."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    wlat, wlon = lat.copy(), lon.copy()
    for _ in range(8):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        wlat = wlat - (glat - lat)
        wlon = wlon - (glon - lon)
    return wlat, wlon


def wgs84_to_bd09(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 to Baidu BD-09 (through GCJ-02)."""
    glat, glon = wgs84_to_gcj02(lat, lon)
    z = np.sqrt(glon * glon + glat * glat) + 0.00002 * np.sin(glat * _X_PI)
    theta = np.arctan2(glat, glon) + 0.000003 * np.cos(glon * _X_PI)
    return z * np.sin(theta) + 0.006, z * np.cos(theta) + 0.0065


def bd09_to_wgs84(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baidu BD-09 to WGS-84 (through GCJ-02)."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    x = lon - 0.0065
    y = lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return gcj02_to_wgs84(z * np.sin(theta), z * np.cos(theta))


def to_wgs84(lat: np.ndarray, lon: np.ndarray, system: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates in ``system`` (``wgs84``, ``gcj02``, ``bd09``) to WGS-84."""
    if system == "wgs84":
        return np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
    if system == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if system == "bd09":
        return bd09_to_wgs84(lat, lon)
    raise ValueError(f"unknown coordinate system {system!r}; expected one of {', '.join(COORD_SYSTEMS)}")


# --------------------------------------------------------------------------- #
# Configuration                                                               #
# --------------------------------------------------------------------------- #

PRECISIONS = (*LEVELS, "failed")
# provider -> (geopy class, coordinate system of its answers, name of the key argument)
_PROVIDERS = {
    "nominatim": ("Nominatim", "wgs84", None), "arcgis": ("ArcGIS", "wgs84", None),
    "baidu": ("Baidu", "bd09", "api_key"), "baiduv3": ("BaiduV3", "bd09", "api_key"),
    "photon": ("Photon", "wgs84", None), "opencage": ("OpenCage", "wgs84", "api_key"),
    "mapbox": ("MapBox", "wgs84", "api_key"), "tomtom": ("TomTom", "wgs84", "api_key"),
    "here": ("HereV7", "wgs84", "apikey"),
}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


# --------------------------------------------------------------------------- #
# Gazetteer                                                                   #
# --------------------------------------------------------------------------- #


def read_gazetteer(path: str | Path, *, coord_system: str = "wgs84") -> Gazetteer:
    """Read and index a gazetteer (``address``, ``lat``, ``lon``, optional ``coord_system``).

    CSV in any encoding and delimiter the customers file may have, or Parquet. Indexes are
    cached by path, modification time and size. Raises :class:`InputError` naming the file,
    and the row and column of a bad value."""
    p = Path(path)
    st = p.stat() if p.is_file() else None
    return _read_gazetteer(str(p.resolve()), st.st_mtime_ns if st else 0, st.st_size if st else 0, coord_system)


@functools.lru_cache(maxsize=4)
def _read_gazetteer(path: str, _mtime: int, _size: int, coord_system: str) -> Gazetteer:
    from .ingest import read_raw

    try:
        df = read_raw(Path(path), "auto")
    except InputError as e:
        raise InputError(f"gazetteer {e}", path=path) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in ("address", "lat", "lon"):
        if col not in df.columns:
            raise InputError(f"gazetteer {path}: column {col!r} is missing (columns: {', '.join(df.columns)})",
                             path=path, field=col)
    if len(df) == 0:
        raise InputError(f"gazetteer {path}: no rows", path=path)

    def bad(mask: np.ndarray, col: str, what: str) -> None:
        if mask.any():
            r = int(np.flatnonzero(mask)[0])
            raise InputError(f"gazetteer {path}, row {r + 1}, column {col}: {what}, got {df[col].iat[r]!r}"
                             + (f" ({int(mask.sum())} bad rows)" if mask.sum() > 1 else ""), path=path, row=r + 1, field=col)

    df["address"] = df["address"].fillna("").astype(str)
    bad((df["address"].str.strip() == "").to_numpy(), "address", "empty address")
    xy = {}
    for col, lim in (("lat", 90.0), ("lon", 180.0)):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64")
        bad(~(np.abs(v) <= lim), col, f"not a {'latitude' if col == 'lat' else 'longitude'}")
        xy[col] = v
    systems = np.full(len(df), coord_system, dtype=object)
    if "coord_system" in df.columns:
        given = df["coord_system"].fillna("").astype(str).str.strip().str.lower().to_numpy(dtype=object)
        systems = np.where(given == "", systems, given)
        bad(~np.isin(systems, COORD_SYSTEMS), "coord_system", f"must be one of {', '.join(COORD_SYSTEMS)}")
    lat, lon = xy["lat"].copy(), xy["lon"].copy()
    for system in set(systems) - {"wgs84"}:
        m = systems == system
        lat[m], lon[m] = to_wgs84(lat[m], lon[m], system)
    gz = Gazetteer(df["address"].tolist(), lat, lon)
    logger.info("gazetteer %s: %d rows", path, len(gz))
    return gz


# --------------------------------------------------------------------------- #
# Online provider                                                             #
# --------------------------------------------------------------------------- #

# Levels providers report (Baidu ``level``, Nominatim ``addresstype``/``type``, ArcGIS
# ``Addr_type``) -> precision; None: coarser than a district, not a usable location.
_LEVELS = {
    "building": ("楼栋", "building", "pointaddress", "subaddress"),
    "house_number": ("门址", "house", "house_number"),
    "compound": ("地产小区", "商务大厦", "residential", "apartments", "poi"),
    "community": ("村庄", "neighbourhood", "neighborhood", "quarter", "suburb", "locality", "village"),
    "road": ("道路", "乡镇", "road", "street", "streetname", "town"),
    "district": ("区县", "city_district", "district", "borough", "county", "subregion"),
    None: ("国家", "省", "城市", "country", "state", "region", "city", "province", "postal"),
}
_LEVEL = {w: p for p, words in _LEVELS.items() for w in words}


def _precision_score(raw) -> tuple[str | None, float]:
    raw = raw if isinstance(raw, dict) else {}
    attrs = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
    level = next((str(v).lower() for v in (raw.get("level"), raw.get("addresstype"), attrs.get("Addr_type"),
                                           raw.get("type")) if v), "")
    for key, mul in (("score", 1.0), ("confidence", 1.0), ("importance", 100.0)):
        if isinstance(raw.get(key), (int, float)) and not isinstance(raw.get(key), bool):
            return _LEVEL.get(level, "compound"), float(min(100.0, max(0.0, raw[key] * mul)))
    return _LEVEL.get(level, "compound"), math.nan


class OnlineGeocoder:
    """A geopy geocoder behind an SQLite cache, a rate limit, retries and timeouts.

    :meth:`geocode` answers ``(lat, lon, precision, score, reason)`` for each address and
    never raises for a bad answer: a definitive one (a point, "no result") is cached at once,
    a failure (timeout, server error, malformed response) is returned as ``failed`` with the
    reason and asked again next run. ``requests`` counts HTTP attempts, ``cache_hits`` answers
    from the cache. Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, config: GeocodeConfig) -> None:
        _check(config.provider is not None, "geocode.provider is not set")
        try:
            import geopy.adapters
            import geopy.geocoders
        except ImportError as e:
            raise ConfigError(f"geocode.provider {config.provider!r} needs geopy: pip install geopy") from e
        cls_name, self.coord_system, key_arg = _PROVIDERS[config.provider]
        self.provider, self.retries, self.timeout = config.provider, config.retries, config.timeout_s
        self._interval, self._next = 1.0 / config.rate_per_s, 0.0
        kwargs = {"timeout": config.timeout_s, "user_agent": "gridengine/0.1 (territory planning)",
                  "adapter_factory": geopy.adapters.URLLibAdapter}
        if key_arg:
            _check(config.api_key_env is not None, f"geocode.provider {config.provider!r} needs a key: set geocode.api_key_env")
            kwargs[key_arg] = os.environ.get(config.api_key_env or "", "")
            _check(kwargs[key_arg] != "", f"geocode.api_key_env: environment variable {config.api_key_env} is not set")
        if config.provider_url:
            kwargs["scheme"] = config.provider_url.split("://", 1)[0]
        self._geo = getattr(geopy.geocoders, cls_name)(**kwargs)
        if config.provider_url:
            from urllib.parse import urlsplit, urlunsplit
            base, api = urlsplit(config.provider_url), urlsplit(self._geo.api)
            self._geo.api = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + api.path, api.query, ""))
        self._extra = {"out_fields": ["Addr_type"]} if config.provider == "arcgis" else {}
        path = Path(config.cache) if config.cache else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridengine" / "geocode.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (provider TEXT, address TEXT, lat REAL, lon REAL, "
                         "precision TEXT, score REAL, reason TEXT, at REAL, PRIMARY KEY (provider, address))")
        self.requests = self.cache_hits = 0
        self._fatal = ""

    def __enter__(self) -> "OnlineGeocoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _throttle(self) -> None:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self._interval

    def _ask(self, text: str) -> tuple[tuple, bool]:
        """One address from the provider: (answer, definitive)."""
        from geopy import exc

        def failed(why: str, definitive: bool = False) -> tuple[tuple, bool]:
            return (math.nan, math.nan, "failed", 0.0, why), definitive

        last, wait = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(60.0, max(wait, self._interval * 2 ** (attempt - 1))))
            self._throttle()
            self.requests += 1
            wait = 0.0
            try:
                loc = self._geo.geocode(text, exactly_one=True, timeout=self.timeout, **self._extra)
                if loc is None:
                    return failed("no result", True)
                lat, lon = float(loc.latitude), float(loc.longitude)
                if not (abs(lat) <= 90 and abs(lon) <= 180):
                    raise ValueError("coordinates out of range")
                precision, score = _precision_score(loc.raw)
            except exc.GeocoderRateLimited as e:
                last, wait = "rate limit", float(e.retry_after or 0.0)
            except exc.GeocoderTimedOut:
                last = "timeout"
            except (exc.GeocoderAuthenticationFailure, exc.GeocoderInsufficientPrivileges, exc.GeocoderQuotaExceeded) as e:
                self._fatal = f"provider refused the requests ({type(e).__name__}: {e})"
                return failed(self._fatal)
            except exc.GeocoderParseError:
                return failed("malformed response")
            except exc.GeocoderQueryError as e:
                return failed(f"query refused ({e})")
            except exc.GeopyError as e:
                last = f"error ({e})"
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                return failed("malformed response")
            else:
                if precision is None:
                    return failed("result coarser than a district", True)
                wlat, wlon = to_wgs84(np.array([lat]), np.array([lon]), self.coord_system)
                return (round(float(wlat[0]), 7), round(float(wlon[0]), 7), precision, score, ""), True
        return failed(f"provider {last} after {self.retries} retr{'y' if self.retries == 1 else 'ies'}")

    def geocode(self, addresses) -> list[tuple]:
        """Answers ``(lat, lon, precision, score, reason)`` for the addresses, in order."""
        out, seen = [], {}
        for text in addresses:
            key = normalise_address(text)
            if key in seen:
                out.append(seen[key])
                continue
            row = self._db.execute("SELECT lat, lon, precision, score, reason FROM answers WHERE provider=? AND "
                                   "address=?", (self.provider, key)).fetchone()
            if row is not None:
                self.cache_hits += 1
                ans = tuple(math.nan if v is None else v for v in row)
            elif self._fatal:
                ans = (math.nan, math.nan, "failed", 0.0, self._fatal)
            else:
                ans, definitive = self._ask(" ".join(str(text).split()))
                if definitive:
                    self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                     (self.provider, key, *ans, time.time()))
            seen[key] = ans
            out.append(ans)
        return out


# --------------------------------------------------------------------------- #
# The stage                                                                   #
# --------------------------------------------------------------------------- #


def geocode_customers(customers: pd.DataFrame, *, coord_system: str = "wgs84",
                      config: GeocodeConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every customer WGS-84 coordinates, or reject it with a reason.

    Parameters
    ----------
    customers
        Validated customers (:func:`gridengine.validate_customers`): ``lat``/``lon`` may be NaN
        where only an ``address`` was given.
    coord_system
        The coordinate system of the given ``lat``/``lon``.
    config
        The geocoders to chain; ``None`` places only rows with coordinates.

    Returns
    -------
    located
        The customers with WGS-84 ``lat``/``lon`` and ``geo_precision``, ``geo_source``,
        ``geo_score`` columns, in input order.
    rejects
        ``customer_id``, ``row``, ``reason`` for customers that could not be placed.
        ``len(located) + len(rejects) == len(customers)``.
    """
    n = len(customers)
    cfg = config or GeocodeConfig(order=("coordinates",))
    accept = set(cfg.accept) if config else set(PRECISIONS)
    lat = customers["lat"].to_numpy(dtype="float64").copy()
    lon = customers["lon"].to_numpy(dtype="float64").copy()
    has_xy = ~np.isnan(lat) & ~np.isnan(lon)
    address = (customers["address"].fillna("").astype(str).str.strip() if "address" in customers.columns
               else pd.Series([""] * n, index=customers.index))
    has_addr = (address != "").to_numpy()
    prec, src = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    score, reason = np.full(n, np.nan), np.full(n, "", dtype=object)
    out_lat, out_lon = np.full(n, np.nan), np.full(n, np.nan)
    done = np.zeros(n, dtype=bool)

    def settle(m: np.ndarray, la, lo, p, sc, why, source: str, radius=None) -> None:
        idx = np.flatnonzero(m)
        p = np.asarray(p, dtype=object)
        sc = np.asarray(sc, dtype="float64")
        rad = np.zeros(len(idx)) if radius is None else np.asarray(radius, dtype="float64")
        level_ok = np.isin(p, list(accept)) | (source.startswith("input") and p == "building")
        low = (sc < cfg.min_score) if source == "gazetteer" else np.zeros(len(idx), dtype=bool)  # providers score otherwise
        ok = level_ok & ~low & ~(rad > cfg.max_radius_m)
        i = idx[ok]
        out_lat[i], out_lon[i], prec[i], score[i], src[i] = np.asarray(la)[ok], np.asarray(lo)[ok], p[ok], sc[ok], source
        done[i] = True
        why = np.asarray(why, dtype=object)
        for j, pj, wj, sj, rj, lj in zip(idx[~ok], p[~ok], why[~ok], sc[~ok], rad[~ok], level_ok[~ok]):
            note = f"; {wj}" if wj else ""
            msg = (f"{source}: {wj}" if pj == "failed" else
                   f"{source}: placed only at {pj} level (score {sj:.0f}{note}), not in geocode.accept" if not lj else
                   f"{source}: {pj} point may be {rj:.0f} m off, more than geocode.max_radius_m = {cfg.max_radius_m:g}"
                   f"{note}" if rj > cfg.max_radius_m else
                   f"{source}: score {sj:.0f} below geocode.min_score = {cfg.min_score:g}{note}")
            reason[j] = f"{reason[j]}; {msg}" if reason[j] else msg

    for stage in cfg.order:
        if stage == "coordinates":
            m = ~done & has_xy
            la, lo = to_wgs84(lat[m], lon[m], coord_system)
            settle(m, la, lo, np.full(int(m.sum()), "building"), np.full(int(m.sum()), 100.0), np.full(int(m.sum()), ""),
                   "input" if coord_system == "wgs84" else f"input:{coord_system}")
        elif stage == "gazetteer" and cfg.gazetteer:
            m = ~done & has_addr
            if m.any():
                res = read_gazetteer(cfg.gazetteer, coord_system=cfg.gazetteer_coord_system).match(address[m])
                settle(m, res["lat"], res["lon"], res["precision"], res["score"], res["reason"], "gazetteer", res["radius_m"])
        elif stage == "online" and cfg.provider:
            m = ~done & has_addr
            if m.any():
                with OnlineGeocoder(cfg) as geo:
                    res = pd.DataFrame(geo.geocode(address[m].tolist()), columns=["lat", "lon", "p", "s", "r"])
                    logger.info("geocode online (%s): %d addresses, %d from the cache, %d requests",
                                cfg.provider, int(m.sum()), geo.cache_hits, geo.requests)
                settle(m, res["lat"], res["lon"], res["p"], res["s"], res["r"], f"online:{cfg.provider}")

    rej = ~done
    for j in np.flatnonzero(rej & (reason == "")):  # rows no geocoder of the chain could try
        reason[j] = ("no coordinates and no address" if not (has_addr[j] or has_xy[j]) else
                     "coordinates given but 'coordinates' is not in geocode.order" if has_xy[j] else
                     "address only: no coordinates and no geocoder configured to place the address")
    located = customers.loc[done].copy()
    located["lat"], located["lon"] = np.round(out_lat[done], 7), np.round(out_lon[done], 7)
    located["geo_precision"], located["geo_source"], located["geo_score"] = prec[done], src[done], score[done]
    rows = customers["row"].to_numpy() if "row" in customers.columns else np.arange(1, n + 1)
    rejects = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(dtype=object)[rej],
                            "row": rows[rej], "reason": reason[rej].astype(object)})
    if rej.any():
        logger.info("geocode: %d of %d customers rejected", int(rej.sum()), n)
    return located.reset_index(drop=True), rejects


_NAMES = re.compile(r"[\u4e00-\u9fff0-9A-Za-z#\-]*[\u4e00-\u9fff0-9][\u4e00-\u9fff0-9A-Za-z#\-]*")


def reject_summary(rejects: pd.DataFrame, top: int = 3) -> list[tuple[str, int, int, str]]:
    """The commonest reasons of a rejects table, the names and numbers in them blanked.

    Parameters
    ----------
    rejects
        ``customer_id``, ``row``, ``reason``.
    top
        How many reasons to give.

    Returns
    -------
    list of tuple
        ``(reason pattern, count, first row, first full reason)``, commonest first (ties by
        first row), e.g. ``("gazetteer: compound … not in the gazetteer", 812, 17, "...")``.
    """
    if len(rejects) == 0:
        return []
    text = rejects["reason"].astype(str).str.replace(r"\s*\([^()]*\)", "", regex=True)
    source = text.str.extract(r"^((?:gazetteer|online:[a-z0-9]+|input[a-z0-9:]*): )", expand=False).fillna("")
    body = pd.Series([t[len(p):] for t, p in zip(text, source)], index=text.index, dtype=object)
    last = source + body.str.split("; ").str[-1]  # the decisive reason: the last of the notes
    pattern = last.str.replace(_NAMES, "…", regex=True).str.replace(r"\d+", "…", regex=True)
    df = pd.DataFrame({"p": pattern.to_numpy(), "row": rejects["row"].to_numpy(), "reason": rejects["reason"].to_numpy()})
    g = df.groupby("p", sort=False).agg(n=("row", "size"), row=("row", "first"), reason=("reason", "first"))
    g = g.sort_values(["n", "row"], ascending=[False, True]).head(top)
    return [(str(p), int(r.n), int(r.row), str(r.reason)) for p, r in g.iterrows()]


def check_reject_share(rejects: pd.DataFrame, n_rows: int, config: GeocodeConfig, source: str = "customers") -> None:
    """Stop the run when the geocoders rejected more than ``config.max_reject_share`` of the rows.

    Parameters
    ----------
    rejects
        The geocode stage's rejects (``customer_id``, ``row``, ``reason``).
    n_rows
        The number of rows the stage was given.
    config
        The geocode settings.
    source
        The input named in the message.

    Raises
    ------
    InputError
        Naming the share, the threshold and the commonest reasons with an example row of each;
        its ``rejects`` attribute holds the rejects table.
    """
    share = len(rejects) / n_rows if n_rows else 0.0
    if share <= config.max_reject_share:
        return
    reasons = "; ".join(f"{n} x {p!r} (e.g. row {r}: {full})" for p, n, r, full in reject_summary(rejects))
    err = InputError(f"{source}: {len(rejects)} of {n_rows} rows ({share:.1%}) could not be placed, above "
                     f"geocode.max_reject_share = {config.max_reject_share:g}; commonest reasons: {reasons}",
                     path=source if source != "customers" else None, row=int(rejects["row"].iat[0]), field="address")
    err.rejects = rejects
    raise err


def place_customers(customers: pd.DataFrame, rejects: pd.DataFrame, *, coord_system: str, config: GeocodeConfig,
                    source: str = "customers") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The geocoding stage: place every customer row (:func:`geocode_customers`) and check the rejects.

    Parameters
    ----------
    customers
        Valid customer rows from the ingest stage.
    rejects
        The ingest stage's rejects (they travel with an error, so they are still written).
    coord_system
        The customers' coordinate system (converted to WGS-84).
    config
        The geocoding config.
    source
        The customers' file name, for messages.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The located customers (``lat``, ``lon`` in WGS-84, ``geo_precision``, ``geo_source``,
        ``geo_score``) and the rows not placed (with the reason of each geocoder tried).

    Raises
    ------
    InputError
        Too many rows not placed (``geocode.max_reject_share``), or none placed; its ``rejects``
        holds every rejected row so far.
    """
    located, rejects1 = geocode_customers(customers, coord_system=coord_system, config=config)
    try:  # too many rows not placed, or none: stop, the rejects travel with the error to be written
        check_reject_share(rejects1, len(customers), config, source=source)
        if len(located) == 0:
            raise InputError("no customer could be located: every row was rejected (see the reasons in rejects)")
    except InputError as e:
        e.rejects = pd.concat([r for r in (rejects, rejects1) if len(r)] or [rejects], ignore_index=True)
        raise
    return located, rejects1
