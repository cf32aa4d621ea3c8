"""Figures built from the rollups: series, breakdowns, shares, targets and the gap sentence."""

from __future__ import annotations

import datetime as dt

import pytest

from enrs.dashboards.catalog import page_get
from enrs.dashboards.figures import Cell, Figure, Filters, figure_build, format_value, period_days, protect
from enrs.usage.services import target_set
from tests.factories import UserFactory

from .conftest import UsageData

FILTERS = Filters(start=dt.date(2026, 1, 1), end=dt.date(2026, 3, 31), granularity="month")


def _figure(slug: str, key: str, filters: Filters = FILTERS) -> Figure:
    page = page_get(slug)
    assert page is not None
    chart = page.chart(key)
    assert chart is not None
    return figure_build(page, chart, filters)


def test_series_per_month_matches_the_events(usage_data: UsageData) -> None:
    figure = _figure("messagerie", "envois")
    assert [row.key for row in figure.rows] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    assert [row.cells[0].value for row in figure.rows] == [20, 19, 8]
    assert figure.chart_data()["datasets"][0]["data"] == [20, 19, 8]
    assert figure.targets == []


def test_department_filter_and_small_cell(usage_data: UsageData) -> None:
    finistere = Filters(start=FILTERS.start, end=FILTERS.end, granularity="month", department="29")
    figure = _figure("messagerie", "envois", finistere)
    february = figure.rows[1].cells[0]
    assert february.suppressed
    assert february.value is None
    assert february.text == "< 5"
    # The chart gets a gap, never the hidden number.
    assert figure.chart_data()["datasets"][0]["data"] == [0, None, 0]
    breakdown = _figure("messagerie", "par-departement")
    by_key = {row.key: row.cells[0] for row in breakdown.rows}
    assert by_key["35"].value == usage_data.sent_35
    assert by_key["29"].suppressed
    assert by_key["29"].text == "< 5"
    # Complementary suppression: the total (47) minus the visible cells must not give the Finistère's 3.
    assert by_key["56"].secondary
    assert by_key["56"].text == "s"
    assert by_key["56"].value is None
    assert [row.label for row in breakdown.rows] == ["Ille-et-Vilaine", "Morbihan", "Finistère"]


def test_breakdown_by_dimension(usage_data: UsageData) -> None:
    figure = _figure("dmp", "par-type")
    by_key = {row.key: row.cells[0] for row in figure.rows}
    assert by_key["11488-4"].value == 12
    assert by_key["34133-9"].suppressed
    assert by_key["11506-3"].text == "s"


def test_sign_in_methods_shares_exclude_small_cells(usage_data: UsageData) -> None:
    figure = _figure("connexions", "methodes")
    rows = {row.key: row.cells for row in figure.rows}
    assert rows["auth.sign_ins_cps"][0].value == 12
    assert rows["auth.sign_ins_password"][0].value == 14  # 20 password sign-ins, 6 of them upgraded by OTP
    assert rows["auth.sign_ins_psc"][0].suppressed
    assert rows["auth.sign_ins_psc"][1].suppressed
    # OTP (6), the smallest other count, is hidden too; shares are computed on the visible counts.
    assert rows["auth.sign_ins_otp"][0].text == "s"
    assert rows["auth.sign_ins_otp"][1].text == "s"
    assert rows["auth.sign_ins_cps"][1].value == pytest.approx(100 * 12 / 26)
    assert figure.chart_data()["datasets"][0]["label"] == "Part (%)"


def test_target_line_and_gap(usage_data: UsageData) -> None:
    admin = UserFactory(admin=True)
    target_set(indicator="messagerie.messages_sent", year=2026, value=365.0, actor=admin)
    figure = _figure("messagerie", "envois")
    assert len(figure.targets) == 1
    gap = figure.targets[0]
    # A cumulated indicator: the yearly target is prorated to the 90 days of the period.
    assert gap.expected == pytest.approx(90.0)
    assert gap.achieved.value == 47
    assert gap.gap == pytest.approx(-43.0)
    assert "objectif 2026 : 365" in gap.text
    assert "écart : \u221243" in gap.text
    datasets = figure.chart_data()["datasets"]
    assert [d["target"] for d in datasets] == [False, True]
    assert datasets[1]["data"] == [31, 28, 31]  # one a day


def test_summary_shows_each_service_against_its_target(usage_data: UsageData) -> None:
    admin = UserFactory(admin=True)
    target_set(indicator="dmp.documents_submitted", year=2026, value=73.0, actor=admin)
    figure = _figure("synthese", "objectifs")
    rows = {row.key: row.cells for row in figure.rows}
    dmp = rows["dmp.documents_submitted"]
    assert dmp[0].value == 21
    assert dmp[1].value == 73
    assert dmp[2].value == pytest.approx(73 * 90 / 365)
    assert dmp[4].value == pytest.approx(100 * 21 / (73 * 90 / 365))
    assert rows["messagerie.messages_sent"][1].text == "—"  # no target: achieved only


def test_unknown_breakdown_is_unavailable_not_an_error(usage_data: UsageData) -> None:
    from enrs.dashboards.catalog import ChartSpec, Mode, PageSpec

    page = PageSpec("essai", "Essai", "", ())
    chart = ChartSpec("x", "X", ("messagerie.messages_sent",), Mode.BREAKDOWN, by="inexistant")
    assert figure_build(page, chart, FILTERS).available is False
    assert figure_build(page, ChartSpec("y", "Y", ("inconnu.code",)), FILTERS).available is False


def test_complementary_suppression() -> None:
    one_small = [Cell(36), Cell(None, True), Cell(8), Cell(0)]
    protected = protect(one_small)
    assert [c.text for c in protected] == ["36", "< 5", "s", "0"]
    # Two small cells, or none: nothing more to hide; a non-additive figure (ratio) is left alone.
    assert protect([Cell(36), Cell(None, True), Cell(None, True)]) == [
        Cell(36),
        Cell(None, True),
        Cell(None, True),
    ]
    assert protect(one_small, additive=False) == one_small
    # Only zeros besides the small cell: the total is that small value, suppressed where it is shown.
    assert protect([Cell(0), Cell(None, True)]) == [Cell(0), Cell(None, True)]


def test_formats_and_partial_periods() -> None:
    assert format_value(1234567, "nombre").replace("\u202f", " ").replace("\xa0", " ") == "1 234 567"
    assert format_value(72.46, "%") == "72,5 %"
    assert format_value(2_500_000, "octets") == "2,5 Mo"
    week = Filters(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 31), granularity="week")
    assert period_days(dt.date(2025, 12, 29), "week", week) == 4  # Thu 1 to Sun 4 January
    assert period_days(dt.date(2026, 1, 26), "week", week) == 6
