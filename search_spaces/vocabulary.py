"""The tunable vocabulary: every hyperparameter a study may name, its type, default and limits.

The names are public API. With no search space at all, the defaults rebuild the seed CIFAR-10
model (three blocks of two 3x3 convolutions 64/128/256, batch norm before ReLU, he_normal, L2 1e-5,
max-pooling, global average pooling, dropout 0.5, Dense(300), dropout 0.5, softmax head).

Pure data: no I/O, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["int", "float", "bool", "categorical"]
Group = Literal["architecture", "training", "augmentation"]


@dataclass(frozen=True)
class HyperParameter:
    """One entry of the vocabulary.

    ``low``/``high`` bound the values a search space may ask for (inclusive); ``choices`` lists the
    allowed values of a categorical; ``applies_to`` says which values of another hyperparameter
    make this one meaningful (informational: e.g. ``momentum`` only matters for sgd/rmsprop).
    """

    name: str
    kind: Kind
    default: Any
    group: Group
    description: str
    seed_technique: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    high_exclusive: bool = False
    applies_to: Mapping[str, tuple[Any, ...]] | None = None


ACTIVATIONS = ("relu", "elu", "selu", "gelu", "swish", "leaky_relu", "tanh", "sigmoid")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal")
OPTIMIZERS = ("adam", "adamw", "nadam", "sgd", "rmsprop", "adagrad")
ADAM_FAMILY = ("adam", "adamw", "nadam")
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
LR_SCHEDULES = ("constant", "reduce_on_plateau", "cosine", "cosine_restarts")
REGULARIZERS = ("none", "l1", "l2", "l1_l2")
LR_SCALINGS = ("none", "linear", "sqrt")
FLIPS = ("none", "horizontal", "vertical", "both")

_ALL: tuple[HyperParameter, ...] = (
    # --- architecture -----------------------------------------------------------------------
    HyperParameter(
        "conv_blocks", "int", 3, "architecture",
        "Number of convolutional blocks; 0 builds an MLP on the flattened input.",
        "Seed CIFAR-10 model: three conv blocks. Seed grid model: an MLP (0 blocks).",
        low=0, high=8,
    ),
    HyperParameter(
        "convs_per_block", "int", 2, "architecture",
        "Convolutions in each block.", "Seed CIFAR-10 model: two 3x3 convolutions per block.",
        low=1, high=6,
    ),
    HyperParameter(
        "filters", "int", 64, "architecture",
        "Filters of the first block, doubled in each next block.",
        "Seed CIFAR-10 model: 64, 128, 256 filters.",
        low=1, high=1024,
    ),
    HyperParameter(
        "kernel_size", "int", 3, "architecture",
        "Side of the square convolution kernel.", "Seed CIFAR-10 model: 3x3 kernels.",
        low=1, high=11,
    ),
    HyperParameter(
        "conv_type", "categorical", "standard", "architecture",
        "Standard or depthwise-separable convolutions.",
        "Extension: separable convolutions trade accuracy for fewer parameters.",
        choices=("standard", "separable"),
    ),
    HyperParameter(
        "downsample", "categorical", "maxpool", "architecture",
        "How each block halves the spatial size: 2x2 max-pooling, or a stride-2 last convolution.",
        "Seed CIFAR-10 model: max-pooling after each block.",
        choices=("maxpool", "stride"),
    ),
    HyperParameter(
        "residual", "bool", False, "architecture",
        "Add a (1x1-projected) shortcut around each block's convolutions.",
        "Extension: ResNet-style shortcuts.",
    ),
    HyperParameter(
        "batch_norm", "bool", True, "architecture",
        "Batch normalization after each convolution and before its activation.",
        "Seed CIFAR-10 model: Conv -> BatchNorm -> ReLU.",
    ),
    HyperParameter(
        "activation", "categorical", "relu", "architecture",
        "Activation of convolutions and hidden dense layers.",
        "Seed CIFAR-10 model: ReLU. Seed grid: relu/tanh/sigmoid (activation_1).",
        choices=ACTIVATIONS,
    ),
    HyperParameter(
        "kernel_initializer", "categorical", "he_normal", "architecture",
        "Initializer of convolution and hidden dense kernels (the output layer is glorot_normal).",
        "Seed CIFAR-10 model: he_normal.",
        choices=INITIALIZERS,
    ),
    HyperParameter(
        "head", "categorical", "gap", "architecture",
        "How the feature maps reach the dense layers: global average pooling or flatten.",
        "Seed CIFAR-10 model: global average pooling.",
        choices=("gap", "flatten"),
    ),
    HyperParameter(
        "dense_layers", "int", 1, "architecture",
        "Hidden dense layers before the output layer.",
        "Seed CIFAR-10 model: one Dense(300). Seed grid model: two Dense(nodes).",
        low=0, high=8,
    ),
    HyperParameter(
        "dense_units", "int", 300, "architecture",
        "Units of each hidden dense layer.",
        "Seed CIFAR-10 model: 300 nodes. Seed grid: nodes 16/32/64.",
        low=1, high=8192,
    ),
    HyperParameter(
        "dropout", "float", 0.5, "architecture",
        "Dropout rate before each hidden dense layer and before the output layer.",
        "Seed CIFAR-10 model: dropout 0.5 after pooling and after Dense(300).",
        low=0.0, high=0.95,
    ),
    HyperParameter(
        "regularizer", "categorical", "l2", "architecture",
        "Kernel regularizer of convolutions and hidden dense layers.",
        "Seed CIFAR-10 model: L2 regularizer.",
        choices=REGULARIZERS,
    ),
    HyperParameter(
        "regularization", "float", 1e-5, "architecture",
        "Strength of the kernel regularizer (both factors for l1_l2).",
        "Seed CIFAR-10 model: L2(1e-5).",
        low=0.0, high=1.0,
    ),
    # --- training ---------------------------------------------------------------------------
    HyperParameter(
        "optimizer", "categorical", "adam", "training",
        "Optimizer.", "Seed CIFAR-10 model: Adam. Seed grid: adam/sgd/adagrad.",
        choices=OPTIMIZERS,
    ),
    HyperParameter(
        "learning_rate", "float", 1e-3, "training",
        "Initial learning rate.", "Seed grid: optimizer__learning_rate 0.01/0.05/0.1/0.3.",
        low=0.0, high=10.0,
    ),
    HyperParameter(
        "momentum", "float", 0.0, "training",
        "Momentum of sgd and rmsprop (ignored by other optimizers).",
        "Extension: SGD with momentum.",
        low=0.0, high=1.0, high_exclusive=True,
        applies_to={"optimizer": MOMENTUM_OPTIMIZERS},
    ),
    HyperParameter(
        "beta_1", "float", 0.9, "training",
        "First-moment decay of adam, adamw and nadam (ignored by other optimizers).",
        "Keras default of the Adam family.",
        low=0.0, high=1.0, high_exclusive=True,
        applies_to={"optimizer": ADAM_FAMILY},
    ),
    HyperParameter(
        "lr_schedule", "categorical", "constant", "training",
        "Learning-rate schedule: constant, ReduceLROnPlateau on the validation loss, cosine decay "
        "over the trial's epochs, or cosine decay with warm restarts.",
        "Extension: learning-rate schedules.",
        choices=LR_SCHEDULES,
    ),
    HyperParameter(
        "batch_size", "int", 32, "training",
        "Mini-batch size.", "Seed grid: batch_size 16/32/64.",
        low=1, high=65536,
    ),
    HyperParameter(
        "lr_scaling", "categorical", "none", "training",
        "Couple the learning rate to the batch size: the optimizer gets learning_rate x "
        "f(batch_size / lr_reference_batch_size), f = 1 (none), the ratio (linear) or its "
        "square root (sqrt). Also applies when the worker halves the batch after running out of "
        "device memory.",
        "Extension: linear scaling rule (Goyal et al. 2017); sqrt for adaptive optimizers.",
        choices=LR_SCALINGS,
    ),
    HyperParameter(
        "lr_reference_batch_size", "int", 32, "training",
        "Batch size at which learning_rate applies unchanged under lr_scaling.",
        "Extension: the reference batch of the scaling rule.",
        low=1, high=65536,
        applies_to={"lr_scaling": ("linear", "sqrt")},
    ),
    HyperParameter(
        "shuffle", "bool", True, "training",
        "Shuffle the training data each epoch.", "Keras default.",
    ),
    HyperParameter(
        "early_stopping_patience", "int", 3, "training",
        "Epochs without improvement of the objective before a trial stops; 0 turns it off.",
        "Seed CIFAR-10 model: EarlyStopping.",
        low=0, high=1000,
    ),
    HyperParameter(
        "label_smoothing", "float", 0.0, "training",
        "Label smoothing of the cross-entropy loss.", "Extension: label smoothing.",
        low=0.0, high=1.0, high_exclusive=True,
    ),
    # --- augmentation (Keras preprocessing layers, active only while training) --------------
    HyperParameter(
        "augment_flip", "categorical", "none", "augmentation",
        "Random flips (RandomFlip).", "Seed CIFAR-10 model: horizontal-flip augmentation.",
        choices=FLIPS,
    ),
    HyperParameter(
        "augment_rotation", "float", 0.0, "augmentation",
        "Random rotation as a fraction of a full turn (RandomRotation); 0 = off.",
        "Seed CIFAR-10 model: rotation augmentation.",
        low=0.0, high=1.0,
    ),
    HyperParameter(
        "augment_zoom", "float", 0.0, "augmentation",
        "Random zoom as a fraction of the size (RandomZoom); 0 = off.",
        "Seed CIFAR-10 model: zoom augmentation.",
        low=0.0, high=1.0,
    ),
    HyperParameter(
        "augment_translation", "float", 0.0, "augmentation",
        "Random shift as a fraction of the size (RandomTranslation); 0 = off.",
        "Seed CIFAR-10 model: width/height shift augmentation.",
        low=0.0, high=1.0,
    ),
    HyperParameter(
        "augment_contrast", "float", 0.0, "augmentation",
        "Random contrast factor (RandomContrast); 0 = off.", "Extension: contrast augmentation.",
        low=0.0, high=1.0,
    ),
)

VOCABULARY: Mapping[str, HyperParameter] = {hp.name: hp for hp in _ALL}
DEFAULTS: Mapping[str, Any] = {hp.name: hp.default for hp in _ALL}


def defaults() -> dict[str, Any]:
    """A fresh, mutable copy of every hyperparameter's default."""
    return dict(DEFAULTS)


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` completed with the default of every hyperparameter it does not name."""
    full = defaults()
    full.update(params)
    return full


def effective_learning_rate(params: Mapping[str, Any]) -> float:
    """The learning rate the optimizer gets: ``learning_rate`` x f(``batch_size`` /
    ``lr_reference_batch_size``) with f from ``lr_scaling`` (1, the ratio, or its square root).

    Raises:
        ValueError: an unknown ``lr_scaling``.
    """
    p = with_defaults(params)
    lr = float(p["learning_rate"])
    kind = p["lr_scaling"]
    ratio = int(p["batch_size"]) / int(p["lr_reference_batch_size"])
    if kind == "none":
        return lr
    if kind == "linear":
        return lr * ratio
    if kind == "sqrt":
        return lr * ratio**0.5
    raise ValueError(f"unknown lr_scaling {kind!r}; choose one of {', '.join(LR_SCALINGS)}")
