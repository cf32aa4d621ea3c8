"""The FHIR R4 API on /fhir/ with the directory's resources: metadata, read, every search parameter,
paging links, _include / _revinclude, access, errors as OperationOutcome and query counts.

Every resource and Bundle the API returns is parsed with the fhir.resources R4B models (which refuse
unknown elements), and the identifier systems are checked.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from annuaire.models import Professional, Structure
from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.accounts.roles import ADMINISTRATION_ACCESS, CLINICAL_ACCESS, STRONG_AUTH_MESSAGE, Role
from enrs.audit.models import AuditEvent
from enrs.fhir import orm
from enrs.fhir.registry import ResourceType, SearchPage, SearchParam, SearchQuery, id_param, registry
from tests.annuaire.factories import (
    CommuneFactory,
    ExerciceFactory,
    MailboxAddressFactory,
    ProfessionalFactory,
    StructureFactory,
)

pytestmark = pytest.mark.django_db

IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
RPPS = "https://rpps.esante.gouv.fr"
ADELI = "https://adeli.esante.gouv.fr"
IDNST = "urn:oid:1.2.250.1.71.4.2.2"
FINESS = "https://finess.esante.gouv.fr"
SIRENE = "https://sirene.fr"
TYPE_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
FHIR_JSON = "application/fhir+json; charset=utf-8"


# --- Helpers -------------------------------------------------------------------------------------------


def parse(resource: dict[str, Any]) -> Any:
    """Validate a resource with its fhir.resources R4B model (unknown elements are refused)."""
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def get(client: Client, url: str, status: int = 200, **headers: str) -> dict[str, Any]:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR_JSON
    data = response.json()
    parse(data)
    if data["resourceType"] == "Bundle":
        Bundle.model_validate(data)
        for entry in data.get("entry", []):
            parse(entry["resource"])
    if data["resourceType"] == "OperationOutcome":
        OperationOutcome.model_validate(data)
    return data


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def included(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "include"]


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


def identifier(resource: dict[str, Any], system: str) -> dict[str, Any]:
    (found,) = [i for i in resource["identifier"] if i["system"] == system]
    return found


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((li["url"] for li in bundle["link"] if li["relation"] == relation), None)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def issue(outcome: dict[str, Any]) -> dict[str, Any]:
    """The first issue of an OperationOutcome, once the whole outcome has been validated."""
    assert outcome["resourceType"] == "OperationOutcome"
    OperationOutcome.model_validate(outcome)
    return outcome["issue"][0]


# --- Fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _unaccent_looked_up() -> Iterator[None]:
    """Look the unaccent extension up before the test, so that query counts do not depend on test order."""
    orm.reset_unaccent_cache()
    orm.unaccent_available()
    yield
    orm.reset_unaccent_cache()


@pytest.fixture
def fhir(client_as: Callable[[Role], Client]) -> Client:
    return client_as(Role.CLINICIAN)


@pytest.fixture
def directory() -> SimpleNamespace:
    rennes = CommuneFactory.create(insee_code="35238", name="Rennes", postal_code="35000")
    chu = StructureFactory.create(legal_entity=True, name="CHU de Rennes", sector_code="SA01")
    pontchaillou = StructureFactory.create(
        legal_entity_id=chu.pk, finess_ej=chu.finess_ej, name="Hôpital Pontchaillou", commune=rennes
    )
    cabinet = StructureFactory.create(without_finess=True, name="Cabinet médical des Lices", commune=rennes)
    helene = ProfessionalFactory.create(
        physician=True, last_name="Le Gall", first_name="Hélène", civility_code="MME"
    )
    eloi = ProfessionalFactory.create(last_name="Éloi", first_name="Martin", civility_code="M")
    durand = ProfessionalFactory.create(
        with_adeli=True, last_name="Durand", first_name="Jean", is_active=False
    )
    MailboxAddressFactory.create(professional=helene, address="helene.legall@chu-rennes.mssante.fr")
    MailboxAddressFactory.create(professional=helene, address="h.legall@medecin.mssante.fr")
    MailboxAddressFactory.create(
        organizational=True, structure=pontchaillou, address="urgences@chu-rennes.mssante.fr"
    )
    role_helene = ExerciceFactory.create(professional=helene, structure=pontchaillou, role_code="FON-33")
    role_eloi = ExerciceFactory.create(professional=eloi, structure=pontchaillou, role_code="FON-43")
    role_durand = ExerciceFactory.create(
        professional=durand, structure=cabinet, role_code="FON-01", exercise_mode="L"
    )
    return SimpleNamespace(**locals())


# --- metadata -----------------------------------------------------------------------------------------


def test_metadata_is_public_and_lists_the_directory_resources(client: Client) -> None:
    statement = get(client, "/fhir/metadata")
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["application/fhir+json", "json"]
    assert statement["implementation"]["url"] == "http://testserver/fhir/"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Practitioner", "PractitionerRole", "Organization"} <= set(resources)
    practitioner = resources["Practitioner"]
    assert (
        practitioner["profile"]
        == "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitioner"
    )
    assert {p["name"] for p in practitioner["searchParam"]} >= {
        "_id",
        "_lastUpdated",
        "identifier",
        "name",
        "family",
        "given",
        "mailbox-mss",
        "active",
        "qualification-code",
    }
    assert practitioner["searchRevInclude"] == ["PractitionerRole:practitioner"]
    # Other apps may add theirs (the ROR adds HealthcareService:organization).
    assert "PractitionerRole:organization" in resources["Organization"]["searchRevInclude"]
    assert resources["Organization"]["searchInclude"] == ["Organization:partof"]
    assert resources["PractitionerRole"]["searchInclude"] == [
        "PractitionerRole:organization",
        "PractitionerRole:practitioner",
    ]
    mailbox = next(p for p in practitioner["searchParam"] if p["name"] == "mailbox-mss")
    assert (
        mailbox["definition"]
        == "https://interop.esante.gouv.fr/ig/fhir/annuaire/SearchParameter/as-sp-mailbox-mss"
    )


# --- Access --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/fhir/Practitioner", "/fhir/Organization/1", "/fhir/PractitionerRole?_count=1"]
)
def test_anonymous_callers_get_a_401_operation_outcome_not_a_redirect(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Session realm="ENRS"'
    assert issue(response.json())["code"] == "login"


@pytest.mark.parametrize("role", list(Role))
def test_every_portal_role_reads_the_directory(
    client_as: Callable[[Role], Client], directory: SimpleNamespace, role: Role
) -> None:
    practitioner = get(client_as(role), f"/fhir/Practitioner/{directory.helene.pk}")
    assert practitioner["id"] == str(directory.helene.pk)


@pytest.fixture
def restricted_types() -> Iterator[None]:
    """Two types served under stricter rules, as other apps may register them."""

    def read(resource_id: str) -> dict[str, Any]:
        return {"resourceType": "Basic", "id": resource_id, "code": {"text": "essai"}}

    def search(query: SearchQuery) -> SearchPage:
        return SearchPage([], False, 0)

    for name, rule in (("Basic", ADMINISTRATION_ACCESS), ("Consent", CLINICAL_ACCESS)):
        registry.register(
            ResourceType(
                name,
                read,
                search,
                (id_param(name), SearchParam("code", "token", "Code.")),
                rule,
                owner="tests",
            )
        )
    yield
    registry.unregister("Basic")
    registry.unregister("Consent")


@pytest.mark.usefixtures("restricted_types")
def test_a_role_outside_the_rule_of_a_type_gets_a_403(client_as: Callable[[Role], Client]) -> None:
    outcome = get(client_as(Role.CLINICIAN), "/fhir/Basic/1", status=403)
    assert issue(outcome) == {
        "severity": "error",
        "code": "forbidden",
        "diagnostics": "Votre rôle ne donne pas accès à cette page.",
    }
    assert get(client_as(Role.GCS_STAFF), "/fhir/Basic/1")["code"] == {"text": "essai"}
    assert AuditEvent.objects.filter(action="access.denied").count() == 0  # not patient data: not audited


@pytest.mark.usefixtures("restricted_types")
def test_patient_data_types_need_a_strong_session_and_denials_are_audited(
    client: Client, user_with_role: Callable[[Role], User]
) -> None:
    clinician = user_with_role(Role.CLINICIAN)
    client.force_login(clinician)
    weak = get(client, "/fhir/Consent?code=x", status=403)
    assert issue(weak)["diagnostics"] == STRONG_AUTH_MESSAGE
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    assert get(client, "/fhir/Consent?code=x")["total"] == 0

    analyst = user_with_role(Role.ARS_ANALYST)
    client.force_login(analyst)
    get(client, "/fhir/Consent/1", status=403)
    event = AuditEvent.objects.get(action="access.denied", actor=analyst)
    assert event.detail["reason"] == "role"
    assert event.detail["path"] == "/fhir/Consent/1"


# --- Read ----------------------------------------------------------------------------------------------


def test_read_practitioner(fhir: Client, directory: SimpleNamespace) -> None:
    helene = directory.helene
    practitioner = get(fhir, f"/fhir/Practitioner/{helene.pk}")
    assert identifier(practitioner, IDNPS)["value"] == "8" + helene.rpps
    assert identifier(practitioner, IDNPS)["type"]["coding"] == [{"system": TYPE_SYSTEM, "code": "IDNPS"}]
    assert identifier(practitioner, RPPS)["value"] == helene.rpps
    assert identifier(practitioner, RPPS)["type"]["coding"] == [{"system": TYPE_SYSTEM, "code": "RPPS"}]
    assert practitioner["name"] == [
        {"use": "usual", "family": "Le Gall", "given": ["Hélène"], "prefix": ["MME"]}
    ]
    assert practitioner["active"] is True
    assert [t["value"] for t in practitioner["telecom"]] == [
        "h.legall@medecin.mssante.fr",
        "helene.legall@chu-rennes.mssante.fr",
    ]
    assert practitioner["telecom"][0]["extension"][0] == {
        "url": EMAIL_TYPE,
        "valueCoding": {
            "system": "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie",
            "code": "MSSANTE",
        },
    }
    profession, specialty = practitioner["qualification"]
    assert profession["code"]["coding"][0]["code"] == "10"
    assert profession["code"]["coding"][1] == {
        "system": "https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle",
        "code": "C",
        "display": "Civil",
    }
    assert specialty["code"]["coding"][1]["code"] == "SM54"
    assert practitioner["meta"]["lastUpdated"].endswith("Z")


def test_read_practitioner_known_by_adeli(fhir: Client, directory: SimpleNamespace) -> None:
    durand = directory.durand
    practitioner = get(fhir, f"/fhir/Practitioner/{durand.pk}")
    assert [i["system"] for i in practitioner["identifier"]] == [IDNPS, ADELI]
    assert identifier(practitioner, IDNPS)["value"] == "0" + durand.adeli
    assert identifier(practitioner, ADELI)["value"] == durand.adeli
    assert practitioner["active"] is False


def test_read_practitioner_role(fhir: Client, directory: SimpleNamespace) -> None:
    role = get(fhir, f"/fhir/PractitionerRole/{directory.role_helene.pk}")
    assert role["practitioner"] == {
        "reference": f"Practitioner/{directory.helene.pk}",
        "display": "Hélène Le Gall",
    }
    assert role["organization"] == {
        "reference": f"Organization/{directory.pontchaillou.pk}",
        "display": "Hôpital Pontchaillou",
    }
    assert role["code"] == [
        {
            "coding": [
                {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_R21-Fonction/FHIR/TRE-R21-Fonction",
                    "code": "FON-33",
                    "display": "Salarié en poste fixe",
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
    ]
    assert [t["value"] for t in role["telecom"]] == [
        "h.legall@medecin.mssante.fr",
        "helene.legall@chu-rennes.mssante.fr",
    ]
    assert role["active"] is True
    inactive = get(fhir, f"/fhir/PractitionerRole/{directory.role_durand.pk}")
    assert inactive["active"] is False  # Jean Durand is inactive


def test_read_organizations(fhir: Client, directory: SimpleNamespace) -> None:
    site = get(fhir, f"/fhir/Organization/{directory.pontchaillou.pk}")
    assert identifier(site, IDNST)["value"] == "1" + directory.pontchaillou.finess_et
    assert identifier(site, FINESS)["value"] == directory.pontchaillou.finess_et
    assert identifier(site, FINESS)["type"]["coding"] == [{"system": TYPE_SYSTEM, "code": "FINEG"}]
    assert [i["type"]["coding"][0]["code"] for i in site["identifier"] if i["system"] == SIRENE] == [
        "SIREN",
        "SIRET",
    ]
    assert site["type"][0]["coding"][0]["code"] == "GEOGRAPHICAL-ENTITY"
    assert site["partOf"] == {"reference": f"Organization/{directory.chu.pk}", "display": "CHU de Rennes"}
    assert site["address"][0]["city"] == "Rennes"
    assert site["address"][0]["extension"][0]["valueCoding"]["code"] == "35238"
    assert [t["value"] for t in site["telecom"]] == ["urgences@chu-rennes.mssante.fr"]

    legal_entity = get(fhir, f"/fhir/Organization/{directory.chu.pk}")
    assert identifier(legal_entity, IDNST)["value"] == "1" + directory.chu.finess_ej
    assert identifier(legal_entity, FINESS)["type"]["coding"][0]["code"] == "FINEJ"
    assert legal_entity["type"][0]["coding"][0]["code"] == "LEGAL-ENTITY"
    assert "partOf" not in legal_entity

    cabinet = get(fhir, f"/fhir/Organization/{directory.cabinet.pk}")
    assert identifier(cabinet, IDNST)["value"] == "3" + directory.cabinet.siret
    assert all(i["system"] != FINESS for i in cabinet["identifier"])


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/fhir/Practitioner/999999", 404, "not-found"),
        ("/fhir/Practitioner/abc", 404, "not-found"),
        ("/fhir/Organization/1.5", 404, "not-found"),
        ("/fhir/Patient/1", 404, "not-supported"),
        ("/fhir/Practitioner/a_b", 404, "not-found"),  # not a FHIR id: no such address
        ("/fhir/Practitioner/1/_history/1", 404, "not-found"),
        ("/fhir/", 404, "not-supported"),
    ],
)
def test_unknown_resources_are_404_operation_outcomes(fhir: Client, url: str, status: int, code: str) -> None:
    assert issue(get(fhir, url, status=status))["code"] == code


# --- Search parameters ---------------------------------------------------------------------------------


def search_ids(client: Client, url: str) -> list[str]:
    return ids(matches(get(client, url)))


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("identifier=urn:oid:1.2.250.1.71.4.2.1|{idnat}", ["helene"]),
        ("identifier=https://rpps.esante.gouv.fr|{rpps}", ["helene"]),
        ("identifier={rpps}", ["helene"]),
        ("identifier={idnat}", ["helene"]),
        ("identifier=https://adeli.esante.gouv.fr|{adeli}", ["durand"]),
        ("identifier={rpps},{adeli}", ["helene", "durand"]),
        ("identifier=https://rpps.esante.gouv.fr|{adeli}", []),
        ("identifier=https://autre.example|{rpps}", []),
        ("identifier=|{rpps}", []),
        ("identifier=https://adeli.esante.gouv.fr|", ["durand"]),
    ],
)
def test_practitioner_identifier(
    fhir: Client, directory: SimpleNamespace, query: str, who: list[str]
) -> None:
    values = {
        "idnat": directory.helene.idnat_ps,
        "rpps": directory.helene.rpps,
        "adeli": directory.durand.adeli,
    }
    found = search_ids(fhir, "/fhir/Practitioner?" + query.format(**values).replace("|", "%7C"))
    assert sorted(found) == sorted(str(getattr(directory, name).pk) for name in who)


@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("identifier=https://finess.esante.gouv.fr|{finess_et}", ["pontchaillou"]),
        (
            "identifier=https://finess.esante.gouv.fr|{finess_ej}",
            ["chu"],
        ),  # the site's EJ FINESS is not its own
        ("identifier=urn:oid:1.2.250.1.71.4.2.2|1{finess_et}", ["pontchaillou"]),
        ("identifier=urn:oid:1.2.250.1.71.4.2.2|3{cabinet_siret}", ["cabinet"]),
        ("identifier=urn:oid:1.2.250.1.71.4.2.2|3{site_siret}", []),  # a site with a FINESS is 1+FINESS
        ("identifier=https://sirene.fr|{cabinet_siret}", ["cabinet"]),
        ("identifier=https://sirene.fr|{chu_siren}", ["chu"]),
        ("identifier={finess_et}", ["pontchaillou"]),
        ("identifier=https://rpps.esante.gouv.fr|{finess_et}", []),
    ],
)
def test_organization_identifier(
    fhir: Client, directory: SimpleNamespace, query: str, who: list[str]
) -> None:
    values = {
        "finess_et": directory.pontchaillou.finess_et,
        "finess_ej": directory.chu.finess_ej,
        "cabinet_siret": directory.cabinet.siret,
        "site_siret": directory.pontchaillou.siret,
        "chu_siren": directory.chu.siren,
    }
    found = search_ids(fhir, "/fhir/Organization?" + query.format(**values).replace("|", "%7C"))
    assert sorted(found) == sorted(str(getattr(directory, name).pk) for name in who)


@pytest.fixture
def with_unaccent() -> None:
    """The unaccent extension, installed for this test only (DDL is transactional in PostgreSQL)."""
    if not orm.unaccent_available():
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        orm.reset_unaccent_cache()
    assert orm.unaccent_available()


@pytest.mark.usefixtures("with_unaccent")
@pytest.mark.parametrize(
    ("query", "who"),
    [
        ("family=le%20g", ["helene"]),
        ("family=LE%20GALL", ["helene"]),
        ("family=eloi", ["eloi"]),  # « Éloi »: accents and case folded
        ("given=helene", ["helene"]),
        ("given=HÉL", ["helene"]),
        ("name=martin", ["eloi"]),  # a given name
        ("name=dur", ["durand"]),  # a family name
        ("name=gall", []),  # starts with, not contains
        ("name:contains=gall", ["helene"]),
        ("family:exact=Le%20Gall", ["helene"]),
        ("family:exact=le%20gall", []),
        ("family=le%20g,dur", ["helene", "durand"]),
        ("family=le&given=jean", []),  # repeated parameters: AND
    ],
)
def test_practitioner_names_are_case_and_accent_insensitive(
    fhir: Client, directory: SimpleNamespace, query: str, who: list[str]
) -> None:
    found = search_ids(fhir, "/fhir/Practitioner?" + query)
    assert sorted(found) == sorted(str(getattr(directory, name).pk) for name in who)


def test_names_without_unaccent_are_case_insensitive_only(
    fhir: Client, directory: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orm, "unaccent_available", lambda using="default": False)
    assert search_ids(fhir, "/fhir/Practitioner?given=HÉL") == [str(directory.helene.pk)]
    assert search_ids(fhir, "/fhir/Practitioner?family=éL") == [str(directory.eloi.pk)]
    assert search_ids(fhir, "/fhir/Practitioner?given=hel") == []
    assert search_ids(fhir, "/fhir/Practitioner?name:contains=GAL") == [str(directory.helene.pk)]


@pytest.mark.usefixtures("with_unaccent")
def test_organization_name(fhir: Client, directory: SimpleNamespace) -> None:
    assert search_ids(fhir, "/fhir/Organization?name=hopital") == [str(directory.pontchaillou.pk)]
    assert search_ids(fhir, "/fhir/Organization?name:contains=lices") == [str(directory.cabinet.pk)]


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("/fhir/Practitioner?mailbox-mss=helene.legall@chu-rennes.mssante.fr", ["helene"]),
        ("/fhir/Practitioner?mailbox-mss=HELENE.LEGALL@CHU-RENNES.MSSANTE.FR", ["helene"]),
        ("/fhir/Practitioner?mailbox-mss=helene.legall@chu-rennes", []),  # the whole address
        ("/fhir/Practitioner?mailbox-mss:contains=@medecin.mssante.fr", ["helene"]),
        ("/fhir/Practitioner?mailbox-mss:exact=HELENE.LEGALL@CHU-RENNES.MSSANTE.FR", []),
        ("/fhir/Practitioner?mailbox-mss=urgences@chu-rennes.mssante.fr", []),  # an ORG box
        ("/fhir/PractitionerRole?mailbox-mss=h.legall@medecin.mssante.fr", ["role_helene"]),
        ("/fhir/Organization?mailbox-mss=urgences@chu-rennes.mssante.fr", ["pontchaillou"]),
        ("/fhir/Organization?mailbox-mss:contains=chu-rennes", ["pontchaillou"]),
    ],
)
def test_mailbox_mss(fhir: Client, directory: SimpleNamespace, url: str, who: list[str]) -> None:
    assert sorted(search_ids(fhir, url)) == sorted(str(getattr(directory, name).pk) for name in who)


def test_last_updated(fhir: Client, directory: SimpleNamespace) -> None:
    Professional.objects.filter(pk=directory.helene.pk).update(
        updated_at=datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    )
    Professional.objects.filter(pk=directory.eloi.pk).update(
        updated_at=datetime(2024, 3, 2, 23, 30, tzinfo=UTC)
    )
    Professional.objects.filter(pk=directory.durand.pk).update(
        updated_at=datetime(2023, 12, 31, 12, 0, tzinfo=UTC)
    )
    h, e, d = (str(directory.helene.pk), str(directory.eloi.pk), str(directory.durand.pk))

    def found(query: str) -> list[str]:
        return sorted(search_ids(fhir, "/fhir/Practitioner?" + query))

    assert found("_lastUpdated=ge2024-01-01") == sorted([h, e])
    assert found("_lastUpdated=lt2024") == [d]
    assert found("_lastUpdated=2024-03-01") == [h]
    # 2024-03-02T23:30Z is 2024-03-03 in Paris: dates without timezone are the server's (Europe/Paris).
    assert found("_lastUpdated=2024-03-03") == [e]
    assert found("_lastUpdated=gt2024-03-01T10:00:00Z") == [e]
    assert found("_lastUpdated=ge2024-03-01T11:00:00%2B01:00&_lastUpdated=le2024-03-02") == [h]
    assert found("_lastUpdated=ne2024-03") == [d]
    assert get(fhir, f"/fhir/Practitioner/{h}")["meta"]["lastUpdated"] == "2024-03-01T10:00:00.000Z"


def test_practitioner_role_last_updated_follows_its_professional_and_structure(
    fhir: Client, directory: SimpleNamespace
) -> None:
    Structure.objects.update(updated_at=datetime(2020, 1, 1, tzinfo=UTC))
    Professional.objects.update(updated_at=datetime(2020, 1, 1, tzinfo=UTC))
    from annuaire.models import Exercice

    Exercice.objects.update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    Professional.objects.filter(pk=directory.eloi.pk).update(updated_at=datetime(2024, 6, 1, tzinfo=UTC))
    assert search_ids(fhir, "/fhir/PractitionerRole?_lastUpdated=ge2024-01-01") == [
        str(directory.role_eloi.pk)
    ]
    role = get(fhir, f"/fhir/PractitionerRole/{directory.role_eloi.pk}")
    assert role["meta"]["lastUpdated"] == "2024-06-01T00:00:00.000Z"


def test_other_practitioner_parameters(fhir: Client, directory: SimpleNamespace) -> None:
    h, e, d = (str(directory.helene.pk), str(directory.eloi.pk), str(directory.durand.pk))
    assert sorted(search_ids(fhir, "/fhir/Practitioner?active=true")) == sorted([h, e])
    assert search_ids(fhir, "/fhir/Practitioner?active=false") == [d]
    assert search_ids(fhir, f"/fhir/Practitioner?_id={h}") == [h]
    assert sorted(search_ids(fhir, f"/fhir/Practitioner?_id={h},{d},abc")) == sorted([h, d])
    assert search_ids(fhir, "/fhir/Practitioner?qualification-code=SM54") == [h]
    g15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
    assert sorted(search_ids(fhir, f"/fhir/Practitioner?qualification-code={g15}%7C60")) == sorted([e, d])


def test_other_practitioner_role_parameters(fhir: Client, directory: SimpleNamespace) -> None:
    rh, re_, rd = (str(directory.role_helene.pk), str(directory.role_eloi.pk), str(directory.role_durand.pk))
    site = directory.pontchaillou.pk
    assert sorted(search_ids(fhir, f"/fhir/PractitionerRole?organization=Organization/{site}")) == sorted(
        [rh, re_]
    )
    assert sorted(search_ids(fhir, f"/fhir/PractitionerRole?organization:Organization={site}")) == sorted(
        [rh, re_]
    )
    assert search_ids(fhir, f"/fhir/PractitionerRole?practitioner={directory.durand.pk}") == [rd]
    assert search_ids(fhir, "/fhir/PractitionerRole?role=FON-43") == [re_]
    r23 = "https://mos.esante.gouv.fr/NOS/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice"
    assert search_ids(fhir, f"/fhir/PractitionerRole?role={r23}%7CL") == [rd]
    assert search_ids(fhir, "/fhir/PractitionerRole?active=false") == [rd]
    outcome = get(fhir, f"/fhir/PractitionerRole?organization=Practitioner/{site}", status=400)
    assert issue(outcome)["code"] == "invalid"


def test_other_organization_parameters(fhir: Client, directory: SimpleNamespace) -> None:
    chu, site, cabinet = (str(directory.chu.pk), str(directory.pontchaillou.pk), str(directory.cabinet.pk))
    assert search_ids(fhir, f"/fhir/Organization?partof=Organization/{chu}") == [site]
    assert search_ids(fhir, "/fhir/Organization?type=LEGAL-ENTITY") == [chu]
    v3307 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307"
    assert sorted(search_ids(fhir, f"/fhir/Organization?type={v3307}%7CGEOGRAPHICAL-ENTITY")) == sorted(
        [site, cabinet]
    )
    r02 = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
    assert search_ids(fhir, f"/fhir/Organization?type={r02}%7CSA08") == [cabinet]
    Structure.objects.filter(pk=directory.cabinet.pk).update(is_active=False)
    assert search_ids(fhir, "/fhir/Organization?active=false") == [cabinet]


# --- Paging, total, _summary, _elements ----------------------------------------------------------------


def test_paging_links_are_followable(fhir: Client) -> None:
    created = [str(p.pk) for p in ProfessionalFactory.create_batch(5, last_name="Martin")]
    ProfessionalFactory(last_name="Dupont")
    first = get(fhir, "/fhir/Practitioner?family=martin&_count=2")
    assert first["total"] == 5
    assert len(matches(first)) == 2
    assert link(first, "self") == "http://testserver/fhir/Practitioner?family=martin&_count=2"
    assert link(first, "previous") is None
    seen = ids(matches(first))
    page = first
    pages = 1
    while (next_url := link(page, "next")) is not None:
        page = get(fhir, local(next_url))
        pages += 1
        assert page["total"] == 5
        assert link(page, "previous") is not None
        assert link(page, "first") == "http://testserver/fhir/Practitioner?family=martin&_count=2"
        seen += ids(matches(page))
    assert pages == 3
    assert seen == created  # primary key order, no duplicate, nothing missed
    assert link(page, "self") == "http://testserver/fhir/Practitioner?family=martin&_count=2&_offset=4"
    previous = get(fhir, local(link(page, "previous") or ""))
    assert ids(matches(previous)) == created[2:4]


def test_total_none_and_summary_count(fhir: Client, directory: SimpleNamespace) -> None:
    bundle = get(fhir, "/fhir/Practitioner?_total=none&_count=1")
    assert "total" not in bundle
    assert len(matches(bundle)) == 1
    summary = get(fhir, "/fhir/Practitioner?_summary=count")
    assert summary["total"] == 3
    assert "entry" not in summary
    assert [li["relation"] for li in summary["link"]] == ["self"]


def test_count_is_capped(fhir: Client, directory: SimpleNamespace) -> None:
    bundle = get(fhir, "/fhir/Practitioner?_count=5000")
    assert link(bundle, "self") == "http://testserver/fhir/Practitioner?_count=100"


def test_elements_subsets_the_matches(fhir: Client, directory: SimpleNamespace) -> None:
    bundle = get(fhir, f"/fhir/Practitioner?_id={directory.helene.pk}&_elements=name")
    (practitioner,) = matches(bundle)
    assert set(practitioner) == {"resourceType", "id", "meta", "name"}
    assert practitioner["meta"]["tag"][0]["code"] == "SUBSETTED"


# --- _include / _revinclude ----------------------------------------------------------------------------


def test_revinclude_practitioner_roles_of_organizations(fhir: Client, directory: SimpleNamespace) -> None:
    bundle = get(
        fhir,
        f"/fhir/Organization?identifier={directory.pontchaillou.finess_et}&_revinclude=PractitionerRole:organization",
    )
    assert ids(matches(bundle)) == [str(directory.pontchaillou.pk)]
    assert bundle["total"] == 1
    roles = included(bundle)
    assert {r["resourceType"] for r in roles} == {"PractitionerRole"}
    assert sorted(ids(roles)) == sorted([str(directory.role_helene.pk), str(directory.role_eloi.pk)])
    assert {r["organization"]["reference"] for r in roles} == {f"Organization/{directory.pontchaillou.pk}"}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"http://testserver/fhir/{resource['resourceType']}/{resource['id']}"
    assert link(bundle, "self").endswith("&_revinclude=PractitionerRole%3Aorganization&_count=50")  # type: ignore[union-attr]


def test_include_practitioners_and_organizations_of_roles(fhir: Client, directory: SimpleNamespace) -> None:
    bundle = get(
        fhir,
        f"/fhir/PractitionerRole?organization={directory.pontchaillou.pk}"
        "&_include=PractitionerRole:practitioner&_include=PractitionerRole:organization",
    )
    assert len(matches(bundle)) == 2
    others = {(r["resourceType"], r["id"]) for r in included(bundle)}
    assert others == {
        ("Practitioner", str(directory.helene.pk)),
        ("Practitioner", str(directory.eloi.pk)),
        ("Organization", str(directory.pontchaillou.pk)),  # once, though both roles point to it
    }
    practitioner = next(r for r in included(bundle) if r["id"] == str(directory.helene.pk))
    assert identifier(practitioner, RPPS)["value"] == directory.helene.rpps


def test_include_parent_organization_and_revinclude_on_practitioner(
    fhir: Client, directory: SimpleNamespace
) -> None:
    bundle = get(fhir, f"/fhir/Organization?_id={directory.pontchaillou.pk}&_include=Organization:partof")
    assert ids(included(bundle)) == [str(directory.chu.pk)]
    bundle = get(
        fhir, f"/fhir/Practitioner?_id={directory.helene.pk}&_revinclude=PractitionerRole:practitioner"
    )
    assert ids(included(bundle)) == [str(directory.role_helene.pk)]


# --- Errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code", "expression"),
    [
        ("/fhir/Practitioner?famly=martin", "not-supported", ["famly"]),
        ("/fhir/Practitioner?family:text=martin", "not-supported", ["family:text"]),
        ("/fhir/Practitioner?_sort=family", "not-supported", ["_sort"]),
        ("/fhir/Organization?_revinclude=PractitionerRole:practitioner", "not-supported", ["_revinclude"]),
        ("/fhir/Practitioner?_lastUpdated=hier", "invalid", ["_lastUpdated"]),
        ("/fhir/Practitioner?_lastUpdated=ap2024", "not-supported", ["_lastUpdated"]),
        ("/fhir/Practitioner?_count=beaucoup", "invalid", ["_count"]),
        ("/fhir/Practitioner?active=oui", "invalid", ["active"]),
    ],
)
def test_invalid_searches_are_400_operation_outcomes(
    fhir: Client, url: str, code: str, expression: list[str]
) -> None:
    found = issue(get(fhir, url, status=400))
    assert found["severity"] == "error"
    assert found["code"] == code
    assert found["expression"] == expression
    assert found["diagnostics"]


def test_lenient_handling_ignores_unknown_parameters_and_says_so(
    fhir: Client, directory: SimpleNamespace
) -> None:
    bundle = get(fhir, "/fhir/Practitioner?famly=x&family=le&_sort=family", Prefer="handling=lenient")
    assert ids(matches(bundle)) == [str(directory.helene.pk)]
    assert link(bundle, "self") == "http://testserver/fhir/Practitioner?family=le&_count=50"
    (outcome_entry,) = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    warning = issue(outcome_entry["resource"])
    assert warning["severity"] == "warning"
    assert "famly" in warning["diagnostics"]
    assert "_sort" in warning["diagnostics"]


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("post", "/fhir/Practitioner", "GET"),
        ("put", "/fhir/Practitioner/1", "GET"),
        ("delete", "/fhir/Organization/1", "GET"),
        ("post", "/fhir/metadata", "GET"),
        ("get", "/fhir/Practitioner/_search", "POST"),
    ],
)
def test_other_methods_are_405(fhir: Client, method: str, url: str, allow: str) -> None:
    response = getattr(fhir, method)(url)
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert response["Content-Type"] == FHIR_JSON
    assert issue(response.json())["code"] == "not-supported"


@pytest.mark.parametrize(
    ("url", "accept", "status"),
    [
        ("/fhir/metadata?_format=json", "", 200),
        ("/fhir/metadata?_format=application/fhir%2Bjson", "", 200),
        ("/fhir/metadata?_format=application/fhir+json", "", 200),  # unencoded "+"
        ("/fhir/metadata?_format=xml", "", 406),
        ("/fhir/metadata", "application/fhir+xml", 406),
        ("/fhir/metadata", "application/fhir+json", 200),
        ("/fhir/metadata", "text/html,application/xhtml+xml,*/*;q=0.8", 200),
        ("/fhir/metadata", "application/json;q=0", 406),
    ],
)
def test_json_only(client: Client, url: str, accept: str, status: int) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get(url, headers=headers)
    assert response.status_code == status
    assert response["Content-Type"] == FHIR_JSON
    data = response.json()
    if status == 200:
        CapabilityStatement.model_validate(data)
    else:
        assert issue(data)["code"] == "not-supported"


def test_pretty_output_is_the_same_json(client: Client) -> None:
    compact = client.get("/fhir/metadata")
    pretty = client.get("/fhir/metadata?_pretty=true")
    assert b"\n  " in pretty.content
    left, right = compact.json(), pretty.json()
    left.pop("date")
    right.pop("date")
    assert left == right


def test_post_search_gives_the_same_bundle_as_get(fhir: Client, directory: SimpleNamespace) -> None:
    response = fhir.post(
        "/fhir/Practitioner/_search",
        data="family=le&_revinclude=PractitionerRole:practitioner",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    posted = response.json()
    Bundle.model_validate(posted)
    fetched = get(fhir, "/fhir/Practitioner?family=le&_revinclude=PractitionerRole:practitioner")
    assert [e["fullUrl"] for e in posted["entry"]] == [e["fullUrl"] for e in fetched["entry"]]
    assert link(posted, "self") == link(fetched, "self")
    wrong = fhir.post("/fhir/Practitioner/_search", data={"family": "le"})  # multipart
    assert wrong.status_code == 415


def test_unexpected_errors_are_500_operation_outcomes(
    fhir: Client,
    directory: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from annuaire.fhir import resources

    def broken(professional: Professional) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(resources, "practitioner_resource", broken)
    outcome = get(fhir, f"/fhir/Practitioner/{directory.helene.pk}", status=500)
    assert issue(outcome) == {
        "severity": "error",
        "code": "exception",
        "diagnostics": "Erreur interne du serveur.",
    }
    assert "boom" not in str(outcome)
    assert "FHIR: unexpected error" in caplog.text


# --- Query counts --------------------------------------------------------------------------------------

# Every request through the test client also reads the session and the user, and saves the session
# (SESSION_SAVE_EVERY_REQUEST): 3 queries, plus the savepoint pair of the session save in tests.
REQUEST_OVERHEAD = 5


def _more_directory(n: int) -> None:
    site = StructureFactory()
    for _ in range(n):
        professional = ProfessionalFactory(physician=True)
        MailboxAddressFactory(professional=professional)
        MailboxAddressFactory(professional=professional)
        ExerciceFactory(professional=professional, structure=site)
        MailboxAddressFactory(organizational=True, structure=StructureFactory(legal_entity_id=None))


@pytest.mark.parametrize("extra", [0, 12])
def test_query_counts_do_not_grow_with_the_page(
    fhir: Client, directory: SimpleNamespace, django_assert_num_queries: Any, extra: int
) -> None:
    _more_directory(extra)
    cases = [
        # page + mailboxes, and the count when more pages follow
        ("/fhir/Practitioner?_count=10", 2 + (1 if extra else 0)),
        ("/fhir/Practitioner?_count=10&_total=none", 2),
        # page (with professional and structure) + the professionals' mailboxes
        ("/fhir/PractitionerRole?_count=10&_total=none", 2),
        # + practitioners and their mailboxes + organizations and theirs
        (
            "/fhir/PractitionerRole?_count=10&_total=none&_include=PractitionerRole:practitioner"
            "&_include=PractitionerRole:organization",
            6,
        ),
        # page (with commune and legal entity) + mailboxes + roles + their professionals' mailboxes
        ("/fhir/Organization?_count=10&_total=none&_revinclude=PractitionerRole:organization", 4),
        (f"/fhir/Practitioner/{directory.helene.pk}", 2),
        (f"/fhir/PractitionerRole/{directory.role_helene.pk}", 2),
        (f"/fhir/Organization/{directory.pontchaillou.pk}", 2),
    ]
    for url, queries in cases:
        with django_assert_num_queries(REQUEST_OVERHEAD + queries):
            get(fhir, url)


def test_metadata_reads_nothing(client: Client, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        get(client, "/fhir/metadata")
