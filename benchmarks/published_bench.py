"""Partition quality against published optima: districting (Hess) and capacitated p-median.

Runs ``published_districting.py`` (59 US county/tract rows, ``districting_hess_validi``) and
``published_cpmp.py`` (OR-Library pmedcap1, Lorena-Senne SJC and p3038, Stefanello TSPLIB,
spain737), each scored independently of the solvers, and prints both per-instance tables and
all summary lines. Data: ``../shared/benchmarks`` (READMEs there give the objective conventions).

    .venv/bin/python benchmarks/published_bench.py            # everything (about 1.5 h on 2 cores)
    .venv/bin/python benchmarks/published_bench.py --quick    # a few instances of each

The two parts can be run alone (and sharded): see ``published_districting.py --help`` and
``published_cpmp.py --help``. Results: ``benchmarks/results/published_*.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import published_cpmp  # noqa: E402
import published_districting  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few instances of each set")
    ap.add_argument("--only", choices=["districting", "cpmp"], help="run one part")
    args = ap.parse_args(argv)
    lines: list[str] = []
    if args.only in (None, "districting"):
        print("== districting (Hess moment of inertia, +-0.5% balance, contiguity)", flush=True)
        d = published_districting.run_districting(quick=args.quick, verbose=True)
        lines += ["districting: " + s for s in published_districting.summary(d)]
    if args.only in (None, "cpmp"):
        print("== capacitated p-median", flush=True)
        c = published_cpmp.run_cpmp(quick=args.quick)
        published_cpmp.print_table(c)
        published_cpmp.write_csv(c)
        lines += ["cpmp: " + s for s in published_cpmp.summarise(c)]
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
