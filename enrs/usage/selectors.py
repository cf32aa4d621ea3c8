"""The read API of the dashboards: indicator series, breakdowns and totals from the rollups, with the
small-cell rule applied; deployment targets.

Dates are local days, ``start`` and ``end`` both included. Each call is one query on the rollup tables
(plus, for breakdowns by structure, one for the labels). Month-aligned ranges read the monthly rollups.
Distinct actors read precomputed rows (``UsageDistinct``) per month, per ISO week (a weekly series: one more
query for its partial first and last weeks) and per calendar year (a period from 1 January: one more query
checking that no later day of the year has actors).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncWeek

from . import resolver
from .indicators import (
    INDICATORS,
    SERVICES,
    SMALL_CELL_THRESHOLD,
    Indicator,
    Term,
    distinct_key,
    get_indicator,
)
from .models import (
    CubeLevel,
    DistinctSpan,
    Target,
    UsageActorDaily,
    UsageActorMonthly,
    UsageCube,
    UsageDaily,
    UsageDistinct,
    UsageMonthly,
)

GRANULARITIES = ("day", "week", "month")
_GROUP_COLUMNS = {
    "department": "department",
    "category": "category",
    "college": "college",
    "structure": "structure_id",
}
MAX_DAYS = 366 * 5


@dataclass(frozen=True)
class Point:
    period: dt.date
    value: float | None
    suppressed: bool


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: float | None
    suppressed: bool


@dataclass
class _Cell:
    num_count: float = 0.0
    num_total: float = 0.0
    den_count: float = 0.0
    den_total: float = 0.0
    seen: bool = False


# --- helpers ----------------------------------------------------------------------------------------------


def _check_range(start: dt.date, end: dt.date) -> None:
    if not isinstance(start, dt.date) or not isinstance(end, dt.date):
        raise ValidationError("Période invalide.")
    if end < start:
        raise ValidationError("La fin de la période précède son début.")
    if (end - start).days > MAX_DAYS:
        raise ValidationError("Période trop longue (5 ans au plus).")


def _month_aligned(start: dt.date, end: dt.date) -> bool:
    return start.day == 1 and (end + dt.timedelta(days=1)).day == 1


def _bucket(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _buckets(start: dt.date, end: dt.date, granularity: str) -> list[dt.date]:
    buckets: list[dt.date] = []
    current = _bucket(start, granularity)
    while current <= end:
        buckets.append(current)
        if granularity == "month":
            current = (current + dt.timedelta(days=32)).replace(day=1)
        else:
            current += dt.timedelta(days=7 if granularity == "week" else 1)
    return buckets


@dataclass(frozen=True)
class _Filters:
    q: Q
    columns: frozenset[str]  # among department / category / college
    structure: bool


def _filter_q(
    department: str | None, category: str | None, college: int | None, structure_id: int | None
) -> _Filters:
    q = Q()
    columns = set()
    if department:
        q &= Q(department=str(department))
        columns.add("department")
    if category:
        q &= Q(category=str(category))
        columns.add("category")
    if college is not None and college != "":
        try:
            q &= Q(college=int(college))
        except (TypeError, ValueError):
            raise ValidationError("Collège invalide.") from None
        columns.add("college")
    structure = structure_id is not None and structure_id != ""
    if structure:
        try:
            q &= Q(structure_id=int(structure_id))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValidationError("Structure invalide.") from None
    return _Filters(q, frozenset(columns), structure)


_CUBE_LEVELS = {
    frozenset(): CubeLevel.REGION,
    frozenset({"department"}): CubeLevel.DEPARTMENT,
    frozenset({"category"}): CubeLevel.CATEGORY,
    frozenset({"college"}): CubeLevel.COLLEGE,
}


def _row_dim(term: Term, by_dim: str) -> str:
    if term.measure:
        return f"sum:{term.measure}"
    return by_dim or term.dim


def _terms_q(indicator: Indicator, by_dim: str) -> Q:
    q = Q()
    for term in (*indicator.numerator, *indicator.denominator):
        part = Q(kind=term.kind, dim_key=_row_dim(term, by_dim))
        if term.dim and term.values:
            part &= Q(dim_value__in=term.values)
        q |= part
    return q


def _matches(term: Term, row: dict[str, Any], by_dim: str) -> bool:
    if row["kind"] != term.kind or row["dim_key"] != _row_dim(term, by_dim):
        return False
    return not (term.dim and term.values and row["dim_value"] not in term.values)


def _accumulate(cell: _Cell, indicator: Indicator, row: dict[str, Any], by_dim: str) -> None:
    for term in indicator.numerator:
        if _matches(term, row, by_dim):
            cell.num_count += term.sign * row["c"]
            cell.num_total += term.sign * row["t"]
            cell.seen = True
    for term in indicator.denominator:
        if _matches(term, row, by_dim):
            cell.den_count += term.sign * row["c"]
            cell.den_total += term.sign * row["t"]
            cell.seen = True


def _small(indicator: Indicator, basis: float) -> bool:
    return indicator.small_cell and 0 < basis < SMALL_CELL_THRESHOLD


def _value(indicator: Indicator, cell: _Cell | None) -> tuple[float | None, bool]:
    """(value, suppressed) of one cell."""
    agg = indicator.aggregation
    if cell is None or not cell.seen:
        return (0.0, False) if agg in ("count", "sum", "distinct") else (None, False)
    if agg == "count":
        value: float | None = max(cell.num_count, 0.0)
        basis = value or 0.0
    elif agg == "sum":
        value, basis = max(cell.num_total, 0.0), cell.num_count
    elif agg == "avg":
        value = cell.num_total / cell.num_count if cell.num_count > 0 else None
        basis = cell.num_count
    elif agg == "distinct":
        value = basis = cell.num_count
    elif agg == "snapshot_sum":
        value, basis = cell.num_total, 0.0
    else:  # ratio, snapshot_ratio
        use_total = indicator.use_total or agg == "snapshot_ratio"
        numerator = cell.num_total if use_total else cell.num_count
        denominator = cell.den_total if use_total else cell.den_count
        value = round(100.0 * numerator / denominator, 2) if denominator > 0 else None
        basis = cell.den_count
    if _small(indicator, basis):
        return None, True
    return value, False


def _rollup_rows(
    indicator: Indicator,
    *,
    start: dt.date,
    end: dt.date,
    granularity: str | None,
    group: str | None,
    by_dim: str,
    filters: _Filters,
) -> dict[tuple[dt.date | None, Any], _Cell]:
    """Cells keyed by (bucket or None, group key or None).

    Without a structure (filter or breakdown), events read the cube: the grouping set that matches the
    filters and breakdown, per day or, for month-aligned periods, per month."""
    snapshot = indicator.is_snapshot
    monthly = not snapshot and (granularity in (None, "month")) and _month_aligned(start, end)
    qs: QuerySet[Any]
    if indicator.aggregation == "distinct":
        return _distinct_rows(
            indicator, start=start, end=end, granularity=granularity, group=group, filters=filters
        )
    if not snapshot and not filters.structure and group != "structure":
        used = filters.columns | ({group} if group in ("department", "category", "college") else set())
        qs = UsageCube.objects.filter(
            period_kind="m" if monthly else "d",
            level=_CUBE_LEVELS.get(frozenset(used), CubeLevel.FULL),
            period__gte=start,
            period__lte=end,
        )
        date_col = "period"
    elif monthly:
        qs = UsageMonthly.objects.filter(month__gte=start, month__lte=end)
        date_col = "month"
    else:
        qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
        date_col = "day"
    qs = qs.filter(filters.q).filter(_terms_q(indicator, by_dim))
    fields: dict[str, Any] = {}
    if snapshot:
        fields["d"] = F("day")
    elif granularity == "week":
        fields["d"] = TruncWeek(date_col)
    elif granularity == "month" and not monthly:
        fields["d"] = TruncMonth(date_col)
    elif granularity is not None:
        fields["d"] = F(date_col)
    if group:
        fields["g"] = F(_GROUP_COLUMNS.get(group, "dim_value"))
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in qs.values("kind", "dim_key", "dim_value", **fields)
        .annotate(c=Sum("count"), t=Sum("total"))
        .order_by()
    ]
    if not snapshot:
        cells: dict[tuple[dt.date | None, Any], _Cell] = defaultdict(_Cell)
        for row in rows:
            day = row.get("d")
            bucket = _as_date(day) if day is not None else None
            _accumulate(cells[(bucket, row.get("g"))], indicator, row, by_dim)
        return cells
    # State snapshot: per bucket and group, the latest day that has data.
    per_day: dict[tuple[dt.date | None, Any], dict[dt.date, _Cell]] = defaultdict(lambda: defaultdict(_Cell))
    for row in rows:
        day = _as_date(row["d"])
        bucket = _bucket(day, granularity) if granularity else None
        _accumulate(per_day[(bucket, row.get("g"))][day], indicator, row, by_dim)
    return {key: days[max(days)] for key, days in per_day.items()}


def _distinct_rows(
    indicator: Indicator,
    *,
    start: dt.date,
    end: dt.date,
    granularity: str | None,
    group: str | None,
    filters: _Filters,
) -> dict[tuple[dt.date | None, Any], _Cell]:
    kinds = [t.kind for t in indicator.numerator]
    used = filters.columns | ({group} if group in ("department", "category", "college") else set())
    level = _CUBE_LEVELS.get(frozenset(used), CubeLevel.FULL if len(used) == 3 else None)
    if level is None or filters.structure or group == "structure":
        return _actor_rows(kinds, start=start, end=end, granularity=granularity, group=group, filters=filters)
    kind = distinct_key(indicator)
    one_month = granularity is None and start.day == 1 and start.replace(day=1) == end.replace(day=1)
    if _month_aligned(start, end) and (granularity == "month" or one_month):
        # Precomputed distinct counts: one row per month (and per group).
        return _precomputed(DistinctSpan.MONTH, kind, level, start, end, granularity, group, filters)
    if granularity is None and _year_to_date(kinds, start, end):
        return _precomputed(DistinctSpan.YEAR, kind, level, start, start, None, group, filters)
    if granularity == "week":
        # Whole ISO weeks precomputed; the partial first and last weeks from the daily actors.
        first_full = start + dt.timedelta(days=(7 - start.weekday()) % 7)
        last_full = end - dt.timedelta(days=(end.weekday() + 1) % 7)
        if first_full < last_full:
            cells = _precomputed(
                DistinctSpan.WEEK, kind, level, first_full, last_full, "week", group, filters
            )
            one_day = dt.timedelta(days=1)
            edges = Q()
            for lo, hi in ((start, first_full - one_day), (last_full + one_day, end)):
                if lo <= hi:
                    edges |= Q(day__gte=lo, day__lte=hi)
            if edges:
                partial = _actor_rows(
                    kinds, start=start, end=end, granularity="week", group=group, filters=filters, days=edges
                )
                cells.update(partial)
            return cells
    return _actor_rows(kinds, start=start, end=end, granularity=granularity, group=group, filters=filters)


def _year_to_date(kinds: list[str], start: dt.date, end: dt.date) -> bool:
    """Whether [start, end] counts the same actors as its calendar year: it starts on 1 January and no
    actor of the kinds was seen later in that year (the usual "year to date" period)."""
    if (start.month, start.day) != (1, 1) or end.year != start.year:
        return False
    if (end.month, end.day) == (12, 31):
        return True
    later = UsageActorDaily.objects.filter(kind__in=kinds, day__gt=end, day__lte=dt.date(end.year, 12, 31))
    return not later.exists()


def _precomputed(
    span: str,
    kind: str,
    level: int,
    start: dt.date,
    end: dt.date,
    granularity: str | None,
    group: str | None,
    filters: _Filters,
) -> dict[tuple[dt.date | None, Any], _Cell]:
    """Rows of ``UsageDistinct`` of one span whose first day falls in [start, end]."""
    qs = UsageDistinct.objects.filter(
        filters.q, span=span, level=level, kind=kind, month__gte=start, month__lte=end
    )
    values: dict[str, Any] = {"d": F("month")} if granularity is not None else {}
    if group:
        values["g"] = F(_GROUP_COLUMNS[group])
    cells: dict[tuple[dt.date | None, Any], _Cell] = {}
    for found in qs.values(**values, n=F("actors")):
        row: dict[str, Any] = dict(found)
        if row["n"]:
            key = (_as_date(row["d"]) if "d" in row else None, row.get("g"))
            cells[key] = _Cell(num_count=float(row["n"]), seen=True)
    return cells


def _actor_rows(
    kinds: list[str],
    *,
    start: dt.date,
    end: dt.date,
    granularity: str | None,
    group: str | None,
    filters: _Filters,
    days: Q | None = None,
) -> dict[tuple[dt.date | None, Any], _Cell]:
    """Distinct actors counted on the actor rollups (monthly when month-aligned, else daily; ``days``:
    only these days of the daily rollup)."""
    qs: QuerySet[Any]
    if days is not None:
        qs = UsageActorDaily.objects.filter(days)
        date_col = "day"
    elif granularity in (None, "month") and _month_aligned(start, end):
        qs = UsageActorMonthly.objects.filter(month__gte=start, month__lte=end)
        date_col = "month"
    else:
        qs = UsageActorDaily.objects.filter(day__gte=start, day__lte=end)
        date_col = "day"
    qs = qs.filter(filters.q, kind__in=kinds)
    fields: dict[str, Any] = {}
    if granularity == "week":
        fields["d"] = TruncWeek(date_col)
    elif granularity == "month" and date_col == "day":
        fields["d"] = TruncMonth(date_col)
    elif granularity is not None:
        fields["d"] = F(date_col)
    if group:
        fields["g"] = F(_GROUP_COLUMNS[group])
    rows: list[dict[str, Any]]
    if fields:
        grouped = qs.values(**fields).annotate(n=Count("actor", distinct=True)).order_by()
        rows = [dict(row) for row in grouped]
    else:
        rows = [dict(qs.aggregate(n=Count("actor", distinct=True)))]
    cells: dict[tuple[dt.date | None, Any], _Cell] = {}
    for row in rows:
        if not row["n"]:
            continue
        day = row.get("d")
        cells[(_as_date(day) if day is not None else None, row.get("g"))] = _Cell(
            num_count=float(row["n"]), seen=True
        )
    return cells


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


# --- public API -------------------------------------------------------------------------------------------


def indicator_series(
    code: str,
    *,
    start: dt.date,
    end: dt.date,
    granularity: str = "day",
    department: str | None = None,
    category: str | None = None,
    college: int | None = None,
    structure_id: int | None = None,
) -> list[Point]:
    """One point per day / ISO week (Monday) / month of the period, gaps filled."""
    indicator = get_indicator(code)
    _check_range(start, end)
    if granularity not in GRANULARITIES:
        raise ValidationError("Granularité invalide (jour, semaine ou mois).")
    cells = _rollup_rows(
        indicator,
        start=start,
        end=end,
        granularity=granularity,
        group=None,
        by_dim="",
        filters=_filter_q(department, category, college, structure_id),
    )
    points = []
    for bucket in _buckets(start, end, granularity):
        value, suppressed = _value(indicator, cells.get((bucket, None)))
        points.append(Point(bucket, value, suppressed))
    return points


def indicator_total(
    code: str,
    *,
    start: dt.date,
    end: dt.date,
    department: str | None = None,
    category: str | None = None,
    college: int | None = None,
    structure_id: int | None = None,
) -> Point:
    """The figure over the whole period (distinct actors counted once; snapshots: the latest day)."""
    indicator = get_indicator(code)
    _check_range(start, end)
    cells = _rollup_rows(
        indicator,
        start=start,
        end=end,
        granularity=None,
        group=None,
        by_dim="",
        filters=_filter_q(department, category, college, structure_id),
    )
    value, suppressed = _value(indicator, cells.get((None, None)))
    return Point(start, value, suppressed)


def _labels(indicator: Indicator, by: str, keys: list[Any]) -> dict[Any, str]:
    if by == "department":
        return dict(resolver.department_labels())
    if by == "category":
        return dict(resolver.category_labels())
    if by == "college":
        return dict(resolver.college_labels())
    if by == "structure":
        return dict(resolver.structure_labels([k for k in keys if k is not None]))
    return dict(indicator.dim_labels.get(by, {}))


def indicator_breakdown(
    code: str,
    *,
    start: dt.date,
    end: dt.date,
    by: str,
    department: str | None = None,
    category: str | None = None,
    college: int | None = None,
    structure_id: int | None = None,
) -> list[Row]:
    """The figure over the period per department / category / collège / structure / dimension value."""
    indicator = get_indicator(code)
    _check_range(start, end)
    dims = dict(indicator.breakdowns)
    if by in _GROUP_COLUMNS:
        if by not in indicator.structure_breakdowns:
            raise ValidationError(f"Cet indicateur ne peut pas être détaillé par « {by} ».")
        by_dim = ""
    elif by in dims:
        by_dim = by
    else:
        raise ValidationError(f"Cet indicateur ne peut pas être détaillé par « {by} ».")
    cells = _rollup_rows(
        indicator,
        start=start,
        end=end,
        granularity=None,
        group=by,
        by_dim=by_dim,
        filters=_filter_q(department, category, college, structure_id),
    )
    keys = [group for (_bucket, group) in cells]
    labels = _labels(indicator, by, keys)
    rows = []
    for (_bucket, group), cell in cells.items():
        value, suppressed = _value(indicator, cell)
        if group is None or group == "":
            key, label = "", "Non renseigné"
        else:
            key, label = str(group), labels.get(group) or labels.get(str(group)) or str(group)
        rows.append(Row(key, label, value, suppressed))
    rows.sort(key=lambda r: (r.suppressed, -(r.value if r.value is not None else -1.0), r.label))
    return rows


def targets_for(code: str, year: int, department: str | None = None) -> Target | None:
    """The yearly target of the indicator for the region (``department`` None) or that department."""
    get_indicator(code)
    return Target.objects.filter(indicator=code, year=year, department=department or "").first()


def target_list(*, year: int | None = None) -> QuerySet[Target]:
    qs = Target.objects.select_related("set_by")
    return qs.filter(year=year) if year is not None else qs


def indicator_list(service: str | None = None) -> list[Indicator]:
    if service is not None and service not in SERVICES:
        raise ValidationError(f"Service inconnu : « {service} ».")
    return [i for i in INDICATORS if service is None or i.service == service]


_SKIP_SCAN = """
    WITH RECURSIVE s(id) AS (
        (SELECT structure_id FROM {table} WHERE structure_id IS NOT NULL ORDER BY structure_id LIMIT 1)
        UNION ALL
        SELECT (SELECT structure_id FROM {table} WHERE structure_id > s.id ORDER BY structure_id LIMIT 1)
          FROM s WHERE s.id IS NOT NULL
    )
    SELECT id FROM s WHERE id IS NOT NULL
"""


def _structures_with_usage() -> list[int]:
    """Distinct structure ids of the monthly rollup, by a skip scan of its structure index (fast at any
    volume: one index probe per structure). Elsewhere (the embedded demo on SQLite) a plain DISTINCT."""
    if connection.vendor != "postgresql":
        ids = (
            UsageMonthly.objects.exclude(structure_id=None)
            .order_by("structure_id")
            .values_list("structure_id", flat=True)
            .distinct()
        )
        return [pk for pk in ids if pk is not None]
    with connection.cursor() as cursor:
        cursor.execute(_SKIP_SCAN.format(table=UsageMonthly._meta.db_table))
        return [row[0] for row in cursor.fetchall()]


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """Values offered by the dashboard filters (labels from the registered directory). ``structure``:
    the structures that have usage rows, by name."""
    structures = resolver.structure_labels(_structures_with_usage())
    return {
        "department": sorted(resolver.department_labels().items()),
        "category": sorted(resolver.category_labels().items(), key=lambda kv: kv[1]),
        "college": [(str(k), v) for k, v in sorted(resolver.college_labels().items())],
        "structure": sorted(((str(k), v) for k, v in structures.items()), key=lambda kv: kv[1]),
    }


def latest_rollup_day() -> dt.date | None:
    """The most recent day with rolled-up data (for "data as of" notices)."""
    return UsageDaily.objects.aggregate(d=Max("day"))["d"]
