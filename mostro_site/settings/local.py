"""Local development and the embedded default node."""

from mostro_site.settings.base import *  # noqa: F403
from mostro_site.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
