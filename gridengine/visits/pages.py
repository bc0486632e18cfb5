"""The specialist's page (the week's routes on a map and the visit list) and the team lead's index page.

Self-contained HTML: inline CSS and SVG, no script, no network, so a page opens offline, on a phone,
and prints (one day per printed page). Customers are shown by id, with what the visit needs
(time, window, due date, priority, note); names, addresses and phone numbers only when the run
asked for them (``--include-pii``).
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["render_specialist", "render_index"]

DAY_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")

_CSS = """*{box-sizing:border-box}body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:880px;padding:8px;
color:#222}h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.1em;margin:1em 0 .3em;border-bottom:3px solid var(--c,#444)}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border-bottom:1px solid #ddd;padding:3px 4px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.n{text-align:right;white-space:nowrap}
svg.map{width:100%;height:auto;max-height:60vh;background:#fafaf7;border:1px solid #ccc}
.meta{color:#555;font-size:.9em}.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px;margin:6px 0}
section.day{break-inside:avoid;page-break-after:always}a{color:#1558b0}
@media print{body{max-width:none;font-size:12px}svg.map{max-height:none}nav{display:none}}
td.w{overflow-wrap:anywhere}
@media (max-width:600px){td.opt,th.opt{display:none}body{font-size:14px;padding:4px}th,td{padding:2px 3px}}"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n")


def _svg(base: tuple[float, float], days: list[tuple[str, str, list[dict]]], width: int = 640) -> str:
    """An SVG of the routes: the base (square), each day's visits numbered in order, the way there and back.

    ``days`` holds ``(date, colour, visits in order)``; a visit is a dict with ``lat``, ``lon``, ``seq``,
    ``customer_id``.
    """
    lat = [base[0]] + [float(r["lat"]) for _, _, rows in days for r in rows]
    lon = [base[1]] + [float(r["lon"]) for _, _, rows in days for r in rows]
    lat_max, lon_min = max(lat), min(lon)
    kx = math.cos(math.radians(sum(lat) / len(lat)))
    span = max((max(lon) - lon_min) * kx, lat_max - min(lat), 1e-4)
    pad = 24
    scale = (width - 2 * pad) / span
    w = int((max(lon) - lon_min) * kx * scale + 2 * pad)
    h = int((lat_max - min(lat)) * scale + 2 * pad)

    def pt(la: float, lo: float) -> tuple[float, float]:
        return round(pad + (lo - lon_min) * kx * scale, 1), round(pad + (lat_max - la) * scale, 1)

    bx, by = pt(*base)
    parts = [f'<svg class="map" viewBox="0 0 {max(w, 120)} {max(h, 120)}" xmlns="http://www.w3.org/2000/svg" '
             f'role="img" aria-label="route map">',
             f'<text x="{pad}" y="14" font-size="11" fill="#666">about {span * 111.2:.1f} km across; north up</text>']
    for day, c, rows in days:
        pts = [(bx, by)] + [pt(float(r["lat"]), float(r["lon"])) for r in rows] + [(bx, by)]
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" stroke-opacity=".8" '
                     f'points="{" ".join(f"{x},{y}" for x, y in pts)}"><title>{_e(day)}</title></polyline>')
        for (x, y), r in zip(pts[1:-1], rows):
            s = int(r["seq"])
            parts.append(f'<g class="stop"><circle cx="{x}" cy="{y}" r="9" fill="#fff" stroke="{c}" stroke-width="2"/>'
                         f'<text x="{x}" y="{y + 4}" font-size="10" text-anchor="middle">{s}</text>'
                         f"<title>{_e(day)} #{s} {_e(r['customer_id'])}</title></g>")
    parts.append(f'<rect x="{bx - 7}" y="{by - 7}" width="14" height="14" fill="#222"><title>base</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


FIXED_COLUMNS = {"specialist_id", "date", "seq", "customer_id", "arrival", "departure", "travel_km", "travel_min", "grid_id",
          "due_date", "on_time", "priority", "visit_minutes", "window", "booked", "return_km", "return_min", "lat",
          "lon", "note"}


def render_specialist(sp: dict[str, Any], visits: list[dict], unscheduled: list[dict], days: list[dict],
                      metrics: dict[str, Any], pii: list[str] = ()) -> str:
    """One specialist's page: the week's map, then per day the route on a map and the visit list; then
    who could not be fitted.

    Parameters
    ----------
    sp
        ``specialist_id``, ``grid_id``, ``lat``, ``lon`` (the base).
    visits
        This specialist's rows of ``visits.csv`` as dicts (with ``lat``/``lon`` and ``note``), in date and
        sequence order.
    unscheduled
        This specialist's rows of ``unscheduled.csv`` as dicts.
    days
        Per date: ``date``, ``depart``, ``back``.
    metrics
        The run's metrics (the dates of the horizon).
    pii
        Extra columns to show (names, addresses, phones: only when the run asked for them).

    Returns
    -------
    str
        The HTML page.
    """
    sid = sp["specialist_id"]
    base = (float(sp["lat"]), float(sp["lon"]))
    dinfo = {d["date"]: d for d in days}
    dates = metrics["dates"]
    groups: dict[str, list[dict]] = {}
    for r in visits:
        groups.setdefault(r["date"], []).append(r)
    plan = [(d, DAY_COLOURS[dates.index(d) % len(DAY_COLOURS)] if d in dates else "#444", rows)
            for d, rows in sorted(groups.items())]
    body = [f"<h1>Home visits: {_e(sid)}</h1>",
            f'<p class="meta">grid {_e(sp.get("grid_id", ""))} · {_e(dates[0])} to {_e(dates[-1])}'
            f" · {len(visits)} visits · {len(unscheduled)} not fitted</p>"]
    if plan:
        links = " · ".join(f"<a href=#d{_e(d)}>{_e(d)}</a>" for d, _, _ in plan)
        body.append(f'<nav class="meta">days: {links}</nav>')
        body.append(_svg(base, plan))
    else:
        body.append('<p class="warn">No visits planned this horizon.</p>')
    head = ["#", "time", "customer", "due", "pri.", "window", "note"] + list(pii) + ["km"]
    header = "<tr>" + "".join(f'<th class="{"opt" if h in ("pri.", "window") else ""}">{_e(h)}</th>'
                              for h in head) + "</tr>"
    for d, c, rows in plan:
        di = dinfo.get(d)
        km = sum(float(r["travel_km"]) + float(r["return_km"]) for r in rows)
        when = f"leave base {di['depart']}, back {di['back']}" if di is not None else ""
        body.append(f'<section class="day" id="d{_e(d)}" style="--c:{c}"><h2>{_e(d)} · {len(rows)} visits · '
                    f"{km:.1f} km · {_e(when)}</h2>")
        body.append(_svg(base, [(d, c, rows)], width=520))
        body.append("<table>" + header)
        for r in rows:
            due = _e(r["due_date"]) + ("" if r["on_time"] else " (late)")
            cells = [f'<td class="n">{int(r["seq"])}</td>',
                     f'<td class="n">{_e(r["arrival"])}<br>{_e(r["departure"])}</td>',
                     f'<td class="w">{_e(r["customer_id"])}{" (booked)" if r["booked"] else ""}</td>',
                     f'<td class="w">{due}</td>', f'<td class="opt">{_e(r["priority"])}</td>',
                     f'<td class="opt">{_e(r["window"])}</td>', f'<td class="w">{_e(r["note"])}</td>']
            cells += [f'<td class="w">{_e(r.get(k, ""))}</td>' for k in pii]
            cells.append(f'<td class="n">{float(r["travel_km"]):.1f}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
        body.append("</table></section>")
    if unscheduled:
        body.append(f'<h2>Not fitted this horizon ({len(unscheduled)})</h2><table><tr><th>customer</th><th>due</th>'
                    "<th>reason</th></tr>")
        for r in unscheduled:
            body.append(f'<tr><td class="w">{_e(r["customer_id"])}</td><td class="w">{_e(r["due_date"])}</td>'
                        f'<td class="w">{_e(r["reason"])}</td></tr>')
        body.append("</table>")
    body.append('<p class="meta"><a href="../index.html">all specialists</a></p>')
    return _page(f"Visits {sid}", "".join(body))


def render_index(res) -> str:
    """The team lead's page: the unscheduled first, then one line per specialist with a link to their page."""
    from .core import safe_file_name

    m = res.metrics
    body = [f"<h1>Lapse-risk home visits {_e(m['dates'][0])} to {_e(m['dates'][-1])}</h1>"]
    if m["n_unscheduled"]:
        body.append(f'<div class="warn"><b>{m["n_unscheduled"]} at-risk customers have no visit</b> this horizon '
                    "(unscheduled.csv):<ul>" + "".join(f"<li>{v} · {_e(k)}</li>"
                                                       for k, v in m["unscheduled_by_reason"].items()) + "</ul></div>")
    body.append(f'<p class="meta">{m["n_rows"]} rows, {m["n_rejected"]} rejected; {m["n_scheduled"]} scheduled '
                f'({m["scheduled_share"]:.1%}), on time {m["on_time_share"]:.1%}; '
                f'{m["visits_per_specialist_day"]:.1f} visits per specialist-day; '
                f'{m["travel_km_per_visit"]:.2f} km per visit</p>')
    v = res.visits
    cnt = v.groupby("specialist_id").size()
    km = v.groupby("specialist_id")[["travel_km", "return_km"]].sum().sum(axis=1)
    late = v.groupby("specialist_id")["on_time"].apply(lambda s: int((~s).sum()))
    un = res.unscheduled.groupby("specialist_id").size()
    body.append("<table><tr><th>specialist</th><th>grid</th><th>visits</th><th>late</th><th>not fitted</th>"
                "<th>travel km</th></tr>")
    for sp in res.specialists.itertuples(index=False):
        s = sp.specialist_id
        body.append(f'<tr><td><a href="pages/{_e(safe_file_name(s))}.html">{_e(s)}</a></td><td>{_e(sp.grid_id)}</td>'
                    f'<td class="n">{int(cnt.get(s, 0))}</td><td class="n">{int(late.get(s, 0))}</td>'
                    f'<td class="n">{int(un.get(s, 0))}</td><td class="n">{float(km.get(s, 0.0)):.1f}</td></tr>')
    body.append("</table>")
    no_sp = res.unscheduled[res.unscheduled["specialist_id"] == ""]
    if len(no_sp):
        body.append(f"<h2>Customers of unstaffed grids ({len(no_sp)})</h2><table><tr><th>customer</th><th>grid</th>"
                    "<th>due</th></tr>" + "".join(f"<tr><td>{_e(r.customer_id)}</td><td>{_e(r.grid_id)}</td>"
                                                  f"<td>{_e(r.due_date)}</td></tr>"
                                                  for r in no_sp.itertuples(index=False)) + "</table>")
    return _page("Lapse-risk visits", "".join(body))
