"""Daily ROR snapshots for the usage dashboards: freshness of availabilities and beds available, per
department (``ror.freshness``: value = fresh offers, dimension ``offers`` = active open offers;
``ror.beds_available``: value = beds with status 02 « Disponible »). Idempotent per day."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Count, Q, Sum
from django.utils import timezone

from enrs.usage.services import SnapshotRow, usage_snapshot_replace

from . import freshness
from .models import Capacity, Offer
from .selectors import AVAILABLE_STATUS, BEDS_CAPACITY_TYPE

_DEPARTMENT = "structure__commune__department__code"


def usage_snapshots(*, day: dt.date | None = None) -> dict[str, int]:
    day = day or timezone.localdate()
    now = timezone.now()
    cutoff = freshness.stale_cutoff(now=now)
    open_offers = Offer.objects.filter(is_active=True).exclude(freshness._closed_now(now))
    per_department = (
        open_offers.values(_DEPARTMENT)
        .annotate(
            total=Count("pk"),
            fresh=Count("pk", filter=Q(capacity_updated_at__gte=cutoff)),
        )
        .order_by(_DEPARTMENT)
    )
    fresh_rows = [
        SnapshotRow(
            value=float(row["fresh"]), department=row[_DEPARTMENT] or "", dims={"offers": row["total"]}
        )
        for row in per_department
        if row["total"]
    ]
    beds: dict[str, float] = defaultdict(float)
    for row in (
        Capacity.objects.filter(
            offer__in=open_offers, status=AVAILABLE_STATUS, capacity_type=BEDS_CAPACITY_TYPE
        )
        .values(f"offer__{_DEPARTMENT}")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        beds[row[f"offer__{_DEPARTMENT}"] or ""] += float(row["n"] or 0)
    bed_rows = [SnapshotRow(value=n, department=code) for code, n in sorted(beds.items())]
    return {
        "freshness": usage_snapshot_replace(kind="ror.freshness", day=day, rows=fresh_rows),
        "beds": usage_snapshot_replace(kind="ror.beds_available", day=day, rows=bed_rows),
    }
