"""Directory JSON API (/api/annuaire/): search and detail of professionals and structures, parameters
checked with French messages, « next » pagination, access for every role, query counts, OpenAPI schema."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from annuaire.api.serializers import (
    CommuneSerializer,
    ExerciceSerializer,
    ProfessionalSerializer,
    StructureSerializer,
    StructureSummarySerializer,
)
from annuaire.models import MailboxKind
from annuaire.selectors.search import professional_search, structure_search
from enrs.accounts.roles import Role
from tests.annuaire.factories import ExerciceFactory, MailboxAddressFactory, StructureFactory
from tests.annuaire.test_search_selectors import Directory, build_directory, pro

PROFESSIONALS = "/api/annuaire/professionnels/"
STRUCTURES = "/api/annuaire/structures/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(db: None) -> Directory:
    return build_directory()


@pytest.fixture
def api(client_as: Callable[[Role], Client]) -> Client:
    return client_as(Role.GCS_STAFF)


def get(client: Client, url: str, params: dict[str, Any] | None = None, status: int = 200) -> Any:
    response = client.get(url, params or {})
    assert response.status_code == status, response.content
    return response.json()


def request_overhead(client: Client) -> int:
    """Queries of any API call by a signed-in user (session, user, session save): measured on a page that
    runs no other (an invalid parameter is refused before the search)."""
    with CaptureQueriesContext(connection) as context:
        client.get(PROFESSIONALS, {"limit": "0"})
    return len(context.captured_queries)


# --- Access ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PROFESSIONALS, STRUCTURES, f"{PROFESSIONALS}1/", f"{STRUCTURES}1/"])
def test_anonymous_callers_get_a_403_and_no_data(client: Client, directory: Directory, url: str) -> None:
    response = client.get(url, {"q": "martin"})
    assert response.status_code == 403
    assert "MARTIN" not in response.content.decode()


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_the_directory_api(
    client_as: Callable[[Role], Client], directory: Directory, role: Role
) -> None:
    client = client_as(role)
    assert [r["id"] for r in get(client, PROFESSIONALS, {"q": "hélène"})["results"]] == [directory.helene.pk]
    assert get(client, f"{STRUCTURES}{directory.chu.pk}/")["name"] == directory.chu.name


# --- Professionals -------------------------------------------------------------------------------------


def test_a_professional_in_the_results(api: Client, directory: Directory) -> None:
    body = get(api, PROFESSIONALS, {"q": "Jean Martin"})
    first = body["results"][0]
    martin, site = directory.jean_martin, directory.chu_site
    assert first == {
        "id": martin.pk,
        "url": f"http://testserver{PROFESSIONALS}{martin.pk}/",
        "idnat_ps": martin.idnat_ps,
        "rpps": martin.rpps,
        "adeli": "",
        "civility_code": "MME",
        "last_name": "MARTIN",
        "first_name": "Jean",
        "profession": {"code": "10", "label": "Médecin"},
        "specialty": {"code": "SM04", "label": "Cardiologie et maladies vasculaires"},
        "is_active": True,
        "exercices": [
            {
                "role": {"code": "FON-33", "label": first["exercices"][0]["role"]["label"]},
                "mode": {"code": "S", "label": "Salarié"},
                "structure": {
                    "id": site.pk,
                    "url": f"http://testserver{STRUCTURES}{site.pk}/",
                    "kind": "ET",
                    "name": "Hôpital Pontchaillou",
                    "finess_et": site.finess_et,
                    "finess_ej": site.finess_ej,
                    "siret": site.siret,
                    "commune": {
                        "insee_code": "35238",
                        "name": "Rennes",
                        "postal_code": "35000",
                        "department": {"code": "35", "label": "Ille-et-Vilaine"},
                    },
                    "is_active": True,
                },
            }
        ],
    }
    assert first["exercices"][0]["role"]["label"]  # TRE_R21 label from the nomenclatures
    assert body["interpretation"] == {
        "identifier": "",
        "professions": [],
        "specialties": [],
        "communes": [],
        "name": "",
    }
    assert body["previous"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "lefevre"}, ["helene"]),
        ({"q": "DUPON"}, ["jean_dupont"]),
        ({"q": "martin", "department": "29"}, ["marie_martin"]),
        ({"profession": "10", "specialty": "SM04"}, ["jean_martin"]),
        ({"q": "jean", "sector": "SA08"}, ["jean_dupont", "jean_durand"]),
        ({"structure": "CHU_ANNEX"}, ["marie_martin"]),
        ({"q": "RPPS_HELENE"}, ["helene"]),
    ],
)
def test_search_parameters(
    api: Client, directory: Directory, params: dict[str, str], expected: list[str]
) -> None:
    if params.get("structure") == "CHU_ANNEX":
        params["structure"] = str(directory.chu_annex.pk)
    if params.get("q") == "RPPS_HELENE":
        params["q"] = directory.helene.rpps
    body = get(api, PROFESSIONALS, params)
    assert [r["id"] for r in body["results"]] == [getattr(directory, name).pk for name in expected]


def test_the_reading_of_the_query_is_returned(api: Client, directory: Directory) -> None:
    body = get(api, PROFESSIONALS, {"q": "cardiologue martin rennes"})
    assert [r["last_name"] for r in body["results"]] == ["MARTIN"]
    assert body["interpretation"] == {
        "identifier": "",
        "professions": [],
        "specialties": ["Cardiologie et maladies vasculaires"],
        "communes": ["Rennes (35)"],
        "name": "martin",
    }
    assert get(api, PROFESSIONALS, {"q": directory.helene.idnat_ps})["interpretation"]["identifier"] == (
        "identifiant national (IdNat_PS)"
    )


def test_next_and_previous_links(api: Client, db: None) -> None:
    structure = StructureFactory.create(name="Maison de santé de l'Odet")
    for n in range(5):
        pro("CORRE", f"Prénom{n}", at=structure)
    first = get(api, PROFESSIONALS, {"q": "corre", "limit": "2"})
    assert [r["first_name"] for r in first["results"]] == ["Prénom0", "Prénom1"]
    assert first["next"] == f"http://testserver{PROFESSIONALS}?q=corre&limit=2&offset=2"
    second = get(api, first["next"].removeprefix("http://testserver"))
    assert [r["first_name"] for r in second["results"]] == ["Prénom2", "Prénom3"]
    assert second["previous"] == f"http://testserver{PROFESSIONALS}?q=corre&limit=2&offset=0"
    last = get(api, second["next"].removeprefix("http://testserver"))
    assert [r["first_name"] for r in last["results"]] == ["Prénom4"]
    assert last["next"] is None
    assert (last["offset"], last["limit"]) == (4, 2)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"profession": "999"}, "profession", "n'est pas un choix valide"),
        ({"department": "00"}, "department", "n'est pas un choix valide"),
        ({"profession": "60", "specialty": "SM04"}, "specialty", "pas une spécialité de la profession"),
        ({"limit": "500"}, "limit", "inférieure ou égale à 100"),
        ({"offset": "990", "limit": "20"}, "offset", "Les résultats s'arrêtent au 1000e"),
        ({"structure": "abc"}, "structure", "Un nombre entier valide est requis."),
    ],
)
def test_wrong_parameters_are_refused_in_french(
    api: Client, directory: Directory, params: dict[str, str], field: str, message: str
) -> None:
    body = get(api, PROFESSIONALS, params, status=400)
    assert list(body) == [field]
    assert message in body[field][0]


def test_a_professional_in_detail(api: Client, directory: Directory) -> None:
    helene = directory.helene
    MailboxAddressFactory(professional=helene, address="helene.lefevre@chu-rennes.mssante.fr")
    ExerciceFactory(professional=helene, structure=directory.pharmacy, role_code="FON-05")
    body = get(api, f"{PROFESSIONALS}{helene.pk}/")
    assert body["idnat_ps"] == helene.idnat_ps
    assert body["rpps_key_valid"] is True
    assert body["mailboxes"] == [{"address": "helene.lefevre@chu-rennes.mssante.fr", "kind": "PER"}]
    assert [e["structure"]["name"] for e in body["exercices"]] == [
        "Hôpital Pontchaillou",
        "Pharmacie de l'Église",
    ]
    assert body["exercices"][1]["role"]["code"] == "FON-05"
    missing = get(api, f"{PROFESSIONALS}999999/", status=404)
    assert missing == {"detail": "Ce professionnel n'est pas dans l'annuaire."}


# --- Structures ------------------------------------------------------------------------------------------


def test_structure_search(api: Client, directory: Directory) -> None:
    body = get(api, STRUCTURES, {"q": "pharmacie eglise"})
    [pharmacy] = body["results"]
    assert pharmacy["name"] == "Pharmacie de l'Église"
    assert pharmacy["category"] == {"code": "620", "label": "Pharmacie d'Officine"}
    assert pharmacy["sector"] == {"code": "SA33", "label": "Pharmacie d'officine"}
    assert pharmacy["commune"]["department"] == {"code": "29", "label": "Finistère"}
    ej = get(api, STRUCTURES, {"q": directory.chu.finess_ej})
    assert [s["kind"] for s in ej["results"]] == ["EJ", "ET", "ET"]
    assert ej["interpretation"]["identifier"] == "FINESS, SIREN ou ADELI"
    sites = get(api, STRUCTURES, {"department": "35", "kind": "ET"})
    assert [s["id"] for s in sites["results"]] == [directory.chu_site.pk]
    assert get(api, STRUCTURES, {"kind": "XX"}, status=400)["kind"][0].endswith("n'est pas un choix valide.")


def test_a_structure_in_detail(api: Client, directory: Directory) -> None:
    MailboxAddressFactory(organizational=True, structure=directory.chu, address="secretariat@chu.mssante.fr")
    MailboxAddressFactory(
        kind=MailboxKind.APPLICATION, professional=None, structure=directory.chu, address="dpi@chu.mssante.fr"
    )
    chu = get(api, f"{STRUCTURES}{directory.chu.pk}/")
    assert chu["kind"] == "EJ"
    assert chu["legal_entity"] is None
    assert [s["name"] for s in chu["sites"]] == ["Hôpital de la Mer", "Hôpital Pontchaillou"]
    assert chu["mailboxes"] == [
        {"address": "dpi@chu.mssante.fr", "kind": "APP"},
        {"address": "secretariat@chu.mssante.fr", "kind": "ORG"},
    ]
    assert chu["professionals_url"] == f"http://testserver{PROFESSIONALS}?structure={directory.chu.pk}"
    staff = get(api, chu["professionals_url"].removeprefix("http://testserver"))
    assert [r["last_name"] for r in staff["results"]] == ["LEFÈVRE", "MARTIN", "MARTIN", "PARIS"]

    site = get(api, f"{STRUCTURES}{directory.chu_site.pk}/")
    assert (site["latitude"], site["longitude"]) == (48.11, -1.68)
    assert site["legal_entity"]["id"] == directory.chu.pk
    assert site["legal_entity"]["commune"]["name"] == "Rennes"
    assert site["sites"] == []
    assert get(api, f"{STRUCTURES}999999/", status=404) == {
        "detail": "Cette structure n'est pas dans l'annuaire."
    }


def test_the_fast_representations_are_those_of_drf(directory: Directory, rf, monkeypatch) -> None:
    """The list serializers write their dicts themselves (speed); DRF's field-by-field path must give the
    same output, so that the schema (made from the declared fields) says the truth."""
    request = rf.get("/api/annuaire/professionnels/")
    professionals = professional_search(query="martin").results + professional_search(query="lefevre").results
    structures = [*structure_search(query=directory.chu.finess_ej).results, directory.cabinet]

    def dump() -> tuple[list[Any], list[Any]]:
        context = {"request": request}
        return (
            [dict(ProfessionalSerializer(p, context=context).data) for p in professionals],
            [dict(StructureSerializer(s, context=context).data) for s in structures],
        )

    fast = dump()
    for serializer in (
        CommuneSerializer,
        StructureSummarySerializer,
        ExerciceSerializer,
        ProfessionalSerializer,
        StructureSerializer,
    ):
        monkeypatch.setattr(serializer, "to_representation", serializers.ModelSerializer.to_representation)
    assert json.loads(json.dumps(fast)) == json.loads(json.dumps(dump()))
    assert fast[0][0]["exercices"][0]["structure"]["commune"]["department"]["code"] == "35"


# --- Query counts ------------------------------------------------------------------------------------------


def test_query_counts_do_not_grow_with_the_results(
    api: Client, directory: Directory, django_assert_num_queries
) -> None:
    overhead = request_overhead(api)
    for n in range(15):
        pro("MARTIN", f"Prénom{n:02d}", at=directory.cabinet)
    # Read the query, the ranked lists, the rows, their exercices (structure, commune, department joined).
    with django_assert_num_queries(overhead + 4):
        body = get(api, PROFESSIONALS, {"q": "martin", "limit": "20"})
    assert len(body["results"]) == 17
    with django_assert_num_queries(overhead + 3):  # professional, exercices, mailboxes
        get(api, f"{PROFESSIONALS}{directory.jean_martin.pk}/")
    with django_assert_num_queries(overhead + 3):  # read the query, ranked lists, rows
        get(api, STRUCTURES, {"q": "hopital"})
    with django_assert_num_queries(overhead + 3):  # structure (+ legal entity, communes), sites, mailboxes
        get(api, f"{STRUCTURES}{directory.chu.pk}/")


# --- OpenAPI -------------------------------------------------------------------------------------------


def test_the_schema_documents_the_directory_api(api: Client) -> None:
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/annuaire/professionnels/",
        "/api/annuaire/professionnels/{id}/",
        "/api/annuaire/structures/",
        "/api/annuaire/structures/{id}/",
    ):
        assert "get" in paths[path], path
    search = paths["/api/annuaire/professionnels/"]["get"]
    assert search["operationId"] == "annuaire_professionals_search"
    parameters = {p["name"] for p in search["parameters"]}
    assert {
        "q",
        "profession",
        "specialty",
        "department",
        "structure",
        "sector",
        "limit",
        "offset",
    } <= parameters
    assert {"q", "department", "sector", "kind", "limit", "offset"} <= {
        p["name"] for p in paths["/api/annuaire/structures/"]["get"]["parameters"]
    }
    page = search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"next", "previous", "interpretation", "results"} <= set(
        schema["components"]["schemas"][page]["properties"]
    )
