"""Freshness of availability data: which offers are stale, the freshness rate, and the stale-offer notices.

An active offer is *stale* when its availability (``Offer.capacity_updated_at``, the time of its latest
capacity update) is older than ``ROR_STALE_AFTER_HOURS`` (24 h by default), or was never given. Offers closed
right now (an ``OfferClosure`` covering the present) are not counted: nobody is expected to update them.

Notices follow the outbox rule: ``stale_notices_prepare`` writes one ``StaleNotice`` per structure and day
(the unique constraint makes a second run of the same day a no-op), and queues ``send_stale_notice`` after
the commit; the task sends the e-mail and records the outcome, retrying with backoff. Once the messagerie
app offers a service to send from the portal's MSSanté mailbox, ``stale_notice_send`` is the one place to
switch.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from enrs.audit.services import audit_record

from .models import NoticeStatus, Offer, OfferClosure, StaleNotice, StructureMembership

NOTICE_MAX_ATTEMPTS = 5
# Rows still pending this long after their creation are assumed lost (worker killed) and queued again.
NOTICE_REQUEUE_AFTER = timedelta(minutes=15)


def stale_threshold() -> timedelta:
    return timedelta(hours=float(getattr(settings, "ROR_STALE_AFTER_HOURS", 24)))


def stale_cutoff(*, now: datetime | None = None, threshold: timedelta | None = None) -> datetime:
    """Availability updated before this instant is stale."""
    return (now or timezone.now()) - (threshold if threshold is not None else stale_threshold())


def offer_is_stale(offer: Offer, *, now: datetime | None = None, threshold: timedelta | None = None) -> bool:
    updated = offer.capacity_updated_at
    return updated is None or updated < stale_cutoff(now=now, threshold=threshold)


def _closed_now(now: datetime) -> Exists:
    return Exists(
        OfferClosure.objects.filter(offer=OuterRef("pk"), start__lte=now).filter(
            Q(end__isnull=True) | Q(end__gt=now)
        )
    )


def stale_offers(*, threshold: timedelta | None = None, now: datetime | None = None) -> QuerySet[Offer]:
    """Active, open offers whose availability is older than `threshold` (or was never given)."""
    now = now or timezone.now()
    cutoff = stale_cutoff(now=now, threshold=threshold)
    return (
        Offer.objects.filter(is_active=True)
        .filter(Q(capacity_updated_at__isnull=True) | Q(capacity_updated_at__lt=cutoff))
        .exclude(_closed_now(now))
        .order_by("structure_id", "identifier")
    )


def freshness_rate(*, threshold: timedelta | None = None, now: datetime | None = None) -> float | None:
    """Share of active, open offers whose availability is fresh (for the ARS dashboard); None if none."""
    now = now or timezone.now()
    total = Offer.objects.filter(is_active=True).exclude(_closed_now(now)).count()
    if not total:
        return None
    return 1 - stale_offers(threshold=threshold, now=now).count() / total


def structure_contacts(structure_ids: list[int]) -> dict[int, list[str]]:
    """E-mail addresses of each structure's contacts (members who receive notices)."""
    contacts: dict[int, set[str]] = defaultdict(set)
    rows = StructureMembership.objects.filter(
        structure_id__in=structure_ids, receives_notices=True, user__is_active=True
    ).exclude(user__email="")
    for structure_id, email in rows.values_list("structure_id", "user__email"):
        contacts[structure_id].add(email.lower())
    return {sid: sorted(emails) for sid, emails in contacts.items()}


@dataclass
class NoticeRun:
    stale_offers: int = 0
    structures: int = 0
    created: int = 0
    already_sent_today: int = 0
    without_contact: int = 0


def stale_notices_prepare(*, now: datetime | None = None, threshold: timedelta | None = None) -> NoticeRun:
    """Write today's notice of each structure that has stale offers and contacts; queue their sending.

    Idempotent per day: a structure already noticed today is skipped."""
    from .tasks import send_stale_notice

    now = now or timezone.now()
    day = timezone.localdate(now)
    run = NoticeRun()
    by_structure: dict[int, list[str]] = defaultdict(list)
    for structure_id, identifier in stale_offers(threshold=threshold, now=now).values_list(
        "structure_id", "identifier"
    ):
        by_structure[structure_id].append(identifier)
    run.stale_offers = sum(len(v) for v in by_structure.values())
    run.structures = len(by_structure)
    contacts = structure_contacts(list(by_structure))
    done = set(
        StaleNotice.objects.filter(day=day, structure_id__in=by_structure).values_list(
            "structure_id", flat=True
        )
    )
    for structure_id, identifiers in by_structure.items():
        if structure_id in done:
            run.already_sent_today += 1
            continue
        recipients = contacts.get(structure_id, [])
        if not recipients:
            run.without_contact += 1
            continue
        try:
            with transaction.atomic():
                notice = StaleNotice.objects.create(
                    structure_id=structure_id,
                    day=day,
                    offer_count=len(identifiers),
                    offer_identifiers=identifiers[:200],
                    recipients=recipients,
                )
                audit_record(
                    action="ror.stale_notice.create",
                    target=notice,
                    detail={"structure": structure_id, "offers": len(identifiers)},
                )
                transaction.on_commit(partial(send_stale_notice.delay, notice.pk))
        except IntegrityError:  # a concurrent run wrote it first
            run.already_sent_today += 1
            continue
        run.created += 1
    return run


def stale_notices_requeue(*, now: datetime | None = None) -> int:
    """Queue again the notices still pending long after their creation (their task was lost)."""
    from .tasks import send_stale_notice

    now = now or timezone.now()
    pks = list(
        StaleNotice.objects.filter(
            status=NoticeStatus.PENDING, created_at__lt=now - NOTICE_REQUEUE_AFTER
        ).values_list("pk", flat=True)
    )
    for pk in pks:
        send_stale_notice.delay(pk)
    return len(pks)


def _notice_text(notice: StaleNotice) -> tuple[str, str]:
    hours = float(getattr(settings, "ROR_STALE_AFTER_HOURS", 24))
    subject = (
        f"ROR : {notice.offer_count} offre(s) sans mise à jour des disponibilités depuis plus de {hours:g} h"
    )
    lines = [
        "Bonjour,",
        "",
        f"Les disponibilités des offres suivantes de « {notice.structure.name} » n'ont pas été mises à jour "
        f"depuis plus de {hours:g} heures :",
        "",
        *[f"  - {identifier}" for identifier in notice.offer_identifiers],
    ]
    if notice.offer_count > len(notice.offer_identifiers):
        lines.append(f"  … et {notice.offer_count - len(notice.offer_identifiers)} autres.")
    lines += [
        "",
        "Merci de les mettre à jour dans le portail (ROR > Disponibilités) ou par votre logiciel.",
        "",
        "— Le GCS e-santé (message automatique, ne pas répondre)",
    ]
    return subject, "\n".join(lines)


def stale_notice_send(*, notice_id: int) -> str:
    """Send one pending notice by e-mail and record the outcome. Returns the new status.

    Raises the SMTP error after recording it, so that the task retries (until NOTICE_MAX_ATTEMPTS)."""
    with transaction.atomic():
        notice = (
            StaleNotice.objects.select_for_update(skip_locked=True)
            .select_related("structure")
            .filter(pk=notice_id, status=NoticeStatus.PENDING)
            .first()
        )
        if notice is None:  # already sent, failed for good, or being sent by another worker
            return "skipped"
        subject, body = _notice_text(notice)
        notice.attempts += 1
        try:
            send_mail(subject, body, None, notice.recipients, fail_silently=False)
        except Exception as exc:  # any transport error is recorded, then retried
            notice.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if notice.attempts >= NOTICE_MAX_ATTEMPTS:
                notice.status = NoticeStatus.FAILED
            notice.save(update_fields=["attempts", "last_error", "status"])
            if notice.status == NoticeStatus.FAILED:
                audit_record(action="ror.stale_notice.fail", target=notice, outcome="failure")
                return notice.status
            raise_later = exc
        else:
            notice.status = NoticeStatus.SENT
            notice.sent_at = timezone.now()
            notice.last_error = ""
            notice.save(update_fields=["attempts", "last_error", "status", "sent_at"])
            audit_record(
                action="ror.stale_notice.send", target=notice, detail={"recipients": len(notice.recipients)}
            )
            return notice.status
    raise raise_later
