"""The kept vehicle-routing solver: one small, generic VRPTW model solved with PyVRP.

The visits stage and the Solomon benchmark (``benchmarks/vrptw_bench.py``) both build a
:class:`RoutingProblem` and call :func:`solve_routing`, so the routing quality measured on the
published instances is the quality of the visits' routes.

Everything is integer (PyVRP works in integers): the caller chooses the units (the visits
stage uses metres and seconds; the Solomon benchmark tenths, per the DIMACS convention).

Why PyVRP and not OR-Tools routing: on the Solomon instances, with the same time per
instance, PyVRP's iterated local search reaches far smaller gaps to the best-known costs
(the figures are in the README and in ``benchmarks/vrptw_bench.py --solver ortools``), and it
stops after a fixed number of iterations, which makes its result reproducible run to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SolverError

__all__ = ["RoutingProblem", "Route", "solve_routing"]


@dataclass
class RoutingProblem:
    """A VRPTW with one depot, optional clients with prizes and mutually exclusive client groups.

    Attributes
    ----------
    distance, duration : numpy.ndarray
        ``(n_loc, n_loc)`` integer matrices between locations; location 0 is the depot.
    client_loc : numpy.ndarray
        Location of each client (int, >= 1). Several clients may share one location
        (the visits stage makes one client per customer and day, all at the customer's home).
    service, tw_early, tw_late : numpy.ndarray
        Service duration and time window (start of service) of each client.
    demand : numpy.ndarray or None
        Demand of each client; ``None``: no capacity constraint.
    prize : numpy.ndarray or None
        Prize of each client; ``None``: every client is required.
    group : numpy.ndarray or None
        Group of each client (``-1``: none). The clients of a group are mutually exclusive
        (at most one is visited); groups are optional, their clients carrying the prizes.
    required : numpy.ndarray or None
        Which clients must be visited when prizes are given (``None``: none; never in a group).
    vehicles : list of tuple
        One ``(count, capacity, tw_early, tw_late)`` per vehicle type (capacity ignored without
        demand). The time window bounds the route's departure and return at the depot.
    """

    distance: np.ndarray
    duration: np.ndarray
    client_loc: np.ndarray
    service: np.ndarray
    tw_early: np.ndarray
    tw_late: np.ndarray
    vehicles: list[tuple[int, int, int, int]]
    demand: np.ndarray | None = None
    prize: np.ndarray | None = None
    group: np.ndarray | None = None
    required: np.ndarray | None = None
    coords: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_clients(self) -> int:
        """Number of clients."""
        return len(self.client_loc)


@dataclass
class Route:
    """One vehicle's route: its vehicle type, clients in order, and service start times."""

    vehicle_type: int
    clients: list[int]
    starts: list[int]
    depart: int
    back: int
    distance: int


def _model(p: RoutingProblem):
    import pyvrp

    m = pyvrp.Model()
    n_loc = p.distance.shape[0]
    xy = p.coords if p.coords is not None else np.zeros((n_loc, 2))
    locs = [m.add_location(float(xy[i, 0]), float(xy[i, 1])) for i in range(n_loc)]
    depot = m.add_depot(locs[0])
    with_load = p.demand is not None
    for count, cap, early, late in p.vehicles:
        m.add_vehicle_type(int(count), capacity=[int(cap)] if with_load else [], start_depot=depot,
                           end_depot=depot, tw_early=int(early), tw_late=int(late))
    groups: dict[int, object] = {}
    if p.group is not None:
        for g in np.unique(p.group[p.group >= 0]):
            groups[int(g)] = m.add_client_group(required=False)
    for i in range(p.n_clients):
        g = int(p.group[i]) if p.group is not None else -1
        m.add_client(
            locs[int(p.client_loc[i])], delivery=[int(p.demand[i])] if with_load else [],
            service_duration=int(p.service[i]), tw_early=int(p.tw_early[i]), tw_late=int(p.tw_late[i]),
            prize=int(p.prize[i]) if p.prize is not None else 0,
            required=p.prize is None or (p.required is not None and bool(p.required[i])),
            group=groups[g] if g >= 0 else None)
    dist, dur = p.distance, p.duration
    for a in range(n_loc):
        la = locs[a]
        da, ta = dist[a], dur[a]
        for b in range(n_loc):
            if a != b:
                m.add_edge(la, locs[b], int(da[b]), int(ta[b]))
    return m


def solve_routing(problem: RoutingProblem, *, iterations: int | None = None, time_limit: float | None = None,
                  no_improvement: int | None = None, seed: int = 0,
                  penalty_updates: int | None = None,
                  initial: list[tuple[int, list[int]]] | None = None,
                  neighbours: int | None = None) -> tuple[list[Route], bool]:
    """Solve a :class:`RoutingProblem` with PyVRP's iterated local search.

    Parameters
    ----------
    problem
        The instance.
    iterations
        Stop after this many iterations (reproducible: the same instance and seed give the same routes).
    time_limit
        Stop after this many seconds (not reproducible across machines; the benchmark's setting).
    no_improvement
        Also stop after this many iterations without improvement.
    seed
        Random seed.
    penalty_updates
        Solutions between updates of the infeasibility penalties (PyVRP's default 500 suits long runs;
        short runs with large prizes need the penalties to catch up sooner). Given, the penalties may
        also grow far higher than PyVRP's default cap, so that time warp never pays for a prize.
    initial
        A starting solution: ``(vehicle type, clients in order)`` per route (at most as many routes
        of a type as it has vehicles); the search starts from it instead of a random solution.
    neighbours
        Size of each client's granular neighbourhood (PyVRP's default 50); smaller is faster on
        instances whose clients are copies of the same places.

    Returns
    -------
    routes
        The non-empty routes, in PyVRP's order.
    feasible
        Whether the best solution found is feasible (time windows, capacity, every required client).

    Raises
    ------
    SolverError
        If no stopping criterion is given.
    """
    from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria, NoImprovement

    crit = []
    if iterations is not None:
        crit.append(MaxIterations(int(iterations)))
    if time_limit is not None:
        crit.append(MaxRuntime(float(time_limit)))
    if no_improvement is not None:
        crit.append(NoImprovement(int(no_improvement)))
    if not crit:
        raise SolverError("solve_routing needs iterations, time_limit or no_improvement")
    if problem.n_clients == 0:
        return [], True
    m = _model(problem)
    import warnings

    from pyvrp import PenaltyParams, SolveParams
    from pyvrp.search import NeighbourhoodParams

    kw: dict = {}
    if penalty_updates is not None:
        kw["penalty"] = PenaltyParams(solutions_between_updates=int(penalty_updates), max_penalty=1e9)
    if neighbours is not None:
        kw["neighbourhood"] = NeighbourhoodParams(num_neighbours=int(neighbours))
    params = SolveParams(**kw)
    start = None
    if initial:
        import pyvrp

        data = m.data()
        start = pyvrp.Solution(data, [pyvrp.Route(data, list(map(int, cl)), int(vt)) for vt, cl in initial if cl])
    with warnings.catch_warnings():  # the penalty-bound warning: feasibility is checked below
        warnings.simplefilter("ignore")
        res = m.solve(crit[0] if len(crit) == 1 else MultipleCriteria(crit), seed=int(seed), collect_stats=False,
                      display=False, params=params, initial_solution=start)
    best = res.best
    routes = []
    for rt in best.routes():
        sched = [a for a in rt.schedule() if a.is_client()]
        routes.append(Route(vehicle_type=int(rt.vehicle_type()), clients=[int(a.idx) for a in sched],
                            starts=[int(a.start_time) for a in sched], depart=int(rt.start_time()),
                            back=int(rt.end_time()), distance=int(rt.distance())))
    return routes, bool(best.is_feasible())
