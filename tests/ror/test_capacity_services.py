"""Capacity rules, history and scope of ``ror.services.capacity_update``."""

from datetime import timedelta
from typing import cast

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from ror.models import Capacity, CapacityUpdate, Offer, OfferLocation, UpdateSource
from ror.services import capacity_update, membership_set
from tests.factories import UserFactory
from tests.ror.factories import OfferLocationFactory, StructureMembershipFactory, offer_with_location

pytestmark = pytest.mark.django_db


def beds(**counts: int) -> list[dict]:
    """Values for beds (J187 01) from status codes: beds(s01=10, s02=3)."""
    return [{"capacity_type": "01", "status": key[1:], "count": count} for key, count in counts.items()]


def counts(offer: Offer) -> dict[tuple[str, str], int]:
    return {(c.capacity_type, c.status): c.count for c in Capacity.objects.filter(offer=offer)}


@pytest.fixture
def staff_member() -> tuple[User, Offer, OfferLocation]:
    offer, location = offer_with_location(capacities={"01": 20, "02": 4, "03": 16})
    user = cast(User, UserFactory())
    StructureMembershipFactory(user=user, structure=offer.structure)
    return user, offer, location


def test_an_update_writes_the_counts_the_history_and_one_audit_event(staff_member) -> None:
    user, offer, location = staff_member
    update = capacity_update(
        offer=offer, location=location, values=beds(s02=6, s03=14), actor=user, source="form"
    )

    assert counts(offer) == {("01", "01"): 20, ("01", "02"): 6, ("01", "03"): 14}
    assert update.before == {
        "01-02": {"count": 4, "gender": "", "crisis": False},
        "01-03": {"count": 16, "gender": "", "crisis": False},
    }
    assert update.after == {
        "01-02": {"count": 6, "gender": "", "crisis": False},
        "01-03": {"count": 14, "gender": "", "crisis": False},
    }
    assert (update.actor, update.token, update.source) == (user, None, UpdateSource.FORM)
    offer.refresh_from_db()
    assert offer.capacity_updated_at == update.created_at
    assert Capacity.objects.get(offer=offer, status="02").updated_by == user
    events = AuditEvent.objects.filter(action="ror.capacity.update")
    assert events.count() == 1  # one event per update, not per field
    assert events.get().detail["offer"] == offer.identifier


def test_a_new_status_is_created_and_reported_as_new_in_the_history(staff_member) -> None:
    user, offer, location = staff_member
    update = capacity_update(offer=offer, location=location, values=beds(s04=2), actor=user, source="form")
    assert counts(offer)[("01", "04")] == 2
    assert update.before == {"01-04": None}


@pytest.mark.parametrize(
    ("values", "key", "fragment"),
    [
        (beds(s02=-1), "count_01_02", "négatif"),
        (beds(s02=21), "count_01_02", "ne peuvent pas dépasser les installés"),
        (
            beds(s01=3),
            "count_01_02",
            "4 lits disponibles pour 3 installés",
        ),  # lowering installed below available
        (beds(s05=25), "count_01_05", "fermés ne peuvent pas dépasser"),
        ([{"capacity_type": "01", "status": "42", "count": 1}], "count_01_42", "Statut de capacité inconnu"),
        ([{"capacity_type": "07", "status": "02", "count": 1}], "count_07_02", "Nature de capacité inconnue"),
        ([{"capacity_type": "01", "status": "07", "count": 1}], "count_01_07", "ne s'échange plus"),
        ([{"capacity_type": "01", "status": "02", "count": "trois"}], "count_01_02", "entier"),
        (
            [{"capacity_type": "01", "status": "02", "count": 1, "gender": "9"}],
            "count_01_02",
            "Genre inconnu",
        ),
        (beds(s02=1) + beds(s02=2), "count_01_02", "deux fois"),
    ],
)
def test_invalid_updates_are_refused_with_a_french_message_and_change_nothing(
    staff_member, values, key, fragment
):
    user, offer, location = staff_member
    before = counts(offer)
    updated_at = Offer.objects.get(pk=offer.pk).capacity_updated_at

    with pytest.raises(ValidationError) as caught:
        capacity_update(offer=offer, location=location, values=values, actor=user, source="form")

    assert any(fragment in message for message in caught.value.message_dict[key])
    assert counts(offer) == before
    assert not CapacityUpdate.objects.exists()
    assert not AuditEvent.objects.filter(action="ror.capacity.update").exists()
    assert Offer.objects.get(pk=offer.pk).capacity_updated_at == updated_at


def test_supplementary_beds_may_be_available_beyond_the_installed_ones(staff_member) -> None:
    user, offer, location = staff_member
    capacity_update(offer=offer, location=location, values=beds(s06=5, s02=24), actor=user, source="form")
    assert counts(offer)[("01", "02")] == 24
    with pytest.raises(ValidationError):
        capacity_update(offer=offer, location=location, values=beds(s06=0), actor=user, source="form")
    assert counts(offer)[("01", "06")] == 5


def test_an_empty_update_is_refused(staff_member) -> None:
    user, offer, location = staff_member
    with pytest.raises(ValidationError, match="aucune capacité"):
        capacity_update(offer=offer, location=location, values=[], actor=user, source="form")


def test_a_structure_cannot_update_another_structures_offer(staff_member) -> None:
    user, _, _ = staff_member
    other_offer, other_location = offer_with_location(capacities={"01": 10})
    with pytest.raises(ValidationError, match="autre structure") as caught:
        capacity_update(
            offer=other_offer, location=other_location, values=beds(s02=1), actor=user, source="form"
        )
    assert caught.value.code == "forbidden"
    assert counts(other_offer) == {("01", "01"): 10}
    assert not CapacityUpdate.objects.exists()


def test_a_member_without_the_update_right_is_refused(staff_member) -> None:
    _, offer, location = staff_member
    reader = UserFactory()
    membership_set(user=reader, structure=offer.structure, can_update_capacity=False, actor=None)
    with pytest.raises(ValidationError, match="autorisé"):
        capacity_update(offer=offer, location=location, values=beds(s02=1), actor=reader, source="form")


def test_gcs_staff_may_update_any_offer(staff_member) -> None:
    _, offer, location = staff_member
    staff = UserFactory(gcs_staff=True)
    capacity_update(offer=offer, location=location, values=beds(s02=0), actor=staff, source="form")
    assert counts(offer)[("01", "02")] == 0


def test_the_location_must_give_the_offer(staff_member) -> None:
    user, offer, _ = staff_member
    elsewhere = cast(OfferLocation, OfferLocationFactory(structure=offer.structure))
    with pytest.raises(ValidationError, match="ne propose pas cette offre"):
        capacity_update(offer=offer, location=elsewhere, values=beds(s02=1), actor=user, source="form")


def test_the_update_date_can_be_given_for_imports(staff_member) -> None:
    user, offer, location = staff_member
    when = timezone.now() - timedelta(hours=3)
    update = capacity_update(
        offer=offer, location=location, values=beds(s02=1), actor=user, source=UpdateSource.IMPORT, at=when
    )
    assert update.created_at == when
    assert Capacity.objects.get(offer=offer, status="02").updated_at == when


def test_history_keeps_every_update_most_recent_first(staff_member) -> None:
    user, offer, location = staff_member
    for available in (1, 2, 3):
        capacity_update(offer=offer, location=location, values=beds(s02=available), actor=user, source="form")
    history = list(CapacityUpdate.objects.filter(offer=offer))
    assert [h.after["01-02"]["count"] for h in history] == [3, 2, 1]
    assert [h.before["01-02"]["count"] for h in history] == [2, 1, 4]
