"""Vectors of the pure parts of the FHIR endpoint (enrs.fhir): OperationOutcome, searchset Bundle,
search parameter values (R4 §3.1.1), request validation (strict / lenient), CapabilityStatement and the
registry. No database.

(They live with the annuaire tests because the annuaire is the first app served on /fhir/.)
"""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from enrs.accounts.roles import DIRECTORY_ACCESS
from enrs.fhir.bundle import INCLUDE, MATCH, OUTCOME, Entry, format_instant, full_url, searchset
from enrs.fhir.capability import capability_statement
from enrs.fhir.outcome import FhirError, Issue, invalid, operation_outcome
from enrs.fhir.params import (
    DateRange,
    Token,
    is_valid_id,
    parse_bool,
    parse_date,
    parse_reference,
    parse_token,
    split_values,
)
from enrs.fhir.query import MAX_COUNT, ParsedSearch, apply_elements, parse_search
from enrs.fhir.registry import (
    Inclusion,
    ParamValue,
    Registry,
    RegistryError,
    ResourceType,
    SearchPage,
    SearchParam,
    SearchQuery,
    id_param,
    last_updated_param,
)

PARIS = ZoneInfo("Europe/Paris")

# --- OperationOutcome and Bundle ----------------------------------------------------------------------


def test_operation_outcome() -> None:
    outcome = operation_outcome(
        Issue("error", "not-supported", "Paramètre inconnu.", ("famly",)),
        Issue("warning", "incomplete", "Liste tronquée."),
    )
    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-supported",
                "diagnostics": "Paramètre inconnu.",
                "expression": ["famly"],
            },
            {"severity": "warning", "code": "incomplete", "diagnostics": "Liste tronquée."},
        ],
    }
    OperationOutcome.model_validate(outcome)
    with pytest.raises(ValueError, match="at least one issue"):
        operation_outcome()


def test_fhir_error_carries_its_status_and_outcome() -> None:
    error = invalid("Date invalide.", expression=("_lastUpdated",))
    assert isinstance(error, FhirError)
    assert error.status == 400
    assert error.outcome() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Date invalide.",
                "expression": ["_lastUpdated"],
            }
        ],
    }


def test_format_instant() -> None:
    assert (
        format_instant(datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))))
        == "2024-03-01T08:30:00.000Z"
    )
    assert format_instant(datetime(2024, 3, 1, 8, 30, 0, 999999, tzinfo=UTC)) == "2024-03-01T08:30:00.999Z"
    with pytest.raises(ValueError, match="timezone"):
        format_instant(datetime(2024, 3, 1))


def test_searchset_bundle() -> None:
    base = "https://enrs.example/fhir/"
    organization = {"resourceType": "Organization", "id": "7", "name": "CH"}
    role = {"resourceType": "PractitionerRole", "id": "3", "organization": {"reference": "Organization/7"}}
    outcome = operation_outcome(Issue("warning", "not-supported", "Paramètres ignorés : foo."))
    bundle = searchset(
        entries=[
            Entry(organization, MATCH, full_url(base, organization)),
            Entry(role, INCLUDE, full_url(base, role)),
            Entry(outcome, OUTCOME),
        ],
        links=[
            ("self", f"{base}Organization?name=CH&_count=1"),
            ("next", f"{base}Organization?name=CH&_count=1&_offset=1"),
        ],
        total=2,
        timestamp=datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
    )
    assert bundle == {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": "2024-03-01T08:30:00.000Z",
        "total": 2,
        "link": [
            {"relation": "self", "url": "https://enrs.example/fhir/Organization?name=CH&_count=1"},
            {"relation": "next", "url": "https://enrs.example/fhir/Organization?name=CH&_count=1&_offset=1"},
        ],
        "entry": [
            {
                "fullUrl": "https://enrs.example/fhir/Organization/7",
                "resource": organization,
                "search": {"mode": "match"},
            },
            {
                "fullUrl": "https://enrs.example/fhir/PractitionerRole/3",
                "resource": role,
                "search": {"mode": "include"},
            },
            {"resource": outcome, "search": {"mode": "outcome"}},
        ],
    }
    Bundle.model_validate(bundle)


def test_empty_searchset_without_total() -> None:
    bundle = searchset(
        entries=[],
        links=[("self", "https://x/fhir/Practitioner?_count=50")],
        total=None,
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert "total" not in bundle
    assert "entry" not in bundle
    Bundle.model_validate(bundle)


# --- Parameter values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("martin", ("martin",)),
        ("martin,durand", ("martin", "durand")),
        (r"a\,b,c", ("a,b", "c")),
        (
            r"https://rpps.esante.gouv.fr|10003461033,810003461033",
            ("https://rpps.esante.gouv.fr|10003461033", "810003461033"),
        ),
        (r"x\|y", (r"x\|y",)),  # only the commas are unescaped here: the bar still splits tokens later
        ("a,", ("a", "")),
    ],
)
def test_split_values(raw: str, expected: tuple[str, ...]) -> None:
    assert split_values(raw) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("urn:oid:1.2.250.1.71.4.2.1|810003461033", Token("urn:oid:1.2.250.1.71.4.2.1", "810003461033")),
        ("|810003461033", Token("", "810003461033")),
        ("810003461033", Token(None, "810003461033")),
        ("https://rpps.esante.gouv.fr|", Token("https://rpps.esante.gouv.fr", "")),
        (r"a\|b|c", Token("a|b", "c")),
    ],
)
def test_parse_token(value: str, expected: Token) -> None:
    assert parse_token(value) == expected


def test_parse_bool() -> None:
    assert parse_bool("true", name="active") is True
    assert parse_bool("false", name="active") is False
    with pytest.raises(FhirError) as error:
        parse_bool("oui", name="active")
    assert error.value.status == 400


@pytest.mark.parametrize(
    ("value", "modifier", "expected"),
    [
        ("Organization/12", None, "12"),
        ("12", None, "12"),
        ("12", "Organization", "12"),
        ("https://enrs.example/fhir/Organization/12", None, "12"),
    ],
)
def test_parse_reference(value: str, modifier: str | None, expected: str) -> None:
    assert (
        parse_reference(value, resource_type="Organization", name="organization", type_modifier=modifier)
        == expected
    )


@pytest.mark.parametrize(
    ("value", "modifier"), [("Practitioner/12", None), ("12", "Practitioner"), ("Organization/a_b", None)]
)
def test_parse_reference_refuses_other_types_and_bad_ids(value: str, modifier: str | None) -> None:
    with pytest.raises(FhirError) as error:
        parse_reference(value, resource_type="Organization", name="organization", type_modifier=modifier)
    assert error.value.status == 400


def test_is_valid_id() -> None:
    assert is_valid_id("334081DP")
    assert is_valid_id("a-b.c")
    assert not is_valid_id("a_b")
    assert not is_valid_id("x" * 65)
    assert not is_valid_id("")


@pytest.mark.parametrize(
    ("value", "prefix", "start", "end"),
    [
        ("2024", "eq", datetime(2024, 1, 1, tzinfo=PARIS), datetime(2025, 1, 1, tzinfo=PARIS)),
        (
            "ge2024-02",
            "ge",
            datetime(2024, 2, 1, tzinfo=PARIS),
            datetime(2024, 3, 1, tzinfo=PARIS),
        ),  # leap year
        ("lt2023-02-28", "lt", datetime(2023, 2, 28, tzinfo=PARIS), datetime(2023, 3, 1, tzinfo=PARIS)),
        (
            "gt2024-03-01T10:00Z",
            "gt",
            datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
            datetime(2024, 3, 1, 10, 1, tzinfo=UTC),
        ),
        (
            "le2024-03-01T10:00:00+01:00",
            "le",
            datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
            datetime(2024, 3, 1, 9, 0, 1, tzinfo=UTC),
        ),
        (  # an unencoded "+" arrives as a space
            "ne2024-03-01T10:00:00 01:00",
            "ne",
            datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
            datetime(2024, 3, 1, 9, 0, 1, tzinfo=UTC),
        ),
        (
            "2024-03-01T08:30:15.123Z",
            "eq",
            datetime(2024, 3, 1, 8, 30, 15, 123000, tzinfo=UTC),
            datetime(2024, 3, 1, 8, 30, 15, 124000, tzinfo=UTC),
        ),
    ],
)
def test_parse_date(value: str, prefix: str, start: datetime, end: datetime) -> None:
    parsed = parse_date(value, name="_lastUpdated", default_tz=PARIS)
    assert parsed == DateRange(prefix, start, end)


@pytest.mark.parametrize(
    ("value", "status_code", "code"),
    [
        ("2024-13-01", 400, "invalid"),
        ("2024-02-30", 400, "invalid"),
        ("hier", 400, "invalid"),
        ("sa2024-01-01", 400, "not-supported"),
        ("ap2024", 400, "not-supported"),
    ],
)
def test_parse_date_refuses(value: str, status_code: int, code: str) -> None:
    with pytest.raises(FhirError) as error:
        parse_date(value, name="_lastUpdated", default_tz=PARIS)
    assert (error.value.status, error.value.code) == (status_code, code)
    assert error.value.expression == ("_lastUpdated",)


# --- Request validation -------------------------------------------------------------------------------


def _search(query: SearchQuery) -> SearchPage:
    return SearchPage([], False, 0)


THING = ResourceType(
    name="Practitioner",
    read=lambda resource_id: None,
    search=_search,
    access_rule=DIRECTORY_ACCESS,
    search_params=(
        id_param("Practitioner"),
        last_updated_param(),
        SearchParam("family", "string", "Nom.", modifiers=frozenset({"exact", "contains"})),
        SearchParam("identifier", "token", "Identifiant."),
    ),
)


INCLUDES = {"Practitioner:x": Inclusion("Practitioner", "x", "Organization", lambda matches, limit: [])}
REVINCLUDES = {
    "PractitionerRole:practitioner": Inclusion(
        "PractitionerRole", "practitioner", "Practitioner", lambda matches, limit: []
    )
}


def parse(pairs: list[tuple[str, str]], strict: bool = True) -> ParsedSearch:
    return parse_search(pairs, resource=THING, includes=INCLUDES, revincludes=REVINCLUDES, strict=strict)


def test_parse_search_keeps_parameters_in_order_and_adds_the_count_to_links() -> None:
    parsed = parse(
        [
            ("family:exact", "Le Gall,Martin"),
            ("identifier", "https://rpps.esante.gouv.fr|10003461033"),
            ("family", "du"),
            ("_count", "10"),
            ("_offset", "20"),
            ("_revinclude", "PractitionerRole:practitioner"),
            ("_format", "json"),
            ("given", ""),  # empty values are ignored, even for unknown parameters
        ]
    )
    assert parsed.query == SearchQuery(
        resource_type="Practitioner",
        params=(
            ParamValue("family", "exact", ("Le Gall", "Martin"), "Le Gall,Martin"),
            ParamValue(
                "identifier",
                None,
                ("https://rpps.esante.gouv.fr|10003461033",),
                "https://rpps.esante.gouv.fr|10003461033",
            ),
            ParamValue("family", None, ("du",), "du"),
        ),
        count=10,
        offset=20,
        count_total=True,
        revinclude=("PractitionerRole:practitioner",),
    )
    assert parsed.link_params == (
        ("family:exact", "Le Gall,Martin"),
        ("identifier", "https://rpps.esante.gouv.fr|10003461033"),
        ("family", "du"),
        ("_revinclude", "PractitionerRole:practitioner"),
        ("_count", "10"),
    )
    assert parsed.query.get("family")[1].values == ("du",)
    assert parsed.ignored == ()


def test_parse_search_accepts_includes_with_their_target_type() -> None:
    parsed = parse([("_include", "Practitioner:x:Organization"), ("_include", "Practitioner:x")])
    assert parsed.query.include == ("Practitioner:x",)
    assert parsed.link_params[0] == ("_include", "Practitioner:x:Organization")


def test_parse_search_defaults_and_caps() -> None:
    assert parse([]).query.count == 50
    assert parse([("_count", "1000")]).query.count == MAX_COUNT
    assert parse([("_total", "none")]).query.count_total is False
    summary = parse([("_summary", "count"), ("_count", "5")])
    assert (summary.summary_count, summary.query.count, summary.query.count_total) == (True, 0, True)
    assert parse([("_elements", "name,identifier")]).elements == ("name", "identifier")


@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        ([("famly", "x")], "not-supported"),
        ([("family:text", "x")], "not-supported"),
        ([("_sort", "family")], "not-supported"),
        ([("_include", "Practitioner:y")], "not-supported"),
        ([("_include", "Practitioner:x:Location")], "not-supported"),
        ([("_include:iterate", "Practitioner:x")], "not-supported"),
        ([("_summary", "true")], "not-supported"),
        ([("_count", "-1")], "invalid"),
        ([("_count", "dix")], "invalid"),
        ([("_count", "1"), ("_count", "2")], "invalid"),
        ([("_offset", "1.5")], "invalid"),
        ([("_total", "all")], "invalid"),
        ([("_elements", "name,Bad")], "invalid"),
    ],
)
def test_parse_search_strict_refusals(pairs: list[tuple[str, str]], code: str) -> None:
    with pytest.raises(FhirError) as error:
        parse(pairs)
    assert (error.value.status, error.value.code) == (400, code)


def test_parse_search_lenient_ignores_what_it_does_not_support() -> None:
    parsed = parse(
        [("famly", "x"), ("family:text", "y"), ("_sort", "family"), ("family", "du")], strict=False
    )
    assert parsed.ignored == ("famly", "family:text", "_sort")
    assert [p.name for p in parsed.query.params] == ["family"]
    assert parsed.link_params == (("family", "du"), ("_count", "50"))
    with pytest.raises(FhirError):  # malformed values are refused in both modes
        parse([("_count", "x")], strict=False)


def test_apply_elements_tags_the_subset() -> None:
    resource = {
        "resourceType": "Practitioner",
        "id": "1",
        "meta": {"lastUpdated": "2024-01-01T00:00:00.000Z"},
        "name": [],
        "identifier": [],
        "active": True,
    }
    assert apply_elements(resource, ("name",)) == {
        "resourceType": "Practitioner",
        "id": "1",
        "meta": {
            "lastUpdated": "2024-01-01T00:00:00.000Z",
            "tag": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
            ],
        },
        "name": [],
    }


# --- Registry and CapabilityStatement -----------------------------------------------------------------


def test_registry_refuses_a_second_owner_and_takes_inclusions_from_any_app() -> None:
    registry = Registry()
    registry.register(THING)
    with pytest.raises(RegistryError, match="déjà servi"):
        registry.register(THING)
    registry.register(THING, replace=True)
    # Another app adds a reverse include on a type it does not serve.
    inclusion = Inclusion("HealthcareService", "organization", "Organization", lambda matches, limit: [])
    registry.register_inclusion(inclusion, reverse=True)
    assert registry.revincludes("Organization") == {"HealthcareService:organization": inclusion}
    assert registry.includes("HealthcareService") == {}
    with pytest.raises(RegistryError, match="déjà enregistré"):
        registry.register_inclusion(inclusion, reverse=True)


def test_capability_statement_lists_what_is_registered() -> None:
    inclusion = Inclusion("PractitionerRole", "practitioner", "Practitioner", lambda matches, limit: [])
    statement = capability_statement(
        resource_types=[THING],
        includes={},
        revincludes={"Practitioner": {inclusion.name: inclusion}},
        base_url="https://enrs.example/fhir/",
        date=datetime(2024, 3, 1, tzinfo=UTC),
        software_version="0.1.0",
    )
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == "https://enrs.example/fhir/"
    (resource,) = statement["rest"][0]["resource"]
    assert resource["type"] == "Practitioner"
    assert resource["interaction"] == [{"code": "read"}, {"code": "search-type"}]
    assert resource["searchRevInclude"] == ["PractitionerRole:practitioner"]
    assert "searchInclude" not in resource
    assert [p["name"] for p in resource["searchParam"]] == ["_id", "_lastUpdated", "family", "identifier"]
    assert resource["searchParam"][0]["definition"] == "http://hl7.org/fhir/SearchParameter/Resource-id"
    assert resource["searchParam"][2]["documentation"] == "Nom. Modificateurs : :contains, :exact."
