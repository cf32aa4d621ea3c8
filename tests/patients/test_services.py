"""Writes on patient identities (enrs.patients.services): RNIV status rules PROV / RECUP / VALI / QUAL,
evidence and traits required, INS key and OID checks (test OIDs refused in production settings), a
corrected trait falls back to a provisional identity, the patient's choices, and the audit trail."""

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from enrs.patients import ins, selectors, services
from enrs.patients.models import (
    Consent,
    ConsentKind,
    EvidenceKind,
    IdentityStatus,
    IdentityStatusChange,
    InsOid,
    Patient,
)
from enrs.patients.services import IdentityInput
from tests.patients.factories import make_patient, make_user, matricule

pytestmark = pytest.mark.django_db

TEST_INS = "279035121518989"  # ANS test INS (key 89)


@pytest.fixture
def actor() -> User:
    return make_user()


def identity(**overrides: Any) -> IdentityInput:
    values: dict[str, Any] = {
        "birth_family_name": "Dupont",
        "birth_given_names": "Claire  marie",
        "first_given_name": "claire",
        "sex": "F",
        "birth_date": dt.date(1979, 3, 28),
        "birth_place_insee": "51215",
    }
    values.update(overrides)
    return IdentityInput(**values)


def with_ins(**overrides: Any) -> IdentityInput:
    return identity(ins="2 79 03 51 215 189 89", ins_oid=InsOid.NIR_TEST, **overrides)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def error_keys(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return set(exc.value.message_dict)


# --- Creation and INS checks ---------------------------------------------------------------------------


def test_a_new_identity_is_provisional_normalised_and_audited(actor: User) -> None:
    patient = services.patient_create(data=with_ins(used_given_name=" Cloclo "), actor=actor)

    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    assert patient.birth_family_name == "DUPONT"
    assert patient.birth_given_names == "CLAIRE MARIE"
    assert patient.first_given_name == "CLAIRE"
    assert patient.ins == TEST_INS
    assert patient.ins_oid == InsOid.NIR_TEST
    assert patient.used_given_name == "Cloclo"
    assert patient.created_by == actor
    assert not patient.may_carry_ins
    assert not IdentityStatusChange.objects.filter(patient=patient).exists()
    [event] = events("patient.create")
    assert event.actor == actor
    assert event.target_type == "patients.patient"
    assert event.target_id == str(patient.pk)
    assert event.patient_ins == TEST_INS
    assert event.detail == {"identity_status": "PROV"}


def test_the_first_given_name_must_head_the_list(actor: User) -> None:
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=identity(first_given_name="Marie"), actor=actor)
    assert error_keys(exc) == {"first_given_name"}
    assert not Patient.objects.exists()


def test_a_birth_date_in_the_future_is_refused(actor: User) -> None:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=identity(birth_date=tomorrow), actor=actor)
    assert error_keys(exc) == {"birth_date"}


@pytest.mark.parametrize(
    ("value", "oid", "message"),
    [
        ("279035121518988", InsOid.NIR_TEST, "clé du matricule INS est fausse"),
        ("2790351215189", InsOid.NIR_TEST, "15 caractères"),
        ("27903512151898A", InsOid.NIR_TEST, "15 caractères"),
        (TEST_INS, "1.2.250.1.213.1.4.99", "OID d'INS inconnu"),
        (TEST_INS, "", "OID d'INS inconnu"),
    ],
)
def test_a_wrong_matricule_or_oid_is_refused_and_nothing_is_written(
    actor: User, value: str, oid: str, message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=identity(ins=value, ins_oid=oid), actor=actor)
    assert error_keys(exc) == {"ins"}
    assert message in exc.value.message_dict["ins"][0]
    assert not Patient.objects.exists()
    assert not events("patient.create")


@pytest.mark.parametrize("oid", [InsOid.NIR_TEST, InsOid.NIR_DEMO])
def test_test_and_demo_oids_are_refused_when_the_settings_forbid_them(
    actor: User, settings: Any, oid: str
) -> None:
    settings.ENRS_INS_ALLOW_TEST_OIDS = False
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=identity(ins=TEST_INS, ins_oid=oid), actor=actor)
    assert "refusé en production" in exc.value.message_dict["ins"][0]
    assert not Patient.objects.exists()


def test_a_real_nir_oid_is_accepted_when_test_oids_are_forbidden(actor: User, settings: Any) -> None:
    settings.ENRS_INS_ALLOW_TEST_OIDS = False
    patient = services.patient_create(data=identity(ins=TEST_INS, ins_oid=InsOid.NIR), actor=actor)
    assert (patient.ins, patient.ins_oid) == (TEST_INS, InsOid.NIR)


def test_test_oids_are_accepted_when_the_settings_allow_them(actor: User, settings: Any) -> None:
    settings.ENRS_INS_ALLOW_TEST_OIDS = True
    patient = services.patient_create(data=identity(ins=TEST_INS, ins_oid=InsOid.NIR_DEMO), actor=actor)
    assert patient.ins_oid == InsOid.NIR_DEMO


def test_a_corsican_matricule_is_accepted(actor: User) -> None:
    body = "180052A123456"
    patient = services.patient_create(
        data=identity(ins=(body + ins.mod97_key(body)).lower(), ins_oid=InsOid.NIR_TEST), actor=actor
    )
    assert patient.ins == body + ins.mod97_key(body)


def test_a_matricule_already_known_is_refused(actor: User) -> None:
    services.patient_create(data=with_ins(), actor=actor)
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=with_ins(birth_family_name="Autre"), actor=actor)
    assert "existe déjà" in exc.value.message_dict["ins"][0]
    assert Patient.objects.count() == 1


# --- Status rules --------------------------------------------------------------------------------------


def test_a_retrieved_identity_needs_a_matricule(actor: User) -> None:
    with pytest.raises(ValidationError) as exc:
        services.patient_create(data=identity(), actor=actor, status=IdentityStatus.RETRIEVED)
    assert error_keys(exc) == {"identity_status"}
    assert not Patient.objects.exists()  # the patient row rolled back with the refused status


def test_created_as_retrieved_with_the_insi_declaration(actor: User) -> None:
    patient = services.patient_create(
        data=with_ins(), actor=actor, status=IdentityStatus.RETRIEVED, insi_checked=True
    )
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.RETRIEVED
    assert patient.insi_checked_at is not None
    assert patient.status_set_by == actor
    [change] = patient.status_changes.all()
    assert (change.previous_status, change.status, change.actor) == ("PROV", "RECUP", actor)
    assert events("patient.create")[0].detail == {"identity_status": "RECUP"}


@pytest.mark.parametrize("status", [IdentityStatus.VALIDATED, IdentityStatus.QUALIFIED])
@pytest.mark.parametrize("evidence", ["", "PERMIS", EvidenceKind.NONE])
def test_validated_and_qualified_need_a_high_trust_document(actor: User, status: str, evidence: str) -> None:
    patient = make_patient(with_ins=True)
    with pytest.raises(ValidationError) as exc:
        services.patient_set_status(patient=patient, status=status, evidence=evidence, actor=actor)
    assert error_keys(exc) == {"evidence"}
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    assert not patient.status_changes.exists()
    assert not events("patient.identity_status")


def test_validated_without_a_matricule_is_allowed(actor: User) -> None:
    patient = make_patient()
    services.patient_set_status(
        patient=patient, status=IdentityStatus.VALIDATED, evidence=EvidenceKind.PASSPORT, actor=actor
    )
    patient.refresh_from_db()
    assert (patient.identity_status, patient.evidence) == ("VALI", "PASSEPORT")
    assert not patient.may_carry_ins


def test_qualified_needs_a_matricule(actor: User) -> None:
    patient = make_patient()
    with pytest.raises(ValidationError) as exc:
        services.patient_set_status(
            patient=patient, status=IdentityStatus.QUALIFIED, evidence=EvidenceKind.ID_CARD, actor=actor
        )
    assert error_keys(exc) == {"identity_status"}


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"birth_place_insee": ""}, "lieu de naissance (code INSEE)"),
        ({"birth_place_insee": "5121"}, "lieu de naissance (code INSEE)"),
        ({"sex": "U"}, "sexe"),
    ],
)
def test_qualified_needs_the_five_traits(actor: User, overrides: dict[str, str], missing: str) -> None:
    patient = make_patient(with_ins=True, **overrides)
    with pytest.raises(ValidationError) as exc:
        services.patient_set_status(
            patient=patient, status=IdentityStatus.QUALIFIED, evidence=EvidenceKind.ID_CARD, actor=actor
        )
    [message] = exc.value.message_dict["identity_status"]
    assert "Traits INS manquants" in message
    assert missing in message
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL


def test_qualifying_records_who_how_and_audits(actor: User) -> None:
    patient = make_patient(retrieved=True)
    services.patient_set_status(
        patient=patient,
        status=IdentityStatus.QUALIFIED,
        evidence=EvidenceKind.ID_CARD,
        insi_checked=True,
        reason="CNI présentée à l'admission",
        actor=actor,
    )
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED
    assert patient.may_carry_ins
    assert patient.evidence == EvidenceKind.ID_CARD
    assert patient.status_set_by == actor
    assert patient.status_set_at is not None
    [change] = patient.status_changes.all()
    assert (change.previous_status, change.status, change.evidence) == ("RECUP", "QUAL", "CNI")
    assert change.reason == "CNI présentée à l'admission"
    [event] = events("patient.identity_status")
    assert event.actor == actor
    assert event.patient_ins == patient.ins
    assert event.detail == {"from": "RECUP", "to": "QUAL", "evidence": "CNI"}


def test_going_back_to_provisional_drops_the_evidence(actor: User) -> None:
    patient = make_patient(qualified=True)
    services.patient_set_status(
        patient=patient, status=IdentityStatus.PROVISIONAL, evidence=EvidenceKind.ID_CARD, actor=actor
    )
    patient.refresh_from_db()
    assert (patient.identity_status, patient.evidence) == ("PROV", "")
    assert not patient.may_carry_ins


def test_an_unknown_status_is_refused(actor: User) -> None:
    patient = make_patient(with_ins=True)
    with pytest.raises(ValidationError) as exc:
        services.patient_set_status(patient=patient, status="SUPER", evidence="CNI", actor=actor)
    assert error_keys(exc) == {"identity_status"}


# --- Corrections ---------------------------------------------------------------------------------------


def _as_input(patient: Patient, **overrides: Any) -> IdentityInput:
    values: dict[str, Any] = {
        "birth_family_name": patient.birth_family_name,
        "birth_given_names": patient.birth_given_names,
        "first_given_name": patient.first_given_name,
        "sex": patient.sex,
        "birth_date": patient.birth_date,
        "birth_place_insee": patient.birth_place_insee,
        "used_family_name": patient.used_family_name,
        "used_given_name": patient.used_given_name,
        "ins": patient.ins,
        "ins_oid": patient.ins_oid,
    }
    values.update(overrides)
    return IdentityInput(**values)


@pytest.mark.parametrize(
    "overrides",
    [
        {"birth_date": dt.date(1979, 3, 29)},
        {"birth_place_insee": "51454"},
        {"birth_given_names": "CLAIRE ANNE"},
        {"ins": matricule(900)},
    ],
)
def test_correcting_a_trait_or_the_matricule_falls_back_to_provisional(
    actor: User, overrides: dict[str, Any]
) -> None:
    patient = make_patient(qualified=True)
    services.patient_update_identity(patient=patient, data=_as_input(patient, **overrides), actor=actor)
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    assert patient.evidence == ""
    assert not patient.may_carry_ins
    [change] = patient.status_changes.all()
    assert (change.previous_status, change.status, change.actor) == ("QUAL", "PROV", actor)
    assert "vérifier de nouveau" in change.reason
    [event] = events("patient.update")
    assert event.detail["identity_status"] == "PROV"
    assert set(event.detail["fields"]) == set(overrides)


def test_changing_the_used_name_keeps_a_qualified_identity(actor: User) -> None:
    patient = make_patient(qualified=True)
    services.patient_update_identity(
        patient=patient, data=_as_input(patient, used_family_name="durand"), actor=actor
    )
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED
    assert patient.used_family_name == "DURAND"
    assert not patient.status_changes.exists()
    assert events("patient.update")[0].detail == {"fields": ["used_family_name"], "identity_status": "QUAL"}


def test_a_correction_that_changes_nothing_writes_nothing(actor: User) -> None:
    patient = make_patient(qualified=True)
    services.patient_update_identity(patient=patient, data=_as_input(patient), actor=actor)
    assert not events("patient.update")


def test_a_correction_cannot_take_another_patients_matricule(actor: User) -> None:
    other = make_patient(with_ins=True)
    patient = make_patient(qualified=True)
    with pytest.raises(ValidationError) as exc:
        services.patient_update_identity(patient=patient, data=_as_input(patient, ins=other.ins), actor=actor)
    assert error_keys(exc) == {"ins"}
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED


def test_a_correction_with_a_wrong_key_is_refused(actor: User) -> None:
    patient = make_patient(qualified=True)
    wrong = patient.ins[:13] + f"{(int(patient.ins[13:]) + 1) % 100:02d}"
    with pytest.raises(ValidationError) as exc:
        services.patient_update_identity(patient=patient, data=_as_input(patient, ins=wrong), actor=actor)
    assert "clé" in exc.value.message_dict["ins"][0]
    patient.refresh_from_db()
    assert patient.identity_status == IdentityStatus.QUALIFIED


# --- Patient choices -----------------------------------------------------------------------------------


def test_opposition_to_feeding_is_recorded_once_withdrawn_and_recorded_again(actor: User) -> None:
    patient = make_patient(qualified=True)
    assert not selectors.dmp_feeding_opposed(patient)

    consent = services.consent_record(
        patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, note="exprimée oralement", actor=actor
    )
    assert selectors.dmp_feeding_opposed(patient)
    assert consent.professional is None
    assert consent.recorded_by == actor
    assert consent.is_active
    with pytest.raises(ValidationError) as exc:
        services.consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=actor)
    assert "déjà enregistré" in exc.value.message_dict["kind"][0]

    withdrawn = services.consent_withdraw(consent=consent, actor=actor)
    assert withdrawn.withdrawn_by == actor
    assert not withdrawn.is_active
    assert not selectors.dmp_feeding_opposed(patient)
    with pytest.raises(ValidationError, match="déjà été retiré"):
        services.consent_withdraw(consent=consent, actor=actor)

    services.consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=actor)
    assert Consent.objects.filter(patient=patient).count() == 2
    records = events("patient.consent.record")
    assert [e.detail for e in records] == [{"kind": "dmp_opposition", "professional": None}] * 2
    assert all(e.patient_ins == patient.ins for e in records)
    [withdrawal] = events("patient.consent.withdraw")
    assert withdrawal.detail == {"kind": "dmp_opposition"}
    assert withdrawal.target_id == str(consent.pk)


def test_an_opposition_never_names_a_professional(actor: User) -> None:
    patient = make_patient()
    consent = services.consent_record(
        patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, professional=actor, actor=actor
    )
    assert consent.professional is None


def test_access_authorisations_are_per_professional(actor: User) -> None:
    patient = make_patient(qualified=True)
    other = make_user()
    with pytest.raises(ValidationError) as exc:
        services.consent_record(patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, actor=actor)
    assert error_keys(exc) == {"professional"}

    services.consent_record(
        patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, professional=actor, actor=actor
    )
    assert selectors.dmp_access_authorised(patient, actor)
    assert not selectors.dmp_access_authorised(patient, other)
    services.consent_record(
        patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, professional=other, actor=actor
    )
    assert selectors.dmp_access_authorised(patient, other)
    with pytest.raises(ValidationError):
        services.consent_record(
            patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, professional=other, actor=actor
        )
    assert [e.detail["professional"] for e in events("patient.consent.record")] == [actor.pk, other.pk]


def test_an_unknown_choice_is_refused(actor: User) -> None:
    with pytest.raises(ValidationError) as exc:
        services.consent_record(patient=make_patient(), kind="tout", actor=actor)
    assert error_keys(exc) == {"kind"}
    assert not Consent.objects.exists()
