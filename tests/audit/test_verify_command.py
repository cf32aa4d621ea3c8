from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from enrs.accounts.authn import AuthMethod, sign_in
from enrs.audit.models import AuditAppendOnlyError, AuditEvent
from enrs.audit.services import BreakReason, audit_chain_verify, audit_record
from tests.audit.conftest import new_user, replica_session
from tests.audit.test_services import fail_after_auditing

pytestmark = pytest.mark.django_db


@pytest.fixture
def sign_ins(rf: RequestFactory) -> list[AuditEvent]:
    """Six events written by real sign-ins (authn.sign_in), each with its own request."""
    for n, method in enumerate([AuthMethod.PASSWORD, AuthMethod.OTP, AuthMethod.CPS] * 2):
        request = rf.get(
            "/compte/connexion/", REMOTE_ADDR=f"192.0.2.{n + 1}", HTTP_USER_AGENT=f"Navigateur {n}"
        )
        SessionMiddleware(lambda r: HttpResponse()).process_request(request)
        request.user = AnonymousUser()
        request.request_id = f"req-sign-in-{n:04d}"  # type: ignore[attr-defined]
        sign_in(request, new_user(username=f"utilisateur.{n}"), method=method)
    events = list(AuditEvent.objects.order_by("id"))
    assert [e.action for e in events] == ["auth.login"] * 6
    return events


def run_verify(*args: str, full: bool = False) -> str:
    """The verdict line (or the whole output with `full`)."""
    out = StringIO()
    call_command("verify_audit_chain", *args, stdout=out)
    text = out.getvalue().strip()
    return text if full else text.splitlines()[0]


def sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_empty_trail_is_intact() -> None:
    assert run_verify() == "Chaîne d'audit intègre : 0 événements vérifiés."


def test_intact_chain_of_sign_ins(sign_ins: list[AuditEvent]) -> None:
    last = sign_ins[-1]
    expected = (
        "Chaîne d'audit intègre : 6 événements vérifiés.\n"
        f"Dernier événement : n° {last.pk}, empreinte {last.hash}"
    )
    assert run_verify(full=True) == expected
    # Small chunks: the walk goes across chunk boundaries.
    assert run_verify("--chunk-size", "4", full=True) == expected


def test_a_row_altered_in_sql_is_named(sign_ins: list[AuditEvent]) -> None:
    victim = sign_ins[3]
    with replica_session():
        sql("UPDATE audit_auditevent SET actor_label = 'quelquun.dautre' WHERE id = %s", [victim.pk])
    assert AuditEvent.objects.get(pk=victim.pk).actor_label == "quelquun.dautre"

    with pytest.raises(CommandError) as excinfo:
        run_verify("--chunk-size", "2")

    message = str(excinfo.value)
    assert message.startswith(f"Chaîne d'audit rompue à l'événement n° {victim.pk} : contenu modifié")
    assert "(3 événements intègres avant lui.)" in message
    result = audit_chain_verify()
    assert result.first_break is not None
    assert (result.first_break.event_id, result.first_break.reason) == (
        victim.pk,
        BreakReason.CONTENT_ALTERED,
    )
    assert (result.checked, result.last_id) == (3, sign_ins[2].pk)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("occurred_at", "2020-01-01T00:00:00Z"),
        ("ip", "198.51.100.99"),
        ("detail", '{"method": "cps"}'),
        ("actor_id", None),
    ],
)
def test_any_hashed_column_counts(sign_ins: list[AuditEvent], column: str, value: object) -> None:
    victim = sign_ins[1]
    with replica_session():
        sql(f"UPDATE audit_auditevent SET {column} = %s WHERE id = %s", [value, victim.pk])  # noqa: S608

    result = audit_chain_verify()
    assert result.first_break is not None
    assert (result.first_break.event_id, result.first_break.reason) == (
        victim.pk,
        BreakReason.CONTENT_ALTERED,
    )


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(sign_ins: list[AuditEvent]) -> None:
    """Someone who rehashes the row they changed still breaks the link of the row after it."""
    from enrs.audit.chain import event_hash

    victim = sign_ins[2]
    forged = AuditEvent.objects.get(pk=victim.pk)
    forged.actor_label = "faussaire"
    new_hash = event_hash(forged.prev_hash, forged.content())
    with replica_session():
        sql(
            "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE id = %s",
            ["faussaire", new_hash, victim.pk],
        )

    with pytest.raises(CommandError, match=rf"n° {sign_ins[3].pk} : lien rompu .* n° {victim.pk}\."):
        run_verify()


def test_a_deleted_row_is_reported_as_missing(sign_ins: list[AuditEvent]) -> None:
    with replica_session():
        sql("DELETE FROM audit_auditevent WHERE id = %s", [sign_ins[2].pk])

    with pytest.raises(CommandError) as excinfo:
        run_verify()

    assert f"événement n° {sign_ins[3].pk}" in str(excinfo.value)
    assert f"entre les n° {sign_ins[1].pk} et {sign_ins[3].pk} ont été supprimés" in str(excinfo.value)
    result = audit_chain_verify()
    assert result.first_break is not None
    assert result.first_break.reason == BreakReason.ROW_MISSING


def test_a_deleted_first_row_is_reported_as_missing(sign_ins: list[AuditEvent]) -> None:
    with replica_session():
        sql("DELETE FROM audit_auditevent WHERE id = %s", [sign_ins[0].pk])

    with pytest.raises(CommandError, match=rf"n° {sign_ins[1].pk} : le premier événement conservé"):
        run_verify()


def test_gaps_left_by_rolled_back_events_are_not_breaks() -> None:
    audit_record(action="test.before")
    with pytest.raises(RuntimeError):
        fail_after_auditing()
    audit_record(action="test.after")
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert ids[1] - ids[0] == 2
    assert run_verify() == "Chaîne d'audit intègre : 2 événements vérifiés."


def test_a_changed_prev_hash_is_a_broken_link(sign_ins: list[AuditEvent]) -> None:
    with replica_session():
        sql("UPDATE audit_auditevent SET prev_hash = %s WHERE id = %s", ["f" * 64, sign_ins[4].pk])
    result = audit_chain_verify()
    assert result.first_break is not None
    assert (result.first_break.event_id, result.first_break.reason) == (
        sign_ins[4].pk,
        BreakReason.LINK_BROKEN,
    )


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(CommandError, match="--chunk-size"):
        run_verify("--chunk-size", "0")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET actor_label = 'x' WHERE id = %s",
        "UPDATE audit_auditevent SET hash = hash WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_the_trigger_refuses_updates_and_deletes(sign_ins: list[AuditEvent], statement: str) -> None:
    target = sign_ins[0]
    with pytest.raises(DatabaseError, match="audit_auditevent est en ajout seul"), transaction.atomic():
        sql(statement, [target.pk])
    assert AuditEvent.objects.filter(pk=target.pk, actor_label=target.actor_label).exists()
    assert run_verify() == "Chaîne d'audit intègre : 6 événements vérifiés."


def truncate(*, allowed: str) -> int:
    """TRUNCATE the trail inside a rolled-back transaction; how many rows were left just after."""
    with transaction.atomic():
        sql(f"SET LOCAL enrs.audit_allow_truncate = {allowed}")
        sql("TRUNCATE audit_auditevent")
        left = AuditEvent.objects.count()
        transaction.set_rollback(True)
    return left


def test_the_trigger_refuses_truncate_unless_the_session_opted_in(sign_ins: list[AuditEvent]) -> None:
    # The foreign-key checks of the rows inserted in this test's transaction are deferred: run them now,
    # PostgreSQL refuses to TRUNCATE a table with pending trigger events.
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(DatabaseError, match="en ajout seul : TRUNCATE refusé"):
        truncate(allowed="off")
    assert AuditEvent.objects.count() == 6

    assert truncate(allowed="on") == 0
    assert AuditEvent.objects.count() == 6


def test_the_orm_refuses_changes_too(sign_ins: list[AuditEvent]) -> None:
    event = sign_ins[0]
    event.actor_label = "x"
    with pytest.raises(AuditAppendOnlyError):
        event.save()
    with pytest.raises(AuditAppendOnlyError):
        event.delete()
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="x")
    with pytest.raises(AuditAppendOnlyError):
        AuditEvent.objects.all().delete()
    assert run_verify() == "Chaîne d'audit intègre : 6 événements vérifiés."


def test_verification_result_for_a_periodic_task(make_request: Callable[..., HttpRequest]) -> None:
    first = audit_record(action="test.one", request=make_request(REMOTE_ADDR="::ffff:192.0.2.1"))
    last = audit_record(action="test.two", request=make_request(REMOTE_ADDR="2001:db8::7"))
    result = audit_chain_verify(chunk_size=1)
    assert result.ok
    assert (result.checked, result.last_id, result.last_hash) == (2, last.pk, last.hash)
    assert result.message == "Chaîne d'audit intègre : 2 événements vérifiés."
    assert first.ip == "192.0.2.1"
