"""What can be tuned: the hyperparameter vocabulary, the search-space language and its
conversions (Optuna define-by-run sampling, scikit-learn parameter grids).

Modules: :mod:`~search_spaces.vocabulary` (the names), :mod:`~search_spaces.dimensions` (one
dimension each), :mod:`~search_spaces.space` (the parsed space), :mod:`~search_spaces.parsing`
and :mod:`~search_spaces.conditions` (raw JSON -> space, every problem with its path),
:mod:`~search_spaces.schema` (the JSON Schema), :mod:`~search_spaces.presets`.

Pure definitions: this package imports nothing from TensorFlow, Keras, a database or the network.
"""

from .dimensions import Dimension
from .parsing import parse_space, validate_space
from .problems import Problem, SearchSpaceError
from .schema import search_space_json_schema
from .space import SearchSpace
from .vocabulary import DEFAULTS, VOCABULARY, HyperParameter, defaults, with_defaults

__all__ = [
    "DEFAULTS",
    "VOCABULARY",
    "Dimension",
    "HyperParameter",
    "Problem",
    "SearchSpace",
    "SearchSpaceError",
    "defaults",
    "parse_space",
    "search_space_json_schema",
    "validate_space",
    "with_defaults",
]
