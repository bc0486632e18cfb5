"""Browser test: ``map.html`` and ``report.html`` opened from disk in headless Chromium, network off.

Uses Playwright for Python driving Debian's Chromium (``/usr/bin/chromium``, installed by
``make test``; Playwright never downloads a browser here). Every request that is not ``file:``
or ``data:`` is aborted and recorded, and the browser context is offline, so a page that
needed the network would fail these tests. Screenshots go to ``tests/artifacts/``.

Set ``GRIDENGINE_CHROMIUM`` to use another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import gridengine as ge

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("GRIDENGINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The flags the machine's probe uses: without the background-networking ones Chromium keeps trying to
# reach Google's hosts, which a closed network refuses.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page opened from disk with the network cut; records console errors and outside requests."""

    def __init__(self, browser, path: Path, size=(1280, 860)):
        self.ctx = browser.new_context(offline=True, viewport={"width": size[0], "height": size[1]})
        self.errors: list[str] = []
        self.outside: list[str] = []

        def route(r):
            url = r.request.url
            if url.startswith(("file:", "data:")):
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        self.ctx.route("**/*", route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def close(self):
        self.ctx.close()

    def check_clean(self):
        assert self.errors == [], self.errors
        assert self.outside == [], f"the page asked the network for {self.outside}"


def _screenshot(page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    return path


def test_map_offline_polygons_popup_toggles(browser, sample_plan, sample_plan_dir):
    n_grids = len(sample_plan.grids)
    p = Page(browser, sample_plan_dir / "map.html")
    page = p.page
    try:
        assert page.locator("path.grid").count() == n_grids
        # fitted to the city: the drawing fills the map pane (not a corner of it)
        box = page.locator("#ge-vp").bounding_box()
        pane = page.locator("#ge-main").bounding_box()
        assert box["width"] > 0.8 * pane["width"] or box["height"] > 0.8 * pane["height"]
        assert page.locator("#ge-pop").is_hidden()

        # click inside a grid (its label point is inside its polygon): the popup names that grid
        gid = sorted(sample_plan.grids["grid_id"].astype(str))[3]
        label = page.locator("#ge-labels text", has_text=gid).first
        lb = label.bounding_box()
        page.mouse.click(lb["x"] + lb["width"] / 2, lb["y"] + lb["height"] + 3)
        hit = page.evaluate("() => document.querySelector('path.grid.sel')?.dataset.gridId")
        assert hit is not None
        pop = page.locator("#ge-pop")
        assert pop.is_visible()
        text = pop.inner_text()
        row = sample_plan.grids.set_index(sample_plan.grids["grid_id"].astype(str)).loc[hit]
        for field in ("Grid", "Specialist", "Workload", "Capacity use", "Customers"):
            assert field in text
        assert hit in text and str(row["specialist_id"]) in text
        shot = _screenshot(page, "map_popup.png")

        page.keyboard.press("Escape")
        assert pop.is_hidden()

        # layer toggles hide and show their layers
        for layer in ("ge-grids", "ge-specs", "ge-density", "ge-labels"):
            box = page.locator(f'input[data-layer="{layer}"]')
            was = box.is_checked()
            box.click()
            shown = page.evaluate(f"() => getComputedStyle(document.getElementById('{layer}')).display !== 'none'")
            assert shown is (not was), layer
            box.click()
        # zoom buttons change the view, Fit brings it back
        before = page.locator("#ge-vp").get_attribute("transform")
        page.click("#ge-zin")
        assert page.locator("#ge-vp").get_attribute("transform") != before
        page.click("#ge-fit")
        assert page.locator("#ge-vp").get_attribute("transform") == before
        # customers are shown aggregated only: no customer id appears in the page
        html = page.content()
        assert not any(cid in html for cid in sample_plan.assignments["customer_id"].astype(str).head(200))
        p.check_clean()
    finally:
        p.close()
    assert shot.exists()


def test_map_highlights_unstaffed_grids(browser, sample_paths, tmp_path):
    spec = pd.read_csv(sample_paths["specialists"]).head(20)  # 27 grids, 20 specialists: 7 unstaffed
    spec.to_csv(tmp_path / "specialists.csv", index=False)
    plan = ge.plan_city(sample_paths["customers"], tmp_path / "specialists.csv", ge.Config(),
                        service_area=sample_paths["service_area"])
    unstaffed = int((plan.grids["specialist_id"].astype(str) == "").sum())
    assert unstaffed > 0
    plan.write(tmp_path / "plan")
    p = Page(browser, tmp_path / "plan" / "map.html")
    try:
        page = p.page
        assert page.locator("#ge-unstaffed path").count() == unstaffed
        assert page.locator("#ge-side li").count() == unstaffed
        _screenshot(page, "map_unstaffed.png")
        p.check_clean()
    finally:
        p.close()
    r = Page(browser, tmp_path / "plan" / "report.html")
    try:
        assert r.page.locator("tr.unstaffed").count() == unstaffed
        r.check_clean()
    finally:
        r.close()


def test_report_offline_summary_histogram_table(browser, sample_plan, sample_plan_dir):
    p = Page(browser, sample_plan_dir / "report.html", size=(1200, 1600))
    page = p.page
    try:
        n_grids = len(sample_plan.grids)
        assert page.locator("table.sortable tbody tr").count() == n_grids
        summary = page.locator("#summary + table").inner_text()
        assert "Coverage" in summary and "100.00%" in summary
        # the histogram has bars and the capacity line
        assert page.locator("svg.hist rect").count() >= 3
        assert "capacity" in page.locator("svg.hist").text_content()
        # the matplotlib overview image decoded
        size = page.evaluate("() => { const i = document.querySelector('img.overview'); "
                             "return [i.complete, i.naturalWidth, i.naturalHeight]; }")
        assert size[0] and size[1] > 300 and size[2] > 200
        _screenshot(page, "report.png", full_page=True)
        # sorting by workload orders the rows
        page.locator("table.sortable th", has_text="Workload").click()
        vals = page.evaluate("() => Array.from(document.querySelectorAll('table.sortable tbody tr'))"
                             ".map(r => parseFloat(r.cells[2].dataset.v))")
        assert vals == sorted(vals)
        p.check_clean()
    finally:
        p.close()


def test_online_base_map_only_when_asked(browser, sample_plan_dir):
    p = Page(browser, sample_plan_dir / "map.html")
    page = p.page
    try:
        assert page.locator("#ge-tiles image").count() == 0 and p.outside == []  # nothing fetched by default
        page.check("#ge-basemap")
        page.wait_for_timeout(400)
        n = page.locator("#ge-tiles image").count()
        assert 1 <= n <= 80
        assert all(u.startswith("https://tile.openstreetmap.org/") for u in p.outside) and p.outside
        assert page.locator("#ge-attr").is_visible()
        page.click("#ge-zin")
        page.wait_for_timeout(400)
        assert page.locator("#ge-tiles image").count() >= 1
        page.uncheck("#ge-basemap")
        assert page.locator("#ge-tiles image").count() == 0 and page.locator("#ge-attr").is_hidden()
        # the network is cut here, so the tiles fail to load: that is the only kind of console error allowed
        assert all("Failed to load resource" in e for e in p.errors), p.errors
    finally:
        p.close()

