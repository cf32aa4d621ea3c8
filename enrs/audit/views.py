"""The administrators' audit page: search with filters, and CSV export of the same rows.

Looking at the trail is itself written to the trail (``audit.search``, ``audit.export``), before any row
is read.
"""

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from enrs.accounts.roles import AccessRule, Role, access_required
from enrs.core.csv_export import csv_response
from enrs.core.pagination import page_number, page_of

from .forms import AuditSearchForm, filters_for_audit
from .models import AuditEvent, Outcome
from .selectors import audit_event_search
from .services import audit_record

# The trail names patients (INS) and professionals: administrators only, with a strong session.
AUDIT_ACCESS = AccessRule(frozenset({Role.ADMIN}), strong=True, patient_data=True, name="audit")
PAGE_SIZE = 50
EXPORT_CHUNK_SIZE = 2000

CSV_HEADER = (
    "N°",
    "Date",
    "Utilisateur",
    "Méthode d'authentification",
    "Action",
    "Type de cible",
    "Identifiant de cible",
    "INS du patient",
    "Adresse IP",
    "Navigateur",
    "Résultat",
    "Identifiant de requête",
    "Détail",
    "Empreinte précédente",
    "Empreinte",
)


@access_required(AUDIT_ACCESS)
@require_GET
@never_cache
def event_list(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET or None)
    context: dict[str, Any] = {"title": "Journal d'audit", "form": form, "outcomes": Outcome, "events": None}
    if form.is_bound and not form.is_valid():
        return render(request, "audit/event_list.html", context, status=400)
    filters = form.filters()
    page = page_number(request)
    audit_record(
        action="audit.search", request=request, detail={"filters": filters_for_audit(filters), "page": page}
    )
    events, pagination = page_of(audit_event_search(**filters), page=page, size=PAGE_SIZE)
    context.update(events=events, filtered=bool(filters), **pagination)
    return render(request, "audit/event_list.html", context)


def _csv_row(event: AuditEvent) -> list[Any]:
    values: list[Any] = [
        event.pk,
        timezone.localtime(event.occurred_at).isoformat(timespec="microseconds"),
        event.actor_label,
        event.auth_method,
        event.action,
        event.target_type,
        event.target_id,
        event.patient_ins,
        event.ip,
        event.user_agent,
        event.get_outcome_display(),
        event.request_id,
        json.dumps(event.detail, ensure_ascii=False, sort_keys=True) if event.detail else "",
        event.prev_hash,
        event.hash,
    ]
    return values


@access_required(AUDIT_ACCESS)
@require_GET
@never_cache
def event_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = AuditSearchForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        context = {"title": "Journal d'audit", "form": form, "outcomes": Outcome, "events": None}
        return render(request, "audit/event_list.html", context, status=400)
    filters = form.filters()
    audit_record(action="audit.export", request=request, detail={"filters": filters_for_audit(filters)})
    events = audit_event_search(**filters).iterator(chunk_size=EXPORT_CHUNK_SIZE)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return csv_response(f"journal-audit-{stamp}.csv", CSV_HEADER, (_csv_row(e) for e in events))
