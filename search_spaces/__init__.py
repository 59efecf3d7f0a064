"""What can be tuned: the hyperparameter vocabulary, the search-space language and its
conversions (Optuna define-by-run sampling, scikit-learn parameter grids).

Pure definitions: this package imports nothing from TensorFlow, Keras, a database or the network.
"""

from .problems import Problem, SearchSpaceError
from .space import (
    Dimension,
    SearchSpace,
    parse_space,
    search_space_json_schema,
    validate_space,
)
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
