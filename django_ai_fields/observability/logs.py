"""``JsonFormatter``: one JSON object per log record, the ``extra`` fields included.

::

    LOGGING = {
        "version": 1,
        "formatters": {"json": {"()": "django_ai_fields.observability.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {"django_ai_fields": {"handlers": ["console"], "level": "INFO"}},
    }
"""

from __future__ import annotations

import datetime
import json
import logging

# Attributes every LogRecord has; anything else on a record came from ``extra``.
STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.datetime.fromtimestamp(
                record.created, datetime.timezone.utc
            ).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in STANDARD_ATTRIBUTES and not key.startswith("_")
        )
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


__all__ = [
    "JsonFormatter",
]
