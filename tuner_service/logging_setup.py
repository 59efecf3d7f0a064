"""Log lines for people (default) or one JSON object per line (``TUNER_LOG_JSON=1``).

Context fields: :func:`log_context` (or :func:`bind_log_context`) attaches fields such as
``study_id`` and ``trial_number`` to every record logged by the same thread (or task) while
it is bound, whatever module logs it (the worker binds them around each trial, so every line
of a trial -- training, engine, dataset -- carries them). The JSON formatter writes them as
keys; explicit ``extra=`` fields win over bound ones.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, TextIO

from .settings import Settings

#: Record attributes the JSON formatter writes when present.
CONTEXT_FIELDS = ("study_id", "trial_number", "worker_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("tuner_log_context", default=None)


def bind_log_context(**fields: Any) -> Token[dict[str, Any] | None]:
    """Add fields to the current logging context; undo with :func:`reset_log_context`."""
    return _context.set({**(_context.get() or {}), **fields})


def reset_log_context(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        reset_log_context(token)


class ContextFilter(logging.Filter):
    """Copies the bound context fields onto each record (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
