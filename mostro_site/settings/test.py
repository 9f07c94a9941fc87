"""Test settings: fast hasher, in-memory channel layer, django-q2 inline."""

from mostro_site.settings.base import *  # noqa: F403
from mostro_site.settings.base import DATABASES, Q_CLUSTER

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
MOSTRO_LNURL_ALLOW_LOOPBACK = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": ""}  # in-memory per test session unless a file is asked for
# A fixed test identity so nothing depends on a generated key.
MOSTRO_NSEC_PRIVKEY = "1" * 64
LIGHTNING_BACKEND = "lightning.fake.FakeLightningClient"
