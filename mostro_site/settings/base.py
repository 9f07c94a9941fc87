"""Every setting lives here and is driven by the environment (see `.env.example`).

Names follow the operator vocabulary of Mostro's `settings.toml` with a `MOSTRO_`/`LND_`
prefix; defaults equal Mostro's defaults. `local.py`, `production.py` and `test.py` only
adjust a few deployment knobs, never behaviour.
"""

from datetime import timedelta
from pathlib import Path

from mostro_site.config.env import BASE_DIR, INSECURE_SECRET_KEY, env, env_bool_or_text, env_float_or_text
from mostro_site.config.event_loop import event_loop_choice
from mostro_site.ops.log_format import logging_config

# `make run` / `mostrod --local` / `mostro_keys --generate --write-env` write a generated key
# into .env; the placeholder only serves commands run before that (a system check warns).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)  # on only when asked: DJANGO_DEBUG=true
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "mostro_site.admin_apps.MostroAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_q",
    "axes",
    "ninja",  # its templates and static files: the API docs page loads nothing from a CDN
    "mostro_site",
    "mostro_site.ops",
    "orders",
    "disputes",
    "lightning",
    "nostrbridge",
    "devfee",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mostro_site.ops.middleware.LogContextMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login with 429
]

ROOT_URLCONF = "mostro_site.urls"
# The composition root (mostro_site/wiring.py): how the layers below reach the apps above them.
MOSTRO_BRIDGE_WIRING = "mostro_site.wiring.bridge_wiring"
MOSTRO_ORDERS_WIRING = "mostro_site.wiring.orders_wiring"
ASGI_APPLICATION = "mostro_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
# Embedded default: SQLite in WAL mode with IMMEDIATE transactions, so a writer takes the
# write lock at BEGIN and concurrent writers queue on the busy timeout instead of failing
# mid-transaction. DATABASE_URL=postgres://... switches to PostgreSQL with no code change.
VAR_DIR = Path(env.str("MOSTRO_VAR_DIR", default=str(BASE_DIR / "var")))
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mostro.sqlite3'}")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its directory
    # How long a writer waits for another's write lock before "database is locked" (the fault
    # suite shortens it to see what happens beyond it: docs/RELIABILITY.md).
    SQLITE_BUSY_TIMEOUT_S = env.float("MOSTRO_SQLITE_BUSY_TIMEOUT_S", default=20.0)
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": SQLITE_BUSY_TIMEOUT_S,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)};"
        ),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels -------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # redis-py 8 reads with a 5 s socket timeout by default, which aborts channels-redis's blocking
    # 5 s BZPOPMIN: every listener then fails every ~10 s (django/channels_redis#422). A blocked
    # read needs a little more than the pop's own timeout.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Staff pages also watch the database for changes this often (disputes/live_poll.py): the
# in-memory layer does not reach pages from the job cluster's processes; Redis does (0 = off).
MOSTRO_LIVE_POLL_SECONDS = env.float("MOSTRO_LIVE_POLL_SECONDS", default=0.0 if REDIS_URL else 2.0)

# --- django-q2 ------------------------------------------------------------------------
# The ORM broker keeps jobs in the same database: no extra service on the embedded default.
Q_CLUSTER = {
    "name": "mostro",
    "orm": "default",
    "workers": env.int("MOSTRO_Q_WORKERS", default=2),
    "timeout": 240,
    "retry": 300,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    # Successful runs kept per job function (the sweeps; a successful payout is not stored). The
    # monitor prunes at every stored success by loading the rows it counts, pickled results
    # decoded: per job that is 50 rows, not the 500 of every job together.
    "save_limit": 50,
    "save_limit_per": "func",
    # django-q2's ORM broker plus a wake-up: a task queued on this machine (the release's payout)
    # wakes the cluster's pusher once its transaction commits (mostro_site/runtime/job_broker.py).
    "broker_class": "mostro_site.runtime.job_broker.WakeableORM",
    # Idle poll (one read query): how soon a task queued where the wake-up does not reach (another
    # container or machine) starts. The node's own cluster polls less (runtime/cluster.py).
    "poll": env_float_or_text("MOSTRO_Q_POLL_SECONDS", default=0.2),
    # The sentinel's check of its processes (and its status record); 1 s divides the task timeout.
    "guard_cycle": 1.0,
    # Off: this cluster runs queued tasks only and another process runs the schedules (and
    # benchmarks/bench_instr.py counts a trade's instructions without the sweeps' minute ticks).
    "scheduler": env_bool_or_text("MOSTRO_Q_SCHEDULER", default=True),
}

# --- auth, i18n, static ---------------------------------------------------------------
# The admin login is throttled (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is refused, right password included, for
# DJANGO_LOGIN_LOCKOUT_MINUTES. Other users and other addresses are unaffected. Attempts are
# rows in the database, so every process sees them. Behind a reverse proxy every request comes
# from the proxy's address: the lock is then per username.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("DJANGO_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
FORMAT_MODULE_PATH = ["mostro_site.formats"]  # one date/time style everywhere (see orders.display)
LOGIN_URL = "admin:login"

# --- operations: logs, metrics, readiness (docs/OPERATIONS.md §8–§9) --------------------
# text: `time LEVEL logger message`; json: one object per line with role, order_id, event_id, action.
MOSTRO_LOG_FORMAT = env.str("MOSTRO_LOG_FORMAT", default="text")
LOGGING = logging_config(level=env.str("MOSTRO_LOG_LEVEL", default="INFO"), fmt=MOSTRO_LOG_FORMAT)
# Bearer token Prometheus sends to /metrics (a secret; empty: /metrics is off).
MOSTRO_METRICS_TOKEN = env.str("MOSTRO_METRICS_TOKEN", default="")
# The bridge's safety-net polls (nudges and commits wake it; these only catch a lost nudge or an
# operator's change of relays/settings). Longer ones cost a quiet node fewer wake-ups. A value
# that is not a number stays text here, for the system checks to refuse (mostro.E020).
MOSTRO_BRIDGE_INBOX_POLL_SECONDS = env_float_or_text("MOSTRO_BRIDGE_INBOX_POLL_SECONDS", default=0.25)
MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS = env_float_or_text("MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS", default=1.0)
MOSTRO_BRIDGE_CONFIG_POLL_SECONDS = env_float_or_text("MOSTRO_BRIDGE_CONFIG_POLL_SECONDS", default=3.0)
# The invoice watcher's read of the hold invoices to follow (`mostrod`'s; `invoice_watcher`
# takes --poll-seconds): invoices handed over by this process's commits are followed at once.
MOSTRO_INVOICE_WATCHER_POLL_SECONDS = env_float_or_text("MOSTRO_INVOICE_WATCHER_POLL_SECONDS", default=1.0)
# How often each process adds its metric increments to the database and reports its heartbeat.
MOSTRO_METRICS_FLUSH_SECONDS = env.float("MOSTRO_METRICS_FLUSH_SECONDS", default=10.0)
# Touched at each of those flushes: container/systemd probes of processes without a web port.
MOSTRO_HEARTBEAT_FILE = env.str("MOSTRO_HEARTBEAT_FILE", default="")
MOSTRO_READY_LND_TIMEOUT_SECONDS = env.float("MOSTRO_READY_LND_TIMEOUT_SECONDS", default=3.0)
MOSTRO_READY_JOBS_MAX_AGE_SECONDS = env.int("MOSTRO_READY_JOBS_MAX_AGE_SECONDS", default=180)
# Checks shown by /readyz but not deciding its status: database, lightning, relays, jobs, prices.
MOSTRO_READY_OPTIONAL_CHECKS = env.list("MOSTRO_READY_OPTIONAL_CHECKS", default=[])

# --- Mostro: the node -----------------------------------------------------------------
MOSTRO_NSEC_PRIVKEY = env.str("MOSTRO_NSEC_PRIVKEY", default="")
MOSTRO_RELAYS = env.list("MOSTRO_RELAYS", default=["ws://127.0.0.1:7000"])
# The event loop of mostrod, nostr_bridge and invoice_watcher (`mostro_site.config.event_loop`;
# manage.py installs it before Django loads, this copy is for the system check and the log).
MOSTRO_EVENT_LOOP = event_loop_choice()
MOSTRO_PROTOCOL_VERSION = env.int("MOSTRO_PROTOCOL_VERSION", default=2)
MOSTRO_NAME = env.str("MOSTRO_NAME", default="")
MOSTRO_ABOUT = env.str("MOSTRO_ABOUT", default="")
MOSTRO_PICTURE = env.str("MOSTRO_PICTURE", default="")
MOSTRO_WEBSITE = env.str("MOSTRO_WEBSITE", default="")

# --- Mostro: trading rules ------------------------------------------------------------
MOSTRO_FEE = env.float("MOSTRO_FEE", default=0.0)
MOSTRO_MAX_ROUTING_FEE = env.float("MOSTRO_MAX_ROUTING_FEE", default=0.002)
MOSTRO_MAX_ORDER_AMOUNT = env.int("MOSTRO_MAX_ORDER_AMOUNT", default=1_000_000)
MOSTRO_MIN_PAYMENT_AMOUNT = env.int("MOSTRO_MIN_PAYMENT_AMOUNT", default=100)
MOSTRO_EXPIRATION_HOURS = env.int("MOSTRO_EXPIRATION_HOURS", default=24)
MOSTRO_MAX_EXPIRATION_DAYS = env.int("MOSTRO_MAX_EXPIRATION_DAYS", default=15)
MOSTRO_EXPIRATION_SECONDS = env.int("MOSTRO_EXPIRATION_SECONDS", default=900)
MOSTRO_POW = env.int("MOSTRO_POW", default=0)
MOSTRO_POW_FIRST_CONTACT = env.int("MOSTRO_POW_FIRST_CONTACT", default=-1)  # -1: same as MOSTRO_POW
MOSTRO_DEV_FEE_PERCENTAGE = env.float("MOSTRO_DEV_FEE_PERCENTAGE", default=0.30)
MOSTRO_FIAT_CURRENCIES_ACCEPTED = env.list("MOSTRO_FIAT_CURRENCIES_ACCEPTED", default=["USD", "EUR", "ARS", "CUP"])
MOSTRO_MAX_ORDERS_PER_RESPONSE = env.int("MOSTRO_MAX_ORDERS_PER_RESPONSE", default=10)
MOSTRO_USER_RATES_SENT_INTERVAL_SECONDS = env.int("MOSTRO_USER_RATES_SENT_INTERVAL_SECONDS", default=3600)
MOSTRO_PUBLISH_RELAYS_INTERVAL = env.int("MOSTRO_PUBLISH_RELAYS_INTERVAL", default=60)
MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL = env.int("MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL", default=300)

# --- Mostro: anti-abuse bond (mostrod's [anti_abuse_bond]; docs/PROTOCOL.md §Bonds) ------------
MOSTRO_ANTI_ABUSE_BOND_ENABLED = env.bool("MOSTRO_ANTI_ABUSE_BOND_ENABLED", default=False)
MOSTRO_ANTI_ABUSE_BOND_APPLY_TO = env.str("MOSTRO_ANTI_ABUSE_BOND_APPLY_TO", default="take")  # take | make | both
MOSTRO_ANTI_ABUSE_BOND_AMOUNT_PCT = env.float("MOSTRO_ANTI_ABUSE_BOND_AMOUNT_PCT", default=0.01)
MOSTRO_ANTI_ABUSE_BOND_BASE_AMOUNT_SATS = env.int("MOSTRO_ANTI_ABUSE_BOND_BASE_AMOUNT_SATS", default=1000)
MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT = env.bool(
    "MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT", default=False
)
MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT = env.float("MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT", default=0.5)
MOSTRO_ANTI_ABUSE_BOND_PAYOUT_INVOICE_WINDOW_SECONDS = env.int(
    "MOSTRO_ANTI_ABUSE_BOND_PAYOUT_INVOICE_WINDOW_SECONDS", default=300
)
MOSTRO_ANTI_ABUSE_BOND_PAYOUT_MAX_RETRIES = env.int("MOSTRO_ANTI_ABUSE_BOND_PAYOUT_MAX_RETRIES", default=5)
MOSTRO_ANTI_ABUSE_BOND_PAYOUT_CLAIM_WINDOW_DAYS = env.int("MOSTRO_ANTI_ABUSE_BOND_PAYOUT_CLAIM_WINDOW_DAYS", default=15)

# --- Mostro: prices -------------------------------------------------------------------
MOSTRO_BITCOIN_PRICE_API_URL = env.str("MOSTRO_BITCOIN_PRICE_API_URL", default="https://api.yadio.io")
MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = env.int("MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS", default=300)
MOSTRO_MAX_PRICE_STALENESS_SECONDS = env.int("MOSTRO_MAX_PRICE_STALENESS_SECONDS", default=1800)
# Kind 30078 `mostro-rates` event after every price tick (Mostro's publish_exchange_rates_to_nostr).
MOSTRO_PUBLISH_EXCHANGE_RATES_TO_NOSTR = env.bool("MOSTRO_PUBLISH_EXCHANGE_RATES_TO_NOSTR", default=True)

# --- Mostro: dev fee ------------------------------------------------------------------
MOSTRO_DEV_FEE_LIGHTNING_ADDRESS = env.str(
    "MOSTRO_DEV_FEE_LIGHTNING_ADDRESS", default="pivotaldeborah52@walletofsatoshi.com"
)
# Tests only: lets user@127.0.0.1:PORT addresses resolve over plain http.
MOSTRO_LNURL_ALLOW_LOOPBACK = env.bool("MOSTRO_LNURL_ALLOW_LOOPBACK", default=False)

# --- Mostro: reputation portability (docs/PROTOCOL.md §Reputation) ---------------------
# Import attestations other issuers signed (the trust list is managed at /operator/settings/).
MOSTRO_REPUTATION_IMPORT_ENABLED = env.bool("MOSTRO_REPUTATION_IMPORT_ENABLED", default=False)
MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS = env.int(
    "MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS", default=604_800
)
# Export: sign attestations with a key dedicated to it, never the node's key.
MOSTRO_REPUTATION_EXPORT_ENABLED = env.bool("MOSTRO_REPUTATION_EXPORT_ENABLED", default=False)
MOSTRO_REPUTATION_ISSUER_SK = env.str("MOSTRO_REPUTATION_ISSUER_SK", default="")
MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS = env.int("MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS", default=604_800)

# --- Operator policies (docs/OPERATIONS.md §Policies): 0 = off; live values at /operator/settings/
MOSTRO_MAX_OPEN_ORDERS = env.int("MOSTRO_MAX_OPEN_ORDERS", default=0)  # lnp2pBot's MAX_PENDING_ORDERS
MOSTRO_TAKE_COOLDOWN_SECONDS = env.int("MOSTRO_TAKE_COOLDOWN_SECONDS", default=0)
MOSTRO_DAILY_VOLUME_SATS = env.int("MOSTRO_DAILY_VOLUME_SATS", default=0)
MOSTRO_COUNTERPARTY_THRESHOLD_SATS = env.int("MOSTRO_COUNTERPARTY_THRESHOLD_SATS", default=0)
MOSTRO_COUNTERPARTY_MIN_TRADES = env.int("MOSTRO_COUNTERPARTY_MIN_TRADES", default=0)
MOSTRO_COUNTERPARTY_MIN_RATING = env.float("MOSTRO_COUNTERPARTY_MIN_RATING", default=0.0)
MOSTRO_COUNTERPARTY_MIN_AGE_DAYS = env.int("MOSTRO_COUNTERPARTY_MIN_AGE_DAYS", default=0)
MOSTRO_AUTO_BAN_DISPUTES_LOST = env.int("MOSTRO_AUTO_BAN_DISPUTES_LOST", default=0)
MOSTRO_AUTO_BAN_WINDOW_DAYS = env.int("MOSTRO_AUTO_BAN_WINDOW_DAYS", default=30)

# --- Mostro: NIP-40 lifetimes (days) --------------------------------------------------
MOSTRO_EXPIRATION_ORDER_DAYS = env.int("MOSTRO_EXPIRATION_ORDER_DAYS", default=30)
MOSTRO_EXPIRATION_RATING_DAYS = env.int("MOSTRO_EXPIRATION_RATING_DAYS", default=90)
MOSTRO_EXPIRATION_DISPUTE_DAYS = env.int("MOSTRO_EXPIRATION_DISPUTE_DAYS", default=90)
MOSTRO_EXPIRATION_FEE_AUDIT_DAYS = env.int("MOSTRO_EXPIRATION_FEE_AUDIT_DAYS", default=365)
MOSTRO_EXPIRATION_DM_DAYS = env.int("MOSTRO_EXPIRATION_DM_DAYS", default=30)

# --- Lightning (LND) ------------------------------------------------------------------
LIGHTNING_BACKEND = env.str("LIGHTNING_BACKEND", default="lightning.lnd.LndClient")
LND_GRPC_HOST = env.str("LND_GRPC_HOST", default="127.0.0.1:10009")
LND_CERT_FILE = env.str("LND_CERT_FILE", default="")
LND_MACAROON_FILE = env.str("LND_MACAROON_FILE", default="")
# Start even when LND answers with another identity while escrow is open on the recorded node
# (the boot guard, docs/OPERATIONS.md "Changing the Lightning node"); mostrod's
# `[lightning].allow_node_change`.
LND_ALLOW_NODE_CHANGE = env.bool("LND_ALLOW_NODE_CHANGE", default=False)
LND_INVOICE_EXPIRATION_WINDOW = env.int("LND_INVOICE_EXPIRATION_WINDOW", default=3600)
LND_HOLD_INVOICE_EXPIRATION_WINDOW = env.int("LND_HOLD_INVOICE_EXPIRATION_WINDOW", default=300)
LND_HOLD_INVOICE_CLTV_DELTA = env.int("LND_HOLD_INVOICE_CLTV_DELTA", default=144)
LND_MAX_FINAL_CLTV_EXPIRY_DELTA = env.int("LND_MAX_FINAL_CLTV_EXPIRY_DELTA", default=144)
LND_ESCROW_DEADLINE_MARGIN_BLOCKS = env.int("LND_ESCROW_DEADLINE_MARGIN_BLOCKS", default=24)
LND_PAYMENT_ATTEMPTS = env.int("LND_PAYMENT_ATTEMPTS", default=3)
LND_PAYMENT_RETRIES_INTERVAL = env.int("LND_PAYMENT_RETRIES_INTERVAL", default=60)
LND_CALL_TIMEOUT_SECONDS = env.float("LND_CALL_TIMEOUT_SECONDS", default=10.0)
LND_PAYMENT_TIMEOUT_SECONDS = env.int("LND_PAYMENT_TIMEOUT_SECONDS", default=60)
# Extra price providers, aggregated with the primary one (median, 5 % outlier cut):
# comma-separated "<kind>:<url>" with kind in yadio, coingecko, currency_api, blockchain.
MOSTRO_PRICE_PROVIDERS = env.list("MOSTRO_PRICE_PROVIDERS", default=[])
MOSTRO_PRICE_OUTLIER_THRESHOLD_PCT = env.float("MOSTRO_PRICE_OUTLIER_THRESHOLD_PCT", default=5.0)
MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS = env.float("MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS", default=10.0)
# How long a market-priced order for a currency with no stored price waits for an on-demand
# fetch before it is answered `price_too_stale` (orders/pricing/on_demand.py).
MOSTRO_PRICE_WAIT_SECONDS = env.float("MOSTRO_PRICE_WAIT_SECONDS", default=30.0)
# El Toque's Bearer API token (required by an `eltoque:` provider entry); a secret.
MOSTRO_ELTOQUE_TOKEN = env.str("MOSTRO_ELTOQUE_TOKEN", default="")
# Pubkeys (hex or npub) whose kind 30078 rates events the `nostr` provider trusts.
MOSTRO_PRICE_TRUSTED_NODES = env.list("MOSTRO_PRICE_TRUSTED_NODES", default=[])

# --- The solver console: dispute chat -------------------------------------------------
# Outbound envelope (docs/PROTOCOL.md §Chat): "kind14" is what Mostro Mobile and mostrix send today
# (HKDF K_conv/K_sign, kind 14); "giftwrap" is mostro-core 0.14's kind 1059 design.
MOSTRO_CHAT_ENVELOPE = env.str("MOSTRO_CHAT_ENVELOPE", default="kind14")
# Also read parties who still send the kind 1059 envelope (both clients dual-read it).
MOSTRO_CHAT_READ_LEGACY = env.bool("MOSTRO_CHAT_READ_LEGACY", default=True)
# Seals the solver keys and chat messages the console stores; empty: derived from SECRET_KEY.
# After a rotation put the old value in the fallbacks and run `manage.py console_rekey`.
MOSTRO_CONSOLE_ENCRYPTION_KEY = env.str("MOSTRO_CONSOLE_ENCRYPTION_KEY", default="")
MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS = env.list("MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS", default=[])
