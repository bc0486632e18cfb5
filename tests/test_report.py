"""Tests for :mod:`gridengine.report` (self-contained map.html / report.html)."""

from __future__ import annotations

import base64
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon, shape

from gridengine.report import (
    grid_colours,
    render_map_html,
    render_overview_png,
    render_overview_svg,
    render_report_html,
)

CENTRE = (22.54, 114.06)
RES = 8
EVIL = "<script>alert(1)</script>"
METRICS = {
    "coverage": 0.9876, "capacity_violations": 1, "balance_max_dev": 0.0731, "within_5pct": 0.5,
    "contiguous_share": 1.0, "compactness_km": 1.23456, "travel_km": 4321.0, "churn": None,
    "n_customers": 12345, "n_rejects": 7, "n_grids": 6, "n_staffed_grids": 5, "n_unstaffed_grids": 1,
    "specialists_missing": 1, "n_spare_specialists": 1, "solver_status": "OPTIMAL",
    "mean_fill_share": 0.81, "objective": 12.5, "per_grid": [1, 2, 3],
}  # fmt: skip


def _frame(groups: list[list[str]], ids: list[str], specs: list[str]) -> gpd.GeoDataFrame:
    rows = []
    for i, (gid, sid, cells) in enumerate(zip(ids, specs, groups)):
        rows.append({
            "grid_id": gid, "specialist_id": sid, "workload": 40.0 + 7.5 * i, "n_customers": 10 + i,
            "n_cells": len(cells), "area_km2": 0.737 * len(cells), "capacity": 100.0 if sid else math.nan,
            "geometry": shape(h3.cells_to_geo(cells)),
        })  # fmt: skip
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def _groups() -> list[list[str]]:
    """Core cell, a ring around it (polygon with a hole), 3 angular sectors, and 2 far cells (MultiPolygon)."""
    c0 = h3.latlng_to_cell(*CENTRE, RES)
    lat0, lng0 = h3.cell_to_latlng(c0)
    far = sorted(h3.grid_ring(c0, 4))
    multi = [far[0], max(far, key=lambda c: h3.grid_distance(c, far[0]))]
    sectors: list[list[str]] = [[], [], []]
    for c in sorted(set(h3.grid_disk(c0, 4)) - set(h3.grid_disk(c0, 1)) - set(multi)):
        lat, lng = h3.cell_to_latlng(c)
        sectors[int((math.atan2(lat - lat0, lng - lng0) + math.pi) / (2 * math.pi) * 3) % 3].append(c)
    return [[c0], sorted(h3.grid_ring(c0, 1)), *sectors, multi]


@pytest.fixture()
def grids() -> gpd.GeoDataFrame:
    ids = [f"G{i:04d}" for i in range(1, 7)]
    return _frame(_groups(), ids, ["S01", "S02", "S03", "S04", "S05", ""])


@pytest.fixture()
def specialists(grids: gpd.GeoDataFrame) -> pd.DataFrame:
    rows = [{"specialist_id": s, "lat": p.y, "lon": p.x, "capacity": 100.0, "grid_id": g}
            for g, s, p in zip(grids.grid_id, grids.specialist_id, grids.representative_point()) if s]  # fmt: skip
    rows.append({"specialist_id": "S99", "lat": CENTRE[0] + 0.01, "lon": CENTRE[1], "capacity": 80.0, "grid_id": ""})
    return pd.DataFrame(rows)


@pytest.fixture()
def cells() -> pd.DataFrame:
    disk = sorted(h3.grid_disk(h3.latlng_to_cell(*CENTRE, RES), 4))
    return pd.DataFrame([{"lat": h3.cell_to_latlng(c)[0], "lon": h3.cell_to_latlng(c)[1], "workload": float(i % 9)}
                         for i, c in enumerate(disk)])  # fmt: skip


def _big(n: int = 30) -> gpd.GeoDataFrame:
    """``n`` grids: a radius-10 disk split by nearest seed."""
    disk = sorted(h3.grid_disk(h3.latlng_to_cell(*CENTRE, RES), 10))
    seeds = [disk[i] for i in np.random.default_rng(1).choice(len(disk), n, replace=False)]
    groups: dict[str, list[str]] = {s: [] for s in seeds}
    for c in disk:
        groups[min(seeds, key=lambda s: (h3.grid_distance(c, s), s))].append(c)
    ids = [f"G{i:04d}" for i in range(1, n + 1)]
    return _frame([groups[s] for s in seeds], ids, [f"S{i:02d}" if i % 5 else "" for i in range(n)])


def _report(grids: gpd.GeoDataFrame, **kw: object) -> str:
    kw.setdefault("warnings", ["Bridge joins island G0006", f"split compound {EVIL}"])
    kw.setdefault("capacity", 100.0)
    return render_report_html(grids, METRICS, **kw)  # type: ignore[arg-type]


class _Balanced(HTMLParser):
    """Checks that every end tag closes the innermost open element."""

    VOID = {"meta", "input", "br", "hr", "img", "link", "wbr", "col", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack[-5:]}"
        self.stack.pop()


def _assert_parses(page: str) -> None:
    p = _Balanced()
    p.feed(page)
    p.close()
    assert p.stack == []


def _assert_offline(page: str) -> None:
    # the optional online base map's URL template is data, fetched only when the planner turns it on
    page = re.sub(r' data-tiles="[^"]*"', "", page)
    low = page.lower()
    for bad in ("http://", "https://", "<script src", "<link", "@import", "//cdn", "xmlns"):
        assert bad not in low, bad
    # the only src= allowed is an inline data: URI (the report's overview image)
    assert re.findall(r' src="(?!data:image/png;base64,)', low) == []


def _paths(page: str) -> dict[str, str]:
    """grid_id -> path data of each ``class="grid"`` path."""
    return dict(re.findall(r'<path class="grid" data-grid-id="([^"]*)"[^>]*? d="([^"]*)"', page))


def _decode(d: str) -> shapely.Geometry:
    """Inverse of the path encoding (``M x,y l dx,dy ... z`` per ring), filled even-odd."""
    rings = []
    for ring in re.findall(r"M([^l]*)l([^z]*)z", d):
        nums = [float(v) for v in re.findall(r"-?(?:\d+\.?\d*|\.\d+)", " ".join(ring))]
        pts = [(nums[0], nums[1])]
        for dx, dy in zip(nums[2::2], nums[3::2]):
            pts.append((pts[-1][0] + dx, pts[-1][1] + dy))
        rings.append(Polygon(pts))
    out = rings[0]
    for r in rings[1:]:
        out = out.symmetric_difference(r)
    return out


# ----------------------------------------------------------------------------- map.html
def test_map_has_one_grid_path_per_grid(grids, specialists, cells) -> None:
    page = render_map_html(grids, specialists, cells=cells)
    assert page.count('class="grid"') == len(grids)
    assert set(_paths(page)) == set(grids.grid_id)
    assert page.count('fill-rule="evenodd" d=') == len(grids)
    big = _big()
    assert render_map_html(big, specialists).count('class="grid"') == 30


def test_pages_are_self_contained_and_parse(grids, specialists, cells) -> None:
    for page in (render_map_html(grids, specialists, cells=cells), _report(grids)):
        assert page.startswith("<!DOCTYPE html>")
        _assert_offline(page)
        _assert_parses(page)
    _assert_offline(render_overview_svg(grids, specialists))
    _assert_parses(render_overview_svg(grids, specialists))


def test_geometry_round_trip_holes_and_multipolygon(grids, specialists) -> None:
    paths = _paths(render_map_html(grids, specialists))
    decoded = {gid: _decode(d) for gid, d in paths.items()}
    per_cell = [decoded[g].area / n for g, n in zip(grids.grid_id, grids.n_cells)]
    assert max(per_cell) / min(per_cell) < 1.05  # same-size hexagons; the hole is not filled
    assert paths["G0002"].count("M") == 2 and decoded["G0002"].geom_type == "Polygon"  # ring with hole
    assert len(decoded["G0002"].interiors) == 1
    assert grids.geometry[5].geom_type == "MultiPolygon"
    assert paths["G0006"].count("M") == 2 and decoded["G0006"].geom_type == "MultiPolygon"
    union = shapely.union_all(list(decoded.values()))
    assert sum(g.area for g in decoded.values()) == pytest.approx(union.area, rel=0.02)  # no big overlaps


def test_colouring_neighbours_differ() -> None:
    for frame in (_big(), _big(12)):
        colours = grid_colours(frame)
        assert set(colours) == set(frame.grid_id)
        geoms = dict(zip(frame.grid_id, frame.geometry))
        n_adjacent = 0
        for a in geoms:
            for b in geoms:
                if a < b and (geoms[a].touches(geoms[b]) or geoms[a].intersects(geoms[b])
                              or geoms[a].distance(geoms[b]) < 1e-9):  # fmt: skip
                    n_adjacent += 1
                    assert colours[a] != colours[b], (a, b)
        assert n_adjacent >= len(frame) - 1
        assert grid_colours(frame.iloc[::-1]) == colours  # row order does not matter


def test_colouring_fixture_and_palette(grids, specialists) -> None:
    colours = grid_colours(grids)
    assert colours["G0001"] != colours["G0002"]  # core inside the ring
    assert all(colours["G0002"] != colours[g] for g in ("G0003", "G0004", "G0005"))
    fills = dict(re.findall(r'data-grid-id="([^"]*)"[^>]*? fill="([^"]*)"', render_map_html(grids, specialists)))
    assert fills["G0001"] != fills["G0002"]


def test_escaping_of_data(grids, specialists) -> None:
    g = grids.copy()
    g.loc[0, "grid_id"] = EVIL
    g.loc[1, "specialist_id"] = 'S"02&<i>'
    s = specialists.copy()
    s.loc[0, "specialist_id"] = EVIL
    s.loc[0, "grid_id"] = EVIL
    pages = [render_map_html(g, s, title=f"plan {EVIL}"), _report(g, title=f"report {EVIL}"),
             render_overview_svg(g, s)]  # fmt: skip
    for page in pages:
        assert EVIL not in page
        assert "<i>" not in page
        _assert_parses(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert 'data-spec="S&quot;02&amp;&lt;i&gt;"' in pages[0]
    assert "split compound &lt;script&gt;" in pages[1]


def test_deterministic_and_order_independent(grids, specialists, cells) -> None:
    a = render_map_html(grids, specialists, cells=cells)
    assert a == render_map_html(grids, specialists, cells=cells)
    shuffled = render_map_html(grids.iloc[[3, 0, 5, 1, 4, 2]], specialists.iloc[::-1], cells=cells.iloc[::-1])
    assert a == shuffled
    assert _report(grids) == _report(grids)
    assert render_overview_svg(grids, specialists) == render_overview_svg(grids, specialists)


def test_unstaffed_grid_is_marked(grids, specialists) -> None:
    page = render_map_html(grids, specialists)
    marked = re.findall(r'data-grid-id="([^"]*)"[^>]*data-unstaffed="1"', page)
    assert marked == ["G0006"]
    layer = re.search(r'<g id="ge-unstaffed"[^>]*>(.*?)</g>', page)
    assert layer is not None and layer.group(1).count("<path") == 1
    assert "Unstaffed grids (1)" in page and "<li>G0006" in page
    assert 'data-spec="unstaffed"' in page
    assert page.count('class="spec spare"') == 1 and page.count('class="spec"') == 5
    report = _report(grids)
    assert re.search(r'<tr class="unstaffed"><td>G0006</td>', report)
    assert report.count('<tr class="unstaffed">') == 1


def test_map_popup_data_layers_and_density(grids, specialists, cells) -> None:
    page = render_map_html(grids, specialists, cells=cells)
    m = re.search(r'data-grid-id="G0003"[^>]*data-wl="([^"]*)"[^>]*data-use="([^"]*)"', page)
    assert m is not None and m.groups() == ("55.0", "55.0%")
    for layer in ("ge-grids", "ge-labels", "ge-specs", "ge-density", "ge-unstaffed"):
        assert f'data-layer="{layer}"' in page and f'<g id="{layer}"' in page
    density = re.search(r'<g id="ge-density"[^>]*>(.*?)</g>', page)
    assert density is not None and density.group(1).count("h") >= len(cells)  # one square per cell
    assert "<title>G0001 · S01 · workload 40.0" in page
    no_cells = render_map_html(grids, specialists)
    assert 'data-layer="ge-density" disabled' in no_cells and "<path fill=\"#fee5d9\"" not in no_cells
    vb = re.search(r'<svg id="ge-svg" viewBox="0 0 ([\d.]+) ([\d.]+)"', page)
    assert vb is not None
    xs = [float(v) for v in re.findall(r'<text x="([\d.]+)"', page)]
    assert xs and 0 < min(xs) and max(xs) < float(vb.group(1))  # fitted to the city


@pytest.mark.skipif(shutil.which("node") is None, reason="node not available")
def test_inline_js_is_valid(grids, specialists, tmp_path) -> None:
    for i, page in enumerate((render_map_html(grids, specialists), _report(grids))):
        scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
        assert len(scripts) == 1
        f = tmp_path / f"s{i}.js"
        f.write_text(scripts[0], encoding="utf-8")
        subprocess.run(["node", "--check", str(f)], check=True, capture_output=True)


# ----------------------------------------------------------------------------- report.html
def test_report_metrics_formatting(grids) -> None:
    page = _report(grids)
    assert "<td>98.76%</td>" in page  # coverage
    assert "<td>7.31%</td>" in page and "<td>50.00%</td>" in page and "<td>100.00%</td>" in page
    assert "<td>1.23 km</td>" in page and "<td>4,321.00 km</td>" in page
    assert "<td>12,345</td>" in page and "<td>OPTIMAL</td>" in page
    assert "n/a (no previous plan)" in page
    # extra keys shown, labelled in words with the key as a small annotation
    assert 'Mean fill share <small class="key">mean_fill_share</small></th><td>81.00%</td>' in page
    assert 'Objective <small class="key">objective</small></th><td>12.5</td>' in page
    assert "per_grid" not in page  # non-scalar skipped
    assert "Specialists missing" in page and "Spare specialists" in page
    assert "Warnings (2)" in page and "Bridge joins island G0006" in page


def test_report_histogram_map_and_table(grids, specialists) -> None:
    page = _report(grids)
    assert '<svg class="hist"' in page and "capacity 100.0" in page and "mean 58.8" in page
    assert '<img class="overview"' in page and 'src="data:image/png;base64,' in page
    assert '<table class="sortable">' in page and page.count("<tr") >= len(grids) + 1
    assert page.index("<td>G0001</td>") < page.index("<td>G0002</td>") < page.index("<td>G0006</td>")
    no_cap = _report(grids, capacity=None, warnings=[])
    assert "capacity 100.0" not in no_cap and "No warnings." in no_cap
    png = render_overview_png(grids, specialists, title="city")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == render_overview_png(grids, specialists, title="city")
    assert base64.b64encode(png).decode() in _report(grids, overview_png=png)
    custom = _report(grids, map_svg=render_overview_svg(grids, specialists, width=400, height=300))
    assert 'viewBox="0 0 400 300"' in custom and 'class="spec' in custom


def test_overview_svg(grids, specialists) -> None:
    svg = render_overview_svg(grids, specialists, width=600, height=500)
    assert svg.startswith('<svg class="ge-overview" viewBox="0 0 600 500"') and svg.endswith("</svg>")
    assert svg.count('class="grid"') == len(grids) and "data-unstaffed" in svg
    assert 'id="ge-ov-unstaffed"' in svg and "G0006" in svg
    assert render_overview_svg(grids, None).count("<circle") == 0


def test_edge_cases(grids) -> None:
    one = grids.iloc[[2]]
    _assert_parses(render_map_html(one, pd.DataFrame(columns=["specialist_id", "lat", "lon", "capacity", "grid_id"])))
    assert grid_colours(one) == {"G0003": 0}
    empty = grids.iloc[0:0]
    assert grid_colours(empty) == {}
    for page in (render_map_html(empty, None), render_report_html(empty, {}, warnings=[], capacity=None)):  # type: ignore[arg-type]
        _assert_parses(page)
        assert 'class="grid"' not in page


def test_map_base_layer_is_optional(grids, specialists) -> None:
    page = render_map_html(grids, specialists)
    assert 'data-tiles="https://tile.openstreetmap.org/{z}/{x}/{y}.png"' in page
    assert 'id="ge-basemap"' in page and "<input type=\"checkbox\" id=\"ge-basemap\">" in page  # off by default
    assert "OpenStreetMap contributors" in page
    bare = render_map_html(grids, specialists, tile_url=None)
    assert ' data-tiles="' not in bare and 'id="ge-basemap"' not in bare and "https://" not in bare

