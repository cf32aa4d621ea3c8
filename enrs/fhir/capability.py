"""The server's CapabilityStatement (``GET /fhir/metadata``), built from the registry. Pure code.

It says what the endpoint really does: for each registered resource type, ``read`` and
``search-type``, its profile, its search parameters with their definitions, and the accepted
``_include`` / ``_revinclude`` values.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .bundle import format_instant
from .query import DEFAULT_COUNT, MAX_COUNT
from .registry import Inclusion, ResourceType

FHIR_VERSION = "4.0.1"  # the ANS profiles are FHIR R4 (hl7.fhir.fr.core 2.x, ans.fhir.fr.annuaire)
FORMATS = ("application/fhir+json", "json")

REST_DOCUMENTATION = (
    "Recherche (GET [type]?… ou POST [type]/_search) et lecture (GET [type]/[id]). Paramètres inconnus "
    "ou non pris en charge : erreur 400 (OperationOutcome), sauf avec l'en-tête « Prefer: handling=lenient » "
    "qui les ignore et les signale dans le Bundle. Pagination : _count (défaut "
    f"{DEFAULT_COUNT}, maximum {MAX_COUNT}) et _offset, par les liens next / previous du Bundle ; "
    "_total=none évite le comptage. Chaînes : recherche « commence par », sans tenir compte de la casse "
    "ni des accents (modificateurs :exact et :contains)."
)
SECURITY_DESCRIPTION = (
    "Session du portail ENRS (carte CPS, Pro Santé Connect ou mot de passe et code à usage unique) ; "
    "chaque type de ressource demande un rôle (annuaire : tout utilisateur connecté du portail). "
    "Sans session : 401 ; rôle insuffisant : 403 (OperationOutcome)."
)


def capability_statement(
    *,
    resource_types: Sequence[ResourceType],
    includes: Mapping[str, Mapping[str, Inclusion]],
    revincludes: Mapping[str, Mapping[str, Inclusion]],
    base_url: str,
    date: datetime,
    software_version: str,
) -> dict[str, Any]:
    """A CapabilityStatement (kind ``instance``) for the server at `base_url`."""
    resources = []
    for resource_type in resource_types:
        entry: dict[str, Any] = {"type": resource_type.name}
        if resource_type.profile:
            entry["profile"] = resource_type.profile
        if resource_type.documentation:
            entry["documentation"] = resource_type.documentation
        entry["interaction"] = [{"code": "read"}, {"code": "search-type"}]
        entry["versioning"] = "no-version"
        entry["readHistory"] = False
        entry["updateCreate"] = False
        type_includes = sorted(includes.get(resource_type.name, {}))
        type_revincludes = sorted(revincludes.get(resource_type.name, {}))
        if type_includes:
            entry["searchInclude"] = type_includes
        if type_revincludes:
            entry["searchRevInclude"] = type_revincludes
        params = []
        for param in resource_type.search_params:
            item: dict[str, Any] = {"name": param.name}
            if param.definition:
                item["definition"] = param.definition
            item["type"] = param.type
            documentation = param.documentation
            if param.modifiers:
                documentation += f" Modificateurs : {', '.join(':' + m for m in sorted(param.modifiers))}."
            item["documentation"] = documentation
            params.append(item)
        entry["searchParam"] = params
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(date),
        "publisher": "GCS e-santé — ENRS",
        "kind": "instance",
        "software": {"name": "ENRS", "version": software_version},
        "implementation": {"description": "API FHIR de l'ENRS", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": list(FORMATS),
        "rest": [
            {
                "mode": "server",
                "documentation": REST_DOCUMENTATION,
                "security": {"description": SECURITY_DESCRIPTION},
                "resource": resources,
            }
        ],
    }
