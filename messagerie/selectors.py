"""Reads of the messagerie app: mailboxes of a user, folders and their unread counts, message lists and
search, one message with its files and recipients, and the recipient suggestions of the compose page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import CharField, Count, F, Func, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Lower

from annuaire.models import MailboxAddress
from enrs.patients import ins as ins_codes

from .models import Attachment, Delegation, Folder, Mailbox, Message, Recipient
from .services.mailboxes import mailboxes_for_user, trusted_domains

FOLDERS = [Folder.INBOX, Folder.SENT, Folder.DRAFTS, Folder.ARCHIVE, Folder.TRASH]
LIST_FIELDS = (
    "pk",
    "mailbox_id",
    "direction",
    "kind",
    "folder",
    "subject",
    "from_address",
    "to_addresses",
    "sent_at",
    "created_at",
    "patient_ins",
    "cda_codes",
    "has_attachments",
    "is_read",
    "size",
)


def mailbox_get_for_user(*, user: Any, pk: int) -> Mailbox:
    """A box `user` may open (raises ``Mailbox.DoesNotExist`` otherwise, whether it exists or not)."""
    return mailboxes_for_user(user).get(pk=pk)


def mailbox_list_for_user(user: Any) -> list[Mailbox]:
    """The user's boxes, each with ``unread`` (unread messages in its inbox): one query."""
    return list(
        mailboxes_for_user(user).annotate(
            unread=Count("messages", filter=Q(messages__folder=Folder.INBOX, messages__is_read=False))
        )
    )


@dataclass(frozen=True)
class FolderInfo:
    key: str
    label: str
    unread: int
    total: int


def folder_counts(mailbox: Mailbox) -> list[FolderInfo]:
    """Each folder of `mailbox` with its message and unread counts (one query)."""
    rows = (
        Message.objects.filter(mailbox=mailbox)
        .values("folder")
        .annotate(total=Count("pk"), unread=Count("pk", filter=Q(is_read=False)))
        .order_by()
    )
    by_folder: dict[str, dict[str, Any]] = {row["folder"]: dict(row) for row in rows}
    return [
        FolderInfo(
            key=folder.value,
            label=folder.label,
            unread=by_folder.get(folder.value, {}).get("unread", 0) if folder != Folder.SENT else 0,
            total=by_folder.get(folder.value, {}).get("total", 0),
        )
        for folder in FOLDERS
    ]


@dataclass(frozen=True)
class MessageSearch:
    text: str = ""  # subject
    correspondent: str = ""  # from / to address
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    patient: str = ""  # INS (exact) or a patient name

    @property
    def is_empty(self) -> bool:
        return not (self.text or self.correspondent or self.date_from or self.date_to or self.patient)


def message_list(
    *, mailbox: Mailbox, folder: str | None = None, search: MessageSearch | None = None
) -> QuerySet[Message]:
    """Messages of `mailbox` (in `folder`, or every folder when None), newest first, filtered by
    `search`: only the columns a list shows."""
    messages = Message.objects.filter(mailbox=mailbox)
    if folder is not None:
        messages = messages.filter(folder=folder)
    if search is not None and not search.is_empty:
        messages = _search(messages, search)
    return messages.only(*LIST_FIELDS).order_by(F("sent_at").desc(nulls_first=True), "-created_at", "-pk")


def _search(messages: QuerySet[Message], search: MessageSearch) -> QuerySet[Message]:
    if search.text:
        messages = messages.filter(subject__icontains=search.text.strip())
    if search.correspondent:
        who = search.correspondent.strip().lower()
        messages = messages.filter(
            Q(from_address__icontains=who) | Q(to_addresses__icontains=who) | Q(cc_addresses__icontains=who)
        )
    if search.date_from:
        messages = messages.filter(
            Q(sent_at__date__gte=search.date_from)
            | Q(sent_at__isnull=True, created_at__date__gte=search.date_from)
        )
    if search.date_to:
        messages = messages.filter(
            Q(sent_at__date__lte=search.date_to)
            | Q(sent_at__isnull=True, created_at__date__lte=search.date_to)
        )
    if search.patient:
        value = search.patient.strip()
        normalised = ins_codes.normalize(value)
        if normalised[:1].isdigit() and len(normalised) >= 13:
            messages = messages.filter(
                Q(patient_ins__startswith=normalised) | Q(patient__ins__startswith=normalised)
            )
        else:
            name = value.upper()
            messages = messages.filter(
                Q(patient__birth_family_name__startswith=name) | Q(patient__used_family_name__startswith=name)
            )
    return messages


def message_get(*, mailbox: Mailbox, pk: int) -> Message:
    """One message of `mailbox` with its patient, files and recipients (raises ``Message.DoesNotExist``)."""
    return (
        Message.objects.select_related("mailbox", "patient", "body")
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.select_related("blob").order_by("pk")),
            Prefetch("recipients", queryset=Recipient.objects.order_by("pk")),
        )
        .get(mailbox=mailbox, pk=pk)
    )


def recipient_get(*, mailbox: Mailbox, pk: int) -> Recipient:
    return Recipient.objects.select_related("message").get(message__mailbox=mailbox, pk=pk)


def attachment_get(*, mailbox: Mailbox, pk: int) -> Attachment:
    """A file of a message of `mailbox` (raises ``Attachment.DoesNotExist``)."""
    return Attachment.objects.select_related("message", "blob", "message__patient").get(
        message__mailbox=mailbox, pk=pk
    )


def delegations_of(mailbox: Mailbox) -> QuerySet[Delegation]:
    return (
        Delegation.objects.filter(mailbox=mailbox)
        .select_related("user", "granted_by")
        .order_by(F("revoked_at").desc(nulls_first=True), "-granted_at")
    )


def mailbox_admin_list(*, query: str = "") -> QuerySet[Mailbox]:
    mailboxes = Mailbox.objects.select_related("owner", "structure", "professional")
    if query:
        mailboxes = mailboxes.filter(
            Q(address__icontains=query)
            | Q(display_name__icontains=query)
            | Q(structure__name__icontains=query)
        )
    return mailboxes.annotate(
        delegates=Count("delegations", filter=Q(delegations__revoked_at__isnull=True))
    ).order_by("address")


# --- Recipient suggestions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    address: str
    label: str
    kind: str


def _domain_expr(field: str) -> Func:
    return Func(Lower(F(field)), Value("@"), Value(2), function="split_part", output_field=CharField())


def recipient_suggestions(*, query: str, limit: int = 10) -> list[Suggestion]:
    """Addresses of the trust space matching `query` (address, professional or structure name): from the
    directory and the hosted boxes. Nothing for fewer than 2 characters."""
    query = (query or "").strip()
    if len(query) < 2:
        return []
    domains = sorted(trusted_domains())
    if not domains:
        return []
    words = query.split()
    entries = MailboxAddress.objects.annotate(domain=_domain_expr("address")).filter(domain__in=domains)
    for word in words:
        entries = entries.filter(
            Q(address__icontains=word)
            | Q(professional__last_name__icontains=word)
            | Q(professional__first_name__icontains=word)
            | Q(structure__name__icontains=word)
        )
    rows = entries.select_related("professional", "structure").order_by("address")[:limit]
    found: dict[str, Suggestion] = {}
    for entry in rows:
        if entry.professional is not None:
            who = f"{entry.professional.first_name} {entry.professional.last_name}".strip()
            if entry.professional.profession_label:
                who += f" ({entry.professional.profession_label})"
        else:
            who = entry.structure.name if entry.structure else ""
        found[entry.address.lower()] = Suggestion(entry.address.lower(), who, entry.get_kind_display())
    if len(found) < limit:
        hosted = Mailbox.objects.annotate(domain=_domain_expr("address")).filter(
            domain__in=domains, is_active=True
        )
        for word in words:
            hosted = hosted.filter(Q(address__icontains=word) | Q(display_name__icontains=word))
        for mailbox in hosted.order_by("address")[: limit - len(found)]:
            found.setdefault(
                mailbox.address.lower(),
                Suggestion(mailbox.address.lower(), mailbox.display_name, mailbox.get_kind_display()),
            )
    return list(found.values())[:limit]
