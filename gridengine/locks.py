"""Locks: what a planner fixes before a plan is drawn.

A locks file (CSV, Excel or Parquet, read like every other input: header aliases, BOM, GBK,
``.xlsx``) has up to three columns, ``grid_id``, ``specialist_id`` and ``cell``; any of them may
be blank on a row, and other columns (a note, a reason) are ignored. Each row locks one thing:

``grid_id`` alone
    That grid of the previous plan stays exactly as it was: the same cells, the same customers,
    the same specialist. Needs the previous plan (``--previous``).
``specialist_id`` alone
    The grid that specialist held in the previous plan, locked as above (they stay on it).
``grid_id`` and ``specialist_id``
    As ``grid_id`` alone, and a check: the grid's specialist in the previous plan must be the one
    named.
``cell`` and ``grid_id``
    A cell pin (first plans): the cell is drawn into a grid that keeps that id; the grid may
    take more cells around it. The older ``cell,grid_id`` files are read this way unchanged.

A locked grid that shares its compound cell with dedicated grids (a location heavier than one
grid, split at customer level) is locked together with them. Locked grids leave the planning
of the rest: their specialists leave the roster, their cells and customers leave the city, and
the rest is planned around them as usual (to the roster when one is given).

Customers of a locked grid
    A customer of the previous plan who is still in the input at the same place (or elsewhere
    within the grid's cells) stays in it. A customer who falls in a locked grid's cells and was not
    in it (new, or moved there; never one of another grid still at their place) joins it while its
    specialist's capacity holds,
    in input-row order; the others go to the rejects with the reason (grid, specialist, capacity,
    locks row). A customer of a locked grid who moved out of its cells is planned with the rest;
    a customer who left the input leaves the grid (both said in the plan).

Errors name the file, the row as a spreadsheet shows it (the header is row 1) and the column.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd

from .errors import InputError

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["LOCK_COLUMNS", "GridLock", "Locks", "LockedGrids", "LockedCustomers", "read_locks", "resolve_locks", "set_apart",
           "take_locked_customers", "locked_neighbours"]

logger = logging.getLogger(__name__)

#: The columns of a locks file (each may be blank on a row).
LOCK_COLUMNS = ("grid_id", "specialist_id", "cell")

#: Distance in degrees (about 10 cm) within which a customer counts as still at their previous place.
_SAME_PLACE_DEG = 1e-6


@dataclass(frozen=True)
class GridLock:
    """One row of a locks file that locks a whole grid (by ``grid_id``, ``specialist_id`` or both)."""

    row: int
    grid_id: str
    specialist_id: str

    @property
    def column(self) -> str:
        """The column the lock is given in (``grid_id`` when both are)."""
        return "grid_id" if self.grid_id else "specialist_id"


@dataclass
class Locks:
    """A locks file as read (rows checked on their own, before any plan is known).

    Attributes
    ----------
    source
        The file as given (or ``"locks table"``), for messages.
    grids
        Rows locking a whole grid of the previous plan, in file order.
    cells
        Cell pins: ``cell`` (H3 string), ``grid_id``, ``row``; one row per distinct cell.
    """

    source: str
    grids: list[GridLock] = field(default_factory=list)
    cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"cell": pd.Series(dtype=object), "grid_id": pd.Series(dtype=object), "row": pd.Series(dtype="int64")}))

    def __len__(self) -> int:
        return len(self.grids) + len(self.cells)


def _error(source: str, row: int, column: str | None, message: str) -> InputError:
    where = f"{source}: row {row}" + (f", column {column!r}" if column else "")
    return InputError(f"{where}: {message}", path=source, row=row, field=column)


def read_locks(locked: str | Path | pd.DataFrame, *, encoding: str = "auto", sheet: str = "",
               columns: str | dict[str, str] | None = None) -> Locks:
    """Read and check a locks file or table (see the module docstring for the format).

    Parameters
    ----------
    locked
        A file (CSV, ``.xlsx``, Parquet) or a table with some of ``grid_id``, ``specialist_id``,
        ``cell`` (or their aliases, e.g. 网格编号, 专员编号, h3).
    encoding
        Text encoding of a CSV (``"auto"``: UTF-8, then GB18030).
    sheet
        The worksheet of an Excel file (``""``: the first).
    columns
        The planner's header mapping (``input.columns``), as for the other inputs.

    Returns
    -------
    Locks
        The grid locks and cell pins, rows numbered as a spreadsheet shows them (header = row 1).

    Raises
    ------
    InputError
        Naming the file, row and column: no lock column, a cell without its grid, a cell with a
        specialist, a value that is not an H3 cell, a cell locked to two grids.
    """
    from .ingest import apply_mapping, as_text, normalise_columns, read_raw

    if isinstance(locked, pd.DataFrame):
        source, first_row = "locks table", 2
        df = normalise_columns(locked, source)
    else:
        source = str(locked)
        raw = read_raw(Path(locked), encoding, sheet=sheet, keep_blank_rows=True)
        first_row = int(raw.attrs.get("first_row", 2))  # the header is the row above
        df = normalise_columns(raw, source)
    df = apply_mapping(df, "locked", columns, source)
    have = [c for c in LOCK_COLUMNS if c in df.columns]
    found = ", ".join(map(str, df.columns[:12])) or "none"
    header_row = first_row - 1
    if not have:
        near = [n for c in LOCK_COLUMNS for n in difflib.get_close_matches(c, list(map(str, df.columns)), n=1,
                                                                          cutoff=0.6)]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise _error(source, header_row, None, f"no lock column: a locks file needs grid_id, specialist_id or cell "
                                      f"(columns found: {found}){hint}")
    if "cell" in df.columns and "grid_id" not in df.columns:
        raise _error(source, header_row, "grid_id", f"required column 'grid_id' is missing: a locked cell names the grid it "
                                           f"is locked to (columns found: {found})")
    n = len(df)
    blank = pd.Series([""] * n, index=df.index, dtype=object)
    g_ = as_text(df["grid_id"]).tolist() if "grid_id" in df.columns else blank.tolist()
    s_ = as_text(df["specialist_id"]).tolist() if "specialist_id" in df.columns else blank.tolist()
    c_ = as_text(df["cell"]).tolist() if "cell" in df.columns else blank.tolist()
    grids: list[GridLock] = []
    pins: dict[str, tuple[str, int]] = {}
    for i, (g, s, c) in enumerate(zip(g_, s_, c_)):
        row = i + first_row  # as a spreadsheet shows it (the header is the row above the first)
        if not (g or s or c):
            continue  # a blank row
        if not c:
            grids.append(GridLock(row, g, s))
            continue
        if s:
            raise _error(source, row, "specialist_id", f"cell {c} is locked to a grid, not to a specialist: leave "
                                                       "specialist_id blank on a cell's row (to lock a specialist's "
                                                       "whole grid, give specialist_id alone on a row of its own)")
        if not g:
            raise _error(source, row, "grid_id", f"is empty: locked cell {c} must name the grid it is locked to")
        if not h3.is_valid_cell(c):
            raise _error(source, row, "cell", f"{c!r} is not an H3 cell")
        c = h3.int_to_str(h3.str_to_int(c))  # one spelling per cell
        if c in pins and pins[c][0] != g:
            raise _error(source, row, "grid_id", f"cell {c} is locked to both {pins[c][0]} (row {pins[c][1]}) and {g}")
        pins.setdefault(c, (g, row))
    cells = pd.DataFrame({"cell": pd.Series(list(pins), dtype=object),
                          "grid_id": pd.Series([v[0] for v in pins.values()], dtype=object),
                          "row": pd.Series([v[1] for v in pins.values()], dtype="int64")})
    logger.info("locks: %s: %d grid lock(s), %d cell pin(s)", source, len(grids), len(cells))
    return Locks(source, grids, cells)


@dataclass
class LockedGrids:
    """Grids of a previous plan kept exactly as they were (output of :func:`resolve_locks`).

    Attributes
    ----------
    source
        The locks file, for messages.
    grids
        One row per locked grid, sorted by ``grid_id``: ``grid_id``, ``specialist_id``,
        ``capacity`` (the specialist's capacity in this run), ``row`` and ``column`` (the locks
        row and column that locked it), ``locked_with`` (the grid whose lock took this one along:
        a dedicated grid sharing its compound cell; '' when locked itself), ``territory`` (the
        grid owning its cells: itself, or the grid whose compound cell a dedicated grid shares),
        ``shared_cell`` (a dedicated grid's compound cell, H3; '' for the others).
    cells
        The locked territory: ``cell`` (H3 string), ``cell_int`` (uint64), ``grid_id``, sorted by cell.
    specialists
        The locked grids' specialists as the previous plan had them: ``specialist_id``, ``lat``,
        ``lon``, ``capacity``.
    zone
        Each locked grid's zone in the previous plan (grid id → name; empty without zones).
    bridges
        The previous plan's bridges and zone links within the locked grids (cell, cell).
    bridge_records
        The previous plan's ``metrics["bridges"]`` entries of the locked grids.
    """

    source: str
    grids: pd.DataFrame
    cells: pd.DataFrame
    specialists: pd.DataFrame
    zone: dict[str, str] = field(default_factory=dict)
    bridges: list[tuple[str, str]] = field(default_factory=list)
    bridge_records: list[dict] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The locked grid ids, sorted."""
        return self.grids["grid_id"].astype(str).tolist()

    def capacity_of(self) -> dict[str, float]:
        """Locked specialist → capacity."""
        return dict(zip(self.grids["specialist_id"].astype(str), self.grids["capacity"].astype(float)))


def _dedicated_parents(previous: Plan) -> dict[str, str]:
    """Each dedicated grid of the previous plan (no territory of its own) → the grid owning its shared cell."""
    territorial = set(previous.cells["grid_id"].astype(str))
    ded = [g for g in previous.grids["grid_id"].astype(str) if g not in territorial]
    if not ded:
        return {}
    owner = dict(zip(previous.cells["cell"].astype(str), previous.cells["grid_id"].astype(str)))
    a = previous.assignments
    a = a[a["grid_id"].astype(str).isin(ded)]
    out = {}
    for g, cells in a.groupby(a["grid_id"].astype(str))["cell"]:
        owners = sorted({owner.get(str(c), "") for c in cells} - {""})
        out[g] = owners[0] if owners else g.rsplit("-S", 1)[0]
    for g in ded:  # a dedicated grid whose customers all left: its name says whose cell it shared
        out.setdefault(g, g.rsplit("-S", 1)[0])
    return out


def resolve_locks(locks: Locks, previous: Plan | None, roster: pd.DataFrame | None, *,
                  capacity_limit: float | None = None) -> LockedGrids | None:
    """The grids a locks file keeps whole, checked against the previous plan and the roster.

    Parameters
    ----------
    locks
        From :func:`read_locks`.
    previous
        The previous plan (needed by grid and specialist locks).
    roster
        This run's specialists (``specialist_id``, ``capacity``), or None (no roster: the locked
        grids keep their specialist with the previous plan's capacity).
    capacity_limit
        ``partition.capacity`` when set with a roster: caps each specialist's capacity, as for the
        rest of the roster.

    Returns
    -------
    LockedGrids or None
        None when the file locks no whole grid.

    Raises
    ------
    InputError
        Naming the locks file, row and column: grid locks without a previous plan, cell pins with
        one, a grid or specialist not in the previous plan, a specialist who held no grid, a grid
        without a specialist, a grid whose specialist is not named as given, a locked specialist
        who is not in the roster.
    """
    src = locks.source
    if previous is None:
        if locks.grids:
            lk = locks.grids[0]
            what = f"grid {lk.grid_id}" if lk.grid_id else f"specialist {lk.specialist_id}'s grid"
            raise _error(src, lk.row, lk.column, f"{what} is locked as it was in the previous plan, but no previous "
                                                 "plan is given (--previous PLAN_DIR)")
        return None
    if len(locks.cells):
        r = locks.cells.sort_values("row").iloc[0]
        raise _error(src, int(r["row"]), "cell", f"cell {r['cell']} is pinned to grid {r['grid_id']}: cell pins "
                                                 "shape a first plan; with a previous plan, lock whole grids by "
                                                 "grid_id or specialist_id (a re-run keeps every cell in its grid "
                                                 "unless balance or capacity force a move)")
    if not locks.grids:
        return None
    prev_grids = previous.grids.assign(grid_id=previous.grids["grid_id"].astype(str),
                                       specialist_id=previous.grids["specialist_id"].astype(str))
    spec_of = dict(zip(prev_grids["grid_id"], prev_grids["specialist_id"]))
    prev_specs = previous.specialists.assign(specialist_id=previous.specialists["specialist_id"].astype(str),
                                             grid_id=previous.specialists["grid_id"].astype(str))
    grid_of_spec = {s: g for g, s in spec_of.items() if s}
    known_specs = set(prev_specs["specialist_id"]) | set(grid_of_spec)
    parents = _dedicated_parents(previous)
    children: dict[str, list[str]] = {}
    for d, p_ in sorted(parents.items()):
        children.setdefault(p_, []).append(d)
    in_roster = None if roster is None else dict(zip(roster["specialist_id"].astype(str),
                                                     roster["capacity"].astype(float)))
    prev_cap = dict(zip(prev_specs["specialist_id"], prev_specs["capacity"].astype(float)))
    if "capacity" in prev_grids.columns:
        for s, c in zip(prev_grids["specialist_id"], prev_grids["capacity"]):
            if s and s not in prev_cap and pd.notna(c):
                prev_cap[s] = float(c)
    rows: dict[str, dict] = {}
    for lk in locks.grids:
        g = lk.grid_id
        if g and g not in spec_of:
            near = difflib.get_close_matches(g, sorted(spec_of), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise _error(src, lk.row, "grid_id", f"grid {g} is not in the previous plan ({len(spec_of)} grids){hint}")
        if lk.specialist_id:
            s = lk.specialist_id
            if s not in known_specs:
                near = difflib.get_close_matches(s, sorted(known_specs), n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise _error(src, lk.row, "specialist_id", f"specialist {s} is not in the previous plan{hint}")
            if g and spec_of[g] != s:
                had = f"specialist {spec_of[g]}" if spec_of[g] else "no specialist"
                raise _error(src, lk.row, "specialist_id", f"grid {g} had {had} in the previous plan, not {s}: a "
                                                           "lock keeps a grid with its own specialist (give grid_id "
                                                           "or specialist_id alone)")
            if not g:
                if s not in grid_of_spec:
                    raise _error(src, lk.row, "specialist_id", f"specialist {s} held no grid in the previous plan "
                                                               "(spare): there is no territory to lock")
                g = grid_of_spec[s]
        home = parents.get(g, g)
        for member in [home] + children.get(home, []):
            if member in rows:
                continue
            s = spec_of[member]
            with_ = "" if member == g else g
            label = f"grid {member}" if not with_ else (f"grid {member} (locked with grid {g}: they share a "
                                                        "compound cell split into dedicated grids)")
            if not s:
                raise _error(src, lk.row, lk.column, f"{label} had no specialist in the previous plan (unstaffed): a "
                                                     "locked grid keeps its specialist, so only staffed grids can be "
                                                     "locked")
            if in_roster is not None and s not in in_roster:
                raise _error(src, lk.row, lk.column, f"{label} is locked with its specialist {s}, who is not in the "
                                                     "roster (resigned?): unlock the grid, or add the specialist back")
            cap = in_roster[s] if in_roster is not None else prev_cap.get(s, float("nan"))
            if capacity_limit is not None:
                cap = min(cap, float(capacity_limit))
            rows[member] = {"grid_id": member, "specialist_id": s, "capacity": float(cap), "row": lk.row,
                            "column": lk.column, "locked_with": with_, "territory": home}
    grids = pd.DataFrame(sorted(rows.values(), key=lambda r: r["grid_id"]))
    # a dedicated grid's territory is the compound cell it shares (where its customers were)
    ded = grids.loc[grids["grid_id"] != grids["territory"], "grid_id"].tolist()
    a = previous.assignments
    a = a.loc[a["grid_id"].astype(str).isin(ded)]
    shared = a.groupby(a["grid_id"].astype(str))["cell"].agg(lambda c: str(sorted(c.astype(str))[0]))
    grids["shared_cell"] = [str(shared.get(g, "")) if g in ded else "" for g in grids["grid_id"]]
    pc = previous.cells
    terr = pc[pc["grid_id"].astype(str).isin(set(grids["territory"]))]
    cells = pd.DataFrame({"cell": terr["cell"].astype(str).to_numpy(),
                          "cell_int": np.array([h3.str_to_int(c) for c in terr["cell"].astype(str)], dtype="uint64"),
                          "grid_id": terr["grid_id"].astype(str).to_numpy()})
    cells = cells.sort_values("cell_int", kind="stable").reset_index(drop=True)
    specs = prev_specs.set_index("specialist_id")
    locked_specs = grids["specialist_id"].tolist()
    sp = pd.DataFrame({"specialist_id": locked_specs,
                       "lat": [float(specs.at[s, "lat"]) if s in specs.index else np.nan for s in locked_specs],
                       "lon": [float(specs.at[s, "lon"]) if s in specs.index else np.nan for s in locked_specs],
                       "capacity": grids["capacity"].to_numpy(dtype="float64")})
    zone = {}
    if "zone" in prev_grids.columns:
        zmap = dict(zip(prev_grids["grid_id"], prev_grids["zone"].astype(str)))
        zone = {g: zmap.get(g, "") for g in grids["grid_id"]}
    inside = set(cells["cell"])
    m = previous.metrics or {}
    bridges, records = [], []
    for key in ("bridges", "zone_links"):
        for b in m.get(key) or []:
            a_, b_ = str(b.get("from_cell", "")), str(b.get("to_cell", ""))
            if a_ in inside and b_ in inside:
                bridges.append((a_, b_))
                if key == "bridges":
                    records.append(dict(b))
    logger.info("locks: %d grid(s) of the previous plan locked (%d cells)", len(grids), len(cells))
    return LockedGrids(src, grids, cells, sp, zone, bridges, records)


@dataclass
class LockedCustomers:
    """Customers sorted between the locked grids and the rest (output of :func:`take_locked_customers`).

    Attributes
    ----------
    rest
        The located customers left to plan (same columns as given).
    held
        The locked grids' customers: the given columns plus ``grid_id`` (str) and ``cell`` (uint64).
    rejects
        Customers in a locked grid's cells beyond its specialist's capacity: ``customer_id``,
        ``row``, ``reason``.
    records
        One dict per locked grid (for ``metrics["locks"]``): ``grid_id``, ``specialist_id``,
        ``locked_by`` (``"grid_id"``, ``"specialist_id"`` or ``"with <grid>"``), ``row``,
        ``n_cells``, ``n_customers``, ``workload``, ``capacity``, ``joined`` (customers new to the
        grid), ``turned_away``, ``moved_out``, ``departed``.
    notes
        What happened to whom, in words (plan warnings).
    """

    rest: pd.DataFrame
    held: pd.DataFrame
    rejects: pd.DataFrame
    records: list[dict]
    notes: list[str]


def take_locked_customers(locked: LockedGrids, located: pd.DataFrame, previous: Plan, *,
                          max_res: int) -> LockedCustomers:
    """Sort located customers into the locked grids and the rest (the rules in the module docstring).

    Parameters
    ----------
    locked
        From :func:`resolve_locks`.
    located
        Located customers: ``customer_id``, ``lat``, ``lon``, ``workload``, ``row``.
    previous
        The previous plan (its assignments say who was where).
    max_res
        :func:`gridengine.cells.refine_resolution` of the run, so that a point falls in a locked
        cell exactly when :func:`gridengine.cells.build_cells` would place it there.

    Returns
    -------
    LockedCustomers

    Raises
    ------
    InputError
        A locked grid whose continuing customers alone exceed its specialist's capacity in this
        run (the locks file, row and column named): a locked grid keeps its customers, so it cannot
        be kept within capacity; unlock it or raise the capacity.
    """
    from .cells import points_in_cells

    src = locked.source
    info = locked.grids.set_index("grid_id")
    ids = set(info.index)
    n = len(located)
    cid = located["customer_id"].astype(str).to_numpy()
    lat = located["lat"].to_numpy(dtype="float64")
    lon = located["lon"].to_numpy(dtype="float64")
    w = located["workload"].to_numpy(dtype="float64")
    before = previous.assignments.assign(customer_id=previous.assignments["customer_id"].astype(str),
                                         grid_id=previous.assignments["grid_id"].astype(str))
    before = before.drop_duplicates("customer_id").set_index("customer_id")
    pos = before.index.get_indexer(cid)
    cont = pos >= 0
    prev_grid = np.full(n, "", dtype=object)
    prev_grid[cont] = before["grid_id"].to_numpy()[pos[cont]]
    was_locked = np.isin(prev_grid, list(ids))
    same = np.zeros(n, dtype=bool)
    same[cont] = ((np.abs(before["lat"].to_numpy(dtype="float64")[pos[cont]] - lat[cont]) <= _SAME_PLACE_DEG)
                  & (np.abs(before["lon"].to_numpy(dtype="float64")[pos[cont]] - lon[cont]) <= _SAME_PLACE_DEG))
    grid = np.full(n, "", dtype=object)
    cell = np.zeros(n, dtype="uint64")
    # continuing customers of a locked grid at their previous place keep their grid and cell
    stay = was_locked & same
    if stay.any():
        grid[stay] = prev_grid[stay]
        cell[stay] = np.array([h3.str_to_int(str(c)) for c in before["cell"].to_numpy()[pos[stay]]], dtype="uint64")
    # new customers and those who moved: the locked cell holding their point, if any, as cells are built
    # (a continuing customer of another grid at their previous place never moves into a locked grid)
    lc = locked.cells
    owner_of = dict(zip(lc["cell_int"].tolist(), lc["grid_id"].tolist()))
    territory = lc["cell_int"].to_numpy(dtype="uint64")
    hit_cell = np.zeros(n, dtype="uint64")
    todo = np.flatnonzero(~(cont & same))
    if len(todo) and len(territory):
        where = points_in_cells(lat[todo], lon[todo], territory, max_res=max_res)
        found = where >= 0
        hit_cell[todo[found]] = territory[where[found]]
    in_locked = hit_cell > 0
    hit_grid = np.array([owner_of.get(int(c), "") for c in hit_cell.tolist()], dtype=object)
    # a customer of a locked grid who moved within its territory stays in it
    family = dict(zip(info.index, info["territory"]))
    moved_within = was_locked & ~same & in_locked & (
        np.array([family.get(g, "") for g in prev_grid], dtype=object) == hit_grid)
    grid[moved_within] = prev_grid[moved_within]
    cell[moved_within] = hit_cell[moved_within]
    held_mask = stay | moved_within
    # the capacity of each locked grid, checked on the customers it keeps
    load = pd.Series(w[held_mask]).groupby(grid[held_mask]).sum() if held_mask.any() else pd.Series(dtype=float)
    caps = info["capacity"].astype(float)
    for g in sorted(ids):
        wl = float(load.get(g, 0.0))
        if wl > caps[g] + 1e-9:
            raise _error(src, int(info.at[g, "row"]), str(info.at[g, "column"]),
                         f"grid {g} keeps its customers (workload {wl:g}) but its specialist "
                         f"{info.at[g, 'specialist_id']} has capacity {caps[g]:g} in this run "
                         f"({wl - caps[g]:g} over): a locked grid cannot shed customers, so unlock it or raise "
                         "the specialist's capacity")
    loads = {g: float(load.get(g, 0.0)) for g in ids}
    # customers new to a locked grid's cells join while its specialist's capacity holds (input-row order)
    joining = np.flatnonzero(in_locked & ~held_mask)
    if len(joining):
        order = np.lexsort((cid[joining], located["row"].to_numpy()[joining]))
        joining = joining[order]
    turned: list[int] = []
    joined = {g: 0 for g in ids}
    away = {g: 0 for g in ids}
    for i in joining.tolist():
        g = hit_grid[i]
        if loads[g] + w[i] <= caps[g] + 1e-9:
            loads[g] += w[i]
            grid[i] = g
            cell[i] = hit_cell[i]
            held_mask[i] = True
            joined[g] += 1
        else:
            turned.append(i)
            away[g] += 1
    turned_arr = np.array(turned, dtype="int64")
    rows_ = located["row"].to_numpy()
    rejects = pd.DataFrame({
        "customer_id": pd.Series(cid[turned_arr], dtype=object),
        "row": pd.Series(rows_[turned_arr], dtype="int64"),
        "reason": pd.Series([
            f"in locked grid {hit_grid[i]} (cell {h3.int_to_str(int(hit_cell[i]))}), whose specialist "
            f"{info.at[hit_grid[i], 'specialist_id']} is at capacity ({caps[hit_grid[i]]:g}); locked by "
            f"{src} row {int(info.at[hit_grid[i], 'row'])}" for i in turned_arr.tolist()], dtype=object),
    })
    out = np.zeros(n, dtype=bool)
    out[turned_arr] = True
    moved_out = was_locked & ~held_mask & ~out
    held = located.loc[held_mask].copy()
    held["grid_id"] = grid[held_mask].astype(str)
    held["cell"] = cell[held_mask]
    rest = located.loc[~held_mask & ~out].reset_index(drop=True)
    held = held.reset_index(drop=True)
    # the record of each locked grid
    gone = before.loc[~before.index.isin(cid)]
    departed = gone["grid_id"].value_counts()
    n_cells = locked.cells.groupby("grid_id").size()
    cust_n = held["grid_id"].value_counts()
    cust_w = held.groupby("grid_id")["workload"].sum()
    moved_by = pd.Series(prev_grid[moved_out]).value_counts()
    records, notes = [], []
    for g in sorted(ids):
        with_ = str(info.at[g, "locked_with"])
        records.append({
            "grid_id": g, "specialist_id": str(info.at[g, "specialist_id"]),
            "locked_by": f"with {with_}" if with_ else str(info.at[g, "column"]), "row": int(info.at[g, "row"]),
            "n_cells": int(n_cells.get(g, 0)), "n_customers": int(cust_n.get(g, 0)),
            "workload": round(float(cust_w.get(g, 0.0)), 6), "capacity": float(caps[g]),
            "joined": int(joined[g]), "turned_away": int(away[g]), "moved_out": int(moved_by.get(g, 0)),
            "departed": int(departed.get(g, 0)),
        })
    full = [r for r in records if r["turned_away"]]
    if full:
        notes.append(f"{sum(r['turned_away'] for r in full)} customer(s) in locked grids' cells were turned away: "
                     + "; ".join(f"grid {r['grid_id']} ({r['specialist_id']}) is at capacity and turned away "
                                 f"{r['turned_away']}" for r in full[:10])
                     + " (rejects.csv names each; unlock the grid or raise the capacity to take them)")
    n_moved = int(moved_out.sum())
    if n_moved:
        notes.append(f"{n_moved} customer(s) of locked grids now live outside them and were planned with the rest")
    n_ded = [r["grid_id"] for r in records if r["locked_by"].startswith("with ")]
    if n_ded:
        notes.append(f"{len(n_ded)} grid(s) locked with the grid whose compound cell they share: {', '.join(n_ded[:10])}")
    logger.info("locks: %d customers kept in %d locked grids, %d joined, %d turned away, %d moved out", len(held),
                len(ids), sum(joined.values()), len(turned), n_moved)
    return LockedCustomers(rest, held, rejects, records, notes)


def locked_neighbours(cells: np.ndarray, locked: LockedGrids) -> list[str]:
    """The locked grids that touch any of the given cells (H3 neighbours, resolutions may differ).

    Parameters
    ----------
    cells
        H3 cells (uint64) of the planned rest of the city.
    locked
        From :func:`resolve_locks`.

    Returns
    -------
    list of str
        Locked grid ids, sorted.
    """
    import h3.api.basic_int as h3i

    from .cells import cell_resolution_vec

    lc = locked.cells
    owner = dict(zip(lc["cell_int"].tolist(), lc["grid_id"].tolist()))
    res_locked = sorted(set(cell_resolution_vec(lc["cell_int"].to_numpy(dtype="uint64")).tolist()))
    finer: dict[int, str] = {}  # ancestors of locked cells (a locked cell finer than a neighbour)
    for c, g in owner.items():
        for r in range(h3i.get_resolution(c)):
            finer.setdefault(h3i.cell_to_parent(c, r), g)
    out: set[str] = set()
    for c in np.asarray(cells, dtype="uint64").tolist():
        for nb in h3i.grid_disk(c, 1):
            if nb in owner:
                out.add(owner[nb])
            elif nb in finer:
                out.add(finer[nb])
            else:
                rn = h3i.get_resolution(nb)
                for r in res_locked:
                    if r < rn and (p_ := h3i.cell_to_parent(nb, r)) in owner:
                        out.add(owner[p_])
                        break
    return sorted(out)


def set_apart(locked: LockedGrids, located: pd.DataFrame, roster: pd.DataFrame, previous: Plan, *,
              max_res: int) -> tuple[LockedCustomers, pd.DataFrame]:
    """Take the locked grids out of the planning: their customers out of the city, their specialists
    out of the roster.

    Parameters
    ----------
    locked
        From :func:`resolve_locks`.
    located
        The located customers.
    roster
        The specialists (``specialist_id``).
    previous
        The previous plan.
    max_res
        The finest H3 resolution the cells stage may use (as :func:`take_locked_customers`).

    Returns
    -------
    (LockedCustomers, pandas.DataFrame)
        The customers sorted (:func:`take_locked_customers`), and the roster without the locked
        grids' specialists.

    Raises
    ------
    InputError
        The locked grids hold every customer.
    """
    rest_roster = roster.loc[~roster["specialist_id"].astype(str).isin(set(locked.grids["specialist_id"]))
                             ].reset_index(drop=True)
    taken = take_locked_customers(locked, located, previous, max_res=max_res)
    if len(taken.rest) == 0:
        raise InputError(f"{locked.source}: the locked grids hold every customer; nothing is left to plan",
                         path=locked.source)
    return taken, rest_roster
