"""Vectors of the FHIR mapping of the directory (annuaire.fhir.mapping): records in, hand-written JSON out.

The identifiers, names and codes of the first vectors are those of the ANS published examples
(ansforge/IG-fhir-annuaire, input/fsh/examples/DP/PP19DP-Practitioner.fsh, PP19DP-PractitionerRole-Sal.fsh
and PP19DP-Organization-EG-CH.fsh): same systems, types, values and slices. Every output must also parse
with the fhir.resources R4B models (which refuse unknown elements).
"""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole

from annuaire.fhir import mapping
from annuaire.fhir.records import (
    MailboxRecord,
    OrganizationRecord,
    PractitionerRecord,
    PractitionerRoleRecord,
)

# 2019-09-05T01:00:00+01:00 in the ANS examples.
UPDATED = datetime(2019, 9, 5, 1, 0, tzinfo=timezone(timedelta(hours=1)))
UPDATED_INSTANT = "2019-09-05T00:00:00.000Z"

FR_CORE_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
MAILBOX_METADATA = (
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
)
EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
IPA_LABEL = "Exercice infirmier en pratique avancée pathologies chroniques stabilisées"
ORG_TYPES = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-organization-types"


def mailbox(address: str, kind: str) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": EMAIL_TYPE,
                "valueCoding": {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie",
                    "code": "MSSANTE",
                },
            },
            {
                "url": MAILBOX_METADATA,
                "extension": [
                    {
                        "url": "type",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL",
                                    "code": kind,
                                }
                            ]
                        },
                    }
                ],
            },
        ],
        "system": "email",
        "value": address,
    }


def identifier(system: str, type_code: str, value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": FR_CORE_0203, "code": type_code}]},
        "system": system,
        "value": value,
    }


# --- Practitioner -------------------------------------------------------------------------------------


def test_practitioner_of_the_ans_example_pp19dp() -> None:
    record = PractitionerRecord(
        id="334081DP",
        last_updated=UPDATED,
        active=True,
        idnat_ps="810003461033",
        rpps="10003461033",
        civility_code="M",
        last_name="Saucier",
        first_name="Arthur",
        profession_code="10",
        profession_label="Médecin",
        category_code="C",
        category_label="Civil",
        mailboxes=(MailboxRecord("jeromebonnet@pro.mssante.fr", "PER"),),
    )
    expected = {
        "resourceType": "Practitioner",
        "id": "334081DP",
        "meta": {
            "lastUpdated": UPDATED_INSTANT,
            "profile": [
                "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitioner",
                "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner",
            ],
        },
        "language": "fr",
        "identifier": [
            identifier("urn:oid:1.2.250.1.71.4.2.1", "IDNPS", "810003461033"),
            identifier("https://rpps.esante.gouv.fr", "RPPS", "10003461033"),
        ],
        "active": True,
        "name": [{"use": "usual", "family": "Saucier", "given": ["Arthur"], "prefix": ["M"]}],
        "telecom": [mailbox("jeromebonnet@pro.mssante.fr", "PER")],
        "qualification": [
            {
                "code": {
                    "coding": [
                        {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                            "code": "10",
                            "display": "Médecin",
                        },
                        {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle",
                            "code": "C",
                            "display": "Civil",
                        },
                    ]
                }
            }
        ],
    }
    resource = mapping.practitioner(record)
    assert resource == expected
    Practitioner.model_validate(resource)


def test_practitioner_with_an_ordinal_specialty_gets_the_savoir_faire_qualification() -> None:
    record = PractitionerRecord(
        id="7",
        last_updated=datetime(2024, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
        active=True,
        idnat_ps="810000001916",
        rpps="10000001916",
        civility_code="MME",
        last_name="Le Gall",
        first_name="Hélène",
        profession_code="10",
        profession_label="Médecin",
        specialty_code="SM54",
        specialty_label="Médecine Générale",
    )
    resource = mapping.practitioner(record)
    assert resource["meta"]["lastUpdated"] == "2024-03-01T08:30:15.123Z"
    assert resource["name"] == [{"use": "usual", "family": "Le Gall", "given": ["Hélène"], "prefix": ["MME"]}]
    assert "telecom" not in resource
    assert resource["qualification"] == [
        {
            "code": {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                        "code": "10",
                        "display": "Médecin",
                    }
                ]
            }
        },
        {
            "code": {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R04-TypeSavoirFaire/FHIR/TRE-R04-TypeSavoirFaire",
                        "code": "S",
                        "display": "Spécialité ordinale",
                    },
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale",
                        "code": "SM54",
                        "display": "Médecine Générale",
                    },
                ]
            }
        },
    ]
    Practitioner.model_validate(resource)


def test_practitioner_known_by_adeli_only() -> None:
    record = PractitionerRecord(
        id="12",
        last_updated=UPDATED,
        active=False,
        idnat_ps="0351234567",
        adeli="351234567",
        last_name="DURAND",
        profession_code="60",
        specialty_code="SI01",
        specialty_label=IPA_LABEL,
    )
    expected = {
        "resourceType": "Practitioner",
        "id": "12",
        "meta": {
            "lastUpdated": UPDATED_INSTANT,
            "profile": [
                "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitioner",
                "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner",
            ],
        },
        "language": "fr",
        "identifier": [
            identifier("urn:oid:1.2.250.1.71.4.2.1", "IDNPS", "0351234567"),
            identifier("https://adeli.esante.gouv.fr", "ADELI", "351234567"),
        ],
        "active": False,
        "name": [{"use": "usual", "family": "DURAND"}],
        "qualification": [
            {
                "code": {
                    "coding": [
                        {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                            "code": "60",
                        }
                    ]
                }
            },
            # An IPA mention: TRE_R38 code, no TRE_R04 type (not known for these codes).
            {
                "code": {
                    "coding": [
                        {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale",
                            "code": "SI01",
                            "display": IPA_LABEL,
                        }
                    ]
                }
            },
        ],
    }
    resource = mapping.practitioner(record)
    assert resource == expected
    Practitioner.model_validate(resource)


def test_practitioner_without_name_nor_profession_has_neither_element() -> None:
    record = PractitionerRecord(
        id="1", last_updated=UPDATED, active=True, idnat_ps="810000001916", rpps="10000001916"
    )
    resource = mapping.practitioner(record)
    assert "name" not in resource
    assert "qualification" not in resource
    Practitioner.model_validate(resource)


# --- PractitionerRole ---------------------------------------------------------------------------------


def test_practitioner_role_of_the_ans_example_pp19dp_sal() -> None:
    record = PractitionerRoleRecord(
        id="1578230DP",
        last_updated=UPDATED,
        active=True,
        practitioner_id="334081",
        organization_id="158480",
        practitioner_display="Arthur Saucier",
        organization_display="CH EURE-SEINE",
        role_code="FON-AU",
        exercise_mode="S",
        exercise_mode_label="Salarié",
        mailboxes=(MailboxRecord("arthur.saucier@ch-eure-seine.mssante.fr", "PER"),),
    )
    expected = {
        "resourceType": "PractitionerRole",
        "id": "1578230DP",
        "meta": {
            "lastUpdated": UPDATED_INSTANT,
            "profile": [
                "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitionerrole",
                "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner-role",
            ],
        },
        "language": "fr",
        "active": True,
        "practitioner": {"reference": "Practitioner/334081", "display": "Arthur Saucier"},
        "organization": {"reference": "Organization/158480", "display": "CH EURE-SEINE"},
        "code": [
            {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R21-Fonction/FHIR/TRE-R21-Fonction",
                        "code": "FON-AU",
                    }
                ]
            },
            {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice",
                        "code": "S",
                        "display": "Salarié",
                    }
                ]
            },
        ],
        "telecom": [mailbox("arthur.saucier@ch-eure-seine.mssante.fr", "PER")],
    }
    resource = mapping.practitioner_role(record)
    assert resource == expected
    PractitionerRole.model_validate(resource)


# --- Organization -------------------------------------------------------------------------------------

ORGANIZATION_PROFILES = [
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-organization",
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-organization",
]


def test_geographic_entity_of_the_ans_example_pp19dp_eg() -> None:
    record = OrganizationRecord(
        id="158480DP",
        last_updated=UPDATED,
        active=True,
        legal_entity=False,
        name="CH EURE-SEINE",
        finess="754567860",
        sector_code="SA01",
        sector_label="Etablissement public de santé",
        category_code="355",
        category_label="Centre hospitalier (CH)",
        address_line="96 R DIDOT",
        postal_code="75014",
        city="PARIS",
        insee_code="75114",
        part_of_id="548812",
        part_of_display="CH EURE-SEINE (EJ)",
        mailboxes=(MailboxRecord("secretariat.urgences@ch-eure-seine.mssante.fr", "ORG"),),
    )
    expected = {
        "resourceType": "Organization",
        "id": "158480DP",
        "meta": {"lastUpdated": UPDATED_INSTANT, "profile": ORGANIZATION_PROFILES},
        "language": "fr",
        "identifier": [
            identifier("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "1754567860"),
            identifier("https://finess.esante.gouv.fr", "FINEG", "754567860"),
        ],
        "active": True,
        "type": [
            {
                "extension": [{"url": ORG_TYPES, "valueCode": "organizationType"}],
                "coding": [
                    {
                        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307",
                        "code": "GEOGRAPHICAL-ENTITY",
                    }
                ],
            },
            {
                "extension": [{"url": ORG_TYPES, "valueCode": "secteurActiviteRASS"}],
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
                        "code": "SA01",
                        "display": "Etablissement public de santé",
                    }
                ],
            },
            {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement",
                        "code": "355",
                        "display": "Centre hospitalier (CH)",
                    }
                ]
            },
        ],
        "name": "CH EURE-SEINE",
        "telecom": [mailbox("secretariat.urgences@ch-eure-seine.mssante.fr", "ORG")],
        "address": [
            {
                "extension": [
                    {
                        "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
                        "valueCoding": {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_R13-Commune/FHIR/TRE-R13-Commune",
                            "code": "75114",
                        },
                    }
                ],
                "line": ["96 R DIDOT"],
                "city": "PARIS",
                "postalCode": "75014",
            }
        ],
        "partOf": {"reference": "Organization/548812", "display": "CH EURE-SEINE (EJ)"},
    }
    resource = mapping.organization(record)
    assert resource == expected
    Organization.model_validate(resource)


def test_legal_entity_carries_its_finess_ej_and_siren() -> None:
    record = OrganizationRecord(
        id="3",
        last_updated=UPDATED,
        active=True,
        legal_entity=True,
        name="ASSISTANCE PUBLIQUE HOPITAUX DE PARIS",
        finess="750712184",
        siren="267500452",
        sector_code="SA01",
        mailboxes=(MailboxRecord("dmp@aphp.mssante.fr", "APP"),),
    )
    resource = mapping.organization(record)
    assert resource["identifier"] == [
        identifier("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "1750712184"),
        identifier("https://finess.esante.gouv.fr", "FINEJ", "750712184"),
        identifier("https://sirene.fr", "SIREN", "267500452"),
    ]
    assert resource["type"][0]["coding"] == [
        {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307", "code": "LEGAL-ENTITY"}
    ]
    assert resource["telecom"] == [mailbox("dmp@aphp.mssante.fr", "APP")]
    assert "address" not in resource
    assert "partOf" not in resource
    Organization.model_validate(resource)


def test_site_without_finess_is_identified_by_its_siret() -> None:
    record = OrganizationRecord(
        id="4",
        last_updated=UPDATED,
        active=False,
        legal_entity=False,
        name="Cabinet médical des Lices",
        siren="335000000",
        siret="33500000000011",
        sector_code="SA08",
        sector_label="Cabinet de groupe",
        postal_code="35000",
    )
    resource = mapping.organization(record)
    assert resource["identifier"] == [
        identifier("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "333500000000011"),
        identifier("https://sirene.fr", "SIREN", "335000000"),
        identifier("https://sirene.fr", "SIRET", "33500000000011"),
    ]
    assert resource["active"] is False
    assert resource["address"] == [{"postalCode": "35000"}]
    Organization.model_validate(resource)


@pytest.mark.parametrize(
    ("finess", "siret", "expected"),
    [
        ("754567860", "", "1754567860"),  # ANS example PP19DP-Organization-EG-CH
        ("754567860", "33500000000011", "1754567860"),  # the FINESS wins
        ("", "33500000000011", "333500000000011"),
        ("", "", ""),
    ],
)
def test_idnat_struct(finess: str, siret: str, expected: str) -> None:
    assert mapping.organization_idnat_struct(finess=finess, siret=siret) == expected
