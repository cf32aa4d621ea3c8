"""The Django admin behind the portal's own sign-in: no password-only door, strong sessions only."""

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme

from enrs.accounts.authn import is_strongly_authenticated


class ENRSAdminSite(admin.AdminSite):
    site_header = "Administration ENRS"
    site_title = "ENRS"
    index_title = "Administration du portail"

    def has_permission(self, request: HttpRequest) -> bool:
        # Staff accounts can change users, roles and directory data: a password alone is not enough.
        return super().has_permission(request) and is_strongly_authenticated(request)

    @method_decorator(login_not_required)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """No login form of its own: send people through the portal's sign-in (password + OTP, CPS, PSC)."""
        next_url = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = ""
        next_url = next_url or reverse("admin:index")
        if self.has_permission(request):
            return HttpResponseRedirect(next_url)
        if request.user.is_authenticated:
            if not (request.user.is_active and request.user.is_staff):
                raise PermissionDenied("L'administration est réservée aux administrateurs du portail.")
            try:
                step_up = reverse("accounts:otp_verify")
            except NoReverseMatch as exc:  # pragma: no cover - the OTP views are part of accounts
                raise PermissionDenied("Une authentification forte est nécessaire.") from exc
            return HttpResponseRedirect(f"{step_up}?{urlencode({'next': next_url})}")
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")


class ENRSAdminConfig(AdminConfig):
    default_site = "enrs.core.admin_site.ENRSAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin.py
        from dsfr.models import DsfrConfig

        # django-dsfr's site configuration is not used: the portal shell is ENRS's own templates.
        if admin.site.is_registered(DsfrConfig):
            admin.site.unregister(DsfrConfig)
