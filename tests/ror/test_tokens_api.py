"""API tokens (hashed, scoped, revocable) and ``POST /api/ror/capacites/``."""

import hashlib
from typing import cast

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from annuaire.models import Structure
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from ror.models import Capacity, CapacityUpdate, Offer, RorApiToken, UpdateSource
from ror.services import token_authenticate, token_create, token_revoke
from tests.annuaire.factories import StructureFactory
from tests.factories import UserFactory
from tests.ror.factories import StructureMembershipFactory, offer_with_location

pytestmark = pytest.mark.django_db
URL = "/api/ror/capacites/"


def count(offer: Offer, status: str) -> int | None:
    row = Capacity.objects.filter(offer=offer, status=status).first()
    return row.count if row else None


@pytest.fixture
def setup():
    staff = UserFactory(gcs_staff=True)
    mine, mine_location = offer_with_location(capacities={"01": 20, "02": 2})
    other, other_location = offer_with_location(capacities={"01": 10, "02": 1})
    token, secret = token_create(name="Logiciel de lits", structures=[mine.structure], actor=staff)
    return {
        "staff": staff,
        "mine": mine,
        "mine_location": mine_location,
        "other": other,
        "token": token,
        "secret": secret,
        "other_location": other_location,
    }


def post(client: Client, payload: dict, secret: str | None = None):
    headers = {"Authorization": f"Token {secret}"} if secret else {}
    return client.post(URL, payload, content_type="application/json", headers=headers)


def test_the_token_is_shown_once_and_stored_hashed(setup) -> None:
    token, secret = setup["token"], setup["secret"]
    assert secret.startswith("ror_")
    assert len(secret) > 40
    stored = RorApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(stored.__dict__)
    assert token_authenticate(secret) == token
    assert token_authenticate(secret + "x") is None
    assert AuditEvent.objects.filter(action="ror.token.create").count() == 1


def test_a_member_may_only_create_a_token_for_their_own_structures(setup) -> None:
    member = UserFactory()
    StructureMembershipFactory(user=member, structure=setup["mine"].structure)
    token_create(name="Logiciel", structures=[setup["mine"].structure], actor=member)
    with pytest.raises(ValidationError, match="vos propres structures"):
        token_create(name="Logiciel", structures=[setup["other"].structure], actor=member)


def test_a_token_updates_its_structures_offers(client: Client, setup) -> None:
    mine = setup["mine"]
    response = post(
        client,
        {"offre": mine.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 7}]},
        setup["secret"],
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["appliquees"] == 1
    assert body["resultats"][0]["offre"] == mine.identifier
    assert body["resultats"][0]["lieu"] == setup["mine_location"].identifier
    assert count(mine, "02") == 7
    update = CapacityUpdate.objects.get()
    assert (update.token, update.actor, update.source) == (setup["token"], None, UpdateSource.API)
    assert RorApiToken.objects.get(pk=setup["token"].pk).last_used_at is not None


def test_the_token_only_reaches_its_own_structures(client: Client, setup) -> None:
    other = setup["other"]
    response = post(
        client,
        {"offre": other.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 5}]},
        setup["secret"],
    )
    assert response.status_code == 403
    assert "autre structure" in str(response.json()["erreurs"][0]["messages"])
    assert count(other, "02") == 1
    assert not CapacityUpdate.objects.exists()


def test_a_batch_is_all_or_nothing_and_lists_each_refusal(client: Client, setup) -> None:
    mine, other = setup["mine"], setup["other"]
    # Both offers in scope of a second token, to test the rules rather than the scope.
    _, secret = token_create(name="Tous", structures=[mine.structure, other.structure], actor=setup["staff"])
    payload = {
        "mises_a_jour": [
            {"offre": mine.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 3}]},
            {"offre": other.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 11}]},
            {"offre": "INCONNUE", "capacites": [{"nature": "01", "statut": "02", "nombre": 1}]},
        ]
    }
    response = post(client, payload, secret)
    assert response.status_code == 400
    errors = response.json()["erreurs"]
    assert [e["index"] for e in errors] == [1, 2]
    assert "ne peuvent pas dépasser les installés" in errors[0]["messages"]["count_01_02"][0]
    assert errors[1]["messages"] == ["Offre inconnue."]
    assert count(mine, "02") == 2  # the valid first update was rolled back too
    assert not CapacityUpdate.objects.exists()


def test_a_valid_batch_applies_every_update(client: Client, setup) -> None:
    mine, other = setup["mine"], setup["other"]
    _, secret = token_create(name="Tous", structures=[mine.structure, other.structure], actor=setup["staff"])
    payload = {
        "mises_a_jour": [
            {"offre": mine.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 3}]},
            {
                "offre": other.identifier,
                "lieu": setup["other_location"].identifier,
                "capacites": [{"nature": "01", "statut": "02", "nombre": 4, "genre": "01"}],
            },
        ]
    }
    response = post(client, payload, secret)
    assert response.status_code == 200, response.content
    assert response.json()["appliquees"] == 2
    assert (count(mine, "02"), count(other, "02")) == (3, 4)
    assert Capacity.objects.get(offer=other, status="02").gender == "01"


def test_a_malformed_payload_gets_a_400_with_field_errors(client: Client, setup) -> None:
    response = post(
        client, {"offre": setup["mine"].identifier, "capacites": [{"nature": "01"}]}, setup["secret"]
    )
    assert response.status_code == 400
    assert response.json()["erreurs"]["capacites"]["0"]["statut"] == ["Ce champ est obligatoire."]


def test_a_revoked_or_unknown_token_is_refused(client: Client, setup) -> None:
    token_revoke(token=setup["token"], actor=setup["staff"])
    payload = {
        "offre": setup["mine"].identifier,
        "capacites": [{"nature": "01", "statut": "02", "nombre": 1}],
    }
    assert post(client, payload, setup["secret"]).status_code == 401
    assert post(client, payload, "ror_inconnu").status_code == 401
    assert post(client, payload).status_code in (401, 403)
    assert count(setup["mine"], "02") == 2


def test_signed_in_staff_of_the_structure_may_use_the_api_with_their_session(client: Client, setup) -> None:
    member = cast(User, UserFactory(role=Role.CLINICIAN))
    StructureMembershipFactory(user=member, structure=setup["mine"].structure)
    client.force_login(member)
    payload = {
        "offre": setup["mine"].identifier,
        "capacites": [{"nature": "01", "statut": "02", "nombre": 9}],
    }
    assert post(client, payload).status_code == 200
    assert CapacityUpdate.objects.get().actor == member
    payload["offre"] = setup["other"].identifier
    assert post(client, payload).status_code == 403


def test_a_token_of_one_structure_with_two_locations_must_name_the_location(client: Client, setup) -> None:
    structure = cast(Structure, StructureFactory())
    offer, _ = offer_with_location(structure=structure, capacities={"01": 5})
    from tests.ror.factories import OfferLocationFactory

    OfferLocationFactory(structure=structure, offers=[offer])
    _, secret = token_create(name="X", structures=[structure], actor=setup["staff"])
    response = post(
        client,
        {"offre": offer.identifier, "capacites": [{"nature": "01", "statut": "02", "nombre": 1}]},
        secret,
    )
    assert response.status_code == 400
    assert "précisez « lieu »" in response.json()["erreurs"][0]["messages"][0]


def test_the_command_shows_the_secret_once_and_revokes(setup) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    finess = setup["mine"].structure.finess_et
    call_command(
        "create_ror_token", "--user", setup["staff"].username, "--name", "DPI", "--finess", finess, stdout=out
    )
    secret = out.getvalue().strip().splitlines()[-1]
    token = token_authenticate(secret)
    assert token is not None
    assert list(token.structures.all()) == [setup["mine"].structure]
    call_command(
        "create_ror_token", "--user", setup["staff"].username, "--revoke", token.key_prefix, stdout=out
    )
    assert token_authenticate(secret) is None
