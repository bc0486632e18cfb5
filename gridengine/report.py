"""Self-contained HTML pages for a plan: the interactive map and the summary report.

Both pages are single files that render offline from ``file://``: CSS, JS and
SVG are inline, with no CDN, web font or map tile. Drawing is plain SVG in a
local equirectangular projection (``x = lon * cos(mean_lat)``, ``y`` flipped),
fitted to the city. Every text that comes from data goes through
:func:`html.escape`; customers are only ever shown aggregated per H3 cell.
Output is deterministic: grids are sorted by ``grid_id``, specialists by
``specialist_id``, cells by position, and nothing depends on the clock.

The functions return strings; the caller writes ``map.html`` / ``report.html``.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

from ._geo import M_PER_DEG_EQUATOR

__all__ = ["PALETTE", "colour_hex", "grid_colours", "render_overview_svg", "render_overview_png", "render_map_html",
           "render_report_html", "planner_warnings", "describe_separation"]

#: Qualitative palette (ColorBrewer Set3, reordered so the red that could be mistaken for the
#: unstaffed highlight comes last); indices past its end get generated hues.
PALETTE: tuple[str, ...] = (
    "#8dd3c7", "#ffffb3", "#bebada", "#80b1d3", "#b3de69", "#fdb462",
    "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f", "#fb8072",
)  # fmt: skip
_DENSITY = ("#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15")
_TOUCH_TOL = 1e-7  # degrees (~1 cm): H3 unions may differ by float ulps on shared edges
_UNSTAFFED_RED = "#c62828"
_PCT_KEYS = {"coverage", "balance_max_dev", "within_5pct", "contiguous_share", "churn"}
_KM_KEYS = {"compactness_km", "travel_km"}
_STAFF_KEYS = ("n_staffed_grids", "n_unstaffed_grids", "specialists_missing", "n_spare_specialists")
_LABELS = {
    "n_customers": "Customers", "n_rejects": "Rejected input rows",
    "coverage": "Coverage (customers in a grid)", "n_grids": "Grids",
    "capacity_violations": "Grids over capacity", "balance_max_dev": "Largest workload deviation",
    "within_5pct": "Grids within 5% of target", "contiguous_share": "Contiguous grids",
    "compactness_km": "Compactness", "travel_km": "Travel distance (estimate)",
    "churn": "Churn vs previous plan", "solver_status": "Solver status",
    "n_staffed_grids": "Staffed grids", "n_unstaffed_grids": "Unstaffed grids",
    "specialists_missing": "Specialists missing", "n_spare_specialists": "Spare specialists",
}  # fmt: skip
#: Words for the other metrics (shown in the summary after the main ones).
_MORE_LABELS = {
    "total_workload": "Total workload", "n_cells": "Cells tiling the service area",
    "n_specialists": "Specialists in the roster", "mean_grid_workload": "Mean workload per grid",
    "mean_fill": "Mean fill (workload / the specialist's capacity)", "fill_min": "Emptiest grid's fill",
    "fill_max": "Fullest grid's fill", "n_bridges": "Bridges (separate areas joined to a grid)",
    "barrier_cuts": "Cell borders cut by barriers and zone borders", "design_capacity": "Design capacity per grid",
    "zone_within_5pct": "Grids within 5% of their zone's mean fill",
    "zone_balance_max_dev": "Largest fill deviation within a zone",
    "customers_moved": "Continuing customers whose specialist changed", "continuing_customers": "Continuing customers",
    "new_customers": "New customers", "departed_customers": "Customers gone since the previous plan",
    "grids_changed": "Grids whose cells changed", "grids_added": "Grids added", "grids_removed": "Grids removed",
}  # fmt: skip
_PCT_KEYS_MORE = {"mean_fill", "fill_min", "fill_max", "zone_within_5pct", "zone_balance_max_dev"}


def _label_of(key: str) -> str:
    """A metric's name in words: the known label, else the key spelt out ("n_" = number of)."""
    if key in _LABELS:
        return _LABELS[key]
    if key in _MORE_LABELS:
        return _MORE_LABELS[key]
    words = key.replace("_km", " (km)").replace("_pct", " %").split("_")
    if words[0] == "n" and len(words) > 1:
        words = ["number", "of", *words[1:]]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
_SUMMARY_ORDER = tuple(k for k in _LABELS if k not in _STAFF_KEYS)


# ----------------------------------------------------------------------------- helpers
def _e(value: Any) -> str:
    """HTML-escape ``str(value)`` (quotes included, safe in attributes)."""
    return html.escape(str(value), quote=True)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, Real) and not math.isfinite(float(v)))


def _is_unstaffed(v: Any) -> bool:
    return _missing(v) or str(v).strip() == ""


def _num(v: Any, nd: int = 1) -> str:
    """Format a number with thousands separators and ``nd`` decimals ("—" if missing)."""
    return "—" if _missing(v) else f"{float(v):,.{nd}f}"


def _pct(v: Any, nd: int = 2) -> str:
    return "—" if _missing(v) else f"{100.0 * float(v):.{nd}f}%"


def _use(workload: Any, capacity: Any) -> float:
    """Capacity use ``workload / capacity`` as a fraction, NaN when undefined."""
    bad = _missing(workload) or _missing(capacity) or float(capacity) <= 0
    return math.nan if bad else float(workload) / float(capacity)


def _f(x: float) -> str:
    """Coordinate with one decimal, trailing ``.0`` dropped."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def colour_hex(index: int) -> str:
    """Fill colour for a colour index: :data:`PALETTE`, then golden-angle hues."""
    return PALETTE[index] if index < len(PALETTE) else f"hsl({(index * 137.508) % 360.0:.0f},55%,68%)"


def _sorted_grids(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Grids in EPSG:4326 with string ids, sorted by ``grid_id`` (stable)."""
    g = grids.to_crs(4326) if grids.crs is not None and grids.crs.to_epsg() != 4326 else grids.copy()
    g["grid_id"] = g["grid_id"].astype(str)
    return g.sort_values("grid_id", kind="mergesort").reset_index(drop=True)


def _col(df: pd.DataFrame, name: str, default: Any = math.nan) -> list[Any]:
    return df[name].tolist() if name in df.columns else [default] * len(df)


class SvgProjection:
    """Local equirectangular projection of lon/lat onto a ``width`` x ``height`` SVG plane."""

    def __init__(self, bounds: tuple[float, float, float, float], width: float, height: float, pad: float) -> None:
        minx, miny, maxx, maxy = bounds
        self.kx = math.cos(math.radians((miny + maxy) / 2.0))
        dx, dy = max((maxx - minx) * self.kx, 1e-9), max(maxy - miny, 1e-9)
        self.s = min((width - 2 * pad) / dx, (height - 2 * pad) / dy)
        self.ox = pad + ((width - 2 * pad) - dx * self.s) / 2 - minx * self.kx * self.s
        self.oy = pad + ((height - 2 * pad) - dy * self.s) / 2 + maxy * self.s

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Project an ``(n, 2)`` array of lon/lat to SVG x/y."""
        xy = np.asarray(xy, dtype=float)
        return np.column_stack([self.ox + xy[:, 0] * self.kx * self.s, self.oy - xy[:, 1] * self.s])


def city_bounds(grids: gpd.GeoDataFrame, *frames: pd.DataFrame | None) -> tuple[float, float, float, float]:
    """Bounds of the city: the grids, else the first point table with finite coordinates."""
    geoms = grids.geometry[~(grids.geometry.isna() | grids.geometry.is_empty)] if len(grids) else grids.geometry
    if len(geoms):
        b = tuple(float(v) for v in geoms.total_bounds)
        if all(math.isfinite(v) for v in b):
            return b  # type: ignore[return-value]
    for df in frames:
        if df is not None and len(df) and {"lat", "lon"} <= set(df.columns):
            lat, lon = pd.to_numeric(df["lat"], errors="coerce"), pd.to_numeric(df["lon"], errors="coerce")
            ok = lat.notna() & lon.notna()
            if ok.any():
                return float(lon[ok].min()), float(lat[ok].min()), float(lon[ok].max()), float(lat[ok].max())
    return (-0.01, -0.01, 0.01, 0.01)


def fit_size(bounds: tuple[float, float, float, float], longest: float = 1000.0) -> tuple[float, float]:
    """ViewBox size with the city's aspect ratio and the longest side ``longest``."""
    minx, miny, maxx, maxy = bounds
    dx = max((maxx - minx) * math.cos(math.radians((miny + maxy) / 2.0)), 1e-9)
    dy = max(maxy - miny, 1e-9)
    ratio = min(max(dy / dx, 0.25), 4.0)
    return (longest, round(longest * ratio)) if ratio <= 1 else (round(longest / ratio), longest)


@functools.lru_cache(maxsize=1 << 16)
def _n(v: int) -> str:
    """Tenths (an int) as the shortest SVG number: 32 -> "3.2", -5 -> "-.5", 40 -> "4"."""
    if v % 10 == 0:
        return str(v // 10)
    s = f"{v / 10:.1f}"
    return s.replace("0.", ".", 1) if s.lstrip("-").startswith("0.") else s


def _ring_d(xy: np.ndarray) -> str:
    """One closed ring as ``M x,y l dx,dy ... z`` on a 0.1 grid (deltas from rounded points: no drift)."""
    t = np.rint(np.asarray(xy, dtype=float).reshape(-1, 2) * 10).astype(np.int64)
    t = t[np.r_[True, (t[1:] != t[:-1]).any(axis=1)]] if len(t) else t
    if len(t) > 1 and (t[-1] == t[0]).all():
        t = t[:-1]
    if len(t) < 3:
        return ""
    out = [f"M{_n(int(t[0, 0]))},{_n(int(t[0, 1]))}l"]
    for dx, dy in np.diff(t, axis=0).tolist():
        s = f"{_n(dx)},{_n(dy)}"
        out.append(s if len(out) == 1 or s[0] == "-" else " " + s)
    out.append("z")
    return "".join(out)


def _polygons(geom: Any) -> list[Any]:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    return [p for part in getattr(geom, "geoms", []) for p in _polygons(part)]


def project_geoms(geoms: Any, proj: SvgProjection, tol: float) -> list[Any]:
    """Project (and, for ``tol > 0``, topology-preserving simplify in pixels) each geometry."""
    arr = np.asarray(list(geoms), dtype=object)
    if len(arr) == 0:
        return []
    out = shapely.transform(arr, proj)
    if tol > 0:
        out = shapely.simplify(out, tol, preserve_topology=True)
    return list(out)


def svg_path_d(pgeom: Any) -> str:
    """The SVG path data (``d``) of a projected polygon or multipolygon, holes included."""
    d = "".join(_ring_d(np.asarray(r.coords)) for p in _polygons(pgeom) for r in (p.exterior, *p.interiors))
    return d or "M0,0z"


# ----------------------------------------------------------------------------- colouring
def grid_colours(grids: gpd.GeoDataFrame) -> dict[str, int]:
    """Colour the grid adjacency graph so neighbouring grids never share a colour.

    Parameters
    ----------
    grids
        Grid polygons with a ``grid_id`` column. Two grids are neighbours when
        their geometries touch or intersect (within ~1 cm, so float noise on
        shared H3 edges does not hide an adjacency).

    Returns
    -------
    dict[str, int]
        ``grid_id -> colour index`` (0-based). Deterministic: nodes are inserted in
        ``grid_id`` order and coloured with networkx's DSATUR greedy strategy
        (``"saturation_largest_first"``), which rarely needs more than 5 colours
        on planar maps. Use :func:`colour_hex` to turn an index into a fill.
    """
    g = _sorted_grids(grids)
    ids = g["grid_id"].tolist()
    graph = nx.Graph()
    graph.add_nodes_from(ids)
    if len(ids) > 1:
        geoms = np.asarray(g.geometry.values, dtype=object)
        left, right = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=_TOUCH_TOL)
        graph.add_edges_from((ids[i], ids[j]) for i, j in zip(left.tolist(), right.tolist()) if i < j)
    colours = nx.greedy_color(graph, strategy="saturation_largest_first")
    return {gid: int(colours[gid]) for gid in ids}


# ----------------------------------------------------------------------------- SVG layers
def _hatch_defs(prefix: str) -> str:
    return (f'<defs><pattern id="{prefix}-hatch" patternUnits="userSpaceOnUse" width="6" height="6" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff" fill-opacity=".35"/>'
            f'<path d="M0,0v6" stroke="{_UNSTAFFED_RED}" stroke-width="2.2"/></pattern></defs>')  # fmt: skip


def _grid_rows(g: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Per-grid display values, in ``grid_id`` order."""
    cols = {c: _col(g, c) for c in ("workload", "capacity", "n_customers", "n_cells", "area_km2")}
    rows = []
    site = _col(g, "site_id", "")
    for i, (gid, spec) in enumerate(zip(g["grid_id"].tolist(), _col(g, "specialist_id", ""))):
        r = {c: cols[c][i] for c in cols}
        unst = _is_unstaffed(spec)
        r.update(gid=gid, spec="" if unst else str(spec), unstaffed=unst, use=_use(r["workload"], r["capacity"]),
                 site="" if _missing(site[i]) else str(site[i]))
        rows.append(r)
    return rows


def _grid_layer(rows: list[dict[str, Any]], ds: list[str], colours: dict[str, int], prefix: str,
                popup: bool) -> str:  # fmt: skip
    out = [f'<g id="{prefix}-grids">']
    for r, d in zip(rows, ds):
        spec = r["spec"] or "unstaffed"
        tip = f"{r['gid']} · {spec} · workload {_num(r['workload'])} · use {_pct(r['use'], 1)}"
        attrs = f'class="grid" data-grid-id="{_e(r["gid"])}"'
        if popup:
            attrs += (f' data-spec="{_e(spec)}" data-wl="{_num(r["workload"])}" data-nc="{_num(r["n_customers"], 0)}"'
                      f' data-cap="{_num(r["capacity"])}" data-use="{_pct(r["use"], 1)}"'
                      f' data-cells="{_num(r["n_cells"], 0)}" data-area="{_num(r["area_km2"], 2)} km²"')  # fmt: skip
            if r.get("site"):
                attrs += f' data-site="{_e(r["site"])}"'
        if r["unstaffed"]:
            attrs += ' data-unstaffed="1"'
        fill = colour_hex(colours.get(r["gid"], 0))
        out.append(f'<path {attrs} fill="{fill}" fill-rule="evenodd" d="{d}"><title>{_e(tip)}</title></path>')
    out.append("</g>")
    return "".join(out)


def _unstaffed_layer(rows: list[dict[str, Any]], ds: list[str], prefix: str) -> str:
    paths = "".join(f'<path d="{d}"/>' for r, d in zip(rows, ds) if r["unstaffed"])
    return (f'<g id="{prefix}-unstaffed" class="unst" fill="url(#{prefix}-hatch)" fill-rule="evenodd" '
            f'stroke="{_UNSTAFFED_RED}" stroke-width="2.2" pointer-events="none">{paths}</g>')  # fmt: skip


def _label_layer(rows: list[dict[str, Any]], pgeoms: list[Any], prefix: str, font: float) -> str:
    texts = []
    for r, pg in zip(rows, pgeoms):
        if parts := _polygons(pg):  # label the largest part
            pt = max(parts, key=lambda p: p.area).point_on_surface()
            texts.append(f'<text x="{_f(pt.x)}" y="{_f(pt.y)}">{_e(r["gid"])}</text>')
    return (f'<g id="{prefix}-labels" class="lbl" font-size="{_f(font)}" text-anchor="middle" '
            f'dominant-baseline="middle" pointer-events="none">{"".join(texts)}</g>')  # fmt: skip


def _specialist_points(specialists: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Specialists sorted by id (ids as text), their lon and lat as floats, and which are finite."""
    s = specialists.copy()
    s["specialist_id"] = s["specialist_id"].astype(str)
    s = s.sort_values("specialist_id", kind="mergesort")
    lat = pd.to_numeric(s["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(s["lon"], errors="coerce").to_numpy(float)
    return s, lon, lat, np.isfinite(lat) & np.isfinite(lon)


def _specialist_layer(specialists: pd.DataFrame | None, proj: SvgProjection, prefix: str, r: float) -> str:
    out = [f'<g id="{prefix}-specs">']
    if specialists is not None and len(specialists):
        s, lon, lat, ok = _specialist_points(specialists)
        xy = proj(np.column_stack([lon, lat]))
        for k, (sid, gid, cap) in enumerate(zip(s["specialist_id"], _col(s, "grid_id", ""), _col(s, "capacity"))):
            if not ok[k]:
                continue
            spare = _is_unstaffed(gid)
            tip = f"Specialist {sid} · " + ("spare" if spare else f"grid {gid}") + f" · capacity {_num(cap)}"
            cls = "spec spare" if spare else "spec"
            out.append(f'<circle class="{cls}" cx="{_f(xy[k, 0])}" cy="{_f(xy[k, 1])}" r="{_f(r)}">'
                       f"<title>{_e(tip)}</title></circle>")  # fmt: skip
    out.append("</g>")
    return "".join(out)


def _site_layers(sites: pd.DataFrame, g: gpd.GeoDataFrame, proj: SvgProjection, prefix: str, r: float) -> str:
    """Service points (counter-scaled like specialist bases) and a link from each grid's centre to its site."""
    s = sites.sort_values("site_id", kind="mergesort")
    sxy = proj(s[["lon", "lat"]].to_numpy(float)) if len(s) else np.zeros((0, 2))
    where = {str(k): xy for k, xy in zip(s["site_id"].astype(str), sxy)}
    links = [f'<g id="{prefix}-site-links" class="slink" pointer-events="none">']
    if "site_id" in g.columns and {"centre_lat", "centre_lon"} <= set(g.columns):
        gxy = proj(g[["centre_lon", "centre_lat"]].to_numpy(float))
        for (x, y), sid in zip(gxy, g["site_id"].astype(str)):
            if sid in where and math.isfinite(x) and math.isfinite(y):
                links.append(f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(where[sid][0])}" y2="{_f(where[sid][1])}"/>')
    links.append("</g>")
    pts = [f'<g id="{prefix}-sites">']
    for (x, y), rec in zip(sxy, s.itertuples(index=False)):
        tip = (f"Service point {rec.site_id} · {rec.n_grids} grids · {rec.n_specialists} specialists of "
               f"{rec.capacity} · workload {_num(rec.workload)}")
        pts.append(f'<circle class="spec svc" data-site-id="{_e(rec.site_id)}" cx="{_f(x)}" cy="{_f(y)}" '
                   f'r="{_f(r)}"><title>{_e(tip)}</title></circle>')
    pts.append("</g>")
    return "".join(links) + "".join(pts)


def _density_layer(cells: pd.DataFrame, proj: SvgProjection, prefix: str) -> tuple[str, list[str]]:
    """Occupied cells as small squares in 5 workload classes (one path per class)."""
    c = pd.DataFrame({k: pd.to_numeric(cells[k], errors="coerce") for k in ("lat", "lon", "workload")})
    c = c.dropna().sort_values(["lat", "lon", "workload"], kind="mergesort")
    if c.empty:
        return f'<g id="{prefix}-density"></g>', []
    xy = proj(c[["lon", "lat"]].to_numpy())
    side = 3.0
    if len(xy) > 1:
        pts = shapely.points(xy)
        _, dist = shapely.STRtree(pts).query_nearest(pts, exclusive=True, return_distance=True)
        if len(dist):
            side = float(np.clip(0.5 * np.median(dist), 1.0, 10.0))
    w = c["workload"].to_numpy(float).clip(min=0)
    wmax = float(w.max()) if w.max() > 0 else 1.0
    cls = np.minimum((np.sqrt(w / wmax) * 5).astype(int), 4)
    t = np.rint((xy - side / 2) * 10).astype(np.int64)  # square corners in tenths; 'm' moves relative
    sq = f"h{_f(side)}v{_f(side)}h-{_f(side)}z"
    out = [f'<g id="{prefix}-density" pointer-events="none" fill-opacity=".75">']
    for k in range(5):
        if len(sel := t[cls == k]):
            moves = np.diff(sel, axis=0, prepend=[[0, 0]]).tolist()
            d = "".join(f"{'M' if i == 0 else 'm'}{_n(a)},{_n(b)}{sq}" for i, (a, b) in enumerate(moves))
            out.append(f'<path fill="{_DENSITY[k]}" d="{d}"/>')
    out.append("</g>")
    legend = [f"{_num(wmax * (k / 5) ** 2)}–{_num(wmax * ((k + 1) / 5) ** 2)}" for k in range(5)]
    return "".join(out), legend


_SVG_CSS = (".grid{stroke:#37474f;stroke-width:.7;vector-effect:non-scaling-stroke;fill-opacity:.8}"
            ".unst path{vector-effect:non-scaling-stroke}"
            ".lbl text{fill:#111;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:.25em;"
            "stroke-linejoin:round;font-family:system-ui,Arial,sans-serif}"
            ".spec{fill:#1a237e;stroke:#fff;stroke-width:1.2;vector-effect:non-scaling-stroke}"
            ".spec.spare{fill:#fff;stroke:#1a237e;stroke-width:1.8}"
            ".spec.svc{fill:#b71c1c;stroke:#fff;stroke-width:2}"
            ".slink line{stroke:#b71c1c;stroke-width:1;stroke-opacity:.7;vector-effect:non-scaling-stroke}"
            ".zone{fill:none;stroke:#000;stroke-width:2.4;stroke-opacity:.85;vector-effect:non-scaling-stroke}"
            ".zlbl text{fill:#000;font-weight:700;paint-order:stroke;stroke:#fff;stroke-width:.3em;"
            "font-family:system-ui,'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',Arial,sans-serif}"
            ".changed{fill:#d500f9;fill-opacity:.35;stroke:#aa00ff;stroke-width:1.5;vector-effect:non-scaling-stroke}"
            ".barrier{fill:none;stroke:#b71c1c;stroke-width:3;stroke-dasharray:8 4;vector-effect:non-scaling-stroke}")  # fmt: skip


def render_overview_svg(grids: gpd.GeoDataFrame, specialists: pd.DataFrame | None, *, width: int = 900,
                        height: int = 700) -> str:  # fmt: skip
    """Static inline SVG of the plan (grids, unstaffed hatch, labels, specialist bases).

    Parameters
    ----------
    grids
        Plan grids (EPSG:4326) with ``grid_id``, ``specialist_id``, ``workload``,
        ``capacity`` and a (Multi)Polygon geometry.
    specialists
        Specialists with ``specialist_id``, ``lat``, ``lon``, ``capacity``,
        ``grid_id`` (``""`` if spare), or ``None`` to draw no bases.
    width, height
        Size of the SVG viewBox; the city is fitted inside it.

    Returns
    -------
    str
        An ``<svg>`` element without ``xmlns`` (for inline use in HTML). Each grid
        is one ``<path class="grid" data-grid-id=...>`` with a ``<title>`` tooltip.
    """
    g = _sorted_grids(grids)
    proj = SvgProjection(city_bounds(g, specialists), width, height, 10)
    pgeoms = project_geoms(g.geometry.values, proj, 0.4)
    ds = [svg_path_d(p) for p in pgeoms]
    rows = _grid_rows(g)
    sizes = [math.sqrt(p.area) for p in pgeoms if p is not None and not p.is_empty]
    font = float(np.clip(0.28 * np.median(sizes), 6, 12)) if sizes else 10.0
    body = [_hatch_defs("ge-ov"), f"<style>{_SVG_CSS}</style>",
            _grid_layer(rows, ds, grid_colours(g), "ge-ov", popup=False), _unstaffed_layer(rows, ds, "ge-ov")]
    if len(rows) <= 80:
        body.append(_label_layer(rows, pgeoms, "ge-ov", font))
    body.append(_specialist_layer(specialists, proj, "ge-ov", 3.0))
    return (f'<svg class="ge-overview" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="Overview map of {len(rows)} grids">{"".join(body)}</svg>')  # fmt: skip


def render_overview_png(grids: gpd.GeoDataFrame, specialists: pd.DataFrame | None, *, width_in: float = 9.0,
                        dpi: int = 110, title: str | None = None) -> bytes:  # fmt: skip
    """Static overview map of the plan as a PNG image, drawn with matplotlib (Agg, no screen needed).

    Grids are filled so that neighbours never share a colour (:func:`grid_colours`), with grey
    borders; unstaffed grids are hatched red; specialist bases are dark dots (spare: hollow).
    The axes use the same local equirectangular projection as the HTML map, so distances are
    true to scale in both directions, and a 1 / 5 km scale bar is drawn.

    Parameters
    ----------
    grids
        Plan grids as for :func:`render_map_html`.
    specialists
        Specialists (``specialist_id``, ``lat``, ``lon``, ``grid_id``), or ``None``.
    width_in, dpi
        Figure width in inches and resolution; the height follows the city's aspect ratio.
    title
        Optional title drawn above the map.

    Returns
    -------
    bytes
        PNG file contents. Deterministic for the same input and matplotlib version (no
        timestamp or software tag is written into the file).
    """
    # Figure objects draw through their own Agg canvas: no pyplot, so the caller's backend is untouched
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure
    from matplotlib.path import Path as MplPath

    g = _sorted_grids(grids)
    minx, miny, maxx, maxy = city_bounds(g, specialists)
    kx = math.cos(math.radians((miny + maxy) / 2.0))
    m_per_deg = M_PER_DEG_EQUATOR

    def proj(xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        return np.column_stack([(xy[:, 0] - minx) * kx * m_per_deg / 1000.0, (xy[:, 1] - miny) * m_per_deg / 1000.0])

    w_km = max((maxx - minx) * kx * m_per_deg / 1000.0, 0.01)
    h_km = max((maxy - miny) * m_per_deg / 1000.0, 0.01)
    ratio = min(max(h_km / w_km, 0.3), 3.0)
    fig = Figure(figsize=(width_in, width_in * ratio + (0.4 if title else 0.1)), dpi=dpi)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 if not title else 0.93))
    colours = grid_colours(g) if len(g) else {}
    rows = _grid_rows(g)
    paths: list[MplPath] = []
    fills: list[str] = []
    hatched: list[MplPath] = []
    for r, geom in zip(rows, g.geometry.values):
        verts: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        for poly in _polygons(geom):
            for ring in (poly.exterior, *poly.interiors):
                xy = proj(np.asarray(ring.coords)[:, :2])
                c = np.full(len(xy), MplPath.LINETO, dtype=np.uint8)
                c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
                verts.append(xy)
                codes.append(c)
        if not verts:
            continue
        path = MplPath(np.concatenate(verts), np.concatenate(codes))
        paths.append(path)
        fills.append(colour_hex(colours.get(r["gid"], 0)))
        if r["unstaffed"]:
            hatched.append(path)
    if paths:
        ax.add_collection(PathCollection(paths, facecolors=fills, edgecolors="#455a64", linewidths=0.5))
    if hatched:
        ax.add_collection(PathCollection(hatched, facecolors="none", edgecolors=_UNSTAFFED_RED, linewidths=1.2,
                                         hatch="////"))
    if len(rows) <= 80 and paths:
        for r, geom in zip(rows, g.geometry.values):
            if geom is None or geom.is_empty:
                continue
            p = geom.representative_point()
            (x, y), = proj(np.array([[p.x, p.y]]))
            ax.text(x, y, r["gid"], fontsize=6, ha="center", va="center", color="#111")
    if specialists is not None and len(specialists):
        s, lon, lat, ok = _specialist_points(specialists)
        spare = np.array([_is_unstaffed(v) for v in _col(s, "grid_id", "")], dtype=bool)
        xy = proj(np.column_stack([lon, lat]))
        ax.scatter(xy[ok & ~spare, 0], xy[ok & ~spare, 1], s=10, c="#1a237e", edgecolors="white", linewidths=0.5,
                   zorder=3)
        ax.scatter(xy[ok & spare, 0], xy[ok & spare, 1], s=12, facecolors="white", edgecolors="#1a237e",
                   linewidths=1.0, zorder=3)
    ax.set_xlim(-0.02 * w_km, 1.02 * w_km)
    ax.set_ylim(-0.02 * h_km, 1.02 * h_km)
    ax.set_aspect("equal")
    ax.set_axis_off()
    bar = 5.0 if w_km >= 20 else 1.0
    x0, y0 = 0.02 * w_km, 0.02 * h_km
    ax.plot([x0, x0 + bar], [y0, y0], color="#111", linewidth=2, solid_capstyle="butt")
    ax.text(x0 + bar / 2, y0 + 0.012 * h_km, f"{bar:g} km", ha="center", va="bottom", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


# ----------------------------------------------------------------------------- map.html
_MAP_CSS = """*{box-sizing:border-box}html,body{margin:0;height:100%}
body{display:flex;flex-direction:column;font:14px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
header{padding:6px 12px;background:#263238;color:#fff;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}#ge-wrap{flex:1;display:flex;min-height:0;color:#222}
#ge-side{width:260px;overflow:auto;padding:6px 12px;border-right:1px solid #ccc;background:#fafafa}
#ge-side h2{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#555;margin:12px 0 4px}
#ge-side label{display:block}#ge-side ul{margin:0;padding-left:18px}.hint{color:#666;font-size:12px}
.sw{display:inline-block;width:14px;height:11px;border:1px solid #555;vertical-align:middle;margin-right:4px}
.sw.h{background:repeating-linear-gradient(45deg,#c62828 0 2px,#fff 2px 5px);border-color:#c62828}
.sw.m{border-radius:50%;background:#1a237e;border-color:#fff}
.sw.s{border-radius:50%;background:#fff;border:2px solid #1a237e}
.sw.z{background:none;border:0;border-top:3px solid #000;height:0}
.sw.b{background:none;border:0;border-top:3px dashed #b71c1c;height:0}
.sw.c{background:rgba(213,0,249,.35);border-color:#aa00ff}
#ge-main{flex:1;position:relative;min-width:0;background:#eef1f4}
#ge-svg{width:100%;height:100%;display:block;cursor:grab;touch-action:none;user-select:none}
.grid{cursor:pointer}.grid:hover{fill-opacity:1;stroke-width:1.6}.grid.sel{stroke:#000;stroke-width:2.6}
.ge-tools{position:absolute;top:8px;right:8px;z-index:4}.ge-tools button{min-width:30px;margin-left:2px}
#ge-pop{position:absolute;z-index:5;background:#fff;border:1px solid #888;border-radius:4px;
box-shadow:0 2px 8px rgba(0,0,0,.25);padding:6px 10px;font-size:13px;min-width:190px}
#ge-pop th{text-align:left;padding-right:10px;color:#555;font-weight:normal}[hidden]{display:none!important}
#ge-pop .x{float:right;border:0;background:none;font-size:16px;cursor:pointer;line-height:1}
#ge-attr{position:absolute;right:4px;bottom:2px;font-size:11px;background:rgba(255,255,255,.8);padding:0 4px}
#ge-svg.basemap .grid{fill-opacity:.45}#ge-svg.basemap #ge-density{opacity:.5}"""

# Pan/zoom keeps one transform on <g id="ge-vp">; labels and base markers are counter-scaled so they keep
# their screen size. Popup content is built with textContent from data-* attributes (never innerHTML).
_MAP_JS = """(function(){var $=function(i){return document.getElementById(i);};
var svg=$('ge-svg'),vp=$('ge-vp'),pop=$('ge-pop'),main=$('ge-main'),lab=$('ge-labels'),
specs=svg.querySelectorAll('.spec'),FS=lab?+lab.getAttribute('font-size'):10,R=+svg.getAttribute('data-r'),
vb=svg.viewBox.baseVal,k=1,tx=0,ty=0,drag=null,moved=false,sel=null;
function apply(){vp.setAttribute('transform','translate('+tx+' '+ty+') scale('+k+')');
if(lab)lab.setAttribute('font-size',FS/k);for(var i=0;i<specs.length;i++)specs[i].setAttribute('r',R/k);}
function pt(e){var m=svg.getScreenCTM(),p=svg.createSVGPoint();p.x=e.clientX;p.y=e.clientY;
if(!m)return{x:vb.width/2,y:vb.height/2};p=p.matrixTransform(m.inverse());return{x:p.x,y:p.y};}
function zoom(f,p){var nk=Math.min(400,Math.max(.5,k*f));f=nk/k;tx=p.x-(p.x-tx)*f;ty=p.y-(p.y-ty)*f;k=nk;apply();}
svg.addEventListener('wheel',function(e){e.preventDefault();var d=e.deltaY*(e.deltaMode===1?33:e.deltaMode===2?400:1);
zoom(Math.exp(-Math.max(-300,Math.min(300,d))*.0015),pt(e));},{passive:false});
svg.addEventListener('pointerdown',function(e){if(e.button!==0)return;drag={x:e.clientX,y:e.clientY,tx:tx,ty:ty};
moved=false;});
window.addEventListener('pointermove',function(e){if(!drag)return;var dx=e.clientX-drag.x,dy=e.clientY-drag.y;
if(!moved&&Math.abs(dx)+Math.abs(dy)<4)return;moved=true;var m=svg.getScreenCTM(),a=m&&m.a?m.a:1;
tx=drag.tx+dx/a;ty=drag.ty+dy/a;apply();});
window.addEventListener('pointerup',function(){drag=null;});
var F=[['Grid','gridId'],['Service point','site'],['Specialist','spec'],['Workload','wl'],['Capacity','cap'],['Capacity use','use'],
['Customers','nc'],['Cells','cells'],['Area','area']];
function hide(){pop.hidden=true;if(sel){sel.classList.remove('sel');sel=null;}}
function show(t,e){hide();sel=t;t.classList.add('sel');pop.textContent='';var x=document.createElement('button');
x.className='x';x.textContent='\\u00d7';x.title='Close';x.addEventListener('click',hide);pop.appendChild(x);
var tb=document.createElement('table');F.forEach(function(f){if(f[1]==='site'&&!t.dataset.site)return;var tr=tb.insertRow(),th=document.createElement('th');
th.textContent=f[0];tr.appendChild(th);tr.insertCell().textContent=t.dataset[f[1]]||'';});pop.appendChild(tb);
pop.hidden=false;var r=main.getBoundingClientRect(),px=e.clientX-r.left+12,py=e.clientY-r.top+12;
px=Math.min(px,r.width-pop.offsetWidth-4);py=Math.min(py,r.height-pop.offsetHeight-4);
pop.style.left=Math.max(4,px)+'px';pop.style.top=Math.max(4,py)+'px';}
svg.addEventListener('click',function(e){if(moved){moved=false;return;}
var t=e.target&&e.target.closest?e.target.closest('path.grid'):null;if(t)show(t,e);else hide();});
document.addEventListener('keydown',function(e){if(e.key==='Escape')hide();});
function c(){return{x:vb.x+vb.width/2,y:vb.y+vb.height/2};}
$('ge-zin').addEventListener('click',function(){zoom(1.5,c());});
$('ge-zout').addEventListener('click',function(){zoom(1/1.5,c());});
$('ge-fit').addEventListener('click',function(){k=1;tx=0;ty=0;apply();});
Array.prototype.forEach.call(document.querySelectorAll('input[data-layer]'),function(b){
var id=b.getAttribute('data-layer');
function u(){var g=$(id);if(g)g.style.display=b.checked?'':'none';if(!b.checked&&id==='ge-grids')hide();}
b.addEventListener('change',u);u();});
var tb=$('ge-basemap'),tg=$('ge-tiles'),TU=svg.getAttribute('data-tiles'),P=(svg.getAttribute('data-proj')||'').split(',').map(Number),
tt=null,attr=$('ge-attr');
function tiles(){tg.textContent='';if(!tb||!tb.checked||!TU||P.length<4)return;
var kx=P[0],s=P[1],ox=P[2],oy=P[3],x0=(-tx/k-ox)/(kx*s),x1=((vb.width-tx)/k-ox)/(kx*s),
y0=(oy-(-ty/k))/s,y1=(oy-((vb.height-ty)/k))/s,r=svg.getBoundingClientRect(),px=Math.max(r.width,256);
var z=Math.max(1,Math.min(18,Math.round(Math.log(360*px/256/Math.max(x1-x0,1e-9))/Math.LN2))),n=Math.pow(2,z);
function tx_(lon){return Math.floor((lon+180)/360*n);}
function ty_(lat){var a=lat*Math.PI/180;return Math.floor((1-Math.log(Math.tan(a)+1/Math.cos(a))/Math.PI)/2*n);}
function lon_(x){return x/n*360-180;}function lat_(y){var t=Math.PI*(1-2*y/n);return Math.atan(.5*(Math.exp(t)-Math.exp(-t)))*180/Math.PI;}
var a0=tx_(x0),a1=tx_(x1),b0=ty_(y0),b1=ty_(y1);if((a1-a0+1)*(b1-b0+1)>80)return;
for(var i=a0;i<=a1;i++)for(var j=b0;j<=b1;j++){if(j<0||j>=n)continue;
var X0=ox+lon_(i)*kx*s,X1=ox+lon_(i+1)*kx*s,Y0=oy-lat_(j)*s,Y1=oy-lat_(j+1)*s,im=document.createElementNS(svg.namespaceURI,'image');
im.setAttribute('href',TU.replace('{z}',z).replace('{x}',((i%n)+n)%n).replace('{y}',j));
im.setAttribute('x',X0);im.setAttribute('y',Y0);im.setAttribute('width',X1-X0);im.setAttribute('height',Y1-Y0);
im.setAttribute('preserveAspectRatio','none');tg.appendChild(im);}}
var apply0=apply;apply=function(){apply0();if(tb&&tb.checked){clearTimeout(tt);tt=setTimeout(tiles,150);}};
if(tb)tb.addEventListener('change',function(){svg.classList.toggle('basemap',tb.checked);if(attr)attr.hidden=!tb.checked;tiles();});
apply();})();"""


#: Default online base map for the optional "Base map (online)" layer of ``map.html``.
DEFAULT_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TILE_ATTRIBUTION = "© OpenStreetMap contributors"


def _zone_layer(zones: Any, proj: SvgProjection, prefix: str) -> str:
    """Zone borders (outlines, not filled) with each zone's name at a point inside it."""
    if zones is None:
        return ""
    geoms = list(zones) if isinstance(zones, (list, tuple)) else list(shapely.get_parts(zones))
    names = list(getattr(zones, "names", None) or [f"zone {i + 1}" for i in range(len(geoms))])
    pg = project_geoms(np.array(geoms, dtype=object), proj, 0.3)
    paths, texts = [], []
    for nm, g in zip(names, pg):
        d = svg_path_d(g)
        paths.append(f'<path class="zone" data-zone="{_e(nm)}" d="{d}"><title>{_e("Zone " + str(nm))}</title></path>')
        if parts := _polygons(g):
            pt = max(parts, key=lambda p: p.area).point_on_surface()
            texts.append(f'<text x="{_f(pt.x)}" y="{_f(pt.y)}">{_e(nm)}</text>')
    return (f'<g id="{prefix}-zones" pointer-events="none">{"".join(paths)}'
            f'<g class="zlbl" font-size="14" text-anchor="middle" dominant-baseline="middle">{"".join(texts)}</g></g>')


def _changed_layer(changed: Any, proj: SvgProjection, prefix: str) -> str:
    """Territory drawn over the grids (outlined in magenta, lightly filled)."""
    if changed is None:
        return ""
    pg = project_geoms(np.array([changed], dtype=object), proj, 0.15)
    return (f'<g id="{prefix}-changed" pointer-events="none"><path class="changed" fill-rule="evenodd" '
            f'd="{svg_path_d(pg[0])}"/></g>')


def _barrier_layer(barriers: Any, proj: SvgProjection, prefix: str) -> str:
    """Barrier lines (and the outlines of barrier polygons) as dashed dark-red lines."""
    if barriers is None:
        return ""
    out = []
    for part in shapely.get_parts(barriers):
        lines = shapely.get_parts(part.boundary) if part.geom_type in ("Polygon", "MultiPolygon") else \
            shapely.get_parts(part)
        for ln in lines:
            xy = proj(shapely.get_coordinates(ln))
            if len(xy) < 2:
                continue
            d = "M" + "L".join(f"{_f(x)},{_f(y)}" for x, y in xy)
            out.append(f'<path class="barrier" d="{d}"><title>Barrier</title></path>')
    return f'<g id="{prefix}-barriers" pointer-events="none">{"".join(out)}</g>'


def render_map_html(grids: gpd.GeoDataFrame, specialists: pd.DataFrame, *, cells: pd.DataFrame | None = None,
                    title: str = "gridengine plan", tile_url: str | None = DEFAULT_TILE_URL,
                    tile_attribution: str = DEFAULT_TILE_ATTRIBUTION, sites: pd.DataFrame | None = None,
                    zones: Any = None, barriers: Any = None, changed: Any = None) -> str:  # fmt: skip
    """Interactive, self-contained ``map.html`` of a plan.

    Parameters
    ----------
    grids
        Plan grids (EPSG:4326): ``grid_id``, ``specialist_id`` (``""`` if unstaffed),
        ``workload``, ``n_customers``, ``n_cells``, ``area_km2``, ``capacity`` and a
        Polygon/MultiPolygon geometry.
    specialists
        ``specialist_id``, ``lat``, ``lon``, ``capacity``, ``grid_id`` (``""`` if spare).
    cells
        Optional occupied H3 cells (``lat``, ``lon``, ``workload``) drawn as a
        shaded customer-density layer (customers are never shown individually).
    title
        Page title (escaped).
    tile_url
        XYZ tile URL template (``{z}``, ``{x}``, ``{y}``) of an optional base map, drawn under
        the grids only when the planner ticks "Base map (online)"; nothing is fetched otherwise,
        so the page still works with no network. ``None`` leaves the layer out.
    tile_attribution
        Attribution shown while the base map is on.
    sites
        Optional service points (``site_id``, ``lat``, ``lon``, ``n_grids``, ``n_specialists``,
        ``capacity``, ``workload``; :func:`gridengine.site_service_points`): drawn as a layer with
        a link from each grid's centre to its site when ``grids`` has a ``site_id`` column.
    zones
        Optional zone polygons (a list with ``.names``, as :func:`gridengine.ingest.read_zones`
        gives): their borders and names are drawn as the "Zone borders" layer.
    barriers
        Optional barrier geometry: drawn as the "Barriers" layer.
    changed
        Optional territory to highlight (``diff.html``: the cells that changed grid), drawn as the
        "Changed territory" layer.

    Returns
    -------
    str
        A complete HTML document with inline CSS, SVG and JS only: fit-to-city
        viewBox, wheel zoom and drag pan, click popup, ``<title>`` tooltips,
        layer toggles, legend and the list of unstaffed grids.
    """
    g = _sorted_grids(grids)
    bounds = city_bounds(g, cells, specialists)
    w, h = fit_size(bounds)
    proj = SvgProjection(bounds, w, h, 12)
    pgeoms = project_geoms(g.geometry.values, proj, 0.15)
    ds = [svg_path_d(p) for p in pgeoms]
    rows = _grid_rows(g)
    density, dlegend = ("", []) if cells is None else _density_layer(cells, proj, "ge")
    layers = [_grid_layer(rows, ds, grid_colours(g), "ge", popup=True), density, _unstaffed_layer(rows, ds, "ge"),
              _changed_layer(changed, proj, "ge"), _zone_layer(zones, proj, "ge"), _barrier_layer(barriers, proj, "ge"),
              _label_layer(rows, pgeoms, "ge", 11.0), _specialist_layer(specialists, proj, "ge", 4.0)]  # fmt: skip
    if sites is not None:
        layers.append(_site_layers(sites, g, proj, "ge", 4.0))
    tiles_attr = ""
    if tile_url:
        proj_attr = ",".join(repr(round(float(v), 9)) for v in (proj.kx, proj.s, proj.ox, proj.oy))
        tiles_attr = f' data-tiles="{_e(tile_url)}" data-proj="{proj_attr}"'
    svg = (f'<svg id="ge-svg" viewBox="0 0 {_f(w)} {_f(h)}" data-r="4" preserveAspectRatio="xMidYMid meet"{tiles_attr}>'
           f"{_hatch_defs('ge')}<style>{_SVG_CSS}</style><g id=\"ge-vp\"><g id=\"ge-tiles\"></g>{''.join(layers)}</g>"
           "</svg>")  # fmt: skip

    unst = [r for r in rows if r["unstaffed"]]
    n_spec = 0 if specialists is None else len(specialists)
    n_spare = 0 if not n_spec else sum(_is_unstaffed(v) for v in _col(specialists, "grid_id", ""))

    def box(layer: str, label: str, on: bool = True, enabled: bool = True) -> str:
        state = (" checked" if on else "") + ("" if enabled else " disabled")
        return f'<label><input type="checkbox" data-layer="{layer}"{state}> {label}</label>'

    toggles = [box("ge-grids", "Grids"), box("ge-labels", "Grid labels", on=len(rows) <= 150),
               box("ge-specs", "Specialist bases"),
               box("ge-density", "Customer density" + ("" if cells is not None else " (no data)"),
                   on=cells is not None, enabled=cells is not None),
               box("ge-unstaffed", "Unstaffed highlight")]  # fmt: skip
    if sites is not None:
        toggles += [box("ge-sites", f"Service points ({len(sites)})"), box("ge-site-links", "Grid to service point")]
    if zones is not None:
        toggles.append(box("ge-zones", "Zone borders"))
    if barriers is not None:
        toggles.append(box("ge-barriers", "Barriers"))
    if changed is not None:
        toggles.append(box("ge-changed", "Changed territory"))
    if tile_url:
        toggles.append('<label><input type="checkbox" id="ge-basemap"> Base map (online)</label>'
                       '<div class="hint">Loads map tiles from the network; off by default, the rest of the map '
                       "works offline.</div>")
    swatches = "".join(f'<span class="sw" style="background:{c}"></span>' for c in PALETTE[:8])
    legend = [f"<div>{swatches}</div><div class=\"hint\">Colours only tell neighbouring grids apart.</div>",
              '<div><span class="sw h"></span>Unstaffed grid</div>',
              '<div><span class="sw m"></span>Specialist base</div>',
              '<div><span class="sw s"></span>Spare specialist</div>']  # fmt: skip
    if sites is not None:
        legend.append('<div><span class="sw m" style="background:#b71c1c"></span>Service point</div>')
    if zones is not None:
        legend.append('<div><span class="sw z"></span>Zone border (grids never cross it)</div>')
    if barriers is not None:
        legend.append('<div><span class="sw b"></span>Barrier (grids never cross it)</div>')
    if changed is not None:
        legend.append('<div><span class="sw c"></span>Territory that changed grid</div>')
    if dlegend:
        legend.append("<div>Customer workload per cell:</div>" + "".join(
            f'<div><span class="sw" style="background:{c}"></span>{_e(t)}</div>' for c, t in zip(_DENSITY, dlegend)))
    items = "".join(f"<li>{_e(r['gid'])} — workload {_num(r['workload'])}</li>" for r in unst)
    unlist = f"<ul>{items}</ul>" if unst else "<p>None: every grid has a specialist.</p>"
    attribution = (f'<div id="ge-attr" hidden>{_e(tile_attribution)}</div>' if tile_url else "")
    info = (f"{len(rows)} grids · {len(rows) - len(unst)} staffed · {len(unst)} unstaffed · "
            f"{n_spec} specialists ({n_spare} spare)")  # fmt: skip
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{_MAP_CSS}</style></head><body><header><h1>{_e(title)}</h1><span>{info}</span></header>"
            f'<div id="ge-wrap"><aside id="ge-side"><h2>Layers</h2>{"".join(toggles)}<h2>Legend</h2>{"".join(legend)}'
            f"<h2>Unstaffed grids ({len(unst)})</h2>{unlist}"
            f'<p class="hint">Mouse wheel zooms, drag pans, click a grid for details, Esc closes.</p></aside>'
            f'<main id="ge-main"><div class="ge-tools"><button id="ge-zin" title="Zoom in">+</button>'
            f'<button id="ge-zout" title="Zoom out">−</button><button id="ge-fit" title="Fit city">Fit</button></div>'
            f'{svg}<div id="ge-pop" hidden></div>{attribution}</main></div><script>{_MAP_JS}</script></body></html>\n')  # fmt: skip


# ----------------------------------------------------------------------------- report.html
def _fmt_metric(key: str, v: Any) -> str:
    """Format one metric: shares as %, ``*_km`` with 2 decimals, counts with separators."""
    if v is None or v is pd.NA:
        return "n/a (no previous plan)" if key == "churn" else "n/a"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (Integral, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, Real):
        if not math.isfinite(float(v)):
            return "n/a"
        if key in _PCT_KEYS or key in _PCT_KEYS_MORE or key.endswith(("_share", "_pct", "_rate")):
            return _pct(v)
        if key in _KM_KEYS or key.endswith("_km"):
            return f"{float(v):,.2f} km"
        if float(v).is_integer() and (key.startswith("n_") or key == "capacity_violations"):
            return f"{int(v):,}"
        return f"{float(v):,.3f}".rstrip("0").rstrip(".")
    return _e(v)


def _td(v: Any, text: str, cls: str = "n") -> str:
    """Numeric table cell; ``data-v`` carries the raw value for sorting."""
    return f'<td class="{cls}" data-v="{"" if _missing(v) else repr(float(v))}">{text}</td>'


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, bool, Real, np.generic))


def _metric_rows(metrics: Mapping[str, Any], keys: list[str]) -> str:
    def label(k: str) -> str:
        return f'{_e(_label_of(k))} <small class="key">{_e(k)}</small>'

    return "".join(f"<tr><th>{label(k)}</th><td>{_fmt_metric(k, metrics[k])}</td></tr>" for k in keys)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo if hi > lo else 1.0
    mag = 10 ** math.floor(math.log10(span / n))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if span / (m * mag) <= n)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _histogram_svg(workloads: list[Any], capacity: float | None, width: int = 720, height: int = 260) -> str:
    """Inline SVG histogram of grid workloads with vertical lines at capacity and mean."""
    w = np.asarray([float(v) for v in workloads if not _missing(v)], dtype=float)
    if len(w) == 0:
        return "<p>No workload data.</p>"
    cap = None if _missing(capacity) else float(capacity)  # type: ignore[arg-type]
    top = max(float(w.max()), cap or 0.0)
    # the x axis spans the workloads and the capacity line (not from 0: grids cluster near the target,
    # and a 0-based axis would put them all in one or two bars)
    lo = float(w.min()) - 0.05 * max(top - float(w.min()), 0.1 * abs(top))
    lo = 0.0 if float(w.min()) >= 0 and lo < 0.25 * top else lo
    hi = top + 0.03 * max(top - lo, 1e-9)
    hi = hi if hi > lo else lo + 1.0
    nb = int(min(40, max(10, math.ceil(2 * len(w) ** (1 / 3)))))
    counts, edges = np.histogram(w, bins=nb, range=(lo, hi))
    ml, mr, mt, mb = 48, 16, 30, 36
    pw, ph = width - ml - mr, height - mt - mb
    cmax = max(int(counts.max()), 1)
    sx = lambda v: ml + (v - lo) / (hi - lo) * pw  # noqa: E731
    sy = lambda c: mt + ph - c / cmax * ph  # noqa: E731
    out = [f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="Histogram of grid workloads" font-size="11" font-family="system-ui,sans-serif">']  # fmt: skip
    for c, a, b in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist()):
        if c:
            out.append(f'<rect x="{_f(sx(a) + .5)}" y="{_f(sy(c))}" width="{_f(max(sx(b) - sx(a) - 1, .5))}" '
                       f'height="{_f(ph - (sy(c) - mt))}" fill="#78909c"><title>{c} grids with workload '
                       f"{_num(a)}–{_num(b)}</title></rect>")  # fmt: skip
    out.append(f'<path d="M{ml},{mt}V{mt + ph}H{ml + pw}" fill="none" stroke="#333"/>')
    for t in _nice_ticks(lo, hi):
        out.append(f'<path d="M{_f(sx(t))},{mt + ph}v4" stroke="#333"/><text x="{_f(sx(t))}" y="{mt + ph + 16}" '
                   f'text-anchor="middle">{_num(t, 0 if float(t).is_integer() else 1)}</text>')  # fmt: skip
    for t in _nice_ticks(0, cmax, 4):
        if float(t).is_integer():
            out.append(f'<text x="{ml - 6}" y="{_f(sy(t) + 4)}" text-anchor="end">{int(t)}</text>')
    out.append(f'<text x="{ml + pw / 2:.0f}" y="{height - 3}" text-anchor="middle">workload per grid</text>')
    lines = [("mean", float(w.mean()), "#1565c0", "6 3", mt + 10)]
    if cap is not None:
        lines.append(("capacity", cap, _UNSTAFFED_RED, "", mt - 6))
    for name, v, colour, dash, ty in lines:
        x = sx(v)
        anchor, dx = ("end", -4) if x > ml + pw * 0.75 else ("start", 4)
        out.append(f'<path d="M{_f(x)},{mt - 12}V{mt + ph}" stroke="{colour}" stroke-width="2"'
                   + (f' stroke-dasharray="{dash}"' if dash else "")
                   + f'/><text x="{_f(x + dx)}" y="{ty}" fill="{colour}" text-anchor="{anchor}">'
                   f"{name} {_num(v)}</text>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


_REPORT_CSS = """body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#222;
max-width:1100px;margin:0 auto;padding:12px 20px}h1{font-size:22px;margin:8px 0}
h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}table{border-collapse:collapse}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}table.kv th{font-weight:normal;color:#444}
code{color:#888;font-size:11px}small.key{color:#999;font-size:10px;font-family:monospace;margin-left:4px}
nav a{margin-right:12px}
table.sortable th{cursor:pointer;background:#f3f5f7;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.unstaffed td{background:#fdecea}td.over{color:#b71c1c;font-weight:600}ul.warn li{margin:2px 0}
.tag{color:#b71c1c;font-weight:600}svg,img.overview{max-width:100%;height:auto}.hint{color:#666;font-size:12px}"""

_SORT_JS = """Array.prototype.forEach.call(document.querySelectorAll('table.sortable th'),function(th,i){
th.addEventListener('click',function(){var tb=th.closest('table').tBodies[0],rows=Array.prototype.slice.call(tb.rows),
asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(th.parentNode.cells,function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
function key(r){var c=r.cells[i],v=c.getAttribute('data-v');if(v===null)return c.textContent;v=parseFloat(v);
return isNaN(v)?-1e300:v;}
rows.sort(function(a,b){var x=key(a),y=key(b),s=x<y?-1:x>y?1:0;return asc?s:-s;});
rows.forEach(function(r){tb.appendChild(r);});});});"""


def planner_warnings(warnings: list[str]) -> tuple[list[str], int]:
    """The warnings worth a planner's attention, and how many were left out.

    A bridge that joins an area without workload (empty land, an islet nobody lives on) to a
    grid changes no one's work and is left out.
    """
    import re

    keep, quiet = [], 0
    for w in warnings:
        m = re.match(r"bridge: .*\(workload ([0-9.eE+-]+)\)", w)
        if m and float(m.group(1)) == 0.0:
            quiet += 1
            continue
        keep.append(w)
    return keep, quiet


def describe_separation(a: str, b: str, tiled: set[str], *, zones: Any = None, barriers: Any = None,
                        service_area_given: bool = True) -> str:
    """What separates two cells a bridge joins, in words: "a barrier", "a zone border", "water or land
    outside the service area", or "land with no customer nearby".

    Parameters
    ----------
    a, b
        The two cells (H3 strings).
    tiled
        Every cell of the plan's tiling.
    zones, barriers
        The plan's zones (list of polygons) and barriers, if any.
    service_area_given
        Whether the service area was a planner's polygon (else a buffer around the customers).
    """
    import h3
    from shapely.geometry import LineString

    (la, lo), (lb, lob) = h3.cell_to_latlng(a), h3.cell_to_latlng(b)
    seg = LineString([(lo, la), (lob, lb)])
    if barriers is not None and seg.intersects(barriers.boundary if barriers.geom_type in ("Polygon", "MultiPolygon")
                                               else barriers):
        return "a barrier"
    if zones is not None:
        za = [i for i, z in enumerate(zones) if z.contains(shapely.Point(lo, la))]
        zb = [i for i, z in enumerate(zones) if z.contains(shapely.Point(lob, lb))]
        if za and zb and za[0] != zb[0]:
            return "a zone border"
    return "water or land outside the service area" if service_area_given else \
        "land with no customer nearby (outside the tiled area)"


def _locks_html(metrics: Mapping[str, Any]) -> str:
    """The report's "Locked" section: each locked grid, how it was locked and what happened to its customers."""
    recs = list(metrics.get("locks") or [])
    pinned = [g for g in metrics.get("locked_grids") or [] if g not in {r.get("grid_id") for r in recs}]
    if not recs and not pinned:
        return ""
    out = ['<h2 id="locked">Locked</h2>']
    if recs:
        out.append(f"<p>{len(recs)} grid(s) kept exactly as in the previous plan (their cells, customers and "
                   "specialist); the rest of the city was planned around them with the rest of the roster.</p>")
        head = ["Grid", "Specialist", "Locked by", "Row", "Cells", "Customers", "Workload", "Capacity", "Joined",
                "Turned away", "Moved out", "Gone"]
        body = []
        for r in recs:
            by = str(r.get("locked_by", ""))
            by = f"locked with {by[5:]} (shared compound cell)" if by.startswith("with ") else by
            body.append(f'<tr><td>{_e(r.get("grid_id", ""))}</td><td>{_e(r.get("specialist_id", ""))}</td>'
                        f'<td>{_e(by)}</td>' + _td(r.get("row"), _num(r.get("row"), 0))
                        + "".join(_td(r.get(k), _num(r.get(k), 0)) for k in ("n_cells", "n_customers"))
                        + _td(r.get("workload"), _num(r.get("workload")))
                        + _td(r.get("capacity"), _num(r.get("capacity")))
                        + "".join(_td(r.get(k), _num(r.get(k), 0), "n over" if k == "turned_away" and r.get(k)
                                      else "n") for k in ("joined", "turned_away", "moved_out", "departed"))
                        + "</tr>")  # fmt: skip
        out.append(f'<table class="sortable"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
                   f'<tbody>{"".join(body)}</tbody></table>'
                   '<p class="hint">Row: the row of the locks file (the header is row 1). Joined: customers new '
                   "to the grid's cells, taken while its specialist's capacity held; turned away: the others (in "
                   "rejects.csv); moved out: its customers now living elsewhere, planned with the rest; gone: its "
                   "customers no longer in the input.</p>")
    if pinned:
        out.append("<p>Grids holding pinned cells (they keep their id and may hold more cells): "
                   + ", ".join(f'<span class="tag">{_e(g)}</span>' for g in pinned) + "</p>")
    return "".join(out)


def render_report_html(grids: gpd.GeoDataFrame, metrics: dict, *, warnings: list[str], capacity: float | None,
                       title: str = "gridengine plan report", map_svg: str | None = None,
                       overview_png: bytes | None = None) -> str:  # fmt: skip
    """Self-contained ``report.html``: metrics, warnings, staffing, workload histogram, map, grid table.

    Parameters
    ----------
    grids
        Plan grids, as for :func:`render_map_html`.
    metrics
        Plan metrics. Known keys are labelled and formatted (shares in ``coverage``,
        ``balance_max_dev``, ``within_5pct``, ``contiguous_share``, ``churn`` are
        fractions shown as %, ``*_km`` with 2 decimals); ``churn`` may be ``None``.
        Extra scalar keys are shown too (sorted); non-scalar values are skipped.
    warnings
        Planner-facing warnings (bridges, split compounds, shortfall), escaped.
    capacity
        Nominal specialist capacity: a line on the histogram (``None`` for none).
    title
        Page title (escaped).
    map_svg
        Trusted SVG markup inserted as is instead of the overview image.
    overview_png
        PNG overview map embedded as a ``data:`` URI; :func:`render_overview_png` of the grids
        (no bases) if both this and ``map_svg`` are ``None``.

    Returns
    -------
    str
        A complete deterministic HTML document (inline CSS/SVG/JS only).
    """
    g = _sorted_grids(grids)
    rows = _grid_rows(g)
    unst = [r for r in rows if r["unstaffed"]]
    scalar = {k: v for k, v in metrics.items() if _is_scalar(v)}
    summary = [k for k in _SUMMARY_ORDER if k in scalar]
    summary += sorted(k for k in scalar if k not in _SUMMARY_ORDER and k not in _STAFF_KEYS)
    summary_html = _metric_rows(scalar, summary)
    if capacity is not None:
        summary_html += f"<tr><th>Capacity per specialist</th><td>{_num(capacity)}</td></tr>"
    staff = dict(scalar)
    staff.setdefault("n_staffed_grids", len(rows) - len(unst))
    staff.setdefault("n_unstaffed_grids", len(unst))
    staff_html = '<table class="kv">' + _metric_rows(staff, [k for k in _STAFF_KEYS if k in staff]) + "</table>"
    if unst:
        staff_html += "<p>Unstaffed grids: " + ", ".join(f'<span class="tag">{_e(r["gid"])}</span>' for r in unst)
        staff_html += "</p>"
    warnings, quiet = planner_warnings(warnings)
    warn_html = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    warn_html = f'<ul class="warn">{warn_html}</ul>' if warnings else "<p>No warnings.</p>"
    if quiet:
        warn_html += (f'<p class="hint">{quiet} bridge(s) joining empty land (no workload) to a grid are not '
                      "listed: they change no one's work (all bridges are in metrics.json).</p>")
    wl = [r["workload"] for r in rows]
    fin = [float(v) for v in wl if not _missing(v)]
    stats = (f"{len(fin)} grids · mean {_num(np.mean(fin))} · median {_num(np.median(fin))} · "
             f"min {_num(min(fin))} · max {_num(max(fin))}" if fin else "")  # fmt: skip
    head = ["Grid", "Specialist", "Workload", "Capacity", "Use", "Customers", "Cells", "Area km²"]
    locked = {str(g) for g in metrics.get("locked_grids") or []}
    locks_html = _locks_html(metrics)
    nav_locked = '<a href="#locked">Locked</a>' if locks_html else ""
    body = []
    for r in rows:
        over = not _missing(r["use"]) and r["use"] > 1.0 + 1e-9
        spec = '<span class="tag">unstaffed</span>' if r["unstaffed"] else _e(r["spec"])
        tr = '<tr class="unstaffed">' if r["unstaffed"] else "<tr>"
        gid = _e(r["gid"]) + (' <small class="key">locked</small>' if r["gid"] in locked else "")
        body.append(f'{tr}<td>{gid}</td><td>{spec}</td>'
                    + _td(r["workload"], _num(r["workload"])) + _td(r["capacity"], _num(r["capacity"]))
                    + _td(r["use"], _pct(r["use"], 1), "n over" if over else "n")
                    + _td(r["n_customers"], _num(r["n_customers"], 0)) + _td(r["n_cells"], _num(r["n_cells"], 0))
                    + _td(r["area_km2"], _num(r["area_km2"], 2)) + "</tr>")  # fmt: skip
    if map_svg is not None:
        overview = map_svg
    else:
        png = overview_png if overview_png is not None else render_overview_png(g, None)
        overview = (f'<img class="overview" alt="Overview map of {len(rows)} grids" '
                    f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{_REPORT_CSS}</style></head><body><h1>{_e(title)}</h1>"
            '<nav><a href="#summary">Summary</a><a href="#warnings">Warnings</a><a href="#staffing">Staffing</a>'
            f'{nav_locked}<a href="#workload">Workload</a><a href="#map">Map</a><a href="#grids">Grids</a></nav>'
            f'<h2 id="summary">Summary</h2><table class="kv">{summary_html}</table>'
            f'<h2 id="warnings">Warnings ({len(warnings)})</h2>{warn_html}'
            f'<h2 id="staffing">Staffing</h2>{staff_html}{locks_html}'
            f'<h2 id="workload">Workload distribution</h2>{_histogram_svg(wl, capacity)}<p class="hint">{stats}</p>'
            f'<h2 id="map">Overview map</h2>{overview}<p class="hint">Colours only tell neighbouring grids apart; '
            "hatched with a red outline = unstaffed; dark dots = specialist bases, hollow = spare.</p>"
            f'<h2 id="grids">Grids ({len(rows)})</h2><p class="hint">Click a column header to sort.</p>'
            f'<table class="sortable"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table><script>{_SORT_JS}</script></body></html>\n')  # fmt: skip
