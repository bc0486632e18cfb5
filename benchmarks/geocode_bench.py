"""Geocoding benchmark: 100,000 messy Shenzhen addresses against a building-level gazetteer.

Run from the repository root:

    .venv/bin/python benchmarks/geocode_bench.py                 # 100k addresses, gazetteers 0 / 5 / 20 % missing
    .venv/bin/python benchmarks/geocode_bench.py -n 20000 --missing 0

The corpus and the gazetteers come from ``benchmarks/address_corpus.py`` (seed 0): real
Shenzhen district, 街道 and road names, house numbers along the roads, compounds, single
buildings and urban villages, one gazetteer row per building; customers written in seven
styles (four used while developing the parser, three held out: ``label``, ``reverse``,
``latin``). The gazetteer with ``m`` % missing drops that share of its buildings at random.

Each run goes through ``gridengine.geocode.geocode_customers`` with ``GeocodeConfig(order=
("gazetteer",), gazetteer=...)`` and the default accept set, on one core (the process is
pinned to one CPU where the OS allows). Reported per gazetteer: the share of all addresses
placed within 50 m of the true building, placed more than 200 m off, rejected; per precision
level the count, the median and 95th-percentile error and the share more than 200 m off; the
same split into dev and held-out styles; and addresses per second of ``geocode_customers``
with the gazetteer indexed, as addresses per CPU-second of the process (``time.process_time``,
best of ``--repeats``) and by the wall clock (best and median): on a machine shared with other
work the wall clock counts the time the process waited for its core, the CPU time does not.
The index build is reported apart. The process is pinned to the idlest CPU. The accuracy of the levels
not accepted by default (road, community, district) is measured with ``accept`` opened to all.

Targets: complete gazetteer >= 97 % within 50 m and <= 0.5 % more than 200 m off; 20 % of the
buildings missing >= 85 % within 50 m and <= 0.5 % more than 200 m off; >= 20,000 addresses/s.
Writes ``benchmarks/results/geocode_bench.json``. Exit status 1 if a target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from address_corpus import DEV_STYLES, HELD_OUT_STYLES, build_city, build_corpus, gazetteer  # noqa: E402

import gridengine.geocode as gc  # noqa: E402
from gridengine.cells import haversine_km  # noqa: E402


def _idle_ticks() -> dict[int, int]:
    ticks = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                parts = line.split()
                ticks[int(parts[0][3:])] = int(parts[4])
    return ticks


def _pin_one_core() -> str:
    """Pin the process to one CPU: the idlest over half a second (the machine may be shared)."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpus = sorted(os.sched_getaffinity(0))
    try:
        a = _idle_ticks()
        time.sleep(0.5)
        b = _idle_ticks()
        cpu = max(cpus, key=lambda c: (b.get(c, 0) - a.get(c, 0), -c))
    except OSError:
        cpu = cpus[0]
    os.sched_setaffinity(0, {cpu})
    return f"cpu {cpu}"


def _errors(located: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    m = truth[["customer_id", "style", "lat", "lon"]].merge(located[["customer_id", "lat", "lon", "geo_precision"]],
                                                           on="customer_id", how="left", suffixes=("_true", ""))
    m["err_m"] = haversine_km(m["lat"].to_numpy(), m["lon"].to_numpy(), m["lat_true"].to_numpy(),
                              m["lon_true"].to_numpy()) * 1000
    return m


def _shares(m: pd.DataFrame) -> dict:
    n = len(m)
    placed = m["geo_precision"].notna()
    return {"n": n, "within_50m": float(((m["err_m"] <= 50) & placed).sum() / n),
            "over_200m": float(((m["err_m"] > 200) & placed).sum() / n), "rejected": float((~placed).sum() / n)}


def _levels(m: pd.DataFrame) -> dict:
    out = {}
    for lvl in gc.PRECISIONS[:-1]:
        e = m.loc[m["geo_precision"] == lvl, "err_m"]
        if len(e):
            out[lvl] = {"n": int(len(e)), "median_m": round(float(e.median()), 1), "p95_m": round(float(e.quantile(0.95)), 1),
                        "within_50m": round(float((e <= 50).mean()), 4), "over_200m": round(float((e > 200).mean()), 4)}
    return out


def _run(corpus: pd.DataFrame, gz_path: Path, repeats: int) -> dict:
    gc._read_gazetteer.cache_clear()
    t = time.perf_counter()
    gz = gc.read_gazetteer(gz_path)
    t_index = time.perf_counter() - t
    cust = corpus[["customer_id", "address", "workload"]].assign(lat=np.nan, lon=np.nan, row=np.arange(1, len(corpus) + 1))
    cfg = gc.GeocodeConfig(order=("gazetteer",), gazetteer=str(gz_path))
    runs, cpu = [], []
    for _ in range(repeats):  # the best of the repeats: the machine may be shared
        t, c = time.perf_counter(), time.process_time()
        located, rejects = gc.geocode_customers(cust, config=cfg)
        runs.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    t_run = min(runs)
    assert len(located) + len(rejects) == len(corpus)
    m = _errors(located, corpus)
    res = {"gazetteer_rows": len(gz), "index_s": round(t_index, 2), "geocode_s": round(t_run, 2),
           "addresses_per_s": round(len(corpus) / t_run), "runs_s": [round(x, 2) for x in runs],
           "cpu_s": [round(x, 2) for x in cpu], "addresses_per_cpu_s": round(len(corpus) / min(cpu)),
           "addresses_per_s_median": round(len(corpus) / sorted(runs)[len(runs) // 2]), "all": _shares(m),
           "dev": _shares(m[m["style"].isin(DEV_STYLES)]), "held_out": _shares(m[m["style"].isin(HELD_OUT_STYLES)]),
           "held_out_chinese": _shares(m[m["style"].isin([s for s in HELD_OUT_STYLES if s != "latin"])]),
           "by_style": {s: _shares(g) for s, g in m.groupby("style")}, "levels": _levels(m),
           "reject_reasons": [{"pattern": p, "n": n, "example": r} for p, n, _, r in gc.reject_summary(rejects, 6)]}
    # every level's accuracy, also of those not accepted by default
    wide = gc.GeocodeConfig(order=("gazetteer",), gazetteer=str(gz_path), accept=gc.PRECISIONS[:-1],
                            max_radius_m=1e9, min_score=0.0)
    loc_all, _ = gc.geocode_customers(cust, config=wide)
    res["levels_all"] = _levels(_errors(loc_all, corpus))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="addresses (default 100,000)")
    ap.add_argument("--missing", type=int, nargs="*", default=[0, 5, 20], help="percent of buildings missing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per gazetteer; the best is reported (default 3)")
    args = ap.parse_args()
    pinned = _pin_one_core()
    city = build_city(args.seed)
    corpus = build_corpus(args.n, args.seed, city)
    res = {"env": {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
                   "cpu": platform.processor() or platform.machine(), "pinned": pinned},
           "params": {"n": args.n, "seed": args.seed, "buildings": len(city),
                      "accept": list(gc.GeocodeConfig().accept), "max_radius_m": gc.GeocodeConfig().max_radius_m},
           "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for miss in args.missing:
            p = Path(tmp) / f"gazetteer_{miss}.csv"
            gazetteer(city, miss / 100, args.seed).to_csv(p, index=False)
            res["runs"][miss] = _run(corpus, p, args.repeats)
    print(f"geocode benchmark: {args.n:,} addresses ({', '.join(DEV_STYLES)} | held out: {', '.join(HELD_OUT_STYLES)}), "
          f"{len(city):,} buildings ({pinned})")
    hdr = f"  {'missing':>7} {'subset':<9} {'within 50 m':>11} {'> 200 m':>8} {'rejected':>9}"
    print(hdr)
    for miss, r in res["runs"].items():
        for sub in ("all", "dev", "held_out", "held_out_chinese"):
            s = r[sub]
            print(f"  {miss:>6}% {sub:<9} {s['within_50m']:>11.2%} {s['over_200m']:>8.2%} {s['rejected']:>9.2%}"
                  + (f"   {r['addresses_per_cpu_s']:,} addresses per CPU-second; wall clock {r['addresses_per_s']:,}/s "
                     f"best of {len(r['runs_s'])} (median {r['addresses_per_s_median']:,}); index {r['index_s']:.1f} s"
                     if sub == "all" else ""))
    for miss, r in res["runs"].items():
        print(f"  precision levels, {miss}% missing (placed with the defaults | every level accepted):")
        for lvl in gc.PRECISIONS[:-1]:
            a, b = r["levels"].get(lvl), r["levels_all"].get(lvl)
            fa = (f"{a['n']:>6} median {a['median_m']:>6.1f} m p95 {a['p95_m']:>7.1f} m >200 m {a['over_200m']:>6.2%}"
                  if a else f"{'-':>6}{'':>44}")
            fb = f"{b['n']:>6} median {b['median_m']:>7.1f} m >200 m {b['over_200m']:>6.2%}" if b else "-"
            print(f"    {lvl:<21} {fa} | {fb}")
        print("    commonest reject reasons: " + "; ".join(f"{x['n']} x {x['pattern']}" for x in r["reject_reasons"][:4]))
    full, lack = res["runs"].get(0), res["runs"].get(20)
    speed = min(r["addresses_per_cpu_s"] for r in res["runs"].values())
    targets = [("complete: within 50 m", full and full["all"]["within_50m"], ">= 97 %", full and full["all"]["within_50m"] >= 0.97),
               ("complete: > 200 m", full and full["all"]["over_200m"], "<= 0.5 %", full and full["all"]["over_200m"] <= 0.005),
               ("20% missing: within 50 m", lack and lack["all"]["within_50m"], ">= 85 %", lack and lack["all"]["within_50m"] >= 0.85),
               ("20% missing: > 200 m", lack and lack["all"]["over_200m"], "<= 0.5 %", lack and lack["all"]["over_200m"] <= 0.005),
               ("addresses/CPU-s (slowest)", speed, ">= 20,000", speed >= 20_000)]
    res["targets"] = {name: {"value": v, "target": t, "pass": bool(ok)} for name, v, t, ok in targets if v is not None}
    for name, v, t, ok in targets:
        if v is not None:
            print(f"  {name:<27} {v:>10.2%}   target {t:<9} {'PASS' if ok else 'FAIL'}" if isinstance(v, float) else
                  f"  {name:<27} {v:>10,}   target {t:<9} {'PASS' if ok else 'FAIL'}")
    out = ROOT / "benchmarks" / "results" / "geocode_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(t["pass"] for t in res["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
