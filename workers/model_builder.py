"""Build a compiled Keras model from a (possibly partial) set of vocabulary hyperparameters.

With no hyperparameters at all, on a (32, 32, 3) input with 10 classes, :func:`build_model`
rebuilds the seed CIFAR-10 model exactly (1,229,102 parameters, 1,227,310 trainable)::

    Input -> [Conv2D -> BatchNorm -> ReLU] x2 -> MaxPooling2D(2)   (64 filters)
          -> [Conv2D -> BatchNorm -> ReLU] x2 -> MaxPooling2D(2)   (128 filters)
          -> [Conv2D -> BatchNorm -> ReLU] x2 -> MaxPooling2D(2)   (256 filters)
          -> GlobalAveragePooling2D -> Dropout(0.5) -> Dense(300, relu) -> Dropout(0.5)
          -> Dense(10, softmax)

Decisions worth knowing:

* **Residual blocks** (``residual=True``): the shortcut starts at the block's input and joins
  the main path after the block's last convolution (and its batch norm), *before* that
  convolution's activation and before the block's max-pooling -- ResNet v1 style,
  ``act(BN(conv(...)) + shortcut)``. When the channel count changes or the last convolution
  has stride 2 (``downsample="stride"``) the shortcut is a 1x1 convolution with the same stride
  (followed by batch norm when ``batch_norm`` is on); otherwise it is the identity.
* **Too-small images**: every block halves the spatial size (floor for max-pooling, ceil for
  stride 2). When ``conv_blocks`` asks for more halvings than fit (the smaller side must be at
  least 2 before each halving) :func:`build_model` raises :class:`ModelConfigError` (a
  ``ValueError``) such as "conv_blocks=4 halves 8x8 inputs 4 times; at most 3 fit" instead of
  failing deep inside Keras. :func:`max_conv_blocks` tells how many fit.
* **Tabular (rank-1) inputs** build an MLP whatever ``conv_blocks`` says: the convolution,
  head and augmentation hyperparameters are ignored for them. Rank-2 inputs ``(H, W)`` are
  treated as one-channel images (a ``Reshape`` adds the channel axis).
* **Label smoothing**: ``keras.losses.SparseCategoricalCrossentropy`` has no
  ``label_smoothing`` argument in Keras 3, so multi-class smoothing uses
  :class:`SmoothedSparseCategoricalCrossentropy`, which one-hots the integer labels and calls
  ``categorical_crossentropy(label_smoothing=...)``. Binary problems use
  ``BinaryCrossentropy(label_smoothing=...)``.
* **Mixed precision**: every layer but the output layer gets ``dtype="mixed_float16"`` (no
  global policy is touched, so building is thread-safe); the output ``Dense`` is float32 and
  the optimizer is wrapped in a ``LossScaleOptimizer``. Augmentation layers stay float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from search_spaces.vocabulary import ACTIVATIONS, effective_learning_rate, with_defaults

__all__ = [
    "ModelConfigError",
    "SmoothedSparseCategoricalCrossentropy",
    "build_loss",
    "build_model",
    "build_optimizer",
    "max_conv_blocks",
]

MIXED_POLICY = "mixed_float16"
OUTPUT_INITIALIZER = "glorot_normal"
_FLIP_MODES = {
    "horizontal": "horizontal",
    "vertical": "vertical",
    "both": "horizontal_and_vertical",
}


class ModelConfigError(ValueError):
    """The hyperparameters cannot build a model for this input (e.g. too many downsamplings)."""


@keras.saving.register_keras_serializable(package="tuner_workers")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse (integer-label) categorical cross-entropy with label smoothing.

    The integer labels are one-hot encoded to ``n_classes`` columns and smoothed to
    ``y * (1 - label_smoothing) + label_smoothing / n_classes``.
    """

    def __init__(
        self,
        n_classes: int,
        label_smoothing: float = 0.0,
        name: str = "smoothed_sparse_categorical_crossentropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.n_classes = int(n_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(labels, self.n_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"n_classes": self.n_classes, "label_smoothing": self.label_smoothing})
        return config


# --------------------------------------------------------------------------- training setup


def build_optimizer(params: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    """The optimizer named by ``optimizer`` with the effective learning rate (``learning_rate``
    scaled by ``lr_scaling``, :func:`search_spaces.vocabulary.effective_learning_rate`) and
    ``momentum`` for sgd/rmsprop, ``beta_1`` for adam/adamw/nadam."""
    p = with_defaults(params)
    name = p["optimizer"]
    lr = effective_learning_rate(p)
    momentum = float(p["momentum"])
    beta_1 = float(p["beta_1"])
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=beta_1)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, beta_1=beta_1)
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=lr, beta_1=beta_1)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, momentum=momentum)
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=lr)
    raise ModelConfigError(f"unknown optimizer {name!r}")


def build_loss(params: Mapping[str, Any], n_classes: int) -> keras.losses.Loss:
    """Binary cross-entropy for two classes (one sigmoid unit), sparse categorical
    cross-entropy otherwise; both honour ``label_smoothing``."""
    p = with_defaults(params)
    smoothing = float(p["label_smoothing"])
    if n_classes < 2:
        raise ModelConfigError(f"n_classes must be at least 2, got {n_classes}")
    if n_classes == 2:
        return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
    if smoothing > 0:
        return SmoothedSparseCategoricalCrossentropy(n_classes, label_smoothing=smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


# --------------------------------------------------------------------------- architecture


def _halvings_that_fit(size: int) -> int:
    count = 0
    while size >= 2:
        size //= 2
        count += 1
    return count


def max_conv_blocks(input_shape: tuple[int, ...]) -> int:
    """How many downsampling conv blocks an image input of this shape allows (rank-1: 0)."""
    if len(input_shape) < 2:
        return 0
    return _halvings_that_fit(min(int(input_shape[0]), int(input_shape[1])))


def _regularizer(p: Mapping[str, Any]) -> keras.regularizers.Regularizer | None:
    kind = p["regularizer"]
    strength = float(p["regularization"])
    if kind == "none":
        return None
    if kind == "l1":
        return keras.regularizers.L1(strength)
    if kind == "l2":
        return keras.regularizers.L2(strength)
    if kind == "l1_l2":
        return keras.regularizers.L1L2(l1=strength, l2=strength)
    raise ModelConfigError(f"unknown regularizer {kind!r}")


class _Builder:
    def __init__(self, p: Mapping[str, Any], mixed_precision: bool) -> None:
        self.p = p
        self.dtype = MIXED_POLICY if mixed_precision else None
        if p["activation"] not in ACTIVATIONS:
            raise ModelConfigError(
                f"unknown activation {p['activation']!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_{self._n}"

    def activation_layer(self) -> keras.layers.Layer:
        act = self.p["activation"]
        if act == "leaky_relu":
            return keras.layers.LeakyReLU(dtype=self.dtype, name=self._name("leaky_relu"))
        return keras.layers.Activation(act, dtype=self.dtype, name=self._name(act))

    def conv(self, filters: int, kernel_size: int, strides: int) -> keras.layers.Layer:
        p = self.p
        init = p["kernel_initializer"]
        if p["conv_type"] == "separable":
            return keras.layers.SeparableConv2D(
                filters, kernel_size, strides=strides, padding="same", use_bias=True,
                depthwise_initializer=init, pointwise_initializer=init,
                depthwise_regularizer=_regularizer(p), pointwise_regularizer=_regularizer(p),
                dtype=self.dtype, name=self._name("sepconv"),
            )
        if p["conv_type"] != "standard":
            raise ModelConfigError(f"unknown conv_type {p['conv_type']!r}")
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", use_bias=True,
            kernel_initializer=init, kernel_regularizer=_regularizer(p),
            dtype=self.dtype, name=self._name("conv"),
        )

    def batch_norm(self) -> keras.layers.Layer:
        return keras.layers.BatchNormalization(dtype=self.dtype, name=self._name("bn"))

    def block(self, x: Any, filters: int) -> Any:
        p = self.p
        n_convs = int(p["convs_per_block"])
        stride_last = p["downsample"] == "stride"
        if p["downsample"] not in ("maxpool", "stride"):
            raise ModelConfigError(f"unknown downsample {p['downsample']!r}")
        block_input = x
        for i in range(n_convs):
            last = i == n_convs - 1
            strides = 2 if (last and stride_last) else 1
            x = self.conv(filters, int(p["kernel_size"]), strides)(x)
            if p["batch_norm"]:
                x = self.batch_norm()(x)
            if last and p["residual"]:
                shortcut = block_input
                in_channels = int(block_input.shape[-1])
                if in_channels != filters or strides != 1:
                    shortcut = keras.layers.Conv2D(
                        filters, 1, strides=strides, padding="same", use_bias=True,
                        kernel_initializer=p["kernel_initializer"],
                        kernel_regularizer=_regularizer(p),
                        dtype=self.dtype, name=self._name("shortcut_conv"),
                    )(shortcut)
                    if p["batch_norm"]:
                        shortcut = self.batch_norm()(shortcut)
                x = keras.layers.Add(dtype=self.dtype, name=self._name("add"))([x, shortcut])
            x = self.activation_layer()(x)
        if not stride_last:
            x = keras.layers.MaxPooling2D(2, dtype=self.dtype, name=self._name("maxpool"))(x)
        return x

    def augmentation(self, x: Any) -> Any:
        p = self.p
        flip = p["augment_flip"]
        if flip != "none":
            if flip not in _FLIP_MODES:
                raise ModelConfigError(f"unknown augment_flip {flip!r}")
            x = keras.layers.RandomFlip(_FLIP_MODES[flip], name="augment_flip")(x)
        if float(p["augment_rotation"]) > 0:
            x = keras.layers.RandomRotation(
                float(p["augment_rotation"]), name="augment_rotation"
            )(x)
        if float(p["augment_zoom"]) > 0:
            x = keras.layers.RandomZoom(float(p["augment_zoom"]), name="augment_zoom")(x)
        if float(p["augment_translation"]) > 0:
            t = float(p["augment_translation"])
            x = keras.layers.RandomTranslation(t, t, name="augment_translation")(x)
        if float(p["augment_contrast"]) > 0:
            # The workers' images are scaled to [0, 1] (RandomContrast assumes 0..255 otherwise).
            x = keras.layers.RandomContrast(
                float(p["augment_contrast"]), value_range=(0.0, 1.0), name="augment_contrast"
            )(x)
        return x

    def dense_head(self, x: Any, n_classes: int) -> Any:
        p = self.p
        rate = float(p["dropout"])
        act = p["activation"]
        for _ in range(int(p["dense_layers"])):
            if rate > 0:
                x = keras.layers.Dropout(rate, dtype=self.dtype, name=self._name("dropout"))(x)
            x = keras.layers.Dense(
                int(p["dense_units"]), activation=act,
                kernel_initializer=p["kernel_initializer"], kernel_regularizer=_regularizer(p),
                dtype=self.dtype, name=self._name("dense"),
            )(x)
        if rate > 0:
            x = keras.layers.Dropout(rate, dtype=self.dtype, name=self._name("dropout"))(x)
        units, out_act = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
        return keras.layers.Dense(
            units, activation=out_act, kernel_initializer=OUTPUT_INITIALIZER,
            dtype="float32", name="output",
        )(x)


def build_model(
    params: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    mixed_precision: bool = False,
) -> keras.Model:
    """A compiled model for ``input_shape`` inputs and ``n_classes`` classes.

    ``params`` may name any subset of the vocabulary; the rest take their defaults.

    Raises:
        ModelConfigError: (a ``ValueError``) for inputs the hyperparameters cannot handle,
            e.g. more downsampling blocks than the image size allows.
    """
    p = with_defaults(params)
    shape = tuple(int(d) for d in input_shape)
    if not shape or len(shape) > 3 or any(d < 1 for d in shape):
        raise ModelConfigError(
            f"input_shape must be (features,), (height, width) or (height, width, channels), "
            f"got {tuple(input_shape)}"
        )
    if int(n_classes) < 2:
        raise ModelConfigError(f"n_classes must be at least 2, got {n_classes}")
    image = len(shape) >= 2
    conv_blocks = int(p["conv_blocks"]) if image else 0
    if image and conv_blocks > 0:
        fit = max_conv_blocks(shape)
        if conv_blocks > fit:
            raise ModelConfigError(
                f"conv_blocks={conv_blocks} halves {shape[0]}x{shape[1]} inputs "
                f"{conv_blocks} times; at most {fit} fit"
            )

    b = _Builder(p, mixed_precision)
    inputs = keras.Input(shape=shape, name="input")
    x = inputs
    if len(shape) == 2:
        x = keras.layers.Reshape((*shape, 1), name="add_channel")(x)
    if image:
        x = b.augmentation(x)
    if conv_blocks > 0:
        filters = int(p["filters"])
        for i in range(conv_blocks):
            x = b.block(x, filters * 2**i)
        if p["head"] == "gap":
            x = keras.layers.GlobalAveragePooling2D(dtype=b.dtype, name="gap")(x)
        elif p["head"] == "flatten":
            x = keras.layers.Flatten(dtype=b.dtype, name="flatten")(x)
        else:
            raise ModelConfigError(f"unknown head {p['head']!r}")
    elif image:
        x = keras.layers.Flatten(dtype=b.dtype, name="flatten")(x)
    outputs = b.dense_head(x, int(n_classes))

    model = keras.Model(inputs, outputs, name="tuned_cnn" if conv_blocks else "tuned_mlp")
    optimizer: keras.optimizers.Optimizer = build_optimizer(p)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=build_loss(p, int(n_classes)), metrics=["accuracy"])
    return model
