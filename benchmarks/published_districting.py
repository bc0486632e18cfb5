"""Districting against published optima: Validi, Buchanan & Lykhovyd (2022), Hess model.

Runs :func:`gridengine.solvers.districting.district_units` on every row of
``/work/shared/benchmarks/districting_hess_validi/best_known.csv`` (50 county rows, 9 tract
rows) and scores every plan **independently of the solver**: the objective is recomputed from
the labels alone with the README's formula (``d_ij = round(hypot(dx, dy) / 1000)``, district cost
= min over j in D of sum_i pop_i * (d_ij / 1000)^2), contiguity with
``scipy.sparse.csgraph.connected_components`` on the edge files, and every district's population
against the row's L and U.

Run (from the repository root):

    .venv/bin/python benchmarks/published_districting.py            # all 59 rows
    .venv/bin/python benchmarks/published_districting.py --quick    # county rows + the two smallest tract rows
    .venv/bin/python benchmarks/published_districting.py --rows NH/county,RI/tract

Results go to ``benchmarks/results/published_districting.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridengine.errors import InfeasibleError  # noqa: E402
from gridengine.solvers.districting import district_units  # noqa: E402

DATA = Path(os.environ.get("GRIDENGINE_DISTRICTING_DATA", "/work/shared/benchmarks/districting_hess_validi"))
OUT = ROOT / "benchmarks" / "results" / "published_districting.csv"
QUICK_TRACTS = {"RI", "NH"}


def load_instance(state: str, level: str, data: Path = DATA):
    """Units and edges of one instance: (geoids, population, x_m, y_m, (src, dst))."""
    # coord_source may hold an unquoted comma, so read the first six fields with the csv module
    with open(data / "units" / level / f"{state}.csv", newline="") as f:
        rd = csv.reader(f)
        next(rd)
        recs = [r[:6] for r in rd if r]
    u = pd.DataFrame(recs, columns=["geoid", "population", "lon", "lat", "x_m", "y_m"])
    u["population"] = u["population"].astype(np.int64)
    u["x_m"] = u["x_m"].astype(float)
    u["y_m"] = u["y_m"].astype(float)
    e = pd.read_csv(data / "edges" / level / f"{state}.csv", dtype={"geoid_u": str, "geoid_v": str})
    idx = {g: i for i, g in enumerate(u["geoid"])}
    src = np.array([idx[g] for g in e["geoid_u"]], dtype=np.int64)
    dst = np.array([idx[g] for g in e["geoid_v"]], dtype=np.int64)
    return (u["geoid"].tolist(), u["population"].to_numpy(np.int64), u["x_m"].to_numpy(float),
            u["y_m"].to_numpy(float), (src, dst))


def score_plan(labels, pop, x, y, edges, k: int, lower: float, upper: float) -> dict:
    """Independent scoring from the labels: README objective, contiguity, bounds."""
    labels = np.asarray(labels)
    n = len(pop)
    src, dst = edges
    d = np.rint(np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) / 1000.0)  # whole km
    obj = 0.0
    contiguous = True
    within = True
    ids = sorted(set(labels.tolist()))
    for c in ids:
        members = np.flatnonzero(labels == c)
        # cost of centering at j: sum_i pop_i * (d_ij / 1000)^2
        cost_j = (pop[members, None] * (d[np.ix_(members, members)] / 1000.0) ** 2).sum(axis=0)
        obj += float(cost_j.min())
        p = int(pop[members].sum())
        if not (lower <= p <= upper):
            within = False
        inside = np.zeros(n, bool)
        inside[members] = True
        keep = inside[src] & inside[dst]
        g = sp.csr_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        if len(np.unique(comp[members])) != 1:
            contiguous = False
    right_k = len(ids) == k and len(labels) == n
    return {"objective": obj, "contiguous": contiguous, "within_bounds": within, "right_k": right_k,
            "feasible": bool(contiguous and within and right_k)}


def run_row(row: dict, seed: int = 0) -> dict:
    state, level, k = row["state"], row["level"], int(row["k"])
    lower, upper = float(row["L"]), float(row["U"])
    geoids, pop, x, y, edges = load_instance(state, level)
    expected = row["status"].split("(")[0]
    out = {"state": state, "level": level, "n": len(pop), "k": k, "expected": expected,
           "feasible": False, "objective": math.nan, "optimum": float(row["objective"]) if row["optimal"] == "yes"
           and expected == "optimal" else math.nan, "gap_pct": math.nan, "time_s": math.nan, "diagnosis": "",
           "diagnosed": False, "proven_optimal": False}
    t0 = time.perf_counter()
    try:
        res = district_units(pop, x, y, edges, k, lower, upper, seed=seed, unit_names=[f"unit {g}" for g in geoids])
    except InfeasibleError as e:
        out["time_s"] = time.perf_counter() - t0
        out["diagnosis"] = f"InfeasibleError: {e}"
        out["diagnosed"] = expected != "optimal"
        return out
    out["time_s"] = time.perf_counter() - t0
    if res.labels is None:
        out["diagnosis"] = res.diagnosis
        out["diagnosed"] = expected != "optimal"
        return out
    sc = score_plan(res.labels, pop, x, y, edges, k, lower, upper)
    out["feasible"] = sc["feasible"]
    out["objective"] = sc["objective"]
    out["proven_optimal"] = res.proven_optimal
    if not sc["feasible"]:
        out["diagnosis"] = f"WRONG PLAN: contiguous={sc['contiguous']} within={sc['within_bounds']} k={sc['right_k']}"
    if not math.isnan(out["optimum"]):
        out["gap_pct"] = 100.0 * (sc["objective"] - out["optimum"]) / out["optimum"]
    return out


def read_rows(data: Path = DATA) -> list[dict]:
    with open(data / "best_known.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_districting(quick: bool = False, rows: list[str] | None = None, verbose: bool = False) -> list[dict]:
    """Run the benchmark rows; return one dict per row (see :func:`run_row`).

    ``quick``: county rows and the two smallest tract rows (RI, NH). ``rows``: ``ST/level`` names.
    """
    out = []
    for row in read_rows():
        key = f"{row['state']}/{row['level']}"
        if rows and key not in rows and row["state"] not in rows:
            continue
        if quick and row["level"] == "tract" and row["state"] not in QUICK_TRACTS:
            continue
        r = run_row(row)
        if verbose:
            print(_fmt(r), flush=True)
        out.append(r)
    return out


HEAD = f"{'state':5} {'level':6} {'n':>4} {'k':>3} {'expected':10} {'feas':5} {'objective':>12} {'optimum':>12} " \
       f"{'gap%':>7} {'time_s':>7}  diagnosis"


def _fmt(r: dict) -> str:
    obj = "" if math.isnan(r["objective"]) else f"{r['objective']:.2f}"
    opt = "" if math.isnan(r["optimum"]) else f"{r['optimum']:.2f}"
    gap = "" if math.isnan(r["gap_pct"]) else f"{r['gap_pct']:.2f}"
    return (f"{r['state']:5} {r['level']:6} {r['n']:>4} {r['k']:>3} {r['expected']:10} {str(r['feasible']):5} "
            f"{obj:>12} {opt:>12} {gap:>7} {r['time_s']:>7.2f}  {r['diagnosis'][:150]}")


def summary(results: list[dict]) -> list[str]:
    solv = [r for r in results if r["expected"] == "optimal"]
    inf = [r for r in results if r["expected"] != "optimal"]
    gaps = [r["gap_pct"] for r in solv if r["feasible"]]
    lines = []
    if solv:
        lines.append(f"solvable rows: feasible {sum(r['feasible'] for r in solv)}/{len(solv)}; "
                     f"proved optimal {sum(r['proven_optimal'] for r in solv)}; "
                     f"mean gap {np.mean(gaps) if gaps else math.nan:.3f}%; worst gap {max(gaps) if gaps else math.nan:.3f}%; "
                     f"max time {max(r['time_s'] for r in solv):.1f} s; total {sum(r['time_s'] for r in solv):.1f} s")
    if inf:
        lines.append(f"infeasible/open rows: diagnosed {sum(r['diagnosed'] for r in inf)}/{len(inf)} "
                     f"(proved infeasible {sum(r['diagnosis'].startswith('InfeasibleError') for r in inf)}, "
                     f"not found in time {sum(r['diagnosed'] and not r['diagnosis'].startswith('InfeasibleError') for r in inf)}); "
                     f"max time {max(r['time_s'] for r in inf):.2f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="county rows and the two smallest tract rows")
    ap.add_argument("--rows", default="", help="comma-separated ST/level (or ST) names, e.g. NH/county,RI/tract")
    ap.add_argument("--out", default=str(OUT), help="CSV file for the per-row results")
    args = ap.parse_args(argv)
    rows = [s.strip() for s in args.rows.split(",") if s.strip()] or None
    print(HEAD, flush=True)
    results = run_districting(quick=args.quick, rows=rows, verbose=True)
    for line in summary(results):
        print(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(results).to_csv(out, index=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
