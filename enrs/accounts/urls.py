from django.urls import path

from . import cps_views, otp_views, profile_views, psc_views, views

app_name = "accounts"

urlpatterns = [
    path("", profile_views.profile, name="profile"),
    path("deconnexion-partout/", profile_views.sign_out_everywhere, name="sign_out_everywhere"),
    path("connexion/", views.LoginView.as_view(), name="login"),
    path("deconnexion/", views.LogoutView.as_view(), name="logout"),
    path("connexion/code/", otp_views.otp_verify, name="otp_verify"),
    path("connexion/code/email/", otp_views.otp_email_send, name="otp_email_send"),
    path("code-a-usage-unique/activer/", otp_views.otp_enrol, name="otp_enrol"),
    path("code-a-usage-unique/codes-de-secours/", otp_views.otp_backup_codes, name="otp_backup_codes"),
    path("connexion/cps/", cps_views.cps_login, name="cps_login"),
    path("connexion/psc/", psc_views.psc_start, name="psc_start"),
    path("connexion/psc/retour/", psc_views.psc_callback, name="psc_callback"),
    path("deconnexion/psc/", psc_views.psc_logout, name="psc_logout"),
]
