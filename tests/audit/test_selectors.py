from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.http import HttpRequest
from pytest_django import DjangoAssertNumQueries

from enrs.audit.selectors import audit_event_search, login_history_for
from tests.audit.conftest import new_user, record_at

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
INS = "185072A12345678"
OTHER_INS = "290012B98765432"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS)


def actions(events: object) -> list[str]:
    return [e.action for e in events]  # type: ignore[attr-defined]


def test_search_without_filters_lists_everything_newest_first() -> None:
    record_at(at(2024, 3, 1, 8), action="auth.login")
    record_at(at(2024, 3, 3, 8), action="patient.read", patient_ins=INS)
    record_at(at(2024, 3, 2, 8), action="otp.enrol")
    assert actions(audit_event_search()) == ["patient.read", "otp.enrol", "auth.login"]


def test_actor_is_a_user_or_a_recorded_username() -> None:
    martin, durand = new_user(username="dr.martin"), new_user(username="dr.durand")
    record_at(at(2024, 3, 1, 8), action="auth.login", actor=martin)
    record_at(at(2024, 3, 1, 9), action="auth.login", actor=durand)
    record_at(at(2024, 3, 1, 10), action="patient.read", actor=martin, patient_ins=INS)

    assert actions(audit_event_search(actor=martin)) == ["patient.read", "auth.login"]
    assert actions(audit_event_search(actor="dr.durand")) == ["auth.login"]
    assert actions(audit_event_search(actor=" dr.martin ")) == ["patient.read", "auth.login"]
    assert actions(audit_event_search(actor="dr.inconnu")) == []


def test_action_prefix_matches_whole_dotted_segments() -> None:
    for hour, action in enumerate(
        ["auth.login", "auth.login.failed", "auth.lockout", "authz.check", "otp.enrol"]
    ):
        record_at(at(2024, 3, 1, 8 + hour), action=action)

    assert actions(audit_event_search(action_prefix="auth")) == [
        "auth.lockout",
        "auth.login.failed",
        "auth.login",
    ]
    assert actions(audit_event_search(action_prefix="auth.login")) == ["auth.login.failed", "auth.login"]
    assert actions(audit_event_search(action_prefix="auth.login.")) == ["auth.login.failed", "auth.login"]
    assert actions(audit_event_search(action_prefix="auth.log")) == []
    assert actions(audit_event_search(action_prefix="otp.enrol")) == ["otp.enrol"]


def test_patient_outcome_and_target_filters() -> None:
    user = new_user()
    record_at(at(2024, 3, 1, 8), action="patient.read", patient_ins=INS, target=user)
    record_at(at(2024, 3, 1, 9), action="patient.read", patient_ins=OTHER_INS, outcome="denied")
    record_at(at(2024, 3, 1, 10), action="auth.login", outcome="failure")

    assert [e.patient_ins for e in audit_event_search(patient_ins="185072a 12345678")] == [INS]
    assert [e.patient_ins for e in audit_event_search(outcome="denied")] == [OTHER_INS]
    found = audit_event_search(target_type="accounts.user", target_id=str(user.pk))
    assert [e.patient_ins for e in found] == [INS]
    assert list(audit_event_search(target_type="accounts.user", target_id="0")) == []


def test_dates_cover_whole_days_in_paris_time() -> None:
    record_at(at(2024, 2, 29, 23, 59), action="day.before")
    record_at(at(2024, 3, 1, 0, 0), action="day.first")  # 2024-02-29 23:00 UTC
    record_at(at(2024, 3, 2, 23, 59, 59), action="day.last")  # 22:59:59 UTC
    record_at(at(2024, 3, 3, 0, 0), action="day.after")

    in_range = audit_event_search(date_from=date(2024, 3, 1), date_to=date(2024, 3, 2))
    assert actions(in_range) == ["day.last", "day.first"]
    assert actions(audit_event_search(date_from=date(2024, 3, 3))) == ["day.after"]
    assert actions(audit_event_search(date_to=date(2024, 2, 29))) == ["day.before"]
    exact = audit_event_search(date_from=at(2024, 3, 1, 0, 0), date_to=at(2024, 3, 2, 23, 59, 59))
    assert actions(exact) == ["day.last", "day.first"]


def test_filters_combine() -> None:
    martin = new_user(username="dr.martin")
    record_at(at(2024, 3, 1, 8), action="patient.read", actor=martin, patient_ins=INS)
    record_at(at(2024, 3, 1, 9), action="patient.read", actor=martin, patient_ins=OTHER_INS)
    record_at(at(2024, 3, 5, 9), action="patient.read", actor=martin, patient_ins=INS)
    record_at(at(2024, 3, 1, 10), action="patient.read", patient_ins=INS)

    found = audit_event_search(
        actor=martin,
        action_prefix="patient",
        patient_ins=INS,
        date_from=date(2024, 3, 1),
        date_to=date(2024, 3, 1),
    )
    assert [(e.actor, e.patient_ins, e.occurred_at) for e in found] == [(martin, INS, at(2024, 3, 1, 8))]


def test_search_reads_events_and_actors_in_one_query(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    for n in range(12):
        record_at(at(2024, 3, 1, 8, n), action="auth.login", actor=new_user(first_name=f"Prénom{n}"))
    record_at(at(2024, 3, 1, 9), action="auth.login.failed", outcome="failure")

    with django_assert_num_queries(1):
        rows = [(e.action, e.actor.get_full_name() if e.actor else "") for e in audit_event_search()]
    assert len(rows) == 13
    assert rows[1][1].startswith("Prénom11")


def test_login_history_lists_the_users_last_sign_ins(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    user, other = new_user(), new_user()
    for day, method in enumerate(["password", "otp", "cps", "psc"], start=1):
        record_at(at(2024, 3, day, 8), action="auth.login", actor=user, detail={"method": method})
    record_at(at(2024, 3, 9, 8), action="auth.login", actor=other)
    record_at(at(2024, 3, 10, 8), action="auth.login.failed", outcome="failure", target=user)
    record_at(at(2024, 3, 11, 8), action="patient.read", actor=user, patient_ins=INS)

    with django_assert_num_queries(1):
        history = login_history_for(user, limit=3)

    assert [(s.occurred_at, s.method) for s in history] == [
        (at(2024, 3, 4, 8), "psc"),
        (at(2024, 3, 3, 8), "cps"),
        (at(2024, 3, 2, 8), "otp"),
    ]
    assert [s.method_label for s in history] == [
        "Pro Santé Connect",
        "Carte CPS",
        "Mot de passe et code à usage unique",
    ]
    assert len(login_history_for(user)) == 4
    assert login_history_for(new_user()) == []


def test_login_history_prefers_the_session_method_and_keeps_ip(
    make_request: Callable[..., HttpRequest],
) -> None:
    user = new_user()
    request = make_request(user, method="otp", REMOTE_ADDR="192.0.2.80")
    record_at(at(2024, 3, 1, 8), action="auth.login", request=request, actor=user)

    (sign_in,) = login_history_for(user)
    assert (sign_in.method, sign_in.method_label, sign_in.ip) == (
        "otp",
        "Mot de passe et code à usage unique",
        "192.0.2.80",
    )
