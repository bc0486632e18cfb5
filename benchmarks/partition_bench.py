"""Partitioner benchmark: gridengine's ``partition_units`` against METIS, KaHIP, GerryChain and k-means.

The peers are NOT gridengine dependencies. Install them into the project's venv first:

    .venv/bin/pip install -r benchmarks/requirements.txt

then run (from the repository root):

    .venv/bin/python benchmarks/partition_bench.py                          # S, M, L; all methods
    .venv/bin/python benchmarks/partition_bench.py --sizes S
    .venv/bin/python benchmarks/partition_bench.py --sizes M,L --timeout 300
    .venv/bin/python benchmarks/partition_bench.py --sizes S --methods gridengine,metis

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
only (graph conversion for a peer's API is set-up, not timed). All results are then scored by
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
* kahip: ``kahip.kaffpa(vwgt=round(10 w), xadj, adjcwgt=1, adjncy, k, imbalance=0.05,
  suppress_output=True, seed, mode=ECO)``. The Python binding has no connected-blocks option.
* gerrychain: networkx graph with a ``workload`` node attribute -> ``gerrychain.Graph.from_networkx``
  -> ``recursive_tree_part(graph, range(k), pop_target=total/k, pop_col="workload",
  epsilon=0.05, rng=seed)`` (``gerrychain.partition`` in GerryChain >= 1.0; ``gerrychain.tree``
  before). Failures ("Could not find a possible cut ...") and timeouts are its reported outcome.
* kmeans: ``sklearn.cluster.KMeans(n_clusters=k, n_init=3, random_state=seed)`` fitted on the
  coordinates of units with workload > 0 (``sample_weight`` = workload); empty units go to the
  nearest centre (``predict``). No contiguity or balance: the compactness reference.

Results: one table per instance on stdout, and ``benchmarks/results/partition_bench.json``
(merged: entries for other sizes/seeds already in the file are kept).
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
METHODS = ("gridengine", "metis", "kahip", "gerrychain", "kmeans")
H3_RES = 9
CAPACITY_FACTOR = 1.10  # upper = 1.10 x mean grid workload
MAX_CELL_SHARE = 0.2  # max_cell_workload = 0.2 x mean grid workload (adaptive build_cells)
BALANCE_BAND = 0.05  # within_5pct
BUILD_TIMEOUT_S = 1800

# Peer settings
WEIGHT_SCALE = 10  # integer vertex weights for METIS/KaHIP: round(workload * 10)
METIS_UFACTOR = 50  # max part weight <= (1 + 50/1000) x average
KAHIP_IMBALANCE = 0.05
KAHIP_MODE = "ECO"
GERRY_EPSILON = 0.05
KMEANS_N_INIT = 3


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


# --------------------------------------------------------------------------- #
# Units (built once per instance, cached)                                     #
# --------------------------------------------------------------------------- #


def _source_tag() -> str:
    h = hashlib.sha256()
    for f in ("gridengine/cells.py", "gridengine/synth.py"):
        p = ROOT / f
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:10]


def units_paths(size: str, seed: int) -> tuple[Path, Path]:
    stem = RESULTS / f"units_{size}_seed{seed}_res{H3_RES}_{_source_tag()}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def _child_build(size: str, seed: int) -> None:
    import inspect

    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from gridengine.cells import build_cells
    from gridengine.synth import generate_city

    n_customers, k = SIZES[size]
    npz_path, meta_path = units_paths(size, seed)
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
        "source_tag": _source_tag(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = npz_path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, w=w, x=x, y=y, src=src, dst=dst)
    os.replace(tmp, npz_path)
    meta_path.write_text(json.dumps(meta, indent=1))


def _load_units(size: str, seed: int):
    import numpy as np

    npz_path, meta_path = units_paths(size, seed)
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


RUNNERS = {"gridengine": run_gridengine, "metis": run_metis, "kahip": run_kahip,
           "gerrychain": run_gerrychain, "kmeans": run_kmeans}


def run_paths(size: str, seed: int, method: str) -> tuple[Path, Path, Path]:
    stem = RUNS / f"{size}_seed{seed}_{method}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json"), stem.with_suffix(".log")


def _child_run(size: str, seed: int, method: str) -> None:
    import resource

    import numpy as np

    npz_path, meta_path, _ = run_paths(size, seed, method)
    u = _load_units(size, seed)
    clock = _Clock()
    info: dict = {"settings": None, "notes": []}
    rec: dict = {"method": method}
    try:
        labels, bridges = RUNNERS[method](u, seed, clock, info)
    except Exception as e:
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        rec.update(status="error", error=msg[:400])
    else:
        with open(npz_path, "wb") as f:
            np.savez(f, labels=np.asarray(labels, dtype="int64"),
                     bridges=bridges if bridges is not None else np.zeros((0, 2), dtype="int64"))
        rec["status"] = "ok"
    rec.update(info)
    rec["time_s"] = clock.seconds
    rec["mem_before_call_mb"] = clock.mem_before_mb
    rec["mem_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    meta_path.write_text(json.dumps(rec, indent=1))


def _child_score(size: str, seed: int, methods: list[str]) -> None:
    import numpy as np

    u = _load_units(size, seed)
    meta = u["meta"]
    out = {}
    for m in methods:
        npz_path, _, _ = run_paths(size, seed, m)
        with np.load(npz_path) as z:
            labels, bridges = z["labels"], z["bridges"]
        out[m] = score(labels, u["w"], u["x"], u["y"], u["src"], u["dst"], k=meta["k"], upper=meta["upper"],
                       extra_edges=bridges if m == "gridengine" else None)
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
    for pkg in ("gridengine", "numpy", "scipy", "networkx", "h3", "pymetis", "kahip", "gerrychain", "scikit-learn"):
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


COLUMNS = [("method", "method", "<11", "s"), ("status", "status", "<7", "s"), ("time_s", "time_s", ">8", ".2f"),
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
            txt = v if spec == "s" else _fmt(v, spec)
            cells.append(format(str(txt if txt is not None else "-"), align))
        lines.append("  ".join(cells))
    lines.append("notes:")
    for r in inst["rows"]:
        bits = []
        if r.get("error"):
            bits.append(f"ERROR: {r['error']}")
        if r.get("settings"):
            bits.append(r["settings"])
        bits += r.get("notes", [])
        if r.get("status") == "ok" and r.get("n_split_grids"):
            bits.append(f"{r['n_split_grids']} grid(s) in several pieces")
        if r.get("status") == "ok" and r.get("unassigned_units"):
            bits.append(f"{r['unassigned_units']} unit(s) unassigned")
        lines.append(f"  [{r['method']}] " + " | ".join(bits))
    ratios = inst.get("ratios", {})
    txt = []
    for peer in ("metis", "kmeans"):
        key = f"gridengine/{peer}"
        v = ratios.get(key)
        txt.append(f"{key} = {v:.3f}" if v is not None else f"{key} = n/a")
    lines.append("compactness ratio: " + ", ".join(txt)
                 + (" (metis ran with contig=0 after contig=1 was rejected)" if inst.get("metis_fallback") else ""))
    return "\n".join(lines)


def run_instance(size: str, seed: int, methods: list[str], timeout: float, rebuild: bool) -> dict:
    npz_path, meta_path = units_paths(size, seed)
    if rebuild or not (npz_path.exists() and meta_path.exists()):
        print(f"[{size}] building units ...", file=sys.stderr, flush=True)
        r = _spawn(["--_build", size, "--seed", str(seed)], BUILD_TIMEOUT_S, RUNS / f"{size}_seed{seed}_build.log")
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
        r = _spawn(["--_run", m, "--_size", size, "--seed", str(seed)], timeout, log)
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
        r = _spawn(["--_score", size, "--seed", str(seed), "--methods", ",".join(ok)], BUILD_TIMEOUT_S,
                   RUNS / f"{size}_seed{seed}_score.log")
        scores = json.loads(r["tail"][-1]) if r["returncode"] == 0 else {}
        for row in rows:
            if row["method"] in scores:
                row.update(scores[row["method"]])
            elif row["status"] == "ok":
                row.update(status="error", error="scoring failed: " + " / ".join(r["tail"]))
    by = {r["method"]: r for r in rows}
    ratios = {}
    ge_c = by.get("gridengine", {}).get("compactness_km")
    for peer in ("metis", "kmeans"):
        pc = by.get(peer, {}).get("compactness_km")
        ratios[f"gridengine/{peer}"] = (ge_c / pc) if (ge_c is not None and pc) else None
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
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # benchmark the working tree
    if args._build:
        _child_build(args._build, args.seed)
        return 0
    if args._run:
        _child_run(args._size, args.seed, args._run)
        return 0
    if args._score:
        _child_score(args._score, args.seed, args.methods.split(","))
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
        print(render(inst), flush=True)
        print(flush=True)
        doc["instances"][f"{size}_seed{args.seed}"] = inst
        doc["updated"] = inst["run_at"]
        tmp = JSON_OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, JSON_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
