"""End-to-end benchmark: synthetic cities of several sizes through ``plan_city``.

Prints one row per city: stage timings, peak memory and the DESIGN.md metrics.
Cities come from the deterministic generator (``gridengine.synth``) with the default
roster (full-time capacity 1000, grids filled to 90%).

    .venv/bin/python benchmarks/plan_bench.py                      # 20k, 50k, 200k customers
    .venv/bin/python benchmarks/plan_bench.py --sizes 20000 --seed 42

Each size runs in its own process so peak memory is per city.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def run_one(n: int, seed: int) -> dict:
    import resource

    import gridengine as ge
    from gridengine.synth import generate_city

    t = time.perf_counter()
    city = generate_city(n, seed=seed)
    gen_s = time.perf_counter() - t
    roster = city.specialists.assign(current_grid="")
    t = time.perf_counter()
    plan = ge.plan_city(city.customers, roster, ge.Config(seed=seed), service_area=city.service_area)
    total = time.perf_counter() - t
    m = plan.metrics
    return {
        "customers": n, "generate_s": round(gen_s, 2), "plan_s": round(total, 2),
        **{f"{k}_s": v for k, v in plan.run["timings_s"].items()},
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cells": m["n_cells"], "grids": m["n_grids"], "coverage": m["coverage"],
        "capacity_violations": m["capacity_violations"], "contiguous_share": m["contiguous_share"],
        "balance_max_dev": m["balance_max_dev"], "within_5pct": m["within_5pct"],
        "compactness_km": m["compactness_km"], "travel_km": m["travel_km"], "bridges": m["n_bridges"],
        "unstaffed": m["n_unstaffed_grids"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,50000,200000", help="comma-separated customer counts")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.seed)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)],
                             capture_output=True, text=True)
        if out.returncode == 0:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            rows.append({"customers": n, "error": (out.stderr.strip().splitlines() or ["?"])[-1]})
    cols = list(dict.fromkeys(c for r in rows for c in r))
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))


if __name__ == "__main__":
    main()
