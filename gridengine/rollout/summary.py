"""The national summary of a rollout: one row per city and a total, and the result object."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SUMMARY_COLUMNS", "RolloutResult", "format_table", "summary_table", "metrics_row"]

#: Columns of ``summary.csv`` (one row per city, then a ``TOTAL`` row).
SUMMARY_COLUMNS = (
    "city", "status", "customers", "rejected", "workload", "grids", "staffed_grids", "unstaffed_grids",
    "specialists", "spare_specialists", "specialists_missing", "coverage", "balance_max_dev", "within_5pct",
    "churn", "customers_moved", "seconds", "message",
)


def metrics_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The summary columns of one plan's metrics (``metrics.json``), plus ``continuing`` (customers who had a
    specialist in the previous plan), which weighs the national churn."""
    return {
        "customers": metrics.get("n_customers"), "rejected": metrics.get("n_rejects"),
        "workload": metrics.get("total_workload"), "grids": metrics.get("n_grids"),
        "staffed_grids": metrics.get("n_staffed_grids"), "unstaffed_grids": metrics.get("n_unstaffed_grids"),
        "specialists": metrics.get("n_specialists"), "spare_specialists": metrics.get("n_spare_specialists"),
        "specialists_missing": metrics.get("specialists_missing"), "coverage": metrics.get("coverage"),
        "balance_max_dev": metrics.get("balance_max_dev"), "within_5pct": metrics.get("within_5pct"),
        "churn": metrics.get("churn"), "customers_moved": metrics.get("customers_moved"),
        "continuing": metrics.get("continuing_customers"),
    }


@dataclass
class RolloutResult:
    """The outcome of :func:`rollout`.

    Attributes
    ----------
    out
        The rollout folder; plans are in ``out / "cities" / name``.
    summary
        One row per city (in spec order) and a last ``TOTAL`` row, columns :data:`SUMMARY_COLUMNS`;
        ``status`` is ``planned``, ``skipped`` (complete and unchanged) or ``failed`` (see ``message``).
    elapsed_s
        Wall time of the rollout.
    n_workers
        Dask workers used.
    scheduler
        The scheduler's address.
    """

    out: Path
    summary: pd.DataFrame
    elapsed_s: float
    n_workers: int
    scheduler: str

    @property
    def cities(self) -> pd.DataFrame:
        """The per-city rows of the summary (without the TOTAL row)."""
        return self.summary.iloc[:-1]

    def _names(self, status: str) -> list[str]:
        c = self.cities
        return c.loc[c["status"] == status, "city"].tolist()

    @property
    def planned(self) -> list[str]:
        """Cities planned in this run."""
        return self._names("planned")

    @property
    def skipped(self) -> list[str]:
        """Cities whose complete plan was unchanged and kept."""
        return self._names("skipped")

    @property
    def failed(self) -> dict[str, str]:
        """Failed cities and their messages."""
        c = self.cities
        bad = c.loc[c["status"] == "failed"]
        return dict(zip(bad["city"], bad["message"]))

    @property
    def ok(self) -> bool:
        """No city failed."""
        return not self.failed

    def table(self) -> str:
        """The national summary as a fixed-width text table."""
        return format_table(self.summary)


def format_table(summary: pd.DataFrame) -> str:
    """A fixed-width text rendering of a rollout summary."""
    rows = [["city", "status", "customers", "rejected", "grids", "specialists", "missing", "balance", "±5%",
             "churn", "seconds"]]

    def fmt(v: Any, kind: str) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if kind == "int":
            return f"{int(v):,}"
        if kind == "pct":
            return f"{float(v):.1%}"
        return f"{float(v):.1f}"

    for r in summary.to_dict("records"):
        rows.append([str(r["city"]), str(r["status"]), fmt(r["customers"], "int"), fmt(r["rejected"], "int"),
                     fmt(r["grids"], "int"), fmt(r["specialists"], "int"), fmt(r["specialists_missing"], "int"),
                     fmt(r["balance_max_dev"], "pct"), fmt(r["within_5pct"], "pct"), fmt(r["churn"], "pct"),
                     fmt(r["seconds"], "s")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i]) for i in range(len(r))]
        lines.append("  ".join(cells).rstrip())
        if j == 0 or j == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    fails = summary.loc[summary["status"] == "failed"]
    for city, msg in zip(fails["city"], fails["message"]):
        lines.append(f"failed: {city}: {msg}")
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]], elapsed: float) -> pd.DataFrame:
    """The national summary: one row per city (in the order given) and a ``TOTAL`` row.

    Parameters
    ----------
    rows
        One dict per city: ``city``, ``status``, ``message``, ``seconds`` and the :func:`metrics_row` columns.
    elapsed
        The rollout's wall time, the ``TOTAL`` row's ``seconds``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`; the ``TOTAL`` row sums counts over the cities not failed and
        weighs coverage by customers, ``within_5pct`` by grids and churn by continuing customers.
    """
    df = pd.DataFrame(rows)
    for c in (*SUMMARY_COLUMNS, "continuing"):
        if c not in df.columns:
            df[c] = np.nan
    num = lambda c: pd.to_numeric(df[c], errors="coerce")  # noqa: E731
    ok = df["status"] != "failed"
    cust = num("customers")
    grids = num("grids")
    wgt = lambda c, w: float((num(c) * w)[ok].sum() / w[ok].sum()) if w[ok].sum() > 0 else np.nan  # noqa: E731
    cont = num("continuing")
    churn_ok = ok & num("churn").notna()
    counts = df["status"].value_counts()
    total = {
        "city": "TOTAL",
        "status": ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("planned", "skipped", "failed")),
        **{c: int(num(c)[ok].sum()) for c in ("customers", "rejected", "grids", "staffed_grids", "unstaffed_grids",
                                            "specialists", "spare_specialists", "specialists_missing")},
        "workload": round(float(num("workload")[ok].sum()), 6),
        "coverage": round(wgt("coverage", cust), 6),
        "balance_max_dev": float(num("balance_max_dev")[ok].max()) if ok.any() else np.nan,
        "within_5pct": round(wgt("within_5pct", grids), 6),
        "churn": round(float((num("churn") * cont)[churn_ok].sum() / cont[churn_ok].sum()), 6)
        if churn_ok.any() and cont[churn_ok].sum() > 0 else np.nan,
        "customers_moved": int(num("customers_moved")[churn_ok].sum()) if churn_ok.any() else np.nan,
        "seconds": round(elapsed, 3),
        "message": "; ".join(f"{c}: failed" for c in df.loc[~ok, "city"]),
    }
    out = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    return out[list(SUMMARY_COLUMNS)]
