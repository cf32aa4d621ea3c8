"""``seed_ror_demo``: deterministic offers, locations and capacities for the directory's health sites."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ror.models import Capacity, Offer, OfferLocation
from ror.standards import valuesets as vs
from tests.annuaire.factories import StructureFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sites():
    return [StructureFactory(category_code=code) for code in ("355", "292", "500")]


def snapshot() -> list[tuple]:
    return sorted(
        Offer.objects.values_list("identifier", "name", "activity_field_code", "operational_activity_code")
    )


def test_the_demo_is_deterministic_and_follows_the_rules(sites) -> None:
    call_command("seed_ror_demo", stdout=StringIO())
    first = snapshot()
    assert 9 <= len(first) <= 30
    sets = vs.valuesets()
    for offer in Offer.objects.all():
        assert offer.activity_field_code in sets.activity_fields
        assert offer.care_mode_code in sets.care_modes
        assert offer.locations.count() == 1
    for offer_id in Offer.objects.values_list("pk", flat=True):
        counts = {c.status: c.count for c in Capacity.objects.filter(offer_id=offer_id)}
        assert counts["02"] <= counts["01"]
        assert counts["02"] + counts["03"] + counts["04"] + counts["05"] == counts["01"]
    call_command("seed_ror_demo", "--reset", stdout=StringIO())
    assert snapshot() == [(i, n, f, a) for i, n, f, a in first]


def test_offers_option_and_refusal_to_load_twice(sites) -> None:
    call_command("seed_ror_demo", "--offers", "40", stdout=StringIO())
    assert Offer.objects.count() == 40
    assert OfferLocation.objects.exclude(latitude=None).count() == OfferLocation.objects.count()
    with pytest.raises(CommandError, match="--reset"):
        call_command("seed_ror_demo", stdout=StringIO())
    out = StringIO()
    call_command("seed_ror_demo", "--if-empty", stdout=out)
    assert "rien à charger" in out.getvalue()
