"""The study spec: what a user posts to ``POST /studies`` (or ``tuner-service submit``).

Pydantic models at the edge. The search space itself is validated by :mod:`search_spaces`, which
lists every problem with its JSON path; :func:`parse_study_spec` merges those problems with
pydantic's own so that one request reports everything that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from search_spaces import SearchSpace, SearchSpaceError, parse_space, search_space_json_schema

from .errors import Problem, SpecError

BUNDLED_DATASETS = ("digits", "breast_cancer", "iris", "wine")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
FILE_DATASETS = ("npz", "image_folder")
DATASET_NAMES = (*BUNDLED_DATASETS, *KERAS_DATASETS, *FILE_DATASETS, "synthetic")

#: Metrics a study can optimise. ``params`` is the model's parameter count.
OBJECTIVE_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss", "params")
_DEFAULT_DIRECTION = {
    "val_accuracy": "maximize",
    "accuracy": "maximize",
    "val_loss": "minimize",
    "loss": "minimize",
    "params": "minimize",
}

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid", "nsga2")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon", "patient")

# Limits that keep one request from asking for something unreasonable (clear 422 instead).
MAX_TRIALS = 100_000
MAX_PARALLEL = 1024
MAX_EPOCHS = 10_000


class _Strict(BaseModel):
    # strict: no coercion (``false`` or ``"3"`` is not an integer), as the published schema says;
    # JSON arrays still fill tuple fields (``Field(strict=False)`` there).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_SYNTHETIC_ONLY = ("shape", "n_classes", "n_samples")


class DatasetSpec(_Strict):
    """Which data a study trains on, and how it is split.

    ``validation_split`` of the training data is held out for the objective; ``test_split`` is
    used only for datasets that ship no test split of their own, and the test split is touched
    once, to evaluate the best trial.
    """

    # The rules between fields that JSON Schema can state, so that the published schema
    # admits no body that _check_fields refuses for them.
    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"properties": {"name": {"enum": list(FILE_DATASETS)}}},
         "then": {"required": ["path"], "properties": {"path": {"type": "string", "minLength": 1}}},
         "else": {"properties": {"path": {"type": "null"}}}},
        {"if": {"properties": {"name": {"const": "synthetic"}}},
         "else": {"properties": {f: {"type": "null"} for f in _SYNTHETIC_ONLY}}},
    ]})

    name: Literal[DATASET_NAMES] = Field(  # type: ignore[valid-type]
        description="Dataset name: " + ", ".join(DATASET_NAMES) + "."
    )
    validation_split: float = Field(0.2, gt=0.0, lt=1.0)
    test_split: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, description="Seed of the train/validation(/test) split.")
    path: str | None = Field(
        None, description="npz file or image folder, relative to the workers' TUNER_DATA_ROOT."
    )
    image_size: tuple[int, int] | None = Field(
        None,
        strict=False,
        description="image_folder: resize images to (height, width); default 64x64.",
    )
    shape: tuple[int, ...] | None = Field(
        None,
        strict=False,
        description="synthetic: input shape, e.g. [16, 16, 3] (images) or [8] (tabular).",
    )
    n_classes: int | None = Field(None, ge=2, le=1000, description="synthetic: number of classes.")
    n_samples: int | None = Field(
        None, ge=10, le=1_000_000, description="synthetic: number of samples (default 600)."
    )
    max_samples: int | None = Field(
        None, ge=10, description="Use at most this many training samples (a deterministic subset)."
    )

    @model_validator(mode="after")
    def _check_fields(self) -> DatasetSpec:
        if self.name in FILE_DATASETS and not self.path:
            raise ValueError(f"dataset '{self.name}' needs a 'path' under the data root")
        if self.name not in FILE_DATASETS and self.path is not None:
            raise ValueError(
                f"'path' is only for the npz and image_folder datasets, not '{self.name}'"
            )
        if self.name != "synthetic":
            given = [f for f in _SYNTHETIC_ONLY if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for the synthetic dataset")
        if self.validation_split + self.test_split >= 0.9:
            raise ValueError("validation_split + test_split must leave at least 10% for training")
        return self


class ObjectiveSpec(_Strict):
    metric: Literal[OBJECTIVE_METRICS] = Field(  # type: ignore[valid-type]
        "val_accuracy", description="Metric to optimise: " + ", ".join(OBJECTIVE_METRICS) + "."
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="Defaults to maximize for accuracies, minimize for losses and params."
    )

    @property
    def resolved_direction(self) -> str:
        return self.direction or _DEFAULT_DIRECTION[self.metric]


class OptunaEngineSpec(_Strict):
    kind: Literal["optuna"] = "optuna"
    sampler: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    pruner: Literal[PRUNERS] = "median"  # type: ignore[valid-type]
    pruner_options: dict[str, Any] = Field(default_factory=dict)


KT_ALGORITHMS = ("random", "bayesian", "hyperband", "grid")
#: Keras Tuner oracle options a study may set, per algorithm, with a check of each value (the
#: objective, max_trials, max_epochs, seed and hyperparameters come from the study spec).
_KT_COMMON_OPTIONS = ("max_retries_per_trial", "max_consecutive_failed_trials")
KT_OPTIONS: dict[str, tuple[str, ...]] = {
    "random": _KT_COMMON_OPTIONS,
    "bayesian": ("num_initial_points", "alpha", "beta", *_KT_COMMON_OPTIONS),
    "hyperband": ("factor", "hyperband_iterations", *_KT_COMMON_OPTIONS),
    "grid": _KT_COMMON_OPTIONS,
}
_KT_OPTION_CHECKS: dict[str, tuple[str, Any]] = {
    "num_initial_points": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "alpha": ("a number > 0", lambda v: _is_num(v) and v > 0),
    "beta": ("a number >= 0", lambda v: _is_num(v) and v >= 0),
    "factor": ("an integer >= 2", lambda v: _is_int(v) and v >= 2),
    "hyperband_iterations": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "max_retries_per_trial": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "max_consecutive_failed_trials": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


class KerasTunerEngineSpec(_Strict):
    """A Keras Tuner oracle decides every trial; its state lives in the service database."""

    kind: Literal["keras_tuner"]
    algorithm: Literal[KT_ALGORITHMS] = "random"  # type: ignore[valid-type]
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Oracle options: bayesian num_initial_points, alpha, beta; hyperband factor, "
        "hyperband_iterations; any: max_retries_per_trial, max_consecutive_failed_trials.",
    )


class SklearnGridEngineSpec(_Strict):
    """scikeras ``KerasClassifier`` + scikit-learn cross-validation over every grid point, like
    ``GridSearchCV(estimator, param_grid, cv=cv, scoring=scoring)``."""

    kind: Literal["sklearn_grid"]
    cv: int = Field(3, ge=2, le=100, description="Folds (StratifiedKFold for classifiers).")
    scoring: str = Field(
        "accuracy", min_length=1, max_length=100, description="A scikit-learn scorer name."
    )


EngineSpec = Annotated[
    OptunaEngineSpec | KerasTunerEngineSpec | SklearnGridEngineSpec,
    Field(discriminator="kind"),
]


class BudgetSpec(_Strict):
    n_trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Finished trials the study runs.")
    max_epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Epochs of one trial at most.")
    max_parallel: int = Field(
        1, ge=1, le=MAX_PARALLEL, description="Trials of this study running at once at most."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Hand out no new trial after this many seconds of running."
    )


class StudySpec(_Strict):
    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Unique study name (letters, digits, '_', '.', '-').",
    )
    dataset: DatasetSpec
    objective: ObjectiveSpec | Annotated[list[ObjectiveSpec], Field(min_length=1)] = Field(
        default_factory=lambda: ObjectiveSpec()
    )
    engine: EngineSpec = Field(default_factory=OptunaEngineSpec)
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec())
    search_space: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"$comment": "See the SearchSpace schema in docs/search-space.md."},
    )
    seed: int | None = Field(None, ge=0, description="Seed of the sampler and of model weights.")
    description: str | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _check_objectives(self) -> StudySpec:
        objectives = self.objectives
        if not objectives:
            raise ValueError("objective: give at least one objective")
        metrics = [o.metric for o in objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError("objective: each metric may appear once")
        return self

    @property
    def objectives(self) -> list[ObjectiveSpec]:
        return self.objective if isinstance(self.objective, list) else [self.objective]

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction for o in self.objectives]

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def space(self) -> SearchSpace:
        """The parsed search space (already validated by :func:`parse_study_spec`)."""
        return parse_space(self.search_space)


def _loc(parts: tuple[int | str, ...]) -> tuple[str | int, ...]:
    return tuple(parts)


def parse_study_spec(raw: Mapping[str, Any]) -> StudySpec:
    """Validate a raw spec; every problem (pydantic's and the search space's) in one error.

    Raises:
        SpecError: listing each problem with its JSON path.
    """
    problems: list[Problem] = []
    spec: StudySpec | None = None
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.append(Problem(_loc(tuple(err["loc"])), err["msg"], err["type"]))
    space_raw = raw.get("search_space", {}) if isinstance(raw, Mapping) else {}
    if isinstance(space_raw, Mapping):
        try:
            parse_space(space_raw)
        except SearchSpaceError as exc:
            for p in exc.problems:
                problems.append(Problem(("search_space", *p.path), p.message, p.code))
    if spec is not None and not problems:
        problems.extend(engine_spec_problems(spec))
    if problems:
        raise SpecError(problems)
    assert spec is not None
    return spec


def engine_spec_problems(spec: StudySpec) -> list[Problem]:
    """Problems of the Keras Tuner and grid engines that pydantic's types cannot see (checked
    without importing TensorFlow, Keras Tuner or scikeras)."""
    engine = spec.engine
    problems: list[Problem] = []
    if isinstance(engine, OptunaEngineSpec):
        return problems
    objectives = spec.objectives
    if len(objectives) > 1:
        problems.append(
            Problem(("objective",), f"engine '{engine.kind}' optimises one objective", "engine")
        )
    if isinstance(engine, KerasTunerEngineSpec):
        if objectives[0].metric == "params":
            problems.append(
                Problem(("objective", "metric"), "keras_tuner needs a training metric", "engine")
            )
        allowed = KT_OPTIONS[engine.algorithm]
        for name, value in engine.options.items():
            where = ("engine", "options", name)
            if name not in allowed:
                problems.append(
                    Problem(
                        where,
                        f"not an option of the '{engine.algorithm}' oracle "
                        f"(allowed: {', '.join(allowed)})",
                        "engine_options",
                    )
                )
                continue
            what, ok = _KT_OPTION_CHECKS[name]
            if not ok(value):
                problems.append(Problem(where, f"must be {what}, got {value!r}", "engine_options"))
    if isinstance(engine, SklearnGridEngineSpec):
        if objectives[0].resolved_direction != "maximize":
            problems.append(
                Problem(
                    ("objective", "direction"),
                    "sklearn_grid ranks grid points by the mean cross-validation score "
                    "(greater is better): the direction must be 'maximize'",
                    "engine",
                )
            )
        try:  # scikit-learn is a worker dependency: check the name where it is installed
            from sklearn.metrics import get_scorer_names
        except ImportError:
            pass
        else:
            if engine.scoring not in get_scorer_names():
                problems.append(
                    Problem(
                        ("engine", "scoring"),
                        f"{engine.scoring!r} is not a scikit-learn scorer name",
                        "engine_options",
                    )
                )
    if isinstance(engine, SklearnGridEngineSpec) or engine.algorithm == "grid":
        try:
            size = spec.space().grid_size()
        except SearchSpaceError as exc:
            for p in exc.problems:
                problems.append(Problem(("search_space", *p.path), p.message, p.code))
        else:
            if isinstance(engine, SklearnGridEngineSpec) and spec.budget.n_trials > size:
                problems.append(
                    Problem(
                        ("budget", "n_trials"),
                        f"the grid has {size} points; n_trials ({spec.budget.n_trials}) "
                        "cannot exceed it (set it to the grid size to run every point)",
                        "grid_too_small",
                    )
                )
    return problems


def study_spec_json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, with the search space's own schema in place."""
    schema = StudySpec.model_json_schema()
    schema["properties"]["search_space"] = search_space_json_schema()
    return schema
