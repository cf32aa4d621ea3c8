"""The directory's JSON API (the portal's own use): search and detail of professionals and structures.

Every signed-in role reads the directory (DIRECTORY_ACCESS). Lists are pages of the search selectors:
``limit``/``offset`` with ``next``/``previous`` links and no total count (see annuaire.selectors.search).
"""

from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.accounts.roles import DIRECTORY_ACCESS, HasRole

from ..models import Professional, Structure
from ..selectors.search import (
    SearchPage,
    professional_get,
    professional_search,
    structure_get,
    structure_search,
)
from .serializers import (
    InterpretationSerializer,
    ProfessionalDetailSerializer,
    ProfessionalPageSerializer,
    ProfessionalSearchParamsSerializer,
    ProfessionalSerializer,
    StructureDetailSerializer,
    StructurePageSerializer,
    StructureSearchParamsSerializer,
    StructureSerializer,
)

TAGS = ["annuaire"]
DirectoryReader = HasRole.for_rule(DIRECTORY_ACCESS)


def _link(request: Request, offset: int | None) -> str | None:
    if offset is None:
        return None
    params: QueryDict = request.query_params.copy()
    params["offset"] = str(offset)
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


def _page(request: Request, page: SearchPage[Any], results: Any) -> dict[str, Any]:
    reading = page.interpretation
    return {
        "next": _link(request, page.offset + page.limit if page.has_next else None),
        "previous": _link(request, max(page.offset - page.limit, 0) if page.has_previous else None),
        "offset": page.offset,
        "limit": page.limit,
        "interpretation": InterpretationSerializer(
            {
                "identifier": reading.identifier,
                "professions": list(reading.professions),
                "specialties": list(reading.specialties),
                "communes": list(reading.communes),
                "name": reading.name,
            }
        ).data,
        "results": results,
    }


class ProfessionalListView(APIView):
    permission_classes = [DirectoryReader]

    @extend_schema(
        tags=TAGS,
        summary="Rechercher des professionnels",
        operation_id="annuaire_professionals_search",
        description=(
            "Recherche dans l'annuaire : un texte libre (nom, prénom, RPPS, IdNat_PS, ADELI, FINESS ou SIRET "
            "d'une structure, adresse MSSanté, commune, profession, spécialité), insensible aux accents et "
            "à la casse, tolérant aux fautes de frappe, et des filtres. Les meilleurs résultats d'abord ; "
            "pas de total : suivre `next`."
        ),
        parameters=[ProfessionalSearchParamsSerializer],
        responses={200: ProfessionalPageSerializer},
    )
    def get(self, request: Request) -> Response:
        params = ProfessionalSearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        page = professional_search(
            query=data["q"],
            profession=data.get("profession"),
            specialty=data.get("specialty"),
            department=data.get("department"),
            structure=data.get("structure"),
            sector=data.get("sector"),
            limit=data["limit"],
            offset=data["offset"],
        )
        results = ProfessionalSerializer(page.results, many=True, context={"request": request}).data
        return Response(_page(request, page, results))


class ProfessionalDetailView(APIView):
    permission_classes = [DirectoryReader]

    @extend_schema(
        tags=TAGS,
        summary="Un professionnel",
        operation_id="annuaire_professional_get",
        description=(
            "Identité, identifiants, lieux d'exercice (structure, fonction, mode) et adresses MSSanté."
        ),
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="Identifiant ENRS.")],
        responses={200: ProfessionalDetailSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            professional = professional_get(pk=pk)
        except Professional.DoesNotExist:
            raise NotFound("Ce professionnel n'est pas dans l'annuaire.") from None
        return Response(ProfessionalDetailSerializer(professional, context={"request": request}).data)


class StructureListView(APIView):
    permission_classes = [DirectoryReader]

    @extend_schema(
        tags=TAGS,
        summary="Rechercher des structures",
        operation_id="annuaire_structures_search",
        description=(
            "Recherche de structures (FINESS EJ/ET, cabinets) : texte libre (mots du nom, FINESS, SIREN, "
            "SIRET, adresse MSSanté, commune), insensible aux accents et à la casse, tolérant aux fautes "
            "de frappe, et des filtres. Pas de total : suivre `next`."
        ),
        parameters=[StructureSearchParamsSerializer],
        responses={200: StructurePageSerializer},
    )
    def get(self, request: Request) -> Response:
        params = StructureSearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        page = structure_search(
            query=data["q"],
            department=data.get("department"),
            sector=data.get("sector"),
            kind=data.get("kind"),
            limit=data["limit"],
            offset=data["offset"],
        )
        results = StructureSerializer(page.results, many=True, context={"request": request}).data
        return Response(_page(request, page, results))


class StructureDetailView(APIView):
    permission_classes = [DirectoryReader]

    @extend_schema(
        tags=TAGS,
        summary="Une structure",
        operation_id="annuaire_structure_get",
        description=(
            "Identifiants, adresse et position (latitude/longitude), entité juridique et sites, "
            "boîtes MSSanté organisationnelles et applicatives, lien vers ses professionnels."
        ),
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="Identifiant ENRS.")],
        responses={200: StructureDetailSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            structure = structure_get(pk=pk)
        except Structure.DoesNotExist:
            raise NotFound("Cette structure n'est pas dans l'annuaire.") from None
        return Response(StructureDetailSerializer(structure, context={"request": request}).data)
