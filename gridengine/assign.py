"""Assign: exactly one specialist per grid, within capacity, near their base.

Solver choice: OR-Tools min-cost flow (``SimpleMinCostFlow``). Staffing grids with
specialists is a bipartite assignment whose side constraints are all *eligibility*
rules (a specialist may take a grid only if its workload fits their capacity and the
planner's hard rules hold), so it is a min-cost flow problem with an integral optimum:
the solver proves optimality in polynomial time, is deterministic, and handles thousands
of grids and specialists in seconds, which CP-SAT would only match with extra tuning.

Network: source → grid (capacity 1) → eligible specialist (cost = travel from base to
grid centre, minus a continuity bonus when the specialist already serves that grid) →
sink; plus grid → "unstaffed" → sink at a cost higher than any full staffing, so the
solver first staffs as many grids as possible, then minimises travel. Costs are integers
in millionths of the travel unit (mm for km), so rounding cannot change the optimum
by more than a millionth.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from .cells import haversine_km
from .config import AssignConfig
from .errors import CapacityShortfallError, SolverError

__all__ = ["AssignmentResult", "StaffedGrids", "Rule", "assign_specialists", "staff_grids", "staffing_plan", "design_capacity", "grid_requirements", "presolve_checks"]

logger = logging.getLogger(__name__)

_SCALE = 1_000_000  # integer cost units per travel unit


def design_capacity(specialists: pd.DataFrame) -> float:
    """The grid design capacity for a roster: its most common capacity (the larger on ties)."""
    counts = specialists["capacity"].round(6).value_counts()
    top = counts[counts == counts.max()].index
    return float(max(top))


@dataclass(frozen=True)
class Rule:
    """A hard staffing rule from planner-marked columns.

    A grid *requires* each value of the customers' ``customer_column`` that at least
    ``min_share`` of its workload carries (e.g. a language, a required contract type); a
    specialist may take the grid only if their ``specialist_column`` lists every required
    value (several values separated by ``;`` or ``,``).
    """

    customer_column: str
    specialist_column: str
    min_share: float = 0.2

    def __post_init__(self) -> None:
        from .errors import ConfigError

        if not (0.0 < self.min_share <= 1.0):
            raise ConfigError(f"rule on {self.customer_column!r}: min_share must be in (0, 1], got {self.min_share}")


def _values(cell: object) -> frozenset[str]:
    if cell is None or (isinstance(cell, float) and cell != cell):
        return frozenset()
    return frozenset(v.strip() for v in str(cell).replace(",", ";").split(";") if v.strip())


def grid_requirements(customers: pd.DataFrame, grid_of_customer: np.ndarray, rules: list[Rule]) -> dict[str, list[frozenset]]:
    """For each rule, the set of values each grid requires.

    Parameters
    ----------
    customers
        Customers with ``workload`` and the rules' customer columns.
    grid_of_customer
        Grid id of each customer (same order).
    rules
        The rules.

    Returns
    -------
    dict
        ``{grid_id: [required values per rule]}``.
    """
    out: dict[str, list[frozenset]] = {}
    grids = pd.Series(grid_of_customer, dtype=object)
    for r_i, rule in enumerate(rules):
        col = customers[rule.customer_column].astype(object).where(customers[rule.customer_column].notna(), "")
        df = pd.DataFrame({"grid": grids.to_numpy(), "v": col.astype(str).str.strip().to_numpy(),
                           "w": customers["workload"].to_numpy()})
        total = df.groupby("grid")["w"].sum()
        per = df[df["v"] != ""].groupby(["grid", "v"])["w"].sum()
        share = per / total.reindex(per.index.get_level_values(0)).to_numpy()
        need = share[share >= rule.min_share - 1e-12]
        for g in total.index:
            out.setdefault(str(g), [frozenset()] * len(rules))
        for (g, v) in need.index:
            req = out[str(g)]
            req[r_i] = req[r_i] | {v}
    return out


@dataclass
class AssignmentResult:
    """Output of :func:`assign_specialists`.

    Attributes
    ----------
    grid_specialist
        ``grid_id`` → ``specialist_id`` ('' where unstaffed), in the grids' order.
    status
        Solver status name (``"OPTIMAL"``).
    objective
        Total travel of the staffed assignment minus continuity bonuses, in travel units
        (km, or minutes with a time-weighted road graph).
    unstaffed
        Grid ids left without a specialist.
    spare
        Specialist ids without a grid.
    messages
        Staffing problems in domain terms (which grid or specialist, by how much).
    travel
        Travel from each grid's specialist base to the grid centre (NaN where unstaffed).
    """

    grid_specialist: pd.Series
    status: str
    objective: float
    unstaffed: list[str] = field(default_factory=list)
    spare: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    travel: np.ndarray | None = None

    @property
    def objective_m(self) -> int:
        """The objective in metres (travel in km)."""
        return int(round(self.objective * 1000))


def presolve_checks(grids: pd.DataFrame, specialists: pd.DataFrame, travel: np.ndarray, eligible: np.ndarray,
                    *, max_base_distance: float, unit: str = "km") -> list[str]:
    """Staffing problems visible before solving, said in domain terms.

    Checks total capacity against total workload, grids no specialist can take (too heavy, or
    no one meets their rules), and specialists whose base is implausibly far from every grid.
    """
    msgs: list[str] = []
    gw = grids["workload"].to_numpy(dtype="float64")
    cap = specialists["capacity"].to_numpy(dtype="float64")
    ids = specialists["specialist_id"].astype(str).to_numpy()
    gids = grids["grid_id"].astype(str).to_numpy()
    if len(cap) and cap.sum() + 1e-9 < gw.sum():
        typical = float(np.median(cap)) if len(cap) else 0.0
        short = gw.sum() - cap.sum()
        msgs.append(f"total capacity {cap.sum():g} is below the total workload {gw.sum():g} by {short:g} "
                    f"(about {int(np.ceil(short / typical)) if typical else 0} specialist(s) at capacity {typical:g})")
    if len(grids) > len(specialists) > 0:
        msgs.append(f"{len(grids)} grids but only {len(specialists)} specialists: at least "
                    f"{len(grids) - len(specialists)} grid(s) stay unstaffed")
    max_cap = float(cap.max()) if len(cap) else 0.0
    for i in np.flatnonzero(~eligible.any(axis=1)).tolist():
        if gw[i] > max_cap + 1e-9:
            msgs.append(f"grid {gids[i]} holds workload {gw[i]:g}, above every specialist's capacity "
                        f"(largest {max_cap:g}) by {gw[i] - max_cap:g}")
        else:
            msgs.append(f"grid {gids[i]} (workload {gw[i]:g}): no specialist with enough capacity meets its staffing rules")
    if len(grids) and len(specialists):
        nearest = np.nanmin(np.where(np.isfinite(travel), travel, np.nan), axis=0) if np.isfinite(travel).any() else \
            np.full(len(specialists), np.inf)
        far = np.flatnonzero(~(nearest <= max_base_distance))
        for j in far[:20].tolist():
            d = nearest[j]
            where = f"{d:.1f} {unit} from the nearest grid centre" if np.isfinite(d) else "unreachable from every grid"
            msgs.append(f"specialist {ids[j]}: base is {where} (limit {max_base_distance:g} {unit}); check the address")
        if len(far) > 20:
            msgs.append(f"… and {len(far) - 20} more specialists with a base far from every grid")
    return msgs


def assign_specialists(
    grids: pd.DataFrame,
    specialists: pd.DataFrame,
    *,
    continuity_bonus_km: float = 5.0,
    require_full_staffing: bool = False,
    travel: np.ndarray | None = None,
    travel_unit: str = "km",
    requirements: dict[str, list[frozenset]] | None = None,
    rules: list[Rule] | tuple[Rule, ...] = (),
    max_base_distance: float = 30.0,
) -> AssignmentResult:
    """Staff grids with specialists by min-cost flow.

    Parameters
    ----------
    grids
        ``grid_id``, ``workload``, ``centre_lat``, ``centre_lon``; one row per grid.
    specialists
        ``specialist_id``, ``lat``, ``lon``, ``capacity``, ``current_grid``, and the rules'
        specialist columns.
    continuity_bonus_km
        Bonus (in travel units) for keeping a specialist on their ``current_grid``.
    require_full_staffing
        Raise instead of reporting unstaffed grids.
    travel
        Optional (grids × specialists) travel matrix (e.g. road distance or time from
        :func:`gridengine.travel.travel_matrix`); default great-circle km. ``inf`` = unreachable.
    travel_unit
        Unit of ``travel`` for messages (``"km"`` or ``"min"``).
    requirements
        Required values per grid and rule (:func:`grid_requirements`).
    rules
        The hard rules the requirements belong to.
    max_base_distance
        A specialist whose base is farther than this from every grid is reported.

    Returns
    -------
    AssignmentResult

    Raises
    ------
    CapacityShortfallError
        If ``require_full_staffing`` and some grid cannot be staffed; the message gives the
        headcount and workload short.
    SolverError
        If the solver fails (a bug, not a property of the data).
    """
    ng, ns = len(grids), len(specialists)
    gw = grids["workload"].to_numpy(dtype="float64")
    cap = specialists["capacity"].to_numpy(dtype="float64")
    gids = grids["grid_id"].astype(str).to_numpy()
    ids = specialists["specialist_id"].astype(str).to_numpy()
    if travel is None:
        travel = haversine_km(
            grids["centre_lat"].to_numpy()[:, None], grids["centre_lon"].to_numpy()[:, None],
            specialists["lat"].to_numpy()[None, :], specialists["lon"].to_numpy()[None, :],
        )
    travel = np.asarray(travel, dtype="float64").reshape(ng, ns)
    eligible = (cap[None, :] >= gw[:, None] - 1e-9) & np.isfinite(travel)
    if rules and requirements:
        offers = [[_values(v) for v in specialists[r.specialist_column].tolist()] for r in rules]
        for i, g in enumerate(gids):
            need = requirements.get(g)
            if not need:
                continue
            for r_i, req in enumerate(need):
                if req:
                    eligible[i] &= np.array([req <= have for have in offers[r_i]], dtype=bool)
    messages = presolve_checks(grids, specialists, travel, eligible, max_base_distance=max_base_distance,
                               unit=travel_unit)
    bonus = int(round(continuity_bonus_km * _SCALE))
    current = specialists["current_grid"].astype(str).to_numpy()
    same = current[None, :] == gids[:, None]
    gi, si = np.nonzero(eligible)
    arc_cost = np.rint(travel[gi, si] * _SCALE).astype("int64") - np.where(same[gi, si], bonus, 0) + bonus
    unstaffed_cost = int((int(arc_cost.max(initial=0)) + 1) * (ng + 1))
    smcf = min_cost_flow.SimpleMinCostFlow()
    source, sink, none_node = 0, 1, 2
    grid_node = 3 + np.arange(ng)
    spec_node = 3 + ng + np.arange(ns)
    tails = np.r_[np.full(ng, source), grid_node[gi], spec_node, grid_node, [none_node]]
    heads = np.r_[grid_node, spec_node[si], np.full(ns, sink), np.full(ng, none_node), [sink]]
    caps = np.r_[np.ones(ng), np.ones(len(gi)), np.ones(ns), np.ones(ng), [ng]].astype("int64")
    costs = np.r_[np.zeros(ng, dtype="int64"), arc_cost, np.zeros(ns, dtype="int64"),
                  np.full(ng, unstaffed_cost, dtype="int64"), [0]].astype("int64")
    smcf.add_arcs_with_capacity_and_unit_cost(tails.astype("int32"), heads.astype("int32"), caps, costs)
    supplies = np.zeros(3 + ng + ns, dtype="int64")
    supplies[source] = ng
    supplies[sink] = -ng
    smcf.set_nodes_supplies(np.arange(len(supplies), dtype="int32"), supplies)
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise SolverError(f"min-cost flow assignment failed with status {status}")
    flows = smcf.flows(np.arange(ng, ng + len(gi), dtype="int32"))
    chosen = np.flatnonzero(flows > 0)
    spec_of_grid = np.full(ng, -1, dtype="int64")
    spec_of_grid[gi[chosen]] = si[chosen]
    names = np.array([ids[j] if j >= 0 else "" for j in spec_of_grid.tolist()], dtype=object)
    out = pd.Series(names, index=gids, name="specialist_id", dtype=object)
    staffed = spec_of_grid >= 0
    grid_travel = np.full(ng, np.nan)
    grid_travel[staffed] = travel[np.flatnonzero(staffed), spec_of_grid[staffed]]
    objective = float(np.sum(grid_travel[staffed]) - continuity_bonus_km * np.count_nonzero(
        same[np.flatnonzero(staffed), spec_of_grid[staffed]]))
    unstaffed = gids[~staffed].tolist()
    used = np.zeros(ns, dtype=bool)
    used[spec_of_grid[staffed]] = True
    spare = ids[~used].tolist()
    if unstaffed:
        short_w = float(gw[~staffed].sum())
        messages.insert(0,
            f"{len(unstaffed)} of {ng} grids unstaffed: {len(unstaffed)} specialist(s) missing, "
            f"{short_w:g} workload units uncovered (total capacity {cap.sum():g} vs workload {gw.sum():g}; "
            f"{ns} specialists for {ng} grids)"
        )
        if require_full_staffing:
            raise CapacityShortfallError("; ".join(messages[:6]) + " (full staffing was required)")
    logger.info("assign: %d grids, %d specialists: %d staffed, %d unstaffed, %d spare; objective %.1f %s",
                ng, ns, ng - len(unstaffed), len(unstaffed), len(spare), objective, travel_unit)
    return AssignmentResult(out, "OPTIMAL", objective, unstaffed, spare, messages, grid_travel)


def staffing_plan(grids: pd.DataFrame, grid_adjacency: set[tuple[str, str]], *, zones=None,
                  districts: dict[str, str] | None = None) -> pd.DataFrame:
    """Where specialists are missing: one row per area.

    The area of a grid is its zone when zones are given (the grids' ``zone`` column, named as
    in the zones file; else the zone containing its centre), else its district (from the customers' ``district`` column), else its cluster: unstaffed
    grids that touch each other form one cluster (staffed grids are listed as "staffed").

    Parameters
    ----------
    grids
        ``grid_id``, ``specialist_id`` ('' if unstaffed), ``workload``, ``centre_lat``, ``centre_lon``.
    grid_adjacency
        Pairs of grid ids that share a border.
    zones
        Optional sequence of polygons (or one geometry) of the planner's areas; their names are
        ``zones.names`` when read by :func:`gridengine.ingest.read_zones`.
    districts
        Optional ``grid_id`` → district name.

    Returns
    -------
    DataFrame
        ``area``, ``grids``, ``staffed``, ``specialists_missing``, ``workload``,
        ``workload_uncovered``, ``unstaffed_grids`` (ids joined by spaces), sorted by area.
    """
    gid = grids["grid_id"].astype(str).to_numpy()
    unstaffed = (grids["specialist_id"].astype(str) == "").to_numpy()
    if "zone" in grids.columns and (grids["zone"].astype(str) != "").all():
        area = grids["zone"].astype(str).to_numpy(dtype=object)
    elif zones is not None:
        import shapely

        parts = list(zones) if isinstance(zones, (list, tuple)) else list(shapely.get_parts(zones))
        names = list(getattr(zones, "names", None) or [f"zone {i + 1}" for i in range(len(parts))])
        area = np.array(["outside zones"] * len(gid), dtype=object)
        lat, lon = grids["centre_lat"].to_numpy(), grids["centre_lon"].to_numpy()
        for i, z in enumerate(parts):
            inside = shapely.contains_xy(z, lon, lat) & (area == "outside zones")
            area[inside] = names[i]
    elif districts is not None:
        area = np.array([districts.get(g, "unknown") for g in gid], dtype=object)
    else:
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components

        pos = {g: i for i, g in enumerate(gid)}
        pairs = [(pos[a], pos[b]) for a, b in sorted(grid_adjacency) if unstaffed[pos[a]] and unstaffed[pos[b]]]
        n = len(gid)
        m = sp.csr_matrix((np.ones(len(pairs)), ([p[0] for p in pairs], [p[1] for p in pairs])), shape=(n, n))
        _, comp = connected_components(m, directed=False)
        area = np.array(["staffed"] * n, dtype=object)
        lat, lon = grids["centre_lat"].to_numpy(), grids["centre_lon"].to_numpy()
        for c in np.unique(comp[unstaffed]).tolist():
            members = np.flatnonzero((comp == c) & unstaffed)
            area[members] = (f"cluster around ({lat[members].mean():.4f}, {lon[members].mean():.4f}): "
                             f"{' '.join(gid[members][:3])}{' …' if len(members) > 3 else ''}")
    df = pd.DataFrame({"area": area, "grid_id": gid, "unstaffed": unstaffed,
                       "workload": grids["workload"].to_numpy(dtype="float64")})
    out = df.groupby("area", sort=True).agg(
        grids=("grid_id", "size"),
        staffed=("unstaffed", lambda u: int((~u).sum())),
        specialists_missing=("unstaffed", "sum"),
        workload=("workload", "sum"),
    ).reset_index()
    unc = df[df["unstaffed"]].groupby("area")["workload"].sum()
    out["workload_uncovered"] = [round(float(unc.get(a, 0.0)), 6) for a in out["area"]]
    out["workload"] = out["workload"].round(6)
    lists = df[df["unstaffed"]].groupby("area")["grid_id"].agg(lambda g: " ".join(sorted(g)))
    out["unstaffed_grids"] = [lists.get(a, "") for a in out["area"]]
    out["specialists_missing"] = out["specialists_missing"].astype("int64")
    return out


@dataclass
class StaffedGrids:
    """The assign stage's result (see :func:`staff_grids`).

    Attributes
    ----------
    grids
        The grids table with ``specialist_id`` (after ``grid_id``; '' where unstaffed) and
        ``capacity`` (the specialist's) added.
    result
        :func:`assign_specialists`'s result (spare specialists of the roster's sizing added).
    travel
        Base-to-grid travel on the road graph (grids staffed here × specialists), or None.
    unit
        The travel unit (``"km"``, or the road graph's).
    """

    grids: pd.DataFrame
    result: AssignmentResult
    travel: np.ndarray | None
    unit: str


def staff_grids(grids: pd.DataFrame, roster: pd.DataFrame, *, config: AssignConfig, caps: np.ndarray, sizing: Any = None,
                customers: pd.DataFrame | None = None, customer_grid: np.ndarray | None = None,
                locked: Any = None, road_graph: Any = None, require_full_staffing: bool = False) -> StaffedGrids:
    """The assign stage: one specialist per grid, and each grid's specialist and capacity in its table.

    Parameters
    ----------
    grids
        The grids stage's table (``grid_id``, ``workload``, ``centre_lat``, ``centre_lon``).
    roster
        The specialists planned with (``specialist_id``, ``lat``, ``lon``, ``current_grid``).
    config
        The assign config (rules, continuity bonus, base distance).
    caps
        Each specialist's usable capacity (roster order).
    sizing
        The roster's sizing when grids were drawn one per specialist used
        (:class:`~gridengine.partition.roster.RosterSizing`): only those are staffed, and its
        spares are named; None otherwise.
    customers, customer_grid
        The customers planned here and their grids (for staffing rules).
    locked
        Locked grids (:class:`~gridengine.locks.LockedGrids`): they keep their specialist.
    road_graph
        Optional road network (file or graph): travel is measured on it.
    require_full_staffing
        Raise when a grid stays unstaffed.

    Returns
    -------
    StaffedGrids
    """
    rules = list(config.rules)
    requirements = grid_requirements(customers, customer_grid, rules) if rules else None
    travel, unit = None, "km"
    # with a roster sized to, only the specialists used are staffed (the grids were drawn for them)
    staff = roster.assign(capacity=caps) if len(roster) else roster
    if sizing is not None:
        staff = staff.iloc[np.sort(sizing.used)]
    # locked grids keep their specialist: only the others are staffed here
    to_staff = grids.loc[~grids["grid_id"].isin(locked.ids)].reset_index(drop=True) if locked is not None else grids
    if road_graph is not None and len(staff):
        from .travel import read_road_graph, travel_matrix

        rg = read_road_graph(road_graph) if isinstance(road_graph, (str, Path)) else road_graph
        travel = travel_matrix(to_staff["centre_lat"].to_numpy(), to_staff["centre_lon"].to_numpy(),
                               staff["lat"].to_numpy(), staff["lon"].to_numpy(), graph=rg)
        unit = rg.unit
    ares = assign_specialists(to_staff, staff, continuity_bonus_km=config.continuity_bonus_km,
                              require_full_staffing=require_full_staffing, travel=travel, travel_unit=unit,
                              requirements=requirements, rules=rules,
                              max_base_distance=config.max_base_distance_km)
    if sizing is not None and len(sizing.spare):
        ares.spare = sorted(set(ares.spare) | set(roster["specialist_id"].astype(str).to_numpy()[sizing.spare]))
    grid_spec = ares.grid_specialist
    cap_of = staff.set_index("specialist_id")["capacity"]
    if locked is not None:
        grid_spec = pd.concat([grid_spec, pd.Series(locked.grids["specialist_id"].to_numpy(dtype=object),
                                                    index=locked.grids["grid_id"].to_numpy(dtype=object))])
        cap_of = pd.concat([cap_of, pd.Series(locked.capacity_of(), dtype="float64")])
    grids = grids.copy()
    grids.insert(1, "specialist_id", grid_spec.reindex(grids["grid_id"]).to_numpy().astype(str))
    grids["capacity"] = grids["specialist_id"].map(cap_of).astype("float64")
    return StaffedGrids(grids=grids, result=ares, travel=travel, unit=unit)
