"""The admin login is rate-limited per (username, address) with django-axes."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db
LOGIN = reverse("admin:login")
PASSWORD = "the right one, long enough"


def _login(username: str, password: str, ip: str) -> int:
    """The status of a login POST: 302 = logged in, 200 = wrong password, 429 = locked out."""
    client = Client(REMOTE_ADDR=ip)
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}).status_code


@pytest.fixture
def users():
    make = get_user_model().objects.create_user
    return make("olga", password=PASSWORD, is_staff=True), make("sol", password=PASSWORD, is_staff=True)


def test_bad_passwords_lock_the_pair_out_and_only_that_pair(users):
    limit = settings.AXES_FAILURE_LIMIT
    assert (limit, settings.AXES_COOLOFF_TIME) == (5, timedelta(minutes=15))
    statuses = [_login("olga", f"wrong {n}", "203.0.113.7") for n in range(limit)]
    assert statuses == [200] * (limit - 1) + [429]  # the limit-th failure locks
    sessions = Session.objects.count()
    assert _login("olga", PASSWORD, "203.0.113.7") == 429  # the right password, refused
    assert Session.objects.count() == sessions
    assert _login("sol", PASSWORD, "203.0.113.7") == 302  # another user, same address
    assert _login("olga", PASSWORD, "198.51.100.9") == 302  # same user, another address


def test_lock_ends_after_the_cool_off(users):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login("olga", f"wrong {n}", "203.0.113.7")
    assert _login("olga", PASSWORD, "203.0.113.7") == 429
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)
    assert _login("olga", PASSWORD, "203.0.113.7") == 302


def test_failures_below_the_limit_are_forgotten_after_a_success(users):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login("olga", f"wrong {n}", "203.0.113.7") == 200
    assert _login("olga", PASSWORD, "203.0.113.7") == 302
    assert _login("olga", "wrong again", "203.0.113.7") == 200  # the count started over
