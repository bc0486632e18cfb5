"""Planning to the roster: sizing, dual-track partitions, re-runs when specialists leave or join."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridengine as ge
from gridengine.cli import main
from gridengine.partition.core import grid_connectivity
from gridengine.partition.roster import MAX_FILL, partition_roster, partition_roster_rerun, size_to_roster


def lattice(nx: int, ny: int, rng: np.random.Generator, lumps: int = 0, lump: float = 0.0):
    """A square lattice of units (100 m apart) with workloads 0-3, and a few heavy units (compounds)."""
    x, y = np.meshgrid(np.arange(nx) * 100.0, np.arange(ny) * 100.0)
    x, y = x.ravel(), y.ravel()
    w = rng.integers(0, 4, size=nx * ny).astype(float)
    if lumps:
        w[rng.choice(nx * ny, size=lumps, replace=False)] = lump
    idx = np.arange(nx * ny).reshape(ny, nx)
    src = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    dst = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    return w, x, y, (src, dst)


def test_sizing_uses_everyone_when_the_work_needs_them():
    rng = np.random.default_rng(0)
    w, x, y, _ = lattice(20, 20, rng)
    caps = np.full(10, w.sum() / (10 * 0.91))
    s = size_to_roster(w, x, y, caps, x[:10], y[:10])
    assert len(s.used) == 10 and len(s.spare) == 0 and s.n_unstaffed == 0
    assert s.fill == pytest.approx(0.91)


def test_sizing_leaves_spares_only_on_a_real_surplus_and_names_them():
    rng = np.random.default_rng(1)
    w, x, y, _ = lattice(20, 20, rng)
    caps = np.full(20, w.sum() / (20 * 0.6))  # the roster would be 60% full
    s = size_to_roster(w, x, y, caps, x[::20], y[::20], names=[f"S{i}" for i in range(20)])
    assert len(s.spare) > 0 and s.fill <= 0.9 + 1e-9
    assert (len(s.used) - 1) * caps[0] * 0.9 < w.sum()  # no more spares than the fill allows
    assert any("spare" in n for n in s.notes)
    # a modest surplus (fill 85%) keeps everyone: a planner who adds people expects them to work
    caps2 = np.full(20, w.sum() / (20 * 0.85))
    assert len(size_to_roster(w, x, y, caps2, x[::20], y[::20]).spare) == 0


def test_sizing_of_a_short_roster_and_of_k():
    rng = np.random.default_rng(2)
    w, x, y, _ = lattice(20, 20, rng)
    caps = np.r_[np.full(7, 100.0), np.full(3, 60.0)]
    total = w.sum()
    s = size_to_roster(w, x, y, caps * total / (caps.sum() * 1.2), x[:10], y[:10], max_fill=MAX_FILL)
    assert s.n_unstaffed >= 1 and s.fill == MAX_FILL and len(s.unstaffed_x) == s.n_unstaffed
    big = caps * total / (caps.sum() * 0.8)
    k8 = size_to_roster(w, x, y, big, x[:10], y[:10], k=8)
    assert len(k8.used) == 8 and set(k8.spare.tolist()) <= set(range(7, 10)) | set(range(7))
    assert big[k8.spare].max() <= big[k8.used].min()  # the smallest capacities are left out first
    k12 = size_to_roster(w, x, y, big, x[:10], y[:10], k=12)
    assert len(k12.used) == 10 and k12.n_unstaffed == 2
    with pytest.raises(ge.InfeasibleError, match="k = 2 grids cannot hold the workload"):
        size_to_roster(w, x, y, big, x[:10], y[:10], k=2)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_parts=st.integers(2, 9), agency=st.floats(0.0, 0.5),
       fill=st.floats(0.6, 0.9), lumps=st.integers(0, 4))
def test_dual_track_partition_keeps_every_grid_within_its_own_capacity(seed, n_parts, agency, fill, lumps):
    rng = np.random.default_rng(seed)
    w, x, y, edges = lattice(14, 12, rng)
    n_agency = int(round(agency * n_parts))
    rel = np.r_[np.full(n_parts - n_agency, 1.0), np.full(n_agency, 0.6)]
    caps = rel * (w.sum() / fill) / rel.sum()
    if lumps:  # compounds up to 40% of the smallest capacity at one unit
        w[rng.choice(len(w), size=lumps, replace=False)] = np.round(0.4 * caps.min())
        caps = rel * (w.sum() / fill) / rel.sum()
    pick = rng.choice(len(w), size=n_parts, replace=False)
    res = partition_roster(w, x, y, edges, capacities=caps, anchor_x=x[pick], anchor_y=y[pick], seed=seed)
    labels = res.labels
    assert (labels >= 0).all() and set(labels.tolist()) <= set(range(n_parts))
    loads = np.bincount(labels, weights=w, minlength=n_parts)
    assert (loads <= caps + 1e-9).all(), (loads, caps)
    assert grid_connectivity(labels, edges[0], edges[1], res.bridges).all()


def test_dual_track_grids_are_equally_full():
    rng = np.random.default_rng(5)
    w, x, y, edges = lattice(40, 40, rng)
    rel = np.r_[np.full(7, 1.0), np.full(3, 0.6)]
    caps = rel * (w.sum() / 0.9) / rel.sum()
    pick = rng.choice(len(w), size=10, replace=False)
    res = partition_roster(w, x, y, edges, capacities=caps, anchor_x=x[pick], anchor_y=y[pick])
    fill = np.bincount(res.labels, weights=w, minlength=10) / caps
    assert np.abs(fill / fill.mean() - 1).max() <= 0.05, fill


def test_rerun_absorbs_a_departed_grid_and_carves_one_for_a_newcomer():
    rng = np.random.default_rng(6)
    w, x, y, edges = lattice(30, 30, rng)
    caps = np.full(9, w.sum() / (9 * 0.8))
    pick = rng.choice(len(w), size=9, replace=False)
    first = partition_roster(w, x, y, edges, capacities=caps, anchor_x=x[pick], anchor_y=y[pick]).labels
    # part 8 leaves: its units are free; 8 parts remain, filled to 90%
    initial = np.where(first == 8, -1, first)
    res = partition_roster_rerun(w, x, y, edges, initial=initial, capacities=caps[:8], anchor_x=x[pick[:8]],
                                 anchor_y=y[pick[:8]])
    loads = np.bincount(res.labels, weights=w, minlength=8)
    assert (loads <= caps[:8] + 1e-9).all() and grid_connectivity(res.labels, *edges, res.bridges).all()
    kept = first != 8
    assert (res.labels[kept] == first[kept]).mean() >= 0.85  # the others mostly stay put
    # a newcomer (part 9, no territory yet) gets a grid around their base
    caps10 = np.full(10, w.sum() / (10 * 0.85))
    base = int(np.argmin(np.hypot(x - 1500, y - 1500)))
    res2 = partition_roster_rerun(w, x, y, edges, initial=first, capacities=caps10,
                                  anchor_x=np.r_[x[pick], x[base]], anchor_y=np.r_[y[pick], y[base]])
    assert (res2.labels == 9).sum() > 0 and res2.labels[base] == 9
    assert (np.bincount(res2.labels, weights=w, minlength=10) <= caps10 + 1e-9).all()


def test_rerun_moves_no_staying_customer_when_the_neighbours_have_room():
    """A departed grid in the middle of a 3 x 3 block city, neighbours filled to 70%: its customers
    are shared out among the grids around it, and nobody else changes grid."""
    rng = np.random.default_rng(3)
    w, x, y, edges = lattice(30, 30, rng)
    w[:] = 1.0
    block = (np.arange(30)[None, :] // 10 + 3 * (np.arange(30)[:, None] // 10)).ravel()  # row-major blocks
    caps = np.full(9, 100.0 / 0.7)
    initial = np.where(block == 4, -1, np.where(block > 4, block - 1, block))
    keep = np.r_[0:4, 5:9]
    res = partition_roster_rerun(w, x, y, edges, initial=initial, capacities=caps[:8],
                                 anchor_x=x[keep * 100 + 5], anchor_y=y[keep * 100 + 5])
    stayed = initial >= 0
    assert (res.labels[stayed] == initial[stayed]).all()
    loads = np.bincount(res.labels, weights=w, minlength=8)
    assert (loads <= caps[:8] + 1e-9).all() and grid_connectivity(res.labels, *edges, res.bridges).all()
    # only the four grids that touch the middle block take its customers
    took = np.unique(res.labels[block == 4])
    assert set(took.tolist()) <= {1, 3, 4, 6}


def test_rerun_passes_on_the_least_when_the_neighbours_are_full():
    """A strip of five grids; the one at the end leaves and its neighbour has little room: the
    workload passes along the strip, and only what must pass moves (a least-churn flow)."""
    rng = np.random.default_rng(4)
    w, x, y, edges = lattice(50, 6, rng)
    w[:] = 1.0
    part = (np.arange(50)[None, :] // 10 + np.zeros((6, 1), dtype=int)).ravel()
    caps = np.full(4, 60.0 * 5 / 4 / 0.95)  # 300 customers on 4 specialists: fill 0.95
    initial = np.where(part == 0, -1, part - 1)
    res = partition_roster_rerun(w, x, y, edges, initial=initial, capacities=caps,
                                 anchor_x=np.array([1500.0, 2500, 3500, 4500]), anchor_y=np.full(4, 250.0))
    loads = np.bincount(res.labels, weights=w, minlength=4)
    assert (loads <= caps + 1e-9).all() and grid_connectivity(res.labels, *edges, res.bridges).all()
    stayed = initial >= 0
    moved = int((res.labels[stayed] != initial[stayed]).sum())
    # least churn: 60 customers leave with the first grid; each grid keeps room r = cap - 60 and
    # the flow passes 60 - r, 60 - 2r, 60 - 3r across the three inner borders
    r = caps[0] * 0.995 - 60
    need = sum(max(60 - i * r, 0) for i in (1, 2, 3))
    assert moved <= need * 1.25 + 6


def test_cli_rerun_honours_k_and_says_so(sample_paths, tmp_path, capsys):
    base = tmp_path / "base"
    args = ["plan", "--customers", str(sample_paths["customers"]), "--specialists", str(sample_paths["specialists"]),
            "--service-area", str(sample_paths["service_area"]), "--no-progress"]
    assert main(args + ["--out", str(base)]) == 0
    n_spec = len(pd.read_csv(sample_paths["specialists"]))
    assert main(args + ["--out", str(tmp_path / "fewer"), "--previous", str(base), "-k", str(n_spec - 2)]) == 0
    m = json.loads((tmp_path / "fewer" / "metrics.json").read_text())
    assert m["n_grids"] == n_spec - 2 and len(m["spare_specialists"]) == 2 and m["coverage"] == 1.0
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "more"), "--previous", str(base), "-k", str(n_spec + 2)]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "more" / "metrics.json").read_text())
    assert m["n_grids"] == n_spec + 2 and m["n_unstaffed_grids"] == 2
    assert out.splitlines()[1].lstrip().startswith("NOT COVERED")  # said at once, before anything else
    strict = main(args + ["--out", str(tmp_path / "strict"), "--previous", str(base), "-k", str(n_spec + 2),
                          "--require-full-staffing"])
    assert strict != 0 and not (tmp_path / "strict").exists()


def test_dual_track_sample_end_to_end(sample_paths, tmp_path):
    out = tmp_path / "plan"
    assert main(["plan", "--customers", str(sample_paths["customers"]), "--specialists",
                 str(sample_paths["specialists"]), "--service-area", str(sample_paths["service_area"]),
                 "--out", str(out), "--no-progress"]) == 0
    plan = ge.Plan.read(out)
    spec = pd.read_csv(sample_paths["specialists"])
    assert spec["contract"].nunique() == 2  # contract and agency: the dual track
    m = plan.metrics
    assert m["coverage"] == 1.0 and m["capacity_violations"] == 0 and m["within_5pct"] >= 0.95
    g = plan.grids.merge(spec[["specialist_id", "contract"]], on="specialist_id")
    assert set(g["contract"]) == set(spec["contract"])  # agency specialists hold grids too
    fill = g["workload"] / g["capacity"]
    assert fill.groupby(g["contract"]).mean().max() / fill.groupby(g["contract"]).mean().min() < 1.05
