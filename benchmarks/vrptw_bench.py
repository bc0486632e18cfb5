"""VRPTW routing quality on the Solomon (1987) instances, with the routing code of ``gridengine visits``.

Solves every ``*.vrp`` in ``--instances`` that ``best_known.csv`` there lists, with
``gridengine.visits._routing.solve_routing`` (PyVRP, the kept solver), writes each solution as
``SOLUTIONS_DIR/<instance>.sol`` (VRPLIB format), recomputes feasibility and cost with the folder's
``score_solution.py``, and prints per instance and per class (C1, C2, R1, R2, RC1, RC2) the cost,
the gap to the best known and feasibility.

Convention (the folder's README): DIMACS, distances and travel times truncated to one decimal;
the objective is the total distance only (the fleet size is not minimised first, at most
VEHICLES routes). All arithmetic here is in integer tenths, as in the scorer.

``--solver ortools`` runs the same instances with OR-Tools routing (guided local search, the same
time limit) for the comparison that chose PyVRP.

Run from the repository root::

    .venv/bin/python benchmarks/vrptw_bench.py --instances ../shared/benchmarks/vrptw_solomon \\
        --out out/vrptw --time-limit 20 --jobs 1
    .venv/bin/python benchmarks/vrptw_bench.py --instances DIR --only C101,R101 --solver ortools
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridengine.visits._routing import RoutingProblem, solve_routing  # noqa: E402

CLASSES = ("C1", "C2", "R1", "R2", "RC1", "RC2")


def read_vrp(path: Path) -> dict:
    """Read a VRPLIB CVRPTW file (one depot at node 1), values as integers."""
    head: dict[str, str] = {}
    sec: dict[str, list[list[int]]] = {}
    cur = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line == "EOF":
            continue
        if line.endswith("_SECTION"):
            cur = line
            sec[cur] = []
        elif ":" in line and cur is None:
            k, v = line.split(":", 1)
            head[k.strip()] = v.strip()
        elif cur is not None:
            sec[cur].append([int(float(t)) for t in line.split()])
    xy = np.array([r[1:3] for r in sec["NODE_COORD_SECTION"]], dtype=np.int64)
    return {
        "xy": xy, "demand": np.array([r[1] for r in sec["DEMAND_SECTION"]], dtype=np.int64),
        "tw": np.array([r[1:3] for r in sec["TIME_WINDOW_SECTION"]], dtype=np.int64),
        "vehicles": int(head["VEHICLES"]), "capacity": int(head["CAPACITY"]),
        "service": int(head["SERVICE_TIME"]),
    }


def problem_of(inst: dict) -> RoutingProblem:
    """The instance as a RoutingProblem in integer tenths (DIMACS truncation)."""
    xy = inst["xy"]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    dist = np.array([[math.isqrt(100 * int(v)) for v in row] for row in d2], dtype=np.int64)  # floor(10*sqrt)
    n = len(xy) - 1
    tw = inst["tw"] * 10
    return RoutingProblem(
        distance=dist, duration=dist, client_loc=np.arange(1, n + 1), service=np.full(n, inst["service"] * 10),
        tw_early=tw[1:, 0], tw_late=tw[1:, 1], demand=inst["demand"][1:] * 10,
        vehicles=[(inst["vehicles"], inst["capacity"] * 10, int(tw[0, 0]), int(tw[0, 1]))], coords=xy.astype(float))


def solve_ortools(p: RoutingProblem, time_limit: float, seed: int) -> list[list[int]]:
    """The same problem with OR-Tools routing (guided local search), for the comparison."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = p.n_clients + 1
    count, cap, early, late = p.vehicles[0]
    mgr = pywrapcp.RoutingIndexManager(n, count, 0)
    rm = pywrapcp.RoutingModel(mgr)
    dist = p.distance.tolist()
    serv = [0] + p.service.tolist()
    dem = [0] + p.demand.tolist()
    cb = rm.RegisterTransitCallback(lambda i, j: dist[mgr.IndexToNode(i)][mgr.IndexToNode(j)])
    rm.SetArcCostEvaluatorOfAllVehicles(cb)
    tcb = rm.RegisterTransitCallback(
        lambda i, j: serv[mgr.IndexToNode(i)] + dist[mgr.IndexToNode(i)][mgr.IndexToNode(j)])
    rm.AddDimension(tcb, late, late, False, "time")
    td = rm.GetDimensionOrDie("time")
    for c in range(1, n):
        td.CumulVar(mgr.NodeToIndex(c)).SetRange(int(p.tw_early[c - 1]), int(p.tw_late[c - 1]))
    for v in range(count):
        td.CumulVar(rm.Start(v)).SetRange(early, late)
        td.CumulVar(rm.End(v)).SetRange(early, late)
    dcb = rm.RegisterUnaryTransitCallback(lambda i: dem[mgr.IndexToNode(i)])
    rm.AddDimensionWithVehicleCapacity(dcb, 0, [cap] * count, True, "load")
    prm = pywrapcp.DefaultRoutingSearchParameters()
    prm.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    prm.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    prm.time_limit.FromMilliseconds(int(time_limit * 1000))
    sol = rm.SolveWithParameters(prm)
    routes = []
    if sol is None:
        return routes
    for v in range(count):
        i = sol.Value(rm.NextVar(rm.Start(v)))
        r = []
        while not rm.IsEnd(i):
            r.append(mgr.IndexToNode(i))
            i = sol.Value(rm.NextVar(i))
        if r:
            routes.append(r)
    return routes


def run_one(args: tuple) -> dict:
    vrp, out_dir, time_limit, seed, solver = args
    t0 = time.perf_counter()
    p = problem_of(read_vrp(vrp))
    if solver == "ortools":
        routes = solve_ortools(p, time_limit, seed)
    else:
        sol, _ = solve_routing(p, time_limit=time_limit, seed=seed)
        routes = [[c + 1 for c in r.clients] for r in sol]
    elapsed = time.perf_counter() - t0
    cost = sum(p.distance[a, b] for r in routes for a, b in zip([0] + r, r + [0]))
    text = "".join(f"Route #{k}: {' '.join(map(str, r))}\n" for k, r in enumerate(routes, 1))
    text += f"Cost {cost // 10}.{cost % 10}\n"
    sol_path = out_dir / f"{vrp.stem}.sol"
    sol_path.write_text(text)
    return {"instance": vrp.stem, "seconds": elapsed, "routes": len(routes), "sol": str(sol_path)}


def score(scorer: Path, vrp: Path, sol: str) -> dict:
    r = subprocess.run([sys.executable, str(scorer), "--json", str(vrp), sol], capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"feasible": False, "errors": [r.stdout + r.stderr]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", required=True, help="folder of *.vrp with best_known.csv (and score_solution.py)")
    ap.add_argument("--out", default="out/vrptw", help="folder for the .sol files (default out/vrptw)")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance (default 60)")
    ap.add_argument("--jobs", type=int, default=1, help="instances solved side by side (default 1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="comma-separated instance names")
    ap.add_argument("--solver", choices=["pyvrp", "ortools"], default="pyvrp")
    ap.add_argument("--csv", help="also write the per-instance table to this CSV")
    a = ap.parse_args(argv)
    folder = Path(a.instances)
    bk = {r["instance"]: r for r in csv.DictReader(open(folder / "best_known.csv"))}
    names = sorted(n for n in bk if (folder / f"{n}.vrp").is_file())
    if a.only:
        keep = set(a.only.split(","))
        names = [n for n in names if n in keep]
    scorer = folder / "score_solution.py"
    if not scorer.is_file():
        scorer = ROOT.parent / "shared" / "benchmarks" / "vrptw_solomon" / "score_solution.py"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{n}.vrp", out, a.time_limit, a.seed, a.solver) for n in names]
    with Pool(a.jobs) as pool:
        results = pool.map(run_one, jobs, chunksize=1) if a.jobs > 1 else list(map(run_one, jobs))
    rows = []
    print(f"{'instance':<8} {'routes':>6} {'cost':>9} {'best':>9} {'gap%':>7} {'feasible':>8} {'sec':>6}")
    for res in results:
        n = res["instance"]
        s = score(scorer, folder / f"{n}.vrp", res["sol"])
        best = float(bk[n]["best_known_cost"])
        cost = float(s.get("cost", "nan")) if s.get("cost") is not None else float("nan")
        gap = (cost - best) / best * 100
        feas = bool(s.get("feasible"))
        cls = n.rstrip("0123456789")
        cls += n[len(cls)]
        rows.append({"instance": n, "class": cls, "routes": res["routes"], "cost": cost, "best_known": best,
                     "gap_pct": round(gap, 3), "feasible": feas, "seconds": round(res["seconds"], 1)})
        print(f"{n:<8} {res['routes']:>6} {cost:>9.1f} {best:>9.1f} {gap:>7.2f} {str(feas):>8} {res['seconds']:>6.1f}")
    print(f"\n{'class':<6} {'n':>3} {'mean gap%':>9} {'max gap%':>8} {'feasible':>8} {'max sec':>7}")
    for cls in CLASSES + ("all",):
        sub = [r for r in rows if cls == "all" or r["class"] == cls]
        if sub:
            print(f"{cls:<6} {len(sub):>3} {np.mean([r['gap_pct'] for r in sub]):>9.2f} "
                  f"{max(r['gap_pct'] for r in sub):>8.2f} {sum(r['feasible'] for r in sub):>4}/{len(sub):<3} "
                  f"{max(r['seconds'] for r in sub):>7.1f}")
    if a.csv:
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0 if all(r["feasible"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
