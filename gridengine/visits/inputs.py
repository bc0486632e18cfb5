"""Reading and validating the risk list and the booked visits.

Bad rows are not errors: each goes to the rejects table with its source ``file``, ``row``
(1-based, header not counted) and a ``reason`` naming the column. Only problems with a file
as a whole (unreadable, no ``customer_id`` column, no rows) raise :class:`InputError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..ingest import as_text, normalise_columns, parse_numeric, pii_columns, read_raw, require_columns

__all__ = ["read_table", "validate_at_risk", "validate_booked", "REJECT_COLUMNS"]

REJECT_COLUMNS = ["file", "row", "customer_id", "reason"]


def read_table(source: str | Path | pd.DataFrame, *, what: str, encoding: str = "auto") -> tuple[pd.DataFrame, str]:
    """A table from CSV, Parquet or xlsx (or a DataFrame, as given); returns it and its name for messages."""
    if isinstance(source, pd.DataFrame):
        return source.copy(), what
    path = Path(source)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        if not path.is_file():
            raise InputError(f"{path}: file not found", path=str(path))
        try:
            df = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        except Exception as exc:  # openpyxl raises several kinds for broken workbooks
            raise InputError(f"{path}: not a readable xlsx workbook ({exc})", path=str(path)) from None
        return df, str(path)
    return read_raw(path, encoding), str(path)


def _date(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """ISO dates (``2026-12-07``; ``2026/12/07`` and a time part accepted) -> (datetime64[D] or NaT, bad mask)."""
    t = text.str.replace("/", "-", regex=False).str.slice(0, 10)
    parsed = pd.to_datetime(t.where(t != "", None), format="%Y-%m-%d", errors="coerce")
    vals = parsed.to_numpy(dtype="datetime64[D]")
    bad = np.isnat(vals) & (text != "").to_numpy()
    return vals, bad


def _clock(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Times of day ``HH:MM`` (``HH:MM:SS`` accepted) -> (minutes after midnight or NaN, bad mask)."""
    parts = text.str.extract(r"^(\d{1,2}):(\d{2})(?::\d{2})?$")
    h = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=float)
    m = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=float)
    mins = h * 60 + m
    with np.errstate(invalid="ignore"):
        ok = (m < 60) & (mins <= 1440)
    mins = np.where(ok, mins, np.nan)
    bad = np.isnan(mins) & (text != "").to_numpy()
    return mins, bad


class _Reasons:
    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)

    def add(self, mask: np.ndarray, msg) -> None:
        for i in np.flatnonzero(mask & (self.reason == None)):  # noqa: E711
            self.reason[i] = msg(i) if callable(msg) else msg

    @property
    def bad(self) -> np.ndarray:
        return self.reason != None  # noqa: E711


def validate_at_risk(df: pd.DataFrame, *, source: str, known: pd.Series, include_pii: bool = False,
                     max_visit_minutes: float = 24 * 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the risk list.

    Parameters
    ----------
    df
        Raw table: ``customer_id``; optional ``due_date`` (YYYY-MM-DD), ``priority`` (a number,
        1 most urgent), ``visit_minutes``, ``window_start``/``window_end`` (HH:MM), ``note``.
    source
        Name for messages (the file path).
    known
        The customer ids of the plan: a row whose customer is not in the plan is rejected.
    include_pii
        Keep name / address / phone columns (dropped otherwise).
    max_visit_minutes
        Longest acceptable ``visit_minutes`` (the day length).

    Returns
    -------
    at_risk
        Valid rows: ``row``, ``customer_id``, ``due_date`` (datetime64[D], NaT when none), ``priority``
        (float, NaN when none), ``visit_minutes`` (float, NaN: the default), ``window_start``,
        ``window_end`` (minutes, NaN when open), ``note`` (str), and the PII columns if asked for.
    rejects
        ``file``, ``row``, ``customer_id``, ``reason``.

    Raises
    ------
    InputError
        No ``customer_id`` column, or no data rows.
    """
    df = normalise_columns(df, source)
    require_columns(df, ["customer_id"], source)
    n = len(df)
    if n == 0:
        raise InputError(f"{source}: no data rows (header only)", path=source)
    r = _Reasons(n)
    ids = as_text(df["customer_id"]).astype(object).to_numpy()
    r.add(ids == "", "column 'customer_id': empty")

    def text(col: str) -> pd.Series:
        return as_text(df[col]).astype(str) if col in df.columns else pd.Series([""] * n, dtype=str)

    due_t = text("due_date")
    due, due_bad = _date(due_t)
    r.add(due_bad, lambda i: f"column 'due_date': {due_t.iat[i]!r} is not a date YYYY-MM-DD")
    if "priority" in df.columns:
        pri, _, pri_bad = parse_numeric(df["priority"])
        r.add(pri_bad, lambda i: f"column 'priority': {text('priority').iat[i]!r} is not a number")
        with np.errstate(invalid="ignore"):
            r.add(~np.isnan(pri) & ~np.isfinite(pri), "column 'priority': infinite")
    else:
        pri = np.full(n, np.nan)
    if "visit_minutes" in df.columns:
        vm, _, vm_bad = parse_numeric(df["visit_minutes"])
        r.add(vm_bad, lambda i: f"column 'visit_minutes': {text('visit_minutes').iat[i]!r} is not a number")
        with np.errstate(invalid="ignore"):
            r.add((vm <= 0) | (vm > max_visit_minutes) | np.isinf(vm),
                  lambda i: f"column 'visit_minutes': {vm[i]:g} is not between 0 and the day length "
                            f"({max_visit_minutes:g} min)")
    else:
        vm = np.full(n, np.nan)
    ws_t, we_t = text("window_start"), text("window_end")
    ws, ws_bad = _clock(ws_t)
    we, we_bad = _clock(we_t)
    r.add(ws_bad, lambda i: f"column 'window_start': {ws_t.iat[i]!r} is not a time of day HH:MM")
    r.add(we_bad, lambda i: f"column 'window_end': {we_t.iat[i]!r} is not a time of day HH:MM")
    with np.errstate(invalid="ignore"):
        r.add(we <= ws, lambda i: f"column 'window_end': {we_t.iat[i]} is not after window_start {ws_t.iat[i]}")
    # duplicates: identical rows keep the first, conflicting ones are all rejected
    s_ids = pd.Series(ids)
    dup = s_ids.duplicated(keep=False).to_numpy() & (ids != "")
    if dup.any():
        content = pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()
        first_row: dict[str, int] = {}
        variants: dict[str, set] = {}
        for i in np.flatnonzero(dup):
            first_row.setdefault(ids[i], i + 1)
            variants.setdefault(ids[i], set()).add(content[i])
        r.add(dup, lambda i: (f"customer_id {ids[i]!r} appears more than once with different data "
                              f"(first at row {first_row[ids[i]]})") if len(variants[ids[i]]) > 1 else
              (f"duplicate of row {first_row[ids[i]]} (customer_id {ids[i]!r})"
               if first_row[ids[i]] != i + 1 else None))
    unknown = ~pd.Series(ids).isin(known).to_numpy() & (ids != "")
    r.add(unknown, lambda i: f"column 'customer_id': {ids[i]!r} is not a customer of the plan "
                             "(not in its assignments: rejected there, or from another city)")
    bad = r.bad
    rows = np.arange(1, n + 1)
    rejects = pd.DataFrame({"file": "at_risk", "row": rows[bad], "customer_id": ids[bad].astype(str),
                            "reason": r.reason[bad].astype(str)})
    keep = ~bad
    out = pd.DataFrame({
        "row": rows[keep], "customer_id": ids[keep].astype(str), "due_date": due[keep],
        "priority": pri[keep].astype(float), "visit_minutes": vm[keep].astype(float),
        "window_start": ws[keep], "window_end": we[keep], "note": text("note").to_numpy()[keep].astype(str),
    })
    if include_pii:
        for c in pii_columns(df.columns):
            out[c] = text(c).to_numpy()[keep].astype(str)
    return out.reset_index(drop=True), rejects


def validate_booked(df: pd.DataFrame, *, source: str, known: pd.Series, specialists: pd.Series
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the visits already done or booked (a ``visits.csv`` of an earlier run, or by hand).

    Parameters
    ----------
    df
        Raw table: ``specialist_id``, ``date`` (YYYY-MM-DD), ``customer_id``, ``arrival`` (HH:MM).
    source
        Name for messages.
    known
        Customer ids of the plan.
    specialists
        Specialist ids of the plan.

    Returns
    -------
    booked
        ``row``, ``specialist_id``, ``date`` (datetime64[D]), ``customer_id``, ``arrival`` (minutes).
    rejects
        ``file`` (``"booked"``), ``row``, ``customer_id``, ``reason``.
    """
    df = normalise_columns(df, source)
    require_columns(df, ["specialist_id", "date", "customer_id", "arrival"], source)
    n = len(df)
    r = _Reasons(n)
    ids = as_text(df["customer_id"]).astype(object).to_numpy()
    sp = as_text(df["specialist_id"]).astype(object).to_numpy()
    d_t = as_text(df["date"]).astype(str)
    a_t = as_text(df["arrival"]).astype(str)
    day, d_bad = _date(d_t)
    arr, a_bad = _clock(a_t)
    r.add(ids == "", "column 'customer_id': empty")
    r.add(~pd.Series(ids).isin(known).to_numpy(), lambda i: f"column 'customer_id': {ids[i]!r} is not in the plan")
    r.add(~pd.Series(sp).isin(specialists).to_numpy(),
          lambda i: f"column 'specialist_id': {sp[i]!r} is not a specialist of the plan")
    r.add(d_bad | np.isnat(day), lambda i: f"column 'date': {d_t.iat[i]!r} is not a date YYYY-MM-DD")
    r.add(a_bad | np.isnan(arr), lambda i: f"column 'arrival': {a_t.iat[i]!r} is not a time of day HH:MM")
    r.add(pd.Series(ids).duplicated().to_numpy(), lambda i: f"customer_id {ids[i]!r} is booked more than once")
    bad = r.bad
    rows = np.arange(1, n + 1)
    rejects = pd.DataFrame({"file": "booked", "row": rows[bad], "customer_id": ids[bad].astype(str),
                            "reason": r.reason[bad].astype(str)})
    keep = ~bad
    out = pd.DataFrame({"row": rows[keep], "specialist_id": sp[keep].astype(str), "date": day[keep],
                        "customer_id": ids[keep].astype(str), "arrival": arr[keep]})
    return out.reset_index(drop=True), rejects

