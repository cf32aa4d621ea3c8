"""Hosted mailboxes: creation from the directory (audited), delegations, application tokens, the
trust-space allow-list, and which boxes a user may use."""

import hashlib
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from annuaire.models import MailboxKind
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from messagerie.models import ApplicationToken, Delegation, Mailbox, TrustedDomain
from messagerie.services import mailboxes
from tests.messagerie.factories import (
    make_address,
    make_delegation,
    make_mailbox,
    make_professional,
    make_structure,
    make_user,
    owner_of,
)

pytestmark = pytest.mark.django_db

HOSTED = "enrs-demo.mssante.fr"


@pytest.fixture(autouse=True)
def _hosted(settings: Any) -> None:
    settings.MSSANTE_HOSTED_DOMAINS = [HOSTED]


@pytest.fixture
def staff() -> Any:
    return make_user(gcs_staff=True)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


# --- mailbox_create -------------------------------------------------------------------------------------


def test_a_personal_box_belongs_to_the_account_with_the_professionals_idnat(staff: Any) -> None:
    professional = make_professional(physician=True, first_name="Anne", last_name="KERMARREC")
    entry = make_address(professional=professional, address=f"anne.kermarrec@{HOSTED}")
    clinician = make_user(clinician=True, idnat_ps=professional.idnat_ps)

    box = mailboxes.mailbox_create(kind=MailboxKind.PERSONAL, actor=staff, directory_entry=entry)

    box.refresh_from_db()
    assert (box.address, owner_of(box), box.professional, box.directory_entry) == (
        entry.address,
        clinician,
        professional,
        entry,
    )
    assert box.display_name == "Anne KERMARREC"
    [event] = events("messagerie.mailbox.create")
    assert (event.actor_id, event.target_id, event.detail["address"]) == (
        staff.pk,
        str(box.pk),
        entry.address,
    )


def test_the_directory_address_on_a_hosted_domain_is_found_from_the_professional(staff: Any) -> None:
    professional = make_professional(physician=True)
    make_address(professional=professional, address="autre@medecin.mssante.fr")
    hosted = make_address(professional=professional, address=f"dr.x@{HOSTED}")
    make_user(idnat_ps=professional.idnat_ps)

    box = mailboxes.mailbox_create(kind=MailboxKind.PERSONAL, actor=staff, professional=professional)

    assert box.directory_entry == hosted


def test_an_organisational_box_belongs_to_the_structure(staff: Any) -> None:
    structure = make_structure(name="Centre hospitalier de Vannes")
    entry = make_address(organizational=True, structure=structure, address=f"cardio@{HOSTED}")

    box = mailboxes.mailbox_create(kind=MailboxKind.ORGANIZATIONAL, actor=staff, directory_entry=entry)

    assert (box.structure, box.owner, box.display_name) == (
        structure,
        None,
        "Centre hospitalier de Vannes",
    )


@pytest.mark.parametrize(
    ("address", "kind", "with_account", "message"),
    [
        ("dr@medecin.mssante.fr", MailboxKind.PERSONAL, True, "n'est pas hébergé par l'ENRS"),
        (f"dr@{HOSTED}", MailboxKind.ORGANIZATIONAL, True, "adresse personnelle dans l'annuaire"),
        (f"dr@{HOSTED}", MailboxKind.PERSONAL, False, "Aucun compte actif du portail"),
    ],
)
def test_refusals_are_french_and_write_nothing(
    staff: Any, address: str, kind: str, with_account: bool, message: str
) -> None:
    professional = make_professional()
    entry = make_address(professional=professional, address=address)
    if with_account:
        make_user(idnat_ps=professional.idnat_ps)

    with pytest.raises(ValidationError, match=message):
        mailboxes.mailbox_create(kind=kind, actor=staff, directory_entry=entry)

    assert not Mailbox.objects.exists()
    assert not events("messagerie.mailbox.create")


def test_an_address_is_hosted_once(staff: Any) -> None:
    box = make_mailbox()
    with pytest.raises(ValidationError, match="déjà hébergée"):
        mailboxes.mailbox_create(kind=MailboxKind.PERSONAL, actor=staff, directory_entry=box.directory_entry)
    assert Mailbox.objects.count() == 1


# --- Delegations ------------------------------------------------------------------------------------------


def test_delegation_grant_and_revoke_are_audited_and_drive_access(staff: Any) -> None:
    box = make_mailbox(organizational=True)
    member = make_user(clinician=True)
    assert box not in mailboxes.mailboxes_for_user(member)

    delegation = mailboxes.delegation_grant(mailbox=box, user=member, actor=staff, can_send=False)

    assert list(mailboxes.mailboxes_for_user(member)) == [box]
    assert not mailboxes.mailbox_can_send(member, box)
    mailboxes.delegation_revoke(delegation=delegation, actor=staff)
    assert box not in mailboxes.mailboxes_for_user(member)
    assert [e.detail["user"] for e in events("messagerie.delegation.grant")] == [member.pk]
    assert len(events("messagerie.delegation.revoke")) == 1
    with pytest.raises(ValidationError, match="déjà retirée"):
        mailboxes.delegation_revoke(delegation=delegation, actor=staff)


def test_delegations_are_for_org_boxes_and_clinicians_only(staff: Any) -> None:
    personal = make_mailbox()
    org = make_mailbox(organizational=True)
    with pytest.raises(ValidationError, match="organisationnelles"):
        mailboxes.delegation_grant(mailbox=personal, user=make_user(), actor=staff)
    with pytest.raises(ValidationError, match="professionnel de santé"):
        mailboxes.delegation_grant(mailbox=org, user=make_user(role=Role.ARS_ANALYST), actor=staff)
    member = make_user(clinician=True)
    mailboxes.delegation_grant(mailbox=org, user=member, actor=staff)
    with pytest.raises(ValidationError, match="déjà une délégation"):
        mailboxes.delegation_grant(mailbox=org, user=member, actor=staff)
    assert Delegation.objects.count() == 1


def test_mailboxes_for_user_own_personal_and_delegated_org_boxes_only() -> None:
    mine = make_mailbox()
    user = owner_of(mine)
    someone_elses = make_mailbox()
    delegated = make_delegation(user=user).mailbox
    revoked = make_delegation(user=user, revoked_at="2026-01-01T00:00:00Z").mailbox
    closed = make_delegation(user=user, mailbox=make_mailbox(organizational=True, is_active=False)).mailbox
    make_mailbox(application=True)

    boxes = set(mailboxes.mailboxes_for_user(user))

    assert boxes == {mine, delegated}
    assert not boxes & {someone_elses, revoked, closed}
    assert mailboxes.mailbox_can_send(user, mine)
    assert mailboxes.mailbox_can_send(user, delegated)
    assert not mailboxes.mailbox_can_send(user, someone_elses)


# --- Tokens -----------------------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_sha256_is_stored(staff: Any) -> None:
    box = make_mailbox(application=True)

    token, clear = mailboxes.token_create(mailbox=box, name="SIL du laboratoire", actor=staff)

    row = ApplicationToken.objects.get(pk=token.pk)
    assert row.token_sha256 == hashlib.sha256(clear.encode()).hexdigest()
    assert clear.startswith("mss_")
    assert len(clear) > 40
    assert row.prefix == clear[:12]
    stored = [str(v) for v in ApplicationToken.objects.filter(pk=token.pk).values_list().get()]
    assert clear not in stored
    [event] = events("messagerie.token.create")
    assert clear not in str(event.detail)
    assert mailboxes.token_authenticate(clear) == row
    assert ApplicationToken.objects.get(pk=token.pk).last_used_at is not None


def test_revoked_tokens_wrong_tokens_and_closed_boxes_do_not_authenticate(staff: Any) -> None:
    box = make_mailbox(application=True)
    token, clear = mailboxes.token_create(mailbox=box, name="SIL", actor=staff)
    assert mailboxes.token_authenticate(clear + "x") is None
    assert mailboxes.token_authenticate("") is None
    mailboxes.mailbox_set_active(mailbox=box, active=False, actor=staff)
    assert mailboxes.token_authenticate(clear) is None
    mailboxes.mailbox_set_active(mailbox=box, active=True, actor=staff)
    assert mailboxes.token_authenticate(clear) is not None
    mailboxes.token_revoke(token=token, actor=staff)
    assert mailboxes.token_authenticate(clear) is None
    assert len(events("messagerie.token.revoke")) == 1


def test_tokens_only_for_applicative_boxes(staff: Any) -> None:
    with pytest.raises(ValidationError, match="applicatives"):
        mailboxes.token_create(mailbox=make_mailbox(organizational=True), name="x", actor=staff)
    with pytest.raises(ValidationError, match="nom"):
        mailboxes.token_create(mailbox=make_mailbox(application=True), name="  ", actor=staff)
    assert not ApplicationToken.objects.exists()


# --- Trust space ------------------------------------------------------------------------------------------


def test_trusted_domains_are_normalised_audited_removed_and_readded(staff: Any) -> None:
    added = mailboxes.trusted_domain_add(domain="  @CHU-Rennes.MSSante.fr. ", operator="CHU", actor=staff)
    assert added.domain == "chu-rennes.mssante.fr"
    assert mailboxes.trusted_domains() == {"chu-rennes.mssante.fr", HOSTED}
    with pytest.raises(ValidationError, match="déjà dans l'espace de confiance"):
        mailboxes.trusted_domain_add(domain="chu-rennes.mssante.fr", actor=staff)

    mailboxes.trusted_domain_remove(trusted=added, actor=staff)
    assert mailboxes.trusted_domains() == {HOSTED}
    again = mailboxes.trusted_domain_add(domain="chu-rennes.mssante.fr", actor=staff)
    assert again.pk == added.pk
    assert again.is_active
    assert [
        e.action
        for e in AuditEvent.objects.filter(action__startswith="messagerie.trusted_domain").order_by("pk")
    ] == [
        "messagerie.trusted_domain.add",
        "messagerie.trusted_domain.remove",
        "messagerie.trusted_domain.add",
    ]


@pytest.mark.parametrize("bad", ["", "localhost", "exa mple.fr", "-x.mssante.fr", "a@b@c", "x" * 300 + ".fr"])
def test_malformed_domains_are_refused(staff: Any, bad: str) -> None:
    with pytest.raises(ValidationError, match="nom de domaine valide"):
        mailboxes.trusted_domain_add(domain=bad, actor=staff)
    assert not TrustedDomain.objects.exists()
