"""Ingest benchmark: read and validate a 5-million-row customers CSV with bounded peak memory.

Generates (once, deterministically) a customers CSV shaped like the sample city
(``customer_id,address,district,lat,lon,workload``, Chinese addresses, ~100 bytes a row)
and times :func:`gridengine.read_customers` on it in a fresh child process, whose peak
resident memory the parent reads from ``os.wait4`` (``ru_maxrss``), so the number is the
whole process: interpreter, libraries, raw file and tables.

    .venv/bin/python benchmarks/ingest_bench.py                        # 5,000,000 rows
    .venv/bin/python benchmarks/ingest_bench.py --rows 1000000 --budget-mb 2000

The CSV goes to ``benchmarks/results/`` (git-ignored) unless ``--csv`` says otherwise.
Exit status 1 if the peak exceeds ``--budget-mb`` (the stated bound).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

#: The stated bound for 5,000,000 rows of the shape generated here (measured peak: ~3.3 GB).
DEFAULT_BUDGET_MB = 4096


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` customers in chunks (the generator itself stays small in memory)."""
    import numpy as np
    import pandas as pd

    sample = pd.read_csv(ROOT / "data" / "sample" / "customers.csv", dtype=str, keep_default_na=False)
    addresses = sample["address"].to_numpy(dtype=object)
    districts = sample["district"].to_numpy(dtype=object)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    chunk = 500_000
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("customer_id,address,district,lat,lon,workload\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            pick = rng.integers(0, len(addresses), n)
            lat = 22.45 + rng.random(n) * 0.25
            lon = 113.82 + rng.random(n) * 0.48
            work = rng.choice(np.array(["1.0", "1.5", "2.0", "3.0"]), n, p=[0.84, 0.04, 0.05, 0.07])
            ids = np.char.add("C", np.char.zfill(np.arange(start + 1, start + n + 1).astype(str), 8))
            df = pd.DataFrame({"customer_id": ids, "address": addresses[pick], "district": districts[pick],
                               "lat": np.round(lat, 6), "lon": np.round(lon, 6), "workload": work})
            # a few bad rows, as real files have: they must end up in rejects, not crash or vanish
            df["lat"] = df["lat"].astype(str)
            df.loc[rng.random(n) < 1e-4, "lat"] = "n/a"
            df.to_csv(fh, header=False, index=False, lineterminator="\n")
    os.replace(tmp, path)


def child(path: str) -> None:
    """Runs in the measured process: import, read, report."""
    import resource

    import gridengine as ge

    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    cust, rej = ge.read_customers(path)
    wall = time.perf_counter() - t
    print(json.dumps({"read_s": round(wall, 2), "valid": int(len(cust)), "rejects": int(len(rej)),
                      "after_import_mb": round(base_kb / 1024), "table_mb": round(
                          cust.memory_usage(deep=True).sum() / 2**20)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--csv", help="customers CSV to read (generated if missing)")
    ap.add_argument("--budget-mb", type=float, default=DEFAULT_BUDGET_MB, help="peak RSS bound (default %(default)s)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--generate", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    if args.generate:
        generate(Path(args.generate), args.rows)
        return
    path = Path(args.csv) if args.csv else RESULTS / f"customers_{args.rows}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        # in its own process: Linux carries a process's peak RSS across fork + exec, so the parent
        # must stay small for the child's ru_maxrss to be the reader's own
        subprocess.run([sys.executable, __file__, "--generate", str(path), "--rows", str(args.rows)], check=True)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.1f}s",
              file=sys.stderr)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(path)], stdout=subprocess.PIPE,
                            cwd=ROOT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"child failed with status {status}")
    res = json.loads(out)
    assert res["valid"] + res["rejects"] == args.rows, "rows lost"
    res.update({"rows": args.rows, "file_mb": round(path.stat().st_size / 2**20),
                "process_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024),
                "budget_mb": args.budget_mb})
    res["peak_per_file_mb"] = round(res["peak_rss_mb"] / max(res["file_mb"], 1), 2)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest_bench.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    if res["peak_rss_mb"] > args.budget_mb:
        print(f"peak RSS {res['peak_rss_mb']} MB is above the bound {args.budget_mb:g} MB", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
