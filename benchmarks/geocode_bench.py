"""Geocoding benchmark: the local gazetteer on the messy addresses of the sample city.

Run from the repository root:

    .venv/bin/python benchmarks/geocode_bench.py
    .venv/bin/python benchmarks/geocode_bench.py --repeats 5 --holdout 0.05
    .venv/bin/python benchmarks/geocode_bench.py --regenerate   # rewrite the two sample files first

Inputs (``data/sample``): ``customers_addresses.csv`` (20,000 messy addresses from
``gridengine.synth.generate_messy_addresses(customers, seed=0)``: typos, missing district,
full-width digits, extra spaces, unit before building, 幢/座/号楼, ...), ``gazetteer.csv``
(``gridengine.synth.build_gazetteer(customers)``: the clean addresses with their points) and
the truth, ``customers.csv`` (same ``customer_id``).

The customers are read as the pipeline reads them (``gridengine.ingest.read_customers``),
then ``gridengine.geocode.geocode_customers`` runs with ``GeocodeConfig(order=("gazetteer",),
gazetteer=...)`` (defaults: ``min_score`` 85, accept exact / fuzzy / compound) on one core
(the process is pinned to one CPU where the OS allows). Reported:

* match rate: share of all addresses placed (accepted) within 50 m of the true point (target >= 98 %);
* wrong matches: share of all addresses placed more than 200 m from it (target <= 0.5 %);
* throughput: addresses per second of ``geocode_customers`` with the gazetteer indexed (median of
  ``--repeats``; target >= 5,000/s), and the one-off cost of reading and indexing the gazetteer.

``--holdout`` adds an informative run (no targets) with a gazetteer missing that share of the
addresses, as an address master lagging behind new customers: those are placed through their
building or compound.

Prints a table and writes ``benchmarks/results/geocode_bench.json``. Exit status 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gridengine.geocode as gc  # noqa: E402
from gridengine.cells import haversine_km  # noqa: E402
from gridengine.ingest import read_customers  # noqa: E402
from gridengine.synth import build_gazetteer, generate_messy_addresses  # noqa: E402

SAMPLE = ROOT / "data" / "sample"


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned"


def _run(customers: pd.DataFrame, truth: pd.DataFrame, gazetteer: Path, repeats: int) -> dict:
    gc._read_gazetteer.cache_clear()
    t = time.perf_counter()
    gz = gc.read_gazetteer(gazetteer)
    t_index = time.perf_counter() - t
    cfg = gc.GeocodeConfig(order=("gazetteer",), gazetteer=str(gazetteer))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        located, rejects = gc.geocode_customers(customers, config=cfg)
        times.append(time.perf_counter() - t)
    n = len(customers)
    assert len(located) + len(rejects) == n
    m = located.merge(truth, on="customer_id", suffixes=("", "_true"), validate="one_to_one")
    d = haversine_km(m["lat"].to_numpy(), m["lon"].to_numpy(), m["lat_true"].to_numpy(), m["lon_true"].to_numpy()) * 1000
    t_med = statistics.median(times)
    return {
        "addresses": n, "gazetteer_rows": len(gz), "located": len(located), "rejected": len(rejects),
        "match_rate_50m": float((d <= 50).sum() / n), "wrong_200m": float((d > 200).sum() / n),
        "wrong_200m_of_located": float((d > 200).sum() / max(1, len(located))),
        "max_error_m": float(d.max()) if len(d) else None,
        "precision": {k: int(v) for k, v in located["geo_precision"].value_counts().items()},
        "reject_reasons": {k: int(v) for k, v in rejects["reason"].str.split(";").str[0].value_counts().head(5).items()},
        "geocode_s_median": round(t_med, 4), "geocode_s_runs": [round(x, 4) for x in times],
        "throughput_per_s": round(n / t_med, 1), "index_s": round(t_index, 4),
        "throughput_incl_index_per_s": round(n / (t_med + t_index), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--holdout", type=float, default=0.05, help="informative run with this share missing (0: skip)")
    ap.add_argument("--regenerate", action="store_true", help="rewrite data/sample/customers_addresses.csv and gazetteer.csv")
    args = ap.parse_args()
    pinned = _pin_one_core()
    truth = pd.read_csv(SAMPLE / "customers.csv", dtype={"customer_id": str})
    if args.regenerate:
        opts = {"index": False, "encoding": "utf-8", "lineterminator": "\n"}
        generate_messy_addresses(truth, seed=0).to_csv(SAMPLE / "customers_addresses.csv", **opts)
        build_gazetteer(truth).to_csv(SAMPLE / "gazetteer.csv", **opts)
    customers, rejects0 = read_customers(SAMPLE / "customers_addresses.csv")
    assert len(rejects0) == 0
    truth = truth[["customer_id", "lat", "lon"]]
    res = {"env": {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
                   "rapidfuzz": __import__("rapidfuzz").__version__, "cpu": platform.processor() or platform.machine(),
                   "pinned": pinned},
           "params": {"repeats": args.repeats, "min_score": gc.GeocodeConfig().min_score,
                      "accept": list(gc.GeocodeConfig().accept)}}
    res["main"] = _run(customers, truth, SAMPLE / "gazetteer.csv", args.repeats)
    if args.holdout > 0:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "gazetteer_holdout.csv"
            build_gazetteer(pd.read_csv(SAMPLE / "customers.csv", dtype={"customer_id": str}),
                            holdout=args.holdout, seed=1).to_csv(p, index=False)
            res["holdout"] = {"share": args.holdout, **_run(customers, truth, p, args.repeats)}
    r = res["main"]
    targets = [("match rate within 50 m", r["match_rate_50m"], ">= 98 %", r["match_rate_50m"] >= 0.98, "{:.3%}"),
               ("wrong matches > 200 m", r["wrong_200m"], "<= 0.5 %", r["wrong_200m"] <= 0.005, "{:.3%}"),
               ("throughput (addresses/s)", r["throughput_per_s"], ">= 5,000", r["throughput_per_s"] >= 5000, "{:,.0f}")]
    res["targets"] = {name: {"value": v, "target": t, "pass": ok} for name, v, t, ok, _ in targets}
    print(f"geocode benchmark: {r['addresses']:,} messy addresses, gazetteer of {r['gazetteer_rows']:,} rows ({pinned})")
    for name, v, t, ok, fmt in targets:
        print(f"  {name:<26} {fmt.format(v):>10}   target {t:<9} {'PASS' if ok else 'FAIL'}")
    print(f"  precision {r['precision']}, rejected {r['rejected']}, max error {r['max_error_m']:.1f} m")
    print(f"  index build {r['index_s']:.2f} s; with it {r['throughput_incl_index_per_s']:,.0f} addresses/s")
    if "holdout" in res:
        h = res["holdout"]
        print(f"  holdout {h['share']:.0%} of addresses missing from the gazetteer: within 50 m {h['match_rate_50m']:.3%}, "
              f"> 200 m {h['wrong_200m']:.3%}, precision {h['precision']}")
    out = ROOT / "benchmarks" / "results" / "geocode_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(ok for *_, ok, _ in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
