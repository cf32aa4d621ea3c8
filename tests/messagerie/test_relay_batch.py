"""The batched relay path (`outgoing.deliveries_attempt_batch`, used by the ``deliver`` task) against a
real SMTP peer: one claim for several due rows, one connection, one statement per accepted message, the
same per-row guarantees as the single path (statuses per recipient, every attempt recorded, backoff),
and the rows it did not try given back intact."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from enrs.outbox.models import OutboxStatus
from enrs.usage.models import UsageEvent
from messagerie import smtp_client, tasks
from messagerie.models import Delivery, DeliveryAttempt, Message, Recipient, RecipientStatus
from messagerie.services import outgoing
from tests.helpers import free_port, port_open, wait_until
from tests.messagerie import _relay_support as support
from tests.messagerie._relay_support import REMOTE_DOMAIN
from tests.messagerie.smtp_peer import RelayPki, SmtpPeer, make_relay_pki

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

A = f"a@{REMOTE_DOMAIN}"
B = f"b@{REMOTE_DOMAIN}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayPki:
    return make_relay_pki(tmp_path_factory.mktemp("batch-pki"))


@pytest.fixture
def peer(tmp_path: Path, pki: RelayPki, settings: Any) -> Iterator[SmtpPeer]:
    port = free_port()
    support.relay_settings(settings, port=port, pki=pki)
    settings.ENRS_OUTBOX_BACKOFF_BASE = 5.0
    settings.ENRS_OUTBOX_BACKOFF_CAP = 3600.0
    server = SmtpPeer(tmp_path / "peer", port=port, pki=pki)
    server.start()
    try:
        yield server
    finally:
        smtp_client.close_all()
        server.stop()


@pytest.fixture
def sender() -> tuple[Any, Any]:
    support.trust()
    return support.doctor()


def send_many(sender: tuple[Any, Any], count: int, *, to: list[str] | None = None) -> list[Message]:
    """Messages written (their on-commit dispatch never runs inside the test's transaction)."""
    user, mailbox = sender
    return [
        outgoing.message_send(
            mailbox=mailbox, actor=user, to=to or [A], cc=[], subject=f"CR {i}", body=f"Corps {i}"
        )
        for i in range(count)
    ]


def delivery(message: Message) -> Delivery:
    return Delivery.objects.get(message=message)


def arrivals(peer: SmtpPeer) -> Counter[str]:
    return Counter(r["message_id"] for r in peer.received())


def test_one_batch_sends_every_due_message_once_over_one_connection(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    messages = send_many(sender, 4) + send_many(sender, 1, to=[A, B])
    first = delivery(messages[2])

    outcome = outgoing.deliveries_attempt_batch(first_id=first.pk, limit=10, worker="w1")

    assert sorted(outcome.claimed) == sorted(delivery(m).pk for m in messages)
    assert outcome.closed == 5
    assert outcome.retries == []
    assert outcome.released == []
    received = peer.received()
    assert received[0]["message_id"] == messages[2].message_id  # the task's own row goes first
    assert arrivals(peer) == {m.message_id: 1 for m in messages}
    assert len(peer.connections()) == 1
    assert set(Delivery.objects.values_list("status", flat=True)) == {OutboxStatus.DONE}
    for recipient in Recipient.objects.all():
        assert (recipient.status, recipient.smtp_code) == (RecipientStatus.SENT, "250")
        assert recipient.status_at is not None
    attempts = list(DeliveryAttempt.objects.order_by("delivery_id"))
    assert [a.delivery.message_id for a in attempts] == sorted(m.pk for m in messages)
    for row in attempts:
        assert (row.number, row.outcome, row.code, row.worker) == (1, "success", "250", "w1")
        assert row.started_at <= row.finished_at
        assert set(row.recipients) == set(row.delivery.message.to_addresses)
        assert all(answer["code"] == "250" for answer in row.recipients.values())
    # The usage events of the batch: one per (structure, channel, attempt), counting recipients.
    delivered = UsageEvent.objects.filter(kind="messagerie.message_delivered")
    assert sum(e.value for e in delivered) == 6
    assert {(e.dims["channel"], e.dims["attempt"]) for e in delivered} == {("smtp", 1)}
    # Nothing is due any more: the next task claims nothing and sends nothing.
    assert outgoing.deliveries_attempt_batch(limit=10, worker="w2").claimed == []
    assert len(peer.received()) == 5


def test_the_batch_respects_its_limit_and_skips_rows_held_by_a_live_worker(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    held, *others = send_many(sender, 4)
    Delivery.objects.filter(message=held).update(
        status=OutboxStatus.IN_PROGRESS, lease_until=timezone.now() + dt.timedelta(minutes=5), attempts=1
    )
    # Its task still drains the other due rows (one place of the batch stays reserved for its own row).
    outcome = outgoing.deliveries_attempt_batch(first_id=delivery(held).pk, limit=3, worker="w")
    assert outcome.claimed == sorted(delivery(m).pk for m in others[:2])
    assert delivery(held).status == OutboxStatus.IN_PROGRESS
    assert DeliveryAttempt.objects.filter(delivery__message=held).count() == 0
    assert delivery(others[2]).status == OutboxStatus.PENDING
    assert arrivals(peer) == {others[0].message_id: 1, others[1].message_id: 1}
    # A row whose lease expired (its worker died) is due again.
    Delivery.objects.filter(message=held).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    outcome = outgoing.deliveries_attempt_batch(limit=5, worker="w")
    assert sorted(outcome.claimed) == sorted([delivery(held).pk, delivery(others[2]).pk])
    assert delivery(held).attempts == 2
    assert DeliveryAttempt.objects.get(delivery__message=held).number == 2


def test_an_unreachable_relay_gives_back_the_untried_rows(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    messages = send_many(sender, 4)
    peer.control(down_for=2)

    outcome = outgoing.deliveries_attempt_batch(limit=10, worker="w")

    first, rest = messages[0], messages[1:]
    assert outcome.closed == 0
    assert [pk for pk, _ in outcome.retries] == [delivery(first).pk]
    assert outcome.released == [delivery(m).pk for m in rest]
    assert outcome.released_delay == outcome.retries[0][1] > 0
    tried = delivery(first)
    assert (tried.status, tried.attempts, tried.last_error_code) == (OutboxStatus.RETRY, 1, "conn-refused")
    assert DeliveryAttempt.objects.get(delivery=tried).outcome == "temporary"
    for message in rest:
        row = delivery(message)
        # Not tried: no attempt counted or recorded, due again after the same backoff.
        assert (row.status, row.attempts, row.lease_until) == (OutboxStatus.RETRY, 0, None)
        assert row.next_attempt_at is not None
        assert row.next_attempt_at > timezone.now()
        assert not DeliveryAttempt.objects.filter(delivery=row).exists()
    assert set(Recipient.objects.values_list("status", flat=True)) == {RecipientStatus.QUEUED}
    assert peer.received() == []

    # The task schedules the failed row with its delay and a batch for the rows given back.
    with (
        mock.patch.object(tasks.deliver, "apply_async") as retry,
        mock.patch.object(tasks.deliver_batch, "apply_async") as resume,
    ):
        tasks._follow_up(outcome)
    retry.assert_called_once_with(args=(tried.pk,), countdown=outcome.retries[0][1])
    resume.assert_called_once_with(countdown=outcome.released_delay)

    # The relay is back and the rows are due: each message goes out once.
    wait_until(lambda: port_open(peer.port), timeout=10, what="peer back")
    Delivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    outcome = outgoing.deliveries_attempt_batch(limit=10, worker="w")
    assert outcome.closed == 4
    assert arrivals(peer) == {m.message_id: 1 for m in messages}
    assert DeliveryAttempt.objects.filter(delivery=tried).count() == 2
    assert [delivery(m).attempts for m in rest] == [1, 1, 1]


def test_a_refused_recipient_takes_the_per_recipient_path_inside_a_batch(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    mixed, plain = send_many(sender, 1, to=[A, B]) + send_many(sender, 1)
    peer.control(reject={B: "550 5.1.1 Destinataire inconnu"})
    outcome = outgoing.deliveries_attempt_batch(limit=10, worker="w")
    assert outcome.closed == 2
    statuses = {r.address: (r.status, r.smtp_code) for r in Recipient.objects.filter(message=mixed)}
    assert statuses == {A: (RecipientStatus.SENT, "250"), B: (RecipientStatus.FAILED, "550")}
    assert delivery(mixed).status == OutboxStatus.DONE
    answers = DeliveryAttempt.objects.get(delivery__message=mixed).recipients
    assert answers[B]["outcome"] == "permanent"
    assert delivery(plain).status == OutboxStatus.DONE
    assert arrivals(peer) == {mixed.message_id: 1, plain.message_id: 1}


def test_past_half_the_lease_the_batch_gives_back_the_rest_untried(
    peer: SmtpPeer, sender: tuple[Any, Any], settings: Any
) -> None:
    messages = send_many(sender, 3)
    settings.ENRS_OUTBOX_LEASE_SECONDS = 0.0  # the budget is spent after the first message
    outcome = outgoing.deliveries_attempt_batch(limit=10, worker="w")
    assert outcome.closed == 1
    assert outcome.released == [delivery(m).pk for m in messages[1:]]
    assert outcome.released_delay == 0.0
    for message in messages[1:]:
        row = delivery(message)
        assert (row.status, row.attempts, row.lease_until) == (OutboxStatus.PENDING, 0, None)
    assert arrivals(peer) == {messages[0].message_id: 1}


def test_a_recipient_requeued_while_the_batch_runs_keeps_the_row_open(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    (message,) = send_many(sender, 1, to=[A, B])
    Recipient.objects.filter(message=message, address=B).update(status=RecipientStatus.FAILED)
    real = outgoing._deliver_smtp

    def relay_then_retry(*args: Any, **kwargs: Any) -> Any:
        answers = real(*args, **kwargs)
        # "Relancer" on B lands between the 250 for A and the recording.
        Recipient.objects.filter(message=message, address=B).update(status=RecipientStatus.QUEUED)
        return answers

    with mock.patch.object(outgoing, "_deliver_smtp", side_effect=relay_then_retry):
        outcome = outgoing.deliveries_attempt_batch(limit=10, worker="w")
    row = delivery(message)
    assert outcome.retries == [(row.pk, 0.0)]
    assert (row.status, row.lease_until) == (OutboxStatus.PENDING, None)
    assert DeliveryAttempt.objects.get(delivery=row).outcome == "success"
    assert peer.received()[0]["rcpt_to"] == [A]
    outgoing.deliveries_attempt_batch(limit=10, worker="w")
    assert delivery(message).status == OutboxStatus.DONE
    assert [r["rcpt_to"] for r in peer.received()] == [[A], [B]]
    assert set(Recipient.objects.values_list("status", flat=True)) == {RecipientStatus.SENT}


def test_a_worker_killed_in_the_middle_of_a_batch_loses_and_repeats_nothing(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    messages = send_many(sender, 3)
    real = outgoing._deliver_smtp
    calls = {"n": 0}

    class WorkerKilled(BaseException):
        pass

    def dies_before_the_second(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise WorkerKilled
        return real(*args, **kwargs)

    with (
        mock.patch.object(outgoing, "_deliver_smtp", side_effect=dies_before_the_second),
        pytest.raises(WorkerKilled),
    ):
        outgoing.deliveries_attempt_batch(limit=10, worker="dead")
    assert delivery(messages[0]).status == OutboxStatus.DONE  # recorded by its own statement
    assert [delivery(m).status for m in messages[1:]] == [OutboxStatus.IN_PROGRESS] * 2
    # Their lease expires; the next batch sends them, and only them.
    Delivery.objects.filter(status=OutboxStatus.IN_PROGRESS).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    outcome = outgoing.deliveries_attempt_batch(limit=10, worker="alive")
    assert sorted(outcome.claimed) == sorted(delivery(m).pk for m in messages[1:])
    assert arrivals(peer) == {m.message_id: 1 for m in messages}
    assert set(Delivery.objects.values_list("status", flat=True)) == {OutboxStatus.DONE}
