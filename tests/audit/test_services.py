import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_login_failed
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from enrs.accounts.authn import AuthMethod, sign_in
from enrs.audit.chain import GENESIS_HASH, event_hash
from enrs.audit.models import AuditEvent
from enrs.audit.services import AUDIT_CHAIN_LOCK_KEY, audit_chain_verify, audit_record
from tests.audit.conftest import new_user
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

INS = "185072A12345678"


def test_event_takes_its_context_from_the_request(make_request: Callable[..., HttpRequest]) -> None:
    user = new_user(username="dr.martin")
    patient_file = new_user()  # any saved model will do as a target
    request = make_request(
        user, method="otp", REMOTE_ADDR="203.0.113.5", HTTP_USER_AGENT="Firefox/128.0 (X11; Linux)"
    )

    event = audit_record(
        action="patient.read", request=request, target=patient_file, patient_ins=" 185072a12345678 "
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == user
    assert stored.actor_label == "dr.martin"
    assert stored.auth_method == "otp"
    assert stored.ip == "203.0.113.5"
    assert stored.user_agent == "Firefox/128.0 (X11; Linux)"
    assert stored.request_id == "req-0123456789abcdef"
    assert (stored.target_type, stored.target_id) == ("accounts.user", str(patient_file.pk))
    assert stored.patient_ins == INS
    assert stored.outcome == "success"
    assert stored.detail == {}


def test_client_ip_comes_from_the_trusted_proxy_header(make_request: Callable[..., HttpRequest]) -> None:
    behind_nginx = make_request(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="::ffff:198.51.100.7")
    forged = make_request(REMOTE_ADDR="203.0.113.5", HTTP_X_REAL_IP="198.51.100.7")
    garbage = make_request(REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="pas-une-adresse")

    assert audit_record(action="test.ip", request=behind_nginx).ip == "198.51.100.7"
    assert audit_record(action="test.ip", request=forged).ip == "203.0.113.5"
    assert audit_record(action="test.ip", request=garbage).ip is None
    assert audit_chain_verify().ok


def test_user_agent_is_cut_and_cleaned(make_request: Callable[..., HttpRequest]) -> None:
    request = make_request(HTTP_USER_AGENT="A\x00" + "x" * 2000)
    event = AuditEvent.objects.get(pk=audit_record(action="test.ua", request=request).pk)
    assert event.user_agent == "A" + "x" * 511


def test_anonymous_request_has_no_actor_nor_method(make_request: Callable[..., HttpRequest]) -> None:
    event = audit_record(action="auth.cps.refused", request=make_request(), outcome="failure")
    assert event.actor is None
    assert event.actor_label == ""
    assert event.auth_method == ""


def test_explicit_actor_wins_over_the_signed_in_user(make_request: Callable[..., HttpRequest]) -> None:
    admin, clinician = new_user(admin=True), new_user(username="dr.durand")
    event = audit_record(action="otp.enrol", request=make_request(admin, method="password"), actor=clinician)
    assert event.actor == clinician
    assert event.actor_label == "dr.durand"
    assert event.auth_method == "password"  # how the session was opened


def test_without_request_only_the_given_fields_are_set() -> None:
    user = new_user()
    event = audit_record(
        action="export.done", actor=user, target_type="dmp.document", target_id="doc-9", detail={"n": 3}
    )
    assert (event.actor, event.ip, event.user_agent, event.request_id, event.auth_method) == (
        user,
        None,
        "",
        "",
        "",
    )
    assert (event.target_type, event.target_id, event.detail) == ("dmp.document", "doc-9", {"n": 3})


def test_events_form_a_chain_from_genesis() -> None:
    first = audit_record(action="test.first")
    second = audit_record(action="test.second", outcome="failure")
    third = audit_record(action="test.third", outcome="denied")

    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    for event in AuditEvent.objects.order_by("id"):
        assert event.hash == event_hash(event.prev_hash, event.content())
    result = audit_chain_verify()
    assert result.ok
    assert (result.checked, result.last_id, result.last_hash) == (3, third.pk, third.hash)


def test_detail_comes_back_from_postgresql_exactly_as_hashed() -> None:
    when = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
    event = audit_record(
        action="test.detail",
        detail={
            "big": 1e16,  # jsonb prints it 10000000000000000
            "negative_zero": -0.0,  # jsonb has no -0
            "small": 1e-7,
            "pi": 3.141592653589793,
            "text": "nul\x00 é",
            "when": when,
            "nested": {"b": [1, (2, 3)], 7: "clé entière"},
        },
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.detail == {
        "big": 10000000000000000,
        "negative_zero": 0.0,
        "small": 1e-7,
        "pi": 3.141592653589793,
        "text": "nul é",
        "when": "2024-05-02T10:00:00+00:00",
        "nested": {"b": [1, [2, 3]], "7": "clé entière"},
    }
    assert stored.hash == event_hash(stored.prev_hash, stored.content())
    assert audit_chain_verify().ok


def fail_after_auditing() -> None:
    with transaction.atomic():
        audit_record(action="test.rolled_back")
        raise RuntimeError("the business write failed")


def test_event_rolls_back_with_the_business_write() -> None:
    kept = audit_record(action="test.kept")
    with pytest.raises(RuntimeError, match="business write failed"):
        fail_after_auditing()

    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["test.kept"]
    assert audit_record(action="test.after").prev_hash == kept.hash
    assert audit_chain_verify().ok


def test_writers_hold_the_advisory_lock_until_their_transaction_ends() -> None:
    high, low = AUDIT_CHAIN_LOCK_KEY >> 32, AUDIT_CHAIN_LOCK_KEY & 0xFFFFFFFF
    query = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND classid = %s AND objid = %s AND objsubid = 1 AND granted"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(query, [high, low])
        assert cursor.fetchone() == (0,)
        audit_record(action="test.locked")
        cursor.execute(query, [high, low])
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize(
    "action",
    ["", "login", "Auth.login", "auth..login", "auth.login.", ".auth", "auth.log in", "a." + "b" * 100],
)
def test_malformed_actions_are_refused(action: str) -> None:
    with pytest.raises(ValidationError, match="Action d'audit invalide"):
        audit_record(action=action)
    assert not AuditEvent.objects.exists()


def test_outcome_is_one_of_three() -> None:
    with pytest.raises(ValidationError, match="Résultat d'audit invalide"):
        audit_record(action="auth.login", outcome="ok")
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("ins", ["12345", "18507201234567X", "1850720123456789", "185072C12345678"])
def test_malformed_ins_is_refused(ins: str) -> None:
    with pytest.raises(ValidationError, match="INS du patient invalide"):
        audit_record(action="patient.read", patient_ins=ins)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_type": "", "target_id": "12"}, "demande un type de cible"),
        ({"detail": ["pas", "un", "dictionnaire"]}, "doit être un dictionnaire"),
        ({"detail": {"objet": object()}}, "JSON simple"),
        ({"detail": {"infini": float("inf")}}, "JSON simple"),
    ],
)
def test_malformed_targets_and_details_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        audit_record(action="test.bad", **kwargs)
    assert not AuditEvent.objects.exists()


def test_target_must_be_saved_and_not_given_twice() -> None:
    with pytest.raises(ValidationError, match="doit être enregistrée"):
        audit_record(action="test.bad", target=UserFactory.build())
    with pytest.raises(ValidationError, match="pas les deux"):
        audit_record(action="test.bad", target=new_user(), target_type="accounts.user", target_id="1")
    with pytest.raises(ValidationError, match="utilisateur enregistré"):
        audit_record(action="test.bad", actor=UserFactory.build())
    assert not AuditEvent.objects.exists()


def test_sign_in_is_recorded_with_its_method(rf: RequestFactory) -> None:
    user = new_user(username="dr.petit")
    request = rf.get("/compte/connexion/", REMOTE_ADDR="192.0.2.44", HTTP_USER_AGENT="Edge")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.user = AnonymousUser()  # as AuthenticationMiddleware leaves it
    request.request_id = "req-sign-in-0001"  # type: ignore[attr-defined]

    sign_in(request, user, method=AuthMethod.OTP)

    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.actor_label) == ("auth.login", user, "dr.petit")
    assert (event.auth_method, event.detail, event.ip) == ("otp", {"method": "otp"}, "192.0.2.44")
    assert event.request_id == "req-sign-in-0001"


def test_failed_password_is_recorded_with_the_typed_username_never_the_password(
    make_request: Callable[..., HttpRequest],
) -> None:
    user = new_user(username="dr.leroy")
    request = make_request(REMOTE_ADDR="192.0.2.45", HTTP_USER_AGENT="Safari")

    assert authenticate(request, username="dr.leroy", password="pas-le-bon-mot-de-passe") is None
    assert authenticate(request, username="inconnu", password="pas-le-bon-mot-de-passe") is None

    known, unknown = AuditEvent.objects.order_by("id")
    assert (known.action, known.outcome, known.actor) == ("auth.login.failed", "failure", None)
    assert known.actor_label == "dr.leroy"
    assert (known.target_type, known.target_id) == ("accounts.user", str(user.pk))
    assert known.detail == {"username": "dr.leroy"}
    assert (known.ip, known.user_agent) == ("192.0.2.45", "Safari")
    assert (unknown.actor_label, unknown.target_type, unknown.target_id) == ("inconnu", "", "")
    for event in (known, unknown):
        assert "pas-le-bon-mot-de-passe" not in str(event.content())


def test_failed_sign_in_without_request_nor_username_is_still_recorded() -> None:
    user_login_failed.send(sender=__name__, credentials={"password": "********"})
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_label, event.detail, event.ip) == (
        "auth.login.failed",
        "",
        {"username": ""},
        None,
    )


def test_sign_in_and_failure_recorded_once_each(
    rf: RequestFactory, make_request: Callable[..., HttpRequest]
) -> None:
    """`user_logged_in` is not recorded a second time: sign_in() is the one place."""
    user = new_user()
    request = rf.get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.user = AnonymousUser()
    sign_in(request, user, method=AuthMethod.PASSWORD)
    authenticate(make_request(), username=user.username, password="faux")
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == ["auth.login", "auth.login.failed"]


def test_concurrent_writers_keep_one_linear_chain(audit_truncate_allowed: None) -> None:
    writers, per_writer = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                audit_record(action="test.concurrent", detail={"writer": n, "i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    result = audit_chain_verify()
    assert result.ok, result.message
    assert result.checked == writers * per_writer
    assert AuditEvent.objects.values("prev_hash").distinct().count() == writers * per_writer
