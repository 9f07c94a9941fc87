"""The stored vocabulary equals the protocol's, and the scheduler runs exactly the declared jobs."""

from django.utils.module_loading import import_string

from disputes.models import DisputeInitiator as StoredInitiator
from disputes.models import DisputeStatus as StoredDisputeStatus
from mostro_site.schedules import JobSpec, declared_jobs
from nostrbridge.protocol.enums import DisputeInitiator, DisputeStatus, Kind, Status
from orders.status import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, OrderKind, OrderStatus


def test_the_order_status_choices_are_the_protocol_statuses():
    # The database stores the wire strings as they are (an imported mostrod database too).
    assert sorted(OrderStatus.values) == sorted(status.value for status in Status)
    assert sorted(OrderKind.values) == sorted(kind.value for kind in Kind)


def test_the_dispute_choices_are_the_protocol_values():
    assert sorted(StoredDisputeStatus.values) == sorted(status.value for status in DisputeStatus)
    assert sorted(StoredInitiator.values) == sorted(initiator.value for initiator in DisputeInitiator)


def test_the_state_machine_only_names_protocol_statuses_and_never_leaves_a_terminal_one():
    named = set(ALLOWED_TRANSITIONS) | {to for targets in ALLOWED_TRANSITIONS.values() for to in targets}
    assert named <= set(OrderStatus.values)
    assert TERMINAL_STATUSES.isdisjoint(ALLOWED_TRANSITIONS)
    # Never stored: the NIP-69 bucket and the two legacy admin statuses.
    assert named.isdisjoint({Status.IN_PROGRESS, Status.SETTLED_BY_ADMIN, Status.COMPLETED_BY_ADMIN})


def test_the_declared_jobs_are_exactly_these(settings):
    settings.LND_PAYMENT_RETRIES_INTERVAL = 60
    settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = 300
    settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL = 300
    settings.MOSTRO_PUBLISH_RELAYS_INTERVAL = 60
    assert declared_jobs() == [
        JobSpec("orders.jobs.expire_pending_orders", 60),
        JobSpec("orders.jobs.cancel_timed_out_trades", 60),
        JobSpec("orders.jobs.retry_failed_payouts", 60),
        JobSpec("orders.jobs.reconcile_inflight_payouts", 60),
        JobSpec("orders.pricing.refresh_prices", 300),
        JobSpec("orders.jobs.reconcile_order_events", 60),
        JobSpec("orders.jobs.pay_pending_dev_fees", 60),
        JobSpec("orders.bonds.jobs.reconcile_bonds", 60),
        JobSpec("orders.bonds.payout.process_bond_payouts", 60),
        JobSpec("disputes.jobs.enforce_escrow_deadline", 300),
        JobSpec("nostrbridge.jobs.publish_info_event", 300),
        JobSpec("nostrbridge.jobs.publish_relay_list", 60),
        JobSpec("nostrbridge.jobs.retry_outbox", 60),
        JobSpec("nostrbridge.jobs.prune_inbox", 3600),
        JobSpec("nostrbridge.jobs.prune_outbox", 3600),
        JobSpec("mostro_site.ops.jobs.job_cluster_heartbeat", 60),
    ]


def test_the_job_intervals_follow_the_settings(settings):
    settings.LND_PAYMENT_RETRIES_INTERVAL = 120
    settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = 30  # below the 60 s floor
    settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL = 600
    settings.MOSTRO_PUBLISH_RELAYS_INTERVAL = 180
    seconds = {job.func: job.seconds for job in declared_jobs()}
    assert seconds["orders.jobs.retry_failed_payouts"] == 120
    assert seconds["orders.pricing.refresh_prices"] == 60
    assert seconds["nostrbridge.jobs.publish_info_event"] == 600
    assert seconds["nostrbridge.jobs.publish_relay_list"] == 180


def test_every_declared_job_is_a_callable_that_imports():
    for job in declared_jobs():
        assert callable(import_string(job.func)), job.func
