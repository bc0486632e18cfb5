"""Roster benchmark (issue 15, "Plan to the roster"): plans on lumpy real-geography cities.

Run from the repository root:

    .venv/bin/python benchmarks/roster_bench.py --quick                      # 20k customers, smoke run
    .venv/bin/python benchmarks/roster_bench.py                              # 100k rows, shenzhen + wuhan
    .venv/bin/python benchmarks/roster_bench.py --scenarios 1m --cities shenzhen   # the 1M CLI row

Prints one table and writes it to ``benchmarks/results/roster_bench.csv`` (gitignored; ``--csv``
to change). Exit status 1 if any row fails its target.

Cities and rosters
------------------
Customers come from :func:`lumpy_cities.make_city` (real district boundaries, residential
compounds at one point up to 85 % of a capacity, water, islands, empty land), drawn for the
capacity the roster will have: ``capacity_hint = 1.18 * n / (k * 0.91)`` with ``k = n / 1000``
specialists (100 at 100k; ``--k`` to change) and one compound above capacity
(``above_capacity=1``). Rosters come from :func:`lumpy_cities.make_roster`.

Every plan goes through the public API, ``gridengine.plan_city(customers, specialists, config,
service_area=..., previous=...)`` with ``gridengine.Config(seed=0)`` (the defaults); the 1M row
runs the ``gridengine plan`` command in a subprocess under ``/usr/bin/time -v``.

Scenarios (``--scenarios``, comma separated; default: all but ``1m``)
--------------------------------------------------------------------
exact        exact homogeneous roster, fill 0.91. Target: coverage 100 %, 0 violations,
             grids = specialists, >= 99 % of grids within +-5 % of the mean fill.
dual         dual track: 70 % contract at C, 30 % agency at 0.6 C, total capacity 1.10 x workload.
             Target: coverage 100 %, 0 violations against each specialist's own capacity, >= 95 %
             of grids within +-5 % of the mean fill.
leave3       re-run from the exact plan after 3 % of the staffed specialists leave (no spares).
leave10      the same with 10 %; the base plan is drawn at fill 0.855 so that the re-run's fill is
             <= 0.95. Target (both): coverage 100 %, 0 violations, churn <= the departed
             specialists' customer share + 1 pp. The detail gives the least churn any re-run
             could reach from that base plan (a fractional min-cost flow bound, by workload).
same         re-run from the exact plan with nothing changed. Target: byte-identical data files
             (grids.parquet, grids.geojson, grids.csv when written, assignments.parquet,
             assignments.csv, rejects.csv, ...; both plans written with ``Plan.write``).
             metrics.json and manifest.json, the plan's record of how it was made, may differ
             only by the re-run's own entries: churn and moves all zero, and the previous
             plan's hash; any other difference fails.
join5        re-run from the exact plan after 5 % new specialists join (bases near the workload).
             Target: every new specialist gets a grid, coverage 100 %, churn <= 8 %.
compactness  on the exact plan: workload-weighted mean distance customer -> own grid centre
             <= 1.15 x the same figure for weighted k-means with the same k (best of 3 seeds).
             The detail also gives a balanced k-means peer (every cluster within +-5 % of an equal
             share, no contiguity), which shows what balance alone costs.
geometry     on the exact plan: grids drawn as multi-part polygons = reported bridges. Counted as
             parts: the pieces of every grid beyond its first (summed) must equal the bridges
             reported in ``metrics.json``, since each bridge joins one separate piece (a grid
             bridged to two islands is one multi-part grid with two bridges); the detail column
             also gives the number of multi-part grids.
1m           1,000,000 customers (``--big``), k = 800 specialists (``--big-k``) at fill 0.91, the
             ``gridengine plan`` CLI with ``-k 800``. Target: plan found, 0 violations, >= 98 % within
             +-5 %, <= 60 s and <= 4 GB (max RSS) for the whole command. Also reports compactness and
             geometry rows on that plan.

Figures are computed from the plan's tables, not only from ``metrics.json``: coverage = share of
the input customers whose ``specialist_id`` is non-empty; violations = grids whose workload (summed
from the customers) exceeds their specialist's capacity in the roster; fill = grid workload / its
specialist's capacity, ``within_5pct`` = share of all grids whose fill is within +-5 % of the mean
fill of staffed grids (an unstaffed grid counts as outside); churn = share of the customers in
both plans whose specialist changed; departed_share = share of the customers whose previous
specialist left. ``seconds`` is the planning time of the row (``time.perf_counter``; the re-run
only, for re-runs; the k-means time on compactness rows; the whole command's wall time on the 1m
row); the first plan of a run also pays numba's compilation when its cache is cold; ``peak_mb`` is the benchmark process's high-water mark so far
(``resource.getrusage``), or the CLI's max RSS for the 1m row.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lumpy_cities as lc  # noqa: E402

import gridengine as ge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ALL_SCENARIOS = ("exact", "dual", "leave3", "leave10", "same", "join5", "compactness", "geometry", "1m")
DEFAULT_SCENARIOS = ALL_SCENARIOS[:-1]
CITY_SEEDS = {"shenzhen": 1, "wuhan": 2, "guiyang": 3}
DATA_FILES = ("grids.parquet", "grids.geojson", "grids.csv", "assignments.parquet", "assignments.csv",
              "rejects.csv", "metrics.json", "manifest.json")
COLUMNS = ["scenario", "city", "customers", "specialists", "grids", "unstaffed", "coverage", "violations",
           "within_5pct", "churn", "departed_share", "seconds", "peak_mb", "result", "detail"]
FILL = 0.91
MEAN_WORKLOAD = 1.18


# --------------------------------------------------------------------------------------------
# measuring a plan
# --------------------------------------------------------------------------------------------


def peak_mb() -> float:
    """High-water mark of this process's resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def evaluate(plan: ge.Plan, customers: pd.DataFrame, roster: pd.DataFrame) -> dict[str, Any]:
    """Coverage, violations, fills, multi-part grids and bridges of a plan, from its tables.

    Parameters
    ----------
    plan
        The plan.
    customers
        The input customers (``customer_id``, ``workload``).
    roster
        The input roster (``specialist_id``, ``capacity``).

    Returns
    -------
    dict
        ``grids``, ``unstaffed``, ``coverage``, ``violations``, ``within_5pct``, ``fill_min``,
        ``fill_max``, ``multipart`` (grids drawn in more than one piece), ``extra_parts`` (pieces
        beyond the first, summed), ``bridges`` (reported).
    """
    a = plan.assignments[["customer_id", "grid_id", "specialist_id"]].copy()
    a["specialist_id"] = a["specialist_id"].fillna("").astype(str)
    w = customers.set_index("customer_id")["workload"]
    a["workload"] = w.reindex(a["customer_id"]).to_numpy()
    covered = int((a["specialist_id"] != "").sum())
    grids = plan.grids.copy()
    grids["specialist_id"] = grids["specialist_id"].fillna("").astype(str)
    gw = a.groupby("grid_id")["workload"].sum()
    grids["w"] = gw.reindex(grids["grid_id"]).fillna(0.0).to_numpy()
    cap = roster.set_index("specialist_id")["capacity"]
    staffed = grids["specialist_id"] != ""
    grids["cap"] = np.where(staffed, cap.reindex(grids["specialist_id"]).to_numpy(), np.nan)
    fill = (grids["w"] / grids["cap"])[staffed]
    violations = int((grids.loc[staffed, "w"] > grids.loc[staffed, "cap"] + 1e-9).sum())
    mean_fill = float(fill.mean()) if len(fill) else float("nan")
    within = int((np.abs(fill / mean_fill - 1.0) <= 0.05 + 1e-12).sum()) if len(fill) else 0
    geoms = plan.grids.geometry
    n_parts = np.array([len(shapely.get_parts(g)) if g is not None else 0 for g in geoms])
    multipart = int((n_parts > 1).sum())
    extra_parts = int(np.maximum(n_parts - 1, 0).sum())
    m = plan.metrics
    bridges = m.get("n_bridges")
    if bridges is None:
        bridges = len(m.get("bridges") or [])
    return {
        "grids": int(len(grids)), "unstaffed": int((~staffed).sum()), "coverage": covered / len(customers),
        "violations": violations, "within_5pct": within / len(grids) if len(grids) else 0.0,
        "fill_min": float(fill.min()) if len(fill) else float("nan"),
        "fill_max": float(fill.max()) if len(fill) else float("nan"),
        "multipart": multipart, "extra_parts": extra_parts, "bridges": int(bridges),
    }


def churn(prev: ge.Plan, plan: ge.Plan, departed: list[str] = ()) -> tuple[float, float]:
    """(churn, departed_share): customers in both plans whose specialist changed, and whose
    previous specialist is among ``departed``, as shares of the customers in both plans."""
    a = prev.assignments[["customer_id", "specialist_id"]].fillna("")
    b = plan.assignments[["customer_id", "specialist_id"]].fillna("")
    m = a.merge(b, on="customer_id", suffixes=("_a", "_b"))
    if not len(m):
        return float("nan"), float("nan")
    moved = (m["specialist_id_a"].astype(str) != m["specialist_id_b"].astype(str)).mean()
    dep = m["specialist_id_a"].isin(list(departed)).mean()
    return float(moved), float(dep)


def _frame(customers: pd.DataFrame) -> tuple[float, float, float]:
    lat0, lon0 = float(customers["lat"].median()), float(customers["lon"].median())
    return lat0, lon0, lc.KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))


def compactness(plan: ge.Plan, customers: pd.DataFrame) -> float:
    """Workload-weighted mean distance (km) from each customer to their grid's centre
    (``centre_lat``/``centre_lon`` of the grids table), in a local equirectangular frame."""
    lat0, lon0, kx = _frame(customers)
    a = plan.assignments[["customer_id", "grid_id"]].merge(customers[["customer_id", "lat", "lon", "workload"]],
                                                          on="customer_id")
    centre = plan.grids.set_index("grid_id")[["centre_lat", "centre_lon"]].reindex(a["grid_id"]).to_numpy()
    dx = (a["lon"].to_numpy() - centre[:, 1]) * kx
    dy = (a["lat"].to_numpy() - centre[:, 0]) * lc.KM_PER_DEG_LAT
    w = a["workload"].to_numpy()
    return float((np.hypot(dx, dy) * w).sum() / w.sum())


def weighted_kmeans(customers: pd.DataFrame, k: int, *, seeds: int = 3, iters: int = 60) -> float:
    """Weighted k-means (k-means++ start, Lloyd iterations) on the customers' points; returns the
    best (over ``seeds`` starts) workload-weighted mean distance (km) to the nearest centre."""
    xy, w = _points(customers)
    return _kmeans(xy, w, k, seeds=seeds, iters=iters)[0]


def _points(customers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The customers' distinct points (km, local frame) and the workload at each."""
    lat0, lon0, kx = _frame(customers)
    pts = customers.groupby(["lat", "lon"], sort=True)["workload"].sum()
    ll = np.array(pts.index.tolist())
    return np.c_[(ll[:, 1] - lon0) * kx, (ll[:, 0] - lat0) * lc.KM_PER_DEG_LAT], pts.to_numpy()


def _kmeans(xy: np.ndarray, w: np.ndarray, k: int, *, seeds: int = 3, iters: int = 60) -> tuple[float, np.ndarray]:
    """The best of ``seeds`` weighted k-means runs: (workload-weighted mean distance, centres)."""
    best, best_c = math.inf, None
    for s in range(seeds):
        rng = np.random.default_rng(s)
        centres = np.empty((k, 2))
        centres[0] = xy[rng.choice(len(xy), p=w / w.sum())]
        d2 = ((xy - centres[0]) ** 2).sum(1)
        for j in range(1, k):  # k-means++: next centre by weight x squared distance
            p = w * d2
            centres[j] = xy[rng.choice(len(xy), p=p / p.sum())]
            d2 = np.minimum(d2, ((xy - centres[j]) ** 2).sum(1))
        lab = None
        for _ in range(iters):
            _, new = cKDTree(centres).query(xy)
            if lab is not None and np.array_equal(new, lab):
                break
            lab = new
            sw = np.bincount(lab, weights=w, minlength=k)
            cx = np.bincount(lab, weights=w * xy[:, 0], minlength=k)
            cy = np.bincount(lab, weights=w * xy[:, 1], minlength=k)
            ok = sw > 0
            centres[ok] = np.c_[cx[ok] / sw[ok], cy[ok] / sw[ok]]
            if (~ok).any():  # an empty cluster restarts at the point farthest from its centre
                d, _ = cKDTree(centres[ok]).query(xy)
                centres[~ok] = xy[np.argsort(-d * w)[: int((~ok).sum())]]
        d, _ = cKDTree(centres).query(xy)
        cost = float((d * w).sum() / w.sum())
        if cost < best:
            best, best_c = cost, centres.copy()
    return best, best_c


def compare_files(a: Path, b: Path) -> list[str]:
    """Data files that differ between two plan folders (a file present in one only differs)."""
    diff = []
    for name in DATA_FILES:
        fa, fb = a / name, b / name
        if not fa.exists() and not fb.exists():
            continue
        if not (fa.exists() and fb.exists()) or not filecmp.cmp(fa, fb, shallow=False):
            diff.append(name)
    return diff


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------


class Bench:
    """Holds the cities, rosters and base plans of one run, so scenarios share them."""

    def __init__(self, n: int, k: int, workdir: Path, seed: int) -> None:
        self.n, self.k, self.workdir, self.seed = n, k, workdir, seed
        self.cities: dict[str, lc.LumpyCity] = {}
        self.bases: dict[tuple, tuple[ge.Plan, pd.DataFrame, Path, float]] = {}
        self.config = ge.Config(seed=0)

    def city(self, name: str) -> lc.LumpyCity:
        if name not in self.cities:
            hint = MEAN_WORKLOAD * self.n / (self.k * FILL)
            self.cities[name] = lc.make_city(name, self.n, seed=self.seed * 10 + CITY_SEEDS.get(name, 9),
                                             capacity_hint=hint, above_capacity=1)
        return self.cities[name]

    def plan(self, name: str, roster: pd.DataFrame, previous: Any = None) -> tuple[ge.Plan, float]:
        c = self.city(name)
        t = time.perf_counter()
        plan = ge.plan_city(c.customers, roster, self.config, service_area=c.service_area, previous=previous)
        return plan, time.perf_counter() - t

    def base(self, name: str, fill: float = FILL) -> tuple[ge.Plan, pd.DataFrame, Path, float]:
        """The exact-roster plan at ``fill``, written to a folder (re-runs read it as previous)."""
        key = (name, round(fill, 4))
        if key not in self.bases:
            c = self.city(name)
            roster = lc.make_roster(c, kind="exact", fill=fill, seed=self.seed, k=self.k)
            plan, secs = self.plan(name, roster)
            folder = self.workdir / f"{name}-base-{fill:.3f}"
            plan.write(folder, overwrite=True)
            self.bases[key] = (plan, roster, folder, secs)
        return self.bases[key]


def _row(scenario: str, city: str, customers: int, specialists: int, ev: dict | None = None, **kw: Any) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(scenario=scenario, city=city, customers=customers, specialists=specialists)
    if ev:
        row.update({k: ev[k] for k in ("grids", "unstaffed", "coverage", "violations", "within_5pct")})
    row.update(kw)
    row["peak_mb"] = row["peak_mb"] or round(peak_mb())
    return row


def _verdict(row: dict, checks: dict[str, bool]) -> dict:
    failed = [name for name, ok in checks.items() if not ok]
    row["result"] = "PASS" if not failed else "FAIL"
    extra = row.get("detail", "")
    row["detail"] = "; ".join(x for x in ([f"failed: {', '.join(failed)}"] if failed else []) + ([extra] if extra else []))
    return row


def run_exact(b: Bench, name: str) -> list[dict]:
    plan, roster, _, secs = b.base(name)
    ev = evaluate(plan, b.city(name).customers, roster)
    row = _row("exact", name, b.n, len(roster), ev, seconds=round(secs, 1),
               detail=f"fill {ev['fill_min']:.3f}-{ev['fill_max']:.3f}")
    return [_verdict(row, {"coverage 100%": ev["coverage"] >= 1.0, "0 violations": ev["violations"] == 0,
                           "grids = specialists": ev["grids"] == len(roster), ">=99% within": ev["within_5pct"] >= 0.99})]


def run_dual(b: Bench, name: str) -> list[dict]:
    c = b.city(name)
    roster = lc.make_roster(c, kind="dual", fill=1 / 1.10, seed=b.seed)
    plan, secs = b.plan(name, roster)
    ev = evaluate(plan, c.customers, roster)
    used = plan.grids["specialist_id"].fillna("").astype(str)
    agency = set(roster.loc[roster["contract"] == "agency", "specialist_id"])
    row = _row("dual", name, b.n, len(roster), ev, seconds=round(secs, 1),
               detail=f"fill {ev['fill_min']:.3f}-{ev['fill_max']:.3f}, agency staffed {used.isin(agency).sum()}/{len(agency)}")
    return [_verdict(row, {"coverage 100%": ev["coverage"] >= 1.0, "0 violations": ev["violations"] == 0,
                           ">=95% within": ev["within_5pct"] >= 0.95})]


def churn_lower_bound(folder: Path, roster: pd.DataFrame, gone: list[str]) -> float:
    """The least churn (workload share) any re-run can reach from the plan in ``folder`` when the
    specialists ``gone`` leave: a min-cost flow (OR-Tools) on the grids' adjacency sends each
    departed grid's workload to grids with room (capacity minus load), at no cost from a departed
    grid (its customers change specialist anyway) and one unit per unit of workload passed on
    between staying grids. Fractional, so below anything a plan of whole cells reaches."""
    import h3
    from ortools.graph.python import min_cost_flow

    grids = pd.read_parquet(folder / "grids.parquet")
    cells = pd.read_parquet(folder / "cells.parquet", columns=["cell", "grid_id"])
    cap = dict(zip(roster["specialist_id"].astype(str), roster["capacity"]))
    gid = grids["grid_id"].astype(str).tolist()
    spec = grids["specialist_id"].fillna("").astype(str).tolist()
    load = grids["workload"].to_numpy()
    idx = {g: i for i, g in enumerate(gid)}
    of = dict(zip(cells["cell"], cells["grid_id"].astype(str)))
    pairs = {(idx[a], idx[of[n]]) for c, a in of.items() for n in h3.grid_ring(c, 1) if n in of and of[n] != a}
    scale, sink = 100, len(gid)
    gone_set = set(gone)
    smcf = min_cost_flow.SimpleMinCostFlow()
    total = 0
    for i, s_ in enumerate(spec):
        if s_ in gone_set:
            supply = int(round(load[i] * scale))
            smcf.set_node_supply(i, supply)
            total += supply
        elif s_:
            smcf.add_arc_with_capacity_and_unit_cost(i, sink, max(int((cap[s_] - load[i]) * scale), 0), 0)
    smcf.set_node_supply(sink, -total)
    for i, j in sorted(pairs):
        smcf.add_arc_with_capacity_and_unit_cost(i, j, total, 0 if spec[i] in gone_set else 1)
    if smcf.solve() != smcf.OPTIMAL:
        return float("nan")
    return (total + smcf.optimal_cost()) / scale / float(load.sum())


def run_leave(b: Bench, name: str, share: float) -> list[dict]:
    fill = min(FILL, 0.95 * (b.k - math.ceil(share * b.k - 1e-9)) / b.k)
    base, roster, folder, _ = b.base(name, fill)
    staffed = base.grids["specialist_id"].fillna("").astype(str)
    left, gone = lc.roster_leave(roster, share, seed=b.seed, among=staffed[staffed != ""].tolist())
    plan, secs = b.plan(name, left, previous=str(folder))
    c = b.city(name)
    ev = evaluate(plan, c.customers, left)
    ch, dep = churn(base, plan, gone)
    row = _row(f"leave{round(share * 100)}", name, b.n, len(left), ev, churn=ch, departed_share=dep,
               seconds=round(secs, 1), detail=f"{len(gone)} left, base fill {fill:.3f}, re-run fill "
                                              f"{c.workload / left['capacity'].sum():.3f}; least possible churn "
                                              f"{churn_lower_bound(folder, roster, gone):.2%} of workload")
    return [_verdict(row, {"coverage 100%": ev["coverage"] >= 1.0, "0 violations": ev["violations"] == 0,
                           "churn <= departed + 1pp": ch <= dep + 0.01})]


def run_same(b: Bench, name: str) -> list[dict]:
    base, roster, folder, _ = b.base(name)
    plan, secs = b.plan(name, roster, previous=str(folder))
    again = b.workdir / f"{name}-same"
    plan.write(again, overwrite=True)
    diff = compare_files(folder, again)
    ev = evaluate(plan, b.city(name).customers, roster)
    ch, _ = churn(base, plan)
    tables = [f for f in diff if f not in RECORD_FILES]
    record = record_differences(folder, again)
    detail = ("tables differ: " + ", ".join(tables) + "; ") if tables else "every table identical; "
    detail += ("the plan's record differs only in the re-run entries: " + ", ".join(record)) if record else \
        "metrics and manifest identical"
    unexpected = [r for r in record if not r.startswith(RERUN_RECORD)]
    row = _row("same", name, b.n, len(roster), ev, churn=ch, seconds=round(secs, 1), detail=detail)
    return [_verdict(row, {"tables byte-identical": not tables, "record: re-run entries only": not unexpected})]


#: The plan's record of how it was made; a re-run adds its own entries there.
RECORD_FILES = ("metrics.json", "manifest.json")

#: Entries a re-run adds to the record (with "nothing moved" values when nothing changed).
RERUN_RECORD = ("metrics.json:churn=0", "metrics.json:customers_moved=0", "metrics.json:departed_customers=0",
                "metrics.json:grids_added=0", "metrics.json:grids_changed=0", "metrics.json:grids_removed=0",
                "metrics.json:new_customers=0", "metrics.json:continuing_customers=", "manifest.json:previous_plan=")


def record_differences(a: Path, b: Path) -> list[str]:
    """Entries of metrics.json and manifest.json that differ between two plan folders, as
    ``file:key=value in b`` (values of the first plan are those of a plan without a previous one)."""
    out = []
    for name in RECORD_FILES:
        ja, jb = json.loads((a / name).read_text()), json.loads((b / name).read_text())
        for key in sorted(set(ja) | set(jb)):
            if ja.get(key) != jb.get(key):
                v = jb.get(key)
                shown = f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else \
                    ("" if isinstance(v, dict) else str(v))
                out.append(f"{name}:{key}={shown}" if ja.get(key) is None else f"{name}:{key} {ja.get(key)} -> {v}")
    return out


def run_join(b: Bench, name: str, share: float = 0.05) -> list[dict]:
    base, roster, folder, _ = b.base(name)
    c = b.city(name)
    joined, new = lc.roster_join(roster, c, share, seed=b.seed)
    plan, secs = b.plan(name, joined, previous=str(folder))
    ev = evaluate(plan, c.customers, joined)
    ch, _ = churn(base, plan)
    got = set(plan.grids["specialist_id"].fillna("").astype(str)) & set(new)
    row = _row(f"join{round(share * 100)}", name, b.n, len(joined), ev, churn=ch, seconds=round(secs, 1),
               detail=f"{len(got)}/{len(new)} new staffed")
    return [_verdict(row, {"every new specialist staffed": len(got) == len(new), "coverage 100%": ev["coverage"] >= 1.0,
                           "churn <= 8%": ch <= 0.08})]


def balanced_kmeans(customers: pd.DataFrame, k: int, *, tol: float = 0.05, iters: int = 8, near: int = 32) -> float:
    """Balanced weighted k-means, a peer that shares our balance rule but not contiguity: each of the
    ``k`` clusters holds within +-``tol`` of an equal share of the workload, a point (compound) may
    be split between clusters. Assignment by min-cost flow (OR-Tools) to each point's ``near``
    nearest centres, then Lloyd updates, from the best weighted k-means start. Returns the
    workload-weighted mean distance (km) to the assigned centre."""
    from ortools.graph.python import min_cost_flow

    xy, w = _points(customers)
    centres = _kmeans(xy, w, k)[1]
    scale = 10
    supply = np.round(w * scale).astype(np.int64)
    share = supply.sum() / k
    lower, upper = int(np.floor((1 - tol) * share)), int(np.ceil((1 + tol) * share))
    best = math.inf
    for _ in range(iters):
        d, j = cKDTree(centres).query(xy, k=min(near, k))
        n = len(xy)
        smcf = min_cost_flow.SimpleMinCostFlow()
        tails = np.r_[np.repeat(np.arange(n), j.shape[1]), n + np.arange(k)]
        heads = np.r_[n + j.ravel(), np.full(k, n + k)]
        caps = np.r_[np.repeat(supply, j.shape[1]), np.full(k, upper - lower)]
        costs = np.r_[np.round(d.ravel() * 1000).astype(np.int64), np.zeros(k, dtype=np.int64)]
        arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32),
                                                         caps.astype(np.int64), costs.astype(np.int64))
        sup = np.r_[supply, np.full(k, -lower), [-(int(supply.sum()) - k * lower)]]
        smcf.set_nodes_supplies(np.arange(n + k + 1, dtype=np.int32), sup.astype(np.int64))
        if smcf.solve() != smcf.OPTIMAL:
            if near >= k:
                return float("nan")
            near = min(2 * near, k)  # too few arcs to balance: widen every point's choice
            continue
        f = smcf.flows(arcs)[: n * j.shape[1]].reshape(n, -1) / scale
        best = min(best, float((f * d).sum() / f.sum()))
        cw = np.bincount(j.ravel(), weights=f.ravel(), minlength=k)
        cx = np.bincount(j.ravel(), weights=(f * xy[:, [0]]).ravel(), minlength=k)
        cy = np.bincount(j.ravel(), weights=(f * xy[:, [1]]).ravel(), minlength=k)
        ok = cw > 0
        centres[ok] = np.c_[cx[ok] / cw[ok], cy[ok] / cw[ok]]
    return best


def compact_row(label: str, name: str, plan: ge.Plan, customers: pd.DataFrame, roster: pd.DataFrame,
                n: int) -> dict:
    t = time.perf_counter()
    ev = evaluate(plan, customers, roster)
    ours = compactness(plan, customers)
    km = weighted_kmeans(customers, ev["grids"])
    ratio = ours / km
    bal = balanced_kmeans(customers, ev["grids"])
    row = _row(label, name, n, len(roster), ev, seconds=round(time.perf_counter() - t, 1),
               detail=f"compactness {ours:.3f} km (metrics {plan.metrics.get('compactness_km')}), "
                      f"weighted k-means {km:.3f} km, ratio {ratio:.3f}; balanced k-means (+-5%, no "
                      f"contiguity) {bal:.3f} km, ratio {bal / km:.3f}, ours / balanced {ours / bal:.3f}")
    return _verdict(row, {"<= 1.15 x k-means": ratio <= 1.15})


def geometry_row(label: str, name: str, plan: ge.Plan, customers: pd.DataFrame, roster: pd.DataFrame, n: int) -> dict:
    ev = evaluate(plan, customers, roster)
    row = _row(label, name, n, len(roster), ev,
               detail=f"{ev['multipart']} multi-part grid polygons ({ev['extra_parts']} extra parts), "
                      f"{ev['bridges']} bridges reported, "
                      f"contiguous_share {plan.metrics.get('contiguous_share')}")
    return _verdict(row, {"separate parts = bridges": ev["extra_parts"] == ev["bridges"]})


def run_compactness(b: Bench, name: str) -> list[dict]:
    plan, roster, _, _ = b.base(name)
    return [compact_row("compactness", name, plan, b.city(name).customers, roster, b.n)]


def run_geometry(b: Bench, name: str) -> list[dict]:
    plan, roster, _, _ = b.base(name)
    return [geometry_row("geometry", name, plan, b.city(name).customers, roster, b.n)]


def run_big(name: str, n: int, k: int, seed: int, workdir: Path, timeout: float) -> list[dict]:
    """The 1M row: the ``gridengine plan`` command under ``/usr/bin/time -v``."""
    hint = MEAN_WORKLOAD * n / (k * FILL)
    t = time.perf_counter()
    c = lc.make_city(name, n, seed=seed * 10 + CITY_SEEDS.get(name, 9), capacity_hint=hint, above_capacity=1)
    roster = lc.make_roster(c, kind="exact", fill=FILL, seed=seed, k=k)
    gen_s = time.perf_counter() - t
    files = lc.write_city(c, roster, workdir / f"{name}-big-input")
    out = workdir / f"{name}-big-plan"
    exe = ROOT / ".venv" / "bin" / "gridengine"
    cmd = ["/usr/bin/time", "-v", str(exe if exe.exists() else "gridengine"), "plan",
           "--customers", str(files["customers"]), "--specialists", str(files["specialists"]),
           "--service-area", str(files["service_area"]), "--out", str(out), "--force", "-k", str(k), "--no-progress"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss_mb = int(rss.group(1)) / 1024.0 if rss else float("nan")
    cap = float(roster["capacity"].iloc[0])
    stats = c.stats
    info = (f"generated in {gen_s:.0f} s; largest compound {stats['largest_compound_customers']} customers "
            f"({stats['largest_compound_workload'] / cap:.0%} of capacity {cap:.0f}), above capacity "
            f"{[round(x) for x in stats['above_capacity_workloads']]}")
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("\t")][-1:] or ["?"]
        row = _row("1m", name, n, len(roster), seconds=round(wall, 1), peak_mb=round(rss_mb),
                   detail=f"exit {proc.returncode}: {err[0][:300]}; {info}")
        return [_verdict(row, {"plan found": False})]
    plan = ge.Plan.read(out)
    ev = evaluate(plan, c.customers, roster)
    row = _row("1m", name, n, len(roster), ev, seconds=round(wall, 1), peak_mb=round(rss_mb),
               detail=f"fill {ev['fill_min']:.3f}-{ev['fill_max']:.3f}; {info}")
    rows = [_verdict(row, {"plan found": True, "0 violations": ev["violations"] == 0,
                           ">=98% within": ev["within_5pct"] >= 0.98, "<=60 s": wall <= 60.0,
                           "<=4 GB": rss_mb <= 4096.0})]
    for fn, label in ((compact_row, "1m compactness"), (geometry_row, "1m geometry")):
        try:
            rows.append(fn(label, name, plan, c.customers, roster, n))
        except Exception as exc:  # noqa: BLE001 - a failed measurement is a failed row
            rows.append(_verdict(_row(label, name, n, len(roster), detail=f"{type(exc).__name__}: {exc}"[:300]),
                                 {"ran": False}))
    return rows


# --------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------


def _fmt(v: Any, col: str) -> str:
    if v == "" or v is None:
        return ""
    if col in ("coverage", "within_5pct", "churn", "departed_share"):
        return f"{100 * float(v):.2f}%" if not (isinstance(v, float) and math.isnan(v)) else "nan"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def print_table(rows: list[dict]) -> None:
    """Print the rows as a fixed-width table (the detail column last, unpadded)."""
    cols = COLUMNS[:-1]
    cells = [[_fmt(r.get(c, ""), c) for c in cols] for r in rows]
    width = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, width)) + "  detail")
    for r, x in zip(rows, cells):
        print("  ".join(v.ljust(w) for v, w in zip(x, width)) + "  " + str(r.get("detail", "")))
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 1 if any row fails."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cities", default="shenzhen,wuhan", help=f"comma-separated, of {', '.join(lc.CITIES)}")
    p.add_argument("--sizes", default="100000", help="customers of the 100k rows, comma-separated")
    p.add_argument("--k", type=int, help="specialists of the 100k rows (default: customers / 1000)")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help=f"of {', '.join(ALL_SCENARIOS)}")
    p.add_argument("--big", type=int, default=1_000_000, help="customers of the 1m row")
    p.add_argument("--big-k", type=int, default=800, help="specialists of the 1m row")
    p.add_argument("--big-timeout", type=float, default=1800.0, help="seconds before the 1m command is stopped")
    p.add_argument("--quick", action="store_true", help="20,000 customers (a smoke run of the harness)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=str(RESULTS / "roster_bench.csv"))
    p.add_argument("--keep", help="keep the plans in this folder (default: a temporary folder, removed)")
    args = p.parse_args(argv)

    cities = [c.strip() for c in args.cities.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(ALL_SCENARIOS)) + sorted(set(cities) - set(lc.CITIES))
    if unknown:
        p.error(f"unknown scenario(s) or city(ies): {', '.join(unknown)}")
    sizes = [20_000] if args.quick else [int(x) for x in args.sizes.split(",") if x.strip()]
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="roster-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runners = {"exact": run_exact, "dual": run_dual, "leave3": lambda b, c: run_leave(b, c, 0.03),
               "leave10": lambda b, c: run_leave(b, c, 0.10), "same": run_same, "join5": run_join,
               "compactness": run_compactness, "geometry": run_geometry}
    rows: list[dict] = []
    t_all = time.perf_counter()
    try:
        for n in sizes if set(scenarios) - {"1m"} else []:
            k = args.k or max(2, round(n / 1000))
            bench = Bench(n, k, workdir / str(n), args.seed)
            bench.workdir.mkdir(parents=True, exist_ok=True)
            for city in cities:
                for sc in scenarios:
                    if sc == "1m":
                        continue
                    try:
                        new = runners[sc](bench, city)
                    except Exception as exc:  # noqa: BLE001 - one failing scenario is one failed row
                        msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                        new = [_verdict(_row(sc, city, n, k, detail=msg), {"ran": False})]
                        traceback.print_exc(limit=3, file=sys.stderr)
                    rows.extend(new)
                    print_table_rows(new)
                bench.bases.clear()
            del bench
        if "1m" in scenarios:
            big_n = 100_000 if args.quick else args.big
            big_k = max(2, round(big_n / 1250)) if args.quick else args.big_k
            for city in cities:
                try:
                    new = run_big(city, big_n, big_k, args.seed, workdir, args.big_timeout)
                except Exception as exc:  # noqa: BLE001
                    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                    new = [_verdict(_row("1m", city, big_n, big_k, detail=msg), {"ran": False})]
                    traceback.print_exc(limit=3, file=sys.stderr)
                rows.extend(new)
                print_table_rows(new)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"roster_bench ({time.perf_counter() - t_all:.0f} s, {os.cpu_count()} cores, gridengine from "
          f"{Path(ge.__file__).parent}):")
    print_table(rows)
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        wr.writeheader()
        for r in rows:
            wr.writerow({c: (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in COLUMNS})
    print(f"wrote {out}")
    return 0 if rows and all(r["result"] == "PASS" for r in rows) else 1


def print_table_rows(rows: list[dict]) -> None:
    """Print rows as they finish (no header)."""
    for r in rows:
        print(" | ".join(_fmt(r.get(c, ""), c) for c in COLUMNS))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
