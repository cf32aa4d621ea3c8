"""FHIR data-type builders shared by the apps' mappings (pure: no Django import)."""

from datetime import datetime
from typing import Any

from .bundle import format_instant


def meta(last_updated: datetime, *profiles: str) -> dict[str, Any]:
    """`Resource.meta`: last update instant and the profiles the resource claims."""
    return {"lastUpdated": format_instant(last_updated), "profile": list(profiles)}


def reference(resource_type: str, resource_id: str | int, display: str = "") -> dict[str, str]:
    """A literal `Reference` (`Type/id`), with its display text when there is one."""
    out = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        out["display"] = display
    return out
