"""Authentication of establishments' software on the ROR API: ``Authorization: Token <secret>``."""

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from ror.models import RorApiToken
from ror.services import token_authenticate


class RorTokenAuthentication(BaseAuthentication):
    """A ROR API token (``RorApiToken``): the request has no user, ``request.auth`` is the token.

    Only tokens of the ror app are accepted; a request without the header falls through to the next
    authentication class (the session)."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, RorApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("En-tête Authorization invalide : attendu « Token <jeton> ».")
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Jeton invalide.") from exc
        token = token_authenticate(secret)
        if token is None:
            raise AuthenticationFailed("Jeton invalide ou révoqué.")
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class RorTokenScheme(OpenApiAuthenticationExtension):
    """How the token appears in the OpenAPI schema (/api/docs/)."""

    target_class = "ror.api.authentication.RorTokenAuthentication"
    name = "jetonROR"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "« Token <jeton> » : jeton d'API du ROR, limité aux structures de son titulaire.",
        }
