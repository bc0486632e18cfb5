"""Browser test of the service-point map: opened from disk in headless Chromium with the network cut."""

from __future__ import annotations

import pytest

from gridengine.sites import SitesConfig, site_service_points

sync_api = pytest.importorskip("playwright.sync_api")
from test_browser import Page, _screenshot, browser  # noqa: E402,F401  (the browser fixture)


def test_site_layer_offline_toggle_popup(browser, sample_plan, tmp_path):  # noqa: F811
    res = site_service_points(sample_plan, config=SitesConfig(max_specialists_per_site=6))
    out = res.write(tmp_path / "sites")
    p = Page(browser, out / "map.html")
    page = p.page
    try:
        assert page.locator("#ge-sites circle.svc").count() == len(res.sites)
        assert page.locator("#ge-site-links line").count() == len(sample_plan.grids)
        assert page.locator("path.grid").count() == len(sample_plan.grids)
        ids = page.evaluate("() => [...document.querySelectorAll('#ge-sites circle')].map(c => c.dataset.siteId)")
        assert sorted(ids) == sorted(res.sites["site_id"])
        assert page.locator("#ge-sites").is_visible()
        _screenshot(page, "sites_map.png")
        # the layer toggle hides and shows the sites
        page.locator('input[data-layer="ge-sites"]').uncheck()
        assert page.locator("#ge-sites").is_hidden()
        page.locator('input[data-layer="ge-sites"]').check()
        assert page.locator("#ge-sites").is_visible()
        # a grid's popup names its service point
        gid = sorted(sample_plan.grids["grid_id"].astype(str))[0]
        page.evaluate("gid => { const el = document.querySelector(`path.grid[data-grid-id=\"${gid}\"]`);"
                      "const r = el.getBoundingClientRect();"
                      "el.dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: r.x + r.width / 2,"
                      " clientY: r.y + r.height / 2})); }", gid)
        text = page.locator("#ge-pop").inner_text()
        site = res.grid_sites.set_index("grid_id").loc[gid, "site_id"]
        assert "Service point" in text and site in text
        p.check_clean()
    finally:
        p.close()
    r = Page(browser, out / "report.html")
    try:
        assert r.page.locator("#service-points").is_visible()
        assert r.page.locator("table.sites tr").count() == len(res.sites) + 1
        r.check_clean()
    finally:
        r.close()
