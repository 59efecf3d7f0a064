"""``npz``: ``x_train``, ``y_train`` (and optionally ``x_test``, ``y_test``) in one ``.npz`` file
under the data root. uint8 inputs are scaled by /255, float inputs kept; integer labels of any
values are accepted (remapped to ``0..n-1`` by the loading step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Array, DatasetError, RawData, channels_last, confined, scale_images, to_labels


def load_npz(spec: DatasetSpec, data_root: Path | None) -> RawData:
    _, path = confined(data_root, spec.path)
    if not path.is_file():
        raise DatasetError(f"npz file {spec.path!r} not found under the data root ({path})")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = {"x_train", "y_train"} - keys
            if missing:
                raise DatasetError(
                    f"npz file {spec.path!r} lacks {', '.join(sorted(missing))} "
                    f"(has: {', '.join(sorted(keys)) or 'nothing'})"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise DatasetError(
                    f"npz file {spec.path!r}: give both x_test and y_test or neither"
                )
            arrays = {k: np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")
                      if k in keys}
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"npz file {spec.path!r} is corrupt or unreadable ({exc})") from exc

    def inputs(key: str) -> Array:
        x = arrays[key]
        if x.dtype.kind not in "uifb":
            raise DatasetError(f"npz {key}: numeric array expected, got dtype {x.dtype}")
        if x.ndim < 2 or x.ndim > 4:
            raise DatasetError(
                f"npz {key}: shape {x.shape}; expected (n, features), (n, H, W) or (n, H, W, C)"
            )
        x = channels_last(scale_images(x))
        if not np.all(np.isfinite(x)):
            raise DatasetError(f"npz {key}: contains NaN or infinite values")
        return x

    x = inputs("x_train")
    y = to_labels(arrays["y_train"], "npz y_train")
    if len(x) != len(y):
        raise DatasetError(f"npz: x_train has {len(x)} rows but y_train {len(y)}")
    if "x_test" not in arrays:
        return x, y, None, None
    xt = inputs("x_test")
    yt = to_labels(arrays["y_test"], "npz y_test")
    if len(xt) != len(yt):
        raise DatasetError(f"npz: x_test has {len(xt)} rows but y_test {len(yt)}")
    if xt.shape[1:] != x.shape[1:]:
        raise DatasetError(f"npz: x_test samples have shape {xt.shape[1:]}, x_train {x.shape[1:]}")
    return x, y, xt, yt
