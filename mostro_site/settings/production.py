"""Production: the same settings, with secure cookies and no debug by default."""

from mostro_site.settings.base import *  # noqa: F403
from mostro_site.settings.base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
