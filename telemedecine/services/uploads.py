"""Resumable browser uploads of DICOM studies (a zip, a folder sent as a bundle, or one file).

1. `upload_start` opens an `UploadSession` for an announced size (at most ``DICOM_MAX_UPLOAD_BYTES``);
2. `upload_chunk` appends one piece at ``offset``, which must be exactly what the server already holds
   (``received_size``): after a network error the page asks for ``received_size`` and resumes from there.
   Pieces go to a file in a private temporary folder (``DICOM_UPLOAD_DIR``, default: a folder of the
   system's temporary directory), never to the database;
3. `upload_complete` checks every file (`telemedecine.dicom.archive` for the container, then
   `telemedecine.dicom.parse` for each file: readable DICOM, required UIDs, one patient, one study, the
   act's patient), then files them all in ONE transaction: one bad file refuses the whole upload and
   nothing of it stays visible; the session is then ``failed`` with the French reason.

The temporary file is deleted once the upload is complete or refused; `uploads_expire_stale` ends uploads
left open for a day (page closed, never resumed).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from enrs.audit.services import audit_record
from telemedecine.dicom import archive, parse
from telemedecine.models import Act, Study, StudySource, UploadSession, UploadStatus
from telemedecine.selectors import act_can_read

from . import studies

MAX_FILENAME = 255
STALE_AFTER = dt.timedelta(hours=24)


def upload_dir() -> Path:
    configured = getattr(settings, "DICOM_UPLOAD_DIR", "") or ""
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / "enrs-dicom-uploads"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def part_path(session: UploadSession) -> Path:
    """Where the pieces received so far are kept."""
    return upload_dir() / f"{session.pk}.part"


def _max_upload_bytes() -> int:
    return int(settings.DICOM_MAX_UPLOAD_BYTES)


def _clean_filename(filename: str) -> str:
    name = os.path.basename(str(filename or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable())
    if not name:
        raise ValidationError("Nom de fichier manquant.", code="filename")
    return name[:MAX_FILENAME]


def upload_start(
    *, user: Any, filename: str, total_size: int, act: Act | None = None, request: HttpRequest | None = None
) -> UploadSession:
    """Open a resumable upload of ``total_size`` bytes (refused above ``DICOM_MAX_UPLOAD_BYTES``)."""
    name = _clean_filename(filename)
    if isinstance(total_size, bool) or not isinstance(total_size, int) or total_size <= 0:
        raise ValidationError("Taille du dépôt invalide.", code="total_size")
    limit = _max_upload_bytes()
    if total_size > limit:
        raise ValidationError(
            "Dépôt trop volumineux : %(size)s Mo (maximum %(limit)s Mo).",
            code="oversized",
            params={"size": total_size // 1024**2, "limit": limit // 1024**2},
        )
    if act is not None and not act_can_read(user, act):
        raise ValidationError("Vous ne participez pas à cette demande de télémédecine.", code="act")
    with transaction.atomic():
        session = UploadSession.objects.create(user=user, act=act, filename=name, total_size=total_size)
        part_path(session).write_bytes(b"")
        os.chmod(part_path(session), 0o600)
    return session


def upload_chunk(*, session: UploadSession, offset: int, data: bytes) -> UploadSession:
    """Append ``data`` at ``offset`` (must equal the bytes already received); returns the session with its
    new ``received_size``. A wrong offset raises `ValidationError` code ``wrong_offset``."""
    if len(data) == 0:
        raise ValidationError("Morceau vide.", code="empty_chunk")
    if len(data) > int(settings.DICOM_UPLOAD_CHUNK_BYTES):
        raise ValidationError(
            "Morceau trop gros (maximum %(limit)s octets).",
            code="chunk_too_large",
            params={"limit": settings.DICOM_UPLOAD_CHUNK_BYTES},
        )
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.status != UploadStatus.OPEN:
            raise ValidationError("Ce dépôt est déjà terminé ou refusé.", code="closed")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset != locked.received_size:
            raise ValidationError(
                "Position inattendue : le serveur a déjà reçu %(received)s octets.",
                code="wrong_offset",
                params={"received": locked.received_size},
            )
        if offset + len(data) > locked.total_size:
            raise ValidationError(
                "Le dépôt dépasse la taille annoncée (%(total)s octets).",
                code="oversized",
                params={"total": locked.total_size},
            )
        path = part_path(locked)
        if not path.exists():
            raise ValidationError(
                "Les morceaux déjà reçus ont été perdus : recommencez le dépôt.", code="lost"
            )
        with open(path, "r+b") as handle:
            # Written at the offset and cut there: bytes of an attempt whose commit failed are overwritten.
            handle.seek(offset)
            handle.write(data)
            handle.truncate()
        locked.received_size = offset + len(data)
        locked.save(update_fields=["received_size", "updated_at"])
    return locked


def _limits() -> archive.UploadLimits:
    return archive.UploadLimits(max_files=int(settings.DICOM_MAX_FILES), max_total_bytes=_max_upload_bytes())


def _validated_files(session: UploadSession, path: Path) -> list[tuple[str, parse.DicomFileInfo | None]]:
    """Pass 1, nothing written: every file parsed and checked. ``None`` marks a DICOMDIR (left out)."""
    checked: list[tuple[str, parse.DicomFileInfo | None]] = []
    try:
        with archive.open_upload(path, _limits(), display_name=session.filename) as payload:
            for name, data in payload.files():
                try:
                    checked.append((name, parse.read_dicom(data)))
                except parse.DicomError as exc:
                    if exc.code == "dicomdir":
                        checked.append((name, None))
                        continue
                    raise ValidationError(
                        "Fichier « %(name)s » refusé : %(reason)s",
                        code=exc.code,
                        params={"name": name[:200], "reason": exc.message},
                    ) from exc
    except archive.ArchiveError as exc:
        raise ValidationError(exc.message, code=exc.code) from exc
    infos = [info for _, info in checked if info is not None]
    if not infos:
        raise ValidationError("Le dépôt ne contient aucune image DICOM.", code="no_dicom")
    try:
        parse.check_one_patient(infos)
    except parse.DicomError as exc:
        raise ValidationError(exc.message, code=exc.code) from exc
    study_uids = {info.study_instance_uid for info in infos}
    if len(study_uids) > 1:
        raise ValidationError(
            "Le dépôt contient %(count)s examens différents : déposez-les un par un.",
            code="several_studies",
            params={"count": len(study_uids)},
        )
    if session.act is not None:
        studies.check_act_patient(session.act, infos[0])
    known = Study.objects.filter(study_instance_uid=infos[0].study_instance_uid, site__isnull=True).first()
    if known is not None:  # the same study uploaded before: it must be about the same patient
        studies.check_same_patient(known, infos[0])
    return checked


def _file_all(
    session: UploadSession, path: Path, checked: list[tuple[str, parse.DicomFileInfo | None]]
) -> Study:
    """Pass 2, inside the caller's transaction: every file filed, then the study finalised."""
    infos = dict(checked)
    study: Study | None = None
    with archive.open_upload(path, _limits(), display_name=session.filename) as payload:
        for name, data in payload.files():
            info = infos.get(name)
            if info is None:
                continue
            instance = studies.ingest_parsed(
                info=info, data=data, source=StudySource.UPLOAD, uploaded_by=session.user, act=session.act
            )
            study = instance.series.study
    assert study is not None
    locked = Study.objects.select_for_update().get(pk=study.pk)
    return studies.finalize_locked(locked)


def upload_complete(*, session: UploadSession, request: HttpRequest | None = None) -> Study:
    """Check and file everything received; on refusal nothing stays, the session is ``failed`` with the
    French reason and `ValidationError` is raised. Audited ``telemedecine.study.upload``."""
    refusal: ValidationError | None = None
    study: Study | None = None
    with transaction.atomic():
        locked = (
            UploadSession.objects.select_for_update(of=("self",))
            .select_related("act", "user")
            .get(pk=session.pk)
        )
        if locked.status != UploadStatus.OPEN:
            raise ValidationError("Ce dépôt est déjà terminé ou refusé.", code="closed")
        if locked.received_size != locked.total_size:
            raise ValidationError(
                "Le dépôt est incomplet : %(received)s octets reçus sur %(total)s.",
                code="incomplete",
                params={"received": locked.received_size, "total": locked.total_size},
            )
        path = part_path(locked)
        try:
            with transaction.atomic():  # one savepoint for every file: all filed, or none
                checked = _validated_files(locked, path)
                study = _file_all(locked, path, checked)
        except ValidationError as exc:
            refusal = exc
        if refusal is not None:
            locked.status = UploadStatus.FAILED
            locked.error = " ".join(refusal.messages)[:2000]
            locked.save(update_fields=["status", "error", "updated_at"])
            audit_record(
                action="telemedecine.study.upload",
                request=request,
                actor=locked.user,
                target=locked,
                outcome="failure",
                detail={"upload": str(locked.pk), "bytes": locked.total_size, "error": locked.error[:300]},
            )
        else:
            assert study is not None
            locked.status = UploadStatus.COMPLETE
            locked.study = study
            locked.error = ""
            locked.save(update_fields=["status", "study", "error", "updated_at"])
            audit_record(
                action="telemedecine.study.upload",
                request=request,
                actor=locked.user,
                target=study,
                patient_ins=studies.audit_ins(study),
                detail={
                    "upload": str(locked.pk),
                    "bytes": locked.total_size,
                    "series": study.series_count,
                    "instances": study.instance_count,
                    "act": locked.act_id,
                },
            )
    part_path(locked).unlink(missing_ok=True)
    if refusal is not None:
        raise refusal
    assert study is not None
    return study


def uploads_expire_stale(*, older_than: dt.timedelta = STALE_AFTER) -> int:
    """Uploads left open (page closed, never resumed) for longer than ``older_than`` become ``failed``
    and their pieces are deleted; returns how many. For a periodic task."""
    limit = timezone.now() - older_than
    expired = 0
    for session_id in UploadSession.objects.filter(
        status=UploadStatus.OPEN, updated_at__lt=limit
    ).values_list("pk", flat=True):
        with transaction.atomic():
            session = (
                UploadSession.objects.select_for_update(skip_locked=True)
                .filter(pk=session_id, status=UploadStatus.OPEN)
                .first()
            )
            if session is None:
                continue
            session.status = UploadStatus.FAILED
            session.error = "Dépôt abandonné : il n'a pas été terminé à temps."
            session.save(update_fields=["status", "error", "updated_at"])
        part_path(session).unlink(missing_ok=True)
        expired += 1
    return expired


def upload_status(session: UploadSession) -> dict[str, Any]:
    """What the page needs to resume or finish (JSON-ready)."""
    return {
        "id": str(session.pk),
        "status": session.status,
        "received_size": session.received_size,
        "total_size": session.total_size,
        "error": session.error,
        "study_id": session.study_id,
    }
