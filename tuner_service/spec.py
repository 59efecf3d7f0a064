"""The study spec: what a user posts to ``POST /studies`` (or ``tuner-service submit``).

Pydantic models at the edge. The search space itself is validated by :mod:`search_spaces`, which
lists every problem with its JSON path; :class:`StudySpec` parses it in the same validation pass
as its other fields (its problems join pydantic's, so that one request reports everything that is
wrong) and keeps the parsed space (:meth:`StudySpec.space`). FastAPI's request body and
:func:`parse_study_spec` are the same validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from search_spaces import SearchSpace, SearchSpaceError, parse_space, search_space_json_schema

from .engines import (
    EngineOptionsField,
    OptunaEngineSpec,
    get_engine,
)
from .errors import Problem, SpecError
from .pydantic_problems import problems_of, with_problems

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

# Limits that keep one request from asking for something unreasonable (clear 422 instead).
MAX_DATASET_BYTES = 4 * 2**30  # a dataset's float32 inputs, estimated from the spec
MAX_IMAGE_PIXELS = 4096 * 4096  # image_folder: one resized image
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
        too_big = self.memory_problem()
        if too_big:
            raise ValueError(too_big)
        return self

    def memory_problem(self) -> str | None:
        """Why a worker could not hold this dataset's inputs (float32) in memory, from the
        sizes the spec gives, before any worker loads it; None when it fits."""
        if self.name == "synthetic" and self.shape:
            n, dims, what = self.n_samples or 600, self.shape, "shape x n_samples"
        elif self.name == "image_folder" and self.image_size:
            height, width = self.image_size
            if height * width > MAX_IMAGE_PIXELS:
                return (f"image_size {height}x{width} is over {MAX_IMAGE_PIXELS:,} pixels per "
                        "image")
            n, dims, what = self.max_samples or 1, (height, width, 3), "image_size x max_samples"
        else:
            return None
        need = n * math.prod(int(d) for d in dims) * 4
        if need <= MAX_DATASET_BYTES:
            return None
        return (f"{what}: {n:,} samples of {'x'.join(map(str, dims))} float32 inputs need about "
                f"{need / 2**30:,.1f} GiB, over the {MAX_DATASET_BYTES // 2**30} GiB a worker "
                "loads")


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


class BudgetSpec(_Strict):
    n_trials: int = Field(20, ge=1, le=MAX_TRIALS, description="Finished trials the study runs.")
    max_epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="Epochs of one trial at most.")
    max_parallel: int = Field(
        1, ge=1, le=MAX_PARALLEL, description="Trials of this study running at once at most."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Hand out no new trial after this many seconds of running."
    )
    max_device_hours: float | None = Field(
        None,
        gt=0,
        description="Hand out no new trial once the study's trials have recorded this much "
        "device time (hours, summed over trials); running trials finish and the study "
        "completes with the reason 'device-hour budget reached'.",
    )


ENSEMBLE_METHODS = ("mean", "weighted", "greedy")


class EnsembleSpec(_Strict):
    """The ensemble of the study's best trials, built when the study completes."""

    size: int = Field(
        5, ge=0, le=20, description="Members at most (best trials, distinct architectures "
        "first); 0 builds no ensemble."
    )
    method: Literal[ENSEMBLE_METHODS] = Field(  # type: ignore[valid-type]
        "weighted",
        description="mean: equal weights; weighted: Nelder-Mead on the validation log-loss; "
        "greedy: Caruana's ensemble selection with replacement.",
    )
    keep_models: Literal["top", "all"] = Field(
        "top",
        description="Which trials' models workers keep: 'top' the current candidate members "
        "(and the best), dropping the models of trials that fall out; 'all' every completed "
        "trial's.",
    )


#: The search-space language's JSON Schema, as the spec's ``search_space`` field shows it (in
#: the OpenAPI document too; a sub-schema, so without its own ``$schema``).
_SEARCH_SPACE_SCHEMA = {k: v for k, v in search_space_json_schema().items() if k != "$schema"}


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
    engine: EngineOptionsField = Field(
        default_factory=OptunaEngineSpec,
        description="The engine that picks each trial's parameters, chosen by 'kind' "
        "(default optuna).",
    )
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec())
    ensemble: EnsembleSpec = Field(
        default_factory=lambda: EnsembleSpec(),
        description="Ensemble of the best trials (default: 5 members, weighted); built for "
        "single-objective studies of engines that keep models.",
    )
    search_space: Annotated[dict[str, Any], WithJsonSchema(_SEARCH_SPACE_SCHEMA)] = Field(
        default_factory=dict
    )
    seed: int | None = Field(None, ge=0, description="Seed of the sampler and of model weights.")
    description: str | None = Field(None, max_length=10_000)
    _space: SearchSpace = PrivateAttr(default_factory=SearchSpace)

    @model_validator(mode="wrap")
    @classmethod
    def _parse_search_space(
        cls, data: Any, handler: ModelWrapValidatorHandler[StudySpec]
    ) -> StudySpec:
        """Parse the search space once, in the same pass as the other fields: its problems
        (each with its path under ``search_space``) join pydantic's, and the parsed space stays
        on the spec. An existing StudySpec passes as it is."""
        raw = data.get("search_space", {}) if isinstance(data, Mapping) else None
        space: SearchSpace | None = None
        problems: list[Problem] = []
        if isinstance(raw, Mapping):  # anything else is pydantic's to report
            try:
                space = parse_space(raw)
            except SearchSpaceError as exc:
                problems = exc.problems
        errors: list[ErrorDetails] = []
        try:
            spec = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            errors = exc.errors()
        if problems:
            raise with_problems(
                cls.__name__, errors, problems, prefix=("search_space",), data=raw
            ) from None
        if space is not None:
            spec._space = space
        return spec

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
        """The search space, parsed when the spec was validated."""
        return self._space


def parse_study_spec(raw: Mapping[str, Any] | StudySpec) -> StudySpec:
    """Validate a spec (pydantic's fields and the search space in one pass), then the checks
    that need the whole valid spec (the engine's); every problem in one error. A StudySpec
    (FastAPI's request body) is not validated again: only the engine's checks run.

    Raises:
        SpecError: listing each problem with its JSON path.
    """
    problems: list[Problem] = []
    spec: StudySpec | None = None
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        problems = problems_of(exc)
    if spec is not None and not problems:
        problems.extend(get_engine(spec.engine.kind).problems(spec))
    if problems:
        raise SpecError(problems)
    assert spec is not None
    return spec
