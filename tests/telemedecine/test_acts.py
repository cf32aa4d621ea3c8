"""Act workflow: every valid transition and its trace, invalid transitions refused, who may do what,
consent before start, traceability fields, amendments on closed acts only, expiry, notifications,
audit and usage events (never a patient identifier in usage)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from enrs.audit.models import AuditEvent
from enrs.usage.models import UsageEvent
from enrs.vault.services import blob_read
from telemedecine.models import (
    Act,
    ActAmendment,
    ActStatus,
    ActType,
    ConsentStatus,
    Fallback,
    Incident,
    ParticipantRole,
    Urgency,
)
from telemedecine.services import acts as svc
from tests.telemedecine.factories import (
    ShiftFactory,
    act_in_state,
    make_patient,
    make_pool,
    make_structure,
    make_user,
)

pytestmark = pytest.mark.django_db

ALL_STATES = set(ActStatus.values)
# action → (function, states it is valid from)
VALID_FROM = {
    "send": {ActStatus.DRAFT},
    "accept": {ActStatus.SENT},
    "refuse": {ActStatus.SENT},
    "cancel": {ActStatus.DRAFT, ActStatus.SENT, ActStatus.ACCEPTED},
    "start": {ActStatus.ACCEPTED},
    "sign": {ActStatus.IN_PROGRESS},
    "close": {ActStatus.REPORT_SIGNED},
}


@pytest.fixture(autouse=True)
def _no_video(settings: Any) -> None:
    settings.TLM_JITSI_URL = ""


def _call(action: str, act: Act, requester: Any, expert: Any) -> Act:
    """Call the service of ``action`` with the actor entitled to it (so only the state can refuse)."""
    answerer = expert or act.requested_professional
    match action:
        case "send":
            return svc.act_send(act=act, actor=requester)
        case "accept":
            return svc.act_accept(act=act, actor=answerer)
        case "refuse":
            return svc.act_refuse(act=act, actor=answerer, reason="Hors de mon domaine.")
        case "cancel":
            return svc.act_cancel(act=act, actor=requester)
        case "start":
            return svc.act_start(act=act, actor=answerer)
        case "sign":
            return svc.act_sign_report(act=act, actor=answerer, report_text="Avis rendu.")
        case "close":
            return svc.act_close(act=act, actor=answerer)
    raise AssertionError(action)


def test_full_path_records_times_trace_audit_and_usage(django_capture_on_commit_callbacks: Any) -> None:
    patient = make_patient(qualified=True)
    requester, expert = make_user(), make_user()
    structure = make_structure()
    act = svc.act_create(
        actor=requester,
        act_type=ActType.TELEEXPERTISE,
        patient=patient,
        requester_structure=structure,
        clinical_question="Hypodensité ?",
        urgency=Urgency.EMERGENCY,
        requested_professional=expert,
    )
    assert act.status == ActStatus.DRAFT
    assert act.requester == requester
    with django_capture_on_commit_callbacks(execute=True):
        act = svc.act_send(act=act, actor=requester)
    assert act.status == ActStatus.SENT
    assert act.sent_at is not None
    assert act.expires_at == act.sent_at + dt.timedelta(minutes=60)
    act = svc.act_accept(act=act, actor=expert)
    assert (act.status, act.expert) == (ActStatus.ACCEPTED, expert)
    assert act.fallback == Fallback.ASYNC  # no video service: the fallback is recorded
    assert {(p.user, p.role) for p in act.participants.all()} == {
        (requester, ParticipantRole.REQUESTER),
        (expert, ParticipantRole.EXPERT),
    }
    act = svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=requester)
    act = svc.act_start(act=act, actor=expert)
    assert act.status == ActStatus.IN_PROGRESS
    assert act.started_at is not None
    act = svc.act_sign_report(
        act=act, actor=expert, report_text="Pas d'AVC constitué.", prescriptions="Aucune"
    )
    assert act.status == ActStatus.REPORT_SIGNED
    assert act.report_signed_by == expert
    assert act.ended_at is not None
    assert act.report_pdf is not None
    act = svc.act_close(act=act, actor=expert)
    assert act.status == ActStatus.CLOSED
    assert act.closed_at is not None
    assert act.sent_at <= act.accepted_at <= act.started_at <= act.ended_at <= act.closed_at  # type: ignore[operator]

    events = list(act.events.values_list("event", flat=True))
    for expected in (
        "created",
        "sent",
        "fallback",
        "accepted",
        "consent",
        "started",
        "report_signed",
        "closed",
    ):
        assert expected in events
    assert events.index("sent") < events.index("accepted") < events.index("started") < events.index("closed")

    actions = set(AuditEvent.objects.filter(target_id=str(act.pk)).values_list("action", flat=True))
    assert {
        "telemedecine.act.create",
        "telemedecine.act.send",
        "telemedecine.act.accept",
        "telemedecine.act.consent",
        "telemedecine.act.start",
        "telemedecine.act.sign",
        "telemedecine.act.close",
    } <= actions
    assert set(
        AuditEvent.objects.filter(action="telemedecine.act.accept").values_list("patient_ins", flat=True)
    ) == {patient.ins}

    kinds = list(
        UsageEvent.objects.filter(kind__startswith="telemedecine.act_").values_list("kind", flat=True)
    )
    for state in ("draft", "sent", "accepted", "in_progress", "report_signed", "closed"):
        assert f"telemedecine.act_{state}" in kinds
    accepted = UsageEvent.objects.get(kind="telemedecine.act_accepted")
    assert accepted.dims["act_type"] == "teleexpertise"
    assert accepted.dims["urgency"] == "emergency"
    assert isinstance(accepted.dims["delay_s"], int)
    assert accepted.dims["delay_s"] >= 0
    closed = UsageEvent.objects.get(kind="telemedecine.act_closed")
    assert "delay_s" in closed.dims
    assert closed.structure_id == structure.pk


def test_usage_dims_never_carry_a_patient_identifier() -> None:
    patient = make_patient(qualified=True)
    scenario = act_in_state(ActStatus.CLOSED, patient=patient)
    forbidden = {
        patient.ins,
        patient.birth_family_name,
        patient.first_given_name,
        str(patient.pk),
        str(scenario.act.reference),
    }
    events = UsageEvent.objects.filter(kind__startswith="telemedecine.")
    assert events.count() >= 6
    for event in events:
        assert not {"patient", "patient_id", "ins"} & set(event.dims)
        for value in event.dims.values():
            assert str(value) not in forbidden


@pytest.mark.parametrize("action", sorted(VALID_FROM))
@pytest.mark.parametrize(
    "state",
    [
        ActStatus.DRAFT,
        ActStatus.SENT,
        ActStatus.ACCEPTED,
        ActStatus.IN_PROGRESS,
        ActStatus.REPORT_SIGNED,
        ActStatus.CLOSED,
        ActStatus.REFUSED,
        ActStatus.CANCELLED,
        ActStatus.EXPIRED,
    ],
)
def test_transition_matrix(action: str, state: str) -> None:
    scenario = act_in_state(state)
    act = scenario.act
    if action == "start" and state == ActStatus.ACCEPTED:
        svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=scenario.requester)
    if action == "sign" and state == ActStatus.IN_PROGRESS:
        pass
    before_events = act.events.count()
    if state in VALID_FROM[action]:
        after = _call(action, act, scenario.requester, scenario.expert)
        assert after.status != state
        assert after.events.count() > before_events
    else:
        with pytest.raises(ValidationError) as excinfo:
            _call(action, act, scenario.requester, scenario.expert)
        assert "Impossible de" in " ".join(excinfo.value.messages)
        act.refresh_from_db()
        assert act.status == state
        assert act.events.count() == before_events


def test_refuse_needs_a_reason_and_notifies_the_requester(django_capture_on_commit_callbacks: Any) -> None:
    scenario = act_in_state(ActStatus.SENT)
    act = scenario.act
    with pytest.raises(ValidationError):
        svc.act_refuse(act=act, actor=act.requested_professional, reason="  ")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        act = svc.act_refuse(act=act, actor=act.requested_professional, reason="Pas d'IRM disponible.")
    assert act.status == ActStatus.REFUSED
    assert act.status_reason == "Pas d'IRM disponible."
    assert [m.to for m in mail.outbox] == [[scenario.requester.email]]
    assert "refusée" in mail.outbox[0].subject
    assert "Pas d'IRM disponible." in mail.outbox[0].body


def test_only_the_requester_sends_and_cancels() -> None:
    scenario = act_in_state(ActStatus.DRAFT)
    stranger = make_user()
    with pytest.raises(PermissionDenied):
        svc.act_send(act=scenario.act, actor=stranger)
    with pytest.raises(PermissionDenied):
        svc.act_send(act=scenario.act, actor=scenario.act.requested_professional)
    sent = svc.act_send(act=scenario.act, actor=scenario.requester)
    with pytest.raises(PermissionDenied):
        svc.act_cancel(act=sent, actor=sent.requested_professional)
    cancelled = svc.act_cancel(act=sent, actor=scenario.requester, reason="Patient transféré")
    assert cancelled.status == ActStatus.CANCELLED
    assert cancelled.status_reason == "Patient transféré"


def test_only_the_requested_professional_answers_a_direct_request() -> None:
    scenario = act_in_state(ActStatus.SENT)
    for intruder in (make_user(), scenario.requester):
        with pytest.raises(PermissionDenied):
            svc.act_accept(act=scenario.act, actor=intruder)
        with pytest.raises(PermissionDenied):
            svc.act_refuse(act=scenario.act, actor=intruder, reason="non")
    scenario.act.refresh_from_db()
    assert scenario.act.status == ActStatus.SENT
    assert scenario.act.expert is None


def test_any_pool_member_may_accept_and_becomes_the_expert(django_capture_on_commit_callbacks: Any) -> None:
    on_call, off_duty, outsider = make_user(), make_user(), make_user()
    pool = make_pool(members=[on_call, off_duty])
    ShiftFactory(pool=pool, user=on_call)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        scenario = act_in_state(ActStatus.SENT, pool=pool)
    # The pool is told through its members on call now.
    assert [m.to for m in mail.outbox] == [[on_call.email]]
    assert scenario.act.patient.birth_family_name not in f"{mail.outbox[0].subject} {mail.outbox[0].body}"
    with pytest.raises(PermissionDenied):
        svc.act_accept(act=scenario.act, actor=outsider)
    act = svc.act_accept(act=scenario.act, actor=off_duty)
    assert act.expert == off_duty
    assert act.events.get(event="accepted").detail["on_call"] is False
    # Only the expert goes on: another member cannot start.
    svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=scenario.requester)
    with pytest.raises(PermissionDenied):
        svc.act_start(act=act, actor=on_call)


def test_pool_without_anyone_on_call_notifies_every_member(django_capture_on_commit_callbacks: Any) -> None:
    a, b = make_user(), make_user()
    pool = make_pool(members=[a, b])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        scenario = act_in_state(ActStatus.SENT, pool=pool)
    assert sorted(mail.outbox[0].to) == sorted([a.email, b.email])
    assert scenario.act.events.get(event="sent").detail["notified"] == "all_members"


def test_notifications_leave_only_on_commit_and_never_name_the_patient(
    django_capture_on_commit_callbacks: Any,
) -> None:
    patient = make_patient(qualified=True)
    scenario = act_in_state(ActStatus.DRAFT, patient=patient)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        svc.act_send(act=scenario.act, actor=scenario.requester)
    assert mail.outbox == []
    assert len(callbacks) == 1
    callbacks[0]()
    (message,) = mail.outbox
    assert scenario.act.requested_professional is not None
    assert message.to == [scenario.act.requested_professional.email]
    text = f"{message.subject} {message.body}"
    for identifier in (patient.ins, patient.birth_family_name, patient.first_given_name):
        assert identifier not in text
    assert "téléexpertise" in message.subject
    assert reverse("telemedecine:act_detail", args=[scenario.act.pk]) in message.body


def test_consent_is_required_before_the_act_starts() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    act, expert = scenario.act, scenario.expert
    with pytest.raises(ValidationError, match="consentement"):
        svc.act_start(act=act, actor=expert)
    act = svc.consent_record(act=act, status=ConsentStatus.REFUSED, collected_by=expert)
    with pytest.raises(ValidationError, match="refusé"):
        svc.act_start(act=act, actor=expert)
    at = timezone.now() - dt.timedelta(minutes=3)
    act = svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=scenario.requester, at=at)
    assert (act.consent, act.consent_at, act.consent_collected_by) == (
        ConsentStatus.GIVEN,
        at,
        scenario.requester,
    )
    assert svc.act_start(act=act, actor=expert).status == ActStatus.IN_PROGRESS
    consents = [e.detail["consent"] for e in act.events.filter(event="consent")]
    assert consents == ["refused", "given"]


def test_consent_input_is_validated() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    with pytest.raises(ValidationError):
        svc.consent_record(act=scenario.act, status="maybe", collected_by=scenario.expert)
    with pytest.raises(ValidationError):
        svc.consent_record(
            act=scenario.act,
            status=ConsentStatus.GIVEN,
            collected_by=scenario.expert,
            at=timezone.now() + dt.timedelta(hours=2),
        )
    with pytest.raises(PermissionDenied):
        svc.consent_record(act=scenario.act, status=ConsentStatus.GIVEN, collected_by=make_user())
    scenario.act.refresh_from_db()
    assert scenario.act.consent == ConsentStatus.NOT_RECORDED


def test_create_validates_its_input() -> None:
    requester = make_user()
    base: dict[str, Any] = {
        "actor": requester,
        "act_type": ActType.TELECONSULTATION,
        "patient": make_patient(),
        "requester_structure": make_structure(),
        "clinical_question": "Plaie du talon",
    }
    with pytest.raises(ValidationError):
        svc.act_create(**{**base, "act_type": "telepathie"})
    with pytest.raises(ValidationError):
        svc.act_create(**{**base, "urgency": "tout de suite"})
    with pytest.raises(ValidationError):
        svc.act_create(**{**base, "clinical_question": "   "})
    with pytest.raises(ValidationError):
        svc.act_create(**{**base, "requested_professional": make_user(), "pool": make_pool()})
    with pytest.raises(ValidationError):
        svc.act_create(**{**base, "requested_professional": requester})
    with pytest.raises(PermissionDenied):
        svc.act_create(**{**base, "actor": make_user(ars_analyst=True)})
    assert not Act.objects.exists()
    # A draft may go without a recipient, but cannot be sent so.
    act = svc.act_create(**base)
    with pytest.raises(ValidationError):
        svc.act_send(act=act, actor=requester)
    act = svc.act_update(act=act, actor=requester, requested_professional=make_user(), urgency=Urgency.URGENT)
    assert svc.act_send(act=act, actor=requester).status == ActStatus.SENT
    with pytest.raises(ValidationError):
        svc.act_update(act=act, actor=requester, clinical_question="changée après envoi")


def test_expiry_uses_urgency_and_settings(settings: Any) -> None:
    settings.TLM_REQUEST_EXPIRY_HOURS = 48.0
    settings.TLM_EMERGENCY_EXPIRY_MINUTES = 30.0
    sent = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    assert svc.expiry_for(Urgency.EMERGENCY, sent) == sent + dt.timedelta(minutes=30)
    assert svc.expiry_for(Urgency.URGENT, sent) == sent + dt.timedelta(hours=24)
    assert svc.expiry_for(Urgency.SCHEDULED, sent) == sent + dt.timedelta(hours=48)
    # A scheduled session before the usual deadline must be accepted by then.
    assert svc.expiry_for(Urgency.SCHEDULED, sent, sent + dt.timedelta(hours=5)) == sent + dt.timedelta(
        hours=5
    )


def test_requests_expire_with_frozen_time(
    monkeypatch: pytest.MonkeyPatch, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TLM_EMERGENCY_EXPIRY_MINUTES = 60.0
    frozen = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    emergency = act_in_state(ActStatus.SENT, urgency=Urgency.EMERGENCY).act
    scheduled = act_in_state(ActStatus.SENT, urgency=Urgency.SCHEDULED).act
    accepted = act_in_state(ActStatus.ACCEPTED, urgency=Urgency.EMERGENCY).act
    assert emergency.expires_at == frozen + dt.timedelta(hours=1)

    monkeypatch.setattr(timezone, "now", lambda: frozen + dt.timedelta(minutes=59))
    assert svc.acts_expire() == 0

    monkeypatch.setattr(timezone, "now", lambda: frozen + dt.timedelta(minutes=61))
    # Too late to accept, even before the sweeper ran.
    with pytest.raises(ValidationError, match="expiré"):
        svc.act_accept(act=emergency, actor=emergency.requested_professional)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert svc.acts_expire() == 1
    emergency.refresh_from_db()
    scheduled.refresh_from_db()
    accepted.refresh_from_db()
    assert (emergency.status, scheduled.status, accepted.status) == (
        ActStatus.EXPIRED,
        ActStatus.SENT,
        ActStatus.ACCEPTED,
    )
    assert emergency.events.filter(event="expired").count() == 1
    assert (
        AuditEvent.objects.filter(action="telemedecine.act.expire", target_id=str(emergency.pk)).count() == 1
    )
    usage = UsageEvent.objects.get(kind="telemedecine.act_expired")
    assert usage.dims["delay_s"] == 61 * 60
    assert [m.to for m in mail.outbox] == [[emergency.requester.email]]
    # Idempotent: nothing left to expire; an expired act cannot be accepted.
    assert svc.acts_expire() == 0
    with pytest.raises(ValidationError):
        svc.act_accept(act=emergency, actor=emergency.requested_professional)


def test_expire_task_calls_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from telemedecine import tasks

    act = act_in_state(ActStatus.SENT, urgency=Urgency.EMERGENCY).act
    later = act.expires_at + dt.timedelta(seconds=1)  # type: ignore[operator]
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert tasks.expire_requests.delay().get() == 1
    act.refresh_from_db()
    assert act.status == ActStatus.EXPIRED


def test_participants_incidents_and_attachments_are_traced() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION)
    act, expert = scenario.act, scenario.expert
    nurse = svc.participant_add(
        act=act,
        actor=scenario.requester,
        role=ParticipantRole.CARE_STAFF,
        name="Mme Durand",
        function="IDE EHPAD",
    )
    colleague = make_user()
    svc.participant_add(act=act, actor=expert, role=ParticipantRole.PROFESSIONAL, user=colleague)
    with pytest.raises(ValidationError):
        svc.participant_add(act=act, actor=expert, role=ParticipantRole.PROFESSIONAL, user=colleague)
    with pytest.raises(ValidationError):
        svc.participant_add(
            act=act, actor=expert, role=ParticipantRole.CARE_STAFF
        )  # neither account nor name
    with pytest.raises(PermissionDenied):
        svc.participant_add(act=act, actor=colleague, role=ParticipantRole.CARE_STAFF, name="X")
    assert nurse.user is None
    assert str(nurse) == "Mme Durand"
    assert act.participants.count() == 4

    when = timezone.now() - dt.timedelta(minutes=10)
    incident = svc.incident_add(
        act=act, actor=colleague, code=Incident.Code.VIDEO, description="Son coupé", occurred_at=when
    )
    assert (incident.reported_by, incident.occurred_at) == (colleague, when)
    with pytest.raises(ValidationError):
        svc.incident_add(act=act, actor=expert, code="meteo")
    with pytest.raises(ValidationError):
        svc.incident_add(act=act, actor=expert, code=Incident.Code.OTHER)  # "other" needs a description

    attachment = svc.attachment_add(
        act=act,
        actor=scenario.requester,
        filename="../../photo plaie.jpg",
        content_type="image/jpeg",
        data=b"\xff\xd8jpeg",
    )
    assert attachment.filename == "photo plaie.jpg"
    assert attachment.size == 6
    assert blob_read(attachment.blob) == b"\xff\xd8jpeg"
    with pytest.raises(ValidationError):
        svc.attachment_add(
            act=act, actor=expert, filename="vide.pdf", content_type="application/pdf", data=b""
        )
    with pytest.raises(PermissionDenied):
        svc.attachment_add(
            act=act, actor=make_user(), filename="a.pdf", content_type="application/pdf", data=b"x"
        )
    events = set(act.events.values_list("event", flat=True))
    assert {"participant_added", "incident", "attachment_added"} <= events


def test_report_and_prescriptions_are_saved_then_signed() -> None:
    scenario = act_in_state(ActStatus.IN_PROGRESS)
    act, expert = scenario.act, scenario.expert
    with pytest.raises(PermissionDenied):
        svc.act_report_save(act=act, actor=scenario.requester, report_text="intrusion")
    act = svc.act_report_save(
        act=act, actor=expert, report_text="Brouillon du CR", prescriptions="Scanner J+1"
    )
    with pytest.raises(ValidationError):
        svc.act_sign_report(act=act, actor=expert, report_text=" ")
    act = svc.act_sign_report(act=act, actor=expert)
    act.refresh_from_db()
    assert (act.report_text, act.prescriptions) == ("Brouillon du CR", "Scanner J+1")
    assert act.report_signed_at is not None
    assert act.report_signed_by == expert


def test_a_closed_act_is_only_amended() -> None:
    scenario = act_in_state(ActStatus.CLOSED)
    act, expert = scenario.act, scenario.expert
    for attempt in (
        lambda: svc.participant_add(act=act, actor=expert, role=ParticipantRole.CARE_STAFF, name="Tard"),
        lambda: svc.incident_add(act=act, actor=expert, code=Incident.Code.NETWORK),
        lambda: svc.attachment_add(
            act=act, actor=expert, filename="a.pdf", content_type="application/pdf", data=b"x"
        ),
        lambda: svc.consent_record(act=act, status=ConsentStatus.REFUSED, collected_by=expert),
        lambda: svc.act_report_save(act=act, actor=expert, report_text="réécrit"),
        lambda: svc.act_plan(act=act, actor=expert, fallback=Fallback.PHONE),
    ):
        with pytest.raises(ValidationError):
            attempt()
    amendment = svc.act_amend(act=act, actor=expert, text="Résultat de l'IRM de contrôle : normal.")
    assert ActAmendment.objects.get(pk=amendment.pk).author == expert
    with pytest.raises(PermissionDenied):
        svc.act_amend(act=act, actor=make_user(), text="intrusion")
    with pytest.raises(ValidationError):
        svc.act_amend(act=act, actor=expert, text="")
    act.refresh_from_db()
    assert act.report_text.startswith("Pas de signe")
    assert act.consent == ConsentStatus.GIVEN
    assert act.events.filter(event="amended").count() == 1
    assert AuditEvent.objects.filter(action="telemedecine.act.amend", target_id=str(act.pk)).exists()


def test_amendment_is_refused_before_closing() -> None:
    scenario = act_in_state(ActStatus.REPORT_SIGNED)
    with pytest.raises(ValidationError, match="complément"):
        svc.act_amend(act=scenario.act, actor=scenario.expert, text="Trop tôt")


def test_plan_sets_time_and_fallback(settings: Any) -> None:
    scenario = act_in_state(ActStatus.ACCEPTED, act_type=ActType.TELECONSULTATION)
    act = scenario.act
    assert act.fallback == Fallback.PHONE
    when = timezone.now() + dt.timedelta(hours=2)
    act = svc.act_plan(act=act, actor=scenario.requester, scheduled_at=when, fallback=Fallback.IN_PERSON)
    assert (act.scheduled_at, act.fallback) == (when, Fallback.IN_PERSON)
    with pytest.raises(ValidationError):
        svc.act_plan(act=act, actor=scenario.expert, fallback=Fallback.NONE)  # no video service
    with pytest.raises(ValidationError):
        svc.act_plan(act=act, actor=scenario.expert, fallback="pigeon")
    with pytest.raises(PermissionDenied):
        svc.act_plan(act=act, actor=make_user(), fallback=Fallback.PHONE)
    planned = act.events.filter(event="planned").get()
    assert planned.detail["fallback"] == "in_person"
    assert planned.detail["fallback_label"] == "En présence"


def test_allowed_actions_follow_state_and_role() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    act = scenario.act
    assert {"cancel", "plan", "consent"} <= svc.act_allowed_actions(act, scenario.requester)
    assert "start" not in svc.act_allowed_actions(act, scenario.expert)
    svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=scenario.requester)
    act.refresh_from_db()
    assert "start" in svc.act_allowed_actions(act, scenario.expert)
    assert "start" not in svc.act_allowed_actions(act, scenario.requester)
    assert svc.act_allowed_actions(act, make_user()) == set()


def test_audit_of_transitions_carries_the_patient_ins_only_in_the_audit_trail() -> None:
    patient = make_patient(qualified=True)
    scenario = act_in_state(ActStatus.CLOSED, patient=patient)
    audited = AuditEvent.objects.filter(
        target_id=str(scenario.act.pk), action__startswith="telemedecine.act."
    )
    assert audited.count() >= 7
    assert set(audited.values_list("patient_ins", flat=True)) == {patient.ins}
    # Trace details never hold the matricule.
    for detail in scenario.act.events.values_list("detail", flat=True):
        assert not re.search(patient.ins, str(detail))


# --- Permissions of reads (selectors) -------------------------------------------------------------------


def test_only_the_parties_and_the_pool_read_an_act(rf: Any) -> None:
    from django.http import Http404

    from telemedecine import selectors

    patient = make_patient(qualified=True)
    member, other_member, colleague = make_user(), make_user(), make_user()
    pool = make_pool(members=[member, other_member])
    scenario = act_in_state(ActStatus.ACCEPTED, pool=pool, patient=patient)
    act = scenario.act
    svc.participant_add(act=act, actor=scenario.requester, role=ParticipantRole.PROFESSIONAL, user=colleague)
    readers = [scenario.requester, member, other_member, colleague]
    assert act.expert == member
    for reader in readers:
        request = rf.get("/")
        request.user = reader
        assert selectors.act_get_for(reader, act.pk, request) == act
        assert selectors.act_can_read(reader, act)
    reads = AuditEvent.objects.filter(action="telemedecine.act.read", target_id=str(act.pk))
    assert reads.count() == len(readers)
    assert set(reads.values_list("patient_ins", flat=True)) == {patient.ins}
    assert set(reads.values_list("actor_id", flat=True)) == {u.pk for u in readers}

    inactive, analyst = make_user(is_active=False), make_user(ars_analyst=True)
    pool.members.add(inactive, analyst)  # ARS analysts never read patient data, even as pool members
    for outsider in (make_user(), analyst, inactive):
        request = rf.get("/")
        request.user = outsider
        with pytest.raises(Http404):
            selectors.act_get_for(outsider, act.pk, request)
        assert not selectors.act_can_read(outsider, act)
        assert act not in selectors.acts_readable_by(outsider)
    with pytest.raises(Http404):
        selectors.act_get_for(scenario.requester, 999_999_999, None)
    with pytest.raises(Http404):
        selectors.act_get_for(scenario.requester, "1 OR 1=1", None)
    assert AuditEvent.objects.filter(action="access.denied", outcome="denied").count() == 5
    assert reads.count() == len(readers)


def test_a_direct_request_is_read_by_the_requested_professional_only() -> None:
    from telemedecine import selectors

    scenario = act_in_state(ActStatus.SENT)
    act = scenario.act
    pool_member = make_user()
    make_pool(members=[pool_member])
    assert selectors.act_can_read(act.requested_professional, act)
    assert not selectors.act_can_read(pool_member, act)


def test_lists_of_a_user() -> None:
    from telemedecine import selectors

    me = make_user()
    mine = act_in_state(ActStatus.SENT, requester=me).act
    draft_to_me = act_in_state(ActStatus.DRAFT, expert=me).act
    to_me = act_in_state(ActStatus.SENT, expert=me).act
    pool = make_pool(members=[me])
    to_my_pool = act_in_state(ActStatus.SENT, pool=pool).act
    unrelated = act_in_state(ActStatus.SENT).act
    assert list(selectors.acts_requested_by(me)) == [mine]
    expert_list = list(selectors.acts_for_expert(me))
    assert set(expert_list) == {to_me, to_my_pool}
    assert draft_to_me not in expert_list
    assert unrelated not in expert_list
    assert set(selectors.acts_readable_by(me)) == {mine, draft_to_me, to_me, to_my_pool}


def test_attachment_reads_are_audited_and_restricted() -> None:
    from django.http import Http404

    from telemedecine import selectors

    scenario = act_in_state(ActStatus.ACCEPTED, patient=make_patient(qualified=True))
    attachment = svc.attachment_add(
        act=scenario.act,
        actor=scenario.requester,
        filename="ecg.pdf",
        content_type="application/pdf",
        data=b"%PDF-1",
    )
    assert selectors.attachment_get_for(scenario.expert, attachment.pk, None) == attachment
    assert AuditEvent.objects.filter(
        action="telemedecine.attachment.read", patient_ins=scenario.act.patient.ins
    ).exists()
    with pytest.raises(Http404):
        selectors.attachment_get_for(make_user(), attachment.pk, None)


@pytest.mark.django_db(transaction=True)
def test_two_members_accepting_at_once_give_one_expert() -> None:
    import threading

    from django.db import connection

    a, b = make_user(), make_user()
    pool = make_pool(members=[a, b])
    act = act_in_state(ActStatus.SENT, pool=pool).act
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def accept(user: Any) -> None:
        try:
            barrier.wait(timeout=10)
            svc.act_accept(act=act, actor=user)
            outcomes[user.username] = "accepted"
        except ValidationError:
            outcomes[user.username] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(u,)) for u in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["accepted", "refused"]
    act.refresh_from_db()
    winner = a if outcomes[a.username] == "accepted" else b
    assert act.expert == winner
    assert act.events.filter(event="accepted").count() == 1


def test_oversized_attachment_is_refused_and_nothing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from telemedecine.models import ActAttachment

    scenario = act_in_state(ActStatus.SENT)
    monkeypatch.setattr(svc, "MAX_ATTACHMENT_BYTES", 10)
    for data in (
        b"x" * 11,
        SimpleUploadedFile("scan.pdf", b"%PDF" + b"x" * 20, content_type="application/pdf"),
    ):
        with pytest.raises(ValidationError, match="taille maximale"):
            svc.attachment_add(
                act=scenario.act,
                actor=scenario.requester,
                filename="scan.pdf",
                content_type="application/pdf",
                data=data,
            )
    assert not ActAttachment.objects.exists()
    assert not scenario.act.events.filter(event="attachment_added").exists()
