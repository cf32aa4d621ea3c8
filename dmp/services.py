"""Writes of the dmp app: documents fed to the DMP and their submissions (atomic, audited).

Document life cycle (one service per transition; an invalid transition raises ``ValidationError``):

* ``document_create_from_pdf`` — checks the rules (clinician from the directory, qualified INS identity, no
  opposition, access authorisation), builds the CDA R2 level-1 document around the PDF, validates it
  against the schema and the XDS metadata against the value sets, stores both encrypted → ``draft``;
* ``document_replace`` — a new version of an accepted document (same setId, version + 1, RPLC) → ``draft``;
* ``document_submit`` — ``draft`` → ``queued``: an ITI-41 outbox row, dispatched after commit;
* ``submission_attempt`` (worker) — one ITI-41/ITI-57 call: ``sent`` while in flight, then ``accepted``
  (the replaced version becomes ``replaced``), ``refused`` with a French reason, or back to ``queued``
  after a temporary failure (retried with backoff until the deadline);
* ``document_set_visibility`` — an ITI-57 outbox row; once accepted the document is ``updated``;
* ``submission_retry`` — a person retries a failed row; ``submissions_requeue`` — the periodic sweeper.

Telemedicine hook: a telemedicine report arrives as a PDF through ``document_create_from_pdf(...,
source="telemedecine")`` (same rules, same CDA level 1); the act's structured CDA is not sent yet.

Every request and response is stored encrypted in the vault (``SubmissionAttempt.request/response``).
Usage events never carry a patient identifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from lxml import etree

from annuaire.models import Professional, Structure
from enrs.accounts.roles import CLINICAL
from enrs.audit.services import audit_record
from enrs.outbox.models import OutboxStatus
from enrs.outbox.services import (
    outbox_claim,
    outbox_deadline,
    outbox_dispatch_on_commit,
    outbox_fail,
    outbox_requeue,
    outbox_retry,
    outbox_succeed,
)
from enrs.patients.models import IdentityStatus, Patient
from enrs.patients.selectors import dmp_access_authorised, dmp_feeding_opposed
from enrs.standards import cda, ebrim, valuesets
from enrs.standards.valuesets import Code
from enrs.usage.services import usage_emit
from enrs.vault.services import blob_put, blob_read

from .models import (
    Confidentiality,
    Document,
    DocumentEvent,
    DocumentSource,
    DocumentStatus,
    Submission,
    SubmissionAttempt,
    SubmissionKind,
)
from .standards import iti, vihf
from .transport import TransportError, post

log = logging.getLogger("enrs.dmp")

MAX_PDF_BYTES = 20 * 1024 * 1024
CONTENT_TYPE_CODE = "97"  # J59 "Type d'activité indifférencié" for the submission set
IDNPS_OID = "1.2.250.1.71.4.2.1"
IDNST_OID = "1.2.250.1.71.4.2.2"
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"
ACCEPTED_STATUSES = (DocumentStatus.ACCEPTED, DocumentStatus.UPDATED)
# Registry answers that mean "busy, try later" rather than "this request is wrong".
TEMPORARY_REGISTRY_ERRORS = frozenset(
    {"XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources", "XDSRepositoryOutOfResources"}
)

# What a person can do about each registry error (the DMP's own text follows in parentheses).
REGISTRY_ERROR_MESSAGES = {
    "XDSUnknownPatientId": (
        "Le DMP de ce patient n'existe pas ou est fermé, ou le patient s'est opposé à son alimentation. "
        "Vérifiez avec le patient qu'il dispose d'un DMP actif (Mon Espace Santé) et que son INS est "
        "correct, puis relancez l'envoi."
    ),
    "XDSPatientIdDoesNotMatch": (
        "L'INS du document ne correspond pas au patient indiqué au DMP. Vérifiez l'identité du patient "
        "(INS et traits) puis déposez une nouvelle version."
    ),
    "XDSRegistryMetadataError": (
        "Le DMP a refusé les métadonnées du document : {context}. Corrigez le type de document, le type "
        "d'établissement ou le cadre d'exercice, puis déposez le document de nouveau."
    ),
    "XDSRepositoryMetadataError": (
        "Le DMP a refusé le document CDA : {context}. Contactez le support du GCS avec la référence de "
        "l'envoi."
    ),
    "XDSNonIdenticalHash": (
        "L'empreinte du document ne correspond pas à son contenu (document altéré pendant l'envoi). "
        "Relancez l'envoi ; si l'erreur persiste, contactez le support du GCS."
    ),
    "XDSNonIdenticalSize": (
        "La taille du document ne correspond pas à son contenu (document altéré pendant l'envoi). "
        "Relancez l'envoi ; si l'erreur persiste, contactez le support du GCS."
    ),
    "XDSDuplicateUniqueIdInRegistry": (
        "Ce document est déjà enregistré dans le DMP (identifiant unique déjà connu) : inutile de le "
        "renvoyer."
    ),
    "XDSUnresolvedReferenceException": (
        "La version remplacée est introuvable ou n'est plus active dans le DMP : {context}. Consultez le "
        "DMP du patient avant de déposer une nouvelle version."
    ),
    "XDSMetadataUpdateError": (
        "Le DMP a refusé la mise à jour de la visibilité : {context}. Vérifiez que le document est "
        "toujours actif dans le DMP."
    ),
    "XDSMetadataVersionError": (
        "La fiche du document a été modifiée dans le DMP entre-temps : {context}. Rechargez le document "
        "puis demandez de nouveau la modification de visibilité."
    ),
    "XDSMissingDocument": "Le document manquait dans l'envoi : {context}. Relancez l'envoi.",
    "XDSMissingDocumentMetadata": "La fiche du document manquait dans l'envoi : {context}. Relancez l'envoi.",
}


def _err(message: str, field: str | None = None) -> ValidationError:
    return ValidationError({field: message} if field else message)


# ---------------------------------------------------------------------------------------------------
# Identities and codes


def _code(table: str, value: str, label: str, field: str) -> Code:
    found = valuesets.lookup(table, value)
    if found is None:
        raise _err(f"{label} « {value} » inconnu.", field)
    return found


def _person(professional: Professional) -> cda.Person:
    return cda.Person(
        idnat_ps=professional.idnat_ps,
        family=professional.last_name.upper(),
        given=professional.first_name,
        profession_code=professional.profession_code,
        specialty_code=valuesets.author_specialty(professional.profession_code, professional.specialty_code),
    )


def _xcn(professional: Professional) -> str:
    return (
        f"{professional.idnat_ps}^{professional.last_name.upper()}^{professional.first_name}"
        f"^^^^^^&{IDNPS_OID}&ISO^D^^^IDNPS"
    )


def _xon(structure: Structure) -> str:
    return f"{structure.name}^^^^^&{IDNST_OID}&ISO^IDNST^^^{structure.idnat_struct}"


def _dtm(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def _new_oid(branch: int) -> str:
    root = str(getattr(settings, "ENRS_DMP_OID_ROOT", "1.2.250.1.999.42.1"))
    return f"{root}.{branch}.{uuid.uuid4().int}"


def _confidentiality_codes(
    confidentiality: str, *, masked: bool, invisible_patient: bool, invisible_legal: bool
) -> tuple[Code, ...]:
    codes = [_code("confidentiality", confidentiality, "Niveau de confidentialité", "confidentiality")]
    for flag, name in (
        (masked, "MASQUE_PS"),
        (invisible_patient, "INVISIBLE_PATIENT"),
        (invisible_legal, "INVISIBLE_REPRESENTANTS_LEGAUX"),
    ):
        if flag:
            codes.append(_code("confidentiality", name, "Code de visibilité", "confidentiality"))
    return tuple(codes)


@dataclass(frozen=True)
class _EntryInput:
    """Everything a DocumentEntry is built from (a Document, or a document about to be created)."""

    patient: Patient
    structure: Structure
    professional: Professional
    entry_uuid: str
    unique_id: str
    type_code: str
    title: str
    confidentiality: tuple[Code, ...]
    facility_type: str
    practice_setting: str
    creation_time: dt.datetime
    service_start: dt.datetime
    service_end: dt.datetime | None
    cda_sha1: str
    cda_size: int
    logical_id: str = ""


def _document_entry(data: _EntryInput) -> ebrim.DocumentEntry:
    patient = data.patient
    type_code = _code("type_code", data.type_code, "Type de document", "type_code")
    try:
        class_code = valuesets.class_for_type(type_code.code)
    except KeyError:
        raise _err(
            f"Aucune classe de document connue pour le type « {type_code.code} ».", "type_code"
        ) from None
    specialty = valuesets.author_specialty(
        data.professional.profession_code, data.professional.specialty_code
    )
    patient_id = ebrim.ins_cx(patient.ins, patient.ins_oid)
    author = ebrim.Author(
        person=_xcn(data.professional),
        institution=_xon(data.structure),
        specialty=valuesets.lookup("author_specialty", specialty) if specialty else None,
    )
    return ebrim.DocumentEntry(
        entry_uuid=data.entry_uuid,
        unique_id=data.unique_id,
        patient_id=patient_id,
        source_patient_id=patient_id,
        source_patient_info=(
            f"PID-5|{patient.birth_family_name}^{patient.first_given_name}^^^^^L",
            f"PID-7|{patient.birth_date:%Y%m%d}",
            f"PID-8|{patient.sex}",
        ),
        class_code=class_code,
        type_code=type_code,
        confidentiality=data.confidentiality,
        format_code=valuesets.format_for_media_type("application/pdf"),
        healthcare_facility_type=_code(
            "facility_type", data.facility_type, "Type d'établissement", "facility_type"
        ),
        practice_setting=_code(
            "practice_setting", data.practice_setting, "Cadre d'exercice", "practice_setting"
        ),
        creation_time=_dtm(data.creation_time),
        service_start_time=_dtm(data.service_start),
        service_stop_time=_dtm(data.service_end) if data.service_end else "",
        title=data.title,
        hash_sha1=data.cda_sha1,
        size=data.cda_size,
        authors=(author,),
        legal_authenticator=_xcn(data.professional),
        logical_id=data.logical_id,
    )


def _entry_input(document: Document, **overrides: Any) -> _EntryInput:
    professional = document.author_professional
    if professional is None:  # pragma: no cover - every document is created with one
        raise _err("Le document n'a pas d'auteur de l'annuaire.")
    values: dict[str, Any] = {
        "patient": document.patient,
        "structure": document.structure,
        "professional": professional,
        "entry_uuid": document.entry_uuid,
        "unique_id": document.unique_id,
        "type_code": document.type_code,
        "title": document.title,
        "confidentiality": _confidentiality_codes(
            document.confidentiality,
            masked=document.masked_from_professionals,
            invisible_patient=document.invisible_to_patient,
            invisible_legal=document.invisible_to_legal_representatives,
        ),
        "facility_type": document.facility_type,
        "practice_setting": document.practice_setting,
        "creation_time": document.created_at,
        "service_start": document.service_start,
        "service_end": document.service_end,
        "cda_sha1": document.cda_sha1,
        "cda_size": document.cda_size,
    }
    values.update(overrides)
    return _EntryInput(**values)


# ---------------------------------------------------------------------------------------------------
# Rules checked before a document exists


def _identity_refusal(patient: Patient) -> str:
    if patient.may_carry_ins:
        return ""
    status = patient.get_identity_status_display().lower()
    if not patient.ins:
        return (
            "Ce patient n'a pas de matricule INS : récupérez-le avec le téléservice INSi et qualifiez son "
            "identité (pièce d'identité à haut niveau de confiance) avant d'alimenter son DMP."
        )
    if patient.identity_status == IdentityStatus.RETRIEVED:
        return (
            f"L'identité de ce patient n'est pas qualifiée ({status}) : l'INS a été récupéré mais "
            "l'identité n'a pas été vérifiée sur une pièce d'identité à haut niveau de confiance. Seule une "
            "identité qualifiée peut porter l'INS dans un document envoyé au DMP."
        )
    return (
        f"L'identité de ce patient n'est pas qualifiée ({status}) : seule une identité qualifiée (INS "
        "récupéré par INSi et vérifié sur une pièce d'identité) peut être envoyée au DMP."
    )


def _author_professional(actor: Any) -> Professional:
    if getattr(actor, "role", None) not in CLINICAL:
        raise _err("Seul un professionnel de santé peut alimenter le DMP.")
    idnat = getattr(actor, "idnat_ps", "")
    professional = Professional.objects.filter(idnat_ps=idnat, is_active=True).first() if idnat else None
    if professional is None:
        raise _err(
            "Votre compte n'est relié à aucun professionnel actif de l'annuaire (IdNat_PS) : l'auteur d'un "
            "document du DMP doit y être inscrit."
        )
    return professional


def _check_patient(patient: Patient, actor: Any) -> None:
    refusal = _identity_refusal(patient)
    if refusal:
        raise _err(refusal, "patient")
    if dmp_feeding_opposed(patient):
        raise _err(
            "Le patient s'est opposé à l'alimentation de son DMP : aucun document ne peut y être envoyé "
            "tant que cette opposition est en vigueur.",
            "patient",
        )
    if not dmp_access_authorised(patient, actor):
        raise _err(
            "Vous n'avez pas d'autorisation d'accès au DMP de ce patient : recueillez-la auprès du patient "
            "et enregistrez-la avant d'alimenter son DMP.",
            "patient",
        )


def _check_pdf(pdf: bytes) -> None:
    if not pdf:
        raise _err("Le fichier est vide.", "pdf")
    if len(pdf) > MAX_PDF_BYTES:
        raise _err(f"Le fichier dépasse la taille maximale de {MAX_PDF_BYTES // (1024 * 1024)} Mo.", "pdf")
    if not pdf.startswith(b"%PDF-"):
        raise _err("Le fichier n'est pas un PDF.", "pdf")


def _check_dates(service_start: dt.datetime, service_end: dt.datetime | None) -> None:
    if timezone.is_naive(service_start) or (service_end is not None and timezone.is_naive(service_end)):
        raise _err("Les dates de l'acte doivent comporter un fuseau horaire.", "service_start")
    now = timezone.now()
    if service_start > now + dt.timedelta(minutes=5):
        raise _err("La date de début de l'acte est dans le futur.", "service_start")
    if service_end is not None and service_end < service_start:
        raise _err("La fin de l'acte précède son début.", "service_end")
    if service_end is not None and service_end > now + dt.timedelta(minutes=5):
        raise _err("La date de fin de l'acte est dans le futur.", "service_end")


def _event(document: Document, action: str, detail: str = "", actor: Any = None) -> DocumentEvent:
    return DocumentEvent.objects.create(
        document=document, action=action, status=document.status, detail=detail, actor=actor
    )


def _audit(
    action: str,
    document: Document,
    *,
    actor: Any = None,
    request: HttpRequest | None = None,
    outcome: str = "success",
    **detail: Any,
) -> None:
    audit_record(
        action=action,
        request=request,
        actor=actor,
        target=document,
        patient_ins=document.patient.ins,
        outcome=outcome,
        detail={"type_code": document.type_code, "version": document.version_number, **detail},
    )


def _usage(kind: str, document: Document, *, actor: Any = None) -> None:
    usage_emit(
        kind,
        structure_id=document.structure_id,
        department=document.structure.department_code,
        dims={"type_code": document.type_code, "source": document.source},
        actor=actor,
    )


# ---------------------------------------------------------------------------------------------------
# Creating documents


def _create_document(
    *,
    patient: Patient,
    pdf: bytes,
    type_code: str,
    title: str,
    actor: Any,
    structure: Structure,
    confidentiality: str,
    masked_from_professionals: bool,
    invisible_to_patient: bool,
    invisible_to_legal_representatives: bool,
    service_start: dt.datetime,
    service_end: dt.datetime | None,
    facility_type: str,
    practice_setting: str,
    source: str,
    previous: Document | None,
    request: HttpRequest | None,
) -> Document:
    professional = _author_professional(actor)
    _check_patient(patient, actor)
    _check_pdf(pdf)
    _check_dates(service_start, service_end)
    title = " ".join(title.split())
    if not title:
        raise _err("Le titre du document est obligatoire.", "title")
    if len(title) > 255:
        raise _err("Le titre ne doit pas dépasser 255 caractères.", "title")
    if source not in DocumentSource.values:
        raise _err(f"Origine du document inconnue : « {source} ».", "source")
    if confidentiality not in Confidentiality.values:
        raise _err("Niveau de confidentialité inconnu (N, R ou V).", "confidentiality")
    idnat_struct = structure.idnat_struct
    if not idnat_struct:
        raise _err(
            "La structure n'a ni FINESS ni SIRET : elle ne peut pas être identifiée au DMP.", "structure"
        )
    type_value = _code("type_code", type_code, "Type de document", "type_code")
    facility = _code("facility_type", facility_type, "Type d'établissement", "facility_type")
    setting = _code("practice_setting", practice_setting, "Cadre d'exercice", "practice_setting")

    now = timezone.now().replace(microsecond=0)
    unique_id = _new_oid(1)
    set_id = previous.set_id if previous is not None else _new_oid(2)
    version = previous.version_number + 1 if previous is not None else 1
    author = _person(professional)
    organization = cda.Organization(idnat_struct=idnat_struct, name=structure.name)
    try:
        xml = cda.build_cda_level1(
            cda.CdaLevel1Spec(
                document_id_root=unique_id,
                document_id_extension="",
                set_id_root=set_id,
                set_id_extension="",
                version_number=version,
                type_code=type_value,
                title=title,
                effective_time=now,
                confidentiality=_code(
                    "confidentiality", confidentiality, "Confidentialité", "confidentiality"
                ),
                patient=patient.cda_identity(),
                author=author,
                author_organization=organization,
                custodian=organization,
                legal_authenticator=author,
                legal_authentication_time=now,
                service_start=service_start,
                service_end=service_end,
                encounter_start=service_start,
                encounter_end=service_end,
                facility_type=facility,
                practice_setting=setting,
                body_media_type="application/pdf",
                body=pdf,
                replaces=(previous.unique_id, "") if previous is not None else None,
            )
        )
    except cda.CdaError as exc:
        raise _err(str(exc)) from exc
    problems = cda.validate_cda(xml)
    if problems:
        raise _err("Le document CDA produit n'est pas conforme au schéma : " + " ; ".join(problems[:3]))
    entry_uuid = ebrim.new_uuid()
    sha1 = hashlib.sha1(xml).hexdigest()  # noqa: S324 - XDS metadata mandates SHA-1
    entry = _document_entry(
        _EntryInput(
            patient=patient,
            structure=structure,
            professional=professional,
            entry_uuid=entry_uuid,
            unique_id=unique_id,
            type_code=type_code,
            title=title,
            confidentiality=_confidentiality_codes(
                confidentiality,
                masked=masked_from_professionals,
                invisible_patient=invisible_to_patient,
                invisible_legal=invisible_to_legal_representatives,
            ),
            facility_type=facility_type,
            practice_setting=practice_setting,
            creation_time=now,
            service_start=service_start,
            service_end=service_end,
            cda_sha1=sha1,
            cda_size=len(xml),
        )
    )
    problems = ebrim.validate_entry(entry)
    if problems:
        raise _err("Métadonnées du document invalides pour le DMP : " + " ; ".join(problems))

    with transaction.atomic():
        document = Document(
            patient=patient,
            structure=structure,
            author=actor,
            author_professional=professional,
            source=source,
            type_code=type_code,
            title=title,
            confidentiality=confidentiality,
            masked_from_professionals=masked_from_professionals,
            invisible_to_patient=invisible_to_patient,
            invisible_to_legal_representatives=invisible_to_legal_representatives,
            facility_type=facility_type,
            practice_setting=practice_setting,
            service_start=service_start,
            service_end=service_end,
            unique_id=unique_id,
            set_id=set_id,
            version_number=version,
            entry_uuid=entry_uuid,
            replaces=previous,
            pdf=blob_put(pdf, purpose="dmp.pdf", content_type="application/pdf"),
            cda=blob_put(xml, purpose="dmp.cda", content_type="text/xml"),
            cda_sha1=sha1,
            cda_size=len(xml),
            status=DocumentStatus.DRAFT,
        )
        document.save()
        # created_at is the CDA effectiveTime / XDS creationTime: keep them identical.
        Document.objects.filter(pk=document.pk).update(created_at=now)
        document.created_at = now
        if previous is None:
            _event(document, "created", "Document créé à partir du PDF déposé.", actor)
        else:
            _event(
                document,
                "created",
                f"Nouvelle version {version} remplaçant la version {previous.version_number}.",
                actor,
            )
        _audit(
            "dmp.document.replace" if previous is not None else "dmp.document.create",
            document,
            actor=actor,
            request=request,
            source=source,
            visibility=document.visibility_codes,
        )
    return document


def document_create_from_pdf(
    *,
    patient: Patient,
    pdf: bytes,
    type_code: str,
    title: str,
    actor: Any,
    structure: Structure,
    service_start: dt.datetime,
    facility_type: str,
    practice_setting: str,
    service_end: dt.datetime | None = None,
    confidentiality: str = Confidentiality.NORMAL,
    masked_from_professionals: bool = False,
    invisible_to_patient: bool = False,
    invisible_to_legal_representatives: bool = False,
    source: str = DocumentSource.UPLOAD,
    request: HttpRequest | None = None,
) -> Document:
    """A draft document: the PDF wrapped in a CDA R2 level-1 document whose XDS metadata are valid.

    Refused (``ValidationError``, French) unless the actor is a clinician of the directory, the patient's
    identity is qualified, the patient has not opposed feeding and the actor holds an access
    authorisation. Views also require strong authentication. ``source="telemedecine"`` for a report
    sent by the telemedicine app (same rules)."""
    return _create_document(
        patient=patient,
        pdf=pdf,
        type_code=type_code,
        title=title,
        actor=actor,
        structure=structure,
        confidentiality=confidentiality,
        masked_from_professionals=masked_from_professionals,
        invisible_to_patient=invisible_to_patient,
        invisible_to_legal_representatives=invisible_to_legal_representatives,
        service_start=service_start,
        service_end=service_end,
        facility_type=facility_type,
        practice_setting=practice_setting,
        source=source,
        previous=None,
        request=request,
    )


def document_replace(
    *,
    previous: Document,
    pdf: bytes,
    actor: Any,
    title: str | None = None,
    type_code: str | None = None,
    service_start: dt.datetime | None = None,
    service_end: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Document:
    """A new version (draft) of an accepted document: same setId, version + 1, RPLC of the previous one.
    Visibility, structure and codes are carried over; the new version is sent with ``document_submit``."""
    previous = Document.objects.select_related("patient", "structure").get(pk=previous.pk)
    if previous.status not in ACCEPTED_STATUSES:
        raise _err("Seul un document accepté par le DMP peut être remplacé par une nouvelle version.")
    pending = previous.replacements.exclude(status=DocumentStatus.REFUSED)
    if pending.exists():
        raise _err("Une nouvelle version de ce document existe déjà.")
    return _create_document(
        patient=previous.patient,
        pdf=pdf,
        type_code=type_code or previous.type_code,
        title=title if title is not None else previous.title,
        actor=actor,
        structure=previous.structure,
        confidentiality=previous.confidentiality,
        masked_from_professionals=previous.masked_from_professionals,
        invisible_to_patient=previous.invisible_to_patient,
        invisible_to_legal_representatives=previous.invisible_to_legal_representatives,
        service_start=service_start or previous.service_start,
        service_end=service_end if service_start is not None else previous.service_end,
        facility_type=previous.facility_type,
        practice_setting=previous.practice_setting,
        source=previous.source,
        previous=previous,
        request=request,
    )


# ---------------------------------------------------------------------------------------------------
# Queuing


def _deadline() -> dt.datetime:
    return outbox_deadline(seconds=float(getattr(settings, "ENRS_DMP_DEADLINE_SECONDS", 24 * 3600.0)))


def _submit_task() -> Any:
    from . import tasks

    return tasks.submit


def document_submit(*, document: Document, actor: Any, request: HttpRequest | None = None) -> Submission:
    """``draft`` → ``queued``: an ITI-41 outbox row, sent by the worker once the transaction commits."""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update().select_related("patient", "structure").get(pk=document.pk)
        )
        if document.status != DocumentStatus.DRAFT:
            raise _err(f"Ce document ne peut pas être envoyé : il est « {document.get_status_display()} ».")
        # The patient's situation may have changed since the draft was made.
        _check_patient(document.patient, actor)
        if document.replaces_id is not None:
            previous = Document.objects.get(pk=document.replaces_id)
            if previous.status not in ACCEPTED_STATUSES:
                raise _err("La version remplacée n'est plus active dans le DMP.")
        submission = Submission.objects.create(
            document=document,
            kind=SubmissionKind.ITI41,
            requested_by=actor,
            entry_uuid=document.entry_uuid,
            deadline=_deadline(),
        )
        document.status = DocumentStatus.QUEUED
        document.status_detail = ""
        document.submitted_at = timezone.now()
        document.save(update_fields=["status", "status_detail", "submitted_at", "updated_at"])
        _event(document, "queued", "Envoi au DMP demandé.", actor)
        _usage("dmp.document_submitted", document, actor=actor)
        outbox_dispatch_on_commit(submission, _submit_task())
        _audit("dmp.document.submit", document, actor=actor, request=request, submission=submission.pk)
    return submission


def document_set_visibility(
    *,
    document: Document,
    actor: Any,
    masked_from_professionals: bool,
    invisible_to_patient: bool,
    invisible_to_legal_representatives: bool,
    request: HttpRequest | None = None,
) -> Submission:
    """Change the visibility of an accepted document in the DMP: an ITI-57 outbox row. The document's
    flags change once the DMP accepts the update."""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update().select_related("patient", "structure").get(pk=document.pk)
        )
        if document.status not in ACCEPTED_STATUSES:
            raise _err("La visibilité ne peut être modifiée que pour un document accepté par le DMP.")
        if getattr(actor, "role", None) not in CLINICAL:
            raise _err("Seul un professionnel de santé peut modifier la visibilité d'un document du DMP.")
        if not dmp_access_authorised(document.patient, actor) and actor.pk != document.author_id:
            raise _err("Vous n'avez pas d'autorisation d'accès au DMP de ce patient.")
        target = (masked_from_professionals, invisible_to_patient, invisible_to_legal_representatives)
        current = (
            document.masked_from_professionals,
            document.invisible_to_patient,
            document.invisible_to_legal_representatives,
        )
        if target == current:
            raise _err("La visibilité demandée est déjà celle du document.")
        if document.submissions.filter(Submission.open_condition()).exists():
            raise _err("Un envoi de ce document au DMP est déjà en cours : attendez sa fin.")
        submission = Submission.objects.create(
            document=document,
            kind=SubmissionKind.ITI57,
            requested_by=actor,
            entry_uuid=ebrim.new_uuid(),
            target_masked_from_professionals=masked_from_professionals,
            target_invisible_to_patient=invisible_to_patient,
            target_invisible_to_legal_representatives=invisible_to_legal_representatives,
            deadline=_deadline(),
        )
        wanted = _visibility_label(*target)
        _event(document, "visibility_requested", f"Modification de visibilité demandée : {wanted}.", actor)
        outbox_dispatch_on_commit(submission, _submit_task())
        _audit(
            "dmp.document.visibility",
            document,
            actor=actor,
            request=request,
            submission=submission.pk,
            target=_visibility_codes(*target),
        )
    return submission


def _visibility_codes(masked: bool, invisible_patient: bool, invisible_legal: bool) -> list[str]:
    return [
        code
        for flag, code in (
            (masked, "MASQUE_PS"),
            (invisible_patient, "INVISIBLE_PATIENT"),
            (invisible_legal, "INVISIBLE_REPRESENTANTS_LEGAUX"),
        )
        if flag
    ]


def _visibility_label(masked: bool, invisible_patient: bool, invisible_legal: bool) -> str:
    parts = [
        label
        for flag, label in (
            (masked, "masqué aux professionnels"),
            (invisible_patient, "invisible au patient"),
            (invisible_legal, "invisible aux représentants légaux"),
        )
        if flag
    ]
    return ", ".join(parts) if parts else "visibilité normale"


def submission_retry(*, submission: Submission, actor: Any, request: HttpRequest | None = None) -> Submission:
    """A person retries a failed submission (after fixing the cause): back to pending, dispatched."""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update().select_related("patient").get(pk=submission.document_id)
        )
        if submission.kind == SubmissionKind.ITI41:
            # Refused by the DMP for a reason that a retry cannot fix: a new version is needed.
            if document.status != DocumentStatus.REFUSED:
                raise _err("Seul un envoi refusé ou en échec peut être relancé.")
            _check_patient(document.patient, actor)
        elif document.status not in ACCEPTED_STATUSES:
            raise _err("Le document n'est plus actif dans le DMP.")
        submission = outbox_retry(submission, deadline=_deadline())
        if submission.kind == SubmissionKind.ITI41:
            document.status = DocumentStatus.QUEUED
            document.status_detail = ""
            document.save(update_fields=["status", "status_detail", "updated_at"])
        _event(document, "retry", "Nouvel envoi demandé.", actor)
        outbox_dispatch_on_commit(submission, _submit_task())
        _audit("dmp.submission.retry", document, actor=actor, request=request, submission=submission.pk)
    return submission


def submissions_requeue(task: Any) -> int:
    """Periodic sweeper: queue rows whose task was lost; close rows past their deadline as failed."""
    return outbox_requeue(Submission, task, on_failed=_on_failed_deadline)


def _on_failed_deadline(submission: Submission) -> None:
    _close_failed(submission, submission.last_error or "Délai maximal dépassé sans envoi réussi.", [])


# ---------------------------------------------------------------------------------------------------
# Sending (worker)


def _signing_material() -> tuple[bytes, bytes]:
    cert = getattr(settings, "ENRS_DMP_SIGNING_CERT", "") or getattr(settings, "ENRS_DMP_CLIENT_CERT", "")
    key = getattr(settings, "ENRS_DMP_SIGNING_KEY", "") or getattr(settings, "ENRS_DMP_CLIENT_KEY", "")
    if not cert or not key:
        raise ImproperlyConfigured("ENRS_DMP_SIGNING_CERT / ENRS_DMP_SIGNING_KEY non configurés.")
    try:
        return Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"Certificat de cachet illisible : {exc}") from exc


def _assertion(document: Document) -> bytes:
    professional = document.author_professional
    assert professional is not None
    sector = (
        document.facility_type
        if document.facility_type.startswith("SA")
        else (document.structure.sector_code or "SA07")
    )
    specialty = None
    if professional.specialty_code:
        specialty = vihf.CodedValue(
            professional.specialty_code, vihf.SPECIALTY_SYSTEM, "", professional.specialty_label
        )
    claims = vihf.VihfClaims(
        idnat_ps=professional.idnat_ps,
        subject_name=f"{professional.last_name.upper()} {professional.first_name}".strip(),
        structure_id=document.structure.idnat_struct,
        activity_sector=f"{sector}^{SECTOR_SYSTEM}",
        profession=vihf.CodedValue(
            professional.profession_code, vihf.PROFESSION_SYSTEM, "", professional.profession_label
        ),
        specialty=specialty,
        patient_ins_cx=ebrim.ins_cx(document.patient.ins, document.patient.ins_oid),
        lps_id=settings.ENRS_DMP_LPS_ID,
        lps_name=settings.ENRS_DMP_LPS_NAME,
        lps_version=settings.ENRS_DMP_LPS_VERSION,
        lps_homologation_id=settings.ENRS_DMP_LPS_HOMOLOGATION,
        authentication_mode=settings.ENRS_DMP_AUTHENTICATION_MODE,
    )
    cert_pem, key_pem = _signing_material()
    return vihf.build_vihf(claims, cert_pem=cert_pem, key_pem=key_pem)


def _submission_set(document: Document) -> ebrim.SubmissionSet:
    professional = document.author_professional
    assert professional is not None
    return ebrim.SubmissionSet(
        entry_uuid=ebrim.new_uuid(),
        unique_id=_new_oid(3),
        source_id=settings.ENRS_DMP_SOURCE_ID,
        patient_id=ebrim.ins_cx(document.patient.ins, document.patient.ins_oid),
        submission_time=_dtm(timezone.now()),
        content_type=_code("content_type", CONTENT_TYPE_CODE, "Type d'activité", "content_type"),
        authors=(ebrim.Author(person=_xcn(professional), institution=_xon(document.structure)),),
        title=document.title,
    )


def _build_request(submission: Submission, document: Document) -> tuple[str, bytes, str]:
    """(url, body, content type) of the call. Raises ValidationError/ImproperlyConfigured/…Error."""
    assertion = _assertion(document)
    if submission.kind == SubmissionKind.ITI41:
        url = settings.ENRS_DMP_REPOSITORY_URL
        entry = _document_entry(_entry_input(document))
        replaces = {}
        if document.replaces_id is not None:
            previous = Document.objects.get(pk=document.replaces_id)
            replaces = {entry.entry_uuid: previous.registry_entry_uuid or previous.entry_uuid}
        request = ebrim.build_submit_objects_request(_submission_set(document), [entry], replaces=replaces)
        body, content_type = iti.build_iti41(
            request, {entry.entry_uuid: blob_read(document.cda)}, assertion, to_url=url
        )
        return url, body, content_type
    url = settings.ENRS_DMP_REGISTRY_URL or settings.ENRS_DMP_REPOSITORY_URL
    current = _document_entry(
        _entry_input(
            document,
            entry_uuid=document.registry_entry_uuid or document.entry_uuid,
            logical_id=document.entry_uuid,
        )
    )
    target = _confidentiality_codes(
        document.confidentiality,
        masked=bool(submission.target_masked_from_professionals),
        invisible_patient=bool(submission.target_invisible_to_patient),
        invisible_legal=bool(submission.target_invisible_to_legal_representatives),
    )
    request = iti.build_confidentiality_update(
        entry=current,
        confidentiality=target,
        submission=_submission_set(document),
        previous_version=str(document.registry_version),
        new_entry_uuid=submission.entry_uuid,
    )
    body, content_type = iti.build_iti57(request, assertion, to_url=url)
    return url, body, content_type


def _registry_message(errors: list[iti.RegistryError]) -> str:
    messages: list[str] = []
    for error in errors:
        if not error.is_error:
            continue
        template = REGISTRY_ERROR_MESSAGES.get(error.code)
        if template is None:
            text = f"Le DMP a refusé l'envoi ({error.code}) : {error.context or 'sans précision'}."
        elif "{context}" in template:
            text = template.format(context=error.context or "sans précision")
        else:
            text = template + (f" (DMP : {error.context})" if error.context else "")
        if text not in messages:
            messages.append(text)
    return " ".join(messages) or "Le DMP a refusé l'envoi sans préciser pourquoi."


def _fault_message(result: iti.RegistryResult) -> str:
    error = result.errors[0] if result.errors else iti.RegistryError("SOAPFault", "")
    reason = error.context or "sans précision"
    if "wsse" in error.code or "VIHF" in reason or "Security" in error.code:
        return (
            "Le DMP a refusé le jeton d'authentification (VIHF) de la structure : "
            f"{reason}. Vérifiez le certificat de cachet de la structure (validité, chaîne IGC-Santé) et "
            "l'horloge du serveur, puis relancez l'envoi."
        )
    return f"Le DMP a rejeté la requête (erreur SOAP {error.code}) : {reason}. Contactez le support du GCS."


def _errors_json(errors: list[iti.RegistryError]) -> list[dict[str, str]]:
    return [
        {
            "code": e.code,
            "context": e.context,
            "location": e.location,
            "severity": e.severity.rsplit(":", 1)[-1],
        }
        for e in errors
    ]


def _mark_sent(submission: Submission) -> None:
    if submission.kind != SubmissionKind.ITI41:
        return
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=submission.document_id)
        if document.status == DocumentStatus.QUEUED:
            document.status = DocumentStatus.SENT
            document.save(update_fields=["status", "updated_at"])
            _event(document, "sent", f"Document envoyé au DMP (essai n° {submission.attempts}).")


def _close_accepted(submission: Submission, warnings: str) -> None:
    document = (
        Document.objects.select_for_update()
        .select_related("patient", "structure")
        .get(pk=submission.document_id)
    )
    now = timezone.now()
    if submission.kind == SubmissionKind.ITI41:
        if document.status not in (DocumentStatus.QUEUED, DocumentStatus.SENT):
            raise _err(f"Document dans un état inattendu : {document.status}.")  # pragma: no cover
        document.status = DocumentStatus.ACCEPTED
        document.accepted_at = now
        document.registry_entry_uuid = document.entry_uuid
        document.registry_version = 1
        document.status_detail = warnings
        document.save()
        _event(document, "accepted", "Document accepté par le DMP." + (f" {warnings}" if warnings else ""))
        if document.replaces_id is not None:
            previous = Document.objects.select_for_update().get(pk=document.replaces_id)
            previous.status = DocumentStatus.REPLACED
            previous.status_detail = f"Remplacé par la version {document.version_number}."
            previous.save(update_fields=["status", "status_detail", "updated_at"])
            _event(previous, "replaced", previous.status_detail)
        _usage("dmp.document_accepted", document)
        _audit("dmp.document.accept", document, submission=submission.pk)
        return
    document.masked_from_professionals = bool(submission.target_masked_from_professionals)
    document.invisible_to_patient = bool(submission.target_invisible_to_patient)
    document.invisible_to_legal_representatives = bool(submission.target_invisible_to_legal_representatives)
    document.registry_entry_uuid = submission.entry_uuid
    document.registry_version += 1
    document.status = DocumentStatus.UPDATED
    label = _visibility_label(
        document.masked_from_professionals,
        document.invisible_to_patient,
        document.invisible_to_legal_representatives,
    )
    document.status_detail = f"Visibilité mise à jour : {label}."
    document.save()
    _event(document, "visibility_updated", document.status_detail)
    _audit(
        "dmp.document.visibility_accept",
        document,
        submission=submission.pk,
        visibility=document.visibility_codes,
    )


def _close_failed(submission: Submission, message: str, errors: list[dict[str, str]]) -> None:
    document = (
        Document.objects.select_for_update()
        .select_related("patient", "structure")
        .get(pk=submission.document_id)
    )
    codes = [e["code"] for e in errors]
    if submission.kind == SubmissionKind.ITI41:
        document.status = DocumentStatus.REFUSED
        document.status_detail = message
        document.save(update_fields=["status", "status_detail", "updated_at"])
        _event(document, "refused", message)
        _usage("dmp.document_refused", document)
        _audit("dmp.document.refuse", document, outcome="failure", submission=submission.pk, errors=codes)
        return
    document.status_detail = f"Modification de visibilité refusée : {message}"
    document.save(update_fields=["status_detail", "updated_at"])
    _event(document, "visibility_refused", document.status_detail)
    _audit(
        "dmp.document.visibility_refuse", document, outcome="failure", submission=submission.pk, errors=codes
    )


def _back_to_queue(submission: Submission, message: str) -> None:
    if submission.kind != SubmissionKind.ITI41:
        return
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=submission.document_id)
        if document.status == DocumentStatus.SENT:
            document.status = DocumentStatus.QUEUED
            document.status_detail = f"Échec temporaire, nouvel essai automatique : {message}"
            document.save(update_fields=["status", "status_detail", "updated_at"])


def submission_attempt(*, submission_id: int, worker: str = "") -> float | None:
    """One attempt of one submission (called by the worker). Returns the delay before the next attempt
    after a temporary failure, else None (done, failed, or not ours to work on)."""
    submission = outbox_claim(Submission, submission_id, worker=worker)
    if submission is None:
        # A task that runs before its row is due (early ETA, duplicate) waits for it instead of vanishing.
        waiting = (
            Submission.objects.filter(pk=submission_id, status=OutboxStatus.RETRY)
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        if waiting is not None and waiting > timezone.now():
            return (waiting - timezone.now()).total_seconds() + 0.05
        return None
    document = Document.objects.select_related(
        "patient", "structure", "structure__commune", "author_professional"
    ).get(pk=submission.document_id)
    fields: dict[str, Any] = {"submission": submission}

    def fail(
        message: str, *, permanent: bool, code: str, errors: list[dict[str, str]] | None = None
    ) -> float | None:
        fields["registry_errors"] = errors or []
        delay = outbox_fail(
            submission,
            permanent=permanent,
            error=message,
            code=code,
            attempt_model=SubmissionAttempt,
            attempt_fields=fields,
            on_failed=lambda row: _close_failed(row, message, errors or []),
        )
        if delay is not None:
            _back_to_queue(submission, message)
        return delay

    if not settings.ENRS_DMP_REPOSITORY_URL:
        return fail(
            "L'adresse du DMP n'est pas configurée (ENRS_DMP_REPOSITORY_URL).",
            permanent=False,
            code="not_configured",
        )
    try:
        url, body, content_type = _build_request(submission, document)
    except ImproperlyConfigured as exc:
        return fail(f"Configuration du DMP incomplète : {exc}", permanent=False, code="not_configured")
    except (ValidationError, iti.IheError, vihf.VihfError, ebrim.EbrimError, cda.CdaError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        return fail(f"Requête impossible à construire : {message}", permanent=True, code="build")
    fields["request"] = blob_put(body, purpose="dmp.request", content_type=content_type[:150])
    fields["request_content_type"] = content_type[:500]
    _mark_sent(submission)
    try:
        answer = post(url, body, content_type)
    except TransportError as exc:
        return fail(exc.message, permanent=False, code=exc.code)
    except ImproperlyConfigured as exc:
        return fail(f"Configuration du DMP incomplète : {exc}", permanent=False, code="not_configured")
    fields["response"] = blob_put(answer.body, purpose="dmp.response", content_type=answer.content_type[:150])
    fields["response_content_type"] = answer.content_type[:500]
    fields["http_status"] = answer.status
    fields["duration_ms"] = answer.duration_ms
    try:
        result = iti.parse_registry_response(answer.body, answer.content_type)
    except (iti.IheError, etree.XMLSyntaxError) as exc:
        temporary = answer.status >= 500 or answer.status in (408, 429)
        message = f"Réponse du DMP illisible (HTTP {answer.status}) : {exc}"
        if temporary:
            message = f"Le DMP est momentanément indisponible (HTTP {answer.status})."
        return fail(message, permanent=not temporary, code=f"http_{answer.status}")
    errors = _errors_json(result.errors)
    if result.fault:
        code = result.errors[0].code if result.errors else "SOAPFault"
        receiver = code.endswith("Receiver") or (answer.status >= 500 and "wsse" not in code)
        if receiver:
            return fail(
                f"Le DMP a rencontré une erreur interne : {result.summary()}",
                permanent=False,
                code=code,
                errors=errors,
            )
        return fail(_fault_message(result), permanent=True, code=code, errors=errors)
    real_errors = [e for e in result.errors if e.is_error]
    duplicate_retry = (
        submission.kind == SubmissionKind.ITI41
        and submission.attempts > 1
        and real_errors
        and all(e.code == "XDSDuplicateUniqueIdInRegistry" for e in real_errors)
    )
    if result.success or duplicate_retry:
        # A duplicate on a retry: an earlier attempt reached the DMP but its answer was lost.
        warnings = "" if not result.errors else "Avertissements du DMP : " + result.summary()
        if duplicate_retry:
            warnings = "Déjà enregistré par un essai précédent dont la réponse avait été perdue."
        fields["registry_errors"] = errors
        outbox_succeed(
            submission,
            attempt_model=SubmissionAttempt,
            code=str(answer.status),
            message=result.summary(),
            attempt_fields=fields,
            on_success=lambda row: _close_accepted(row, warnings),
        )
        return None
    first = real_errors[0].code if real_errors else "XDSRegistryError"
    if real_errors and all(e.code in TEMPORARY_REGISTRY_ERRORS for e in real_errors):
        return fail(
            "Le DMP est momentanément surchargé : " + result.summary(),
            permanent=False,
            code=first,
            errors=errors,
        )
    return fail(_registry_message(result.errors), permanent=True, code=first, errors=errors)


# ---------------------------------------------------------------------------------------------------
# Support


def attempt_exchange(attempt: SubmissionAttempt) -> tuple[bytes, bytes]:
    """The stored request and response of an attempt (for support; callers audit the read)."""
    request = blob_read(attempt.request) if attempt.request is not None else b""
    response = blob_read(attempt.response) if attempt.response is not None else b""
    return request, response


__all__ = [
    "OutboxStatus",
    "attempt_exchange",
    "document_create_from_pdf",
    "document_replace",
    "document_set_visibility",
    "document_submit",
    "submission_attempt",
    "submission_retry",
    "submissions_requeue",
]
