"""``usage_emit``: the one way apps report what happened, for the ARS and GCS dashboards.

Kinds are ``<app>.<fact>`` in lower case (``messagerie.message_sent``, ``dmp.document_accepted``,
``telemedecine.act_closed``, ``auth.sign_in``…). Dimensions are small scalars (method, act type, delay in
seconds, bytes…). Nothing here may identify a patient: keys that name one and values that look like an INS
or an e-mail address are refused, so that a mistake fails loudly in tests instead of leaking to the ARS.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import UsageEvent

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


def usage_emit(
    kind: str,
    *,
    structure_id: int | None = None,
    department: str = "",
    college: int | None = None,
    value: float = 1.0,
    occurred_at: datetime | None = None,
    dims: dict[str, Any] | None = None,
) -> UsageEvent:
    """Record one usage event (joins the caller's transaction: a rolled-back write emits nothing)."""
    if not KIND_RE.match(kind) or len(kind) > 60:
        raise ValidationError(f"Type d'événement d'usage invalide : « {kind} ».")
    dims = dict(dims or {})
    _check_dims(dims)
    return UsageEvent.objects.create(
        kind=kind,
        occurred_at=occurred_at or timezone.now(),
        structure_id=structure_id,
        department=department[:3],
        college=college,
        value=value,
        dims=dims,
    )
