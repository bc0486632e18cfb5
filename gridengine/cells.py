"""Index cells: customers to H3 cells, the tiled service area, and the cell adjacency graph.

Cells are kept as 64-bit H3 integers inside the pipeline (fast, compact) and written
as H3 strings in the plan files. The service area is tiled completely, empty cells
included (DESIGN.md), so grids are territories on the map:

* with a planner-given service-area polygon, the tiling is every cell whose centre
  lies in the polygon, plus every cell that holds a customer inside it; customers
  outside the polygon are rejected with that reason;
* otherwise it is every cell within ``service_area_buffer_m`` of an occupied cell.

Areas of the tiling that do not touch (islands, land cut off by water) become
separate components of the adjacency graph; the partitioner handles them.

**Adaptive resolution.** Fixed-resolution cells are too coarse in dense cores: one
resolution-9 cell of a high-rise district can hold more workload than a specialist.
With ``max_cell_workload`` set, every cell heavier than it is replaced by its seven
children (one resolution finer), repeatedly, up to ``max_refine`` levels, so the tiling
mixes resolutions but cells never overlap by index: a customer belongs to the one cell
of the tiling that is an ancestor-or-self of its finest cell (H3's index hierarchy,
which is exact, unlike its geometry). A cell whose customers all sit at one point is not
refined (refining cannot split them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

from ._geo import M_PER_DEG_EQUATOR, LocalProjection, haversine_km
from .config import CellConfig

__all__ = [
    "grid_zones",
    "points_in_cells",
    "refine_resolution",
    "split_heavy_cells",
    "cell_to_parent_vec",
    "cells_to_polygon",
    "haversine_km",
    "LocalProjection",
    "points_to_cells",
    "tile_service_area",
    "cell_adjacency",
    "build_cells",
    "index_customers",
    "CellIndex",
]

logger = logging.getLogger(__name__)

_RES_MASK = np.uint64(0xF << 52)


def cell_to_parent_vec(cells: np.ndarray, res: int) -> np.ndarray:
    """Vectorised ``h3.cell_to_parent`` on uint64 cells of resolution >= ``res`` (bit arithmetic on the index)."""
    cells = np.asarray(cells, dtype="uint64")
    out = (cells & ~_RES_MASK) | np.uint64(res << 52)
    return out | np.uint64((1 << ((15 - res) * 3)) - 1)


def cell_resolution_vec(cells: np.ndarray) -> np.ndarray:
    """Vectorised ``h3.get_resolution`` on uint64 cells."""
    return ((np.asarray(cells, dtype="uint64") & _RES_MASK) >> np.uint64(52)).astype("int64")


def _points_to_cells_loop(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """Reference implementation: h3-py's ``latlng_to_cell`` called once per point."""
    f = h3i.latlng_to_cell
    return np.fromiter((f(a, b, res) for a, b in zip(lat.tolist(), lon.tolist())), dtype="uint64", count=len(lat))


try:  # vectorised H3 indexing (Rust, h3o): same cells as h3-py, ~1.7x its throughput (benchmarks/rollout_bench.py)
    from h3ronpy.vector import coordinates_to_cells as _h3ronpy_cells
except ImportError:  # pragma: no cover - optional accelerator
    _h3ronpy_cells = None


def points_to_cells(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """H3 cell (uint64) of each point at resolution ``res``.

    Vectorised through h3ronpy when it is installed (identical cells, checked by the tests);
    otherwise, or for input it rejects, h3-py one point at a time.
    """
    if _h3ronpy_cells is not None and len(lat):
        try:
            la = np.ascontiguousarray(lat, dtype="float64")
            lo = np.ascontiguousarray(lon, dtype="float64")
            return np.array(_h3ronpy_cells(la, lo, int(res)), dtype="uint64")  # a writable copy
        except (ValueError, TypeError):  # e.g. a non-finite coordinate: let h3-py raise its own error
            pass
    return _points_to_cells_loop(np.asarray(lat), np.asarray(lon), res)


def _ring_count(buffer_m: float, res: int) -> int:
    # Distance between neighbouring cell centres is sqrt(3) x edge length.
    step = math.sqrt(3) * h3.average_hexagon_edge_length(res, "m")
    return int(math.ceil(buffer_m / step))


def tile_service_area(occupied: np.ndarray, *, res: int, service_area=None, buffer_m: float = 1000.0) -> np.ndarray:
    """All cells of the service area, sorted.

    Parameters
    ----------
    occupied
        Cells holding at least one customer (uint64).
    res
        H3 resolution.
    service_area
        A shapely (Multi)Polygon in WGS-84, or None for a buffer around the occupied cells.
    buffer_m
        Buffer distance without a polygon.
    """
    occupied = np.unique(occupied)
    if service_area is not None:
        import shapely

        cells: set[int] = set(map(int, occupied))
        geoms = shapely.get_parts(service_area)
        for g in geoms:
            cells.update(h3i.geo_to_cells(g.__geo_interface__, res))
        return np.array(sorted(cells), dtype="uint64")
    rings = _ring_count(buffer_m, res)
    cells = set()
    disk = h3i.grid_disk
    for c in occupied.tolist():
        cells.update(disk(c, rings))
    return np.array(sorted(cells), dtype="uint64")


def cell_adjacency(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected adjacency of sorted ``cells`` (resolutions may be mixed): index pairs (i < j), sorted.

    Two cells are adjacent when a same-resolution neighbour of the finer one is the coarser
    one or a descendant of it. Pentagons are handled (``grid_disk`` rather than ``grid_ring``).
    """
    cells = np.asarray(cells, dtype="uint64")
    pos = {int(c): i for i, c in enumerate(cells.tolist())}
    res = cell_resolution_vec(cells)
    coarsest = int(res.min()) if len(res) else 0
    mixed = len(res) and int(res.max()) != coarsest
    src: list[int] = []
    dst: list[int] = []
    disk = h3i.grid_disk
    parent = h3i.cell_to_parent
    for i, c in enumerate(cells.tolist()):
        rc = int(res[i]) if mixed else coarsest
        for nb in disk(c, 1):
            if nb == c:
                continue
            j = pos.get(nb)
            if j is None and mixed:
                for r in range(rc - 1, coarsest - 1, -1):
                    j = pos.get(parent(nb, r))
                    if j is not None:
                        break
            if j is not None and j != i:
                src.append(min(i, j))
                dst.append(max(i, j))
    if not src:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    pairs = np.unique(np.c_[np.array(src, dtype="int64"), np.array(dst, dtype="int64")], axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def cells_to_polygon(cells: list[str]):
    """The territory covered by H3 cells (any mix of resolutions) as one shapely geometry.

    Same-resolution groups are merged exactly by H3; groups are then unioned, and the
    slivers H3's inexact parent/child geometry leaves between resolutions are filled.
    """
    import shapely
    from shapely.geometry import MultiPolygon, Polygon, shape

    by_res: dict[int, list[str]] = {}
    for c in cells:
        by_res.setdefault(h3.get_resolution(c), []).append(c)
    parts = [shape(h3.cells_to_geo(group)) for _, group in sorted(by_res.items())]
    geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    if len(parts) == 1:
        return geom
    finest = max(by_res)
    limit = h3.average_hexagon_area(finest, "km^2") * 1e6 / (M_PER_DEG_EQUATOR ** 2)  # one finest cell, in deg²

    def fill(p: Polygon) -> Polygon:
        keep = [r for r in p.interiors if Polygon(r).area > limit]
        return Polygon(p.exterior, keep)

    polys = [fill(p) for p in shapely.get_parts(geom) if isinstance(p, Polygon)]
    if len(polys) > 1:
        # H3 children do not tile their parent exactly: neighbouring cells of different resolutions
        # can meet at a point or leave a hairline gap, so one territory unions into several parts.
        # A morphological closing a fraction of the finest cell's edge wide joins them (parts farther
        # apart, such as an island joined by a bridge, stay separate).
        eps = 0.3 * h3.average_hexagon_edge_length(finest, "m") / M_PER_DEG_EQUATOR
        closed = shapely.buffer(shapely.buffer(MultiPolygon(polys), eps, join_style="mitre"), -eps,
                                join_style="mitre")
        cparts = [fill(p) for p in shapely.get_parts(closed) if isinstance(p, Polygon) and p.area > 0]
        if 0 < len(cparts) < len(polys):
            polys = cparts
    if len(polys) > 1:
        # a fine cell beside cells several resolutions coarser can sit a few metres off them: glue
        # each such part to its nearest part with the small hull between them (gaps within three finest
        # cell edges and half a coarsest one; farther parts are islands, which the plan reports as bridges)
        reach = min(3 * h3.average_hexagon_edge_length(finest, "m"),
                    0.5 * h3.average_hexagon_edge_length(min(by_res), "m")) / M_PER_DEG_EQUATOR
        polys.sort(key=lambda p: -p.area)
        main, rest = polys[0], []
        for p in polys[1:]:
            d = main.distance(p)
            if d <= reach:
                near = main.intersection(p.buffer(d * 1.05 + 1e-7))
                main = shapely.union_all([main, p, shapely.convex_hull(shapely.union_all([p, near]))])
            else:
                rest.append(p)
        if isinstance(main, MultiPolygon):  # pragma: no cover - the hulls join what they touch
            rest.extend(list(main.geoms)[1:])
            main = list(main.geoms)[0]
        polys = [fill(main)] + rest
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


@dataclass
class CellIndex:
    """The cell layer of a plan.

    Attributes
    ----------
    cells
        One row per cell of the tiled service area, sorted by ``cell``: ``cell`` (uint64 H3),
        ``lat``, ``lon`` (centre), ``x``, ``y`` (metres, local projection), ``workload`` (float),
        ``n_customers`` (int).
    edges
        Two int arrays (i, j), i < j, of adjacent cells (row positions in ``cells``).
    customer_cell
        Row position in ``cells`` of each located customer (same order as the customers table).
    projection
        The local projection used for ``x``/``y``.
    cut_edges
        Two int arrays (i, j) of the adjacencies that barriers and zone boundaries removed.
    zone_names
        With zones: the name of each zone; ``cells`` then has a ``zone`` column (its number,
        the zone of the customers the cell holds, else of its centre).
    zone_links
        With zones: pairs of cells (i, j) of one zone joined though not touching (a part of the
        zone cut off by water, a barrier or another zone joins the zone's main part); they are
        also in ``edges``.
    n_barrier_only_cuts
        Adjacencies removed by barriers (the rest of ``cut_edges`` are zone borders).
    """

    cells: pd.DataFrame
    edges: tuple[np.ndarray, np.ndarray]
    customer_cell: np.ndarray
    projection: LocalProjection
    cut_edges: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64"))
    zone_names: list[str] | None = None
    zone_links: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64"))
    n_barrier_only_cuts: int = 0

    @property
    def n_barrier_cuts(self) -> int:
        """Number of adjacencies removed by barriers and zone boundaries."""
        return int(len(self.cut_edges[0]))


def _refine_units(lat: np.ndarray, lon: np.ndarray, w: np.ndarray, base: int, max_res: int,
                  max_cell_workload: float | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each customer's cell after adaptive refinement, and the cells split at each level."""
    if max_cell_workload is None or max_res <= base:
        return points_to_cells(lat, lon, base), []
    fine = points_to_cells(lat, lon, max_res)
    unit = cell_to_parent_vec(fine, base)
    split: list[np.ndarray] = []
    for r in range(base, max_res):
        at_r = cell_resolution_vec(unit) == r
        uniq, inv = np.unique(unit, return_inverse=True)
        load = np.bincount(inv, weights=w, minlength=len(uniq))
        # cells whose customers sit at more than one finest cell (else refining cannot split them)
        f_min = np.full(len(uniq), np.iinfo("uint64").max, dtype="uint64")
        f_max = np.zeros(len(uniq), dtype="uint64")
        np.minimum.at(f_min, inv, fine)
        np.maximum.at(f_max, inv, fine)
        heavy = (load > max_cell_workload) & (f_min != f_max)
        sel = heavy[inv] & at_r
        if not sel.any():
            break
        split.append(np.unique(unit[sel]))
        unit[sel] = cell_to_parent_vec(fine[sel], r + 1)
    return unit, split


def index_customers(customers: pd.DataFrame, *, config: CellConfig, target: float, service_area: Any = None,
                    barriers: Any = None, zones: Any = None,
                    exclude: np.ndarray | None = None) -> tuple[CellIndex, pd.DataFrame, pd.DataFrame]:
    """The cells stage of a plan: :func:`build_cells` with the cells section of the config.

    Parameters
    ----------
    customers
        Located customers (``lat``, ``lon``, ``workload``).
    config
        The cells config: resolution, service-area buffer, and adaptive refinement
        (``max_cell_share`` of ``target``, up to ``max_refine`` levels).
    target
        A grid's target workload (:class:`~gridengine.partition.stage.GridDesign`).
    service_area, barriers, zones, exclude
        As :func:`build_cells`.

    Returns
    -------
    (CellIndex, pandas.DataFrame, pandas.DataFrame)
        As :func:`build_cells`.
    """
    max_cell = None if config.max_cell_share is None else config.max_cell_share * target
    return build_cells(customers, res=config.resolution, service_area=service_area,
                       buffer_m=config.service_area_buffer_m, max_cell_workload=max_cell, max_refine=config.max_refine,
                       barriers=barriers, zones=zones, exclude=exclude)


def build_cells(
    customers: pd.DataFrame,
    *,
    res: int,
    service_area=None,
    buffer_m: float = 1000.0,
    max_cell_workload: float | None = None,
    max_refine: int = 3,
    barriers=None,
    zones=None,
    exclude: np.ndarray | None = None,
) -> tuple[CellIndex, pd.DataFrame, pd.DataFrame]:
    """Index customers into H3 cells, tile the service area and build the adjacency.

    Parameters
    ----------
    customers
        Located customers with ``customer_id``, ``lat``, ``lon``, ``workload``, ``row``.
    res
        Base H3 resolution of the tiling.
    service_area
        Optional shapely (Multi)Polygon in WGS-84.
    buffer_m
        Buffer used when no service area is given.
    max_cell_workload
        Adaptive resolution: cells heavier than this are split into their children, up to
        ``max_refine`` levels finer than ``res``. ``None`` keeps every cell at ``res``.
    max_refine
        Maximum number of refinement levels.
    barriers
        Optional shapely geometry (WGS-84) of lines and polygons no grid may cross (rivers,
        expressways, rail): adjacency between two cells is removed when the segment joining
        their centres crosses a barrier line or polygon boundary; cells whose centre lies inside
        a barrier polygon and hold no customer are dropped from the tiling.
    zones
        Optional shapely geometry or sequence of polygons (e.g. sub-district boundaries): cells
        belong to the zone containing their centre, and adjacency between zones is removed, so
        every grid stays inside one zone.
    exclude
        Optional H3 cells (uint64, any resolutions, none inside another) left out of the tiling:
        territory planned elsewhere (locked grids). Tiling cells equal to or inside them are dropped,
        and tiling cells containing them are replaced by their children, recursively, so that the
        tiling and ``exclude`` never overlap by index. No customer given may lie in them.

    Returns
    -------
    index
        The :class:`CellIndex`.
    customers
        The customers kept (inside the service area), with a ``cell`` column (uint64).
    rejects
        ``customer_id``, ``row``, ``reason`` for customers outside the service area.
    """
    lat = customers["lat"].to_numpy()
    lon = customers["lon"].to_numpy()
    rejects = pd.DataFrame({"customer_id": pd.Series(dtype=object), "row": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object)})
    if service_area is not None:
        import shapely

        inside = shapely.contains_xy(service_area, lon, lat) | shapely.intersects_xy(service_area, lon, lat)
        if (~inside).any():
            out = customers.loc[~inside]
            rejects = pd.DataFrame({
                "customer_id": out["customer_id"].to_numpy(dtype=object),
                "row": out["row"].to_numpy(),
                "reason": "outside the service area",
            })
            customers = customers.loc[inside].reset_index(drop=True)
            lat, lon = lat[inside], lon[inside]
    w_cust = customers["workload"].to_numpy(dtype="float64")
    cust_cells, split = _refine_units(lat, lon, w_cust, res, min(15, res + max_refine), max_cell_workload)
    zone_parts, zone_names, cust_zone = None, None, None
    if zones is not None:
        zone_parts, zone_names = _zone_parts(zones)
        cust_zone = _zone_of(lat, lon, zone_parts, nearest=True)
    side = _barrier_sides(lat, lon, barriers) if barriers is not None else None
    if cust_zone is not None or side is not None:
        # customer level: a cell holding customers of two zones (or of both sides of a barrier) is
        # split into its children until each cell holds one zone's customers on one side
        key = np.zeros(len(lat), dtype="int64")
        if cust_zone is not None:
            key = cust_zone.astype("int64")
        if side is not None:
            key = key * (int(side.max()) + 1) + side
        cust_cells, more, key_fixed = _split_mixed_cells(cust_cells, lat, lon, key)
        split = _merge_split_levels(split, more)
        if key_fixed:  # the majority of a shared point decided: zone and side follow the key
            n_side = int(side.max()) + 1 if side is not None else 1
            if cust_zone is not None:
                cust_zone = key // n_side
            if side is not None:
                side = key % n_side
        if key_fixed and cust_zone is not None:
            logger.info("cells: %d customers share a point with customers of another zone; they follow the "
                        "majority of that point", key_fixed)
    if exclude is not None and len(exclude):
        cust_cells = _out_of_excluded(cust_cells, lat, lon, exclude, refine_resolution(
            res, max_refine, max_cell_workload is not None))
    base_cells = cell_to_parent_vec(cust_cells, res)
    tiled = tile_service_area(base_cells, res=res, service_area=service_area, buffer_m=buffer_m)
    if split:
        current = set(tiled.tolist())
        for level in split:
            for c in level.tolist():
                if c not in current:  # a finer split of a cell outside the tiling (cannot happen; kept safe)
                    continue
                current.discard(c)
                current.update(h3i.cell_to_children(c, h3i.get_resolution(c) + 1))
        tiled = np.array(sorted(current), dtype="uint64")
    if exclude is not None and len(exclude):
        tiled = _tiling_without(tiled, exclude)
    if barriers is not None:
        tiled = _drop_barrier_cells(tiled, cust_cells, barriers)
    pos = np.searchsorted(tiled, cust_cells)
    if len(pos) and not (tiled[np.minimum(pos, len(tiled) - 1)] == cust_cells).all():  # pragma: no cover
        raise RuntimeError("internal error: a customer's cell is not part of the tiling")
    workload = np.bincount(pos, weights=w_cust, minlength=len(tiled))
    counts = np.bincount(pos, minlength=len(tiled))
    centres = np.array([h3i.cell_to_latlng(c) for c in tiled.tolist()], dtype="float64").reshape(-1, 2)
    proj = LocalProjection.around(centres[:, 0], centres[:, 1])
    x, y = proj.to_xy(centres[:, 0], centres[:, 1])
    table = pd.DataFrame({
        "cell": tiled,
        "lat": centres[:, 0],
        "lon": centres[:, 1],
        "x": x,
        "y": y,
        "workload": workload,
        "n_customers": counts.astype("int64"),
    })
    edges = cell_adjacency(tiled)
    cut = (np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64"))
    links = (np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64"))
    n_barrier_cut = 0
    if barriers is not None or zones is not None:
        keep = np.ones(len(edges[0]), dtype=bool)
        if barriers is not None:
            crossing = _edges_crossing(x, y, edges, barriers, proj)
            if side is not None:
                # the side a cell is on: its customers' (one side per cell, above), else its centre's; two
                # cells on two sides never touch. A cell whose centre lies across the line from its own
                # customers touches by side alone (its centre says nothing about where they are)
                faces = _barrier_faces(lat, lon, barriers)
                cside = _zone_of(centres[:, 0], centres[:, 1], faces, nearest=True)
                centre_side = cside.copy()
                cside[pos] = side
                straddles = cside != centre_side
                a_, b_ = edges
                by_side = cside[a_] != cside[b_]
                crossing = by_side | (crossing & ~straddles[a_] & ~straddles[b_])
            n_barrier_cut = int(crossing.sum())
            keep &= ~crossing
        if zones is not None:
            zone = _zone_of(centres[:, 0], centres[:, 1], zone_parts, nearest=True)
            zone[pos] = cust_zone  # an occupied cell is in its customers' zone (one zone per cell, above)
            zone = _absorb_empty_fragments(zone, edges, keep, workload)
            keep &= zone[edges[0]] == zone[edges[1]]
            table["zone"] = zone
        cut = (edges[0][~keep], edges[1][~keep])
        edges = (edges[0][keep], edges[1][keep])
        if zones is not None:
            links = _link_zone_parts(table["zone"].to_numpy(), edges, x, y, workload)
            if len(links[0]):
                pairs = np.unique(np.c_[np.r_[edges[0], links[0]], np.r_[edges[1], links[1]]], axis=0)
                edges = (pairs[:, 0].copy(), pairs[:, 1].copy())
                logger.info("cells: %d separate part(s) of zones joined to their zone's main part", len(links[0]))
    customers = customers.copy()
    customers["cell"] = cust_cells
    logger.info("cells: %d customers in %d occupied cells (%d cells refined); %d cells tile the service area, "
                "%d adjacencies", len(customers), int((counts > 0).sum()), sum(len(s_) for s_ in split),
                len(tiled), len(edges[0]))
    if len(cut[0]):
        logger.info("cells: barriers and zone boundaries removed %d adjacencies", len(cut[0]))
    return CellIndex(table, edges, pos, proj, cut, zone_names=zone_names, zone_links=links,
                     n_barrier_only_cuts=n_barrier_cut), customers, rejects


def _ancestors(cells: np.ndarray) -> np.ndarray:
    """Every strict ancestor (uint64) of the given cells, sorted."""
    cells = np.asarray(cells, dtype="uint64")
    res = cell_resolution_vec(cells)
    out = [cell_to_parent_vec(cells[res > r], r) for r in range(int(res.max(initial=0)))]
    return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype="uint64")


def refine_resolution(res: int, max_refine: int, refining: bool) -> int:
    """The resolution whose cells' parents give customers their cells in :func:`build_cells` (adaptive
    refinement's finest level; ``res`` itself without refinement)."""
    return max(res, min(15, res + max_refine)) if refining else res


def _chain_child(cells: np.ndarray, lat: np.ndarray, lon: np.ndarray, fine_m: np.ndarray, max_res: int,
                 fine15: np.ndarray) -> np.ndarray:
    """The child of each cell toward its point, the way :func:`build_cells` refines: the parent of the
    point's cell at ``max_res`` while within it (when that is a child of the cell), else :func:`_child_of`."""
    r = cell_resolution_vec(cells) + 1
    out = np.empty(len(cells), dtype="uint64")
    low = np.flatnonzero(r <= max_res)
    if len(low):
        cand = _parent_mixed(fine_m[low], r[low])
        off = _parent_mixed(cand, r[low] - 1) != cells[low]
        out[low] = cand
        rest = np.r_[low[off], np.flatnonzero(r > max_res)].astype("int64")
    else:
        rest = np.arange(len(cells))
    if len(rest):
        out[rest] = _child_of(cells[rest], fine15[rest], lat[rest], lon[rest], r[rest])
    return out


def points_in_cells(lat: np.ndarray, lon: np.ndarray, cells: np.ndarray, *, max_res: int) -> np.ndarray:
    """Which of the given cells holds each point, the way :func:`build_cells` places points.

    Parameters
    ----------
    lat, lon
        The points (WGS-84 degrees).
    cells
        H3 cells (uint64), none inside another, any resolutions.
    max_res
        :func:`refine_resolution` of the run: a point's cell at a resolution up to it is the parent
        of the point's cell at ``max_res``; finer, one child at a time toward the point.

    Returns
    -------
    numpy.ndarray
        Position in ``cells`` of the cell holding each point, -1 where none does.
    """
    cells = np.asarray(cells, dtype="uint64")
    n = len(lat)
    out = np.full(n, -1, dtype="int64")
    if not n or not len(cells):
        return out
    order = np.argsort(cells, kind="stable")
    sorted_cells = cells[order]
    res_set = sorted(set(cell_resolution_vec(cells).tolist()))

    def mark(cand: np.ndarray) -> None:
        p_ = np.minimum(np.searchsorted(sorted_cells, cand), len(cells) - 1)
        hit = (sorted_cells[p_] == cand) & (out < 0)
        out[hit] = order[p_[hit]]

    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    fine_m = points_to_cells(lat, lon, max_res)
    for r in res_set:
        if r <= max_res:
            mark(cell_to_parent_vec(fine_m, r))
    if res_set[-1] > max_res:
        fine15 = points_to_cells(lat, lon, 15)
        cur = fine_m
        for _ in range(max_res + 1, res_set[-1] + 1):
            cur = _chain_child(cur, lat, lon, fine_m, max_res, fine15)
            mark(cur)
    return out


def _out_of_excluded(cells: np.ndarray, lat: np.ndarray, lon: np.ndarray, exclude: np.ndarray,
                     max_res: int) -> np.ndarray:
    """Customers' cells made finer, toward each customer's point (as :func:`points_in_cells` descends),
    until none contains an excluded cell; a cell that lands in an excluded one (a point placed there by
    another path, e.g. a zone split) takes the nearest sibling outside it instead."""
    ex = np.unique(np.asarray(exclude, dtype="uint64"))
    anc = _ancestors(ex)
    cells = cells.copy()
    fine_m = points_to_cells(lat, lon, max_res)
    fine15 = points_to_cells(lat, lon, 15)
    for _ in range(16):
        hit = np.flatnonzero(np.isin(cells, anc))
        if not len(hit):
            break
        cells[hit] = _chain_child(cells[hit], lat[hit], lon[hit], fine_m[hit], max_res, fine15[hit])
    # cells in or inside an excluded cell: step back to its parent and down again, outside it
    res = cell_resolution_vec(cells)
    inside = np.isin(cells, ex)
    for r in np.unique(cell_resolution_vec(ex)).tolist():
        finer = res > r
        inside[finer] |= np.isin(cell_to_parent_vec(cells[finer], r), ex)
    ex_set, anc_set = set(ex.tolist()), set(anc.tolist())
    for i in np.flatnonzero(inside).tolist():
        c = int(cells[i])
        rc = h3i.get_resolution(c)
        top = next(cell for cell in [c] + [h3i.cell_to_parent(c, r) for r in range(rc - 1, -1, -1)] if cell in ex_set)
        c = h3i.cell_to_parent(top, h3i.get_resolution(top) - 1)
        while c in anc_set:
            kids = [k for k in h3i.cell_to_children(c, h3i.get_resolution(c) + 1) if k not in ex_set]
            if not kids:  # pragma: no cover - an ancestor of excluded cells is never wholly excluded
                raise RuntimeError("internal error: a customer lies wholly inside the excluded territory")
            cen = np.array([h3i.cell_to_latlng(k) for k in kids], dtype="float64")
            c = kids[int(np.argmin(haversine_km(lat[i], lon[i], cen[:, 0], cen[:, 1])))]
        cells[i] = c
    if inside.any():
        logger.info("cells: %d customer(s) beside excluded territory placed in the nearest cell outside it",
                    int(inside.sum()))
    return cells


def _tiling_without(tiled: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """The tiling minus the excluded cells: cells equal to or inside them dropped, cells containing
    them replaced by their children (recursively), so the two never overlap by index."""
    exclude = np.unique(np.asarray(exclude, dtype="uint64"))
    anc = set(_ancestors(exclude).tolist())
    ex = set(exclude.tolist())
    keep: set[int] = set()
    stack = sorted(tiled.tolist(), reverse=True)
    while stack:
        c = stack.pop()
        if c in ex:
            continue
        if c in anc:
            stack.extend(sorted(h3i.cell_to_children(c, h3i.get_resolution(c) + 1), reverse=True))
            continue
        keep.add(c)
    out = np.array(sorted(keep), dtype="uint64")
    # cells inside an excluded cell (a tiling finer than the excluded territory)
    res = cell_resolution_vec(out)
    inside = np.zeros(len(out), dtype=bool)
    ex_arr = np.array(sorted(ex), dtype="uint64")
    for r in np.unique(cell_resolution_vec(ex_arr)).tolist():
        finer = res > r
        inside[finer] |= np.isin(cell_to_parent_vec(out[finer], r), ex_arr)
    return out[~inside]


def _drop_barrier_cells(tiled: np.ndarray, occupied: np.ndarray, barriers) -> np.ndarray:
    """Drop empty cells whose centre lies inside a barrier polygon (water, no-go land)."""
    import shapely

    polys = [p for p in shapely.get_parts(barriers) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        return tiled
    area = shapely.union_all(polys)
    centres = np.array([h3i.cell_to_latlng(c) for c in tiled.tolist()], dtype="float64").reshape(-1, 2)
    inside = shapely.contains_xy(area, centres[:, 1], centres[:, 0])
    keep = ~inside | np.isin(tiled, occupied)
    return tiled[keep]


def _edges_crossing(x: np.ndarray, y: np.ndarray, edges: tuple[np.ndarray, np.ndarray], barriers, proj) -> np.ndarray:
    """Whether the segment between the centres of each adjacent pair crosses a barrier."""
    import shapely

    lines = []
    for part in shapely.get_parts(barriers):
        if part.geom_type in ("Polygon", "MultiPolygon"):
            lines.extend(shapely.get_parts(part.boundary))
        elif part.geom_type in ("LineString", "MultiLineString", "LinearRing"):
            lines.extend(shapely.get_parts(part))
    if not lines or len(edges[0]) == 0:
        return np.zeros(len(edges[0]), dtype=bool)
    # barriers to the local metric plane, so segments and barriers share one planar frame
    projected = []
    for ln in lines:
        c = shapely.get_coordinates(ln)
        bx, by = proj.to_xy(c[:, 1], c[:, 0])
        projected.append(shapely.linestrings(np.c_[bx, by]))
    tree = shapely.STRtree(projected)
    a, b = edges
    segs = shapely.linestrings(np.stack([np.c_[x[a], y[a]], np.c_[x[b], y[b]]], axis=1))
    hit = tree.query(segs, predicate="intersects")
    out = np.zeros(len(a), dtype=bool)
    out[np.unique(hit[0])] = True
    return out


def _zone_parts(zones) -> tuple[list, list[str]]:
    """The zone polygons and their names (``zones.names`` when read from a file, else "zone 1", "zone 2" …)."""
    import shapely

    parts = list(zones) if isinstance(zones, (list, tuple)) else list(shapely.get_parts(zones))
    names = list(getattr(zones, "names", None) or [f"zone {i + 1}" for i in range(len(parts))])
    return parts, names


def _zone_of(lat: np.ndarray, lon: np.ndarray, zones, *, nearest: bool = False) -> np.ndarray:
    """Index of the zone polygon containing each point (-1 outside every zone, or with ``nearest``
    the nearest zone; a point on a border goes to the first zone that holds it)."""
    import shapely

    parts = list(zones) if isinstance(zones, (list, tuple)) else list(shapely.get_parts(zones))
    zone = np.full(len(lat), -1, dtype="int64")
    for i, z in enumerate(parts):
        inside = shapely.contains_xy(z, lon, lat) & (zone < 0)
        zone[inside] = i
    if nearest and (zone < 0).any() and parts:
        out = np.flatnonzero(zone < 0)
        pts = shapely.points(lon[out], lat[out])
        d = np.stack([shapely.distance(z, pts) for z in parts], axis=1)
        zone[out] = np.argmin(d, axis=1)
    return zone


def _barrier_sides(lat: np.ndarray, lon: np.ndarray, barriers) -> np.ndarray | None:
    """Which side of the barriers each customer is on: the face of the plane the barrier lines cut
    (polygon barriers: their boundary), numbered from 0; None without barrier lines.

    The faces are those of the barrier lines within the customers' bounding box (slightly
    enlarged), so a line that ends inside the city separates nothing on its own but a line
    crossing the city splits it in two.
    """
    faces = _barrier_faces(lat, lon, barriers)
    if faces is None:
        return None
    if len(faces) < 2:
        return np.zeros(len(lat), dtype="int64")
    return _zone_of(lat, lon, faces, nearest=True)


def _barrier_faces(lat: np.ndarray, lon: np.ndarray, barriers) -> list | None:
    """The faces the barrier lines cut the customers' bounding box (slightly enlarged) into, largest first;
    None without barrier lines."""
    import shapely
    from shapely.geometry import box

    lines = []
    for part in shapely.get_parts(barriers):
        if part.geom_type in ("Polygon", "MultiPolygon"):
            lines.extend(shapely.get_parts(part.boundary))
        elif part.geom_type in ("LineString", "MultiLineString", "LinearRing"):
            lines.extend(shapely.get_parts(part))
    if not lines or len(lat) == 0:
        return None
    pad = 0.01
    frame = box(float(np.min(lon)) - pad, float(np.min(lat)) - pad, float(np.max(lon)) + pad, float(np.max(lat)) + pad)
    noded = shapely.union_all([frame.boundary, *[shapely.intersection(ln, frame) for ln in lines]])
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if not faces:
        return [frame]
    faces.sort(key=lambda f: (-round(f.area, 12), round(f.centroid.x, 9), round(f.centroid.y, 9)))  # deterministic
    return faces


def _split_mixed_cells(cells: np.ndarray, lat: np.ndarray, lon: np.ndarray, key: np.ndarray,
                       max_res: int = 15) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Refine every cell whose customers differ in ``key`` (zone, side of a barrier) into its children.

    Returns the customers' cells, the cells split at each resolution (coarse first) and the number
    of customers whose ``key`` was changed to their point's majority (customers of two zones at one
    point, which no refinement separates; ``key`` is changed in place).
    """
    cells = cells.copy()
    split: list[np.ndarray] = []
    fine = None
    for _ in range(16):
        uniq, inv = np.unique(cells, return_inverse=True)
        kmin = np.full(len(uniq), np.iinfo("int64").max, dtype="int64")
        kmax = np.full(len(uniq), np.iinfo("int64").min, dtype="int64")
        np.minimum.at(kmin, inv, key)
        np.maximum.at(kmax, inv, key)
        mixed = kmin != kmax
        if not mixed.any():
            return cells, split, 0
        res = cell_resolution_vec(uniq)
        can = mixed & (res < max_res)
        if not can.any():
            break
        if fine is None:
            fine = points_to_cells(lat, lon, max_res)
        sel = can[inv]
        split.append(uniq[can])
        cells[sel] = _child_of(cells[sel], fine[sel], lat[sel], lon[sel], res[inv][sel] + 1)
    # what refinement cannot separate (one point, two zones): the point's majority
    uniq, inv = np.unique(cells, return_inverse=True)
    fixed = 0
    df = pd.DataFrame({"c": inv, "k": key})
    counts = df.groupby(["c", "k"]).size().reset_index(name="n").sort_values(["c", "n", "k"], ascending=[True, False, True])
    top = counts.drop_duplicates("c").set_index("c")["k"]
    want = top.reindex(inv).to_numpy()
    fixed = int((want != key).sum())
    key[:] = want
    return cells, split, fixed


def _child_of(cells: np.ndarray, fine: np.ndarray, lat: np.ndarray, lon: np.ndarray, res: np.ndarray) -> np.ndarray:
    """The child (at ``res``) of each customer's cell that holds the customer.

    The ancestor of the point's finest cell, where that is a child of the cell (nearly always);
    else (H3's hierarchy is not exactly geometric) the child of the cell nearest the point.
    """
    out = np.empty(len(fine), dtype="uint64")
    for r in np.unique(res).tolist():
        m = res == r
        out[m] = cell_to_parent_vec(fine[m], int(r))
    off = np.flatnonzero(_parent_mixed(out, res - 1) != cells)
    for i in off.tolist():
        kids = h3i.cell_to_children(int(cells[i]), int(res[i]))
        cen = np.array([h3i.cell_to_latlng(k) for k in kids])
        out[i] = kids[int(np.argmin(haversine_km(lat[i], lon[i], cen[:, 0], cen[:, 1])))]
    return out


def _parent_mixed(cells: np.ndarray, res: np.ndarray) -> np.ndarray:
    out = np.empty(len(cells), dtype="uint64")
    for r in np.unique(res).tolist():
        m = res == r
        out[m] = cell_to_parent_vec(cells[m], int(r))
    return out


def _merge_split_levels(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    """Cells split by two refinements, as one list ordered coarse to fine (each cell once)."""
    cells = np.unique(np.concatenate([*a, *b])) if (a or b) else np.zeros(0, dtype="uint64")
    if not len(cells):
        return []
    res = cell_resolution_vec(cells)
    return [cells[res == r] for r in np.unique(res).tolist()]


def _components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    m = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    return connected_components(m, directed=False)[1]


def _absorb_empty_fragments(zone: np.ndarray, edges: tuple[np.ndarray, np.ndarray], keep: np.ndarray,
                            workload: np.ndarray) -> np.ndarray:
    """Empty cells cut off from the rest of their zone (a centre just across a border) join the zone they touch.

    Only cells without customers move, so every customer stays in the zone its point lies in.
    """
    zone = zone.copy()
    n = len(zone)
    a, b = edges[0][keep], edges[1][keep]
    for _ in range(3):
        same = zone[a] == zone[b]
        comp = _components(n, a[same], b[same])
        comp_w = np.bincount(comp, weights=workload, minlength=comp.max() + 1 if n else 0)
        # the main part of each zone: its heaviest (then largest) component
        size = np.bincount(comp)
        order = np.lexsort((-size[comp], -comp_w[comp], zone))
        main = np.zeros(comp.max() + 1 if n else 0, dtype=bool)
        seen: set[int] = set()
        for i in order.tolist():
            if zone[i] not in seen:
                seen.add(int(zone[i]))
                main[comp[i]] = True
        stray = ~main[comp] & (comp_w[comp] <= 0)
        if not stray.any():
            break
        # each stray empty component takes the zone it shares most borders with
        cross = ~same & (stray[a] | stray[b])
        votes: dict[int, dict[int, int]] = {}
        for i, j in zip(a[cross].tolist(), b[cross].tolist()):
            for u, v in ((i, j), (j, i)):
                if stray[u] and not stray[v]:
                    d = votes.setdefault(int(comp[u]), {})
                    d[int(zone[v])] = d.get(int(zone[v]), 0) + 1
        if not votes:
            break
        for c, d in votes.items():
            best = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            zone[comp == c] = best
    return zone


def _link_zone_parts(zone: np.ndarray, edges: tuple[np.ndarray, np.ndarray], x: np.ndarray, y: np.ndarray,
                     workload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Join each part of a zone cut off from the zone's main part (by water, a barrier or another
    zone) to the nearest cell of the zone's already joined parts: one link per part, nearest first."""
    from scipy.spatial import cKDTree

    n = len(zone)
    comp = _components(n, edges[0], edges[1])
    n_comp = int(comp.max()) + 1 if n else 0
    comp_w = np.bincount(comp, weights=workload, minlength=n_comp)
    size = np.bincount(comp, minlength=n_comp)
    src: list[int] = []
    dst: list[int] = []
    for z in np.unique(zone).tolist():
        cz = np.unique(comp[zone == z])
        if len(cz) < 2:
            continue
        cz = sorted(cz.tolist(), key=lambda c: (-comp_w[c], -size[c], c))
        joined = np.flatnonzero(comp == cz[0])
        rest = set(cz[1:])
        while rest:
            tree = cKDTree(np.c_[x[joined], y[joined]])
            best = None
            for c in sorted(rest):
                members = np.flatnonzero(comp == c)
                d, j = tree.query(np.c_[x[members], y[members]], k=1)
                k = int(np.argmin(d))
                cand = (float(d[k]), c, int(members[k]), int(joined[j[k]]))
                if best is None or cand < best:
                    best = cand
            _, c, u, v = best
            src.append(min(u, v))
            dst.append(max(u, v))
            rest.discard(c)
            joined = np.r_[joined, np.flatnonzero(comp == c)]
    return np.array(src, dtype="int64"), np.array(dst, dtype="int64")


def split_heavy_cells(index: CellIndex, customers: pd.DataFrame, *, limit: float, chunk: float,
                      order_by: str | None = "address", even: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Split cells that no grid can hold (one location heavier than ``limit``) at customer level.

    Refinement cannot split customers who share one location (a large compound geocoded to
    one point). For each such cell, customers are taken in address order (so buildings and
    units stay together) and cut into groups of about ``chunk`` workload; the groups become
    *dedicated grids* sharing the cell's territory, and the rest stays in the cell. The cell
    table's workload and customer count are reduced accordingly (in place).

    With ``even`` (the default) the dedicated groups and the rest share the cell's workload
    equally; without it, each dedicated group holds about ``chunk`` (a full grid at the plan's
    fill, as a roster asks) and the rest stays with the cell.

    Returns
    -------
    group
        Per customer: -1, or the dedicated group number (0, 1, …) within its cell.
    cell_of_group
        Per customer: the row in ``index.cells`` of the split cell (-1 if not split).
    """
    n = len(customers)
    group = np.full(n, -1, dtype="int64")
    cell_of = np.full(n, -1, dtype="int64")
    load = index.cells["workload"].to_numpy()
    heavy = np.flatnonzero(load > limit + 1e-9)
    if len(heavy) == 0:
        return group, cell_of
    w = customers["workload"].to_numpy(dtype="float64")
    key = customers[order_by].astype(str).to_numpy() if order_by in customers.columns else None
    ids = customers["customer_id"].astype(str).to_numpy()
    for c in heavy.tolist():
        members = np.flatnonzero(index.customer_cell == c)
        order = np.lexsort((ids[members], key[members])) if key is not None else np.argsort(ids[members], kind="stable")
        members = members[order]
        total = float(w[members].sum())
        n_groups = max(1, int(math.ceil(total / chunk)) - 1)  # the remainder stays with the cell's territory grid
        target = total / (n_groups + 1) if even else chunk
        acc = np.cumsum(w[members])
        g = np.minimum((acc - 1e-9) // target, n_groups).astype("int64")
        dedicated = g < n_groups  # the last share stays in the cell
        group[members[dedicated]] = g[dedicated]
        cell_of[members[dedicated]] = c
        moved_w = float(w[members[dedicated]].sum())
        index.cells.loc[c, "workload"] = load[c] - moved_w
        index.cells.loc[c, "n_customers"] = int(index.cells.at[c, "n_customers"]) - int(dedicated.sum())
    logger.info("cells: %d location(s) heavier than %g split into dedicated grids", len(heavy), limit)
    return group, cell_of


def grid_zones(index: CellIndex, cell_grid: np.ndarray, grid_ids, shared: dict[str, int] | None = None) -> np.ndarray:
    """The zone name of each grid (the zone of its cells; with hard zones a grid has one), '' without zones.

    Parameters
    ----------
    index
        The cell index (built with zones).
    cell_grid
        Grid id of each cell (row order of ``index.cells``).
    grid_ids
        The grids to name, in order.
    shared
        Dedicated grids of split compounds: grid id → the cell they share.
    """
    ids = [str(g) for g in grid_ids]
    if index.zone_names is None or "zone" not in index.cells.columns:
        return np.array([""] * len(ids), dtype=object)
    zone = index.cells["zone"].to_numpy()
    names = np.asarray(index.zone_names, dtype=object)
    df = pd.DataFrame({"g": np.asarray(cell_grid).astype(str), "z": zone,
                       "w": index.cells["workload"].to_numpy() + 1e-9})
    top = (df.groupby(["g", "z"])["w"].sum().reset_index()
           .sort_values(["g", "w", "z"], ascending=[True, False, True]).drop_duplicates("g").set_index("g")["z"])
    out = []
    for g in ids:
        if shared and g in shared:
            out.append(names[zone[shared[g]]])
        elif g in top.index:
            out.append(names[int(top[g])])
        else:
            out.append("")
    return np.array(out, dtype=object)
