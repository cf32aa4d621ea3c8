"""Vectors for the hash chain: canonical texts are written out by hand here and hashed with hashlib,
independently of enrs.audit.chain."""

import hashlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from enrs.audit.chain import GENESIS_HASH, EventContent, canonical, chain_hash, event_hash, format_timestamp

PARIS = ZoneInfo("Europe/Paris")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


LOGIN = EventContent(
    occurred_at=datetime(2024, 3, 1, 9, 15, 0, tzinfo=PARIS),  # winter: UTC+1
    actor_id=42,
    actor_label="dupont",
    auth_method="otp",
    action="auth.login",
    target_type="",
    target_id="",
    patient_ins="",
    ip="192.0.2.10",
    user_agent="Mozilla/5.0",
    outcome="success",
    request_id="abc123",
    detail={"method": "otp"},
)
LOGIN_CANONICAL = (
    '{"action":"auth.login","actor_id":42,"actor_label":"dupont","auth_method":"otp",'
    '"detail":{"method":"otp"},"ip":"192.0.2.10","occurred_at":"2024-03-01T08:15:00.000000Z",'
    '"outcome":"success","patient_ins":"","request_id":"abc123","target_id":"","target_type":"",'
    '"user_agent":"Mozilla/5.0"}'
)

READ = EventContent(
    occurred_at=datetime(2024, 7, 14, 23, 59, 59, 123456, tzinfo=PARIS),  # summer: UTC+2
    actor_id=None,
    actor_label="",
    auth_method="",
    action="patient.read",
    target_type="patients.patient",
    target_id="17",
    patient_ins="185072A12345678",
    ip="2001:db8::1",
    user_agent='Navigateur "élégant" — ünïcode',
    outcome="denied",
    request_id="",
    detail={"zeta": 1, "alpha": {"b": [1, 2.5, None, True], "a": "é"}},
)
READ_CANONICAL = (
    '{"action":"patient.read","actor_id":null,"actor_label":"","auth_method":"",'
    '"detail":{"alpha":{"a":"é","b":[1,2.5,null,true]},"zeta":1},'
    '"ip":"2001:0db8:0000:0000:0000:0000:0000:0001","occurred_at":"2024-07-14T21:59:59.123456Z",'
    '"outcome":"denied","patient_ins":"185072A12345678","request_id":"","target_id":"17",'
    '"target_type":"patients.patient","user_agent":"Navigateur \\"élégant\\" — ünïcode"}'
)


def test_genesis_is_64_zeros() -> None:
    assert GENESIS_HASH == "0000000000000000000000000000000000000000000000000000000000000000"


def test_canonical_text_of_a_sign_in() -> None:
    assert canonical(LOGIN) == LOGIN_CANONICAL


def test_canonical_text_sorts_nested_keys_keeps_utf8_and_expands_ipv6() -> None:
    assert canonical(READ) == READ_CANONICAL
    # ensure_ascii=False: "é" is hashed as its two UTF-8 bytes, not as \u00e9.
    assert "\\u00e9" not in canonical(READ)


def test_first_event_hash_chains_from_genesis() -> None:
    expected = sha256_hex("0" * 64 + LOGIN_CANONICAL)
    assert event_hash(GENESIS_HASH, LOGIN) == expected


def test_second_event_hash_chains_from_the_first() -> None:
    first = sha256_hex("0" * 64 + LOGIN_CANONICAL)
    expected = hashlib.sha256((first + READ_CANONICAL).encode("utf-8")).hexdigest()
    assert event_hash(first, READ) == expected
    assert chain_hash(first, READ_CANONICAL) == expected


def test_one_changed_character_changes_the_hash() -> None:
    altered = EventContent(**{**_as_dict(LOGIN), "actor_label": "dupond"})
    assert event_hash(GENESIS_HASH, altered) != event_hash(GENESIS_HASH, LOGIN)
    assert event_hash(GENESIS_HASH, altered) == sha256_hex(
        "0" * 64 + LOGIN_CANONICAL.replace("dupont", "dupond")
    )


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2024, 1, 1, 0, 0, tzinfo=UTC), "2024-01-01T00:00:00.000000Z"),
        (datetime(2024, 1, 1, 0, 30, 0, 5, tzinfo=PARIS), "2023-12-31T23:30:00.000005Z"),
        (datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1), "2024-10-27T01:30:00.000000Z"),
    ],
)
def test_timestamps_are_utc_with_microseconds(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4-mapped: the IPv4 client
        ("::ffff:cb00:7109", "203.0.113.9"),  # the same address spelt in hex
        ("2001:DB8:0:0::1", "2001:0db8:0000:0000:0000:0000:0000:0001"),
        (None, None),
    ],
)
def test_ip_addresses_hash_as_addresses_not_as_spellings(address: str | None, text: str | None) -> None:
    content = EventContent(**{**_as_dict(LOGIN), "ip": address})
    expected_ip = "null" if text is None else f'"{text}"'
    assert f'"ip":{expected_ip},' in canonical(content)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical(EventContent(**{**_as_dict(LOGIN), "occurred_at": datetime(2024, 3, 1, 9, 15)}))


def test_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical(EventContent(**{**_as_dict(LOGIN), "detail": {"x": float("nan")}}))


@pytest.mark.parametrize("prev", ["", "0" * 63, "0" * 65, "G" * 64, "A" * 64])
def test_previous_hash_must_be_64_lowercase_hex(prev: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase"):
        chain_hash(prev, LOGIN_CANONICAL)


def _as_dict(content: EventContent) -> dict:
    return {name: getattr(content, name) for name in EventContent.__dataclass_fields__}
