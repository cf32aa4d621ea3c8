"""Pages of the telemedicine service: who reads an act, each transition through the UI, form errors,
the pools' rota, the transfers' progress, and the number of queries of the lists."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from telemedecine.models import (
    Act,
    ActAttachment,
    ActStatus,
    ConsentStatus,
    Incident,
    PacsPeer,
    PeerProtocol,
    Pool,
    Shift,
    Study,
    Transfer,
)
from telemedecine.services import studies
from tests.factories import UserFactory
from tests.telemedecine.dicom_samples import make_study
from tests.telemedecine.factories import (
    ActFactory,
    ShiftFactory,
    act_in_state,
    make_patient,
    make_physician,
    make_pool,
    make_structure,
)

pytestmark = pytest.mark.django_db


def signed_in(user: User, *, strong: bool = True) -> Client:
    client = Client()
    client.force_login(user)
    if strong:
        session = client.session
        session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
        session.save()
    return client


def act_url(act: Act, action: str | None = None) -> str:
    if action is None:
        return reverse("telemedecine:act_detail", args=[act.pk])
    return reverse("telemedecine:act_action", args=[act.pk, action])


def audit_actions(user: User) -> list[str]:
    return list(AuditEvent.objects.filter(actor=user).order_by("pk").values_list("action", flat=True))


def clinician() -> User:
    return cast(User, UserFactory())


# --- Access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index", "act_create"])
def test_ars_analysts_are_refused_and_the_denial_is_audited(name: str) -> None:
    analyst = cast(User, UserFactory(ars_analyst=True))
    response = signed_in(analyst).get(reverse(f"telemedecine:{name}"))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(actor=analyst, action="access.denied").exists()


def test_a_password_only_session_is_sent_to_the_second_factor_not_to_the_act() -> None:
    scenario = act_in_state(ActStatus.SENT)
    response = signed_in(scenario.requester, strong=False).get(act_url(scenario.act))
    assert response.status_code == 302
    assert "/compte/" in response["Location"]
    assert not AuditEvent.objects.filter(action="telemedecine.act.read").exists()


def test_anonymous_visitors_go_to_the_sign_in_page() -> None:
    response = Client().get(reverse("telemedecine:index"))
    assert response.status_code == 302
    assert "next=" in response["Location"]


def test_the_requester_reads_the_act_and_the_read_is_audited() -> None:
    scenario = act_in_state(ActStatus.SENT)
    response = signed_in(scenario.requester).get(act_url(scenario.act))
    assert response.status_code == 200
    assert scenario.act.patient.display_name in response.content.decode()
    event = AuditEvent.objects.get(action="telemedecine.act.read", actor=scenario.requester)
    assert event.target_id == str(scenario.act.pk)


def test_a_pool_member_reads_a_request_sent_to_the_pool() -> None:
    member = clinician()
    pool = make_pool(members=[member])
    scenario = act_in_state(ActStatus.SENT, pool=pool)
    response = signed_in(member).get(act_url(scenario.act))
    assert response.status_code == 200
    assert "Accepter la demande" in response.content.decode()


def test_other_clinicians_get_not_found_and_the_refusal_is_audited() -> None:
    scenario = act_in_state(ActStatus.SENT)
    stranger = clinician()
    client = signed_in(stranger)
    response = client.get(act_url(scenario.act))
    assert response.status_code == 404
    denied = AuditEvent.objects.get(actor=stranger, action="access.denied")
    assert denied.target_id == str(scenario.act.pk)
    # A missing act answers the same way.
    assert client.get(reverse("telemedecine:act_detail", args=[999999])).status_code == 404
    # Writes are refused the same way, and nothing changes.
    assert client.post(act_url(scenario.act, "cancel"), {"annulation-reason": "x"}).status_code == 404
    scenario.act.refresh_from_db()
    assert scenario.act.status == ActStatus.SENT
    assert client.get(reverse("telemedecine:act_progress", args=[scenario.act.pk])).status_code == 404


# --- Index ----------------------------------------------------------------------------------------------


def test_the_index_lists_my_requests_those_sent_to_me_and_on_call_with_locked_queries(
    django_assert_max_num_queries: Any,
) -> None:
    me = clinician()
    pool = make_pool(members=[me])
    ShiftFactory(pool=pool, user=me)
    for _ in range(3):
        act_in_state(ActStatus.DRAFT, requester=me)
        act_in_state(ActStatus.SENT, pool=pool)
        act_in_state(ActStatus.ACCEPTED, expert=me)
    client = signed_in(me)
    client.get(reverse("telemedecine:index"))  # warm the session and the content types
    with django_assert_max_num_queries(14):
        response = client.get(reverse("telemedecine:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Vous êtes de garde maintenant" in body
    assert body.count("Brouillon") >= 3
    assert pool.name in body
    context = response.context
    assert len(context["mine"]) == 3
    assert len(context["to_me"]) == 6
    assert len(context["on_call_acts"]) == 3
    assert AuditEvent.objects.filter(actor=me, action="telemedecine.act.list").exists()
    # More rows do not mean more queries.
    for _ in range(5):
        act_in_state(ActStatus.SENT, pool=pool)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("telemedecine:index")).status_code == 200


def test_the_act_page_has_a_bounded_number_of_queries(django_assert_max_num_queries: Any) -> None:
    scenario = act_in_state(ActStatus.CLOSED)
    client = signed_in(scenario.requester)
    client.get(act_url(scenario.act))
    with django_assert_max_num_queries(30):
        response = client.get(act_url(scenario.act))
    assert response.status_code == 200


# --- New request ---------------------------------------------------------------------------------------


def test_a_new_request_starts_with_a_patient_search_that_is_audited() -> None:
    physician = make_physician()
    patient = make_patient(birth_family_name="DURANDAL")
    client = signed_in(physician.user)
    response = client.get(reverse("telemedecine:act_create"))
    assert response.status_code == 200
    assert reverse("patients:create") in response.content.decode()
    response = client.get(reverse("telemedecine:act_create"), {"q": "duran"})
    assert response.status_code == 200
    assert f"?patient={patient.pk}" in response.content.decode()
    assert AuditEvent.objects.filter(actor=physician.user, action="patient.search").exists()
    response = client.get(reverse("telemedecine:act_create"), {"q": "x"})
    assert "Saisissez au moins deux lettres du nom." in response.content.decode()


def test_the_request_form_creates_a_draft_with_its_attachment() -> None:
    physician = make_physician()
    member = clinician()
    pool = make_pool(members=[member])
    patient = make_patient(qualified=True)
    client = signed_in(physician.user)
    page = client.get(reverse("telemedecine:act_create"), {"patient": patient.pk})
    assert page.status_code == 200
    assert physician.structure.name in page.content.decode()
    assert AuditEvent.objects.filter(action="patient.read", actor=physician.user).exists()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        reverse("telemedecine:act_create"),
        {
            "patient": patient.pk,
            "act_type": "teleexpertise",
            "requester_structure": physician.structure.pk,
            "pool": pool.pk,
            "clinical_question": "Hémiplégie droite depuis 1 h 10. Thrombolyse ?",
            "urgency": "emergency",
            "scheduled_at": "",
            "attachment": SimpleUploadedFile("ecg.pdf", b"%PDF-1.4 ecg", content_type="application/pdf"),
        },
    )
    act = Act.objects.get()
    assert response.status_code == 302
    assert response["Location"] == act_url(act)
    assert act.status == ActStatus.DRAFT
    assert act.pool == pool
    assert act.requester == physician.user
    assert act.requester_structure == physician.structure
    assert act.urgency == "emergency"
    attachment = ActAttachment.objects.get(act=act)
    assert attachment.filename == "ecg.pdf"
    download = client.get(reverse("telemedecine:attachment_download", args=[act.pk, attachment.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"%PDF-1.4 ecg"  # type: ignore[attr-defined]


def test_request_form_errors_are_shown_next_to_the_fields_and_nothing_is_written() -> None:
    physician = make_physician()
    patient = make_patient()
    other = clinician()
    pool = make_pool()
    client = signed_in(physician.user)
    url = reverse("telemedecine:act_create")
    base = {
        "patient": patient.pk,
        "act_type": "teleexpertise",
        "requester_structure": physician.structure.pk,
        "clinical_question": "Avis ?",
        "urgency": "scheduled",
    }
    response = client.post(url, base)
    assert response.status_code == 200
    assert "Choisissez l&#x27;équipe de garde ou le professionnel sollicité." in response.content.decode()
    response = client.post(url, {**base, "pool": pool.pk, "requested_professional": other.pk})
    assert "pas aux deux" in response.content.decode()
    response = client.post(url, {**base, "pool": pool.pk, "clinical_question": "  ", "act_type": "x"})
    body = response.content.decode()
    assert "fr-error-text" in body
    assert 'id="id_act_type_error"' in body
    assert 'id="id_clinical_question_error"' in body
    foreign = make_structure()
    response = client.post(url, {**base, "pool": pool.pk, "requester_structure": foreign.pk})
    assert 'id="id_requester_structure_error"' in response.content.decode()
    response = client.post(url, {**base, "pool": pool.pk, "scheduled_at": "demain"})
    assert "Saisissez une date et une heure valides" in response.content.decode()
    assert not Act.objects.exists()


def test_a_clinician_without_structure_is_told_why() -> None:
    user = clinician()
    patient = make_patient()
    response = signed_in(user).get(reverse("telemedecine:act_create"), {"patient": patient.pk})
    assert 'id="sans-structure"' in response.content.decode()


def test_an_unknown_patient_is_not_found() -> None:
    response = signed_in(clinician()).get(reverse("telemedecine:act_create"), {"patient": 987654})
    assert response.status_code == 404


# --- Transitions through the UI ------------------------------------------------------------------------


def test_the_whole_workflow_through_the_pages() -> None:
    member = clinician()
    pool = make_pool(members=[member])
    ShiftFactory(pool=pool, user=member)
    scenario = act_in_state(ActStatus.DRAFT, pool=pool)
    act, requester = scenario.act, scenario.requester
    req, exp = signed_in(requester), signed_in(member)

    assert "Envoyer la demande" in req.get(act_url(act)).content.decode()
    assert req.post(act_url(act, "send")).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.SENT
    assert member.email in {address for m in mail.outbox for address in m.to} or not mail.outbox

    page = exp.get(act_url(act)).content.decode()
    assert "de garde maintenant" in page
    assert member.get_full_name() in page
    assert exp.post(act_url(act, "accept")).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.ACCEPTED
    assert act.expert == member

    # Starting without consent is refused with a French message.
    response = exp.post(act_url(act, "start"), follow=True)
    act.refresh_from_db()
    assert act.status == ActStatus.ACCEPTED
    assert "consentement" in response.content.decode().lower()

    response = req.post(act_url(act, "consent"), {"consentement-status": "given", "consentement-at": ""})
    assert response.status_code == 302
    assert (
        exp.post(
            act_url(act, "participant"),
            {
                "participant-name": "Mme Martin",
                "participant-function": "IDE",
                "participant-role": "care_staff",
            },
        ).status_code
        == 302
    )
    assert exp.post(act_url(act, "start")).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.IN_PROGRESS
    assert act.consent == ConsentStatus.GIVEN
    assert act.consent_collected_by == requester

    assert (
        exp.post(
            act_url(act, "incident"),
            {"incident-code": "video", "incident-description": "Son coupé", "incident-occurred_at": ""},
        ).status_code
        == 302
    )
    assert (
        exp.post(
            act_url(act, "report"), {"cr-report_text": "Brouillon du compte rendu", "cr-prescriptions": ""}
        ).status_code
        == 302
    )
    act.refresh_from_db()
    assert act.report_text == "Brouillon du compte rendu"
    assert act.status == ActStatus.IN_PROGRESS
    response = exp.post(
        act_url(act, "sign"),
        {"cr-report_text": "Pas d'hémorragie. Thrombolyse indiquée.", "cr-prescriptions": "Altéplase"},
    )
    assert response.status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.REPORT_SIGNED
    assert act.report_pdf_id is not None
    pdf = req.get(reverse("telemedecine:act_report_pdf", args=[act.pk]))
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")

    assert exp.post(act_url(act, "close")).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.CLOSED
    assert (
        req.post(act_url(act, "amend"), {"complement-text": "Patient transféré en UNV."}).status_code == 302
    )
    assert act.amendments.get().text == "Patient transféré en UNV."

    page = req.get(act_url(act)).content.decode()
    for expected in (
        "Consentement donné",
        "Mme Martin",
        "Vidéo ou son défaillants",
        "Pas d&#x27;hémorragie. Thrombolyse indiquée.",
        "Altéplase",
        "Patient transféré en UNV.",
        "Compte rendu signé",
        "Acte clôturé",
    ):
        assert expected in page, expected
    assert Incident.objects.filter(act=act).count() == 1


def test_refusing_needs_a_reason_shown_next_to_the_field() -> None:
    scenario = act_in_state(ActStatus.SENT)
    act = scenario.act
    expert = cast(User, act.requested_professional)
    client = signed_in(expert)
    response = client.post(act_url(act, "refuse"), {"refus-reason": ""})
    assert response.status_code == 400
    assert 'id="id_refus-reason_error"' in response.content.decode()
    act.refresh_from_db()
    assert act.status == ActStatus.SENT
    assert client.post(act_url(act, "refuse"), {"refus-reason": "Hors de ma spécialité."}).status_code == 302
    act.refresh_from_db()
    assert act.status == ActStatus.REFUSED
    assert act.status_reason == "Hors de ma spécialité."
    assert "Hors de ma spécialité." in client.get(act_url(act)).content.decode()


def test_the_requester_cancels_and_an_invalid_transition_is_refused_in_french() -> None:
    scenario = act_in_state(ActStatus.SENT)
    client = signed_in(scenario.requester)
    assert (
        client.post(act_url(scenario.act, "cancel"), {"annulation-reason": "Patient décédé."}).status_code
        == 302
    )
    response = client.post(act_url(scenario.act, "send"), follow=True)
    assert "Impossible de envoyer la demande" in response.content.decode()
    scenario.act.refresh_from_db()
    assert scenario.act.status == ActStatus.CANCELLED


def test_the_wrong_person_gets_a_403_and_nothing_changes() -> None:
    scenario = act_in_state(ActStatus.SENT)
    response = signed_in(scenario.requester).post(act_url(scenario.act, "accept"))
    assert response.status_code == 403
    scenario.act.refresh_from_db()
    assert scenario.act.status == ActStatus.SENT


def test_an_unknown_action_is_not_found() -> None:
    scenario = act_in_state(ActStatus.SENT)
    assert signed_in(scenario.requester).post(act_url(scenario.act, "teleport")).status_code == 404


def test_a_closed_act_shows_no_editing_forms() -> None:
    scenario = act_in_state(ActStatus.CLOSED)
    body = signed_in(scenario.requester).get(act_url(scenario.act)).content.decode()
    assert 'id="form-complement"' in body
    assert 'id="form-compte-rendu"' not in body
    assert 'id="form-consentement"' not in body
    assert 'id="form-annulation"' not in body


def test_the_report_route_outcomes_are_shown(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        scenario = act_in_state(ActStatus.REPORT_SIGNED)  # provisional identity, no mailbox
    body = signed_in(scenario.requester).get(act_url(scenario.act)).content.decode()
    assert "identité du patient n&#x27;est pas qualifiée" in body
    assert "boîte aux lettres" in body


# --- Room -----------------------------------------------------------------------------------------------


def test_joining_the_room_redirects_to_the_video_service_with_a_token(settings: Any) -> None:
    settings.TLM_JITSI_URL = "https://visio.enrs.example/"
    settings.TLM_JITSI_APP_ID = "enrs"
    settings.TLM_JITSI_APP_SECRET = "s" * 40
    scenario = act_in_state(ActStatus.ACCEPTED)
    client = signed_in(scenario.requester)
    assert "Rejoindre la salle" in client.get(act_url(scenario.act)).content.decode()
    response = client.post(reverse("telemedecine:act_join", args=[scenario.act.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("https://visio.enrs.example/enrs-")
    assert "?jwt=" in response["Location"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_without_video_service_joining_explains_the_fallback(settings: Any) -> None:
    settings.TLM_JITSI_URL = ""
    scenario = act_in_state(ActStatus.ACCEPTED)
    client = signed_in(scenario.requester)
    body = client.get(act_url(scenario.act)).content.decode()
    assert "Rejoindre la salle" not in body
    assert "aucun service de visioconférence configuré" in body
    response = client.post(reverse("telemedecine:act_join", args=[scenario.act.pk]), follow=True)
    assert "Aucun service de visioconférence n&#x27;est configuré" in response.content.decode()


# --- Studies and transfers ---------------------------------------------------------------------------


def _study_for(act: Act, user: User) -> Study:
    instance = None
    for _path, data in make_study((2,)):
        instance = studies.study_ingest_file(data_or_path=data, source="upload", uploaded_by=user, act=act)
    assert instance is not None
    return studies.study_finalize(study=instance.series.study)


def _peer() -> PacsPeer:
    return PacsPeer.objects.create(
        name="PACS CHU neurologie",
        structure=make_structure(),
        protocol=PeerProtocol.CSTORE,
        host="127.0.0.1",
        port=11113,
        ae_title="CHUPACS",
    )


def test_a_study_is_forwarded_from_the_act_and_its_progress_polled(
    django_capture_on_commit_callbacks: Any,
) -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    act = scenario.act
    study = _study_for(act, scenario.requester)
    peer = _peer()
    client = signed_in(scenario.requester)
    body = client.get(act_url(act)).content.decode()
    assert "Transférer vers le PACS du site expert" in body
    assert reverse("telemedecine:study_detail", args=[study.pk]) in body
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("telemedecine:transfer_create", args=[act.pk]),
            {"transfert-study": study.pk, "transfert-peer": peer.pk},
        )
    assert response.status_code == 302
    transfer = Transfer.objects.get(act=act)
    assert transfer.instances_total == 2
    assert transfer.peer == peer
    progress = client.get(reverse("telemedecine:act_progress", args=[act.pk])).json()
    assert progress["status"] == "accepted"
    assert progress["transfers"][0]["instances_total"] == 2
    assert progress["transfers"][0]["instances_sent"] == 0
    assert progress["done"] is False
    Transfer.objects.filter(pk=transfer.pk).update(instances_sent=1)
    progress = client.get(reverse("telemedecine:act_progress", args=[act.pk])).json()
    assert progress["transfers"][0]["percent"] == 50
    body = client.get(act_url(act)).content.decode()
    assert f'data-transfer="{transfer.pk}"' in body
    assert "telemedecine/act.js" in body


def test_transfer_form_errors_are_shown() -> None:
    scenario = act_in_state(ActStatus.ACCEPTED)
    act = scenario.act
    study = _study_for(act, scenario.requester)
    _peer()
    response = signed_in(scenario.requester).post(
        reverse("telemedecine:transfer_create", args=[act.pk]), {"transfert-study": study.pk}
    )
    assert response.status_code == 400
    assert 'id="id_transfert-peer_error"' in response.content.decode()
    assert not Transfer.objects.exists()


def test_a_failed_transfer_is_retried_from_the_act(django_capture_on_commit_callbacks: Any) -> None:
    from telemedecine.services import transfers

    scenario = act_in_state(ActStatus.ACCEPTED)
    act = scenario.act
    study = _study_for(act, scenario.requester)
    with django_capture_on_commit_callbacks(execute=False):
        transfer = transfers.transfer_create(
            study=study, peer=_peer(), requested_by=scenario.requester, act=act
        )
    Transfer.objects.filter(pk=transfer.pk).update(status="failed", last_error="Association refusée")
    client = signed_in(scenario.requester)
    body = client.get(act_url(act)).content.decode()
    assert "Relancer" in body
    assert "Association refusée" in body
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("telemedecine:transfer_retry", args=[act.pk, transfer.pk]))
    assert response.status_code == 302
    transfer.refresh_from_db()
    assert transfer.status != "failed"
    assert act.events.filter(event="images_transfer_retried").exists()


# --- Pools ----------------------------------------------------------------------------------------------


def test_clinicians_read_the_pools_and_who_is_on_call() -> None:
    member = clinician()
    pool = make_pool(members=[member])
    ShiftFactory(pool=pool, user=member)
    client = signed_in(clinician(), strong=False)  # no patient data here
    response = client.get(reverse("telemedecine:pool_list"))
    assert response.status_code == 200
    assert member.get_full_name() in response.content.decode()
    detail = client.get(reverse("telemedecine:pool_detail", args=[pool.pk]))
    assert detail.status_code == 200
    assert "Ajouter une garde" not in detail.content.decode()
    analyst = cast(User, UserFactory(ars_analyst=True))
    assert signed_in(analyst).get(reverse("telemedecine:pool_list")).status_code == 403


def test_gcs_staff_add_and_remove_shifts_and_errors_are_shown() -> None:
    member = clinician()
    pool = make_pool(members=[member])
    staff = cast(User, UserFactory(gcs_staff=True))
    client = signed_in(staff, strong=False)
    url = reverse("telemedecine:shift_add", args=[pool.pk])
    start = timezone.localtime() + dt.timedelta(days=1)
    fmt = "%Y-%m-%dT%H:%M"
    data = {
        "user": member.pk,
        "starts_at": start.strftime(fmt),
        "ends_at": (start + dt.timedelta(hours=12)).strftime(fmt),
    }
    assert client.post(url, data).status_code == 302
    shift = Shift.objects.get(pool=pool)
    assert shift.user == member
    response = client.post(url, data)
    assert response.status_code == 400
    assert "déjà de garde" in response.content.decode()
    response = client.post(url, {**data, "ends_at": start.strftime(fmt)})
    assert 'id="id_ends_at_error"' in response.content.decode()
    assert Shift.objects.count() == 1
    remove = reverse("telemedecine:shift_remove", args=[pool.pk, shift.pk])
    assert signed_in(member).post(remove).status_code == 403
    assert client.post(remove).status_code == 302
    assert not Shift.objects.exists()
    assert AuditEvent.objects.filter(actor=staff, action="telemedecine.shift.remove").exists()


def test_clinicians_do_not_manage_the_rota() -> None:
    member = clinician()
    pool = make_pool(members=[member])
    start = timezone.localtime()
    response = signed_in(member).post(
        reverse("telemedecine:shift_add", args=[pool.pk]),
        {"user": member.pk, "starts_at": start.strftime("%Y-%m-%dT%H:%M"), "ends_at": "2099-01-01T00:00"},
    )
    assert response.status_code == 403
    assert not Shift.objects.exists()


def test_a_draft_act_factory_row_is_not_listed_to_its_recipient() -> None:
    act = ActFactory()
    response = signed_in(cast(User, act.requested_professional)).get(reverse("telemedecine:index"))
    assert response.context["to_me"] == []


def test_gcs_staff_create_a_pool_and_manage_its_members() -> None:
    staff = cast(User, UserFactory(gcs_staff=True))
    structure = make_structure()
    neurologist = cast(User, UserFactory(idnat_ps="810000000001"))
    client = signed_in(staff, strong=False)
    url = reverse("telemedecine:pool_create")
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "Neurologues", "specialty": "", "structure": "123"})
    assert response.status_code == 400
    assert 'id="id_structure_error"' in response.content.decode()
    response = client.post(url, {"name": "Neurologues", "structure": structure.finess_et})
    pool = Pool.objects.get()
    assert response["Location"] == reverse("telemedecine:pool_detail", args=[pool.pk])
    assert pool.structure == structure
    response = client.post(url, {"name": "neurologues", "structure": structure.finess_et})
    assert "Une équipe de garde porte déjà ce nom." in response.content.decode()

    add = reverse("telemedecine:member_add", args=[pool.pk])
    response = client.post(add, {"membre-account": "inconnu"})
    assert response.status_code == 400
    assert "Aucun compte actif" in response.content.decode()
    assert client.post(add, {"membre-account": "810000000001"}).status_code == 302
    assert list(pool.members.all()) == [neurologist]
    assert (
        signed_in(neurologist)
        .post(reverse("telemedecine:member_remove", args=[pool.pk, neurologist.pk]))
        .status_code
        == 403
    )
    assert (
        client.post(reverse("telemedecine:member_remove", args=[pool.pk, neurologist.pk])).status_code == 302
    )
    assert not pool.members.exists()
    assert AuditEvent.objects.filter(actor=staff, action="telemedecine.pool.member_remove").exists()
    assert signed_in(clinician()).get(url).status_code == 403


def test_the_requester_edits_a_draft_but_not_a_sent_request() -> None:
    scenario = act_in_state(ActStatus.DRAFT)
    pool = make_pool()
    client = signed_in(scenario.requester)
    url = reverse("telemedecine:act_edit", args=[scenario.act.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"clinical_question": "", "urgency": "urgent", "pool": pool.pk})
    assert response.status_code == 400
    assert 'id="id_clinical_question_error"' in response.content.decode()
    response = client.post(
        url, {"clinical_question": "Nouvelle question", "urgency": "urgent", "pool": pool.pk}
    )
    assert response.status_code == 302
    act = Act.objects.get(pk=scenario.act.pk)
    assert act.clinical_question == "Nouvelle question"
    assert act.pool == pool
    assert act.requested_professional is None
    assert client.post(act_url(act, "send")).status_code == 302
    response = client.post(url, {"clinical_question": "Autre", "urgency": "urgent", "pool": pool.pk})
    assert response.status_code == 302
    act.refresh_from_db()
    assert act.clinical_question == "Nouvelle question"
    # Someone else cannot even see the draft.
    assert signed_in(clinician()).get(url).status_code == 404
