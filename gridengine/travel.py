"""Travel from specialists' bases to grid centres: great-circle km, or along a road graph.

With a road graph, travel is the network distance (km) or time (min) between the graph
nodes nearest to the two points, plus the straight-line "snap" legs to those nodes.

Files read by :func:`read_road_graph`
    GraphML (``.graphml``/``.xml``, e.g. osmnx ``save_graphml``): node attributes ``y``/``x``
    (or ``lat``/``lon``), edge ``length`` (m) and optional ``travel_time`` (s), as numbers or
    numeric strings. Directed edges are taken as given (osmnx one-way streets stay one-way);
    an undirected graph gives arcs both ways.
    Edge-list CSV (``.csv``): columns ``u,v,length_m``, optional ``travel_time_s`` and
    ``oneway`` (1/true/yes: u->v only; 0/false/no/blank: both ways), plus a node file
    ``<stem>_nodes.csv`` next to it with columns ``id,lat,lon`` (ids matched as text).
    Errors name the file, the 1-based data row (header not counted) and the column.
Parallel arcs keep the cheapest; self-loops and nodes without arcs are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from ._geo import EARTH_RADIUS_KM, haversine_km  # one Earth model for every distance
from .errors import InputError

__all__ = ["RoadGraph", "read_road_graph", "travel_matrix", "haversine_km"]

logger = logging.getLogger(__name__)

_CHUNK_FLOATS = 1 << 24  # dijkstra rows held at once: 16 M floats = 128 MiB
_ONEWAY = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """A directed road graph with one non-negative cost per arc.

    Attributes
    ----------
    node_lat, node_lon : numpy.ndarray
        Node coordinates in degrees (WGS-84), one per node.
    src, dst : numpy.ndarray
        Arc end points as node positions (int64); an undirected edge is two arcs.
    cost : numpy.ndarray
        Arc costs (float64, finite, >= 0) in ``unit``.
    unit : str
        ``"km"`` (network distance) or ``"min"`` (travel time).
    name : str
        The file name, for messages.
    """

    node_lat: np.ndarray
    node_lon: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    cost: np.ndarray
    unit: str
    name: str

    def __post_init__(self) -> None:
        n, m = len(self.node_lat), len(self.src)
        if n == 0 or m == 0 or len(self.node_lon) != n or not m == len(self.dst) == len(self.cost):
            raise ValueError(f"{self.name}: RoadGraph needs nodes, arcs and arrays of matching lengths")
        if self.unit not in ("km", "min") or not (np.isfinite(self.cost) & (self.cost >= 0)).all():
            raise ValueError(f"{self.name}: unit must be 'km' or 'min' and arc costs finite and >= 0")
        if min(self.src.min(), self.dst.min()) < 0 or max(self.src.max(), self.dst.max()) >= n:
            raise ValueError(f"{self.name}: arc end points must be node positions 0..{n - 1}")

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_lat)


def _fail(path: Path, what: str, *, row: int | None = None, field: str | None = None) -> InputError:
    where = (f", row {row}" if row is not None else "") + (f", column '{field}'" if field else "")
    return InputError(f"{path}{where}: {what}", path=str(path), row=row, field=field)


def read_road_graph(path: str | Path, *, weight: str | None = None) -> RoadGraph:
    """Read a road graph from GraphML or an edge-list CSV (formats: see the module docstring).

    Parameters
    ----------
    path
        A ``.graphml``/``.xml`` or ``.csv`` file.
    weight
        ``None`` uses travel time (unit ``"min"``) when every edge has one, else length
        (unit ``"km"``); ``"length"`` or ``"travel_time"`` forces the choice.

    Returns
    -------
    RoadGraph

    Raises
    ------
    InputError
        If the file is missing or unreadable, a column or attribute is missing, a value is
        not a number or is negative, a node id is unknown, or there are no edges.
    """
    if weight not in (None, "length", "travel_time"):
        raise ValueError(f"weight must be None, 'length' or 'travel_time', not {weight!r}")
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "road graph file not found")
    reader = {".graphml": _read_graphml, ".xml": _read_graphml, ".csv": _read_csv}.get(path.suffix.lower())
    if reader is None:
        raise _fail(path, f"unsupported road graph format {path.suffix!r}; use .graphml or .csv")
    lat, lon, u, v, twoway, length_m, time_s, locate = reader(path)
    use_time = weight == "travel_time" or (weight is None and time_s is not None and not np.isnan(time_s).any())
    values, unit = (time_s, "min") if use_time else (length_m, "km")
    if values is None or np.isnan(values).any():
        raise locate(None if values is None else int(np.flatnonzero(np.isnan(values))[0]), use_time)
    cost = values / 60.0 if use_time else values / 1000.0
    src, dst, cost = np.r_[u, v[twoway]], np.r_[v, u[twoway]], np.r_[cost, cost[twoway]]
    keep = src != dst
    if not keep.any():
        raise _fail(path, "road graph has no edges (only self-loops)")
    order = np.lexsort((cost[keep], dst[keep], src[keep]))  # parallel arcs: the cheapest first
    src, dst, cost = src[keep][order], dst[keep][order], cost[keep][order]
    first = np.r_[True, (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])]
    src, dst, cost = src[first], dst[first], cost[first]
    used = np.zeros(len(lat), dtype=bool)
    used[src] = used[dst] = True
    if not used.all():
        logger.info("%s: dropped %d nodes with no arc", path.name, int((~used).sum()))
        new = np.cumsum(used) - 1
        src, dst, lat, lon = new[src], new[dst], lat[used], lon[used]
    logger.info("%s: %d nodes, %d arcs, cost in %s", path.name, len(lat), len(src), unit)
    return RoadGraph(lat, lon, src.astype("int64"), dst.astype("int64"), cost, unit, path.name)


def _number(path: Path, value, field: str, label: str, lo: float, hi: float) -> float:
    """A GraphML attribute as a float (NaN when absent); raises if not a number in [lo, hi]."""
    absent = value is None or str(value).strip() == ""
    try:
        x = float("nan") if absent else float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not absent and not (np.isfinite(x) and lo <= x <= hi):
        raise _fail(path, f"{label}: {field} {value!r} is not a number in [{lo}, {hi}]", field=field)
    return x


def _read_graphml(path: Path):
    try:
        g = nx.read_graphml(path)
    except (OSError, SyntaxError, ValueError, KeyError, nx.NetworkXError) as exc:
        raise _fail(path, f"cannot read GraphML: {exc}") from None
    index = {n: i for i, n in enumerate(g.nodes)}
    coords = np.empty((len(index), 2))
    for i, (n, d) in enumerate(g.nodes(data=True)):
        for j, (key, alt, lim) in enumerate((("y", "lat", 90.0), ("x", "lon", 180.0))):
            key = key if key in d or alt not in d else alt
            coords[i, j] = _number(path, d.get(key), key, f"node {n!r}", -lim, lim)
            if np.isnan(coords[i, j]):
                raise _fail(path, f"node {n!r} has no {key} ({'latitude' if j == 0 else 'longitude'})", field=key)
    edges = list(g.edges(data=True))
    if not edges:
        raise _fail(path, "road graph has no edges")
    u = np.array([index[a] for a, _, _ in edges], dtype="int64")
    v = np.array([index[b] for _, b, _ in edges], dtype="int64")
    length_m, time_s = (
        np.array([_number(path, d.get(k), k, f"edge {a!r}->{b!r}", 0.0, np.inf) for a, b, d in edges])
        for k in ("length", "travel_time")
    )

    def locate(i: int | None, use_time: bool) -> InputError:
        field = "travel_time" if use_time else "length"
        a, b, _ = edges[i]
        return _fail(path, f"edge {a!r}->{b!r} has no {field}", field=field)

    twoway = np.full(len(edges), not g.is_directed())
    return coords[:, 0], coords[:, 1], u, v, twoway, length_m, time_s, locate


def _load_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _fail(path, f"cannot read CSV: {exc}") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in required:
        if col not in df.columns:
            raise _fail(path, f"required column '{col}' is missing (columns: {', '.join(df.columns)})", field=col)
    return df


def _csv_numbers(df: pd.DataFrame, col: str, path: Path, lo: float, hi: float = np.inf,
                 blank_ok: bool = False) -> np.ndarray:
    """A CSV column as floats (NaN for blanks when ``blank_ok``); raises naming row and column."""
    raw = df[col].str.strip()
    x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
    blank = raw.eq("").to_numpy()
    bad = (~np.isfinite(x) & ~(blank & blank_ok)) | (x < lo) | (x > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "is not a number" if not np.isfinite(x[i]) else ("is negative" if lo == 0 else f"is not in [{lo}, {hi}]")
        raise _fail(path, f"value {raw.iloc[i]!r} {what}", row=i + 1, field=col)
    return x


def _read_csv(path: Path):
    df = _load_csv(path, ("u", "v", "length_m"))
    if df.empty:
        raise _fail(path, "road graph has no edges")
    ends = {c: df[c].str.strip().to_numpy(dtype=object) for c in ("u", "v")}
    length_m = _csv_numbers(df, "length_m", path, 0.0)
    time_s = _csv_numbers(df, "travel_time_s", path, 0.0, blank_ok=True) if "travel_time_s" in df else None
    twoway = np.ones(len(df), dtype=bool)
    if "oneway" in df:
        flags = df["oneway"].str.strip().str.lower()
        bad = ~flags.isin(list(_ONEWAY))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(path, f"oneway {flags.iloc[i]!r} is not 0/1", row=i + 1, field="oneway")
        twoway = ~flags.map(_ONEWAY).to_numpy(dtype=bool)
    nodes_path = path.with_name(f"{path.stem}_nodes.csv")
    if not nodes_path.is_file():
        raise _fail(path, f"node file {nodes_path.name} (columns id,lat,lon) not found next to it")
    nd = _load_csv(nodes_path, ("id", "lat", "lon"))
    ids = pd.Index(nd["id"].str.strip())
    if ids.duplicated().any():
        i = int(np.flatnonzero(ids.duplicated())[0])
        raise _fail(nodes_path, f"node id {ids[i]!r} appears twice", row=i + 1, field="id")
    lat, lon = _csv_numbers(nd, "lat", nodes_path, -90.0, 90.0), _csv_numbers(nd, "lon", nodes_path, -180.0, 180.0)
    u, v = ids.get_indexer(ends["u"]), ids.get_indexer(ends["v"])
    missing = np.c_[(u < 0) | (ends["u"] == ""), (v < 0) | (ends["v"] == "")]
    if missing.any():
        i, j = divmod(int(np.flatnonzero(missing.ravel())[0]), 2)
        raise _fail(path, f"node id {ends['uv'[j]][i]!r} is not in {nodes_path.name}", row=i + 1, field="uv"[j])

    def locate(i: int | None, use_time: bool) -> InputError:
        field = "travel_time_s" if use_time else "length_m"
        if i is None:
            return _fail(path, f"column '{field}' is missing", field=field)
        return _fail(path, f"{field} is empty", row=i + 1, field=field)

    return lat, lon, u, v, twoway, length_m, time_s, locate


def _points(lat, lon, side: str) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = (np.atleast_1d(np.asarray(a, dtype="float64")) for a in (lat, lon))
    if lat.ndim != 1 or lat.shape != lon.shape or not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError(f"{side}_lat and {side}_lon must be 1-D, of equal length, without NaN or inf")
    return lat, lon


def _csr(src: np.ndarray, dst: np.ndarray, cost: np.ndarray, n: int) -> csr_matrix:
    """Arcs as a CSR matrix built from its parts, so zero-cost arcs stay (explicit zeros)."""
    order = np.argsort(src, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(src, minlength=n))]
    return csr_matrix((cost[order], dst[order].astype("int32"), indptr.astype("int32")), shape=(n, n))


def _network(csr: csr_matrix, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Shortest-path cost from each source node to each target node (chunked over sources)."""
    out = np.empty((len(sources), len(targets)))
    step = max(1, _CHUNK_FLOATS // csr.shape[0])
    for s in range(0, len(sources), step):
        out[s:s + step] = dijkstra(csr, directed=True, indices=sources[s:s + step], min_only=False)[:, targets]
    return out


def travel_matrix(orig_lat, orig_lon, dest_lat, dest_lon, *, graph: RoadGraph | None = None,
                  snap_penalty_kmh: float = 20.0) -> np.ndarray:
    """Travel cost from every origin to every destination.

    Parameters
    ----------
    orig_lat, orig_lon, dest_lat, dest_lon
        Coordinates in degrees (1-D array-likes; scalars are one point).
    graph
        ``None`` for great-circle km. Otherwise each point is snapped to its nearest graph
        node (planar nearest on a local equirectangular projection) and the cost is the
        directed shortest path between the two nodes plus both snap legs (great-circle
        point-to-node distance, in km, or in minutes at ``snap_penalty_kmh``).
    snap_penalty_kmh
        Speed of the snap legs when ``graph.unit == "min"``.

    Returns
    -------
    numpy.ndarray
        Shape (n_orig, n_dest), float64, in km or ``graph.unit``; ``inf`` where the
        destination's node cannot be reached from the origin's node.
    """
    olat, olon = _points(orig_lat, orig_lon, "orig")
    dlat, dlon = _points(dest_lat, dest_lon, "dest")
    if graph is None:
        return haversine_km(olat[:, None], olon[:, None], dlat[None, :], dlon[None, :])
    if not (np.isfinite(snap_penalty_kmh) and snap_penalty_kmh > 0):
        raise ValueError(f"snap_penalty_kmh must be a positive number, not {snap_penalty_kmh!r}")
    if len(olat) == 0 or len(dlat) == 0:
        return np.zeros((len(olat), len(dlat)))
    lat0, lon0 = float(np.mean(graph.node_lat)), float(np.mean(graph.node_lon))
    scale = np.radians(EARTH_RADIUS_KM * 1000.0)

    def project(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.c_[((lon - lon0 + 180.0) % 360.0 - 180.0) * scale * np.cos(np.radians(lat0)), (lat - lat0) * scale]

    tree = cKDTree(project(graph.node_lat, graph.node_lon))
    onode, dnode = (tree.query(project(la, lo))[1].astype("int64") for la, lo in ((olat, olon), (dlat, dlon)))
    osnap, dsnap = (haversine_km(la, lo, graph.node_lat[nd], graph.node_lon[nd])
                    for la, lo, nd in ((olat, olon, onode), (dlat, dlon, dnode)))
    logger.info("%s: snapped %d origins, %d destinations; farthest snap %.3f km", graph.name,
                len(olat), len(dlat), max(osnap.max(), dsnap.max()))
    if graph.unit == "min":
        osnap, dsnap = osnap / snap_penalty_kmh * 60.0, dsnap / snap_penalty_kmh * 60.0
    uo, inv_o = np.unique(onode, return_inverse=True)
    ud, inv_d = np.unique(dnode, return_inverse=True)
    if len(uo) <= len(ud):  # dijkstra from the side with fewer distinct nodes
        net = _network(_csr(graph.src, graph.dst, graph.cost, graph.n_nodes), uo, ud)[np.ix_(inv_o, inv_d)]
    else:  # reversed arcs: cost from every origin node to each destination node
        net = _network(_csr(graph.dst, graph.src, graph.cost, graph.n_nodes), ud, uo)[np.ix_(inv_d, inv_o)].T
    return np.ascontiguousarray(net + osnap[:, None] + dsnap[None, :])
