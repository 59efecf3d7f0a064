"""A Python client of the REST API, for notebooks and scripts (sync, httpx).

```python
from tuner_service.client import TunerClient

client = TunerClient("http://tuner:8000", token="...")
study = client.submit("examples/digits_optuna.json")
study.wait()                      # a progress bar until the study (and its evaluation) ends
study.best()
study.download_model("best.keras")
study.ensemble()                  # members, weights, metrics next to the best trial (or None)
study.download_ensemble("ensemble.keras")
study.build_ensemble(size=3, method="greedy")   # again, another way; then study.wait()
df = study.trials_dataframe()     # needs pandas
```

Results are the API's own response models (:mod:`tuner_service.api.schemas`). An error
response raises :class:`ApiError` (or a subclass per status); a 422 carries the list of
problems, each with its JSON path, in :attr:`ApiError.problems`.
"""

from .api import Study, TunerClient
from .ensemble import EnsembleInfo
from .errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from .progress import in_notebook

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "EnsembleInfo",
    "NotFoundError",
    "Study",
    "TunerClient",
    "ValidationError",
    "in_notebook",
]
