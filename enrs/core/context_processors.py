from typing import Any

from django.conf import settings
from django.http import HttpRequest

from enrs.accounts.authn import auth_method

from .geo import region_name
from .navigation import services_for


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "ENRS_REGION_NAME": region_name(settings.ENRS_REGION_CODE),
        "ENRS_DEMO_MODE": settings.ENRS_DEMO_MODE,
        "nav_services": services_for(getattr(request, "user", None)),
        "current_auth_method": auth_method(request),
    }
