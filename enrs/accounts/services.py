"""Writes on user accounts."""

from django.contrib.auth import logout
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from enrs.audit.services import audit_record

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


def user_sign_out_everywhere(*, user: User, request: HttpRequest) -> User:
    """End every open session of `user`, on every device, the current one included.

    The user's `session_epoch` is part of the hash each session stores (see `User.get_session_auth_hash`):
    raising it makes Django refuse every session opened before, whatever the session backend."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
        user.refresh_from_db(fields=["session_epoch"])
        audit_record(
            action="auth.sign_out_everywhere",
            request=request,
            actor=user,
            target=user,
            detail={"session_epoch": user.session_epoch},
        )
    if getattr(request, "user", None) is not None and request.user.pk == user.pk:
        logout(request)
    return user
