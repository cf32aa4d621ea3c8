"""Two clinicians of the region exchange a message with an IHE_XDM attachment through the real relay and the
real listener on loopback (``manage.py mssante_smtpd`` with mutual TLS), and the sender sees the delivery,
then the read receipt (MDN) coming back the same way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings

from messagerie.models import Direction, Message, MessageKind, Recipient, RecipientStatus
from messagerie.services import folders, outgoing
from tests.helpers import wait_until
from tests.messagerie import _relay_support as support
from tests.messagerie.test_incoming import DOMAIN
from tests.messagerie.test_smtpd import Listener, Pki, pki  # noqa: F401 - pki is a fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def listener(pki: Pki, transactional_db: None) -> Iterator[Listener]:  # noqa: F811
    server = Listener(pki, str(django_settings.DATABASES["default"]["NAME"]))
    yield server
    server.stop()


@pytest.fixture
def relay_to_listener(settings: Any, listener: Listener, pki: Pki) -> None:  # noqa: F811
    settings.MSSANTE_HOSTED_DOMAINS = [DOMAIN]
    settings.MSSANTE_RELAY_HOST = "127.0.0.1"
    settings.MSSANTE_RELAY_PORT = listener.port
    settings.MSSANTE_RELAY_SECURITY = "starttls"
    settings.MSSANTE_RELAY_CERT = str(pki.client_cert)
    settings.MSSANTE_RELAY_KEY = str(pki.client_key)
    settings.MSSANTE_RELAY_CA_BUNDLE = str(pki.ca_bundle)
    settings.MSSANTE_RELAY_TIMEOUT = 10.0
    settings.MSSANTE_LOCAL_DELIVERY = False  # hosted to hosted, but through SMTP: the operator's real path


def recipient_status(message: Message) -> str:
    return Recipient.objects.get(message=message).status


def test_two_clinicians_exchange_an_xdm_message_and_see_delivery_then_read(relay_to_listener: None) -> None:
    alice, alice_box = support.doctor()
    bob, bob_box = support.doctor()
    assert alice_box.address.endswith(DOMAIN)
    assert bob_box.address.endswith(DOMAIN)
    patient = support.patient(creator=alice)
    pdf = support.upload(
        alice_box, alice, name="compte-rendu.pdf", data=support.PDF, content_type="application/pdf"
    )

    # Written in the portal; the on-commit dispatch runs the relay task (eager in tests), which submits the
    # message over SMTP/TLS with the operator's certificate to the listener.
    sent = outgoing.message_send(
        mailbox=alice_box,
        actor=alice,
        to=[bob_box.address],
        cc=[],
        subject="Compte rendu de consultation",
        body="Bonjour,\nle compte rendu est joint.",
        patient=patient,
        cda_from_pdf=pdf,
        request_read_receipt=True,
    )
    wait_until(
        lambda: Message.objects.filter(mailbox=bob_box, direction=Direction.INCOMING).exists(),
        timeout=30,
        what="message filed in Bob's inbox by the listener",
    )
    received = Message.objects.get(mailbox=bob_box, direction=Direction.INCOMING)
    assert received.message_id == sent.message_id
    assert received.kind == MessageKind.MESSAGE
    assert received.request_read_receipt
    assert received.patient_ins == support.TEST_INS
    assert received.cda_codes == "11488-4"
    xdm = received.attachments.get(is_xdm=True)
    assert not xdm.quarantined
    assert xdm.documents[0]["code"] == "11488-4"
    assert xdm.documents[0]["qualified_ins"] is True
    assert received.attachments.filter(filename="compte-rendu.pdf", is_xdm=False).exists()
    wait_until(
        lambda: recipient_status(sent) == RecipientStatus.DELIVERED,
        timeout=30,
        what="Alice's recipient marked delivered",
    )

    # Bob opens it: the read receipt goes back through the relay and the listener to Alice's box.
    folders.message_read(message=received, actor=bob)
    wait_until(
        lambda: recipient_status(sent) == RecipientStatus.READ,
        timeout=30,
        what="Alice's recipient marked read",
    )
    mdn = Message.objects.get(mailbox=alice_box, direction=Direction.INCOMING)
    assert mdn.kind == MessageKind.MDN
    # Exactly one copy each way, whatever the retries.
    assert Message.objects.filter(mailbox=bob_box, message_id=sent.message_id).count() == 1
