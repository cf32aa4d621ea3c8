"""Writes on user accounts."""

from django.db import transaction

from .models import User
from .roles import Role


def user_create(
    *,
    username: str,
    password: str | None,
    role: Role,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    idnat_ps: str = "",
) -> User:
    """Create a validated user account. `password=None` creates an account with no usable password."""
    with transaction.atomic():
        user = User(
            username=username,
            role=role,
            first_name=first_name,
            last_name=last_name,
            email=email,
            idnat_ps=idnat_ps,
            is_staff=role == Role.ADMIN,
            is_superuser=role == Role.ADMIN,
        )
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.full_clean()
        user.save()
    return user
