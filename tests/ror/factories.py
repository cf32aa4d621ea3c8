"""Factories of the ror app: offers with a location and capacities, memberships, API tokens."""

from datetime import datetime
from typing import Any, cast

import factory
from django.utils import timezone

from ror.models import Capacity, Offer, OfferLocation, StructureMembership
from ror.services import token_hash
from tests.annuaire.factories import StructureFactory
from tests.factories import UserFactory


class OfferFactory(factory.django.DjangoModelFactory[Offer]):
    class Meta:
        model = Offer

    identifier = factory.Sequence(lambda n: f"TEST-OFFRE-{n:05d}")
    structure = factory.SubFactory(StructureFactory)
    name = factory.Sequence(lambda n: f"Réanimation polyvalente {n}")
    activity_field_code = "01"
    offer_type_code = "16"
    care_mode_code = "28"
    reception_type_code = "02"
    operational_activity_code = "127"
    age_min = 18


class OfferLocationFactory(factory.django.DjangoModelFactory[OfferLocation]):
    class Meta:
        model = OfferLocation
        skip_postgeneration_save = True

    structure = factory.SubFactory(StructureFactory)
    identifier = factory.Sequence(lambda n: f"TEST-LIEU-{n:05d}")
    name = factory.Sequence(lambda n: f"Bâtiment {n}")
    commune = factory.LazyAttribute(lambda o: o.structure.commune)
    latitude = 48.11
    longitude = -1.68

    @factory.post_generation
    def offers(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            self.offers.add(*extracted)


class CapacityFactory(factory.django.DjangoModelFactory[Capacity]):
    class Meta:
        model = Capacity

    offer = factory.SubFactory(OfferFactory)
    location = factory.SubFactory(OfferLocationFactory, structure=factory.SelfAttribute("..offer.structure"))
    capacity_type = "01"
    status = "01"
    count = 10
    updated_at = factory.LazyFunction(timezone.now)


class StructureMembershipFactory(factory.django.DjangoModelFactory[StructureMembership]):
    class Meta:
        model = StructureMembership

    user = factory.SubFactory(UserFactory)
    structure = factory.SubFactory(StructureFactory)


def offer_with_location(
    *,
    structure: Any = None,
    capacities: dict[str, int] | None = None,
    updated_at: datetime | None = None,
    **kw: Any,
) -> tuple[Offer, OfferLocation]:
    """An offer given at one location, with capacities {status: count} of beds (J187 01)."""
    offer = cast(Offer, OfferFactory(**({"structure": structure} if structure is not None else {}), **kw))
    location = cast(OfferLocation, OfferLocationFactory(structure=offer.structure, offers=[offer]))
    when = updated_at or timezone.now()
    for status, count in (capacities or {}).items():
        CapacityFactory(offer=offer, location=location, status=status, count=count, updated_at=when)
    if capacities:
        Offer.objects.filter(pk=offer.pk).update(capacity_updated_at=when)
        offer.capacity_updated_at = when
    return offer, location


__all__ = [
    "CapacityFactory",
    "OfferFactory",
    "OfferLocationFactory",
    "StructureMembershipFactory",
    "offer_with_location",
    "token_hash",
]
