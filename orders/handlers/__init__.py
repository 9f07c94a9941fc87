"""Trade handlers: one module per protocol action, each exposing `handle_<action>(ctx)`."""

from orders.handlers.add_bond_invoice import handle_add_bond_invoice
from orders.handlers.add_invoice import handle_add_invoice
from orders.handlers.cancel import handle_cancel
from orders.handlers.export_reputation import handle_export_reputation
from orders.handlers.fiat_sent import handle_fiat_sent
from orders.handlers.import_reputation import handle_import_reputation
from orders.handlers.last_trade_index import handle_last_trade_index
from orders.handlers.new_order import handle_new_order
from orders.handlers.orders import handle_orders
from orders.handlers.rate_user import handle_rate_user
from orders.handlers.release import handle_release
from orders.handlers.take_buy import handle_take_buy
from orders.handlers.take_sell import handle_take_sell
from orders.handlers.trade_pubkey import handle_trade_pubkey
from orders.handlers.user_info import handle_user_info

HANDLERS: dict = {
    "new-order": handle_new_order,
    "take-sell": handle_take_sell,
    "take-buy": handle_take_buy,
    "add-invoice": handle_add_invoice,
    "add-bond-invoice": handle_add_bond_invoice,
    "fiat-sent": handle_fiat_sent,
    "release": handle_release,
    "cancel": handle_cancel,
    "rate-user": handle_rate_user,
    "orders": handle_orders,
    "last-trade-index": handle_last_trade_index,
    "trade-pubkey": handle_trade_pubkey,
    "user-info": handle_user_info,
    "export-reputation": handle_export_reputation,
    "import-reputation": handle_import_reputation,
}
