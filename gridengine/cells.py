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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd

__all__ = [
    "haversine_km",
    "LocalProjection",
    "points_to_cells",
    "tile_service_area",
    "cell_adjacency",
    "build_cells",
    "CellIndex",
]

logger = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, vectorised over numpy arrays (degrees in)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype="float64")) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class LocalProjection:
    """Equirectangular projection around a city's centre, in metres.

    Within 50 km of the centre its distance error is below 0.1%, which is all the
    partitioner's geometry needs; reported distances use :func:`haversine_km`.
    """

    lat0: float
    lon0: float

    @classmethod
    def around(cls, lat: np.ndarray, lon: np.ndarray) -> "LocalProjection":
        """Centre on the middle of the points' bounding box (rounded, so tiny input changes do not move it)."""
        return cls(round(float((np.min(lat) + np.max(lat)) / 2), 3), round(float((np.min(lon) + np.max(lon)) / 2), 3))

    def to_xy(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """Degrees to metres east (x) and north (y) of the centre."""
        k = math.pi / 180.0 * EARTH_RADIUS_KM * 1000.0
        x = (np.asarray(lon, dtype="float64") - self.lon0) * k * math.cos(math.radians(self.lat0))
        y = (np.asarray(lat, dtype="float64") - self.lat0) * k
        return x, y

    def to_latlon(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Metres back to degrees (lat, lon)."""
        k = math.pi / 180.0 * EARTH_RADIUS_KM * 1000.0
        lat = np.asarray(y, dtype="float64") / k + self.lat0
        lon = np.asarray(x, dtype="float64") / (k * math.cos(math.radians(self.lat0))) + self.lon0
        return lat, lon


def points_to_cells(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """H3 cell (uint64) of each point at resolution ``res``."""
    f = h3i.latlng_to_cell
    return np.fromiter((f(a, b, res) for a, b in zip(lat.tolist(), lon.tolist())), dtype="uint64", count=len(lat))


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
    """Undirected adjacency of sorted ``cells``: index pairs (i < j) of neighbouring cells, sorted."""
    pos = {int(c): i for i, c in enumerate(cells.tolist())}
    src: list[int] = []
    dst: list[int] = []
    ring = h3i.grid_ring
    for i, c in enumerate(cells.tolist()):
        for nb in ring(c, 1):
            j = pos.get(nb)
            if j is not None and j > i:
                src.append(i)
                dst.append(j)
    a = np.array(src, dtype="int64")
    b = np.array(dst, dtype="int64")
    order = np.lexsort((b, a))
    return a[order], b[order]


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
    """

    cells: pd.DataFrame
    edges: tuple[np.ndarray, np.ndarray]
    customer_cell: np.ndarray
    projection: LocalProjection


def build_cells(
    customers: pd.DataFrame,
    *,
    res: int,
    service_area=None,
    buffer_m: float = 1000.0,
) -> tuple[CellIndex, pd.DataFrame, pd.DataFrame]:
    """Index customers into H3 cells, tile the service area and build the adjacency.

    Parameters
    ----------
    customers
        Located customers with ``customer_id``, ``lat``, ``lon``, ``workload``, ``row``.
    res
        H3 resolution.
    service_area
        Optional shapely (Multi)Polygon in WGS-84.
    buffer_m
        Buffer used when no service area is given.

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
    cust_cells = points_to_cells(lat, lon, res)
    tiled = tile_service_area(cust_cells, res=res, service_area=service_area, buffer_m=buffer_m)
    pos = np.searchsorted(tiled, cust_cells)
    workload = np.bincount(pos, weights=customers["workload"].to_numpy(), minlength=len(tiled))
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
    customers = customers.copy()
    customers["cell"] = cust_cells
    logger.info("cells: %d customers in %d occupied cells; %d cells tile the service area, %d adjacencies",
                len(customers), int((counts > 0).sum()), len(tiled), len(edges[0]))
    return CellIndex(table, edges, pos, proj), customers, rejects
