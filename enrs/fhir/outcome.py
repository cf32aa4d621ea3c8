"""OperationOutcome, and the error the FHIR layer turns into one. Pure code: no Django import.

Every error of the ``/fhir/`` endpoint (400, 401, 403, 404, 405, 406, 500) is answered with an
OperationOutcome whose ``issue.code`` comes from the FHIR IssueType value set
(http://hl7.org/fhir/R4/valueset-issue-type.html). Diagnostics are in French: they are read by the
people who integrate a client system.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# IssueSeverity / IssueType codes used by the endpoint.
ERROR = "error"
WARNING = "warning"
INFORMATION = "information"

INVALID = "invalid"
NOT_SUPPORTED = "not-supported"
NOT_FOUND = "not-found"
LOGIN = "login"
FORBIDDEN = "forbidden"
EXCEPTION = "exception"
INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class Issue:
    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    """An OperationOutcome resource (JSON) listing `issues`, in order."""
    if not issues:
        raise ValueError("An OperationOutcome needs at least one issue.")
    out: list[dict[str, Any]] = []
    for issue in issues:
        item: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.expression:
            item["expression"] = list(issue.expression)
        out.append(item)
    return {"resourceType": "OperationOutcome", "issue": out}


@dataclass(eq=False)
class FhirError(Exception):
    """An error answered with `status` and an OperationOutcome holding one error issue."""

    status: int
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)

    @property
    def issue(self) -> Issue:
        return Issue(ERROR, self.code, self.diagnostics, self.expression)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issue)


def invalid(diagnostics: str, *, expression: tuple[str, ...] = ()) -> FhirError:
    """400: a search or read request the server cannot understand."""
    return FhirError(400, INVALID, diagnostics, expression)


def not_supported(diagnostics: str, *, expression: tuple[str, ...] = ()) -> FhirError:
    """400: a well-formed request using a feature (parameter, modifier, prefix) the server lacks."""
    return FhirError(400, NOT_SUPPORTED, diagnostics, expression)
