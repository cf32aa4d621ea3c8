"""Usage events are small and never carry a patient identifier."""

import pytest
from django.core.exceptions import ValidationError

from enrs.usage.models import UsageEvent
from enrs.usage.services import usage_emit

pytestmark = pytest.mark.django_db


def test_an_event_is_recorded_with_its_dimensions() -> None:
    event = usage_emit(
        "messagerie.message_sent",
        structure_id=12,
        department="35",
        college=2,
        dims={"attachments": 1, "xdm": True},
    )
    stored = UsageEvent.objects.get(pk=event.pk)
    assert (stored.kind, stored.structure_id, stored.department, stored.college) == (
        "messagerie.message_sent",
        12,
        "35",
        2,
    )
    assert stored.dims == {"attachments": 1, "xdm": True}


@pytest.mark.parametrize(
    "dims",
    [
        {"patient_ins": "x"},
        {"nom": "x"},
        {"patientName": "x"},
        {"birth_date": "x"},
        {"ref": "279035121518989"},
        {"to": "jean.dupont@medecin.mssante.fr"},
        {"nested": {"a": 1}},
    ],
)
def test_identifying_dimensions_are_refused(dims: dict) -> None:
    with pytest.raises(ValidationError):
        usage_emit("dmp.document_submitted", dims=dims)
    assert not UsageEvent.objects.exists()


def test_innocent_words_containing_forbidden_letters_are_allowed() -> None:
    event = usage_emit("telemedecine.dicom_transfer", value=1e6, dims={"instances": 12, "nominal": True})
    assert event.dims == {"instances": 12, "nominal": True}


@pytest.mark.parametrize("kind", ["", "Sent", "messagerie", "messagerie.Message Sent"])
def test_malformed_kinds_are_refused(kind: str) -> None:
    with pytest.raises(ValidationError):
        usage_emit(kind)


def test_sign_in_emits_a_usage_event_with_the_method_and_no_identity(client, django_user_model) -> None:
    from enrs.accounts.roles import Role

    user = django_user_model.objects.create_user(
        username="u1", password="Correct-Horse-42-battery", role=Role.GCS_STAFF
    )
    response = client.post("/compte/connexion/", {"username": "u1", "password": "Correct-Horse-42-battery"})
    assert response.status_code in (200, 302)
    events = list(UsageEvent.objects.filter(kind="auth.sign_in"))
    assert len(events) == 1
    assert events[0].dims == {"method": "password", "role": Role.GCS_STAFF.value}
    assert str(user.pk) not in str(events[0].dims)
