"""The retry policy for Optuna storage calls, kept apart from the code that makes them.

Our own SQL is retried by :func:`tuner_service.db.db_retry` (every repository method). Optuna's
``RDBStorage`` wraps SQLAlchemy's errors in ``StorageInternalError``, so its calls need their
own predicate: an error is transient when it, or an error it was raised from, is one of
:data:`~tuner_service.db.TRANSIENT_DB_ERRORS` (connection refused or dropped, server restarting,
SQLite busy).

A call retried after a connection drop may have committed the first time. Callers make their
calls idempotent: ``tell`` skips a trial that is already finished, a re-queue first looks for
the copy it may already have added; a retried ``ask`` may leave one RUNNING trial nobody holds,
which the reaper's orphan sweep fails and re-queues (see :mod:`tuner_service.reaper`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from .db import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Give up after this long without the database (then the caller's own handling applies).
STORAGE_RETRY_MAX_S = 120.0
#: The longest single wait between two attempts (also bounds how late a worker's heartbeat
#: resumes once the database is back).
RETRY_MAX_BACKOFF_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception in its cause chain) is transient database trouble."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, TRANSIENT_DB_ERRORS):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def storage_retry(max_wait_s: float = STORAGE_RETRY_MAX_S) -> Any:
    """Decorator: retry a unit of Optuna storage work on transient errors, with backoff."""
    return retry(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.2, max=RETRY_MAX_BACKOFF_S),
        stop=stop_after_delay(max_wait_s),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


def with_retry(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn(*args, **kwargs)`` under :func:`storage_retry`."""
    wrapped: Callable[P, T] = storage_retry()(fn)
    return wrapped(*args, **kwargs)
