"""Audit events recorded from Django's signals (connected in ``AuditConfig.ready``).

Successful sign-ins are recorded by ``enrs.accounts.authn.sign_in``, not here: it knows the method.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest

from .services import _append


def record_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """``auth.login.failed``: the username that was typed (never the password) and, when it names an
    account, that account as the target, so that attempts against one account can be listed."""
    user_model = get_user_model()
    typed = credentials.get(user_model.USERNAME_FIELD) or credentials.get("username") or ""
    username = str(typed).replace("\x00", "")[:150]
    account = (
        user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).only("pk").first()
        if username
        else None
    )
    _append(
        action="auth.login.failed",
        request=request,
        actor=None,
        actor_label=username,
        target=account,
        target_type="",
        target_id="",
        patient_ins="",
        outcome="failure",
        detail={"username": username},
    )
