"""One ``.keras`` model out of several members: ``sum_i Rescaling(w_i)(member_i(x))``.

Plain ``keras.models.load_model`` opens the file without custom objects: each member is
rebuilt from its layer config (standard Keras layers only, uncompiled -- a member's custom loss
is not carried over), renamed ``member_<i>`` so that the members' equal layer and model names
never clash, and given the trained weights. The ensemble is compiled with a built-in loss
(sparse categorical or binary cross-entropy) and accuracy, so ``evaluate`` works on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def _member_copy(model: keras.Model, index: int) -> keras.Model:
    name = f"member_{index}"
    config = model.get_config()
    config["name"] = name
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def build_ensemble_model(
    members: Sequence[keras.Model], weights: Sequence[float], *, name: str = "ensemble"
) -> keras.Model:
    """The weighted average of ``members``' outputs as one compiled Keras model.

    Members with weight 0 are left out. All members must take the same input shape and give
    the same output shape.

    Raises:
        ValueError: no members, lengths that differ, no positive weight, or members whose
            input or output shapes differ.
    """
    if not members:
        raise ValueError("an ensemble needs at least one member")
    if len(members) != len(weights):
        raise ValueError(f"{len(members)} members but {len(weights)} weights")
    kept = [(m, float(w)) for m, w in zip(members, weights, strict=True) if float(w) > 0.0]
    if not kept:
        raise ValueError("no member has a positive weight")
    in_shapes = {tuple(m.input_shape[1:]) for m, _ in kept}
    out_shapes = {tuple(m.output_shape[1:]) for m, _ in kept}
    if len(in_shapes) != 1 or len(out_shapes) != 1:
        raise ValueError(
            f"members differ in input {sorted(in_shapes)} or output {sorted(out_shapes)} shapes"
        )
    inputs = keras.Input(shape=next(iter(in_shapes)), name="input")
    scaled = []
    for i, (member, w) in enumerate(kept):
        out = _member_copy(member, i)(inputs)
        out = keras.layers.Activation("linear", dtype="float32", name=f"float32_{i}")(out)
        scaled.append(keras.layers.Rescaling(w, name=f"weight_{i}")(out))
    outputs = scaled[0] if len(scaled) == 1 else keras.layers.Add(name="average")(scaled)
    model = keras.Model(inputs, outputs, name=name)
    binary = next(iter(out_shapes))[-1] == 1
    # Plain SGD has no per-variable state: the file then holds the whole optimizer and
    # keras.models.load_model does not warn that it skipped optimizer variables (an unbuilt
    # RMSprop, Keras' default, is saved with 2 variables and built with one per weight on load).
    model.compile(
        optimizer="sgd",
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
