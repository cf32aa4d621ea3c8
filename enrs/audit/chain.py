"""The audit trail's hash chain, as pure code (no Django import).

Every event stores ``hash = sha256(prev_hash + canonical(content))`` where ``prev_hash`` is the hash of
the event written just before it (64 zeros for the very first one). Changing a stored event changes
its recomputed hash; removing one breaks the link of the next. The canonical form is fixed here once
and for all: changing it would make every stored hash unverifiable.

Canonical form: a JSON object holding exactly the fields of ``EventContent``, keys sorted, no
whitespace (``separators=(",", ":")``), non-ASCII characters kept as UTF-8 (``ensure_ascii=False``),
NaN/Infinity refused, the timestamp in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always 6 digits of
microseconds), the IP address as an address rather than as text (IPv4 dotted, IPv6 fully expanded, an
IPv4-mapped IPv6 address as its IPv4 address), so that the database's own spelling of an ``inet`` value
cannot change the hash. The hashed bytes are the UTF-8 encoding of ``prev_hash + canonical``.
"""

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

HASH_LENGTH = 64
GENESIS_HASH = "0" * HASH_LENGTH

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class EventContent:
    """What the hash of an event covers: every column except ``id``, ``prev_hash`` and ``hash``."""

    occurred_at: datetime
    actor_id: int | None
    actor_label: str
    auth_method: str
    action: str
    target_type: str
    target_id: str
    patient_ins: str
    ip: str | None
    user_agent: str
    outcome: str
    request_id: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def format_timestamp(moment: datetime) -> str:
    """UTC, ISO 8601, always with microseconds: ``2024-03-01T08:15:00.000000Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the audit chain only hashes timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_ip(address: str | None) -> str | None:
    """``1.2.3.4``, ``2001:0db8:0000:0000:0000:0000:0000:0001``; ``::ffff:1.2.3.4`` counts as ``1.2.3.4``."""
    if address is None:
        return None
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return ip.exploded
    return str(ip)


def canonical(content: EventContent) -> str:
    """The canonical JSON text of an event's content (see the module docstring)."""
    document = {
        "action": content.action,
        "actor_id": content.actor_id,
        "actor_label": content.actor_label,
        "auth_method": content.auth_method,
        "detail": dict(content.detail),
        "ip": format_ip(content.ip),
        "occurred_at": format_timestamp(content.occurred_at),
        "outcome": content.outcome,
        "patient_ins": content.patient_ins,
        "request_id": content.request_id,
        "target_id": content.target_id,
        "target_type": content.target_type,
        "user_agent": content.user_agent,
    }
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def is_hash(value: str) -> bool:
    return bool(_HEX64.match(value))


def chain_hash(prev_hash: str, canonical_text: str) -> str:
    """``sha256(prev_hash + canonical_text)`` as 64 lowercase hex digits."""
    if not is_hash(prev_hash):
        raise ValueError("prev_hash must be 64 lowercase hexadecimal digits")
    return hashlib.sha256((prev_hash + canonical_text).encode("utf-8")).hexdigest()


def event_hash(prev_hash: str, content: EventContent) -> str:
    return chain_hash(prev_hash, canonical(content))
