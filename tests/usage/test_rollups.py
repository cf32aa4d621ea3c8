"""Rollups against raw counts on generated data: incremental runs, late events, re-runs, rebuilds."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from django.core.management import call_command

from enrs.usage import rollups
from enrs.usage.indicators import rolled_up_dimensions
from enrs.usage.models import (
    RollupState,
    UsageActorDaily,
    UsageActorMonthly,
    UsageDaily,
    UsageEvent,
    UsageMonthly,
)
from enrs.usage.services import SnapshotRow, usage_emit, usage_snapshot_replace

from .conftest import Ev, make_events, store

pytestmark = pytest.mark.django_db

# 2026-10-25: end of summer time in Paris, inside the generated period (a 25-hour local day).
FIRST = dt.date(2026, 9, 20)
DAYS = 60


def _expected_daily(events: list[Ev]) -> dict[tuple, tuple[int, float]]:
    values, sums = rolled_up_dimensions()
    expected: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
    for e in events:
        ctx = (e.day, e.kind, e.structure_id, e.department, e.category, e.college)
        keys = [(*ctx, "", "")]
        for dim in values.get(e.kind, ()):
            if dim in e.dims:
                raw = e.dims[dim]
                keys.append((*ctx, dim, str(raw).lower() if isinstance(raw, bool) else str(raw)))
        for key in keys:
            expected[key][0] += 1
            expected[key][1] += e.value
        for dim in sums.get(e.kind, ()):
            if isinstance(e.dims.get(dim), int | float):
                cell = expected[(*ctx, f"sum:{dim}", "")]
                cell[0] += 1
                cell[1] += float(e.dims[dim])
    return {k: (int(v[0]), float(v[1])) for k, v in expected.items()}


def _daily_rows() -> dict[tuple, tuple[int, float]]:
    return {
        (r.day, r.kind, r.structure_id, r.department, r.category, r.college, r.dim_key, r.dim_value): (
            r.count,
            r.total,
        )
        for r in UsageDaily.objects.all()
    }


def _snapshot() -> dict[str, Any]:
    def rows(model: Any, *fields: str) -> list[tuple]:
        return sorted(model.objects.values_list(*fields), key=repr)

    ctx = ("kind", "structure_id", "department", "category", "college")
    return {
        "daily": rows(UsageDaily, "day", *ctx, "dim_key", "dim_value", "count", "total"),
        "monthly": rows(UsageMonthly, "month", *ctx, "dim_key", "dim_value", "count", "total"),
        "actors_d": rows(UsageActorDaily, "day", "actor", *ctx),
        "actors_m": rows(UsageActorMonthly, "month", "actor", *ctx),
    }


def _assert_matches(events: list[Ev]) -> None:
    assert _daily_rows() == _expected_daily(events)
    # Months are the sums of their days.
    months: Counter[tuple] = Counter()
    for (day, *rest), (count, _total) in _expected_daily(events).items():
        months[(day.replace(day=1), *rest)] += count
    monthly = {
        (
            r.month,
            r.kind,
            r.structure_id,
            r.department,
            r.category,
            r.college,
            r.dim_key,
            r.dim_value,
        ): r.count
        for r in UsageMonthly.objects.all()
    }
    assert monthly == dict(months)
    # Distinct actors per day and per month.
    actor_days = {
        (e.day, e.kind, int(e.actor[:15], 16), e.structure_id, e.department, e.category, e.college)
        for e in events
        if e.actor
    }
    assert (
        set(
            UsageActorDaily.objects.values_list(
                "day", "kind", "actor", "structure_id", "department", "category", "college"
            )
        )
        == actor_days
    )
    actor_months = {(d.replace(day=1), *rest) for (d, *rest) in actor_days}
    assert UsageActorMonthly.objects.count() == len(actor_months)


def test_incremental_rollup_equals_raw_counts(rng: random.Random, no_rescan: None) -> None:
    events = make_events(rng, 2500, first=FIRST, days=DAYS)
    store(events)
    result = rollups.rollup_run()
    assert result.days == len({e.day for e in events})
    assert result.last_event_id == UsageEvent.objects.latest("id").id
    _assert_matches(events)


def test_rerun_gives_the_same_numbers(rng: random.Random, no_rescan: None) -> None:
    events = make_events(rng, 1500, first=FIRST, days=DAYS)
    store(events)
    rollups.rollup_run()
    first = _snapshot()
    nothing = rollups.rollup_run()
    assert nothing.days == 0  # nothing new: nothing recomputed
    assert _snapshot() == first
    rollups.recompute_days(FIRST, FIRST + dt.timedelta(days=DAYS))
    rollups.recompute_months([FIRST, dt.date(2026, 10, 1), dt.date(2026, 11, 1)])
    assert _snapshot() == first
    rollups.rollup_rebuild()
    assert _snapshot() == first


def test_late_events_make_their_old_day_dirty_again(rng: random.Random, no_rescan: None) -> None:
    events = make_events(rng, 1200, first=FIRST, days=DAYS)
    store(events)
    rollups.rollup_run()
    # Late: occurred weeks ago, recorded now (a replayed queue, an import of old capacity updates).
    late = make_events(random.Random(7), 150, first=FIRST, days=10)
    store(late)
    result = rollups.rollup_run()
    assert 0 < result.days <= 10
    _assert_matches(events + late)


def test_deleted_events_are_reflected_after_a_snapshot_replacement(no_rescan: None) -> None:
    day = dt.date(2026, 11, 2)
    usage_snapshot_replace(kind="ror.beds_available", day=day, rows=[SnapshotRow(value=12, department="35")])
    rollups.rollup_run()
    assert UsageDaily.objects.get(kind="ror.beds_available", dim_key="").total == 12
    usage_snapshot_replace(kind="ror.beds_available", day=day, rows=[SnapshotRow(value=7, department="35")])
    rollups.rollup_run()
    assert list(UsageDaily.objects.filter(kind="ror.beds_available").values_list("total", flat=True)) == [7]


def test_rescan_catches_an_event_committed_after_a_later_one(settings: Any) -> None:
    settings.USAGE_ROLLUP_RESCAN_MINUTES = 15
    old = usage_emit("messagerie.message_sent", structure_id=None, department="35")
    newer = usage_emit("messagerie.message_sent", department="35")
    # Pretend the run saw only the newer one (the older transaction had not committed yet).
    RollupState.objects.create(name=rollups.STATE_NAME, last_event_id=newer.id)
    assert old.id < newer.id
    rollups.rollup_run()
    row = UsageDaily.objects.get(kind="messagerie.message_sent", dim_key="")
    assert row.count == 2


def test_a_concurrent_run_is_skipped(rng: random.Random) -> None:
    from django.db import connections

    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [rollups._LOCK_KEY])
        assert rollups.rollup_run().skipped
    finally:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [rollups._LOCK_KEY])
        other.close()


def test_rebuild_since_keeps_earlier_days(rng: random.Random, no_rescan: None) -> None:
    events = make_events(rng, 800, first=FIRST, days=DAYS)
    store(events)
    rollups.rollup_run()
    before = _snapshot()
    UsageDaily.objects.filter(day__gte=dt.date(2026, 10, 10)).delete()
    rollups.rollup_rebuild(since=dt.date(2026, 10, 10))
    assert _snapshot() == before


def test_management_command(rng: random.Random, no_rescan: None, capsys: pytest.CaptureFixture[str]) -> None:
    events = make_events(rng, 200, first=FIRST, days=5)
    store(events)
    call_command("usage_rollup", "--rebuild", "--since", "2026-09-01")
    assert "2026-09 recalculé" in capsys.readouterr().out
    _assert_matches(events)
    call_command("usage_rollup")
    assert "0 jour(s) et 0 mois recalculés" in capsys.readouterr().out


def test_management_command_refuses_a_bad_date() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="invalide"):
        call_command("usage_rollup", "--rebuild", "--since", "hier")


def test_rollup_task_runs_the_incremental_service(rng: random.Random, no_rescan: None) -> None:
    from enrs.usage.tasks import rollup

    store(make_events(rng, 100, first=FIRST, days=3))
    result = rollup.delay().get()
    assert result["days"] == 3
    assert result["skipped"] is False
    assert sorted(UsageDaily.objects.values_list("day", flat=True).distinct()) == [
        FIRST + dt.timedelta(days=i) for i in range(3)
    ]
