"""Django ORM helpers for the search functions the apps register (string, token, date, paging).

String search (R4 §3.1.1.5.1): by default a value matches when a field *starts with* it, without
regard to case or accents (``helene`` finds « Hélène »); ``:contains`` matches anywhere with the same
folding; ``:exact`` is the exact, case- and accent-sensitive value. Accents are folded by PostgreSQL's
``unaccent`` when the extension is installed in the database (the annuaire search migration adds it);
without it the search is only case-insensitive (``istartswith`` / ``icontains``). Whether it is there
is looked up once per process and database.

Paging is by offset over the primary key order, so that pages are stable and the ``next`` links are
plain URLs. A page reads ``count + 1`` rows to know whether another page follows, and the total is
counted only when it cannot be deduced from the page itself (last page reached).
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.db import connections
from django.db.models import F, Func, Model, Q, QuerySet, Value
from django.db.models.functions import Upper
from django.db.models.lookups import Contains, StartsWith
from django.utils import timezone

from .outcome import invalid
from .params import DateRange, Token, parse_bool, parse_date, parse_token
from .registry import ParamValue, Resource, SearchPage, SearchQuery

M = TypeVar("M", bound=Model)

NOTHING = Q(pk__in=[])

_unaccent_cache: dict[tuple[str, str], bool] = {}


def unaccent_available(using: str = "default") -> bool:
    """True when PostgreSQL's ``unaccent`` extension is installed in the `using` database."""
    connection = connections[using]
    key = (using, str(connection.settings_dict.get("NAME")))
    if key not in _unaccent_cache:
        if connection.vendor != "postgresql":
            _unaccent_cache[key] = False
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent')")
                row = cursor.fetchone()
            _unaccent_cache[key] = bool(row and row[0])
    return _unaccent_cache[key]


def reset_unaccent_cache() -> None:
    _unaccent_cache.clear()


def _folded(expression: Any) -> Func:
    return Func(Upper(expression), function="UNACCENT")


def string_q(paths: Sequence[str], param: ParamValue) -> Q:
    """A string parameter over one or more fields (any field may match; comma values are ORed)."""
    folded = unaccent_available()
    q = Q()
    for value in param.values:
        for path in paths:
            if param.modifier == "exact":
                q |= Q(**{path: value})
            elif folded:
                lookup = Contains if param.modifier == "contains" else StartsWith
                q |= Q(lookup(_folded(F(path)), _folded(Value(value))))
            else:
                suffix = "icontains" if param.modifier == "contains" else "istartswith"
                q |= Q(**{f"{path}__{suffix}": value})
    return q


def values_q(param: ParamValue, build: Callable[[str], Q]) -> Q:
    """OR of `build(value)` over the comma-separated values of `param`."""
    q = NOTHING
    for value in param.values:
        q |= build(value)
    return q


def tokens_q(param: ParamValue, build: Callable[[Token], Q]) -> Q:
    return values_q(param, lambda value: build(parse_token(value)))


def all_q(params: Iterable[ParamValue], build: Callable[[ParamValue], Q]) -> Q:
    """AND of `build(param)` over the repeated occurrences of a parameter."""
    q = Q()
    for param in params:
        q &= build(param)
    return q


def ids_q(param: ParamValue, field: str = "pk") -> Q:
    """``_id`` over an integer primary key: ids that are not integers match nothing."""
    ids = [int(v) for v in param.values if v.isascii() and v.isdigit() and len(v) <= 18]
    return Q(**{f"{field}__in": ids}) if ids else NOTHING


def bool_q(param: ParamValue, field: str) -> Q:
    return values_q(param, lambda value: Q(**{field: parse_bool(value, name=param.name)}))


def date_range_q(field: str, date: DateRange) -> Q:
    if date.prefix == "eq":
        return Q(**{f"{field}__gte": date.start, f"{field}__lt": date.end})
    if date.prefix == "ne":
        return ~Q(**{f"{field}__gte": date.start, f"{field}__lt": date.end})
    if date.prefix == "gt":
        return Q(**{f"{field}__gte": date.end})
    if date.prefix == "ge":
        return Q(**{f"{field}__gte": date.start})
    if date.prefix == "lt":
        return Q(**{f"{field}__lt": date.start})
    if date.prefix == "le":
        return Q(**{f"{field}__lt": date.end})
    raise invalid(f"Préfixe de date « {date.prefix} » inconnu.")


def date_q(field: str, param: ParamValue) -> Q:
    """A date parameter over a datetime field; dates without timezone are in the server's timezone."""
    tz = timezone.get_current_timezone()
    return values_q(
        param, lambda value: date_range_q(field, parse_date(value, name=param.name, default_tz=tz))
    )


def reference_ids(values: Iterable[str]) -> list[int]:
    """Integer ids among reference ids (others cannot match an integer primary key)."""
    return [int(v) for v in values if v.isascii() and v.isdigit() and len(v) <= 18]


def paginate(queryset: QuerySet[M], query: SearchQuery, to_resource: Callable[[M], Resource]) -> SearchPage:
    """The page of `queryset` (ordered by primary key) that `query` asks for."""
    queryset = queryset.order_by("pk")
    rows: list[M] = []
    has_next = False
    if query.count > 0:
        rows = list(queryset[query.offset : query.offset + query.count + 1])
        has_next = len(rows) > query.count
        rows = rows[: query.count]
    total: int | None = None
    if query.count_total:
        if query.count > 0 and not has_next and (rows or query.offset == 0):
            total = query.offset + len(rows)
        else:
            total = queryset.count()
    return SearchPage([to_resource(row) for row in rows], has_next, total)


def first_or_none(queryset: QuerySet[M], resource_id: str) -> M | None:
    """The row whose integer primary key is `resource_id`, or None (also for a non-integer id)."""
    ids = reference_ids([resource_id])
    if not ids:
        return None
    return queryset.filter(pk=ids[0]).first()


def limited(queryset: QuerySet[M], limit: int, to_resource: Callable[[M], Resource]) -> list[Resource]:
    """At most `limit` resources of `queryset`, in primary key order (for _include / _revinclude)."""
    return [to_resource(row) for row in queryset.order_by("pk")[:limit]]


# --- Shared by the apps' search functions -----------------------------------------------------------------

Filters = dict[str, Callable[[ParamValue], Q]]


def filters_q(filters: Filters, query: SearchQuery) -> Q:
    """AND of the filter of every parameter of `query` (each parameter name has a filter in `filters`)."""
    q = Q()
    for param in query.params:
        q &= filters[param.name](param)
    return q


def resource_ids(resources: Sequence[Resource]) -> list[int]:
    """The database ids of resources (their `id`)."""
    return reference_ids(r["id"] for r in resources)


def referenced_ids(resources: Sequence[Resource], element: str) -> list[int]:
    """The ids referenced by `element` (a Reference, or a list of them) in each resource."""
    references: list[str] = []
    for resource in resources:
        value: Any = resource.get(element)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "reference" in item:
                references.append(item["reference"].rsplit("/", 1)[-1])
    return reference_ids(references)
