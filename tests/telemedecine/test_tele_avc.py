"""The "Done when" scenario of issue #8, end to end through the pages and the real services.

A small hospital's emergency physician asks the stroke unit's on-call neurologist for an opinion on a
brain CT (télé-AVC): the request is written and its CT uploaded from the browser, sent to the pool
"Neurologues de garde - télé-AVC", accepted by the neurologist on call, consent recorded, the act started,
the report signed (PDF + schema-valid CDA), fed to the DMP and sent by MSSanté, the act closed; its full
trace (R.6316-4) is on the act page. The forward to a real Orthanc is tested by
``test_transfers`` / ``test_orthanc``; here the transfer is requested from the act page and its items
checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from typing import Any

import pydicom
import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from enrs.patients.models import ConsentKind
from enrs.patients.services import consent_record as patient_consent_record
from enrs.standards import cda
from enrs.vault.services import blob_read
from telemedecine.models import (
    Act,
    ActStatus,
    ConsentStatus,
    PacsPeer,
    ParticipantRole,
    PeerProtocol,
    Transfer,
    TransferItem,
)
from telemedecine.services import transfers
from tests.telemedecine.dicom_samples import make_study, zip_of
from tests.telemedecine.factories import (
    ShiftFactory,
    make_mailbox,
    make_patient,
    make_physician,
    make_pool,
    make_structure,
)
from tests.telemedecine.orthanc import OrthancServer, running_orthanc

pytestmark = pytest.mark.django_db

POOL_NAME = "Neurologues de garde \N{EN DASH} télé-AVC"
QUESTION = "Hémiplégie droite et aphasie depuis 1 h 20 (début 14 h 05). Scanner : thrombolyse ?"
REPORT = "Pas d'hémorragie ni d'AVC constitué au scanner. Indication de thrombolyse confirmée."
PRESCRIPTIONS = "Altéplase 0,9 mg/kg IV (10 % en bolus), transfert en UNV."


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    return client


def upload_study(client: Client, act: Act, files: list[tuple[str, bytes]]) -> int:
    """The browser's upload, through the page's JSON endpoints (start, two chunks, complete)."""
    archive = zip_of(files)
    start = client.post(
        reverse("telemedecine:upload_start"),
        data=json.dumps({"filename": "scanner-cerebral.zip", "total_size": len(archive), "act": act.pk}),
        content_type="application/json",
    )
    assert start.status_code == 201, start.content
    session = start.json()
    half = len(archive) // 2
    for offset, piece in ((0, archive[:half]), (half, archive[half:])):
        chunk = client.post(
            session["chunk_url"],
            data=piece,
            content_type="application/octet-stream",
            HTTP_X_UPLOAD_OFFSET=str(offset),
        )
        assert chunk.status_code == 200, chunk.content
    done = client.post(session["complete_url"])
    assert done.status_code == 200, done.content
    return int(done.json()["study_id"])


@pytest.mark.parametrize(
    "forward", [False, pytest.param(True, marks=pytest.mark.integration)], ids=["queued", "orthanc"]
)
def test_a_tele_avc_request_goes_from_a_small_hospital_to_the_on_call_neurologist(
    django_capture_on_commit_callbacks: Any, forward: bool
) -> None:
    """``orthanc``: the images are also sent to a real Orthanc (the worker's attempt run in the test)."""
    with contextlib.ExitStack() as stack:
        pacs = stack.enter_context(running_orthanc()) if forward else None
        _scenario(django_capture_on_commit_callbacks, pacs)


def _scenario(capture: Any, pacs: OrthancServer | None) -> None:
    from dmp.models import Document
    from messagerie.models import Message

    django_capture_on_commit_callbacks = capture

    small_hospital = make_structure(name="Centre hospitalier de Ploërmel")
    stroke_unit = make_structure(name="CHU de Rennes, unité neurovasculaire")
    emergency = make_physician(structure=small_hospital, first_name="Claire", last_name="Urgentiste")
    neurologist = make_physician(structure=stroke_unit, first_name="Paul", last_name="Neurologue")
    off_duty = make_physician(structure=stroke_unit, first_name="Anne", last_name="Repos")
    make_mailbox(emergency)
    make_mailbox(neurologist)
    pool = make_pool(name=POOL_NAME, structure=stroke_unit, members=[neurologist.user, off_duty.user])
    ShiftFactory(pool=pool, user=neurologist.user)
    ShiftFactory(
        pool=pool,
        user=off_duty.user,
        starts_at=timezone.now() + dt.timedelta(hours=6),
        ends_at=timezone.now() + dt.timedelta(hours=18),
    )
    patient = make_patient(qualified=True)
    patient_consent_record(
        patient=patient,
        kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
        actor=neurologist.user,
        professional=neurologist.user,
    )
    requester, expert = signed_in(emergency.user), signed_in(neurologist.user)

    # 1. The emergency physician writes the request for the patient, to the pool.
    form = requester.get(reverse("telemedecine:act_create"), {"patient": patient.pk})
    assert small_hospital.name in form.content.decode()
    response = requester.post(
        reverse("telemedecine:act_create"),
        {
            "patient": patient.pk,
            "act_type": "teleexpertise",
            "requester_structure": small_hospital.pk,
            "pool": pool.pk,
            "clinical_question": QUESTION,
            "urgency": "emergency",
        },
    )
    assert response.status_code == 302
    act = Act.objects.get()
    assert act.status == ActStatus.DRAFT

    # 2. The CT is uploaded from the browser for this request (same patient: INS and birth date).
    files = make_study(
        (3,),
        base="CT_small.dcm",
        patient_id=patient.ins,
        birth_date=patient.birth_date.strftime("%Y%m%d"),
        modality="CT",
    )
    study_id = upload_study(requester, act, files)
    study = act.studies.get()
    assert study.pk == study_id
    assert study.instance_count == 3
    assert study.patient == patient

    # 3. Sent: the neurologist on call is told by e-mail (no patient name), the off-duty member is not.
    with django_capture_on_commit_callbacks(execute=True):
        assert requester.post(reverse("telemedecine:act_action", args=[act.pk, "send"])).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.SENT
    recipients = {address for message in mail.outbox for address in message.to}
    assert neurologist.user.email in recipients
    assert off_duty.user.email not in recipients
    assert all(patient.birth_family_name not in m.body for m in mail.outbox)

    # 4. The neurologist sees it as on call now, and accepts.
    index = expert.get(reverse("telemedecine:index"))
    assert [a.pk for a in index.context["on_call_acts"]] == [act.pk]
    assert POOL_NAME in index.content.decode()
    assert expert.post(reverse("telemedecine:act_action", args=[act.pk, "accept"])).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.ACCEPTED
    assert act.expert == neurologist.user

    # 5. The images go to the expert site's PACS (requested from the act page; sent by the worker).
    peer = PacsPeer.objects.create(
        name="PACS CHU Rennes",
        structure=stroke_unit,
        protocol=PeerProtocol.CSTORE,
        host="127.0.0.1",
        port=pacs.dicom_port if pacs is not None else 4242,
        ae_title=pacs.ae_title if pacs is not None else "ORTHANC",
        calling_ae_title="ENRS",
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = requester.post(
            reverse("telemedecine:transfer_create", args=[act.pk]),
            {"transfert-study": study.pk, "transfert-peer": peer.pk},
        )
    assert response.status_code == 302
    transfer = Transfer.objects.get(act=act)
    assert transfer.purpose == "care"
    assert TransferItem.objects.filter(transfer=transfer).count() == 3
    progress = expert.get(reverse("telemedecine:act_progress", args=[act.pk])).json()
    assert progress["transfers"][0]["instances_total"] == 3
    if pacs is not None:
        # What the Celery worker does with the queued task: the images land in the expert's Orthanc.
        assert transfers.transfer_attempt(transfer_id=transfer.pk, worker="test") is None
        uploaded = {pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID for _path, data in files}
        assert {pacs.sop_instance_uid(i) for i in pacs.instance_ids()} == uploaded
        progress = expert.get(reverse("telemedecine:act_progress", args=[act.pk])).json()
        assert progress["transfers"][0]["instances_sent"] == 3
        assert progress["transfers"][0]["status"] == "done"
        assert progress["transfers"][0]["verified_at"] is not None
        assert progress["done"] is True

    # 6. Consent recorded by the requester; the neurologist starts the act, writes and signs the report.
    response = requester.post(
        reverse("telemedecine:act_action", args=[act.pk, "consent"]), {"consentement-status": "given"}
    )
    assert response.status_code == 302
    assert expert.post(reverse("telemedecine:act_action", args=[act.pk, "start"])).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        response = expert.post(
            reverse("telemedecine:act_action", args=[act.pk, "sign"]),
            {"cr-report_text": REPORT, "cr-prescriptions": PRESCRIPTIONS},
        )
    assert response.status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.REPORT_SIGNED
    pdf = requester.get(reverse("telemedecine:act_report_pdf", args=[act.pk]))
    assert pdf.content.startswith(b"%PDF")
    xml = requester.get(reverse("telemedecine:act_report_cda", args=[act.pk])).content
    assert cda.validate_cda(xml) == []
    assert cda.parse_cda(xml).type_code.code == "85208-7"
    assert xml == blob_read(act.report_cda)  # type: ignore[arg-type]

    # 7. Fed to the DMP and sent by secure message to the requester.
    document = Document.objects.get(pk=int(act.dmp_document_id or 0))
    assert document.patient == patient
    assert document.source == "telemedecine"
    message = Message.objects.get(pk=int(act.report_message_id or 0))
    assert message.mailbox.owner == neurologist.user
    assert len(message.to_addresses) == 1
    assert message.to_addresses[0].startswith("dr.")

    # 8. Closed; the act page shows the whole trace.
    assert expert.post(reverse("telemedecine:act_action", args=[act.pk, "close"])).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.CLOSED
    assert act.consent == ConsentStatus.GIVEN
    assert act.consent_collected_by == emergency.user
    assert act.sent_at <= act.accepted_at <= act.started_at <= act.report_signed_at <= act.closed_at  # type: ignore[operator]
    assert act.ended_at is not None
    roles = dict(act.participants.values_list("user_id", "role"))
    assert roles[emergency.user.pk] == ParticipantRole.REQUESTER
    assert roles[neurologist.user.pk] == ParticipantRole.EXPERT
    events = list(act.events.values_list("event", flat=True))
    if pacs is not None:
        assert "images_transfer_done" in events
    for expected in (
        "created",
        "sent",
        "accepted",
        "images_transfer_requested",
        "consent",
        "started",
        "report_signed",
        "dmp_queued",
        "mssante_sent",
        "closed",
    ):
        assert expected in events, expected
    page = requester.get(reverse("telemedecine:act_detail", args=[act.pk])).content.decode()
    for expected in (
        "Consentement donné",
        "Claire",
        "Paul",
        "Pas d&#x27;hémorragie ni d&#x27;AVC constitué au scanner.",
        "Altéplase 0,9 mg/kg IV",
        "Compte rendu mis en file pour le DMP",
        "Compte rendu envoyé par MSSanté",
        "PACS CHU Rennes",
        POOL_NAME,
    ):
        assert expected in page, expected
    assert 'id="cr-dmp"' in page
    # Every page view of the act was an audited patient-data access.
    reads = AuditEvent.objects.filter(action="telemedecine.act.read", target_id=str(act.pk))
    assert reads.filter(actor=emergency.user).exists()
