"""Reads of the RPU app: feed status of each emergency department, and the RPU indicators.

Every figure goes through the small-cell rule: a count of 1 to 4, or a share computed from 1 to 4
passages (numerator or denominator), is returned as `suppressed=True` with `value=None` (shown "< 5").
These selectors are the API the dashboards use; they never return a passage, only aggregates.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from .models import (
    EmergencyDepartment,
    FeedCheck,
    FeedState,
    FileStatus,
    RpuFile,
    RpuPassage,
    RpuRejection,
)

SMALL_CELL = 5
USUAL_VOLUME_DAYS = 28
# Items whose absence makes a day "incomplete" (key items of the supervision), with their French label.
KEY_ITEMS: dict[str, str] = {
    "dp": "Diagnostic principal",
    "exit": "Date et heure de sortie",
    "gravite": "CCMU",
    "mode_sortie": "Mode de sortie",
}
# Completeness of every item of the format: item → (French label, "filled" condition).
ITEM_FILLED: dict[str, tuple[str, Q]] = {
    "cp": ("Code postal", ~Q(postal_code="")),
    "commune": ("Commune", ~Q(commune="")),
    "naissance": ("Date de naissance", Q(age_years__isnull=False)),
    "sexe": ("Sexe", Q(sex__in=["M", "F"])),
    "mode_entree": ("Mode d'entrée", ~Q(mode_entree="")),
    "provenance": ("Provenance", ~Q(provenance="")),
    "transport": ("Mode de transport", ~Q(transport="")),
    "transport_pec": ("Prise en charge pendant le transport", ~Q(transport_pec="")),
    "motif": ("Motif de recours", Q(motif_filled=True)),
    "gravite": ("CCMU", ~Q(gravite="")),
    "dp": ("Diagnostic principal", ~Q(dp="")),
    "sortie": ("Date et heure de sortie", Q(exit_at__isnull=False)),
    "mode_sortie": ("Mode de sortie", ~Q(mode_sortie="")),
    "destination": ("Destination", ~Q(destination="")),
    "orientation": ("Orientation", ~Q(orientation="")),
}
_KEY_ITEM_FILTERS: dict[str, Q] = {
    "dp": ~Q(dp=""),
    "exit": Q(exit_at__isnull=False),
    "gravite": ~Q(gravite=""),
    "mode_sortie": ~Q(mode_sortie=""),
}


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


# --- small cells --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure: `value` (a count, or a percentage 0-100 with one decimal), None when suppressed or
    when there is nothing to divide by."""

    value: float | int | None
    suppressed: bool = False
    numerator: int | None = field(default=None, repr=False, compare=False)
    denominator: int | None = field(default=None, repr=False, compare=False)

    @property
    def display(self) -> str:
        if self.suppressed:
            return "< 5"
        if self.value is None:
            return "—"
        if isinstance(self.value, float):
            return f"{self.value:.1f}".replace(".", ",")
        return f"{self.value:,}".replace(",", "\u202f")


def count_cell(count: int) -> Cell:
    if 0 < count < SMALL_CELL:
        return Cell(value=None, suppressed=True)
    return Cell(value=count, numerator=count)


def share_cell(numerator: int, denominator: int) -> Cell:
    """Percentage numerator/denominator, suppressed when either is 1 to 4 passages."""
    if denominator == 0:
        return Cell(value=None)
    if 0 < denominator < SMALL_CELL or 0 < numerator < SMALL_CELL:
        return Cell(value=None, suppressed=True)
    return Cell(value=round(100.0 * numerator / denominator, 1), numerator=numerator, denominator=denominator)


# --- emergency departments and files ------------------------------------------------------------------


def emergency_department_list(*, active_only: bool = True) -> QuerySet[EmergencyDepartment]:
    queryset = EmergencyDepartment.objects.all()
    if active_only:
        queryset = queryset.filter(active=True)
    return queryset.order_by("department", "name")


def establishment_choices() -> list[tuple[str, str]]:
    """(establishment key, label) of the establishments that have an emergency department."""
    seen: dict[str, str] = {}
    for ed in emergency_department_list(active_only=False):
        seen.setdefault(ed.establishment_key, ed.establishment_label)
    return sorted(seen.items(), key=lambda item: item[1])


def rpu_file_list(*, emergency_department_id: int | None = None) -> QuerySet[RpuFile]:
    queryset = RpuFile.objects.select_related("emergency_department", "uploaded_by")
    if emergency_department_id is not None:
        queryset = queryset.filter(emergency_department_id=emergency_department_id)
    return queryset.order_by("-received_at", "-pk")


def rpu_file_get(*, pk: int) -> RpuFile:
    return RpuFile.objects.select_related("emergency_department", "uploaded_by").get(pk=pk)


def rpu_rejection_list(*, file: RpuFile) -> QuerySet[RpuRejection]:
    return file.rejections.order_by("record_index")


# --- feed supervision ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """How one department's feed looks for one day."""

    emergency_department_id: int
    name: str
    finess: str
    establishment: str
    department: str
    day: date
    state: FeedState
    problems: tuple[str, ...]
    passages: int
    usual: int | None
    first_received_at: datetime | None

    @property
    def state_label(self) -> str:
        return str(self.state.label)


def deadline_for(day: date) -> datetime:
    """When the file covering `day` is due: the next day at RPU_DEADLINE_HOUR, local time."""
    hour = int(getattr(settings, "RPU_DEADLINE_HOUR", 4))
    return datetime.combine(day + timedelta(days=1), time(hour=hour), tzinfo=_zone())


def _usual_volume(ed: EmergencyDepartment, day: date) -> int | None:
    if ed.expected_daily:
        return ed.expected_daily
    counts = list(
        RpuPassage.objects.filter(
            emergency_department=ed,
            entry_day__gte=day - timedelta(days=USUAL_VOLUME_DAYS),
            entry_day__lt=day,
        )
        .values("entry_day")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    if not counts:
        return None
    return int(statistics.median(counts))


def _fmt_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def feed_status_for(ed: EmergencyDepartment, *, day: date) -> FeedStatus:
    """Missing, late or incomplete: the state of `ed`'s feed for `day`, with French reasons."""
    first_received = RpuFile.objects.filter(
        emergency_department=ed,
        status__in=[FileStatus.IMPORTED, FileStatus.REPLACED],
        period_start__lte=day,
        period_end__gte=day,
    ).aggregate(first=Min("received_at"))["first"]
    aggregates = RpuPassage.objects.filter(emergency_department=ed, entry_day=day).aggregate(
        total=Count("id"),
        **{key: Count("id", filter=condition) for key, condition in _KEY_ITEM_FILTERS.items()},
    )
    passages = int(aggregates["total"])
    usual = _usual_volume(ed, day)
    problems: list[str] = []
    states: list[FeedState] = []
    if first_received is None:
        states.append(FeedState.MISSING)
        problems.append(f"Aucun fichier reçu pour le {_fmt_day(day)}.")
    else:
        if first_received > deadline_for(day):
            states.append(FeedState.LATE)
            local = timezone.localtime(first_received, _zone())
            problems.append(
                f"Fichier reçu le {local:%d/%m/%Y à %H:%M}, après l'heure limite "
                f"({int(getattr(settings, 'RPU_DEADLINE_HOUR', 4))} h)."
            )
        ratio = float(getattr(settings, "RPU_INCOMPLETE_RATIO", 0.5))
        if usual and passages < ratio * usual:
            states.append(FeedState.INCOMPLETE)
            problems.append(f"{passages} passage(s) reçu(s) pour un volume habituel de {usual} par jour.")
        minimum = float(getattr(settings, "RPU_MIN_COMPLETENESS", 0.8))
        if passages:
            for key, label in KEY_ITEMS.items():
                share = aggregates[key] / passages
                if share < minimum:
                    if FeedState.INCOMPLETE not in states:
                        states.append(FeedState.INCOMPLETE)
                    problems.append(
                        f"{label} renseigné(e) pour {round(100 * share)} % des passages seulement."
                    )
    state = states[0] if states else FeedState.OK
    return FeedStatus(
        emergency_department_id=ed.pk,
        name=ed.name,
        finess=ed.finess,
        establishment=ed.establishment_label,
        department=ed.department,
        day=day,
        state=state,
        problems=tuple(problems),
        passages=passages,
        usual=usual,
        first_received_at=first_received,
    )


def rpu_feed_status(*, day: date) -> list[FeedStatus]:
    """Live feed status of every active emergency department for `day` (problems first)."""
    rows = [feed_status_for(ed, day=day) for ed in emergency_department_list()]
    order = {FeedState.MISSING: 0, FeedState.LATE: 1, FeedState.INCOMPLETE: 2, FeedState.OK: 3}
    return sorted(rows, key=lambda row: (order[row.state], row.department, row.name))


def feed_check_list(*, day: date) -> QuerySet[FeedCheck]:
    """The recorded morning checks of `day` (with their notification state)."""
    return FeedCheck.objects.filter(day=day).select_related("emergency_department")


def yesterday(*, now: datetime | None = None) -> date:
    return timezone.localtime(now or timezone.now(), _zone()).date() - timedelta(days=1)


# --- indicators ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RpuIndicators:
    visits: Cell
    visits_per_day: Cell
    under_1: Cell
    under_18: Cell
    over_75: Cell
    ccmu: dict[str, Cell]
    stays_under_4h: Cell
    admission_rate: Cell
    arrival_smur: Cell
    arrival_ambulance: Cell
    completeness: dict[str, Cell]


@dataclass(frozen=True, slots=True)
class Point:
    period: date
    value: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    label: str
    value: float | int | None
    suppressed: bool


CCMU_GROUPS: dict[str, tuple[str, list[str]]] = {
    "1": ("CCMU 1", ["1"]),
    "2": ("CCMU 2", ["2"]),
    "3": ("CCMU 3", ["3"]),
    "45": ("CCMU 4-5", ["4", "5"]),
    "P": ("CCMU P", ["P"]),
    "D": ("CCMU D", ["D"]),
}
INDICATOR_LABELS: dict[str, str] = {
    "visits": "Passages",
    "under_1": "Moins de 1 an (%)",
    "under_18": "Moins de 18 ans (%)",
    "over_75": "75 ans et plus (%)",
    "stays_under_4h": "Séjours de moins de 4 h (%)",
    "admission_rate": "Hospitalisation après le passage (%)",
    "arrival_smur": "Arrivées par SMUR (%)",
    "arrival_ambulance": "Arrivées en ambulance (%)",
}
IndicatorCode = Literal[
    "visits",
    "under_1",
    "under_18",
    "over_75",
    "stays_under_4h",
    "admission_rate",
    "arrival_smur",
    "arrival_ambulance",
]
BreakdownBy = Literal["emergency_department", "establishment", "department"]


def _passages(
    *,
    start: date,
    end: date,
    emergency_department_id: int | None = None,
    establishment: str | None = None,
    department: str | None = None,
) -> QuerySet[RpuPassage]:
    queryset = RpuPassage.objects.filter(entry_day__gte=start, entry_day__lte=end)
    if emergency_department_id is not None:
        queryset = queryset.filter(emergency_department_id=emergency_department_id)
    if establishment:
        queryset = queryset.filter(
            Q(emergency_department__establishment_finess=establishment)
            | Q(emergency_department__establishment_finess="", emergency_department__finess=establishment)
        )
    if department:
        queryset = queryset.filter(emergency_department__department=department)
    return queryset


def _aggregates() -> dict[str, Any]:
    four_hours = 4 * 60
    aggregates: dict[str, Any] = {
        "total": Count("id"),
        "age_known": Count("id", filter=Q(age_years__isnull=False)),
        "under_1": Count("id", filter=Q(age_years__lt=1)),
        "under_18": Count("id", filter=Q(age_years__lt=18)),
        "over_75": Count("id", filter=Q(age_years__gte=75)),
        "ccmu_known": Count("id", filter=~Q(gravite="")),
        "length_known": Count("id", filter=Q(length_minutes__isnull=False)),
        "under_4h": Count("id", filter=Q(length_minutes__lt=four_hours)),
        "exit_known": Count("id", filter=~Q(mode_sortie="")),
        "admitted": Count("id", filter=Q(mode_sortie__in=["6", "7"])),
        "transport_known": Count("id", filter=~Q(transport="")),
        "smur": Count("id", filter=Q(transport="SMUR")),
        "ambulance": Count("id", filter=Q(transport="AMBU")),
    }
    for key, (_label, codes) in CCMU_GROUPS.items():
        aggregates[f"ccmu_{key}"] = Count("id", filter=Q(gravite__in=codes))
    for key, (_label, condition) in ITEM_FILLED.items():
        aggregates[f"filled_{key}"] = Count("id", filter=condition)
    return aggregates


def _indicators_from(values: dict[str, int], days: int) -> RpuIndicators:
    total = values["total"]
    visits = count_cell(total)
    if visits.suppressed or total == 0:
        per_day = Cell(value=None, suppressed=visits.suppressed)
    else:
        per_day = Cell(value=round(total / max(days, 1), 1))
    return RpuIndicators(
        visits=visits,
        visits_per_day=per_day,
        under_1=share_cell(values["under_1"], values["age_known"]),
        under_18=share_cell(values["under_18"], values["age_known"]),
        over_75=share_cell(values["over_75"], values["age_known"]),
        ccmu={key: share_cell(values[f"ccmu_{key}"], values["ccmu_known"]) for key in CCMU_GROUPS},
        stays_under_4h=share_cell(values["under_4h"], values["length_known"]),
        admission_rate=share_cell(values["admitted"], values["exit_known"]),
        arrival_smur=share_cell(values["smur"], values["transport_known"]),
        arrival_ambulance=share_cell(values["ambulance"], values["transport_known"]),
        completeness={key: share_cell(values[f"filled_{key}"], total) for key in ITEM_FILLED},
    )


def rpu_indicators(
    *,
    start: date,
    end: date,
    emergency_department_id: int | None = None,
    establishment: str | None = None,
    department: str | None = None,
) -> RpuIndicators:
    """Every RPU indicator over [start, end] (entry days, inclusive), for one ED, one establishment
    (FINESS juridique), one geographic department, or the whole region. One query."""
    values = _passages(
        start=start,
        end=end,
        emergency_department_id=emergency_department_id,
        establishment=establishment,
        department=department,
    ).aggregate(**_aggregates())
    return _indicators_from(values, (end - start).days + 1)


def rpu_visits_series(
    *,
    start: date,
    end: date,
    granularity: Literal["day", "week", "month"] = "day",
    emergency_department_id: int | None = None,
    establishment: str | None = None,
    department: str | None = None,
) -> list[Point]:
    """Number of passages per day / week (Monday) / month (1st), every period present (0 when none)."""
    queryset = _passages(
        start=start,
        end=end,
        emergency_department_id=emergency_department_id,
        establishment=establishment,
        department=department,
    )
    counts: dict[date, int] = {}
    if granularity == "day":
        for day, n in queryset.values("entry_day").annotate(n=Count("id")).values_list("entry_day", "n"):
            counts[day] = n
    else:
        trunc = TruncWeek("entry_day") if granularity == "week" else TruncMonth("entry_day")
        for row in queryset.annotate(period=trunc).values("period").annotate(n=Count("id")):
            counts[_as_date(row["period"])] = int(row["n"])
    points: list[Point] = []
    for period in _periods(start, end, granularity):
        cell = count_cell(int(counts.get(period, 0)))
        points.append(
            Point(
                period=period,
                value=cell.value if cell.value is None else int(cell.value),
                suppressed=cell.suppressed,
            )
        )
    return points


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _periods(start: date, end: date, granularity: str) -> list[date]:
    periods: list[date] = []
    if granularity == "day":
        current = start
        while current <= end:
            periods.append(current)
            current += timedelta(days=1)
    elif granularity == "week":
        current = start - timedelta(days=start.weekday())
        while current <= end:
            periods.append(current)
            current += timedelta(days=7)
    else:
        current = start.replace(day=1)
        while current <= end:
            periods.append(current)
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return periods


def rpu_breakdown(
    *,
    start: date,
    end: date,
    by: BreakdownBy = "emergency_department",
    indicator: IndicatorCode = "visits",
    department: str | None = None,
) -> list[Row]:
    """One indicator per emergency department, establishment or geographic department. Two queries."""
    if indicator not in INDICATOR_LABELS:
        raise ValueError(indicator)
    group_field = {
        "emergency_department": "emergency_department_id",
        "establishment": "emergency_department__establishment_finess",
        "department": "emergency_department__department",
    }[by]
    eds = list(emergency_department_list(active_only=False))
    queryset = _passages(start=start, end=end, department=department)
    if by == "establishment":
        # An ED without FINESS juridique stands for its own establishment (its FINESS géographique).
        groups = queryset.values(group_field, "emergency_department__finess").annotate(**_aggregates())
        merged: dict[str, dict[str, int]] = {}
        for row in groups:
            key = row[group_field] or row["emergency_department__finess"]
            bucket = merged.setdefault(key, {})
            for name, value in row.items():
                if isinstance(value, int) and not name.startswith("emergency_department"):
                    bucket[name] = bucket.get(name, 0) + value
        labels = {ed.establishment_key: ed.establishment_label for ed in eds}
        grouped = merged
    else:
        rows = queryset.values(group_field).annotate(**_aggregates())
        grouped = {str(row[group_field]): row for row in rows}
        if by == "emergency_department":
            labels = {str(ed.pk): ed.name for ed in eds}
        else:
            labels = {ed.department: ed.department for ed in eds}
    result: list[Row] = []
    days = (end - start).days + 1
    for key, values in grouped.items():
        cell = getattr(_indicators_from(values, days), indicator)
        result.append(Row(key=key, label=labels.get(key, key), value=cell.value, suppressed=cell.suppressed))
    return sorted(result, key=lambda row: row.label)
