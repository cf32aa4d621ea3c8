"""Lambert-93 (RGF93, EPSG:2154) ↔ latitude/longitude, for the coordinates of the FINESS extraction.

Pure code, no Django import. Lambert-93 is a Lambert conformal conic projection with two standard parallels
on the GRS 80 ellipsoid; its defining parameters (EPSG:2154: ``+proj=lcc +lat_0=46.5 +lon_0=3 +lat_1=49
+lat_2=44 +x_0=700000 +y_0=6600000 +ellps=GRS80``) give every constant below, computed once at import.
The formulas are the ellipsoidal LCC ones (Snyder, *Map Projections — A Working Manual*, USGS PP 1395,
§15; IGN's algorithms ALG0003/ALG0004 use the same isometric latitude).

RGF93 is aligned with ETRS89 and differs from WGS84 by far less than a metre, so the latitude/longitude
returned here are used as WGS84 without a datum shift (precise enough for a map pin).
"""

import math
from dataclasses import dataclass

# GRS 80 ellipsoid.
A = 6_378_137.0
F = 1 / 298.257_222_101
E = math.sqrt(F * (2 - F))

# Lambert-93 defining parameters.
LATITUDE_OF_ORIGIN = 46.5
CENTRAL_MERIDIAN = 3.0
STANDARD_PARALLEL_1 = 44.0
STANDARD_PARALLEL_2 = 49.0
FALSE_EASTING = 700_000.0
FALSE_NORTHING = 6_600_000.0

# Rough bounds of metropolitan France in Lambert-93 (outside them a pair is not Lambert-93 data).
X_RANGE = (-400_000.0, 1_600_000.0)
Y_RANGE = (5_900_000.0, 7_300_000.0)


def _m(phi: float) -> float:
    return math.cos(phi) / math.sqrt(1 - (E * math.sin(phi)) ** 2)


def _t(phi: float) -> float:
    """exp(-isometric latitude): tan(pi/4 - phi/2) / ((1 - e sin phi) / (1 + e sin phi))^(e/2)."""
    sin_phi = E * math.sin(phi)
    return math.tan(math.pi / 4 - phi / 2) / ((1 - sin_phi) / (1 + sin_phi)) ** (E / 2)


@dataclass(frozen=True, slots=True)
class _Constants:
    n: float  # cone constant
    c: float  # a·F of Snyder: radius scale (the "C" of IGN's documents)
    rho0: float  # radius at the latitude of origin
    lambda0: float  # central meridian, radians


def _constants() -> _Constants:
    phi1, phi2, phi0 = (
        math.radians(STANDARD_PARALLEL_1),
        math.radians(STANDARD_PARALLEL_2),
        math.radians(LATITUDE_OF_ORIGIN),
    )
    n = (math.log(_m(phi1)) - math.log(_m(phi2))) / (math.log(_t(phi1)) - math.log(_t(phi2)))
    c = A * _m(phi1) / (n * _t(phi1) ** n)
    return _Constants(n=n, c=c, rho0=c * _t(phi0) ** n, lambda0=math.radians(CENTRAL_MERIDIAN))


K = _constants()


def to_lat_lon(x: float, y: float) -> tuple[float, float]:
    """(latitude, longitude) in decimal degrees of the Lambert-93 point (x easting, y northing) in metres."""
    dx = x - FALSE_EASTING
    dy = K.rho0 - (y - FALSE_NORTHING)
    rho = math.copysign(math.hypot(dx, dy), K.n)
    t = (rho / K.c) ** (1 / K.n)
    longitude = K.lambda0 + math.atan2(dx, dy) / K.n
    # Latitude from the isometric latitude, by fixed-point iteration (converges in ~6 steps to 1e-12).
    phi = math.pi / 2 - 2 * math.atan(t)
    for _ in range(20):
        sin_phi = E * math.sin(phi)
        following = math.pi / 2 - 2 * math.atan(t * ((1 - sin_phi) / (1 + sin_phi)) ** (E / 2))
        if abs(following - phi) < 1e-12:
            phi = following
            break
        phi = following
    return math.degrees(phi), math.degrees(longitude)


def from_lat_lon(latitude: float, longitude: float) -> tuple[float, float]:
    """(x, y) Lambert-93 in metres of a point given in decimal degrees (the forward projection)."""
    rho = K.c * _t(math.radians(latitude)) ** K.n
    theta = K.n * (math.radians(longitude) - K.lambda0)
    return FALSE_EASTING + rho * math.sin(theta), FALSE_NORTHING + K.rho0 - rho * math.cos(theta)


def is_plausible(x: float, y: float) -> bool:
    """True when (x, y) lies in the Lambert-93 extent of metropolitan France (a sanity check on input)."""
    return X_RANGE[0] <= x <= X_RANGE[1] and Y_RANGE[0] <= y <= Y_RANGE[1]
