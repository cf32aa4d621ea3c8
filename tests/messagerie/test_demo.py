"""The messagerie demo on top of the demo directory: two clinicians with hosted boxes, an organisational
box with a delegation, the hosted domain in the trust space, messages that really went through the
relay (local delivery) — and running it again changes nothing."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from annuaire import demo as annuaire_demo
from annuaire.models import MailboxKind
from enrs.accounts.models import User
from messagerie import demo
from messagerie.models import Attachment, Delegation, Folder, Mailbox, Message, TrustedDomain
from messagerie.services.mailboxes import mailboxes_for_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory() -> None:
    annuaire_demo.seed_demo(scale="small", region_code="53", create_accounts=True)


def counts() -> tuple[int, ...]:
    return (
        Mailbox.objects.count(),
        Delegation.objects.count(),
        Message.objects.count(),
        TrustedDomain.objects.count(),
        User.objects.count(),
    )


def test_the_demo_gives_two_clinicians_boxes_and_messages_between_them(
    directory: None, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.MSSANTE_RELAY_HOST = ""
    settings.MSSANTE_LOCAL_DELIVERY = True
    with django_capture_on_commit_callbacks(execute=True):
        report = demo.messagerie_demo_seed(allow_accounts=True)

    first = User.objects.get(username="demo-clinicien")
    second = User.objects.get(username="demo-clinicien2")
    assert report.accounts
    assert report.accounts[0][0] == "demo-clinicien2"
    assert second.check_password(annuaire_demo.demo_password(annuaire_demo.DEFAULT_SEED, "demo-clinicien2"))
    assert second.idnat_ps
    assert second.idnat_ps != first.idnat_ps
    first_box = Mailbox.objects.get(owner=first, kind=MailboxKind.PERSONAL)
    second_box = Mailbox.objects.get(owner=second, kind=MailboxKind.PERSONAL)
    assert first_box.address.endswith("@enrs-demo.mssante.fr")
    assert first_box.directory_entry is not None
    assert first_box.directory_entry.professional is not None
    assert first_box.directory_entry.professional.idnat_ps == first.idnat_ps
    org = Mailbox.objects.get(kind=MailboxKind.ORGANIZATIONAL)
    assert set(mailboxes_for_user(first)) == {first_box, org}
    assert TrustedDomain.objects.filter(domain="enrs-demo.mssante.fr", is_active=True).exists()

    sent = Message.objects.get(mailbox=first_box, folder=Folder.SENT, subject=demo.SUBJECT_REPORT)
    assert Attachment.objects.filter(message=sent, is_xdm=True).exists()
    # Local delivery through the relay and the inbound pipeline: each clinician received the other's mail.
    assert Message.objects.filter(
        mailbox=first_box, folder=Folder.INBOX, subject=demo.SUBJECT_RECEIPT
    ).exists()
    received = Message.objects.get(mailbox=second_box, folder=Folder.INBOX, subject=demo.SUBJECT_REPORT)
    assert received.cda_codes == "11488-4"

    before = counts()
    again = demo.messagerie_demo_seed(allow_accounts=True)
    assert counts() == before
    assert again.created == []
    assert again.accounts == []


def test_the_command_refuses_without_the_directory_and_outside_demo_mode(directory: None) -> None:
    User.objects.filter(username="demo-clinicien2").delete()
    with pytest.raises(Exception, match="ENRS_DEMO_MODE"):
        call_command("seed_messagerie_demo", stdout=StringIO())
    assert not Mailbox.objects.exists()
