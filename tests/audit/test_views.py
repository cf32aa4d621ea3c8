import csv
import io
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from enrs.audit.services import audit_chain_verify, audit_record
from enrs.audit.views import CSV_HEADER, PAGE_SIZE
from enrs.core.csv_export import csv_cell
from tests.audit.conftest import new_user, record_at

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
INS = "185072A12345678"
LIST_URL = "/audit/"
EXPORT_URL = "/audit/export.csv"


@pytest.fixture
def admin(client: Client) -> User:
    """An administrator with a strong session (the trail names patients)."""
    user = new_user(admin=True, username="admin.gcs")
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    return user


def test_password_only_administrator_is_sent_to_the_second_factor(client: Client) -> None:
    client.force_login(new_user(admin=True, username="admin.faible"))
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:otp_enrol"))


def read_csv(response: object) -> tuple[str, list[list[str]]]:
    body = b"".join(response.streaming_content).decode("utf-8")  # type: ignore[attr-defined]
    return body, list(csv.reader(io.StringIO(body.removeprefix("\ufeff")), delimiter=";"))


def test_urls() -> None:
    assert reverse("audit:event_list") == LIST_URL
    assert reverse("audit:event_export") == EXPORT_URL


def test_administrator_sees_the_trail(
    client: Client, admin: User, make_request: Callable[..., HttpRequest]
) -> None:
    clinician = new_user(username="dr.martin", first_name="Jeanne", last_name="Martin")
    read_by_card = make_request(clinician, method="cps", REMOTE_ADDR="192.0.2.61")
    when = datetime(2024, 3, 1, 9, 15, tzinfo=PARIS)
    record_at(when, action="patient.read", request=read_by_card, patient_ins=INS)
    failed = audit_record(action="auth.login.failed", outcome="failure")

    response = client.get(LIST_URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Journal d'audit" in page
    assert "Consultation de données d&#x27;un patient" in page
    assert "dr.martin" in page
    assert "Jeanne Martin" in page
    assert INS in page
    assert "01/03/2024 09:15:00" in page
    assert "Carte CPS" in page
    assert "192.0.2.61" in page
    assert f'id="evenement-{failed.pk}"' in page
    assert "Échec" in page
    shown = [e.action for e in response.context["events"]]
    assert shown[:2] == ["audit.search", "auth.login.failed"]  # the search itself comes first


def test_viewing_the_trail_is_audited(client: Client, admin: User) -> None:
    client.get(LIST_URL, {"action": "patient", "patient_ins": INS, "date_from": "2024-03-01", "page": "2"})

    event = AuditEvent.objects.get(action="audit.search")
    assert (event.actor, event.outcome) == (admin, "success")
    assert event.detail == {
        "filters": {"action_prefix": "patient", "patient_ins": INS, "date_from": "2024-03-01"},
        "page": 2,
    }
    assert event.request_id  # set by RequestIdMiddleware
    assert audit_chain_verify().ok


def test_filters_narrow_the_table(client: Client, admin: User) -> None:
    martin = new_user(username="dr.martin")
    record_at(datetime(2024, 3, 1, 9, tzinfo=PARIS), action="patient.read", actor=martin, patient_ins=INS)
    record_at(datetime(2024, 3, 2, 9, tzinfo=PARIS), action="patient.read", actor=martin, outcome="denied")
    record_at(datetime(2024, 3, 1, 10, tzinfo=PARIS), action="auth.login", actor=martin)

    response = client.get(
        LIST_URL,
        {
            "actor": "dr.martin",
            "action": "patient",
            "outcome": "success",
            "date_from": "2024-03-01",
            "date_to": "2024-03-01",
        },
    )

    assert [(e.action, e.patient_ins) for e in response.context["events"]] == [("patient.read", INS)]
    assert (
        'href="/audit/export.csv?actor=dr.martin&amp;action=patient&amp;outcome=success'
        in response.content.decode()
    )


def test_invalid_filters_are_shown_next_to_their_field(client: Client, admin: User) -> None:
    response = client.get(
        LIST_URL, {"patient_ins": "123", "date_from": "2024-03-05", "date_to": "2024-03-01"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "L&#x27;INS compte 15 caractères" in page
    assert "La date de fin doit être postérieure ou égale à la date de début." in page
    assert 'id="evenements"' not in page
    assert not AuditEvent.objects.filter(action="audit.search").exists()


def test_pages_of_fifty_without_counting_the_trail(client: Client, admin: User) -> None:
    for _ in range(PAGE_SIZE + 5):
        audit_record(action="patient.read", patient_ins=INS)

    first = client.get(LIST_URL, {"action": "patient"})
    second = client.get(LIST_URL, {"action": "patient", "page": "2"})
    beyond = client.get(LIST_URL, {"action": "patient", "page": "abc"})

    assert len(first.context["events"]) == PAGE_SIZE
    assert first.context["has_next"]
    assert not first.context["has_previous"]
    assert "?action=patient&amp;page=2" in first.content.decode()
    assert len(second.context["events"]) == 5
    assert second.context["has_previous"]
    assert not second.context["has_next"]
    assert beyond.context["page"] == 1


def test_list_page_query_count_does_not_grow_with_rows(
    client: Client, admin: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    def make_events(n: int) -> None:
        for i in range(n):
            audit_record(action="auth.login", actor=new_user(first_name=f"P{i}"))

    make_events(3)
    # session, user, advisory lock, last hash, insert of audit.search, the page of events (with actors),
    # session save (in a savepoint: 3 queries, as the test runs inside a transaction)
    with django_assert_num_queries(9):
        client.get(LIST_URL)
    make_events(30)
    with django_assert_num_queries(9):
        client.get(LIST_URL)


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ARS_ANALYST, Role.GCS_STAFF])
@pytest.mark.parametrize("url", [LIST_URL, EXPORT_URL])
def test_other_roles_are_refused(client_as: Callable[[Role], Client], role: Role, url: str) -> None:
    audit_record(action="patient.read", patient_ins=INS)
    response = client_as(role).get(url)
    assert response.status_code == 403
    assert INS not in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="audit.").exists()


@pytest.mark.parametrize("url", [LIST_URL, EXPORT_URL])
def test_anonymous_visitors_go_to_the_sign_in_page(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


def test_export_is_an_excel_friendly_csv(client: Client, admin: User) -> None:
    clinician = new_user(username="dr.martin")
    read = record_at(
        datetime(2024, 3, 1, 9, 15, 0, 123456, tzinfo=PARIS),
        action="patient.read",
        actor=clinician,
        patient_ins=INS,
        target_type="dmp.document",
        target_id="doc-42",
        detail={"motif": "consultation", "n": 2},
    )

    response = client.get(EXPORT_URL, {"action": "patient"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="journal-audit-')
    body, rows = read_csv(response)
    assert body.startswith("\ufeffN°;Date;Utilisateur;")
    assert "\r\n" in body
    assert rows[0] == list(CSV_HEADER)
    assert rows[1:] == [
        [
            str(read.pk),
            "2024-03-01T09:15:00.123456+01:00",
            "dr.martin",
            "",
            "patient.read",
            "dmp.document",
            "doc-42",
            INS,
            "",
            "",
            "Succès",
            "",
            '{"motif": "consultation", "n": 2}',
            read.prev_hash,
            read.hash,
        ]
    ]


def test_export_neutralises_spreadsheet_formulas(client: Client, admin: User) -> None:
    audit_record(
        action="auth.login.failed",
        outcome="failure",
        target_type='=HYPERLINK("http://example.invalid";"clic")',
        target_id="+33 6 12",
        detail={"username": "@SUM(A1)"},
    )
    audit_record(action="test.minus", target_type="-2+3", target_id="\tcalc")

    _, rows = read_csv(client.get(EXPORT_URL, {"action": "test"}))
    assert [row[5:7] for row in rows[1:]] == [["'-2+3", "'\tcalc"]]
    _, rows = read_csv(client.get(EXPORT_URL, {"action": "auth"}))
    (row,) = rows[1:]
    assert row[5] == '\'=HYPERLINK("http://example.invalid";"clic")'
    assert row[6] == "'+33 6 12"
    assert row[12] == '{"username": "@SUM(A1)"}'  # starts with "{": not a formula


@pytest.mark.parametrize(
    ("value", "cell"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("a=b", "a=b"), (None, ""), (12, "12")],
)
def test_csv_cells(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_export_is_audited_and_follows_the_filters(client: Client, admin: User) -> None:
    audit_record(action="patient.read", patient_ins=INS)
    audit_record(action="auth.login")

    _, rows = read_csv(client.get(EXPORT_URL, {"patient_ins": INS}))

    assert [row[4] for row in rows[1:]] == ["patient.read"]
    event = AuditEvent.objects.get(action="audit.export")
    assert (event.actor, event.detail) == (admin, {"filters": {"patient_ins": INS}})
    _, everything = read_csv(client.get(EXPORT_URL))
    assert [row[4] for row in everything[1:]] == [
        "audit.export",
        "audit.export",
        "auth.login",
        "patient.read",
    ]


def test_export_with_invalid_filters_exports_nothing(client: Client, admin: User) -> None:
    response = client.get(EXPORT_URL, {"date_from": "pas-une-date"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_django_admin_is_read_only_and_audited(client: Client, admin: User) -> None:
    event = audit_record(action="patient.read", patient_ins=INS)

    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x.y"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "patient.read"
    viewed = AuditEvent.objects.filter(action__in=["audit.search", "audit.view"], actor=admin)
    assert sorted(viewed.values_list("action", "target_id")) == [
        ("audit.search", ""),
        ("audit.view", str(event.pk)),
        ("audit.view", str(event.pk)),
    ]
