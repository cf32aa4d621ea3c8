"""``/api/tableaux-de-bord/``: the dashboards' figures as JSON, for the ARS's own tools (aggregates only)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import DASHBOARDS_ACCESS, HasRole

from ..figures import Cell, Figure, Filters, plot_value
from ..forms import FilterForm, query_error
from ..selectors import dashboard_pages, figure_for
from .serializers import DashboardErrorSerializer, DashboardFigureSerializer, DashboardPageSerializer

FILTER_PARAMETERS = [
    OpenApiParameter(
        "debut", OpenApiTypes.DATE, description="Début de la période (inclus). Défaut : 1er janvier."
    ),
    OpenApiParameter(
        "fin", OpenApiTypes.DATE, description="Fin de la période (incluse). Défaut : aujourd'hui."
    ),
    OpenApiParameter("pas", OpenApiTypes.STR, enum=["day", "week", "month"], description="Pas de temps."),
    OpenApiParameter(
        "departement", OpenApiTypes.STR, description="Code INSEE du département (« 35 », « 2A »)."
    ),
    OpenApiParameter("categorie", OpenApiTypes.STR, description="Catégorie de structure (code FINESS)."),
    OpenApiParameter("college", OpenApiTypes.INT, description="Collège du GCS."),
    OpenApiParameter("membre", OpenApiTypes.INT, description="Identifiant de la structure membre."),
]


def _cell(cell: Cell) -> dict[str, Any]:
    return {"valeur": plot_value(cell), "masque": cell.suppressed, "texte": cell.text}


def figure_payload(figure: Figure, filters: Filters) -> dict[str, Any]:
    return {
        "tableau": figure.page,
        "graphique": figure.key,
        "titre": figure.title,
        "unite": figure.unit,
        "filtres": {
            "debut": filters.start.isoformat(),
            "fin": filters.end.isoformat(),
            "pas": filters.granularity,
            "departement": filters.department,
            "categorie": filters.category,
            "college": filters.college,
            "membre": filters.structure_id,
        },
        "colonnes": figure.columns,
        "lignes": [
            {"cle": row.key, "libelle": row.label, "cellules": [_cell(c) for c in row.cells]}
            for row in figure.rows
        ],
        "objectifs": [
            {
                "indicateur": gap.indicator,
                "annee": gap.year,
                "departement": gap.department,
                "objectif": round(gap.target, 2),
                "attendu": round(gap.expected, 2),
                "realise": _cell(gap.achieved),
                "ecart": None if gap.gap is None else round(gap.gap, 2),
                "texte": gap.text,
            }
            for gap in figure.targets
        ],
        "notes": figure.notes,
    }


class PageListView(APIView):
    """The dashboards and their charts, with each chart's figures URL."""

    permission_classes = [HasRole.for_rule(DASHBOARDS_ACCESS)]
    access_rule = DASHBOARDS_ACCESS

    @extend_schema(
        responses={200: DashboardPageSerializer(many=True)},
        summary="Liste des tableaux de bord",
        description="Les tableaux de bord et leurs graphiques, avec l'adresse des chiffres de chacun. "
        "Réservé aux analystes ARS, à l'équipe du GCS et aux administrateurs ; données agrégées uniquement.",
    )
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "tableau": page.slug,
                    "titre": page.title,
                    "description": page.description,
                    "graphiques": [
                        {
                            "graphique": chart.key,
                            "titre": chart.title,
                            "url": request.build_absolute_uri(
                                reverse("dashboards-api:figure", args=[chart.page, chart.key])
                            ),
                        }
                        for chart in page.charts
                    ],
                }
                for page in dashboard_pages()
            ]
        )


class FigureView(APIView):
    """One chart's figures for the filters: the same table as the page and its exports (« < 5 » masked)."""

    permission_classes = [HasRole.for_rule(DASHBOARDS_ACCESS)]
    access_rule = DASHBOARDS_ACCESS

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={
            200: DashboardFigureSerializer,
            400: DashboardErrorSerializer,
            404: DashboardErrorSerializer,
        },
        summary="Chiffres d'un graphique",
        description="Les chiffres d'un graphique pour les filtres donnés : le même tableau que la page et "
        "ses exports. Une valeur calculée sur moins de 5 actes ou événements est masquée "
        "(« masque » vrai, « valeur » nulle, « texte » « < 5 ») ; « s » : masquée pour qu'elle ne se déduise "
        "pas par différence. Les objectifs de l'année et l'écart au réalisé sont joints.",
    )
    def get(self, request: Request, page: str, chart: str) -> Response:
        form = FilterForm(request.query_params or {})
        if not form.is_valid():
            return Response(
                {"erreur": f"Filtres invalides : {query_error(form)}"}, status=status.HTTP_400_BAD_REQUEST
            )
        filters = form.filters()
        figure = figure_for(page, chart, filters)
        if figure is None:
            return Response({"erreur": "Graphique inconnu."}, status=status.HTTP_404_NOT_FOUND)
        if not figure.available:
            return Response({"erreur": "Indicateur indisponible."}, status=status.HTTP_404_NOT_FOUND)
        return Response(figure_payload(figure, filters))
