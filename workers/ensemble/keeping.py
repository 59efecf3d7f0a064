"""Which trials' models a worker keeps, so that the study's ensemble can be built at the end.

With ``ensemble.keep_models="top"`` (the default) a completed trial's model is saved when the
trial is among the members :func:`~workers.ensemble.selection.select_members` would pick now
(the best trial always is), and the models of trials that fall out of that set are deleted
from the artifact store (their ``model_artifact_id`` attribute stays: Optuna's finished trials
are immutable; a deleted model is simply no longer a candidate). ``"all"`` keeps every
completed trial's model. With ``ensemble.size=0`` only a new best is saved, as without
ensembles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner_service.optuna_bridge import ATTR_MODEL_ARTIFACT, ATTR_PARAMS_FULL
from tuner_service.service import Services
from tuner_service.spec import EnsembleSpec

from .selection import Candidate, kept_numbers

log = logging.getLogger(__name__)


def model_candidates(services: Services, study: optuna.Study) -> dict[int, tuple[Candidate, str]]:
    """Completed trials whose model is stored: number -> (candidate, artifact id)."""
    found: dict[int, tuple[Candidate, str]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        artifact = t.user_attrs.get(ATTR_MODEL_ARTIFACT)
        if artifact and t.value is not None:
            params = t.user_attrs.get(ATTR_PARAMS_FULL) or t.params
            found[t.number] = (Candidate(t.number, float(t.value), params), str(artifact))
    stored = services.repo.existing_artifacts([a for _, a in found.values()])
    return {n: ca for n, ca in found.items() if ca[1] in stored}


def worth_keeping(
    services: Services,
    study: optuna.Study,
    number: int,
    value: float,
    params: Mapping[str, Any],
    ensemble: EnsembleSpec,
) -> bool:
    """Whether the model of trial ``number`` (completing with ``value``) is kept."""
    if ensemble.keep_models == "all":
        return True
    cands = [c for c, _ in model_candidates(services, study).values()]
    cands.append(Candidate(number, value, dict(params)))
    return number in kept_numbers(cands, max(1, ensemble.size), study_direction(study))


def drop_unkept(services: Services, study: optuna.Study, ensemble: EnsembleSpec) -> list[int]:
    """Delete the stored models of trials outside the kept set; returns their numbers."""
    if ensemble.keep_models == "all" or ensemble.size == 0:
        return []
    found = model_candidates(services, study)
    keep = kept_numbers([c for c, _ in found.values()], ensemble.size, study_direction(study))
    dropped = []
    for number, (_, artifact) in sorted(found.items()):
        if number not in keep and services.repo.delete_artifact(artifact):
            dropped.append(number)
    if dropped:
        log.info("study %s: dropped the models of trials %s (out of the top %d)",
                 study.study_name, dropped, ensemble.size)
    return dropped


def study_direction(study: optuna.Study) -> str:
    """'maximize' or 'minimize' (a single-objective study)."""
    return "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
