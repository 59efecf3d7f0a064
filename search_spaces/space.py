"""The parsed search space: its dimensions in dependency order, sampling, resolution of a
parameter set, validation of a user-given configuration, parameter grids and the JSON form.

Build one with :func:`search_spaces.parse_space`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .dimensions import Dimension, FixedDimension, TrialLike
from .problems import Problem, SearchSpaceError
from .values import canonical, did_you_mean
from .vocabulary import VOCABULARY, defaults

__all__ = ["SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its dimensions, dependencies before dependants.

    Build one with :func:`parse_space`. ``SearchSpace()`` is the empty space (every
    hyperparameter at its default).
    """

    dimensions: tuple[Dimension, ...] = ()
    _index: Mapping[str, Dimension] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {d.name: d for d in self.dimensions})

    # --- container protocol -----------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Dimension:
        return self._index[name]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    # --- values -------------------------------------------------------------------------------

    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """Sample a full parameter set, define-by-run (e.g. with an ``optuna.Trial``).

        Only active, non-fixed dimensions are suggested; fixed dimensions take their value,
        inactive ones and every hyperparameter outside the space their default.
        """
        params = defaults()
        for dim in self.dimensions:
            if dim.is_active(params):
                params[dim.name] = canonical(dim.hyperparameter, dim.suggest(trial))
        return params

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full parameter set for the values ``params`` gives the space's dimensions.

        Missing values take their default, fixed dimensions their value, inactive conditionals
        their default; values for names outside the space are ignored (such hyperparameters
        always take their default). No validation: see :meth:`validate_params`.
        """
        full = defaults()
        for dim in self.dimensions:
            if not dim.is_active(full):
                continue
            if isinstance(dim, FixedDimension):
                full[dim.name] = dim.value
            elif dim.name in params:
                full[dim.name] = canonical(dim.hyperparameter, params[dim.name])
        return full

    def active_names(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The dimensions active for ``params`` (resolved first)."""
        full = self.resolve(params)
        return tuple(d.name for d in self.dimensions if d.is_active(full))

    def validate_params(self, params: Any) -> list[Problem]:
        """Every problem of a user-given configuration (a warm start) for this space.

        Only hyperparameters of the space may be named; each value must lie in its dimension;
        every active, non-fixed dimension must be given (inactive ones may be left out, and a
        value given for an inactive one is ignored). Paths are relative to ``params``.
        """
        if not isinstance(params, Mapping):
            return [Problem((), "the parameters must be a JSON object", "not_an_object")]
        problems: list[Problem] = []
        good: dict[str, Any] = {}
        for name, value in params.items():
            if not isinstance(name, str) or name not in VOCABULARY:
                problems.append(
                    Problem(
                        (str(name),),
                        f"unknown hyperparameter '{name}'" + did_you_mean(str(name), self.names),
                        "unknown_name",
                    )
                )
                continue
            if name not in self._index:
                problems.append(
                    Problem(
                        (name,),
                        f"'{name}' is not in the search space; only its hyperparameters "
                        f"({', '.join(self.names) or 'none'}) may be given",
                        "not_in_space",
                    )
                )
                continue
            issue = self._index[name].value_problem(value)
            if issue is not None:
                problems.append(Problem((name,), issue[1], issue[0]))
            else:
                good[name] = value
        full = self.resolve(good)
        for dim in self.dimensions:
            if isinstance(dim, FixedDimension) or dim.name in params:
                continue
            if dim.is_active(full):
                problems.append(
                    Problem(
                        (dim.name,),
                        f"missing a value for '{dim.name}', which is in the search space"
                        + (" and active for these parameters" if dim.when else ""),
                        "missing_value",
                    )
                )
        return problems

    # --- grids ------------------------------------------------------------------------------

    def to_param_grid(self) -> dict[str, list[Any]]:
        """A scikit-learn style grid: each dimension's name -> the list of its values.

        Categorical -> its choices; fixed -> ``[value]``; int -> ``low..high`` by ``step``
        (default 1); float -> ``low..high`` by ``step`` (``step`` required). ``log`` dimensions
        and floats without ``step`` cannot be enumerated: SearchSpaceError lists each.

        Conditional dimensions are included like the others: the grid enumerates every
        combination, and :meth:`resolve` applies the conditions to a grid point (inactive
        conditionals fall back to their default, so several grid points may resolve to the
        same parameters; :meth:`grid_points` yields each distinct one once).
        """
        grid: dict[str, list[Any]] = {}
        problems: list[Problem] = []
        for dim in self.dimensions:
            try:
                grid[dim.name] = dim.grid_values()
            except SearchSpaceError as exc:
                problems.extend(exc.problems)
        if problems:
            raise SearchSpaceError(problems)
        return grid

    def grid_size(self) -> int:
        """Points in :meth:`to_param_grid` (the product of its lists' lengths)."""
        return math.prod(len(v) for v in self.to_param_grid().values())

    def grid_points(self) -> Iterator[dict[str, Any]]:
        """Each distinct resolved full parameter set of the grid, in grid order."""
        grid = self.to_param_grid()
        names = list(grid)
        seen: set[tuple[tuple[str, str], ...]] = set()
        for combo in itertools.product(*(grid[n] for n in names)):
            full = self.resolve(dict(zip(names, combo, strict=True)))
            key = tuple((n, repr(full[n])) for n in names)
            if key in seen:
                continue
            seen.add(key)
            yield full

    # --- serialisation ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (parses back to an equal space)."""
        return {d.name: d.to_json() for d in self.dimensions}
