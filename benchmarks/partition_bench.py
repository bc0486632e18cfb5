"""Partitioner benchmark: gridengine's ``partition_units`` against METIS, KaHIP, GerryChain and k-means
(plain and balanced).

The peers are NOT gridengine dependencies. Install them into the project's venv first:

    .venv/bin/pip install -r benchmarks/requirements.txt

then run (from the repository root):

    .venv/bin/python benchmarks/partition_bench.py                          # S, M, L; all methods
    .venv/bin/python benchmarks/partition_bench.py --sizes S
    .venv/bin/python benchmarks/partition_bench.py --sizes M,L --timeout 300
    .venv/bin/python benchmarks/partition_bench.py --sizes S --methods gridengine,metis
    .venv/bin/python benchmarks/partition_bench.py --sizes M,L --methods gridengine,metis,metis-contig,kmeans,balanced-kmeans

Instances are synthetic cities from ``gridengine.synth.generate_city`` (seed ``--seed``):

    S = 50k customers, k = 50;  M = 500k, k = 500;  L = 2M, k = 1000.

Units are the H3 cells (resolution 9) tiling the city's service area, from
``gridengine.cells.build_cells``; when ``build_cells`` takes ``max_cell_workload`` (adaptive
resolution) it is passed 0.2 x the mean grid workload (total workload / k). The capacity
(``upper``) is 1.10 x the mean grid workload. Units are built once per (size, seed, source of
cells.py and synth.py) and cached as .npz under ``benchmarks/results/`` (gitignored).

Every method runs in its own subprocess (a fresh interpreter that loads the cached units), so
its peak memory is that process's ``ru_maxrss`` (read with ``wait4``, hence known even when it
is killed) and ``--timeout`` can kill it. The orchestrating process imports nothing heavy, so it
adds nothing to a child's ``ru_maxrss``. ``base_MB`` is the child's peak RSS just before the
partition call (interpreter, imports, loaded units, graph conversion for the peer's API), so
``peak_MB - base_MB`` is roughly what the call itself added. ``time_s`` is the wall-clock time of the partition call
only (graph conversion for a peer's API is set-up, not timed; gridengine's compiled kernels are
warmed up on a tiny lattice first, untimed, and the warm-up time is in its notes). All results are then scored by
one function (:func:`score`) in a separate process, from the labels alone (plus the bridge edges
gridengine reports; peers get no bridges):

* ``n_grids``: distinct labels;
* ``balance_max_dev``: max |W_g - mean| / mean over the k requested grids (mean = total / k; a
  missing grid has W = 0);
* ``within_5pct``: share of the grids within +-5 % of mean (denominator max(k, n_grids), so a
  missing grid counts as outside);
* ``capacity_violations``: grids with W_g > upper;
* ``contiguous_share``: share of grids whose units form one connected piece through the unit
  adjacency (plus gridengine's bridges), via ``scipy.sparse.csgraph.connected_components``;
* ``compactness_km``: workload-weighted mean distance from each unit to its grid's
  workload-weighted centroid, in km.

Peer settings (how a new user would call each documented API):

* metis: ``pymetis.part_graph(k, adjacency=CSRAdjacency(xadj, adjncy), vweights=round(10 w),
  options=Options(contig=1, ufactor=50, seed=seed))``: k-way, at most +5 % imbalance (METIS's
  ufactor bounds only the heaviest part). Empty units keep weight 0 (METIS accepts zero vertex
  weights). METIS refuses ``contig=1`` on a disconnected graph (the synthetic city has an island);
  the benchmark then records METIS's message and reruns with ``contig=0``, flagged in the notes.
* metis-contig: METIS with its contiguity option, usable on our disconnected cities: the unit
  graph's connected areas (``connected_components``) get parts in proportion to their workload
  (largest remainder over the areas with workload >= 0.5 x the mean grid workload, each of them
  at least 1); each area with p > 1 parts is cut by ``part_graph(p, ...)`` with the same vertex
  weights, ``contig=1``, ``ufactor`` and seed as the metis row. An area below the threshold gets
  no part: all its units join the part of the big-area unit nearest to any of them (the notes
  count these merged areas). The partition issue's compactness target is gridengine <= 1.05 x
  metis-contig.
* kahip: ``kahip.kaffpa(vwgt=round(10 w), xadj, adjcwgt=1, adjncy, k, imbalance=0.05,
  suppress_output=True, seed, mode=ECO)``. The Python binding has no connected-blocks option.
* gerrychain: networkx graph with a ``workload`` node attribute -> ``gerrychain.Graph.from_networkx``
  -> ``recursive_tree_part(graph, range(k), pop_target=total/k, pop_col="workload",
  epsilon=0.05, rng=seed)`` (``gerrychain.partition`` in GerryChain >= 1.0; ``gerrychain.tree``
  before). Failures ("Could not find a possible cut ...") and timeouts are its reported outcome.
* kmeans: ``sklearn.cluster.KMeans(n_clusters=k, n_init=3, random_state=seed)`` fitted on the
  coordinates of units with workload > 0 (``sample_weight`` = workload); empty units go to the
  nearest centre (``predict``). No contiguity or balance: the compactness reference.
* balanced-kmeans: a REFERENCE, NOT A PLAN (fractional relaxation, no contiguity): weighted
  k-means whose clusters each hold workload within +-5 % of the mean, units split fractionally.
  From the kmeans row's centres, it alternates (a) a transportation problem solved exactly by
  OR-Tools ``SimpleMinCostFlow`` (integer supply round(w x 2e6 / total) per unit with w > 0; arcs
  to its 10 nearest centres (``cKDTree``) at cost round(distance in metres); each centre's inflow
  forced into [ceil(0.95 mean), floor(1.05 mean)] by three arcs to the sink: capacity lb at cost
  -1e9, ub - lb at 0, and slack at +1e9) and (b) moving centres to the flow-weighted centroids;
  30 iterations at most, or until the transport cost changes by < 1e-6 relative. Its
  ``compactness_km`` is scored from the flows (:func:`score_fractional`: flow-weighted mean
  distance from units to their centres); the other columns are for rounded labels (each unit to
  its largest-flow centre), and the notes give the fractional solution's own balance.

Results: one table per instance on stdout, and ``benchmarks/results/partition_bench.json``,
merged per method: entries for other sizes/seeds are kept, and so are the rows of methods not run
this time for the same size/seed (marked ``*`` in the table, with ``carried_over`` in the JSON
telling when they ran and whether on the same units: the units' data digest when both runs have
one, else their summary). Rows from different units are shown but left out of the ratios. The
ratio line gives gridengine's compactness over metis, metis-contig, kmeans and balanced-kmeans.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
RUNS = RESULTS / "runs"
JSON_OUT = RESULTS / "partition_bench.json"

SIZES = {"S": (50_000, 50), "M": (500_000, 500), "L": (2_000_000, 1000)}
METHODS = ("gridengine", "metis", "metis-contig", "kahip", "gerrychain", "kmeans", "balanced-kmeans")
H3_RES = 9
CAPACITY_FACTOR = 1.10  # upper = 1.10 x mean grid workload
MAX_CELL_SHARE = 0.2  # max_cell_workload = 0.2 x mean grid workload (adaptive build_cells)
BALANCE_BAND = 0.05  # within_5pct
BUILD_TIMEOUT_S = 1800
UNITS_DIGEST_KEY = "__units_digest__"
# fields of an instance's units summary that must agree for rows of two runs to be comparable
UNITS_SUMMARY = ("n_units", "n_edges", "n_empty_units", "n_components", "component_workloads", "total_workload",
                 "max_unit_workload", "max_cell_workload")
RATIO_PEERS = ("metis", "metis-contig", "kmeans", "balanced-kmeans")
CONTIG_TARGET = 1.05  # compactness target: gridengine <= 1.05 x metis-contig

# Peer settings
WEIGHT_SCALE = 10  # integer vertex weights for METIS/KaHIP: round(workload * 10)
METIS_UFACTOR = 50  # max part weight <= (1 + 50/1000) x average
KAHIP_IMBALANCE = 0.05
KAHIP_MODE = "ECO"
GERRY_EPSILON = 0.05
KMEANS_N_INIT = 3
BKM_SUPPLY = 2e6  # balanced-kmeans: integer flow supplies round(w * 2e6 / total workload)
BKM_NEIGHBOURS = 10  # arcs from each unit to its 10 nearest centres
BKM_PENALTY = 10**9  # cost of the forced lower-bound arcs (-) and of the slack above the upper bound (+)
BKM_ITERS = 30
BKM_TOL = 1e-6  # stop when the transport cost changes by less than this, relatively


# --------------------------------------------------------------------------- #
# Scoring (the same for every method)                                         #
# --------------------------------------------------------------------------- #


def score(labels, w, x, y, src, dst, *, k: int, upper: float, extra_edges=None) -> dict:
    """Score a labelling of the units, independent of the solver's own bookkeeping.

    ``labels``: any integer label per unit (negative = unassigned). ``extra_edges``: (m, 2) unit
    pairs that also connect units (gridengine's reported bridges).
    """
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    labels = np.asarray(labels).astype("int64")
    n = len(w)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} units")
    assigned = labels >= 0
    uniq, lab = np.unique(labels[assigned], return_inverse=True)
    g = len(uniq)
    full = np.full(n, -1, dtype="int64")
    full[assigned] = lab
    wa, xa, ya = w[assigned], x[assigned], y[assigned]
    W = np.bincount(lab, weights=wa, minlength=g)
    mean = float(w.sum()) / k
    Wk = np.r_[W, np.zeros(max(0, k - g))]
    dev = np.abs(Wk - mean) / mean
    within = int((dev <= BALANCE_BAND + 1e-12).sum()) / max(k, g)
    cap_viol = int((W > upper * (1 + 1e-12) + 1e-9).sum())

    s, d = np.asarray(src, dtype="int64"), np.asarray(dst, dtype="int64")
    if extra_edges is not None and len(extra_edges):
        e = np.asarray(extra_edges, dtype="int64").reshape(-1, 2)
        s, d = np.r_[s, e[:, 0]], np.r_[d, e[:, 1]]
    same = (full[s] == full[d]) & (full[s] >= 0)
    s, d = s[same], d[same]
    adj = sp.coo_matrix((np.ones(len(s), dtype="int8"), (s, d)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    pairs = np.unique(np.c_[lab, comp[assigned]], axis=0)
    pieces = np.bincount(pairs[:, 0], minlength=g)
    contiguous = float((pieces == 1).mean()) if g else 0.0

    cnt = np.bincount(lab, minlength=g)
    heavy = W > 0
    cx = np.where(heavy, np.bincount(lab, weights=wa * xa, minlength=g) / np.where(heavy, W, 1),
                  np.bincount(lab, weights=xa, minlength=g) / np.maximum(cnt, 1))
    cy = np.where(heavy, np.bincount(lab, weights=wa * ya, minlength=g) / np.where(heavy, W, 1),
                  np.bincount(lab, weights=ya, minlength=g) / np.maximum(cnt, 1))
    dist = np.hypot(xa - cx[lab], ya - cy[lab])
    compact = float((wa * dist).sum() / wa.sum() / 1000.0) if wa.sum() > 0 else 0.0
    return {
        "n_grids": int(g),
        "balance_max_dev": float(dev.max()) if len(dev) else 0.0,
        "within_5pct": float(within),
        "capacity_violations": cap_viol,
        "contiguous_share": contiguous,
        "n_split_grids": int((pieces > 1).sum()),
        "compactness_km": compact,
        "min_grid_workload": float(W.min()) if g else 0.0,
        "max_grid_workload": float(W.max()) if g else 0.0,
        "unassigned_units": int((~assigned).sum()),
    }


def score_fractional(unit, centre, amount, w, x, y, *, k: int, upper: float) -> dict:
    """Score a fractional assignment: ``amount[i]`` of unit ``unit[i]``'s workload goes to ``centre[i]``.

    Same definitions as :func:`score`, with each unit's workload split over its centres:
    compactness is the amount-weighted distance from each piece's unit to its centre's
    amount-weighted centroid. ``max_workload_mismatch`` is the largest |amount sent - w| over the
    units (the rounding of the flow's integer supplies).
    """
    import numpy as np

    unit, centre = np.asarray(unit, dtype="int64"), np.asarray(centre, dtype="int64")
    amount = np.asarray(amount, dtype="float64")
    got = np.bincount(unit, weights=amount, minlength=len(w))
    missing = float(np.abs(got - w).max()) if len(w) else 0.0
    g = int(centre.max()) + 1 if len(centre) else 0
    W = np.bincount(centre, weights=amount, minlength=g)
    cx = np.bincount(centre, weights=amount * x[unit], minlength=g) / np.where(W > 0, W, 1)
    cy = np.bincount(centre, weights=amount * y[unit], minlength=g) / np.where(W > 0, W, 1)
    dist = np.hypot(x[unit] - cx[centre], y[unit] - cy[centre])
    mean = float(w.sum()) / k
    Wk = np.r_[W[W > 0], np.zeros(max(0, k - int((W > 0).sum())))]
    dev = np.abs(Wk - mean) / mean
    return {
        "compactness_km": float((amount * dist).sum() / amount.sum() / 1000.0) if amount.sum() > 0 else 0.0,
        "balance_max_dev": float(dev.max()) if len(dev) else 0.0,
        "within_5pct": int((dev <= BALANCE_BAND + 1e-12).sum()) / max(k, len(Wk)),
        "capacity_violations": int((W > upper * (1 + 1e-12) + 1e-9).sum()),
        "n_split_units": int((np.bincount(unit, minlength=len(w)) > 1).sum()),
        "max_workload_mismatch": missing,
    }


# --------------------------------------------------------------------------- #
# Units (built once per instance, cached)                                     #
# --------------------------------------------------------------------------- #


def _source_tag() -> str:
    h = hashlib.sha256()
    for f in ("gridengine/cells.py", "gridengine/synth.py"):
        p = ROOT / f
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:10]


def units_stem(size: str, seed: int) -> Path:
    """Cache key of an instance's units. Computed once by the orchestrator and handed to the
    children, so a concurrent edit of cells.py cannot make them look for another file."""
    return RESULTS / f"units_{size}_seed{seed}_res{H3_RES}_{_source_tag()}"


def units_paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def _child_build(size: str, seed: int, stem: Path) -> None:
    import inspect

    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from gridengine.cells import build_cells
    from gridengine.synth import generate_city

    n_customers, k = SIZES[size]
    npz_path, meta_path = units_paths(stem)
    t = time.perf_counter()
    city = generate_city(n_customers, seed=seed)
    gen_s = time.perf_counter() - t
    cust = city.customers
    df = cust[["customer_id", "lat", "lon", "workload"]].assign(row=np.arange(len(cust), dtype="int64"))
    kwargs: dict = {"res": H3_RES, "service_area": city.service_area}
    max_cell = None
    if "max_cell_workload" in inspect.signature(build_cells).parameters:
        max_cell = MAX_CELL_SHARE * float(cust["workload"].sum()) / k
        kwargs["max_cell_workload"] = max_cell
    t = time.perf_counter()
    index, kept, rejects = build_cells(df, **kwargs)
    cells_s = time.perf_counter() - t
    cells = index.cells
    w = cells["workload"].to_numpy(dtype="float64")
    x = cells["x"].to_numpy(dtype="float64")
    y = cells["y"].to_numpy(dtype="float64")
    src = np.asarray(index.edges[0], dtype="int64")
    dst = np.asarray(index.edges[1], dtype="int64")
    n = len(w)
    adj = sp.coo_matrix((np.ones(len(src), dtype="int8"), (src, dst)), shape=(n, n)).tocsr()
    n_comp, comp = connected_components(adj, directed=False)
    comp_w = np.bincount(comp, weights=w, minlength=n_comp)
    total = float(w.sum())
    mean = total / k
    meta = {
        "size": size, "seed": seed, "n_customers": n_customers, "k": k, "h3_res": H3_RES,
        "max_cell_workload": max_cell, "customers_kept": int(len(kept)), "customers_rejected": int(len(rejects)),
        "n_units": int(n), "n_edges": int(len(src)), "n_empty_units": int((w == 0).sum()),
        "n_components": int(n_comp), "component_workloads": sorted((round(float(v), 1) for v in comp_w), reverse=True)[:5],
        "total_workload": total, "mean_grid_workload": mean, "upper": CAPACITY_FACTOR * mean,
        "max_unit_workload": float(w.max()), "generate_s": round(gen_s, 2), "build_cells_s": round(cells_s, 2),
        "source_tag": stem.name.rsplit("_", 1)[-1],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = npz_path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, w=w, x=x, y=y, src=src, dst=dst)
    os.replace(tmp, npz_path)
    meta_path.write_text(json.dumps(meta, indent=1))


def _load_units(stem: Path):
    import numpy as np

    npz_path, meta_path = units_paths(stem)
    with np.load(npz_path) as z:
        u = {key: z[key] for key in z.files}
    u["meta"] = json.loads(meta_path.read_text())
    return u


# --------------------------------------------------------------------------- #
# Methods (each runs in its own subprocess)                                   #
# --------------------------------------------------------------------------- #


class _Clock:
    """Times the partition call; records the peak RSS reached before it."""

    def __init__(self) -> None:
        self.seconds: float | None = None
        self.mem_before_mb: float | None = None

    def __enter__(self):
        import resource

        self.mem_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t
        return False


def _csr(n: int, src, dst):
    import numpy as np
    import scipy.sparse as sp

    m = sp.csr_matrix((np.ones(2 * len(src), dtype="int32"), (np.r_[src, dst], np.r_[dst, src])), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m.indptr.astype("int32"), m.indices.astype("int32")


def _int_weights(w):
    import numpy as np

    return np.rint(w * WEIGHT_SCALE).astype("int32")


@contextlib.contextmanager
def _native_output(buf: list):
    """Capture what native code prints on fds 1 and 2 (METIS reports errors with printf)."""
    import ctypes
    import tempfile

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            libc.fflush(None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            buf.append(tmp.read().decode("utf-8", "replace"))


def run_gridengine(u, seed, clock, info):
    import numpy as np

    from gridengine.partition import partition_units

    k, upper = u["meta"]["k"], u["meta"]["upper"]
    info["settings"] = f"partition_units(k={k}, upper={upper:.1f}, seed={seed}); other arguments default"
    # Untimed warm-up on a 12 x 12 lattice: loads (or, on the very first run, JIT-compiles) any
    # compiled kernels, a one-off cost a long-running service pays once.
    side = 12
    gx, gy = np.meshgrid(np.arange(side, dtype="float64"), np.arange(side, dtype="float64"))
    ids = np.arange(side * side).reshape(side, side)
    ws, wd = np.r_[ids[:, :-1].ravel(), ids[:-1, :].ravel()], np.r_[ids[:, 1:].ravel(), ids[1:, :].ravel()]
    t = time.perf_counter()
    partition_units(np.ones(side * side), gx.ravel() * 100, gy.ravel() * 100, (ws, wd), upper=40.0, k=4, seed=seed)
    info["notes"].append(f"untimed warm-up {time.perf_counter() - t:.2f}s")
    with clock:
        res = partition_units(u["w"], u["x"], u["y"], (u["src"], u["dst"]), upper=upper, k=k, seed=seed)
    info["notes"] += [f"{len(res.bridges)} bridge(s) reported", f"n_grids reported {res.n_grids}", *res.notes]
    bridges = np.array([(b.from_unit, b.to_unit) for b in res.bridges], dtype="int64").reshape(-1, 2)
    return np.asarray(res.labels), bridges


def run_metis(u, seed, clock, info):
    import numpy as np
    import pymetis

    k, n = u["meta"]["k"], len(u["w"])
    xadj, adjncy = _csr(n, u["src"], u["dst"])
    vw = _int_weights(u["w"])
    graph = pymetis.CSRAdjacency(xadj, adjncy)

    def call(contig: int):
        opts = pymetis.Options(contig=contig, ufactor=METIS_UFACTOR, seed=seed)
        return pymetis.part_graph(k, adjacency=graph, vweights=vw, options=opts)

    info["settings"] = (f"part_graph(k={k}, vweights=round({WEIGHT_SCALE}*w) (0 for empty units), "
                        f"Options(contig=1, ufactor={METIS_UFACTOR}, seed={seed})), k-way")
    printed: list[str] = []
    try:
        with _native_output(printed), clock:
            _, parts = call(1)
    except Exception as e:  # METIS refuses contig=1 on a disconnected graph
        said = " ".join(line.strip() for line in "".join(printed).splitlines() if line.strip())
        info["notes"].append(f"contig=1 failed after {clock.seconds:.3f}s: {type(e).__name__}: {e} "
                             f"(METIS printed: {said or 'nothing'}); FELL BACK to contig=0")
        info["settings"] = info["settings"].replace("contig=1", "contig=0 [contig=1 rejected]")
        with clock:
            _, parts = call(0)
    return np.asarray(parts, dtype="int64"), None


def run_kahip(u, seed, clock, info):
    import kahip
    import numpy as np

    k, n = u["meta"]["k"], len(u["w"])
    xadj, adjncy = _csr(n, u["src"], u["dst"])
    vw = _int_weights(u["w"])
    ew = np.ones(len(adjncy), dtype="int32")
    mode = getattr(kahip, KAHIP_MODE)
    info["settings"] = (f"kaffpa(vwgt=round({WEIGHT_SCALE}*w), adjcwgt=1, nblocks={k}, "
                        f"imbalance={KAHIP_IMBALANCE}, suppress_output=True, seed={seed}, mode={KAHIP_MODE})")
    with clock:
        _, blocks = kahip.kaffpa(vw, xadj, ew, adjncy, k, KAHIP_IMBALANCE, True, seed, mode)
    return np.asarray(blocks, dtype="int64"), None


def run_gerrychain(u, seed, clock, info):
    import warnings

    import networkx as nx
    import numpy as np
    from gerrychain import Graph

    try:
        from gerrychain.partition import recursive_tree_part  # GerryChain >= 1.0
    except ImportError:  # pragma: no cover - older GerryChain
        from gerrychain.tree import recursive_tree_part

    k, n = u["meta"]["k"], len(u["w"])
    w = u["w"]
    target = float(w.sum()) / k
    nxg = nx.Graph()
    nxg.add_nodes_from((i, {"workload": float(w[i])}) for i in range(n))
    nxg.add_edges_from(zip(u["src"].tolist(), u["dst"].tolist()))
    graph = Graph.from_networkx(nxg)
    info["settings"] = (f"recursive_tree_part(Graph.from_networkx(G), range({k}), pop_target={target:.1f}, "
                        f"pop_col='workload', epsilon={GERRY_EPSILON}, rng={seed})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with clock:
                assignment = recursive_tree_part(graph, range(k), target, "workload", GERRY_EPSILON, rng=seed)
        finally:
            if caught:
                first = " ".join(str(caught[0].message).split())
                info["notes"].append(f"{len(caught)} warning(s), first: {caught[0].category.__name__}: {first[:200]}")
    return np.array([assignment.get(i, -1) for i in range(n)], dtype="int64"), None


def run_kmeans(u, seed, clock, info):
    import numpy as np
    from sklearn.cluster import KMeans

    k, w = u["meta"]["k"], u["w"]
    X = np.c_[u["x"], u["y"]]
    pos = w > 0
    labels = np.empty(len(w), dtype="int64")
    info["settings"] = (f"KMeans(n_clusters={k}, n_init={KMEANS_N_INIT}, random_state={seed}).fit(xy[w>0], "
                        "sample_weight=w); empty units -> predict (nearest centre)")
    with clock:
        km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(X[pos], sample_weight=w[pos])
        labels[pos] = km.labels_
        if (~pos).any():
            labels[~pos] = km.predict(X[~pos])
    return labels, None


def _apportion(area_w, k: int, min_share: float):
    """Split ``k`` parts among areas in proportion to their workload (largest remainder).

    Areas with workload >= ``min_share`` get at least one part; lighter areas get none (the
    caller merges them into a neighbouring part). Returns an int array of parts per area.
    """
    import numpy as np

    area_w = np.asarray(area_w, dtype="float64")
    parts = np.zeros(len(area_w), dtype="int64")
    big = np.flatnonzero(area_w >= min_share)
    if len(big) == 0:  # nothing reaches the threshold: give everything to the heaviest area
        big = np.array([int(np.argmax(area_w))])
    if len(big) > k:  # more big areas than parts: the k heaviest get one each
        big = big[np.argsort(-area_w[big], kind="stable")[:k]]
    quota = k * area_w[big] / area_w[big].sum()
    p = np.floor(quota).astype("int64")
    rem = quota - p
    short = k - int(p.sum())
    if short > 0:
        p[np.argsort(-rem, kind="stable")[:short]] += 1
    # at least one part per big area, taken from the area that loses the least relative to its quota
    for i in np.flatnonzero(p == 0):
        donors = np.flatnonzero(p > 1)
        j = donors[np.argmax(p[donors] - quota[donors])]
        p[j] -= 1
        p[i] += 1
    parts[big] = p
    return parts


def run_metis_contig(u, seed, clock, info):
    """METIS with ``contig=1`` per connected area, parts apportioned by workload."""
    import numpy as np
    import pymetis
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    k, n, w = u["meta"]["k"], len(u["w"]), u["w"]
    src, dst = u["src"], u["dst"]
    vw_all = _int_weights(w)
    mean = float(w.sum()) / k
    adj = sp.coo_matrix((np.ones(2 * len(src), dtype="int32"), (np.r_[src, dst], np.r_[dst, src])),
                        shape=(n, n)).tocsr()
    adj.sum_duplicates()
    adj.sort_indices()
    info["settings"] = (f"per connected area: part_graph(p_area, vweights=round({WEIGHT_SCALE}*w), "
                        f"Options(contig=1, ufactor={METIS_UFACTOR}, seed={seed})); p_area by largest remainder "
                        f"over areas with workload >= 0.5 x mean grid ({0.5 * mean:.1f}), min 1")
    printed: list[str] = []
    with clock:
        n_areas, area = connected_components(adj, directed=False)
        area_w = np.bincount(area, weights=w, minlength=n_areas)
        parts = _apportion(area_w, k, 0.5 * mean)
        labels = np.full(n, -1, dtype="int64")
        next_label = 0
        split = []
        for a in np.flatnonzero(parts > 0):
            idx = np.flatnonzero(area == a)
            p = int(parts[a])
            if p == 1:
                labels[idx] = next_label
            else:
                sub = adj[idx][:, idx].tocsr()
                sub.sort_indices()
                opts = pymetis.Options(contig=1, ufactor=METIS_UFACTOR, seed=seed)
                try:
                    with _native_output(printed):
                        _, sp_parts = pymetis.part_graph(
                            p, adjacency=pymetis.CSRAdjacency(sub.indptr.astype("int32"), sub.indices.astype("int32")),
                            vweights=vw_all[idx], options=opts)
                except Exception as e:
                    said = " ".join(line.strip() for line in "".join(printed).splitlines() if line.strip())
                    raise RuntimeError(f"contig=1 failed on area {a} ({len(idx)} units, {p} parts): {e} "
                                       f"(METIS printed: {said or 'nothing'})") from e
                labels[idx] = next_label + np.asarray(sp_parts, dtype="int64")
            split.append((len(idx), float(area_w[a]), p))
            next_label += p
        # areas that got no part: whole area -> part of the nearest unit of an area with parts
        small = np.flatnonzero(parts == 0)
        if len(small):
            have = np.flatnonzero(labels >= 0)
            tree = cKDTree(np.c_[u["x"][have], u["y"][have]])
            todo = np.flatnonzero(labels < 0)
            d, j = tree.query(np.c_[u["x"][todo], u["y"][todo]])
            a_of = area[todo]
            order = np.lexsort((d, a_of))  # per area, its unit closest to a big area first
            first = np.r_[True, a_of[order][1:] != a_of[order][:-1]]
            target = dict(zip(a_of[order][first].tolist(), labels[have[j[order][first]]].tolist()))
            labels[todo] = np.array([target[a] for a in a_of.tolist()], dtype="int64")
    small_w = float(area_w[small].sum()) if len(small) else 0.0
    info["notes"].append(f"{n_areas} connected area(s); parts per area (units, workload, parts): "
                         + ", ".join(f"({nu}, {aw:.1f}, {p})" for nu, aw, p in split[:6])
                         + (" ..." if len(split) > 6 else ""))
    info["notes"].append(f"{len(small)} small area(s) without parts merged into the part of the nearest unit "
                         f"(workload {small_w:.1f}, {int(np.isin(area, small).sum())} unit(s))")
    info["merged_areas"] = int(len(small))
    return labels, None


def run_balanced_kmeans(u, seed, clock, info):
    """Weighted k-means with each cluster's workload within +-5 %, units split fractionally.

    Alternates an exact transportation problem (OR-Tools min-cost flow; each unit may send its
    workload to its BKM_NEIGHBOURS nearest centres) with moving each centre to the flow-weighted
    centroid. A reference (fractional, no contiguity), not a plan.
    """
    import numpy as np
    from ortools.graph.python import min_cost_flow
    from scipy.spatial import cKDTree
    from sklearn.cluster import KMeans

    k, w = u["meta"]["k"], u["w"]
    X = np.c_[u["x"], u["y"]]
    pos = np.flatnonzero(w > 0)
    total = float(w.sum())
    sup = np.rint(w[pos] * BKM_SUPPLY / total).astype("int64")
    zero_sup = int((sup == 0).sum())
    fl = pos[sup > 0]  # units in the flow
    sup = sup[sup > 0]
    S = int(sup.sum())
    m = S / k
    lb, ub = int(np.ceil(m * (1 - BALANCE_BAND))), int(np.floor(m * (1 + BALANCE_BAND)))
    nu = len(fl)
    q = min(BKM_NEIGHBOURS, k)
    info["settings"] = (f"KMeans(n_clusters={k}, n_init={KMEANS_N_INIT}, random_state={seed}) start; then <= {BKM_ITERS} x "
                        f"[SimpleMinCostFlow: supply round(w*{BKM_SUPPLY:.0e}/W) (total {S}), arcs to {q} nearest "
                        f"centres at round(metres), centre inflow in [{lb}, {ub}] (mean {m:.1f} +-5 %, "
                        f"cost -{BKM_PENALTY:.0e}/0/+{BKM_PENALTY:.0e}); centres -> flow-weighted centroids], "
                        f"stop at relative cost change < {BKM_TOL:g}")
    history = []
    with clock:
        km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(X[pos], sample_weight=w[pos])
        C = km.cluster_centers_.copy()
        sink = nu + k
        big_cap = S
        prev = None
        converged = False
        for it in range(BKM_ITERS):
            dist, nn = cKDTree(C).query(X[fl], k=q)
            dist, nn = dist.reshape(nu, q), nn.reshape(nu, q)
            tails = np.r_[np.repeat(np.arange(nu), q), np.tile(nu + np.arange(k), 3)]
            heads = np.r_[nu + nn.ravel(), np.full(3 * k, sink)]
            caps = np.r_[np.repeat(sup, q), np.full(k, lb), np.full(k, ub - lb), np.full(k, big_cap)]
            costs = np.r_[np.rint(dist.ravel()), np.full(k, -BKM_PENALTY), np.zeros(k), np.full(k, BKM_PENALTY)]
            f = min_cost_flow.SimpleMinCostFlow()
            arcs = f.add_arcs_with_capacity_and_unit_cost(tails.astype("int32"), heads.astype("int32"),
                                                          caps.astype("int64"), costs.astype("int64"))
            f.set_nodes_supplies(np.r_[np.arange(nu), sink].astype("int32"), np.r_[sup, -S].astype("int64"))
            status = f.solve()
            if status != f.OPTIMAL:
                raise RuntimeError(f"min-cost flow status {status} at iteration {it}")
            flows = f.flows(arcs)
            uf = flows[: nu * q].reshape(nu, q)
            inflow = np.bincount(nn.ravel(), weights=uf.ravel(), minlength=k)
            slack_over = int(flows[nu * q + 2 * k:].sum())
            cost = float((uf * np.rint(dist)).sum())
            # (b) centres -> flow-weighted centroids
            fx = np.bincount(nn.ravel(), weights=(uf * X[fl, 0][:, None]).ravel(), minlength=k)
            fy = np.bincount(nn.ravel(), weights=(uf * X[fl, 1][:, None]).ravel(), minlength=k)
            has = inflow > 0
            C[has] = np.c_[fx[has], fy[has]] / inflow[has][:, None]
            history.append((it, cost, slack_over, int((~has).sum())))
            if prev is not None and abs(prev - cost) < BKM_TOL * max(abs(prev), 1.0):
                converged = True
                break
            prev = cost
        # scoring input: the flows (unit -> centre, in workload units: flow x total / S), and the rounded labels
        nz = uf > 0
        fu = np.repeat(fl, q).reshape(nu, q)[nz]
        fc = nn[nz]
        fw = uf[nz] * (total / S)
        labels = np.full(len(w), -1, dtype="int64")
        labels[fl] = nn[np.arange(nu), np.argmax(uf, axis=1)]
        rest = np.flatnonzero(labels < 0)  # empty units and units whose supply rounded to 0
        if len(rest):
            _, labels[rest] = cKDTree(C).query(X[rest])
    n_split = int((nz.sum(axis=1) > 1).sum())
    it, cost, slack_over, empty = history[-1]
    info["notes"].append("fractional relaxation, not a plan")
    info["notes"].append(f"{len(history)} iteration(s), converged={converged}, "
                         f"transport cost {history[0][1]:.4g} -> {cost:.4g} supply-unit-metres; "
                         f"final inflow {int(inflow.min())}..{int(inflow.max())} for [{lb}, {ub}], "
                         f"{slack_over} over the upper bound, {int((inflow < lb).sum())} centre(s) under")
    info["notes"].append(f"{n_split} of {nu} units split over several centres; {zero_sup} unit(s) with supply "
                         "rounded to 0 (not in the flow; nearest centre in the labels)")
    info["notes"].append("compact_km is the flow-weighted mean distance from units to their centres (the final "
                         "flow's flow-weighted centroids); grids/bal_max_dev/within_5%/cap_viol/contig are for the "
                         "ROUNDED labels (each unit to its largest-flow centre)")
    return labels, None, {"flow_unit": fu.astype("int64"), "flow_centre": fc.astype("int64"),
                          "flow_w": fw.astype("float64")}


RUNNERS = {"gridengine": run_gridengine, "metis": run_metis, "metis-contig": run_metis_contig, "kahip": run_kahip,
           "gerrychain": run_gerrychain, "kmeans": run_kmeans, "balanced-kmeans": run_balanced_kmeans}


def run_paths(size: str, seed: int, method: str) -> tuple[Path, Path, Path]:
    stem = RUNS / f"{size}_seed{seed}_{method}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json"), stem.with_suffix(".log")


def _child_run(size: str, seed: int, method: str, stem: Path) -> None:
    import resource

    import numpy as np

    npz_path, meta_path, _ = run_paths(size, seed, method)
    u = _load_units(stem)
    clock = _Clock()
    info: dict = {"settings": None, "notes": []}
    rec: dict = {"method": method}
    try:
        labels, bridges, *extra = RUNNERS[method](u, seed, clock, info)
    except Exception as e:
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        rec.update(status="error", error=msg[:400])
    else:
        with open(npz_path, "wb") as f:
            np.savez(f, labels=np.asarray(labels, dtype="int64"),
                     bridges=bridges if bridges is not None else np.zeros((0, 2), dtype="int64"),
                     **(extra[0] if extra else {}))  # flow_unit/flow_centre/flow_w: a fractional solution
        rec["status"] = "ok"
    rec.update(info)
    rec["time_s"] = clock.seconds
    rec["mem_before_call_mb"] = clock.mem_before_mb
    rec["mem_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    meta_path.write_text(json.dumps(rec, indent=1))


def _child_score(size: str, seed: int, methods: list[str], stem: Path) -> None:
    import numpy as np

    u = _load_units(stem)
    meta = u["meta"]
    h = hashlib.sha256()
    for key in ("w", "x", "y", "src", "dst"):
        h.update(np.ascontiguousarray(u[key]).tobytes())
    out = {UNITS_DIGEST_KEY: h.hexdigest()[:16]}  # identifies the units' data, whatever the file name
    for m in methods:
        npz_path, _, _ = run_paths(size, seed, m)
        with np.load(npz_path) as z:
            labels, bridges = z["labels"], z["bridges"]
            flow = {key: z[key] for key in ("flow_unit", "flow_centre", "flow_w") if key in z.files}
        out[m] = score(labels, u["w"], u["x"], u["y"], u["src"], u["dst"], k=meta["k"], upper=meta["upper"],
                       extra_edges=bridges if m == "gridengine" else None)
        if flow:  # fractional solution: compactness from the flows, label columns stay for the rounded labels
            frac = score_fractional(flow["flow_unit"], flow["flow_centre"], flow["flow_w"], u["w"], u["x"], u["y"],
                                    k=meta["k"], upper=meta["upper"])
            out[m]["compactness_km_labels"] = out[m]["compactness_km"]
            out[m]["compactness_km"] = frac["compactness_km"]
            out[m]["fractional"] = frac
    print(json.dumps(out))


# --------------------------------------------------------------------------- #
# Orchestration (light: no numpy here, so children's ru_maxrss is their own)  #
# --------------------------------------------------------------------------- #


def _spawn(args: list[str], timeout: float, log: Path) -> dict:
    """Run this script with ``args`` in a fresh process group; kill it after ``timeout`` seconds."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "wb") as f:
        p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=ROOT, env=env, start_new_session=True)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return {"returncode": p.returncode, "timed_out": timed_out, "maxrss_mb": ru.ru_maxrss / 1024,
            "wall_s": time.monotonic() - t0, "tail": tail[-3:]}


def _versions() -> dict:
    from importlib import metadata

    v = {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cpu"}
    for pkg in ("gridengine", "numpy", "scipy", "networkx", "h3", "pymetis", "kahip", "gerrychain", "scikit-learn",
                "ortools"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            v[pkg] = None
    with contextlib.suppress(Exception):
        v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gridengine"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        v["gridengine_worktree"] = "modified" if dirty else "clean"
    return v


def _fmt(v, spec: str) -> str:
    if v is None:
        return "-"
    return format(v, spec)


COLUMNS = [("method", "method", "<16", "s"), ("status", "status", "<7", "s"), ("time_s", "time_s", ">8", ".2f"),
           ("mem_mb", "peak_MB", ">7", ".0f"), ("mem_before_call_mb", "base_MB", ">7", ".0f"),
           ("n_grids", "grids", ">5", "d"),
           ("balance_max_dev", "bal_max_dev", ">11", ".3f"), ("within_5pct", "within_5%", ">9", ".3f"),
           ("capacity_violations", "cap_viol", ">8", "d"), ("contiguous_share", "contig", ">6", ".3f"),
           ("compactness_km", "compact_km", ">10", ".3f")]


def render(inst: dict) -> str:
    m = inst["instance"]
    lines = [
        f"== {m['size']}: {m['n_customers']:,} customers, k = {m['k']}, seed {m['seed']} | {m['n_units']:,} units "
        f"(H3 res {m['h3_res']}" + (f", adaptive max_cell_workload {m['max_cell_workload']:.1f}" if m["max_cell_workload"] else "")
        + f"; {m['n_empty_units']:,} empty), {m['n_edges']:,} edges, {m['n_components']} connected area(s) | "
        f"total workload {m['total_workload']:,.1f}, mean grid {m['mean_grid_workload']:.1f}, upper {m['upper']:.1f}",
    ]
    head = "  ".join(format(h, a) for _, h, a, _ in COLUMNS)
    lines.append(head)
    lines.append("-" * len(head))
    for r in inst["rows"]:
        cells = []
        for key, _, align, spec in COLUMNS:
            v = r.get(key)
            if key == "method" and r.get("carried_over"):
                v = f"{v}*"
            txt = v if spec == "s" else _fmt(v, spec)
            cells.append(format(str(txt if txt is not None else "-"), align))
        lines.append("  ".join(cells))
    lines.append("notes:")
    for r in inst["rows"]:
        bits = []
        co = r.get("carried_over")
        if co:
            bits.append(f"* kept from the earlier run at {co['run_at']} ({co['command']}) on "
                        + ("the same units" if co["same_units"] else f"DIFFERENT units ({co['why']}): not comparable"))
        if r.get("error"):
            bits.append(f"ERROR: {r['error']}")
        if r.get("settings"):
            bits.append(r["settings"])
        bits += r.get("notes", [])
        if r.get("status") == "ok" and r.get("n_split_grids"):
            bits.append(f"{r['n_split_grids']} grid(s) in several pieces")
        if r.get("status") == "ok" and r.get("unassigned_units"):
            bits.append(f"{r['unassigned_units']} unit(s) unassigned")
        fr = r.get("fractional")
        if r.get("status") == "ok" and fr:
            bits.append(f"fractional solution itself: bal_max_dev {fr['balance_max_dev']:.3f}, within_5% "
                        f"{fr['within_5pct']:.3f}, cap_viol {fr['capacity_violations']}, {fr['n_split_units']} "
                        f"split unit(s); rounded labels' compact_km {r['compactness_km_labels']:.3f}")
        lines.append(f"  [{r['method']}] " + " | ".join(bits))
    ratios = inst.get("ratios", {})
    txt = []
    for peer in RATIO_PEERS:
        key = f"gridengine/{peer}"
        v = ratios.get(key)
        txt.append(f"{key} = {v:.3f}" if v is not None else f"{key} = n/a")
    tail = []
    if inst.get("metis_fallback"):
        tail.append("metis ran with contig=0 after contig=1 was rejected")
    v = ratios.get("gridengine/metis-contig")
    if v is not None:
        tail.append(f"target gridengine <= {CONTIG_TARGET} x metis-contig: {'met' if v <= CONTIG_TARGET else 'NOT met'}")
    if "gridengine/balanced-kmeans" in ratios:
        tail.append("balanced-kmeans is a fractional relaxation, not a plan")
    lines.append("compactness ratio: " + ", ".join(txt) + (f" ({'; '.join(tail)})" if tail else ""))
    return "\n".join(lines)


def _same_units(a: dict, b: dict) -> tuple[bool, str]:
    """Whether two instance summaries describe the same units (by data digest when both have one)."""
    if a.get("units_digest") and b.get("units_digest"):
        same = a["units_digest"] == b["units_digest"]
        return same, "" if same else f"units digest {b['units_digest']} vs {a['units_digest']}"
    diff = [f for f in UNITS_SUMMARY if a.get(f) != b.get(f)]
    return not diff, ("differs in " + ", ".join(diff)) if diff else ""


def _ratios(rows: list[dict]) -> dict:
    def usable(r: dict) -> bool:  # run now, or kept from a run on the same units
        return r.get("status") == "ok" and (r.get("carried_over") or {}).get("same_units", True)

    by = {r["method"]: r for r in rows if usable(r)}
    ge = by.get("gridengine", {})
    ratios = {}
    for peer in RATIO_PEERS:
        ge_c, pc = ge.get("compactness_km"), by.get(peer, {}).get("compactness_km")
        ratios[f"gridengine/{peer}"] = (ge_c / pc) if (ge_c is not None and pc) else None
    return ratios


def merge_previous(inst: dict, old: dict | None) -> dict:
    """Keep the rows of ``old`` (an earlier run of the same instance) for methods this run did not run.

    Kept rows carry ``carried_over`` (when and how they were run, and whether on the same units);
    rows of different units are kept but take no part in the ratios.
    """
    if not old:
        return inst
    ran = {r["method"] for r in inst["rows"]}
    same, why = _same_units(inst["instance"], old.get("instance", {}))
    kept = []
    for r in old.get("rows", []):
        if r["method"] in ran:
            continue
        r = dict(r)
        prev = r.get("carried_over")
        if prev:  # carried more than once: same units only if it was and these are still the same
            r["carried_over"] = dict(prev, same_units=bool(prev["same_units"] and same),
                                     why=prev.get("why") or why)
        else:
            r["carried_over"] = {"run_at": old.get("run_at"), "command": old.get("command"),
                                 "units_source_tag": old.get("instance", {}).get("source_tag"),
                                 "same_units": same, "why": why}
        kept.append(r)
    order = {m: i for i, m in enumerate(METHODS)}
    inst["rows"] = sorted(inst["rows"] + kept, key=lambda r: order.get(r["method"], len(order)))
    inst["ratios"] = _ratios(inst["rows"])
    inst["metis_fallback"] = any("FELL BACK" in n for r in inst["rows"] if r["method"] == "metis"
                                 for n in r.get("notes") or [])
    return inst


def run_instance(size: str, seed: int, methods: list[str], timeout: float, rebuild: bool) -> dict:
    stem = units_stem(size, seed)
    npz_path, meta_path = units_paths(stem)
    if rebuild or not (npz_path.exists() and meta_path.exists()):
        print(f"[{size}] building units ...", file=sys.stderr, flush=True)
        r = _spawn(["--_build", size, "--seed", str(seed), "--_units", str(stem)], BUILD_TIMEOUT_S,
                   RUNS / f"{size}_seed{seed}_build.log")
        if r["returncode"] != 0 or not meta_path.exists():
            raise SystemExit(f"[{size}] building units failed (exit {r['returncode']}, timed out {r['timed_out']}): "
                             + " / ".join(r["tail"]))
    meta = json.loads(meta_path.read_text())
    rows = []
    for m in methods:
        npz, jpath, log = run_paths(size, seed, m)
        for p in (npz, jpath):
            p.unlink(missing_ok=True)
        print(f"[{size}] {m} ...", file=sys.stderr, flush=True)
        r = _spawn(["--_run", m, "--_size", size, "--seed", str(seed), "--_units", str(stem)], timeout, log)
        row = {"method": m, "mem_mb": r["maxrss_mb"], "process_wall_s": round(r["wall_s"], 2)}
        if r["timed_out"]:
            row.update(status="timeout", error=f"killed after the {timeout:g} s timeout (process wall clock)")
        elif jpath.exists():
            row.update(json.loads(jpath.read_text()))
        else:
            row.update(status="crash", error=f"process exited with code {r['returncode']}: " + " / ".join(r["tail"]))
        rows.append(row)
        print(f"[{size}] {m}: {row['status']} in {row.get('time_s') or row['process_wall_s']:.2f} s",
              file=sys.stderr, flush=True)
    ok = [r["method"] for r in rows if r["status"] == "ok"]
    if ok:
        r = _spawn(["--_score", size, "--seed", str(seed), "--methods", ",".join(ok), "--_units", str(stem)],
                   BUILD_TIMEOUT_S,
                   RUNS / f"{size}_seed{seed}_score.log")
        scores = json.loads(r["tail"][-1]) if r["returncode"] == 0 else {}
        if UNITS_DIGEST_KEY in scores:
            meta["units_digest"] = scores.pop(UNITS_DIGEST_KEY)
        for row in rows:
            if row["method"] in scores:
                row.update(scores[row["method"]])
            elif row["status"] == "ok":
                row.update(status="error", error="scoring failed: " + " / ".join(r["tail"]))
    by = {r["method"]: r for r in rows}
    ratios = _ratios(rows)
    fallback = any("FELL BACK" in n for n in by.get("metis", {}).get("notes", []))
    return {"instance": meta, "rows": rows, "ratios": ratios, "metis_fallback": fallback, "timeout_s": timeout}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="S,M,L", help="comma-separated instance sizes among S, M, L (default all)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, among {', '.join(METHODS)}")
    ap.add_argument("--seed", type=int, default=42, help="seed of the city generator and of every method")
    ap.add_argument("--timeout", type=float, default=600, help="per method, seconds (default 600)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached units")
    ap.add_argument("--_build", help=argparse.SUPPRESS)
    ap.add_argument("--_run", help=argparse.SUPPRESS)
    ap.add_argument("--_size", help=argparse.SUPPRESS)
    ap.add_argument("--_score", help=argparse.SUPPRESS)
    ap.add_argument("--_units", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # benchmark the working tree
    if args._build:
        _child_build(args._build, args.seed, args._units)
        return 0
    if args._run:
        _child_run(args._size, args.seed, args._run, args._units)
        return 0
    if args._score:
        _child_score(args._score, args.seed, args.methods.split(","), args._units)
        return 0

    sizes = [s.strip().upper() for s in args.sizes.split(",") if s.strip()]
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    bad = [s for s in sizes if s not in SIZES] + [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown size(s)/method(s): {', '.join(bad)}")
    RUNS.mkdir(parents=True, exist_ok=True)
    doc = json.loads(JSON_OUT.read_text()) if JSON_OUT.exists() else {}
    doc.setdefault("instances", {})
    env = _versions()
    for size in sizes:
        inst = run_instance(size, args.seed, methods, args.timeout, args.rebuild)
        inst["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        inst["run_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        inst["env"] = env
        key = f"{size}_seed{args.seed}"
        inst = merge_previous(inst, doc["instances"].get(key))  # rows of methods not run this time are kept
        print(render(inst), flush=True)
        print(flush=True)
        doc["instances"][key] = inst
        doc["updated"] = inst["run_at"]
        tmp = JSON_OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, JSON_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
