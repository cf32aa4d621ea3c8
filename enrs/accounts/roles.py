"""Roles of the portal and the access rules that go with them, in one place."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Professionnel de santé"
    GCS_STAFF = "gcs_staff", "Équipe du GCS"
    ARS_ANALYST = "ars_analyst", "Analyste ARS"
    ADMIN = "admin", "Administrateur"


# Who may reach which part of the portal. ARS analysts never reach nominative patient data:
# messagerie, DMP and télémédecine are closed to them.
CLINICAL = frozenset({Role.CLINICIAN, Role.ADMIN})
DIRECTORY = frozenset(Role)
ROR = frozenset(Role)
DASHBOARDS = frozenset({Role.ARS_ANALYST, Role.GCS_STAFF, Role.ADMIN})
ADMINISTRATION = frozenset({Role.GCS_STAFF, Role.ADMIN})


def user_has_role(user: Any, roles: frozenset[Role] | set[Role]) -> bool:
    """True when the user is signed in and holds one of `roles` (superusers count as administrators)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return Role.ADMIN in roles
    return user.role in roles


def role_required(roles: frozenset[Role] | set[Role]) -> Callable[[Callable[..., HttpResponse]], Any]:
    """View decorator: the signed-in user must hold one of `roles`, otherwise 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not user_has_role(request.user, roles):
                raise PermissionDenied("Votre rôle ne donne pas accès à cette page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
