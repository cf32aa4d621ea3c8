"""The telemedicine JSON API: my acts, one act with its trace, an act's state and transfers.

Nominative health data: ``CLINICAL_ACCESS`` (strong authentication, never ARS analysts). The list
carries no patient identity; the detail reads the act through ``selectors.act_get_for`` (only its readers;
the read audited ``telemedecine.act.read``, a refusal audited ``access.denied`` and answered 404).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import CLINICAL_ACCESS, HasRole
from enrs.core.pagination import page_of

from .. import selectors
from ..models import Transfer
from .serializers import ActDetailSerializer, ActStatusSerializer, ActSummarySerializer

TAGS = ["telemedecine"]
PAGE_SIZE = 50
Clinician = HasRole.for_rule(CLINICAL_ACCESS)


def _page_number(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("page", "1")), 10_000))
    except ValueError:
        return 1


def _link(request: Request, page: int | None) -> str | None:
    if page is None:
        return None
    params = request.query_params.copy()
    params["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


ActPage = inline_serializer(
    "TelemedecineActPage",
    {
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": ActSummarySerializer(many=True),
    },
)


class ActListView(APIView):
    permission_classes = [Clinician]

    @extend_schema(
        tags=TAGS,
        summary="Mes actes de télémédecine",
        operation_id="telemedecine_acts_list",
        description=(
            "Les actes que je peux lire (mes demandes, celles qui me sont adressées ou à mes équipes de "
            "garde, celles où je participe), du plus récent au plus ancien, sans l'identité du patient "
            "(lire l'acte pour la voir). Filtre `status` facultatif. Authentification forte exigée. "
            f"Pages de {PAGE_SIZE} : suivre `next`."
        ),
        parameters=[
            OpenApiParameter("status", str, OpenApiParameter.QUERY, required=False, description="État."),
            OpenApiParameter("page", int, OpenApiParameter.QUERY, required=False, description="Page (1…)."),
        ],
        responses={200: ActPage},
    )
    def get(self, request: Request) -> Response:
        acts = (
            selectors.acts_readable_by(request.user)
            .select_related("requester_structure", "pool")
            .order_by("-created_at", "-pk")
        )
        status = request.query_params.get("status")
        if status:
            acts = acts.filter(status=status)
        rows, pagination = page_of(acts, page=_page_number(request), size=PAGE_SIZE)
        body: dict[str, Any] = {
            "next": _link(request, pagination["next_page"] if pagination["has_next"] else None),
            "previous": _link(request, pagination["previous_page"] if pagination["has_previous"] else None),
            "results": ActSummarySerializer(rows, many=True, context={"request": request}).data,
        }
        return Response(body)


class ActDetailView(APIView):
    permission_classes = [Clinician]

    @extend_schema(
        tags=TAGS,
        summary="Un acte de télémédecine et sa trace",
        operation_id="telemedecine_act_detail",
        description=(
            "L'acte avec le patient, le consentement, les participants, les dates et heures, le compte "
            "rendu, les prescriptions, les incidents, les compléments et l'historique (art. R.6316-4 du "
            "CSP). Chaque lecture est tracée ; un acte dont vous n'êtes pas partie répond 404."
        ),
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="Identifiant de l'acte.")],
        responses={200: ActDetailSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        act = selectors.act_get_for(request.user, pk, request)
        return Response(ActDetailSerializer(act, context={"request": request}).data)


class ActStatusView(APIView):
    permission_classes = [Clinician]

    @extend_schema(
        tags=TAGS,
        summary="État d'un acte et progression de ses transferts d'images",
        operation_id="telemedecine_act_status",
        description="L'état de l'acte et, pour chaque transfert d'examen, les images acceptées par le PACS.",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="Identifiant de l'acte.")],
        responses={200: ActStatusSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        act = selectors.act_get_for_update(request.user, pk)
        transfers = Transfer.objects.filter(act=act).select_related("peer").order_by("-created_at", "-pk")
        body = {
            "id": act.pk,
            "status": act.status,
            "status_label": act.get_status_display(),
            "updated_at": act.updated_at,
            "transfers": list(transfers),
        }
        return Response(ActStatusSerializer(body).data)
