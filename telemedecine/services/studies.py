"""DICOM studies: filing received files (browser uploads, C-STORE SCP), finishing a study, who may see it,
and de-identified exports for teaching and research.

* `study_ingest_file` parses and validates one file (`telemedecine.dicom.parse`), stores its bytes as
  received, encrypted in the vault (SHA-256 of the file kept), and files it under its study and series;
  a file already filed (same SOP Instance UID in the study) is not stored twice. Files of one study must
  be about one patient.
* `study_finalize` recounts, makes the preview (middle image of the largest series), reconciles the
  patient (the act's patient, or a qualified identity whose matricule INS is the DICOM Patient ID) and
  makes the study available.
* `study_get_for` is the audited read of a study: its uploader, the people of its act
  (`telemedecine.selectors.act_can_read`) and whoever completed an upload of it.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest

from enrs.audit.services import audit_record
from enrs.patients import ins as ins_codes
from enrs.patients.models import IdentityStatus, Patient
from enrs.usage.services import usage_emit
from enrs.vault.services import blob_delete, blob_put, blob_read
from telemedecine.dicom import deidentify, parse
from telemedecine.dicom.thumbnail import thumbnail_png
from telemedecine.models import (
    Act,
    Instance,
    Series,
    Study,
    StudySource,
    StudyStatus,
    TransferPurpose,
    UploadSession,
    UploadStatus,
)
from telemedecine.selectors import act_can_read

BLOB_PURPOSE = "telemedecine.dicom"
THUMBNAIL_PURPOSE = "telemedecine.thumbnail"


def _load(data_or_path: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        return bytes(data_or_path)
    return Path(data_or_path).read_bytes()


def dicom_info(data: bytes) -> parse.DicomFileInfo:
    """`parse.read_dicom` with the refusal as a French `ValidationError`."""
    try:
        return parse.read_dicom(data)
    except parse.DicomError as exc:
        raise ValidationError(exc.message, code=exc.code) from exc


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date() if len(value) >= 8 else None
    except ValueError:
        return None


def ins_in_patient_id(value: str) -> str:
    """The matricule INS carried by a DICOM Patient ID (alone, or first component of an HL7 CX), or ""."""
    candidate = ins_codes.normalize(value.split("^", 1)[0])
    return candidate if ins_codes.mod97_is_valid(candidate) else ""


def _study_for(
    *,
    info: parse.DicomFileInfo,
    source: str,
    site: Any,
    uploaded_by: Any,
    sending_ae: str,
    act: Act | None,
) -> Study:
    """The study row of ``info`` under ``site``, created if needed, locked for this transaction."""
    site_id = getattr(site, "pk", None)
    lookup = {"study_instance_uid": info.study_instance_uid, "site_id": site_id}
    study = Study.objects.select_for_update().filter(**lookup).first()
    if study is not None:
        return study
    try:
        with transaction.atomic():
            return Study.objects.create(
                study_instance_uid=info.study_instance_uid,
                site_id=site_id,
                source=source,
                status=StudyStatus.RECEIVING,
                sending_ae_title=sending_ae[:16],
                uploaded_by=uploaded_by,
                act=act,
                dicom_patient_id=info.patient_id[:64],
                dicom_patient_name=info.patient_name[:200],
                dicom_patient_birth_date=info.patient_birth_date[:8],
                study_date=_date(info.study_date),
                description=info.study_description[:200],
                accession_number=info.accession_number[:64],
            )
    except IntegrityError:  # created meanwhile by another transaction (parallel C-STORE associations)
        return Study.objects.select_for_update().get(**lookup)


def check_same_patient(study: Study, info: parse.DicomFileInfo) -> None:
    known = (study.dicom_patient_id.strip(), parse.normalize_person_name(study.dicom_patient_name))
    if known != info.patient_key:
        raise ValidationError(
            "Un même examen contient des images de deux patients différents "
            "(identifiants « %(known)s » et « %(new)s ») : image refusée.",
            code="two_patients",
            params={"known": known[0] or "—", "new": info.patient_id or "—"},
        )


def _merge_modalities(current: str, modality: str) -> str:
    values = [value for value in current.split(",") if value]
    if modality and modality not in values:
        values.append(modality)
    return ",".join(values)[:100]


def ingest_parsed(
    *,
    info: parse.DicomFileInfo,
    data: bytes,
    source: str,
    site: Any = None,
    uploaded_by: Any = None,
    sending_ae: str = "",
    act: Act | None = None,
) -> Instance:
    """`study_ingest_file` for a file already parsed (the upload checks every file before filing any)."""
    if source not in StudySource.values:
        raise ValidationError("Origine d'examen inconnue : « %(source)s ».", params={"source": source})
    with transaction.atomic():
        study = _study_for(
            info=info, source=source, site=site, uploaded_by=uploaded_by, sending_ae=sending_ae, act=act
        )
        check_same_patient(study, info)
        existing = (
            Instance.objects.filter(series__study=study, sop_instance_uid=info.sop_instance_uid)
            .select_related("series")
            .first()
        )
        if existing is not None:
            if existing.series.series_instance_uid != info.series_instance_uid:
                raise ValidationError(
                    "Image déjà reçue dans une autre série de l'examen (SOP Instance UID %(uid)s).",
                    code="duplicate_instance",
                    params={"uid": info.sop_instance_uid},
                )
            return existing  # idempotent: the same image received again is not stored twice
        series, series_created = Series.objects.get_or_create(
            study=study,
            series_instance_uid=info.series_instance_uid,
            defaults={
                "modality": info.modality[:16],
                "number": info.series_number,
                "description": info.series_description[:200],
            },
        )
        blob = blob_put(data, purpose=BLOB_PURPOSE, content_type="application/dicom")
        instance = Instance.objects.create(
            series=series,
            sop_instance_uid=info.sop_instance_uid,
            sop_class_uid=info.sop_class_uid,
            transfer_syntax_uid=info.transfer_syntax_uid[:64],
            instance_number=info.instance_number,
            size=len(data),
            sha256=blob.sha256,
            blob=blob,
        )
        series.instance_count += 1
        series.save(update_fields=["instance_count"])
        study.instance_count += 1
        study.total_bytes += len(data)
        study.series_count += 1 if series_created else 0
        study.modalities = _merge_modalities(study.modalities, info.modality)
        fields = ["instance_count", "total_bytes", "series_count", "modalities", "updated_at"]
        if study.status == StudyStatus.AVAILABLE:  # more images for a finished study (a later association)
            study.status = StudyStatus.RECEIVING
            fields.append("status")
        if act is not None and study.act_id is None:
            study.act = act
            fields.append("act")
        study.save(update_fields=fields)
    return instance


def study_ingest_file(
    *,
    data_or_path: bytes | str | os.PathLike[str],
    source: str,
    site: Any = None,
    uploaded_by: Any = None,
    sending_ae: str = "",
    act: Act | None = None,
) -> Instance:
    """Validate and file one DICOM file (idempotent by SOP Instance UID within its study).

    Raises `ValidationError` (French) for a file that is not acceptable DICOM or whose patient differs
    from the study's. Not audited per file: `study_finalize` / the upload audit the study."""
    data = _load(data_or_path)
    info = dicom_info(data)
    return ingest_parsed(
        info=info,
        data=data,
        source=source,
        site=site,
        uploaded_by=uploaded_by,
        sending_ae=sending_ae,
        act=act,
    )


# --- Finishing a study -----------------------------------------------------------------------------


def _recount(study: Study) -> None:
    for series in study.series.annotate(n=Count("instances")):
        if series.instance_count != series.n:
            Series.objects.filter(pk=series.pk).update(instance_count=series.n)
    totals = Instance.objects.filter(series__study=study).aggregate(n=Count("pk"), size=Sum("size"))
    study.instance_count = totals["n"] or 0
    study.total_bytes = totals["size"] or 0
    study.series_count = study.series.count()
    modalities = ""
    for modality in study.series.order_by("number", "pk").values_list("modality", flat=True):
        modalities = _merge_modalities(modalities, modality)
    study.modalities = modalities


def middle_instance(study: Study) -> Instance | None:
    """The middle image (by instance number) of the study's largest series."""
    series = study.series.order_by("-instance_count", "number", "pk").first()
    if series is None:
        return None
    instances = list(series.instances.order_by("instance_number", "pk"))
    return instances[len(instances) // 2] if instances else None


def _refresh_thumbnail(study: Study) -> None:
    instance = middle_instance(study)
    png = thumbnail_png(blob_read(instance.blob)) if instance is not None else None
    if png is None:
        return
    old = study.thumbnail
    study.thumbnail = blob_put(png, purpose=THUMBNAIL_PURPOSE, content_type="image/png")
    if old is not None:
        study.save(update_fields=["thumbnail"])
        blob_delete(old)


def _reconcile_patient(study: Study) -> None:
    """Link the study to a patient of the region when its identity is certain."""
    if study.patient_id is not None:
        return
    if study.act is not None:
        study.patient_id = study.act.patient_id  # the act's patient (checked against the headers on upload)
        return
    matricule = ins_in_patient_id(study.dicom_patient_id)
    if not matricule:
        return
    candidates = list(Patient.objects.filter(ins=matricule, identity_status=IdentityStatus.QUALIFIED)[:2])
    if len(candidates) != 1:
        return
    patient = candidates[0]
    birth = _date(study.dicom_patient_birth_date)
    if birth is not None and birth != patient.birth_date:
        return  # same matricule, other birth date: an identity-vigilance question, not an automatic link
    study.patient = patient


def check_act_patient(act: Act, info: parse.DicomFileInfo) -> None:
    """Refuse images that are visibly about another patient than the act's (INS or birth date differ)."""
    patient = act.patient
    matricule = ins_in_patient_id(info.patient_id)
    if matricule and patient.ins and matricule != patient.ins:
        raise ValidationError(
            "Les images portent l'INS d'un autre patient que celui de la demande : dépôt refusé.",
            code="other_patient",
        )
    birth = _date(info.patient_birth_date)
    if birth is not None and birth != patient.birth_date:
        raise ValidationError(
            "La date de naissance des images (%(dicom)s) diffère de celle du patient de la demande "
            "(%(patient)s) : dépôt refusé.",
            code="other_patient",
            params={"dicom": f"{birth:%d/%m/%Y}", "patient": f"{patient.birth_date:%d/%m/%Y}"},
        )


def audit_ins(study: Study) -> str:
    patient = study.patient
    return patient.ins if patient is not None and patient.ins else ""


def finalize_locked(study: Study) -> Study:
    """`study_finalize` without the audit event (the caller audits), ``study`` locked by the caller."""
    _recount(study)
    if study.instance_count == 0:
        raise ValidationError("L'examen ne contient aucune image.", code="empty_study")
    _refresh_thumbnail(study)
    _reconcile_patient(study)
    study.status = StudyStatus.AVAILABLE
    study.status_detail = ""
    study.save()
    first_modality = study.modalities.split(",")[0] if study.modalities else ""
    usage_emit(
        "telemedecine.study_received",
        structure_id=study.site_id,
        value=float(study.instance_count),
        dims={
            "source": study.source,
            "modality": first_modality,
            # "images", not "instances": the usage guard refuses keys containing "ins" (INS).
            "images": study.instance_count,
            "bytes": study.total_bytes,
        },
    )
    return study


def study_finalize(*, study: Study) -> Study:
    """Recount, preview, patient reconciliation, status available (audited ``telemedecine.study.receive``)."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        finalize_locked(locked)
        audit_record(
            action="telemedecine.study.receive",
            actor=locked.uploaded_by if locked.source == StudySource.UPLOAD else None,
            target=locked,
            patient_ins=audit_ins(locked),
            detail={
                "source": locked.source,
                "sending_ae": locked.sending_ae_title,
                "series": locked.series_count,
                "instances": locked.instance_count,
                "bytes": locked.total_bytes,
            },
        )
    return locked


# --- Who may see a study --------------------------------------------------------------------------


def study_visible_to(user: Any, study: Study) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if study.uploaded_by_id == user.pk:
        return True
    if study.act is not None and act_can_read(user, study.act):
        return True
    return UploadSession.objects.filter(user_id=user.pk, study=study, status=UploadStatus.COMPLETE).exists()


def study_get_for(*, user: Any, pk: Any, request: HttpRequest | None = None) -> Study:
    """The study if ``user`` may see it, its read audited (``telemedecine.study.read``, a patient-data
    access); `Http404` when it does not exist or is not theirs (that refusal audited ``access.denied``)."""
    study = None
    if str(pk).isdigit():
        study = Study.objects.select_related("patient", "act", "site", "thumbnail").filter(pk=pk).first()
    with transaction.atomic():
        if study is None or not study_visible_to(user, study):
            audit_record(
                action="access.denied",
                request=request,
                actor=user if getattr(user, "is_authenticated", False) else None,
                target_type="telemedecine.study",
                target_id=str(pk)[:64],
                outcome="denied",
                detail={"reason": "telemedecine.study.read"},
            )
            denied = True
        else:
            audit_record(
                action="telemedecine.study.read",
                request=request,
                actor=user,
                target=study,
                patient_ins=audit_ins(study),
            )
            denied = False
    if denied or study is None:
        raise Http404("Examen introuvable.")
    return study


# --- De-identified export (teaching, research) -----------------------------------------------------


def study_export_deidentified(*, study: Study, purpose: str, actor: Any = None) -> bytes:
    """A zip of the study's images de-identified (PS3.15 Annex E basic profile), UIDs remapped
    consistently within this export (fresh secret salt); refused for care."""
    if purpose not in (TransferPurpose.TEACHING, TransferPurpose.RESEARCH):
        raise ValidationError(
            "L'anonymisation est réservée aux exports d'enseignement ou de recherche.", code="purpose"
        )
    uid_map = deidentify.UidMap(secrets.token_bytes(32))
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        instances = Instance.objects.filter(series__study=study).select_related("blob", "series")
        for instance in instances.order_by("series__number", "series_id", "instance_number", "pk"):
            try:
                data = deidentify.deidentify_bytes(blob_read(instance.blob), uid_map=uid_map)
            except parse.DicomError as exc:
                raise ValidationError(exc.message, code=exc.code) from exc
            count += 1
            archive.writestr(f"DICOM/IMG{count:05d}.dcm", data)
    with transaction.atomic():
        audit_record(
            action="telemedecine.study.export_deidentified",
            actor=actor,
            target=study,
            detail={"purpose": purpose, "instances": count},
        )
    return buffer.getvalue()
