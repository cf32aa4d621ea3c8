"""Hosted mailboxes and who may use them (owner: helper "mailui").

* ``mailbox_create`` — a hosted box from a directory address (``annuaire.MailboxAddress``): a personal box
  belongs to the account of its professional (``User.idnat_ps`` = ``Professional.idnat_ps``), an
  organisational or applicative box to its structure. Only addresses on a hosted domain
  (``MSSANTE_HOSTED_DOMAINS``) can be hosted here.
* ``delegation_grant`` / ``delegation_revoke`` — members allowed to use an organisational box.
* ``token_create`` / ``token_revoke`` / ``token_authenticate`` — API tokens of applicative boxes (the clear
  token is returned once; only its SHA-256 is kept).
* ``trusted_domain_add`` / ``trusted_domain_remove`` — the trust-space allow-list kept by the GCS staff.
* ``mailboxes_for_user`` — the boxes a user may open: his personal box(es) and the organisational boxes he
  holds an active delegation on.

Every write is atomic and audited (``messagerie.<entity>.<verb>``), the audit event last.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import MailboxAddress, MailboxKind, Professional, Structure
from enrs.accounts.models import User
from enrs.accounts.roles import CLINICAL, user_has_role
from enrs.audit.services import audit_record

from ..models import ApplicationToken, Delegation, Mailbox, TrustedDomain

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

TOKEN_PREFIX = "mss_"  # noqa: S105 (a marker, not a secret)
TOKEN_PREFIX_LENGTH = 12  # characters of the clear token kept to recognise it in lists ("mss_AbCdEfGh")
# A DNS name: labels of letters, digits and hyphens (not at either end), at least two labels.
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def hosted_domains() -> list[str]:
    return [d.strip().lower() for d in settings.MSSANTE_HOSTED_DOMAINS if d.strip()]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def _professional_name(professional: Professional) -> str:
    return f"{professional.first_name} {professional.last_name}".strip()


def _directory_entry_for(
    *, kind: str, professional: Professional | None, structure: Structure | None
) -> MailboxAddress:
    """The directory address to host when none was named: the owner's address of `kind` on a hosted
    domain that is not hosted yet."""
    entries = MailboxAddress.objects.filter(kind=kind, hosted_mailbox__isnull=True)
    if kind == MailboxKind.PERSONAL:
        if professional is None:
            raise ValidationError({"professional": "Indiquez le professionnel titulaire de la boîte."})
        entries = entries.filter(professional=professional)
    else:
        if structure is None:
            raise ValidationError({"structure": "Indiquez la structure titulaire de la boîte."})
        entries = entries.filter(structure=structure)
    domains = Q()
    for domain in hosted_domains():
        domains |= Q(address__iendswith=f"@{domain}")
    entry = entries.filter(domains).order_by("pk").first() if domains else None
    if entry is None:
        raise ValidationError(
            {
                "directory_entry": "Aucune adresse de l'annuaire sur un domaine hébergé par l'ENRS "
                f"({', '.join(hosted_domains()) or 'aucun domaine configuré'}) n'est disponible pour ce "
                "titulaire."
            }
        )
    return entry


def mailbox_create(
    *,
    kind: str,
    actor: Any,
    professional: Professional | None = None,
    structure: Structure | None = None,
    owner: User | None = None,
    directory_entry: MailboxAddress | None = None,
    display_name: str = "",
    request: HttpRequest | None = None,
) -> Mailbox:
    """Host the directory address `directory_entry` (or the hosted-domain address of `professional` /
    `structure`) as a mailbox of `kind`."""
    if kind not in MailboxKind.values:
        raise ValidationError(
            {"kind": "Type de boîte inconnu (personnelle, organisationnelle ou applicative)."}
        )
    if directory_entry is None:
        directory_entry = _directory_entry_for(kind=kind, professional=professional, structure=structure)
    if directory_entry.kind != kind:
        raise ValidationError(
            {
                "directory_entry": f"L'adresse {directory_entry.address} est une adresse "
                f"{directory_entry.get_kind_display().lower()} dans l'annuaire, pas une boîte "
                f"{MailboxKind(kind).label.lower()}."
            }
        )
    address = directory_entry.address.strip().lower()
    if domain_of(address) not in hosted_domains():
        raise ValidationError(
            {
                "directory_entry": f"Le domaine de {address} n'est pas hébergé par l'ENRS "
                f"(domaines hébergés : {', '.join(hosted_domains()) or 'aucun'}) : la boîte ne peut pas "
                "être créée ici."
            }
        )
    mailbox = Mailbox(address=address, kind=kind, directory_entry=directory_entry, created_by=actor)
    if kind == MailboxKind.PERSONAL:
        entry_professional = directory_entry.professional
        assert entry_professional is not None  # the directory's check constraint
        if professional is not None and professional.pk != entry_professional.pk:
            raise ValidationError({"professional": "Cette adresse appartient à un autre professionnel."})
        if owner is None:
            owner = User.objects.filter(idnat_ps=entry_professional.idnat_ps, is_active=True).first()
            if owner is None:
                raise ValidationError(
                    {
                        "owner": "Aucun compte actif du portail n'est rattaché à "
                        f"{_professional_name(entry_professional)} "
                        f"(IdNat_PS {entry_professional.idnat_ps}) : "
                        "le professionnel doit d'abord avoir un compte."
                    }
                )
        elif owner.idnat_ps != entry_professional.idnat_ps:
            raise ValidationError(
                {"owner": "Le compte titulaire n'a pas l'identifiant national (IdNat_PS) du professionnel."}
            )
        mailbox.owner = owner
        mailbox.professional = entry_professional
        mailbox.display_name = display_name.strip() or _professional_name(entry_professional)
    else:
        entry_structure = directory_entry.structure
        assert entry_structure is not None
        if structure is not None and structure.pk != entry_structure.pk:
            raise ValidationError({"structure": "Cette adresse appartient à une autre structure."})
        mailbox.structure = entry_structure
        mailbox.display_name = display_name.strip() or entry_structure.name
    mailbox.display_name = mailbox.display_name[:255]
    with transaction.atomic():
        if Mailbox.objects.filter(Q(address__iexact=address) | Q(directory_entry=directory_entry)).exists():
            raise ValidationError({"directory_entry": f"La boîte {address} est déjà hébergée."})
        mailbox.full_clean(exclude=["created_by", "owner"])
        try:
            with transaction.atomic():
                mailbox.save()
        except IntegrityError as error:
            raise ValidationError({"directory_entry": f"La boîte {address} est déjà hébergée."}) from error
        audit_record(
            action="messagerie.mailbox.create",
            request=request,
            actor=actor,
            target=mailbox,
            detail={"address": address, "kind": kind, "owner": owner.pk if owner else None},
        )
    return mailbox


def mailbox_set_active(
    *, mailbox: Mailbox, active: bool, actor: Any, request: HttpRequest | None = None
) -> Mailbox:
    """Close (or reopen) a hosted box: a closed box is no longer offered to its users nor to the API."""
    with transaction.atomic():
        locked = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
        if locked.is_active == active:
            return locked
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        audit_record(
            action="messagerie.mailbox.open" if active else "messagerie.mailbox.close",
            request=request,
            actor=actor,
            target=locked,
        )
    return locked


# --- Delegations ---------------------------------------------------------------------------------------


def delegation_grant(
    *,
    mailbox: Mailbox,
    user: User,
    actor: Any,
    can_send: bool = True,
    request: HttpRequest | None = None,
) -> Delegation:
    """Let `user` use the organisational box `mailbox` (read, and send when `can_send`)."""
    if mailbox.kind != MailboxKind.ORGANIZATIONAL:
        raise ValidationError(
            {"mailbox": "Seules les boîtes organisationnelles se partagent par délégation."}
        )
    if not user.is_active or not user_has_role(user, CLINICAL):
        raise ValidationError(
            {"user": "Seul un professionnel de santé (compte actif) peut recevoir une délégation."}
        )
    with transaction.atomic():
        Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()  # serialise grants on this box
        if Delegation.objects.filter(mailbox=mailbox, user=user, revoked_at__isnull=True).exists():
            raise ValidationError({"user": f"{user} a déjà une délégation sur {mailbox.address}."})
        delegation = Delegation.objects.create(
            mailbox=mailbox, user=user, can_send=can_send, granted_by=actor
        )
        audit_record(
            action="messagerie.delegation.grant",
            request=request,
            actor=actor,
            target=delegation,
            detail={"mailbox": mailbox.address, "user": user.pk, "can_send": can_send},
        )
    return delegation


def delegation_revoke(
    *, delegation: Delegation, actor: Any, request: HttpRequest | None = None
) -> Delegation:
    with transaction.atomic():
        locked = Delegation.objects.select_for_update().get(pk=delegation.pk)
        if locked.revoked_at is not None:
            raise ValidationError("Cette délégation est déjà retirée.")
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            action="messagerie.delegation.revoke",
            request=request,
            actor=actor,
            target=locked,
            detail={"mailbox_id": locked.mailbox_id, "user": locked.user_id},
        )
    return locked


# --- Application tokens --------------------------------------------------------------------------------


def token_hash(clear: str) -> str:
    return hashlib.sha256(clear.encode()).hexdigest()


def token_create(
    *, mailbox: Mailbox, name: str, actor: Any, request: HttpRequest | None = None
) -> tuple[ApplicationToken, str]:
    """A new API token for the applicative box `mailbox`: the row, and the clear token (shown once)."""
    name = (name or "").strip()
    if mailbox.kind != MailboxKind.APPLICATION:
        raise ValidationError({"mailbox": "Seules les boîtes applicatives ont des jetons d'API."})
    if not name:
        raise ValidationError({"name": "Donnez un nom au jeton (le logiciel qui l'utilisera)."})
    if len(name) > 100:
        raise ValidationError({"name": "Le nom du jeton fait au plus 100 caractères."})
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApplicationToken.objects.create(
            mailbox=mailbox,
            name=name,
            prefix=clear[:TOKEN_PREFIX_LENGTH],
            token_sha256=token_hash(clear),
            created_by=actor,
        )
        audit_record(
            action="messagerie.token.create",
            request=request,
            actor=actor,
            target=token,
            detail={"mailbox": mailbox.address, "name": name, "prefix": token.prefix},
        )
    return token, clear


def token_revoke(
    *, token: ApplicationToken, actor: Any, request: HttpRequest | None = None
) -> ApplicationToken:
    with transaction.atomic():
        locked = ApplicationToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise ValidationError("Ce jeton est déjà révoqué.")
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            action="messagerie.token.revoke",
            request=request,
            actor=actor,
            target=locked,
            detail={"mailbox_id": locked.mailbox_id, "prefix": locked.prefix},
        )
    return locked


def token_authenticate(clear: str) -> ApplicationToken | None:
    """The live token whose clear value is `clear` (its box active and applicative), or None."""
    if not clear or not clear.startswith(TOKEN_PREFIX) or len(clear) > 200:
        return None
    token = (
        ApplicationToken.objects.select_related("mailbox")
        .filter(
            token_sha256=token_hash(clear),
            revoked_at__isnull=True,
            mailbox__is_active=True,
            mailbox__kind=MailboxKind.APPLICATION,
        )
        .first()
    )
    if token is None or not secrets.compare_digest(token.token_sha256, token_hash(clear)):
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApplicationToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Trust space ---------------------------------------------------------------------------------------


def domain_normalise(domain: str) -> str:
    value = (domain or "").strip().lower().rstrip(".")
    if value.startswith("@"):
        value = value[1:]
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError({"domain": f"« {domain} » n'est pas un nom de domaine valide."}) from None
    if not DOMAIN_RE.match(value):
        raise ValidationError(
            {"domain": f"« {domain} » n'est pas un nom de domaine valide (par exemple hopital.mssante.fr)."}
        )
    return value


def trusted_domain_add(
    *, domain: str, actor: Any, operator: str = "", request: HttpRequest | None = None
) -> TrustedDomain:
    """Add `domain` to the trust-space allow-list (or reactivate it)."""
    value = domain_normalise(domain)
    operator = (operator or "").strip()[:255]
    with transaction.atomic():
        existing = TrustedDomain.objects.select_for_update().filter(domain=value).first()
        if existing is not None and existing.is_active:
            raise ValidationError({"domain": f"Le domaine {value} est déjà dans l'espace de confiance."})
        if existing is not None:
            existing.is_active = True
            existing.operator = operator or existing.operator
            existing.added_by = actor
            existing.save(update_fields=["is_active", "operator", "added_by"])
            trusted = existing
        else:
            trusted = TrustedDomain.objects.create(domain=value, operator=operator, added_by=actor)
        audit_record(
            action="messagerie.trusted_domain.add",
            request=request,
            actor=actor,
            target=trusted,
            detail={"domain": value, "operator": trusted.operator},
        )
    return trusted


def trusted_domain_remove(
    *, trusted: TrustedDomain, actor: Any, request: HttpRequest | None = None
) -> TrustedDomain:
    """Take a domain out of the allow-list (the row stays, inactive, for the history)."""
    with transaction.atomic():
        locked = TrustedDomain.objects.select_for_update().get(pk=trusted.pk)
        if not locked.is_active:
            raise ValidationError("Ce domaine n'est déjà plus dans l'espace de confiance.")
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        audit_record(
            action="messagerie.trusted_domain.remove",
            request=request,
            actor=actor,
            target=locked,
            detail={"domain": locked.domain},
        )
    return locked


def trusted_domains() -> set[str]:
    """The domains mail may go to and come from: the allow-list and the hosted domains."""
    return set(TrustedDomain.objects.filter(is_active=True).values_list("domain", flat=True)) | set(
        hosted_domains()
    )


# --- Who uses which box --------------------------------------------------------------------------------


def _active_delegation(user: Any) -> Exists:
    return Exists(Delegation.objects.filter(mailbox=OuterRef("pk"), user=user, revoked_at__isnull=True))


def mailboxes_for_user(user: User | AnonymousUser | Any) -> QuerySet[Mailbox]:
    """The active boxes `user` may open: his personal box and the organisational boxes delegated to him."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Mailbox.objects.none()
    return (
        Mailbox.objects.filter(is_active=True)
        .filter(
            Q(kind=MailboxKind.PERSONAL, owner=user)
            | Q(_active_delegation(user), kind=MailboxKind.ORGANIZATIONAL)
        )
        .order_by("kind", "address")
    )


def mailbox_can_send(user: Any, mailbox: Mailbox) -> bool:
    """True when `user` may send from `mailbox` (the owner, or a delegate with ``can_send``)."""
    if not mailbox.is_active or not getattr(user, "is_authenticated", False):
        return False
    if mailbox.kind == MailboxKind.PERSONAL:
        return mailbox.owner_id == user.pk
    if mailbox.kind == MailboxKind.ORGANIZATIONAL:
        return Delegation.objects.filter(
            mailbox=mailbox, user=user, revoked_at__isnull=True, can_send=True
        ).exists()
    return False
