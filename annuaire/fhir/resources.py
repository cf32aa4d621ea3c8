"""The directory on ``/fhir/``: Practitioner, PractitionerRole and Organization (read and search).

Registered in ``enrs.fhir.registry`` by ``AnnuaireConfig.ready()``. Each function loads rows with
their relations in a fixed number of queries (``select_related`` / ``prefetch_related``), turns them
into records and lets ``annuaire.fhir.mapping`` build the JSON.

Search semantics (on top of ``enrs.fhir.orm``):

* ``identifier`` (token): Practitioner — IdNat_PS (``urn:oid:1.2.250.1.71.4.2.1``), RPPS, ADELI;
  Organization — FINESS (the structure's own: FINESS EJ of a legal entity, FINESS ET of a site),
  IdNat_Struct (``1`` + FINESS, ``3`` + SIRET), SIREN / SIRET (``https://sirene.fr``). A bare value
  matches any of them; an unknown system matches nothing.
* ``name`` / ``family`` / ``given`` (string): starts with, case- and accent-insensitive;
  ``name`` looks at the family and given names (Practitioner) or the raison sociale (Organization).
* ``mailbox-mss`` (string): the whole address, case-insensitive (``:exact``: case-sensitive,
  ``:contains``: any part, e.g. ``@pro.mssante.fr``). Practitioner and PractitionerRole: the
  professional's PER boxes; Organization: its ORG and APP boxes.
* ``_lastUpdated``: ``updated_at`` of the professional / structure; for a PractitionerRole, the latest
  of its own creation and of the updates of its professional and structure (its content comes from
  them). A change of mailbox alone does not move it.
* ``active``, ``type`` (Organization: LEGAL-ENTITY / GEOGRAPHICAL-ENTITY, TRE_R02 sector, TRE_R66
  category), ``partof``, ``qualification-code`` (TRE_G15 profession, TRE_R09 category, TRE_R38
  savoir-faire), ``role`` (TRE_R21 fonction, TRE_R23 mode d'exercice), ``practitioner``,
  ``organization``.
* ``_include=PractitionerRole:practitioner|organization``, ``_include=Organization:partof``,
  ``_revinclude=PractitionerRole:organization`` on Organization and
  ``_revinclude=PractitionerRole:practitioner`` on Practitioner.
"""

from collections.abc import Sequence

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import Greatest

from annuaire.models import (
    Exercice,
    MailboxAddress,
    MailboxKind,
    Professional,
    Structure,
    StructureKind,
)
from annuaire.standards.nomenclatures import nomenclatures
from enrs.accounts.roles import DIRECTORY_ACCESS
from enrs.fhir import orm
from enrs.fhir.orm import NOTHING
from enrs.fhir.params import Token, parse_bool, parse_reference
from enrs.fhir.registry import (
    Inclusion,
    ParamValue,
    Registry,
    Resource,
    ResourceType,
    SearchPage,
    SearchParam,
    SearchQuery,
    id_param,
    last_updated_param,
)

from . import mapping
from .records import MailboxRecord, OrganizationRecord, PractitionerRecord, PractitionerRoleRecord

_FHIR = "http://hl7.org/fhir/SearchParameter"
_ANS = f"{mapping.AS_CANONICAL}/SearchParameter"
_STRING_MODIFIERS = frozenset({"exact", "contains"})
STRUCTURE_MAILBOX_KINDS = (MailboxKind.ORGANIZATIONAL, MailboxKind.APPLICATION)

# --- Querysets: every relation the mapping reads is loaded up front ------------------------------------


def _mailboxes_prefetch(lookup: str, kinds: Sequence[str]) -> Prefetch:
    boxes = MailboxAddress.objects.filter(kind__in=kinds).order_by("address")
    return Prefetch(lookup, queryset=boxes, to_attr="fhir_mailboxes")


def professionals() -> QuerySet[Professional]:
    return Professional.objects.prefetch_related(_mailboxes_prefetch("mailboxes", [MailboxKind.PERSONAL]))


def structures() -> QuerySet[Structure]:
    return Structure.objects.select_related("commune", "legal_entity").prefetch_related(
        _mailboxes_prefetch("mailboxes", STRUCTURE_MAILBOX_KINDS)
    )


def exercices() -> QuerySet[Exercice]:
    return (
        Exercice.objects.select_related("professional", "structure")
        .annotate(
            fhir_last_updated=Greatest("created_at", "professional__updated_at", "structure__updated_at")
        )
        .prefetch_related(_mailboxes_prefetch("professional__mailboxes", [MailboxKind.PERSONAL]))
    )


# --- Rows → records → resources ------------------------------------------------------------------------


def _mailboxes(owner: Professional | Structure) -> tuple[MailboxRecord, ...]:
    return tuple(MailboxRecord(m.address, m.kind) for m in owner.fhir_mailboxes)  # type: ignore[union-attr]


def practitioner_record(professional: Professional) -> PractitionerRecord:
    tables = nomenclatures()
    return PractitionerRecord(
        id=str(professional.pk),
        last_updated=professional.updated_at,
        active=professional.is_active,
        idnat_ps=professional.idnat_ps,
        rpps=professional.rpps,
        adeli=professional.adeli,
        civility_code=professional.civility_code,
        last_name=professional.last_name,
        first_name=professional.first_name,
        profession_code=professional.profession_code,
        profession_label=professional.profession_label
        or tables.profession_label(professional.profession_code),
        category_code=professional.category_code,
        category_label=tables.professional_categories.get(professional.category_code, ""),
        specialty_code=professional.specialty_code,
        specialty_label=professional.specialty_label
        or tables.specialty_label(professional.profession_code, professional.specialty_code),
        mailboxes=_mailboxes(professional),
    )


def _display_name(professional: Professional) -> str:
    return f"{professional.first_name} {professional.last_name}".strip()


def practitioner_role_record(exercice: Exercice) -> PractitionerRoleRecord:
    tables = nomenclatures()
    professional, structure = exercice.professional, exercice.structure
    return PractitionerRoleRecord(
        id=str(exercice.pk),
        last_updated=exercice.fhir_last_updated,  # type: ignore[attr-defined]
        active=professional.is_active and structure.is_active,
        practitioner_id=str(professional.pk),
        organization_id=str(structure.pk),
        practitioner_display=_display_name(professional),
        organization_display=structure.name,
        role_code=exercice.role_code,
        role_label=tables.roles.get(exercice.role_code, ""),
        exercise_mode=exercice.exercise_mode,
        exercise_mode_label=tables.exercise_modes.get(exercice.exercise_mode, ""),
        mailboxes=_mailboxes(professional),
    )


def organization_record(structure: Structure) -> OrganizationRecord:
    legal_entity = structure.kind == StructureKind.LEGAL_ENTITY
    parent = structure.legal_entity
    commune = structure.commune
    return OrganizationRecord(
        id=str(structure.pk),
        last_updated=structure.updated_at,
        active=structure.is_active,
        legal_entity=legal_entity,
        name=structure.name,
        finess=structure.finess_ej if legal_entity else (structure.finess_et or ""),
        siren=structure.siren,
        siret=structure.siret,
        category_code=structure.category_code,
        category_label=structure.category_label,
        sector_code=structure.sector_code,
        sector_label=structure.sector_label,
        address_line=structure.address_line,
        postal_code=structure.postal_code,
        city=commune.name if commune else "",
        insee_code=commune.insee_code if commune else "",
        part_of_id=str(parent.pk) if parent else "",
        part_of_display=parent.name if parent else "",
        mailboxes=_mailboxes(structure),
    )


def practitioner_resource(professional: Professional) -> Resource:
    return mapping.practitioner(practitioner_record(professional))


def practitioner_role_resource(exercice: Exercice) -> Resource:
    return mapping.practitioner_role(practitioner_role_record(exercice))


def organization_resource(structure: Structure) -> Resource:
    return mapping.organization(organization_record(structure))


# --- orm.Filters ------------------------------------------------------------------------------------------


def _mailbox_q(param: ParamValue, *, owner: str, outer: str, kinds: Sequence[str]) -> Q:
    def one(value: str) -> Q:
        if param.modifier == "contains":
            address = Q(address__icontains=value)
        elif param.modifier == "exact":
            address = Q(address=value)
        else:
            address = Q(address__iexact=value)
        boxes = MailboxAddress.objects.filter(address, kind__in=kinds, **{owner: OuterRef(outer)})
        return Q(Exists(boxes))

    return orm.values_q(param, one)


def _references_q(param: ParamValue, *, target: str, field: str) -> Q:
    ids = [
        parse_reference(v, resource_type=target, name=param.name, type_modifier=param.modifier)
        for v in param.values
    ]
    numeric = orm.reference_ids(ids)
    return Q(**{f"{field}__in": numeric}) if numeric else NOTHING


def _practitioner_identifier(token: Token) -> Q:
    code, system = token.code, token.system
    if system is None:
        return Q(idnat_ps=code) | Q(rpps=code) | Q(adeli=code) if code else NOTHING
    if system == mapping.IDNPS_SYSTEM:
        return Q(idnat_ps=code) if code else Q()
    if system == mapping.RPPS_SYSTEM:
        return Q(rpps=code) if code else ~Q(rpps="")
    if system == mapping.ADELI_SYSTEM:
        return Q(adeli=code) if code else ~Q(adeli="")
    return NOTHING


def _qualification_code(token: Token) -> Q:
    code, system = token.code, token.system
    if not code:
        return NOTHING
    if system is None:
        return Q(profession_code=code) | Q(category_code=code) | Q(specialty_code=code)
    if system == mapping.TRE_G15_PROFESSION:
        return Q(profession_code=code)
    if system == mapping.TRE_R09_CATEGORIE_PROFESSIONNELLE:
        return Q(category_code=code)
    if system == mapping.TRE_R38_SPECIALITE_ORDINALE:
        return Q(specialty_code=code)
    return NOTHING


PRACTITIONER_FILTERS: orm.Filters = {
    "_id": orm.ids_q,
    "_lastUpdated": lambda p: orm.date_q("updated_at", p),
    "identifier": lambda p: orm.tokens_q(p, _practitioner_identifier),
    "name": lambda p: orm.string_q(["last_name", "first_name"], p),
    "family": lambda p: orm.string_q(["last_name"], p),
    "given": lambda p: orm.string_q(["first_name"], p),
    "mailbox-mss": lambda p: _mailbox_q(p, owner="professional", outer="pk", kinds=[MailboxKind.PERSONAL]),
    "active": lambda p: orm.bool_q(p, "is_active"),
    "qualification-code": lambda p: orm.tokens_q(p, _qualification_code),
}


def _role_code(token: Token) -> Q:
    code, system = token.code, token.system
    if not code:
        return NOTHING
    if system is None:
        return Q(role_code=code) | Q(exercise_mode=code)
    if system == mapping.TRE_R21_FONCTION:
        return Q(role_code=code)
    if system == mapping.TRE_R23_MODE_EXERCICE:
        return Q(exercise_mode=code)
    return NOTHING


def _role_active(param: ParamValue) -> Q:
    def one(value: str) -> Q:
        both_active = Q(professional__is_active=True, structure__is_active=True)
        return both_active if parse_bool(value, name=param.name) else ~both_active

    return orm.values_q(param, one)


PRACTITIONER_ROLE_FILTERS: orm.Filters = {
    "_id": orm.ids_q,
    "_lastUpdated": lambda p: orm.date_q("fhir_last_updated", p),
    "practitioner": lambda p: _references_q(p, target="Practitioner", field="professional_id"),
    "organization": lambda p: _references_q(p, target="Organization", field="structure_id"),
    "role": lambda p: orm.tokens_q(p, _role_code),
    "active": _role_active,
    "mailbox-mss": lambda p: _mailbox_q(
        p, owner="professional", outer="professional_id", kinds=[MailboxKind.PERSONAL]
    ),
}


def _own_finess(value: str) -> Q:
    return Q(kind=StructureKind.SITE, finess_et=value) | Q(kind=StructureKind.LEGAL_ENTITY, finess_ej=value)


_WITHOUT_OWN_FINESS = (
    Q(kind=StructureKind.SITE, finess_et__isnull=True)
    | Q(kind=StructureKind.SITE, finess_et="")
    | Q(kind=StructureKind.LEGAL_ENTITY, finess_ej="")
)


def _idnat_struct(value: str) -> Q:
    """Mirror of ``mapping.organization_idnat_struct``: ``1`` + own FINESS, or ``3`` + SIRET without one."""
    prefix, number = value[:1], value[1:]
    if prefix == "1" and number:
        return _own_finess(number)
    if prefix == "3" and number:
        return _WITHOUT_OWN_FINESS & Q(siret=number)
    return NOTHING


def _organization_identifier(token: Token) -> Q:
    code, system = token.code, token.system
    if system is None:
        if not code:
            return NOTHING
        return _own_finess(code) | _idnat_struct(code) | Q(siren=code) | Q(siret=code)
    if system == mapping.FINESS_SYSTEM:
        return _own_finess(code) if code else ~_WITHOUT_OWN_FINESS
    if system == mapping.IDNST_SYSTEM:
        return _idnat_struct(code) if code else ~(_WITHOUT_OWN_FINESS & Q(siret=""))
    if system == mapping.SIRENE_SYSTEM:
        if not code:
            return ~Q(siren="") | ~Q(siret="")
        if len(code) == 9:
            return Q(siren=code)
        if len(code) == 14:
            return Q(siret=code)
    return NOTHING


_KIND_BY_TYPE = {
    mapping.LEGAL_ENTITY: StructureKind.LEGAL_ENTITY,
    mapping.GEOGRAPHICAL_ENTITY: StructureKind.SITE,
}


def _organization_type(token: Token) -> Q:
    code, system = token.code, token.system
    if not code:
        return NOTHING
    if system is None:
        q = Q(sector_code=code) | Q(category_code=code)
        return q | Q(kind=_KIND_BY_TYPE[code]) if code in _KIND_BY_TYPE else q
    if system == mapping.ORGANIZATION_TYPE_SYSTEM:
        return Q(kind=_KIND_BY_TYPE[code]) if code in _KIND_BY_TYPE else NOTHING
    if system == mapping.TRE_R02_SECTEUR_ACTIVITE:
        return Q(sector_code=code)
    if system == mapping.TRE_R66_CATEGORIE_ETABLISSEMENT:
        return Q(category_code=code)
    return NOTHING


ORGANIZATION_FILTERS: orm.Filters = {
    "_id": orm.ids_q,
    "_lastUpdated": lambda p: orm.date_q("updated_at", p),
    "identifier": lambda p: orm.tokens_q(p, _organization_identifier),
    "name": lambda p: orm.string_q(["name"], p),
    "mailbox-mss": lambda p: _mailbox_q(p, owner="structure", outer="pk", kinds=STRUCTURE_MAILBOX_KINDS),
    "active": lambda p: orm.bool_q(p, "is_active"),
    "type": lambda p: orm.tokens_q(p, _organization_type),
    "partof": lambda p: _references_q(p, target="Organization", field="legal_entity_id"),
}

# --- Read and search -----------------------------------------------------------------------------------


def practitioner_read(resource_id: str) -> Resource | None:
    row = orm.first_or_none(professionals(), resource_id)
    return practitioner_resource(row) if row else None


def practitioner_search(query: SearchQuery) -> SearchPage:
    return orm.paginate(
        professionals().filter(orm.filters_q(PRACTITIONER_FILTERS, query)), query, practitioner_resource
    )


def practitioner_role_read(resource_id: str) -> Resource | None:
    row = orm.first_or_none(exercices(), resource_id)
    return practitioner_role_resource(row) if row else None


def practitioner_role_search(query: SearchQuery) -> SearchPage:
    rows = exercices().filter(orm.filters_q(PRACTITIONER_ROLE_FILTERS, query))
    return orm.paginate(rows, query, practitioner_role_resource)


def organization_read(resource_id: str) -> Resource | None:
    row = orm.first_or_none(structures(), resource_id)
    return organization_resource(row) if row else None


def organization_search(query: SearchQuery) -> SearchPage:
    return orm.paginate(
        structures().filter(orm.filters_q(ORGANIZATION_FILTERS, query)), query, organization_resource
    )


# --- _include / _revinclude ----------------------------------------------------------------------------


def include_role_practitioners(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = professionals().filter(pk__in=orm.referenced_ids(matches, "practitioner"))
    return orm.limited(rows, limit, practitioner_resource)


def include_role_organizations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = structures().filter(pk__in=orm.referenced_ids(matches, "organization"))
    return orm.limited(rows, limit, organization_resource)


def include_organization_parents(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = structures().filter(pk__in=orm.referenced_ids(matches, "partOf"))
    return orm.limited(rows, limit, organization_resource)


def revinclude_roles_of_organizations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = exercices().filter(structure_id__in=orm.resource_ids(matches))
    return orm.limited(rows, limit, practitioner_role_resource)


def revinclude_roles_of_practitioners(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = exercices().filter(professional_id__in=orm.resource_ids(matches))
    return orm.limited(rows, limit, practitioner_role_resource)


# --- Registration --------------------------------------------------------------------------------------


def _string(name: str, documentation: str, definition: str) -> SearchParam:
    return SearchParam(name, "string", documentation, definition, _STRING_MODIFIERS)


_MAILBOX_DEFINITION = f"{_ANS}/as-sp-mailbox-mss"

PRACTITIONER = ResourceType(
    name="Practitioner",
    read=practitioner_read,
    search=practitioner_search,
    access_rule=DIRECTORY_ACCESS,
    profile=mapping.PROFILE_PRACTITIONER,
    documentation="Exercice professionnel des professionnels de santé de l'annuaire régional (RPPS / ADELI).",
    owner="annuaire",
    search_params=(
        id_param("Practitioner"),
        last_updated_param(),
        SearchParam(
            "identifier",
            "token",
            "IdNat_PS (urn:oid:1.2.250.1.71.4.2.1), RPPS (https://rpps.esante.gouv.fr) ou ADELI "
            "(https://adeli.esante.gouv.fr) : [system]|[valeur] ou valeur seule.",
            f"{_FHIR}/Practitioner-identifier",
        ),
        _string("name", "Nom ou prénom d'exercice (commence par).", f"{_FHIR}/Practitioner-name"),
        _string("family", "Nom d'exercice (commence par).", f"{_FHIR}/individual-family"),
        _string("given", "Prénom d'exercice (commence par).", f"{_FHIR}/individual-given"),
        _string(
            "mailbox-mss",
            "Adresse MSSanté personnelle (adresse entière ; :contains pour une partie).",
            _MAILBOX_DEFINITION,
        ),
        SearchParam("active", "token", "true ou false.", f"{_FHIR}/Practitioner-active"),
        SearchParam(
            "qualification-code",
            "token",
            "Profession (TRE_G15), catégorie professionnelle (TRE_R09) ou savoir-faire (TRE_R38).",
            f"{_ANS}/as-sp-qualification-code",
        ),
    ),
)

PRACTITIONER_ROLE = ResourceType(
    name="PractitionerRole",
    read=practitioner_role_read,
    search=practitioner_role_search,
    access_rule=DIRECTORY_ACCESS,
    profile=mapping.PROFILE_PRACTITIONER_ROLE,
    documentation=(
        "Situations d'exercice : un professionnel dans une structure, avec sa fonction et son mode "
        "d'exercice."
    ),
    owner="annuaire",
    search_params=(
        id_param("PractitionerRole"),
        last_updated_param(),
        SearchParam(
            "practitioner",
            "reference",
            "Le professionnel (Practitioner/[id]).",
            f"{_FHIR}/PractitionerRole-practitioner",
            frozenset({"Practitioner"}),
        ),
        SearchParam(
            "organization",
            "reference",
            "La structure d'exercice (Organization/[id]).",
            f"{_FHIR}/PractitionerRole-organization",
            frozenset({"Organization"}),
        ),
        SearchParam(
            "role",
            "token",
            "Fonction (TRE_R21) ou mode d'exercice (TRE_R23).",
            f"{_FHIR}/PractitionerRole-role",
        ),
        SearchParam(
            "active",
            "token",
            "true : professionnel et structure actifs ; false : l'un des deux inactif.",
            f"{_FHIR}/PractitionerRole-active",
        ),
        _string("mailbox-mss", "Adresse MSSanté personnelle du professionnel.", _MAILBOX_DEFINITION),
    ),
)

ORGANIZATION = ResourceType(
    name="Organization",
    read=organization_read,
    search=organization_search,
    access_rule=DIRECTORY_ACCESS,
    profile=mapping.PROFILE_ORGANIZATION,
    documentation="Structures : entités juridiques (EJ) et entités géographiques (ET) FINESS, cabinets.",
    owner="annuaire",
    search_params=(
        id_param("Organization"),
        last_updated_param(),
        SearchParam(
            "identifier",
            "token",
            "FINESS (https://finess.esante.gouv.fr), IdNat_Struct (urn:oid:1.2.250.1.71.4.2.2), SIREN ou "
            "SIRET (https://sirene.fr) : [system]|[valeur] ou valeur seule.",
            f"{_FHIR}/Organization-identifier",
        ),
        _string("name", "Raison sociale (commence par).", f"{_FHIR}/Organization-name"),
        _string("mailbox-mss", "Adresse MSSanté organisationnelle ou applicative.", _MAILBOX_DEFINITION),
        SearchParam("active", "token", "true ou false.", f"{_FHIR}/Organization-active"),
        SearchParam(
            "type",
            "token",
            "LEGAL-ENTITY / GEOGRAPHICAL-ENTITY, secteur d'activité (TRE_R02) ou catégorie "
            "d'établissement (TRE_R66).",
            f"{_FHIR}/Organization-type",
        ),
        SearchParam(
            "partof",
            "reference",
            "Entité juridique de rattachement (Organization/[id]).",
            f"{_FHIR}/Organization-partof",
            frozenset({"Organization"}),
        ),
    ),
)

INCLUSIONS = (
    (Inclusion("PractitionerRole", "practitioner", "Practitioner", include_role_practitioners), False),
    (Inclusion("PractitionerRole", "organization", "Organization", include_role_organizations), False),
    (Inclusion("Organization", "partof", "Organization", include_organization_parents), False),
    (Inclusion("PractitionerRole", "organization", "Organization", revinclude_roles_of_organizations), True),
    (Inclusion("PractitionerRole", "practitioner", "Practitioner", revinclude_roles_of_practitioners), True),
)


def register(target: Registry) -> None:
    """Serve the directory's resource types on ``/fhir/`` (called once, from AnnuaireConfig.ready())."""
    for resource_type in (PRACTITIONER, PRACTITIONER_ROLE, ORGANIZATION):
        target.register(resource_type)
    for inclusion, reverse in INCLUSIONS:
        target.register_inclusion(inclusion, reverse=reverse)
