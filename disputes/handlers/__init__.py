"""Dispute and admin handlers: one module per protocol action, each exposing `handle_<action>(ctx)`."""

from disputes.handlers.admin_add_solver import handle_admin_add_solver
from disputes.handlers.admin_cancel import handle_admin_cancel
from disputes.handlers.admin_settle import handle_admin_settle
from disputes.handlers.admin_take_dispute import handle_admin_take_dispute
from disputes.handlers.dispute import handle_dispute
from disputes.handlers.restore_session import handle_restore_session

HANDLERS: dict = {
    "dispute": handle_dispute,
    "admin-take-dispute": handle_admin_take_dispute,
    "admin-settle": handle_admin_settle,
    "admin-cancel": handle_admin_cancel,
    "admin-add-solver": handle_admin_add_solver,
    "restore-session": handle_restore_session,
}
