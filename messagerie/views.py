from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from enrs.accounts import roles
from enrs.accounts.roles import role_required
from enrs.core.navigation import service


@role_required(roles.CLINICAL)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "messagerie/index.html", {"service": service("messagerie"), "title": "Messagerie"})
