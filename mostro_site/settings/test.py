"""Test settings: fast hasher, in-memory channel layer, django-q2 inline."""

from mostro_site.settings.base import *  # noqa: F403
from mostro_site.settings.base import DATABASES, Q_CLUSTER, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Pushes alone, so a test sees each change once; tests/disputes/test_live_poll.py turns the feed on.
MOSTRO_LIVE_POLL_SECONDS = 0.0
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
MOSTRO_LNURL_ALLOW_LOOPBACK = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not ":memory:": the shared-cache in-memory database fails a second writer at
    # once ("table is locked") instead of waiting on the busy timeout as production does.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_mostro.sqlite3")}
# A fixed test identity so nothing depends on a generated key.
MOSTRO_NSEC_PRIVKEY = "1" * 64
SECRET_KEY = "test-settings-secret-key-" + "x" * 40  # not the placeholder: mostro.W002 stays quiet
LIGHTNING_BACKEND = "lightning.fake.FakeLightningClient"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# Tests flush metrics explicitly (mostro_site.ops.persist.PERSISTER.flush()); no background thread.
MOSTRO_METRICS_FLUSH_SECONDS = 0
