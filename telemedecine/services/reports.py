"""The signed report of an act: its PDF and CDA, and its routes to the DMP and to the requester.

* ``report_build`` (inside the signing transaction): the PDF (reportlab, ``telemedecine.reports_pdf``) and a
  CDA R2 level-1 document (LOINC 85208-7 "CR de télémédecine", author the expert from the directory,
  custodian the expert's structure) wrapping it, checked against ``CDA_extended.xsd``; both stored
  encrypted. The matricule INS is written only for a qualified identity; otherwise the CDA names the
  patient by the portal's local identifier and is kept for the act, never fed to the DMP.
* ``report_route`` (after commit): the DMP (``dmp.services.document_create_from_pdf(...,
  source="telemedecine")`` then ``document_submit``) and an MSSanté message from the expert's personal box to
  the requester's hosted box (PDF, and the CDA as IHE_XDM when the identity is qualified). Each outcome —
  document or message id, or the reason it could not be done — is written in the act's trace; neither
  ever undoes the signature. Sibling apps are optional: a missing app is an outcome like any other.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import Professional, Structure
from enrs.audit.services import audit_record
from enrs.standards import cda
from enrs.standards.valuesets import author_specialty, lookup
from enrs.vault.models import Blob
from enrs.vault.services import blob_put, blob_read
from telemedecine.models import Act, ActEvent, ActStatus
from telemedecine.reports_pdf import ReportData, render_report_pdf

logger = logging.getLogger("enrs.telemedecine")

REPORT_TYPE_CODE = "85208-7"  # CR de télémédecine (JDV_J07)
REQUEST_TYPE_CODE = "75496-0"  # Demande d'acte de télémédecine
DEFAULT_FACILITY = "SA01"


@dataclass(frozen=True)
class BuiltReport:
    pdf: Blob
    cda: Blob | None
    cda_reason: str  # why there is no CDA ("" when there is one)


def _oid_root() -> str:
    return f"{getattr(settings, 'ENRS_DMP_OID_ROOT', '1.2.250.1.999.42.1')}.8"


def local_patient_oid() -> str:
    """OID of the portal's own patient numbers, used in a CDA when the INS may not be written."""
    return f"{_oid_root()}.3"


def expert_professional(act: Act) -> Professional | None:
    expert = act.expert
    idnat = getattr(expert, "idnat_ps", "") if expert is not None else ""
    if not idnat:
        return None
    return Professional.objects.filter(idnat_ps=idnat, is_active=True).first()


def expert_structure(act: Act, professional: Professional | None = None) -> Structure | None:
    """The expert's structure: the pool's for a pool request, else where the expert works (directory)."""
    if act.pool_id is not None and act.pool is not None:
        return act.pool.structure
    if professional is None:
        professional = expert_professional(act)
    if professional is None:
        return None
    exercice = professional.exercices.select_related("structure").order_by("pk").first()
    return exercice.structure if exercice is not None else None


def _person_name(user: Any) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _local(moment: dt.datetime | None) -> str:
    return f"{timezone.localtime(moment):%d/%m/%Y %H:%M}" if moment is not None else ""


def _patient_lines(act: Act) -> list[tuple[str, str]]:
    patient = act.patient
    lines = [
        ("Nom de naissance", patient.birth_family_name),
        ("Prénom(s) de naissance", patient.birth_given_names),
    ]
    if patient.used_family_name:
        lines.append(("Nom utilisé", patient.used_family_name))
    lines += [
        ("Sexe", patient.get_sex_display()),
        ("Date de naissance", f"{patient.birth_date:%d/%m/%Y}"),
        ("Statut de l'identité", patient.get_identity_status_display()),
    ]
    if patient.may_carry_ins:
        lines.append(("Matricule INS", f"{patient.ins} ({patient.get_ins_oid_display()})"))
    return lines


def report_data(act: Act, *, signer: Any, signed_at: dt.datetime) -> ReportData:
    """What the PDF shows, read from the act and its trace tables."""
    professional = expert_professional(act)
    structure = expert_structure(act, professional)
    consent = act.get_consent_display()
    if act.consent_at is not None:
        consent += f", le {_local(act.consent_at)} par {_person_name(act.consent_collected_by)}"
    participants = []
    for p in act.participants.select_related("user").order_by("pk"):
        who = _person_name(p.user) if p.user is not None else p.name
        extra = f", {p.function}" if p.function else ""
        participants.append(f"{who} — {p.get_role_display()}{extra}")
    incidents = [
        f"{_local(i.occurred_at)} — {i.get_code_display()}" + (f" : {i.description}" if i.description else "")
        for i in act.incidents.order_by("occurred_at", "pk")
    ]
    times = [
        ("Demande envoyée", _local(act.sent_at)),
        ("Acceptée", _local(act.accepted_at)),
        ("Prévue", _local(act.scheduled_at)),
        ("Début", _local(act.started_at)),
        ("Fin", _local(act.ended_at)),
    ]
    return ReportData(
        title=f"Compte rendu de {act.get_act_type_display().lower()}",
        reference=str(act.reference),
        act_type=act.get_act_type_display(),
        urgency=act.get_urgency_display(),
        patient=_patient_lines(act),
        requester=_person_name(act.requester),
        requester_structure=act.requester_structure.name,
        expert=_person_name(act.expert),
        expert_structure=structure.name if structure is not None else "",
        question=act.clinical_question,
        report=act.report_text,
        prescriptions=act.prescriptions,
        signer=_person_name(signer),
        signed_at=_local(signed_at),
        exchange_mode=act.get_fallback_display() if act.fallback else "Visioconférence",
        consent=consent,
        times=[t for t in times if t[1]],
        participants=participants,
        incidents=incidents,
    )


def report_cda(act: Act, *, pdf: bytes, signed_at: dt.datetime) -> tuple[bytes | None, str]:
    """The CDA level 1 of the report, or ``(None, reason)`` when it cannot be produced."""
    professional = expert_professional(act)
    if professional is None:
        return None, (
            "Le document CDA n'a pas été produit : le compte du requis n'est relié à aucun professionnel "
            "actif de l'annuaire (IdNat_PS)."
        )
    structure = expert_structure(act, professional)
    if structure is None or not structure.idnat_struct:
        return None, (
            "Le document CDA n'a pas été produit : la structure du requis n'est pas identifiée "
            "(ni FINESS ni SIRET)."
        )
    patient = act.patient
    if patient.may_carry_ins:
        ins, ins_oid = patient.ins, patient.ins_oid
    else:
        ins, ins_oid = str(patient.pk), local_patient_oid()
    type_code = lookup("type_code", REPORT_TYPE_CODE)
    facility = lookup("facility_type", act.requester_structure.sector_code) or lookup(
        "facility_type", DEFAULT_FACILITY
    )
    setting = lookup("practice_setting", "ETABLISSEMENT" if structure.finess_et else "AMBULATOIRE")
    confidentiality = lookup("confidentiality", "N")
    if type_code is None or facility is None or setting is None or confidentiality is None:
        return None, "Le document CDA n'a pas été produit : jeux de valeurs incomplets."
    author = cda.Person(
        idnat_ps=professional.idnat_ps,
        family=professional.last_name.upper(),
        given=professional.first_name,
        profession_code=professional.profession_code,
        specialty_code=author_specialty(professional.profession_code, professional.specialty_code),
    )
    organization = cda.Organization(idnat_struct=structure.idnat_struct, name=structure.name)
    start = act.started_at or act.accepted_at or signed_at
    end = act.ended_at or signed_at
    root = _oid_root()
    spec = cda.CdaLevel1Spec(
        document_id_root=f"{root}.1.{uuid.uuid4().int}",
        document_id_extension="",
        set_id_root=f"{root}.2.{act.reference.int}",
        set_id_extension="",
        version_number=1,
        type_code=type_code,
        title=f"Compte rendu de {act.get_act_type_display().lower()}",
        effective_time=signed_at,
        confidentiality=confidentiality,
        patient=patient.cda_identity(ins=ins, ins_oid=ins_oid),
        author=author,
        author_organization=organization,
        custodian=organization,
        legal_authenticator=author,
        legal_authentication_time=signed_at,
        service_start=start,
        service_end=end,
        encounter_start=start,
        encounter_end=end,
        facility_type=facility,
        practice_setting=setting,
        body_media_type="application/pdf",
        body=pdf,
    )
    try:
        xml = cda.build_cda_level1(spec)
    except cda.CdaError as exc:
        return None, f"Le document CDA n'a pas été produit : {exc}"
    problems = cda.validate_cda(xml)
    if problems:
        return None, "Le document CDA produit n'est pas conforme au schéma : " + " ; ".join(problems[:3])
    return xml, ""


def report_build(*, act: Act, signer: Any, signed_at: dt.datetime) -> BuiltReport:
    """PDF and CDA of the report, stored in the vault (call inside the signing transaction)."""
    pdf = render_report_pdf(report_data(act, signer=signer, signed_at=signed_at))
    pdf_blob = blob_put(pdf, purpose="telemedecine.report_pdf", content_type="application/pdf")
    xml, reason = report_cda(act, pdf=pdf, signed_at=signed_at)
    cda_blob = (
        blob_put(xml, purpose="telemedecine.report_cda", content_type="text/xml") if xml is not None else None
    )
    return BuiltReport(pdf=pdf_blob, cda=cda_blob, cda_reason=reason)


def report_pdf_bytes(act: Act) -> bytes:
    if act.report_pdf is None:
        raise ValidationError("Le compte rendu de cet acte n'est pas encore signé.")
    return blob_read(act.report_pdf)


def report_cda_bytes(act: Act) -> bytes:
    if act.report_cda is None:
        raise ValidationError("Cet acte n'a pas de document CDA.")
    return blob_read(act.report_cda)


# --- Routes after signing ----------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)[:1000]
    if isinstance(exc, PermissionDenied):
        return str(exc)[:1000] or "Action refusée."
    return f"Erreur inattendue ({type(exc).__name__})."


def _trace(act: Act, event: str, action: str, outcome: str = "success", **detail: Any) -> None:
    with transaction.atomic():
        ActEvent.objects.create(act=act, actor=None, event=event, detail=detail)
        audit_record(
            action=f"telemedecine.report.{action}",
            actor=act.expert,
            target=act,
            patient_ins=act.patient.ins,
            outcome=outcome,
            detail={"event": event, **{k: v for k, v in detail.items() if k != "reason"}},
        )


def report_route_on_commit(*, act_id: int) -> None:
    transaction.on_commit(lambda: report_route(act_id=act_id))


def report_resend(*, act: Act, actor: Any, request: HttpRequest | None = None) -> None:
    """Try again the routes of a signed report that have no outcome yet (e.g. once the requester has a
    mailbox or the patient's authorisation is recorded). Expert only; runs after commit."""
    with transaction.atomic():
        act = Act.objects.select_for_update(of=("self",)).select_related("patient").get(pk=act.pk)
        if act.expert_id is None or getattr(actor, "pk", None) != act.expert_id:
            raise PermissionDenied("Seul le professionnel requis peut renvoyer le compte rendu.")
        if act.status not in {ActStatus.REPORT_SIGNED, ActStatus.CLOSED} or act.report_pdf_id is None:
            raise ValidationError("Le compte rendu de cet acte n'est pas signé.")
        if act.dmp_document_id is not None and act.report_message_id is not None:
            raise ValidationError("Le compte rendu a déjà été versé au DMP et envoyé au requérant.")
        ActEvent.objects.create(act=act, actor=actor, event="report_resend", detail={})
        report_route_on_commit(act_id=act.pk)
        audit_record(
            action="telemedecine.report.resend",
            request=request,
            actor=actor,
            target=act,
            patient_ins=act.patient.ins,
        )


def report_route(*, act_id: int) -> None:
    """Feed the DMP and send the report to the requester; every outcome goes to the act's trace."""
    act = Act.objects.select_related(
        "patient", "requester", "requester_structure", "expert", "pool", "pool__structure", "report_pdf"
    ).get(pk=act_id)
    if act.report_pdf is None:
        return
    pdf = blob_read(act.report_pdf)
    routes = []
    if act.dmp_document_id is None:  # never fed twice
        routes.append(_route_dmp)
    if act.report_message_id is None:  # never sent twice
        routes.append(_route_mssante)
    for route in routes:
        try:
            route(act, pdf)
        except Exception as exc:  # one route's failure must not stop the other, nor undo the signature
            logger.exception("telemedicine report route %s failed for act %s", route.__name__, act_id)
            _trace(
                act,
                "route_error",
                "route_error",
                outcome="failure",
                route=route.__name__,
                reason=_reason(exc),
            )


def _route_dmp(act: Act, pdf: bytes) -> None:
    patient = act.patient
    if not patient.may_carry_ins:
        _trace(
            act,
            "dmp_not_fed",
            "dmp",
            outcome="failure",
            reason=(
                "Compte rendu non versé au DMP : l'identité du patient n'est pas qualifiée (seule une "
                "identité qualifiée peut porter l'INS)."
            ),
        )
        return
    try:
        from dmp import services as dmp_services
    except ImportError:
        _trace(act, "dmp_not_fed", "dmp", outcome="failure", reason="Le DMP n'est pas raccordé à ce portail.")
        return
    structure = expert_structure(act)
    if structure is None:
        _trace(
            act,
            "dmp_not_fed",
            "dmp",
            outcome="failure",
            reason="Compte rendu non versé au DMP : la structure du requis n'est pas identifiée.",
        )
        return
    facility = act.requester_structure.sector_code
    if lookup("facility_type", facility) is None:
        facility = DEFAULT_FACILITY
    setting = "ETABLISSEMENT" if structure.finess_et else "AMBULATOIRE"
    start = act.started_at or act.accepted_at or act.report_signed_at or timezone.now()
    try:
        with transaction.atomic():
            document = dmp_services.document_create_from_pdf(
                patient=patient,
                pdf=pdf,
                type_code=REPORT_TYPE_CODE,
                title=f"Compte rendu de {act.get_act_type_display().lower()}",
                actor=act.expert,
                structure=structure,
                service_start=start,
                service_end=act.ended_at,
                facility_type=facility,
                practice_setting=setting,
                source="telemedecine",
            )
            dmp_services.document_submit(document=document, actor=act.expert)
    except (ValidationError, PermissionDenied) as exc:
        _trace(act, "dmp_refused", "dmp", outcome="failure", reason=_reason(exc))
        return
    Act.objects.filter(pk=act.pk).update(dmp_document_id=document.pk)
    _trace(act, "dmp_queued", "dmp", document=document.pk)


def _route_mssante(act: Act, pdf: bytes) -> None:
    try:
        from django.core.files.uploadedfile import SimpleUploadedFile

        from annuaire.models import MailboxKind
        from messagerie.services import folders, mailboxes, outgoing
    except ImportError:
        _trace(
            act,
            "mssante_not_sent",
            "mssante",
            outcome="failure",
            reason="La messagerie sécurisée n'est pas raccordée.",
        )
        return
    sender = mailboxes.mailboxes_for_user(act.expert).filter(kind=MailboxKind.PERSONAL).first()
    if sender is None:
        _trace(
            act,
            "mssante_not_sent",
            "mssante",
            outcome="failure",
            reason=(
                "Compte rendu non envoyé par MSSanté : le requis n'a pas de boîte aux lettres personnelle "
                "hébergée."
            ),
        )
        return
    recipient = mailboxes.mailboxes_for_user(act.requester).filter(kind=MailboxKind.PERSONAL).first()
    if recipient is None:
        _trace(
            act,
            "mssante_not_sent",
            "mssante",
            outcome="failure",
            reason=(
                "Compte rendu non envoyé par MSSanté : le requérant n'a pas de boîte aux lettres personnelle "
                "hébergée."
            ),
        )
        return
    patient = act.patient
    label = act.get_act_type_display().lower()
    body = (
        f"Bonjour,\n\nVeuillez trouver ci-joint le compte rendu signé de la demande de {label} "
        f"(référence {str(act.reference)[:8]}) concernant {patient.display_name}, "
        f"né(e) le {patient.birth_date:%d/%m/%Y}.\n\n"
        f"{_person_name(act.expert)}\n"
    )
    qualified = patient.may_carry_ins
    try:
        with transaction.atomic():
            attachment = folders.attachment_upload(
                mailbox=sender,
                actor=act.expert,
                upload=SimpleUploadedFile(
                    f"compte-rendu-{str(act.reference)[:8]}.pdf", pdf, content_type="application/pdf"
                ),
            )
            message = outgoing.message_send(
                mailbox=sender,
                actor=act.expert,
                to=[recipient.address],
                cc=[],
                subject=f"Compte rendu de {label} (réf. {str(act.reference)[:8]})",
                body=body,
                patient=patient,
                attachments=[attachment],
                cda_from_pdf=attachment if qualified else None,
                document_type_code=REPORT_TYPE_CODE,
            )
    except (ValidationError, PermissionDenied) as exc:
        _trace(act, "mssante_refused", "mssante", outcome="failure", reason=_reason(exc))
        return
    Act.objects.filter(pk=act.pk).update(report_message_id=message.pk)
    _trace(
        act,
        "mssante_sent",
        "mssante",
        message=message.pk,
        to=recipient.address,
        xdm=qualified,
        **({} if qualified else {"note": "Sans document CDA : l'identité du patient n'est pas qualifiée."}),
    )
