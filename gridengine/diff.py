"""Diff two plans: what a team lead has to tell each specialist and each customer.

Used after a re-run (``gridengine plan --previous``). ``gridengine diff PLAN_A PLAN_B --out DIR``
writes

* ``diff.csv``: one row per customer whose situation changed (``change``: changed specialist,
  newly without a specialist, newly with a specialist, new, gone);
* ``diff_specialists.csv``: one row per specialist of either roster (``status``: kept, changed,
  resigned, new, spare; customers kept, gained and lost);
* ``diff.html``: the counts in words, the unstaffed grids by name, the specialists' table and
  the later plan's map with the territory that changed grid drawn over it.

:class:`PlanDiff` follows :class:`~gridengine.plan.Plan`'s convention: ``metrics`` is the dict
of counts and :meth:`PlanDiff.summary` the text the command prints.
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from .cells import cells_to_polygon
from .errors import PlanWriteError
from .plan import CSV_ENCODING, Plan

__all__ = ["PlanDiff", "diff_plans", "CUSTOMER_CHANGES", "SPECIALIST_STATUSES"]

logger = logging.getLogger(__name__)

#: The ``change`` of a customer row of :attr:`PlanDiff.customers`.
CUSTOMER_CHANGES = ("changed specialist", "newly without a specialist", "newly with a specialist", "new", "gone")

#: The ``status`` of a specialist row of :attr:`PlanDiff.specialists`.
SPECIALIST_STATUSES = ("kept", "changed", "resigned", "new", "spare")


@dataclass
class PlanDiff:
    """The differences between two plans (A, the earlier; B, the later).

    Attributes
    ----------
    customers
        One row per customer whose situation changed: ``customer_id``, ``change`` (one of
        :data:`CUSTOMER_CHANGES`), ``grid_a``, ``grid_b``, ``specialist_a``, ``specialist_b``
        ('' = none; a new customer has no A side, a gone one no B side).
    specialists
        One row per specialist of either roster: ``specialist_id``, ``status`` (``kept``: same grid
        and customers; ``changed``: customers gained or lost, or another grid; ``resigned``: in A's
        roster only; ``new``: in B's only; ``spare``: no grid in either), ``grid_a``, ``grid_b``,
        ``customers_a``, ``customers_b``, ``kept``, ``gained``, ``lost`` (customers).
    grids
        One row per grid id in either plan that was added, removed or changed: ``grid_id``,
        ``status`` (added / removed / changed), ``cells_a``, ``cells_b``, ``cells_gained``,
        ``cells_lost``, ``specialist_a``, ``specialist_b``, ``workload_b``.
    unstaffed
        B's unstaffed grids: ``grid_id``, ``zone`` (where the plan has zones), ``workload``,
        ``n_customers``, ``before`` (who held the grid in A, "unstaffed" or "new grid").
    metrics
        The counts (see :meth:`summary` for them in words); ``churn`` and ``customers_moved`` are
        the plan metrics' (continuing customers whose specialist changed, to none included);
        ``specialists_moved`` counts specialists whose grid id differs (resigned and new included).
    changed_areas
        GeoDataFrame of the territory that changed grid, per grid of B.
    plan_b
        The later plan (its map is drawn in ``diff.html``).
    """

    customers: pd.DataFrame
    specialists: pd.DataFrame
    grids: pd.DataFrame
    unstaffed: pd.DataFrame
    metrics: dict
    changed_areas: gpd.GeoDataFrame
    plan_b: Plan | None = None

    def summary(self) -> str:
        """What changed, in words (what ``gridengine diff`` prints)."""
        m = self.metrics
        lines = [
            f"gridengine diff: {m['continuing_customers']} continuing customers, {m['new_customers']} new, "
            f"{m['gone_customers']} gone",
            f"  customers        {m['customers_changed_specialist']} change specialist, "
            f"{m['customers_newly_without']} are newly without a specialist, "
            f"{m['customers_newly_with']} newly have one (churn {m['churn']:.2%} of continuing customers)",
            f"  specialists      {m['specialists_kept']} kept as they were, {m['specialists_changed']} changed "
            f"(customers gained or lost), {m['specialists_resigned']} resigned, {m['specialists_new']} new, "
            f"{m['specialists_spare']} spare",
            f"  grids            {m['grids_added']} added, {m['grids_removed']} removed, {m['grids_changed']} "
            f"changed; {m['cells_changed_grid']} cells changed grid",
            f"  unstaffed        {m['unstaffed_grids_b']} grid(s) in the later plan (earlier: {m['unstaffed_grids_a']})"
            + (": " + ", ".join(self.unstaffed["grid_id"].astype(str).tolist()[:20])
               + (" …" if len(self.unstaffed) > 20 else "") if len(self.unstaffed) else ""),
        ]
        if m.get("customers_without_specialist_b"):
            lines.insert(1, f"  NOT COVERED      {m['customers_without_specialist_b']} customers of the later plan "
                            "have no specialist")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def write(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``diff.csv``, ``diff_specialists.csv`` and ``diff.html`` into ``folder`` (created;
        files replaced atomically; CSVs UTF-8 with a byte-order mark, for Excel)."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlanWriteError(f"{folder}: cannot write here: {exc.strerror or exc}") from None
        names = ("diff.csv", "diff_specialists.csv", "diff.html")
        for name in names:
            if (folder / name).exists() and not overwrite:
                raise PlanWriteError(f"{folder / name}: exists; use --force to replace it")
        texts = (self.customers.to_csv(index=False, lineterminator="\n"),
                 self.specialists.to_csv(index=False, lineterminator="\n"), self.to_html())
        for name, text in zip(names, texts):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            with os.fdopen(fd, "w", encoding=CSV_ENCODING if name.endswith(".csv") else "utf-8") as fh:
                fh.write(text)
            os.replace(tmp, folder / name)
        return folder

    def to_html(self) -> str:
        """A self-contained page: the counts in words, unstaffed grids, specialists, the later plan's map
        with the territory that changed grid, and the changed grids."""
        from .report import render_map_html

        e = html.escape
        if self.plan_b is not None:
            pb = self.plan_b
            page = render_map_html(pb.grids, pb.specialists, title="gridengine diff: the later plan and what changed",
                                   zones=pb.zones, barriers=pb.barriers,
                                   changed=self.changed_areas.geometry.union_all() if len(self.changed_areas) else None)
        else:
            page = render_map_html(self.changed_areas, pd.DataFrame(columns=["specialist_id", "lat", "lon", "capacity",
                                                                             "grid_id"]),
                                   title="gridengine diff: changed areas")

        def table(df: pd.DataFrame, limit: int = 2000) -> str:
            head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
            body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>"
                           for r in df.head(limit).itertuples(index=False))
            more = f"<p class='hint'>… {len(df) - limit} more rows in the CSV</p>" if len(df) > limit else ""
            return f"<table class='d'><tr>{head}</tr>{body}</table>{more}"

        lines = "".join(f"<li>{e(ln.strip())}</li>" for ln in self.summary().split("\n")[1:])
        unst = (table(self.unstaffed) if len(self.unstaffed)
                else "<p>None: every grid of the later plan has a specialist.</p>")
        changed_spec = self.specialists[self.specialists["status"] != "kept"]
        by_change = self.customers["change"].value_counts().reindex(list(CUSTOMER_CHANGES)).fillna(0).astype(int)
        cust_counts = "".join(f"<li>{e(k)}: {v}</li>" for k, v in by_change.items())
        extra = (
            "<section id='diff-text'>"
            f"<h2>What changed</h2><ul>{lines}</ul>"
            f"<h2>Unstaffed grids in the later plan ({len(self.unstaffed)})</h2>{unst}"
            f"<h2>Specialists ({len(changed_spec)} not kept as they were)</h2>"
            "<p class='hint'>kept: customers the specialist serves in both plans; gained / lost: customers "
            "that joined or left them.</p>" + table(changed_spec) +
            f"<h2>Customers ({len(self.customers)} whose situation changed; all in diff.csv)</h2><ul>{cust_counts}</ul>"
            f"<h2>Grids ({len(self.grids)} added, removed or changed)</h2>{table(self.grids)}"
            "</section>")
        css = ("<style>html,body{height:auto}body{display:block}#ge-wrap{height:78vh;min-height:420px}"
               "#diff-text{padding:8px 16px;font-family:system-ui,Arial,sans-serif}"
               "table.d{border-collapse:collapse;font-size:13px}table.d td,table.d th{border:1px solid #ccc;"
               "padding:2px 6px;text-align:left}</style>")
        page = page.replace("</head>", css + "</head>", 1)
        return page.replace("<script>", extra + "<script>", 1)


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
    sa_c, sb_c = A.loc[common, "specialist_id"].to_numpy(), B.loc[common, "specialist_id"].to_numpy()
    differ = sa_c != sb_c
    change = np.where(sb_c == "", "newly without a specialist",
                      np.where(sa_c == "", "newly with a specialist", "changed specialist"))
    moved = common[differ]
    new_ids = B.index.difference(A.index).sort_values()
    gone_ids = A.index.difference(B.index).sort_values()
    customers = pd.concat([
        pd.DataFrame({"customer_id": moved.astype(str), "change": change[differ],
                      "grid_a": A.loc[moved, "grid_id"].to_numpy(), "grid_b": B.loc[moved, "grid_id"].to_numpy(),
                      "specialist_a": sa_c[differ], "specialist_b": sb_c[differ]}),
        pd.DataFrame({"customer_id": new_ids.astype(str), "change": "new", "grid_a": "",
                      "grid_b": B.loc[new_ids, "grid_id"].to_numpy(), "specialist_a": "",
                      "specialist_b": B.loc[new_ids, "specialist_id"].to_numpy()}),
        pd.DataFrame({"customer_id": gone_ids.astype(str), "change": "gone",
                      "grid_a": A.loc[gone_ids, "grid_id"].to_numpy(), "grid_b": "",
                      "specialist_a": A.loc[gone_ids, "specialist_id"].to_numpy(), "specialist_b": ""}),
    ], ignore_index=True).sort_values("customer_id", kind="stable").reset_index(drop=True)

    # per specialist: customers kept, gained, lost
    spa = pa.specialists.set_index("specialist_id")["grid_id"].astype(str).replace("nan", "")
    spb = pb.specialists.set_index("specialist_id")["grid_id"].astype(str).replace("nan", "")
    pairs_a = set(zip(A.index.astype(str), A["specialist_id"]))
    pairs_b = set(zip(B.index.astype(str), B["specialist_id"]))
    n_a = A["specialist_id"].value_counts()
    n_b = B["specialist_id"].value_counts()
    kept_n = pd.Series([s for _, s in pairs_a & pairs_b], dtype=object).value_counts()
    rows = []
    for s in sorted(set(spa.index.astype(str)) | set(spb.index.astype(str))):
        in_a, in_b = s in spa.index, s in spb.index
        ga, gb = (spa.get(s, "") if in_a else ""), (spb.get(s, "") if in_b else "")
        ca, cb, k = int(n_a.get(s, 0)), int(n_b.get(s, 0)), int(kept_n.get(s, 0))
        gained, lost = cb - k, ca - k
        if not in_b:
            status = "resigned"
        elif not in_a:
            status = "new"
        elif ga == "" and gb == "":
            status = "spare"
        elif ga == gb and gained == 0 and lost == 0:
            status = "kept"
        else:
            status = "changed"
        rows.append((s, status, ga, gb, ca, cb, k, gained, lost))
    specialists = pd.DataFrame(rows, columns=["specialist_id", "status", "grid_a", "grid_b", "customers_a",
                                              "customers_b", "kept", "gained", "lost"])

    # grids and territory
    ca_ = pa.cells.set_index("cell")["grid_id"].astype(str)
    cb_ = pb.cells.set_index("cell")["grid_id"].astype(str)
    sa = pa.grids.set_index("grid_id")["specialist_id"].astype(str)
    sb = pb.grids.set_index("grid_id")["specialist_id"].astype(str)
    wb = pb.grids.set_index("grid_id")["workload"]
    cells_a = ca_.groupby(ca_.to_numpy()).apply(lambda c: set(c.index))
    cells_b = cb_.groupby(cb_.to_numpy()).apply(lambda c: set(c.index))
    grows = []
    for g in sorted(set(cells_a.index) | set(cells_b.index) | set(sa.index) | set(sb.index)):
        xa = cells_a.get(g, set())
        xb = cells_b.get(g, set())
        in_a, in_b = g in sa.index, g in sb.index
        status = "added" if not in_a else "removed" if not in_b else (
            "changed" if xa != xb or sa.get(g) != sb.get(g) else "")
        if status:
            grows.append((g, status, len(xa), len(xb), len(xb - xa), len(xa - xb), sa.get(g, ""), sb.get(g, ""),
                          round(float(wb.get(g, 0.0)), 6)))
    grids = pd.DataFrame(grows, columns=["grid_id", "status", "cells_a", "cells_b", "cells_gained", "cells_lost",
                                         "specialist_a", "specialist_b", "workload_b"])
    un_b = pb.grids[pb.grids["specialist_id"].astype(str) == ""]
    unstaffed = pd.DataFrame({"grid_id": un_b["grid_id"].astype(str).to_numpy()})
    if "zone" in pb.grids.columns:
        unstaffed["zone"] = un_b["zone"].astype(str).to_numpy()
    unstaffed["workload"] = un_b["workload"].to_numpy()
    unstaffed["n_customers"] = un_b["n_customers"].to_numpy()
    unstaffed["before"] = [("new grid" if g not in sa.index else (sa[g] or "unstaffed")) for g in unstaffed["grid_id"]]
    both = cb_.index.intersection(ca_.index)
    changed_cells = both[ca_.loc[both].to_numpy() != cb_.loc[both].to_numpy()].append(cb_.index.difference(ca_.index))
    geoms, recs = [], []
    for g, cells in pd.Series(cb_.loc[changed_cells].index, index=cb_.loc[changed_cells].to_numpy()).groupby(level=0):
        geoms.append(cells_to_polygon(list(cells)))
        recs.append({"grid_id": str(g), "specialist_id": sb.get(g, ""), "n_cells": int(len(cells))})
    changed = gpd.GeoDataFrame(pd.DataFrame(recs, columns=["grid_id", "specialist_id", "n_cells"]),
                               geometry=geoms, crs="EPSG:4326")
    n_ch = customers["change"].value_counts()
    st = specialists["status"].value_counts()
    metrics = {
        "continuing_customers": int(len(common)),
        "new_customers": int(len(new_ids)),
        "gone_customers": int(len(gone_ids)),
        "departed_customers": int(len(gone_ids)),
        "customers_changed_specialist": int(n_ch.get("changed specialist", 0)),
        "customers_newly_without": int(n_ch.get("newly without a specialist", 0)),
        "customers_newly_with": int(n_ch.get("newly with a specialist", 0)),
        "customers_moved": int(differ.sum()),
        "churn": round(float(differ.sum()) / len(common), 6) if len(common) else 0.0,
        "customers_without_specialist_b": int((B["specialist_id"] == "").sum()),
        "specialists_kept": int(st.get("kept", 0)),
        "specialists_changed": int(st.get("changed", 0)),
        "specialists_resigned": int(st.get("resigned", 0)),
        "specialists_new": int(st.get("new", 0)),
        "specialists_spare": int(st.get("spare", 0)),
        "specialists_moved": int((specialists["grid_a"] != specialists["grid_b"]).sum()),
        "grids_added": int((grids["status"] == "added").sum()),
        "grids_removed": int((grids["status"] == "removed").sum()),
        "grids_changed": int((grids["status"] == "changed").sum()),
        "cells_changed_grid": int(len(changed_cells)),
        "unstaffed_grids_a": int((pa.grids["specialist_id"].astype(str) == "").sum()),
        "unstaffed_grids_b": int(len(unstaffed)),
    }
    logger.info("diff: %d of %d continuing customers changed specialist; %d grids changed",
                metrics["customers_moved"], metrics["continuing_customers"], metrics["grids_changed"])
    return PlanDiff(customers, specialists, grids, unstaffed, metrics, changed, pb)
