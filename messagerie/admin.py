"""Django admin of the messagerie app: a support view.

Boxes, delegations and tokens are created through the GCS staff pages (services: checks and audit), so
here they are read-only but for closing a box. Messages, deliveries and inbound rows show metadata only
(bodies and files stay encrypted in the vault and are never shown here); they cannot be edited. The
trust-space allow-list may be edited (every change audited).
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from enrs.audit.admin_mixins import AuditedModelAdmin

from .models import (
    ApplicationToken,
    Delegation,
    Delivery,
    DeliveryAttempt,
    InboundMessage,
    Mailbox,
    Message,
    Recipient,
    TrustedDomain,
)


class ReadOnlyAdmin(AuditedModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Mailbox)
class MailboxAdmin(AuditedModelAdmin):
    list_display = ["address", "kind", "display_name", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["address", "display_name"]
    show_full_result_count = False
    fields = ["address", "kind", "display_name", "owner", "professional", "structure", "is_active"]
    readonly_fields = ["address", "kind", "display_name", "owner", "professional", "structure"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # through the staff page (messagerie:staff_mailboxes): checks + audit

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delegation)
class DelegationAdmin(ReadOnlyAdmin):
    list_display = ["mailbox", "user", "can_send", "granted_at", "revoked_at"]
    list_select_related = ["mailbox", "user"]
    search_fields = ["mailbox__address", "user__username"]


@admin.register(ApplicationToken)
class ApplicationTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "mailbox", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["mailbox"]
    exclude = ["token_sha256"]


@admin.register(TrustedDomain)
class TrustedDomainAdmin(AuditedModelAdmin):
    list_display = ["domain", "operator", "is_active", "added_at"]
    list_filter = ["is_active"]
    search_fields = ["domain", "operator"]
    readonly_fields = ["added_by", "added_at"]


class RecipientInline(admin.TabularInline):
    model = Recipient
    extra = 0
    can_delete = False
    fields = ["address", "field", "status", "status_detail", "smtp_code", "status_at"]
    readonly_fields = ["address", "field", "status", "status_detail", "smtp_code", "status_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["message_id", "mailbox", "direction", "kind", "folder", "sent_at", "size"]
    list_filter = ["direction", "kind", "folder"]
    list_select_related = ["mailbox"]
    search_fields = ["=message_id", "mailbox__address"]
    show_full_result_count = False
    # Metadata for support only: no subject, correspondents or patient here.
    fields = ["message_id", "in_reply_to", "mailbox", "direction", "kind", "folder", "sent_at", "size"]
    inlines = [RecipientInline]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    exclude = ["recipients"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["pk", "message", "status", "attempts", "next_attempt_at", "last_error_code", "done_at"]
    list_filter = ["status"]
    list_select_related = ["message"]
    show_full_result_count = False
    inlines = [DeliveryAttemptInline]


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["pk", "message_id", "mail_from", "outcome", "status", "attempts", "received_at"]
    list_filter = ["outcome", "status"]
    search_fields = ["=message_id", "mail_from"]
    show_full_result_count = False
    exclude = ["raw", "peer_certificate"]
