"""On-call pools and their rota: shifts without overlap, who is on call at a given moment, and the
requests waiting for the members on call."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from enrs.audit.models import AuditEvent
from telemedecine import selectors
from telemedecine.models import ActStatus, Pool, Shift
from telemedecine.services import pools as svc
from tests.telemedecine.factories import act_in_state, make_pool, make_structure, make_user

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 20, 20, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def pool_with_two() -> tuple[Pool, Any, Any]:
    a, b = make_user(), make_user()
    return make_pool(members=[a, b]), a, b


def test_pool_create_is_audited_and_names_are_unique() -> None:
    admin, member = make_user(gcs_staff=True), make_user()
    pool = svc.pool_create(
        actor=admin, name="  Neurologues   de garde ", structure=make_structure(), members=[member]
    )
    assert pool.name == "Neurologues de garde"
    assert list(pool.members.all()) == [member]
    assert AuditEvent.objects.filter(action="telemedecine.pool.create", target_id=str(pool.pk)).exists()
    with pytest.raises(ValidationError):
        svc.pool_create(actor=admin, name="neurologues DE GARDE", structure=make_structure())
    with pytest.raises(ValidationError):
        svc.pool_create(actor=admin, name="  ", structure=make_structure())


def test_rota_on_call_at_given_moments(pool_with_two: tuple[Pool, Any, Any]) -> None:
    pool, a, b = pool_with_two
    svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    svc.shift_add(pool=pool, user=b, starts_at=T0 + 8 * H, ends_at=T0 + 20 * H, actor=a)
    assert svc.pool_on_call(pool, T0 - H) == []
    assert svc.pool_on_call(pool, T0) == [a]  # start is inclusive
    assert svc.pool_on_call(pool, T0 + 9 * H) == [a, b]
    assert svc.pool_on_call(pool, T0 + 12 * H) == [b]  # end is exclusive
    assert svc.pool_on_call(pool, T0 + 20 * H) == []


def test_inactive_or_removed_members_are_not_on_call(pool_with_two: tuple[Pool, Any, Any]) -> None:
    pool, a, b = pool_with_two
    svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    svc.shift_add(pool=pool, user=b, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    a.is_active = False
    a.save()
    assert svc.pool_on_call(pool, T0 + H) == [b]
    pool.members.remove(b)  # membership withdrawn without the service: the stale shift does not count
    assert svc.pool_on_call(pool, T0 + H) == []


def test_overlapping_shifts_of_one_user_in_one_pool_are_refused(pool_with_two: tuple[Pool, Any, Any]) -> None:
    pool, a, b = pool_with_two
    svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    for start, end in [
        (T0 + 11 * H, T0 + 14 * H),
        (T0 - H, T0 + H),
        (T0 + H, T0 + 2 * H),
        (T0 - H, T0 + 13 * H),
    ]:
        with pytest.raises(ValidationError, match="déjà de garde"):
            svc.shift_add(pool=pool, user=a, starts_at=start, ends_at=end, actor=a)
    # Back-to-back is fine, and another member may overlap.
    svc.shift_add(pool=pool, user=a, starts_at=T0 + 12 * H, ends_at=T0 + 24 * H, actor=a)
    svc.shift_add(pool=pool, user=b, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    # The same user may be on call in another pool at the same time.
    other = make_pool(members=[a])
    svc.shift_add(pool=other, user=a, starts_at=T0, ends_at=T0 + 12 * H, actor=a)
    assert Shift.objects.filter(user=a).count() == 3


def test_shift_input_is_validated(pool_with_two: tuple[Pool, Any, Any]) -> None:
    pool, a, _ = pool_with_two
    outsider = make_user()
    with pytest.raises(ValidationError, match="membre"):
        svc.shift_add(pool=pool, user=outsider, starts_at=T0, ends_at=T0 + H, actor=a)
    with pytest.raises(ValidationError):
        svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0, actor=a)
    with pytest.raises(ValidationError):
        svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0 + 8 * 24 * H, actor=a)
    with pytest.raises(ValidationError):
        svc.shift_add(pool=pool, user=a, starts_at=T0.replace(tzinfo=None), ends_at=T0 + H, actor=a)
    assert not Shift.objects.exists()


def test_shift_add_and_remove_are_audited(pool_with_two: tuple[Pool, Any, Any]) -> None:
    pool, a, _ = pool_with_two
    shift = svc.shift_add(pool=pool, user=a, starts_at=T0, ends_at=T0 + H, actor=a)
    svc.shift_remove(shift=shift, actor=a)
    assert not Shift.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="telemedecine.shift.").values_list("action", flat=True)
    )
    assert actions == ["telemedecine.shift.add", "telemedecine.shift.remove"]


def test_member_removal_drops_future_shifts(pool_with_two: tuple[Pool, Any, Any]) -> None:
    from django.utils import timezone

    pool, a, b = pool_with_two
    now = timezone.now()
    past = svc.shift_add(pool=pool, user=a, starts_at=now - 10 * H, ends_at=now - 2 * H, actor=b)
    svc.shift_add(pool=pool, user=a, starts_at=now + H, ends_at=now + 5 * H, actor=b)
    svc.pool_member_remove(pool=pool, user=a, actor=b)
    assert list(Shift.objects.filter(user=a)) == [past]  # the past rota stays as history
    assert not pool.members.filter(pk=a.pk).exists()
    svc.pool_member_add(pool=pool, user=a, actor=b)
    assert pool.members.filter(pk=a.pk).exists()


def test_on_call_now_lists_the_waiting_requests_of_my_pools() -> None:
    from django.utils import timezone

    on_call, off_duty = make_user(), make_user()
    pool = make_pool(members=[on_call, off_duty])
    now = timezone.now()
    svc.shift_add(pool=pool, user=on_call, starts_at=now - H, ends_at=now + H, actor=on_call)
    waiting = act_in_state(ActStatus.SENT, pool=pool).act
    act_in_state(ActStatus.ACCEPTED, pool=pool)  # already taken
    act_in_state(ActStatus.SENT)  # direct request to someone else
    assert list(selectors.acts_on_call_now(on_call)) == [waiting]
    assert list(selectors.acts_on_call_now(off_duty)) == []
    assert list(selectors.acts_on_call_now(on_call, at=now + 2 * H)) == []
    assert waiting in selectors.acts_for_expert(off_duty)  # still visible to every member
    assert list(selectors.pools_for_user(on_call)) == [pool]


def test_admin_pages_render_without_the_patient(client: Any) -> None:
    from django.urls import reverse

    from tests.telemedecine.factories import make_patient

    admin_user = make_user(admin=True)
    patient = make_patient(birth_family_name="ZORGLUBIEN")
    pool = make_pool(members=[make_user()])
    act = act_in_state(ActStatus.CLOSED, patient=patient).act
    from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod

    client.force_login(admin_user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value  # the admin takes strong sessions only
    session.save()
    for url, shown in (
        (reverse("admin:telemedecine_act_changelist"), str(act.reference)),
        (reverse("admin:telemedecine_act_change", args=[act.pk]), "report_signed"),
        (reverse("admin:telemedecine_pool_changelist"), pool.name),
        (reverse("admin:telemedecine_pool_change", args=[pool.pk]), pool.name),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert shown in response.content.decode(), url  # the page itself, not a sign-in step
        assert b"ZORGLUBIEN" not in response.content
