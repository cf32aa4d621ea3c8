"""Access rules: one definition of what a view needs (role + strong authentication), applied by the
decorator, the class-based mixin and the DRF permission; ARS analysts never reach patient data.

The two "walk" tests enumerate every URL pattern of the project, so views added later are covered
without touching this file."""

import contextlib
import importlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from django.utils.decorators import method_decorator
from django.utils.regex_helper import normalize
from django.views import View
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from enrs.accounts import roles
from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.accounts.roles import (
    CLINICAL_ACCESS,
    DIRECTORY_ACCESS,
    STRONG_AUTH_MESSAGE,
    AccessRequiredMixin,
    AccessRule,
    Denial,
    HasRole,
    Role,
    access_required,
    access_rule_of,
    role_required,
)
from enrs.audit.models import AuditEvent
from enrs.core.navigation import SERVICES
from tests.factories import UserFactory

CLINICAL_PAGES = ["/messagerie/", "/dmp/", "/telemedecine/"]
# Modules whose views handle nominative health data: each of their views must carry a rule closed to ARS.
CLINICAL_MODULES = ("messagerie", "dmp", "telemedecine")


def sign_in_as(client: Client, user: User, method: AuthMethod | None) -> Client:
    """Open a session for `user` as if signed in with `method` (None: no method recorded)."""
    client.force_login(user)
    if method is not None:
        session = client.session
        session[SESSION_METHOD_KEY] = method.value
        session.save()
    return client


def make_user(role: Role, **kwargs: Any) -> User:
    return cast(User, UserFactory(**{role.value: True}, **kwargs))


def denied_events(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="access.denied", actor=user).order_by("id"))


def request_for(user: Any, method: AuthMethod | None = None, path: str = "/page/?x=1") -> HttpRequest:
    request = RequestFactory().get(path, REMOTE_ADDR="192.0.2.10")
    request.user = user
    request.session = SessionStore()
    if method is not None:
        request.session[SESSION_METHOD_KEY] = method.value
    return request


# --- The rule object --------------------------------------------------------------------------------


def test_a_patient_data_rule_must_ask_for_strong_authentication() -> None:
    with pytest.raises(ImproperlyConfigured, match="authentification forte"):
        AccessRule(roles.CLINICAL, strong=False, patient_data=True)


def test_a_patient_data_rule_can_never_admit_ars_analysts() -> None:
    with pytest.raises(ImproperlyConfigured, match="analystes ARS"):
        AccessRule(frozenset({Role.CLINICIAN, Role.ARS_ANALYST}), strong=True, patient_data=True)


def test_a_rule_needs_at_least_one_role() -> None:
    with pytest.raises(ImproperlyConfigured):
        AccessRule(frozenset(), strong=False)


def test_the_clinical_rule_is_strong_patient_data_for_clinicians_and_admins() -> None:
    assert CLINICAL_ACCESS.roles == {Role.CLINICIAN, Role.ADMIN}
    assert CLINICAL_ACCESS.strong is True
    assert CLINICAL_ACCESS.patient_data is True
    assert roles.DASHBOARDS_ACCESS.patient_data is False
    assert Role.ARS_ANALYST in roles.DASHBOARDS_ACCESS.roles


def test_the_decorator_makes_the_view_say_whether_it_needs_strong_authentication() -> None:
    with pytest.raises(TypeError, match="strong"):
        access_required(roles.DIRECTORY)
    with pytest.raises(TypeError):
        access_required(CLINICAL_ACCESS, strong=False)

    @access_required(roles.CLINICAL, strong=True, patient_data=True)
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert access_rule_of(view) == AccessRule(roles.CLINICAL, strong=True, patient_data=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "method", "expected"),
    [
        (Role.CLINICIAN, AuthMethod.CPS, None),
        (Role.CLINICIAN, AuthMethod.PSC, None),
        (Role.CLINICIAN, AuthMethod.OTP, None),
        (Role.CLINICIAN, AuthMethod.PASSWORD, Denial.WEAK_AUTHENTICATION),
        (Role.CLINICIAN, None, Denial.WEAK_AUTHENTICATION),
        (Role.ADMIN, AuthMethod.CPS, None),
        (Role.ARS_ANALYST, AuthMethod.CPS, Denial.ROLE),
        (Role.ARS_ANALYST, AuthMethod.PASSWORD, Denial.ROLE),  # the role is checked first
        (Role.GCS_STAFF, AuthMethod.OTP, Denial.ROLE),
    ],
)
def test_clinical_rule_decisions(role: Role, method: AuthMethod | None, expected: Denial | None) -> None:
    assert CLINICAL_ACCESS.denial(request_for(make_user(role), method)) is expected


def test_anonymous_visitors_are_denied_as_anonymous() -> None:
    assert DIRECTORY_ACCESS.denial(request_for(AnonymousUser())) is Denial.ANONYMOUS


@pytest.mark.django_db
def test_a_superuser_counts_as_an_administrator() -> None:
    user = make_user(Role.CLINICIAN, is_superuser=True)
    assert roles.ADMINISTRATION_ACCESS.allows(request_for(user, AuthMethod.PASSWORD))
    assert not roles.DASHBOARDS_ACCESS.allows(request_for(make_user(Role.CLINICIAN), AuthMethod.PASSWORD))


# --- The landing pages ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", CLINICAL_PAGES)
def test_clinicians_with_a_strong_session_open_the_clinical_pages(client: Client, url: str) -> None:
    user = make_user(Role.CLINICIAN)
    response = sign_in_as(client, user, AuthMethod.CPS).get(url)
    assert response.status_code == 200
    assert denied_events(user) == []


@pytest.mark.django_db
@pytest.mark.parametrize("url", CLINICAL_PAGES)
def test_ars_analysts_get_the_french_403_on_clinical_pages_and_it_is_audited(
    client: Client, url: str
) -> None:
    analyst = make_user(Role.ARS_ANALYST)
    response = sign_in_as(client, analyst, AuthMethod.CPS).get(url)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Accès refusé" in html
    assert "Votre rôle ne donne pas accès à cette page." in html
    [event] = denied_events(analyst)
    assert event.outcome == "denied"
    assert event.detail["reason"] == "role"
    assert event.detail["rule"] == "clinical"
    assert event.detail["path"] == url
    assert event.auth_method == "cps"


@pytest.mark.django_db
def test_password_only_clinician_without_device_is_sent_to_otp_enrolment(client: Client) -> None:
    user = make_user(Role.CLINICIAN)
    response = sign_in_as(client, user, AuthMethod.PASSWORD).get("/dmp/?onglet=documents")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:otp_enrol") + "?next=%2Fdmp%2F%3Fonglet%3Ddocuments"
    [event] = denied_events(user)
    assert event.detail["reason"] == "weak_authentication"
    assert event.auth_method == "password"


@pytest.mark.django_db
def test_password_only_clinician_with_a_confirmed_device_is_sent_to_otp_verification(client: Client) -> None:
    user = make_user(Role.CLINICIAN)
    TOTPDevice.objects.create(user=user, name="Application", confirmed=False)
    sign_in_as(client, user, AuthMethod.PASSWORD)
    assert client.get("/messagerie/")["Location"].startswith(reverse("accounts:otp_enrol") + "?next=")

    TOTPDevice.objects.create(user=user, name="Téléphone", confirmed=True)
    response = client.get("/messagerie/")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:otp_verify") + "?next=%2Fmessagerie%2F"


@pytest.mark.django_db
def test_without_otp_pages_a_weak_session_gets_a_403_not_the_page(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(roles, "OTP_ENROL_URL_NAME", "accounts:page-absente")
    user = make_user(Role.CLINICIAN)
    response = sign_in_as(client, user, AuthMethod.PASSWORD).get("/telemedecine/")
    assert response.status_code == 403
    assert STRONG_AUTH_MESSAGE in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "url", "status"),
    [
        (Role.ARS_ANALYST, "/annuaire/", 200),
        (Role.ARS_ANALYST, "/ror/", 200),
        (Role.ARS_ANALYST, "/tableaux-de-bord/", 200),
        (Role.GCS_STAFF, "/tableaux-de-bord/", 200),
        (Role.CLINICIAN, "/annuaire/", 200),
        (Role.CLINICIAN, "/tableaux-de-bord/", 403),
    ],
)
def test_non_clinical_pages_need_a_role_but_no_strong_method(
    client: Client, role: Role, url: str, status: int
) -> None:
    user = make_user(role)
    assert sign_in_as(client, user, AuthMethod.PASSWORD).get(url).status_code == status
    assert denied_events(user) == []  # only denials of patient data are audited


# --- The three adapters -------------------------------------------------------------------------------


class ClinicalPage(AccessRequiredMixin, View):
    access_rule = CLINICAL_ACCESS

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("dossier")


class DecoratedDispatch(View):
    @method_decorator(access_required(DIRECTORY_ACCESS))
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return super().dispatch(request, *args, **kwargs)


class ClinicalApi(APIView):
    permission_classes = [HasRole.for_rule(CLINICAL_ACCESS)]

    def get(self, request: Any) -> Response:
        return Response({"patient": "DUPONT"})


class DashboardApi(APIView):
    permission_classes = [HasRole]
    access_rule = roles.DASHBOARDS_ACCESS

    def get(self, request: Any) -> Response:
        return Response({"actes": 12})


class ApiWithoutRule(APIView):
    permission_classes = [HasRole]

    def get(self, request: Any) -> Response:
        return Response({})


def test_access_rule_of_finds_the_rule_of_every_kind_of_view() -> None:
    assert access_rule_of(ClinicalPage.as_view()) is CLINICAL_ACCESS
    assert access_rule_of(DecoratedDispatch.as_view()) is DIRECTORY_ACCESS
    assert access_rule_of(ClinicalApi.as_view()) is CLINICAL_ACCESS
    assert access_rule_of(DashboardApi.as_view()) is roles.DASHBOARDS_ACCESS
    assert access_rule_of(resolve("/dmp/").func) is CLINICAL_ACCESS
    assert access_rule_of(role_required(roles.ROR)(lambda request: HttpResponse())) == AccessRule(
        roles.ROR, strong=False
    )
    assert access_rule_of(ApiWithoutRule.as_view()) is None


@pytest.mark.django_db
def test_the_mixin_applies_the_rule_before_the_handler(settings) -> None:
    view = ClinicalPage.as_view()
    clinician = make_user(Role.CLINICIAN)
    page = view(request_for(clinician, AuthMethod.PSC))
    assert isinstance(page, HttpResponse)
    assert page.content == b"dossier"

    response = view(request_for(clinician, AuthMethod.PASSWORD, path="/dossier/"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:otp_enrol") + "?next=%2Fdossier%2F"

    analyst = make_user(Role.ARS_ANALYST)
    with pytest.raises(PermissionDenied, match="Votre rôle ne donne pas accès"):
        view(request_for(analyst, AuthMethod.CPS, path="/dossier/"))
    assert [e.detail["reason"] for e in denied_events(analyst)] == ["role"]

    anonymous = view(request_for(AnonymousUser(), path="/dossier/"))
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"{reverse(settings.LOGIN_URL)}?next=/dossier/"


def test_the_mixin_refuses_a_view_without_rule(rf: RequestFactory) -> None:
    class NoRule(AccessRequiredMixin, View):
        pass

    with pytest.raises(ImproperlyConfigured, match="access_rule"):
        NoRule.as_view()(rf.get("/"))


def api_get(view: Callable[..., Any], user: Any, method: AuthMethod | None) -> Any:
    request = APIRequestFactory().get("/api/essai/")
    request.session = SessionStore()
    if method is not None:
        request.session[SESSION_METHOD_KEY] = method.value
    if user is not None:
        force_authenticate(request, user=user)
    response = view(request)
    response.render()
    return response


@pytest.mark.django_db
def test_the_drf_permission_applies_the_rule() -> None:
    clinician = make_user(Role.CLINICIAN)
    analyst = make_user(Role.ARS_ANALYST)
    view = ClinicalApi.as_view()

    ok = api_get(view, clinician, AuthMethod.CPS)
    assert ok.status_code == 200
    assert ok.data == {"patient": "DUPONT"}

    weak = api_get(view, clinician, AuthMethod.PASSWORD)
    assert weak.status_code == 403
    assert weak.data["detail"] == STRONG_AUTH_MESSAGE

    wrong_role = api_get(view, analyst, AuthMethod.CPS)
    assert wrong_role.status_code == 403
    assert wrong_role.data["detail"] == "Votre rôle ne donne pas accès à cette page."
    assert "DUPONT" not in wrong_role.rendered_content.decode()
    assert [e.detail["reason"] for e in denied_events(analyst)] == ["role"]
    assert [e.detail["reason"] for e in denied_events(clinician)] == ["weak_authentication"]

    assert api_get(view, None, None).status_code in {401, 403}


@pytest.mark.django_db
def test_the_drf_permission_reads_the_rule_of_the_view() -> None:
    view = DashboardApi.as_view()
    assert api_get(view, make_user(Role.ARS_ANALYST), AuthMethod.PASSWORD).data == {"actes": 12}
    assert api_get(view, make_user(Role.CLINICIAN), AuthMethod.CPS).status_code == 403
    with pytest.raises(ImproperlyConfigured, match="access_rule"):
        api_get(ApiWithoutRule.as_view(), make_user(Role.ADMIN), AuthMethod.CPS)


# --- The navigation and the views share their rules ----------------------------------------------------


def test_each_service_of_the_navigation_has_the_rule_of_its_page() -> None:
    for service in SERVICES:
        if service.key == "administration":  # Django's admin site: its own staff check
            continue
        assert access_rule_of(resolve(service.url).func) is service.access, service.key
    by_key = {s.key: s for s in SERVICES}
    assert all(by_key[k].needs_strong_auth for k in CLINICAL_MODULES)
    assert Role.ARS_ANALYST not in by_key["messagerie"].roles


# --- Walking every URL of the project -----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str | None  # a concrete path that resolves to this view, or None when none could be built
    callback: Callable[..., Any]

    @property
    def rule(self) -> AccessRule | None:
        return access_rule_of(self.callback)

    @property
    def module(self) -> str:
        cls = getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)
        return (cls or self.callback).__module__

    @property
    def login_required(self) -> bool:
        return getattr(self.callback, "login_required", True)

    @property
    def api_view(self) -> type[APIView] | None:
        cls = getattr(self.callback, "cls", None)
        return cls if isinstance(cls, type) and issubclass(cls, APIView) else None

    @property
    def public(self) -> bool:
        """Open to anonymous callers on purpose: @login_not_required, or an API allowing anyone."""
        if self.api_view is not None:
            return AllowAny in self.api_view.permission_classes
        return not self.login_required


# URL parameters: an example string generated from the pattern's own regex, then a few usual values, until
# the whole path resolves back to the view.
SAMPLE_VALUES = ("1", "a", "json", "00000000-0000-0000-0000-000000000001")
_sre = importlib.import_module("re._parser")
_c = importlib.import_module("re._constants")


class _Unsupported(Exception):
    pass


def _from_set(items: list[Any]) -> str:
    def matches(ch: str) -> bool:
        for op, av in items:
            if op is _c.LITERAL and ch == chr(av):
                return True
            if op is _c.RANGE and av[0] <= ord(ch) <= av[1]:
                return True
            if op is _c.CATEGORY and re.fullmatch(_CATEGORY_RE.get(av, "(?!)"), ch):
                return True
        return False

    negate = bool(items) and items[0][0] is _c.NEGATE
    for ch in "a1x-_A":
        if matches(ch) != negate:
            return ch
    raise _Unsupported


_CATEGORY_RE = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
}


def _emit(parsed: Any) -> str:
    out = []
    for op, av in parsed:
        if op is _c.LITERAL:
            out.append(chr(av))
        elif op is _c.NOT_LITERAL:
            out.append("a" if chr(av) != "a" else "b")
        elif op is _c.ANY:
            out.append("a")
        elif op is _c.IN:
            out.append(_from_set(av))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            low, _high, sub = av
            out.append(_emit(sub) * max(low, 1))
        elif op is _c.SUBPATTERN:
            out.append(_emit(av[-1]))
        elif op is _c.BRANCH:
            out.append(_emit(av[1][0]))
        elif op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        else:
            raise _Unsupported(op)
    return "".join(out)


def _candidates(piece: Any) -> list[str]:
    out = []
    with contextlib.suppress(_Unsupported):
        out.append(_emit(_sre.parse(piece.regex.pattern)))
    for template, params in normalize(piece.regex.pattern):
        for value in SAMPLE_VALUES:
            out.append(template % dict.fromkeys(params, value))
    return list(dict.fromkeys(out))


def walk(
    patterns: list[Any] | None = None, prefix: tuple[Any, ...] = (), namespace: str = ""
) -> Iterator[Endpoint]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, (*prefix, entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            pieces = (*prefix, entry.pattern)
            path = None
            for combo in itertools.product(*(_candidates(p) for p in pieces)):
                candidate = "/" + "".join(combo)
                try:
                    match = resolve(candidate)
                except Resolver404:
                    continue
                if match.func is entry.callback:
                    path = candidate
                    break
            yield Endpoint(f"{namespace}{entry.name or entry.lookup_str}", path, entry.callback)


ENDPOINTS = list(walk())
PATIENT_DATA_ENDPOINTS = [e for e in ENDPOINTS if e.rule is not None and e.rule.patient_data]


def test_the_walk_sees_the_whole_project() -> None:
    names = {e.name for e in ENDPOINTS}
    assert {"core:home", "accounts:profile", "annuaire:index", "admin:index", "healthz"} <= names
    assert {"messagerie:index", "dmp:index", "telemedecine:index"} <= {e.name for e in PATIENT_DATA_ENDPOINTS}


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.module.startswith(CLINICAL_MODULES)], ids=lambda e: e.name
)
def test_every_view_of_the_clinical_apps_declares_a_rule_closed_to_ars_analysts(endpoint: Endpoint) -> None:
    if endpoint.public and endpoint.rule is None:
        pytest.skip("public endpoint (e.g. a peer's callback): no session, no patient page")
    assert endpoint.rule is not None, f"{endpoint.name}: no access rule (use roles.CLINICAL_ACCESS)"
    assert Role.ARS_ANALYST not in endpoint.rule.roles, endpoint.name


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", PATIENT_DATA_ENDPOINTS, ids=lambda e: e.name)
def test_ars_analysts_never_reach_a_view_flagged_patient_data(client: Client, endpoint: Endpoint) -> None:
    assert endpoint.path is not None, f"{endpoint.name}: no sample URL could be built for this pattern"
    analyst = make_user(Role.ARS_ANALYST)
    # Even with a strong session: it is the role that closes the door.
    sign_in_as(client, analyst, AuthMethod.CPS)
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(client, method)(endpoint.path)
        if response.status_code == 405:
            continue
        assert response.status_code in {302, 403}, (endpoint.name, method, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("accounts:login")), response["Location"]
        else:
            assert denied_events(analyst), f"{endpoint.name}: the denial was not audited"
        break
    else:
        pytest.fail(f"{endpoint.name}: no HTTP method answered")


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_protected_view_sends_anonymous_visitors_to_login(client: Client, endpoint: Endpoint) -> None:
    if endpoint.public and endpoint.rule is None:
        pytest.skip("public on purpose (@login_not_required, or an API with AllowAny)")
    assert endpoint.path is not None, f"{endpoint.name}: no sample URL could be built for this pattern"
    response = client.get(endpoint.path)
    if endpoint.api_view is None:
        assert response.status_code == 302, (endpoint.name, response.status_code)
        target = urlsplit(response["Location"])
        # The portal's sign-in page (the admin site sends to its own, which leads to the same accounts).
        assert resolve(target.path).url_name == "login", response["Location"]
        assert target.query.startswith("next="), response["Location"]
    else:  # DRF views answer for themselves: no redirect, but no data either
        assert response.status_code in {401, 403}, (endpoint.name, response.status_code)
