"""Factories of the messagerie app (shared by its test modules).

* ``MailboxFactory`` — a hosted personal box on the hosted domain, owned by a clinician whose IdNat_PS is
  the professional's, linked to its directory address; traits ``organizational`` and ``application``.
* ``DelegationFactory``, ``ApplicationTokenFactory``, ``TrustedDomainFactory``.
* ``MessageFactory`` — a received message in the inbox with its body in the vault (``body_text``);
  traits ``sent`` (sender's copy in "sent") and ``draft``.
* ``AttachmentFactory``, ``RecipientFactory``.
Helpers: ``make_mailbox`` / ``make_message`` / … typed as what they return.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import factory
from django.conf import settings
from django.utils import timezone

from annuaire.models import MailboxAddress, MailboxKind, Professional, Structure
from enrs.accounts.models import User
from enrs.vault.services import blob_put
from messagerie.models import (
    ApplicationToken,
    Attachment,
    Delegation,
    Direction,
    Folder,
    Mailbox,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from tests.annuaire.factories import MailboxAddressFactory, ProfessionalFactory, StructureFactory
from tests.factories import UserFactory

PDF_BYTES = b"%PDF-1.4\n% ENRS test\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def hosted_domain() -> str:
    return str(settings.MSSANTE_HOSTED_DOMAINS[0])


class MailboxFactory(factory.django.DjangoModelFactory[Mailbox]):
    """A personal box: professional (physician) + directory address on the hosted domain + owner account."""

    class Meta:
        model = Mailbox

    class Params:
        organizational = factory.Trait(
            kind=MailboxKind.ORGANIZATIONAL,
            owner=None,
            professional=None,
            structure=factory.SubFactory(StructureFactory),
            display_name=factory.LazyAttribute(lambda o: f"Secrétariat {o.structure.name}"),
        )
        application = factory.Trait(
            kind=MailboxKind.APPLICATION,
            owner=None,
            professional=None,
            structure=factory.SubFactory(StructureFactory),
            display_name=factory.LazyAttribute(lambda o: f"Laboratoire {o.structure.name}"),
        )

    kind = MailboxKind.PERSONAL
    professional = factory.LazyAttribute(
        lambda o: ProfessionalFactory(physician=True) if o.kind == MailboxKind.PERSONAL else None
    )
    owner = factory.LazyAttribute(
        lambda o: UserFactory(clinician=True, idnat_ps=o.professional.idnat_ps) if o.professional else None
    )
    structure = None
    address = factory.Sequence(lambda n: f"boite.{n}@{hosted_domain()}")
    display_name = factory.LazyAttribute(
        lambda o: f"{o.professional.first_name} {o.professional.last_name}" if o.professional else "Boîte"
    )
    directory_entry = factory.LazyAttribute(
        lambda o: (
            MailboxAddressFactory(address=o.address, kind=o.kind, professional=o.professional, structure=None)
            if o.kind == MailboxKind.PERSONAL
            else MailboxAddressFactory(
                address=o.address, kind=o.kind, professional=None, structure=o.structure
            )
        )
    )
    created_by = factory.SubFactory(UserFactory, gcs_staff=True)


class DelegationFactory(factory.django.DjangoModelFactory[Delegation]):
    class Meta:
        model = Delegation

    mailbox = factory.SubFactory(MailboxFactory, organizational=True)
    user = factory.SubFactory(UserFactory, clinician=True)
    can_send = True
    granted_by = factory.SubFactory(UserFactory, gcs_staff=True)


class ApplicationTokenFactory(factory.django.DjangoModelFactory[ApplicationToken]):
    """A token whose clear value is ``clear`` (pass it, or read ``token.clear`` right after creation)."""

    class Meta:
        model = ApplicationToken
        exclude = ("clear",)

    mailbox = factory.SubFactory(MailboxFactory, application=True)
    name = "Logiciel de laboratoire"
    clear = factory.Sequence(lambda n: f"mss_test-token-{n:08d}-abcdefghijklmnop")
    prefix = factory.LazyAttribute(lambda o: o.clear[:12])
    token_sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.clear.encode()).hexdigest())
    created_by = factory.SubFactory(UserFactory, gcs_staff=True)


class TrustedDomainFactory(factory.django.DjangoModelFactory[TrustedDomain]):
    class Meta:
        model = TrustedDomain
        django_get_or_create = ("domain",)

    domain = factory.Sequence(lambda n: f"operateur-{n}.mssante.fr")
    operator = "Opérateur de test"


def _body_blob(text: str) -> Any:
    return blob_put(text.encode("utf-8"), purpose="messagerie.body", content_type="text/plain")


class MessageFactory(factory.django.DjangoModelFactory[Message]):
    """A message received in the box's inbox; traits ``sent`` and ``draft``."""

    class Meta:
        model = Message
        exclude = ("body_text",)

    class Params:
        body_text = "Bonjour, veuillez trouver ci-joint le compte rendu."
        sent = factory.Trait(
            direction=Direction.OUTGOING,
            folder=Folder.SENT,
            is_read=True,
            from_address=factory.LazyAttribute(lambda o: o.mailbox.address),
            to_addresses=["correspondant@operateur.mssante.fr"],
        )
        draft = factory.Trait(
            direction=Direction.OUTGOING,
            folder=Folder.DRAFTS,
            sent_at=None,
            is_read=True,
            from_address=factory.LazyAttribute(lambda o: o.mailbox.address),
            to_addresses=[],
        )

    mailbox = factory.SubFactory(MailboxFactory)
    direction = Direction.INCOMING
    kind = MessageKind.MESSAGE
    folder = Folder.INBOX
    message_id = factory.Sequence(lambda n: f"<msg-{n}@operateur.mssante.fr>")
    subject = factory.Sequence(lambda n: f"Compte rendu n° {n}")
    from_address = factory.Sequence(lambda n: f"expediteur.{n}@operateur.mssante.fr")
    to_addresses = factory.LazyAttribute(lambda o: [o.mailbox.address])
    sent_at = factory.LazyFunction(timezone.now)
    body = factory.LazyAttribute(lambda o: _body_blob(o.body_text))
    size = 100


class AttachmentFactory(factory.django.DjangoModelFactory[Attachment]):
    class Meta:
        model = Attachment
        exclude = ("content",)

    class Params:
        content = PDF_BYTES

    message = factory.SubFactory(MessageFactory, has_attachments=True)
    mailbox = factory.LazyAttribute(lambda o: o.message.mailbox if o.message else MailboxFactory())
    filename = "compte-rendu.pdf"
    content_type = "application/pdf"
    size = factory.LazyAttribute(lambda o: len(o.content))
    blob = factory.LazyAttribute(
        lambda o: blob_put(o.content, purpose="messagerie.attachment", content_type=o.content_type)
    )


class RecipientFactory(factory.django.DjangoModelFactory[Recipient]):
    class Meta:
        model = Recipient

    message = factory.SubFactory(MessageFactory, sent=True)
    address = factory.Sequence(lambda n: f"destinataire.{n}@operateur.mssante.fr")
    status = RecipientStatus.QUEUED
    status_at = factory.LazyFunction(timezone.now)


def make_mailbox(**kwargs: Any) -> Mailbox:
    return cast(Mailbox, MailboxFactory(**kwargs))


def make_message(**kwargs: Any) -> Message:
    return cast(Message, MessageFactory(**kwargs))


def make_attachment(**kwargs: Any) -> Attachment:
    return cast(Attachment, AttachmentFactory(**kwargs))


def make_delegation(**kwargs: Any) -> Delegation:
    return cast(Delegation, DelegationFactory(**kwargs))


def make_token(clear: str | None = None, **kwargs: Any) -> tuple[ApplicationToken, str]:
    """A token and its clear value."""
    if clear is None:
        clear = f"mss_{hashlib.sha256(str(ApplicationToken.objects.count()).encode()).hexdigest()[:32]}"
    token = cast(ApplicationToken, ApplicationTokenFactory(clear=clear, **kwargs))
    return token, clear


def make_recipient(**kwargs: Any) -> Recipient:
    return cast(Recipient, RecipientFactory(**kwargs))


def make_user(**kwargs: Any) -> User:
    return cast(User, UserFactory(**kwargs))


def make_professional(**kwargs: Any) -> Professional:
    return cast(Professional, ProfessionalFactory(**kwargs))


def make_address(**kwargs: Any) -> MailboxAddress:
    return cast(MailboxAddress, MailboxAddressFactory(**kwargs))


def make_structure(**kwargs: Any) -> Structure:
    return cast(Structure, StructureFactory(**kwargs))


def owner_of(mailbox: Mailbox | None) -> User:
    """The owner of a personal box (made by `MailboxFactory`, so never None)."""
    assert mailbox is not None
    assert mailbox.owner is not None
    return mailbox.owner


def message_of(attachment: Attachment) -> Message:
    assert attachment.message is not None
    return attachment.message
