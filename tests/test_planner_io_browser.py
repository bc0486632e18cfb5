"""Browser tests of the planner's layers and the diff page: the zone and barrier layers of ``map.html``
and ``diff.html`` at common window sizes, opened from disk in headless Chromium with the network off
(the harness of ``tests/test_browser.py``). Screenshots: ``tests/artifacts/planner_io_*.png``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from shapely.geometry import LineString
from test_browser import Page, _screenshot, browser  # noqa: F401  (the browser fixture)

import gridengine as ge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lumpy_cities as lc  # noqa: E402


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """A 30,000-customer Shenzhen planned in its districts with one barrier line, and a re-run after
    three specialists resigned and 2,000 customers left, with two unstaffed grids."""
    c = lc.make_city("shenzhen", 30_000, seed=0)
    roster = lc.make_roster(c, kind="dual", fill=0.9, seed=0)
    d = tmp_path_factory.mktemp("io")
    c.districts.to_file(d / "districts.geojson", driver="GeoJSON")
    cust = c.customers
    x = float(cust.loc[cust["district"] == cust["district"].value_counts().index[0], "lon"].median())
    line = LineString([(x, cust["lat"].min() - 0.05), (x, cust["lat"].max() + 0.05)])
    a = ge.plan_city(cust, roster, service_area=c.service_area, zones=d / "districts.geojson", barriers=line)
    a_dir = a.write(d / "a")
    r2 = roster.iloc[3:]  # three resigned, 2,000 customers gone, two grids more than specialists
    b = ge.plan_city(cust.iloc[2000:], r2, ge.Config(partition=ge.PartitionConfig(k=len(r2) + 2)),
                     service_area=c.service_area, zones=d / "districts.geojson", barriers=line)
    b_dir = b.write(d / "b")
    diff = ge.diff_plans(a_dir, b_dir)
    diff.write(d / "diff")
    return a, a_dir, b, diff, d / "diff"


def test_zone_and_barrier_layers(browser, plans):  # noqa: F811
    a, a_dir, *_ = plans
    p = Page(browser, a_dir / "map.html", size=(1400, 1000))
    page = p.page
    try:
        n_zones = len(a.zones)
        assert page.locator("#ge-zones path.zone").count() == n_zones
        labels = page.eval_on_selector_all("#ge-zones text", "els => els.map(e => e.textContent)")
        assert set(labels) == set(a.zones.names) and "福田区" in labels
        box = page.locator("#ge-zones").bounding_box()
        pane = page.locator("#ge-main").bounding_box()
        assert box["width"] > 0.5 * pane["width"] or box["height"] > 0.5 * pane["height"]
        assert page.locator("#ge-barriers path.barrier").count() >= 1
        bb = page.locator("#ge-barriers").bounding_box()
        assert bb["height"] > 0.5 * pane["height"]  # the north-south line crosses the city
        shot = _screenshot(page, "planner_io_zones_barriers.png")
        for layer in ("ge-zones", "ge-barriers"):
            toggle = page.locator(f'input[data-layer="{layer}"]')
            assert toggle.is_checked()
            toggle.click()
            assert page.evaluate(f"() => getComputedStyle(document.getElementById('{layer}')).display") == "none"
            toggle.click()
        legend = page.locator("#ge-side").inner_text()
        assert "Zone border" in legend and "Barrier" in legend
        p.check_clean()
    finally:
        p.close()
    assert shot.exists()


@pytest.mark.parametrize("size", [(1400, 1000), (1024, 768), (1920, 1080)])
def test_diff_page_readable(browser, plans, size):  # noqa: F811
    a, a_dir, b, diff, diff_dir = plans
    p = Page(browser, diff_dir / "diff.html", size=size)
    page = p.page
    try:
        main = page.locator("#ge-main").bounding_box()
        assert main["height"] > 0.5 * size[1] and main["width"] > 0.5 * size[0], main
        vp = page.locator("#ge-vp").bounding_box()
        assert vp["width"] > 0.6 * main["width"] or vp["height"] > 0.6 * main["height"]
        n_unst = b.metrics["n_unstaffed_grids"]
        header = page.locator("header").inner_text()
        assert f"{n_unst} unstaffed" in header
        text = page.locator("#diff-text").inner_text()
        assert f"Unstaffed grids in the later plan ({n_unst})" in text
        for g in diff.unstaffed["grid_id"]:
            assert g in text
        assert "resigned" in text and "What changed" in text
        assert page.locator("path.grid").count() == len(b.grids)
        # the heaviest grid's popup shows its real workload
        heavy = b.grids.sort_values("workload").iloc[-1]
        wl = page.locator(f'path.grid[data-grid-id="{heavy["grid_id"]}"]').get_attribute("data-wl")
        assert wl == f"{heavy['workload']:,.1f}" and float(wl.replace(",", "")) > 0
        assert page.locator("#ge-changed path.changed").count() == (1 if len(diff.changed_areas) else 0)
        _screenshot(page, f"planner_io_diff_{size[0]}x{size[1]}.png", full_page=size == (1400, 1000))
        p.check_clean()
    finally:
        p.close()
