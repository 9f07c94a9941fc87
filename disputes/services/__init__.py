"""Dispute services: one set for the three edges (Nostr handlers, Django admin, REST API).

Each takes the actor's identity pubkey (`actor_pubkey`): a solver's key, or the node key
for operators; browser/API users act as their linked `SolverLink` pubkey and are audited as
`admin:<username>` (`actor_label`).
"""

from disputes.services.open import dispute_open
from disputes.services.resolve import Resolution, dispute_cancel, dispute_settle
from disputes.services.solvers import solver_add, solver_grant, solver_remove
from disputes.services.take import dispute_take, solver_dispute_info

__all__ = [
    "Resolution",
    "dispute_cancel",
    "dispute_open",
    "dispute_settle",
    "dispute_take",
    "solver_add",
    "solver_dispute_info",
    "solver_grant",
    "solver_remove",
]
