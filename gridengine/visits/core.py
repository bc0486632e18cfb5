"""``plan_visits``: a plan folder + the call centre's risk list -> each specialist's week of home visits."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import InputError
from .config import VisitsConfig
from .inputs import REJECT_COLUMNS, read_table, validate_at_risk, validate_booked
from .solve import NO_ROOM, NO_WINDOW, SCHEDULED, TOO_MANY, solve_specialist

__all__ = ["plan_visits", "VisitsResult", "VISIT_COLUMNS", "UNSCHEDULED_COLUMNS", "DATA_FILES"]

logger = logging.getLogger(__name__)

VISIT_COLUMNS = ["specialist_id", "date", "seq", "customer_id", "arrival", "departure", "travel_km", "travel_min",
                 "grid_id", "due_date", "on_time", "priority", "visit_minutes", "window", "booked", "return_km",
                 "return_min"]
UNSCHEDULED_COLUMNS = ["customer_id", "row", "grid_id", "specialist_id", "due_date", "priority", "reason"]
#: Files whose bytes are identical for identical inputs and config.
DATA_FILES = ("visits.csv", "unscheduled.csv", "rejects.csv", "metrics.json", "manifest.json")


def _hhmm(seconds: float) -> str:
    m = int(round(seconds / 60.0))
    return f"{m // 60:02d}:{m % 60:02d}"


def _json_dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass
class VisitsResult:
    """The week's visits for one plan.

    Attributes
    ----------
    visits
        One row per visit, sorted by specialist, date and sequence (columns :data:`VISIT_COLUMNS`,
        plus the PII columns when asked for, and ``note``).
    unscheduled
        At-risk customers without a visit this horizon, each with a reason a team lead can act on.
    rejects
        Input rows that could not be used: ``file`` (``at_risk`` or ``booked``), ``row``, ``customer_id``,
        ``reason``.
    metrics
        Scheduled share, on-time share, visits per specialist-day, travel per visit, counts.
    manifest
        Version, config and input hashes.
    run
        Timings (the only output that differs between identical runs).
    specialists
        The specialists with at-risk customers: ``specialist_id``, ``grid_id``, ``lat``, ``lon``.
    days
        Per specialist and date: ``depart``, ``back``, ``n_visits``, ``travel_km``, ``travel_min``.
    """

    visits: pd.DataFrame
    unscheduled: pd.DataFrame
    rejects: pd.DataFrame
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    specialists: pd.DataFrame = field(default_factory=pd.DataFrame)
    days: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        """A few lines for the terminal: the unscheduled first, then the figures."""
        m = self.metrics
        lines = []
        if m["n_unscheduled"]:
            lines.append(f"  UNSCHEDULED      {m['n_unscheduled']} at-risk customers have no visit this horizon "
                         "(reasons in unscheduled.csv):")
            for k, v in m["unscheduled_by_reason"].items():
                lines.append(f"    {v:>6}  {k}")
        lines += [
            f"  at-risk rows     {m['n_rows']} ({m['n_rejected']} rejected, see rejects.csv)",
            f"  scheduled        {m['n_scheduled']} ({m['scheduled_share']:.1%} of valid rows), "
            f"on time {m['on_time_share']:.1%}",
            f"  visits           {m['n_visits']} by {m['n_specialists']} specialists over {m['n_days']} days, "
            f"{m['visits_per_specialist_day']:.1f} per specialist-day",
            f"  travel           {m['travel_km_per_visit']:.2f} km / {m['travel_min_per_visit']:.1f} min per visit",
        ]
        if m.get("n_booked_retimed"):
            lines.append(f"  booked           {m['n_booked_retimed']} booked visits could not keep their time "
                         "(same day, another time: see visits.csv)")
        return "\n".join(lines)

    def write(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the visits folder atomically (complete or absent).

        Parameters
        ----------
        folder
            Target folder.
        overwrite
            Replace what is in ``folder``; without it a non-empty folder is an error.

        Returns
        -------
        Path
            The folder.

        Raises
        ------
        PlanWriteError
            The folder holds files and ``overwrite`` is False, or it cannot be written.
        """
        from ..plan import atomic_folder
        from .pages import FIXED_COLUMNS, render_index, render_specialist

        folder = Path(folder)
        with atomic_folder(folder, overwrite=overwrite, what="the visits", occupied="already holds files") as tmp:
            self.visits.to_csv(tmp / "visits.csv", index=False, lineterminator="\n")
            self.unscheduled.to_csv(tmp / "unscheduled.csv", index=False, lineterminator="\n")
            self.rejects.to_csv(tmp / "rejects.csv", index=False, lineterminator="\n")
            (tmp / "metrics.json").write_text(_json_dump(self.metrics), encoding="utf-8")
            (tmp / "run.json").write_text(_json_dump(self.run), encoding="utf-8")
            pages = tmp / "pages"
            pages.mkdir()
            pii = [c for c in self.visits.columns if c not in FIXED_COLUMNS]
            by_sp: dict[str, list[dict]] = {}
            for r in self.visits.to_dict("records"):
                by_sp.setdefault(r["specialist_id"], []).append(r)
            un_sp: dict[str, list[dict]] = {}
            for r in self.unscheduled.to_dict("records"):
                un_sp.setdefault(r["specialist_id"], []).append(r)
            days_sp: dict[str, list[dict]] = {}
            for r in self.days.to_dict("records"):
                days_sp.setdefault(r["specialist_id"], []).append(r)
            for sp in self.specialists.to_dict("records"):
                s = sp["specialist_id"]
                html = render_specialist(sp, by_sp.get(s, []), un_sp.get(s, []), days_sp.get(s, []), self.metrics,
                                         pii)
                (pages / f"{safe_file_name(s)}.html").write_text(html, encoding="utf-8")
            (tmp / "index.html").write_text(render_index(self), encoding="utf-8")
            (tmp / "manifest.json").write_text(_json_dump(self.manifest), encoding="utf-8")
        return folder


def safe_file_name(name: str) -> str:
    """A file name for a specialist id (letters, digits, - and _ kept)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name)) or "_"


def _load_plan(plan) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    from ..ingest import file_sha256
    from ..plan import Plan

    if isinstance(plan, Plan):
        return plan.assignments, plan.specialists, {"plan": "in memory"}
    folder = Path(plan)
    if not (folder / "manifest.json").is_file() or not (folder / "assignments.parquet").is_file():
        raise InputError(f"{folder}: not a complete plan folder (no manifest.json / assignments.parquet)",
                         path=str(folder))
    a = pd.read_parquet(folder / "assignments.parquet")
    s = pd.read_csv(folder / "specialists.csv", dtype={"specialist_id": str, "grid_id": str}, keep_default_na=False)
    return a, s, {"plan": str(folder), "plan_assignments_sha256": file_sha256(folder / "assignments.parquet")}


def _run_jobs(jobs: list[dict[str, Any]], n_workers: int, progress: Callable[[int, int], None] | None
              ) -> list[dict[str, Any]]:
    """Solve the specialists' problems: in this process (1 worker) or on a local Dask cluster."""
    if n_workers <= 1 or len(jobs) < 4:
        out = []
        for k, j in enumerate(jobs):
            out.append(solve_specialist(j))
            if progress:
                progress(k + 1, len(jobs))
        return out
    from .._dask import start_client

    # bigger problems first, in batches so the scheduler is not flooded with tiny tasks
    order = sorted(range(len(jobs)), key=lambda k: -len(jobs[k]["cid"]))
    n_batches = min(len(jobs), n_workers * 16)
    batches = [order[b::n_batches] for b in range(n_batches)]
    client, cluster = start_client(None, n_workers, None)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    try:
        from distributed import as_completed

        futs = {client.submit(_solve_batch, [jobs[k] for k in b], pure=False): b for b in batches if b}
        done = 0
        for fut in as_completed(list(futs)):
            for k, r in zip(futs[fut], fut.result()):
                results[k] = r
            done += len(futs[fut])
            if progress:
                progress(done, len(jobs))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results  # type: ignore[return-value]


def _solve_batch(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [solve_specialist(j) for j in batch]


def plan_visits(plan, at_risk, config: VisitsConfig = VisitsConfig(), *, booked=None, road_graph=None,
                progress: Callable[[int, int], None] | None = None) -> VisitsResult:
    """Plan each specialist's home visits to the at-risk customers of their own grid.

    Parameters
    ----------
    plan
        A plan folder (path) or a :class:`~gridengine.Plan`.
    at_risk
        The risk list: a CSV, Parquet or xlsx file, or a DataFrame. Column ``customer_id``; optional
        ``due_date`` (YYYY-MM-DD: the visit should happen on or before it), ``priority`` (a number,
        1 most urgent), ``visit_minutes``, ``window_start``/``window_end`` (HH:MM: the visit takes place
        within them), ``note`` (what the visit needs; shown on the specialist's page).
    config
        Horizon, day, speed and solver settings.
    booked
        Visits already done or booked (file or DataFrame with ``specialist_id``, ``date``,
        ``customer_id``, ``arrival``; an earlier ``visits.csv`` works): those in the horizon stay at
        their specialist, day and time (bookings of a day that cannot all keep their time stay on
        that day, no earlier than booked: ``metrics["n_booked_retimed"]``), the rest of the week is
        planned around them; customers visited before the horizon get no new visit.
    road_graph
        Road network file (GraphML or edge-list CSV, as for ``plan --road-graph``): travel distance
        along it (time at ``config.speed_kmh``); ``None``: straight line times ``config.detour``.
    progress
        Called with (specialists done, specialists) while solving.

    Returns
    -------
    VisitsResult

    Raises
    ------
    InputError
        The plan folder is incomplete, or an input file is unreadable or lacks a required column.

    Examples
    --------
    >>> import gridengine as ge
    >>> res = ge.plan_visits("out/city", "risk.csv", ge.VisitsConfig(start="2026-12-07"))  # doctest: +SKIP
    >>> res.write("out/city-visits")  # doctest: +SKIP
    """
    from ..ingest import file_sha256, table_sha256

    t0 = time.perf_counter()
    assignments, roster, plan_info = _load_plan(plan)
    a = assignments[["customer_id", "lat", "lon", "grid_id", "specialist_id"]].copy()
    a["customer_id"] = a["customer_id"].astype(str)
    a["specialist_id"] = a["specialist_id"].fillna("").astype(str)
    a["grid_id"] = a["grid_id"].fillna("").astype(str)
    raw, src = read_table(at_risk, what="at_risk")
    day_min = config.day_hours * 60
    risk, rejects = validate_at_risk(raw, source=src, known=a["customer_id"], include_pii=config.include_pii,
                                     max_visit_minutes=day_min)
    inputs = {"at_risk_sha256": file_sha256(at_risk) if not isinstance(at_risk, pd.DataFrame) else table_sha256(raw)}
    sp_ids = pd.Series(roster["specialist_id"].astype(str))
    if booked is not None:
        braw, bsrc = read_table(booked, what="booked")
        bk, brej = validate_booked(braw, source=bsrc, known=a["customer_id"], specialists=sp_ids)
        rejects = pd.concat([rejects, brej], ignore_index=True)
        inputs["booked_sha256"] = file_sha256(booked) if not isinstance(booked, pd.DataFrame) else table_sha256(braw)
    else:
        bk = pd.DataFrame({"row": [], "specialist_id": [], "date": np.array([], "datetime64[D]"),
                           "customer_id": [], "arrival": []})
    graph = None
    if road_graph is not None:
        from ..travel import read_road_graph

        graph = read_road_graph(road_graph, weight="length")
        inputs["road_graph_sha256"] = file_sha256(road_graph)
    t_read = time.perf_counter()

    dates = config.dates()
    n_days = len(dates)
    d64 = np.array(dates, dtype="datetime64[D]")
    risk = risk.merge(a, on="customer_id", how="left", sort=False)
    n = len(risk)
    reason = np.full(n, None, dtype=object)
    kind = np.full(n, "", dtype=object)  # the short reason, counted in the metrics
    # 1. no specialist for the grid
    no_sp = (risk["specialist_id"] == "").to_numpy()
    for i in np.flatnonzero(no_sp):
        g = risk["grid_id"].iat[i] or "(none)"
        reason[i] = (f"no specialist for grid {g}: the grid is unstaffed in the plan; staff it or ask a "
                     "neighbouring grid's specialist to visit")
        kind[i] = "no specialist for the grid"
    # 2. booked: done before the horizon / booked outside the working days / pinned in the horizon
    bk_by_c = {c: r for c, r in zip(bk["customer_id"], bk.itertuples(index=False))}
    pinned: dict[str, tuple[str, int, int]] = {}
    for r in bk.itertuples(index=False):
        day = np.datetime64(r.date, "D")
        if day in d64:
            pinned[r.customer_id] = (r.specialist_id, int(np.flatnonzero(d64 == day)[0]), int(r.arrival * 60))
    due = risk["due_date"].to_numpy(dtype="datetime64[D]")
    cids = risk["customer_id"].to_numpy()
    for i in range(n):
        if reason[i] is not None:
            continue
        b = bk_by_c.get(cids[i])
        if b is not None and cids[i] not in pinned:
            day = np.datetime64(b.date, "D")
            reason[i] = (f"already visited on {day} (booked file): no new visit planned" if day < d64[0] else
                         f"booked on {day} with {b.specialist_id}, outside the working days of this horizon "
                         f"({d64[0]} to {d64[-1]})")
            kind[i] = "already visited" if day < d64[0] else "booked outside the horizon"
        elif b is None and not np.isnat(due[i]) and due[i] < d64[0]:
            reason[i] = (f"due date {due[i]} already passed before the first day {d64[0]}: phone the customer "
                         "today or arrange a visit outside this plan")
            kind[i] = "due date already passed"
    # urgency: priority levels (1 most urgent), densely ranked; none given: least urgent
    pri = risk["priority"].to_numpy(dtype=float)
    levels = np.unique(pri[~np.isnan(pri)])
    urg = np.zeros(n, dtype=np.int64)
    if len(levels):
        urg[~np.isnan(pri)] = len(levels) - np.searchsorted(levels, pri[~np.isnan(pri)])
    due_day = np.where(np.isnat(due), n_days + 1, np.searchsorted(d64, due, side="right") - 1)
    service_s = np.rint(np.where(np.isnan(risk["visit_minutes"].to_numpy(dtype=float)), config.visit_minutes,
                                 risk["visit_minutes"].to_numpy(dtype=float)) * 60).astype(np.int64)
    ws = risk["window_start"].to_numpy(dtype=float) * 60
    we = risk["window_end"].to_numpy(dtype=float) * 60
    d0, d1 = config.day_start_min * 60, config.day_end_min * 60

    # the jobs: one per specialist with customers to visit (own grid; booked ones at their booked specialist)
    todo = np.array([r is None for r in reason], dtype=bool)
    owner = risk["specialist_id"].to_numpy(dtype=object).copy()
    pin_day = np.full(n, -1, np.int64)
    pin_s = np.full(n, -1, np.int64)
    for i in np.flatnonzero(todo):
        p = pinned.get(cids[i])
        if p is not None:
            owner[i], pin_day[i], pin_s[i] = p
    # booked visits of customers not on this risk list are kept too
    on_list = set(cids)
    extra = [c for c in sorted(pinned) if c not in on_list]
    extra_of: dict[str, list[str]] = {}
    for c in extra:
        extra_of.setdefault(pinned[c][0], []).append(c)
    ex = a.set_index("customer_id").loc[extra] if extra else a.iloc[:0].set_index("customer_id")
    roster_xy = roster.set_index(roster["specialist_id"].astype(str))[["lat", "lon"]]
    sp_grid = a.drop_duplicates("specialist_id").set_index("specialist_id")["grid_id"]
    # urgency order within a specialist, for the pre-selection
    order_key = pd.DataFrame({"owner": owner, "pinned": pin_day >= 0, "urg": urg,
                              "due": np.where(np.isnat(due), np.datetime64("9999-12-31"), due), "row": risk["row"]})
    jobs, job_rows, job_extra = [], [], []
    status = np.full(n, -1, np.int64)
    rows_of = {k: v.to_numpy() for k, v in pd.Series(np.flatnonzero(todo)).groupby(owner[todo], sort=False)}
    for sid in sorted(set(rows_of) | set(extra_of)):
        idx = np.sort(rows_of.get(sid, np.array([], dtype=np.int64)))
        sub = order_key.iloc[idx].sort_values(["pinned", "urg", "due", "row"], ascending=[False, False, True, True],
                                              kind="stable")
        idx = sub.index.to_numpy()
        # more than the week can hold by far: the least urgent are left out before the search
        # (a bound: every visit takes at least its own time plus 3 minutes on the way)
        per_visit = (float(np.median(service_s[idx])) / 60.0 if len(idx) else config.visit_minutes) + 3.0
        cap_est = int(n_days * day_min / per_visit * 1.25) + 5
        if len(idx) > cap_est:
            status[idx[cap_est:]] = TOO_MANY
            idx = idx[:cap_est]
        ex_sid = extra_of.get(sid, [])
        if sid not in roster_xy.index:
            continue
        blat, blon = roster_xy.loc[sid]
        lat = np.r_[risk["lat"].to_numpy()[idx], ex["lat"].reindex(ex_sid).to_numpy()]
        lon = np.r_[risk["lon"].to_numpy()[idx], ex["lon"].reindex(ex_sid).to_numpy()]
        m = len(ex_sid)
        job = {
            "sid": sid, "base_lat": float(blat), "base_lon": float(blon), "cid": list(cids[idx]) + ex_sid,
            "lat": lat, "lon": lon,
            "service_s": np.r_[service_s[idx], np.full(m, int(config.visit_minutes * 60))],
            "ws_s": np.r_[ws[idx], np.full(m, np.nan)], "we_s": np.r_[we[idx], np.full(m, np.nan)],
            "due_day": np.r_[due_day[idx], np.full(m, n_days + 1)], "urgency": np.r_[urg[idx], np.zeros(m, np.int64)],
            "pin_day": np.r_[pin_day[idx], [pinned[c][1] for c in ex_sid]].astype(np.int64),
            "pin_s": np.r_[pin_s[idx], [pinned[c][2] for c in ex_sid]].astype(np.int64),
            "n_days": n_days, "day_start_s": d0, "day_end_s": d1, "speed_kmh": config.speed_kmh,
            "detour": config.detour, "iterations": config.iterations, "patience": config.patience,
            "seed": config.seed,
        }
        if graph is not None:
            from ..travel import travel_matrix

            la, lo = np.r_[blat, lat], np.r_[blon, lon]
            km = travel_matrix(la, lo, la, lo, graph=graph)
            km[~np.isfinite(km)] = 1e4  # unreachable on the network: effectively never in one day
            job["km"] = km
        jobs.append(job)
        job_rows.append(idx)
        job_extra.append(ex_sid)
    t_build = time.perf_counter()
    n_workers = config.jobs or (os.cpu_count() or 1)
    results = _run_jobs(jobs, n_workers, progress)
    t_solve = time.perf_counter()

    # assemble
    vis_rows, day_rows = [], []
    total_at_risk_of = pd.Series(owner[todo]).value_counts().to_dict()
    sched_of: dict[str, int] = {}
    for job, idx, ex_sid, res in zip(jobs, job_rows, job_extra, results):
        sid = job["sid"]
        k_all = len(idx) + len(ex_sid)
        for k in range(k_all):
            st = int(res["status"][k])
            if k < len(idx):
                status[idx[k]] = st
            if st != SCHEDULED:
                continue
            d = int(res["day"][k])
            i = idx[k] if k < len(idx) else None
            vis_rows.append({
                "specialist_id": sid, "date": str(d64[d]), "seq": int(res["seq"][k]), "customer_id": job["cid"][k],
                "arrival": _hhmm(res["start_s"][k]), "departure": _hhmm(res["end_s"][k]),
                "travel_km": round(res["leg_m"][k] / 1000.0, 3), "travel_min": round(res["leg_s"][k] / 60.0, 1),
                "_i": -1 if i is None else int(i), "_day": d,
            })
        sched_of[sid] = int((res["status"][: len(idx)] == SCHEDULED).sum())
        for d in range(n_days):
            nv = int((res["day"] == d).sum())
            if nv:
                day_rows.append({"specialist_id": sid, "date": str(d64[d]), "depart": _hhmm(res["depart_s"][d]),
                                 "back": _hhmm(res["back_s"][d]), "n_visits": nv,
                                 "return_km": round(res["ret_m"][d] / 1000.0, 3),
                                 "return_min": round(res["ret_s"][d] / 60.0, 1)})
    vis = pd.DataFrame(vis_rows, columns=["specialist_id", "date", "seq", "customer_id", "arrival", "departure",
                                          "travel_km", "travel_min", "_i", "_day"])
    vis = vis.sort_values(["specialist_id", "date", "seq"], kind="stable").reset_index(drop=True)
    ii = vis["_i"].to_numpy(dtype=np.int64)
    has = ii >= 0
    ri = np.where(has, ii, 0)

    def col(values, default):
        v = np.asarray(values, dtype=object)[ri]
        v[~has] = default
        return v

    info = a.set_index("customer_id")
    vis["grid_id"] = info["grid_id"].reindex(vis["customer_id"]).fillna("").to_numpy()
    due_txt = np.array(["" if np.isnat(x) else str(x) for x in due], dtype=object)
    vis["due_date"] = col(due_txt, "")
    vis["on_time"] = col(due_day, n_days + 1).astype(int) >= vis["_day"].to_numpy()
    pri_txt = np.array(["" if np.isnan(p) else f"{p:g}" for p in pri], dtype=object)
    vis["priority"] = col(pri_txt, "")
    vis["visit_minutes"] = (col(service_s, int(config.visit_minutes * 60)).astype(float) / 60.0).round(1)
    win = np.array(["" if np.isnan(s) and np.isnan(e) else f"{'' if np.isnan(s) else _hhmm(s)}-"
                    f"{'' if np.isnan(e) else _hhmm(e)}" for s, e in zip(ws, we)], dtype=object)
    vis["window"] = col(win, "")
    vis["booked"] = vis["customer_id"].isin(list(pinned)).to_numpy()
    days_df = pd.DataFrame(day_rows, columns=["specialist_id", "date", "depart", "back", "n_visits", "return_km",
                                              "return_min"])
    last = vis.groupby(["specialist_id", "date"])["seq"].transform("max").to_numpy() == vis["seq"].to_numpy()
    ret = days_df.set_index(["specialist_id", "date"])
    keys = pd.MultiIndex.from_arrays([vis["specialist_id"], vis["date"]])
    vis["return_km"] = np.where(last, ret["return_km"].reindex(keys).to_numpy(), 0.0)
    vis["return_min"] = np.where(last, ret["return_min"].reindex(keys).to_numpy(), 0.0)
    vis["note"] = col(risk["note"].to_numpy(dtype=object), "")
    pii = [c for c in risk.columns if c not in ("row", "customer_id", "due_date", "priority", "visit_minutes",
                                               "window_start", "window_end", "note", "lat", "lon", "grid_id",
                                               "specialist_id")]
    for c in pii:
        vis[c] = col(risk[c].to_numpy(dtype=object), "")
    vis_out = vis.drop(columns=["_i", "_day"])
    vis_out.insert(vis_out.columns.get_loc("note"), "lat", info["lat"].reindex(vis["customer_id"]).round(6).to_numpy())
    vis_out.insert(vis_out.columns.get_loc("note"), "lon", info["lon"].reindex(vis["customer_id"]).round(6).to_numpy())

    # reasons for the rest
    hours = f"{config.day_hours:g} h"
    for i in range(n):
        if reason[i] is not None:
            continue
        st = status[i]
        sid = owner[i]
        if st == NO_WINDOW:
            w = win[i] or f"{_hhmm(d0)}-{_hhmm(d1)}"
            reason[i] = (f"the window {w} cannot be reached: a {service_s[i] // 60}-min visit there, with the way "
                         f"from and back to the base of {sid}, does not fit in the day {_hhmm(d0)}-{_hhmm(d1)}; "
                         "widen the window or arrange a time with the customer")
            kind[i] = "the window cannot be reached"
        elif st in (NO_ROOM, TOO_MANY):
            reason[i] = (f"more visits than the horizon holds: {sid} has {total_at_risk_of.get(sid, 0)} at-risk "
                         f"customers and {sched_of.get(sid, 0)} visits fit in {n_days} days of {hours}; "
                         "more urgent customers came first: add days or lend a neighbouring specialist")
            kind[i] = "more visits than the horizon holds"
        elif st == -1 and sid not in roster_xy.index:
            reason[i] = f"specialist {sid} of grid {risk['grid_id'].iat[i]} is not in the plan's roster"
            kind[i] = "specialist not in the roster"
    un = reason != None  # noqa: E711
    unsched = pd.DataFrame({
        "customer_id": cids[un], "row": risk["row"].to_numpy()[un], "grid_id": risk["grid_id"].to_numpy()[un],
        "specialist_id": risk["specialist_id"].to_numpy()[un], "due_date": due_txt[un], "priority": pri_txt[un],
        "reason": reason[un].astype(str)}, columns=UNSCHEDULED_COLUMNS).sort_values("row").reset_index(drop=True)
    rejects = rejects[REJECT_COLUMNS].sort_values(["file", "row"], kind="stable").reset_index(drop=True)

    # metrics
    from_risk = vis["_i"].to_numpy() >= 0
    n_sched = int(from_risk.sum())
    n_valid = n
    kinds = pd.Series(kind[un], dtype=object)
    by_reason = {k: int(v) for k, v in sorted(kinds.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))}
    n_visits = len(vis)
    n_sp = len(set(owner[~no_sp]) | {j["sid"] for j in jobs}) if n else 0
    travel_km = float(vis["travel_km"].sum() + vis["return_km"].sum())
    travel_min = float(vis["travel_min"].sum() + vis["return_min"].sum())
    with_due = from_risk & (vis["due_date"] != "").to_numpy()
    # a booked visit keeps its time unless that day's bookings cannot all be kept (then: its day, another time)
    booked_at = {c: _hhmm(p[2]) for c, p in pinned.items()}
    retimed = int(sum(1 for c, t in zip(vis["customer_id"], vis["arrival"]) if c in booked_at and booked_at[c] != t))
    metrics = {
        "n_rows": int(len(raw)), "n_rejected": int((rejects["file"] == "at_risk").sum()),
        "n_booked_rejected": int((rejects["file"] == "booked").sum()),
        "n_valid": n_valid, "n_scheduled": n_sched, "n_unscheduled": int(un.sum()),
        "n_visits": n_visits, "n_booked_kept": int(vis["booked"].sum()), "n_booked_retimed": retimed,
        "scheduled_share": round(n_sched / n_valid, 6) if n_valid else 1.0,
        "on_time_share": round(float(vis["on_time"][from_risk].mean()), 6) if n_sched else 1.0,
        "on_time_share_with_due_date": round(float(vis["on_time"][with_due].mean()), 6) if with_due.any() else 1.0,
        "n_specialists": n_sp, "n_days": n_days, "dates": [str(d) for d in d64],
        "visits_per_specialist_day": round(n_visits / (n_sp * n_days), 4) if n_sp else 0.0,
        "visits_per_working_day": round(n_visits / len(days_df), 4) if len(days_df) else 0.0,
        "travel_km_per_visit": round(travel_km / n_visits, 4) if n_visits else 0.0,
        "travel_min_per_visit": round(travel_min / n_visits, 3) if n_visits else 0.0,
        "travel_km_total": round(travel_km, 3),
        "unscheduled_by_reason": by_reason,
        "infeasible_specialists": sorted(j["sid"] for j, r in zip(jobs, results) if not r["feasible"]),
        "solver": "pyvrp",
    }
    cfg = config.to_dict()
    cfg.pop("jobs")
    cfg["start"] = str(d64[0])
    manifest = {"gridengine_version": __version__, "stage": "visits", "config": cfg, **plan_info, **inputs,
                "pii_columns": pii}
    run = {"timings_s": {"read": round(t_read - t0, 3), "build": round(t_build - t_read, 3),
                         "solve": round(t_solve - t_build, 3), "assemble": round(time.perf_counter() - t_solve, 3)},
           "workers": n_workers if len(jobs) >= 4 else 1, "n_jobs": len(jobs),
           "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    sps = sorted({j["sid"] for j in jobs} | set(unsched["specialist_id"][unsched["specialist_id"] != ""]))
    sp_table = pd.DataFrame({"specialist_id": sps})
    sp_table["grid_id"] = sp_grid.reindex(sps).fillna("").to_numpy()
    sp_table["lat"] = roster_xy["lat"].reindex(sps).to_numpy()
    sp_table["lon"] = roster_xy["lon"].reindex(sps).to_numpy()
    logger.info("visits: %d rows, %d scheduled, %d unscheduled, %d rejected", len(raw), n_sched, int(un.sum()),
                metrics["n_rejected"])
    return VisitsResult(vis_out, unsched, rejects, metrics, manifest, run, sp_table, days_df)
