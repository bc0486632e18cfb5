"""Capacitated p-median benchmark: ``gridengine.solvers.pmedian.capacitated_p_median`` on published sets.

Sets (data in ``/work/shared/benchmarks``, override with ``$GRIDENGINE_BENCHMARKS``):

* ``orlib``  OR-Library pmedcap1 (Osman & Christofides), 20 instances, n = 50/100;
  distance = Euclidean truncated to an integer.
* ``sjc``    Lorena & Senne SJC, 6 instances, n = 100..402; unrounded Euclidean.
* ``p3038``  Lorena & Senne p3038, 5 instances, n = 3038, p = 600..1000; unrounded Euclidean.
* ``tsplib`` Stefanello et al. 2015 TSPLIB set, 30 instances, n = 318..4461; unrounded Euclidean.
* ``spain``  Díaz & Fernández spain737, 4 instances; integer distance matrix ``spain.grd``.

For every instance the objective is recomputed here, independently of the solver, from the
returned assignment with the set's convention, and feasibility is checked here (exactly p
medians, each serving itself, every point assigned, capacity respected).

Run from the repository root::

    .venv/bin/python benchmarks/published_cpmp.py                       # all sets
    .venv/bin/python benchmarks/published_cpmp.py --sets orlib,sjc
    .venv/bin/python benchmarks/published_cpmp.py --quick               # a few instances per set
    .venv/bin/python benchmarks/published_cpmp.py --sets tsplib --time-limit 60

Time limits passed to the solver (a cap; the search may stop earlier): 27 s for orlib, sjc and
spain, 110 s for p3038 and tsplib (the targets are 30 s and 120 s per instance, wall clock
including distance matrix and set-up), unless ``--time-limit`` is given.
``--shard i/k`` runs every k-th instance (for running k processes side by side);
``--jobs 2`` gives each instance two processes for its region MIPs (run one shard at a time);
``--merge a.csv,b.csv`` prints the table and summary of earlier result files.
Results go to ``benchmarks/results/published_cpmp.csv``.
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gridengine.solvers.pmedian import capacitated_p_median  # noqa: E402

DATA = Path(os.environ.get("GRIDENGINE_BENCHMARKS", "/work/shared/benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "published_cpmp.csv"

SETS = {
    "orlib": ("cpmp_orlib_pmedcap1", "euclidean_floor", 27.0),
    "sjc": ("cpmp_lorena_senne_sjc", "euclidean", 27.0),
    "p3038": ("cpmp_lorena_senne_p3038", "euclidean", 110.0),
    "tsplib": ("cpmp_stefanello_tsplib", "euclidean", 110.0),
    "spain": ("cpmp_diaz_fernandez_spain737", "matrix", 27.0),
}
QUICK = {
    "orlib": ["pmedcap01", "pmedcap11"],
    "sjc": ["SJC1", "SJC3a"],
    "p3038": ["p3038_600"],
    "tsplib": ["lin318_015", "u724_075"],
    "spain": ["spain737_148_2"],
}


def read_best_known(folder: Path) -> list[dict]:
    """Rows of a set's ``best_known.csv`` (instance, n, p, capacity, best_known, optimal)."""
    with open(folder / "best_known.csv", newline="") as f:
        return list(csv.DictReader(f))


def _read_xycd(path: Path) -> tuple[np.ndarray, np.ndarray, int, float]:
    """``n p`` then n lines ``x y capacity demand``."""
    tok = path.read_text().split()
    n, p = int(tok[0]), int(tok[1])
    arr = np.array(tok[2:2 + 4 * n], dtype=float).reshape(n, 4)
    caps = arr[:, 2]
    if not np.all(caps == caps[0]):
        raise ValueError(f"{path}: capacities differ between points")
    return arr[:, :2], arr[:, 3], p, float(caps[0])


def instance_path(set_name: str, instance: str) -> Path:
    folder = DATA / SETS[set_name][0]
    if set_name == "orlib":
        return folder / "stefanello_format" / f"cpmp{instance[-2:]}.txt"
    if set_name in ("sjc", "p3038"):
        return folder / f"{instance}.dat"
    return folder / f"{instance}.txt"


_SPAIN_D: np.ndarray | None = None


def spain_matrix() -> np.ndarray:
    global _SPAIN_D
    if _SPAIN_D is None:
        v = np.loadtxt(DATA / SETS["spain"][0] / "spain.grd", dtype=np.int64)
        _SPAIN_D = v.reshape(737, 737).astype(float)
    return _SPAIN_D


def load_instance(set_name: str, instance: str) -> dict:
    """Points, demands, p, capacity and the distance matrix of the set's convention."""
    pts, dem, p, cap = _read_xycd(instance_path(set_name, instance))
    conv = SETS[set_name][1]
    if conv == "matrix":
        dist = spain_matrix()
    else:
        diff = pts[:, None, :] - pts[None, :, :]
        dist = np.sqrt((diff ** 2).sum(-1))
        if conv == "euclidean_floor":
            dist = np.floor(dist + 1e-9)
    return {"points": pts, "demands": dem, "p": p, "capacity": cap, "dist": dist, "convention": conv}


def evaluate(inst: dict, assignment: np.ndarray) -> tuple[float, bool, str]:
    """Independent objective and feasibility check of an assignment."""
    a = np.asarray(assignment, dtype=np.int64)
    n = inst["demands"].size
    why = []
    if a.shape != (n,) or a.min() < 0 or a.max() >= n:
        return math.inf, False, "bad assignment vector"
    meds = np.unique(a)
    if meds.size != inst["p"]:
        why.append(f"{meds.size} medians != p={inst['p']}")
    if np.any(a[meds] != meds):
        why.append("a median not serving itself")
    load = np.zeros(n)
    np.add.at(load, a, inst["demands"])
    if load.max() > inst["capacity"] + 1e-6:
        why.append(f"load {load.max():g} > capacity {inst['capacity']:g}")
    obj = float(sum(inst["dist"][i, a[i]] for i in range(n)))
    return obj, not why, "; ".join(why)


def run_cpmp(sets: list[str] | None = None, quick: bool = False, time_limit: float | None = None,
             seed: int = 0, verbose: bool = True, instances: list[str] | None = None,
             shard: tuple[int, int] = (0, 1), n_jobs: int = 1) -> list[dict]:
    """Run the benchmark and return one dict per instance.

    Parameters
    ----------
    sets
        Set names among ``orlib, sjc, p3038, tsplib, spain`` (default: all).
    quick
        Only a few instances per set.
    time_limit
        Per-instance cap in seconds (default: 30 s for orlib/sjc/spain, 120 s for p3038/tsplib).
    seed
        Solver seed.
    verbose
        Print one table row per instance as it finishes.
    instances
        Optional instance names to keep.
    shard
        ``(i, k)``: run only the instances whose position in the run order is i modulo k.
    n_jobs
        Processes per instance for the region MIPs (``capacitated_p_median(n_jobs=...)``).

    Returns
    -------
    list of dict
        Keys: set, instance, n, p, objective, best_known, gap_pct, feasible, time_s, optimal,
        lower_bound, note.
    """
    sets = list(SETS) if not sets else sets
    rows: list[dict] = []
    if verbose:
        print(f"{'set':7s} {'instance':15s} {'n':>5s} {'p':>5s} {'objective':>13s} {'best_known':>13s} "
              f"{'gap%':>7s} {'feas':>5s} {'time_s':>7s}", flush=True)
    pos = -1
    for s in sets:
        folder = DATA / SETS[s][0]
        tl = SETS[s][2] if time_limit is None else time_limit
        for bk in read_best_known(folder):
            name = bk["instance"]
            if quick and name not in QUICK[s]:
                continue
            if instances and name not in instances:
                continue
            pos += 1
            if pos % shard[1] != shard[0]:
                continue
            inst = load_instance(s, name)
            t0 = time.perf_counter()
            res = capacitated_p_median(None, inst["demands"], inst["p"], inst["capacity"],
                                       distances=inst["dist"], time_limit=tl, seed=seed,
                                       n_jobs=n_jobs)
            el = time.perf_counter() - t0
            obj, feas, why = evaluate(inst, res.assignment)
            best = float(bk["best_known"])
            gap = 100.0 * (obj - best) / best
            row = {"set": s, "instance": name, "n": inst["demands"].size, "p": inst["p"],
                   "objective": round(obj, 4), "best_known": best, "gap_pct": round(gap, 4),
                   "feasible": feas, "time_s": round(el, 2), "optimal_known": bk["optimal"],
                   "lower_bound": res.lower_bound, "note": why}
            rows.append(row)
            if verbose:
                print(f"{s:7s} {name:15s} {row['n']:5d} {row['p']:5d} {obj:13.2f} {best:13.2f} "
                      f"{gap:7.3f} {str(feas):>5s} {el:7.1f}" + (f"  {why}" if why else ""), flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    """Print the per-instance table."""
    print(f"{'set':7s} {'instance':15s} {'n':>5s} {'p':>5s} {'objective':>13s} {'best_known':>13s} "
          f"{'gap%':>7s} {'feas':>5s} {'time_s':>7s}")
    for r in rows:
        print(f"{r['set']:7s} {r['instance']:15s} {r['n']:5d} {r['p']:5d} {r['objective']:13.2f} "
              f"{r['best_known']:13.2f} {r['gap_pct']:7.3f} {str(r['feasible']):>5s} {r['time_s']:7.1f}")


def summarise(rows: list[dict]) -> list[str]:
    """One summary line per set: mean/worst gap, max time, all feasible."""
    lines = []
    for s in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == s]
        gaps = [r["gap_pct"] for r in rs]
        lines.append(f"{s:7s}: {len(rs):2d} instances  mean gap {np.mean(gaps):6.3f}%  worst gap "
                     f"{max(gaps):6.3f}%  max time {max(r['time_s'] for r in rs):6.1f} s  "
                     f"total {sum(r['time_s'] for r in rs):7.1f} s  all feasible "
                     f"{all(r['feasible'] for r in rs)}")
    return lines


def write_csv(rows: list[dict], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ",".join(SETS))
    ap.add_argument("--quick", action="store_true", help="a few instances per set")
    ap.add_argument("--time-limit", type=float, default=None, help="per-instance cap, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--instances", default="", help="comma-separated instance names to keep")
    ap.add_argument("--out", default=str(RESULTS), help="CSV output path")
    ap.add_argument("--shard", default="0/1", help="i/k: run every k-th instance starting at i")
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes per instance for the region MIPs (run shards one at a time then)")
    ap.add_argument("--merge", default="", help="comma-separated result CSVs to merge and summarise")
    args = ap.parse_args(argv)
    if args.merge:
        rows = []
        for f in args.merge.split(","):
            with open(f, newline="") as fh:
                for r in csv.DictReader(fh):
                    for k in ("n", "p"):
                        r[k] = int(r[k])
                    for k in ("objective", "best_known", "gap_pct", "time_s"):
                        r[k] = float(r[k])
                    r["feasible"] = r["feasible"] == "True"
                    rows.append(r)
        order = {s: i for i, s in enumerate(SETS)}
        rows.sort(key=lambda r: order[r["set"]])
        print_table(rows)
        print()
        for line in summarise(rows):
            print(line)
        write_csv(rows, Path(args.out))
        return 0
    si, sk = (int(v) for v in args.shard.split("/"))
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in SETS]
    if bad:
        ap.error(f"unknown set(s) {bad}; choose among {list(SETS)}")
    inst = [s for s in args.instances.split(",") if s] or None
    rows = run_cpmp(sets, quick=args.quick, time_limit=args.time_limit, seed=args.seed,
                    instances=inst, shard=(si, sk), n_jobs=args.jobs)
    if not rows:
        print("no instance selected")
        return 1
    print()
    for line in summarise(rows):
        print(line)
    write_csv(rows, Path(args.out))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
