"""Video rooms on Jitsi Meet: unguessable room per act, short-lived HS256 JWT per participant (decoded
with joserfc), moderator (lobby owner) only for the expert; without a video service, the fallback."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from enrs.audit.models import AuditEvent
from telemedecine.models import ActStatus, ActType, Fallback, ParticipantRole
from telemedecine.services import acts as act_services
from telemedecine.services import rooms
from tests.telemedecine.factories import act_in_state, make_user

pytestmark = pytest.mark.django_db

SECRET = "un-secret-jitsi-de-test-assez-long-0123456789"


@pytest.fixture
def jitsi(settings: Any) -> None:
    settings.TLM_JITSI_URL = "https://visio.enrs.example/"
    settings.TLM_JITSI_APP_ID = "enrs"
    settings.TLM_JITSI_APP_SECRET = SECRET
    settings.TLM_JITSI_TOKEN_MINUTES = 15


@pytest.fixture
def no_jitsi(settings: Any) -> None:
    settings.TLM_JITSI_URL = ""


def _decode(token: str, secret: str = SECRET) -> dict[str, Any]:
    return dict(jwt.decode(token, OctKey.import_key(secret), algorithms=["HS256"]).claims)


def test_room_is_created_at_accept_and_unguessable(jitsi: None) -> None:
    first = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION).act
    second = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION).act
    assert first.room_name
    assert second.room_name
    assert first.room_name != second.room_name
    assert first.room_name.startswith("enrs-")
    assert len(first.room_name) >= 40
    assert str(first.reference) not in first.room_name
    assert str(first.pk) != first.room_name
    assert first.fallback == Fallback.NONE
    assert first.events.filter(event="room_created").count() == 1
    # Created once: planning again keeps the name.
    again = act_services.act_plan(act=first, actor=first.expert, scheduled_at=timezone.now())
    assert again.room_name == first.room_name


def test_join_gives_a_short_lived_jwt_with_the_expected_claims(jitsi: None) -> None:
    scenario = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION)
    act, expert = scenario.act, scenario.expert
    assert expert is not None
    before = int(timezone.now().timestamp())
    url, token = rooms.room_join(act=act, user=expert)
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.path) == ("https", "visio.enrs.example", f"/{act.room_name}")
    assert parse_qs(parts.query)["jwt"] == [token]
    claims = _decode(token)
    assert claims["aud"] == "jitsi"
    assert claims["iss"] == "enrs"
    assert claims["sub"] == "visio.enrs.example"
    assert claims["room"] == act.room_name
    assert before + 15 * 60 <= claims["exp"] <= int(timezone.now().timestamp()) + 15 * 60
    assert claims["moderator"] is True
    assert claims["context"]["user"]["moderator"] is True
    assert claims["context"]["user"]["email"] == expert.email
    assert claims["context"]["user"]["name"] == expert.get_full_name()
    JWTClaimsRegistry(aud={"essential": True, "value": "jitsi"}).validate(claims)

    # The requester waits in the lobby: not a moderator.
    _, requester_token = rooms.room_join(act=act, user=scenario.requester)
    requester_claims = _decode(requester_token)
    assert requester_claims["moderator"] is False
    assert requester_claims["context"]["user"]["moderator"] is False
    assert requester_claims["room"] == act.room_name

    joins = AuditEvent.objects.filter(action="telemedecine.room.join", target_id=str(act.pk))
    assert joins.count() == 2
    assert sorted(act.events.filter(event="room_joined").values_list("detail__moderator", flat=True)) == [
        False,
        True,
    ]


def test_token_expires_and_is_bound_to_the_secret(jitsi: None) -> None:
    act = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION).act
    issued = timezone.now() - dt.timedelta(minutes=16)
    token = rooms.room_token(act=act, user=act.expert, now=issued)
    claims = _decode(token)
    with pytest.raises(ExpiredTokenError):
        JWTClaimsRegistry().validate(claims)
    with pytest.raises(BadSignatureError):
        _decode(token, secret="un-autre-secret-tout-aussi-long-987654321")


def test_only_participants_join_and_only_while_the_act_is_open(jitsi: None) -> None:
    scenario = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION)
    act = scenario.act
    with pytest.raises(PermissionDenied):
        rooms.room_join(act=act, user=make_user())
    nurse = make_user()
    act_services.participant_add(
        act=act, actor=scenario.requester, role=ParticipantRole.CARE_STAFF, user=nurse
    )
    _, token = rooms.room_join(act=act, user=nurse)
    assert _decode(token)["moderator"] is False
    closed = act_in_state(ActStatus.CLOSED, act_type=ActType.TELECONSULTATION).act
    with pytest.raises(ValidationError):
        rooms.room_join(act=closed, user=closed.expert)


def test_short_secret_is_refused(jitsi: None, settings: Any) -> None:
    settings.TLM_JITSI_APP_SECRET = "court"
    act = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION).act
    with pytest.raises(ValidationError, match="trop court"):
        rooms.room_join(act=act, user=act.expert)


def test_without_jitsi_the_act_works_with_a_fallback_in_the_trace(no_jitsi: None) -> None:
    scenario = act_in_state(ActStatus.CLOSED, act_type=ActType.TELECONSULTATION)
    act = scenario.act
    assert act.room_name == ""
    assert act.fallback == Fallback.PHONE
    fallback = act.events.get(event="fallback")
    assert fallback.detail["fallback"] == "phone"
    assert "visioconférence" in fallback.detail["reason"]
    assert act.status == ActStatus.CLOSED
    with pytest.raises(ValidationError, match="Téléphone"):
        rooms.room_join(act=act, user=scenario.expert)
    assert "join" not in act_services.act_allowed_actions(act, scenario.expert)
    expertise = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELEEXPERTISE).act
    assert expertise.fallback == Fallback.ASYNC
