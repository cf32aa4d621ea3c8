"""``usage_emit``: the one way apps report what happened, for the ARS and GCS dashboards.

Kinds are ``<app>.<fact>`` in lower case (``messagerie.message_sent``, ``dmp.document_accepted``,
``telemedecine.act_closed``, ``auth.sign_in``…). Dimensions are small scalars (method, act type, delay in
seconds, bytes…). Nothing here may identify a patient: keys that name one and values that look like an INS
or an e-mail address are refused, so that a mistake fails loudly in tests instead of leaking to the ARS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from enrs.audit.services import audit_record

from .models import Target, UsageEvent
from .resolver import resolve_structure

KIND_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
# Words of a dimension name (split on "_", "-" and case changes) that would name a patient or a person.
_FORBIDDEN_WORDS = frozenset(
    {
        "ins",
        "nir",
        "nia",
        "patient",
        "name",
        "nom",
        "prenom",
        "prénom",
        "birth",
        "naissance",
        "email",
        "mail",
        "courriel",
        "address",
        "adresse",
        "phone",
        "telephone",
    }
)
_INS_LIKE = re.compile(r"\b[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}(?:[0-9]{2})?\b")
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.I)


def _forbidden_key(key: str) -> bool:
    words = re.split(r"[_\-\s.]+|(?<=[a-z])(?=[A-Z])", key)
    return any(word.lower() in _FORBIDDEN_WORDS for word in words if word)


def _check_dims(dims: dict[str, Any]) -> None:
    for key, value in dims.items():
        if not isinstance(key, str) or _forbidden_key(key):
            raise ValidationError(f"Dimension d'usage interdite : « {key} » (aucune donnée nominative).")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValidationError(f"Dimension d'usage « {key} » : valeur simple attendue.")
        if isinstance(value, str) and (
            _INS_LIKE.search(value) or _EMAIL_LIKE.search(value) or len(value) > 100
        ):
            raise ValidationError(f"Dimension d'usage « {key} » : valeur refusée (identifiant possible).")


def actor_key(actor: Any) -> str:
    """Pseudonym of a user for distinct-actor counts: a keyed HMAC (SECRET_KEY-derived key) of its id.

    Never the id or a name; "" for anonymous or unsaved users. Stable while SECRET_KEY is unchanged."""
    pk = getattr(actor, "pk", None)
    if pk is None or getattr(actor, "is_anonymous", False):
        return ""
    return salted_hmac("enrs.usage.actor", str(pk), algorithm="sha256").hexdigest()[:32]


def usage_emit(
    kind: str,
    *,
    structure_id: int | None = None,
    department: str = "",
    college: int | None = None,
    category: str = "",
    value: float = 1.0,
    occurred_at: datetime | None = None,
    dims: dict[str, Any] | None = None,
    actor: Any = None,
) -> UsageEvent:
    """Record one usage event (joins the caller's transaction: a rolled-back write emits nothing).

    The structure's department, category and collège are looked up through the registered directory
    resolver when the caller does not give them. ``actor`` (a user) is stored only as ``actor_key(actor)``.
    """
    if not KIND_RE.match(kind) or len(kind) > 60:
        raise ValidationError(f"Type d'événement d'usage invalide : « {kind} ».")
    dims = dict(dims or {})
    _check_dims(dims)
    if structure_id is not None and not (department and category and college is not None):
        context = resolve_structure(structure_id)
        if context is not None:
            department = department or context.department
            category = category or context.category
            college = college if college is not None else context.college
    return UsageEvent.objects.create(
        kind=kind,
        occurred_at=occurred_at or timezone.now(),
        structure_id=structure_id,
        department=department[:3],
        category=category[:4],
        college=college,
        actor_key=actor_key(actor),
        value=value,
        dims=dims,
    )


@dataclass(frozen=True)
class SnapshotRow:
    """One row of a daily state snapshot (e.g. per department); ``dims`` as for ``usage_emit``."""

    value: float
    department: str = ""
    structure_id: int | None = None
    dims: dict[str, Any] = field(default_factory=dict)


def usage_snapshot_replace(*, kind: str, day: date, rows: Iterable[SnapshotRow]) -> int:
    """Replace the state snapshot ``kind`` of local day ``day`` by ``rows`` (idempotent: a second run of
    the same day replaces the first). Events are stamped at noon of that day. Returns the row count."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, time.min, tzinfo=tz)
    stamp = datetime.combine(day, time(12, 0), tzinfo=tz)
    count = 0
    with transaction.atomic():
        UsageEvent.objects.filter(
            kind=kind, occurred_at__gte=start, occurred_at__lt=start + timedelta(days=1)
        ).delete()
        for row in rows:
            usage_emit(
                kind,
                structure_id=row.structure_id,
                department=row.department,
                value=row.value,
                occurred_at=stamp,
                dims=row.dims,
            )
            count += 1
        if count == 0:
            # Still mark the day as recomputed (its old rows are gone): an empty marker row.
            usage_emit(f"{kind}.empty", occurred_at=stamp, value=0.0)
    return count


def target_set(
    *,
    indicator: str,
    year: int,
    department: str = "",
    value: float,
    actor: Any,
    request: HttpRequest | None = None,
) -> Target:
    """Set (create or replace) the yearly target of an indicator, for the region or one department."""
    from .indicators import get_indicator

    get_indicator(indicator)
    if not 2000 <= int(year) <= 2100:
        raise ValidationError({"year": "Année invalide (attendue entre 2000 et 2100)."})
    department = (department or "").strip().upper()
    if department and not re.fullmatch(r"[0-9]{2,3}|2A|2B", department):
        raise ValidationError({"department": "Code de département invalide."})
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({"value": "Valeur cible invalide."}) from None
    if number != number or number < 0 or number == float("inf"):
        raise ValidationError({"value": "La valeur cible doit être un nombre positif ou nul."})
    with transaction.atomic():
        target, created = Target.objects.select_for_update().get_or_create(
            indicator=indicator,
            year=year,
            department=department,
            defaults={"value": number, "set_by": actor if getattr(actor, "pk", None) else None},
        )
        previous = None if created else target.value
        if not created:
            target.value = number
            target.set_by = actor if getattr(actor, "pk", None) else None
            target.save()
        audit_record(
            action="usage.target.set",
            request=request,
            actor=actor,
            target=target,
            detail={
                "indicator": indicator,
                "year": year,
                "department": department,
                "value": number,
                "previous": previous,
            },
        )
    return target


def target_delete(*, target: Target, actor: Any, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        detail = {"indicator": target.indicator, "year": target.year, "department": target.department}
        audit_record(action="usage.target.delete", request=request, actor=actor, target=target, detail=detail)
        target.delete()
