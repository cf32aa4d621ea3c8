"""Directory records → FHIR R4 resources following the ANS « Annuaire Santé » public-data profiles.

Pure code: no Django import (the records come from ``annuaire.fhir.resources``). Sources, read in
ansforge/IG-fhir-annuaire (profiles-dp/*, examples/DP/PP19DP-*) and Interop-Sante/hl7.fhir.fr.core
(FRCorePractitionerProfile, FRCoreOrganization*Profile, code systems v2-0203 and v2-3307):

* Practitioner (``as-dp-practitioner``): identifier[idNatPs] (``urn:oid:1.2.250.1.71.4.2.1``, type
  IDNPS), identifier[rpps] (``https://rpps.esante.gouv.fr``, type RPPS) or, for professionals known by
  ADELI only, an ADELI identifier (``https://adeli.esante.gouv.fr``, type ADELI — fr-core's former
  ``adeli`` slice); name (use ``usual``, ``prefix`` = civility code as in the ANS examples);
  qualification[exercicePro] (TRE_G15 profession + TRE_R09 catégorie professionnelle) and
  qualification[savoirFaire] (TRE_R04 type ``S`` for ordinal specialties SMxx / SCDxx + the TRE_R38
  code; the IPA mentions SIxx are in TRE_R38 too, their TRE_R04 type is not known here so it is left
  out); telecom[mailbox-mss] for the PER MSSanté boxes.
* PractitionerRole (``as-dp-practitionerrole``): practitioner and organization references,
  code[fonction] (TRE_R21) and code[modeExercice] (TRE_R23), telecom[mailbox-mss].
* Organization (``as-dp-organization``): identifier[idNatSt] (``urn:oid:1.2.250.1.71.4.2.2``, type
  IDNST: ``1`` + FINESS, or ``3`` + SIRET for a structure without FINESS), identifier[finess]
  (``https://finess.esante.gouv.fr``, type FINEJ for a legal entity, FINEG for a site),
  identifier[siren] / [siret] (``https://sirene.fr``); type[organizationType] (LEGAL-ENTITY /
  GEOGRAPHICAL-ENTITY, fr-core-cs-v2-3307), type[secteurActiviteRASS] (TRE_R02),
  type[categorieEtablissementRASS] (TRE_R66), each discriminated by the ``as-ext-organization-types``
  extension where the profile asks for it; address with the COG commune code
  (``fr-core-address-insee-code``); ``partOf`` from a site to its legal entity; telecom[mailbox-mss]
  for the ORG and APP boxes.
* A mailbox-mss telecom is ``system = email`` with the ``fr-core-contact-point-email-type`` extension
  = TRE_R256 ``MSSANTE``, and the ``as-ext-mailbox-mss-metadata`` extension carrying its TRE_R257 type.

Known gaps with the profiles (the directory does not hold the data): PractitionerRole has no
identifier[idSituationExercice] (the RPPS activity id); a professional known by ADELI only has no
identifier[rpps]; a PER box is attached to the professional, not to one of his workplaces, so each of
his PractitionerRoles lists all his PER boxes. Canonicals are not version-pinned.
"""

from typing import Any

from annuaire.standards.identifiers import organization_idnat_struct
from enrs.fhir.elements import meta, reference

from .records import MailboxRecord, OrganizationRecord, PractitionerRecord, PractitionerRoleRecord

Resource = dict[str, Any]

# --- Canonical URLs ---------------------------------------------------------------------------------
AS_CANONICAL = "https://interop.esante.gouv.fr/ig/fhir/annuaire"
FR_CORE_CANONICAL = "https://hl7.fr/ig/fhir/core"

PROFILE_PRACTITIONER = f"{AS_CANONICAL}/StructureDefinition/as-dp-practitioner"
PROFILE_PRACTITIONER_ROLE = f"{AS_CANONICAL}/StructureDefinition/as-dp-practitionerrole"
PROFILE_ORGANIZATION = f"{AS_CANONICAL}/StructureDefinition/as-dp-organization"
FR_CORE_PRACTITIONER = f"{FR_CORE_CANONICAL}/StructureDefinition/fr-core-practitioner"
FR_CORE_PRACTITIONER_ROLE = f"{FR_CORE_CANONICAL}/StructureDefinition/fr-core-practitioner-role"
FR_CORE_ORGANIZATION = f"{FR_CORE_CANONICAL}/StructureDefinition/fr-core-organization"

EMAIL_TYPE_EXTENSION = f"{FR_CORE_CANONICAL}/StructureDefinition/fr-core-contact-point-email-type"
INSEE_CODE_EXTENSION = f"{FR_CORE_CANONICAL}/StructureDefinition/fr-core-address-insee-code"
MAILBOX_METADATA_EXTENSION = f"{AS_CANONICAL}/StructureDefinition/as-ext-mailbox-mss-metadata"
ORGANIZATION_TYPES_EXTENSION = f"{AS_CANONICAL}/StructureDefinition/as-ext-organization-types"

# --- Identifier systems and types -------------------------------------------------------------------
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
ADELI_SYSTEM = "https://adeli.esante.gouv.fr"
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
SIRENE_SYSTEM = "https://sirene.fr"  # SIREN and SIRET (fr-core), told apart by their type
IDENTIFIER_TYPE_SYSTEM = f"{FR_CORE_CANONICAL}/CodeSystem/fr-core-cs-v2-0203"
ORGANIZATION_TYPE_SYSTEM = f"{FR_CORE_CANONICAL}/CodeSystem/fr-core-cs-v2-3307"

# --- Nomenclatures (NOS) ----------------------------------------------------------------------------
_NOS = "https://mos.esante.gouv.fr/NOS"
TRE_G15_PROFESSION = f"{_NOS}/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
TRE_R09_CATEGORIE_PROFESSIONNELLE = (
    f"{_NOS}/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
)
TRE_R04_TYPE_SAVOIR_FAIRE = f"{_NOS}/TRE_R04-TypeSavoirFaire/FHIR/TRE-R04-TypeSavoirFaire"
TRE_R38_SPECIALITE_ORDINALE = f"{_NOS}/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
TRE_R21_FONCTION = f"{_NOS}/TRE_R21-Fonction/FHIR/TRE-R21-Fonction"
TRE_R23_MODE_EXERCICE = f"{_NOS}/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice"
TRE_R02_SECTEUR_ACTIVITE = f"{_NOS}/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
TRE_R66_CATEGORIE_ETABLISSEMENT = f"{_NOS}/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement"
TRE_R13_COMMUNE = f"{_NOS}/TRE_R13-Commune/FHIR/TRE-R13-Commune"
TRE_R256_TYPE_MESSAGERIE = f"{_NOS}/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
TRE_R257_TYPE_BAL = f"{_NOS}/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"

LEGAL_ENTITY = "LEGAL-ENTITY"
GEOGRAPHICAL_ENTITY = "GEOGRAPHICAL-ENTITY"
# Savoir-faire prefixes that are ordinal specialties (TRE_R04 type "S"): physicians and dentists.
ORDINAL_SPECIALTY_PREFIXES = ("SM", "SCD")


def _identifier(system: str, type_code: str, value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": type_code}]},
        "system": system,
        "value": value,
    }


def _coding(system: str, code: str, display: str = "") -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def mailbox_telecom(mailbox: MailboxRecord) -> dict[str, Any]:
    """A telecom[mailbox-mss] (as-mailbox-mss): e-mail typed MSSANTE, with its BAL type."""
    return {
        "extension": [
            {"url": EMAIL_TYPE_EXTENSION, "valueCoding": _coding(TRE_R256_TYPE_MESSAGERIE, "MSSANTE")},
            {
                "url": MAILBOX_METADATA_EXTENSION,
                "extension": [
                    {"url": "type", "valueCodeableConcept": _concept(TRE_R257_TYPE_BAL, mailbox.kind)}
                ],
            },
        ],
        "system": "email",
        "value": mailbox.address,
    }


# --- Practitioner -----------------------------------------------------------------------------------


def practitioner(record: PractitionerRecord) -> Resource:
    identifiers = [_identifier(IDNPS_SYSTEM, "IDNPS", record.idnat_ps)]
    if record.rpps:
        identifiers.append(_identifier(RPPS_SYSTEM, "RPPS", record.rpps))
    if record.adeli:
        identifiers.append(_identifier(ADELI_SYSTEM, "ADELI", record.adeli))
    resource: Resource = {
        "resourceType": "Practitioner",
        "id": record.id,
        "meta": meta(record.last_updated, PROFILE_PRACTITIONER, FR_CORE_PRACTITIONER),
        "language": "fr",
        "identifier": identifiers,
        "active": record.active,
    }
    name: dict[str, Any] = {"use": "usual"}
    if record.last_name:
        name["family"] = record.last_name
    if record.first_name:
        name["given"] = [record.first_name]
    if record.civility_code:
        name["prefix"] = [record.civility_code]
    if len(name) > 1:
        resource["name"] = [name]
    if record.mailboxes:
        resource["telecom"] = [mailbox_telecom(m) for m in record.mailboxes]
    qualifications = []
    if record.profession_code:
        codings = [_coding(TRE_G15_PROFESSION, record.profession_code, record.profession_label)]
        if record.category_code:
            codings.append(
                _coding(TRE_R09_CATEGORIE_PROFESSIONNELLE, record.category_code, record.category_label)
            )
        qualifications.append({"code": {"coding": codings}})
    if record.specialty_code:
        codings = []
        if record.specialty_code.startswith(ORDINAL_SPECIALTY_PREFIXES):
            codings.append(_coding(TRE_R04_TYPE_SAVOIR_FAIRE, "S", "Spécialité ordinale"))
        codings.append(_coding(TRE_R38_SPECIALITE_ORDINALE, record.specialty_code, record.specialty_label))
        qualifications.append({"code": {"coding": codings}})
    if qualifications:
        resource["qualification"] = qualifications
    return resource


# --- PractitionerRole -------------------------------------------------------------------------------


def practitioner_role(record: PractitionerRoleRecord) -> Resource:
    resource: Resource = {
        "resourceType": "PractitionerRole",
        "id": record.id,
        "meta": meta(record.last_updated, PROFILE_PRACTITIONER_ROLE, FR_CORE_PRACTITIONER_ROLE),
        "language": "fr",
        "active": record.active,
        "practitioner": reference("Practitioner", record.practitioner_id, record.practitioner_display),
        "organization": reference("Organization", record.organization_id, record.organization_display),
    }
    codes = []
    if record.role_code:
        codes.append(_concept(TRE_R21_FONCTION, record.role_code, record.role_label))
    if record.exercise_mode:
        codes.append(_concept(TRE_R23_MODE_EXERCICE, record.exercise_mode, record.exercise_mode_label))
    if codes:
        resource["code"] = codes
    if record.mailboxes:
        resource["telecom"] = [mailbox_telecom(m) for m in record.mailboxes]
    return resource


# --- Organization -----------------------------------------------------------------------------------


def _typed(concept: dict[str, Any], slice_code: str) -> dict[str, Any]:
    return {"extension": [{"url": ORGANIZATION_TYPES_EXTENSION, "valueCode": slice_code}], **concept}


def organization(record: OrganizationRecord) -> Resource:
    identifiers = []
    idnat_struct = organization_idnat_struct(finess=record.finess, siret=record.siret)
    if idnat_struct:
        identifiers.append(_identifier(IDNST_SYSTEM, "IDNST", idnat_struct))
    if record.finess:
        identifiers.append(
            _identifier(FINESS_SYSTEM, "FINEJ" if record.legal_entity else "FINEG", record.finess)
        )
    if record.siren:
        identifiers.append(_identifier(SIRENE_SYSTEM, "SIREN", record.siren))
    if record.siret:
        identifiers.append(_identifier(SIRENE_SYSTEM, "SIRET", record.siret))
    resource: Resource = {
        "resourceType": "Organization",
        "id": record.id,
        "meta": meta(record.last_updated, PROFILE_ORGANIZATION, FR_CORE_ORGANIZATION),
        "language": "fr",
    }
    if identifiers:
        resource["identifier"] = identifiers
    resource["active"] = record.active
    kind = LEGAL_ENTITY if record.legal_entity else GEOGRAPHICAL_ENTITY
    types = [_typed(_concept(ORGANIZATION_TYPE_SYSTEM, kind), "organizationType")]
    if record.sector_code:
        types.append(
            _typed(
                _concept(TRE_R02_SECTEUR_ACTIVITE, record.sector_code, record.sector_label),
                "secteurActiviteRASS",
            )
        )
    if record.category_code:
        # No as-ext-organization-types code exists for this slice (as-cs-organization-types).
        types.append(_concept(TRE_R66_CATEGORIE_ETABLISSEMENT, record.category_code, record.category_label))
    resource["type"] = types
    resource["name"] = record.name
    if record.mailboxes:
        resource["telecom"] = [mailbox_telecom(m) for m in record.mailboxes]
    address: dict[str, Any] = {}
    if record.insee_code:
        address["extension"] = [
            {"url": INSEE_CODE_EXTENSION, "valueCoding": _coding(TRE_R13_COMMUNE, record.insee_code)}
        ]
    if record.address_line:
        address["line"] = [record.address_line]
    if record.city:
        address["city"] = record.city
    if record.postal_code:
        address["postalCode"] = record.postal_code
    if address:
        resource["address"] = [address]
    if record.part_of_id:
        resource["partOf"] = reference("Organization", record.part_of_id, record.part_of_display)
    return resource
