import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .net import from_trusted_proxy, new_request_id

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Gives every request an id (kept from a trusted proxy's X-Request-ID), echoed in the response
    and written in audit events, so one action can be followed across nginx, Django and Celery logs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        if incoming and from_trusted_proxy(request) and _REQUEST_ID.match(incoming):
            request.request_id = incoming  # type: ignore[attr-defined]
        else:
            request.request_id = new_request_id()  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response
