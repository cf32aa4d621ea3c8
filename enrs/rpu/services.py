"""Writes of the RPU app: file import (upload or drop directory), feed supervision and its e-mails."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from enrs.audit.services import audit_record

from . import oscour
from .models import (
    AgeBand,
    EmergencyDepartment,
    FeedCheck,
    FeedState,
    FileSource,
    FileStatus,
    NoticeState,
    RpuFile,
    RpuPassage,
    RpuRejection,
)
from .selectors import emergency_department_list, feed_status_for

logger = logging.getLogger(__name__)

NOTICE_MAX_ATTEMPTS = 5
STALE_CLAIM_SECONDS = 3600


class RpuFileRefused(ValidationError):
    """The whole file was refused; the refusal is recorded in `rpu_file` (status "refused")."""

    def __init__(self, message: str, *, rpu_file: RpuFile) -> None:
        super().__init__(message)
        self.rpu_file = rpu_file


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=_zone())


def age_band(years: int | None) -> str:
    if years is None:
        return AgeBand.UNKNOWN
    if years < 1:
        return AgeBand.UNDER_1
    if years < 18:
        return AgeBand.UNDER_18
    if years < 75:
        return AgeBand.ADULT
    return AgeBand.ELDERLY


def _passage(record: oscour.RpuRecord, *, file: RpuFile, ed: EmergencyDepartment) -> RpuPassage:
    years: int | None = None
    months: int | None = None
    if record.birth_date is not None:
        years, total_months = oscour.age_at(record.birth_date, record.entry.date())
        months = total_months if years < 2 else None
    entry_at = _aware(record.entry)
    exit_at = _aware(record.exit) if record.exit is not None else None
    length: int | None = None
    if exit_at is not None:
        # Through UTC: aware datetimes sharing one tzinfo subtract as wall-clock times (wrong across DST).
        seconds = (exit_at.astimezone(UTC) - entry_at.astimezone(UTC)).total_seconds()
        length = max(0, int(seconds // 60))
    return RpuPassage(
        file=file,
        emergency_department=ed,
        record_index=record.index,
        entry_at=entry_at,
        entry_day=record.entry.date(),
        exit_at=exit_at,
        length_minutes=length,
        postal_code=record.postal_code,
        commune=record.commune,
        age_years=years,
        age_months=months,
        age_band=age_band(years),
        sex=record.sex,
        mode_entree=record.mode_entree,
        provenance=record.provenance,
        transport=record.transport,
        transport_pec=record.transport_pec,
        motif=record.motif,
        motif_filled=record.motif_filled,
        gravite=record.gravite,
        dp=record.dp,
        da_count=min(len(record.da), 32767),
        actes_count=min(len(record.actes), 32767),
        mode_sortie=record.mode_sortie,
        destination=record.destination,
        orientation=record.orientation,
    )


def _refuse(
    *,
    reason: str,
    data: bytes,
    digest: str,
    source: str,
    original_name: str,
    received_at: datetime,
    actor: Any,
    finess: str = "",
    ed: EmergencyDepartment | None = None,
) -> RpuFileRefused:
    with transaction.atomic():
        rpu_file = RpuFile.objects.create(
            emergency_department=ed,
            source=source,
            original_name=original_name[:255],
            sha256=digest,
            size=len(data),
            finess=finess[:20],
            received_at=received_at,
            status=FileStatus.REFUSED,
            refusal_reason=reason,
            uploaded_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            action="rpu.file.refuse",
            actor=actor,
            target=rpu_file,
            outcome="failure",
            detail={"source": source, "size": len(data)},
        )
    return RpuFileRefused(reason, rpu_file=rpu_file)


def rpu_file_import(
    *,
    data: bytes,
    source: FileSource | str,
    original_name: str = "",
    actor: Any = None,
    expected_department: EmergencyDepartment | None = None,
    received_at: datetime | None = None,
) -> RpuFile:
    """Import one OSCOUR file.

    A malformed or unsafe file, or one whose FINESS is wrong or unknown (or not the FINESS of
    `expected_department` when given), is refused whole: the refusal is recorded and `RpuFileRefused`
    (a `ValidationError`, French message) is raised. Otherwise each bad passage is rejected with its
    reasons and the others are stored. Importing a file again for the same days replaces what an earlier
    file said about those days (idempotent: the same file twice gives the same passages)."""
    source = FileSource(source)
    received_at = received_at or timezone.now()
    digest = hashlib.sha256(data).hexdigest()
    refuse = {
        "data": data,
        "digest": digest,
        "source": source,
        "original_name": original_name,
        "received_at": received_at,
        "actor": actor,
    }
    try:
        parsed = oscour.parse_oscour(
            data,
            max_bytes=int(getattr(settings, "RPU_MAX_FILE_BYTES", oscour.DEFAULT_MAX_BYTES)),
            max_records=int(getattr(settings, "RPU_MAX_RECORDS", oscour.DEFAULT_MAX_RECORDS)),
        )
    except oscour.OscourFileError as exc:
        raise _refuse(reason=str(exc), ed=expected_department, **refuse) from None

    ed = EmergencyDepartment.objects.filter(finess=parsed.finess).first()
    if ed is None:
        raise _refuse(
            reason=f"FINESS {parsed.finess} : aucune structure des urgences enregistrée sous ce numéro.",
            finess=parsed.finess,
            ed=expected_department,
            **refuse,
        )
    if expected_department is not None and ed.pk != expected_department.pk:
        raise _refuse(
            reason=(
                f"Le fichier porte le FINESS {parsed.finess} ({ed.name}), pas celui de "
                f"« {expected_department.name} » ({expected_department.finess})."
            ),
            finess=parsed.finess,
            ed=expected_department,
            **refuse,
        )

    start, end = parsed.period_start, parsed.period_end
    if start is None or end is None:
        entry_days = [record.entry.date() for record in parsed.records]
        if not entry_days:
            raise _refuse(
                reason="Période inconnue : ni DATEDEBUT/DATEFIN ni passage valide dans le fichier.",
                finess=parsed.finess,
                ed=ed,
                **refuse,
            )
        start, end = min(entry_days), max(entry_days)

    with transaction.atomic():
        EmergencyDepartment.objects.select_for_update().get(pk=ed.pk)  # one import at a time per ED
        replaced = RpuPassage.objects.filter(
            emergency_department=ed, entry_day__gte=start, entry_day__lte=end
        ).delete()[0]
        RpuFile.objects.filter(
            emergency_department=ed,
            status=FileStatus.IMPORTED,
            period_start__gte=start,
            period_end__lte=end,
        ).update(status=FileStatus.REPLACED)
        rpu_file = RpuFile.objects.create(
            emergency_department=ed,
            source=source,
            original_name=original_name[:255],
            sha256=digest,
            size=len(data),
            finess=parsed.finess,
            extracted_at=_aware(parsed.extracted_at) if parsed.extracted_at else None,
            period_start=start,
            period_end=end,
            received_at=received_at,
            status=FileStatus.IMPORTED,
            record_count=parsed.total,
            accepted_count=len(parsed.records),
            rejected_count=len(parsed.errors),
            uploaded_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        RpuPassage.objects.bulk_create(
            [_passage(record, file=rpu_file, ed=ed) for record in parsed.records], batch_size=2000
        )
        RpuRejection.objects.bulk_create(
            [
                RpuRejection(
                    file=rpu_file, record_index=error.index, line=error.line, reasons=list(error.reasons)
                )
                for error in parsed.errors
            ],
            batch_size=2000,
        )
        audit_record(
            action="rpu.file.import",
            actor=actor,
            target=rpu_file,
            detail={
                "source": str(source),
                "accepted": rpu_file.accepted_count,
                "rejected": rpu_file.rejected_count,
                "replaced_passages": replaced,
            },
        )
    return rpu_file


# --- drop directory -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DropOutcome:
    name: str
    rpu_file: RpuFile
    refused: bool


def _move(path: Path, folder: Path, stamp: str) -> None:
    folder.mkdir(mode=0o700, exist_ok=True)
    os.replace(path, folder / f"{stamp}-{path.name}")


def drop_dir_scan(*, directory: Path | str | None = None, now: datetime | None = None) -> list[DropOutcome]:
    """Import every *.xml file of the drop directory, then move it to done/ or refused/.

    A file is claimed by renaming it into processing/ first, so two workers never import it twice; a
    file left there by a worker that died (claimed more than STALE_CLAIM_SECONDS ago) is put back.
    Files bigger than RPU_MAX_FILE_BYTES are refused without being read."""
    root = Path(directory or settings.RPU_DROP_DIR)
    if not root.is_dir():
        return []
    processing = root / "processing"
    processing.mkdir(mode=0o700, exist_ok=True)
    now = now or timezone.now()
    for stale in processing.iterdir():
        if stale.is_file() and time.time() - stale.stat().st_mtime > STALE_CLAIM_SECONDS:
            os.replace(stale, root / stale.name)
    stamp = timezone.localtime(now, _zone()).strftime("%Y%m%dT%H%M%S")
    max_bytes = int(getattr(settings, "RPU_MAX_FILE_BYTES", oscour.DEFAULT_MAX_BYTES))
    outcomes: list[DropOutcome] = []
    for candidate in sorted(root.iterdir()):
        if candidate.suffix.lower() != ".xml" or candidate.is_symlink() or not candidate.is_file():
            continue
        claimed = processing / candidate.name
        try:
            os.rename(candidate, claimed)
        except FileNotFoundError:  # taken by another worker
            continue
        os.utime(claimed)  # the claim time, for the recovery of files left by a dead worker
        size = claimed.stat().st_size
        # Over the limit: read one byte more than allowed so that the parser refuses it by size.
        with claimed.open("rb") as handle:
            data = handle.read(max_bytes + 1 if size > max_bytes else size)
        try:
            rpu_file = rpu_file_import(
                data=data, source=FileSource.DROP, original_name=candidate.name, received_at=now
            )
        except RpuFileRefused as refusal:
            _move(claimed, root / "refused", stamp)
            outcomes.append(DropOutcome(name=candidate.name, rpu_file=refusal.rpu_file, refused=True))
            logger.warning("RPU file %s refused: %s", candidate.name, refusal.messages[0])
            continue
        _move(claimed, root / "done", stamp)
        outcomes.append(DropOutcome(name=candidate.name, rpu_file=rpu_file, refused=False))
    return outcomes


# --- supervision --------------------------------------------------------------------------------------


def feed_check_run(*, day: date, now: datetime | None = None, actor: Any = None) -> list[FeedCheck]:
    """Check every active ED's feed for `day`, record it (one row per ED and day, updated by a re-run)
    and queue an e-mail to each establishment whose feed is missing, late or incomplete (once per day)."""
    from .tasks import send_feed_notice

    now = now or timezone.now()
    checks: list[FeedCheck] = []
    with transaction.atomic():
        for ed in emergency_department_list():
            status = feed_status_for(ed, day=day)
            check = FeedCheck.objects.select_for_update().filter(
                emergency_department=ed, day=day
            ).first() or FeedCheck(emergency_department=ed, day=day)
            check.state = status.state
            check.problems = list(status.problems)
            check.passages = status.passages
            check.usual = status.usual
            check.first_received_at = status.first_received_at
            check.checked_at = now
            if check.notice_state != NoticeState.SENT:
                if status.state == FeedState.OK:
                    check.notice_state = NoticeState.NONE
                elif not ed.contact_email:
                    check.notice_state = NoticeState.NO_ADDRESS
                elif check.notice_state != NoticeState.FAILED:
                    check.notice_state = NoticeState.PENDING
            check.save()
            checks.append(check)
        counts = {state.value: sum(1 for c in checks if c.state == state) for state in FeedState}
        audit_record(
            action="rpu.feed.check",
            actor=actor,
            target_type="rpu.day",
            target_id=day.isoformat(),
            detail=counts,
        )
        for check in checks:
            if check.notice_state == NoticeState.PENDING:
                transaction.on_commit(partial(send_feed_notice.delay, check.pk))
    return checks


def _notice_text(check: FeedCheck) -> tuple[str, str]:
    ed = check.emergency_department
    day = check.day.strftime("%d/%m/%Y")
    subject = f"RPU du {day} : flux {check.get_state_display().lower()} — {ed.name}"
    lines = [
        "Bonjour,",
        "",
        f"La supervision régionale des résumés de passage aux urgences (RPU) a relevé, pour « {ed.name} » "
        f"(FINESS {ed.finess}), le {day} :",
        "",
        *[f"  - {problem}" for problem in check.problems],
        "",
        "Merci d'envoyer ou de renvoyer le fichier OSCOUR de cette journée (dépôt dans le portail ou "
        "répertoire de dépôt habituel).",
        "",
        "— Le GCS e-santé (message automatique, ne pas répondre)",
    ]
    return subject, "\n".join(lines)


def feed_notice_send(*, check_id: int) -> str:
    """Send the pending e-mail of one feed check and record the outcome; returns the new notice state.
    Raises the transport error after recording it so that the task retries (NOTICE_MAX_ATTEMPTS)."""
    with transaction.atomic():
        check = (
            FeedCheck.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("emergency_department")
            .filter(pk=check_id, notice_state=NoticeState.PENDING)
            .first()
        )
        if check is None:
            return "skipped"
        subject, body = _notice_text(check)
        check.notice_attempts += 1
        try:
            send_mail(subject, body, None, [check.emergency_department.contact_email], fail_silently=False)
        except Exception as exc:  # any transport error is recorded, then retried
            check.notice_error = f"{type(exc).__name__}: {exc}"[:2000]
            if check.notice_attempts >= NOTICE_MAX_ATTEMPTS:
                check.notice_state = NoticeState.FAILED
            check.save(update_fields=["notice_attempts", "notice_error", "notice_state"])
            if check.notice_state == NoticeState.FAILED:
                audit_record(action="rpu.feed_notice.fail", target=check, outcome="failure")
                return check.notice_state
            error = exc
        else:
            check.notice_state = NoticeState.SENT
            check.notice_sent_at = timezone.now()
            check.notice_error = ""
            check.save(update_fields=["notice_attempts", "notice_error", "notice_state", "notice_sent_at"])
            audit_record(action="rpu.feed_notice.send", target=check, detail={"state": check.state})
            return check.notice_state
    raise error
