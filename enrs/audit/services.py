"""Writing the audit trail (``audit_record``) and checking its hash chain (``audit_chain_verify``).

``audit_record`` joins the caller's transaction: an event rolls back with the business write it
describes. On PostgreSQL writers are serialised by a transaction-level advisory lock, held until the
caller's transaction ends; call ``audit_record`` as the last step of a transaction so that the lock is
held briefly (and never before taking row locks that another auditing transaction may hold).
"""

import ipaddress
import json
import math
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.http import HttpRequest
from django.utils import timezone

from enrs.accounts.authn import auth_method as session_auth_method
from enrs.core.net import client_ip

from .chain import GENESIS_HASH, EventContent, event_hash
from .models import AuditEvent, Outcome

# Key of the PostgreSQL advisory lock that serialises writers of the chain ("enrsaudt" in ASCII).
AUDIT_CHAIN_LOCK_KEY = 0x656E727361756474

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")
# INS (NIR or NIA): 15 characters, the department may be 2A / 2B (Corsica).
INS_RE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$")

_field_length = {f.name: f.max_length for f in AuditEvent._meta.concrete_fields if f.max_length}


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    actor: Any = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    patient_ins: str = "",
    outcome: str = "success",
    detail: dict | None = None,
) -> AuditEvent:
    """Append one event to the audit trail and return it.

    From ``request`` (when given): client IP, user agent, request id, authentication method of the
    session and, unless ``actor`` is given, the signed-in user. From ``target`` (when given): its type
    (``app_label.model``) and primary key; otherwise ``target_type`` / ``target_id`` as given.
    Raises ``ValidationError`` (French message) for a malformed action, outcome, INS, target or detail.
    """
    return _append(
        action=action,
        request=request,
        actor=actor,
        actor_label=None,
        target=target,
        target_type=target_type,
        target_id=target_id,
        patient_ins=patient_ins,
        outcome=outcome,
        detail=detail,
    )


def _append(
    *,
    action: str,
    request: HttpRequest | None,
    actor: Any,
    actor_label: str | None,
    target: models.Model | None,
    target_type: str,
    target_id: str,
    patient_ins: str,
    outcome: str,
    detail: dict | None,
) -> AuditEvent:
    """``audit_record`` plus ``actor_label``: the username to show when there is no actor (a failed
    sign-in records the username that was typed)."""
    if not isinstance(action, str) or len(action) > _field_length["action"] or not ACTION_RE.match(action):
        raise ValidationError(
            "Action d'audit invalide : %(action)r (attendu : mots en minuscules séparés par des points, "
            "par exemple « auth.login »).",
            code="invalid_action",
            params={"action": action},
        )
    if outcome not in Outcome.values:
        raise ValidationError(
            "Résultat d'audit invalide : %(outcome)r (valeurs possibles : success, failure, denied).",
            code="invalid_outcome",
            params={"outcome": outcome},
        )
    ins = _normalise_ins(patient_ins)
    target_type, target_id = _target_fields(target, target_type, target_id)
    clean_detail = _normalise_detail(detail)

    user = getattr(request, "user", None) if request is not None else None
    if actor is None and getattr(user, "is_authenticated", False):
        actor = user
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None  # AnonymousUser
    if actor is not None and actor.pk is None:
        raise ValidationError("L'auteur d'un événement d'audit doit être un utilisateur enregistré.")
    label = actor.get_username() if actor is not None else (actor_label or "")

    ip: str | None = None
    user_agent = request_id = method = ""
    if request is not None:
        ip = _normalise_ip(client_ip(request))
        user_agent = request.META.get("HTTP_USER_AGENT", "")
        request_id = getattr(request, "request_id", "")
        found = session_auth_method(request) if hasattr(request, "session") else None
        method = found.value if found is not None else ""

    event = AuditEvent(
        actor=actor,
        actor_label=_text(label, "actor_label"),
        auth_method=_text(method, "auth_method"),
        action=action,
        target_type=_text(target_type, "target_type"),
        target_id=_text(target_id, "target_id"),
        patient_ins=ins,
        ip=ip,
        user_agent=_text(user_agent, "user_agent"),
        outcome=outcome,
        request_id=_text(request_id, "request_id"),
        detail=clean_detail,
    )
    using = router.db_for_write(AuditEvent)
    # savepoint=False: a failure to audit marks the caller's transaction for rollback, so a business
    # write can never be committed without the event that describes it.
    with transaction.atomic(using=using, savepoint=False):
        connection = transaction.get_connection(using)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
        prev_hash = (
            AuditEvent.objects.using(using).order_by("-id").values_list("hash", flat=True).first()
            or GENESIS_HASH
        )
        # Taken under the lock: timestamps follow the order of the chain.
        event.occurred_at = timezone.now()
        event.prev_hash = prev_hash
        event.hash = event_hash(prev_hash, event.content())
        event.save(force_insert=True, using=using)
    return event


def _text(value: Any, field: str) -> str:
    """A string the database stores as is: no NUL, no lone surrogate, cut to the column's length."""
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[: _field_length[field]]


def _normalise_ins(value: str) -> str:
    ins = "".join(str(value or "").split()).upper()
    if ins and not INS_RE.match(ins):
        raise ValidationError(
            "INS du patient invalide : 15 caractères attendus (NIR ou NIA, département 2A/2B admis).",
            code="invalid_ins",
        )
    return ins


def _target_fields(target: models.Model | None, target_type: str, target_id: str) -> tuple[str, str]:
    if target is None:
        if target_id and not target_type:
            raise ValidationError("Un identifiant de cible demande un type de cible.", code="invalid_target")
        return str(target_type or ""), str(target_id or "")
    if target_type or target_id:
        raise ValidationError(
            "Donner soit l'objet cible, soit son type et son identifiant, pas les deux.",
            code="invalid_target",
        )
    if target.pk is None:
        raise ValidationError("La cible d'un événement d'audit doit être enregistrée.", code="invalid_target")
    return target._meta.label_lower, str(target.pk)


def _normalise_ip(value: str | None) -> str | None:
    """The address as PostgreSQL's inet keeps it; None when it is not an IP address."""
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0].strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _json_value(value: Any) -> Any:
    """A JSON value that comes back unchanged from a PostgreSQL jsonb column."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        if value == 0:
            return 0.0  # jsonb has no negative zero
        if abs(value) >= 1e16:
            return int(value)  # jsonb prints 1e+16 as 10000000000000000, which reads back as an int
        return value
    if isinstance(value, dict):
        return {_json_value(str(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _normalise_detail(detail: dict | None) -> dict[str, Any]:
    if detail is None:
        return {}
    if not isinstance(detail, dict):
        raise ValidationError(
            "Le détail d'un événement d'audit doit être un dictionnaire.", code="invalid_detail"
        )
    try:
        normalised = _json_value(detail)
        json.dumps(normalised, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            "Le détail d'un événement d'audit doit être du JSON simple (textes, nombres, booléens, listes, "
            "dictionnaires, dates).",
            code="invalid_detail",
        ) from exc
    return normalised


# --- Verification of the chain --------------------------------------------------------------------


class BreakReason(models.TextChoices):
    CONTENT_ALTERED = "content_altered", "contenu modifié"
    LINK_BROKEN = "link_broken", "lien rompu"
    ROW_MISSING = "row_missing", "événement manquant"


@dataclass(frozen=True, slots=True)
class ChainBreak:
    event_id: int
    reason: BreakReason
    message: str


@dataclass(frozen=True, slots=True)
class ChainVerification:
    checked: int
    last_id: int | None
    last_hash: str
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None

    @property
    def message(self) -> str:
        if self.first_break is None:
            return f"Chaîne d'audit intègre : {self.checked} événements vérifiés."
        return (
            f"Chaîne d'audit rompue à l'événement n° {self.first_break.event_id} : "
            f"{self.first_break.message} ({self.checked} événements intègres avant lui.)"
        )


# id, the hashed content in EventContent's field order, then the two hashes.
_VERIFY_FIELDS = ("id", *(f.name for f in fields(EventContent)), "prev_hash", "hash")


def audit_chain_verify(*, chunk_size: int = 5000) -> ChainVerification:
    """Walk the whole chain in id order (constant memory) and stop at the first broken link.

    For each event: its ``prev_hash`` must be the ``hash`` of the event before it (64 zeros for the
    first), and its ``hash`` must be the hash recomputed from its content. Gaps in ids are normal (an
    event rolled back with its transaction leaves one); a gap *and* a broken link means a row is missing.
    A deleted tail (the most recent events) leaves no broken link: compare ``last_id``/``last_hash``
    with a copy kept elsewhere to detect it.
    """
    rows = (
        AuditEvent.objects.using(router.db_for_read(AuditEvent))
        .order_by("id")
        .values_list(*_VERIFY_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    checked = 0
    expected_prev = GENESIS_HASH
    previous_id: int | None = None
    for row in rows:
        event_id, *content_values, prev_hash, stored_hash = row
        if prev_hash != expected_prev:
            if previous_id is None:
                message = (
                    "le premier événement conservé ne part pas de l'origine de la chaîne : "
                    "des événements plus anciens ont été supprimés, ou son empreinte précédente "
                    "a été modifiée."
                )
                reason = BreakReason.ROW_MISSING
            elif event_id != previous_id + 1:
                message = (
                    f"son empreinte précédente ne correspond pas à l'événement n° {previous_id} : "
                    f"un ou plusieurs événements entre les n° {previous_id} et {event_id} ont été supprimés."
                )
                reason = BreakReason.ROW_MISSING
            else:
                message = (
                    f"lien rompu : son empreinte précédente ne correspond pas à l'empreinte de "
                    f"l'événement n° {previous_id}."
                )
                reason = BreakReason.LINK_BROKEN
            found = ChainBreak(event_id, reason, message)
            return ChainVerification(checked, previous_id, expected_prev, found)
        content = EventContent(*content_values)
        if event_hash(prev_hash, content) != stored_hash:
            message = "contenu modifié : l'empreinte recalculée ne correspond pas à l'empreinte enregistrée."
            found = ChainBreak(event_id, BreakReason.CONTENT_ALTERED, message)
            return ChainVerification(checked, previous_id, expected_prev, found)
        checked += 1
        expected_prev = stored_hash
        previous_id = event_id
    return ChainVerification(checked, previous_id, expected_prev, None)
