"""Diff two plans: which customers changed specialist, which grids changed, who moved.

Used after a re-run (``gridengine plan --previous``) to see what the planners will have
to tell customers and specialists. ``gridengine diff PLAN_A PLAN_B --out DIR`` writes
``diff.csv`` (one row per continuing customer whose specialist changed) and ``diff.html``
(an offline map of the changed areas, with the counts).
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd

from .cells import cells_to_polygon
from .errors import PlanWriteError
from .plan import Plan

__all__ = ["PlanDiff", "diff_plans"]

logger = logging.getLogger(__name__)


@dataclass
class PlanDiff:
    """The differences between two plans (A, the earlier; B, the later).

    Attributes
    ----------
    customers
        Continuing customers whose specialist changed: ``customer_id``, ``grid_a``, ``grid_b``,
        ``specialist_a``, ``specialist_b``.
    grids
        One row per grid id in either plan that was added, removed or changed: ``grid_id``,
        ``status`` (added / removed / changed), ``cells_a``, ``cells_b``, ``cells_gained``,
        ``cells_lost``, ``specialist_a``, ``specialist_b``.
    specialists
        Specialists whose grid changed: ``specialist_id``, ``grid_a``, ``grid_b`` ('' = none).
    summary
        Counts: continuing, new and departed customers, customers_moved, churn, grids added,
        removed and changed, specialists moved.
    changed_areas
        GeoDataFrame of the territory that changed grid, per grid of B (for the map).
    """

    customers: pd.DataFrame
    grids: pd.DataFrame
    specialists: pd.DataFrame
    summary: dict
    changed_areas: gpd.GeoDataFrame

    def write(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``diff.csv`` and ``diff.html`` into ``folder`` (created; files replaced atomically)."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlanWriteError(f"{folder}: cannot write here: {exc.strerror or exc}") from None
        for name in ("diff.csv", "diff.html"):
            if (folder / name).exists() and not overwrite:
                raise PlanWriteError(f"{folder / name}: exists; use --force to replace it")
        for name, text in (("diff.csv", self.customers.to_csv(index=False, lineterminator="\n")),
                           ("diff.html", self.to_html())):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, folder / name)
        return folder

    def to_html(self) -> str:
        """A self-contained page: counts, the changed areas on a map, grid and specialist tables."""
        from .report import render_map_html

        page = render_map_html(self.changed_areas, pd.DataFrame(columns=["specialist_id", "lat", "lon", "capacity",
                                                                         "grid_id"]),
                               title="gridengine diff: changed areas")
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in self.summary.items())
        grid_rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
            for r in self.grids.itertuples(index=False))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.grids.columns)
        extra = (f"<section style='padding:8px;font-family:sans-serif'><h2>What changed</h2><table>{rows}</table>"
                 f"<h3>Grids</h3><table><tr>{head}</tr>{grid_rows}</table></section>")
        return page.replace("</body>", extra + "</body>", 1)


def _load(p: str | Path | Plan) -> Plan:
    return p if isinstance(p, Plan) else Plan.read(p)


def diff_plans(a: str | Path | Plan, b: str | Path | Plan) -> PlanDiff:
    """Compare plan ``a`` (earlier) with plan ``b`` (later).

    Parameters
    ----------
    a, b
        Plan folders or :class:`Plan` objects.

    Returns
    -------
    PlanDiff
    """
    pa, pb = _load(a), _load(b)
    A = pa.assignments.set_index("customer_id")[["grid_id", "specialist_id"]].astype(str)
    B = pb.assignments.set_index("customer_id")[["grid_id", "specialist_id"]].astype(str)
    common = A.index.intersection(B.index).sort_values()
    moved = common[A.loc[common, "specialist_id"].to_numpy() != B.loc[common, "specialist_id"].to_numpy()]
    customers = pd.DataFrame({
        "customer_id": moved.astype(str),
        "grid_a": A.loc[moved, "grid_id"].to_numpy(), "grid_b": B.loc[moved, "grid_id"].to_numpy(),
        "specialist_a": A.loc[moved, "specialist_id"].to_numpy(), "specialist_b": B.loc[moved, "specialist_id"].to_numpy(),
    })
    ca = pa.cells.set_index("cell")["grid_id"].astype(str)
    cb = pb.cells.set_index("cell")["grid_id"].astype(str)
    sa = pa.grids.set_index("grid_id")["specialist_id"].astype(str)
    sb = pb.grids.set_index("grid_id")["specialist_id"].astype(str)
    rows = []
    for g in sorted(set(ca.unique()) | set(cb.unique()) | set(sa.index) | set(sb.index)):
        cells_a = set(ca.index[ca == g])
        cells_b = set(cb.index[cb == g])
        in_a, in_b = g in set(sa.index), g in set(sb.index)
        status = "added" if not in_a else "removed" if not in_b else (
            "changed" if cells_a != cells_b or sa.get(g) != sb.get(g) else "")
        if status:
            rows.append((g, status, len(cells_a), len(cells_b), len(cells_b - cells_a), len(cells_a - cells_b),
                         sa.get(g, ""), sb.get(g, "")))
    grids = pd.DataFrame(rows, columns=["grid_id", "status", "cells_a", "cells_b", "cells_gained", "cells_lost",
                                        "specialist_a", "specialist_b"])
    spa = pa.specialists.set_index("specialist_id")["grid_id"].astype(str)
    spb = pb.specialists.set_index("specialist_id")["grid_id"].astype(str)
    ids = sorted(set(spa.index) | set(spb.index))
    sm = [(s, spa.get(s, ""), spb.get(s, "")) for s in ids if spa.get(s, "") != spb.get(s, "")]
    specialists = pd.DataFrame(sm, columns=["specialist_id", "grid_a", "grid_b"])
    # territory that changed hands: cells of B whose grid differs from A's grid for the same cell
    both = cb.index.intersection(ca.index)
    changed_cells = both[ca.loc[both].to_numpy() != cb.loc[both].to_numpy()].append(cb.index.difference(ca.index))
    geoms, recs = [], []
    for g, cells in pd.Series(cb.loc[changed_cells].index, index=cb.loc[changed_cells].to_numpy()).groupby(level=0):
        geoms.append(cells_to_polygon(list(cells)))
        recs.append({"grid_id": str(g), "specialist_id": sb.get(g, ""), "workload": 0.0,
                     "n_customers": int(customers["grid_b"].eq(g).sum()), "n_cells": int(len(cells)),
                     "area_km2": 0.0, "capacity": float("nan")})
    changed = gpd.GeoDataFrame(pd.DataFrame(recs, columns=["grid_id", "specialist_id", "workload", "n_customers",
                                                           "n_cells", "area_km2", "capacity"]),
                               geometry=geoms, crs="EPSG:4326")
    summary = {
        "continuing_customers": int(len(common)),
        "new_customers": int(len(B.index.difference(A.index))),
        "departed_customers": int(len(A.index.difference(B.index))),
        "customers_moved": int(len(moved)),
        "churn": round(len(moved) / len(common), 6) if len(common) else 0.0,
        "grids_added": int((grids["status"] == "added").sum()),
        "grids_removed": int((grids["status"] == "removed").sum()),
        "grids_changed": int(len(grids)),
        "cells_changed_grid": int(len(changed_cells)),
        "specialists_moved": int(len(specialists)),
    }
    logger.info("diff: %d of %d continuing customers changed specialist; %d grids changed",
                summary["customers_moved"], summary["continuing_customers"], summary["grids_changed"])
    return PlanDiff(customers, grids, specialists, summary, changed)
