"""Refinement by boundary moves, and the quality key that compares partitions.

Shared by the partitioners of :mod:`gridengine.partition`: :func:`refine` runs the compiled
boundary-move kernel (:func:`gridengine._kernels.refine_moves`) once, :func:`refine_portfolio`
runs it with each schedule of :data:`REFINE_SCHEDULES` and keeps the best result by
:func:`quality_key`."""

from __future__ import annotations

import math

import numpy as np

from .._kernels import refine_moves
from ._graph import Graph

__all__ = ["refine", "quality_key", "refine_portfolio", "REFINE_SCHEDULES", "REFINE_MAX_MOVES_PER_UNIT"]


#: Cap on refinement moves per call, per unit (ordinary cities make under 0.5; around many giant
#: compounds the compactness moves can cycle, 30-250 per unit, and the cap ends that).
REFINE_MAX_MOVES_PER_UNIT = 20


#: Penalty schedules tried by the refinement (see :func:`gridengine._kernels.refine_moves`): none
#: (strict balance, then compactness within the band) and two annealing schedules that let
#: compactness lead first. Lumpy cities reward different ones; the best result is kept.
REFINE_SCHEDULES: tuple[tuple[float, ...], ...] = (
    (),
    (16.0, 64.0, 256.0, 1024.0, 4096.0),
    (8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0),
)


def refine(g: Graph, labels: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
           tol: float, passes: int, locked: np.ndarray,
           annealing: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 256.0),
           home: np.ndarray | None = None, churn_w: float = 0.0) -> int:
    """Balance then compact all grids by boundary moves (compiled kernel), in place.

    Parameters
    ----------
    g
        The units' graph.
    labels
        Grid label (0..n_grids-1) of each unit, changed in place.
    n_grids
        Number of grids.
    target, upper
        Per grid: the workload it aims at and the most it may hold.
    tol
        Balance tolerance (grids aim at ±0.9 ``tol`` of their target).
    passes
        Most passes per phase (0: no moves).
    locked
        Units that never move.
    annealing
        Penalty schedule (see :data:`REFINE_SCHEDULES`).
    home
        Re-runs: each unit's grid in the previous plan (-1: none); moving a unit away costs ``churn_w``.
    churn_w
        Cost of moving a unit away from its ``home``.

    Returns
    -------
    int
        The number of moves.
    """
    if passes == 0 or n_grids < 2:
        return 0
    band = 0.9 * tol * target
    lo = target - band
    hi = np.minimum(target + band, upper)
    n_units = max(g.n, 1)
    eps = max(float(g.w.sum()) / n_units, 1e-6) * 0.05  # weight of empty land, so it shapes grids too
    # Penalty schedule: lambda * (excess)^2 is compared with workload x metres of distance; a
    # grid 5% off its band costs mu/400 of (mean workload x grid radius) at lambda = mu * R / mean.
    span = math.sqrt(max((g.x.max() - g.x.min()) * (g.y.max() - g.y.min()), 1.0) / max(n_grids, 1))
    lambdas = np.array([mu * span / max(float(target.max()), 1e-9) for mu in annealing], dtype=np.float64)
    if home is None:
        home = np.full(g.n, -1, dtype=np.int64)
    return int(refine_moves(g.indptr.astype(np.int64), g.indices.astype(np.int64), g.w, g.x, g.y, labels,
                            n_grids, lo, hi, upper.astype(np.float64), eps, passes, locked, lambdas,
                            home.astype(np.int64), float(churn_w), int(REFINE_MAX_MOVES_PER_UNIT * g.n + 1000)))


def quality_key(g: Graph, lab: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
                tol: float) -> tuple[int, int, float]:
    """The key partitions are compared by (smaller is better).

    Parameters
    ----------
    g
        The units' graph.
    lab
        Grid label (0..n_grids-1) of each unit.
    n_grids
        Number of grids.
    target, upper
        Per grid: the workload it aims at and the most it may hold.
    tol
        Balance tolerance.

    Returns
    -------
    tuple
        (grids over capacity, grids outside ±``tol`` of their target, workload-weighted distance
        to the grid centres, rounded to 3 decimals).
    """
    loads = np.bincount(lab, weights=g.w, minlength=n_grids)
    off = int(np.count_nonzero(np.abs(loads - target) > tol * target + 1e-9))
    cx = np.bincount(lab, weights=g.w * g.x, minlength=n_grids) / np.maximum(loads, 1e-12)
    cy = np.bincount(lab, weights=g.w * g.y, minlength=n_grids) / np.maximum(loads, 1e-12)
    cost = float((g.w * np.hypot(g.x - cx[lab], g.y - cy[lab])).sum())
    return int(np.count_nonzero(loads > upper + 1e-9)), off, round(cost, 3)


def refine_portfolio(g: Graph, labels: np.ndarray, n_grids: int, target: np.ndarray, upper: np.ndarray,
                     tol: float, passes: int, locked: np.ndarray) -> np.ndarray:
    """Refine with each schedule of :data:`REFINE_SCHEDULES` and keep the best result.

    Best = fewest grids over capacity, then fewest grids outside ±``tol`` of their target,
    then the smallest workload-weighted distance to grid centres (:func:`quality_key`); ties keep
    the earlier schedule.

    Parameters
    ----------
    g, n_grids, target, upper, tol, passes, locked
        As for :func:`refine`.
    labels
        Grid label of each unit (not changed).

    Returns
    -------
    numpy.ndarray
        The best refined labels.
    """
    best = None
    for sched in REFINE_SCHEDULES if passes else ((),):
        lab = labels.copy()
        refine(g, lab, n_grids, target, upper, tol, passes, locked, annealing=sched)
        key = quality_key(g, lab, n_grids, target, upper, tol)
        if best is None or key < best[0]:
            best = (key, lab)
    assert best is not None  # at least one schedule ran
    return best[1]
