"""Delivery and read statuses end to end: a message sent by a hosted box (``outgoing.message_send``), then
the DSN / MDN that come back (built with ``reports.py``) go through ``inbound_accept`` and the processing
task, and update the sender's per-recipient status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.utils import timezone

from enrs.accounts.models import User
from enrs.vault.services import blob_read
from messagerie.models import (
    Direction,
    InboundStatus,
    Mailbox,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.services import incoming, outgoing
from messagerie.standards import reports
from tests.messagerie.test_incoming import ALICE, BOB, DOMAIN, FOREIGN, make_box

REMOTE = f"jeanne.durand@{FOREIGN}"
REMOTE2 = f"marc.leroy@{FOREIGN}"
NOW = dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.MSSANTE_HOSTED_DOMAINS = [DOMAIN]
    settings.MSSANTE_LOCAL_DELIVERY = True
    settings.MSSANTE_RELAY_HOST = ""


@pytest.fixture
def alice(db: None) -> Mailbox:
    TrustedDomain.objects.create(domain=FOREIGN, operator="CH Exemple")
    return make_box(ALICE)


def send_remote(alice: Mailbox) -> tuple[Message, bytes]:
    """Alice writes to two remote recipients; the relay then handed it to their operator (``sent``)."""
    message = outgoing.message_send(
        mailbox=alice,
        actor=alice.owner,
        to=[REMOTE, REMOTE2],
        cc=[],
        subject="Compte rendu opératoire",
        body="Bonjour, voici le compte rendu.",
        request_read_receipt=True,
    )
    Recipient.objects.filter(message=message).update(status=RecipientStatus.SENT, status_at=timezone.now())
    assert message.raw is not None
    return message, blob_read(message.raw)


def deliver_report(raw: bytes, *, mail_from: str, run: Callable[..., Any]) -> Any:
    with run(execute=True):
        item = incoming.inbound_accept(raw=raw, mail_from=mail_from, rcpt_to=[ALICE], peer="192.0.2.9")
    item.refresh_from_db()
    return item


def status(message: Message, address: str) -> Recipient:
    return Recipient.objects.get(message=message, address=address)


def test_dsn_marks_one_recipient_delivered_and_the_other_failed(
    alice: Mailbox, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    message, original = send_remote(alice)
    dsn = reports.build_dsn(
        original=original,
        reporting_mta="mx.ch-exemple.mssante.fr",
        from_addr=f"mailer-daemon@{FOREIGN}",
        to=ALICE,
        message_id="<dsn-42@ch-exemple.mssante.fr>",
        date=NOW,
        recipients=[
            reports.DsnRecipient(final_recipient=REMOTE, action="delivered", status="2.0.0"),
            reports.DsnRecipient(
                final_recipient=REMOTE2,
                action="failed",
                status="5.2.2",
                diagnostic="smtp; 552 5.2.2 mailbox full",
            ),
        ],
    )
    item = deliver_report(bytes(dsn), mail_from="", run=django_capture_on_commit_callbacks)
    assert item.outcome == InboundStatus.PROCESSED
    delivered = status(message, REMOTE)
    assert delivered.status == RecipientStatus.DELIVERED
    assert delivered.smtp_code == "2.0.0"
    failed = status(message, REMOTE2)
    assert failed.status == RecipientStatus.FAILED
    assert failed.smtp_code == "5.2.2"
    assert "552 5.2.2 mailbox full" in failed.status_detail
    # The report itself is filed in Alice's inbox as a DSN, and is never acknowledged.
    report = Message.objects.get(mailbox=alice, direction=Direction.INCOMING)
    assert report.kind == MessageKind.DSN
    assert report.in_reply_to == message.message_id
    assert report.request_read_receipt is False


def test_mdn_marks_recipients_read_delivered_or_failed(
    alice: Mailbox, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    message, original = send_remote(alice)

    def mdn(recipient: str, disposition: str, error: tuple[str, str] | None = None) -> bytes:
        built = reports.build_mdn(
            original=original,
            reporting_ua="ch-exemple.mssante.fr; LPS Exemple",
            final_recipient=recipient,
            from_addr=recipient,
            message_id=f"<mdn-{disposition}-{recipient.split('@')[0]}@ch-exemple.mssante.fr>",
            date=NOW,
            disposition_type=disposition,
            manual=disposition == "displayed",
            error=error,
        )
        return bytes(built)

    deliver_report(mdn(REMOTE, "processed"), mail_from=REMOTE, run=django_capture_on_commit_callbacks)
    assert status(message, REMOTE).status == RecipientStatus.DELIVERED
    assert status(message, REMOTE2).status == RecipientStatus.SENT
    deliver_report(mdn(REMOTE, "displayed"), mail_from=REMOTE, run=django_capture_on_commit_callbacks)
    assert status(message, REMOTE).status == RecipientStatus.READ
    deliver_report(
        mdn(REMOTE2, "processed", ("904", "Incohérence entre l'INS et les traits d'identité")),
        mail_from=REMOTE2,
        run=django_capture_on_commit_callbacks,
    )
    failed = status(message, REMOTE2)
    assert failed.status == RecipientStatus.FAILED
    assert failed.smtp_code == "904"
    # The ANS wording of the code (the MDN field itself is folded to ASCII).
    assert "904 — Incohérence entre l'INS et les traits d'identité" in failed.status_detail
    reports_in_inbox = Message.objects.filter(mailbox=alice, direction=Direction.INCOMING)
    assert {m.kind for m in reports_in_inbox} == {MessageKind.MDN}
    assert not any(m.request_read_receipt for m in reports_in_inbox)
    # Nothing was sent back: the only outgoing message is Alice's.
    assert list(Message.objects.filter(direction=Direction.OUTGOING)) == [message]


def test_local_exchange_delivered_then_read(
    alice: Mailbox, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    """Alice → Bob on the same operator: local delivery, Bob's inbox, then Bob's read receipt (MDN)."""
    bob = make_box(BOB)
    with django_capture_on_commit_callbacks(execute=True):
        sent = outgoing.message_send(
            mailbox=alice,
            actor=alice.owner,
            to=[BOB],
            cc=[],
            subject="Avis spécialisé",
            body="Pouvez-vous voir ce patient ?",
            request_read_receipt=True,
        )
    copy = Message.objects.get(mailbox=bob, direction=Direction.INCOMING)
    assert copy.message_id == sent.message_id
    assert copy.request_read_receipt is True
    assert status(sent, BOB).status == RecipientStatus.DELIVERED
    # Bob reads it: the portal sends the receipt (mailui's message_read calls this).
    with django_capture_on_commit_callbacks(execute=True):
        outgoing.message_send_report(original=copy, disposition="displayed", actor=cast(User, bob.owner))
    assert status(sent, BOB).status == RecipientStatus.READ
    receipt = Message.objects.get(mailbox=alice, direction=Direction.INCOMING)
    assert receipt.kind == MessageKind.MDN
    assert receipt.request_read_receipt is False
    # The receipt was not itself acknowledged: Bob has exactly one outgoing message (the MDN).
    assert Message.objects.filter(mailbox=bob, direction=Direction.OUTGOING).count() == 1
    assert Message.objects.filter(mailbox=alice, direction=Direction.OUTGOING).count() == 1
