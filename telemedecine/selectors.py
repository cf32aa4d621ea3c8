"""Reads of the telemedecine app: <entity>_list / _get / _search.

Who reads an act (standards §7, issue #8): its requester, the requested professional, the expert who
accepted it, the participants who have an account and the members of the pool it was sent to. Every
view of an act is an audited access to patient data (``telemedecine.act.read``); a refused read is
audited too (``access.denied``) and answers "not found", whether the act exists or not.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from enrs.accounts.roles import CLINICAL, user_has_role
from enrs.audit.services import audit_record

from .models import Act, ActAttachment, ActStatus, Pool, Shift

OPEN_STATUSES = (ActStatus.SENT, ActStatus.ACCEPTED, ActStatus.IN_PROGRESS, ActStatus.REPORT_SIGNED)


def _readers_q(user: Any) -> Q:
    return (
        Q(requester=user)
        | Q(requested_professional=user)
        | Q(expert=user)
        | Q(participants__user=user)
        | Q(pool__members=user)
    )


def _signed_in(user: Any) -> bool:
    """An active clinician (ARS analysts and GCS staff never read nominative patient data here)."""
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and user_has_role(user, CLINICAL)
    )


def acts_readable_by(user: Any) -> QuerySet[Act]:
    """Every act ``user`` may read."""
    if not _signed_in(user):
        return Act.objects.none()
    ids = Act.objects.filter(_readers_q(user)).values("pk")
    return Act.objects.filter(pk__in=ids)


def act_can_read(user: Any, act: Act) -> bool:
    if not _signed_in(user):
        return False
    if user.pk in {act.requester_id, act.requested_professional_id, act.expert_id}:
        return True
    if act.participants.filter(user=user).exists():
        return True
    return (
        act.pool_id is not None
        and Pool.members.through.objects.filter(pool_id=act.pool_id, user_id=user.pk).exists()
    )


def _with_relations(acts: QuerySet[Act]) -> QuerySet[Act]:
    return acts.select_related(
        "patient", "requester", "requester_structure", "requested_professional", "pool", "expert"
    )


def act_get_for(user: Any, pk: Any, request: HttpRequest | None) -> Act:
    """The act ``pk`` for ``user``, its read audited; ``Http404`` when it does not exist or is not theirs."""
    act = _with_relations(Act.objects.all()).filter(pk=pk).first() if str(pk).isdigit() else None
    if act is None or not act_can_read(user, act):
        audit_record(
            action="access.denied",
            request=request,
            actor=user if getattr(user, "is_authenticated", False) else None,
            target_type="telemedecine.act",
            target_id=str(pk)[:64],
            outcome="denied",
            detail={"reason": "telemedecine.act.read"},
        )
        raise Http404("Acte de télémédecine introuvable.")
    audit_record(
        action="telemedecine.act.read",
        request=request,
        actor=user,
        target=act,
        patient_ins=act.patient.ins,
        detail={"status": act.status},
    )
    return act


def act_get_for_update(user: Any, pk: Any) -> Act:
    """The act ``pk`` for a write made by ``user`` (no read audit: the service audits the write)."""
    act = _with_relations(Act.objects.all()).filter(pk=pk).first() if str(pk).isdigit() else None
    if act is None or not act_can_read(user, act):
        raise Http404("Acte de télémédecine introuvable.")
    return act


def acts_requested_by(user: Any) -> QuerySet[Act]:
    """My requests (as requester), newest first."""
    if not _signed_in(user):
        return Act.objects.none()
    return _with_relations(Act.objects.filter(requester=user)).order_by("-created_at", "-pk")


def acts_for_expert(user: Any) -> QuerySet[Act]:
    """Requests sent to me, accepted by me, or sent to one of my pools (drafts excluded)."""
    if not _signed_in(user):
        return Act.objects.none()
    return (
        _with_relations(
            Act.objects.filter(Q(requested_professional=user) | Q(expert=user) | Q(pool__members=user))
        )
        .exclude(status=ActStatus.DRAFT)
        .distinct()
        .order_by("-created_at", "-pk")
    )


def acts_on_call_now(user: Any, at: dt.datetime | None = None) -> QuerySet[Act]:
    """Requests waiting for an answer in the pools where ``user`` is on call now."""
    if not _signed_in(user):
        return Act.objects.none()
    at = at or timezone.now()
    pools = Shift.objects.filter(user=user, starts_at__lte=at, ends_at__gt=at, pool__members=user).values(
        "pool_id"
    )
    return _with_relations(Act.objects.filter(status=ActStatus.SENT, pool_id__in=pools)).order_by(
        "expires_at", "sent_at", "pk"
    )


def act_events(act: Act) -> QuerySet[Any]:
    return act.events.select_related("actor").order_by("at", "pk")


def attachment_get_for(user: Any, pk: Any, request: HttpRequest | None) -> ActAttachment:
    """An attachment of an act ``user`` may read; the read is audited (``telemedecine.attachment.read``)."""
    attachment = (
        ActAttachment.objects.select_related("act", "act__patient", "blob").filter(pk=pk).first()
        if str(pk).isdigit()
        else None
    )
    if attachment is None or not act_can_read(user, attachment.act):
        audit_record(
            action="access.denied",
            request=request,
            actor=user if getattr(user, "is_authenticated", False) else None,
            target_type="telemedecine.actattachment",
            target_id=str(pk)[:64],
            outcome="denied",
            detail={"reason": "telemedecine.attachment.read"},
        )
        raise Http404("Pièce jointe introuvable.")
    audit_record(
        action="telemedecine.attachment.read",
        request=request,
        actor=user,
        target=attachment,
        patient_ins=attachment.act.patient.ins,
        detail={"act": attachment.act_id},
    )
    return attachment


def pool_list(*, active_only: bool = True) -> QuerySet[Pool]:
    pools = Pool.objects.select_related("structure")
    if active_only:
        pools = pools.filter(is_active=True)
    return pools.order_by("name")


def pools_for_user(user: Any) -> QuerySet[Pool]:
    if not _signed_in(user):
        return Pool.objects.none()
    return Pool.objects.filter(members=user).select_related("structure").order_by("name")


def shifts_of(
    pool: Pool, *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> QuerySet[Shift]:
    shifts = pool.shifts.select_related("user")
    if start is not None:
        shifts = shifts.filter(ends_at__gt=start)
    if end is not None:
        shifts = shifts.filter(starts_at__lt=end)
    return shifts.order_by("starts_at", "pk")
