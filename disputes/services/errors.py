"""Silent outcomes of the dispute services, typed so the REST API can answer them precisely.

Each is a `SilentDrop`: over Nostr the spec wants no reply (docs/PROTOCOL.md §Silent-drops); the API maps
them to 404 / 409 / 403 (mostro_site/api/root.py).
"""

from nostrbridge.context import SilentDrop


class DisputeNotFound(SilentDrop):
    """`admin-take-dispute` names no dispute."""


class DisputeConflict(SilentDrop):
    """Another writer (or LND's escrow state) won a race; nothing moved."""


class NotNodeAdmin(SilentDrop):
    """Only the node's own identity may manage solvers."""


class InvalidSolverKey(SilentDrop):
    """`admin-add-solver` with a key that is not a valid npub."""
