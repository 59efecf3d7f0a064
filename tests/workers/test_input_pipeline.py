"""workers.input_pipeline: per-worker input pipelines whose epochs depend only on the trial's
seed and the epoch, so that a trial fed from a cache that served other trials computes exactly
what it computes from new pipelines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from support import tiny_images

from tuner_service.spec import ObjectiveSpec
from workers.datasets import Dataset
from workers.execution import ExecutionOptions
from workers.input_pipeline import PipelineCache
from workers.model_reuse import ModelCache
from workers.runtime import clear_session, seed_everything
from workers.trial_runner import Decision, Outcome, TrialResult, run_trial

PARAMS = {
    "conv_blocks": 1, "filters": 4, "dense_units": 8, "batch_size": 16, "dropout": 0.2,
    "batch_norm": True, "early_stopping_patience": 0, "augment_flip": "horizontal",
}
OBJECTIVES = [ObjectiveSpec(metric="val_accuracy", direction="maximize")]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return tiny_images(230, seed=2)


def _epochs(args: dict[str, Any], n: int) -> list[list[np.ndarray]]:
    """The first ``n`` epochs of the training stream, as lists of label batches."""
    it = iter(args["x"])
    return [[next(it)[1].numpy() for _ in range(args["steps_per_epoch"])] for _ in range(n)]


def _rows(data: Dataset, xs: list[np.ndarray]) -> np.ndarray:
    """The training rows that the batches ``xs`` hold, by index."""
    flat = np.concatenate([x.reshape(len(x), -1) for x in xs])
    index = {row.tobytes(): i for i, row in enumerate(data.x_train.reshape(len(data.y_train), -1))}
    return np.array([index[row.tobytes()] for row in flat])


def test_each_epoch_is_a_permutation_set_by_seed_and_epoch(data: Dataset) -> None:
    cache = PipelineCache()
    args = cache.fit_inputs(data, batch_size=16, shuffle=True, seed=7)
    n = len(data.y_train)
    assert args["steps_per_epoch"] == -(-n // 16) and args["shuffle"] is False
    it = iter(args["x"])
    orders = []
    for _ in range(2):
        xs = [next(it)[0].numpy() for _ in range(args["steps_per_epoch"])]
        assert [len(x) for x in xs] == [16] * (n // 16) + ([n % 16] if n % 16 else [])
        order = _rows(data, xs)
        assert sorted(order) == list(range(n))  # every sample once per epoch
        orders.append(order)
    assert list(orders[0]) != list(orders[1])  # reshuffled every epoch
    # the same seed gives the same epochs, from this cache after another trial or a new one
    cache.fit_inputs(data, batch_size=16, shuffle=True, seed=8)
    again = cache.fit_inputs(data, batch_size=16, shuffle=True, seed=7)
    assert cache.hits == 2
    new = PipelineCache().fit_inputs(data, batch_size=16, shuffle=True, seed=7)
    first, fresh = _epochs(again, 2), _epochs(new, 2)
    for a, b in zip(first, fresh, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # another seed, another order; a later first epoch starts the stream at that epoch
    seeds = _epochs(PipelineCache().fit_inputs(data, batch_size=16, shuffle=True, seed=9), 1)
    assert not all(np.array_equal(x, y) for x, y in zip(seeds[0], fresh[0], strict=True))
    later = PipelineCache().fit_inputs(data, batch_size=16, shuffle=True, seed=7,
                                       initial_epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(_epochs(later, 1)[0], fresh[1], strict=True))


def test_without_shuffling_and_for_validation_the_arrays_come_in_order(data: Dataset) -> None:
    args = PipelineCache().fit_inputs(data, batch_size=32, shuffle=False, seed=1)
    labels = np.concatenate(_epochs(args, 2)[1])
    assert np.array_equal(labels, data.y_train)
    val = list(args["validation_data"])
    assert len(val[0][1]) == 32
    assert np.array_equal(np.concatenate([y.numpy() for _, y in val]), data.y_val)
    assert np.array_equal(np.concatenate([x.numpy() for x, _ in val]), data.x_val)


def _go_on(_epoch: int, _metrics: Mapping[str, float]) -> Decision:
    return Decision.CONTINUE


def _run(data: Dataset, params: dict[str, Any], seed: int, *, pipelines: PipelineCache | None,
         models: ModelCache | None = None, spe: int | None = None) -> TrialResult:
    seed_everything(seed)
    r = run_trial(params, data, objectives=OBJECTIVES, max_epochs=3, on_epoch=_go_on,
                  execution=ExecutionOptions(steps_per_execution=spe),
                  model_cache=models, pipelines=pipelines)
    clear_session()  # as the worker does between trials
    return r


def test_cached_pipelines_give_exactly_a_fresh_trials_results(data: Dataset) -> None:
    pipes, models = PipelineCache(), ModelCache()
    first = _run(data, {**PARAMS, "learning_rate": 0.01}, 21, pipelines=pipes, models=models)
    assert first.outcome is Outcome.COMPLETE
    second_params = {**PARAMS, "learning_rate": 0.003}
    cached = _run(data, second_params, 22, pipelines=pipes, models=models)
    assert pipes.hits == 1 and models.hits == 1  # both the pipelines and the model reused
    fresh = _run(data, second_params, 22, pipelines=None)
    assert cached.history == fresh.history  # bit for bit
    assert cached.values == fresh.values
    assert _run(data, second_params, 22, pipelines=None).history == fresh.history
    other_seed = _run(data, second_params, 23, pipelines=pipes)
    assert other_seed.history != fresh.history  # the seed reaches the order


def test_several_batches_per_call_are_fed_from_arrays(data: Dataset) -> None:
    pipes = PipelineCache()
    r = _run(data, PARAMS, 3, pipelines=pipes, spe=4)
    assert r.outcome is Outcome.COMPLETE and len(pipes) == 0
    _run(data, PARAMS, 3, pipelines=pipes, spe=1)
    assert len(pipes) == 1
