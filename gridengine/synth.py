"""Deterministic synthetic Chinese cities for tests, benchmarks and the sample data.

The generator draws a Shenzhen-like city around a configurable centre: a
50 km x 25 km strip of land on the south coast with a bay cutting in from the
south-west, a meandering river, an offshore island with a fishing village, five
districts with dense high-rise cores, urban villages, suburbs and scattered
single customers toward the edges.

Geography
---------
All geometry is built in a local metric frame (``x`` = km east, ``y`` = km
north of ``center``) and converted to WGS-84 with an equirectangular
projection::

    lat = lat0 + y / 110.574
    lon = lon0 + x / (111.320 * cos(lat0))

The conversion is affine, so polygons convert exactly.

The geography (coastline, bay, river, island, district centres, street and
community names) is fixed: it does not depend on ``seed`` or on the number of
customers, only on ``center``. Everything that is *drawn* (compounds, villages,
customers, workloads, specialists) depends on ``seed``.

* **Land** -- about 50 km east-west by 25 km north-south with wavy borders.
* **Bay** -- a water polygon (about 65 km^2) cutting into the south-west
  corner, like Shenzhen Bay.
* **River** -- a 350 m wide buffered LineString. It rises *inside* the land
  about 4 km before the east edge, meanders westward across the city and
  flows into the bay. Because it starts inland, the mainland stays **one
  polygon**: the north and south banks are connected around the river's source
  in the east. The river does not necessarily break H3 adjacency at
  resolution 9.
* **Island** -- radius about 1.7 km, a few km off the south coast; the water
  gap to the mainland is about 3.2 km (checked to be at least 2.5 km), so at
  H3 resolution 9 no island cell is adjacent to a mainland cell.
* **Country parks** -- four hills (ellipses of 2-5 km) inside the mainland
  where nobody lives. They are land, part of the service area, just empty.

``service_area`` is the land minus the bay and the river, plus the island: a
``MultiPolygon`` of exactly two polygons (mainland, island).

Customers
---------
* about 72 % live in **high-rise compounds** around the district hotspots.
  A compound is one address location; sizes are heavy-tailed (most 20-200,
  about 8 % are 300-600 customers; when there are at least 600 core customers
  the first compound is always such a "mega" compound). About half of the
  compounds are geocoded at compound level (every customer at exactly the same
  lat/lon, always including the largest compound); the others are geocoded per
  building, 20-60 m from the compound centre.
* about 24 % live in **urban villages and suburbs** (5-50 customers each, in
  low-rise buildings 10-150 m from the village centre; 30 % geocoded at
  village level). About two thirds of the villages are spread widely around
  the cores, the rest uniformly over the land.
* about 4 % are **scattered single customers**, more likely toward the edges.
* ``max(20, round(0.003 * n))`` live in the island's **fishing village**.

No customer is in the water or outside the land: every location is at least
30 m inside ``service_area``.

Workload is 1.0, except for customers at risk of lapsing (about 15 %, clustered
by site) who get 1.5, 2.0 or 3.0; the total is about ``1.2 * n``.

Addresses read ``广东省深圳市{district}{street}{community}社区{compound}{building}栋
{unit}单元{room}室`` (the province and city are always Guangdong/Shenzhen, even
when ``center`` is moved). Districts are the Voronoi regions of the five
district centres; streets (``xx街道`` or ``xx路``) and communities are named
after 4 km and 1.2 km squares within a district, so they too are fixed by the
geography. Compound names are drawn; a name repeated within a community
becomes a later phase (``xx花园二期``). Every customer has a distinct
address (compound + building + unit + room).

Customer ids follow a random permutation of the generated customers, so
neighbouring ids are not neighbours on the map.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from .errors import ConfigError

__all__ = ["SyntheticCity", "generate_city", "write_city", "generate_messy_addresses", "build_gazetteer",
           "NATION_CITIES", "nation_city_sizes", "generate_nation"]

logger = logging.getLogger(__name__)

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320

CUSTOMER_COLUMNS = ["customer_id", "address", "district", "lat", "lon", "workload"]
SPECIALIST_COLUMNS = ["specialist_id", "name", "contract", "capacity", "lat", "lon", "current_grid"]

MIN_CUSTOMERS = 100

# Shares of the customer population by kind of site.
_SHARE_VILLAGE = 0.24
_SHARE_SINGLE = 0.04
_SHARE_ISLAND = 0.003
_MIN_ISLAND = 20

# Every location is at least this far (km) inside the service area.
_MARGIN_KM = 0.03

# Workload model: share at risk of lapsing, and the workload levels they get.
_AT_RISK_SHARE = 0.15
_AT_RISK_LEVELS = np.array([1.5, 2.0, 3.0])
_AT_RISK_PROBS = np.array([0.25, 0.30, 0.45])

# Specialists are staffed for grids filled to this share of their capacity.
_TARGET_FILL = 0.9

# --------------------------------------------------------------------------- #
# Fixed geography (local km frame)                                            #
# --------------------------------------------------------------------------- #

_DISTRICT_NAMES = ("宝安区", "南山区", "福田区", "罗湖区", "龙岗区")
_DISTRICT_CENTRES = np.array(
    [[-17.0, 6.0], [-13.0, -4.0], [-4.0, -4.0], [4.0, -3.0], [15.0, 4.0]]
)

# Hotspots of high-rise housing: (district index, x, y, sigma km, weight).
_HOTSPOTS = np.array(
    [
        # 宝安区: large, medium density
        [0, -17.0, 6.0, 2.5, 0.08],
        [0, -20.0, 2.0, 1.8, 0.05],
        [0, -12.0, 9.0, 2.2, 0.04],
        # 南山区
        [1, -13.0, -5.0, 1.8, 0.10],
        [1, -11.0, -8.5, 1.4, 0.06],
        [1, -15.0, -1.0, 1.5, 0.04],
        # 福田区: densest
        [2, -4.0, -4.0, 1.6, 0.14],
        [2, -6.0, -1.5, 1.3, 0.06],
        [2, -2.5, -6.5, 1.2, 0.04],
        # 罗湖区: small and dense
        [3, 4.0, -3.0, 1.4, 0.10],
        [3, 6.5, -0.5, 1.2, 0.05],
        # 龙岗区: large and sparse
        [4, 15.0, 4.0, 2.8, 0.07],
        [4, 11.0, 8.0, 2.0, 0.04],
        [4, 19.0, -4.0, 2.0, 0.03],
        [4, 20.0, 9.0, 2.0, 0.02],
    ]
)

_ISLAND_CENTRE = (7.0, -17.8)
_ISLAND_RADIUS = 1.7
_ISLAND_VILLAGE_CENTRE = (6.5, -16.9)
_MIN_ISLAND_GAP_KM = 2.5
_RIVER_HALF_WIDTH = 0.175
# Country parks (hills): land where nobody lives, as ellipses (x, y, rx, ry) in km.
_PARKS = (
    (10.5, -5.5, 2.6, 1.8),  # like Wutong Mountain, east of the Luohu core
    (-8.5, 3.5, 2.2, 1.4),  # like Tanglang Mountain
    (21.5, -8.5, 2.5, 2.0),  # like Maluan Mountain, on the south-east coast
    (-1.0, 9.0, 1.8, 1.5),
)

# --------------------------------------------------------------------------- #
# Name material                                                               #
# --------------------------------------------------------------------------- #

_PLACE_SYLLABLES = np.array(
    list(
        "华福新南海景龙安田沙湾桥岗坪山石明康泰宁和平兴盛城东西北中翠碧香蜜荔梅林竹湖滨港"
        "嘉豪锦绣金银宝丽美春秋阳光星月云天水庭苑松柏桃李芳凤鸣祥瑞丰源泉溪岭峰洲湖园"
    ),
    dtype=object,
)
_COMPOUND_SUFFIXES = np.array(["花园", "苑", "小区", "新村", "华庭", "家园", "名苑", "公寓"], dtype=object)
_COMPOUND_SUFFIX_P = np.array([0.30, 0.18, 0.17, 0.10, 0.08, 0.08, 0.05, 0.04])
_VILLAGE_SUFFIXES = np.array(["村", "新村", "围", "坊"], dtype=object)
_VILLAGE_SUFFIX_P = np.array([0.45, 0.30, 0.15, 0.10])

_SURNAMES = np.array(
    list(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程"
        "魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵"
        "万钱严覃武戴莫孔向汤"
    ),
    dtype=object,
)
_GIVEN_SYLLABLES = np.array(
    list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力鹏晓婷雪琳俊峰浩宇欣怡佳颖志国海燕梅子轩涵睿博晨"),
    dtype=object,
)


# --------------------------------------------------------------------------- #
# Public API                                                                  #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class SyntheticCity:
    """A generated city: customers, specialists and the service area.

    ``eq=False`` because the fields are DataFrames: instances compare and hash
    by identity. Compare the tables with :meth:`pandas.DataFrame.equals`.

    Parameters
    ----------
    customers
        One row per customer, columns ``customer_id`` (``"C0000001"``, at least
        7 digits), ``address``, ``district`` (str), ``lat``, ``lon`` (float,
        WGS-84, 6 decimals) and ``workload`` (float). Rows are sorted by
        ``customer_id``.
    specialists
        One row per specialist, columns ``specialist_id`` (``"S0001"``),
        ``name``, ``contract`` (``"contract"`` or ``"agency"``: the dual
        track), ``capacity`` (float), ``lat``, ``lon`` (6 decimals) and
        ``current_grid`` (always the empty string).
    service_area
        The city's land minus water plus the offshore island, a
        ``MultiPolygon`` in EPSG:4326 (lon, lat), coordinates rounded to
        6 decimals.
    name
        A human-readable name, written to the GeoJSON properties.
    """

    customers: pd.DataFrame
    specialists: pd.DataFrame
    service_area: BaseGeometry
    name: str = "synthetic city"


def generate_city(
    n_customers: int = 20_000,
    *,
    seed: int = 0,
    capacity: float = 1000.0,
    part_time_share: float | None = None,
    spare_share: float = 0.0,
    center: tuple[float, float] = (22.58, 114.06),
    agency_share: float = 0.30,
    agency_ratio: float = 0.6,
) -> SyntheticCity:
    """Generate a deterministic Shenzhen-like synthetic city.

    See the module docstring for the geography and the customer model. All
    randomness comes from ``numpy.random.default_rng(seed)``: the same
    arguments always give identical tables (and byte-identical files from
    :func:`write_city`).

    Parameters
    ----------
    n_customers
        Number of customers, at least 100.
    seed
        Seed of the random generator (a non-negative integer).
    capacity
        Capacity ``C`` of a contract specialist, in workload units. Agency
        specialists get ``agency_ratio * C``.
    part_time_share
        Deprecated (the roster used to have full-time and part-time staff):
        when given, the agency headcount as a share of the contract one, i.e.
        ``agency_share = part_time_share / (1 + part_time_share)`` (between
        0 and 1). ``None`` (default): use ``agency_share``.
    spare_share
        Extra contract specialists beyond those the workload needs, as a share
        of that headcount (non-negative; default 0: no spares, as in a real
        roster. It used to default to 0.10).
    center
        ``(lat, lon)`` of the city centre (WGS-84 degrees).
    agency_share
        Share of the needed headcount on the agency track (in [0, 1)).
    agency_ratio
        An agency specialist's capacity as a share of a contract one's
        (in (0, 1]).

    Returns
    -------
    SyntheticCity
        The customers, the specialists and the service area.

    Raises
    ------
    ConfigError
        If an argument is out of range.

    Notes
    -----
    The roster is a dual track sized to the workload: about as many
    specialists as it takes to carry the workload at a mean fill of 90 %.
    With ``a = agency_share`` and ``r = agency_ratio``, the headcount is
    ``n = ceil(total_workload / (0.9 * capacity * (1 - a + a * r)))``, of
    which ``round(a * n)`` are agency specialists (capacity ``r * capacity``)
    and the rest contract specialists (capacity ``capacity``); contract
    specialists are added while the total capacity is below
    ``total_workload / 0.9``, then ``ceil(spare_share * n)`` spare contract
    specialists. Bases are drawn about 1 km from random customers, always
    inside the service area. The roster is drawn after the customers from
    the same random stream, so the customers do not depend on any roster
    argument.

    Examples
    --------
    >>> city = generate_city(5_000, seed=1)
    >>> len(city.customers)
    5000
    """
    city, stats = _generate(
        n_customers,
        seed=seed,
        capacity=capacity,
        part_time_share=part_time_share,
        spare_share=spare_share,
        center=center,
        agency_share=agency_share,
        agency_ratio=agency_ratio,
    )
    logger.info(
        "synthetic city: %d customers (workload %.1f), %d compounds (largest %d), "
        "%d villages, %d single customers, %d island customers, %d specialists "
        "(%d contract, %d agency)",
        stats["n_customers"],
        stats["total_workload"],
        stats["n_compounds"],
        stats["largest_compound"],
        stats["n_villages"],
        stats["n_singles"],
        stats["n_island"],
        stats["n_specialists"],
        stats["n_contract"],
        stats["n_agency"],
    )
    return city


def write_city(city: SyntheticCity, folder: str | Path) -> dict[str, Path]:
    """Write a synthetic city as CSV and GeoJSON files.

    Writes ``customers.csv`` and ``specialists.csv`` (UTF-8, no index, ``\\n``
    line endings) and ``service_area.geojson`` (a FeatureCollection with one
    feature whose properties are ``{"name": city.name}``). The folder is
    created if needed; existing files are overwritten.

    Parameters
    ----------
    city
        The city to write.
    folder
        Destination folder.

    Returns
    -------
    dict of str to pathlib.Path
        The written files under the keys ``"customers"``, ``"specialists"``
        and ``"service_area"``.

    Notes
    -----
    ``current_grid`` is written as an empty field; read it back with
    ``keep_default_na=False`` (or ``fillna("")``) to get empty strings.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "customers": folder / "customers.csv",
        "specialists": folder / "specialists.csv",
        "service_area": folder / "service_area.geojson",
    }
    city.customers.to_csv(paths["customers"], index=False, encoding="utf-8", lineterminator="\n")
    city.specialists.to_csv(paths["specialists"], index=False, encoding="utf-8", lineterminator="\n")
    feature_collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": city.name},
                "geometry": _round_coords(mapping(city.service_area)),
            }
        ],
    }
    with open(paths["service_area"], "w", encoding="utf-8", newline="\n") as fh:
        json.dump(feature_collection, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")
    logger.info("wrote synthetic city to %s", folder)
    return paths


# --------------------------------------------------------------------------- #
# Implementation                                                              #
# --------------------------------------------------------------------------- #


def _round_coords(obj: Any) -> Any:
    """Turn a GeoJSON-like mapping into lists with coordinates rounded to 6 decimals."""
    if isinstance(obj, dict):
        return {k: _round_coords(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], numbers.Real) and not isinstance(obj[0], bool):
            return [round(float(v), 6) for v in obj]
        return [_round_coords(v) for v in obj]
    return obj


def _check_args(
    n_customers: int,
    seed: int,
    capacity: float,
    part_time_share: float | None,
    spare_share: float,
    center: tuple[float, float],
    agency_share: float = 0.30,
    agency_ratio: float = 0.6,
) -> None:
    """Raise :class:`ConfigError` for out-of-range arguments."""
    if isinstance(n_customers, bool) or not isinstance(n_customers, numbers.Integral):
        raise ConfigError(f"n_customers must be an integer, got {n_customers!r}")
    if n_customers < MIN_CUSTOMERS:
        raise ConfigError(f"n_customers must be at least {MIN_CUSTOMERS}, got {n_customers}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(capacity, numbers.Real) and math.isfinite(capacity) and capacity > 0):
        raise ConfigError(f"capacity must be a positive finite number, got {capacity!r}")
    if part_time_share is not None and not (isinstance(part_time_share, numbers.Real) and 0.0 <= part_time_share <= 1.0):
        raise ConfigError(f"part_time_share must be between 0 and 1, got {part_time_share!r}")
    if not (isinstance(agency_share, numbers.Real) and 0.0 <= agency_share < 1.0):
        raise ConfigError(f"agency_share must be in [0, 1), got {agency_share!r}")
    if not (isinstance(agency_ratio, numbers.Real) and 0.0 < agency_ratio <= 1.0):
        raise ConfigError(f"agency_ratio must be in (0, 1], got {agency_ratio!r}")
    if not (isinstance(spare_share, numbers.Real) and math.isfinite(spare_share) and spare_share >= 0):
        raise ConfigError(f"spare_share must be a non-negative finite number, got {spare_share!r}")
    try:
        lat0, lon0 = (float(v) for v in center)
    except (TypeError, ValueError):
        raise ConfigError(f"center must be a (lat, lon) pair, got {center!r}") from None
    if not (-70.0 <= lat0 <= 70.0 and -179.0 <= lon0 <= 179.0):
        raise ConfigError(f"center must be a (lat, lon) with |lat| <= 70 and |lon| <= 179, got {center!r}")


@dataclass(frozen=True)
class _Geography:
    """The fixed geography in the local km frame."""

    mainland: Polygon
    island: Polygon
    water: BaseGeometry  # the bay and the river (the sea is everything else off the land)
    valid_mainland: BaseGeometry  # mainland shrunk by the margin, prepared
    valid_island: BaseGeometry  # island shrunk by the margin, prepared
    residential: BaseGeometry  # valid_mainland minus the country parks, prepared
    bounds: tuple[float, float, float, float]


def _wavy(t: np.ndarray, terms: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Sum of sines ``a * sin(t / p + phase)`` for ``(a, p, phase)`` in ``terms``."""
    out = np.zeros_like(t, dtype=float)
    for amp, period, phase in terms:
        out += amp * np.sin(t / period + phase)
    return out


def _chaikin(points: np.ndarray, iterations: int) -> np.ndarray:
    """Smooth an open polyline with Chaikin's corner cutting (endpoints kept)."""
    pts = points
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2] = q
        mid[1::2] = r
        pts = np.vstack([pts[:1], mid, pts[-1:]])
    return pts


_GEOGRAPHY_CACHE: dict[str, _Geography] = {}


def _geography() -> _Geography:
    """Build (once) the fixed geography of the synthetic city in the local frame."""
    if "geo" in _GEOGRAPHY_CACHE:
        return _GEOGRAPHY_CACHE["geo"]
    step = 0.25
    xs = np.arange(-25.0, 25.0 + 1e-9, step)
    ys = np.arange(-12.5, 12.5 + 1e-9, step)
    south = -12.5 + _wavy(xs, ((0.9, 2.9, 1.0), (0.5, 1.1, 0.0), (0.25, 0.45, 2.0)))
    north = 12.5 + _wavy(xs, ((0.6, 3.1, 0.0), (0.4, 1.37, 0.5)))
    east = 25.0 + _wavy(ys, ((0.5, 2.3, 0.3), (0.3, 0.9, 1.0)))
    west = -25.0 + _wavy(ys, ((0.4, 1.9, 0.0), (0.2, 0.7, 2.0)))
    ring = np.vstack(
        [
            np.column_stack([xs, south]),  # south coast, west -> east
            np.column_stack([east[1:-1], ys[1:-1]]),  # east border, south -> north
            np.column_stack([xs[::-1], north[::-1]]),  # north border, east -> west
            np.column_stack([west[::-1][1:-1], ys[::-1][1:-1]]),  # west coast, north -> south
        ]
    )
    land = shapely.make_valid(Polygon(ring))

    bay = Polygon(
        [
            (-27.0, -15.0),
            (-27.0, -3.5),
            (-24.0, -2.5),
            (-21.0, -3.2),
            (-18.5, -5.0),
            (-16.5, -7.5),
            (-14.0, -9.5),
            (-12.5, -11.5),
            (-12.0, -15.0),
        ]
    ).buffer(0.8, quad_segs=8).buffer(-0.8, quad_segs=8)

    river_ctrl = np.array(
        [
            [21.0, 4.0],
            [17.0, 2.5],
            [13.0, 3.6],
            [9.0, 1.8],
            [5.0, 2.6],
            [1.0, 0.8],
            [-3.0, 1.6],
            [-7.0, 0.2],
            [-10.0, -0.8],
            [-13.0, -1.0],
            [-16.0, -2.6],
            [-18.5, -4.6],
            [-21.0, -6.5],
        ]
    )
    river_pts = _chaikin(river_ctrl, 5)
    river_pts[:, 1] += 0.3 * np.sin(river_pts[:, 0] / 0.7) * np.clip((21.0 - river_pts[:, 0]) / 2.0, 0.0, 1.0)
    river = LineString(river_pts).buffer(_RIVER_HALF_WIDTH, quad_segs=8)

    mainland_geom = land.difference(bay).difference(river)
    parts = [g for g in getattr(mainland_geom, "geoms", [mainland_geom]) if g.area > 1e-6]
    if len(parts) != 1:  # pragma: no cover - fixed geometry, checked by tests
        raise RuntimeError(f"synthetic mainland is not one polygon ({len(parts)} parts)")
    mainland = parts[0]

    theta = np.linspace(0.0, 2.0 * np.pi, 97)[:-1]
    radius = _ISLAND_RADIUS * (1.0 + 0.08 * np.sin(3.0 * theta) + 0.05 * np.sin(5.0 * theta + 1.0))
    island = Polygon(
        np.column_stack(
            [_ISLAND_CENTRE[0] + radius * np.cos(theta), _ISLAND_CENTRE[1] + radius * np.sin(theta)]
        )
    )
    gap = mainland.distance(island)
    if gap < _MIN_ISLAND_GAP_KM:  # pragma: no cover - fixed geometry
        raise RuntimeError(f"island is only {gap:.2f} km from the mainland")

    valid_mainland = mainland.buffer(-_MARGIN_KM)
    valid_island = island.buffer(-_MARGIN_KM)
    parks = shapely.union_all(
        [
            shapely.affinity.scale(
                Point(px, py).buffer(1.0, quad_segs=16), xfact=rx, yfact=ry
            )
            for px, py, rx, ry in _PARKS
        ]
    )
    residential = valid_mainland.difference(parks)
    shapely.prepare(valid_mainland)
    shapely.prepare(valid_island)
    shapely.prepare(residential)
    geo = _Geography(
        mainland=mainland,
        island=island,
        water=shapely.union(bay, river),
        valid_mainland=valid_mainland,
        valid_island=valid_island,
        residential=residential,
        bounds=tuple(float(v) for v in mainland.bounds),  # type: ignore[arg-type]
    )
    _GEOGRAPHY_CACHE["geo"] = geo
    return geo


def _to_lonlat(x: np.ndarray, y: np.ndarray, center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Convert local km coordinates to (lon, lat) degrees (equirectangular)."""
    lat0, lon0 = float(center[0]), float(center[1])
    lat = lat0 + np.asarray(y, dtype=float) / KM_PER_DEG_LAT
    lon = lon0 + np.asarray(x, dtype=float) / (KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0)))
    return lon, lat


def _service_area_lonlat(geo: _Geography, center: tuple[float, float]) -> MultiPolygon:
    """The service area in EPSG:4326, coordinates rounded to 6 decimals."""

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = _to_lonlat(coords[:, 0], coords[:, 1], center)
        return np.round(np.column_stack([lon, lat]), 6)

    parts = [shapely.transform(geo.mainland, convert), shapely.transform(geo.island, convert)]
    area = MultiPolygon(parts)
    if not area.is_valid:  # pragma: no cover - vertices are tens of metres apart
        area = MultiPolygon([shapely.make_valid(p) for p in parts])
    return area


def _sample_in(
    rng: np.random.Generator,
    region: BaseGeometry,
    n: int,
    propose: Any,
    accept_prob: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rejection-sample ``n`` points inside ``region`` (vectorised batches).

    Parameters
    ----------
    rng
        Random generator.
    region
        Prepared polygon the points must fall in.
    n
        Number of points.
    propose
        ``propose(rng, m) -> (x, y)`` draws ``m`` candidate points.
    accept_prob
        Optional ``accept_prob(x, y) -> p`` for a second, thinning acceptance step.

    Returns
    -------
    tuple of numpy.ndarray
        ``x`` and ``y`` of the accepted points, in draw order.
    """
    xs: list[np.ndarray] = [np.zeros(0)]
    ys: list[np.ndarray] = [np.zeros(0)]
    have = 0
    batch = max(64, int(n * 1.6))
    rounds = 0
    while have < n:
        rounds += 1
        if rounds > 200:  # pragma: no cover - acceptance rates are far above 1 %
            raise RuntimeError("rejection sampling did not converge")
        x, y = propose(rng, batch)
        ok = shapely.contains_xy(region, x, y)
        if accept_prob is not None:
            ok &= rng.random(batch) < accept_prob(x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        have += int(ok.sum())
        batch = max(64, int((n - have) * 2.0))
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _fill_sizes(
    rng: np.random.Generator, budget: int, draw: Any, mean_size: float, min_size: int
) -> np.ndarray:
    """Draw site sizes from ``draw(rng, m)`` until they sum to exactly ``budget``.

    The last site is trimmed to the remaining budget; a remainder below
    ``min_size`` is merged into the previous site.
    """
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    m = int(budget / mean_size * 1.5) + 16
    sizes = draw(rng, m).astype(np.int64)
    while sizes.sum() < budget:  # pragma: no cover - m is generous
        sizes = np.concatenate([sizes, draw(rng, m).astype(np.int64)])
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, budget))  # first index with cum >= budget
    sizes = sizes[: k + 1].copy()
    sizes[k] = budget - (cum[k - 1] if k > 0 else 0)
    if k > 0 and sizes[k] < min_size:
        sizes[k - 1] += sizes[k]
        sizes = sizes[:k]
    return sizes


def _hash_int(*keys: np.ndarray) -> np.ndarray:
    """A deterministic 64-bit mix of integer arrays (for geography-bound names)."""
    h = np.full(np.broadcast(*keys).shape, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for k in keys:
        h ^= np.asarray(k).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB93FE1A85EC6)
        h ^= h >> np.uint64(33)
    return h


def _place_names(h: np.ndarray) -> np.ndarray:
    """Two-syllable place names chosen by hash values."""
    k = np.uint64(len(_PLACE_SYLLABLES))
    a = (h % k).astype(np.int64)
    b = ((h // k) % k).astype(np.int64)
    b = np.where(a == b, (b + 1) % len(_PLACE_SYLLABLES), b)
    return _PLACE_SYLLABLES[a] + _PLACE_SYLLABLES[b]


def _cell_names(
    district: np.ndarray, x: np.ndarray, y: np.ndarray, cell_km: float, salt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Names of the square cells (within a district) the points fall in.

    Returns the hash of each point's cell and the cell's two-syllable name.
    """
    cx = np.floor(x / cell_km).astype(np.int64)
    cy = np.floor(y / cell_km).astype(np.int64)
    h = _hash_int(np.full_like(cx, salt), district, cx, cy)
    return h, _place_names(h)


def _random_names(rng: np.random.Generator, n: int, suffixes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``n`` random two-syllable names with a random suffix."""
    k = len(_PLACE_SYLLABLES)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    s = rng.choice(len(suffixes), size=n, p=probs)
    return _PLACE_SYLLABLES[a] + _PLACE_SYLLABLES[b] + suffixes[s]


def _person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` Chinese personal names (surname + one or two given syllables)."""
    ranks = np.arange(1, len(_SURNAMES) + 1, dtype=float)
    p = 1.0 / ranks**0.8
    p /= p.sum()
    surname = _SURNAMES[rng.choice(len(_SURNAMES), size=n, p=p)]
    g1 = _GIVEN_SYLLABLES[rng.integers(0, len(_GIVEN_SYLLABLES), n)]
    g2 = _GIVEN_SYLLABLES[rng.integers(0, len(_GIVEN_SYLLABLES), n)]
    two = rng.random(n) < 0.7
    return np.where(two, surname + g1 + g2, surname + g1)


def _unit_room_table() -> np.ndarray:
    """Lookup table ``"{unit}单元{room}室"`` indexed by ``(unit-1)*80 + (floor-1)*2 + (door-1)``."""
    return np.array(
        [f"{u}单元{f * 100 + d}室" for u in range(1, 5) for f in range(1, 41) for d in (1, 2)],
        dtype=object,
    )


_UNIT_ROOM = _unit_room_table()
_CN_NUMERALS = {2: "二", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十"}
_FLOORS = 40
_DOORS = 2


def _roster_counts(total_workload: float, capacity: float, part_time_share: float | None, spare_share: float,
                   agency_share: float, agency_ratio: float) -> tuple[int, int, int]:
    """(contract, agency, spare) headcounts of the dual-track roster; contract includes the spares.

    See :func:`generate_city` (Notes).
    """
    a = float(agency_share) if part_time_share is None else float(part_time_share) / (1.0 + float(part_time_share))
    r = float(agency_ratio)
    need = total_workload / (_TARGET_FILL * capacity)  # in contract-capacity units
    n = max(1, math.ceil(need / (1.0 - a + a * r) - 1e-9))
    n_agency = int(round(a * n))
    n_contract = n - n_agency
    while n_contract + r * n_agency < need - 1e-9:
        n_contract += 1
    n_spare = math.ceil(float(spare_share) * (n_contract + n_agency) - 1e-9)
    return n_contract + n_spare, n_agency, n_spare


def _generate(
    n_customers: int,
    *,
    seed: int,
    capacity: float,
    part_time_share: float | None,
    spare_share: float,
    center: tuple[float, float],
    agency_share: float = 0.30,
    agency_ratio: float = 0.6,
) -> tuple[SyntheticCity, dict[str, Any]]:
    """Generate the city and a dict of summary statistics."""
    _check_args(n_customers, seed, capacity, part_time_share, spare_share, center, agency_share, agency_ratio)
    n = int(n_customers)
    center = (float(center[0]), float(center[1]))
    capacity = float(capacity)
    rng = np.random.default_rng(int(seed))
    geo = _geography()
    x0, y0, x1, y1 = geo.bounds

    # ---- budgets per kind of site --------------------------------------- #
    n_island = max(_MIN_ISLAND, round(_SHARE_ISLAND * n))
    n_single = round(_SHARE_SINGLE * n)
    n_village = round(_SHARE_VILLAGE * n)
    n_core = n - n_island - n_single - n_village

    # ---- site sizes ------------------------------------------------------ #
    def draw_compound(r: np.random.Generator, m: int) -> np.ndarray:
        normal = np.clip(np.rint(r.lognormal(math.log(55.0), 0.55, m)), 20, 200)
        mega = r.integers(300, 601, m)
        return np.where(r.random(m) < 0.08, mega, normal)

    def draw_village(r: np.random.Generator, m: int) -> np.ndarray:
        return np.clip(np.rint(r.lognormal(math.log(15.0), 0.6, m)), 5, 50)

    if n_core >= 600:
        # Guarantee one "hundreds at one address" compound.
        mega = int(rng.integers(300, 601))
        rest = _fill_sizes(rng, n_core - mega, draw_compound, 90.0, 20)
        compound_sizes = np.concatenate([np.array([mega], dtype=np.int64), rest])
    else:
        compound_sizes = _fill_sizes(rng, n_core, draw_compound, 90.0, 20)
    village_sizes = _fill_sizes(rng, n_village, draw_village, 18.0, 5)
    island_sizes = _fill_sizes(rng, n_island, draw_village, 18.0, 5)
    single_sizes = np.ones(n_single, dtype=np.int64)

    # ---- site locations -------------------------------------------------- #
    hs_xy = _HOTSPOTS[:, 1:3]
    hs_sigma = _HOTSPOTS[:, 3]
    hs_p = _HOTSPOTS[:, 4] / _HOTSPOTS[:, 4].sum()

    def around_hotspots(spread: float) -> Any:
        def propose(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
            h = r.choice(len(hs_p), size=m, p=hs_p)
            off = r.standard_normal((m, 2)) * (hs_sigma[h] * spread)[:, None]
            return hs_xy[h, 0] + off[:, 0], hs_xy[h, 1] + off[:, 1]

        return propose

    def uniform_land(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        return r.uniform(x0, x1, m), r.uniform(y0, y1, m)

    def edge_bias(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = np.min(np.hypot(x[:, None] - hs_xy[None, :, 0], y[:, None] - hs_xy[None, :, 1]), axis=1)
        return np.clip(d / 10.0, 0.05, 1.0) ** 1.5

    def around_village(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        off = r.standard_normal((m, 2)) * 0.5
        return _ISLAND_VILLAGE_CENTRE[0] + off[:, 0], _ISLAND_VILLAGE_CENTRE[1] + off[:, 1]

    cx, cy = _sample_in(rng, geo.residential, len(compound_sizes), around_hotspots(1.0))
    n_v_core = round(0.65 * len(village_sizes))
    vx1, vy1 = _sample_in(rng, geo.residential, n_v_core, around_hotspots(2.5))
    vx2, vy2 = _sample_in(rng, geo.residential, len(village_sizes) - n_v_core, uniform_land)
    sx, sy = _sample_in(rng, geo.residential, n_single, uniform_land, edge_bias)
    ix, iy = _sample_in(rng, geo.valid_island, len(island_sizes), around_village)

    # ---- site table (kind: 0 compound, 1 village, 2 single, 3 island) ---- #
    kinds = np.concatenate(
        [
            np.zeros(len(compound_sizes), np.int8),
            np.ones(len(village_sizes), np.int8),
            np.full(n_single, 2, np.int8),
            np.full(len(island_sizes), 3, np.int8),
        ]
    )
    site_size = np.concatenate([compound_sizes, village_sizes, single_sizes, island_sizes])
    site_x = np.concatenate([cx, vx1, vx2, sx, ix])
    site_y = np.concatenate([cy, vy1, vy2, sy, iy])
    n_sites = len(site_size)
    is_compound = kinds == 0

    # Geocoding precision: compound level (exact) or per building.
    exact = np.where(is_compound, rng.random(n_sites) < 0.5, rng.random(n_sites) < 0.3)
    exact[kinds == 2] = True
    if is_compound.any():
        exact[int(np.argmax(np.where(is_compound, site_size, -1)))] = True

    # Customers per building, building count, units per building.
    per_building = np.where(
        is_compound, rng.uniform(15.0, 60.0, n_sites), rng.uniform(2.0, 6.0, n_sites)
    )
    n_buildings = np.maximum(1, np.ceil(site_size / per_building)).astype(np.int64)
    n_units = np.where(is_compound, rng.integers(2, 5, n_sites), 1)
    floors = np.where(is_compound, _FLOORS, 8)

    # Lapse risk clusters by site: per-site probability ~ Beta with mean _AT_RISK_SHARE.
    site_risk = rng.beta(1.5, 1.5 * (1.0 - _AT_RISK_SHARE) / _AT_RISK_SHARE, n_sites)

    # Names bound to the geography (district, street, community) and site names.
    district_idx = np.argmin(
        np.hypot(
            site_x[:, None] - _DISTRICT_CENTRES[None, :, 0], site_y[:, None] - _DISTRICT_CENTRES[None, :, 1]
        ),
        axis=1,
    )
    street_hash, street_base = _cell_names(district_idx, site_x, site_y, 4.0, salt=1)
    street_name = street_base + np.where(street_hash % np.uint64(5) == 0, "路", "街道")
    _, community_base = _cell_names(district_idx, site_x, site_y, 1.2, salt=2)
    community_base[kinds == 3] = "海岛"
    site_name = np.empty(n_sites, dtype=object)
    site_name[is_compound] = _random_names(rng, int(is_compound.sum()), _COMPOUND_SUFFIXES, _COMPOUND_SUFFIX_P)
    village_mask = (kinds == 1) | (kinds == 2)
    site_name[village_mask] = _random_names(
        rng, int(village_mask.sum()), _VILLAGE_SUFFIXES, _VILLAGE_SUFFIX_P
    )
    island_mask = kinds == 3
    site_name[island_mask] = _random_names(
        rng, int(island_mask.sum()), np.array(["渔村"], dtype=object), np.array([1.0])
    )
    site_prefix = (
        "广东省深圳市"
        + np.asarray(_DISTRICT_NAMES, dtype=object)[district_idx]
        + street_name
        + community_base
        + "社区"
        + site_name
    )
    # Same name in the same community: later sites become phases ("二期", "三期", ...).
    phase = pd.Series(site_prefix).groupby(site_prefix, sort=False).cumcount().to_numpy()
    dup = phase > 0
    if dup.any():
        labels = np.array(
            [f"{_CN_NUMERALS.get(k + 1, str(k + 1))}期" for k in range(int(phase.max()) + 1)], dtype=object
        )
        site_prefix[dup] = site_prefix[dup] + labels[phase[dup]]

    # ---- buildings -------------------------------------------------------- #
    b_site = np.repeat(np.arange(n_sites), n_buildings)
    b_first = np.cumsum(n_buildings) - n_buildings
    b_num = np.arange(len(b_site)) - b_first[b_site] + 1
    jitter = ~exact[b_site]
    n_b = len(b_site)
    radius = np.where(is_compound[b_site], rng.uniform(0.020, 0.060, n_b), rng.uniform(0.010, 0.150, n_b))
    angle = rng.uniform(0.0, 2.0 * np.pi, n_b)
    bx = site_x[b_site] + np.where(jitter, radius * np.cos(angle), 0.0)
    by = site_y[b_site] + np.where(jitter, radius * np.sin(angle), 0.0)
    region_ok = np.where(
        kinds[b_site] == 3,
        shapely.contains_xy(geo.valid_island, bx, by),
        shapely.contains_xy(geo.valid_mainland, bx, by),
    )
    bx = np.where(region_ok, bx, site_x[b_site])  # fall back to the site centre (valid)
    by = np.where(region_ok, by, site_y[b_site])
    b_label = site_prefix[b_site] + b_num.astype(str).astype(object) + "栋"
    # Per-building permutation of (unit, floor, door) slots: slot = (j*mult + off) % M.
    slots = n_units[b_site] * floors[b_site] * _DOORS
    mult_choices = np.array([7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 49, 53, 59, 61])
    b_mult = mult_choices[rng.integers(0, len(mult_choices), n_b)]
    b_off = rng.integers(0, 1 << 30, n_b) % slots

    # ---- customers -------------------------------------------------------- #
    c_site = np.repeat(np.arange(n_sites), site_size)
    site_first = np.cumsum(site_size) - site_size
    rank = np.arange(n) - site_first[c_site]
    c_bnum = rank % n_buildings[c_site]
    c_building = b_first[c_site] + c_bnum
    j = rank // n_buildings[c_site]
    c_slots = slots[c_building]
    slot = (j * b_mult[c_building] + b_off[c_building]) % c_slots
    unit = slot % n_units[c_site]
    rest = slot // n_units[c_site]
    door = rest % _DOORS
    floor = rest // _DOORS
    unit_room_code = unit * (_FLOORS * _DOORS) + floor * _DOORS + door

    at_risk = rng.random(n) < site_risk[c_site]
    levels = _AT_RISK_LEVELS[rng.choice(len(_AT_RISK_LEVELS), size=n, p=_AT_RISK_PROBS)]
    workload = np.where(at_risk, levels, 1.0)

    lon, lat = _to_lonlat(bx[c_building], by[c_building], center)

    # Shuffle so ids do not follow the generation order, then number them.
    # Strings are built with Arrow kernels: no per-customer Python objects.
    order = rng.permutation(n)
    width = max(7, len(str(n)))
    customer_id = pc.binary_join_element_wise(
        "C", pc.utf8_lpad(pa.array(np.arange(1, n + 1, dtype=np.int64)).cast(pa.string()), width, "0"), ""
    )
    address = pc.binary_join_element_wise(
        pa.array(b_label, type=pa.string()).take(pa.array(c_building[order])),
        pa.array(_UNIT_ROOM, type=pa.string()).take(pa.array(unit_room_code[order])),
        "",
    )
    district = pa.array(list(_DISTRICT_NAMES), type=pa.string()).take(pa.array(district_idx[c_site[order]]))
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(customer_id, dtype="str"),
            "address": pd.Series(address, dtype="str"),
            "district": pd.Series(district, dtype="str"),
            "lat": np.round(lat[order], 6),
            "lon": np.round(lon[order], 6),
            "workload": workload[order].astype(np.float64),
        },
        columns=CUSTOMER_COLUMNS,
    )

    # ---- specialists ------------------------------------------------------ #
    total_workload = float(workload.sum())
    n_contract, n_agency, n_spare = _roster_counts(total_workload, capacity, part_time_share, spare_share,
                                                   agency_share, agency_ratio)
    n_spec = n_contract + n_agency
    contract = np.array(["contract"] * n_contract + ["agency"] * n_agency, dtype=object)[rng.permutation(n_spec)]
    spec_capacity = np.where(contract == "contract", capacity, round(float(agency_ratio) * capacity, 6))
    anchor = rng.integers(0, n, n_spec)
    ax, ay = bx[c_building[anchor]], by[c_building[anchor]]
    on_island = kinds[c_site[anchor]] == 3
    px, py = ax.copy(), ay.copy()
    placed = np.zeros(n_spec, dtype=bool)
    for _ in range(8):
        off = rng.standard_normal((n_spec, 2)) * 0.7
        tx, ty = ax + off[:, 0], ay + off[:, 1]
        ok = np.where(
            on_island,
            shapely.contains_xy(geo.valid_island, tx, ty),
            shapely.contains_xy(geo.valid_mainland, tx, ty),
        )
        new = ok & ~placed
        px[new], py[new] = tx[new], ty[new]
        placed |= ok
    s_lon, s_lat = _to_lonlat(px, py, center)
    s_width = max(4, len(str(n_spec)))
    specialists = pd.DataFrame(
        {
            "specialist_id": pd.Series([f"S{i:0{s_width}d}" for i in range(1, n_spec + 1)], dtype="str"),
            "name": pd.Series(_person_names(rng, n_spec), dtype="str"),
            "contract": pd.Series(contract, dtype="str"),
            "capacity": spec_capacity.astype(np.float64),
            "lat": np.round(s_lat, 6),
            "lon": np.round(s_lon, 6),
            "current_grid": pd.Series([""] * n_spec, dtype="str"),
        },
        columns=SPECIALIST_COLUMNS,
    )

    service_area = _service_area_lonlat(geo, center)
    name = f"synthetic Shenzhen-like city (n={n}, seed={seed})"
    city = SyntheticCity(customers=customers, specialists=specialists, service_area=service_area, name=name)
    stats: dict[str, Any] = {
        "n_customers": n,
        "total_workload": total_workload,
        "n_compounds": int(is_compound.sum()),
        "largest_compound": int(site_size[is_compound].max()) if is_compound.any() else 0,
        "n_compounds_exact": int((is_compound & exact).sum()),
        "n_villages": len(village_sizes),
        "n_singles": n_single,
        "n_island": n_island,
        "n_island_sites": len(island_sizes),
        "n_buildings": n_b,
        "n_specialists": n_spec,
        "n_contract": n_contract,
        "n_agency": n_agency,
        "n_spare": n_spare,
        "roster_fill": total_workload / float(spec_capacity.sum()),
    }
    return city, stats


# --------------------------------------------------------------------------- #
# Addresses only: a messy-address variant and a gazetteer                     #
# --------------------------------------------------------------------------- #

_CLEAN_ADDRESS = r"^(广东省)(深圳市)(..区)(..(?:街道|路))(..社区)(.+?)(\d+)栋(\d+)单元(\d+)室$"


def generate_messy_addresses(customers: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Customers as a planner might receive them: ``customer_id``, messy ``address``, ``workload``.

    Each clean address of :func:`generate_city` is disturbed, independently and
    deterministically for a given ``seed``: the province/city prefix kept, cut to the city,
    dropped or written without 省/市 (``广东深圳``); the district dropped (20 %); a typo in
    the street, community or compound name (12 %: a wrong syllable or two swapped ones);
    栋 written 幢, 座 or 号楼 (30 %); unit before building (12 %); 室 written 号 or left out
    (20 %) or the whole ``9-2-3902`` form (4 %); traditional 區/號/單 (5 %); full-width
    digits (20 %); extra half- or full-width spaces (25 %). No coordinates: the truth
    stays in ``customers`` (same ``customer_id``).

    Raises
    ------
    ConfigError
        If an address is not in the generator's format.
    """
    parts = customers["address"].astype(str).str.extract(_CLEAN_ADDRESS)
    if parts.isna().any(axis=None):
        bad = customers["address"].iloc[int(np.flatnonzero(parts.isna().any(axis=1).to_numpy())[0])]
        raise ConfigError(f"address not in the synthetic format: {bad!r}")
    rng = np.random.default_rng(seed)
    n = len(customers)
    u = rng.random((n, 12))
    typo_field = rng.integers(0, 3, n)
    typo_pos = rng.integers(0, 2, n)
    typo_char = _PLACE_SYLLABLES[rng.integers(0, len(_PLACE_SYLLABLES), n)]
    cuts = rng.integers(1, 8, (n, 3))
    spaces = np.array([" ", "  ", "\u3000"], dtype=object)[rng.integers(0, 3, (n, 3))]
    fullwidth = str.maketrans("0123456789", "０１２３４５６７８９")
    out = []
    for i, (prov, city, dist, street, comm, comp, b, un, room) in enumerate(parts.itertuples(index=False)):
        r = u[i]
        prefix = prov + city if r[0] < 0.35 else city if r[0] < 0.6 else "" if r[0] < 0.9 else "广东深圳"
        if r[1] < 0.2:
            dist = ""
        if r[2] < 0.12:  # typo in a two-syllable stem: a wrong syllable or the two swapped
            names = [street, comm, comp]
            s, k = names[typo_field[i]], typo_pos[i]
            wrong = typo_char[i] if typo_char[i] != s[k] else "丁"
            names[typo_field[i]] = (s[:k] + wrong + s[k + 1:]) if r[3] < 0.7 else s[1] + s[0] + s[2:]
            street, comm, comp = names
        marker = "栋" if r[4] < 0.7 else "幢" if r[4] < 0.8 else "座" if r[4] < 0.9 else "号楼"
        bld, unit = f"{b}{marker}", f"{un}单元"
        room_txt = f"{room}室" if r[5] < 0.8 else f"{room}号" if r[5] < 0.9 else room
        tail = unit + bld + room_txt if r[6] < 0.12 else bld + unit + room_txt
        if r[7] < 0.04:
            tail = f"{b}-{un}-{room}"
        segs = [prefix, dist, street, comm, comp, tail]
        if r[8] < 0.05:
            segs = [x.replace("区", "區").replace("号", "號").replace("单", "單") for x in segs]
        if r[9] < 0.25:
            for j, c in enumerate(sorted(set(cuts[i, : 1 + int(r[10] * 3)]))):
                segs[min(c, 5)] = spaces[i, j] + segs[min(c, 5)] if c < 6 else segs[min(c, 5)] + spaces[i, j]
        text = "".join(segs)
        out.append(text.translate(fullwidth) if r[11] < 0.2 else text)
    return pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), "address": out,
                         "workload": customers["workload"].to_numpy()})


def build_gazetteer(customers: pd.DataFrame, *, holdout: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """An address master built from clean addresses: ``address``, ``lat``, ``lon`` (WGS-84).

    One row per distinct clean address with its point (the building's point for compounds
    whose customers are placed per building, the compound's for the others), in customer
    order. ``holdout`` drops that share of the addresses (chosen with ``seed``), like
    customers not yet in the insurer's master: they can then be placed only through their
    building or compound.
    """
    gz = customers[["address", "lat", "lon"]].drop_duplicates("address").reset_index(drop=True)
    if holdout > 0:
        keep = np.random.default_rng(seed).random(len(gz)) >= holdout
        gz = gz.loc[keep].reset_index(drop=True)
    return gz


# --------------------------------------------------------------------------- #
# A national synthetic set: many cities, one rollout                          #
# --------------------------------------------------------------------------- #

#: Names and centres (lat, lon) of the national set's cities, largest first. Each city is the
#: Shenzhen-like geography of :func:`generate_city` placed at its centre (the street names and
#: addresses stay the synthetic Shenzhen ones).
NATION_CITIES: tuple[tuple[str, float, float], ...] = (
    ("shanghai", 31.23, 121.47), ("beijing", 39.90, 116.40), ("chongqing", 29.56, 106.55),
    ("guangzhou", 23.13, 113.26), ("shenzhen", 22.54, 114.06), ("chengdu", 30.66, 104.07),
    ("tianjin", 39.13, 117.20), ("wuhan", 30.59, 114.31), ("xian", 34.34, 108.94),
    ("hangzhou", 30.27, 120.15), ("nanjing", 32.06, 118.80), ("shenyang", 41.80, 123.43),
    ("harbin", 45.80, 126.53), ("zhengzhou", 34.75, 113.63), ("jinan", 36.65, 117.12),
    ("qingdao", 36.07, 120.38), ("changsha", 28.23, 112.94), ("dalian", 38.91, 121.61),
    ("kunming", 25.04, 102.71), ("suzhou", 31.30, 120.59), ("changchun", 43.82, 125.32),
    ("hefei", 31.82, 117.23), ("shijiazhuang", 38.04, 114.51), ("fuzhou", 26.07, 119.30),
    ("xiamen", 24.48, 118.09), ("nanning", 22.82, 108.37), ("taiyuan", 37.87, 112.55),
    ("nanchang", 28.68, 115.86), ("guiyang", 26.65, 106.63), ("urumqi", 43.83, 87.62),
    ("lanzhou", 36.06, 103.83), ("lianyungang", 34.60, 119.22), ("ningbo", 29.87, 121.54),
    ("dongguan", 23.02, 113.75), ("guilin", 25.27, 110.29), ("wenzhou", 28.00, 120.67),
    ("hohhot", 40.84, 111.75), ("tangshan", 39.63, 118.18), ("xuzhou", 34.26, 117.18),
    ("yantai", 37.46, 121.45), ("luoyang", 34.62, 112.45), ("haikou", 20.04, 110.34),
    ("yinchuan", 38.49, 106.23), ("xining", 36.62, 101.78), ("lhasa", 29.65, 91.17),
    ("zhanjiang", 21.27, 110.36), ("baotou", 40.66, 109.84), ("quanzhou", 24.87, 118.68),
    ("weifang", 36.71, 119.16), ("zibo", 36.81, 118.05), ("shantou", 23.35, 116.68),
)

_NATION_ZIPF = 0.6  # city size ~ rank^-0.6: with 51 cities and 30M customers, ~3M for the largest, ~280k the smallest
_NATION_BASE = 500_000  # cities larger than this are spread over a larger area (linear size ~ sqrt(n / base))
_NATION_MAX_SPREAD = 2.5


def _spread_city(city: SyntheticCity, factor: float, center: tuple[float, float]) -> SyntheticCity:
    """The city stretched by ``factor`` about its centre (an affine map: containment is kept)."""
    lat0, lon0 = center
    cust = city.customers.copy()
    spec = city.specialists.copy()
    for t in (cust, spec):
        t["lat"] = np.round(lat0 + (t["lat"].to_numpy() - lat0) * factor, 6)
        t["lon"] = np.round(lon0 + (t["lon"].to_numpy() - lon0) * factor, 6)
    area = shapely.affinity.scale(city.service_area, xfact=factor, yfact=factor, origin=(lon0, lat0))
    return SyntheticCity(cust, spec, area, city.name)


def nation_city_sizes(total: int = 30_000_000, n_cities: int = 51, *, seed: int = 0) -> np.ndarray:
    """Customers per city of a national set, largest first, summing to exactly ``total``.

    Sizes follow a Zipf-like law (``rank ** -0.6``) with a little deterministic noise (±~8 %),
    which gives the spread of a national channel: a few very large cities (2-3 million of
    30 million), many mid-size ones (200k-600k).

    Raises
    ------
    ConfigError
        If ``n_cities`` is out of range or ``total`` is too small for that many cities.
    """
    if isinstance(n_cities, bool) or not isinstance(n_cities, numbers.Integral) or not 1 <= n_cities <= len(NATION_CITIES):
        raise ConfigError(f"n_cities must be an integer in [1, {len(NATION_CITIES)}], got {n_cities!r}")
    if isinstance(total, bool) or not isinstance(total, numbers.Integral) or total < MIN_CUSTOMERS * n_cities * 4:
        raise ConfigError(f"total must be an integer of at least {MIN_CUSTOMERS * n_cities * 4} for {n_cities} cities, "
                          f"got {total!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6E6174]))
    w = np.arange(1, n_cities + 1, dtype=float) ** -_NATION_ZIPF * np.exp(rng.normal(0.0, 0.08, n_cities))
    w = np.sort(w)[::-1]
    raw = total * w / w.sum()
    sizes = np.floor(raw).astype(np.int64)
    rest = int(total - sizes.sum())  # largest remainders get the rest, so the sum is exact
    sizes[np.argsort(-(raw - sizes), kind="stable")[:rest]] += 1
    short = sizes < MIN_CUSTOMERS
    if short.any():  # pragma: no cover - excluded by the total check
        raise ConfigError(f"total {total} is too small for {n_cities} cities")
    return sizes


def generate_nation(
    folder: str | Path,
    *,
    total: int = 30_000_000,
    n_cities: int = 51,
    seed: int = 0,
    capacity: float = 1000.0,
    layout: str = "per-city",
    progress: Any = None,
) -> dict[str, Any]:
    """Write a national synthetic set for ``gridengine rollout``: many cities and the rollout TOML.

    Each city is :func:`generate_city`'s geography (50 km x 25 km, about 1,250 km²) at its centre;
    a city of more than 500,000 customers is stretched about its centre by ``sqrt(n / 500,000)``
    (at most 2.5x: 3 million customers on about 7,500 km², like Shanghai), so large cities are
    larger rather than only denser. Cities are generated and written one at a time (memory holds
    one city, not the nation);
    30 million customers take about 2 minutes on one core (city sizes from
    :func:`nation_city_sizes`, names and centres from :data:`NATION_CITIES`). Customer ids are
    prefixed with the city name (``shanghai-C0000001``), so they are unique nationally.

    Parameters
    ----------
    folder
        Destination; created if needed. Holds ``rollout.toml`` and ``cities/<name>/`` with
        ``specialists.csv`` and ``service_area.geojson`` for every city.
    total
        Customers in all cities together.
    n_cities
        Number of cities (at most ``len(NATION_CITIES)``).
    seed
        Seed; city ``i`` is drawn with seed ``seed * 1000 + i``.
    capacity
        A contract specialist's capacity; agency specialists get 0.6 of it. Grids are sized to each
        city's roster, so the rollout file sets no capacity.
    layout
        ``"per-city"``: ``cities/<name>/customers.parquet`` for each city. ``"national"``: one
        ``customers.parquet`` holding every city's customers with a ``city`` column (one row
        group per city, written as it goes), which the rollout splits.
    progress
        Optional callable ``progress(name, n_customers)`` told of each city once it is written.

    Returns
    -------
    dict
        ``"spec"`` (the rollout TOML path), ``"cities"`` (name -> number of customers),
        ``"total"``, ``"customers"`` (the national file, or None).

    Raises
    ------
    ConfigError
        Bad arguments.
    """
    import pyarrow.parquet as pq

    if layout not in ("per-city", "national"):
        raise ConfigError(f"layout must be 'per-city' or 'national', got {layout!r}")
    sizes = nation_city_sizes(total, n_cities, seed=seed)
    folder = Path(folder)
    (folder / "cities").mkdir(parents=True, exist_ok=True)
    national = folder / "customers.parquet" if layout == "national" else None
    writer = None
    tmp_national = folder / ".customers.parquet.tmp" if national is not None else None
    written: dict[str, int] = {}
    try:
        for i, n in enumerate(sizes.tolist()):
            name, lat0, lon0 = NATION_CITIES[i]
            city = generate_city(int(n), seed=int(seed) * 1000 + i, capacity=capacity, center=(lat0, lon0))
            factor = min(_NATION_MAX_SPREAD, max(1.0, math.sqrt(n / _NATION_BASE)))
            if factor > 1.0:  # a big city covers more land, not just more people per km²
                city = _spread_city(city, factor, (lat0, lon0))
            city = SyntheticCity(city.customers, city.specialists, city.service_area,
                                 name=f"synthetic {name} (n={n}, seed={int(seed) * 1000 + i})")
            sub = folder / "cities" / name
            paths = write_city(SyntheticCity(city.customers.iloc[:0], city.specialists, city.service_area, city.name), sub)
            paths["customers"].unlink()  # the header-only CSV: customers go to Parquet below
            table = pa.Table.from_pandas(city.customers, preserve_index=False)
            ids = pc.binary_join_element_wise(name + "-", table.column("customer_id").cast(pa.string()), "")
            table = table.set_column(table.schema.get_field_index("customer_id"), "customer_id", ids)
            if national is None:
                tmp = sub / ".customers.parquet.tmp"
                pq.write_table(table, tmp, row_group_size=1 << 20)
                tmp.replace(sub / "customers.parquet")
            else:
                table = table.append_column("city", pa.array([name] * len(table), type=pa.string()))
                if writer is None:
                    writer = pq.ParquetWriter(tmp_national, table.schema)
                writer.write_table(table, row_group_size=1 << 20)
            written[name] = int(n)
            del city, table, ids
            if progress is not None:
                progress(name, int(n))
        if writer is not None:
            writer.close()
            writer = None
            tmp_national.replace(national)
    finally:
        if writer is not None:
            writer.close()
            tmp_national.unlink(missing_ok=True)
    spec = folder / "rollout.toml"
    lines = [
        f"# National synthetic rollout: {len(written)} cities, {int(sizes.sum())} customers (seed {seed}).",
        "# Run: gridengine rollout " + str(spec),
        'out = "out"',
    ]
    if national is not None:
        lines += ['customers = "customers.parquet"  # one national file, split by its city column', 'city_column = "city"']
    # the rosters size the grids (one per specialist, within their own capacity): no capacity override
    lines += ["", "[config]", f"seed = {int(seed)}", ""]
    for name in written:
        lines += ["[[city]]", f'name = "{name}"']
        if national is None:
            lines.append(f'customers = "cities/{name}/customers.parquet"')
        lines += [f'specialists = "cities/{name}/specialists.csv"',
                  f'service_area = "cities/{name}/service_area.geojson"', ""]
    spec.write_text("\n".join(lines), encoding="utf-8")
    logger.info("wrote national synthetic set to %s: %d cities, %d customers", folder, len(written), int(sizes.sum()))
    return {"spec": spec, "cities": written, "total": int(sizes.sum()), "customers": national}
