"""Lapse-risk visits benchmark (issue 19): a lumpy synthetic city end to end, and a national-scale slice.

1. **City.** ``gridengine.synth.generate_city`` (Shenzhen-like: 72% of customers in high-rise
   compounds, heavy-tailed, the largest hundreds at one address; villages, singles, islands, empty
   land) with ``--customers`` customers is planned once with ``gridengine plan`` (cached in
   ``--data``), then a risk list of ``--share`` of the customers (due dates, priorities, time windows,
   longer visits, all drawn with a fixed seed) is turned into the week's visits with
   ``gridengine.plan_visits`` on ``--jobs`` Dask workers. Reported: wall time of the visits stage
   (reading the plan and the list, solving, writing the folder), scheduled share, on-time share,
   visits per specialist-day, travel per visit, unscheduled by reason.
2. **National slice** (unless ``--skip-national``). The national weekly list is 1.5M visits for
   10,000 specialists: 150 at-risk customers per specialist. The same city with 150 at-risk
   customers per staffed specialist is solved the same way; the national time is extrapolated as
   ``measured time x 10,000 / specialists in the slice`` (specialists are independent problems, so
   the work scales with their number; Dask's start-up is counted once per run in the slice, which
   makes the extrapolation pessimistic by that much). On a shared machine the wall time depends on
   what else runs, so the CPU time of the run (this process and the Dask workers) divided by the
   workers is extrapolated the same way, as a second figure. The city run is also extrapolated to the
   other reading of the national list: 5% of the 30M nation (1.5M visits) over all its 40,024
   specialists, about 37 each.

Run from the repository root::

    .venv/bin/python benchmarks/visits_bench.py                       # 100k customers, 5% at risk, 2 workers
    .venv/bin/python benchmarks/visits_bench.py --customers 20000 --skip-national
    .venv/bin/python benchmarks/visits_bench.py --customers 500000 --skip-city   # a bigger national slice

Targets: the 100k city with 5% at risk in <= 60 s; the national list in <= 30 min.
Results go to ``benchmarks/results/visits_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gridengine as ge  # noqa: E402

START = "2026-12-07"
NATIONAL_SPECIALISTS = 10_000
NATIONAL_VISITS = 1_500_000
NATION_GRIDS = 40_024  # the 30M synthetic nation's staffed grids (README, national rollout)


def city_plan(data: Path, n: int, seed: int) -> Path:
    """The synthetic city and its plan (made once, reused)."""
    from gridengine.synth import generate_city, write_city

    plan_dir = data / f"plan-{n}-{seed}"
    if (plan_dir / "manifest.json").is_file():
        return plan_dir
    t0 = time.perf_counter()
    paths = write_city(generate_city(n, seed=seed), data / f"city-{n}-{seed}")
    plan = ge.plan_city(paths["customers"], paths["specialists"], ge.Config(), service_area=paths["service_area"])
    plan.write(plan_dir, overwrite=True)
    print(f"planned the {n:,}-customer city in {time.perf_counter() - t0:.0f}s: {len(plan.grids)} grids")
    return plan_dir


def risk_list(customers: pd.Series, seed: int) -> pd.DataFrame:
    """A call centre's list: a third due this week or next, some already overdue; priorities; windows."""
    rng = np.random.default_rng(seed)
    n = len(customers)
    due = np.full(n, "", dtype=object)
    u = rng.random(n)
    days = pd.to_datetime(START) + pd.to_timedelta(rng.integers(0, 12, n), unit="D")
    due[u < 0.35] = days[u < 0.35].strftime("%Y-%m-%d")
    due[(u >= 0.35) & (u < 0.38)] = "2026-12-01"
    pri = rng.choice(np.array(["1", "2", "3", ""], dtype=object), n, p=[0.15, 0.25, 0.2, 0.4])
    w = rng.random(n)
    ws = np.where(w < 0.08, "14:00", np.where(w < 0.15, "09:00", ""))
    we = np.where(w < 0.08, "17:00", np.where(w < 0.15, "12:00", ""))
    vm = np.where(rng.random(n) < 0.2, "45", "")
    return pd.DataFrame({"customer_id": customers.to_numpy(), "due_date": due, "priority": pri,
                         "visit_minutes": vm, "window_start": ws, "window_end": we, "note": ""})


def run(plan_dir: Path, risk: pd.DataFrame, out: Path, jobs: int, iterations: int) -> dict:
    path = out.with_suffix(".csv")
    risk.to_csv(path, index=False)
    import threading

    import psutil

    me = psutil.Process()
    seen: dict[int, float] = {}  # CPU seconds of each process of the tree, sampled while it lives
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    t = p.cpu_times()
                    seen[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            stop.wait(0.25)

    th = threading.Thread(target=sample, daemon=True)
    c0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
    th.start()
    res = ge.plan_visits(plan_dir, path, ge.VisitsConfig(start=START, jobs=jobs, iterations=iterations))
    res.write(out, overwrite=True)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    cpu_s = sum(me.cpu_times()[:2]) - c0 + sum(seen.values())  # this process and the Dask processes
    m = res.metrics
    return {"rows": len(risk), "specialists": m["n_specialists"], "wall_s": round(wall, 1), "cpu_s": round(cpu_s, 1),
            "solve_s": res.run["timings_s"]["solve"], "scheduled_share": m["scheduled_share"],
            "on_time_share": m["on_time_share"], "on_time_share_with_due_date": m["on_time_share_with_due_date"],
            "visits": m["n_visits"], "visits_per_specialist_day": m["visits_per_specialist_day"],
            "visits_per_working_day": m["visits_per_working_day"], "travel_km_per_visit": m["travel_km_per_visit"],
            "travel_min_per_visit": m["travel_min_per_visit"], "unscheduled_by_reason": m["unscheduled_by_reason"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--share", type=float, default=0.05, help="share of customers at risk (default 0.05)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=1000, help="routing iterations per specialist (default 1000)")
    ap.add_argument("--per-specialist", type=int, default=150, help="national slice: at-risk per specialist")
    ap.add_argument("--data", default="out/visits_bench")
    ap.add_argument("--skip-national", action="store_true")
    ap.add_argument("--skip-city", action="store_true", help="only the national slice")
    ap.add_argument("--json", default="benchmarks/results/visits_bench.json")
    a = ap.parse_args(argv)
    data = Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    plan_dir = city_plan(data, a.customers, a.seed)
    asg = pd.read_parquet(plan_dir / "assignments.parquet")
    rng = np.random.default_rng(a.seed)
    pick = np.sort(rng.choice(len(asg), int(round(a.share * len(asg))), replace=False))
    results = {}
    if not a.skip_city:
        results["city"] = run(plan_dir, risk_list(asg["customer_id"].iloc[pick], a.seed), data / "visits-city",
                              a.jobs, a.iterations)
        results["city"].update(customers=a.customers, share=a.share, jobs=a.jobs, iterations=a.iterations)
        # the other reading of the national list: 5% of the 30M nation (1.5M) over all its specialists
        c = results["city"]
        c["nation_5pct_extrapolated_min"] = round(c["wall_s"] * NATION_GRIDS / c["specialists"] / 60.0, 1)
        c["nation_5pct_cpu_extrapolated_min"] = round(c["cpu_s"] * NATION_GRIDS / c["specialists"] / a.jobs / 60, 1)
        print(json.dumps(results["city"], indent=1))
    if not a.skip_national:
        staffed = asg[asg["specialist_id"].fillna("") != ""]
        sl = staffed.groupby("specialist_id", group_keys=False).apply(
            lambda g: g.sample(min(len(g), a.per_specialist), random_state=a.seed), include_groups=False)
        cust = staffed.loc[sl.index, "customer_id"].sort_values()
        r = run(plan_dir, risk_list(cust, a.seed + 1), data / "visits-national-slice", a.jobs, a.iterations)
        r["per_specialist"] = a.per_specialist
        r["national_extrapolated_s"] = round(r["wall_s"] * NATIONAL_SPECIALISTS / max(r["specialists"], 1), 0)
        r["national_extrapolated_min"] = round(r["national_extrapolated_s"] / 60.0, 1)
        # steadier on a shared machine: the CPU time, spread over the workers
        r["national_cpu_extrapolated_min"] = round(
            r["cpu_s"] * NATIONAL_SPECIALISTS / max(r["specialists"], 1) / a.jobs / 60.0, 1)
        results["national_slice"] = r
        print(json.dumps(r, indent=1))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
