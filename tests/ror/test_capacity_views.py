"""Pages of establishments' staff: list of their offers, update form, history."""

from datetime import timedelta
from typing import cast

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.models import User
from ror.models import Capacity, CapacityUpdate
from ror.services import capacity_update
from tests.factories import UserFactory
from tests.ror.factories import StructureMembershipFactory, offer_with_location

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client: Client):
    offer, location = offer_with_location(
        capacities={"01": 20, "02": 4, "03": 16},
        updated_at=timezone.now() - timedelta(hours=30),
        name="Réa A",
    )
    user = cast(User, UserFactory())
    StructureMembershipFactory(user=user, structure=offer.structure)
    client.force_login(user)
    return user, offer, location


def edit_url(offer, location) -> str:
    return reverse("ror:capacity_edit", args=[offer.pk, location.pk])


def test_the_list_shows_only_the_members_offers_and_flags_stale_ones(client: Client, member) -> None:
    _, offer, location = member
    _other, _ = offer_with_location(capacities={"01": 5}, name="Offre d'ailleurs")
    response = client.get(reverse("ror:capacity_list"))
    assert response.status_code == 200
    lines = response.context["lines"]
    assert [
        (line["offer"], line["location"], line["available"], line["installed"], line["stale"])
        for line in lines
    ] == [(offer, location, 4, 20, True)]
    content = response.content.decode()
    assert "À mettre à jour" in content
    assert "Offre d'ailleurs" not in content


def test_the_list_does_not_query_per_offer(client: Client, member, django_assert_max_num_queries) -> None:
    _user, offer, _ = member
    for _ in range(5):
        offer_with_location(structure=offer.structure, capacities={"01": 5, "02": 1})
    with django_assert_max_num_queries(12):
        response = client.get(reverse("ror:capacity_list"))
    assert len(response.context["lines"]) == 6


def test_the_form_shows_current_counts_and_staleness(client: Client, member) -> None:
    _, offer, location = member
    response = client.get(edit_url(offer, location))
    assert response.status_code == 200
    form = response.context["form"]
    assert (form["count_01"].value(), form["count_02"].value(), form["count_03"].value()) == (20, 4, 16)
    assert response.context["stale"] is True
    assert "Disponibilités à mettre à jour" in response.content.decode()


def test_posting_the_form_updates_and_records_history(client: Client, member) -> None:
    user, offer, location = member
    response = client.post(
        edit_url(offer, location),
        {"capacity_type": "01", "count_01": "20", "count_02": "6", "count_03": "14", "gender": "01"},
    )
    assert response.status_code == 302
    assert {(c.status, c.count) for c in Capacity.objects.filter(offer=offer)} == {
        ("01", 20),
        ("02", 6),
        ("03", 14),
    }
    assert Capacity.objects.get(offer=offer, status="02").gender == "01"
    update = CapacityUpdate.objects.get()
    assert (update.actor, update.source) == (user, "form")
    page = client.get(edit_url(offer, location))
    assert page.context["stale"] is False
    assert "Disponibilités enregistrées." in page.content.decode()


def test_an_invalid_update_shows_the_error_next_to_the_field_and_changes_nothing(
    client: Client, member
) -> None:
    _, offer, location = member
    response = client.post(edit_url(offer, location), {"capacity_type": "01", "count_02": "25"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "ne peuvent pas dépasser les installés" in errors["count_02"][0]
    content = response.content.decode()
    assert 'id="id_count_02-erreurs"' in content
    assert "fr-input--error" in content
    assert Capacity.objects.get(offer=offer, status="02").count == 4
    assert not CapacityUpdate.objects.exists()


def test_negative_and_empty_submissions_are_refused(client: Client, member) -> None:
    _, offer, location = member
    response = client.post(edit_url(offer, location), {"capacity_type": "01", "count_03": "-3"})
    assert response.status_code == 400
    assert "négatif" in response.context["form"].errors["count_03"][0]
    response = client.post(edit_url(offer, location), {"capacity_type": "01"})
    assert response.status_code == 400
    assert "au moins un nombre" in response.context["form"].non_field_errors()[0]
    assert not CapacityUpdate.objects.exists()


def test_a_member_cannot_open_another_structures_offer(client: Client, member) -> None:
    other, other_location = offer_with_location(capacities={"01": 5})
    assert client.get(edit_url(other, other_location)).status_code == 403
    response = client.post(edit_url(other, other_location), {"capacity_type": "01", "count_02": "1"})
    assert response.status_code == 403
    assert client.get(reverse("ror:capacity_history", args=[other.pk, other_location.pk])).status_code == 403
    assert not CapacityUpdate.objects.exists()


def test_the_history_lists_who_and_what_changed(client: Client, member) -> None:
    user, offer, location = member
    for available in (5, 7):
        capacity_update(
            offer=offer,
            location=location,
            values=[{"capacity_type": "01", "status": "02", "count": available}],
            actor=user,
            source="form",
        )
    response = client.get(reverse("ror:capacity_history", args=[offer.pk, location.pk]))
    assert response.status_code == 200
    entries = response.context["entries"]
    assert [(e["who"], e["changes"]) for e in entries] == [
        (user.username, [{"label": "Lit — Disponible", "before": 5, "after": 7}]),
        (user.username, [{"label": "Lit — Disponible", "before": 4, "after": 5}]),
    ]
    assert "Lit — Disponible : 4 → 5" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(member) -> None:
    _, offer, location = member
    response = Client().get(edit_url(offer, location))
    assert response.status_code == 302
    assert "next=" in response["Location"]
