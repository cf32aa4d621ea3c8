"""Roles of the portal and the access rules that go with them, in one place.

A view states what it needs with one `AccessRule` (which roles, whether the session must have been opened
with a strong method, whether the view returns nominative patient data). The same rule is applied by
three adapters, so function views, class-based views and the API say it the same way:

* `@access_required(CLINICAL_ACCESS)` (or `@access_required(roles.DIRECTORY, strong=False)`) for functions;
* `AccessRequiredMixin` with `access_rule = ...` for class-based views;
* `HasRole.for_rule(...)` (or `HasRole` + `access_rule` on the view) for DRF views.

What happens when the rule is not met:

* anonymous visitor → sign-in page (`?next=` the page);
* wrong role → 403 with a French message (the 403 page);
* right role but a password-only session on a page that needs strong authentication → the OTP step:
  `accounts:otp_verify` when the user has a confirmed TOTP device, else `accounts:otp_enrol`.

Denials on views that return patient data are written to the audit trail (`access.denied`).

ARS analysts never reach nominative patient data: a rule with `patient_data=True` cannot include them
(checked when the rule is built), and `tests/accounts/test_roles.py` walks every URL of the project to
check that each view flagged `patient_data` turns them away.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.views import View
from rest_framework.permissions import BasePermission

from .authn import is_strongly_authenticated


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Professionnel de santé"
    GCS_STAFF = "gcs_staff", "Équipe du GCS"
    ARS_ANALYST = "ars_analyst", "Analyste ARS"
    ADMIN = "admin", "Administrateur"


# Who may reach which part of the portal. ARS analysts never reach nominative patient data:
# messagerie, DMP and télémédecine are closed to them.
CLINICAL = frozenset({Role.CLINICIAN, Role.ADMIN})
DIRECTORY = frozenset(Role)
ROR = frozenset(Role)
DASHBOARDS = frozenset({Role.ARS_ANALYST, Role.GCS_STAFF, Role.ADMIN})
ADMINISTRATION = frozenset({Role.GCS_STAFF, Role.ADMIN})
SIGNED_IN = frozenset(Role)

ROLE_DENIED_MESSAGE = "Votre rôle ne donne pas accès à cette page."
STRONG_AUTH_MESSAGE = (
    "Cette page donne accès à des données de santé : elle demande une authentification forte "
    "(carte CPS, Pro Santé Connect ou mot de passe et code à usage unique)."
)

# URL names of the step-up pages (enrs.accounts OTP views). Reversed lazily, at request time.
OTP_VERIFY_URL_NAME = "accounts:otp_verify"
OTP_ENROL_URL_NAME = "accounts:otp_enrol"


def user_has_role(user: Any, roles: frozenset[Role] | set[Role]) -> bool:
    """True when the user is signed in and holds one of `roles` (superusers count as administrators)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return Role.ADMIN in roles
    return user.role in roles


class Denial(StrEnum):
    """Why an access rule turned a request away."""

    ANONYMOUS = "anonymous"
    ROLE = "role"
    WEAK_AUTHENTICATION = "weak_authentication"

    @property
    def message(self) -> str:
        if self is Denial.WEAK_AUTHENTICATION:
            return STRONG_AUTH_MESSAGE
        if self is Denial.ROLE:
            return ROLE_DENIED_MESSAGE
        return "Connectez-vous pour accéder à cette page."


@dataclass(frozen=True, slots=True)
class AccessRule:
    """What a view needs: one of `roles`, a strong sign-in method when `strong`, and — informative but
    checked — whether it returns nominative patient data (`patient_data`), which implies `strong` and
    excludes ARS analysts."""

    roles: frozenset[Role]
    strong: bool = False
    patient_data: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))
        if not self.roles:
            raise ImproperlyConfigured("Une règle d'accès doit autoriser au moins un rôle.")
        if self.patient_data and not self.strong:
            raise ImproperlyConfigured(
                "Une vue qui renvoie des données de patient demande une authentification forte (strong=True)."
            )
        if self.patient_data and Role.ARS_ANALYST in self.roles:
            raise ImproperlyConfigured(
                "Les analystes ARS n'ont jamais accès aux données nominatives de patients."
            )

    def denial(self, request: HttpRequest) -> Denial | None:
        """None when `request` may go through, else why not. Works with Django and DRF requests."""
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return Denial.ANONYMOUS
        if not user_has_role(user, self.roles):
            return Denial.ROLE
        if self.strong and not is_strongly_authenticated(request):
            return Denial.WEAK_AUTHENTICATION
        return None

    def allows(self, request: HttpRequest) -> bool:
        return self.denial(request) is None

    @property
    def label(self) -> str:
        return self.name or ",".join(sorted(self.roles))


# The rules of the portal's parts. Views use these; the navigation shows a service to the roles of its rule.
DIRECTORY_ACCESS = AccessRule(DIRECTORY, strong=False, name="directory")
ROR_ACCESS = AccessRule(ROR, strong=False, name="ror")
DASHBOARDS_ACCESS = AccessRule(DASHBOARDS, strong=False, name="dashboards")
ADMINISTRATION_ACCESS = AccessRule(ADMINISTRATION, strong=False, name="administration")
SIGNED_IN_ACCESS = AccessRule(SIGNED_IN, strong=False, name="signed_in")
# Messagerie, DMP, télémédecine: nominative health data, strong authentication, never ARS analysts.
CLINICAL_ACCESS = AccessRule(CLINICAL, strong=True, patient_data=True, name="clinical")


def step_up_url(request: HttpRequest) -> str | None:
    """Where a password-only session goes to become strong: the OTP check when the user has a confirmed
    device, else the enrolment. None when those pages are not installed (the caller then answers 403)."""
    from django_otp import devices_for_user

    has_device = any(True for _ in devices_for_user(request.user, confirmed=True))
    try:
        url = reverse(OTP_VERIFY_URL_NAME if has_device else OTP_ENROL_URL_NAME)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode({'next': request.get_full_path()})}"


def audit_denial(request: HttpRequest, rule: AccessRule, denial: Denial) -> None:
    """Write `access.denied` for a refused access to patient data (other denials are not audited)."""
    if not rule.patient_data or denial is Denial.ANONYMOUS:
        return
    from enrs.audit.services import audit_record

    audit_record(
        action="access.denied",
        request=request,
        actor=request.user,
        outcome="denied",
        detail={
            "reason": denial.value,
            "rule": rule.label,
            "path": request.path,
            "method": request.method,
        },
    )


def deny(request: HttpRequest, rule: AccessRule, denial: Denial) -> HttpResponseBase:
    """The answer to a denied HTML request (audited when the view returns patient data)."""
    if denial is Denial.ANONYMOUS:
        from django.contrib.auth.views import redirect_to_login  # imports forms: not at model-loading time

        return redirect_to_login(request.get_full_path())
    audit_denial(request, rule, denial)
    if denial is Denial.WEAK_AUTHENTICATION:
        url = step_up_url(request)
        if url is not None:
            return HttpResponseRedirect(url)
    raise PermissionDenied(denial.message)


ViewT = TypeVar("ViewT", bound=Callable[..., HttpResponseBase])


def access_required(
    rule: AccessRule | Iterable[Role],
    *,
    strong: bool | None = None,
    patient_data: bool = False,
) -> Callable[[ViewT], ViewT]:
    """View decorator applying an access rule: either a named rule (`access_required(CLINICAL_ACCESS)`)
    or a role set with an explicit strength (`access_required(roles.DIRECTORY, strong=False)`).

    The rule is recorded on the view (`view.access_rule`), where the URL-walking tests find it."""
    if isinstance(rule, AccessRule):
        if strong is not None or patient_data:
            raise TypeError("access_required(rule): strong= and patient_data= belong to the rule.")
        access_rule = rule
    else:
        if strong is None:
            raise TypeError("access_required(roles, strong=...): say whether the view needs strong auth.")
        access_rule = AccessRule(frozenset(rule), strong=strong, patient_data=patient_data)

    def decorator(view: ViewT) -> ViewT:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            denial = access_rule.denial(request)
            if denial is not None:
                return deny(request, access_rule, denial)
            return view(request, *args, **kwargs)

        wrapped.access_rule = access_rule  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def role_required(roles: frozenset[Role] | set[Role]) -> Callable[[ViewT], ViewT]:
    """Older spelling of `access_required(roles, strong=False)`: the user must hold one of `roles`."""
    return access_required(roles, strong=False)


class AccessRequiredMixin(View):
    """Class-based views: set `access_rule`; `dispatch` applies it before any handler runs."""

    access_rule: ClassVar[AccessRule]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        rule = getattr(self, "access_rule", None)
        if not isinstance(rule, AccessRule):
            raise ImproperlyConfigured(f"{type(self).__name__} doit définir access_rule.")
        denial = rule.denial(request)
        if denial is not None:
            return deny(request, rule, denial)
        return super().dispatch(request, *args, **kwargs)


class HasRole(BasePermission):
    """DRF permission applying an access rule: `permission_classes = [HasRole.for_rule(CLINICAL_ACCESS)]`,
    or `permission_classes = [HasRole]` with `access_rule = ...` on the view.

    An API cannot send the user to the OTP page: a password-only session gets a 403 saying that strong
    authentication is needed."""

    rule: ClassVar[AccessRule | None] = None
    message = ROLE_DENIED_MESSAGE

    @classmethod
    def for_rule(cls, rule: AccessRule) -> type["HasRole"]:
        return type(f"HasRole_{rule.label}", (cls,), {"rule": rule})

    def has_permission(self, request: Any, view: Any) -> bool:
        rule = self.rule or getattr(view, "access_rule", None)
        if not isinstance(rule, AccessRule):
            raise ImproperlyConfigured(f"{type(view).__name__} : HasRole sans règle d'accès (access_rule).")
        denial = rule.denial(request)
        if denial is None:
            return True
        # DRF answers NotAuthenticated for anonymous callers, and `self.message` otherwise.
        self.message = denial.message
        audit_denial(request, rule, denial)
        return False


def access_rule_of(view: Any) -> AccessRule | None:
    """The access rule a URL callback declares, whatever its kind (function, class-based, DRF), or None."""
    rule = getattr(view, "access_rule", None)
    if isinstance(rule, AccessRule):
        return rule
    cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if cls is None:
        return None
    dispatch = getattr(cls, "dispatch", None)  # method_decorator(access_required(...), name="dispatch")
    for candidate in (getattr(cls, "access_rule", None), getattr(dispatch, "access_rule", None)):
        if isinstance(candidate, AccessRule):
            return candidate
    for permission in getattr(cls, "permission_classes", ()):
        candidate = getattr(permission, "rule", None)
        if isinstance(candidate, AccessRule):
            return candidate
    return None


__all__ = [
    "ADMINISTRATION",
    "ADMINISTRATION_ACCESS",
    "CLINICAL",
    "CLINICAL_ACCESS",
    "DASHBOARDS",
    "DASHBOARDS_ACCESS",
    "DIRECTORY",
    "DIRECTORY_ACCESS",
    "ROR",
    "ROR_ACCESS",
    "SIGNED_IN",
    "SIGNED_IN_ACCESS",
    "AccessRequiredMixin",
    "AccessRule",
    "Denial",
    "HasRole",
    "Role",
    "access_required",
    "access_rule_of",
    "deny",
    "role_required",
    "step_up_url",
    "user_has_role",
]
