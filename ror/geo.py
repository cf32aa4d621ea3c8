"""Great-circle geometry for the orientation search. Pure code, no Django import.

Positions are WGS84 degrees (latitude, longitude). Distances use the haversine formula on a sphere of
the mean Earth radius (IUGG R1 = 6371.0088 km): the error against the ellipsoid is below 0.5 %, far
under what "the nearest free bed" needs, and the same formula runs in SQL (``haversine_sql``), so the
database and Python agree to the metre.

``bounding_box`` gives the smallest latitude/longitude box that contains every point within a radius
of a centre (the spherical-cap box of J. P. Matuschek, "Finding Points Within a Distance of a
Latitude/Longitude Using Bounding Coordinates"): an index range scan on (latitude, longitude) keeps
only those candidates, and the exact haversine then filters and orders them. Near a pole the box
takes every longitude; across the antimeridian it is split into two longitude ranges.
"""

import math
import re
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088

Point = tuple[float, float]  # (latitude, longitude) in degrees


def _check(lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError("coordonnées non finies")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude hors de [-90, 90] : {lat}")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude hors de [-180, 180] : {lon}")


def haversine_km(a: Point, b: Point) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees."""
    lat1, lon1 = a
    lat2, lon2 = b
    _check(lat1, lon1)
    _check(lat2, lon2)
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """Latitude range and one or two longitude ranges (two when the box crosses the antimeridian)."""

    lat_min: float
    lat_max: float
    lon_ranges: tuple[tuple[float, float], ...]

    def contains(self, point: Point) -> bool:
        lat, lon = point
        return self.lat_min <= lat <= self.lat_max and any(lo <= lon <= hi for lo, hi in self.lon_ranges)


def bounding_box(center: Point, radius_km: float) -> BoundingBox:
    """The smallest box holding every point within ``radius_km`` of ``center`` (great-circle)."""
    lat, lon = center
    _check(lat, lon)
    if not (math.isfinite(radius_km) and radius_km >= 0):
        raise ValueError(f"rayon invalide : {radius_km}")
    angular = radius_km / EARTH_RADIUS_KM  # radians
    if angular >= math.pi:
        return BoundingBox(-90.0, 90.0, ((-180.0, 180.0),))
    phi = math.radians(lat)
    phi_min, phi_max = phi - angular, phi + angular
    if phi_min <= -math.pi / 2 or phi_max >= math.pi / 2:
        # The cap holds a pole: every longitude, latitude clamped.
        return BoundingBox(
            math.degrees(max(phi_min, -math.pi / 2)),
            math.degrees(min(phi_max, math.pi / 2)),
            ((-180.0, 180.0),),
        )
    dlambda = math.degrees(math.asin(math.sin(angular) / math.cos(phi)))
    lon_min, lon_max = lon - dlambda, lon + dlambda
    ranges: tuple[tuple[float, float], ...]
    if lon_min < -180.0:
        ranges = ((lon_min + 360.0, 180.0), (-180.0, lon_max))
    elif lon_max > 180.0:
        ranges = ((lon_min, 180.0), (-180.0, lon_max - 360.0))
    else:
        ranges = ((lon_min, lon_max),)
    return BoundingBox(math.degrees(phi_min), math.degrees(phi_max), ranges)


def destination(origin: Point, bearing_deg: float, distance_km: float) -> Point:
    """The point reached from ``origin`` after ``distance_km`` along the great circle of initial bearing
    ``bearing_deg`` (0 = north, 90 = east); longitude normalised to [-180, 180)."""
    lat, lon = origin
    _check(lat, lon)
    delta = distance_km / EARTH_RADIUS_KM
    theta = math.radians(bearing_deg)
    phi1, lambda1 = math.radians(lat), math.radians(lon)
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lambda2 = lambda1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1), math.cos(delta) - math.sin(phi1) * sin_phi2
    )
    return math.degrees(phi2), (math.degrees(lambda2) + 540.0) % 360.0 - 180.0


def offset_km(origin: Point, point: Point) -> tuple[float, float]:
    """(east, north) offset in km of ``point`` from ``origin`` on a local equirectangular projection:
    good for drawing a few hundred km around the origin (the search map), not for measuring."""
    lat0, lon0 = origin
    lat, lon = point
    _check(lat0, lon0)
    _check(lat, lon)
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0  # shortest way round
    mean_phi = math.radians((lat + lat0) / 2)
    east = math.radians(dlon) * math.cos(mean_phi) * EARTH_RADIUS_KM
    north = math.radians(lat - lat0) * EARTH_RADIUS_KM
    return east, north


def plot_xy(origin: Point, point: Point, radius_km: float, size: float) -> tuple[float, float]:
    """SVG coordinates of ``point`` on a square plot of side ``size`` centred on ``origin`` whose inner
    circle (diameter ``size``) is the search radius; north up. Points beyond the radius stay on the edge."""
    east, north = offset_km(origin, point)
    scale = (size / 2) / radius_km if radius_km > 0 else 0.0
    x, y = east * scale, -north * scale
    reach = math.hypot(x, y)
    if reach > size / 2:
        x, y = x * (size / 2) / reach, y * (size / 2) / reach
    return round(size / 2 + x, 1), round(size / 2 + y, 1)


def haversine_sql(lat_column: str, lon_column: str) -> str:
    """SQL expression of the haversine distance in km from ``%(lat)s, %(lon)s`` (named parameters) to
    the given columns; the same formula and radius as ``haversine_km``. Column names are trusted
    identifiers from code, never user input."""
    return (
        f"(2 * {EARTH_RADIUS_KM} * asin(sqrt(least(1.0, "
        f"power(sin(radians({lat_column} - %(lat)s) / 2), 2) "
        f"+ cos(radians(%(lat)s)) * cos(radians({lat_column})) "
        f"* power(sin(radians({lon_column} - %(lon)s) / 2), 2)))))"
    )


_NUMBER = r"(-?\d{1,3}(?:[.,]\d+)?)"
_POINT_RE = re.compile(rf"\s*{_NUMBER}\s*(?:[;,]\s*|\s+){_NUMBER}\s*")


def parse_point(text: str) -> Point | None:
    """ "48.85, 2.35", "48.85 2.35" or "48,85;2,35" → (48.85, 2.35); None when the text is not a
    position (a commune name or code, for instance). Raises ValueError for an out-of-range position."""
    match = _POINT_RE.fullmatch(text)
    if match is None:
        return None
    lat, lon = (float(g.replace(",", ".")) for g in match.groups())
    _check(lat, lon)
    return lat, lon
