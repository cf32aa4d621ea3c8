"""HTTP side of ``/fhir/``: metadata, read, search (GET and POST ``_search``), errors as OperationOutcome.

* JSON only: ``application/fhir+json; charset=utf-8``. ``_format`` may say ``json``,
  ``application/json`` or ``application/fhir+json``; asking for XML (``_format`` or ``Accept``) is a
  406. ``_pretty=true`` indents the output.
* Access: the views are ``@login_not_required`` (a machine must get a 401 OperationOutcome, not the
  sign-in page) and apply the access rule of each resource type themselves: no session → 401, role
  not allowed → 403 (audited when the rule covers patient data). ``metadata`` is public, as FHIR
  clients read it before they authenticate; it holds no data.
* The views never change anything, so they are exempt from CSRF checks (``POST _search`` is a search
  whose parameters are in the body).
* Unknown resource type or id: 404; method not allowed: 405 with ``Allow``; invalid or unsupported
  parameter: 400 (see ``enrs.fhir.query`` for strict and lenient handling); unexpected error: 500,
  logged.
"""

import json
import logging
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from enrs.accounts.roles import AccessRule, Denial, audit_denial

from .bundle import INCLUDE, MATCH, OUTCOME, Entry, full_url, searchset
from .capability import capability_statement
from .outcome import (
    ERROR,
    EXCEPTION,
    FORBIDDEN,
    INCOMPLETE,
    LOGIN,
    NOT_FOUND,
    NOT_SUPPORTED,
    WARNING,
    FhirError,
    Issue,
    invalid,
    operation_outcome,
)
from .params import is_valid_id
from .query import ParsedSearch, apply_elements, parse_search
from .registry import Inclusion, Resource, ResourceType, SearchPage, registry

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
# At most this many resources per _include / _revinclude on one page (an OperationOutcome says so).
MAX_INCLUDED = 1000

_JSON_FORMATS = frozenset({"json", "application/json", FHIR_JSON, "application/json+fhir", "text/json"})
_JSON_RANGES = frozenset({"*/*", "application/*", "application/json", FHIR_JSON, "application/json+fhir"})

View = Callable[..., HttpResponse]


def fhir_response(
    data: dict[str, Any], *, status: int = 200, pretty: bool = False, headers: dict[str, str] | None = None
) -> HttpResponse:
    if pretty:
        body = json.dumps(data, ensure_ascii=False, indent=2)
    else:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    response = HttpResponse(body, status=status, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "private, no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _check_format(request: HttpRequest) -> None:
    requested = request.GET.get("_format")
    if requested:
        media = requested.split(";")[0].strip().lower().replace(" ", "+")  # an unencoded "+" is a space
        if media not in _JSON_FORMATS:
            raise FhirError(
                406, NOT_SUPPORTED, f"Format « {requested} » non pris en charge : JSON uniquement."
            )
        return
    accept = request.META.get("HTTP_ACCEPT", "")
    if not accept.strip():
        return
    for item in accept.split(","):
        media, *params = (part.strip().lower() for part in item.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media in _JSON_RANGES:
            return
    raise FhirError(
        406, NOT_SUPPORTED, f"Format demandé ({accept}) non pris en charge : seul {FHIR_JSON} est servi."
    )


def _pretty(request: HttpRequest) -> bool:
    return request.GET.get("_pretty") == "true"


def fhir_endpoint(*methods: str) -> Callable[[View], View]:
    """Decorate a FHIR view: public for LoginRequiredMiddleware (access is checked by the view),
    CSRF-exempt (read-only), method and format checks, and every error answered as OperationOutcome."""
    allowed = ", ".join(methods)

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            pretty = _pretty(request)
            try:
                method_ok = request.method in methods or (request.method == "HEAD" and "GET" in methods)
                if not method_ok:
                    raise FhirError(
                        405,
                        NOT_SUPPORTED,
                        f"Méthode {request.method} non prise en charge sur cette adresse "
                        f"(possible : {allowed}).",
                        headers={"Allow": allowed},
                    )
                _check_format(request)
                response = view(request, *args, **kwargs)
            except FhirError as error:
                return fhir_response(
                    error.outcome(), status=error.status, pretty=pretty, headers=dict(error.headers)
                )
            except Exception:
                logger.exception("FHIR: unexpected error on %s %s", request.method, request.path)
                outcome = operation_outcome(Issue(ERROR, EXCEPTION, "Erreur interne du serveur."))
                return fhir_response(outcome, status=500, pretty=pretty)
            return response

        return login_not_required(csrf_exempt(wrapped))

    return decorator


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:base"))


def _resource_type(name: str) -> ResourceType:
    resource = registry.get(name)
    if resource is None:
        raise FhirError(
            404, NOT_SUPPORTED, f"Type de ressource « {name} » non pris en charge (voir /fhir/metadata)."
        )
    return resource


def check_access(request: HttpRequest, rule: AccessRule) -> None:
    """401 without a session, 403 when the user's role (or sign-in strength) does not meet `rule`."""
    denial = rule.denial(request)
    if denial is None:
        return
    if denial is Denial.ANONYMOUS:
        raise FhirError(
            401,
            LOGIN,
            "Authentification requise : connectez-vous au portail ENRS.",
            headers={"WWW-Authenticate": 'Session realm="ENRS"'},
        )
    audit_denial(request, rule, denial)
    raise FhirError(403, FORBIDDEN, denial.message)


def _strict(request: HttpRequest) -> bool:
    """False when the client sent ``Prefer: handling=lenient``."""
    prefer = request.META.get("HTTP_PREFER", "")
    preferences = {p.strip().replace(" ", "").lower() for p in prefer.split(",")}
    return "handling=lenient" not in preferences


def _pairs(query_dict: QueryDict) -> list[tuple[str, str]]:
    return [(key, value) for key, values in query_dict.lists() for value in values]


# --- Views ---------------------------------------------------------------------------------------------


@fhir_endpoint("GET")
def metadata(request: HttpRequest) -> HttpResponse:
    statement = capability_statement(
        resource_types=registry.resource_types(),
        includes={t.name: registry.includes(t.name) for t in registry.resource_types()},
        revincludes={t.name: registry.revincludes(t.name) for t in registry.resource_types()},
        base_url=_base_url(request),
        date=timezone.now(),
        software_version=str(settings.SPECTACULAR_SETTINGS.get("VERSION", "")),
    )
    return fhir_response(statement, pretty=_pretty(request))


@fhir_endpoint("GET")
def read(request: HttpRequest, resource_type: str, resource_id: str) -> HttpResponse:
    resource = _resource_type(resource_type)
    check_access(request, resource.access_rule)
    if not is_valid_id(resource_id):
        raise invalid(f"Identifiant « {resource_id} » invalide.")
    found = resource.read(resource_id)
    if found is None:
        raise FhirError(404, NOT_FOUND, f"{resource_type}/{resource_id} introuvable.")
    return fhir_response(found, pretty=_pretty(request))


@fhir_endpoint("GET")
def search(request: HttpRequest, resource_type: str) -> HttpResponse:
    return _search(request, resource_type, _pairs(request.GET))


@fhir_endpoint("POST")
def search_post(request: HttpRequest, resource_type: str) -> HttpResponse:
    """``POST [type]/_search``: parameters in a form-encoded body (and possibly in the URL)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise FhirError(
            415, NOT_SUPPORTED, "POST _search : corps « application/x-www-form-urlencoded » attendu."
        )
    return _search(request, resource_type, [*_pairs(request.GET), *_pairs(request.POST)])


@fhir_endpoint("GET")
def base(request: HttpRequest) -> HttpResponse:
    raise FhirError(
        404, NOT_SUPPORTED, "Recherche sur tous les types non prise en charge : voir /fhir/metadata."
    )


@fhir_endpoint("GET", "POST", "PUT", "PATCH", "DELETE")
def unknown(request: HttpRequest, path: str = "") -> HttpResponse:
    raise FhirError(404, NOT_FOUND, f"Adresse FHIR inconnue : {request.path}.")


# --- Search ------------------------------------------------------------------------------------------


def _search(request: HttpRequest, resource_type: str, pairs: list[tuple[str, str]]) -> HttpResponse:
    resource = _resource_type(resource_type)
    check_access(request, resource.access_rule)
    includes = registry.includes(resource.name)
    revincludes = registry.revincludes(resource.name)
    parsed = parse_search(
        pairs, resource=resource, includes=includes, revincludes=revincludes, strict=_strict(request)
    )
    query = parsed.query
    inclusions: list[tuple[Inclusion, str]] = [(includes[n], includes[n].target) for n in query.include]
    inclusions += [(revincludes[n], revincludes[n].source) for n in query.revinclude]
    for _inclusion, returned_type in inclusions:
        check_access(request, _resource_type(returned_type).access_rule)

    page = resource.search(query)
    included, truncated = _included(page.resources, [inclusion for inclusion, _ in inclusions])

    base_url = _base_url(request)
    matches = page.resources
    if parsed.elements is not None:
        matches = [apply_elements(r, parsed.elements) for r in matches]
    entries = [Entry(r, MATCH, full_url(base_url, r)) for r in matches]
    entries += [Entry(r, INCLUDE, full_url(base_url, r)) for r in included]
    issues = []
    if parsed.ignored:
        issues.append(
            Issue(
                WARNING,
                NOT_SUPPORTED,
                f"Paramètres ignorés (non pris en charge) : {', '.join(parsed.ignored)}.",
            )
        )
    for name in truncated:
        issues.append(
            Issue(
                WARNING, INCOMPLETE, f"{name} : seules les {MAX_INCLUDED} premières ressources sont incluses."
            )
        )
    if issues:
        entries.append(Entry(operation_outcome(*issues), OUTCOME))
    bundle = searchset(
        entries=entries,
        links=_links(base_url, resource.name, parsed, page),
        total=page.total if query.count_total else None,
        timestamp=timezone.now(),
    )
    return fhir_response(bundle, pretty=_pretty(request))


def _included(matches: list[Resource], inclusions: Iterable[Inclusion]) -> tuple[list[Resource], list[str]]:
    """Resources to include (without duplicates nor the matches themselves) and the inclusions cut short."""
    seen = {(r["resourceType"], r["id"]) for r in matches}
    out: list[Resource] = []
    truncated: list[str] = []
    if not matches:
        return out, truncated
    for inclusion in inclusions:
        found = inclusion.function(matches, MAX_INCLUDED + 1)
        if len(found) > MAX_INCLUDED:
            truncated.append(inclusion.name)
            found = found[:MAX_INCLUDED]
        for resource in found:
            key = (resource["resourceType"], resource["id"])
            if key not in seen:
                seen.add(key)
                out.append(resource)
    return out, truncated


def _links(base_url: str, type_name: str, parsed: ParsedSearch, page: SearchPage) -> list[tuple[str, str]]:
    query = parsed.query

    def url(offset: int) -> str:
        params = list(parsed.link_params)
        if offset:
            params.append(("_offset", str(offset)))
        return f"{base_url}{type_name}?{urlencode(params)}"

    links = [("self", url(query.offset))]
    if query.count > 0:
        links.append(("first", url(0)))
        if query.offset > 0:
            links.append(("previous", url(max(0, query.offset - query.count))))
        if page.has_next:
            links.append(("next", url(query.offset + query.count)))
    return links
