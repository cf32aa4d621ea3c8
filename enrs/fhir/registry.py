"""What the apps register to serve a FHIR resource type on ``/fhir/``.

An app describes each resource type it serves with a ``ResourceType`` (read function, search
function, search parameters for the CapabilityStatement, the access rule callers must satisfy) and
registers it from its ``AppConfig.ready()``::

    from enrs.fhir.registry import registry
    registry.register(ResourceType(name="Location", read=..., search=..., search_params=..., ...))
    registry.register_inclusion(Inclusion("HealthcareService", "organization", "Organization", fn),
                                reverse=True)

``_include`` / ``_revinclude`` are ``Inclusion``s kept apart from the resource types, so that an app
can add ``_revinclude=HealthcareService:organization`` to the ``Organization`` that another app
serves without either importing the other.

The types are pure data; the access rule is an ``enrs.accounts.roles.AccessRule``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enrs.accounts.roles import AccessRule

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchParam:
    """A search parameter of a resource type, as the CapabilityStatement lists it.

    `modifiers` are the modifiers the search function understands (``exact``, ``contains``…); any
    other modifier is refused before the search function is called."""

    name: str
    type: str  # number | date | string | token | reference | composite | quantity | uri | special
    documentation: str
    definition: str = ""  # canonical URL of the SearchParameter, when there is one
    modifiers: frozenset[str] = frozenset()


# Parameters every resource type may declare (their search functions implement them).
ID_PARAM_DEFINITION = "http://hl7.org/fhir/SearchParameter/Resource-id"
LAST_UPDATED_PARAM_DEFINITION = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"


def id_param(resource_type: str) -> SearchParam:
    return SearchParam(
        "_id", "token", f"Identifiant logique de la ressource {resource_type}.", ID_PARAM_DEFINITION
    )


def last_updated_param() -> SearchParam:
    return SearchParam(
        "_lastUpdated",
        "date",
        "Date de dernière mise à jour (préfixes eq, ne, gt, ge, lt, le).",
        LAST_UPDATED_PARAM_DEFINITION,
    )


@dataclass(frozen=True, slots=True)
class ParamValue:
    """One occurrence of a search parameter: ``name[:modifier]=raw``. `values` are the comma-separated
    alternatives (OR); several occurrences of the same parameter are combined with AND."""

    name: str
    modifier: str | None
    values: tuple[str, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A validated search: parameters of the resource type, and the paging the caller asked for."""

    resource_type: str
    params: tuple[ParamValue, ...] = ()
    count: int = 50
    offset: int = 0
    count_total: bool = True
    include: tuple[str, ...] = ()
    revinclude: tuple[str, ...] = ()

    def get(self, name: str) -> tuple[ParamValue, ...]:
        return tuple(p for p in self.params if p.name == name)


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches: at most ``query.count`` resources from ``query.offset``, whether more
    follow, and the total number of matches (None when not counted)."""

    resources: list[Resource]
    has_next: bool
    total: int | None


ReadFunction = Callable[[str], Resource | None]
SearchFunction = Callable[[SearchQuery], SearchPage]
# (matched resources of the page, maximum number of resources to return) -> resources to include.
InclusionFunction = Callable[[Sequence[Resource], int], list[Resource]]


@dataclass(frozen=True, slots=True)
class Inclusion:
    """``source:param`` pointing from `source` resources to `target` resources.

    Registered as an include, it is ``[source]?_include=source:param`` and `function` gets matched
    `source` resources and returns `target` ones; registered as a reverse include, it is
    ``[target]?_revinclude=source:param`` and `function` gets matched `target` resources and returns
    the `source` resources that point to them."""

    source: str
    param: str
    target: str
    function: InclusionFunction

    @property
    def name(self) -> str:
        return f"{self.source}:{self.param}"


@dataclass(frozen=True, slots=True)
class ResourceType:
    name: str
    read: ReadFunction
    search: SearchFunction
    search_params: tuple[SearchParam, ...]
    access_rule: "AccessRule"
    profile: str = ""  # canonical URL of the profile every returned resource claims
    documentation: str = ""
    owner: str = ""  # the app that serves it (for error messages)

    def param(self, name: str) -> SearchParam | None:
        return next((p for p in self.search_params if p.name == name), None)


class RegistryError(Exception):
    pass


@dataclass
class Registry:
    _types: dict[str, ResourceType] = field(default_factory=dict)
    _includes: dict[str, dict[str, Inclusion]] = field(default_factory=dict)  # by source type
    _revincludes: dict[str, dict[str, Inclusion]] = field(default_factory=dict)  # by target type

    def register(self, resource_type: ResourceType, *, replace: bool = False) -> None:
        existing = self._types.get(resource_type.name)
        if existing is not None and not replace:
            raise RegistryError(
                f"FHIR : {resource_type.name} est déjà servi par « {existing.owner or '?'} »."
            )
        self._types[resource_type.name] = resource_type

    def register_inclusion(self, inclusion: Inclusion, *, reverse: bool, replace: bool = False) -> None:
        key = inclusion.target if reverse else inclusion.source
        table = (self._revincludes if reverse else self._includes).setdefault(key, {})
        if inclusion.name in table and not replace:
            kind = "_revinclude" if reverse else "_include"
            raise RegistryError(f"FHIR : {kind}={inclusion.name} sur {key} est déjà enregistré.")
        table[inclusion.name] = inclusion

    def unregister(self, name: str) -> None:
        """Stop serving `name` (and the inclusions from or to it)."""
        self._types.pop(name, None)
        for tables in (self._includes, self._revincludes):
            tables.pop(name, None)
            for table in tables.values():
                for key in [k for k, i in table.items() if name in (i.source, i.target)]:
                    del table[key]

    def get(self, name: str) -> ResourceType | None:
        return self._types.get(name)

    def resource_types(self) -> list[ResourceType]:
        return sorted(self._types.values(), key=lambda t: t.name)

    def includes(self, resource_type: str) -> dict[str, Inclusion]:
        """``_include`` values accepted on searches of `resource_type`."""
        return dict(self._includes.get(resource_type, {}))

    def revincludes(self, resource_type: str) -> dict[str, Inclusion]:
        """``_revinclude`` values accepted on searches of `resource_type`."""
        return dict(self._revincludes.get(resource_type, {}))

    def clear(self) -> None:
        self._types.clear()
        self._includes.clear()
        self._revincludes.clear()


# The registry behind /fhir/. Apps fill it from AppConfig.ready().
registry = Registry()
