"""Django admin of the ror app: offers and locations editable; history, tokens and notices read-only."""

from django.contrib import admin

from enrs.audit.admin_mixins import AuditedModelAdmin, ReadOnlyModelAdmin

from .models import (
    Capacity,
    CapacityUpdate,
    Offer,
    OfferClosure,
    OfferLocation,
    RorApiToken,
    StaleNotice,
    StructureMembership,
)


class OfferClosureInline(admin.TabularInline):
    model = OfferClosure
    extra = 0


@admin.register(Offer)
class OfferAdmin(AuditedModelAdmin):
    list_display = (
        "identifier",
        "name",
        "structure",
        "activity_field_code",
        "is_active",
        "capacity_updated_at",
    )
    list_filter = ("activity_field_code", "is_active")
    search_fields = ("identifier", "name", "structure__name", "structure__finess_et")
    raw_id_fields = ("structure",)
    inlines = [OfferClosureInline]


@admin.register(OfferLocation)
class OfferLocationAdmin(AuditedModelAdmin):
    list_display = ("identifier", "name", "structure", "commune", "latitude", "longitude")
    search_fields = ("identifier", "name", "structure__name")
    raw_id_fields = ("structure", "commune", "offers")


@admin.register(Capacity)
class CapacityAdmin(ReadOnlyModelAdmin):
    """Capacities change through capacity_update only (rules, history, audit)."""

    list_display = ("offer", "location", "capacity_type", "status", "count", "updated_at")
    list_filter = ("capacity_type", "status")
    search_fields = ("offer__identifier",)


@admin.register(CapacityUpdate)
class CapacityUpdateAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "offer", "location", "source", "actor", "token")
    list_filter = ("source",)
    search_fields = ("offer__identifier",)


@admin.register(StructureMembership)
class StructureMembershipAdmin(AuditedModelAdmin):
    list_display = ("user", "structure", "can_update_capacity", "receives_notices")
    raw_id_fields = ("user", "structure")
    search_fields = ("user__username", "structure__name", "structure__finess_et")


@admin.register(RorApiToken)
class RorApiTokenAdmin(ReadOnlyModelAdmin):
    """Tokens are created with ``manage.py create_ror_token`` (the secret is shown once)."""

    list_display = ("name", "key_prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)


@admin.register(StaleNotice)
class StaleNoticeAdmin(ReadOnlyModelAdmin):
    list_display = ("day", "structure", "offer_count", "status", "attempts", "sent_at")
    list_filter = ("status",)
