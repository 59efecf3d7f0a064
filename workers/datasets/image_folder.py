"""``image_folder``: one sub-folder of images (PNG, JPEG, BMP, GIF; decoded with TensorFlow,
imported only then) per class under the data root, resized (bilinear) to ``spec.image_size``
(default 64x64) and scaled by /255; one channel when every image is grayscale, else RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuner_service.spec import DatasetSpec

from .base import Array, DatasetError, RawData, confined

DEFAULT_IMAGE_SIZE = (64, 64)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _decode_image(path: Path) -> Array:
    """uint8 (H, W, C) array of one image file (decoded by TensorFlow: PNG, JPEG, BMP, GIF)."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(
            tf.io.read_file(str(path)), channels=0, expand_animations=False
        )
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, ValueError) as exc:
        raise DatasetError(f"cannot read {path.name} ({str(exc).splitlines()[0]})") from exc
    return np.asarray(image.numpy(), dtype=np.uint8)


def _resize(images: list[Array], height: int, width: int, gray: bool) -> Array:
    import tensorflow as tf

    out = []
    for im in images:
        channels = im.shape[-1]
        if gray:
            im = im[..., :1]
        elif channels in (1, 2):  # gray (+ alpha) -> RGB
            im = np.repeat(im[..., :1], 3, axis=-1)
        else:  # RGB(A) -> RGB
            im = im[..., :3]
        resized = tf.image.resize(im, (height, width), method="bilinear").numpy()
        out.append(np.clip(resized, 0.0, 255.0) / np.float32(255.0))
    return np.stack(out).astype(np.float32)


def load_image_folder(spec: DatasetSpec, data_root: Path | None) -> RawData:
    root, folder = confined(data_root, spec.path)
    if not folder.is_dir():
        raise DatasetError(f"image folder {spec.path!r} not found under the data root ({folder})")
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"image folder {spec.path!r} needs one sub-folder per class (at least 2), "
            f"found {len(classes)}"
        )
    height, width = spec.image_size or DEFAULT_IMAGE_SIZE
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        found = sorted(
            f for f in cls.iterdir()
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise DatasetError(
                f"image folder {spec.path!r}: class folder {cls.name!r} has no images"
            )
        for f in found:
            real = f.resolve()
            if real != root and root not in real.parents:
                raise DatasetError(f"image {f} links outside the data root {root}")
            files.append((f, label))
    images: list[Array] = []
    for f, _ in files:
        try:
            images.append(_decode_image(f))
        except DatasetError as exc:
            raise DatasetError(f"image folder {spec.path!r}: {exc}") from exc
    gray = all(im.shape[-1] == 1 for im in images)
    x = _resize(images, int(height), int(width), gray)
    y = np.asarray([label for _, label in files])
    return x, y, None, None
