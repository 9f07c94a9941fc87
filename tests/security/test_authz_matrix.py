"""The authorization matrix: every endpoint × every role against one table of expected outcomes.

The endpoints come from the URL configuration, the admin registry and the OpenAPI schema; a new
URL, admin action or REST operation without a row in `authz_table.TABLE` fails
`test_every_endpoint_has_a_row`, so nothing ships unreviewed. Each cell runs in the same world
(a savepoint is rolled back after it) and asserts its exact outcome *and* whether the database
changed: a refusal (or any read) leaves every table as it was and makes no Lightning call that
moves money; an allowed write ("+") must change something.

`AUTHZ_RECORD=1 pytest tests/security/test_authz_matrix.py -s` prints the observed table, for
reviewing a new endpoint's row.
"""

import copy
import os

import pytest

from tests.orders.services.support import ln_writes
from tests.security.authz_table import ROLES, TABLE, section
from tests.security.endpoints import all_endpoints, call
from tests.security.world import build_world, changed_tables, in_savepoint, snapshot

pytestmark = pytest.mark.django_db
RECORD = os.environ.get("AUTHZ_RECORD") == "1"
SECTIONS = sorted({section(endpoint) for endpoint in TABLE})


def test_every_endpoint_has_a_row():
    endpoints = all_endpoints()
    assert sorted(str(e) for e in endpoints - set(TABLE)) == []  # a new endpoint: add its row
    assert sorted(str(e) for e in set(TABLE) - endpoints) == []  # a row for nothing: remove it


def test_an_endpoint_without_a_row_is_caught(settings):
    settings.ROOT_URLCONF = "tests.security.urls_with_extra"
    from django.urls import clear_url_caches

    clear_url_caches()
    try:
        assert sorted(str(e) for e in all_endpoints() - set(TABLE)) == ["GET unreviewed", "POST unreviewed"]
    finally:
        clear_url_caches()


def outcome(response, changed: bool) -> str:
    status = response.status_code
    login = status == 302 and response["Location"].startswith("/admin/login/")
    return ("login" if login else str(status)) + ("+" if changed else "")


def run_cell(world, endpoint, role: str, before: dict, fake_ln) -> tuple[str, list[str], list[str]]:
    """(outcome, tables changed, Lightning writes) of one request; the world is left as it was."""
    ln_state = {name: copy.deepcopy(value) for name, value in vars(fake_ln).items() if name != "_lock"}
    calls_before = len(fake_ln.calls)

    def request():
        response = call(world, endpoint, role)
        return response, changed_tables(before, snapshot())

    response, changed = in_savepoint(request)
    ln_calls = ln_writes(type("Calls", (), {"calls": fake_ln.calls[calls_before:]}))
    vars(fake_ln).update(ln_state)
    return outcome(response, bool(changed)), changed, ln_calls


@pytest.mark.parametrize("name", SECTIONS)
def test_matrix(name, node, fake_ln, settings):
    settings.AXES_ENABLED = False  # the login throttle has its own test; here every cell logs in
    world = build_world(fake_ln)
    before = snapshot()
    rows = sorted(endpoint for endpoint in TABLE if section(endpoint) == name)
    mismatches, recorded = [], []
    for endpoint in rows:
        observed = []
        for role, expected in zip(ROLES, TABLE[endpoint], strict=True):
            got, changed, ln_calls = run_cell(world, endpoint, role, before, fake_ln)
            observed.append(got)
            if got != expected:
                mismatches.append(f"{endpoint} as {role}: expected {expected}, got {got} (changed {changed})")
            elif not got.endswith("+") and ln_calls:
                mismatches.append(f"{endpoint} as {role}: refused, yet called Lightning {ln_calls}")
        recorded.append(f"{endpoint.method:<6} {endpoint.key:<64} " + " ".join(f"{o:<9}" for o in observed))
    if RECORD:
        print("\n".join(recorded))  # noqa: T201
    assert mismatches == []
