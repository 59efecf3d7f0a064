"""workers.model_builder: seed parity and the effect of every vocabulary hyperparameter."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pytest

from search_spaces.vocabulary import ACTIVATIONS, INITIALIZERS, OPTIMIZERS, VOCABULARY
from workers.model_builder import (
    ModelConfigError,
    SmoothedSparseCategoricalCrossentropy,
    build_loss,
    build_model,
    build_optimizer,
    max_conv_blocks,
)
from workers.training import BestWeights, fit_kwargs, training_callbacks

IMG = (16, 16, 3)
SMALL = {"conv_blocks": 2, "convs_per_block": 1, "filters": 4, "dense_units": 8}


def small(**overrides: object) -> keras.Model:
    return build_model({**SMALL, **overrides}, IMG, 3)


def of(model: keras.Model, cls: type) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if type(layer) is cls]


def convs(model: keras.Model) -> list[keras.layers.Layer]:
    """Main-path convolutions (not residual projections)."""
    return [
        layer for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D))
        and not layer.name.startswith("shortcut")
    ]


def hidden_dense(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in of(model, keras.layers.Dense) if layer.name != "output"]


def classes(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def n_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# --------------------------------------------------------------------------- seed parity


SEED_LAYERS = (
    ["InputLayer"]
    + (["Conv2D", "BatchNormalization", "Activation"] * 2 + ["MaxPooling2D"]) * 3
    + ["GlobalAveragePooling2D", "Dropout", "Dense", "Dropout", "Dense"]
)


def test_defaults_rebuild_the_seed_cifar10_model_exactly():
    model = build_model({}, (32, 32, 3), 10)
    assert model.count_params() == 1_229_102
    assert n_trainable(model) == 1_227_310
    assert classes(model) == SEED_LAYERS
    assert [c.filters for c in convs(model)] == [64, 64, 128, 128, 256, 256]
    for conv in convs(model):
        cfg = conv.get_config()
        assert cfg["kernel_size"] == (3, 3) and cfg["padding"] == "same" and cfg["use_bias"]
        assert cfg["kernel_initializer"]["class_name"] == "HeNormal"
        assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
        assert conv.kernel_regularizer.l2 == pytest.approx(1e-5)
    assert all(a.get_config()["activation"] == "relu" for a in of(model, keras.layers.Activation))
    assert [d.rate for d in of(model, keras.layers.Dropout)] == [0.5, 0.5]
    hidden, out = of(model, keras.layers.Dense)
    assert hidden.units == 300 and hidden.get_config()["activation"] == "relu"
    assert hidden.get_config()["kernel_initializer"]["class_name"] == "HeNormal"
    assert hidden.kernel_regularizer.l2 == pytest.approx(1e-5)
    assert out.units == 10 and out.get_config()["activation"] == "softmax"
    assert out.get_config()["kernel_initializer"]["class_name"] == "GlorotNormal"
    assert out.kernel_regularizer is None
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_seed_grid_mlp_shape():
    params = {
        "conv_blocks": 0, "dense_layers": 2, "dense_units": 32, "dropout": 0.0,
        "regularizer": "none", "batch_norm": False,
    }
    model = build_model(params, (8,), 2)
    assert classes(model) == ["InputLayer", "Dense", "Dense", "Dense"]
    d1, d2, out = of(model, keras.layers.Dense)
    assert (d1.units, d2.units, out.units) == (32, 32, 1)
    assert d1.kernel_regularizer is None
    assert out.get_config()["activation"] == "sigmoid"
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert model.count_params() == (8 * 32 + 32) + (32 * 32 + 32) + (32 + 1)


# --------------------------------------------------------------------------- each hyperparameter


def check_conv_blocks() -> None:
    assert len(convs(small(conv_blocks=1))) == 1
    assert len(convs(small(conv_blocks=3))) == 3
    mlp = small(conv_blocks=0)
    assert convs(mlp) == [] and of(mlp, keras.layers.Flatten)


def check_convs_per_block() -> None:
    assert len(convs(small(conv_blocks=1, convs_per_block=3))) == 3
    assert len(convs(small(conv_blocks=2, convs_per_block=2))) == 4


def check_filters() -> None:
    assert [c.filters for c in convs(small(filters=4))] == [4, 8]
    assert [c.filters for c in convs(small(filters=6, conv_blocks=3))] == [6, 12, 24]


def check_kernel_size() -> None:
    assert {c.get_config()["kernel_size"] for c in convs(small(kernel_size=5))} == {(5, 5)}
    assert {c.get_config()["kernel_size"] for c in convs(small(kernel_size=1))} == {(1, 1)}


def check_conv_type() -> None:
    sep = small(conv_type="separable")
    assert len(of(sep, keras.layers.SeparableConv2D)) == 2 and not of(sep, keras.layers.Conv2D)
    std = small(conv_type="standard")
    assert len(of(std, keras.layers.Conv2D)) == 2 and not of(std, keras.layers.SeparableConv2D)


def check_downsample() -> None:
    pool = small(downsample="maxpool", convs_per_block=2)
    assert len(of(pool, keras.layers.MaxPooling2D)) == 2
    assert {c.get_config()["strides"] for c in convs(pool)} == {(1, 1)}
    stride = small(downsample="stride", convs_per_block=2)
    assert not of(stride, keras.layers.MaxPooling2D)
    assert [c.get_config()["strides"] for c in convs(stride)] == [(1, 1), (2, 2)] * 2
    # both halve the 16x16 input twice
    for model in (pool, stride):
        gap = of(model, keras.layers.GlobalAveragePooling2D)[0]
        assert gap.input.shape[1:3] == (4, 4)


def check_residual() -> None:
    plain = small(residual=False)
    assert not of(plain, keras.layers.Add)
    res = small(residual=True)
    assert len(of(res, keras.layers.Add)) == 2
    shortcuts = [layer for layer in res.layers if layer.name.startswith("shortcut_conv")]
    assert [s.get_config()["kernel_size"] for s in shortcuts] == [(1, 1), (1, 1)]
    assert res.count_params() > plain.count_params()
    # identity shortcut when the channels match (3 input channels, 3 filters, one block)
    ident = build_model({**SMALL, "conv_blocks": 1, "filters": 3, "residual": True}, IMG, 3)
    assert len(of(ident, keras.layers.Add)) == 1
    assert not [layer for layer in ident.layers if layer.name.startswith("shortcut")]
    # stride downsampling: the projection has stride 2 too
    strided = small(residual=True, downsample="stride")
    assert {s.get_config()["strides"] for s in strided.layers
            if s.name.startswith("shortcut_conv")} == {(2, 2)}


def check_batch_norm() -> None:
    assert len(of(small(batch_norm=True), keras.layers.BatchNormalization)) == 2
    assert not of(small(batch_norm=False), keras.layers.BatchNormalization)


def check_activation() -> None:
    for act in ACTIVATIONS:
        model = small(activation=act)
        canonical = keras.activations.serialize(keras.activations.get(act))  # swish -> silu
        if act == "leaky_relu":
            assert len(of(model, keras.layers.LeakyReLU)) == 2
            assert not of(model, keras.layers.Activation)
        else:
            acts = of(model, keras.layers.Activation)
            assert [a.get_config()["activation"] for a in acts] == [canonical, canonical]
        assert hidden_dense(model)[0].get_config()["activation"] == canonical
        assert of(model, keras.layers.Dense)[-1].get_config()["activation"] == "softmax"


def check_kernel_initializer() -> None:
    for name in INITIALIZERS:
        model = small(kernel_initializer=name)
        expected = type(keras.initializers.get(name)).__name__
        for layer in [*convs(model), *hidden_dense(model)]:
            assert layer.get_config()["kernel_initializer"]["class_name"] == expected
        out = model.get_layer("output").get_config()["kernel_initializer"]["class_name"]
        assert out == "GlorotNormal"
    sep = small(conv_type="separable", kernel_initializer="lecun_normal")
    cfg = of(sep, keras.layers.SeparableConv2D)[0].get_config()
    assert cfg["depthwise_initializer"]["class_name"] == "LecunNormal"
    assert cfg["pointwise_initializer"]["class_name"] == "LecunNormal"


def check_head() -> None:
    gap = small(head="gap")
    assert of(gap, keras.layers.GlobalAveragePooling2D) and not of(gap, keras.layers.Flatten)
    flat = small(head="flatten")
    assert of(flat, keras.layers.Flatten) and not of(flat, keras.layers.GlobalAveragePooling2D)
    assert hidden_dense(flat)[0].input.shape[-1] == 4 * 4 * 8


def check_dense_layers() -> None:
    assert len(hidden_dense(small(dense_layers=0))) == 0
    assert len(hidden_dense(small(dense_layers=3))) == 3
    assert len(of(small(dense_layers=3), keras.layers.Dropout)) == 4


def check_dense_units() -> None:
    assert {d.units for d in hidden_dense(small(dense_units=17, dense_layers=2))} == {17}


def check_dropout() -> None:
    model = small(dropout=0.3, dense_layers=2)
    assert [d.rate for d in of(model, keras.layers.Dropout)] == [0.3, 0.3, 0.3]
    # a Dropout right before every hidden Dense and before the output
    names = classes(model)
    for i, name in enumerate(names):
        if name == "Dense":
            assert names[i - 1] == "Dropout"
    assert not of(small(dropout=0.0), keras.layers.Dropout)


def check_regularizer() -> None:
    expected = {"l1": keras.regularizers.L1, "l2": keras.regularizers.L2,
                "l1_l2": keras.regularizers.L1L2}
    for name, cls in expected.items():
        model = small(regularizer=name)
        for layer in [*convs(model), *hidden_dense(model)]:
            assert type(layer.kernel_regularizer) is cls
        assert model.get_layer("output").kernel_regularizer is None
    none = small(regularizer="none")
    assert all(layer.kernel_regularizer is None for layer in [*convs(none), *hidden_dense(none)])
    sep = small(conv_type="separable", regularizer="l1")
    layer = of(sep, keras.layers.SeparableConv2D)[0]
    assert isinstance(layer.depthwise_regularizer, keras.regularizers.L1)
    assert isinstance(layer.pointwise_regularizer, keras.regularizers.L1)


def check_regularization() -> None:
    model = small(regularizer="l2", regularization=3e-3)
    assert convs(model)[0].kernel_regularizer.l2 == pytest.approx(3e-3)
    assert hidden_dense(model)[0].kernel_regularizer.l2 == pytest.approx(3e-3)
    both = small(regularizer="l1_l2", regularization=2e-4)
    reg = convs(both)[0].kernel_regularizer
    assert reg.l1 == pytest.approx(2e-4) and reg.l2 == pytest.approx(2e-4)


def check_optimizer() -> None:
    expected = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
                "nadam": keras.optimizers.Nadam, "sgd": keras.optimizers.SGD,
                "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad}
    assert set(expected) == set(OPTIMIZERS)
    for name, cls in expected.items():
        assert type(build_optimizer({"optimizer": name})) is cls
    assert type(small(optimizer="sgd").optimizer) is keras.optimizers.SGD


def check_learning_rate() -> None:
    for name in OPTIMIZERS:
        cfg = build_optimizer({"optimizer": name, "learning_rate": 0.05}).get_config()
        assert cfg["learning_rate"] == pytest.approx(0.05)
    model = small(learning_rate=0.02)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


def check_lr_scaling() -> None:
    base = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 128}
    lrs = {
        kind: float(build_optimizer({**base, "lr_scaling": kind}).get_config()["learning_rate"])
        for kind in ("none", "linear", "sqrt")
    }
    # default reference batch 32: x1, x4, x2
    assert lrs == pytest.approx({"none": 0.01, "linear": 0.04, "sqrt": 0.02})
    model = small(learning_rate=0.01, batch_size=64, lr_scaling="linear")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


def check_lr_reference_batch_size() -> None:
    base = {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 128, "lr_scaling": "linear"}
    cfg = build_optimizer({**base, "lr_reference_batch_size": 256}).get_config()
    assert float(cfg["learning_rate"]) == pytest.approx(0.005)
    unscaled = {**base, "lr_scaling": "none", "lr_reference_batch_size": 256}
    assert float(build_optimizer(unscaled).get_config()["learning_rate"]) == pytest.approx(0.01)


def check_momentum() -> None:
    for name in ("sgd", "rmsprop"):
        cfg = build_optimizer({"optimizer": name, "momentum": 0.85}).get_config()
        assert cfg["momentum"] == pytest.approx(0.85)
    assert "momentum" not in build_optimizer({"optimizer": "adam", "momentum": 0.85}).get_config()


def check_beta_1() -> None:
    for name in ("adam", "adamw", "nadam"):
        cfg = build_optimizer({"optimizer": name, "beta_1": 0.8}).get_config()
        assert cfg["beta_1"] == pytest.approx(0.8)
    assert "beta_1" not in build_optimizer({"optimizer": "sgd", "beta_1": 0.8}).get_config()


def check_lr_schedule() -> None:
    def kinds(schedule: str) -> list[type]:
        cbs = training_callbacks({"lr_schedule": schedule, "learning_rate": 0.1}, max_epochs=10)
        return [type(cb) for cb in cbs]

    sched_types = {keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler}
    assert not sched_types & set(kinds("constant"))
    assert keras.callbacks.ReduceLROnPlateau in kinds("reduce_on_plateau")
    for schedule in ("cosine", "cosine_restarts"):
        cbs = training_callbacks({"lr_schedule": schedule, "learning_rate": 0.1}, max_epochs=9)
        (lrs,) = [cb for cb in cbs if isinstance(cb, keras.callbacks.LearningRateScheduler)]
        assert lrs.schedule(0, 0.1) == pytest.approx(0.1)
        assert lrs.schedule(4, 0.1) < 0.1
    cos = training_callbacks({"lr_schedule": "cosine"}, max_epochs=9)
    res = training_callbacks({"lr_schedule": "cosine_restarts"}, max_epochs=9)
    cos_s = next(c for c in cos if isinstance(c, keras.callbacks.LearningRateScheduler)).schedule
    res_s = next(c for c in res if isinstance(c, keras.callbacks.LearningRateScheduler)).schedule
    assert cos_s(3) != res_s(3)


def check_batch_size() -> None:
    assert fit_kwargs({"batch_size": 7})["batch_size"] == 7
    assert fit_kwargs({})["batch_size"] == 32


def check_shuffle() -> None:
    assert fit_kwargs({"shuffle": False})["shuffle"] is False
    assert fit_kwargs({})["shuffle"] is True


def check_early_stopping_patience() -> None:
    cbs = training_callbacks({"early_stopping_patience": 4}, max_epochs=10)
    (es,) = [cb for cb in cbs if isinstance(cb, keras.callbacks.EarlyStopping)]
    assert es.patience == 4 and es.monitor == "val_accuracy"
    off = training_callbacks({"early_stopping_patience": 0}, max_epochs=10)
    assert not [cb for cb in off if isinstance(cb, keras.callbacks.EarlyStopping)]
    assert isinstance(off[-1], BestWeights)


def check_label_smoothing() -> None:
    assert isinstance(build_loss({}, 3), keras.losses.SparseCategoricalCrossentropy)
    smooth = build_loss({"label_smoothing": 0.2}, 3)
    assert isinstance(smooth, SmoothedSparseCategoricalCrossentropy)
    assert smooth.get_config()["label_smoothing"] == pytest.approx(0.2)
    binary = build_loss({"label_smoothing": 0.2}, 2)
    assert isinstance(binary, keras.losses.BinaryCrossentropy)
    assert binary.get_config()["label_smoothing"] == pytest.approx(0.2)
    assert small(label_smoothing=0.1).loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    y = np.array([0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    assert float(smooth(y, p)) != pytest.approx(float(build_loss({}, 3)(y, p)))


def _aug(name: str, **params: object) -> list[keras.layers.Layer]:
    return [layer for layer in small(**params).layers if layer.name == name]


def check_augment_flip() -> None:
    modes = {"horizontal": "horizontal", "vertical": "vertical",
             "both": "horizontal_and_vertical"}
    for flip, mode in modes.items():
        (layer,) = _aug("augment_flip", augment_flip=flip)
        assert isinstance(layer, keras.layers.RandomFlip) and layer.get_config()["mode"] == mode
    assert not of(small(augment_flip="none"), keras.layers.RandomFlip)
    # right after the Input
    assert classes(small(augment_flip="both"))[:2] == ["InputLayer", "RandomFlip"]


def check_augment_rotation() -> None:
    (layer,) = _aug("augment_rotation", augment_rotation=0.1)
    assert tuple(layer.get_config()["factor"]) == pytest.approx((-0.1, 0.1))
    assert not of(small(augment_rotation=0.0), keras.layers.RandomRotation)


def check_augment_zoom() -> None:
    (layer,) = _aug("augment_zoom", augment_zoom=0.2)
    assert layer.get_config()["height_factor"] == pytest.approx(0.2)
    assert not of(small(augment_zoom=0.0), keras.layers.RandomZoom)


def check_augment_translation() -> None:
    (layer,) = _aug("augment_translation", augment_translation=0.15)
    cfg = layer.get_config()
    assert cfg["height_factor"] == pytest.approx(0.15)
    assert cfg["width_factor"] == pytest.approx(0.15)
    assert not of(small(augment_translation=0.0), keras.layers.RandomTranslation)


def check_augment_contrast() -> None:
    (layer,) = _aug("augment_contrast", augment_contrast=0.3)
    cfg = layer.get_config()
    assert max(cfg["factor"]) == pytest.approx(0.3)
    assert tuple(cfg["value_range"]) == (0.0, 1.0)
    assert not of(small(augment_contrast=0.0), keras.layers.RandomContrast)


CHECKERS: dict[str, Callable[[], None]] = {
    name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")
}


@pytest.mark.parametrize("name", sorted(VOCABULARY))
def test_every_vocabulary_hyperparameter_has_a_visible_effect(name: str) -> None:
    assert name in CHECKERS, f"no checker for vocabulary hyperparameter {name!r}"
    CHECKERS[name]()


def test_no_checker_for_unknown_names() -> None:
    assert set(CHECKERS) == set(VOCABULARY)


# --------------------------------------------------------------------------- edge cases


def test_residual_joins_before_activation_and_pooling() -> None:
    model = small(residual=True, conv_blocks=1)
    names = classes(model)
    i = names.index("Add")
    assert names[i + 1:i + 3] == ["Activation", "MaxPooling2D"]
    add = of(model, keras.layers.Add)[0]
    sources = {t._keras_history.operation.name for t in add.input}
    assert any(s.startswith("bn") for s in sources)


def test_too_many_downsamplings_raise_a_clear_error() -> None:
    assert max_conv_blocks((8, 8, 1)) == 3
    with pytest.raises(ModelConfigError, match=r"conv_blocks=4 halves 8x8 inputs 4 times; "
                       r"at most 3 fit"):
        build_model({"conv_blocks": 4, "filters": 4}, (8, 8, 1), 10)
    with pytest.raises(ValueError):
        build_model({"conv_blocks": 4, "filters": 4, "downsample": "stride"}, (8, 8, 1), 10)
    model = build_model({"conv_blocks": 3, "filters": 4, "convs_per_block": 1}, (8, 8, 1), 10)
    assert of(model, keras.layers.GlobalAveragePooling2D)[0].input.shape[1:3] == (1, 1)


def test_grayscale_2d_input_gets_a_channel_axis() -> None:
    model = build_model({**SMALL}, (16, 16), 3)
    assert classes(model)[1] == "Reshape"
    assert convs(model)[0].input.shape[-1] == 1


def test_tabular_input_builds_an_mlp_and_ignores_conv_and_augmentation() -> None:
    model = build_model({"augment_flip": "both", "augment_rotation": 0.2}, (30,), 2)
    assert classes(model) == ["InputLayer", "Dropout", "Dense", "Dropout", "Dense"]


def test_bad_inputs_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        build_model({}, (8,), 1)
    with pytest.raises(ValueError, match="input_shape"):
        build_model({}, (2, 2, 2, 2), 3)
    with pytest.raises(ValueError, match="activation"):
        build_model({"activation": "nope"}, (8,), 3)


def test_mixed_precision_policy_on_cpu() -> None:
    model = build_model({**SMALL}, IMG, 3, mixed_precision=True)
    for layer in [*convs(model), *of(model, keras.layers.BatchNormalization),
                  *hidden_dense(model)]:
        assert layer.dtype_policy.name == "mixed_float16"
        assert layer.compute_dtype == "float16"
    out = model.get_layer("output")
    assert out.dtype_policy.name == "float32"
    assert model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.mixed_precision.global_policy().name == "float32"
    pred = model.predict(np.zeros((2, *IMG), "float32"), verbose=0)
    assert pred.dtype == np.float32 and pred.shape == (2, 3)


def test_smoothed_loss_matches_categorical_crossentropy() -> None:
    y = np.array([1, 0, 2])
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype="float32")
    onehot = np.eye(3, dtype="float32")[y]
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(onehot, p)
    got = SmoothedSparseCategoricalCrossentropy(3, label_smoothing=0.1)(y.reshape(-1, 1), p)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading")
def test_model_with_smoothed_loss_saves_and_loads(tmp_path) -> None:
    model = build_model({**SMALL, "label_smoothing": 0.1}, IMG, 3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, SmoothedSparseCategoricalCrossentropy)
    assert loaded.loss.label_smoothing == pytest.approx(0.1)
    assert loaded.count_params() == model.count_params()


def test_augmentation_is_inactive_at_inference() -> None:
    params = {**SMALL, "augment_flip": "both", "augment_rotation": 0.3, "augment_zoom": 0.3,
              "augment_translation": 0.3, "augment_contrast": 0.5, "dropout": 0.0}
    model = build_model(params, IMG, 3)
    x = np.random.default_rng(0).random((4, *IMG)).astype("float32")
    a = model(x, training=False).numpy()
    b = model(x, training=False).numpy()
    np.testing.assert_allclose(a, b)
