"""A latitude/longitude grid over a network's nodes, to visit them nearest first without measuring the
distance to every node.

Nodes are bucketed into cells of equal size in degrees. From a destination the grid hands out rings of
cells (the cell of the destination, then the eight around it, and so on) together with a lower bound on
the distance of every node in the rings still to come, so that a caller can sort what it has seen and
release it in exact distance order. A grid is only built when it is valid: the nodes span less than 180
degrees of longitude (no wrap around the antimeridian), and the destination is within 180 degrees of all
of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from ordercore.geo import EARTH_RADIUS_KM

__all__ = ["Grid"]

_NODES_PER_CELL = 2.0
_KM_PER_DEGREE = math.pi / 180.0 * EARTH_RADIUS_KM
_SAFETY = 1.0 - 1e-9  # lower bounds are shrunk a hair so that rounding never overstates them


class Grid:
    """Node ids bucketed by cell; see :meth:`rings`."""

    __slots__ = ("cells", "cmin", "glat", "glon", "lat0", "lon0", "lon1", "ni", "nj")

    def __init__(self, points: Mapping[str, tuple[float, float]]) -> None:
        """``points`` maps node id to (latitude, longitude) in degrees."""
        lats = [p[0] for p in points.values()]
        lons = [p[1] for p in points.values()]
        self.lat0, lat1 = min(lats), max(lats)
        self.lon0, self.lon1 = min(lons), max(lons)
        mid = math.cos(math.radians((self.lat0 + lat1) / 2))
        height = max((lat1 - self.lat0) * _KM_PER_DEGREE, 1.0)
        width = max((self.lon1 - self.lon0) * _KM_PER_DEGREE * mid, 1.0)
        side = math.sqrt(height * width * _NODES_PER_CELL / len(points))
        self.ni = max(1, min(512, math.ceil(height / side)))
        self.nj = max(1, min(512, math.ceil(width / side)))
        self.glat = max(lat1 - self.lat0, 1e-9) / self.ni
        self.glon = max(self.lon1 - self.lon0, 1e-9) / self.nj
        # the least cos(latitude) over the nodes: cos is concave, so it is least at an end of the range
        self.cmin = max(0.0, min(math.cos(math.radians(self.lat0)), math.cos(math.radians(lat1))))
        cells: list[list[list[str]]] = [[[] for _ in range(self.nj)] for _ in range(self.ni)]
        for node_id in sorted(points):
            lat, lon = points[node_id]
            cells[self._row(lat)][self._col(lon)].append(node_id)
        self.cells = cells

    @classmethod
    def build(cls, points: Mapping[str, tuple[float, float]]) -> Grid | None:
        """A grid over ``points``, or None when one would not be valid (see the module docstring)."""
        if not points:
            return None
        lons = [p[1] for p in points.values()]
        if max(lons) - min(lons) >= 180.0:
            return None
        return cls(points)

    def _row(self, lat: float) -> int:
        return min(self.ni - 1, int((lat - self.lat0) // self.glat))

    def _col(self, lon: float) -> int:
        return min(self.nj - 1, int((lon - self.lon0) // self.glon))

    def covers(self, lon: float) -> bool:
        """Whether rings from a destination at longitude ``lon`` are valid (no shorter way round)."""
        return max(abs(lon - self.lon0), abs(lon - self.lon1)) < 180.0

    def rings(self, lat: float, lon: float) -> Iterator[tuple[list[str], float]]:
        """Rings of cells around (``lat``, ``lon``), nearest first: per ring the node ids in it, and a lower
        bound in km on the distance from the destination to every node in the rings after it."""
        ci = int((lat - self.lat0) // self.glat)
        cj = int((lon - self.lon0) // self.glon)
        ni, nj, cells = self.ni, self.nj, self.cells
        lat_km = self.glat * _KM_PER_DEGREE
        lon_factor = math.sqrt(max(0.0, math.cos(math.radians(lat)) * self.cmin))
        lon_rad = math.radians(self.glon)
        first = max(0, -ci, ci - (ni - 1), -cj, cj - (nj - 1))
        last = max(ci, ni - 1 - ci, cj, nj - 1 - cj)
        for k in range(first, last + 1):
            ids: list[str] = []
            top, bottom = ci - k, ci + k
            left, right = max(0, cj - k), min(nj - 1, cj + k)
            for i in (top, bottom) if k else (top,):
                if 0 <= i < ni:
                    row = cells[i]
                    for j in range(left, right + 1):
                        ids.extend(row[j])
            if k:
                for j in (cj - k, cj + k):
                    if 0 <= j < nj:
                        for i in range(max(0, top + 1), min(ni - 1, bottom - 1) + 1):
                            ids.extend(cells[i][j])
            # every node further out differs by more than k cells in latitude or in longitude
            by_lat = k * lat_km
            by_lon = (
                2
                * EARTH_RADIUS_KM
                * math.asin(min(1.0, lon_factor * math.sin(min(math.pi, k * lon_rad) / 2)))
            )
            yield ids, min(by_lat, by_lon) * _SAFETY
