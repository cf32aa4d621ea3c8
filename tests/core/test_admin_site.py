"""The Django admin has no password-only door: it goes through the portal's sign-in and needs a strong
session."""

import pytest
from django.test import Client

from enrs.accounts.roles import Role


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_portal_sign_in(client: Client) -> None:
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/compte/connexion/?next=%2Fadmin%2F"
    assert response.status_code == 200


@pytest.mark.django_db
def test_admin_login_page_offers_no_password_form(client: Client) -> None:
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 302
    assert response["Location"].startswith("/compte/connexion/")


@pytest.mark.django_db
def test_password_only_administrator_is_sent_to_the_otp_step(client_as) -> None:
    client = client_as(Role.ADMIN)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"].startswith("/compte/connexion/code/")
    assert "next=%2Fadmin%2F" in response["Location"]


@pytest.mark.django_db
def test_strongly_signed_in_administrator_reaches_the_admin(strong_client_as) -> None:
    client = strong_client_as(Role.ADMIN)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "Administration du portail" in response.content.decode()
    # And the login page sends them straight on.
    assert client.get("/admin/login/?next=/admin/accounts/user/")["Location"] == "/admin/accounts/user/"


@pytest.mark.django_db
def test_non_staff_user_is_refused_even_with_a_strong_session(strong_client_as) -> None:
    client = strong_client_as(Role.CLINICIAN)
    assert client.get("/admin/login/").status_code == 403


@pytest.mark.django_db
def test_every_registered_model_has_working_admin_pages(strong_client_as) -> None:
    from django.contrib import admin
    from django.urls import reverse

    client = strong_client_as(Role.ADMIN)
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert client.get(changelist).status_code == 200, changelist
        if model_admin.has_add_permission(client.get(changelist).wsgi_request):
            add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
            assert client.get(add).status_code == 200, add


@pytest.mark.django_db
def test_admin_changes_are_audited(strong_client_as) -> None:
    from annuaire.models import Department
    from enrs.audit.models import AuditEvent

    client = strong_client_as(Role.ADMIN)
    response = client.post(
        "/admin/annuaire/department/add/", {"code": "99", "name": "Essai", "region_code": "53"}
    )
    assert response.status_code == 302
    department = Department.objects.get(code="99")
    [created] = AuditEvent.objects.filter(action="annuaire.department.create")
    assert created.target_id == str(department.pk)
    assert created.detail == {"via": "admin", "changed": ["code", "name", "region_code"]}

    response = client.post(
        f"/admin/annuaire/department/{department.pk}/change/",
        {"code": "99", "name": "Essai renommé", "region_code": "53"},
    )
    assert response.status_code == 302
    [updated] = AuditEvent.objects.filter(action="annuaire.department.update")
    assert updated.detail["changed"] == ["name"]

    response = client.post(f"/admin/annuaire/department/{department.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Department.objects.filter(pk=department.pk).exists()
    assert AuditEvent.objects.filter(
        action="annuaire.department.delete", target_id=str(department.pk)
    ).exists()
