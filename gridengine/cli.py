"""The ``gridengine`` command: a thin layer over the library.

Exit codes: 0 success; 2 bad input, config or an infeasible instance (one line on
stderr naming the file, row and column where one applies); 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ._version import __version__
from .config import Config
from .errors import ConfigError, GridEngineError, InputError, PlanWriteError
from .progress import PLAN_STAGES, StageBar

__all__ = ["main", "staff_summary"]

logger = logging.getLogger("gridengine.cli")

_MAIN_EXAMPLE = """examples:
  # plan the bundled sample city, then open out/sample/map.html and report.html
  gridengine plan --customers data/sample/customers.csv --specialists data/sample/specialists.csv \\
      --service-area data/sample/service_area.geojson --out out/sample --force
  # how many specialists does the city need at capacity 1000?
  gridengine staff --customers data/sample/customers.csv --capacity 1000
  # next month: re-run from last month's plan, moving as few customers as possible, and compare
  gridengine plan ... --previous out/city-2026-10 --out out/city-2026-11
  gridengine diff out/city-2026-10 out/city-2026-11

exit codes: 0 done; 2 bad input, config or an infeasible instance (the message names the file,
row and column); 1 an unexpected failure.  Run `gridengine COMMAND --help` for a command's options.
"""
_PLAN_EXAMPLE = """example:
  gridengine plan --customers data/sample/customers.csv --specialists data/sample/specialists.csv \\
      --service-area data/sample/service_area.geojson --out out/sample --force

next month, keeping grids G0003 and G0007 (and specialist S0012's grid) exactly as they are
(locks.csv: the header grid_id,specialist_id and the rows G0003, G0007 and ,S0012):
  gridengine plan ... --previous out/sample --locked locks.csv --out out/sample-2
"""
_STAFF_EXAMPLE = """example:
  gridengine staff --customers data/sample/customers.csv --capacity 1000 \
      --service-area data/sample/service_area.geojson
"""
_SYNTH_EXAMPLE = """example:
  gridengine synth --customers 50000 --seed 1 --out data/city50k
"""
_VISITS_EXAMPLE = """examples:
  gridengine visits --plan out/sample --at-risk risk.csv --out out/sample-visits --start 2026-12-07
  # next week, keeping the visits already done or booked
  gridengine visits --plan out/sample --at-risk risk.csv --booked out/sample-visits/visits.csv \\
      --out out/sample-visits-2 --start 2026-12-14

Open OUT/index.html (the team lead's overview) and OUT/pages/<specialist>.html (one per specialist).
"""
_ROLLOUT_EXAMPLE = """examples:
  # a national synthetic set (51 cities, 30M customers; --total 3000000 for a tenth), then roll it out
  python -c "from gridengine.synth import generate_nation; generate_nation('data/nation', total=3_000_000)"
  gridengine rollout data/nation/rollout.toml --workers 2
  # the same command on an existing Dask cluster (workers see the same files, gridengine installed)
  gridengine rollout data/nation/rollout.toml --scheduler tcp://scheduler-host:8786

Plans go to OUT/cities/<city>/, the national summary to OUT/summary.csv. Re-running skips the cities
whose plan is complete and whose inputs and config are unchanged; changed cities re-plan from their
previous plan (churn in the summary). Exit code 2 if the spec is bad or any city failed (the summary
names each failure and its reason). The TOML format: python -c "import gridengine.rollout as r; help(r)"
"""


def _input_options(p: argparse.ArgumentParser, *, roster: bool = True) -> None:
    """How the input files are read: encoding, Excel sheet, header mapping, coordinate systems, zone names."""
    cs = ["wgs84", "gcj02", "bd09"]
    p.add_argument("--encoding", help="text encoding of CSV inputs (default: auto: UTF-8, then GB18030)")
    p.add_argument("--sheet", help="worksheet of an .xlsx customers file: name or number from 1 (default: the first)")
    p.add_argument("--columns", metavar="COL=HEADER,...",
                   help="read other headers as gridengine's columns, e.g. customer_id=保单号,lat=Y坐标 "
                        "(common Chinese and English headers such as 客户编号, 纬度, 经度, 工作量, 专员编号, 产能 "
                        "are recognised without it)")
    p.add_argument("--coord-system", choices=cs,
                   help="coordinate system of the customers' lat/lon, and of every other input not given its own "
                        "(default wgs84)")
    if roster:
        p.add_argument("--specialists-sheet", help="worksheet of an .xlsx specialists file (default: the first)")
        p.add_argument("--specialists-coord-system", choices=cs, help="coordinate system of the specialists' bases")
    p.add_argument("--zones-coord-system", choices=cs, help="coordinate system of the zones file")
    p.add_argument("--barriers-coord-system", choices=cs, help="coordinate system of the barriers file")
    p.add_argument("--zone-name-column", help="column of the zones file naming each zone (default: name, 名称, "
                                              "district … whichever is present)")


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="log each stage and print stage timings")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is only drawn when stderr is a terminal, and not with -v/-q)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridengine", epilog=_MAIN_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Plan field-service territories: customers -> H3 cells -> contiguous grids within capacity "
                    "-> one specialist per grid, 100% of customers covered.")  # fmt: skip
    p.add_argument("--version", action="version", version=f"gridengine {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    pl = sub.add_parser("plan", help="plan one city and write the plan folder", epilog=_PLAN_EXAMPLE,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pl.add_argument("--customers", required=True, help="customers file (CSV, Parquet, GeoParquet, GeoJSON, GPKG)")
    pl.add_argument("--specialists", required=True, help="specialists (roster) file")
    pl.add_argument("--out", required=True, help="plan folder to write (written atomically)")
    pl.add_argument("--config", help="config TOML file")
    pl.add_argument("--service-area", help="service-area polygon file (GeoJSON, GPKG, GeoParquet)")
    pl.add_argument("--barriers", help="lines/polygons no grid may cross (rivers, expressways, rail)")
    pl.add_argument("--zones", help="polygons (one per feature, e.g. sub-districts) each grid must stay inside")
    pl.add_argument("--locked", metavar="LOCKS",
                    help="locks file (CSV, xlsx) with columns grid_id, specialist_id, cell (any may be blank): "
                         "grid_id or specialist_id alone keeps that grid of --previous exactly as it was (cells, "
                         "customers, specialist); cell with grid_id pins the cell into a grid keeping that id")
    pl.add_argument("--road-graph", help="road network (GraphML or edge-list CSV) for base-to-grid travel")
    pl.add_argument("--previous", help="previous plan folder: re-run from it, keeping customers with their specialist")
    pl.add_argument("--seed", type=int, help="random seed (overrides the config)")
    pl.add_argument("--capacity", type=float, help="grid capacity in workload units (overrides the config)")
    pl.add_argument("-k", "--grids", type=int, dest="k", help="number of grids (overrides the config)")
    pl.add_argument("--resolution", type=int, help="H3 resolution (overrides the config)")
    _input_options(pl)
    pl.add_argument("--gazetteer", help="address master (address,lat,lon) to geocode customers given by address")
    pl.add_argument("--xlsx", action="store_true",
                    help="also write plan.xlsx (sheets grids, assignments, specialists, staffing, rejects)")
    pl.add_argument("--require-full-staffing", action="store_true", help="fail if any grid cannot be staffed")
    pl.add_argument("--force", action="store_true", help="replace a plan already in --out")
    pl.add_argument("--include-pii", action="store_true",
                    help="also write the customers' address, name and phone columns to assignments "
                         "(default: customer ids and coordinates only)")
    _output_options(pl)

    st = sub.add_parser("staff", help="how many specialists does the city need at a capacity? (no roster)",
                        epilog=_STAFF_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_argument("--customers", required=True, help="customers file")
    st.add_argument("--capacity", type=float, required=True, help="one specialist's capacity in workload units")
    st.add_argument("--service-area", help="service-area polygon file")
    st.add_argument("--barriers", help="lines/polygons no grid may cross")
    st.add_argument("--zones", help="polygons (one per feature, e.g. districts) to count the need per zone, by name; "
                                    "grids stay inside their zone")
    st.add_argument("--target-fill", type=float,
                    help="how full each specialist's grid is planned, as a share of capacity (default: the config's "
                         "partition.target_fill, 0.9)")
    st.add_argument("--config", help="config TOML file")
    _input_options(st, roster=False)
    st.add_argument("--out", help="also write the plan (grids, all unstaffed) to this folder")
    st.add_argument("--force", action="store_true", help="replace a plan already in --out")
    _output_options(st)

    df = sub.add_parser("diff", help="what changed between two plans, per specialist and per customer",
                        epilog="example:\n  gridengine diff out/city-2026-10 out/city-2026-11 --out out/diff",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    df.add_argument("plan_a", help="the earlier plan folder")
    df.add_argument("plan_b", help="the later plan folder")
    df.add_argument("--out", help="folder for diff.csv, diff_specialists.csv and diff.html (default: plan_b)")
    df.add_argument("--force", action="store_true", help="replace an existing diff.csv / diff.html")
    df.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    ro = sub.add_parser("rollout", help="plan many cities in parallel on Dask (national rollout) from a TOML spec",
                        epilog=_ROLLOUT_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    ro.add_argument("spec", help="rollout TOML file: the cities, their inputs and per-city overrides")
    ro.add_argument("--out", help="rollout folder (default: 'out' in the spec, else SPEC-out beside it)")
    ro.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://HOST:8786 "
                                        "(default: a local cluster on this machine)")
    ro.add_argument("--workers", type=int, help="worker processes of the local cluster (default: CPU count)")
    ro.add_argument("--memory-limit", help="memory per local worker, e.g. 8GiB (default: RAM / workers)")
    ro.add_argument("--force", action="store_true", help="re-plan every city, even those complete and unchanged")
    _output_options(ro)

    vi = sub.add_parser("visits", help="each specialist's week of home visits to the at-risk customers of their grid",
                        epilog=_VISITS_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    vi.add_argument("--plan", required=True, help="plan folder (gridengine plan --out)")
    vi.add_argument("--at-risk", required=True, help="risk list (CSV, Parquet, xlsx): customer_id, optional due_date, "
                                                     "priority, visit_minutes, window_start, window_end, note")
    vi.add_argument("--out", required=True, help="folder to write (atomically): visits.csv, unscheduled.csv, "
                                                 "metrics.json, index.html, pages/")
    vi.add_argument("--start", help="first day, YYYY-MM-DD (default: today)")
    vi.add_argument("--days", type=int, help="working days in the horizon (default 5; weekends skipped)")
    vi.add_argument("--weekends", action="store_true", help="count Saturdays and Sundays as working days")
    vi.add_argument("--day-start", help="leave the base at HH:MM (default 09:00)")
    vi.add_argument("--day-hours", type=float, help="length of the day, back at the base (default 8)")
    vi.add_argument("--visit-minutes", type=float, help="default time at a home (default 30)")
    tr = vi.add_mutually_exclusive_group()
    tr.add_argument("--speed-kmh", type=float, help="travel speed (default 20), on straight lines times 1.3")
    tr.add_argument("--road-graph", help="road network (GraphML or edge-list CSV): distances along it (20 km/h)")
    vi.add_argument("--booked", help="visits done or booked (specialist_id,date,customer_id,arrival; an earlier "
                                     "visits.csv): kept fixed, the rest re-planned")
    vi.add_argument("--include-pii", action="store_true",
                    help="carry name/address/phone columns of the risk list into visits.csv and the pages")
    vi.add_argument("--jobs", type=int, help="worker processes (default: CPU count; 1 = no Dask)")
    vi.add_argument("--iterations", type=int, help="routing search iterations per specialist (default 1000)")
    vi.add_argument("--patience", type=int,
                    help="stop a specialist's search after this many iterations without improvement (default 100)")
    vi.add_argument("--seed", type=int, help="random seed (default 0)")
    vi.add_argument("--force", action="store_true", help="replace what is in --out")
    _output_options(vi)
    si = sub.add_parser("sites", help="choose service points (网点) for a plan's grids and the grids each serves",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="example:\n  gridengine sites --plan out/sample --out out/sample-sites "
                               "--max-specialists-per-site 6\n")
    si.add_argument("--plan", required=True, help="plan folder written by 'gridengine plan'")
    si.add_argument("--out", required=True, help="folder for sites.csv, sites.geojson, grid_sites.csv, map, report")
    si.add_argument("--candidates", help="premises file (site_id, lat, lon, optional capacity, cost); "
                                         "default: any cell of the service area")
    si.add_argument("--max-specialists-per-site", type=int, default=8,
                    help="capacity of a site without its own, in specialists (default 8)")
    sg = si.add_mutually_exclusive_group()
    sg.add_argument("--n-sites", type=int, help="open exactly this many sites")
    sg.add_argument("--site-cost", type=float,
                    help="cost of opening a site, in workload-km (default: the fewest sites that hold everyone)")
    si.add_argument("--previous-sites", help="sites.csv of an earlier run: those sites stay open where they can")
    si.add_argument("--zones", help="zones file: grids are served from their own zone when it has room")
    si.add_argument("--time-limit", type=float, default=30.0, help="solver time cap in seconds (default 30)")
    si.add_argument("--force", action="store_true", help="replace what the output folder holds")
    _output_options(si)

    sy = sub.add_parser("synth", help="generate a synthetic city (customers, specialists, service area)",
                        epilog=_SYNTH_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    sy.add_argument("--customers", type=int, default=20_000, help="number of customers (default 20000)")
    sy.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sy.add_argument("--capacity", type=float, default=1000.0, help="full-time specialist capacity (default 1000)")
    sy.add_argument("--out", required=True, help="folder to write customers.csv, specialists.csv, service_area.geojson")
    sy.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return p


def _config_from_args(args: argparse.Namespace) -> Config:
    import dataclasses

    cfg = Config.from_toml(args.config) if args.config else Config()
    part = {k: v for k, v in (("capacity", args.capacity), ("k", args.k)) if v is not None}
    if part:
        cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, **part))
    if args.resolution is not None:
        cfg = cfg.replace(cells=dataclasses.replace(cfg.cells, resolution=args.resolution))
    inp = {k: getattr(args, a, None) for k, a in (
        ("coord_system", "coord_system"), ("encoding", "encoding"), ("sheet", "sheet"),
        ("specialists_sheet", "specialists_sheet"), ("columns", "columns"),
        ("specialists_coord_system", "specialists_coord_system"), ("zones_coord_system", "zones_coord_system"),
        ("barriers_coord_system", "barriers_coord_system"), ("zone_name_column", "zone_name_column"))}
    inp = {k: v for k, v in inp.items() if v is not None}
    if inp:
        cfg = cfg.replace(input=dataclasses.replace(cfg.input, **inp))
    if getattr(args, "gazetteer", None):
        cfg = cfg.replace(geocode=dataclasses.replace(cfg.geocode, gazetteer=args.gazetteer))
    if args.require_full_staffing:
        cfg = cfg.replace(assign=dataclasses.replace(cfg.assign, require_full_staffing=True))
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    return cfg


def _bar(args: argparse.Namespace) -> StageBar:
    """The stage progress bar on stderr: drawn on a terminal; not with --quiet, --verbose (the log
    lines tell the stages then) or --no-progress."""
    off = any(getattr(args, a, False) for a in ("quiet", "verbose", "no_progress"))
    return StageBar(PLAN_STAGES, enabled=False if off else None)


def _check_out(out: Path, force: bool) -> None:
    """Fail before the work, not after: ``out`` must be a folder we can create, and hold no plan unless --force."""
    if out.exists() and not out.is_dir():
        raise PlanWriteError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PlanWriteError(f"{out}: already holds files (a plan?); use --force to replace it")
    anc = out.parent  # the plan is written beside the target, then renamed into place
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise PlanWriteError(f"{out}: cannot write here: {anc} is a file, not a folder")
    if anc.is_dir() and not os.access(anc, os.W_OK | os.X_OK):
        raise PlanWriteError(f"{out}: cannot write here: folder {anc} is not writable")


def _add_pii(plan, customers: str, cfg: Config) -> None:
    """--include-pii: the customers' address / name / phone columns join the assignments (by customer_id)."""
    from .ingest import read_customer_pii

    pii = read_customer_pii(customers, config=cfg.input)
    cols = [c for c in pii.columns if c != "customer_id"]
    if cols:
        plan.assignments = plan.assignments.merge(pii, on="customer_id", how="left", sort=False)
        plan.assignments[cols] = plan.assignments[cols].fillna("")
    plan.manifest["pii_columns"] = cols


def _write_rejects(out: Path, rejects) -> None:
    """The rejects of a run that stopped before its plan: ``out/rejects.csv``, as a plan writes them."""
    out.mkdir(parents=True, exist_ok=True)
    rejects.astype({"row": "int64"}).sort_values("row", kind="stable").to_csv(
        out / "rejects.csv", index=False, lineterminator="\n")


def _column_mappings(args: argparse.Namespace, cfg: Config) -> dict[str, dict[str, str]]:
    """Which header of each input file was read as which column (only the renamed ones), by file name."""
    from .ingest import column_mapping, read_header

    out: dict[str, dict[str, str]] = {}
    for kind, attr, sheet in (("customers", "customers", cfg.input.sheet),
                              ("specialists", "specialists", cfg.input.specialists_sheet)):
        path = getattr(args, attr, None)
        if not path:
            continue
        try:
            header = read_header(path, encoding=cfg.input.encoding, sheet=sheet)
        except GridEngineError:  # already read by the plan; a header we cannot re-read says nothing new
            continue
        out[Path(path).name] = column_mapping(header, kind, cfg.input.columns)
    return out


def _with_placed_share(summary: str, m: dict) -> str:
    """The coverage line also tells the share of input rows placed in the plan."""
    n_in = m["n_customers"] + m["n_rejects"]
    share = m["n_customers"] / n_in if n_in else 1.0
    extra = (f" of placed customers in staffed grids; {share:.2%} of input rows placed ({m['n_rejects']} of {n_in} rejected, "
             "see rejects.csv)")
    lines = summary.split("\n")
    return "\n".join(ln + extra if ln.startswith("  coverage ") else ln for ln in lines)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .pipeline import plan_city
    from .plan import Plan

    out = Path(args.out)
    _check_out(out, args.force)
    cfg = _config_from_args(args)
    t0 = time.perf_counter()
    with _bar(args) as bar:
        try:
            plan: Plan = plan_city(args.customers, args.specialists, cfg, service_area=args.service_area,
                                   barriers=args.barriers, zones=args.zones, locked=args.locked,
                                   road_graph=args.road_graph, previous=args.previous, progress=bar)
        except InputError as e:  # the run stopped on its rejects: write them where the plan would be
            if getattr(e, "rejects", None) is None:
                raise
            _write_rejects(out, e.rejects)
            raise InputError(f"{e} (every reject and its reason: {out / 'rejects.csv'})",
                             path=e.path, row=e.row, field=e.field) from None
        if args.include_pii:
            _add_pii(plan, args.customers, cfg)
        mappings = _column_mappings(args, cfg)
        if any(mappings.values()):  # headers read under other names: said in the summary and the manifest
            plan.manifest["column_mapping"] = mappings
        t1 = time.perf_counter()
        plan.run["timings_s"]["write"] = 0.0
        bar("write")
        plan.write(out, overwrite=args.force, xlsx=args.xlsx)
    t2 = time.perf_counter()
    if not args.quiet:
        print(_with_placed_share(plan.summary(), plan.metrics))
        if args.verbose:
            print("  stage timings    " + ", ".join(f"{k} {v:.2f}s" for k, v in plan.run["timings_s"].items()
                                                   if k != "write"))
        print(f"plan written to {out}/ (planned in {t1 - t0:.1f}s, written in {t2 - t1:.1f}s)")
        print(f"  open {out / 'map.html'} (interactive map) and {out / 'report.html'} (report) in a browser")
    return 0


def _cmd_staff(args: argparse.Namespace) -> int:
    import dataclasses

    from .pipeline import plan_city

    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out(out, args.force)
    cfg = Config.from_toml(args.config) if args.config else Config()
    part = {"capacity": args.capacity}
    if args.target_fill is not None:
        part["target_fill"] = args.target_fill
    cfg = cfg.replace(partition=dataclasses.replace(cfg.partition, **part))
    inp = {k: getattr(args, k) for k in ("coord_system", "encoding", "sheet", "columns", "zones_coord_system",
                                         "barriers_coord_system", "zone_name_column") if getattr(args, k) is not None}
    if inp:
        cfg = cfg.replace(input=dataclasses.replace(cfg.input, **inp))
    with _bar(args) as bar:
        plan = plan_city(args.customers, None, cfg, service_area=args.service_area, barriers=args.barriers,
                         zones=args.zones, progress=bar)
        if out is not None:
            bar("write")
            plan.write(out, overwrite=args.force)
    if not args.quiet:
        print(staff_summary(plan, args.capacity, cfg.partition.target_fill))
    return 0


def staff_summary(plan, capacity: float, target_fill: float) -> str:
    """What ``gridengine staff`` prints: the recommended number at the fill, the pure-capacity minimum
    (workload / capacity, rounded up), and the same per zone or district by name."""
    import math

    m = plan.metrics
    total = float(m["total_workload"])
    minimum = math.ceil(total / capacity - 1e-9) if capacity > 0 else 0
    lines = [f"at capacity {capacity:g}, grids planned {target_fill:.0%} full: {m['n_grids']} specialists recommended "
             f"for {m['n_customers']} customers (workload {total:g}); the pure-capacity minimum is {minimum} "
             "(every specialist filled to 100%, with no room for balance or contiguity)"]
    table = plan.staffing
    named = table is not None and len(table) and not any(str(a).startswith(("cluster around", "staffed"))
                                                       for a in table["area"])
    if named:
        width = max(max(len(str(a)) for a in table["area"]), 4)
        lines.append(f"  {'area':<{width}}  {'recommended':>11}  {'minimum':>7}  workload")
        for area, n, w in table[["area", "grids", "workload"]].itertuples(index=False):
            lines.append(f"  {str(area):<{width}}  {n:>11}  {math.ceil(float(w) / capacity - 1e-9):>7}  {w:g}")
    else:
        lines.append("  (for the need per area by name, give --zones, or a 'district' column in the customers)")
    return "\n".join(lines)


def _cmd_diff(args: argparse.Namespace) -> int:
    from .diff import diff_plans

    d = diff_plans(args.plan_a, args.plan_b)
    out = Path(args.out) if args.out else Path(args.plan_b)
    d.write(out, overwrite=args.force or not args.out)
    if not args.quiet:
        print(d.summary())
        print(f"diff written to {out / 'diff.csv'} (customers), {out / 'diff_specialists.csv'} (specialists) "
              f"and {out / 'diff.html'}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate_city, write_city

    if args.customers < 1:
        raise ConfigError(f"--customers must be at least 1, got {args.customers}")
    city = generate_city(args.customers, seed=args.seed, capacity=args.capacity)
    paths = write_city(city, args.out)
    if not args.quiet:
        print(f"synthetic city: {len(city.customers)} customers, {len(city.specialists)} specialists")
        for p in paths.values():
            print(f"  wrote {p}")
    return 0


def _cmd_visits(args: argparse.Namespace) -> int:
    from .visits import VisitsConfig, plan_visits

    out = Path(args.out)
    _check_out(out, args.force)
    opts = {"start": args.start, "days": args.days, "day_start": args.day_start, "day_hours": args.day_hours,
            "visit_minutes": args.visit_minutes, "speed_kmh": args.speed_kmh, "jobs": args.jobs,
            "iterations": args.iterations, "patience": args.patience, "seed": args.seed}
    cfg = VisitsConfig(**{k: v for k, v in opts.items() if v is not None}, include_pii=args.include_pii,
                       weekends=args.weekends)
    t0 = time.perf_counter()
    res = plan_visits(args.plan, args.at_risk, cfg, booked=args.booked, road_graph=args.road_graph)
    res.write(out, overwrite=args.force)
    if not args.quiet:
        print(res.summary())
        if args.verbose:
            print("  stage timings    " + ", ".join(f"{k} {v:.2f}s" for k, v in res.run["timings_s"].items())
                  + f" ({res.run['workers']} worker(s))")
        print(f"visits written to {out}/ in {time.perf_counter() - t0:.1f}s; open {out / 'index.html'}")
    return 0


def _cmd_sites(args: argparse.Namespace) -> int:
    from .sites import SitesConfig, site_service_points

    cfg = SitesConfig(max_specialists_per_site=args.max_specialists_per_site, n_sites=args.n_sites,
                      site_cost=args.site_cost, zones=args.zones, time_limit=args.time_limit)
    res = site_service_points(args.plan, args.candidates, cfg, previous_sites=args.previous_sites)
    out = res.write(args.out, overwrite=args.force)
    if not args.quiet:
        print(res.summary())
        print(f"sites written to {out}/ (open {out / 'map.html'} and {out / 'report.html'} in a browser)")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    from .rollout import rollout

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    progress = False if args.quiet or args.no_progress else None
    res = rollout(args.spec, scheduler=args.scheduler, n_workers=args.workers, out=args.out, force=args.force,
                  progress=progress, verbose=args.verbose, memory_limit=args.memory_limit)
    if not args.quiet:
        print(res.table())
        print(f"summary written to {res.out / 'summary.csv'}; plans in {res.out / 'cities'}/ "
              f"({res.elapsed_s:.1f}s on {res.n_workers} worker(s))")
    if res.failed:
        names = ", ".join(res.failed)
        print(f"gridengine: error: {len(res.failed)} of {len(res.cities)} cities failed: {names} "
              "(reasons in the summary)", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("gridengine")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)] + [handler]
    root.setLevel(level)
    try:
        if args.command == "plan":
            return _cmd_plan(args)
        if args.command == "synth":
            return _cmd_synth(args)
        if args.command == "staff":
            return _cmd_staff(args)
        if args.command == "diff":
            return _cmd_diff(args)
        if args.command == "rollout":
            return _cmd_rollout(args)
        if args.command == "visits":
            return _cmd_visits(args)
        if args.command == "sites":
            return _cmd_sites(args)
    except GridEngineError as exc:
        print(f"gridengine: error: {exc}", file=sys.stderr)
        return 2
    finally:
        root.removeHandler(handler)
    return 1  # pragma: no cover - argparse rejects unknown commands
