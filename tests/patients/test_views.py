"""Patient identity pages: access (strong authentication, never ARS analysts), search, creation with the
INS checks, detail read as an audited access, the INS banner, identity corrections, status changes, the
patient's choices and the status history. French errors next to the fields; query counts locked."""

import datetime as dt
import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from enrs.patients.models import (
    Consent,
    ConsentKind,
    EvidenceKind,
    IdentityStatus,
    IdentityStatusChange,
    InsOid,
    Patient,
)
from tests.patients.factories import PatientFactory, make_consent, make_patient, make_user

pytestmark = pytest.mark.django_db

SEARCH = reverse("patients:search")
CREATE = reverse("patients:create")
TEST_INS = "279035121518989"


def url(name: str, *args: int) -> str:
    return reverse(f"patients:{name}", args=args)


def sign_in(client: Client, user: User, method: AuthMethod = AuthMethod.CPS) -> Client:
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = method.value
    session.save()
    return client


@pytest.fixture
def clinician() -> User:
    return make_user(clinician=True, first_name="Hélène", last_name="Durand")


@pytest.fixture
def doctor(client: Client, clinician: User) -> Client:
    """A clinician signed in with a CPS card (strong authentication)."""
    return sign_in(client, clinician)


def text(response: Any) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def field_errors(response: Any, field: str) -> str:
    """The error block rendered right under `field` (DSFR markup)."""
    match = re.search(rf'id="id_{field}_error"[^>]*>(.*?)</div>', response.content.decode(), re.S)
    return html.unescape(re.sub(r"\s+", " ", match.group(1))) if match else ""


def reads(patient: Patient) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="patient.read", target_id=str(patient.pk)).order_by("id"))


# --- Access --------------------------------------------------------------------------------------------


def _all_urls() -> list[str]:
    return [SEARCH, CREATE, *(url(n, 1) for n in ("detail", "edit", "status", "history", "consent_record"))]


@pytest.mark.parametrize("page", _all_urls())
def test_ars_analysts_never_reach_patient_pages(client: Client, page: str) -> None:
    analyst = make_user(ars_analyst=True)
    make_patient(pk=1)
    response = sign_in(client, analyst).get(page)
    assert response.status_code == 403
    assert "Votre rôle ne donne pas accès" in text(response)
    [denied] = AuditEvent.objects.filter(action="access.denied", actor=analyst)
    assert denied.detail["reason"] == "role"
    assert not AuditEvent.objects.filter(action="patient.read").exists()


@pytest.mark.parametrize("page", _all_urls())
def test_a_password_only_session_is_sent_to_the_otp_step(client: Client, clinician: User, page: str) -> None:
    make_patient(pk=1)
    response = sign_in(client, clinician, AuthMethod.PASSWORD).get(page)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:otp_enrol"))
    assert not AuditEvent.objects.filter(action="patient.read").exists()


def test_anonymous_visitors_go_to_the_sign_in_page(client: Client) -> None:
    response = client.get(SEARCH)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_withdrawing_a_choice_is_refused_to_analysts_and_needs_a_post(
    client: Client, clinician: User
) -> None:
    consent = make_consent()
    withdraw = url("consent_withdraw", consent.patient.pk, consent.pk)
    assert sign_in(client, make_user(ars_analyst=True)).post(withdraw).status_code == 403
    assert sign_in(client, clinician).get(withdraw).status_code == 405
    consent.refresh_from_db()
    assert consent.is_active


# --- Search --------------------------------------------------------------------------------------------


def test_the_search_page_without_criteria_shows_the_form_only(doctor: Client) -> None:
    make_patient()
    response = doctor.get(SEARCH)
    assert response.status_code == 200
    assert 'id="recherche-patient"' in text(response)
    assert 'id="resultats"' not in text(response)
    assert not AuditEvent.objects.filter(action="patient.search").exists()


def test_an_empty_search_is_an_error(doctor: Client) -> None:
    response = doctor.get(SEARCH, {"q": "", "birth_date": ""})
    assert response.status_code == 400
    assert "Saisissez un matricule INS, ou un nom et une date de naissance." in text(response)


def test_search_by_matricule_typed_with_spaces(doctor: Client, clinician: User) -> None:
    wanted = make_patient(qualified=True)
    make_patient(qualified=True)
    spaced = " ".join([wanted.ins[:1], wanted.ins[1:3], wanted.ins[3:5], wanted.ins[5:]])
    response = doctor.get(SEARCH, {"q": spaced})
    assert response.status_code == 200
    page = text(response)
    assert url("detail", wanted.pk) in page
    assert len(re.findall(r'href="/patients/\d+/"', page)) == 1
    [event] = AuditEvent.objects.filter(action="patient.search")
    assert event.actor == clinician
    assert event.detail == {"by": "ins", "with_birth_date": False, "shown": 1, "page": 1}


def test_search_by_name_and_birth_date(doctor: Client) -> None:
    right = make_patient(birth_family_name="LEGRAND", birth_date=dt.date(1980, 1, 2))
    make_patient(birth_family_name="LEGRAND", birth_date=dt.date(1981, 1, 2))
    used = make_patient(birth_family_name="PETIT", used_family_name="LEGRAND", birth_date=dt.date(1980, 1, 2))
    response = doctor.get(SEARCH, {"q": "legr", "birth_date": "1980-01-02"})
    page = text(response)
    found = {int(pk) for pk in re.findall(r'href="/patients/(\d+)/"', page)}
    assert found == {right.pk, used.pk}


def test_no_result_offers_to_create_the_identity(doctor: Client) -> None:
    response = doctor.get(SEARCH, {"q": "INCONNU"})
    assert 'id="aucun-resultat"' in text(response)
    assert CREATE in text(response)


def test_the_search_page_query_count_does_not_grow_with_the_results(
    doctor: Client, django_assert_num_queries: Any
) -> None:
    make_patient(birth_family_name="BERNARD")
    doctor.get(SEARCH, {"q": "BERNARD"})  # warm the session
    with django_assert_num_queries(9) as few:
        doctor.get(SEARCH, {"q": "BERNARD"})
    PatientFactory.create_batch(20, birth_family_name="BERNARD")
    with django_assert_num_queries(len(few.captured_queries)):
        response = doctor.get(SEARCH, {"q": "BERNARD"})
    assert len(re.findall(r'href="/patients/\d+/"', text(response))) == 21


def test_results_are_paginated(doctor: Client) -> None:
    PatientFactory.create_batch(27, birth_family_name="THOMAS")
    first = text(doctor.get(SEARCH, {"q": "THOMAS"}))
    second = text(doctor.get(SEARCH, {"q": "THOMAS", "page": "2"}))
    assert len(re.findall(r'href="/patients/\d+/"', first)) == 25
    assert len(re.findall(r'href="/patients/\d+/"', second)) == 2
    assert "page=2" in first


# --- Create --------------------------------------------------------------------------------------------


def identity_post(**overrides: str) -> dict[str, str]:
    data = {
        "birth_family_name": "Dupont",
        "birth_given_names": "Claire Marie",
        "first_given_name": "Claire",
        "sex": "F",
        "birth_date": "1979-03-28",
        "birth_place_insee": "51215",
        "used_family_name": "",
        "used_given_name": "",
        "ins": "",
        "ins_oid": "",
    }
    data.update(overrides)
    return data


def test_the_creation_form_says_insi_is_not_connected(doctor: Client) -> None:
    page = text(doctor.get(CREATE))
    assert "INS récupéré via INSi (déclaré)" in page
    assert "Le téléservice INSi n'est pas raccordé au portail" in page
    for name in ("birth_family_name", "birth_given_names", "first_given_name", "sex", "birth_date"):
        assert f'name="{name}"' in page
    assert 'name="birth_place_insee"' in page
    assert 'name="ins_oid"' in page
    assert 'name="evidence"' in page


def test_creating_a_qualified_patient(doctor: Client, clinician: User) -> None:
    response = doctor.post(
        CREATE,
        identity_post(
            ins="2 79 03 51 215 189 89",
            ins_oid=InsOid.NIR_TEST,
            identity_status=IdentityStatus.QUALIFIED,
            evidence=EvidenceKind.PASSPORT,
            insi_checked="on",
        ),
    )
    patient = Patient.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("detail", patient.pk)
    assert patient.identity_status == IdentityStatus.QUALIFIED
    assert patient.ins == TEST_INS
    assert patient.evidence == EvidenceKind.PASSPORT
    assert patient.insi_checked_at is not None
    assert patient.created_by == clinician
    [event] = AuditEvent.objects.filter(action="patient.create")
    assert event.detail == {"identity_status": "QUAL"}
    assert event.patient_ins == TEST_INS


def test_a_wrong_key_is_shown_next_to_the_matricule_and_nothing_is_created(doctor: Client) -> None:
    response = doctor.post(
        CREATE, identity_post(ins="279035121518988", ins_oid=InsOid.NIR_TEST, identity_status="PROV")
    )
    assert response.status_code == 400
    assert "La clé du matricule INS est fausse" in field_errors(response, "ins")
    assert "Le formulaire n'a pas été enregistré" in text(response)
    assert 'value="DUPONT"' in text(response) or 'value="Dupont"' in text(response)
    assert not Patient.objects.exists()


def test_a_test_oid_is_refused_in_production_settings(doctor: Client, settings: Any) -> None:
    settings.ENRS_INS_ALLOW_TEST_OIDS = False
    response = doctor.post(
        CREATE, identity_post(ins=TEST_INS, ins_oid=InsOid.NIR_TEST, identity_status="PROV")
    )
    assert response.status_code == 400
    assert "refusé en production" in field_errors(response, "ins")
    assert not Patient.objects.exists()


def test_a_matricule_needs_its_oid(doctor: Client) -> None:
    response = doctor.post(CREATE, identity_post(ins=TEST_INS, identity_status="PROV"))
    assert response.status_code == 400
    assert "nature du matricule" in field_errors(response, "ins_oid")


def test_qualifying_without_a_document_is_explained_next_to_the_evidence(doctor: Client) -> None:
    response = doctor.post(
        CREATE,
        identity_post(
            ins=TEST_INS, ins_oid=InsOid.NIR_TEST, identity_status="QUAL", evidence="", insi_checked="on"
        ),
    )
    assert response.status_code == 400
    assert "pièce d'identité à haut niveau de confiance" in field_errors(response, "evidence")
    assert not Patient.objects.exists()


def test_qualifying_with_a_missing_trait_lists_it(doctor: Client) -> None:
    response = doctor.post(
        CREATE,
        identity_post(
            ins=TEST_INS,
            ins_oid=InsOid.NIR_TEST,
            birth_place_insee="",
            identity_status="QUAL",
            evidence="CNI",
            insi_checked="on",
        ),
    )
    assert response.status_code == 400
    assert "Traits INS manquants" in field_errors(response, "identity_status")
    assert "lieu de naissance" in field_errors(response, "identity_status")


@pytest.mark.parametrize("status", ["RECUP", "QUAL"])
def test_retrieved_or_qualified_needs_the_insi_declaration(doctor: Client, status: str) -> None:
    response = doctor.post(
        CREATE, identity_post(ins=TEST_INS, ins_oid=InsOid.NIR_TEST, identity_status=status, evidence="CNI")
    )
    assert response.status_code == 400
    assert "téléservice INSi" in field_errors(response, "insi_checked")
    assert not Patient.objects.exists()


def test_a_provisional_identity_needs_insi_again_to_be_qualified(doctor: Client) -> None:
    patient = make_patient(with_ins=True, validated=True)
    response = doctor.post(url("status", patient.pk), {"identity_status": "QUAL", "evidence": "CNI"})
    assert response.status_code == 400
    assert "téléservice INSi" in field_errors(response, "insi_checked")
    ok = doctor.post(
        url("status", patient.pk), {"identity_status": "QUAL", "evidence": "CNI", "insi_checked": "on"}
    )
    assert ok.status_code == 302
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED
    assert patient.insi_checked_at is not None


def test_a_malformed_insee_code_is_refused_by_the_form(doctor: Client) -> None:
    response = doctor.post(CREATE, identity_post(birth_place_insee="5A215", identity_status="PROV"))
    assert response.status_code == 400
    assert "Code INSEE invalide" in field_errors(response, "birth_place_insee")


# --- Detail, banner, audited reads ---------------------------------------------------------------------


def test_the_detail_page_is_an_audited_read(doctor: Client, clinician: User) -> None:
    patient = make_patient(qualified=True, used_family_name="MARTIN-DURAND")
    response = doctor.get(url("detail", patient.pk))
    assert response.status_code == 200
    page = text(response)
    assert patient.ins in page
    assert patient.birth_given_names in page
    assert "28/03/1979" in page
    assert f'href="/dmp/patients/{patient.pk}/" id="lien-dmp"' in page
    [event] = reads(patient)
    assert event.actor == clinician
    assert event.patient_ins == patient.ins
    assert event.detail == {"purpose": "patients.detail"}
    assert event.auth_method == AuthMethod.CPS.value


def test_an_unknown_patient_is_a_404_and_no_read_is_recorded(doctor: Client) -> None:
    assert doctor.get(url("detail", 999_999)).status_code == 404
    assert not AuditEvent.objects.filter(action="patient.read").exists()


def test_a_qualified_identity_says_the_ins_may_be_used(doctor: Client) -> None:
    page = text(doctor.get(url("detail", make_patient(qualified=True).pk)))
    assert "Identité qualifiée : l'INS peut être utilisé" in page
    assert "ne peut pas être utilisé" not in page


def test_a_provisional_identity_explains_why_the_ins_cannot_be_used_and_what_to_do(doctor: Client) -> None:
    patient = make_patient(birth_place_insee="")
    page = text(doctor.get(url("detail", patient.pk)))
    banner = page[page.index('id="bandeau-ins"') :]
    banner = banner[: banner.index("</div>")]
    assert "L'INS de ce patient ne peut pas être utilisé" in banner
    assert "Identité provisoire" in banner
    assert "Aucun matricule INS" in banner
    assert "Traits INS manquants : lieu de naissance (code INSEE)" in banner
    assert "téléservice INSi" in banner
    assert "haut niveau de confiance" in banner
    assert "Identité qualifiée" in banner
    assert "aucun document ne peut être envoyé au DMP" in banner


def test_a_retrieved_identity_only_needs_the_document_check(doctor: Client) -> None:
    page = text(doctor.get(url("detail", make_patient(retrieved=True).pk)))
    banner = page[page.index('id="bandeau-ins"') :]
    banner = banner[: banner.index("</div>")]
    assert "haut niveau de confiance" in banner
    assert "téléservice INSi" not in banner


def test_the_detail_page_shows_choices_and_the_opposition_banner(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    other = make_user(first_name="Paul", last_name="Lebrun")
    make_consent(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION)
    make_consent(patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, professional=other)
    page = text(doctor.get(url("detail", patient.pk)))
    assert 'id="bandeau-opposition"' in page
    assert "Opposition à l'alimentation du DMP" in page
    assert "Paul Lebrun" in page


def test_the_detail_page_query_count_is_fixed(doctor: Client, django_assert_num_queries: Any) -> None:
    patient = make_patient(qualified=True)
    doctor.get(url("detail", patient.pk))
    with django_assert_num_queries(11) as few:
        doctor.get(url("detail", patient.pk))
    for _ in range(4):
        make_consent(patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, professional=make_user())
        IdentityStatusChange.objects.create(patient=patient, status="QUAL", actor=make_user())
    with django_assert_num_queries(len(few.captured_queries)):
        doctor.get(url("detail", patient.pk))


# --- Corrections and status ---------------------------------------------------------------------------


def test_the_edit_form_is_prefilled_and_read_is_audited(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    page = text(doctor.get(url("edit", patient.pk)))
    assert f'value="{patient.ins}"' in page
    assert f'value="{patient.birth_family_name}"' in page
    assert [e.detail for e in reads(patient)] == [{"purpose": "patients.edit"}]


def test_correcting_a_trait_makes_the_identity_provisional_again(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    data = identity_post(
        birth_family_name=patient.birth_family_name,
        birth_date="1979-03-29",
        ins=patient.ins,
        ins_oid=patient.ins_oid,
    )
    response = doctor.post(url("edit", patient.pk), data, follow=True)
    assert response.redirect_chain == [(url("detail", patient.pk), 302)]
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    assert patient.birth_date == dt.date(1979, 3, 29)
    page = text(response)
    assert "l'identité est redevenue provisoire" in page
    assert "L'INS de ce patient ne peut pas être utilisé" in page


def test_a_correction_with_errors_keeps_the_identity(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    data = identity_post(birth_family_name=patient.birth_family_name, first_given_name="Marie")
    response = doctor.post(url("edit", patient.pk), {**data, "ins": patient.ins, "ins_oid": patient.ins_oid})
    assert response.status_code == 400
    assert "premier de la liste" in field_errors(response, "first_given_name")
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED


def test_changing_the_status_to_qualified(doctor: Client, clinician: User) -> None:
    patient = make_patient(retrieved=True)
    response = doctor.post(
        url("status", patient.pk),
        {"identity_status": "QUAL", "evidence": "TITRE_SEJOUR", "reason": "Titre présenté"},
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED
    assert patient.status_set_by == clinician
    [change] = patient.status_changes.all()
    assert (change.previous_status, change.status, change.reason) == ("RECUP", "QUAL", "Titre présenté")
    assert AuditEvent.objects.filter(action="patient.identity_status", actor=clinician).count() == 1


def test_a_refused_status_is_explained_next_to_the_field(doctor: Client) -> None:
    patient = make_patient()
    response = doctor.post(
        url("status", patient.pk), {"identity_status": "RECUP", "evidence": "", "insi_checked": "on"}
    )
    assert response.status_code == 400
    assert "matricule INS" in field_errors(response, "identity_status")
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL


def test_the_history_page_lists_the_status_changes(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    actor = make_user(first_name="Zoé", last_name="Marchand")
    IdentityStatusChange.objects.create(
        patient=patient, previous_status="PROV", status="RECUP", reason="INSi", actor=actor
    )
    IdentityStatusChange.objects.create(
        patient=patient, previous_status="RECUP", status="QUAL", evidence="CNI", actor=actor
    )
    response = doctor.get(url("history", patient.pk))
    page = text(response)
    rows = re.findall(r"<tr>(.*?)</tr>", page)[1:]
    assert "Identité récupérée</td> <td>Identité qualifiée</td>" in rows[0]
    assert "Identité provisoire</td> <td>Identité récupérée</td>" in rows[1]
    assert "Carte nationale d'identité" in page
    assert "Zoé Marchand" in page
    assert [e.detail for e in reads(patient)] == [{"purpose": "patients.history"}]


# --- Choices -------------------------------------------------------------------------------------------


def test_recording_an_opposition_then_withdrawing_it(doctor: Client, clinician: User) -> None:
    patient = make_patient(qualified=True)
    response = doctor.post(
        url("consent_record", patient.pk),
        {"kind": ConsentKind.DMP_FEEDING_OPPOSITION, "note": "par courrier"},
    )
    assert response.status_code == 302
    consent = Consent.objects.get(patient=patient)
    assert (consent.kind, consent.note, consent.recorded_by) == ("dmp_opposition", "par courrier", clinician)
    assert 'id="bandeau-opposition"' in text(doctor.get(url("detail", patient.pk)))

    again = doctor.post(url("consent_record", patient.pk), {"kind": ConsentKind.DMP_FEEDING_OPPOSITION})
    assert again.status_code == 400
    assert "déjà enregistré" in field_errors(again, "kind")

    response = doctor.post(url("consent_withdraw", patient.pk, consent.pk), follow=True)
    consent.refresh_from_db()
    assert consent.withdrawn_by == clinician
    assert "Retrait enregistré" in text(response)
    assert 'id="bandeau-opposition"' not in text(response)
    assert AuditEvent.objects.filter(action="patient.consent.withdraw").count() == 1


def test_withdrawing_twice_says_so(doctor: Client) -> None:
    consent = make_consent()
    doctor.post(url("consent_withdraw", consent.patient.pk, consent.pk))
    response = doctor.post(url("consent_withdraw", consent.patient.pk, consent.pk), follow=True)
    assert "Ce choix a déjà été retiré." in text(response)


def test_a_choice_of_another_patient_cannot_be_withdrawn_through_this_one(doctor: Client) -> None:
    consent = make_consent()
    other = make_patient()
    assert doctor.post(url("consent_withdraw", other.pk, consent.pk)).status_code == 404


def test_an_access_authorisation_defaults_to_the_signed_in_professional(
    doctor: Client, clinician: User
) -> None:
    patient = make_patient(qualified=True)
    doctor.post(url("consent_record", patient.pk), {"kind": ConsentKind.DMP_ACCESS_AUTHORISATION})
    assert Consent.objects.get(patient=patient).professional == clinician


def test_an_access_authorisation_for_a_colleague_by_idnat(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    colleague = make_user(clinician=True, idnat_ps="810001234567")
    doctor.post(
        url("consent_record", patient.pk),
        {"kind": ConsentKind.DMP_ACCESS_AUTHORISATION, "professional": "810001234567"},
    )
    assert Consent.objects.get(patient=patient).professional == colleague


def test_an_unknown_professional_is_explained(doctor: Client) -> None:
    patient = make_patient(qualified=True)
    analyst = make_user(ars_analyst=True)
    response = doctor.post(
        url("consent_record", patient.pk),
        {"kind": ConsentKind.DMP_ACCESS_AUTHORISATION, "professional": analyst.username},
    )
    assert response.status_code == 400
    assert "Aucun professionnel de santé du portail" in field_errors(response, "professional")
    assert not Consent.objects.exists()


def test_the_admin_is_read_only_and_audits_reads(
    client: Client, user_with_role: Callable[[Role], User]
) -> None:
    admin = user_with_role(Role.ADMIN)
    patient = make_patient(qualified=True)
    sign_in(client, admin)
    assert client.get(reverse("admin:patients_patient_add")).status_code == 403
    response = client.get(reverse("admin:patients_patient_change", args=[patient.pk]))
    assert response.status_code == 200
    assert [e.detail for e in reads(patient)] == [{"purpose": "admin"}]
