"""The telemedicine JSON API: my acts (no identity in the list), one act (audited), its state."""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from telemedecine.models import ActStatus
from tests.factories import UserFactory
from tests.telemedecine.factories import act_in_state, make_patient, make_pool

pytestmark = pytest.mark.django_db


def api(user: User, *, strong: bool = True) -> Client:
    client = Client()
    client.force_login(user)
    if strong:
        session = client.session
        session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
        session.save()
    return client


def test_the_list_shows_my_acts_without_patient_identity(django_assert_max_num_queries: Any) -> None:
    me = cast(User, UserFactory())
    pool = make_pool(members=[me])
    patient = make_patient(birth_family_name="CONFIDENTIEL")
    mine = act_in_state(ActStatus.DRAFT, requester=me, patient=patient).act
    to_pool = act_in_state(ActStatus.SENT, pool=pool).act
    act_in_state(ActStatus.SENT)  # someone else's
    client = api(me)
    client.get(reverse("telemedecine_api:act-list"))
    with django_assert_max_num_queries(8):
        response = client.get(reverse("telemedecine_api:act-list"))
    assert response.status_code == 200
    body = response.json()
    assert {row["id"]: row["role"] for row in body["results"]} == {mine.pk: "requester", to_pool.pk: "expert"}
    assert "CONFIDENTIEL" not in response.content.decode()
    assert body["next"] is None
    only_sent = client.get(reverse("telemedecine_api:act-list"), {"status": "sent"}).json()
    assert [row["id"] for row in only_sent["results"]] == [to_pool.pk]


def test_the_detail_carries_the_trace_and_is_audited() -> None:
    patient = make_patient(qualified=True)
    scenario = act_in_state(ActStatus.CLOSED, patient=patient)
    response = api(scenario.requester).get(reverse("telemedecine_api:act-detail", args=[scenario.act.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "closed"
    assert body["patient"]["ins"] == patient.ins
    assert body["consent"] == "given"
    assert body["report_signed"] is True
    assert body["prescriptions"] == "Altéplase 0,9 mg/kg."
    events = [e["event"] for e in body["events"]]
    assert events[:2] == ["created", "sent"]
    for later in ("accepted", "consent", "started", "report_signed", "closed"):
        assert later in events
    assert events.index("accepted") < events.index("started") < events.index("closed")
    assert AuditEvent.objects.filter(action="telemedecine.act.read", actor=scenario.requester).exists()


def test_a_provisional_identity_does_not_carry_the_ins() -> None:
    scenario = act_in_state(ActStatus.SENT, patient=make_patient(with_ins=True))
    body = api(scenario.requester).get(reverse("telemedecine_api:act-detail", args=[scenario.act.pk])).json()
    assert body["patient"]["ins"] is None


def test_strangers_get_404_and_the_refusal_is_audited() -> None:
    scenario = act_in_state(ActStatus.SENT)
    stranger = cast(User, UserFactory())
    client = api(stranger)
    assert client.get(reverse("telemedecine_api:act-detail", args=[scenario.act.pk])).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor=stranger).exists()
    assert client.get(reverse("telemedecine_api:act-status", args=[scenario.act.pk])).status_code == 404


def test_the_status_endpoint_gives_the_state_and_transfers() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    response = api(scenario.requester).get(reverse("telemedecine_api:act-status", args=[scenario.act.pk]))
    assert response.status_code == 200
    assert response.json() == {
        "id": scenario.act.pk,
        "status": "accepted",
        "status_label": "Acceptée",
        "updated_at": response.json()["updated_at"],
        "transfers": [],
    }


@pytest.mark.parametrize("role", ["ars_analyst", "gcs_staff"])
def test_other_roles_are_refused(role: str) -> None:
    user = cast(User, UserFactory(**{role: True}))
    assert api(user).get(reverse("telemedecine_api:act-list")).status_code == 403


def test_a_password_only_session_is_refused() -> None:
    user = cast(User, UserFactory())
    response = api(user, strong=False).get(reverse("telemedecine_api:act-list"))
    assert response.status_code == 403
    assert "authentification forte" in response.json()["detail"]


def test_the_api_is_documented_in_the_schema() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/telemedecine/actes/" in schema["paths"]
    operations = {
        op["operationId"] for item in schema["paths"].values() for op in item.values() if isinstance(op, dict)
    }
    assert {"telemedecine_acts_list", "telemedecine_act_detail", "telemedecine_act_status"} <= operations
