"""Invariants of the directory tables: field validation (full_clean) and database constraints."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annuaire.models import (
    Adherent,
    AdherentStatus,
    College,
    IdentifierType,
    MailboxAddress,
    MailboxKind,
    Professional,
    StructureKind,
)
from tests.annuaire.factories import (
    AdherentFactory,
    MailboxAddressFactory,
    ProfessionalFactory,
    StructureFactory,
)

pytestmark = pytest.mark.django_db


def test_structure_with_a_wrong_finess_key_fails_validation_in_french() -> None:
    structure = StructureFactory.build(finess_et="750712185", commune=None)
    with pytest.raises(ValidationError) as error:
        structure.full_clean()
    assert "finess_et" in error.value.message_dict
    assert "clé de contrôle" in error.value.message_dict["finess_et"][0]


def test_structure_with_valid_identifiers_passes_validation() -> None:
    structure = StructureFactory.create()
    structure.full_clean()
    assert structure.siret.startswith(structure.siren)


def test_structure_siret_must_extend_its_siren() -> None:
    other = StructureFactory.build(commune=None)
    structure = StructureFactory.build(commune=None, siret=other.siret)
    with pytest.raises(ValidationError) as error:
        structure.full_clean()
    assert "siret" in error.value.message_dict


def test_legal_entity_cannot_have_a_geographic_finess() -> None:
    legal_entity = StructureFactory.create(legal_entity=True)
    assert legal_entity.kind == StructureKind.LEGAL_ENTITY
    with transaction.atomic(), pytest.raises(IntegrityError):
        StructureFactory.create(legal_entity=True, finess_et="750712184")


def test_site_links_to_its_legal_entity_and_finess_et_is_unique() -> None:
    legal_entity = StructureFactory.create(legal_entity=True)
    site = StructureFactory.create(legal_entity_id=legal_entity.pk, finess_ej=legal_entity.finess_ej)
    assert list(legal_entity.sites.all()) == [site]
    with transaction.atomic(), pytest.raises(IntegrityError):
        StructureFactory.create(finess_et=site.finess_et)
    # Many structures without FINESS may coexist.
    StructureFactory.create(without_finess=True)
    StructureFactory.create(without_finess=True)


def test_a_failing_rpps_key_is_recorded_not_rejected() -> None:
    professional = ProfessionalFactory.build(rpps="10003461033", rpps_key_valid=True)
    professional.full_clean()
    assert professional.rpps_key_valid is False
    assert professional.idnat_ps == "810003461033"
    professional.save()

    valid = ProfessionalFactory.build(rpps="10000001916", rpps_key_valid=False)
    valid.full_clean()
    assert valid.rpps_key_valid is True


def test_idnat_ps_must_be_the_prefixed_identifier() -> None:
    professional = ProfessionalFactory.build(rpps="10000001916", idnat_ps="810003461033")
    with pytest.raises(ValidationError) as error:
        professional.full_clean()
    assert error.value.message_dict["idnat_ps"] == ["L'identifiant national doit être « 810000001916 »."]


def test_adeli_professional_gets_a_0_prefixed_idnat() -> None:
    professional = ProfessionalFactory.create(with_adeli=True)
    professional.full_clean()
    assert professional.identifier_type == IdentifierType.ADELI
    assert professional.idnat_ps == "0" + professional.adeli


def test_database_refuses_an_idnat_ps_that_does_not_match_the_rpps() -> None:
    with transaction.atomic(), pytest.raises(IntegrityError):
        ProfessionalFactory.create(rpps="10000001916", idnat_ps="810003461033")
    with transaction.atomic(), pytest.raises(IntegrityError):
        ProfessionalFactory.create(identifier_type=IdentifierType.RPPS, rpps="", idnat_ps="8")
    assert not Professional.objects.exists()


def test_adherent_is_exactly_one_of_structure_or_professional() -> None:
    structure = StructureFactory.create(legal_entity=True)
    professional = ProfessionalFactory.create(physician=True)
    with transaction.atomic(), pytest.raises(IntegrityError):
        Adherent.objects.create(
            structure=structure, professional=professional, college=College.LIBERAL_PHYSICIANS
        )
    with transaction.atomic(), pytest.raises(IntegrityError):
        Adherent.objects.create(college=College.LIBERAL_PHYSICIANS)
    assert AdherentFactory.create(liberal_physician=True).professional is not None


def test_one_ongoing_membership_per_structure_but_history_is_kept() -> None:
    adherent = AdherentFactory.create(status=AdherentStatus.RESIGNED, membership_end=datetime.date.today())
    assert adherent.structure is not None
    AdherentFactory.create(structure=adherent.structure, status=AdherentStatus.MEMBER)
    with transaction.atomic(), pytest.raises(IntegrityError):
        AdherentFactory.create(structure=adherent.structure, status=AdherentStatus.CANDIDATE)
    assert adherent.structure.adhesions.count() == 2


def test_membership_cannot_end_before_it_starts() -> None:
    with transaction.atomic(), pytest.raises(IntegrityError):
        AdherentFactory.create(
            membership_start=datetime.date(2024, 1, 1), membership_end=datetime.date(2023, 1, 1)
        )


def test_college_labels_are_the_eight_french_colleges() -> None:
    assert [label for _, label in College.choices] == [
        "Établissements publics et ESPIC",
        "Établissements privés",
        "HAD",
        "Médecins libéraux",
        "Autres professionnels libéraux",
        "Services et réseaux de santé",
        "Établissements médico-sociaux",
        "Associations d'usagers agréées",
    ]
    with transaction.atomic(), pytest.raises(IntegrityError):
        AdherentFactory.create(college=9)


def test_mailbox_owner_must_match_its_kind() -> None:
    personal = MailboxAddressFactory.create()
    organizational = MailboxAddressFactory.create(organizational=True)
    assert personal.professional is not None
    assert organizational.structure is not None
    with transaction.atomic(), pytest.raises(IntegrityError):
        MailboxAddress.objects.create(
            address="x@y.mssante.fr", kind=MailboxKind.PERSONAL, structure=organizational.structure
        )
    with transaction.atomic(), pytest.raises(IntegrityError):
        MailboxAddress.objects.create(
            address=personal.address, kind=MailboxKind.PERSONAL, professional=personal.professional
        )
