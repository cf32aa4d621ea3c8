"""Searchset Bundles (FHIR R4 ``Bundle``, type ``searchset``). Pure code: no Django import.

A searchset lists the matches of the current page (``search.mode = match``), then the resources
brought by ``_include`` / ``_revinclude`` (``search.mode = include``) and, when the server has
something to say about the search (a parameter it ignored, an include it cut short), one
OperationOutcome (``search.mode = outcome``). Each entry has an absolute ``fullUrl``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MATCH = "match"
INCLUDE = "include"
OUTCOME = "outcome"


def format_instant(value: datetime) -> str:
    """A FHIR ``instant``: UTC, milliseconds, ``Z`` suffix (``2024-03-01T08:30:00.000Z``)."""
    if value.tzinfo is None:
        raise ValueError("A FHIR instant needs a timezone-aware datetime.")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def full_url(base_url: str, resource: dict[str, Any]) -> str:
    """``[base]/[type]/[id]`` for a resource; `base_url` ends with a slash."""
    return f"{base_url}{resource['resourceType']}/{resource['id']}"


@dataclass(frozen=True, slots=True)
class Entry:
    resource: dict[str, Any]
    mode: str  # match | include | outcome
    full_url: str | None = None


def searchset(
    *,
    entries: Sequence[Entry],
    links: Sequence[tuple[str, str]],
    total: int | None,
    timestamp: datetime,
) -> dict[str, Any]:
    """A ``searchset`` Bundle. `links` are ``(relation, url)`` pairs (self, first, previous, next);
    `total` is left out when None (the caller chose not to count)."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": format_instant(timestamp),
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": relation, "url": url} for relation, url in links]
    out = []
    for entry in entries:
        item: dict[str, Any] = {}
        if entry.full_url:
            item["fullUrl"] = entry.full_url
        item["resource"] = entry.resource
        item["search"] = {"mode": entry.mode}
        out.append(item)
    if out:
        bundle["entry"] = out
    return bundle
