"""The "Urgences (RPU)" page: figures from `enrs.rpu.selectors` (aggregates with the small-cell rule
already applied there), in the same `Figure` shape as the usage charts, so tables, charts and exports work
the same way. When the RPU app is not installed, the page is simply not offered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.apps import apps

from .figures import GRANULARITIES, Cell, Figure, FigureRow, Filters, period_label, protect

PAGE = "urgences"
SUPERVISION_URL_NAME = "rpu:supervision"
SHARE_KEYS = (
    "under_1",
    "under_18",
    "over_75",
    "stays_under_4h",
    "admission_rate",
    "arrival_smur",
    "arrival_ambulance",
)
CHARTS = ("passages", "profil", "gravite", "par-service", "par-etablissement", "completude")


def available() -> bool:
    return apps.is_installed("enrs.rpu")


def _selectors() -> Any:
    from enrs.rpu import selectors

    return selectors


def _cell(cell: Any, unit: str = "") -> Cell:
    return Cell(None if cell.suppressed else cell.value, bool(cell.suppressed), unit)


def _figure(
    key: str,
    title: str,
    columns: list[str],
    *,
    chart_type: str = "bar",
    unit: str = "%",
    description: str = "",
) -> Figure:
    return Figure(
        page=PAGE,
        key=key,
        title=title,
        description=description,
        chart_type=chart_type,
        unit=unit,
        columns=columns,
        plotted=[0],
    )


def _passages(rpu: Any, filters: Filters) -> Figure:
    figure = _figure(
        "passages",
        "Passages aux urgences",
        [GRANULARITIES.get(filters.granularity, "Période"), "Passages"],
        chart_type="line",
        unit="nombre",
    )
    points = rpu.rpu_visits_series(
        start=filters.start, end=filters.end, granularity=filters.granularity, department=filters.department
    )
    cells = protect([Cell(p.value, p.suppressed, "nombre") for p in points])
    for point, cell in zip(points, cells, strict=True):
        figure.rows.append(
            FigureRow(
                key=point.period.isoformat(),
                label=period_label(point.period, filters.granularity),
                cells=(cell,),
            )
        )
    return figure


def _profile(rpu: Any, indicators: Any) -> Figure:
    figure = _figure(
        "profil",
        "Profil des passages",
        ["Indicateur", "Part des passages (%)"],
        description="Parts calculées sur les passages où l'item est renseigné.",
    )
    for key in SHARE_KEYS:
        figure.rows.append(
            FigureRow(key=key, label=rpu.INDICATOR_LABELS[key], cells=(_cell(getattr(indicators, key), "%"),))
        )
    return figure


def _severity(rpu: Any, indicators: Any) -> Figure:
    figure = _figure(
        "gravite",
        "Gravité à l'arrivée (CCMU)",
        ["Classe CCMU", "Part des passages (%)"],
        description="Répartition des passages dont la CCMU est renseignée.",
    )
    for key, (label, _codes) in rpu.CCMU_GROUPS.items():
        figure.rows.append(FigureRow(key=key, label=label, cells=(_cell(indicators.ccmu[key], "%"),)))
    return figure


def _completeness(rpu: Any, indicators: Any) -> Figure:
    figure = _figure(
        "completude",
        "Complétude des items du RPU",
        ["Item", "Renseigné (%)"],
        description="Part des passages où chaque item du format est renseigné.",
    )
    for key, (label, _condition) in rpu.ITEM_FILLED.items():
        figure.rows.append(FigureRow(key=key, label=label, cells=(_cell(indicators.completeness[key], "%"),)))
    return figure


def _by(rpu: Any, filters: Filters, *, key: str, by: str, title: str, first: str) -> Figure:
    """Passages, share of stays under 4 h and admission rate per emergency department / establishment."""
    measures = (("visits", "nombre"), ("stays_under_4h", "%"), ("admission_rate", "%"))
    figure = _figure(key, title, [first] + [rpu.INDICATOR_LABELS[m] for m, _ in measures], unit="nombre")
    table: dict[str, dict[str, Cell]] = {}
    labels: dict[str, str] = {}
    for measure, unit in measures:
        for row in rpu.rpu_breakdown(
            start=filters.start, end=filters.end, by=by, indicator=measure, department=filters.department
        ):
            labels[row.key] = row.label
            table.setdefault(row.key, {})[measure] = Cell(row.value, row.suppressed, unit)
    keys = sorted(labels, key=lambda k: labels[k])
    visits = protect([table[k].get("visits", Cell(0, False, "nombre")) for k in keys])
    for index, row_key in enumerate(keys):
        rest = tuple(table[row_key].get(m, Cell(None, False, u)) for m, u in measures[1:])
        figure.rows.append(FigureRow(key=row_key, label=labels[row_key], cells=(visits[index], *rest)))
    return figure


@dataclass(frozen=True, slots=True)
class FeedProblem:
    name: str
    establishment: str
    department: str
    state: str


@dataclass(frozen=True, slots=True)
class FeedSummary:
    day: date
    checked: int  # departments checked that morning (0: the morning check has not run yet)
    problems: list[FeedProblem]


def feed_summary(*, department: str | None = None) -> FeedSummary:
    """Yesterday's recorded morning check: the emergency departments whose file is missing, late or
    incomplete (name and state only: the counts of the check stay on the supervision page). One query."""
    rpu = _selectors()
    day = rpu.yesterday()
    checks = list(rpu.feed_check_list(day=day))
    if department:
        checks = [c for c in checks if c.emergency_department.department == department]
    problems = [
        FeedProblem(
            name=c.emergency_department.name,
            establishment=c.emergency_department.establishment_label,
            department=c.emergency_department.department,
            state=c.get_state_display(),
        )
        for c in checks
        if c.state != "ok"
    ]
    return FeedSummary(day=day, checked=len(checks), problems=problems)


def figures(filters: Filters, *, only: str | None = None) -> list[Figure]:
    """The page's figures for the filters (`only`: the one chart an export asks for). Department filter
    applies; the other filters (category, collège, member) do not exist for RPU figures."""
    rpu = _selectors()
    result: list[Figure] = []
    wanted = (only,) if only else CHARTS
    indicators = None
    if {"profil", "gravite", "completude"} & set(wanted):
        indicators = rpu.rpu_indicators(start=filters.start, end=filters.end, department=filters.department)
    for key in wanted:
        if key == "passages":
            result.append(_passages(rpu, filters))
        elif key == "profil":
            result.append(_profile(rpu, indicators))
        elif key == "gravite":
            result.append(_severity(rpu, indicators))
        elif key == "completude":
            result.append(_completeness(rpu, indicators))
        elif key == "par-service":
            result.append(
                _by(
                    rpu,
                    filters,
                    key=key,
                    by="emergency_department",
                    title="Par service d'urgence",
                    first="Service d'urgence",
                )
            )
        elif key == "par-etablissement":
            result.append(
                _by(
                    rpu,
                    filters,
                    key=key,
                    by="establishment",
                    title="Par établissement",
                    first="Établissement",
                )
            )
    return result
