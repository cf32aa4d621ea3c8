"""Reads of the audit trail: the administrators' search and a user's own sign-in history."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from enrs.accounts.authn import AuthMethod

from .models import AuditEvent


def _start_of(day: date) -> datetime:
    """Midnight of `day` in the portal's time zone (Europe/Paris)."""
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_event_search(
    *,
    actor: Any = None,
    action_prefix: str = "",
    patient_ins: str = "",
    outcome: str = "",
    date_from: date | datetime | None = None,
    date_to: date | datetime | None = None,
    target_type: str = "",
    target_id: str = "",
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, most recent first, with their actor (one query).

    - ``actor``: a user (events by that account) or a username (events whose recorded username is
      that one, which also finds failed sign-ins typed with it and accounts renamed since).
    - ``action_prefix``: ``auth`` matches ``auth``, ``auth.login``, ``auth.login.failed`` (whole
      dotted segments: not ``authz.x``).
    - ``date_from`` / ``date_to``: inclusive; a date covers the whole day in the portal's time zone.
    """
    events = AuditEvent.objects.select_related("actor")
    if isinstance(actor, str):
        if actor.strip():
            events = events.filter(actor_label=actor.strip())
    elif actor is not None:
        events = events.filter(actor=actor)
    prefix = action_prefix.strip().rstrip(".")
    if prefix:
        events = events.filter(Q(action=prefix) | Q(action__startswith=prefix + "."))
    ins = "".join(patient_ins.split()).upper()
    if ins:
        events = events.filter(patient_ins=ins)
    if outcome:
        events = events.filter(outcome=outcome)
    if date_from is not None:
        start = date_from if isinstance(date_from, datetime) else _start_of(date_from)
        events = events.filter(occurred_at__gte=start)
    if date_to is not None:
        if isinstance(date_to, datetime):
            events = events.filter(occurred_at__lte=date_to)
        else:
            events = events.filter(occurred_at__lt=_start_of(date_to + timedelta(days=1)))
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    return events.order_by("-occurred_at", "-id")


@dataclass(frozen=True, slots=True)
class SignIn:
    occurred_at: datetime
    method: str
    ip: str | None
    user_agent: str

    @property
    def method_label(self) -> str:
        try:
            return str(AuthMethod(self.method).label)
        except ValueError:
            return self.method or "inconnue"


def login_history_for(user: Any, limit: int = 10) -> list[SignIn]:
    """The user's last ``limit`` successful sign-ins, most recent first (one query)."""
    rows = (
        AuditEvent.objects.filter(actor=user, action="auth.login", outcome="success")
        .order_by("-occurred_at", "-id")
        .values_list("occurred_at", "auth_method", "detail", "ip", "user_agent")[:limit]
    )
    return [
        SignIn(
            occurred_at=occurred_at,
            method=method or (detail.get("method", "") if isinstance(detail, dict) else ""),
            ip=ip,
            user_agent=user_agent,
        )
        for occurred_at, method, detail, ip, user_agent in rows
    ]
