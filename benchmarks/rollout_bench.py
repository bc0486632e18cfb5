"""National rollout benchmark (issue 8): H3 indexing throughput, and the national set end to end.

1. H3 indexing: points/s (wall, and per CPU-second, which is steadier on a busy machine) of h3-py's ``latlng_to_cell`` called in a Python loop, h3ronpy's
   vectorised ``coordinates_to_cells`` (what ``gridengine.cells.points_to_cells`` uses) and
   polars-h3 (if installed), each checked to give the same uint64 cells.
2. The national synthetic set (``gridengine.synth.generate_nation``: 51 cities, 30 million
   customers by default) is generated once into ``--data`` (reused while its stamp matches), then
   ``gridengine rollout`` runs on it with 1 and with 2 Dask workers, each in a fresh process tree
   and a fresh output folder. Peak memory is the peak of the summed RSS of the whole process tree
   (the command, the scheduler, the nannies and the workers), sampled with psutil every 0.5 s.

    .venv/bin/python benchmarks/rollout_bench.py                     # 30M customers, 1 and 2 workers
    .venv/bin/python benchmarks/rollout_bench.py --total 3000000     # a tenth, to iterate
    .venv/bin/python benchmarks/rollout_bench.py --workers 2 --skip-h3

Targets: the national set in <= 30 min with peak memory <= 16 GB on a 2-core machine.
Results go to ``benchmarks/results/rollout_bench.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def h3_throughput(n: int, res: int = 9, repeat: int = 3) -> list[dict]:
    """Points/s of each H3 indexing method on ``n`` points of a city (best of ``repeat``)."""
    import h3.api.basic_int as h3i

    rng = np.random.default_rng(0)
    lat = 22.58 + rng.normal(0, 0.08, n)
    lon = 114.06 + rng.normal(0, 0.15, n)

    def loop(a, b):
        f = h3i.latlng_to_cell
        return np.fromiter((f(x, y, res) for x, y in zip(a.tolist(), b.tolist())), dtype="uint64", count=len(a))

    methods = {"h3-py loop (h3 %s)" % __import__("h3").__version__: loop}
    try:
        import h3ronpy
        from h3ronpy.vector import coordinates_to_cells

        methods[f"h3ronpy {h3ronpy.__version__} coordinates_to_cells"] = (
            lambda a, b: np.array(coordinates_to_cells(a, b, res), dtype="uint64"))
    except ImportError:
        pass
    try:
        import polars as pl
        import polars_h3 as plh3

        methods[f"polars-h3 {getattr(plh3, '__version__', '')} latlng_to_cell".replace("  ", " ")] = (
            lambda a, b: pl.DataFrame({"lat": a, "lon": b}).select(
                plh3.latlng_to_cell("lat", "lon", res, return_dtype=pl.UInt64)).to_series().to_numpy())
    except ImportError:
        pass
    from gridengine.cells import points_to_cells

    methods["gridengine.cells.points_to_cells"] = lambda a, b: points_to_cells(a, b, res)
    ref = None
    out = []
    for name, f in methods.items():
        best = cpu = float("inf")
        for _ in range(repeat):
            c0, t = time.process_time(), time.perf_counter()
            cells = f(lat, lon)
            best = min(best, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c0)
        ref = cells if ref is None else ref
        out.append({"method": name, "points": n, "seconds": round(best, 4), "points_per_s": round(n / best),
                    "cpu_seconds": round(cpu, 4), "points_per_cpu_s": round(n / cpu),
                    "identical_to_loop": bool(np.array_equal(cells, ref))})
        print(f"  {name:<45} {n / best:>12,.0f} points/s wall {n / cpu:>12,.0f} points/CPU-s  "
              f"identical={out[-1]['identical_to_loop']}", flush=True)
    return out


def ensure_nation(data: Path, total: int, n_cities: int, layout: str) -> dict:
    """Generate the national set into ``data`` unless the same one is there."""
    from gridengine.synth import generate_nation

    stamp = data / "nation.json"
    want = {"total": total, "n_cities": n_cities, "layout": layout, "seed": 0}
    if stamp.is_file() and json.loads(stamp.read_text()).get("want") == want and (data / "rollout.toml").is_file():
        info = json.loads(stamp.read_text())
        print(f"national set: reusing {data} ({total:,} customers, {n_cities} cities)", flush=True)
        return info
    t = time.perf_counter()
    res = generate_nation(data, total=total, n_cities=n_cities, layout=layout, seed=0,
                          progress=lambda name, n: print(f"  generated {name:<14} {n:>10,}", flush=True))
    info = {"want": want, "generate_s": round(time.perf_counter() - t, 1), "cities": res["cities"]}
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    print(f"national set: generated {total:,} customers in {n_cities} cities in {info['generate_s']} s", flush=True)
    return info


class TreeRSS:
    """Peak of the summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_procs = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                    c = p.cpu_times()
                    self.cpu[p.pid] = c.user + c.system  # cumulative: the last sample of a process counts
                except psutil.Error:
                    pass
            if total > self.peak:
                self.peak, self.peak_procs = total, len(procs)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._t.join(timeout=2)
        return self.peak


def run_rollout(spec: Path, out: Path, workers: int, timeout: float) -> dict:
    """``gridengine rollout`` in a fresh process tree; wall time, peak tree RSS and the summary's TOTAL row."""
    import shutil

    import pandas as pd

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "gridengine", "rollout", str(spec), "--out", str(out), "--workers", str(workers),
           "--force"]
    print("  $ " + " ".join(cmd[2:]), flush=True)
    log = out.with_suffix(".log")
    t = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        mon = TreeRSS(proc.pid)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
    wall = time.perf_counter() - t
    peak = mon.stop()
    cpu = sorted(mon.cpu.values(), reverse=True)
    row: dict = {"workers": workers, "returncode": rc, "wall_s": round(wall, 1), "peak_tree_rss_gb": round(peak / 2**30, 2),
                 # CPU seconds of the whole tree and of the busiest processes (the workers): on a machine shared
                 # with other jobs, wall time overstates; the busiest worker's CPU time bounds the uncontended wall
                 "tree_cpu_s": round(sum(cpu), 1), "top_process_cpu_s": [round(c, 1) for c in cpu[:workers + 1]],
                 "log": str(log)}
    summary = out / "summary.csv"
    if summary.is_file():
        s = pd.read_csv(summary, keep_default_na=False, na_values=[""])
        tot = s.iloc[-1]
        cities = s.iloc[:-1]
        row.update(status=tot["status"], customers=int(tot["customers"]), grids=int(tot["grids"]),
                   specialists=int(tot["specialists"]), specialists_missing=int(tot["specialists_missing"]),
                   balance_max_dev=float(tot["balance_max_dev"]), within_5pct=float(tot["within_5pct"]),
                   slowest_city=str(cities.loc[cities["seconds"].astype(float).idxmax(), "city"]),
                   slowest_city_s=float(cities["seconds"].astype(float).max()),
                   sum_city_s=round(float(cities["seconds"].astype(float).sum()), 1))
    print(f"  workers={workers}: {wall:.1f} s wall, {sum(cpu):.0f} CPU-s in the tree (busiest {cpu[:workers + 1]}), "
          f"peak tree RSS {peak / 2**30:.2f} GiB, rc={rc}, "
          f"{row.get('status', 'no summary')}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total", type=int, default=30_000_000, help="customers in the national set (default 30M)")
    p.add_argument("--cities", type=int, default=51, help="number of cities (default 51)")
    p.add_argument("--layout", choices=["per-city", "national"], default="per-city",
                   help="per-city customer files, or one national file split by the rollout")
    p.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated (default 1,2)")
    p.add_argument("--data", type=Path, help="folder of the national set (default: TMPDIR/gridengine-nation-TOTAL)")
    p.add_argument("--h3-points", type=int, default=2_000_000, help="points for the H3 throughput test")
    p.add_argument("--skip-h3", action="store_true")
    p.add_argument("--skip-rollout", action="store_true")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a rollout run is killed")
    p.add_argument("--json", type=Path, default=HERE / "results" / "rollout_bench.json")
    args = p.parse_args(argv)
    result: dict = {"machine": {"cpus": os.cpu_count(), "ram_gb": None}, "h3": [], "rollout": []}
    try:
        import psutil

        result["machine"]["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if not args.skip_h3:
        print(f"H3 indexing, {args.h3_points:,} points at resolution 9 (best of 3):", flush=True)
        result["h3"] = h3_throughput(args.h3_points)
    if not args.skip_rollout:
        data = args.data or Path(tempfile.gettempdir()) / f"gridengine-nation-{args.total}"
        info = ensure_nation(data, args.total, args.cities, args.layout)
        result["national_set"] = {"folder": str(data), "total": args.total, "cities": args.cities,
                                  "layout": args.layout, "generate_s": info.get("generate_s")}
        for w in [int(x) for x in args.workers.split(",") if x]:
            result["rollout"].append(run_rollout(data / "rollout.toml", data / f"out-w{w}", w, args.timeout))
        by = {r["workers"]: r for r in result["rollout"]}
        if 1 in by and 2 in by and by[2]["wall_s"]:
            result["speedup_2_vs_1"] = round(by[1]["wall_s"] / by[2]["wall_s"], 2)
            print(f"speed-up 2 workers vs 1: {result['speedup_2_vs_1']}x", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
