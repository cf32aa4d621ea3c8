"""The portal shell: public pages answer 200, everything else asks for a sign-in; navigation by role."""

import pytest
from django.test import Client

from enrs.accounts.roles import Role

PUBLIC = ["/", "/compte/connexion/", "/accessibilite/", "/mentions-legales/"]
PROTECTED = [
    "/annuaire/",
    "/messagerie/",
    "/dmp/",
    "/telemedecine/",
    "/ror/",
    "/tableaux-de-bord/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", PUBLIC)
def test_public_pages_answer_to_anonymous_visitors(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr"' in html
    assert "ENRS — Bretagne" in html  # header with the region of settings.ENRS_REGION_CODE
    assert 'href="#contenu"' in html  # skip links
    assert 'id="pied-de-page"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("url", PROTECTED)
def test_other_pages_redirect_to_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/compte/connexion/?next=")


@pytest.mark.django_db
def test_api_schema_needs_a_session(client: Client) -> None:
    # DRF views answer for themselves (no redirect): 403 for an anonymous caller.
    assert client.get("/api/schema/").status_code == 403
    assert client.get("/api/docs/").status_code == 403
    client.force_login(__import__("tests.factories", fromlist=["UserFactory"]).UserFactory())
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


@pytest.mark.django_db
def test_admin_redirects_to_its_login(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
def test_home_describes_each_service(client: Client) -> None:
    html = client.get("/").content.decode()
    for label in ["Annuaire", "Messagerie", "DMP", "Télémédecine", "ROR", "Tableaux de bord"]:
        assert f">{label}</a>" in html
    assert "Se connecter" in html
    assert "Administration" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        (Role.ARS_ANALYST, {"Annuaire", "ROR", "Tableaux de bord"}, {"Messagerie", "DMP", "Télémédecine"}),
        (Role.GCS_STAFF, {"Annuaire", "Administration", "Tableaux de bord"}, {"Messagerie", "DMP"}),
        (Role.CLINICIAN, {"Annuaire", "Messagerie", "DMP", "Télémédecine", "ROR"}, {"Administration"}),
    ],
)
def test_navigation_follows_the_role(client_as, role: Role, visible: set[str], hidden: set[str]) -> None:
    html = client_as(role).get("/").content.decode()
    nav = html.split('id="navigation-principale"', 1)[1].split("</nav>", 1)[0]
    for label in visible:
        assert f">{label}</a>" in nav
    for label in hidden:
        assert f">{label}</a>" not in nav


@pytest.mark.django_db
def test_wrong_role_gets_the_french_403_page(client_as) -> None:
    response = client_as(Role.CLINICIAN).get("/tableaux-de-bord/")
    assert response.status_code == 403
    assert "Accès refusé" in response.content.decode()


@pytest.mark.django_db
def test_unknown_page_gets_the_french_404_page(client: Client) -> None:
    response = client.get("/cette-page-n-existe-pas/")
    assert response.status_code == 404
    assert "Page non trouvée" in response.content.decode()


def test_500_page_renders_without_a_database(rf) -> None:
    from enrs.core.views import error_500

    response = error_500(rf.get("/"))
    assert response.status_code == 500
    assert "Erreur inattendue" in response.content.decode()


@pytest.mark.django_db
def test_signed_in_user_sees_name_and_logout(client_as) -> None:
    html = client_as(Role.GCS_STAFF).get("/").content.decode()
    assert "Équipe du GCS" in html
    assert "Se déconnecter" in html


@pytest.mark.django_db
def test_password_login_with_django_auth(client: Client) -> None:
    from tests.factories import UserFactory

    UserFactory(username="dupont", gcs_staff=True)
    response = client.post("/compte/connexion/", {"username": "dupont", "password": "mot-de-passe-de-test"})
    assert response.status_code == 302
    assert client.get("/annuaire/").status_code == 200


@pytest.mark.django_db
def test_demo_banner_only_in_demo_mode(client: Client, settings) -> None:
    settings.ENRS_DEMO_MODE = True
    assert "Mode démonstration" in client.get("/").content.decode()
    settings.ENRS_DEMO_MODE = False
    assert "Mode démonstration" not in client.get("/").content.decode()


@pytest.mark.django_db
def test_logout_button_ends_a_pro_sante_connect_session_at_the_provider(client_as) -> None:
    from enrs.accounts.authn import SESSION_METHOD_KEY

    client = client_as(Role.CLINICIAN)
    assert 'action="/compte/deconnexion/"' in client.get("/").content.decode()
    session = client.session
    session[SESSION_METHOD_KEY] = "psc"
    session.save()
    assert 'action="/compte/deconnexion/psc/"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_home_links_to_the_public_offer_of_care(client: Client) -> None:
    html = client.get("/").content.decode()
    assert 'href="/ror/public/"' in html
    assert client.get("/ror/public/").status_code == 200
