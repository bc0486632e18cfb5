"""Locks benchmark: re-plan a lumpy real-geography city with grids locked by id while specialists leave.

Run from the repository root:

    .venv/bin/python benchmarks/locks_bench.py                       # 100k customers, Shenzhen
    .venv/bin/python benchmarks/locks_bench.py --n 20000 --k 20      # a smaller smoke run
    .venv/bin/python benchmarks/locks_bench.py --compare             # also the same re-run without locks

Steps: :func:`lumpy_cities.make_city` (real district boundaries, compounds, water, islands) and an
exact roster (:func:`lumpy_cities.make_roster`, ``k`` specialists at fill 0.91); a first plan,
written; then ``--locked`` grids of it (whole territorial grids, drawn by ``--seed`` among the
staffed grids that share no compound cell) are locked by ``grid_id`` in a locks CSV, ``--leave``
specialists who hold none of them resign (:func:`lumpy_cities.roster_leave`), and the city is
re-planned from the first plan with the locks (``gridengine.plan_city(..., previous=FOLDER,
locked=CSV)``), written too.

Printed: for each locked grid whether its cells (rows of ``cells.parquet``), customers (rows of
``assignments.parquet``) and grid row (``grids.parquet``, geometry as WKB) are byte-identical
between the two plans (SHA-256 of the rows, canonically serialised), and its specialist; then
coverage, capacity violations, contiguity, balance, churn, spare specialists and whether every
remaining specialist got a grid, the fallback warning (grids designed at one capacity) if any,
whether the rest was re-planned locally or whole, and the planning times. Exit status 1 if a locked grid changed or the re-run has a violation or
coverage below 100 %.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lumpy_cities as lc  # noqa: E402

import gridengine as ge  # noqa: E402

MEAN_WORKLOAD = 1.18  # workload per customer the lumpy cities draw (about)
FILL = 0.91


def _rows_sha(df: pd.DataFrame) -> str:
    """SHA-256 of a table's rows, sorted and serialised as CSV (geometry as WKB hex)."""
    df = df.copy()
    if "geometry" in df.columns:
        df["geometry"] = [shapely.to_wkb(g, hex=True) for g in df["geometry"]]
    df = df.sort_values(list(df.columns)).reset_index(drop=True)
    return hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def locked_state(plan: ge.Plan, gid: str) -> dict[str, str]:
    """Hashes of what a lock keeps: the grid's cells, its customers, its grid row; and its specialist."""
    return {
        "cells": _rows_sha(plan.cells.loc[plan.cells["grid_id"] == gid]),
        "customers": _rows_sha(plan.assignments.loc[plan.assignments["grid_id"] == gid]),
        "grid": _rows_sha(pd.DataFrame(plan.grids.loc[plan.grids["grid_id"] == gid])),
        "specialist": str(plan.grids.set_index("grid_id").at[gid, "specialist_id"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures; 1 if a locked grid changed or the re-run is not covered."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--city", default="shenzhen", choices=sorted(lc.CITIES))
    ap.add_argument("--n", type=int, default=100_000, help="customers")
    ap.add_argument("--k", type=int, default=100, help="specialists")
    ap.add_argument("--locked", type=int, default=10, help="grids locked by id")
    ap.add_argument("--leave", type=int, default=3, help="specialists who resign (none of the locked grids')")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", help="folder for the plans (default: a temporary folder)")
    ap.add_argument("--compare", action="store_true", help="also re-plan without locks, for churn and time")
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="locks-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    hint = MEAN_WORKLOAD * args.n / (args.k * FILL)
    city = lc.make_city(args.city, args.n, seed=args.seed * 10 + 1, capacity_hint=hint, above_capacity=1)
    roster = lc.make_roster(city, kind="exact", fill=FILL, seed=args.seed, k=args.k)
    cfg = ge.Config(seed=0)
    t = time.perf_counter()
    base = ge.plan_city(city.customers, roster, cfg, service_area=city.service_area)
    t_base = time.perf_counter() - t
    base.write(work / "base", overwrite=True)
    base = ge.Plan.read(work / "base")

    # lock whole territorial grids that share no compound cell (a dedicated grid would come along)
    g = base.grids
    owners = {x.rsplit("-S", 1)[0] for x in g["grid_id"] if "-S" in x}
    pool = sorted(x for x, s in zip(g["grid_id"], g["specialist_id"]) if s and "-S" not in x and x not in owners)
    rng = np.random.default_rng(args.seed)
    locked = sorted(rng.choice(pool, size=min(args.locked, len(pool)), replace=False).tolist())
    locks = work / "locks.csv"
    pd.DataFrame({"grid_id": locked, "note": "kept as it is"}).to_csv(locks, index=False, lineterminator="\n")
    held_by = set(g.set_index("grid_id").loc[locked, "specialist_id"])
    staffed = [s for s in g["specialist_id"] if s and s not in held_by]
    left, gone = lc.roster_leave(roster, args.leave / len(roster), seed=args.seed, among=staffed)

    t = time.perf_counter()
    again = ge.plan_city(city.customers, left, cfg, service_area=city.service_area, previous=work / "base",
                         locked=locks)
    t_again = time.perf_counter() - t
    again.write(work / "locked", overwrite=True)
    again = ge.Plan.read(work / "locked")

    print(f"{args.city}: {args.n} customers, {len(roster)} specialists (fill {FILL}); {len(locked)} grids locked by "
          f"id, {len(gone)} specialists leave ({', '.join(gone)})")
    print(f"  command: .venv/bin/python benchmarks/locks_bench.py --city {args.city} --n {args.n} --k {args.k} "
          f"--locked {args.locked} --leave {args.leave} --seed {args.seed}")
    print(f"  {'grid':<8} {'specialist':<10} {'cells':>6} {'customers':>9}  cells  customers  grid row  specialist")
    changed = 0
    for gid in locked:
        a, b = locked_state(base, gid), locked_state(again, gid)
        same = {k: a[k] == b[k] for k in a}
        changed += not all(same.values())
        row = base.grids.set_index("grid_id").loc[gid]
        print(f"  {gid:<8} {b['specialist']:<10} {int(row['n_cells']):>6} {int(row['n_customers']):>9}  "
              + "  ".join(f"{'same' if same[k] else 'CHANGED':<{w}}" for k, w in
                          (("cells", 5), ("customers", 9), ("grid", 8), ("specialist", 10))))
    m = again.metrics
    spec = again.specialists
    others = spec.loc[~spec["specialist_id"].isin(held_by)]
    fallback = [w for w in again.warnings if "designed at capacity" in w]
    whole = any("re-planned the whole city" in w for w in again.warnings)
    print(f"  locked grids byte-identical (cells, customers, grid row, specialist): {len(locked) - changed}/{len(locked)}")
    print(f"  re-run: {m['n_grids']} grids for {len(left)} specialists; coverage {m['coverage']:.2%}; "
          f"{m['capacity_violations']} capacity violations; contiguous {m['contiguous_share']:.2%}; "
          f"within ±5% {m['within_5pct']:.1%} (max deviation {m['balance_max_dev']:.2%}); churn {m['churn']:.2%} "
          f"({m['customers_moved']} customers moved)")
    print(f"  other specialists with a grid: {int((others['grid_id'] != '').sum())}/{len(others)}; spare "
          f"{m['n_spare_specialists']}; rejects {m['n_rejects']}; fallback to one design capacity: "
          f"{'yes' if fallback else 'no'}; the rest re-planned {'whole (the local re-run could not keep capacity)' if whole else 'locally'}")
    print(f"  time: first plan {t_base:.1f}s, locked re-run {t_again:.1f}s")
    if args.compare:
        t = time.perf_counter()
        free = ge.plan_city(city.customers, left, cfg, service_area=city.service_area, previous=work / "base")
        t_free = time.perf_counter() - t
        moved = sum(1 for gid in locked if locked_state(free, gid)["cells"] != locked_state(base, gid)["cells"])
        print(f"  without locks: churn {free.metrics['churn']:.2%}, within ±5% {free.metrics['within_5pct']:.1%}, "
              f"{moved}/{len(locked)} of the would-be locked grids changed cells, {t_free:.1f}s")
    print(f"  plans in {work}")
    ok = changed == 0 and m["capacity_violations"] == 0 and m["coverage"] >= 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
