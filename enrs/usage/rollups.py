"""Rollups of the raw usage events, recomputed per local day (idempotent) and kept up to date incrementally.

A day is always recomputed *whole* from the raw events (DELETE + INSERT … SELECT … GROUP BY in one
transaction), so re-running gives the same numbers and a late event (occurred long ago, recorded now)
simply makes its day dirty again. The watermark (``RollupState.last_event_id``) marks the events already
seen; each run also re-reads the days of events *recorded* during the last ``USAGE_ROLLUP_RESCAN_MINUTES``
so an event whose transaction committed after a later one (lower id, seen late) is not missed. Months are
then recomputed from the daily rows. Everything runs in SQL: memory stays bounded at any volume.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .indicators import INDICATORS, distinct_key, rolled_up_dimensions
from .models import (
    RollupState,
    UsageActorDaily,
    UsageActorMonthly,
    UsageCube,
    UsageDaily,
    UsageDistinct,
    UsageEvent,
    UsageMonthly,
)

STATE_NAME = "usage"
_LOCK_KEY = 0x75736167  # "usag": one rollup at a time (pg advisory lock)

_CONTEXT = "structure_id, department, category, college"
# Names spliced into the SQL below: table names from the models' metadata and fixed fragments (never input).
_NAMES = {
    "events": UsageEvent._meta.db_table,
    "daily": UsageDaily._meta.db_table,
    "monthly": UsageMonthly._meta.db_table,
    "actor_daily": UsageActorDaily._meta.db_table,
    "actor_monthly": UsageActorMonthly._meta.db_table,
    "cube": UsageCube._meta.db_table,
    "distinct": UsageDistinct._meta.db_table,
    "context": _CONTEXT,
    "e_context": "e.structure_id, e.department, e.category, e.college",
    "day": "(e.occurred_at AT TIME ZONE %(tz)s)::date",
}


def _sql(template: str) -> str:
    return template.format(**_NAMES)


@dataclass
class RollupResult:
    days: int = 0
    months: int = 0
    last_event_id: int = 0
    skipped: bool = False


def _tz() -> str:
    return str(settings.TIME_ZONE)


def _rescan() -> dt.timedelta:
    return dt.timedelta(minutes=float(getattr(settings, "USAGE_ROLLUP_RESCAN_MINUTES", 15)))


def _bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def _ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Contiguous runs of days, as inclusive (first, last) pairs."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _dim_arrays() -> tuple[list[str], list[str], list[str], list[str]]:
    values, sums = rolled_up_dimensions()
    v_kinds = [k for k, dims in sorted(values.items()) for _ in sorted(dims)]
    v_keys = [d for _k, dims in sorted(values.items()) for d in sorted(dims)]
    s_kinds = [k for k, dims in sorted(sums.items()) for _ in sorted(dims)]
    s_keys = [d for _k, dims in sorted(sums.items()) for d in sorted(dims)]
    return v_kinds, v_keys, s_kinds, s_keys


def recompute_days(first: dt.date, last: dt.date) -> None:
    """Recompute the daily rollups of the local days ``first``…``last`` (inclusive) from the raw events."""
    start, end = _bounds(first, last)
    v_kinds, v_keys, s_kinds, s_keys = _dim_arrays()
    params: dict[str, Any] = {
        "tz": _tz(),
        "start": start,
        "end": end,
        "first": first,
        "last": last,
        "v_kinds": v_kinds,
        "v_keys": v_keys,
        "s_kinds": s_kinds,
        "s_keys": s_keys,
    }
    with connection.cursor() as cursor:
        cursor.execute(_sql("DELETE FROM {daily} WHERE day BETWEEN %(first)s AND %(last)s"), params)
        cursor.execute(_sql("DELETE FROM {actor_daily} WHERE day BETWEEN %(first)s AND %(last)s"), params)
        cursor.execute(_sql(_DAILY_INSERT), params)
        cursor.execute(_sql(_ACTOR_DAILY_INSERT), params)
        cursor.execute(
            _sql("DELETE FROM {cube} WHERE period_kind = 'd' AND period BETWEEN %(first)s AND %(last)s"),
            params,
        )
        cursor.execute(_sql(_CUBE_INSERT.format(kind="d", source="{daily}", period="day")), params)


_DAILY_INSERT = """
    INSERT INTO {daily} (day, kind, {context}, dim_key, dim_value, count, total)
    SELECT {day}, e.kind, {e_context}, '', '', count(*), coalesce(sum(e.value), 0)
      FROM {events} e
     WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
     GROUP BY 1, 2, 3, 4, 5, 6
    UNION ALL
    SELECT {day}, e.kind, {e_context}, d.key, left(e.dims ->> d.key, 100), count(*),
           coalesce(sum(e.value), 0)
      FROM {events} e
      JOIN unnest(%(v_kinds)s::text[], %(v_keys)s::text[]) AS d(kind, key) ON d.kind = e.kind
     WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
       AND jsonb_typeof(e.dims -> d.key) IN ('string', 'number', 'boolean')
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    UNION ALL
    SELECT {day}, e.kind, {e_context}, 'sum:' || d.key, '', count(*),
           coalesce(sum((e.dims ->> d.key)::double precision), 0)
      FROM {events} e
      JOIN unnest(%(s_kinds)s::text[], %(s_keys)s::text[]) AS d(kind, key) ON d.kind = e.kind
     WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
       AND jsonb_typeof(e.dims -> d.key) = 'number'
     GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
_ACTOR_DAILY_INSERT = """
    INSERT INTO {actor_daily} (day, kind, actor, {context})
    SELECT DISTINCT {day}, e.kind, ('x' || substr(e.actor_key, 1, 15))::bit(60)::bigint, {e_context}
      FROM {events} e
     WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s AND e.actor_key <> ''
"""
# The same rows without the structure, grouped once per filter (see ``CubeLevel``).
_CUBE_INSERT = """
    INSERT INTO {{cube}} (period_kind, period, level, kind, department, category, college, dim_key, dim_value,
                          count, total)
    SELECT '{kind}', {period}, GROUPING(department, category, college), kind, department, category, college,
           dim_key, dim_value, sum(count), sum(total)
      FROM {source}
     WHERE {period} BETWEEN %(first)s AND %(last)s
     GROUP BY GROUPING SETS (
        ({period}, kind, dim_key, dim_value),
        ({period}, kind, dim_key, dim_value, department),
        ({period}, kind, dim_key, dim_value, category),
        ({period}, kind, dim_key, dim_value, college),
        ({period}, kind, dim_key, dim_value, department, category, college)
     )
"""
_MONTHLY_INSERT = """
    INSERT INTO {monthly} (month, kind, {context}, dim_key, dim_value, count, total)
    SELECT %(month)s, kind, {context}, dim_key, dim_value, sum(count), sum(total)
      FROM {daily} WHERE day >= %(month)s AND day < %(end)s
     GROUP BY kind, {context}, dim_key, dim_value
"""
_DISTINCT_INSERT = """
    INSERT INTO {{distinct}} (span, month, level, kind, department, category, college, actors)
    SELECT '{span}', %(month)s, GROUPING(department, category, college), kind, department, category, college,
           count(DISTINCT actor)
      FROM (
        SELECT kind, actor, department, category, college FROM {source} WHERE {where}
        UNION ALL
        SELECT u.name, a.actor, a.department, a.category, a.college
          FROM {source} a JOIN unnest(%(u_kinds)s::text[], %(u_names)s::text[]) AS u(kind, name)
            ON u.kind = a.kind
         WHERE {where}
      ) s
     GROUP BY GROUPING SETS (
        (kind), (kind, department), (kind, category), (kind, college), (kind, department, category, college)
     )
"""
_DISTINCT_MONTH = _DISTINCT_INSERT.format(span="m", source="{actor_monthly}", where="month = %(month)s")
# ISO weeks (from the daily actors) and calendar years (from the monthly actors: 12 partitions at most).
_DISTINCT_WEEK = _DISTINCT_INSERT.format(
    span="w", source="{actor_daily}", where="day >= %(month)s AND day < %(end)s"
)
_DISTINCT_YEAR = _DISTINCT_INSERT.format(
    span="y", source="{actor_monthly}", where="month >= %(month)s AND month < %(end)s"
)
_ACTOR_MONTHLY_INSERT = """
    INSERT INTO {actor_monthly} (month, kind, actor, {context})
    SELECT DISTINCT %(month)s::date, kind, actor, {context}
      FROM {actor_daily} WHERE day >= %(month)s AND day < %(end)s
"""


def _union_params() -> dict[str, list[str]]:
    """Distinct indicators over several kinds (e.g. acts requested *or* accepted): each of their kinds'
    actors also counted under the indicator's own key (``distinct_key``), once per actor."""
    pairs = sorted(
        (term.kind, distinct_key(indicator))
        for indicator in INDICATORS
        if indicator.aggregation == "distinct" and len({t.kind for t in indicator.numerator}) > 1
        for term in indicator.numerator
    )
    return {"u_kinds": [kind for kind, _ in pairs], "u_names": [name for _, name in pairs]}


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def recompute_months(months: Iterable[dt.date]) -> int:
    """Recompute the monthly rollups of ``months`` (first days) from the daily rows."""
    count = 0
    with connection.cursor() as cursor:
        for month in sorted({_month(m) for m in months}):
            params = {"month": month, "end": _next_month(month)}
            cursor.execute(_sql("DELETE FROM {monthly} WHERE month = %(month)s"), params)
            cursor.execute(_sql("DELETE FROM {actor_monthly} WHERE month = %(month)s"), params)
            cursor.execute(_sql(_MONTHLY_INSERT), params)
            cursor.execute(_sql(_ACTOR_MONTHLY_INSERT), params)
            cursor.execute(_sql("DELETE FROM {distinct} WHERE span = 'm' AND month = %(month)s"), params)
            cursor.execute(_sql(_DISTINCT_MONTH), {**params, **_union_params()})
            cursor.execute(_sql("DELETE FROM {cube} WHERE period_kind = 'm' AND period = %(month)s"), params)
            cursor.execute(
                _sql(_CUBE_INSERT.format(kind="m", source="{monthly}", period="month")),
                {"first": month, "last": month},
            )
            count += 1
    return count


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def recompute_weeks(days: Iterable[dt.date]) -> int:
    """Recompute the weekly distinct actors of the ISO weeks of ``days`` (after their days)."""
    weeks = sorted({_monday(day) for day in days})
    with connection.cursor() as cursor:
        for week in weeks:
            params = {"month": week, "end": week + dt.timedelta(days=7)}
            cursor.execute(_sql("DELETE FROM {distinct} WHERE span = 'w' AND month = %(month)s"), params)
            cursor.execute(_sql(_DISTINCT_WEEK), {**params, **_union_params()})
    return len(weeks)


def recompute_years(days: Iterable[dt.date]) -> int:
    """Recompute the yearly distinct actors of the calendar years of ``days`` (after their months)."""
    years = sorted({day.year for day in days})
    with connection.cursor() as cursor:
        for year in years:
            params = {"month": dt.date(year, 1, 1), "end": dt.date(year + 1, 1, 1)}
            cursor.execute(_sql("DELETE FROM {distinct} WHERE span = 'y' AND month = %(month)s"), params)
            cursor.execute(_sql(_DISTINCT_YEAR), {**params, **_union_params()})
    return len(years)


def recompute_spans(days: Iterable[dt.date]) -> tuple[int, int]:
    """Weeks and years of ``days``: (weeks, years) recomputed."""
    days = list(days)
    return recompute_weeks(days), recompute_years(days)


def _lock(cursor: object) -> bool:
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])  # type: ignore[attr-defined]
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def rollup_run(*, now: dt.datetime | None = None) -> RollupResult:
    """Incremental run: recompute every day touched by events recorded since the last run."""
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if not _lock(cursor):
                return RollupResult(skipped=True)
            state, _ = RollupState.objects.select_for_update().get_or_create(name=STATE_NAME)
            since = (state.updated_at if state.last_event_id else now) - _rescan()
            cursor.execute(_sql("SELECT max(id) FROM {events}"))
            top = cursor.fetchone()[0] or 0
            cursor.execute(
                _sql(
                    "SELECT DISTINCT {day} FROM {events} e"
                    " WHERE (e.id > %(last)s AND e.id <= %(top)s) OR e.recorded_at >= %(since)s"
                ),
                {"tz": _tz(), "last": state.last_event_id, "top": top, "since": since},
            )
            days = [row[0] for row in cursor.fetchall()]
        for first, last in _ranges(days):
            recompute_days(first, last)
        months = recompute_months(days)
        recompute_spans(days)
        state.last_event_id = max(top, state.last_event_id)
        state.save()
    return RollupResult(days=len(days), months=months, last_event_id=state.last_event_id)


def rollup_rebuild(*, since: dt.date | None = None, progress: object = None) -> RollupResult:
    """Recompute everything (or every day from ``since``) month by month, each month in its own
    transaction; the watermark is taken first so later events are picked up by the next run."""
    with connection.cursor() as cursor:
        cursor.execute(_sql("SELECT max(id), min(occurred_at), max(occurred_at) FROM {events}"))
        top, oldest, newest = cursor.fetchone()
    result = RollupResult(last_event_id=top or 0)
    if oldest is None:
        with transaction.atomic():
            _clear(since)
        return result
    local = timezone.get_current_timezone()
    first = oldest.astimezone(local).date()
    last = max(newest.astimezone(local).date(), timezone.localdate())
    if since is not None:
        first = max(first, since)
    with transaction.atomic():
        _clear(since)
    month = _month(first)
    years: set[dt.date] = set()
    while month <= last:
        lo = max(month, first)
        hi = min(_next_month(month) - dt.timedelta(days=1), last)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            recompute_days(lo, hi)
            recompute_months([month])
            # Weeks of the month (one straddling the next month is completed by the next pass).
            recompute_weeks([*(lo + dt.timedelta(days=n) for n in range(0, (hi - lo).days + 1, 7)), hi])
        years.update({lo, hi})
        result.days += (hi - lo).days + 1
        result.months += 1
        if callable(progress):
            progress(month)
        month = _next_month(month)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        recompute_years(years)
        state, _ = RollupState.objects.select_for_update().get_or_create(name=STATE_NAME)
        state.last_event_id = max(state.last_event_id, result.last_event_id)
        state.save()
    return result


def _clear(since: dt.date | None) -> None:
    if since is None:
        with connection.cursor() as cursor:
            cursor.execute(
                _sql("TRUNCATE {daily}, {monthly}, {actor_daily}, {actor_monthly}, {cube}, {distinct}")
            )
        return
    UsageDaily.objects.filter(day__gte=since).delete()
    UsageActorDaily.objects.filter(day__gte=since).delete()
    UsageMonthly.objects.filter(month__gte=_month(since)).delete()
    UsageActorMonthly.objects.filter(month__gte=_month(since)).delete()
    UsageCube.objects.filter(period_kind="d", period__gte=since).delete()
    UsageCube.objects.filter(period_kind="m", period__gte=_month(since)).delete()
    UsageDistinct.objects.filter(span="m", month__gte=_month(since)).delete()
    UsageDistinct.objects.filter(span="w", month__gte=_monday(since)).delete()
    UsageDistinct.objects.filter(span="y", month__gte=since.replace(month=1, day=1)).delete()
