"""Log output: the default text lines, or one JSON object per line (MOSTRO_LOG_FORMAT=json).

Both get the context fields (order id, event id, action, job, process role) from
`nostrbridge.log_context` through `ContextFilter`; the text format keeps its shape and only the
JSON format prints them. Nothing here imports Django models: logging is configured before the
apps load.
"""

import json
import logging
from datetime import UTC, datetime

from nostrbridge.log_context import context_fields

CONTEXT_FIELDS = ("role", "order_id", "event_id", "action", "job")


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (in the thread that logs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "role", "order_id", "event_id", "action", "job", "pid"}`
    plus `exception` when there is one; always on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = context_fields()
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, fields[name])
        entry["pid"] = record.process
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(*, level: str, fmt: str) -> dict:
    """The LOGGING setting. SQL is never logged (a DEBUG line would carry preimages as parameters)."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django-q": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            "django.db.backends": {"level": "INFO"},
        },
    }
