"""One specialist's week: a multi-day VRPTW solved with the kept routing solver.

Each working day is one vehicle (leaving the base at the start of the day, back within the
day length). Each at-risk customer becomes one optional client per day the visit can be made
that day (its time window of the day, its service time), all at the customer's home and
mutually exclusive, so the search chooses the day and the order together. A client's prize
makes every visit worth far more than any detour (as many visits as the week holds); each
priority level multiplies it by four (an urgent visit is not traded for a few ordinary ones);
it grows by half on the on-time days (on or before the due date), by a quarter when the due
date is within the week, and a little for each earlier day (more for the urgent). Booked visits are
required clients pinned to their day and time.

Units inside: seconds and metres (integers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._geo import EARTH_RADIUS_M
from ._routing import RoutingProblem, solve_routing

__all__ = ["solve_specialist", "BASE_PRIZE"]

DAY_S = 86_400
BASE_PRIZE = 100_000  # 100 km: a visit always beats a detour
URGENCY_FACTOR = 4  # each priority level multiplies a visit's worth: an urgent visit beats several ordinary ones
MAX_LEVEL = 8
ONTIME_SHARE = 0.5  # on or before the due date: half as much again
DUE_SOON_SHARE = 0.25  # due within the horizon: a quarter more
EARLY_PRIZE = 500  # per day earlier, per urgency level
PENALTY_UPDATES = 50
NEIGHBOURS = 50

# reason codes (the caller words them)
SCHEDULED, NO_WINDOW, NO_ROOM, TOO_MANY = 0, 1, 2, 3


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def _matrices(job: dict[str, Any], lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if job.get("km") is not None:  # road network distances, computed by the caller
        dist = np.asarray(job["km"], dtype=float) * 1000.0
    else:
        dist = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) * job["detour"]
    dist_m = np.rint(dist).astype(np.int64)
    dur_s = np.rint(dist / (job["speed_kmh"] / 3.6)).astype(np.int64)
    np.fill_diagonal(dist_m, 0)
    np.fill_diagonal(dur_s, 0)
    return dist_m, dur_s


def _greedy(cust: np.ndarray, loc: np.ndarray, serv: np.ndarray, early: np.ndarray, late: np.ndarray,
            prize: np.ndarray, req: np.ndarray, dur: np.ndarray, n_days: int, d0: int, d1: int) -> list[list[int]]:
    """A starting solution, most valuable first: each client copy (highest prize first) is inserted at its
    cheapest feasible place in its day's route, unless another copy of the same customer is in already."""
    cust, loc, serv = cust.tolist(), loc.tolist(), serv.tolist()
    early, late = early.tolist(), late.tolist()
    D = dur.tolist()
    routes: list[list[int]] = [[] for _ in range(n_days)]
    busy = [0] * n_days  # service time already in each day: a quick bound before the exact check
    done: set[int] = set()
    span = d1 - d0

    def fits(day: int, seq: list[int]) -> int | None:
        """Travel time of the route if it is feasible, else None."""
        t, prev, travel = day * DAY_S + d0, 0, 0
        for c in seq:
            lc = loc[c]
            leg = D[prev][lc]
            travel += leg
            t = max(t + leg, early[c])
            if t > late[c]:
                return None
            t += serv[c]
            prev = lc
        travel += D[prev][0]
        return travel if t + D[prev][0] <= day * DAY_S + d1 else None

    order = sorted(range(len(cust)), key=lambda c: (not req[c], -prize[c], c))
    for c in order:
        if cust[c] in done:
            continue
        day = int(early[c] // DAY_S)
        if busy[day] + serv[c] > span:
            continue
        r = routes[day]
        best = None
        for pos in range(len(r) + 1):
            cost = fits(day, r[:pos] + [c] + r[pos:])
            if cost is not None and (best is None or cost < best[0]):
                best = (cost, pos)
        if best is not None:
            r.insert(best[1], c)
            busy[day] += serv[c]
            done.add(cust[c])
    return routes


def solve_specialist(job: dict[str, Any]) -> dict[str, Any]:
    """Plan one specialist's visits over the horizon.

    Parameters
    ----------
    job
        ``sid``; ``base_lat``/``base_lon``; per customer (equal-length arrays): ``cid``, ``lat``, ``lon``,
        ``service_s``, ``ws_s``/``we_s`` (window, seconds after midnight, NaN open), ``due_day``
        (last on-time day index, ``n_days`` or more if the due date is past the horizon or absent),
        ``urgency`` (0 least urgent, higher more), ``pin_day``/``pin_s`` (booked day index and start,
        -1 when not booked); and ``n_days``, ``day_start_s``, ``day_end_s``, ``speed_kmh``, ``detour``,
        ``iterations``, ``patience``, ``seed``, optionally ``km`` (a road-network matrix over base + customers).

    Returns
    -------
    dict
        Per customer: ``status`` (reason code), ``day``, ``seq``, ``start_s``, ``end_s``, ``leg_m``,
        ``leg_s``; per day: ``ret_m``, ``ret_s`` (the way back to the base), ``back_s``; ``feasible``.
    """
    n = len(job["cid"])
    n_days = int(job["n_days"])
    d0, d1 = int(job["day_start_s"]), int(job["day_end_s"])
    lat = np.r_[job["base_lat"], job["lat"]].astype(float)
    lon = np.r_[job["base_lon"], job["lon"]].astype(float)
    dist_all, dur_all = _matrices(job, lat, lon)
    # one location per distinct home (a compound of many customers is one stop)
    key = np.round(np.c_[lat, lon], 6)
    _, first, inv = np.unique(key[1:], axis=0, return_index=True, return_inverse=True)
    inv = np.asarray(inv).ravel()
    order = np.argsort(first, kind="stable")  # locations numbered by first appearance: independent of sort
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    cust_loc = rank[inv] + 1
    loc_rows = np.r_[0, first[order] + 1]
    dist = dist_all[np.ix_(loc_rows, loc_rows)]
    dur = dur_all[np.ix_(loc_rows, loc_rows)]
    out_s = dur[0, cust_loc]
    back_s = dur[cust_loc, 0]
    service = np.asarray(job["service_s"], dtype=np.int64)
    ws = np.asarray(job["ws_s"], dtype=float)
    we = np.asarray(job["we_s"], dtype=float)
    early = np.maximum(d0 + out_s, np.where(np.isnan(ws), d0, ws)).astype(np.int64)
    late = np.minimum(d1 - back_s - service, np.where(np.isnan(we), d1, we) - service).astype(np.int64)
    reachable = early <= late
    pin_day = np.asarray(job["pin_day"], dtype=np.int64)
    pin_s = np.asarray(job["pin_s"], dtype=np.int64)
    due_day = np.asarray(job["due_day"], dtype=np.int64)
    urg = np.asarray(job["urgency"], dtype=np.int64)
    status = np.where(reachable | (pin_day >= 0), SCHEDULED, NO_WINDOW)
    # the clients
    c_cust, c_loc, c_serv, c_early, c_late, c_prize, c_group, c_req = [], [], [], [], [], [], [], []
    for i in range(n):
        if pin_day[i] >= 0:
            off = pin_day[i] * DAY_S
            c_cust.append(i), c_loc.append(cust_loc[i]), c_serv.append(service[i])
            # a booked time is a whole minute: the visit starts within half a minute of it
            c_early.append(off + pin_s[i] - 30), c_late.append(off + pin_s[i] + 30)
            c_prize.append(0), c_group.append(-1), c_req.append(True)
            continue
        if not reachable[i]:
            continue
        for d in range(n_days):
            off = d * DAY_S
            worth = BASE_PRIZE * URGENCY_FACTOR ** min(int(urg[i]), MAX_LEVEL)
            prize = int(worth * (1.0 + (ONTIME_SHARE if d <= due_day[i] else 0.0)
                                 + (DUE_SOON_SHARE if due_day[i] < n_days else 0.0))
                        + EARLY_PRIZE * (n_days - 1 - d) * (1 + urg[i]))
            c_cust.append(i), c_loc.append(cust_loc[i]), c_serv.append(service[i])
            c_early.append(off + early[i]), c_late.append(off + late[i])
            c_prize.append(prize), c_group.append(i), c_req.append(False)
    res = {"status": status.astype(np.int8), "day": np.full(n, -1, np.int16), "seq": np.zeros(n, np.int16),
           "start_s": np.zeros(n, np.int64), "end_s": np.zeros(n, np.int64), "leg_m": np.zeros(n, np.int64),
           "leg_s": np.zeros(n, np.int64), "ret_m": np.zeros(n_days, np.int64), "ret_s": np.zeros(n_days, np.int64),
           "depart_s": np.zeros(n_days, np.int64), "back_s": np.zeros(n_days, np.int64), "feasible": True}
    if not c_cust:
        return res
    c_cust_a = np.asarray(c_cust)
    req = np.asarray(c_req)

    def problem(relax: int) -> RoutingProblem:
        """0: booked visits at their time; 1: at or after it, the same day; 2: any time of the same day."""
        e, l_ = np.asarray(c_early).copy(), np.asarray(c_late).copy()
        if relax:
            days = pin_day[c_cust_a[req]]
            if relax == 2:
                e[req] = days * DAY_S + d0
            l_[req] = days * DAY_S + d1 - service[c_cust_a[req]]
        return RoutingProblem(
            distance=dist, duration=dur, client_loc=np.asarray(c_loc), service=np.asarray(c_serv), tw_early=e,
            tw_late=l_, prize=np.asarray(c_prize), required=req, group=np.asarray(c_group),
            vehicles=[(1, 0, d * DAY_S + d0, d * DAY_S + d1) for d in range(n_days)])

    feasible = False
    for relax in (0, 1, 2) if req.any() else (0,):
        p = problem(relax)
        start = _greedy(c_cust_a, p.client_loc, p.service, p.tw_early, p.tw_late, p.prize, req, dur, n_days, d0, d1)
        routes, feasible = solve_routing(p, iterations=int(job["iterations"]), seed=int(job["seed"]),
                                         no_improvement=int(job["patience"]) or None, penalty_updates=PENALTY_UPDATES,
                                         initial=list(enumerate(start)), neighbours=NEIGHBOURS)
        if feasible:
            break
    res["feasible"] = bool(feasible)
    if not feasible:  # not expected: every optional client can be dropped; report rather than guess
        res["status"][:] = np.where(status == SCHEDULED, NO_ROOM, status)
        return res
    for rt in routes:
        d = rt.vehicle_type
        prev = 0
        for k, (c, start) in enumerate(zip(rt.clients, rt.starts)):
            i = c_cust[c]
            loc = c_loc[c]
            res["day"][i], res["seq"][i] = d, k + 1
            res["start_s"][i] = start - d * DAY_S
            res["end_s"][i] = res["start_s"][i] + service[i]
            res["leg_m"][i], res["leg_s"][i] = dist[prev, loc], dur[prev, loc]
            prev = loc
        res["ret_m"][d], res["ret_s"][d] = dist[prev, 0], dur[prev, 0]
        first = rt.clients[0]
        res["depart_s"][d] = rt.starts[0] - d * DAY_S - dur[0, c_loc[first]]
        res["back_s"][d] = res["end_s"][c_cust[rt.clients[-1]]] + dur[prev, 0]
    missed = (res["day"] < 0) & (res["status"] == SCHEDULED)
    res["status"][missed] = NO_ROOM
    return res
