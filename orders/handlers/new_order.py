"""`new-order` (docs/PROTOCOL.md §New-order): a maker publishes an order."""

from lightning.lnurl import is_lnurl_destination
from mostro_site.config import NodeConfig, node_config
from nostrbridge.context import InboundContext, SilentDrop
from nostrbridge.protocol.payloads import OrderPayload
from orders.services.create import Maker, order_create, order_price_ready
from orders.services.invoice import lightning_address_ready
from orders.services.traders import TradeGate, trade_gate_read, trade_index_check


def new_order_stays_in_database(ctx: InboundContext) -> bool:
    """May the bridge run this new-order in its group commit (`BridgeWiring.group_commit_when`)?"""
    return not _leaves_database(ctx, node_config())


def _leaves_database(ctx: InboundContext, config: NodeConfig) -> bool:
    """A new-order leaves the database only to check a Lightning address (the check may wait a
    quarter second for the outside server) or to ask LND for the maker's bond. A price it waits
    for is fetched in the background while the message goes back to the inbox (`RetryLater`)."""
    payload = ctx.payload
    paid_to_address = isinstance(payload, OrderPayload) and is_lnurl_destination(
        (payload.order.buyer_invoice or "").strip()
    )
    return paid_to_address or config.bonds_apply_to("make")


def handle_new_order(ctx: InboundContext) -> None:
    config = node_config()  # one reading decides here and in `order_create` whether LND is asked
    if _leaves_database(ctx, config):
        ctx.leave_group()  # kept in the group by an older reading (bonds turned on since): run alone
    gate = trade_gate_read(identity=ctx.identity, sender=ctx.sender)  # the ban and the index in one read
    gate.refuse_banned()  # before the index gate registers anyone
    known: TradeGate | None = gate
    if isinstance(ctx.payload, OrderPayload):
        lightning_address_ready(ctx.payload.order.buyer_invoice)
        order_price_ready(ctx.payload.order)
        known = gate.unless_waited(ctx.payload.order.buyer_invoice)
    trade_index_check(identity=ctx.identity, sender=ctx.sender, trade_index=ctx.trade_index, gate=known)
    if not isinstance(ctx.payload, OrderPayload):  # verify() already requires it
        raise SilentDrop("new-order without an order payload")
    maker = Maker(sender=ctx.sender, identity=ctx.identity, trade_index=ctx.trade_index, request_id=ctx.request_id)
    order_create(maker=maker, terms=ctx.payload.order, atomic=ctx.atomic, config=config)
