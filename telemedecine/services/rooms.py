"""Teleconsultation rooms on the configured video service (Jitsi Meet), or the fallback when none is.

ENRS does not carry video: it names a room per act on the Jitsi Meet server of ``TLM_JITSI_URL`` and
gives each participant a short-lived HS256 JWT (``TLM_JITSI_APP_ID`` / ``TLM_JITSI_APP_SECRET``,
``TLM_JITSI_TOKEN_MINUTES``). Only the expert is moderator: the others wait in the lobby until let in.
The room name is random (``secrets``), so knowing an act does not give its room.

Without a configured server the act goes on by phone, in person or without live exchange (``Fallback``);
the choice is written in the act's trace.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import OctKey

from enrs.audit.services import audit_record
from telemedecine.models import Act, ActEvent, ActStatus, ActType, Fallback
from telemedecine.selectors import act_can_read

JWT_AUDIENCE = "jitsi"
MIN_SECRET_BYTES = 16
ROOM_STATUSES = frozenset({ActStatus.ACCEPTED, ActStatus.IN_PROGRESS})
NO_VIDEO_REASON = "Aucun service de visioconférence n'est configuré."


def jitsi_configured() -> bool:
    return bool(
        getattr(settings, "TLM_JITSI_URL", "")
        and getattr(settings, "TLM_JITSI_APP_ID", "")
        and getattr(settings, "TLM_JITSI_APP_SECRET", "")
    )


def default_fallback(act: Act) -> str:
    """What replaces the video when there is none: an opinion on file for asynchronous acts, else phone."""
    if act.act_type in {ActType.TELEEXPERTISE, ActType.TELESURVEILLANCE}:
        return Fallback.ASYNC
    return Fallback.PHONE


def new_room_name() -> str:
    # Jitsi folds room names to lower case: 43 characters of [a-z0-9_-] still hold more than 200 bits.
    return "enrs-" + secrets.token_urlsafe(32).lower()


def room_create(*, act: Act) -> str:
    """Give ``act`` its room (once) when a video service is configured; otherwise record the fallback.

    Called inside the transaction of ``act_accept`` / ``act_plan``; the act row is saved here."""
    if not jitsi_configured():
        if not act.fallback:
            act.fallback = default_fallback(act)
            act.save(update_fields=["fallback", "updated_at"])
            ActEvent.objects.create(
                act=act,
                event="fallback",
                detail={
                    "fallback": act.fallback,
                    "label": act.get_fallback_display(),
                    "reason": NO_VIDEO_REASON,
                },
            )
        return ""
    if not act.room_name:
        act.room_name = new_room_name()
        act.save(update_fields=["room_name", "updated_at"])
        ActEvent.objects.create(act=act, event="room_created", detail={"service": "jitsi"})
    return act.room_name


def _secret_key() -> OctKey:
    secret = str(settings.TLM_JITSI_APP_SECRET).encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValidationError(
            "Le secret du service de visioconférence (TLM_JITSI_APP_SECRET) est trop court : "
            f"{MIN_SECRET_BYTES} caractères au moins."
        )
    return OctKey.import_key(secret)


def room_token(*, act: Act, user: Any, now: dt.datetime | None = None) -> str:
    """The signed JWT letting ``user`` into the act's room (moderator only for the expert)."""
    now = now or timezone.now()
    minutes = int(getattr(settings, "TLM_JITSI_TOKEN_MINUTES", 30))
    domain = urlsplit(settings.TLM_JITSI_URL).hostname or ""
    moderator = act.expert_id is not None and act.expert_id == user.pk
    name = user.get_full_name() or user.get_username()
    claims = {
        "aud": JWT_AUDIENCE,
        "iss": settings.TLM_JITSI_APP_ID,
        "sub": domain,
        "room": act.room_name,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()) - 10,
        "exp": int((now + dt.timedelta(minutes=minutes)).timestamp()),
        "moderator": moderator,
        "context": {
            "user": {
                "id": str(user.pk),
                "name": name,
                "email": user.email or "",
                "moderator": moderator,
                "affiliation": "owner" if moderator else "member",
            },
            "features": {"lobby": True},
        },
    }
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, _secret_key())


def room_join(*, act: Act, user: Any, request: HttpRequest | None = None) -> tuple[str, str]:
    """``(url, token)`` for ``user`` to join the act's video room; the URL carries the token."""
    if not jitsi_configured():
        raise ValidationError(
            f"{NO_VIDEO_REASON} L'acte se déroule en mode « {act.get_fallback_display()} »."
        )
    if not act_can_read(user, act):
        raise PermissionDenied("Vous ne participez pas à cet acte.")
    if act.status not in ROOM_STATUSES:
        raise ValidationError(
            "La salle n'est ouverte qu'une fois la demande acceptée et jusqu'au compte rendu."
        )
    with transaction.atomic():
        act = Act.objects.select_for_update().get(pk=act.pk)
        room_create(act=act)
        token = room_token(act=act, user=user)
        ActEvent.objects.create(
            act=act,
            actor=user,
            event="room_joined",
            detail={"moderator": act.expert_id == user.pk},
        )
        audit_record(
            action="telemedecine.room.join",
            request=request,
            actor=user,
            target=act,
            patient_ins=act.patient.ins,
            detail={"moderator": act.expert_id == user.pk},
        )
    url = f"{settings.TLM_JITSI_URL.rstrip('/')}/{quote(act.room_name)}?jwt={token}"
    return url, token


def room_for(act: Act, user: Any, request: HttpRequest | None = None) -> tuple[str, str]:
    """Positional form of ``room_join`` (the name the contract uses)."""
    return room_join(act=act, user=user, request=request)
