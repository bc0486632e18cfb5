"""Churn against balance and compactness for a re-run, as partition.churn_weight varies.

    .venv/bin/python benchmarks/churn_tradeoff.py [--customers 50000] [--weights 0,1,5,20]

A base plan of a synthetic city, then 5% of its customers leave and 5% new ones arrive
(jittered copies of existing locations); the re-run is made from the base plan with each
churn weight, and once from scratch for comparison.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import gridengine as ge
from gridengine.metrics import rerun_metrics
from gridengine.synth import generate_city


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--weights", default="0,1,5,20")
    args = ap.parse_args()
    city = generate_city(args.customers, seed=args.seed)
    c, sp = city.customers, city.specialists
    base = ge.plan_city(c, sp, service_area=city.service_area)
    rng = np.random.default_rng(0)
    keep = c.sample(frac=0.95, random_state=1)
    new = c.sample(frac=0.05, random_state=2).copy()
    new["customer_id"] = [f"N{i:07d}" for i in range(len(new))]
    new["lat"] += rng.normal(0, 0.001, len(new))
    new["lon"] += rng.normal(0, 0.001, len(new))
    c2 = pd.concat([keep, new]).sort_values("customer_id")
    print(f"base plan: {base.metrics['n_grids']} grids, compactness {base.metrics['compactness_km']:.3f} km")
    print("re-run                  | churn  | moved | within_5pct | compactness_km")
    for wgt in (float(v) for v in args.weights.split(",")):
        cfg = ge.Config(partition=ge.PartitionConfig(churn_weight=wgt))
        m = ge.plan_city(c2, sp, cfg, service_area=city.service_area, previous=base).metrics
        print(f"churn_weight = {wgt:<9g} | {m['churn']:6.2%} | {m['customers_moved']:5d} | {m['within_5pct']:11.3f} | "
              f"{m['compactness_km']:.3f}")
    sc = ge.plan_city(c2, sp, service_area=city.service_area)
    r = rerun_metrics(base, sc.assignments, sc.cells)
    print(f"from scratch            | {r['churn']:6.2%} | {r['customers_moved']:5d} | "
          f"{sc.metrics['within_5pct']:11.3f} | {sc.metrics['compactness_km']:.3f}")


if __name__ == "__main__":
    main()
