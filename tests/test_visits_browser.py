"""Browser test: a specialist's visits page and the index page, opened from disk in headless Chromium
with the network cut (as in test_browser.py), on a phone-sized screen and in print."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_visits import START, make_plan, risk_rows

import gridengine as ge

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("GRIDENGINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium and chromium-driver")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def visits_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vbrowser")
    plan = make_plan(root / "plan")
    risk = risk_rows()
    risk.loc[risk["customer_id"] == "C0001", "note"] = "<b>bring</b> the policy letter"
    return ge.plan_visits(plan, risk, ge.VisitsConfig(start=START, jobs=1)).write(root / "visits")


def _open(browser, path: Path, size: tuple[int, int]):
    ctx = browser.new_context(offline=True, viewport={"width": size[0], "height": size[1]})
    errors: list[str] = []
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return ctx, page, errors, outside


def test_specialist_page_on_a_phone_and_in_print(browser, visits_dir):
    v = pd.read_csv(visits_dir / "visits.csv", dtype=str, keep_default_na=False)
    mine = v[v["specialist_id"] == "S1"]
    ctx, page, errors, outside = _open(browser, visits_dir / "pages" / "S1.html", (390, 844))
    try:
        n_days = mine["date"].nunique()
        # the week map (every stop) and one map per day (its stops), and one table row per visit
        assert page.locator("svg.map").count() == 1 + n_days
        assert page.locator("svg.map").first.locator("g.stop").count() == len(mine)
        assert page.locator("section.day").count() == n_days
        assert page.locator("section.day tr").count() == len(mine) + n_days  # + a header row per day
        first = mine.sort_values(["date", "seq"]).iloc[0]
        sec = page.locator(f"section#d{first['date']}")
        assert first["customer_id"] in sec.inner_text() and first["arrival"] in sec.inner_text()
        # the note is shown as text, never as markup
        html = page.content()
        assert "&lt;b&gt;bring&lt;/b&gt;" in html or "C0001" not in set(mine["customer_id"])
        # fits the phone: nothing wider than the screen
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "visits_phone.png"), full_page=True)
        assert (ARTIFACTS / "visits_phone.png").stat().st_size > 10_000
        # prints: one day per printed page, navigation hidden
        page.emulate_media(media="print")
        assert page.evaluate("() => getComputedStyle(document.querySelector('nav')).display") == "none"
        brk = page.evaluate("() => getComputedStyle(document.querySelector('section.day')).breakAfter")
        assert brk == "page"
        pdf = page.pdf(format="A4")
        assert pdf[:4] == b"%PDF" and len(pdf) > 5_000
        assert errors == [] and outside == []
    finally:
        ctx.close()


def test_index_lists_unscheduled_first_and_links_pages(browser, visits_dir):
    ctx, page, errors, outside = _open(browser, visits_dir / "index.html", (1000, 800))
    try:
        warn = page.locator("div.warn")
        assert warn.count() == 1 and "no specialist for the grid" in warn.inner_text()
        assert page.locator("table").first.locator("a").count() == 4
        page.click("text=S2")
        page.wait_for_load_state("load")
        assert page.url.endswith("/pages/S2.html")
        assert "Home visits: S2" in page.locator("h1").inner_text()
        assert errors == [] and outside == []
    finally:
        ctx.close()
