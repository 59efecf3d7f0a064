"""The retry policy for every Optuna storage call, kept apart from the code that makes them.

Our own SQL is retried by :func:`tuner_service.db.db_retry` (every repository method). Optuna's
calls are retried inside the storage itself: :class:`RetryingRDBStorage` is the only storage
the service builds (:func:`tuner_service.optuna_bridge.create_optuna_storage`), so every
``load_study``/``create_study`` on it, and every call Optuna makes through it, is covered; no
call site can forget it. Optuna still wraps it in its own ``_CachedStorage`` (it is an
``RDBStorage``), so the retries sit beneath Optuna's cache, at the database round trips.

``RDBStorage`` wraps SQLAlchemy's errors in ``StorageInternalError``, so the predicate looks
through the cause chain: an error is transient when it, or an error it was raised from, is one
of :data:`~tuner_service.db.TRANSIENT_DB_ERRORS` (connection refused or dropped, server
restarting, SQLite busy).

A call retried after a connection drop may have committed the first time. Retried writes are
idempotent: attributes and intermediate values are upserts; a parameter or a finished state
already written as asked counts as written; a trial created from a template is not created
twice (the retry first looks for it). A retried plain ``create_new_trial`` (``ask``) or a
retried claim of a WAITING trial may leave one RUNNING trial nobody holds, which the reaper's
orphan sweep fails and re-queues (see :mod:`tuner_service.reaper`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from .db import TRANSIENT_DB_ERRORS

log = logging.getLogger(__name__)

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


def _retrying(
    fn: Callable[..., T], *, landed: Callable[[], T | None] | None = None
) -> T:
    """Call ``fn()`` until it gets through, with the backoff of :func:`storage_retry`. After a
    transient failure, ``landed()`` (when given) says whether the failed attempt committed
    anyway: its answer is then returned instead of writing again."""
    attempts = 0

    @storage_retry()
    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and landed is not None:
            found = landed()
            if found is not None:
                return found
        return fn()

    return attempt()


#: ``RDBStorage`` methods that reach the database and are plain reads or upserts (safe to
#: repeat as they are). The private ones are what Optuna's ``_CachedStorage`` (which wraps
#: every ``RDBStorage`` handed to ``load_study``) calls on its backend instead of the public
#: ones; tests/workers/test_storage_retries.py fails if a database call escapes.
_REPEATABLE = (
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    # A lost answer to a study's creation shows as DuplicatedStudyError on the retry.
    "create_new_study",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "record_heartbeat",
    "get_current_version",
    "get_all_versions",
    "upgrade",
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)


def _param_landed(
    storage: RDBStorage, trial_id: int, param_name: str, value: float, *_: Any
) -> bool | None:
    """A parameter's unique (trial, name) row is there already, with this value."""
    try:
        got = RDBStorage.get_trial_param(storage, trial_id, param_name)
    except KeyError:
        return None
    return True if got == value else None


def _state_landed(
    storage: RDBStorage, trial_id: int, state: TrialState, values: Sequence[float] | None = None
) -> bool | None:
    """A finished state written as asked; a claim of a WAITING trial that is no longer
    waiting counts as lost (maybe to the lost attempt itself: the orphan sweep fails it)."""
    t = RDBStorage.get_trial(storage, trial_id)
    same = values is None or (t.values is not None and list(t.values) == list(values))
    if state.is_finished() and t.state == state and same:
        return True
    if state == TrialState.RUNNING and t.state != TrialState.WAITING:
        return False
    return None


def _created_trial(
    storage: RDBStorage, study_id: int, template_trial: FrozenTrial | None = None
) -> FrozenTrial | None:
    """The trial of a template, added by the lost attempt (a trial without a template, from
    ``ask``, cannot be told from another worker's: it is created again)."""
    if template_trial is None:
        return None
    for t in RDBStorage.get_all_trials(storage, study_id, deepcopy=False):
        if (
            t.state == template_trial.state
            and t.params == template_trial.params
            and t.user_attrs == template_trial.user_attrs
            and t.system_attrs == template_trial.system_attrs
            and t.datetime_start == template_trial.datetime_start
        ):
            return t
    return None


def _created_trial_id(storage: RDBStorage, *args: Any) -> int | None:
    t = _created_trial(storage, *args)
    return None if t is None else trial_id_of(t)


#: Writes that are not plain upserts, each with its check of whether a lost attempt landed.
_IDEMPOTENT: dict[str, Callable[..., Any]] = {
    "set_trial_param": _param_landed,
    "_set_trial_param": _param_landed,
    "set_trial_state_values": _state_landed,
    "create_new_trial": _created_trial_id,
    "_create_new_trial": _created_trial,
}


class RetryingRDBStorage(RDBStorage):
    """Optuna's ``RDBStorage`` with the service's retry policy on every database call (the
    methods of :data:`_REPEATABLE` and :data:`_IDEMPOTENT`, wrapped below)."""


def _retried(name: str, landed: Callable[..., Any] | None) -> Callable[..., Any]:
    plain = getattr(RDBStorage, name)

    @functools.wraps(plain)
    def method(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        check = None if landed is None else (lambda: landed(self, *args, **kwargs))
        return _retrying(lambda: plain(self, *args, **kwargs), landed=check)

    return method


for _name in _REPEATABLE:
    setattr(RetryingRDBStorage, _name, _retried(_name, None))
for _name, _landed in _IDEMPOTENT.items():
    setattr(RetryingRDBStorage, _name, _retried(_name, _landed))


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a trial. Optuna has no public accessor for it on ``Trial`` or
    ``FrozenTrial`` (``_trial_id``); the public path,
    ``storage.get_trial_id_from_study_id_trial_number``, costs a database round trip per trial
    for a value the object already holds, so it is read here, in one place."""
    return int(trial._trial_id)


def study_id_of(study: optuna.Study) -> int:
    """The storage id of a study. Optuna has no public accessor on ``Study`` (``_study_id``);
    the public path, ``storage.get_study_id_from_name``, costs a database round trip for a
    value the object already holds, so it is read here, in one place."""
    return int(study._study_id)
