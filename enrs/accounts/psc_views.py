"""Pro Santé Connect views: send the user to the provider, take them back, log out at the provider.

The protocol work is in `psc.py`; these views only turn its outcome into a session (`sign_in`) or a
403 refusal page with an `auth.psc.refused` audit event. They never answer with a 500.
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import psc
from .authn import AuthMethod, auth_method, sign_in

logger = logging.getLogger(__name__)


def psc_context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: lets the login page show the PSC button only when PSC is configured."""
    return {"psc_enabled": psc.psc_enabled()}


def _safe_next(request: HttpRequest, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _audit(**kwargs: Any) -> None:
    # Imported here, like in `authn.sign_in`: the URL conf imports this module early.
    from enrs.audit.services import audit_record

    audit_record(**kwargs)


def _refuse(request: HttpRequest, error: psc.PSCError) -> HttpResponse:
    logger.warning("Pro Santé Connect sign-in refused: %s", error)
    _audit(
        action="auth.psc.refused",
        request=request,
        outcome=error.outcome,
        detail={"reason": error.reason, **error.detail},
    )
    return render(
        request,
        "accounts/psc_refused.html",
        {"title": "Connexion refusée", "message": error.message, "reason": error.reason},
        status=403,
    )


@login_not_required
@never_cache
@require_GET
def psc_start(request: HttpRequest) -> HttpResponse:
    """Redirect to Pro Santé Connect with a fresh state, nonce and PKCE challenge."""
    if not psc.psc_enabled():
        raise Http404("Pro Santé Connect n'est pas activé.")
    next_url = _safe_next(request, request.GET.get("next", ""))
    try:
        url = psc.authorization_url(request, next_url=next_url)
    except psc.PSCError as error:
        return _refuse(request, error)
    except Exception:
        logger.exception("Pro Santé Connect: unexpected error while starting the sign-in")
        return _refuse(request, psc.PSCError("unexpected_error"))
    return HttpResponseRedirect(url)


@login_not_required
@never_cache
@require_GET
def psc_callback(request: HttpRequest) -> HttpResponse:
    """The provider's redirect back: verify everything, then open the session (method PSC)."""
    if not psc.psc_enabled():
        raise Http404("Pro Santé Connect n'est pas activé.")
    try:
        identity = psc.authorization_complete(request)
    except psc.PSCError as error:
        return _refuse(request, error)
    except Exception:
        logger.exception("Pro Santé Connect: unexpected error in the callback")
        return _refuse(request, psc.PSCError("unexpected_error"))
    sign_in(request, identity.user, method=AuthMethod.PSC)
    request.session[psc.SESSION_ID_TOKEN_KEY] = identity.id_token
    request.session[psc.SESSION_CLAIMS_KEY] = identity.session_claims
    return HttpResponseRedirect(_safe_next(request, identity.next_url))


@never_cache
@require_POST
def psc_logout(request: HttpRequest) -> HttpResponse:
    """Close the ENRS session, then the PSC session when the provider offers RP-initiated logout."""
    id_token = request.session.get(psc.SESSION_ID_TOKEN_KEY, "")
    home = resolve_url(settings.LOGOUT_REDIRECT_URL)
    provider_url = None
    if id_token and auth_method(request) is AuthMethod.PSC and psc.psc_enabled():
        configured: str = getattr(settings, "PSC_POST_LOGOUT_REDIRECT_URI", "")
        post_logout = configured or request.build_absolute_uri(home)
        try:
            provider_url = psc.end_session_url(id_token_hint=id_token, post_logout_redirect_uri=post_logout)
        except psc.PSCError as error:
            logger.warning("Pro Santé Connect logout URL unavailable: %s", error)
    user = request.user
    _audit(
        action="auth.logout",
        request=request,
        actor=user,
        detail={"method": AuthMethod.PSC.value, "provider_logout": provider_url is not None},
    )
    logout(request)
    return HttpResponseRedirect(provider_url or home)
