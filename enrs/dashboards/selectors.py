"""Reads of the dashboards: which pages and charts exist, and one chart's figures (usage or RPU)."""

from __future__ import annotations

from dataclasses import dataclass

from . import rpu_figures
from .catalog import PAGES, page_get
from .figures import Figure, Filters, figure_build, selector_memo


@dataclass(frozen=True, slots=True)
class ChartRef:
    page: str
    key: str
    title: str


@dataclass(frozen=True, slots=True)
class PageRef:
    slug: str
    title: str
    description: str
    charts: tuple[ChartRef, ...]


RPU_TITLES = {
    "passages": "Passages aux urgences",
    "profil": "Profil des passages",
    "gravite": "Gravité à l'arrivée (CCMU)",
    "par-service": "Par service d'urgence",
    "par-etablissement": "Par établissement",
    "completude": "Complétude des items du RPU",
}


def dashboard_pages() -> list[PageRef]:
    """Every dashboard page and its charts (the RPU page only when the RPU app is installed)."""
    pages = [
        PageRef(
            slug=p.slug,
            title=p.title,
            description=p.description,
            charts=tuple(ChartRef(p.slug, c.key, c.title) for c in p.charts),
        )
        for p in PAGES
    ]
    if rpu_figures.available():
        pages.append(
            PageRef(
                slug=rpu_figures.PAGE,
                title="Urgences (RPU)",
                description="Passages aux urgences d'après les résumés de passage (RPU).",
                charts=tuple(ChartRef(rpu_figures.PAGE, key, RPU_TITLES[key]) for key in rpu_figures.CHARTS),
            )
        )
    return pages


def figure_for(slug: str, chart: str, filters: Filters) -> Figure | None:
    """One chart's figures, or None when the page or the chart does not exist."""
    if slug == rpu_figures.PAGE:
        if not rpu_figures.available() or chart not in rpu_figures.CHARTS:
            return None
        return rpu_figures.figures(filters, only=chart)[0]
    spec = page_get(slug)
    chart_spec = spec.chart(chart) if spec else None
    if spec is None or chart_spec is None:
        return None
    with selector_memo():
        return figure_build(spec, chart_spec, filters)
