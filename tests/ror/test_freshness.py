"""Stale detection with frozen time, the freshness rate, and the daily stale-offer notices."""

from datetime import UTC, datetime, timedelta
from smtplib import SMTPException
from typing import cast

import pytest
from django.core import mail
from django.utils import timezone

from ror import freshness
from ror.models import NoticeStatus, Offer, OfferClosure, StaleNotice
from ror.services import capacity_update
from ror.tasks import notify_stale_offers
from tests.annuaire.factories import StructureFactory
from tests.factories import UserFactory
from tests.ror.factories import OfferFactory, StructureMembershipFactory, offer_with_location

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch):
    """Freeze django.utils.timezone.now (no extra package): returns a setter to move the clock."""
    clock = {"now": NOW}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])

    def move(to: datetime) -> None:
        clock["now"] = to

    return move


def test_an_offer_is_stale_after_the_threshold(frozen) -> None:
    fresh, _ = offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=23, minutes=59))
    old, _ = offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=24, minutes=1))
    never = cast(Offer, OfferFactory())

    assert [o.pk for o in freshness.stale_offers()] == sorted([old.pk, never.pk])
    assert not freshness.offer_is_stale(fresh)
    assert freshness.offer_is_stale(old)
    assert freshness.offer_is_stale(never)
    frozen(NOW + timedelta(minutes=2))  # two minutes later, the fresh one turns stale too
    assert fresh.pk in {o.pk for o in freshness.stale_offers()}


def test_the_threshold_is_a_setting(frozen, settings) -> None:
    offer, _ = offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=7))
    settings.ROR_STALE_AFTER_HOURS = 6
    assert list(freshness.stale_offers()) == [offer]
    settings.ROR_STALE_AFTER_HOURS = 8
    assert list(freshness.stale_offers()) == []
    assert list(freshness.stale_offers(threshold=timedelta(hours=1))) == [offer]


def test_an_update_makes_the_offer_fresh_again(frozen) -> None:
    offer, location = offer_with_location(capacities={"01": 5, "02": 1}, updated_at=NOW - timedelta(days=3))
    user = UserFactory()
    StructureMembershipFactory(user=user, structure=offer.structure)
    assert freshness.offer_is_stale(offer)
    capacity_update(
        offer=offer,
        location=location,
        values=[{"capacity_type": "01", "status": "02", "count": 1}],
        actor=user,
        source="form",
    )
    assert not freshness.offer_is_stale(offer)
    assert offer.capacity_updated_at == NOW


def test_closed_and_inactive_offers_are_not_stale(frozen) -> None:
    closed, _ = offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(days=10))
    OfferClosure.objects.create(offer=closed, start=NOW - timedelta(days=1), end=NOW + timedelta(days=5))
    reopened, _ = offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(days=10))
    OfferClosure.objects.create(offer=reopened, start=NOW - timedelta(days=9), end=NOW - timedelta(days=2))
    OfferFactory(is_active=False)
    assert list(freshness.stale_offers()) == [reopened]


def test_freshness_rate(frozen) -> None:
    assert freshness.freshness_rate() is None
    offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=1))
    offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=2))
    offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(hours=30))
    OfferFactory()
    assert freshness.freshness_rate() == 0.5


@pytest.fixture
def two_structures(frozen):
    a, b = StructureFactory(name="CH Alpha"), StructureFactory(name="CH Bêta")
    for structure in (a, b):
        offer_with_location(structure=structure, capacities={"01": 5}, updated_at=NOW - timedelta(days=2))
    offer_with_location(structure=a, capacities={"01": 5}, updated_at=NOW - timedelta(hours=1))  # fresh
    StructureMembershipFactory(user=UserFactory(email="cadre@alpha.example"), structure=a)
    StructureMembershipFactory(
        user=UserFactory(email="muet@alpha.example"), structure=a, receives_notices=False
    )
    StructureMembershipFactory(user=UserFactory(email="cadre@beta.example"), structure=b)
    return a, b


def test_the_task_notifies_each_structure_once_a_day(
    two_structures, django_capture_on_commit_callbacks
) -> None:
    a, _b = two_structures
    with django_capture_on_commit_callbacks(execute=True):
        result = notify_stale_offers()

    assert result["stale_offers"] == 2
    assert result["created"] == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["cadre@alpha.example", "cadre@beta.example"]
    alpha = next(m for m in mail.outbox if m.to == ["cadre@alpha.example"])
    assert "1 offre(s)" in alpha.subject
    assert "CH Alpha" in alpha.body
    notices = {n.structure_id: n for n in StaleNotice.objects.all()}
    assert notices[a.pk].status == NoticeStatus.SENT
    assert notices[a.pk].offer_count == 1
    assert notices[a.pk].day == timezone.localdate(NOW)

    with django_capture_on_commit_callbacks(execute=True):  # same day: nothing more is sent
        again = notify_stale_offers()
    assert again["created"] == 0
    assert again["already_sent_today"] == 2
    assert len(mail.outbox) == 2


def test_the_next_day_notifies_again(two_structures, frozen, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        notify_stale_offers()
    frozen(NOW + timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        notify_stale_offers()
    assert len(mail.outbox) == 4
    assert StaleNotice.objects.count() == 4


def test_structures_without_contact_are_counted_not_noticed(frozen) -> None:
    offer_with_location(capacities={"01": 5}, updated_at=NOW - timedelta(days=2))
    run = freshness.stale_notices_prepare()
    assert (run.stale_offers, run.without_contact, run.created) == (1, 1, 0)
    assert not StaleNotice.objects.exists()


def test_a_failed_sending_is_recorded_and_retried_until_it_gives_up(two_structures, monkeypatch) -> None:
    freshness.stale_notices_prepare()  # on_commit callbacks are not run: the notices stay pending
    notice = StaleNotice.objects.first()
    assert notice is not None
    assert notice.status == NoticeStatus.PENDING

    def broken(*args, **kwargs):
        raise SMTPException("relais indisponible")

    monkeypatch.setattr(freshness, "send_mail", broken)
    for _ in range(freshness.NOTICE_MAX_ATTEMPTS - 1):
        with pytest.raises(SMTPException):
            freshness.stale_notice_send(notice_id=notice.pk)
    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == (NoticeStatus.PENDING, freshness.NOTICE_MAX_ATTEMPTS - 1)
    assert "relais indisponible" in notice.last_error
    assert freshness.stale_notice_send(notice_id=notice.pk) == NoticeStatus.FAILED
    notice.refresh_from_db()
    assert notice.status == NoticeStatus.FAILED
    assert freshness.stale_notice_send(notice_id=notice.pk) == "skipped"


def test_lost_notices_are_queued_again(two_structures, frozen, django_capture_on_commit_callbacks) -> None:
    freshness.stale_notices_prepare()  # tasks lost: the callbacks never ran
    assert StaleNotice.objects.filter(status=NoticeStatus.PENDING).count() == 2
    StaleNotice.objects.update(created_at=NOW - timedelta(hours=1))
    assert freshness.stale_notices_requeue() == 2  # eager: sent at once
    assert StaleNotice.objects.filter(status=NoticeStatus.SENT).count() == 2
    assert len(mail.outbox) == 2
