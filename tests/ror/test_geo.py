"""Vectors of the pure geometry of the orientation search (ror.geo)."""

import math
import random

import pytest

from ror import geo

PARIS = (48.8566, 2.3522)  # Hôtel de Ville
LYON = (45.7640, 4.8357)
MARSEILLE = (43.2965, 5.3698)
RENNES = (48.1173, -1.6778)
BREST = (48.3904, -4.4861)


@pytest.mark.parametrize(
    ("a", "b", "expected_km"),
    [
        (PARIS, LYON, 391.5),  # published great-circle distance ≈ 392 km
        (PARIS, MARSEILLE, 660.5),  # ≈ 661 km
        (RENNES, BREST, 210.5),
        ((0.0, 0.0), (0.0, 1.0), 111.195),  # one degree of the equator on the 6371.0088 km sphere
        ((0.0, 0.0), (1.0, 0.0), 111.195),  # one degree of meridian
        ((0.0, 179.5), (0.0, -179.5), 111.195),  # across the antimeridian
        ((90.0, 0.0), (-90.0, 0.0), math.pi * geo.EARTH_RADIUS_KM),  # pole to pole
        ((0.0, 0.0), (0.0, 180.0), math.pi * geo.EARTH_RADIUS_KM),  # antipodes (asin domain clamp)
    ],
)
def test_haversine_vectors(a: geo.Point, b: geo.Point, expected_km: float) -> None:
    assert geo.haversine_km(a, b) == pytest.approx(expected_km, abs=0.5)
    assert geo.haversine_km(b, a) == pytest.approx(geo.haversine_km(a, b))


def test_haversine_of_a_point_to_itself_is_zero() -> None:
    assert geo.haversine_km(PARIS, PARIS) == 0.0


@pytest.mark.parametrize("bad", [(91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0), (0.0, float("inf"))])
def test_out_of_range_positions_are_refused(bad: geo.Point) -> None:
    with pytest.raises(ValueError, match=r"latitude|longitude|finies"):
        geo.haversine_km(bad, PARIS)


def test_bounding_box_of_paris_50_km() -> None:
    box = geo.bounding_box(PARIS, 50)
    # 50 km is 0.4497° of latitude everywhere, and 0.4497° / cos(48.86°) ≈ 0.6834° of longitude.
    assert box.lat_min == pytest.approx(PARIS[0] - 0.44966, abs=1e-4)
    assert box.lat_max == pytest.approx(PARIS[0] + 0.44966, abs=1e-4)
    ((lon_min, lon_max),) = box.lon_ranges
    assert lon_min == pytest.approx(PARIS[1] - 0.6834, abs=1e-3)
    assert lon_max == pytest.approx(PARIS[1] + 0.6834, abs=1e-3)


def test_bounding_box_holds_every_point_of_the_circle_and_is_tight() -> None:
    rng = random.Random(20261124)
    for center in (PARIS, MARSEILLE, (-21.1, 55.5), (16.2, -61.6), (70.0, 25.0)):
        radius = 80.0
        box = geo.bounding_box(center, radius)
        for _ in range(2000):
            point = (
                center[0] + rng.uniform(-1.5, 1.5),
                max(-180.0, min(180.0, center[1] + rng.uniform(-3.0, 3.0))),
            )
            if geo.haversine_km(center, point) <= radius:
                assert box.contains(point), (center, point)
        # Tight: the extreme points of the box's edges are exactly at the radius.
        assert geo.haversine_km(center, (box.lat_max, center[1])) == pytest.approx(radius, rel=1e-9)
        ((lon_min, lon_max),) = box.lon_ranges
        # The widest longitude is reached at the tangent point, a little poleward of the centre's latitude.
        widest = max(
            geo.haversine_km(center, (lat, lon_max))
            for lat in (center[0] + k / 1000 for k in range(-500, 501))
        )
        assert widest >= radius * 0.999
        assert min(
            geo.haversine_km(center, (lat, lon_max))
            for lat in (center[0] + k / 1000 for k in range(-500, 501))
        ) == pytest.approx(radius, rel=1e-3)
        assert lon_min < center[1] < lon_max


def test_bounding_box_across_the_antimeridian_has_two_longitude_ranges() -> None:
    box = geo.bounding_box((-17.7, 179.9), 50)  # Fiji
    assert len(box.lon_ranges) == 2
    (east_min, east_max), (west_min, west_max) = box.lon_ranges
    assert east_max == 180.0
    assert west_min == -180.0
    assert 179.3 < east_min < 179.9
    assert -180.0 < west_max < -179.6
    assert box.contains((-17.7, -179.9))
    assert box.contains((-17.7, 179.5))
    assert not box.contains((-17.7, 0.0))


def test_bounding_box_near_a_pole_takes_every_longitude() -> None:
    box = geo.bounding_box((89.8, 10.0), 50)
    assert box.lat_max == 90.0
    assert box.lon_ranges == ((-180.0, 180.0),)
    assert box.contains((89.9, -170.0))


def test_bounding_box_of_a_huge_radius_is_the_whole_globe() -> None:
    assert geo.bounding_box(PARIS, 30_000) == geo.BoundingBox(-90.0, 90.0, ((-180.0, 180.0),))


def test_bounding_box_refuses_a_negative_radius() -> None:
    with pytest.raises(ValueError, match="rayon"):
        geo.bounding_box(PARIS, -1)


def test_offset_km_points_east_and_north() -> None:
    east, north = geo.offset_km(PARIS, LYON)
    assert east > 0
    assert north < 0
    assert math.hypot(east, north) == pytest.approx(geo.haversine_km(PARIS, LYON), rel=0.01)
    east, _north = geo.offset_km((0.0, 179.5), (0.0, -179.5))
    assert east == pytest.approx(111.195, abs=0.01)  # the short way, across the antimeridian


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("48.85, 2.35", (48.85, 2.35)),
        ("48.85 2.35", (48.85, 2.35)),
        ("48,85;2,35", (48.85, 2.35)),
        (" 48.85,2.35 ", (48.85, 2.35)),
        ("-21.1,55.5", (-21.1, 55.5)),
        ("35238", None),
        ("Rennes", None),
        ("", None),
    ],
)
def test_parse_point(text: str, expected: geo.Point | None) -> None:
    assert geo.parse_point(text) == expected


def test_parse_point_refuses_an_impossible_position() -> None:
    with pytest.raises(ValueError, match="latitude"):
        geo.parse_point("95.0, 2.0")


def test_sql_expression_uses_the_same_radius() -> None:
    sql = geo.haversine_sql("l.latitude", "l.longitude")
    assert str(geo.EARTH_RADIUS_KM) in sql
    assert sql.count("%(lat)s") == 2
    assert sql.count("%(lon)s") == 1


@pytest.mark.parametrize("bearing", [0, 45, 90, 135, 180, 225, 270, 315])
@pytest.mark.parametrize("distance", [0.5, 20, 100, 400])
def test_destination_is_at_the_distance_asked(bearing: float, distance: float) -> None:
    point = geo.destination(PARIS, bearing, distance)
    assert geo.haversine_km(PARIS, point) == pytest.approx(distance, rel=1e-9)
    assert geo.bounding_box(PARIS, distance * 1.000001).contains(point)


def test_destination_vectors() -> None:
    lat, lon = geo.destination((0.0, 0.0), 90, 111.19508)
    assert (lat, lon) == (pytest.approx(0.0, abs=1e-9), pytest.approx(1.0, abs=1e-5))
    lat, lon = geo.destination((0.0, 179.9), 90, 111.19508)  # wraps to the western hemisphere
    assert lon == pytest.approx(-179.1, abs=1e-5)


def test_plot_xy_puts_the_origin_in_the_middle_and_north_up() -> None:
    assert geo.plot_xy(PARIS, PARIS, 50, 400) == (200.0, 200.0)
    x, y = geo.plot_xy(PARIS, geo.destination(PARIS, 0, 25), 50, 400)
    assert (x, y) == (pytest.approx(200.0, abs=0.2), pytest.approx(100.0, abs=0.2))  # half-way up
    x, y = geo.plot_xy(PARIS, geo.destination(PARIS, 90, 50), 50, 400)
    assert (x, y) == (
        pytest.approx(400.0, abs=0.5),
        pytest.approx(200.0, abs=1.5),
    )  # east edge (the great circle bends south)
    x, y = geo.plot_xy(PARIS, LYON, 50, 400)  # far away: kept on the circle, towards the south-east
    assert math.hypot(x - 200, y - 200) == pytest.approx(200, abs=0.2)
    assert x > 200
    assert y > 200
