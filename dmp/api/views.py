"""The DMP's JSON API: the documents fed for a patient from the portal, with their status.

Nominative health data: `CLINICAL_ACCESS` (strong authentication, never ARS analysts); the patient is
read through `patient_get_audited`, so every call leaves a `patient.read` event (purpose ``dmp.api``).
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import CLINICAL_ACCESS, HasRole
from enrs.core.pagination import page_of
from enrs.patients.models import Patient
from enrs.patients.selectors import patient_get_audited

from .. import selectors
from .serializers import DmpDocumentPageSerializer, DmpDocumentSerializer

TAGS = ["dmp"]
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


class PatientDocumentListView(APIView):
    permission_classes = [Clinician]

    @extend_schema(
        tags=TAGS,
        summary="Documents d'un patient envoyés au DMP",
        operation_id="dmp_patient_documents_list",
        description=(
            "Les documents (toutes versions) déposés depuis le portail pour ce patient, du plus récent au "
            "plus ancien, avec leur état (brouillon, en file, envoyé, accepté, refusé avec son motif, "
            "visibilité mise à jour, remplacé) et leur visibilité. Les documents masqués aux professionnels "
            "ne sont listés que pour leur auteur. Authentification forte exigée ; chaque appel est tracé. "
            f"Pages de {PAGE_SIZE} : suivre `next`."
        ),
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="Identifiant ENRS du patient."),
            OpenApiParameter("page", int, OpenApiParameter.QUERY, required=False, description="Page (1…)."),
        ],
        responses={200: DmpDocumentPageSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            patient = patient_get_audited(pk=pk, request=request, purpose="dmp.api")
        except Patient.DoesNotExist:
            raise NotFound("Ce patient n'existe pas.") from None
        page = _page_number(request)
        rows, pagination = page_of(
            selectors.document_list_for_patient(patient=patient, user=request.user), page=page, size=PAGE_SIZE
        )
        body: dict[str, Any] = {
            "patient": patient.pk,
            "next": _link(request, pagination["next_page"] if pagination["has_next"] else None),
            "previous": _link(request, pagination["previous_page"] if pagination["has_previous"] else None),
            "results": DmpDocumentSerializer(rows, many=True).data,
        }
        return Response(body)
