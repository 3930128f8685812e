"""Great-circle distance between coordinates (haversine), the measure every distance-based choice uses."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

from ordercore.values import GeoPoint

__all__ = ["EARTH_RADIUS_KM", "haversine_km"]

#: Mean Earth radius (IUGG), in kilometres.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(a: GeoPoint, b: GeoPoint) -> float:
    """Distance in kilometres along the Earth's surface between ``a`` and ``b``."""
    lat1, lat2 = radians(a.latitude), radians(b.latitude)
    dlat = lat2 - lat1
    dlon = radians(b.longitude - a.longitude)
    h = sin(dlat / 2) ** 2 + cos(lat1) * cos(lat2) * sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h)))
