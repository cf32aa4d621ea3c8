"""Pages of establishments' staff: their offers' availability, the update form, the history."""

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from enrs.accounts.roles import ROR_ACCESS, access_required
from enrs.core.navigation import service

from .capacity_forms import FORM_STATUSES, CapacityForm
from .freshness import stale_cutoff, stale_threshold
from .models import Capacity, Offer, OfferLocation, UpdateSource
from .selectors import capacity_offer_list, capacity_pair_get, capacity_rows, capacity_update_list
from .services import capacity_update, capacity_update_allowed, user_is_gcs_staff
from .standards import valuesets as vs

FORBIDDEN_MESSAGE = "Cette offre appartient à une structure pour laquelle vous n'êtes pas habilité."
PAGE_SIZE = 50


def _context(**extra: Any) -> dict[str, Any]:
    return {"service": service("ror"), **extra}


def _pair(request: HttpRequest, offer_id: int, location_id: int) -> tuple[Offer, OfferLocation]:
    try:
        offer, location = capacity_pair_get(offer_id=offer_id, location_id=location_id)
    except (Offer.DoesNotExist, OfferLocation.DoesNotExist):
        raise Http404("Cette offre n'est pas proposée en ce lieu.") from None
    if not capacity_update_allowed(offer=offer, actor=request.user):
        raise PermissionDenied(FORBIDDEN_MESSAGE)
    return offer, location


def _rows(capacities: list[Capacity]) -> list[dict[str, Any]]:
    sets = vs.valuesets()
    return [
        {
            "type": sets.capacity_types.get(c.capacity_type, c.capacity_type),
            "status": sets.capacity_statuses.get(c.status, c.status),
            "count": c.count,
            "gender": sets.capacity_genders.get(c.gender, ""),
            "crisis": c.crisis,
        }
        for c in sorted(capacities, key=lambda c: (c.capacity_type, c.status))
    ]


@access_required(ROR_ACCESS)
@require_GET
def capacity_list(request: HttpRequest) -> HttpResponse:
    """The offers the user may update, one line per offer and location, stale ones first."""
    page = Paginator(capacity_offer_list(user=request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    cutoff = stale_cutoff()
    lines = []
    for offer in page.object_list:
        for location in offer.locations.all():
            capacities = [c for c in offer.capacities.all() if c.location_id == location.pk]
            lines.append(
                {
                    "offer": offer,
                    "location": location,
                    "available": sum(c.count for c in capacities if c.status == vs.AVAILABLE),
                    "installed": sum(c.count for c in capacities if c.status == vs.INSTALLED),
                    "updated_at": offer.capacity_updated_at,
                    "stale": offer.capacity_updated_at is None or offer.capacity_updated_at < cutoff,
                }
            )
    return render(
        request,
        "ror/capacity/list.html",
        _context(
            title="Disponibilités de mes offres",
            page=page,
            lines=lines,
            threshold_hours=stale_threshold().total_seconds() / 3600,
            is_staff=user_is_gcs_staff(request.user),
        ),
    )


def _initial(capacities: list[Capacity]) -> dict[str, Any]:
    if not capacities:
        return {"capacity_type": "01"}
    types = sorted({c.capacity_type for c in capacities})
    capacity_type = types[0]
    initial: dict[str, Any] = {"capacity_type": capacity_type}
    for c in capacities:
        if c.capacity_type != capacity_type:
            continue
        if c.status in FORM_STATUSES:
            initial[f"count_{c.status}"] = c.count
        if c.status == vs.AVAILABLE:
            initial["gender"] = c.gender
        if c.status == vs.ADDITIONAL:
            initial["crisis"] = c.crisis
    return initial


@access_required(ROR_ACCESS)
@require_http_methods(["GET", "POST"])
def capacity_edit(request: HttpRequest, offer_id: int, location_id: int) -> HttpResponse:
    offer, location = _pair(request, offer_id, location_id)
    capacities = capacity_rows(offer=offer, location=location)
    if request.method == "POST":
        form = CapacityForm(request.POST)
        if form.is_valid():
            try:
                capacity_update(
                    offer=offer,
                    location=location,
                    values=form.values(),
                    actor=request.user,
                    source=UpdateSource.FORM,
                    request=request,
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, "Disponibilités enregistrées.")
                return redirect(reverse("ror:capacity_edit", args=[offer.pk, location.pk]))
    else:
        form = CapacityForm(initial=_initial(capacities))
    last = capacity_update_list(offer=offer, location=location).first()
    updated_at: datetime | None = offer.capacity_updated_at
    return render(
        request,
        "ror/capacity/edit.html",
        _context(
            title=f"Disponibilités — {offer.name}",
            offer=offer,
            location=location,
            form=form,
            rows=_rows(capacities),
            last=last,
            updated_at=updated_at,
            stale=updated_at is None or updated_at < stale_cutoff(),
            threshold_hours=stale_threshold().total_seconds() / 3600,
            now=timezone.now(),
        ),
        status=400 if request.method == "POST" else 200,
    )


def _describe(changes: dict[str, Any] | None) -> dict[str, Any]:
    sets = vs.valuesets()
    out = {}
    for key, value in (changes or {}).items():
        capacity_type, _, status = key.partition("-")
        type_label = sets.capacity_types.get(capacity_type, capacity_type)
        label = f"{type_label} — {sets.capacity_statuses.get(status, status)}"
        out[label] = value
    return out


@access_required(ROR_ACCESS)
@require_GET
def capacity_history(request: HttpRequest, offer_id: int, location_id: int) -> HttpResponse:
    offer, location = _pair(request, offer_id, location_id)
    updates = capacity_update_list(offer=offer, location=location)
    page = Paginator(updates, PAGE_SIZE).get_page(request.GET.get("page"))
    entries = []
    for update in page.object_list:
        before, after = _describe(update.before), _describe(update.after)
        entries.append(
            {
                "update": update,
                "who": update.actor.get_username()
                if update.actor
                else (f"Jeton « {update.token.name} »" if update.token else "—"),
                "changes": [
                    {
                        "label": label,
                        "before": (before.get(label) or {}).get("count"),
                        "after": value.get("count"),
                    }
                    for label, value in after.items()
                ],
            }
        )
    return render(
        request,
        "ror/capacity/history.html",
        _context(
            title=f"Historique — {offer.name}", offer=offer, location=location, page=page, entries=entries
        ),
    )
