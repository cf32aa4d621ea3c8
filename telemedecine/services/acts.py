"""Telemedicine acts: the request's workflow and its trace (CSP R.6316-1 to R.6316-4, standards §7).

States and the one service of each transition (any other transition raises ``ValidationError``)::

    draft ──act_send──▶ sent ──act_accept──▶ accepted ──act_start──▶ in_progress ──act_sign_report──▶
    report_signed ──act_close──▶ closed
    sent ──act_refuse──▶ refused      draft/sent/accepted ──act_cancel──▶ cancelled
    sent ──acts_expire (periodic)──▶ expired   (nobody accepted before ``expires_at``)

Who may act: the requester writes, sends and cancels; the requested professional — or, for a pool, any
of its members — accepts (and becomes the ``expert``) or refuses; the expert plans, starts (only once the
patient's consent is recorded as given), writes and signs the report, and closes. A closed act is never
edited again: only amended (``act_amend``).

Every transition is atomic and leaves an ``ActEvent`` (the act's trace), a usage event
(``telemedecine.act_<state>``: act type, urgency, delays — never the patient) and an audit event.
E-mail notifications never name the patient and leave once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import unicodedata
from collections.abc import Callable, Iterable
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from annuaire.models import Structure
from enrs.accounts.models import User
from enrs.accounts.roles import CLINICAL, user_has_role
from enrs.audit.services import audit_record
from enrs.patients.models import Patient
from enrs.usage.services import usage_emit
from enrs.vault.services import blob_put
from telemedecine.models import (
    Act,
    ActAmendment,
    ActAttachment,
    ActEvent,
    ActStatus,
    ActType,
    ConsentStatus,
    Fallback,
    Incident,
    Participant,
    ParticipantRole,
    Pool,
    Urgency,
)
from telemedecine.selectors import act_can_read

from . import pools as pool_services
from . import rooms

logger = logging.getLogger("enrs.telemedecine")

MAX_QUESTION = 20_000
MAX_REPORT = 100_000
MAX_REASON = 500
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
CLOCK_SKEW = dt.timedelta(minutes=5)

# Statuses in which the act's content may still change (a closed act is only amended).
EDITABLE = frozenset({ActStatus.DRAFT, ActStatus.SENT, ActStatus.ACCEPTED, ActStatus.IN_PROGRESS})
FINAL = frozenset({ActStatus.CLOSED, ActStatus.REFUSED, ActStatus.CANCELLED, ActStatus.EXPIRED})

# action -> (states it may start from, French verb for the error message)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "send": (frozenset({ActStatus.DRAFT}), "envoyer la demande"),
    "accept": (frozenset({ActStatus.SENT}), "accepter la demande"),
    "refuse": (frozenset({ActStatus.SENT}), "refuser la demande"),
    "cancel": (
        frozenset({ActStatus.DRAFT, ActStatus.SENT, ActStatus.ACCEPTED}),
        "annuler la demande",
    ),
    "start": (frozenset({ActStatus.ACCEPTED}), "démarrer l'acte"),
    "report": (frozenset({ActStatus.IN_PROGRESS}), "rédiger le compte rendu"),
    "sign": (frozenset({ActStatus.IN_PROGRESS}), "signer le compte rendu"),
    "close": (frozenset({ActStatus.REPORT_SIGNED}), "clôturer l'acte"),
    "expire": (frozenset({ActStatus.SENT}), "faire expirer la demande"),
    "plan": (frozenset({ActStatus.ACCEPTED, ActStatus.IN_PROGRESS}), "planifier la séance"),
    "amend": (frozenset({ActStatus.CLOSED}), "ajouter un complément"),
}


# --- Helpers ----------------------------------------------------------------------------------------


def _lock(act: Act) -> Act:
    return (
        Act.objects.select_for_update(of=("self",))
        .select_related(
            "patient", "requester", "requester_structure", "pool", "expert", "requested_professional"
        )
        .get(pk=act.pk)
    )


def _check_state(act: Act, action: str) -> None:
    allowed, verb = TRANSITIONS[action]
    if act.status not in allowed:
        raise ValidationError(
            f"Impossible de {verb} : la demande est à l'état « {act.get_status_display().lower()} »."
        )


def _check_editable(act: Act) -> None:
    if act.status == ActStatus.CLOSED:
        raise ValidationError("Un acte clôturé ne se modifie plus : ajoutez un complément.")
    if act.status not in EDITABLE and act.status != ActStatus.REPORT_SIGNED:
        raise ValidationError(
            f"Cet acte ne se modifie plus : il est à l'état « {act.get_status_display().lower()} »."
        )


def _deny(message: str) -> PermissionDenied:
    return PermissionDenied(message)


def _is_pool_member(act: Act, user: Any) -> bool:
    uid = getattr(user, "pk", None)
    if act.pool_id is None or uid is None:
        return False
    return Pool.members.through.objects.filter(pool_id=act.pool_id, user_id=uid).exists()


def _is_party(act: Act, user: Any) -> bool:
    """The requester, the requested professional, the expert or a participant with an account."""
    uid = getattr(user, "pk", None)
    if uid is None:
        return False
    if uid in {act.requester_id, act.requested_professional_id, act.expert_id}:
        return True
    return act.participants.filter(user_id=uid).exists()


def _require_requester(act: Act, actor: Any, verb: str) -> None:
    if getattr(actor, "pk", None) != act.requester_id:
        raise _deny(f"Seul le professionnel requérant peut {verb}.")


def _require_expert(act: Act, actor: Any, verb: str) -> None:
    if act.expert_id is None or getattr(actor, "pk", None) != act.expert_id:
        raise _deny(f"Seul le professionnel requis qui a accepté la demande peut {verb}.")


def _may_answer(act: Act, actor: Any) -> bool:
    """The requested professional, or a member of the pool the request was sent to."""
    if act.requested_professional_id is not None:
        return bool(getattr(actor, "pk", None) == act.requested_professional_id)
    return _is_pool_member(act, actor)


def _aware(moment: dt.datetime | None, field: str, label: str) -> None:
    if moment is not None and timezone.is_naive(moment):
        raise ValidationError({field: f"{label} doit comporter un fuseau horaire."})


def _text(value: str | None, *, field: str, label: str, max_length: int, required: bool = True) -> str:
    value = (value or "").replace("\x00", "").strip()
    if required and not value:
        raise ValidationError({field: f"{label} est obligatoire."})
    if len(value) > max_length:
        raise ValidationError({field: f"{label} ne doit pas dépasser {max_length} caractères."})
    return value


def _delay_s(since: dt.datetime | None, now: dt.datetime) -> int | None:
    return int((now - since).total_seconds()) if since is not None else None


def _usage(
    act: Act,
    state: str,
    *,
    delay_since: dt.datetime | None = None,
    now: dt.datetime | None = None,
    actor: Any = None,
) -> None:
    dims: dict[str, Any] = {
        "act_type": act.act_type,
        "urgency": act.urgency,
        "via_pool": act.pool_id is not None,
    }
    if delay_since is not None:
        dims["delay_s"] = _delay_s(delay_since, now or timezone.now())
    usage_emit(
        f"telemedecine.act_{state}",
        structure_id=act.requester_structure_id,
        department=act.requester_structure.department_code,
        dims=dims,
        actor=actor,
    )


def _event(act: Act, event: str, actor: Any = None, **detail: Any) -> ActEvent:
    clean = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in detail.items()}
    return ActEvent.objects.create(
        act=act, actor=actor if getattr(actor, "pk", None) else None, event=event, detail=clean
    )


def _audit(action: str, act: Act, actor: Any, request: HttpRequest | None, **detail: Any) -> None:
    audit_record(
        action=f"telemedecine.act.{action}",
        request=request,
        actor=actor,
        target=act,
        patient_ins=act.patient.ins,
        detail={"status": act.status, **detail},
    )


def act_url(act: Act) -> str:
    """Absolute (when ``ENRS_PUBLIC_URL`` is set) link to the act page, for notifications."""
    try:
        path = reverse("telemedecine:act_detail", args=[act.pk])
    except NoReverseMatch:
        path = ""
    base = str(getattr(settings, "ENRS_PUBLIC_URL", "") or "").rstrip("/")
    return f"{base}{path}" if path else ""


def _notify(recipients: Iterable[Any], subject: str, body: str) -> None:
    """An e-mail to ``recipients`` once the transaction commits; never names the patient."""
    addresses = sorted(
        {u.email for u in recipients if getattr(u, "email", "") and getattr(u, "is_active", True)}
    )
    if not addresses:
        return

    def send() -> None:
        try:
            send_mail(subject, body, None, addresses)
        except Exception:  # a notification failure must not undo the act: it is logged
            logger.exception("telemedicine notification not sent (%s)", subject)

    transaction.on_commit(send)


def _act_label(act: Act) -> str:
    return f"{act.get_act_type_display().lower()} ({act.get_urgency_display().lower()})"


def _footer(act: Act) -> str:
    url = act_url(act)
    where = f"Consultez-la sur le portail ENRS : {url}" if url else "Consultez-la sur le portail ENRS."
    return (
        f"{where}\nRéférence : {str(act.reference)[:8]}\n\n"
        "Ce message ne contient aucune donnée de santé ; l'identité du patient n'est visible que sur "
        "le portail, après authentification forte."
    )


def expiry_for(urgency: str, sent_at: dt.datetime, scheduled_at: dt.datetime | None = None) -> dt.datetime:
    """When a request sent at ``sent_at`` expires if nobody accepted it (TLM_* settings)."""
    hours = float(getattr(settings, "TLM_REQUEST_EXPIRY_HOURS", 72.0))
    if urgency == Urgency.EMERGENCY:
        delay = dt.timedelta(minutes=float(getattr(settings, "TLM_EMERGENCY_EXPIRY_MINUTES", 60.0)))
    elif urgency == Urgency.URGENT:
        delay = dt.timedelta(hours=min(hours, 24.0))  # "dans la journée"
    else:
        delay = dt.timedelta(hours=hours)
    expires = sent_at + delay
    if scheduled_at is not None and sent_at < scheduled_at < expires:
        expires = scheduled_at
    return expires


def _check_recipient(
    *, actor: Any, requested_professional: User | None, pool: Pool | None, required: bool
) -> None:
    if requested_professional is not None and pool is not None:
        raise ValidationError(
            "Adressez la demande soit à un professionnel, soit à une équipe de garde, pas aux deux."
        )
    if required and requested_professional is None and pool is None:
        raise ValidationError(
            {"requested_professional": "Choisissez le professionnel sollicité ou l'équipe de garde."}
        )
    if requested_professional is not None:
        if requested_professional.pk == getattr(actor, "pk", None):
            raise ValidationError({"requested_professional": "Vous ne pouvez pas vous adresser la demande."})
        if not requested_professional.is_active or not user_has_role(requested_professional, CLINICAL):
            raise ValidationError(
                {"requested_professional": "Ce compte ne peut pas recevoir de demande de télémédecine."}
            )
    if pool is not None and not pool.is_active:
        raise ValidationError({"pool": "Cette équipe de garde n'est plus active."})


# --- Draft --------------------------------------------------------------------------------------------


def act_create(
    *,
    actor: Any,
    act_type: str,
    patient: Patient,
    requester_structure: Structure,
    clinical_question: str,
    urgency: str = Urgency.SCHEDULED,
    requested_professional: User | None = None,
    pool: Pool | None = None,
    scheduled_at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Act:
    """A draft request of ``actor`` (the requester) for ``patient``."""
    if not user_has_role(actor, CLINICAL):
        raise _deny("Seul un professionnel de santé peut demander un acte de télémédecine.")
    if act_type not in ActType.values:
        raise ValidationError({"act_type": "Type d'acte inconnu."})
    if urgency not in Urgency.values:
        raise ValidationError({"urgency": "Niveau d'urgence inconnu."})
    if patient is None or patient.pk is None:
        raise ValidationError({"patient": "Choisissez le patient."})
    if requester_structure is None:
        raise ValidationError({"requester_structure": "Indiquez la structure requérante."})
    question = _text(
        clinical_question, field="clinical_question", label="La question clinique", max_length=MAX_QUESTION
    )
    _aware(scheduled_at, "scheduled_at", "La date prévue")
    _check_recipient(actor=actor, requested_professional=requested_professional, pool=pool, required=False)
    with transaction.atomic():
        act = Act.objects.create(
            act_type=act_type,
            urgency=urgency,
            patient=patient,
            requester=actor,
            requester_structure=requester_structure,
            requested_professional=requested_professional,
            pool=pool,
            clinical_question=question,
            scheduled_at=scheduled_at,
        )
        _event(act, "created", actor)
        _usage(act, "draft")
        _audit("create", act, actor, request)
    return act


def act_update(
    *,
    act: Act,
    actor: Any,
    clinical_question: str | None = None,
    urgency: str | None = None,
    requested_professional: User | None = None,
    pool: Pool | None = None,
    scheduled_at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Act:
    """Change a draft (requester only). The recipient given replaces the previous one."""
    _aware(scheduled_at, "scheduled_at", "La date prévue")
    with transaction.atomic():
        act = _lock(act)
        _require_requester(act, actor, "modifier la demande")
        if act.status != ActStatus.DRAFT:
            raise ValidationError("Seul un brouillon se modifie ; une demande envoyée ne change plus.")
        changed: list[str] = []
        if clinical_question is not None:
            act.clinical_question = _text(
                clinical_question,
                field="clinical_question",
                label="La question clinique",
                max_length=MAX_QUESTION,
            )
            changed.append("clinical_question")
        if urgency is not None:
            if urgency not in Urgency.values:
                raise ValidationError({"urgency": "Niveau d'urgence inconnu."})
            act.urgency = urgency
            changed.append("urgency")
        if requested_professional is not None or pool is not None:
            _check_recipient(
                actor=actor, requested_professional=requested_professional, pool=pool, required=True
            )
            act.requested_professional = requested_professional
            act.pool = pool
            changed += ["requested_professional", "pool"]
        if scheduled_at is not None:
            act.scheduled_at = scheduled_at
            changed.append("scheduled_at")
        if changed:
            act.save(update_fields=[*changed, "updated_at"])
            _event(act, "updated", actor, fields=changed)
            _audit("update", act, actor, request, fields=changed)
    return act


# --- Transitions ------------------------------------------------------------------------------------


def act_send(*, act: Act, actor: Any, request: HttpRequest | None = None) -> Act:
    """``draft`` → ``sent`` (requester): the requested professional or the pool on call is told."""
    with transaction.atomic():
        act = _lock(act)
        _require_requester(act, actor, "envoyer la demande")
        _check_state(act, "send")
        _check_recipient(
            actor=actor,
            requested_professional=act.requested_professional,
            pool=act.pool,
            required=True,
        )
        now = timezone.now()
        act.status = ActStatus.SENT
        act.sent_at = now
        act.expires_at = expiry_for(act.urgency, now, act.scheduled_at)
        act.save(update_fields=["status", "sent_at", "expires_at", "updated_at"])
        recipients: list[Any]
        if act.pool is not None:
            recipients = pool_services.pool_on_call(act.pool, now)
            notified = "on_call" if recipients else "all_members"
            if not recipients:
                recipients = list(act.pool.members.filter(is_active=True))
        else:
            recipients = [act.requested_professional]
            notified = "requested_professional"
        _event(act, "sent", actor, expires_at=act.expires_at, notified=notified, recipients=len(recipients))
        _usage(act, "sent", actor=actor)
        _notify(
            recipients,
            f"[ENRS] Nouvelle demande de {_act_label(act)}",
            f"Une demande de {_act_label(act)} vous est adressée"
            f"{' (équipe « ' + act.pool.name + ' »)' if act.pool else ''} par "
            f"{act.requester_structure.name}.\nRéponse attendue avant le "
            f"{timezone.localtime(act.expires_at):%d/%m/%Y à %H:%M}.\n{_footer(act)}",
        )
        _audit("send", act, actor, request, expires_at=act.expires_at)
    return act


def act_accept(*, act: Act, actor: Any, request: HttpRequest | None = None) -> Act:
    """``sent`` → ``accepted``: the requested professional or a pool member takes the request (expert)."""
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "accept")
        if not _may_answer(act, actor):
            raise _deny("Seul le professionnel sollicité ou un membre de l'équipe de garde peut accepter.")
        now = timezone.now()
        if act.expires_at is not None and act.expires_at <= now:
            raise ValidationError("Le délai de réponse de cette demande est dépassé : elle a expiré.")
        act.status = ActStatus.ACCEPTED
        act.expert = actor
        act.accepted_at = now
        act.save(update_fields=["status", "expert", "accepted_at", "updated_at"])
        for user, role in ((act.requester, ParticipantRole.REQUESTER), (actor, ParticipantRole.EXPERT)):
            if not act.participants.filter(user=user).exists():
                Participant.objects.create(act=act, user=user, role=role)
        rooms.room_create(act=act)
        on_call = act.pool is not None and actor in pool_services.pool_on_call(act.pool, now)
        _event(act, "accepted", actor, on_call=on_call, room=bool(act.room_name), fallback=act.fallback)
        _usage(act, "accepted", delay_since=act.sent_at, now=now, actor=actor)
        _notify(
            [act.requester],
            f"[ENRS] Demande de {_act_label(act)} acceptée",
            f"Votre demande de {_act_label(act)} a été acceptée par "
            f"{actor.get_full_name() or actor.get_username()}.\n{_footer(act)}",
        )
        _audit("accept", act, actor, request, on_call=on_call)
    return act


def act_refuse(*, act: Act, actor: Any, reason: str, request: HttpRequest | None = None) -> Act:
    """``sent`` → ``refused`` (the requested professional, or a pool member), with a reason."""
    reason = _text(reason, field="reason", label="Le motif du refus", max_length=MAX_REASON)
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "refuse")
        if not _may_answer(act, actor):
            raise _deny("Seul le professionnel sollicité ou un membre de l'équipe de garde peut refuser.")
        now = timezone.now()
        act.status = ActStatus.REFUSED
        act.status_reason = reason
        act.save(update_fields=["status", "status_reason", "updated_at"])
        _event(act, "refused", actor, reason=reason)
        _usage(act, "refused", delay_since=act.sent_at, now=now)
        _notify(
            [act.requester],
            f"[ENRS] Demande de {_act_label(act)} refusée",
            f"Votre demande de {_act_label(act)} a été refusée.\nMotif : {reason}\n{_footer(act)}",
        )
        _audit("refuse", act, actor, request)
    return act


def act_cancel(*, act: Act, actor: Any, reason: str = "", request: HttpRequest | None = None) -> Act:
    """``draft`` / ``sent`` / ``accepted`` → ``cancelled`` (requester)."""
    reason = _text(reason, field="reason", label="Le motif", max_length=MAX_REASON, required=False)
    with transaction.atomic():
        act = _lock(act)
        _require_requester(act, actor, "annuler la demande")
        _check_state(act, "cancel")
        previous = act.status
        act.status = ActStatus.CANCELLED
        act.status_reason = reason
        act.save(update_fields=["status", "status_reason", "updated_at"])
        _event(act, "cancelled", actor, reason=reason, previous=previous)
        _usage(act, "cancelled")
        if act.expert is not None:
            _notify(
                [act.expert],
                f"[ENRS] Demande de {_act_label(act)} annulée",
                f"La demande de {_act_label(act)} que vous aviez acceptée a été annulée par le requérant."
                f"\n{_footer(act)}",
            )
        _audit("cancel", act, actor, request, previous=previous)
    return act


def act_plan(
    *,
    act: Act,
    actor: Any,
    scheduled_at: dt.datetime | None = None,
    fallback: str | None = None,
    request: HttpRequest | None = None,
) -> Act:
    """Plan the session (expert or requester): its time, and the exchange mode when there is no video."""
    _aware(scheduled_at, "scheduled_at", "La date prévue")
    with transaction.atomic():
        act = _lock(act)
        if getattr(actor, "pk", None) not in {act.requester_id, act.expert_id}:
            raise _deny("Seuls le requérant et le requis planifient la séance.")
        _check_state(act, "plan")
        fields: list[str] = []
        if scheduled_at is not None:
            act.scheduled_at = scheduled_at
            fields.append("scheduled_at")
        if fallback is not None:
            if fallback not in Fallback.values:
                raise ValidationError({"fallback": "Mode d'échange inconnu."})
            if fallback == Fallback.NONE and not rooms.jitsi_configured():
                raise ValidationError({"fallback": rooms.NO_VIDEO_REASON + " Choisissez un autre mode."})
            act.fallback = fallback
            fields.append("fallback")
        if fields:
            act.save(update_fields=[*fields, "updated_at"])
        if act.fallback == Fallback.NONE:
            rooms.room_create(act=act)
        _event(
            act,
            "planned",
            actor,
            scheduled_at=act.scheduled_at,
            fallback=act.fallback,
            fallback_label=act.get_fallback_display(),
        )
        _audit("plan", act, actor, request, fallback=act.fallback)
    return act


def consent_record(
    *,
    act: Act,
    status: str,
    collected_by: Any,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Act:
    """Record the patient's consent (given or refused), when and by whom it was collected."""
    if status not in {ConsentStatus.GIVEN, ConsentStatus.REFUSED}:
        raise ValidationError({"consent": "Indiquez si le patient a donné ou refusé son consentement."})
    _aware(at, "consent_at", "L'heure du recueil")
    now = timezone.now()
    at = at or now
    if at > now + CLOCK_SKEW:
        raise ValidationError({"consent_at": "Le recueil du consentement ne peut pas être dans le futur."})
    with transaction.atomic():
        act = _lock(act)
        if act.status not in EDITABLE:
            raise ValidationError(
                "Le consentement se recueille avant la fin de l'acte "
                f"(la demande est à l'état « {act.get_status_display().lower()} »)."
            )
        if not _is_party(act, collected_by):
            raise _deny("Seuls le requérant, le requis et les participants recueillent le consentement.")
        previous = act.consent
        act.consent = status
        act.consent_at = at
        act.consent_collected_by = collected_by
        act.save(update_fields=["consent", "consent_at", "consent_collected_by", "updated_at"])
        _event(act, "consent", collected_by, consent=status, at=at, previous=previous)
        _audit("consent", act, collected_by, request, consent=status, at=at)
    return act


def act_start(*, act: Act, actor: Any, request: HttpRequest | None = None) -> Act:
    """``accepted`` → ``in_progress`` (expert), once the patient's consent is recorded as given."""
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "start")
        _require_expert(act, actor, "démarrer l'acte")
        if act.consent != ConsentStatus.GIVEN:
            if act.consent == ConsentStatus.REFUSED:
                raise ValidationError("Le patient a refusé l'acte : il ne peut pas commencer.")
            raise ValidationError(
                "Recueillez et enregistrez le consentement du patient avant de commencer l'acte."
            )
        now = timezone.now()
        act.status = ActStatus.IN_PROGRESS
        act.started_at = now
        act.save(update_fields=["status", "started_at", "updated_at"])
        _event(act, "started", actor, fallback=act.fallback, room=bool(act.room_name))
        _usage(act, "in_progress", delay_since=act.accepted_at, now=now)
        _audit("start", act, actor, request)
    return act


def act_report_save(
    *, act: Act, actor: Any, report_text: str, prescriptions: str = "", request: HttpRequest | None = None
) -> Act:
    """Save the report being written (expert, act in progress); signing makes it final."""
    report = _text(
        report_text, field="report_text", label="Le compte rendu", max_length=MAX_REPORT, required=False
    )
    prescription_text = _text(
        prescriptions, field="prescriptions", label="Les prescriptions", max_length=MAX_REPORT, required=False
    )
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "report")
        _require_expert(act, actor, "rédiger le compte rendu")
        act.report_text = report
        act.prescriptions = prescription_text
        act.save(update_fields=["report_text", "prescriptions", "updated_at"])
        _event(act, "report_saved", actor, length=len(report))
        _audit("report_save", act, actor, request)
    return act


def act_sign_report(
    *,
    act: Act,
    actor: Any,
    report_text: str | None = None,
    prescriptions: str | None = None,
    request: HttpRequest | None = None,
) -> Act:
    """``in_progress`` → ``report_signed`` (expert): the act ends, the report PDF and CDA are made and
    stored; once committed, the report is fed to the DMP and sent to the requester by MSSanté (each outcome
    is written in the trace)."""
    from . import reports

    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "sign")
        _require_expert(act, actor, "signer le compte rendu")
        if report_text is not None:
            act.report_text = _text(
                report_text,
                field="report_text",
                label="Le compte rendu",
                max_length=MAX_REPORT,
                required=False,
            )
        if prescriptions is not None:
            act.prescriptions = _text(
                prescriptions,
                field="prescriptions",
                label="Les prescriptions",
                max_length=MAX_REPORT,
                required=False,
            )
        if not act.report_text.strip():
            raise ValidationError({"report_text": "Rédigez le compte rendu avant de le signer."})
        now = timezone.now()
        act.status = ActStatus.REPORT_SIGNED
        act.ended_at = act.ended_at or now
        act.report_signed_at = now
        act.report_signed_by = actor
        built = reports.report_build(act=act, signer=actor, signed_at=now)
        act.report_pdf = built.pdf
        act.report_cda = built.cda
        act.save(
            update_fields=[
                "status",
                "report_text",
                "prescriptions",
                "ended_at",
                "report_signed_at",
                "report_signed_by",
                "report_pdf",
                "report_cda",
                "updated_at",
            ]
        )
        _event(
            act,
            "report_signed",
            actor,
            pdf_sha256=built.pdf.sha256,
            cda=built.cda is not None,
            cda_reason=built.cda_reason,
        )
        if built.cda is None:
            _event(act, "cda_not_produced", actor, reason=built.cda_reason)
        _usage(act, "report_signed", delay_since=act.sent_at, now=now)
        _notify(
            [act.requester],
            f"[ENRS] Compte rendu de {_act_label(act)} signé",
            f"Le compte rendu de votre demande de {_act_label(act)} est signé.\n{_footer(act)}",
        )
        reports.report_route_on_commit(act_id=act.pk)
        _audit("sign", act, actor, request, cda=built.cda is not None)
    return act


def act_close(*, act: Act, actor: Any, request: HttpRequest | None = None) -> Act:
    """``report_signed`` → ``closed`` (expert). The act is now only amended."""
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "close")
        _require_expert(act, actor, "clôturer l'acte")
        now = timezone.now()
        act.status = ActStatus.CLOSED
        act.closed_at = now
        act.save(update_fields=["status", "closed_at", "updated_at"])
        _event(act, "closed", actor)
        _usage(act, "closed", delay_since=act.sent_at, now=now, actor=actor)
        _audit("close", act, actor, request)
    return act


def acts_expire(*, now: dt.datetime | None = None) -> int:
    """``sent`` → ``expired`` for every request nobody accepted before its ``expires_at``."""
    now = now or timezone.now()
    count = 0
    due = list(
        Act.objects.filter(status=ActStatus.SENT, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)
    )
    for pk in due:
        with transaction.atomic():
            act = (
                Act.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("patient", "requester", "requester_structure", "pool")
                .filter(pk=pk, status=ActStatus.SENT, expires_at__lte=now)
                .first()
            )
            if act is None:
                continue
            act.status = ActStatus.EXPIRED
            act.status_reason = "Aucune réponse dans le délai prévu."
            act.save(update_fields=["status", "status_reason", "updated_at"])
            _event(act, "expired", None, expires_at=act.expires_at)
            _usage(act, "expired", delay_since=act.sent_at, now=now)
            _notify(
                [act.requester],
                f"[ENRS] Demande de {_act_label(act)} expirée",
                f"Votre demande de {_act_label(act)} n'a reçu aucune réponse dans le délai prévu : elle a "
                f"expiré. Vous pouvez en créer une nouvelle.\n{_footer(act)}",
            )
            _audit("expire", act, None, None)
            count += 1
    return count


# --- Trace: participants, incidents, attachments, amendments ------------------------------------------


def participant_add(
    *,
    act: Act,
    actor: Any,
    role: str,
    user: User | None = None,
    name: str = "",
    function: str = "",
    request: HttpRequest | None = None,
) -> Participant:
    """Record a participant: an account, or a named person without one (EHPAD staff, a relative)."""
    if role not in ParticipantRole.values:
        raise ValidationError({"role": "Rôle du participant inconnu."})
    name = _text(name, field="name", label="Le nom", max_length=200, required=user is None)
    function = _text(function, field="function", label="La fonction", max_length=150, required=False)
    with transaction.atomic():
        act = _lock(act)
        _check_editable(act)
        if getattr(actor, "pk", None) not in {act.requester_id, act.expert_id}:
            raise _deny("Seuls le requérant et le requis ajoutent des participants.")
        if user is not None and act.participants.filter(user=user).exists():
            raise ValidationError({"user": "Cette personne participe déjà à l'acte."})
        participant = Participant(act=act, user=user, name=name, role=role, function=function)
        participant.full_clean()
        participant.save()
        _event(
            act,
            "participant_added",
            actor,
            participant=participant.pk,
            role=role,
            who=str(participant),
            function=function,
        )
        _audit("participant_add", act, actor, request, participant=participant.pk, role=role)
    return participant


def incident_add(
    *,
    act: Act,
    actor: Any,
    code: str,
    description: str = "",
    occurred_at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Incident:
    """Record a technical incident of the act (R.6316-4 5°)."""
    if code not in Incident.Code.values:
        raise ValidationError({"code": "Nature de l'incident inconnue."})
    description = _text(
        description, field="description", label="La description", max_length=5000, required=code == "other"
    )
    _aware(occurred_at, "occurred_at", "L'heure de l'incident")
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + CLOCK_SKEW:
        raise ValidationError({"occurred_at": "Un incident ne peut pas être dans le futur."})
    with transaction.atomic():
        act = _lock(act)
        _check_editable(act)
        if not _is_party(act, actor):
            raise _deny("Seuls les participants de l'acte signalent un incident.")
        if act.status == ActStatus.DRAFT:
            raise ValidationError("Un incident se signale pendant l'acte, pas sur un brouillon.")
        incident = Incident.objects.create(
            act=act, code=code, description=description, reported_by=actor, occurred_at=occurred_at
        )
        _event(act, "incident", actor, incident=incident.pk, code=code, occurred_at=occurred_at)
        _audit("incident_add", act, actor, request, incident=incident.pk, code=code)
    return incident


def act_amend(*, act: Act, actor: Any, text: str, request: HttpRequest | None = None) -> ActAmendment:
    """An addition to a closed act (by its requester or expert): the act itself is not edited."""
    text = _text(text, field="text", label="Le complément", max_length=MAX_REPORT)
    with transaction.atomic():
        act = _lock(act)
        _check_state(act, "amend")
        if getattr(actor, "pk", None) not in {act.requester_id, act.expert_id}:
            raise _deny("Seuls le requérant et le requis complètent un acte clôturé.")
        amendment = ActAmendment.objects.create(act=act, author=actor, text=text)
        _event(act, "amended", actor, amendment=amendment.pk)
        _audit("amend", act, actor, request, amendment=amendment.pk)
    return amendment


def _safe_filename(filename: str) -> str:
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"/|?*').strip(" .")
    return name[:255]


def attachment_add(
    *,
    act: Act,
    actor: Any,
    filename: str,
    content_type: str,
    data: bytes | IO[bytes],
    request: HttpRequest | None = None,
) -> ActAttachment:
    """A file attached to the act (stored encrypted in the vault)."""
    name = _safe_filename(filename)
    if not name:
        raise ValidationError({"file": "Le fichier n'a pas de nom valide."})
    announced = len(data) if isinstance(data, bytes) else getattr(data, "size", None)
    if isinstance(announced, int) and announced > MAX_ATTACHMENT_BYTES:
        raise ValidationError(
            {"file": f"Le fichier dépasse la taille maximale ({MAX_ATTACHMENT_BYTES // (1024 * 1024)} Mo)."}
        )
    content_type = (content_type or "application/octet-stream").strip()[:150]
    if "\n" in content_type or "\r" in content_type:
        raise ValidationError({"file": "Type de fichier invalide."})
    with transaction.atomic():
        act = _lock(act)
        if act.status not in EDITABLE:
            _check_editable(act)
            raise ValidationError("Les pièces jointes s'ajoutent avant le compte rendu.")
        if not _is_party(act, actor):
            raise _deny("Seuls les participants de l'acte ajoutent des pièces jointes.")
        blob = blob_put(data, purpose="telemedecine.attachment", content_type=content_type)
        if blob.size == 0:
            raise ValidationError({"file": "Le fichier est vide."})
        if blob.size > MAX_ATTACHMENT_BYTES:
            raise ValidationError(
                {
                    "file": "Le fichier dépasse la taille maximale "
                    f"({MAX_ATTACHMENT_BYTES // (1024 * 1024)} Mo)."
                }
            )
        attachment = ActAttachment.objects.create(
            act=act, filename=name, content_type=content_type, size=blob.size, blob=blob, uploaded_by=actor
        )
        _event(act, "attachment_added", actor, attachment=attachment.pk, filename=name, size=blob.size)
        _audit("attachment_add", act, actor, request, attachment=attachment.pk, size=blob.size)
    return attachment


# --- What a user may do (for the pages) ---------------------------------------------------------------


def act_allowed_actions(act: Act, user: Any) -> set[str]:
    """The actions ``user`` may take on ``act`` now (buttons of the act page)."""
    uid = getattr(user, "pk", None)
    if uid is None or not act_can_read(user, act):
        return set()
    is_requester = uid == act.requester_id
    is_expert = act.expert_id is not None and uid == act.expert_id
    status = act.status
    actions: set[str] = set()
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("edit", lambda: is_requester and status == ActStatus.DRAFT),
        ("send", lambda: is_requester and status == ActStatus.DRAFT),
        ("accept", lambda: status == ActStatus.SENT and _may_answer(act, user)),
        ("refuse", lambda: status == ActStatus.SENT and _may_answer(act, user)),
        ("cancel", lambda: is_requester and status in TRANSITIONS["cancel"][0]),
        ("plan", lambda: (is_requester or is_expert) and status in TRANSITIONS["plan"][0]),
        ("consent", lambda: status in EDITABLE and (is_requester or is_expert)),
        ("start", lambda: is_expert and status == ActStatus.ACCEPTED and act.consent == ConsentStatus.GIVEN),
        ("report", lambda: is_expert and status == ActStatus.IN_PROGRESS),
        ("sign", lambda: is_expert and status == ActStatus.IN_PROGRESS),
        ("close", lambda: is_expert and status == ActStatus.REPORT_SIGNED),
        ("amend", lambda: (is_requester or is_expert) and status == ActStatus.CLOSED),
        (
            "participant",
            lambda: (is_requester or is_expert) and (status in EDITABLE or status == ActStatus.REPORT_SIGNED),
        ),
        (
            "incident",
            lambda: (
                status in {ActStatus.SENT, ActStatus.ACCEPTED, ActStatus.IN_PROGRESS, ActStatus.REPORT_SIGNED}
            ),
        ),
        ("attachment", lambda: status in EDITABLE and (is_requester or is_expert)),
        (
            "join",
            lambda: (
                rooms.jitsi_configured() and status in rooms.ROOM_STATUSES and act.fallback == Fallback.NONE
            ),
        ),
    ]
    for name, check in checks:
        if check():
            actions.add(name)
    return actions


__all__ = [
    "FINAL",
    "act_accept",
    "act_allowed_actions",
    "act_amend",
    "act_cancel",
    "act_close",
    "act_create",
    "act_plan",
    "act_refuse",
    "act_report_save",
    "act_send",
    "act_sign_report",
    "act_start",
    "act_update",
    "acts_expire",
    "attachment_add",
    "consent_record",
    "incident_add",
    "participant_add",
]
