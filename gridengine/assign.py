"""Assign: exactly one specialist per grid, within capacity, near their base.

Solver choice: OR-Tools min-cost flow (``SimpleMinCostFlow``). Staffing grids with
specialists is a bipartite assignment with side constraints that are all
*eligibility* rules (a specialist may take a grid only if the grid's workload fits
their capacity), so it is a min-cost flow problem whose optimum is integral: the
solver proves optimality in polynomial time, is deterministic, and scales to
thousands of grids and specialists, which CP-SAT would only match with extra tuning.

Network: source → grid (capacity 1) → eligible specialist (cost = travel in metres
from base to grid centre, minus a continuity bonus when the specialist already serves
that grid) → sink; plus grid → "unstaffed" → sink at a cost higher than any full
staffing, so the solver first staffs as many grids as possible, then minimises travel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from .cells import haversine_km
from .errors import CapacityShortfallError, SolverError

__all__ = ["AssignmentResult", "assign_specialists", "design_capacity"]

logger = logging.getLogger(__name__)


def design_capacity(specialists: pd.DataFrame) -> float:
    """The grid design capacity for a roster: its most common capacity (the larger on ties)."""
    counts = specialists["capacity"].round(6).value_counts()
    top = counts[counts == counts.max()].index
    return float(max(top))


@dataclass
class AssignmentResult:
    """Output of :func:`assign_specialists`.

    Attributes
    ----------
    grid_specialist
        ``grid_id`` → ``specialist_id`` ('' where unstaffed), in the grids' order.
    status
        Solver status name (``"OPTIMAL"``).
    objective_m
        Total cost of the staffed assignment in metres (travel minus continuity bonuses).
    unstaffed
        Grid ids left without a specialist.
    spare
        Specialist ids without a grid.
    messages
        Staffing problems in domain terms (which grid, by how much).
    """

    grid_specialist: pd.Series
    status: str
    objective_m: int
    unstaffed: list[str] = field(default_factory=list)
    spare: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def assign_specialists(
    grids: pd.DataFrame,
    specialists: pd.DataFrame,
    *,
    continuity_bonus_km: float = 5.0,
    require_full_staffing: bool = False,
) -> AssignmentResult:
    """Staff grids with specialists by min-cost flow.

    Parameters
    ----------
    grids
        ``grid_id``, ``workload``, ``centre_lat``, ``centre_lon``; one row per grid.
    specialists
        ``specialist_id``, ``lat``, ``lon``, ``capacity``, ``current_grid``.
    continuity_bonus_km
        Bonus (km of travel) for keeping a specialist on their ``current_grid``.
    require_full_staffing
        Raise instead of reporting unstaffed grids.

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
    eligible = cap[None, :] >= gw[:, None] - 1e-9  # grid x specialist
    dist_km = haversine_km(
        grids["centre_lat"].to_numpy()[:, None], grids["centre_lon"].to_numpy()[:, None],
        specialists["lat"].to_numpy()[None, :], specialists["lon"].to_numpy()[None, :],
    )
    cost = np.rint(dist_km * 1000.0).astype("int64")
    bonus = int(round(continuity_bonus_km * 1000))
    current = specialists["current_grid"].astype(str).to_numpy()
    same = current[None, :] == grids["grid_id"].astype(str).to_numpy()[:, None]
    cost = cost - np.where(same, bonus, 0) + bonus  # offset keeps every cost >= 0
    gi, si = np.nonzero(eligible)
    unstaffed_cost = int((cost.max(initial=0) + 1) * (ng + 1))
    smcf = min_cost_flow.SimpleMinCostFlow()
    source, sink, none_node = 0, 1, 2
    grid_node = 3 + np.arange(ng)
    spec_node = 3 + ng + np.arange(ns)
    tails = np.r_[np.full(ng, source), grid_node[gi], spec_node, grid_node, [none_node]]
    heads = np.r_[grid_node, spec_node[si], np.full(ns, sink), np.full(ng, none_node), [sink]]
    caps = np.r_[np.ones(ng), np.ones(len(gi)), np.ones(ns), np.ones(ng), [ng]].astype("int64")
    costs = np.r_[np.zeros(ng), cost[gi, si], np.zeros(ns), np.full(ng, unstaffed_cost), [0]].astype("int64")
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
    ids = specialists["specialist_id"].astype(str).to_numpy()
    grid_ids = grids["grid_id"].astype(str).to_numpy()
    out = pd.Series(np.where(spec_of_grid >= 0, ids[np.maximum(spec_of_grid, 0)], ""), index=grid_ids, name="specialist_id")
    objective = int(cost[gi[chosen], si[chosen]].sum() - bonus * len(chosen))
    unstaffed = grid_ids[spec_of_grid < 0].tolist()
    used = np.zeros(ns, dtype=bool)
    used[spec_of_grid[spec_of_grid >= 0]] = True
    spare = ids[~used].tolist()
    messages: list[str] = []
    if unstaffed:
        max_cap = float(cap.max()) if ns else 0.0
        too_heavy = [g for g, w in zip(grid_ids, gw) if w > max_cap + 1e-9]
        short_w = float(gw[spec_of_grid < 0].sum())
        messages.append(
            f"{len(unstaffed)} of {ng} grids unstaffed: {len(unstaffed)} specialist(s) missing, "
            f"{short_w:g} workload units uncovered (total capacity {cap.sum():g} vs workload {gw.sum():g}; "
            f"{ns} specialists for {ng} grids)"
        )
        for g in too_heavy[:10]:
            w = float(gw[list(grid_ids).index(g)])
            messages.append(f"grid {g} holds workload {w:g}, above every specialist's capacity (largest {max_cap:g}) by {w - max_cap:g}")
        if require_full_staffing:
            raise CapacityShortfallError("; ".join(messages) + " (full staffing was required)")
    logger.info("assign: %d grids, %d specialists: %d staffed, %d unstaffed, %d spare; travel objective %.1f km",
                ng, ns, ng - len(unstaffed), len(unstaffed), len(spare), objective / 1000)
    return AssignmentResult(out, "OPTIMAL", objective, unstaffed, spare, messages)
