"""One functional model that uses every public layer of keras_reg.

Shared by the portability tests and `backend_worker.py` (which rebuilds it
under another backend): a token branch through the dropout family, every
sequence layer (each holds its cell) and the wrapper, DropBlock1D, DropPath
in both modes and StochasticDepth; an image branch through DropBlock2D
(square, rectangular with shared channels) and DropBlock3D; and a
ConcreteDropout head. Every regularizer is on, so every random stream and
every rate is part of the model's state.
"""

import json
import os

import keras
import numpy as np

from keras_reg import layers

VOCAB = 40
STEPS = 6
IMAGE = (10, 12, 3)
UNITS = 6
REGS = dict(
    dropout=0.2,
    recurrent_dropout=0.2,
    output_dropout=0.1,
    weight_dropout=0.1,
    zoneout=0.1,
)
# Zero initializers: every weight is set from NumPy (`set_weights`) or
# loaded, and on JAX a random draw at each new weight shape costs a compile
# (6.7 CPU s for the zoo's default initializers, once per process).
ZEROS = dict(kernel_initializer="zeros")
RECURRENT_ZEROS = dict(ZEROS, recurrent_initializer="zeros")


def _sequence_layers(seed):
    """Every public sequence layer, each with a distinct seed."""
    kwargs = dict(REGS, return_sequences=True, **RECURRENT_ZEROS)
    return [
        layers.VariationalLSTM(UNITS, per_gate_masks=True, seed=seed + 11, **kwargs),
        layers.VariationalGRU(UNITS, seed=seed + 12, **kwargs),
        layers.VariationalSimpleRNN(UNITS, seed=seed + 13, **kwargs),
        layers.LayerNormLSTM(UNITS, seed=seed + 14, **kwargs),
        layers.LayerNormGRU(UNITS, per_gate_masks=True, seed=seed + 15, **kwargs),
        layers.LayerNormSimpleRNN(UNITS, seed=seed + 16, **kwargs),
    ]


def build(seed=100, mask_zero=True):
    """The model: inputs `[tokens (B, STEPS) int32, images (B, *IMAGE)]`."""
    tokens = keras.Input((STEPS,), dtype="int32", name="tokens")
    images = keras.Input(IMAGE, name="images")

    x = layers.EmbeddingDropout(
        VOCAB,
        UNITS,
        0.1,
        mask_zero=mask_zero,
        seed=seed,
        name="embedding",
        embeddings_initializer="zeros",
    )(tokens)
    x = layers.TimeSharedDropout(0.2, seed=seed + 20)(x)
    x = layers.InvertedDropout(0.1, shared_axes=[1], seed=seed + 21)(x)
    # The wrapper, around a cell the sequence layers do not cover
    # (`reset_after=False`), inside Keras' own RNN layer.
    wrapped = layers.VariationalGRUCell(
        UNITS,
        reset_after=False,
        dropout=0.2,
        recurrent_dropout=0.2,
        weight_dropout=0.1,
        seed=seed + 17,
        **RECURRENT_ZEROS,
    )
    recurrent = _sequence_layers(seed) + [
        keras.layers.RNN(layers.LayerNormWrapper(wrapped), return_sequences=True)
    ]
    for index, layer in enumerate(recurrent):
        x = x + layers.DropPath(0.2, seed=seed + 30 + index)(layer(x))
    # The 0.2 structured layers on the sequence: DropBlock over steps, a
    # batch-mode DropPath and TensorFlow Addons' StochasticDepth.
    x = layers.DropBlock1D(0.2, 2, seed=seed + 40)(x)
    branch = keras.layers.Dense(UNITS, **ZEROS)(x)
    x = x + layers.DropPath(0.2, mode="batch", seed=seed + 41)(branch)
    x = layers.StochasticDepth(0.8, seed=seed + 42)(
        [x, keras.layers.Dense(UNITS, **ZEROS)(x)]
    )
    sequence = keras.layers.GlobalAveragePooling1D()(x)

    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu", **ZEROS)(images)
    y = layers.DropBlock2D(0.2, 3, seed=seed + 50)(y)
    y = layers.DropBlock2D(0.1, (2, 3), shared_channels=True, seed=seed + 52)(y)
    # A volume: (height, width, channels) as (depth, height, width), 1 channel.
    y = keras.layers.Reshape((*IMAGE[:2], 4, 1))(y)
    y = layers.DropBlock3D(0.1, (2, 3, 2), seed=seed + 53)(y)
    y = keras.layers.Reshape((*IMAGE[:2], 4))(y)
    y = keras.layers.GlobalAveragePooling2D()(y)

    z = keras.layers.Concatenate()([sequence, y])
    z = layers.InvertedDropout(0.3, seed=seed + 51)(z)
    z = layers.ConcreteDropout(keras.layers.Dense(8, **ZEROS), seed=seed + 54)(z)
    outputs = keras.layers.Dense(3, name="head", dtype="float32", **ZEROS)(z)
    return keras.Model([tokens, images], outputs, name="zoo")


def data(batch=8, seed=0):
    """Inputs with padding (token 0) at the start of some rows, and targets."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB, size=(batch, STEPS)).astype("int32")
    tokens[::3, :2] = 0
    images = rng.normal(size=(batch, *IMAGE)).astype("float32")
    target = rng.normal(size=(batch, 3)).astype("float32")
    return [tokens, images], target


def set_weights(model, seed=1, scale=0.4):
    """Fixed weights from NumPy, the same on every backend.

    LayerNorm gammas stay near 1 so the normalization is exercised.
    """
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        value = rng.normal(size=weight.shape) * scale
        if "gamma" in weight.path:
            value = 1.0 + value
        values.append(value.astype(keras.backend.standardize_dtype(weight.dtype)))
    model.set_weights(values)


def probes(seed=200):
    """Layers with a per-sample mask and an all-ones input for each.

    Their training-mode output on ones shows the mask. Batch-shared masks
    (EmbeddingDropout's word types, weight drop) are left out on purpose:
    under data parallelism they are one per replica (TensorFlow) or one per
    global batch (JAX).
    """
    ones3 = np.ones((4, 5, 16), "float32")
    return {
        "inverted": (layers.InvertedDropout(0.5, seed=seed), ones3),
        "time_shared": (layers.TimeSharedDropout(0.5, seed=seed + 1), ones3),
        "dropblock": (
            layers.DropBlock2D(0.3, 3, seed=seed + 2),
            np.ones((4, 9, 11, 3), "float32"),
        ),
        "droppath": (layers.DropPath(0.5, seed=seed + 3), ones3),
        "lstm": (
            layers.VariationalLSTM(
                8,
                dropout=0.5,
                recurrent_dropout=0.5,
                # Small weights: the output follows the masks, unsaturated.
                kernel_initializer=keras.initializers.Constant(0.02),
                recurrent_initializer=keras.initializers.Constant(0.02),
                seed=seed + 4,
            ),
            ones3,
        ),
    }


def variables(model):
    """`model.variables` without repeats (Keras lists a cell's seed state
    once per enclosing layer)."""
    seen = set()
    unique = []
    for variable in model.variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def random_states(model):
    """The `[seed, counter, thresholds...]` variables of every stream."""
    return [v for v in variables(model) if v.name == "keras_reg_random_state"]


def advance_streams(model, start=7):
    """Moves each stream's counter, as if trained, to a distinct value."""
    for index, variable in enumerate(random_states(model)):
        state = keras.ops.convert_to_numpy(variable.value).copy()
        state[1] = start + index
        variable.assign(state)


def fit_under_policy(policy, epochs=2, **compile_kwargs):
    """Builds the model under a dtype policy and fits it on `data(16)`.

    Returns the model and the losses.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build()
        set_weights(model)
        x, target = data(batch=16)
        model.compile(optimizer="adam", loss="mse", **compile_kwargs)
        history = model.fit(x, target, batch_size=8, epochs=epochs, verbose=0)
        return model, np.array(history.history["loss"])
    finally:
        keras.config.set_dtype_policy(previous)


def infer(model, x):
    """The model's inference output. `predict` on JAX, where an eager call
    compiles every operation and every scan; an eager call elsewhere, where
    `predict` traces a function first (TensorFlow: 1.1 s against 0.2)."""
    if keras.backend.backend() == "jax":
        return model.predict(x, verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


def save_for_another_backend(directory):
    """Saves the model (fixed weights, streams moved on) as `zoo.keras` and
    `zoo.weights.h5`, its inputs, and what it computes on them as
    `expected.npz`: its inference output and every variable."""
    model = build()
    set_weights(model)
    advance_streams(model)
    x, _ = data()
    model.save(os.path.join(directory, "zoo.keras"))
    model.save_weights(os.path.join(directory, "zoo.weights.h5"))
    np.savez(os.path.join(directory, "inputs.npz"), tokens=x[0], images=x[1])
    expected = {
        "output": infer(model, x),
        "config": np.array(json.dumps(model.get_config())),
    }
    for index, variable in enumerate(variables(model)):
        expected[f"var{index}"] = keras.ops.convert_to_numpy(variable.value)
        expected[f"path{index}"] = np.array(variable.path)
    np.savez(os.path.join(directory, "expected.npz"), **expected)


def load_saved(directory):
    """Loads what `save_for_another_backend` wrote, twice: the `.keras` file
    (safe_mode, no custom_objects) and the weights file into a new model.
    Returns their outputs on the saved inputs, config and variables."""
    inputs = np.load(os.path.join(directory, "inputs.npz"))
    x = [inputs["tokens"], inputs["images"]]
    loaded = keras.saving.load_model(
        os.path.join(directory, "zoo.keras"), safe_mode=True
    )
    fresh = build()
    fresh.load_weights(os.path.join(directory, "zoo.weights.h5"))
    results = {"config": np.array(json.dumps(loaded.get_config()))}
    for name, model in (("loaded", loaded), ("fresh", fresh)):
        results[f"{name}_output"] = infer(model, x)
        for index, variable in enumerate(variables(model)):
            results[f"{name}_var{index}"] = keras.ops.convert_to_numpy(variable.value)
    return results
