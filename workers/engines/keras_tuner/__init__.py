"""The Keras Tuner engine: a real Keras Tuner oracle (random, bayesian, hyperband, grid) decides
every trial; its state lives in the service database; every trial is also an Optuna trial.

How one lease runs (several workers may run leases of the same study at once):

1. In one short transaction holding the study's lock (:meth:`Repository.update_engine_state`)
   the oracle is rebuilt from the stored state (``Oracle.get_state()`` plus each Keras Tuner
   trial's ``Trial.get_state()``), trials of leases that are no longer active are handed back
   (see *lost trials*), ``oracle.create_trial("lease-<id>")`` is called and the state is saved.
   ``RUNNING``: go on. ``IDLE`` (Hyperband waits for running trials to pick the best): wait and
   ask again. ``STOPPED``: the search is over; the lease is dropped, the study's budget is
   lowered to the trials handed out, and the study completes when they finish.
2. An Optuna trial (``RUNNING``, params and distributions from the Keras Tuner values) is
   created in the study's Optuna record and attached to the lease; the shared training loop
   trains and reports every epoch to it (``tuner/initial_epoch`` .. ``tuner/epochs`` from the
   saved weights of the trial it continues, for Hyperband).
3. In a second locked transaction every epoch's metrics go to ``oracle.update_trial`` and the
   trial ends with ``oracle.end_trial`` (``COMPLETED``, or ``INVALID`` when training failed,
   which Keras Tuner retries up to ``max_retries_per_trial``); then the Optuna trial is told.

Lost trials: the reaper fails the Optuna trial of a silent worker and ends its lease without an
Optuna retry copy. The next transaction on the study sees an ongoing Keras Tuner trial whose
lease is not active and puts it in the oracle's retry queue, as Keras Tuner's own ``reload()``
does with the ongoing trials of a crashed tuner -- up to ``TUNER_MAX_RETRIES`` times; then it
fails for good (``FAILED``) and its lease counts as a finished piece of the budget.
"""

from __future__ import annotations

from .engine import KerasTunerEngine
from .handle import KerasTunerTrialHandle
from .oracle import build_oracle

__all__ = ["KerasTunerEngine", "KerasTunerTrialHandle", "build_oracle"]
