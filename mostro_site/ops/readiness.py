"""Readiness checks: what `/readyz` answers and `manage.py doctor` explains.

Each check returns a `CheckResult`: `detail` is safe to serve unauthenticated (no hosts, keys
or error texts); `problem` and `advice` are for the person running `doctor`. A check that the
operator lists in MOSTRO_READY_OPTIONAL_CHECKS is still run and shown, but does not decide the
status (e.g. `prices` on a node without internet, `jobs` for `mostrod --no-cluster`).
"""

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import LightningError, LightningPermissionDenied
from mostro_site.config import node_config
from mostro_site.ops.lnd_identity import lnd_identity_verify
from mostro_site.ops.models import ProcessHeartbeat
from mostro_site.ops.state_metrics import RELAY_HEALTH_FRESH_SECONDS
from nostrbridge.models import RelayHealth
from orders.models import BtcPrice

CHECK_NAMES = ("database", "lightning", "relays", "jobs", "prices")
_LND_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz-lnd")


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    problem: str = ""  # what went wrong, for a person (may name hosts and errors)
    advice: str = ""  # what to do about it
    required: bool = True
    seconds: float = 0.0

    def public(self) -> dict:
        return {
            "state": "ok" if self.ok else "fail",
            "detail": self.detail,
            "required": self.required,
            "ms": round(self.seconds * 1000, 1),
        }


def _database_down(name: str, exc: DatabaseError) -> CheckResult:
    return CheckResult(
        name, False, "database unavailable", problem=str(exc), advice="Fix the database first (see the database check)."
    )


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        advice = (
            "Check DATABASE_URL, that PostgreSQL runs and accepts this user, and `manage.py migrate`."
            if connection.vendor == "postgresql"
            else "Check MOSTRO_VAR_DIR (the SQLite file must be readable and writable by the service user)."
        )
        return CheckResult("database", False, "unreachable", problem=str(exc), advice=advice)
    return CheckResult("database", True, f"{connection.vendor} reachable")


def check_lightning() -> CheckResult:
    timeout = settings.MOSTRO_READY_LND_TIMEOUT_SECONDS
    future = _LND_POOL.submit(get_lightning_client().get_info)
    try:
        info = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return CheckResult(
            "lightning",
            False,
            f"no answer within {timeout:g} s",
            problem=f"LND at {settings.LND_GRPC_HOST} did not answer GetInfo within {timeout:g} s",
            advice="Is LND running, unlocked and reachable from this host (LND_GRPC_HOST)?",
        )
    except LightningError as exc:
        advice = (
            "The macaroon was refused: LND_MACAROON_FILE must be this node's macaroon with the permissions "
            "in docs/OPERATIONS.md §3.1."
            if isinstance(exc, LightningPermissionDenied)
            else "Start or unlock LND; check LND_GRPC_HOST, LND_CERT_FILE (LND's tls.cert) and LND_MACAROON_FILE."
        )
        return CheckResult("lightning", False, "unreachable", problem=exc.message, advice=advice)
    try:
        verdict = lnd_identity_verify(pubkey=info.pubkey, alias=info.alias, network=info.network)
    except DatabaseError as exc:
        return _database_down("lightning", exc)
    if not verdict.matches:
        return CheckResult(
            "lightning",
            False,
            "answers with another node identity",
            problem=f"LND answers as {info.pubkey}; this node's escrows are on {verdict.recorded_pubkey}",
            advice="Point LND_GRPC_HOST and the files at the recorded node. If the change is deliberate (no "
            "trade in flight), run `manage.py doctor --accept-lnd-identity`.",
        )
    synced = "" if info.synced_to_chain else ", not synced to chain"
    recorded = " (identity recorded now)" if verdict.recorded_now else ""
    return CheckResult("lightning", True, f"{info.network} node at block {info.block_height}{synced}{recorded}")


def check_relays() -> CheckResult:
    fresh_after = timezone.now() - timedelta(seconds=RELAY_HEALTH_FRESH_SECONDS)
    try:
        rows = list(RelayHealth.objects.filter(updated_at__gte=fresh_after).values_list("relay_url", "connected"))
        configured = len(node_config().relays)
    except DatabaseError as exc:
        return _database_down("relays", exc)
    connected = sum(1 for _, is_connected in rows if is_connected)
    detail = f"{connected} of {configured} relays connected"
    if connected:
        return CheckResult("relays", True, detail)
    if not rows:
        problem, advice = "no relay bridge has reported in the last 30 s", "Start the relay bridge (or mostrod)."
    else:
        down = ", ".join(url for url, _ in rows)
        problem = f"the bridge is running but reaches none of its relays ({down})"
        advice = "Check MOSTRO_RELAYS (or the settings page) and this host's outbound network."
    return CheckResult("relays", False, detail, problem=problem, advice=advice)


def check_jobs() -> CheckResult:
    max_age = settings.MOSTRO_READY_JOBS_MAX_AGE_SECONDS
    try:
        seen_at = ProcessHeartbeat.objects.filter(role="jobs").order_by("-seen_at").values_list("seen_at").first()
    except DatabaseError as exc:
        return _database_down("jobs", exc)
    if seen_at is None:
        return CheckResult(
            "jobs",
            False,
            "no job cluster heartbeat yet",
            problem="the job cluster has never run its heartbeat job",
            advice="Start `manage.py run_jobs` (or mostrod without --no-cluster); the heartbeat runs every minute.",
        )
    age = (timezone.now() - seen_at[0]).total_seconds()
    if age > max_age:
        return CheckResult(
            "jobs",
            False,
            f"last heartbeat {age:.0f} s ago",
            problem=f"the job cluster's last heartbeat is {age:.0f} s old (limit {max_age} s)",
            advice="Is `run_jobs` running? Its log shows why workers stopped; `sync_schedules` restores the rows.",
        )
    return CheckResult("jobs", True, f"heartbeat {age:.0f} s ago")


def check_prices() -> CheckResult:
    try:
        config = node_config()
        prices = dict(BtcPrice.objects.values_list("fiat_code", "as_of"))
    except DatabaseError as exc:
        return _database_down("prices", exc)
    fresh_after = timezone.now() - timedelta(seconds=config.max_price_staleness_seconds)
    fresh = sorted(code for code, as_of in prices.items() if as_of >= fresh_after)
    wanted = sorted(config.fiat_currencies_accepted)
    stale = [code for code in wanted if code not in fresh]
    if wanted and not stale:
        return CheckResult("prices", True, f"{len(fresh)} currencies fresh")
    if not wanted and fresh:
        return CheckResult("prices", True, f"{len(fresh)} currencies fresh")
    missing = ", ".join(stale) if stale else "every currency"
    return CheckResult(
        "prices",
        False,
        f"stale or missing: {missing}",
        problem=f"no price younger than {config.max_price_staleness_seconds} s for {missing}",
        advice="Market-price orders are refused meanwhile. Check that the price API "
        f"({config.bitcoin_price_api_url}) is reachable and that the job cluster runs refresh_prices.",
    )


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "lightning": check_lightning,
    "relays": check_relays,
    "jobs": check_jobs,
    "prices": check_prices,
}


def _timed(name: str) -> CheckResult:
    started = time.monotonic()
    result = CHECKS[name]()
    optional = name in settings.MOSTRO_READY_OPTIONAL_CHECKS
    return replace(result, required=not optional, seconds=time.monotonic() - started)


def run_checks() -> list[CheckResult]:
    return [_timed(name) for name in CHECK_NAMES]


def _timed_in_thread(name: str) -> CheckResult:
    try:
        return _timed(name)
    finally:
        connections.close_all()  # this executor thread's connection


async def arun_checks() -> list[CheckResult]:
    """All checks at once, each in a worker thread, so a slow LND delays no other request."""
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(None, _timed_in_thread, name) for name in CHECK_NAMES)))


def is_ready(results: list[CheckResult]) -> bool:
    return all(result.ok for result in results if result.required)
