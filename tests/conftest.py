from collections.abc import Callable
from typing import cast

import pytest
from django.test import Client

from enrs.accounts.models import User
from enrs.accounts.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def user_with_role(db: None) -> Callable[[Role], User]:
    def make(role: Role) -> User:
        return cast(User, UserFactory(**{role.value: True}))

    return make


@pytest.fixture
def client_as(client: Client, user_with_role: Callable[[Role], User]) -> Callable[[Role], Client]:
    """A test client signed in with a fresh user of the given role."""

    def sign_in(role: Role) -> Client:
        client.force_login(user_with_role(role))
        return client

    return sign_in


@pytest.fixture
def strong_client_as(client: Client, user_with_role: Callable[[Role], User]) -> Callable[[Role], Client]:
    """A test client signed in with a fresh user of the given role, by a strong method (CPS card)."""
    from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod

    def sign_in(role: Role) -> Client:
        client.force_login(user_with_role(role))
        session = client.session
        session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
        session.save()
        return client

    return sign_in
