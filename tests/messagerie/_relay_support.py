"""Local helpers of the relay tests (owner "relay"): mailboxes, patients, uploads, peer settings."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from annuaire.models import MailboxKind, Professional
from enrs.accounts.models import User
from enrs.patients.ins import OID_INS_NIR_TEST
from enrs.patients.models import EvidenceKind, IdentityStatus, Patient
from enrs.vault.services import blob_put
from messagerie.models import Attachment, Delegation, Mailbox, TrustedDomain
from tests.annuaire.factories import ExerciceFactory, ProfessionalFactory
from tests.factories import UserFactory
from tests.messagerie.smtp_peer import RelayPki

TEST_INS = "279035121518989"  # ANS test INS (key 89)
REMOTE_DOMAIN = "hopital-distant.mssante.fr"
PDF = b"%PDF-1.4\n% test\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def doctor(**extra: Any) -> tuple[User, Mailbox]:
    """A physician (annuaire professional + exercice in a structure) with his personal mailbox."""
    professional = cast(Professional, ProfessionalFactory(physician=True))
    ExerciceFactory(professional=professional)
    user = cast(User, UserFactory(idnat_ps=professional.idnat_ps, **extra))
    mailbox = Mailbox.objects.create(
        address=f"dr.{professional.pk}.{user.pk}@enrs-demo.mssante.fr",
        kind=MailboxKind.PERSONAL,
        display_name=str(professional),
        owner=user,
        professional=professional,
        created_by=user,
    )
    return user, mailbox


def org_mailbox(structure: Any, creator: User) -> Mailbox:
    return Mailbox.objects.create(
        address=f"secretariat.{structure.pk}@enrs-demo.mssante.fr",
        kind=MailboxKind.ORGANIZATIONAL,
        display_name=f"Secrétariat {structure.name}",
        structure=structure,
        created_by=creator,
    )


def delegate(mailbox: Mailbox, user: User, *, can_send: bool = True) -> Delegation:
    return Delegation.objects.create(mailbox=mailbox, user=user, can_send=can_send, granted_by=user)


def trust(domain: str = REMOTE_DOMAIN) -> TrustedDomain:
    return TrustedDomain.objects.get_or_create(domain=domain, defaults={"operator": "Opérateur test"})[0]


def patient(*, qualified: bool = True, creator: User) -> Patient:
    fields: dict[str, Any] = {
        "birth_family_name": "PAT-TROIS",
        "birth_given_names": "DOMINIQUE MARIE-LOUISE",
        "first_given_name": "DOMINIQUE",
        "sex": "F",
        "birth_date": dt.date(1979, 3, 28),
        "birth_place_insee": "51215",
        "created_by": creator,
    }
    if qualified:
        fields |= {
            "ins": TEST_INS,
            "ins_oid": OID_INS_NIR_TEST,
            "identity_status": IdentityStatus.QUALIFIED,
            "evidence": EvidenceKind.ID_CARD,
        }
    return Patient.objects.create(**fields)


def upload(mailbox: Mailbox, user: User, *, name: str, data: bytes, content_type: str) -> Attachment:
    return Attachment.objects.create(
        mailbox=mailbox,
        uploaded_by=user,
        filename=name,
        content_type=content_type,
        size=len(data),
        blob=blob_put(data, purpose="messagerie.attachment", content_type=content_type),
    )


def relay_settings(settings: Any, *, port: int, pki: RelayPki | None, security: str = "starttls") -> None:
    settings.MSSANTE_RELAY_HOST = "127.0.0.1"
    settings.MSSANTE_RELAY_PORT = port
    settings.MSSANTE_RELAY_SECURITY = security if pki is not None else "none"
    settings.MSSANTE_RELAY_CERT = str(pki.client_cert) if pki else ""
    settings.MSSANTE_RELAY_KEY = str(pki.client_key) if pki else ""
    settings.MSSANTE_RELAY_CA_BUNDLE = str(pki.ca_bundle) if pki else ""
    settings.MSSANTE_RELAY_TIMEOUT = 5.0
    settings.MSSANTE_LOCAL_DELIVERY = False


def relay_env(*, port: int, pki: RelayPki) -> dict[str, str]:
    """The same settings as environment variables, for a worker process."""
    return {
        "MSSANTE_RELAY_HOST": "127.0.0.1",
        "MSSANTE_RELAY_PORT": str(port),
        "MSSANTE_RELAY_SECURITY": "starttls",
        "MSSANTE_RELAY_CERT": str(pki.client_cert),
        "MSSANTE_RELAY_KEY": str(pki.client_key),
        "MSSANTE_RELAY_CA_BUNDLE": str(pki.ca_bundle),
        "MSSANTE_RELAY_TIMEOUT": "5",
        "MSSANTE_LOCAL_DELIVERY": "false",
    }
