"""Django admin of the telemedecine app.

Acts, studies and transfers are read-only here (every write goes through ``telemedecine.services``, which
audits it; patient reads happen in the portal, where they are audited): lists show no patient identity.
Pools, their rota, PACS peers and allowed DICOM senders are configuration that support may edit.
"""

from django import forms
from django.contrib import admin
from django.db import models

from enrs.audit.admin_mixins import AuditedModelAdmin, ReadOnlyModelAdmin, ReadOnlyTabularInline

from .models import (
    Act,
    ActAmendment,
    ActEvent,
    AllowedSender,
    Incident,
    PacsPeer,
    Participant,
    Pool,
    Shift,
    Study,
    Transfer,
)


class ShiftInline(admin.TabularInline):
    model = Shift
    extra = 1
    raw_id_fields = ("user",)


@admin.register(Pool)
class PoolAdmin(AuditedModelAdmin):
    list_display = ("name", "specialty", "structure", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "specialty")
    raw_id_fields = ("structure",)
    filter_horizontal = ("members",)
    inlines = [ShiftInline]


class ActEventInline(ReadOnlyTabularInline):
    model = ActEvent
    fields = ("at", "event", "actor", "detail")
    readonly_fields = fields


class ParticipantInline(ReadOnlyTabularInline):
    model = Participant
    fields = ("user", "name", "role", "function", "added_at")
    readonly_fields = fields


class IncidentInline(ReadOnlyTabularInline):
    model = Incident
    fields = ("occurred_at", "code", "description", "reported_by")
    readonly_fields = fields


class AmendmentInline(ReadOnlyTabularInline):
    model = ActAmendment
    fields = ("at", "author", "text")
    readonly_fields = fields


@admin.register(Act)
class ActAdmin(ReadOnlyModelAdmin):
    # No patient in lists or forms: the act's patient data are read in the portal (audited).
    list_display = ("reference", "act_type", "urgency", "status", "requester_structure", "pool", "created_at")
    list_filter = ("status", "act_type", "urgency")
    search_fields = ("reference",)
    list_select_related = ("requester_structure", "pool")
    fields = (
        "reference",
        "act_type",
        "urgency",
        "status",
        "status_reason",
        "requester",
        "requester_structure",
        "requested_professional",
        "pool",
        "expert",
        "consent",
        "consent_at",
        "sent_at",
        "expires_at",
        "accepted_at",
        "started_at",
        "ended_at",
        "report_signed_at",
        "closed_at",
        "fallback",
        "dmp_document_id",
        "report_message_id",
    )
    readonly_fields = fields
    inlines = [ParticipantInline, IncidentInline, AmendmentInline, ActEventInline]


@admin.register(Study)
class StudyAdmin(ReadOnlyModelAdmin):
    list_display = (
        "pk",
        "modalities",
        "study_date",
        "status",
        "source",
        "site",
        "instance_count",
        "created_at",
    )
    list_filter = ("status", "source")
    search_fields = ("study_instance_uid", "accession_number")
    fields = (
        "study_instance_uid",
        "site",
        "source",
        "status",
        "status_detail",
        "sending_ae_title",
        "modalities",
        "study_date",
        "series_count",
        "instance_count",
        "total_bytes",
        "created_at",
    )
    readonly_fields = fields


@admin.register(Transfer)
class TransferAdmin(ReadOnlyModelAdmin):
    list_display = (
        "pk",
        "study",
        "peer",
        "purpose",
        "status",
        "instances_sent",
        "instances_total",
        "verified_at",
    )
    list_filter = ("status", "purpose")
    fields = (
        "study",
        "peer",
        "purpose",
        "status",
        "instances_total",
        "instances_sent",
        "bytes_sent",
        "verified_at",
    )
    readonly_fields = fields


@admin.register(PacsPeer)
class PacsPeerAdmin(AuditedModelAdmin):
    formfield_overrides = {models.URLField: {"form_class": forms.URLField, "assume_scheme": "https"}}
    list_display = ("name", "structure", "protocol", "host", "port", "ae_title", "dicomweb_url", "is_active")
    list_filter = ("protocol", "is_active")
    raw_id_fields = ("structure",)


@admin.register(AllowedSender)
class AllowedSenderAdmin(AuditedModelAdmin):
    list_display = ("ae_title", "structure", "is_active")
    list_filter = ("is_active",)
    raw_id_fields = ("structure",)
