"""Ensembles of a study's best trials.

* :mod:`.selection` -- which trials become members (pure Python);
* :mod:`.weights` -- the members' weights from their validation predictions (NumPy/SciPy):
  ``mean``, ``weighted`` (Nelder-Mead on the validation log-loss) and ``greedy`` (Caruana's
  ensemble selection with replacement);
* :mod:`.export` -- one ``.keras`` model (members + ``Rescaling(w_i)`` + ``Add``) that plain
  ``keras.models.load_model`` opens (Keras is imported there only).
"""

from __future__ import annotations

from .selection import Candidate, architecture_key, select_members
from .weights import METHODS, fit_weights, log_loss, weighted_average

__all__ = [
    "METHODS",
    "Candidate",
    "architecture_key",
    "fit_weights",
    "log_loss",
    "select_members",
    "weighted_average",
]
