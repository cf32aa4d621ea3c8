"""Values of FHIR search parameters (R4 "Search", §3.1.1.4-5): pure code, no Django import.

* Several values separated by commas mean OR (``family=martin,durand``); ``\\,`` is a literal comma,
  ``\\|`` a literal bar, ``\\$`` a literal dollar and ``\\\\`` a backslash.
* token: ``[system]|[code]``, ``|[code]`` (no system) or ``[code]`` (any system).
* reference: ``[type]/[id]``, ``[id]`` or an absolute URL ending with ``[type]/[id]``.
* date: an optional prefix (eq ne gt lt ge le) then a date or dateTime whose precision gives the range
  it stands for: ``2024`` is the whole year, ``2024-03-01`` the whole day, ``2024-03-01T10:00:00+01:00``
  that second. A date without timezone is read in the server's timezone.

Every invalid value raises ``FhirError`` (400) with a French diagnostic.
"""

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from .outcome import invalid, not_supported

# --- Several values --------------------------------------------------------------------------------

_ESCAPES = {",": ",", "|": "|", "$": "$", "\\": "\\"}


def split_values(raw: str) -> tuple[str, ...]:
    """The comma-separated values of one parameter occurrence, unescaped (``a\\,b,c`` → ``a,b`` / ``c``).
    Escapes other than the commas are kept, so that a token can still be split on its bar."""
    values: list[str] = []
    current: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            if following == ",":
                current.append(",")
            else:
                current.append("\\" + following)
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    return tuple(values)


def unescape(value: str) -> str:
    """``\\|``, ``\\$``, ``\\,`` and ``\\\\`` → the character itself."""
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_ESCAPES.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)


# --- Tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """``system`` is None for "any system", "" for "no system" (``|code``); ``code`` may be empty
    (``system|``: any code of that system)."""

    system: str | None
    code: str


def parse_token(value: str) -> Token:
    """Split one token value on its first unescaped bar."""
    match = re.search(r"(?<!\\)\|", value)
    if match is None:
        return Token(None, unescape(value))
    return Token(unescape(value[: match.start()]), unescape(value[match.end() :]))


def parse_bool(value: str, *, name: str) -> bool:
    """A boolean token (``true`` / ``false``)."""
    token = parse_token(value)
    if token.code == "true":
        return True
    if token.code == "false":
        return False
    raise invalid(
        f"Paramètre « {name} » : « true » ou « false » attendu, reçu « {value} ».", expression=(name,)
    )


# --- References ------------------------------------------------------------------------------------

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_valid_id(value: str) -> bool:
    """The syntax of a FHIR logical id: 1 to 64 letters, digits, ``-`` or ``.``."""
    return bool(_ID_RE.match(value))


def parse_reference(value: str, *, resource_type: str, name: str, type_modifier: str | None = None) -> str:
    """The logical id a reference value points to, for a parameter whose target is `resource_type`
    (``Organization/12``, ``12``, ``https://…/fhir/Organization/12``, or ``12`` with the
    ``:Organization`` modifier)."""
    if type_modifier is not None and type_modifier != resource_type:
        raise invalid(
            f"Paramètre « {name} » : seules les références vers {resource_type} sont possibles.",
            expression=(name,),
        )
    raw = unescape(value)
    parts = raw.rstrip("/").split("/")
    if len(parts) == 1:
        ref_id = parts[0]
    elif len(parts) >= 2 and parts[-2] == resource_type:
        ref_id = parts[-1]
    else:
        raise invalid(
            f"Paramètre « {name} » : référence « {raw} » invalide ({resource_type}/[id] attendu).",
            expression=(name,),
        )
    if not is_valid_id(ref_id):
        raise invalid(f"Paramètre « {name} » : identifiant « {ref_id} » invalide.", expression=(name,))
    return ref_id


# --- Integers --------------------------------------------------------------------------------------


def parse_non_negative_int(value: str, *, name: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise invalid(f"Paramètre « {name} » : un entier positif ou nul est attendu.", expression=(name,))
    return int(value)


# --- Dates -----------------------------------------------------------------------------------------

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
_UNSUPPORTED_PREFIXES = ("sa", "eb", "ap")
_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6})\d*)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class DateRange:
    """A date search value: `prefix` and the half-open range ``[start, end)`` its precision covers."""

    prefix: str
    start: datetime
    end: datetime


def parse_date(value: str, *, name: str, default_tz: tzinfo) -> DateRange:
    """A date search value (``ge2024-03-01``, ``lt2024-03-01T10:00:00+01:00``…).

    In a query string an unencoded ``+`` arrives as a space: ``2024-03-01T10:00:00 01:00`` is read as
    ``+01:00``."""
    prefix = "eq"
    if value[:2] in DATE_PREFIXES:
        prefix, value = value[:2], value[2:]
    elif value[:2] in _UNSUPPORTED_PREFIXES:
        raise not_supported(
            f"Paramètre « {name} » : le préfixe « {value[:2]} » n'est pas pris en charge "
            f"(préfixes possibles : {', '.join(DATE_PREFIXES)}).",
            expression=(name,),
        )
    value = re.sub(r" (\d{2}:\d{2})$", r"+\1", value)
    match = _DATE_RE.match(value)
    if match is None:
        raise invalid(
            f"Paramètre « {name} » : date « {value} » invalide (AAAA, AAAA-MM, AAAA-MM-JJ ou "
            "AAAA-MM-JJThh:mm:ss+hh:mm attendu).",
            expression=(name,),
        )
    parts = match.groupdict()
    tz: tzinfo = default_tz
    if parts["tz"] == "Z":
        tz = UTC
    elif parts["tz"]:
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        start, end = _range(parts, tz)
    except ValueError as exc:
        raise invalid(f"Paramètre « {name} » : date « {value} » invalide.", expression=(name,)) from exc
    return DateRange(prefix, start, end)


def _range(parts: dict[str, str | None], tz: tzinfo) -> tuple[datetime, datetime]:
    year = int(parts["year"] or 0)
    if parts["month"] is None:
        return datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    month = int(parts["month"])
    if parts["day"] is None:
        start = datetime(year, month, 1, tzinfo=tz)
        return start, start + timedelta(days=monthrange(year, month)[1])
    day = int(parts["day"])
    if parts["hour"] is None:
        start = datetime(year, month, day, tzinfo=tz)
        return start, start + timedelta(days=1)
    hour, minute = int(parts["hour"]), int(parts["minute"] or 0)
    if parts["second"] is None:
        start = datetime(year, month, day, hour, minute, tzinfo=tz)
        return start, start + timedelta(minutes=1)
    second = int(parts["second"])
    fraction = parts["fraction"]
    if fraction is None:
        start = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        return start, start + timedelta(seconds=1)
    start = datetime(year, month, day, hour, minute, second, int(fraction.ljust(6, "0")), tzinfo=tz)
    return start, start + timedelta(microseconds=10 ** (6 - len(fraction)))
