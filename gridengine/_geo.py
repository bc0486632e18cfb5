"""The Earth model of the package: one radius, great-circle distances and a local projection.

Every distance a plan reports (compactness, travel, bridges, the distance checks of the inputs)
is a great circle on a sphere of the mean Earth radius (:data:`EARTH_RADIUS_KM`, IUGG), and every
planar geometry in metres (the partitioner's unit coordinates) comes from :class:`LocalProjection`
on the same sphere.

:data:`M_PER_DEG_EQUATOR` is the length of one degree at the equator of the WGS-84 ellipsoid. It
converts H3 cell areas and edge lengths to degrees where grid polygons are drawn
(``cells.cells_to_polygon``), lays out the report's chart, and measures short distances between
geocoded addresses; those outputs depend on it, so it stays beside the mean radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["EARTH_RADIUS_KM", "EARTH_RADIUS_M", "M_PER_DEG_EQUATOR", "haversine_km", "LocalProjection"]

#: Mean Earth radius (IUGG), km: the sphere of every great-circle distance and local projection.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: np.ndarray | float, lon1: np.ndarray | float, lat2: np.ndarray | float,
                 lon2: np.ndarray | float) -> np.ndarray:
    """Great-circle distance in km, vectorised over numpy arrays (degrees in).

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Degrees (WGS-84); arrays broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Distances in km on the sphere of :data:`EARTH_RADIUS_KM`.
    """
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

    def to_xy(self, lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Degrees to metres east (x) and north (y) of the centre."""
        k = math.pi / 180.0 * EARTH_RADIUS_KM * 1000.0
        x = (np.asarray(lon, dtype="float64") - self.lon0) * k * math.cos(math.radians(self.lat0))
        y = (np.asarray(lat, dtype="float64") - self.lat0) * k
        return x, y

    def to_latlon(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Metres back to degrees (lat, lon)."""
        k = math.pi / 180.0 * EARTH_RADIUS_KM * 1000.0
        lat = np.asarray(y, dtype="float64") / k + self.lat0
        lon = np.asarray(x, dtype="float64") / (k * math.cos(math.radians(self.lat0))) + self.lon0
        return lat, lon


#: The same radius in metres.
EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0

#: One degree at the equator of the WGS-84 ellipsoid (6378.137 km radius), in metres, rounded.
M_PER_DEG_EQUATOR = 111_320.0
