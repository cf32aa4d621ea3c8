"""Reads of the GCS members: list filters, what each row carries, fixed query counts, history."""

import datetime
from typing import Any, cast

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from annuaire.models import (
    Adherent,
    AdherentService,
    AdherentStatus,
    College,
    FeeStatus,
    MailboxAddress,
    Professional,
    Structure,
)
from annuaire.selectors.members import (
    FEE_MISSING,
    adherent_get,
    adherent_history,
    adherent_list,
    member_professional_find,
)
from annuaire.services.members import adherent_admit, adherent_fee_record, adherent_representative_set
from enrs.accounts.models import User
from tests.annuaire.factories import (
    AdherentFactory,
    CommuneFactory,
    DepartmentFactory,
    ExerciceFactory,
    MailboxAddressFactory,
    ProfessionalFactory,
    StructureFactory,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def new_structure(**kwargs: Any) -> Structure:
    return cast(Structure, StructureFactory(**kwargs))


def new_professional(**kwargs: Any) -> Professional:
    return cast(Professional, ProfessionalFactory(**kwargs))


def new_mailbox(**kwargs: Any) -> MailboxAddress:
    return cast(MailboxAddress, MailboxAddressFactory(**kwargs))


def adherent(**kwargs: Any) -> Adherent:
    return cast(Adherent, AdherentFactory(**kwargs))


def in_department(code: str, **structure: Any) -> Any:
    department = DepartmentFactory(code=code, name=f"Département {code}")
    commune = CommuneFactory(insee_code=f"{code}001", department=department)
    return new_structure(commune=commune, **structure)


def pks(queryset: Any) -> list[int]:
    return [a.pk for a in queryset]


@pytest.fixture
def staff() -> User:
    return cast(User, UserFactory(gcs_staff=True))


def test_members_are_listed_by_name_whatever_their_kind() -> None:
    zeta = adherent(structure=new_structure(legal_entity=True, name="Zeta santé"))
    alpha = adherent(structure=new_structure(legal_entity=True, name="alpha HAD"))
    physician = adherent(
        liberal_physician=True, professional=new_professional(physician=True, last_name="Martin")
    )
    assert pks(adherent_list()) == [alpha.pk, physician.pk, zeta.pk]


def test_filters_on_college_status_and_service() -> None:
    public = adherent(college=College.PUBLIC_ESTABLISHMENTS)
    candidate = adherent(
        college=College.PUBLIC_ESTABLISHMENTS, status=AdherentStatus.CANDIDATE, membership_start=None
    )
    private = adherent(college=College.PRIVATE_ESTABLISHMENTS)
    AdherentService.objects.create(adherent=private, service="dmp")
    AdherentService.objects.create(adherent=public, service="messagerie")

    assert set(pks(adherent_list(college=1))) == {public.pk, candidate.pk}
    assert pks(adherent_list(college=1, status=AdherentStatus.CANDIDATE)) == [candidate.pk]
    assert pks(adherent_list(service="dmp")) == [private.pk]
    assert pks(adherent_list(college=2, service="messagerie")) == []


def test_department_of_a_structure_or_of_where_a_professional_works() -> None:
    breton = adherent(structure=in_department("29"))
    normand = adherent(structure=in_department("14"))
    physician = new_professional(physician=True)
    ExerciceFactory(professional=physician, structure=in_department("29"))
    liberal = adherent(liberal_physician=True, professional=physician)
    nowhere = adherent(liberal_physician=True)

    assert set(pks(adherent_list(department="29"))) == {breton.pk, liberal.pk}
    assert pks(adherent_list(department="14")) == [normand.pk]
    rows: list[Any] = list(adherent_list())
    codes = {a.pk: a.department_code for a in rows}
    assert codes[breton.pk] == "29"
    assert codes[liberal.pk] == "29"
    assert codes[nowhere.pk] is None


def test_fee_status_of_a_year_and_members_without_a_fee(staff: User) -> None:
    year = 2024
    paid = adherent(membership_start=datetime.date(2020, 1, 1))
    late = adherent(membership_start=datetime.date(2020, 1, 1))
    none = adherent(membership_start=datetime.date(2020, 1, 1))
    adherent_fee_record(adherent=paid, actor=staff, year=year, amount=100, status=FeeStatus.WAIVED)
    adherent_fee_record(adherent=late, actor=staff, year=year, amount=100, status=FeeStatus.LATE)
    adherent_fee_record(adherent=none, actor=staff, year=year - 1, amount=100)

    assert pks(adherent_list(fee_status=FeeStatus.LATE, year=year)) == [late.pk]
    assert pks(adherent_list(fee_status=FeeStatus.WAIVED, year=year)) == [paid.pk]
    assert pks(adherent_list(fee_status=FEE_MISSING, year=year)) == [none.pk]
    assert pks(adherent_list(fee_status=FeeStatus.DUE, year=year - 1)) == [none.pk]
    rows: dict[int, Any] = {a.pk: a for a in adherent_list(year=year)}
    assert [f.status for f in rows[late.pk].fees_of_year] == [FeeStatus.LATE]
    assert rows[none.pk].fees_of_year == []


def test_the_default_fee_year_is_the_current_one(staff: User) -> None:
    current = timezone.localdate().year
    member = adherent(membership_start=datetime.date(2020, 1, 1))
    adherent_fee_record(adherent=member, actor=staff, year=current, amount=50)
    row: Any = adherent_list().get()
    assert [f.year for f in row.fees_of_year] == [current]


def test_search_by_name_or_exact_identifier() -> None:
    structure = new_structure(name="Centre hospitalier de Fougères")
    hospital = adherent(structure=structure)
    finess = structure.finess_et or ""
    physician = new_professional(physician=True, last_name="Le Goff", first_name="Yann")
    liberal = adherent(liberal_physician=True, professional=physician)
    adherent(structure=new_structure(legal_entity=True, name="Clinique"))

    assert pks(adherent_list(q="fougères")) == [hospital.pk]
    assert pks(adherent_list(q=f" {finess[:3]} {finess[3:]} ")) == [hospital.pk]
    assert pks(adherent_list(q=structure.siret)) == [hospital.pk]
    assert pks(adherent_list(q="le goff")) == [liberal.pk]
    assert pks(adherent_list(q=physician.idnat_ps)) == [liberal.pk]
    assert pks(adherent_list(q=physician.rpps)) == [liberal.pk]
    assert pks(adherent_list(q=finess[:5])) == []  # identifiers match exactly


def many_members(count: int, staff: User) -> None:
    for index in range(count):
        member = adherent(membership_start=datetime.date(2020, 1, 1))
        AdherentService.objects.create(adherent=member, service="annuaire")
        adherent_fee_record(adherent=member, actor=staff, year=2024, amount=100)
        adherent_representative_set(
            adherent=member,
            actor=staff,
            body="ag",
            role="holder",
            last_name=f"Nom{index}",
            first_name="Prénom",
        )
        assert member.structure is not None
        new_mailbox(organizational=True, structure=member.structure)
        physician = new_professional(physician=True)
        ExerciceFactory(professional=physician)
        adherent(liberal_physician=True, professional=physician)


@pytest.mark.parametrize("count", [1, 6])
def test_the_list_costs_three_queries_whatever_its_length(
    django_assert_num_queries: DjangoAssertNumQueries, staff: User, count: int
) -> None:
    many_members(count, staff)
    # Rows (with structure, commune, department, professional joined), services, fees of the year.
    with django_assert_num_queries(3):
        rows: list[Any] = list(adherent_list(year=2024))
        for row in rows:
            _ = [s.get_service_display() for s in row.services.all()]
            _ = row.fees_of_year
            _ = row.structure.commune.department.code if row.structure else row.professional.last_name
            _ = row.department_code
    assert len(rows) == 2 * count


@pytest.mark.parametrize("count", [1, 6])
def test_the_export_rows_cost_five_queries_whatever_their_number(
    django_assert_num_queries: DjangoAssertNumQueries, staff: User, count: int
) -> None:
    many_members(count, staff)
    # + representatives and the structures' organisational addresses.
    with django_assert_num_queries(5):
        rows: list[Any] = list(adherent_list(year=2024, with_contacts=True))
        for row in rows:
            _ = list(row.representatives.all())
            _ = row.structure.org_mailboxes if row.structure else None
    assert len(rows) == 2 * count


def test_one_member_page_reads_a_fixed_number_of_queries(
    django_assert_num_queries: DjangoAssertNumQueries, staff: User
) -> None:
    member = adherent(membership_start=datetime.date(2020, 1, 1))
    assert member.structure is not None
    new_mailbox(organizational=True, structure=member.structure)
    new_mailbox(organizational=False, professional=new_professional())
    adherent_fee_record(adherent=member, actor=staff, year=2023, amount=100)
    adherent_fee_record(adherent=member, actor=staff, year=2024, amount=100)
    adherent_representative_set(
        adherent=member, actor=staff, body="ag", role="holder", last_name="A", first_name="B"
    )
    # Adherent (+ joins), services, fees, representatives, organisational addresses.
    with django_assert_num_queries(5):
        loaded: Any = adherent_get(pk=member.pk)
        assert [f.year for f in loaded.fees.all()] == [2024, 2023]
        assert [r.last_name for r in loaded.representatives.all()] == ["A"]
        assert loaded.structure is not None
        assert len(loaded.structure.org_mailboxes) == 1
        assert loaded.structure.commune.department.code == "35"
    with pytest.raises(Adherent.DoesNotExist):
        adherent_get(pk=member.pk + 1000)


def test_history_lists_the_events_of_this_member_most_recent_first(staff: User) -> None:
    member = adherent(
        status=AdherentStatus.CANDIDATE, membership_start=None, convention_signed_on=datetime.date(2024, 1, 1)
    )
    other = adherent(
        status=AdherentStatus.CANDIDATE, membership_start=None, convention_signed_on=datetime.date(2024, 1, 1)
    )
    adherent_admit(adherent=member, actor=staff)
    adherent_admit(adherent=other, actor=staff)
    adherent_fee_record(adherent=member, actor=staff, year=timezone.localdate().year, amount=10)
    assert [e.action for e in adherent_history(adherent=member)] == [
        "annuaire.adherent.fee",
        "annuaire.adherent.admit",
    ]
    assert adherent_history(adherent=member)[0].actor == staff


def test_professionals_are_found_by_any_of_their_identifiers() -> None:
    nurse = new_professional()
    adeli = new_professional(with_adeli=True)
    assert member_professional_find(identifier=nurse.rpps) == nurse
    assert member_professional_find(identifier=f" {nurse.idnat_ps} ") == nurse
    assert member_professional_find(identifier=adeli.adeli) == adeli
    assert member_professional_find(identifier="00000000000") is None
    assert member_professional_find(identifier="Dupont") is None
