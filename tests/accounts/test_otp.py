"""One-time codes: django-otp's TOTP against RFC 6238's vectors, the enrolment, replay refusal, backup codes
(hashed, usable once) and the e-mail fallback — through the services and through the pages."""

import re
import time
from binascii import hexlify
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP, hotp
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp import models as totp_models
from django_otp.plugins.otp_totp.models import TOTPDevice

from enrs.accounts import otp_services
from enrs.accounts.authn import SESSION_METHOD_KEY
from enrs.accounts.models import User
from enrs.accounts.otp_services import OTPError, OTPMethod, OTPVerificationError
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from tests.factories import UserFactory

PASSWORD = "mot-de-passe-de-test"
RFC6238_SEED = b"12345678901234567890"  # RFC 6238 appendix B, HMAC-SHA-1 key
# RFC 6238 appendix B, SHA-1 rows: Unix time → 8-digit TOTP (step 30 s, T0 = 0).
RFC6238_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


# --- Helpers shared with test_login / test_lockout -------------------------------------------------------


def make_user(role: Role = Role.CLINICIAN, **kwargs: Any) -> User:
    return cast(User, UserFactory(**{role.value: True}, **kwargs))


def current_step() -> int:
    return int(time.time()) // 30


def code_at(device: TOTPDevice, step: int) -> str:
    return f"{hotp(device.bin_key, step, digits=device.digits):0{device.digits}d}"


def enrolled_device(user: User) -> TOTPDevice:
    """A confirmed authenticator app for `user`, made through the services (first code: current step)."""
    device = otp_services.totp_device_create(user=user)
    return otp_services.totp_device_confirm(device=device, token=code_at(device, current_step()))


def next_unused_code(device: TOTPDevice) -> str:
    """A code the device accepts now: the step after the last one used (within the ±1 tolerance)."""
    device.refresh_from_db()
    return code_at(device, max(current_step(), device.last_t + 1))


def password_login(client: Client, user: User, next_url: str = "") -> Any:
    data = {"username": user.username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("accounts:login"), data)


def verify_url(next_url: str = "/", **extra: str) -> str:
    return f"{reverse('accounts:otp_verify')}?{urlencode({'next': next_url, **extra})}"


def events(action: str, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def let_back_off_pass(device: Any) -> None:
    """Move django-otp's last failure far enough back that its back-off delay is over."""
    type(device).objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=F("throttling_failure_timestamp") - timedelta(hours=1)
    )


def freeze_totp_clock(monkeypatch: pytest.MonkeyPatch, unix_time: float) -> None:
    """Set the clock django-otp's TOTPDevice (and our replay check) read, and only theirs."""
    fake = SimpleNamespace(time=lambda: unix_time)
    monkeypatch.setattr(totp_models, "time", fake)
    monkeypatch.setattr(otp_services, "time", fake)


# --- RFC 6238 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("unix_time", "expected"), RFC6238_SHA1_VECTORS)
def test_django_otp_totp_matches_the_rfc_6238_sha1_vectors(unix_time: int, expected: str) -> None:
    totp = TOTP(RFC6238_SEED, step=30, t0=0, digits=8)
    totp.time = unix_time
    assert f"{totp.token():08d}" == expected
    # Our configuration, 6 digits: the same HOTP value modulo 10^6, i.e. the vector's last six digits.
    six = TOTP(RFC6238_SEED, step=30, t0=0, digits=6)
    six.time = unix_time
    assert f"{six.token():06d}" == expected[-6:]


@pytest.mark.django_db
@pytest.mark.parametrize(("unix_time", "expected"), RFC6238_SHA1_VECTORS)
def test_a_device_configured_like_ours_accepts_the_rfc_code_once(
    monkeypatch: pytest.MonkeyPatch, rf: Any, unix_time: int, expected: str
) -> None:
    user = make_user()
    device = TOTPDevice.objects.create(
        user=user, key=hexlify(RFC6238_SEED).decode(), step=30, digits=6, tolerance=1, confirmed=True
    )
    freeze_totp_clock(monkeypatch, unix_time)

    accepted = otp_services.otp_verify(
        user=user, token=expected[-6:], method=OTPMethod.TOTP, request=_request(rf, user)
    )

    assert accepted == device
    device.refresh_from_db()
    assert device.last_t == unix_time // 30
    with pytest.raises(OTPVerificationError) as refused:  # replay: the same code, still within its window
        otp_services.otp_verify(
            user=user, token=expected[-6:], method=OTPMethod.TOTP, request=_request(rf, user)
        )
    assert refused.value.code == "replay"
    assert "déjà été utilisé" in refused.value.messages[0]


@pytest.mark.django_db
def test_tolerance_is_one_step_either_side(monkeypatch: pytest.MonkeyPatch, rf: Any) -> None:
    user = make_user()
    key = hexlify(RFC6238_SEED).decode()
    freeze_totp_clock(monkeypatch, 59)  # step 1
    for step, accepted in [(0, True), (1, True), (2, True), (3, False)]:
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, key=key, digits=6, tolerance=1, confirmed=True)
        token = code_at(device, step)
        if accepted:
            otp_services.otp_verify(user=user, token=token, method=OTPMethod.TOTP, request=_request(rf, user))
        else:
            with pytest.raises(OTPVerificationError):
                otp_services.otp_verify(
                    user=user, token=token, method=OTPMethod.TOTP, request=_request(rf, user)
                )
    # No learnt drift (OTP_TOTP_SYNC = False): the window stays centred on the server's clock.
    assert TOTPDevice.objects.get(user=user).drift == 0


# --- Replay ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_code_accepted_once_is_refused_the_second_time_and_older_steps_too(rf: Any) -> None:
    user = make_user()
    device = enrolled_device(user)  # used the current step
    used_step = device.last_t

    code = code_at(device, used_step + 1)
    otp_services.otp_verify(user=user, token=code, method=OTPMethod.TOTP, request=_request(rf, user))
    with pytest.raises(OTPVerificationError) as replay:
        otp_services.otp_verify(user=user, token=code, method=OTPMethod.TOTP, request=_request(rf, user))
    assert replay.value.code == "replay"
    with pytest.raises(OTPVerificationError):  # a step before the last one used: refused too
        otp_services.otp_verify(
            user=user, token=code_at(device, used_step), method=OTPMethod.TOTP, request=_request(rf, user)
        )

    device.refresh_from_db()
    assert device.last_t == used_step + 1
    verify_events = events("otp.verify", actor=user)
    assert [e.outcome for e in verify_events] == ["success", "failure", "failure"]
    assert verify_events[1].detail["reason"] == "replay"


@pytest.mark.django_db
def test_replayed_code_on_the_page_leaves_the_session_password_only(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    code = next_unused_code(device)
    password_login(client, user)
    assert client.post(reverse("accounts:otp_verify"), {"code": code, "next": "/"}).status_code == 302
    client.post(reverse("accounts:logout"))

    password_login(client, user)
    response = client.post(reverse("accounts:otp_verify"), {"code": code, "next": "/"})

    assert response.status_code == 200
    assert "Ce code a déjà été utilisé" in response.content.decode()
    assert client.session[SESSION_METHOD_KEY] == "password"
    assert DEVICE_ID_SESSION_KEY not in client.session


# --- Enrolment --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enrolment_page_shows_a_qr_code_and_the_key_and_confirms_with_a_first_code(client: Client) -> None:
    user = make_user()
    password_login(client, user)

    page = client.get(reverse("accounts:otp_enrol") + "?next=/annuaire/")

    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    html = page.content.decode()
    assert "<svg" in html
    assert 'class="enrs-qr"' in html
    secret = re.search(r'<code id="otp-secret"[^>]*>([A-Z2-7 ]+)</code>', html)
    assert secret is not None
    assert secret.group(1).replace(" ", "") == otp_services.totp_setup(device).secret
    assert 'inputmode="numeric"' in html
    assert 'autocomplete="one-time-code"' in html
    assert client.get(reverse("accounts:otp_enrol")).status_code == 200
    assert TOTPDevice.objects.filter(user=user).count() == 1  # reloading shows the same key

    wrong = client.post(reverse("accounts:otp_enrol"), {"code": "000000", "next": "/annuaire/"})
    assert wrong.status_code == 200
    assert 'class="fr-error-text"' in wrong.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False

    # django-otp's back-off: right after a wrong code, even the right one must wait a second.
    too_soon = client.post(
        reverse("accounts:otp_enrol"), {"code": code_at(device, current_step()), "next": "/annuaire/"}
    )
    assert "Trop de codes erronés à la suite : patientez" in too_soon.content.decode()
    let_back_off_pass(device)

    session_key = client.session.session_key
    done = client.post(
        reverse("accounts:otp_enrol"), {"code": code_at(device, current_step()), "next": "/annuaire/"}
    )

    assert done.status_code == 200
    device.refresh_from_db()
    assert device.confirmed is True
    codes = re.findall(r"<code class=\"fr-text--lg\">([a-z0-9]{5}-[a-z0-9]{5})</code>", done.content.decode())
    assert len(codes) == 10 == len(set(codes))
    assert 'href="/annuaire/"' in done.content.decode()
    # Enrolled with password + a first code: the session is now strong, under a new id.
    assert client.session[SESSION_METHOD_KEY] == "otp"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.session.session_key != session_key
    enrol_events = events("otp.enrol", actor=user)
    assert [(e.outcome, e.detail.get("reason")) for e in enrol_events] == [
        ("failure", "wrong_code"),
        ("failure", "throttled"),
        ("success", None),
    ]
    assert len(events("otp.enrol.start", actor=user)) == 1
    assert events("otp.backup_codes.generate", actor=user)[0].detail == {"count": 10}
    # Once enrolled, the page does not offer a second app.
    assert client.get(reverse("accounts:otp_enrol"))["Location"] == "/"


@pytest.mark.django_db
def test_a_user_with_an_app_cannot_enrol_another_one() -> None:
    user = make_user()
    enrolled_device(user)
    with pytest.raises(OTPError):
        otp_services.totp_device_create(user=user)


@pytest.mark.django_db
def test_enrolment_of_a_password_only_user_with_an_app_goes_to_the_code_step(client: Client) -> None:
    user = make_user()
    enrolled_device(user)
    password_login(client, user)
    response = client.get(reverse("accounts:otp_enrol") + "?next=/dmp/")
    assert response["Location"] == verify_url("/dmp/")


# --- Backup codes -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_backup_codes_are_stored_hashed_and_each_is_usable_once(rf: Any) -> None:
    user = make_user()
    enrolled_device(user)
    codes = otp_services.backup_codes_generate(user=user)

    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(stored) == 10
    assert not stored & {c.replace("-", "") for c in codes}
    assert not stored & set(codes)

    code = codes[3].upper().replace("-", " ")  # typed in capitals, with a space: same code
    from enrs.accounts.forms import normalise_backup_code

    device = otp_services.otp_verify(
        user=user, token=normalise_backup_code(code), method=OTPMethod.BACKUP, request=_request(rf, user)
    )
    assert isinstance(device, StaticDevice)
    assert otp_services.backup_codes_remaining(user) == 9
    used = events("otp.backup_code.used", actor=user)
    assert len(used) == 1
    assert used[0].detail == {"remaining": 9}

    with pytest.raises(OTPVerificationError):
        otp_services.otp_verify(
            user=user, token=normalise_backup_code(code), method=OTPMethod.BACKUP, request=_request(rf, user)
        )
    assert otp_services.backup_codes_remaining(user) == 9


@pytest.mark.django_db
def test_new_backup_codes_replace_the_old_ones(rf: Any) -> None:
    user = make_user()
    enrolled_device(user)
    old = otp_services.backup_codes_generate(user=user)
    new = otp_services.backup_codes_generate(user=user)
    assert StaticDevice.objects.filter(user=user).count() == 1
    assert otp_services.backup_codes_remaining(user) == 10
    with pytest.raises(OTPVerificationError):
        otp_services.otp_verify(
            user=user, token=old[0].replace("-", ""), method=OTPMethod.BACKUP, request=_request(rf, user)
        )
    let_back_off_pass(StaticDevice.objects.get(user=user))
    otp_services.otp_verify(
        user=user, token=new[0].replace("-", ""), method=OTPMethod.BACKUP, request=_request(rf, user)
    )


@pytest.mark.django_db
def test_signing_in_with_a_backup_code_on_the_page(client: Client) -> None:
    user = make_user()
    enrolled_device(user)
    codes = otp_services.backup_codes_generate(user=user)
    password_login(client, user)

    page = client.get(verify_url("/", methode="secours"))
    assert 'name="methode" value="secours"' in page.content.decode()
    assert 'inputmode="numeric"' not in page.content.decode()
    response = client.post(
        reverse("accounts:otp_verify"), {"code": codes[0], "methode": "secours", "next": "/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session[SESSION_METHOD_KEY] == "otp"
    assert otp_services.backup_codes_remaining(user) == 9


@pytest.mark.django_db
def test_backup_codes_page_needs_a_strong_session_then_renews_the_codes(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    otp_services.backup_codes_generate(user=user)
    password_login(client, user)
    url = reverse("accounts:otp_backup_codes")

    assert client.get(url)["Location"].startswith(reverse("accounts:otp_verify"))

    client.post(reverse("accounts:otp_verify"), {"code": next_unused_code(device), "next": url})
    page = client.get(url)
    assert page.status_code == 200
    assert "Il vous reste <strong>10</strong>" in page.content.decode()
    renewed = client.post(url)
    assert (
        len(re.findall(r'<code class="fr-text--lg">[a-z0-9]{5}-[a-z0-9]{5}</code>', renewed.content.decode()))
        == 10
    )
    assert len(events("otp.backup_codes.generate", actor=user)) == 2


# --- E-mail fallback --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_code_by_email_as_a_fallback(client: Client) -> None:
    user = make_user(email="jeanne.martin@chu.example")
    enrolled_device(user)
    password_login(client, user)

    sent = client.post(reverse("accounts:otp_email_send"), {"next": "/annuaire/"})

    assert sent.status_code == 302
    assert sent["Location"] == verify_url("/annuaire/") + "&methode=email"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["jeanne.martin@chu.example"]
    code = re.search(r"code de connexion à ENRS est : (\d{6})", str(message.body))
    assert code is not None
    assert len(events("otp.email.send", actor=user)) == 1

    again = client.post(reverse("accounts:otp_email_send"), {"next": "/annuaire/"}, follow=True)
    assert len(mail.outbox) == 1  # within the one-minute cooldown: no second message
    assert "Un code vient déjà de vous être envoyé" in again.content.decode()

    response = client.post(
        reverse("accounts:otp_verify"), {"code": code.group(1), "methode": "email", "next": "/annuaire/"}
    )
    assert response["Location"] == "/annuaire/"
    assert client.session[SESSION_METHOD_KEY] == "otp"
    assert client.session[DEVICE_ID_SESSION_KEY] == EmailDevice.objects.get(user=user).persistent_id
    assert events("otp.verify", actor=user)[-1].detail == {"method": "email"}


@pytest.mark.django_db
def test_no_email_fallback_without_an_address(client: Client) -> None:
    user = make_user(email="")
    enrolled_device(user)
    password_login(client, user)
    page = client.get(verify_url("/"))
    assert reverse("accounts:otp_email_send") not in page.content.decode()
    with pytest.raises(OTPError):
        otp_services.otp_email_send(user=user)
    assert mail.outbox == []


def _request(rf: Any, user: User) -> Any:
    from django.contrib.sessions.backends.db import SessionStore

    request = rf.post("/compte/connexion/code/", REMOTE_ADDR="192.0.2.7")
    request.user = user
    request.session = SessionStore()
    return request
