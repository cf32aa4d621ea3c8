"""Who calls the messagerie API: a signed-in clinician (session, strong authentication) or a software
sender of an applicative box, with its token: ``Authorization: Bearer mss_…``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from enrs.accounts.roles import CLINICAL_ACCESS, HasRole

from ..models import ApplicationToken
from ..services.mailboxes import token_authenticate

KEYWORD = b"bearer"


class ApplicationTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>`` of an applicative box. The request's user stays anonymous (no
    person is behind it): ``request.auth`` is the `ApplicationToken`, and only its box is reachable."""

    def authenticate(self, request: Request) -> tuple[Any, ApplicationToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("En-tête Authorization invalide : « Bearer <jeton> » attendu.")
        try:
            clear = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Jeton invalide.") from None
        token = token_authenticate(clear)
        if token is None:
            raise AuthenticationFailed("Jeton invalide, révoqué, ou boîte désactivée.")
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="messagerie"'


class MailboxApiAccess(HasRole):
    """A token of an applicative box, or a clinician's strong session (``CLINICAL_ACCESS``, audited
    denials; ARS analysts never)."""

    rule = CLINICAL_ACCESS

    def has_permission(self, request: Any, view: Any) -> bool:
        if isinstance(getattr(request, "auth", None), ApplicationToken):
            return True
        return super().has_permission(request, view)


class ApplicationTokenScheme(OpenApiAuthenticationExtension):
    target_class = "messagerie.api.authentication.ApplicationTokenAuthentication"
    name = "jetonApplicatif"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Jeton d'une boîte applicative (créé par l'équipe du GCS, montré une fois).",
        }
