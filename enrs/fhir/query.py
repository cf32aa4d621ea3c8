"""From the parameters of a search request to a validated ``SearchQuery``. Pure code: no Django import.

Strict by default. A parameter the server does not know (``famly=…``), a modifier or an ``_include``
it does not support, is a 400 OperationOutcome: a directory search that silently drops a misspelt
filter returns too many people, and a client picking an MSSanté address from such a list may write to
the wrong person. A client that prefers FHIR's lenient handling sends ``Prefer: handling=lenient``:
such parameters are then ignored, left out of the ``self`` link, and listed in an OperationOutcome
entry of the Bundle (``search.mode = outcome``). Malformed values of known parameters are refused in
both modes.

Result parameters: ``_count`` (default 50, as the national directory; capped at 100, ``0`` returns the
total only), ``_offset`` (paging; the links carry it), ``_total`` (``none`` skips counting; ``estimate``
and ``accurate`` count), ``_summary=count``, ``_elements``, ``_include``, ``_revinclude``.
``_format`` and ``_pretty`` are read by the HTTP layer. Parameters with an empty value are ignored
(R4 §3.1.1.4).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .outcome import invalid, not_supported
from .params import parse_non_negative_int, split_values
from .registry import Inclusion, ParamValue, ResourceType, SearchQuery

DEFAULT_COUNT = 50
MAX_COUNT = 100
# Read by the HTTP layer (format negotiation), not by the search.
HTTP_PARAMS = frozenset({"_format", "_pretty"})
_ELEMENT_RE = re.compile(r"^[a-z][A-Za-z0-9]*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class ParsedSearch:
    query: SearchQuery
    elements: tuple[str, ...] | None  # _elements: the top-level elements to keep in matches
    summary_count: bool  # _summary=count: no entries, the total only
    ignored: tuple[str, ...]  # parameters ignored in lenient mode, as received
    link_params: tuple[tuple[str, str], ...]  # what the paging links repeat (all but _offset)


def parse_search(
    pairs: Iterable[tuple[str, str]],
    *,
    resource: ResourceType,
    includes: Mapping[str, Inclusion],
    revincludes: Mapping[str, Inclusion],
    strict: bool = True,
) -> ParsedSearch:
    """Validate the ``(key, value)`` pairs of a search on `resource` (repeated keys allowed).
    `includes` / `revincludes` are the inclusions the registry accepts on `resource`, by name."""
    params: list[ParamValue] = []
    ignored: list[str] = []
    link_params: list[tuple[str, str]] = []
    count: int | None = None
    offset = 0
    count_total = True
    include: list[str] = []
    revinclude: list[str] = []
    elements: tuple[str, ...] | None = None
    summary_count = False
    seen_result_params: set[str] = set()

    def refuse(key: str, message: str) -> None:
        if strict:
            raise not_supported(
                f"{message} Envoyez l'en-tête « Prefer: handling=lenient » pour ignorer les "
                "paramètres non pris en charge.",
                expression=(key,),
            )
        ignored.append(key)

    for key, value in pairs:
        name, _, modifier = key.partition(":")
        if name in HTTP_PARAMS:
            continue
        if value == "":
            continue  # R4 §3.1.1.4: a parameter without value is ignored
        if name in ("_count", "_offset", "_total", "_summary", "_elements"):
            if name in seen_result_params:
                raise invalid(f"Le paramètre « {name} » ne peut être donné qu'une fois.", expression=(name,))
            seen_result_params.add(name)
            if modifier:
                raise invalid(f"Le paramètre « {name} » n'accepte pas de modificateur.", expression=(key,))
        if name == "_count":
            count = min(parse_non_negative_int(value, name=name), MAX_COUNT)
        elif name == "_offset":
            offset = parse_non_negative_int(value, name=name)
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise invalid("_total : « none », « estimate » ou « accurate » attendu.", expression=(name,))
            count_total = value != "none"
            link_params.append((key, value))
        elif name == "_summary":
            if value == "count":
                summary_count = True
            elif value != "false":
                refuse(key, f"_summary={value} n'est pas pris en charge (« count » ou « false »).")
                continue
            link_params.append((key, value))
        elif name == "_elements":
            names = tuple(v.strip() for v in value.split(",") if v.strip())
            bad = [n for n in names if not _ELEMENT_RE.match(n)]
            if bad:
                raise invalid(f"_elements : élément(s) invalide(s) : {', '.join(bad)}.", expression=(name,))
            elements = names
            link_params.append((key, value))
        elif name in ("_include", "_revinclude"):
            accepted = includes if name == "_include" else revincludes
            if modifier:
                refuse(key, f"{name}:{modifier} n'est pas pris en charge.")
                continue
            inclusion_name = _inclusion_name(value, accepted)
            if inclusion_name is None:
                possible = ", ".join(sorted(accepted)) or "aucune"
                refuse(
                    key,
                    f"{name}={value} n'est pas pris en charge sur {resource.name} (possible : {possible}).",
                )
                continue
            target = include if name == "_include" else revinclude
            if inclusion_name not in target:
                target.append(inclusion_name)
            link_params.append((key, value))
        else:
            param = resource.param(name)
            if param is None or not _NAME_RE.match(name):
                refuse(key, f"Paramètre de recherche « {name} » inconnu pour {resource.name}.")
                continue
            if modifier and modifier not in param.modifiers:
                refuse(key, f"Le modificateur « :{modifier} » n'est pas pris en charge pour « {name} ».")
                continue
            params.append(ParamValue(name, modifier or None, split_values(value), value))
            link_params.append((key, value))

    effective_count = 0 if summary_count else (DEFAULT_COUNT if count is None else count)
    link_params.append(("_count", str(effective_count)))
    query = SearchQuery(
        resource_type=resource.name,
        params=tuple(params),
        count=effective_count,
        offset=offset,
        count_total=count_total or summary_count,
        include=tuple(include),
        revinclude=tuple(revinclude),
    )
    return ParsedSearch(
        query=query,
        elements=elements,
        summary_count=summary_count,
        ignored=tuple(ignored),
        link_params=tuple(link_params),
    )


def _inclusion_name(value: str, accepted: Mapping[str, Inclusion]) -> str | None:
    """``source:param`` or ``source:param:target`` (R4 §3.1.1.5.5) → the registered inclusion name."""
    source, _, rest = value.partition(":")
    param, _, target_type = rest.partition(":")
    name = f"{source}:{param}"
    inclusion = accepted.get(name)
    if inclusion is None or (target_type and target_type != inclusion.target):
        return None
    return name


def apply_elements(resource: dict, elements: tuple[str, ...]) -> dict:
    """``_elements``: keep the listed top-level elements (plus resourceType, id and meta) and tag the
    resource SUBSETTED, as R4 §3.1.1.5.9 asks."""
    kept = {k: v for k, v in resource.items() if k in ("resourceType", "id", "meta") or k in elements}
    meta = dict(kept.get("meta", {}))
    meta["tag"] = [
        *meta.get("tag", []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    kept["meta"] = meta
    return kept
