"""Structures as other apps need them (read-only)."""

from typing import Any

from django.db.models import QuerySet

from annuaire.models import Structure


def structures_of_user(user: Any) -> QuerySet[Structure]:
    """The active structures where ``user`` works: the directory's exercices of their IdNat_PS."""
    idnat = getattr(user, "idnat_ps", "") or ""
    if not idnat:
        return Structure.objects.none()
    return (
        Structure.objects.filter(
            is_active=True, exercices__professional__idnat_ps=idnat, exercices__professional__is_active=True
        )
        .distinct()
        .order_by("name", "pk")
    )
