"""From a chart of the catalog and the filters to the figures: one table (rows by columns of cells), from
which the chart, the HTML table, the CSV / XLSX exports and the API are all drawn — so they always show the
same numbers, and a small cell is "< 5" everywhere.

The only read API used is `enrs.usage.selectors` (aggregates over rollup tables, small cells already
suppressed there: value None, suppressed True). Nothing here reads raw events or any nominative table.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.utils.formats import number_format

from enrs.usage import selectors as usage_selectors
from enrs.usage.indicators import Indicator, get_indicator
from enrs.usage.models import Target
from enrs.usage.selectors import Point, Row

from .catalog import BREAKDOWN_LABELS, ChartSpec, Mode, PageSpec

SUPPRESSED_TEXT = "< 5"
SECONDARY_TEXT = "s"
MISSING_TEXT = "—"
GRANULARITIES = {"day": "Jour", "week": "Semaine", "month": "Mois"}
# Breakdown key -> the filter parameter a row selects (drill-down links).
DRILL = {"department": "departement", "category": "categorie", "college": "college"}
# Aggregations whose yearly target is a cumulated number (the expected value grows with the days).
CUMULATIVE = frozenset({"count", "sum"})


# --- Per-request memo of selector calls ---------------------------------------------------------------------
# A page draws several charts from the same figures (the overview's target summary and its series both read
# each indicator's total and target): within one `selector_memo()` block, an identical selector call is
# answered from the first one. Nothing outlives the block (no cache across requests).
_MEMO: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("dashboards_selector_memo", default=None)
_T = TypeVar("_T")


@contextmanager
def selector_memo() -> Iterator[None]:
    """Within the block, identical selector calls run once (one page or one API request)."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def _memo(fn: Callable[..., _T], code: str, **kwargs: Any) -> _T:
    memo = _MEMO.get()
    if memo is None:
        return fn(code, **kwargs)
    key = (fn.__name__, code, tuple(sorted(kwargs.items())))
    if key not in memo:
        memo[key] = fn(code, **kwargs)
    result: _T = memo[key]
    return result


def indicator_series(code: str, **kwargs: Any) -> list[Point]:
    return _memo(usage_selectors.indicator_series, code, **kwargs)


def indicator_total(code: str, **kwargs: Any) -> Point:
    return _memo(usage_selectors.indicator_total, code, **kwargs)


def indicator_breakdown(code: str, **kwargs: Any) -> list[Row]:
    return _memo(usage_selectors.indicator_breakdown, code, **kwargs)


def targets_for(code: str, year: int, department: str | None = None) -> Target | None:
    return _memo(usage_selectors.targets_for, code, year=year, department=department)


@dataclass(frozen=True, slots=True)
class Filters:
    start: date
    end: date
    granularity: str = "week"
    department: str | None = None
    category: str | None = None
    college: int | None = None
    structure_id: int | None = None

    def scope(self) -> dict[str, Any]:
        """The keyword arguments every selector takes."""
        return {
            "department": self.department,
            "category": self.category,
            "college": self.college,
            "structure_id": self.structure_id,
        }

    @property
    def year(self) -> int:
        """The year whose targets are drawn: the year of the end of the period."""
        return self.end.year


@dataclass(frozen=True, slots=True)
class Cell:
    value: float | None
    suppressed: bool = False
    unit: str = ""
    # Hidden although not small: so that a "< 5" cell cannot be worked out by difference with the total.
    secondary: bool = False

    @property
    def text(self) -> str:
        if self.secondary:
            return SECONDARY_TEXT
        if self.suppressed:
            return SUPPRESSED_TEXT
        if self.value is None:
            return MISSING_TEXT
        return format_value(self.value, self.unit)

    @property
    def export_value(self) -> float | int | str:
        """What a spreadsheet cell holds: the number, or the text when there is none."""
        if self.suppressed or self.value is None:
            return self.text
        return _round(self.value)


@dataclass(frozen=True, slots=True)
class FigureRow:
    key: str
    label: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class TargetGap:
    """One indicator against its yearly target, with the sentence that says the gap."""

    indicator: str
    label: str
    year: int
    department: str
    target: float
    achieved: Cell
    expected: float  # the target, or for a cumulated indicator its share for the days of the period
    unit: str

    @property
    def gap(self) -> float | None:
        if self.achieved.suppressed or self.achieved.value is None:
            return None
        return self.achieved.value - self.expected

    @property
    def ratio(self) -> float | None:
        """Achieved in percent of the expected value (None when it cannot be said)."""
        if self.gap is None or not self.expected:
            return None
        assert self.achieved.value is not None
        return 100.0 * self.achieved.value / self.expected

    @property
    def text(self) -> str:
        where = f" ({self.department})" if self.department else ""
        parts = [f"{self.label} — objectif {self.year}{where} : {format_value(self.target, self.unit)}"]
        if self.expected != self.target:
            parts.append(f"attendu sur la période : {format_value(self.expected, self.unit)}")
        parts.append(f"réalisé : {self.achieved.text}")
        gap = self.gap
        if gap is None:
            parts.append("écart non calculable")
        else:
            sign = "+" if gap >= 0 else "\u2212"  # minus sign
            unit = " points" if self.unit == "%" else ""
            magnitude = format_value(abs(gap), "" if self.unit == "%" else self.unit)
            gap_text = f"écart : {sign}{magnitude}{unit}"
            if self.ratio is not None:
                gap_text += f", soit {format_value(self.ratio, '%')} de l'attendu"
            parts.append(gap_text)
        return " ; ".join(parts) + "."


@dataclass(slots=True)
class Figure:
    page: str
    key: str
    title: str
    description: str
    chart_type: str
    unit: str
    columns: list[str]
    rows: list[FigureRow] = field(default_factory=list)
    # Which cell columns are drawn (index in `cells`) and which of them are target lines.
    plotted: list[int] = field(default_factory=list)
    target_columns: set[int] = field(default_factory=set)
    targets: list[TargetGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    available: bool = True
    # Filter parameter a row's key selects (drill-down: a department row opens the page for it).
    drill: str = ""

    @property
    def json_id(self) -> str:
        return f"donnees-{self.page}-{self.key}"

    @property
    def has_suppressed(self) -> bool:
        return any(cell.suppressed for row in self.rows for cell in row.cells)

    def chart_data(self) -> dict[str, Any]:
        """What the page's script draws (passed with json_script): labels, datasets, unit."""
        datasets = []
        for index in self.plotted:
            datasets.append(
                {
                    "label": self.columns[index + 1],
                    "data": [plot_value(row.cells[index]) for row in self.rows],
                    "target": index in self.target_columns,
                }
            )
        return {
            "type": self.chart_type,
            "title": self.title,
            "unit": self.unit,
            "labels": [row.label for row in self.rows],
            "datasets": datasets,
        }


def protect(cells: list[Cell], *, additive: bool = True) -> list[Cell]:
    """Complementary suppression of one column of an additive figure (counts, sums) whose total is shown
    elsewhere: when exactly one cell is "< 5", the smallest other non-zero cell is hidden too ("s"), so
    that the small value cannot be recovered as total minus the visible cells."""
    if not additive or sum(1 for c in cells if c.suppressed) != 1:
        return cells
    candidates = [(c.value, i) for i, c in enumerate(cells) if not c.suppressed and c.value]
    if not candidates:
        return cells  # every other cell is 0: the total is the small value itself, suppressed as well
    _value, index = min(candidates)
    protected = list(cells)
    protected[index] = Cell(None, True, cells[index].unit, secondary=True)
    return protected


def plot_value(cell: Cell) -> float | None:
    if cell.suppressed or cell.value is None:
        return None
    return _round(cell.value)


def _round(value: float) -> float | int:
    if float(value).is_integer():
        return int(value)
    return round(value, 2)


def format_value(value: float, unit: str = "") -> str:
    """French display of a figure: thousands separated, at most one or two decimals, the unit after."""
    number = _round(value)
    decimals = 0 if isinstance(number, int) else (1 if unit == "%" else 2)
    # number_format truncates: round first.
    text = number_format(round(value, decimals), decimal_pos=decimals, use_l10n=True, force_grouping=True)
    if unit == "%":
        return f"{text} %"
    if unit == "secondes":
        return f"{text} s"
    if unit == "octets":
        return _bytes(value)
    return text


def _bytes(value: float) -> str:
    for factor, suffix in ((1e12, "To"), (1e9, "Go"), (1e6, "Mo"), (1e3, "ko")):
        if abs(value) >= factor:
            return f"{number_format(round(value / factor, 1), decimal_pos=1, use_l10n=True)} {suffix}"
    return f"{int(value)} o"


def period_label(period: date, granularity: str) -> str:
    if granularity == "month":
        return f"{period:%m/%Y}"
    if granularity == "week":
        iso = period.isocalendar()
        return f"S{iso.week:02d} {iso.year} (sem. du {period:%d/%m})"
    return f"{period:%d/%m/%Y}"


def period_days(period: date, granularity: str, filters: Filters) -> int:
    """How many days of the chosen period fall in one bucket (the first and last ones may be partial)."""
    if granularity == "month":
        last = period.replace(day=calendar.monthrange(period.year, period.month)[1])
    elif granularity == "week":
        last = period + timedelta(days=6)
    else:
        last = period
    first, last = max(period, filters.start), min(last, filters.end)
    return max((last - first).days + 1, 0)


def _days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def _indicator(code: str) -> Indicator | None:
    try:
        return get_indicator(code)
    except (KeyError, LookupError, ValidationError):
        return None


def target_gap(indicator: Indicator, filters: Filters) -> TargetGap | None:
    """The indicator against its target of the year of the period (department target when filtered on one)."""
    target = targets_for(indicator.code, filters.year, department=filters.department)
    if target is None:
        return None
    start = max(filters.start, date(filters.year, 1, 1))
    total = indicator_total(indicator.code, start=start, end=filters.end, **filters.scope())
    expected = float(target.value)
    if indicator.aggregation in CUMULATIVE:
        expected = expected * ((filters.end - start).days + 1) / _days_in_year(filters.year)
    return TargetGap(
        indicator=indicator.code,
        label=indicator.label,
        year=filters.year,
        department=filters.department or "",
        target=float(target.value),
        achieved=Cell(total.value, total.suppressed, indicator.unit),
        expected=expected,
        unit=indicator.unit,
    )


def _series(page: PageSpec, chart: ChartSpec, indicators: list[Indicator], filters: Filters) -> Figure:
    unit = indicators[0].unit if len({i.unit for i in indicators}) == 1 else ""
    figure = Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit=unit,
        columns=[GRANULARITIES.get(filters.granularity, "Période")],
    )
    columns: list[list[Cell]] = []
    periods: list[date] = []
    for indicator in indicators:
        points: list[Point] = indicator_series(
            indicator.code,
            start=filters.start,
            end=filters.end,
            granularity=filters.granularity,
            **filters.scope(),
        )
        periods = [p.period for p in points]
        figure.columns.append(indicator.label)
        figure.plotted.append(len(columns))
        additive = indicator.aggregation in CUMULATIVE
        columns.append(
            protect([Cell(p.value, p.suppressed, indicator.unit) for p in points], additive=additive)
        )
        gap = target_gap(indicator, filters)
        if gap is None:
            continue
        figure.targets.append(gap)
        # The target line: the yearly target itself, or its share for the days of each bucket.
        figure.columns.append(f"Objectif {gap.year} — {indicator.label}")
        figure.target_columns.add(len(columns))
        figure.plotted.append(len(columns))
        line = []
        for period in periods:
            value = gap.target
            if indicator.aggregation in CUMULATIVE:
                value = value * period_days(period, filters.granularity, filters) / _days_in_year(period.year)
            line.append(Cell(value if period.year == gap.year else None, False, indicator.unit))
        columns.append(line)
    for index, period in enumerate(periods):
        figure.rows.append(
            FigureRow(
                key=period.isoformat(),
                label=period_label(period, filters.granularity),
                cells=tuple(column[index] for column in columns),
            )
        )
    if any(i.aggregation in CUMULATIVE for i in indicators) and figure.target_columns:
        figure.notes.append(
            "Pour un cumul, la ligne d'objectif est l'objectif annuel ramené à chaque période "
            "(au prorata des jours)."
        )
    return figure


def _breakdown(
    page: PageSpec, chart: ChartSpec, indicator: Indicator, filters: Filters, *, share: bool
) -> Figure:
    allowed = dict(getattr(indicator, "breakdowns", ()) or ())
    allowed.update(BREAKDOWN_LABELS)
    key_label = allowed.get(chart.by, chart.by)
    rows = indicator_breakdown(
        indicator.code, start=filters.start, end=filters.end, by=chart.by, **filters.scope()
    )
    figure = Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit="%" if share else indicator.unit,
        columns=[key_label, indicator.label],
        plotted=[0],
        drill=DRILL.get(chart.by, ""),
    )
    cells = protect(
        [Cell(r.value, r.suppressed, indicator.unit) for r in rows],
        additive=indicator.aggregation in CUMULATIVE,
    )
    if share:
        _add_shares(figure, [(r.key, r.label, cell) for r, cell in zip(rows, cells, strict=True)])
    else:
        figure.rows = [
            FigureRow(key=r.key, label=r.label, cells=(cell,)) for r, cell in zip(rows, cells, strict=True)
        ]
    return figure


def _matrix(page: PageSpec, chart: ChartSpec, indicators: list[Indicator], filters: Filters) -> Figure:
    """Several indicators side by side per key (department…): one breakdown query each."""
    figure = Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit=indicators[0].unit if len({i.unit for i in indicators}) == 1 else "",
        columns=[BREAKDOWN_LABELS.get(chart.by, chart.by)],
        drill=DRILL.get(chart.by, ""),
    )
    labels: dict[str, str] = {}
    values: dict[str, dict[str, Cell]] = {}
    for indicator in indicators:
        figure.columns.append(indicator.label)
        figure.plotted.append(len(figure.plotted))
        for row in indicator_breakdown(
            indicator.code, start=filters.start, end=filters.end, by=chart.by, **filters.scope()
        ):
            labels.setdefault(row.key, row.label)
            values.setdefault(row.key, {})[indicator.code] = Cell(row.value, row.suppressed, indicator.unit)
    keys = sorted(labels, key=lambda k: (k == "", labels[k]))
    columns = [
        protect(
            [values[k].get(i.code, Cell(0.0, False, i.unit)) for k in keys],
            additive=i.aggregation in CUMULATIVE,
        )
        for i in indicators
    ]
    for index, key in enumerate(keys):
        figure.rows.append(FigureRow(key=key, label=labels[key], cells=tuple(c[index] for c in columns)))
    return figure


def _add_shares(figure: Figure, counts: list[tuple[str, str, Cell]]) -> None:
    """Rows of (count, share of the visible total): a small cell stays "< 5" in both columns, and the shares
    are computed on the visible counts only, so that no hidden count can be worked out from them."""
    figure.columns.append("Part (%)")
    figure.plotted = [1]
    visible = sum(c.value for _k, _l, c in counts if c.value is not None and not c.suppressed)
    for key, label, count in counts:
        if count.suppressed:
            share = Cell(None, True, "%", secondary=count.secondary)
        else:
            share = Cell(
                100.0 * count.value / visible if count.value is not None and visible else None, False, "%"
            )
        figure.rows.append(FigureRow(key=key, label=label, cells=(count, share)))
    figure.notes.append("Les parts sont calculées sur les effectifs affichés (hors cellules « < 5 »).")


def _composition(page: PageSpec, chart: ChartSpec, indicators: list[Indicator], filters: Filters) -> Figure:
    figure = Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit="%",
        columns=["Catégorie", "Nombre"],
    )
    totals = [
        (i, indicator_total(i.code, start=filters.start, end=filters.end, **filters.scope()))
        for i in indicators
    ]
    cells = protect([Cell(t.value, t.suppressed, i.unit) for i, t in totals])
    _add_shares(figure, [(i.code, i.label, cell) for (i, _t), cell in zip(totals, cells, strict=True)])
    return figure


def _summary(page: PageSpec, chart: ChartSpec, indicators: list[Indicator], filters: Filters) -> Figure:
    figure = Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit="%",
        columns=[
            "Indicateur",
            "Réalisé sur la période",
            f"Objectif {filters.year}",
            "Attendu sur la période",
            "Écart",
            "Atteinte de l'attendu (%)",
        ],
        plotted=[4],
    )
    for indicator in indicators:
        gap = target_gap(indicator, filters)
        if gap is None:
            total = indicator_total(indicator.code, start=filters.start, end=filters.end, **filters.scope())
            achieved = Cell(total.value, total.suppressed, indicator.unit)
            cells = (achieved, Cell(None), Cell(None), Cell(None), Cell(None, False, "%"))
        else:
            figure.targets.append(gap)
            cells = (
                gap.achieved,
                Cell(gap.target, False, indicator.unit),
                Cell(gap.expected, False, indicator.unit),
                Cell(gap.gap, gap.achieved.suppressed, indicator.unit),
                Cell(gap.ratio, gap.achieved.suppressed, "%"),
            )
        figure.rows.append(FigureRow(key=indicator.code, label=indicator.label, cells=cells))
    # The 100 % line: where each service should be at the end of the period.
    figure.columns.append("Objectif (100 %)")
    figure.target_columns.add(5)
    figure.plotted.append(5)
    figure.rows = [
        FigureRow(key=r.key, label=r.label, cells=(*r.cells, Cell(100.0, False, "%"))) for r in figure.rows
    ]
    figure.notes.append(
        "Sans objectif saisi pour l'année, seul le réalisé est donné. Pour un cumul, l'attendu est "
        "l'objectif annuel au prorata des jours de la période."
    )
    return figure


def figure_build(page: PageSpec, chart: ChartSpec, filters: Filters) -> Figure:
    """The figures of one chart for the filters (indicators unknown to the registry are left out)."""
    indicators = [i for i in (_indicator(code) for code in chart.indicators) if i is not None]
    if indicators:
        try:
            if chart.mode is Mode.SUMMARY:
                return _summary(page, chart, indicators, filters)
            if chart.mode is Mode.COMPOSITION:
                return _composition(page, chart, indicators, filters)
            if chart.mode is Mode.MATRIX:
                return _matrix(page, chart, indicators, filters)
            if chart.mode in (Mode.BREAKDOWN, Mode.SHARE):
                return _breakdown(page, chart, indicators[0], filters, share=chart.mode is Mode.SHARE)
            return _series(page, chart, indicators, filters)
        except ValidationError:
            pass  # e.g. a breakdown the indicator does not offer: shown as unavailable, not as an error page
    return Figure(
        page=page.slug,
        key=chart.key,
        title=chart.title,
        description=chart.description,
        chart_type=chart.chart_type,
        unit="",
        columns=[],
        available=False,
        notes=["Indicateur indisponible : le service qui le produit n'est pas encore en place."],
    )
