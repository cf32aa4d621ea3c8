"""Dashboard selectors: figures from the rollups equal the raw counts, filters, small cells, queries."""

from __future__ import annotations

import datetime as dt
import random
from types import SimpleNamespace
from typing import Any, cast

import pytest
from django.core.exceptions import ValidationError

from annuaire.models import Structure
from enrs.usage import rollups
from enrs.usage.indicators import INDICATORS
from enrs.usage.models import CubeLevel, DistinctSpan, UsageDistinct
from enrs.usage.selectors import (
    Point,
    Row,
    filter_choices,
    indicator_breakdown,
    indicator_list,
    indicator_series,
    indicator_total,
    targets_for,
)
from enrs.usage.services import SnapshotRow, target_set, usage_emit, usage_snapshot_replace

from .conftest import Ev, make_events, store

pytestmark = pytest.mark.django_db

FIRST = dt.date(2026, 9, 1)
LAST = dt.date(2026, 10, 31)


@pytest.fixture
def events(rng: random.Random) -> list[Ev]:
    generated = make_events(rng, 3000, first=FIRST, days=61)
    store(generated)
    rollups.rollup_run()
    return generated


def _count(events: list[Ev], kind: str, **where: Any) -> int:
    def keep(e: Ev) -> bool:
        for key, value in where.items():
            if key == "method" and e.dims.get("method") not in value:
                return False
            if (key == "start" and e.day < value) or (key == "end" and e.day > value):
                return False
            if key in ("department", "category", "college", "structure_id") and getattr(e, key) != value:
                return False
        return True

    return sum(1 for e in events if e.kind == kind and keep(e))


def test_series_by_day_week_and_month_match_raw_counts(events: list[Ev]) -> None:
    daily = indicator_series("messagerie.messages_sent", start=FIRST, end=LAST)
    assert len(daily) == 61
    assert all(isinstance(p, Point) for p in daily)
    for point in daily[:10]:
        expected = _count(events, "messagerie.message_sent", start=point.period, end=point.period)
        assert (point.value, point.suppressed) == ((None, True) if 0 < expected < 5 else (expected, False))
    monthly = indicator_series("messagerie.messages_sent", start=FIRST, end=LAST, granularity="month")
    assert [p.period for p in monthly] == [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
    assert monthly[0].value == _count(events, "messagerie.message_sent", end=dt.date(2026, 9, 30))
    weekly = indicator_series("messagerie.messages_sent", start=FIRST, end=LAST, granularity="week")
    assert weekly[0].period == dt.date(2026, 8, 31)  # Monday of the first week
    assert all(p.period.weekday() == 0 for p in weekly)
    assert sum(p.value or 0 for p in weekly) == _count(events, "messagerie.message_sent")


def test_month_aligned_totals_read_the_monthly_rollup_and_agree_with_daily(events: list[Ev]) -> None:
    aligned = indicator_total("dmp.documents_submitted", start=FIRST, end=LAST)
    # Same period minus nothing, but not month-aligned at the end: read from the daily rollup.
    daily = indicator_total("dmp.documents_submitted", start=FIRST, end=LAST + dt.timedelta(days=3))
    assert aligned.value == daily.value == _count(events, "dmp.document_submitted")


@pytest.mark.parametrize(
    "filters",
    [{"department": "35"}, {"category": "355"}, {"college": 4}, {"structure_id": 5}, {"department": "22"}],
)
def test_filters(events: list[Ev], filters: dict[str, Any]) -> None:
    total = indicator_total("auth.sign_ins", start=FIRST, end=LAST, **filters)
    expected = _count(events, "auth.sign_in", **filters)
    assert total == Point(FIRST, float(expected), False)


def test_combined_filters_and_filtered_breakdowns(events: list[Ev]) -> None:
    both = indicator_total("dmp.documents_submitted", start=FIRST, end=LAST, department="35", category="124")
    assert both.value == _count(events, "dmp.document_submitted", department="35", category="124")
    weekly = indicator_series(
        "dmp.documents_submitted", start=FIRST, end=LAST, granularity="week", department="29", college=7
    )
    for point in weekly:
        expected = _count(
            events,
            "dmp.document_submitted",
            department="29",
            college=7,
            start=point.period,
            end=point.period + dt.timedelta(days=6),
        )
        assert (point.value, point.suppressed) == ((None, True) if 0 < expected < 5 else (expected, False))
    rows = indicator_breakdown("auth.sign_ins", start=FIRST, end=LAST, by="department", category="355")
    assert {r.key: r.value for r in rows} == {
        d: float(_count(events, "auth.sign_in", department=d, category="355")) for d in ("35", "29")
    }
    by_college = indicator_breakdown(
        "messagerie.messages_sent", start=FIRST, end=LAST, by="college", department="35"
    )
    assert {r.key: r.value for r in by_college} == {
        str(c): float(_count(events, "messagerie.message_sent", department="35", college=c)) for c in (1, 4)
    }


def test_distinct_counts_agree_between_precomputed_and_raw_paths(events: list[Ev]) -> None:
    sent = [e for e in events if e.kind == "messagerie.message_sent"]
    september = dt.date(2026, 9, 30)
    # One month, by department: precomputed rows (UsageDistinct), one per department.
    rows = indicator_breakdown("messagerie.active_professionals", start=FIRST, end=september, by="department")
    for row in rows:
        expected = len({e.actor for e in sent if e.department == row.key and e.day <= september})
        assert (row.value, row.suppressed) == ((None, True) if expected < 5 else (expected, False))
    # Two kinds (requested or accepted): precomputed under the indicator's own key, distinct across kinds;
    # the same figure from the daily actor rollup (not month-aligned) and per week.
    tele_actors = {e.actor for e in events if e.kind == "telemedecine.act_accepted" and e.day <= september}
    tele = indicator_total("telemedecine.active_professionals", start=FIRST, end=september)
    assert tele.value == len(tele_actors)
    assert UsageDistinct.objects.get(
        span=DistinctSpan.MONTH,
        month=FIRST,
        kind="=telemedecine.active_professionals",
        level=CubeLevel.REGION,
    ).actors == len(tele_actors)
    weeks = indicator_series("telemedecine.active_professionals", start=FIRST, end=LAST, granularity="week")
    for point in weeks:
        lo, hi = max(point.period, FIRST), min(point.period + dt.timedelta(days=6), LAST)
        actors = {e.actor for e in events if e.kind == "telemedecine.act_accepted" and lo <= e.day <= hi}
        assert point.value == (None if 0 < len(actors) < 5 else len(actors))


def test_ratio_and_signed_terms(events: list[Ev]) -> None:
    strong = _count(events, "auth.sign_in", method=("cps", "psc")) + _count(events, "auth.sign_in_upgraded")
    share = indicator_total("auth.strong_share", start=FIRST, end=LAST)
    assert share.value == round(100 * strong / _count(events, "auth.sign_in"), 2)
    password_only = _count(events, "auth.sign_in", method=("password",)) - _count(
        events, "auth.sign_in_upgraded"
    )
    assert indicator_total("auth.sign_ins_password", start=FIRST, end=LAST).value == max(password_only, 0)
    delivered = sum(e.value for e in events if e.kind == "messagerie.message_delivered")
    failed = sum(e.value for e in events if e.kind == "messagerie.message_failed")
    rate = indicator_total("messagerie.delivery_rate", start=FIRST, end=LAST)
    assert rate.value == round(100 * delivered / (delivered + failed), 2)


def test_average_delay(events: list[Ev]) -> None:
    delays = [e.dims["delay_s"] for e in events if e.kind == "telemedecine.act_accepted"]
    total = indicator_total("telemedecine.acceptance_delay", start=FIRST, end=LAST)
    assert total.value == pytest.approx(sum(delays) / len(delays))


def test_distinct_active_professionals_per_month(events: list[Ev]) -> None:
    series = indicator_series("messagerie.active_professionals", start=FIRST, end=LAST, granularity="month")
    for point in series:
        month_end = (point.period + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        actors = {
            e.actor
            for e in events
            if e.kind == "messagerie.message_sent" and point.period <= e.day <= month_end
        }
        assert point.value == len(actors)
    whole = indicator_total("messagerie.active_professionals", start=FIRST, end=LAST, department="35")
    actors = {e.actor for e in events if e.kind == "messagerie.message_sent" and e.department == "35"}
    assert whole.value == len(actors)
    # Not month-aligned: read from the daily actor rollup, still distinct over the whole period.
    partial = indicator_total("messagerie.active_professionals", start=FIRST, end=dt.date(2026, 9, 10))
    assert partial.value == len(
        {e.actor for e in events if e.kind == "messagerie.message_sent" and e.day <= dt.date(2026, 9, 10)}
    )


def test_breakdowns(events: list[Ev]) -> None:
    rows = indicator_breakdown("dmp.documents_submitted", start=FIRST, end=LAST, by="department")
    assert all(isinstance(r, Row) for r in rows)
    by_key = {r.key: r.value for r in rows}
    for department in ("35", "29", "56", "22"):
        assert by_key[department] == _count(events, "dmp.document_submitted", department=department)
    assert by_key[""] == _count(events, "dmp.document_submitted", department="")
    values = [r.value for r in rows if r.value is not None]
    assert values == sorted(values, reverse=True)
    by_type = {
        r.key: r.value
        for r in indicator_breakdown("dmp.documents_submitted", start=FIRST, end=LAST, by="type_code")
    }
    assert by_type["11488-4"] == sum(
        1 for e in events if e.kind == "dmp.document_submitted" and e.dims["type_code"] == "11488-4"
    )
    methods = {r.key: r for r in indicator_breakdown("auth.sign_ins", start=FIRST, end=LAST, by="method")}
    assert methods["cps"].label == "Carte CPS"
    assert methods["cps"].value == _count(events, "auth.sign_in", method=("cps",))
    colleges = indicator_breakdown("auth.sign_ins", start=FIRST, end=LAST, by="college")
    assert {r.key for r in colleges} == {"1", "2", "4", "7", ""}
    assert next(r for r in colleges if r.key == "4").label == "Médecins libéraux"


def test_small_cells_are_suppressed() -> None:
    day = dt.date(2026, 3, 10)
    at = dt.datetime(2026, 3, 10, 10, tzinfo=dt.UTC)
    for _ in range(3):
        usage_emit("dmp.document_submitted", department="35", occurred_at=at, dims={"type_code": "x"})
    for _ in range(7):
        usage_emit("dmp.document_submitted", department="29", occurred_at=at, dims={"type_code": "y"})
    usage_emit("dmp.document_accepted", department="35", occurred_at=at)
    usage_emit("dmp.document_refused", department="35", occurred_at=at)
    rollups.rollup_run()
    total = indicator_total("dmp.documents_submitted", start=day, end=day)
    assert total == Point(day, 10.0, False)
    small = indicator_total("dmp.documents_submitted", start=day, end=day, department="35")
    assert small == Point(day, None, True)
    rows = {
        r.key: r for r in indicator_breakdown("dmp.documents_submitted", start=day, end=day, by="department")
    }
    assert (rows["35"].value, rows["35"].suppressed) == (None, True)
    assert (rows["29"].value, rows["29"].suppressed) == (7.0, False)
    assert list(rows) == ["29", "35"]  # suppressed cells last
    # A rate over 2 documents is suppressed too; an empty cell is 0 (counts) or None (rates), not "< 5".
    assert indicator_total("dmp.acceptance_rate", start=day, end=day) == Point(day, None, True)
    empty = dt.date(2026, 3, 11)
    assert indicator_total("dmp.documents_submitted", start=empty, end=empty) == Point(empty, 0.0, False)
    assert indicator_total("dmp.acceptance_rate", start=empty, end=empty) == Point(empty, None, False)


def test_snapshots_take_the_latest_day_of_each_period() -> None:
    for day, (fresh, offers) in {
        dt.date(2026, 5, 3): (2, 10),
        dt.date(2026, 5, 20): (6, 10),
        dt.date(2026, 6, 2): (9, 10),
    }.items():
        usage_snapshot_replace(
            kind="ror.freshness",
            day=day,
            rows=[
                SnapshotRow(value=fresh, department="35", dims={"offers": offers}),
                SnapshotRow(value=1, department="29", dims={"offers": 2}),
            ],
        )
    rollups.rollup_run()
    series = indicator_series(
        "ror.freshness", start=dt.date(2026, 5, 1), end=dt.date(2026, 6, 30), granularity="month"
    )
    assert series == [
        Point(dt.date(2026, 5, 1), round(100 * 7 / 12, 2), False),
        Point(dt.date(2026, 6, 1), round(100 * 10 / 12, 2), False),
    ]
    rows = indicator_breakdown(
        "ror.freshness", start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 31), by="department"
    )
    assert {r.key: r.value for r in rows} == {"35": 60.0, "29": 50.0}
    with pytest.raises(ValidationError):
        indicator_breakdown(
            "ror.freshness", start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 31), by="structure"
        )


def test_query_counts(events: list[Ev], django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        indicator_series("auth.strong_share", start=FIRST, end=LAST, granularity="week", department="35")
    with django_assert_num_queries(1):
        indicator_total("messagerie.active_professionals", start=FIRST, end=LAST)
    with django_assert_num_queries(1):
        indicator_breakdown("dmp.documents_submitted", start=FIRST, end=LAST, by="type_code")
    with django_assert_num_queries(2):  # the figures, then the department names (directory resolver)
        indicator_breakdown("dmp.documents_submitted", start=FIRST, end=LAST, by="department")


@pytest.mark.parametrize(
    ("code", "kwargs", "message"),
    [
        ("nope", {}, "Indicateur inconnu"),
        ("auth.sign_ins", {"granularity": "year"}, "Granularité"),
        ("auth.sign_ins", {"end": dt.date(2026, 1, 1)}, "précède"),
    ],
)
def test_bad_arguments_are_refused_in_french(code: str, kwargs: dict[str, Any], message: str) -> None:
    args = {"start": dt.date(2026, 2, 1), "end": dt.date(2026, 2, 28), **kwargs}
    with pytest.raises(ValidationError, match=message):
        indicator_series(code, **args)


def test_breakdown_by_an_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValidationError, match="détaillé"):
        indicator_breakdown("auth.sign_ins", start=FIRST, end=LAST, by="patient")


def test_every_indicator_answers(events: list[Ev]) -> None:
    for indicator in INDICATORS:
        point = indicator_total(indicator.code, start=FIRST, end=LAST)
        assert point.value is None or point.value >= 0
        assert len(indicator_series(indicator.code, start=FIRST, end=LAST, granularity="month")) == 2
    assert [i.code for i in indicator_list("dmp")][:3] == [
        "dmp.documents_submitted",
        "dmp.documents_accepted",
        "dmp.documents_refused",
    ]


def test_targets(django_user_model: Any) -> None:
    admin = django_user_model.objects.create_user(username="adm", password="x-Long-password-42")
    target = target_set(indicator="dmp.documents_submitted", year=2026, value=120000, actor=admin)
    assert targets_for("dmp.documents_submitted", 2026) == target
    assert targets_for("dmp.documents_submitted", 2026, department="35") is None
    again = target_set(indicator="dmp.documents_submitted", year=2026, value=150000, actor=admin)
    assert again.pk == target.pk
    assert again.value == 150000
    dept = target_set(indicator="dmp.documents_submitted", year=2026, department="35", value=3, actor=admin)
    assert targets_for("dmp.documents_submitted", 2026, department="35") == dept
    from enrs.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="usage.target.set").count() == 3
    for bad in ({"indicator": "x.y"}, {"year": 1990}, {"value": -1}, {"department": "ABC"}, {"value": "abc"}):
        args = {"indicator": "dmp.documents_submitted", "year": 2026, "value": 1, "actor": admin, **bad}
        with pytest.raises(ValidationError):
            target_set(**args)


def test_filter_choices_come_from_the_directory() -> None:
    from tests.annuaire.factories import StructureFactory

    structure = cast(
        Structure,
        StructureFactory(category_code="355", category_label="Centre hospitalier", name="CH de Test"),
    )
    usage_emit("auth.sign_in", structure_id=structure.pk, occurred_at=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
    usage_emit("auth.sign_in", structure_id=None, occurred_at=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
    rollups.rollup_run()
    choices = filter_choices()
    assert choices["structure"] == [(str(structure.pk), "CH de Test")]
    assert ("355", "Centre hospitalier") in choices["category"]
    assert ("4", "Médecins libéraux") in choices["college"]
    assert all(isinstance(code, str) for code, _ in choices["department"])


def test_actor_key_is_a_keyed_pseudonym() -> None:
    from enrs.usage.services import actor_key

    key = actor_key(SimpleNamespace(pk=42, is_anonymous=False))
    assert len(key) == 32
    assert key != "42"
    assert key == actor_key(SimpleNamespace(pk=42, is_anonymous=False))
    assert actor_key(SimpleNamespace(pk=43, is_anonymous=False)) != key
    assert actor_key(None) == ""
    assert actor_key(SimpleNamespace(pk=None, is_anonymous=True)) == ""


def _actors(events: list[Ev], lo: dt.date, hi: dt.date, **where: Any) -> set[str]:
    return {
        e.actor
        for e in events
        if e.kind == "messagerie.message_sent"
        and lo <= e.day <= hi
        and all(getattr(e, key) == value for key, value in where.items())
    }


def _expected(actors: set[str]) -> tuple[float | None, bool]:
    return (None, True) if 0 < len(actors) < 5 else (float(len(actors)), False)


def _check_weeks_and_year(events: list[Ev]) -> None:
    # Weekly series: whole ISO weeks precomputed, partial first (from Tuesday 1 Sept.) and last weeks
    # (to Saturday 31 Oct.) from the daily actors; every week equals the raw distinct count.
    scopes: list[dict[str, Any]] = [{}, {"department": "35"}]
    for scope in scopes:
        series = indicator_series(
            "messagerie.active_professionals", start=FIRST, end=LAST, granularity="week", **scope
        )
        assert len(series) == 9  # weeks of Monday 31 Aug. … Monday 26 Oct.
        for point in series:
            lo, hi = max(point.period, FIRST), min(point.period + dt.timedelta(days=6), LAST)
            assert (point.value, point.suppressed) == _expected(_actors(events, lo, hi, **scope)), point
    # Year to date (1 January to the last day with data): the precomputed yearly row.
    january = dt.date(2026, 1, 1)
    total = indicator_total("messagerie.active_professionals", start=january, end=LAST)
    assert total.value == len(_actors(events, january, LAST)) > 0
    region = UsageDistinct.objects.get(
        span=DistinctSpan.YEAR, month=january, kind="messagerie.message_sent", level=CubeLevel.REGION
    )
    assert region.actors == total.value
    rows = indicator_breakdown("messagerie.active_professionals", start=january, end=LAST, by="department")
    by_department = {
        dep: _actors(events, january, LAST, department=dep) for dep in ("35", "29", "56", "22", "")
    }
    assert {row.key: (row.value, row.suppressed) for row in rows} == {
        dep: _expected(actors) for dep, actors in by_department.items() if actors
    }
    # Data later in the year than the end of the period: not the yearly row, still exact.
    before = dt.date(2026, 10, 20)
    partial = indicator_total("messagerie.active_professionals", start=january, end=before, department="29")
    assert (partial.value, partial.suppressed) == _expected(_actors(events, january, before, department="29"))


def test_weekly_and_yearly_distinct_actors_match_raw_counts(events: list[Ev], rng: random.Random) -> None:
    _check_weeks_and_year(events)
    # A late event (recorded now, occurred in September) updates its week and its year incrementally.
    late = make_events(rng, 200, first=dt.date(2026, 9, 14), days=3, actors=400)
    store(late)
    rollups.rollup_run()
    _check_weeks_and_year(events + late)
    # The full rebuild gives the same numbers.
    rollups.rollup_rebuild()
    _check_weeks_and_year(events + late)
