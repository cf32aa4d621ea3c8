from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from enrs.accounts.roles import DIRECTORY_ACCESS, access_required
from enrs.core.navigation import service


@access_required(DIRECTORY_ACCESS)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "annuaire/index.html", {"service": service("annuaire"), "title": "Annuaire"})
