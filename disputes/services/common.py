"""What the dispute services share."""

from collections.abc import Callable
from contextlib import AbstractContextManager

# The transaction a service opens for its final step (a handler passes `ctx.atomic`, which
# also marks the inbound event done in it).
Atomic = Callable[[], AbstractContextManager]
