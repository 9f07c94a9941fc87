"""REST: maintenance (drain) mode, operators only (docs/OPERATIONS.md "Maintenance mode").

The same service as the dashboard and `manage.py maintenance`; the fields follow mostrod's
`GetMaintenanceStatus` (docs/PROTOCOL.md §Maintenance). Writing needs an operator-scope token.
"""

from datetime import datetime

from ninja import Field, Router, Schema

from disputes.console import ConsoleForbidden
from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.api.auth import API_AUTH
from mostro_site.api.disputes import responses
from mostro_site.operator import maintenance as service
from mostro_site.ops.models import RecordedLightningNode
from mostro_site.staff import is_operator

router = Router(auth=API_AUTH, tags=["maintenance"])


class DrainCountersOut(Schema):
    escrowed_orders: int
    inflight_payouts: int
    inflight_dev_fees: int
    open_bonds: int
    pending_bond_payouts: int
    pending_orders: int


class MaintenanceOut(Schema):
    enabled: bool
    reason: str | None
    since: datetime | None
    counters: DrainCountersOut
    drained: bool
    safe_to_stop: bool
    ln_node_pubkey: str  # what LND answers now; "" when it cannot be reached
    stored_ln_node_pubkey: str | None  # the node recorded at first start (the boot guard's record)


class MaintenanceIn(Schema):
    enabled: bool
    reason: str | None = Field(None, max_length=service.MAX_REASON_CHARS)


def _require_operator(user) -> None:
    if not is_operator(user):
        raise ConsoleForbidden("not_authorized", "only operators switch or read maintenance mode")


def _status_out() -> dict:
    status = service.maintenance_status()
    try:
        live_pubkey = get_lightning_client().get_info().pubkey
    except LightningError:
        live_pubkey = ""
    recorded = RecordedLightningNode.objects.filter(pk=1).first()
    return {
        "enabled": status.enabled,
        "reason": status.reason or None,
        "since": status.since,
        "counters": vars(status.counters),
        "drained": status.drained,
        "safe_to_stop": status.safe_to_stop,
        "ln_node_pubkey": live_pubkey,
        "stored_ln_node_pubkey": recorded.pubkey if recorded else None,
    }


@router.get("/maintenance", response=responses(MaintenanceOut), url_name="maintenance_status")
def maintenance_status(request):
    _require_operator(request.auth)
    return _status_out()


@router.post("/maintenance", response=responses(MaintenanceOut, 400), url_name="maintenance_set")
def maintenance_set(request, body: MaintenanceIn):
    """Switch maintenance on (optional reason, never published) or off; idempotent."""
    _require_operator(request.auth)
    service.maintenance_set(enabled=body.enabled, reason=body.reason, user=request.auth, via="api")
    return _status_out()
