import pytest
from django.core.exceptions import ImproperlyConfigured
from django_q.models import Schedule

from mostro_site.management.commands import sync_schedules as command
from mostro_site.schedules import JobSpec

pytestmark = pytest.mark.django_db

JOBS = [JobSpec("orders.services.amounts.fee_sats", 60), JobSpec("orders.services.amounts.dev_fee_sats", 300)]


@pytest.fixture
def declared(monkeypatch):
    jobs = list(JOBS)
    monkeypatch.setattr(command, "declared_jobs", lambda: jobs)
    return jobs


def _rows():
    return sorted(Schedule.objects.values_list("name", "func", "minutes", "schedule_type", "repeats"))


def test_sync_creates_each_schedule_once(declared):
    assert command.sync_schedules() == (2, 0, 0)
    assert command.sync_schedules() == (0, 0, 0)
    assert _rows() == [
        ("orders.services.amounts.dev_fee_sats", "orders.services.amounts.dev_fee_sats", 5, "I", -1),
        ("orders.services.amounts.fee_sats", "orders.services.amounts.fee_sats", 1, "I", -1),
    ]


def test_sync_updates_changed_interval_and_heals_duplicates(declared):
    command.sync_schedules()
    Schedule.objects.create(name="orders.services.amounts.fee_sats", func="x", minutes=9, schedule_type="I")
    declared[0] = JobSpec("orders.services.amounts.fee_sats", 600)
    assert command.sync_schedules() == (0, 1, 0)
    assert Schedule.objects.filter(name="orders.services.amounts.fee_sats").count() == 1
    assert Schedule.objects.get(name="orders.services.amounts.fee_sats").minutes == 10


def test_sync_removes_undeclared_project_jobs_only(declared):
    command.sync_schedules()
    Schedule.objects.create(name="operator.custom", func="math.floor", minutes=1, schedule_type="I")
    declared.pop()
    assert command.sync_schedules() == (0, 0, 1)
    assert sorted(Schedule.objects.values_list("name", flat=True)) == [
        "operator.custom",
        "orders.services.amounts.fee_sats",
    ]


def test_sync_refuses_a_declared_job_that_does_not_import_and_writes_nothing(declared):
    declared.append(JobSpec("orders.jobs.no_such_job", 60))
    with pytest.raises(ImproperlyConfigured, match="orders.jobs.no_such_job"):
        command.sync_schedules()
    assert _rows() == []


def test_sync_replaces_the_row_of_a_job_that_moved(declared):
    # A node upgraded from a release where the job lived elsewhere: the old row goes, the new comes.
    Schedule.objects.create(name="devfee.jobs.pay_pending_dev_fees", func="devfee.jobs.pay_pending_dev_fees", minutes=1)
    assert command.sync_schedules() == (2, 0, 1)
    assert [name for name, *_ in _rows()] == [
        "orders.services.amounts.dev_fee_sats",
        "orders.services.amounts.fee_sats",
    ]
