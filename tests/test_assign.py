import itertools

import numpy as np
import pandas as pd
import pytest

import gridengine as ge
from gridengine.assign import assign_specialists, design_capacity
from gridengine.cells import haversine_km


def grids_table(ws, rng):
    n = len(ws)
    return pd.DataFrame({"grid_id": [f"G{i:02d}" for i in range(n)], "workload": ws,
                         "centre_lat": 22.5 + rng.random(n) / 10, "centre_lon": 114.0 + rng.random(n) / 10})


def roster(caps, rng, current=None):
    n = len(caps)
    return pd.DataFrame({"specialist_id": [f"S{i:02d}" for i in range(n)], "lat": 22.5 + rng.random(n) / 10,
                         "lon": 114.0 + rng.random(n) / 10, "capacity": caps,
                         "current_grid": current if current is not None else [""] * n})


def brute_force(g, s):
    best = None
    for perm in itertools.permutations(range(len(s)), len(g)):
        if all(s["capacity"].iat[j] >= g["workload"].iat[i] for i, j in enumerate(perm)):
            cost = sum(float(haversine_km(g["centre_lat"].iat[i], g["centre_lon"].iat[i],
                                          s["lat"].iat[j], s["lon"].iat[j])) for i, j in enumerate(perm))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_optimal_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    g = grids_table(rng.uniform(300, 1000, 4), rng)
    s = roster(rng.choice([500.0, 1000.0], 6), rng)
    res = assign_specialists(g, s, continuity_bonus_km=0)
    expect = brute_force(g, s)
    if expect is None:
        assert res.unstaffed
    else:
        assert not res.unstaffed and abs(res.objective - expect) <= 1e-6 * expect


def test_capacity_never_exceeded_and_shortfall_headcount():
    rng = np.random.default_rng(1)
    g = grids_table([900, 900, 900, 400, 400], rng)
    s = roster([1000, 1000, 500, 500], rng)
    res = assign_specialists(g, s)
    cap = s.set_index("specialist_id")["capacity"]
    for gid, sid in res.grid_specialist.items():
        if sid:
            assert cap[sid] >= g.set_index("grid_id").loc[gid, "workload"]
    assert len(res.unstaffed) == 1 and res.spare == []
    assert "1 of 5 grids unstaffed: 1 specialist(s) missing, 900 workload units uncovered" in res.messages[0]


def test_grid_heavier_than_everyone_is_named():
    rng = np.random.default_rng(2)
    res = assign_specialists(grids_table([700, 300], rng), roster([500, 500], rng))
    assert res.unstaffed == ["G00"]
    assert any("grid G00 holds workload 700, above every specialist's capacity (largest 500) by 200" in m
               for m in res.messages)


def test_require_full_staffing_raises():
    rng = np.random.default_rng(3)
    with pytest.raises(ge.CapacityShortfallError, match="full staffing was required"):
        assign_specialists(grids_table([500, 500, 500], rng), roster([1000, 1000], rng), require_full_staffing=True)


def test_continuity_keeps_current_grid():
    g = pd.DataFrame({"grid_id": ["G1", "G2"], "workload": [100.0, 100.0],
                      "centre_lat": [22.50, 22.52], "centre_lon": [114.0, 114.0]})
    # S1 lives next to G1 but currently serves G2; the bonus (5 km) outweighs the 2.2 km difference.
    s = pd.DataFrame({"specialist_id": ["S1", "S2"], "lat": [22.50, 22.51], "lon": [114.0, 114.0],
                      "capacity": [500.0, 500.0], "current_grid": ["G2", "G1"]})
    assert assign_specialists(g, s).grid_specialist.to_dict() == {"G1": "S2", "G2": "S1"}
    assert assign_specialists(g, s, continuity_bonus_km=0).grid_specialist.to_dict() == {"G1": "S1", "G2": "S2"}


def test_deterministic():
    rng = np.random.default_rng(4)
    g = grids_table(rng.uniform(100, 900, 30), rng)
    s = roster(rng.choice([500.0, 1000.0], 35), rng)
    a = assign_specialists(g, s)
    b = assign_specialists(g, s)
    assert a.grid_specialist.equals(b.grid_specialist)


def test_design_capacity_is_most_common():
    assert design_capacity(pd.DataFrame({"capacity": [1000, 1000, 500, 500, 500]})) == 500.0
    assert design_capacity(pd.DataFrame({"capacity": [1000, 500]})) == 1000.0
