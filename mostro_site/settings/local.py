"""Local development and the embedded default node: the base settings as they are.

DEBUG stays off unless DJANGO_DEBUG=true (a node reachable by others must not show debug
pages); `mostrod` serves the static files itself either way.
"""

from mostro_site.settings.base import *  # noqa: F403
