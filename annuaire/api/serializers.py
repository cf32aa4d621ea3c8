"""Serializers of the directory's JSON API: search parameters, pages, professionals and structures.

Codes travel with their labels (``{"code": "10", "label": "Médecin"}``), as in the Annuaire Santé
extractions; field names are English, values are the directory's own (French labels, national codes).

The serializers of the search results write their dict directly (`to_representation`): DRF's field by
field path cost ~10 ms for a page of 20 professionals with their exercices, several times the search
itself. The declared fields stay, for the OpenAPI schema and for the detail views (DRF's own path); the
tests compare both outputs, so that they cannot drift apart.
"""

from collections.abc import Mapping
from functools import cache
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from enrs.core import geo

from ..models import Commune, Exercice, MailboxAddress, Professional, Structure, StructureKind
from ..selectors.search import DEFAULT_LIMIT, MAX_LIMIT, MAX_RESULTS
from ..standards.nomenclatures import nomenclatures

# --- Search parameters ---------------------------------------------------------------------------------


def _profession_codes() -> list[str]:
    return sorted(nomenclatures().professions)


def _specialty_codes() -> list[str]:
    return sorted({code for table in nomenclatures().specialties.values() for code in table})


def _sector_codes() -> list[str]:
    return sorted(nomenclatures().sectors)


def _department_codes() -> list[str]:
    return sorted(geo.DEPARTMENTS)


class _SearchParams(serializers.Serializer):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        default="",
        help_text="Nom, prénom, identifiant (RPPS, IdNat_PS, ADELI, FINESS, SIREN, SIRET, adresse "
        "MSSanté), commune, profession ou spécialité. Accents et majuscules facultatifs, fautes de frappe "
        "tolérées.",
    )
    department = serializers.ChoiceField(
        choices=[], required=False, help_text="Code INSEE du département (35, 2A, 971…)."
    )
    sector = serializers.ChoiceField(
        choices=[], required=False, help_text="Secteur d'activité de la structure (TRE_R02, ex. SA01)."
    )
    limit = serializers.IntegerField(
        required=False,
        default=DEFAULT_LIMIT,
        min_value=1,
        max_value=MAX_LIMIT,
        help_text="Taille de la page.",
    )
    offset = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        help_text=f"Rang du premier résultat (les {MAX_RESULTS} premiers seulement sont consultables).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = _department_codes()  # type: ignore[attr-defined]
        self.fields["sector"].choices = _sector_codes()  # type: ignore[attr-defined]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["offset"] + attrs["limit"] > MAX_RESULTS:
            raise serializers.ValidationError(
                {"offset": f"Les résultats s'arrêtent au {MAX_RESULTS}e : précisez la recherche."}
            )
        return attrs


class ProfessionalSearchParamsSerializer(_SearchParams):
    profession = serializers.ChoiceField(
        choices=[], required=False, help_text="Code profession (TRE_G15, ex. 10 pour Médecin)."
    )
    specialty = serializers.ChoiceField(
        choices=[], required=False, help_text="Code savoir-faire (ex. SM04 pour Cardiologie)."
    )
    structure = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Identifiant d'une structure : ses professionnels (une entité juridique inclut ses sites).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["profession"].choices = _profession_codes()  # type: ignore[attr-defined]
        self.fields["specialty"].choices = _specialty_codes()  # type: ignore[attr-defined]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        profession, specialty = attrs.get("profession"), attrs.get("specialty")
        if profession and specialty and specialty not in nomenclatures().specialties.get(profession, {}):
            raise serializers.ValidationError(
                {"specialty": "Cette spécialité n'est pas une spécialité de la profession demandée."}
            )
        return attrs


class StructureSearchParamsSerializer(_SearchParams):
    kind = serializers.ChoiceField(
        choices=StructureKind.choices,
        required=False,
        help_text="EJ (entité juridique) ou ET (établissement, entité géographique).",
    )


# --- Pieces ----------------------------------------------------------------------------------------------


class CodeLabelSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label


def _code_label(code: str, label: str) -> dict[str, str] | None:
    return {"code": code, "label": label} if code else None


class InterpretationSerializer(serializers.Serializer):
    identifier = serializers.CharField(help_text="Type d'identifiant reconnu, ou vide.")
    professions = serializers.ListField(child=serializers.CharField())
    specialties = serializers.ListField(child=serializers.CharField())
    communes = serializers.ListField(child=serializers.CharField())
    name = serializers.CharField(help_text="Les mots cherchés comme nom quand un filtre a été reconnu.")


class CommuneSerializer(serializers.ModelSerializer[Commune]):
    department = serializers.SerializerMethodField()

    class Meta:
        model = Commune
        fields = ["insee_code", "name", "postal_code", "department"]

    @extend_schema_field(CodeLabelSerializer)
    def get_department(self, commune: Commune) -> dict[str, str]:
        return {"code": commune.department.code, "label": commune.department.name}

    def to_representation(self, commune: Commune) -> dict[str, Any]:
        return _commune(commune)


def _commune(commune: Commune) -> dict[str, Any]:
    return {
        "insee_code": commune.insee_code,
        "name": commune.name,
        "postal_code": commune.postal_code,
        "department": {"code": commune.department.code, "label": commune.department.name},
    }


def _structure_summary(context: Mapping[str, Any], structure: Structure) -> dict[str, Any]:
    return {
        "id": structure.pk,
        "url": _absolute(context, "annuaire-api:structure-detail", structure.pk),
        "kind": structure.kind,
        "name": structure.name,
        "finess_et": structure.finess_et,
        "finess_ej": structure.finess_ej,
        "siret": structure.siret,
        "commune": None if structure.commune is None else _commune(structure.commune),
        "is_active": structure.is_active,
    }


def _exercice(context: Mapping[str, Any], exercice: Exercice) -> dict[str, Any]:
    return {
        "role": _code_label(exercice.role_code, nomenclatures().roles.get(exercice.role_code, "")),
        "mode": _code_label(exercice.exercise_mode, exercice.get_exercise_mode_display()),
        "structure": _structure_summary(context, exercice.structure),
    }


class StructureSummarySerializer(serializers.ModelSerializer[Structure]):
    url = serializers.SerializerMethodField()
    commune = CommuneSerializer(allow_null=True)

    class Meta:
        model = Structure
        fields = ["id", "url", "kind", "name", "finess_et", "finess_ej", "siret", "commune", "is_active"]

    def get_url(self, structure: Structure) -> str:
        return _absolute(self.context, "annuaire-api:structure-detail", structure.pk)

    def to_representation(self, structure: Structure) -> dict[str, Any]:
        return _structure_summary(self.context, structure)


class MailboxSerializer(serializers.ModelSerializer[MailboxAddress]):
    # Plain text in the schema: « kind » already names the structures' EJ/ET enum there.
    kind = serializers.CharField(help_text="Type de boîte (TRE_R257) : PER, ORG ou APP.")

    class Meta:
        model = MailboxAddress
        fields = ["address", "kind"]


class ExerciceSerializer(serializers.ModelSerializer[Exercice]):
    role = serializers.SerializerMethodField()
    mode = serializers.SerializerMethodField()
    structure = StructureSummarySerializer()

    class Meta:
        model = Exercice
        fields = ["role", "mode", "structure"]

    @extend_schema_field(CodeLabelSerializer)
    def get_role(self, exercice: Exercice) -> dict[str, str] | None:
        return _code_label(exercice.role_code, nomenclatures().roles.get(exercice.role_code, ""))

    @extend_schema_field(CodeLabelSerializer)
    def get_mode(self, exercice: Exercice) -> dict[str, str] | None:
        return _code_label(exercice.exercise_mode, exercice.get_exercise_mode_display())

    def to_representation(self, exercice: Exercice) -> dict[str, Any]:
        return _exercice(self.context, exercice)


@cache
def _path_template(name: str) -> str:
    """The path of a detail view with ``{}`` for the id (one reverse() per process, not per object)."""
    marker = 987654321
    return reverse(name, args=[marker]).replace(str(marker), "{}")


def _absolute(context: Mapping[str, Any], name: str, pk: int) -> str:
    path = _path_template(name).format(pk)
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


# --- Professionals ---------------------------------------------------------------------------------------


class ProfessionalSerializer(serializers.ModelSerializer[Professional]):
    """A professional in a list: identity, profession, and where they work (main exercice first)."""

    url = serializers.SerializerMethodField()
    profession = serializers.SerializerMethodField()
    specialty = serializers.SerializerMethodField()
    exercices = ExerciceSerializer(many=True)

    class Meta:
        model = Professional
        fields = [
            "id",
            "url",
            "idnat_ps",
            "rpps",
            "adeli",
            "civility_code",
            "last_name",
            "first_name",
            "profession",
            "specialty",
            "is_active",
            "exercices",
        ]

    def get_url(self, professional: Professional) -> str:
        return _absolute(self.context, "annuaire-api:professional-detail", professional.pk)

    @extend_schema_field(CodeLabelSerializer)
    def get_profession(self, professional: Professional) -> dict[str, str] | None:
        return _code_label(professional.profession_code, professional.profession_label)

    @extend_schema_field(CodeLabelSerializer(allow_null=True))
    def get_specialty(self, professional: Professional) -> dict[str, str] | None:
        return _code_label(professional.specialty_code, professional.specialty_label)

    def to_representation(self, professional: Professional) -> dict[str, Any]:
        context = self.context
        return {
            "id": professional.pk,
            "url": self.get_url(professional),
            "idnat_ps": professional.idnat_ps,
            "rpps": professional.rpps,
            "adeli": professional.adeli,
            "civility_code": professional.civility_code,
            "last_name": professional.last_name,
            "first_name": professional.first_name,
            "profession": self.get_profession(professional),
            "specialty": self.get_specialty(professional),
            "is_active": professional.is_active,
            "exercices": [_exercice(context, e) for e in professional.exercices.all()],
        }


class ProfessionalDetailSerializer(ProfessionalSerializer):
    mailboxes = MailboxSerializer(many=True)

    class Meta(ProfessionalSerializer.Meta):
        fields = [*ProfessionalSerializer.Meta.fields, "rpps_key_valid", "mailboxes", "updated_at"]

    # One object: DRF's own path, field by field.
    to_representation = serializers.ModelSerializer.to_representation  # type: ignore[assignment]


class _PageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="Page suivante, ou null.")
    previous = serializers.URLField(allow_null=True, help_text="Page précédente, ou null.")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    interpretation = InterpretationSerializer()


class ProfessionalPageSerializer(_PageSerializer):
    results = ProfessionalSerializer(many=True)


# --- Structures ------------------------------------------------------------------------------------------


class StructureSerializer(serializers.ModelSerializer[Structure]):
    url = serializers.SerializerMethodField()
    category = serializers.SerializerMethodField()
    sector = serializers.SerializerMethodField()
    commune = CommuneSerializer(allow_null=True)

    class Meta:
        model = Structure
        fields = [
            "id",
            "url",
            "kind",
            "name",
            "finess_et",
            "finess_ej",
            "siren",
            "siret",
            "category",
            "sector",
            "commune",
            "is_active",
        ]

    def get_url(self, structure: Structure) -> str:
        return _absolute(self.context, "annuaire-api:structure-detail", structure.pk)

    @extend_schema_field(CodeLabelSerializer(allow_null=True))
    def get_category(self, structure: Structure) -> dict[str, str] | None:
        return _code_label(structure.category_code, structure.category_label)

    @extend_schema_field(CodeLabelSerializer(allow_null=True))
    def get_sector(self, structure: Structure) -> dict[str, str] | None:
        return _code_label(structure.sector_code, structure.sector_label)

    def to_representation(self, structure: Structure) -> dict[str, Any]:
        return {
            "id": structure.pk,
            "url": self.get_url(structure),
            "kind": structure.kind,
            "name": structure.name,
            "finess_et": structure.finess_et,
            "finess_ej": structure.finess_ej,
            "siren": structure.siren,
            "siret": structure.siret,
            "category": self.get_category(structure),
            "sector": self.get_sector(structure),
            "commune": None if structure.commune is None else _commune(structure.commune),
            "is_active": structure.is_active,
        }


class StructureDetailSerializer(StructureSerializer):
    legal_entity = StructureSummarySerializer(allow_null=True)
    sites = StructureSummarySerializer(many=True)
    mailboxes = MailboxSerializer(many=True, help_text="Boîtes organisationnelles et applicatives.")
    professionals_url = serializers.SerializerMethodField(
        help_text="Ses professionnels : la recherche filtrée sur cette structure (paginée)."
    )

    class Meta(StructureSerializer.Meta):
        fields = [
            *StructureSerializer.Meta.fields,
            "address_line",
            "postal_code",
            "latitude",
            "longitude",
            "legal_entity",
            "sites",
            "mailboxes",
            "professionals_url",
            "updated_at",
        ]

    # One object: DRF's own path, field by field.
    to_representation = serializers.ModelSerializer.to_representation  # type: ignore[assignment]

    def get_professionals_url(self, structure: Structure) -> str:
        path = f"{reverse('annuaire-api:professional-list')}?structure={structure.pk}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class StructurePageSerializer(_PageSerializer):
    results = StructureSerializer(many=True)
