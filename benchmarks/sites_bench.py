"""Service points benchmark (issue 20): real-geography cities, a national slice, and solver quality.

Parts (``--parts``, comma separated; default all):

``city``    Lumpy real-geography cities (``benchmarks/lumpy_cities.py``: Shenzhen and Wuhan, 100,000
            customers, seed 0, exact roster at fill 0.91) planned with ``gridengine.plan_city``
            (default config), then ``gridengine.site_service_points`` with the default candidates
            (any cell), 8 specialists per site: fewest sites, ``n_sites`` = 1.5x that, and a site
            cost. Sites opened, customer-to-site distances (mean, 95th percentile), fill, grids
            served across water, time of the sites stage.
``nation``  A slice of the national synthetic set (``gridengine.synth.generate_nation`` with
            ``--nation-total`` customers over ``--nation-cities`` cities), planned with
            ``gridengine rollout`` on a local Dask cluster (``--workers``), then the sites stage
            per city on the same kind of cluster (one task per city, ``client.map``).
``cpmp``    The capacitated p-median sets of ``/work/shared/benchmarks`` (ORLib pmedcap1, SJC, p3038)
            through ``gridengine.solvers.facility.capacitated_facility_location`` (the sites' solver entry:
            a CPMP-shaped instance goes to ``capacitated_p_median``), objectives recomputed by
            ``published_cpmp.evaluate``. Time caps as in ``published_cpmp.py`` (27 s; 110 s for p3038).
``same``    ORLib pmedcap01-06, SJC1, SJC2 (finished before the time cap, so independent of load):
            ``capacitated_p_median`` called directly and through the sites' entry give the same assignment.
``cflp``    Single-source capacitated facility location with fixed costs: the OR-Library ``cap``
            instances (Beasley 1988) in the single-source form of Guastaroba & Speranza (2014),
            24 instances, optimal values in each file (``benchmarks/data/sscflp_orlib``).

Run from the repository root::

    .venv/bin/python benchmarks/sites_bench.py --parts cflp
    .venv/bin/python benchmarks/sites_bench.py --parts cpmp --cpmp-sets orlib,sjc,p3038 --jobs 1
    .venv/bin/python benchmarks/sites_bench.py --parts city
    .venv/bin/python benchmarks/sites_bench.py --parts nation --nation-total 1000000 --workers 2

Results go to ``benchmarks/results/sites_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import gridengine as ge  # noqa: E402
from gridengine.sites import SitesConfig, site_service_points  # noqa: E402
from gridengine.solvers.facility import capacitated_facility_location  # noqa: E402

CAP_DIR = HERE / "data" / "sscflp_orlib"
RESULTS = HERE / "results" / "sites_bench.json"


# ------------------------------------------------------------------ published sets

def load_cap(path: Path) -> dict:
    """One Guastaroba & Speranza file: ``|J| |I|``, ``s_j f_j``, demands, ``c_ji``, optimum."""
    t = path.read_text().split()
    m, n = int(t[0]), int(t[1])
    k = 2
    s = np.array(t[k:k + 2 * m:2], float)
    f = np.array(t[k + 1:k + 2 * m:2], float)
    k += 2 * m
    d = np.array(t[k:k + n], float)
    k += n
    c = np.array(t[k:k + m * n], float).reshape(m, n).T
    return {"cap": s, "fixed": f, "demand": d, "cost": c, "opt": float(t[k + m * n])}


def run_cflp(time_limit: float) -> list[dict]:
    rows = []
    names = sorted((p.name for p in CAP_DIR.iterdir() if p.name.startswith("cap")), key=lambda s: int(s[3:]))
    print(f"{'instance':9s} {'m':>3s} {'n':>3s} {'objective':>12s} {'optimum':>12s} {'gap%':>7s} {'feas':>5s} "
          f"{'proved':>6s} {'time_s':>6s}", flush=True)
    for name in names:
        inst = load_cap(CAP_DIR / name)
        t0 = time.perf_counter()
        r = capacitated_facility_location(inst["cost"], inst["demand"], inst["cap"], fixed_costs=inst["fixed"],
                                          time_limit=time_limit)
        el = time.perf_counter() - t0
        # independent recomputation and check
        a = r.assignment
        opened = np.unique(a)
        obj = float(inst["cost"][np.arange(a.size), a].sum() + inst["fixed"][opened].sum())
        load = np.bincount(a, weights=inst["demand"], minlength=inst["cap"].size)
        feas = bool(np.all(load <= inst["cap"] + 1e-6))
        gap = 100 * (obj - inst["opt"]) / inst["opt"]
        row = {"instance": name, "m": int(inst["cap"].size), "n": int(inst["demand"].size), "objective": round(obj, 3),
               "optimum": inst["opt"], "gap_pct": round(gap, 4), "feasible": feas, "proved": r.proven_optimal,
               "time_s": round(el, 2)}
        rows.append(row)
        print(f"{name:9s} {row['m']:3d} {row['n']:3d} {obj:12.2f} {inst['opt']:12.2f} {gap:7.3f} {str(feas):>5s} "
              f"{str(r.proven_optimal):>6s} {el:6.1f}", flush=True)
    gaps = [r["gap_pct"] for r in rows]
    print(f"cflp: {len(rows)} instances, mean gap {np.mean(gaps):.4f}%, worst {max(gaps):.4f}%, "
          f"all feasible {all(r['feasible'] for r in rows)}, max time {max(r['time_s'] for r in rows):.1f} s")
    return rows


def run_cpmp(sets: list[str], n_jobs: int, time_limit: float | None) -> list[dict]:
    import published_cpmp as pc

    rows = []
    print(f"{'set':6s} {'instance':12s} {'n':>5s} {'p':>5s} {'objective':>12s} {'best':>12s} {'gap%':>7s} "
          f"{'feas':>5s} {'time_s':>6s}", flush=True)
    for s in sets:
        tl = pc.SETS[s][2] if time_limit is None else time_limit
        for bk in pc.read_best_known(pc.DATA / pc.SETS[s][0]):
            inst = pc.load_instance(s, bk["instance"])
            t0 = time.perf_counter()
            r = capacitated_facility_location(inst["dist"], inst["demands"], inst["capacity"], p=inst["p"],
                                              points_are_candidates=True, time_limit=tl, seed=0, n_jobs=n_jobs)
            el = time.perf_counter() - t0
            obj, feas, why = pc.evaluate(inst, r.assignment)
            best = float(bk["best_known"])
            gap = 100 * (obj - best) / best
            rows.append({"set": s, "instance": bk["instance"], "n": int(inst["demands"].size), "p": int(inst["p"]),
                         "objective": round(obj, 4), "best_known": best, "gap_pct": round(gap, 4), "feasible": feas,
                         "method": r.method, "time_s": round(el, 2)})
            print(f"{s:6s} {bk['instance']:12s} {inst['demands'].size:5d} {inst['p']:5d} {obj:12.2f} {best:12.2f} "
                  f"{gap:7.3f} {str(feas):>5s} {el:6.1f}" + (f" {why}" if why else ""), flush=True)
    for s in sets:
        g = [r["gap_pct"] for r in rows if r["set"] == s]
        print(f"cpmp {s}: {len(g)} instances, mean gap {np.mean(g):.3f}%, worst {max(g):.3f}%, all feasible "
              f"{all(r['feasible'] for r in rows if r['set'] == s)}")
    return rows


# ------------------------------------------------------------------ cities

def run_same(names: list[tuple[str, str]]) -> list[dict]:
    """The sites' solver entry and ``capacitated_p_median`` called directly give the same assignment
    (instances the search finishes before its time cap, so the comparison does not depend on load)."""
    import published_cpmp as pc

    from gridengine.solvers.pmedian import capacitated_p_median

    rows = []
    for s, name in names:
        inst = pc.load_instance(s, name)
        t0 = time.perf_counter()
        a = capacitated_p_median(None, inst["demands"], inst["p"], inst["capacity"], distances=inst["dist"],
                                 time_limit=pc.SETS[s][2], seed=0).assignment
        t1 = time.perf_counter()
        b = capacitated_facility_location(inst["dist"], inst["demands"], inst["capacity"], p=inst["p"],
                                          points_are_candidates=True, time_limit=pc.SETS[s][2], seed=0).assignment
        t2 = time.perf_counter()
        row = {"set": s, "instance": name, "identical": bool(np.array_equal(a, b)),
               "objective": pc.evaluate(inst, b)[0], "direct_s": round(t1 - t0, 2), "entry_s": round(t2 - t1, 2)}
        rows.append(row)
        print(f"same path {s:6s} {name:12s} identical={row['identical']} objective={row['objective']:.2f} "
              f"direct {row['direct_s']:.1f}s entry {row['entry_s']:.1f}s", flush=True)
    return rows


def _premises(plan: ge.Plan, n: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    occ = plan.cells[plan.cells["n_customers"] > 0].sort_values("cell").reset_index(drop=True)
    pick = np.sort(rng.choice(len(occ), min(n, len(occ)), replace=False))
    return pd.DataFrame({"site_id": [f"P{k:04d}" for k in range(len(pick))], "lat": occ["lat"].to_numpy()[pick],
                         "lon": occ["lon"].to_numpy()[pick], "capacity": rng.integers(6, 11, len(pick)),
                         "cost": rng.integers(1000, 4001, len(pick))})


def _sites_row(label: str, plan: ge.Plan, cfg: SitesConfig, candidates=None) -> dict:
    t0 = time.perf_counter()
    r = site_service_points(plan, candidates, config=cfg)
    el = time.perf_counter() - t0
    m = r.metrics
    return {"case": label, "grids": m["n_grids"], "sites": m["n_sites"], "mode": m["mode"],
            "mean_km": m["mean_customer_site_km"], "p95_km": m["p95_customer_site_km"],
            "weighted_mean_km": m["weighted_mean_customer_site_km"], "fill_mean": m["fill_mean"],
            "fill_min": m["fill_min"], "cross_area_grids": m["cross_area_grids"],
            "capacity_violations": m["capacity_violations"], "time_s": round(el, 2)}


def run_cities(names: list[str], n: int, site_cost: float) -> list[dict]:
    from lumpy_cities import make_city, make_roster

    rows = []
    print(f"{'case':34s} {'grids':>5s} {'sites':>5s} {'mean_km':>7s} {'p95_km':>7s} {'fill':>6s} {'cross':>5s} "
          f"{'time_s':>6s}", flush=True)
    for name in names:
        city = make_city(name, n, seed=0)
        roster = make_roster(city, seed=0)
        t0 = time.perf_counter()
        plan = ge.plan_city(city.customers, roster, ge.Config(seed=0), service_area=city.service_area)
        t_plan = time.perf_counter() - t0
        few = _sites_row(f"{name} {n // 1000}k fewest (8/site)", plan, SitesConfig(max_specialists_per_site=8))
        cases = [few,
                 _sites_row(f"{name} {n // 1000}k n_sites={int(few['sites'] * 1.5)}", plan,
                            SitesConfig(max_specialists_per_site=8, n_sites=int(few["sites"] * 1.5))),
                 _sites_row(f"{name} {n // 1000}k site_cost={site_cost:g}", plan,
                            SitesConfig(max_specialists_per_site=8, site_cost=site_cost)),
                 _sites_row(f"{name} {n // 1000}k 300 premises, fewest", plan, SitesConfig(),
                            _premises(plan, 300).drop(columns=["cost"])),
                 _sites_row(f"{name} {n // 1000}k 300 premises, own costs", plan, SitesConfig(),
                            _premises(plan, 300))]
        again = _sites_row("again", plan, SitesConfig(max_specialists_per_site=8))
        few["repeat_identical"] = bool(again["sites"] == few["sites"] and again["mean_km"] == few["mean_km"])
        for c in cases:
            c["plan_s"] = round(t_plan, 1)
            rows.append(c)
            print(f"{c['case']:34s} {c['grids']:5d} {c['sites']:5d} {c['mean_km']:7.3f} {c['p95_km']:7.3f} "
                  f"{c['fill_mean']:6.1%} {c['cross_area_grids']:5d} {c['time_s']:6.1f}", flush=True)
    return rows


def _city_sites(plan_dir: str) -> dict:
    t0 = time.perf_counter()
    r = site_service_points(plan_dir, config=SitesConfig(max_specialists_per_site=8))
    m = r.metrics
    return {"city": Path(plan_dir).name, "grids": m["n_grids"], "sites": m["n_sites"],
            "mean_km": m["mean_customer_site_km"], "p95_km": m["p95_customer_site_km"], "fill_mean": m["fill_mean"],
            "cross_area_grids": m["cross_area_grids"], "time_s": round(time.perf_counter() - t0, 2)}


def run_nation(total: int, n_cities: int, workers: int, data: Path | None, reuse: bool = False) -> dict:
    from dask.distributed import Client, LocalCluster

    from gridengine.synth import generate_nation

    data = data or Path(tempfile.mkdtemp(prefix="sites-nation-"))
    out = data / "out"
    t_gen = t_roll = None
    if not (reuse and (out / "summary.csv").is_file()):
        t0 = time.perf_counter()
        generate_nation(data, total=total, n_cities=n_cities, seed=0)
        t_gen = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gridengine", "rollout", str(data / "rollout.toml"), "--out", str(out),
                        "--workers", str(workers), "-q", "--no-progress"], check=False)
        t_roll = round(time.perf_counter() - t0, 1)
    plans = sorted(str(p.parent) for p in (out / "cities").glob("*/manifest.json"))
    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        rows = client.gather(client.map(_city_sites, plans, pure=False))
    t_sites = time.perf_counter() - t0
    rows.sort(key=lambda r: -r["grids"])
    print(f"{'city':14s} {'grids':>6s} {'sites':>5s} {'mean_km':>7s} {'p95_km':>7s} {'fill':>6s} {'cross':>5s} "
          f"{'time_s':>6s}")
    for r in rows:
        print(f"{r['city']:14s} {r['grids']:6d} {r['sites']:5d} {r['mean_km']:7.3f} {r['p95_km']:7.3f} "
              f"{r['fill_mean']:6.1%} {r['cross_area_grids']:5d} {r['time_s']:6.1f}")
    summary = {"customers": total, "cities": len(plans), "workers": workers, "generate_s": t_gen,
               "rollout_s": t_roll, "sites_s": round(t_sites, 1),
               "grids": int(sum(r["grids"] for r in rows)), "sites": int(sum(r["sites"] for r in rows)),
               "max_city_sites_s": max(r["time_s"] for r in rows) if rows else None}
    print("nation:", json.dumps(summary))
    return {"summary": summary, "cities": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="cflp,same,cpmp,city,nation")
    ap.add_argument("--cpmp-sets", default="orlib,sjc,p3038")
    ap.add_argument("--jobs", type=int, default=1, help="processes per CPMP instance (region MIPs)")
    ap.add_argument("--cpmp-time-limit", type=float, default=None)
    ap.add_argument("--cflp-time-limit", type=float, default=60.0)
    ap.add_argument("--cities", default="shenzhen,wuhan")
    ap.add_argument("--city-customers", type=int, default=100_000)
    ap.add_argument("--site-cost", type=float, default=2000.0, help="workload-km per site in the site-cost case")
    ap.add_argument("--nation-total", type=int, default=1_000_000)
    ap.add_argument("--nation-cities", type=int, default=51)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nation-data", type=Path, default=None)
    ap.add_argument("--nation-reuse", action="store_true",
                    help="reuse the plans of an earlier rollout in --nation-data (only the sites stage runs)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    out: dict = json.loads(args.json.read_text()) if args.json.is_file() else {}
    if "cflp" in parts:
        out["cflp"] = run_cflp(args.cflp_time_limit)
    if "same" in parts:
        out["same"] = run_same([("orlib", f"pmedcap0{k}") for k in range(1, 7)] + [("sjc", "SJC1"), ("sjc", "SJC2")])
    if "cpmp" in parts:
        out["cpmp"] = run_cpmp(args.cpmp_sets.split(","), args.jobs, args.cpmp_time_limit)
    if "city" in parts:
        out["city"] = run_cities(args.cities.split(","), args.city_customers, args.site_cost)
    if "nation" in parts:
        out["nation"] = run_nation(args.nation_total, args.nation_cities, args.workers, args.nation_data,
                                   args.nation_reuse)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
