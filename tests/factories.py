"""Factories shared by the whole test suite (one per core model; apps add theirs under tests/<app>/)."""

import factory

from enrs.accounts.models import User
from enrs.accounts.roles import Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"utilisateur{n}")
    first_name = factory.Faker("first_name", locale="fr_FR")
    last_name = factory.Faker("last_name", locale="fr_FR")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    role = Role.CLINICIAN
    password = factory.django.Password("mot-de-passe-de-test")

    class Params:
        clinician = factory.Trait(role=Role.CLINICIAN)
        gcs_staff = factory.Trait(role=Role.GCS_STAFF)
        ars_analyst = factory.Trait(role=Role.ARS_ANALYST)
        admin = factory.Trait(role=Role.ADMIN, is_staff=True, is_superuser=True)
