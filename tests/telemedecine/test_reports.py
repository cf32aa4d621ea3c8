"""Signing a report: the PDF (reportlab, read back with pypdf), the CDA level 1 (LOINC 85208-7) valid
against CDA_extended.xsd, then — after commit, through the real DMP and messaging services — the DMP
document and the MSSanté message, or the reason each could not be done, written in the act's trace."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from pypdf import PdfReader

from enrs.audit.models import AuditEvent
from enrs.patients.models import ConsentKind, Patient
from enrs.patients.services import consent_record as patient_consent_record
from enrs.standards import cda
from enrs.vault.services import blob_read
from telemedecine.models import Act, ActStatus, ConsentStatus, Incident, ParticipantRole
from telemedecine.reports_pdf import ReportData, render_report_pdf
from telemedecine.services import acts as svc
from telemedecine.services import reports
from tests.telemedecine.factories import (
    Physician,
    act_in_state,
    make_mailbox,
    make_patient,
    make_physician,
    make_user,
)

pytestmark = pytest.mark.django_db

QUESTION = "Hypodensité sylvienne gauche < 1/3 du territoire ? Thrombolyse & thrombectomie ?"
REPORT = "Pas d'AVC ischémique constitué.\nThrombolyse indiquée."
PRESCRIPTIONS = "Altéplase 0,9 mg/kg IV"


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def _events(act: Act) -> dict[str, dict[str, Any]]:
    return {e.event: e.detail for e in act.events.all()}


def _prepare(
    *, qualified: bool = True, authorised: bool = True, mailboxes: bool = True
) -> tuple[Act, Physician, Physician, Patient]:
    """An act in progress between two physicians of the directory, with a participant and an incident."""
    requester, expert = make_physician(), make_physician()
    patient = make_patient(qualified=True) if qualified else make_patient()
    if authorised:
        patient_consent_record(
            patient=patient,
            kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
            actor=expert.user,
            professional=expert.user,
        )
    if mailboxes:
        make_mailbox(requester)
        make_mailbox(expert)
    scenario = act_in_state(
        ActStatus.ACCEPTED,
        requester=requester.user,
        expert=expert.user,
        patient=patient,
        requester_structure=requester.structure,
        clinical_question=QUESTION,
    )
    act = scenario.act
    svc.participant_add(
        act=act, actor=requester.user, role=ParticipantRole.CARE_STAFF, name="Mme Lefort", function="IDE"
    )
    svc.incident_add(act=act, actor=expert.user, code=Incident.Code.IMAGES, description="Série 3 incomplète")
    act = svc.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=requester.user)
    act = svc.act_start(act=act, actor=expert.user)
    return act, requester, expert, patient


def _sign(act: Act, expert: Physician, capture: Any) -> Act:
    with capture(execute=True):
        svc.act_sign_report(act=act, actor=expert.user, report_text=REPORT, prescriptions=PRESCRIPTIONS)
    act.refresh_from_db()
    return act


def test_signing_a_qualified_patient_report_feeds_the_dmp_and_sends_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from dmp.models import Document
    from messagerie.models import Attachment, Message

    act, requester, expert, patient = _prepare()
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    assert act.status == ActStatus.REPORT_SIGNED

    # PDF: what R.6316-4 asks, and the signer.
    pdf = blob_read(act.report_pdf)  # type: ignore[arg-type]
    assert pdf.startswith(b"%PDF")
    text = " ".join(_pdf_text(pdf).split())
    for expected in (
        "Compte rendu de téléexpertise",
        "Hypodensité sylvienne gauche < 1/3 du territoire ? Thrombolyse & thrombectomie ?",
        "Pas d'AVC ischémique constitué.",
        PRESCRIPTIONS,
        "Mme Lefort",
        "Série 3 incomplète",
        patient.birth_family_name,
        patient.ins,
        f"Signé par {expert.user.get_full_name()}",
        "Consentement donné",
    ):
        assert expected in text, expected

    # CDA: schema-valid, LOINC 85208-7, INS, author and custodian from the directory.
    xml = blob_read(act.report_cda)  # type: ignore[arg-type]
    assert cda.validate_cda(xml) == []
    parsed = cda.parse_cda(xml)
    assert parsed.type_code.code == "85208-7"
    assert parsed.type_code.system == "2.16.840.1.113883.6.1"
    assert (parsed.ins, parsed.ins_oid, parsed.qualified_ins) == (patient.ins, patient.ins_oid, True)
    assert parsed.author_idnat == expert.professional.idnat_ps
    assert parsed.legal_authenticator_idnat == expert.professional.idnat_ps
    assert parsed.author_organization_idnat == f"1{expert.structure.finess_et}"
    assert parsed.body == pdf
    assert parsed.body_media_type == "application/pdf"
    assert parsed.service_start == act.started_at.replace(microsecond=0)  # type: ignore[union-attr]

    # DMP: a telemedicine document, queued.
    events = _events(act)
    document = Document.objects.get(pk=int(act.dmp_document_id or 0))
    assert document.source == "telemedecine"
    assert document.type_code == "85208-7"
    assert document.patient == patient
    assert document.author == expert.user
    assert events["dmp_queued"]["document"] == document.pk

    # MSSanté: from the expert's box to the requester's, with the PDF and the CDA as IHE_XDM.
    message = Message.objects.get(pk=int(act.report_message_id or 0))
    sender_box = message.mailbox
    assert sender_box.owner == expert.user
    requester_box = requester.user.mailboxes.get() if hasattr(requester.user, "mailboxes") else None
    assert message.to_addresses == [events["mssante_sent"]["to"]]
    assert requester_box is None or message.to_addresses == [requester_box.address]
    names = set(Attachment.objects.filter(message=message).values_list("filename", flat=True))
    assert f"compte-rendu-{str(act.reference)[:8]}.pdf" in names
    assert "IHE_XDM.zip" in names
    assert patient.birth_family_name not in message.subject
    assert events["mssante_sent"]["xdm"] is True
    audited = set(AuditEvent.objects.filter(target_id=str(act.pk)).values_list("action", flat=True))
    assert {"telemedecine.report.dmp", "telemedecine.report.mssante", "telemedecine.act.sign"} <= audited


def test_unqualified_identity_gets_a_cda_without_ins_and_is_not_fed_to_the_dmp(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from messagerie.models import Attachment, Message

    act, _, expert, patient = _prepare(qualified=False, authorised=False)
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    xml = blob_read(act.report_cda)  # type: ignore[arg-type]
    assert cda.validate_cda(xml) == []
    parsed = cda.parse_cda(xml)
    assert parsed.ins == ""
    assert parsed.qualified_ins is False
    # The patient is named by the portal's local number, never by the matricule.
    assert f'root="{reports.local_patient_oid()}" extension="{patient.pk}"'.encode() in xml
    assert parsed.patient_family == patient.birth_family_name
    assert "Matricule INS" not in _pdf_text(blob_read(act.report_pdf))  # type: ignore[arg-type]
    events = _events(act)
    assert act.dmp_document_id is None
    assert "identité du patient n'est pas qualifiée" in events["dmp_not_fed"]["reason"]
    # Still sent to the requester, without the CDA (no INS may travel).
    message = Message.objects.get(pk=int(act.report_message_id or 0))
    assert not Attachment.objects.filter(message=message, is_xdm=True).exists()
    assert events["mssante_sent"]["xdm"] is False


def test_refusals_are_recorded_and_never_undo_the_signature(django_capture_on_commit_callbacks: Any) -> None:
    act, _, expert, _ = _prepare(authorised=False, mailboxes=False)
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    assert act.status == ActStatus.REPORT_SIGNED
    events = _events(act)
    assert act.dmp_document_id is None
    assert act.report_message_id is None
    assert "autorisation d'accès" in events["dmp_refused"]["reason"]
    assert "boîte aux lettres personnelle" in events["mssante_not_sent"]["reason"]
    failures = AuditEvent.objects.filter(target_id=str(act.pk), action__startswith="telemedecine.report.")
    assert set(failures.values_list("outcome", flat=True)) == {"failure"}
    # The act goes on.
    assert svc.act_close(act=act, actor=expert.user).status == ActStatus.CLOSED


def test_absent_sibling_apps_are_an_outcome(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    act, _, expert, _ = _prepare()
    import dmp
    import messagerie.services

    # As if the apps were not installed: importing their services raises ImportError.
    for package, name in ((dmp, "services"), (messagerie.services, "outgoing")):
        monkeypatch.delattr(package, name)
        monkeypatch.setitem(sys.modules, f"{package.__name__}.{name}", None)
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    events = _events(act)
    assert "DMP n'est pas raccordé" in events["dmp_not_fed"]["reason"]
    assert "messagerie sécurisée n'est pas raccordée" in events["mssante_not_sent"]["reason"]
    assert act.report_cda is not None


def test_an_unexpected_error_in_one_route_does_not_stop_the_other(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    act, _, expert, _ = _prepare()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("panne")

    monkeypatch.setattr(reports, "_route_dmp", broken)
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    events = _events(act)
    assert events["route_error"]["reason"] == "Erreur inattendue (RuntimeError)."
    assert act.report_message_id is not None
    assert "mssante_sent" in events


def test_expert_outside_the_directory_gets_a_pdf_but_no_cda(django_capture_on_commit_callbacks: Any) -> None:
    expert = make_user()  # no IdNat_PS
    scenario = act_in_state(ActStatus.IN_PROGRESS, expert=expert, patient=make_patient(qualified=True))
    with django_capture_on_commit_callbacks(execute=True):
        act = svc.act_sign_report(act=scenario.act, actor=expert, report_text=REPORT)
    act.refresh_from_db()
    assert act.report_pdf is not None
    assert act.report_cda is None
    events = _events(act)
    assert "annuaire" in events["cda_not_produced"]["reason"]
    assert "dmp_refused" in events or "dmp_not_fed" in events
    with pytest.raises(ValidationError):
        reports.report_cda_bytes(act)
    assert reports.report_pdf_bytes(act).startswith(b"%PDF")


def test_pdf_renderer_prints_user_text_literally() -> None:
    data = ReportData(
        title="Compte rendu de téléconsultation",
        reference="abc",
        act_type="Téléconsultation",
        urgency="Programmée",
        patient=[("Nom de naissance", "DUPONT")],
        requester="Dr A",
        requester_structure="CH de Vitré",
        expert="Dr B",
        expert_structure="CHU de Rennes",
        question='<b>gras</b> & <font color="red">rouge</font>\x07',
        report="ligne 1\r\nligne 2",
        prescriptions="",
        signer="Dr B",
        signed_at="20/11/2026 10:00",
    )
    text = _pdf_text(render_report_pdf(data))
    assert '<b>gras</b> & <font color="red">rouge</font>' in text
    assert "ligne 1\nligne 2" in text
    assert "Aucune prescription." in text
    assert "Aucun incident technique." in text


def test_resend_completes_the_missing_route_only(django_capture_on_commit_callbacks: Any) -> None:
    from dmp.models import Document

    act, requester, expert, _ = _prepare(mailboxes=False)
    act = _sign(act, expert, django_capture_on_commit_callbacks)
    assert act.dmp_document_id is not None
    assert act.report_message_id is None
    make_mailbox(requester)
    make_mailbox(expert)
    with pytest.raises(PermissionDenied):
        reports.report_resend(act=act, actor=requester.user)
    with django_capture_on_commit_callbacks(execute=True):
        reports.report_resend(act=act, actor=expert.user)
    act.refresh_from_db()
    assert act.report_message_id is not None
    assert Document.objects.filter(patient=act.patient).count() == 1  # the DMP is not fed twice
    assert [e.event for e in act.events.filter(event__startswith="dmp_")] == ["dmp_queued"]
    with pytest.raises(ValidationError, match="déjà"):
        reports.report_resend(act=act, actor=expert.user)
