"""On-call pools and their rota: who answers a request sent to a pool, and who is on call right now.

A pool's members may all accept its requests; the rota (``Shift``) says who is on call when, and is
used to notify the right people when a request arrives. A member has at most one shift at a time in a
pool (no overlapping slots).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import Structure
from enrs.accounts.models import User
from enrs.audit.services import audit_record
from telemedecine.models import Pool, Shift

MAX_SHIFT = dt.timedelta(days=7)


def pool_create(
    *,
    actor: Any,
    name: str,
    structure: Structure,
    specialty: str = "",
    ror_offer_identifier: str = "",
    members: Iterable[User] = (),
    request: HttpRequest | None = None,
) -> Pool:
    """A new on-call pool of ``structure`` with its first members."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Donnez un nom à l'équipe de garde."})
    with transaction.atomic():
        if Pool.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": "Une équipe de garde porte déjà ce nom."})
        pool = Pool(
            name=name,
            structure=structure,
            specialty=specialty.strip(),
            ror_offer_identifier=ror_offer_identifier.strip(),
        )
        pool.full_clean()
        pool.save()
        member_list = list(members)
        if member_list:
            pool.members.add(*member_list)
        audit_record(
            action="telemedecine.pool.create",
            request=request,
            actor=actor,
            target=pool,
            detail={"members": [m.pk for m in member_list]},
        )
    return pool


def pool_member_add(*, pool: Pool, user: User, actor: Any, request: HttpRequest | None = None) -> Pool:
    with transaction.atomic():
        pool.members.add(user)
        audit_record(
            action="telemedecine.pool.member_add",
            request=request,
            actor=actor,
            target=pool,
            detail={"user": user.pk},
        )
    return pool


def pool_member_remove(*, pool: Pool, user: User, actor: Any, request: HttpRequest | None = None) -> Pool:
    """Remove a member; their future shifts in the pool go with them."""
    with transaction.atomic():
        pool.members.remove(user)
        removed, _ = Shift.objects.filter(pool=pool, user=user, starts_at__gte=timezone.now()).delete()
        audit_record(
            action="telemedecine.pool.member_remove",
            request=request,
            actor=actor,
            target=pool,
            detail={"user": user.pk, "future_shifts_removed": removed},
        )
    return pool


def shift_add(
    *,
    pool: Pool,
    user: User,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    actor: Any,
    request: HttpRequest | None = None,
) -> Shift:
    """Put ``user`` on call in ``pool`` from ``starts_at`` to ``ends_at``."""
    if starts_at is None or ends_at is None:
        raise ValidationError("Indiquez le début et la fin de la garde.")
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise ValidationError("Le début et la fin de la garde doivent comporter un fuseau horaire.")
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": "La fin de la garde doit suivre son début."})
    if ends_at - starts_at > MAX_SHIFT:
        raise ValidationError({"ends_at": "Une garde ne peut pas durer plus de sept jours."})
    with transaction.atomic():
        # Serialise the shifts of one pool so that two overlapping slots cannot be added concurrently.
        Pool.objects.select_for_update().get(pk=pool.pk)
        if not pool.members.filter(pk=user.pk).exists():
            raise ValidationError({"user": "Seul un membre de l'équipe peut être de garde."})
        overlapping = Shift.objects.filter(
            pool=pool, user=user, starts_at__lt=ends_at, ends_at__gt=starts_at
        ).first()
        if overlapping is not None:
            raise ValidationError(
                "Ce professionnel est déjà de garde dans cette équipe sur ce créneau "
                f"({timezone.localtime(overlapping.starts_at):%d/%m/%Y %H:%M} → "
                f"{timezone.localtime(overlapping.ends_at):%d/%m/%Y %H:%M})."
            )
        shift = Shift.objects.create(pool=pool, user=user, starts_at=starts_at, ends_at=ends_at)
        audit_record(
            action="telemedecine.shift.add",
            request=request,
            actor=actor,
            target=shift,
            detail={"pool": pool.pk, "user": user.pk, "starts_at": starts_at, "ends_at": ends_at},
        )
    return shift


def shift_remove(*, shift: Shift, actor: Any, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        detail = {"pool": shift.pool_id, "user": shift.user_id, "starts_at": shift.starts_at}
        target_id = str(shift.pk)
        shift.delete()
        audit_record(
            action="telemedecine.shift.remove",
            request=request,
            actor=actor,
            target_type="telemedecine.shift",
            target_id=target_id,
            detail=detail,
        )


def pool_on_call(pool: Pool, at: dt.datetime | None = None) -> list[User]:
    """The active members of ``pool`` on call at ``at`` (now by default), in rota order."""
    at = at or timezone.now()
    shifts = (
        Shift.objects.filter(pool=pool, starts_at__lte=at, ends_at__gt=at, user__is_active=True)
        .filter(user__telemedicine_pools=pool)
        .select_related("user")
        .order_by("starts_at", "pk")
    )
    users: list[User] = []
    for shift in shifts:
        if shift.user not in users:
            users.append(shift.user)
    return users
