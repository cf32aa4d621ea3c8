"""The account page: who I am, how I signed in, my last sign-ins, and "sign out everywhere"."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from enrs.audit.selectors import login_history_for

from .authn import auth_method
from .roles import SIGNED_IN_ACCESS, access_required
from .services import user_sign_out_everywhere

LOGIN_HISTORY_LENGTH = 10


@access_required(SIGNED_IN_ACCESS)
@require_GET
@never_cache
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "accounts/profile.html",
        {
            "title": "Mon compte",
            "account": user,
            "current_method": auth_method(request),
            "idle_minutes": settings.SESSION_COOKIE_AGE // 60,
            "sign_ins": login_history_for(user, limit=LOGIN_HISTORY_LENGTH),
        },
    )


@access_required(SIGNED_IN_ACCESS)
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponseBase:
    user_sign_out_everywhere(user=request.user, request=request)  # type: ignore[arg-type]
    messages.success(
        request, "Toutes vos sessions ont été fermées, sur tous vos appareils. Reconnectez-vous."
    )
    return redirect(settings.LOGIN_URL)
