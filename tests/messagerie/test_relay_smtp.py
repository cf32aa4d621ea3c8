"""The relay against a real SMTP peer (aiosmtpd subprocess, STARTTLS with client certificates):
MIME shape as a receiver parses it, retries with backoff, permanent failures, deadline, connection reuse,
mutual TLS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from enrs.outbox.models import OutboxStatus
from enrs.usage.models import UsageEvent
from messagerie import smtp_client
from messagerie.models import Delivery, DeliveryAttempt, Message, Recipient, RecipientStatus
from messagerie.services import outgoing
from tests.helpers import free_port
from tests.messagerie import _relay_support as support
from tests.messagerie._relay_support import PDF, REMOTE_DOMAIN, TEST_INS
from tests.messagerie.smtp_peer import RelayPki, SmtpPeer, make_relay_pki


def _plain(parsed: Any) -> str:
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


pytestmark = [pytest.mark.django_db, pytest.mark.integration]

A = f"a@{REMOTE_DOMAIN}"
B = f"b@{REMOTE_DOMAIN}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayPki:
    return make_relay_pki(tmp_path_factory.mktemp("relay-pki"))


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


def send(sender: tuple[Any, Any], **extra: Any) -> Message:
    user, mailbox = sender
    fields: dict[str, Any] = {"to": [A], "cc": [], "subject": "Compte rendu", "body": "Bonjour,\nCR joint."}
    fields.update(extra)
    return outgoing.message_send(mailbox=mailbox, actor=user, **fields)


def attempt(message: Message) -> float | None:
    return outgoing.delivery_attempt(delivery_id=Delivery.objects.get(message=message).pk, worker="test")


def make_due(message: Message) -> None:
    Delivery.objects.filter(message=message).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))


def statuses(message: Message) -> dict[str, tuple[str, str]]:
    return {r.address: (r.status, r.smtp_code) for r in Recipient.objects.filter(message=message)}


def test_message_with_xdm_as_the_receiver_parses_it(
    peer: SmtpPeer, sender: tuple[Any, Any], django_capture_on_commit_callbacks: Any
) -> None:
    user, mailbox = sender
    person = support.patient(creator=user)
    pdf = support.upload(mailbox, user, name="compte-rendu.pdf", data=PDF, content_type="application/pdf")
    note = support.upload(mailbox, user, name="notes.txt", data=b"notes", content_type="text/plain")
    # The on-commit dispatch runs the task (eager): the message reaches the peer.
    with django_capture_on_commit_callbacks(execute=True):
        message = send(sender, to=[A, B], patient=person, cda_from_pdf=pdf, attachments=[note])
    received = peer.received()
    assert len(received) == 1
    record = received[0]
    assert record["message_id"] == message.message_id
    assert record["tls"] is True
    assert sorted(record["rcpt_to"]) == [A, B]
    assert record["mail_from"] == mailbox.address
    parsed = BytesParser(policy=policy.default).parsebytes(peer.message_bytes(record))
    assert parsed["X-MSS-NIL"] == "ENRS-DEMO-NIL"
    assert parsed["X-MSS-CODECDA"] == "11488-4"
    assert parsed["X-MSS-INS"] == "O"
    assert parsed["From"] == mailbox.address
    assert parsed["Message-ID"] == message.message_id
    assert parsed.get_content_type() == "multipart/mixed"
    assert "CR joint" in _plain(parsed)
    parts = {p.get_filename(): p for p in parsed.iter_attachments()}
    assert set(parts) == {"notes.txt", "compte-rendu.pdf", "IHE_XDM.zip"}
    assert parts["IHE_XDM.zip"].get_content_type() == "application/zip"
    assert parts["compte-rendu.pdf"].get_content() == PDF
    from messagerie.standards import xdm

    package = xdm.parse_xdm(parts["IHE_XDM.zip"].get_content())
    assert xdm.cda_codes(package) == ["11488-4"]
    assert package.documents[0][0].patient_id.startswith(TEST_INS)
    # What was sent is exactly what we keep.
    assert peer.message_bytes(record).replace(b"\r\n", b"\n") == outgoing.message_mime(message).replace(
        b"\r\n", b"\n"
    )
    assert statuses(message) == {A: ("sent", "250"), B: ("sent", "250")}
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.DONE
    assert delivery.attempts == 1
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.outcome == "success"
    assert row.recipients[A]["code"] == "250"
    assert UsageEvent.objects.get(kind="messagerie.message_delivered").value == 2.0


def test_plain_message_always_has_x_mss_nil_and_no_cda_headers(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    message = send(sender)
    assert attempt(message) is None
    parsed = BytesParser(policy=policy.default).parsebytes(peer.message_bytes(peer.received()[0]))
    assert parsed["X-MSS-NIL"] == "ENRS-DEMO-NIL"
    assert parsed["X-MSS-CODECDA"] is None
    assert parsed["X-MSS-INS"] is None


def test_450_twice_retries_with_exponential_backoff_then_succeeds(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    message = send(sender)
    peer.control(temp_fail={"count": 2, "code": 450, "stage": "rcpt"})
    first = attempt(message)
    assert first is not None
    assert 4.0 <= first <= 6.0
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.RETRY
    assert delivery.last_error_code == "450"
    assert statuses(message) == {A: ("queued", "450")}
    # Not due yet: a duplicate task does nothing.
    assert attempt(message) is None
    assert Delivery.objects.get(message=message).attempts == 1
    make_due(message)
    second = attempt(message)
    assert second is not None
    assert 8.0 <= second <= 12.0
    make_due(message)
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250")}
    attempts = list(
        DeliveryAttempt.objects.filter(delivery__message=message).values_list("number", "outcome", "code")
    )
    assert attempts == [(1, "temporary", "450"), (2, "temporary", "450"), (3, "success", "250")]
    assert [r["message_id"] for r in peer.received()] == [message.message_id]


def test_421_on_mail_from_is_temporary_and_the_connection_is_reopened(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    message = send(sender)
    peer.control(temp_fail={"count": 1, "code": 421, "stage": "mail"})
    assert attempt(message) is not None
    assert Delivery.objects.get(message=message).last_error_code == "421"
    make_due(message)
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250")}
    assert len(peer.connections()) == 2


def test_550_fails_that_recipient_at_once_with_the_reason(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    message = send(sender, to=[A, B])
    peer.control(reject={B: "550 5.1.1 Destinataire inconnu"})
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250"), B: ("failed", "550")}
    assert Recipient.objects.get(message=message, address=B).status_detail == "5.1.1 Destinataire inconnu"
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.DONE
    assert delivery.attempts == 1
    assert UsageEvent.objects.get(kind="messagerie.message_failed").value == 1.0


def test_550_for_every_recipient_fails_the_delivery(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    message = send(sender)
    peer.control(reject={A: "550 5.7.1 Refus"})
    assert attempt(message) is None
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.FAILED
    assert delivery.last_error_code == "550"
    assert statuses(message) == {A: ("failed", "550")}
    assert peer.received() == []


def test_mixed_450_and_550_keeps_the_row_in_retry_for_the_temporary_one(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    message = send(sender, to=[A, B])
    peer.control(reject={B: "550 5.1.1 Inconnu"}, temp_fail={"count": 1, "code": 450, "stage": "rcpt"})
    assert attempt(message) is not None
    assert statuses(message) == {A: ("queued", "450"), B: ("failed", "550")}
    make_due(message)
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250"), B: ("failed", "550")}
    assert Delivery.objects.get(message=message).status == OutboxStatus.DONE
    # Only A was ever accepted, once.
    assert [r["rcpt_to"] for r in peer.received()] == [[A]]


def test_connection_refused_is_retried(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    message = send(sender)
    peer.stop()
    assert attempt(message) is not None
    assert Delivery.objects.get(message=message).last_error_code == "conn-refused"
    peer.start()
    make_due(message)
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250")}


def test_deadline_turns_temporary_failures_into_a_failure(
    peer: SmtpPeer, sender: tuple[Any, Any], settings: Any
) -> None:
    settings.MSSANTE_DELIVERY_DEADLINE_SECONDS = 2.0
    message = send(sender)
    peer.control(temp_fail={"count": 99, "code": 451, "stage": "rcpt"})
    assert attempt(message) is None  # the next retry would land after the deadline
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.FAILED
    recipient = Recipient.objects.get(message=message)
    assert recipient.status == RecipientStatus.FAILED
    assert recipient.status_detail.startswith("Abandon")


def test_sweeper_requeues_lost_rows_and_closes_expired_ones(sender: tuple[Any, Any], settings: Any) -> None:
    settings.MSSANTE_RELAY_HOST = ""
    lost = send(sender)
    expired = send(sender)
    past = timezone.now() - dt.timedelta(minutes=5)
    Delivery.objects.filter(message=lost).update(status=OutboxStatus.IN_PROGRESS, lease_until=past)
    Delivery.objects.filter(message=expired).update(
        status=OutboxStatus.RETRY, deadline=past, next_attempt_at=past
    )

    class Recorder:
        def __init__(self) -> None:
            self.queued: list[int] = []

        def delay(self, pk: int) -> None:
            self.queued.append(pk)

    task = Recorder()
    assert outgoing.deliveries_requeue(task) == 1
    assert task.queued == [Delivery.objects.get(message=lost).pk]
    assert Delivery.objects.get(message=expired).status == OutboxStatus.FAILED
    assert statuses(expired)[A][0] == "failed"


def test_one_connection_is_reused_across_messages(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    messages = [send(sender, subject=f"Message {i}") for i in range(3)]
    for message in messages:
        assert attempt(message) is None
    received = peer.received()
    assert [r["message_id"] for r in received] == [m.message_id for m in messages]
    assert len({r["client_port"] for r in received}) == 1
    assert len(peer.connections()) == 1
    # A connection the peer dropped is opened again transparently.
    peer.control(close_connections=True)
    extra = send(sender, subject="Après coupure")
    assert attempt(extra) is None
    assert len(peer.connections()) == 2


def test_peer_refuses_a_client_certificate_from_an_unknown_ca(
    peer: SmtpPeer, pki: RelayPki, sender: tuple[Any, Any], settings: Any
) -> None:
    settings.MSSANTE_RELAY_CERT = str(pki.rogue_cert)
    settings.MSSANTE_RELAY_KEY = str(pki.rogue_key)
    message = send(sender)
    assert attempt(message) is not None  # a TLS failure is temporary (configuration being fixed)
    assert peer.received() == []
    assert statuses(message)[A][0] == "queued"


def test_relay_with_an_unknown_server_certificate_is_refused_by_us(
    peer: SmtpPeer, sender: tuple[Any, Any], settings: Any, tmp_path: Path
) -> None:
    other = make_relay_pki(tmp_path / "other-pki")
    settings.MSSANTE_RELAY_CA_BUNDLE = str(other.ca_bundle)
    message = send(sender)
    assert attempt(message) is not None
    assert Delivery.objects.get(message=message).last_error_code == "tls"
    assert peer.received() == []


def test_plain_smtp_to_the_peer_is_refused(peer: SmtpPeer, sender: tuple[Any, Any], settings: Any) -> None:
    settings.MSSANTE_RELAY_SECURITY = "none"
    message = send(sender)
    attempt(message)
    assert Delivery.objects.get(message=message).last_error_code == "530"  # STARTTLS required
    assert peer.received() == []


def test_hosted_recipients_are_delivered_locally_and_others_through_the_relay(
    peer: SmtpPeer, sender: tuple[Any, Any], settings: Any
) -> None:
    from messagerie.models import InboundMessage

    settings.MSSANTE_LOCAL_DELIVERY = True
    _, colleague_box = support.doctor()
    message = send(sender, to=[colleague_box.address, A])
    assert attempt(message) is None
    assert statuses(message) == {colleague_box.address: ("sent", "250"), A: ("sent", "250")}
    inbound = InboundMessage.objects.get()
    assert inbound.rcpt_to == [colleague_box.address]
    assert inbound.message_id == message.message_id
    assert [r["rcpt_to"] for r in peer.received()] == [[A]]
    channels = DeliveryAttempt.objects.get(delivery__message=message).recipients
    assert channels[colleague_box.address]["channel"] == "local"
    assert channels[A]["channel"] == "smtp"


def test_worker_dying_after_the_250_does_not_send_the_message_again(
    peer: SmtpPeer, sender: tuple[Any, Any]
) -> None:
    from unittest import mock

    message = send(sender, to=[A, B])

    class WorkerKilled(BaseException):
        pass

    # The worker "dies" after the relay's 250, before the attempt is recorded.
    with mock.patch.object(outgoing, "_record", side_effect=WorkerKilled), pytest.raises(WorkerKilled):
        attempt(message)
    assert len(peer.received()) == 1
    assert statuses(message) == {A: ("sent", "250"), B: ("sent", "250")}  # committed before dying
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.IN_PROGRESS
    # Its lease expires; the sweeper's new attempt closes the row without sending.
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert attempt(message) is None
    assert Delivery.objects.get(pk=delivery.pk).status == OutboxStatus.DONE
    assert len(peer.received()) == 1


def test_unreadable_relay_certificate_is_a_temporary_configuration_error(
    peer: SmtpPeer, sender: tuple[Any, Any], settings: Any, tmp_path: Path
) -> None:
    settings.MSSANTE_RELAY_CERT = str(tmp_path / "absent.crt")
    message = send(sender)
    assert attempt(message) is not None
    assert Delivery.objects.get(message=message).last_error_code == "tls-config"
    assert statuses(message)[A][0] == "queued"


def test_an_unexpected_error_keeps_backoff_and_deadline(peer: SmtpPeer, sender: tuple[Any, Any]) -> None:
    from unittest import mock

    message = send(sender)
    with mock.patch.object(outgoing, "blob_read", side_effect=RuntimeError("disque")):
        delay = attempt(message)
    assert delay is not None
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.RETRY
    assert delivery.last_error_code == "internal"
    assert DeliveryAttempt.objects.get(delivery=delivery).outcome == "temporary"
    make_due(message)
    assert attempt(message) is None
    assert statuses(message) == {A: ("sent", "250")}
