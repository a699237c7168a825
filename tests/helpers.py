"""A small public-API layer-test helper (keras.src.testing is private).

`run_layer_test` checks what every keras_reg layer owes a Keras user: a
complete config that rebuilds the layer, serialization by registered name,
symbolic and eager calls of the right shape and dtype (float32 inference
and training calls), a `.keras` round trip with `safe_mode=True` that
keeps the weights and the random stream, and mixed precision: a bfloat16
training call, a compiled mixed_float16 `fit` and a float16 training
call. (The float32 `fit` of every layer in every execution mode is
tests/test_execution_matrix.py's.)
"""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
from keras import ops

# The layer-test model's head: constant, not random (see `_model`).
HEAD_INIT = keras.initializers.Constant(0.1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(script, backend, *args, **env):
    """Runs `tests/<script>` under another `KERAS_BACKEND` (portable masks),
    and loads the `.npz` it writes to its last argument."""
    env = dict(os.environ, KERAS_BACKEND=backend, KERAS_REG_RNG="portable", **env)
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", script), *map(str, args)],
        env=env,
        check=True,
        cwd=ROOT,
        timeout=900,  # a loaded machine (load 10) took 5 min for 46 CPU s
    )
    return np.load(args[-1])


def to_numpy(x):
    return ops.convert_to_numpy(x)


def six_sigma(p, n):
    """Six standard deviations of a fraction of `n` Bernoulli(p) draws."""
    return 6.0 * math.sqrt(p * (1.0 - p) / n)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    input_dtype="float32",
    expected_output_shape=None,
    tmp_path=None,
    input_data=None,
):
    expected_output_shape = expected_output_shape or input_shape
    rng = np.random.default_rng(0)
    if input_data is None:
        input_data = rng.normal(size=input_shape).astype(input_dtype)

    # Config round trip: every argument is in the config, and it rebuilds.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for name, value in init_kwargs.items():
        assert config[name] == value, (name, config[name], value)
    json.dumps(config)
    rebuilt = layer_cls.from_config(config)
    assert rebuilt.get_config() == config

    # Serialization by registered name, without custom_objects.
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_reg>{layer_cls.__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is layer_cls
    assert restored.get_config() == config

    # Symbolic call.
    inputs = keras.Input(input_shape[1:], batch_size=None, dtype=input_dtype)
    outputs = layer_cls(**init_kwargs)(inputs)
    assert tuple(outputs.shape)[1:] == tuple(expected_output_shape)[1:]

    # Eager calls in float32, in inference and in training, of a layer built
    # by a functional model, and a .keras round trip of that model that
    # keeps the weights and the random stream: the training call moves the
    # stream before the save, and the original's next training call must
    # equal the loaded copy's (a copy that restarted its stream from the
    # seed would not). (Each eager call of a recurrent layer compiles its
    # scan on JAX, 0.2 to 0.5 CPU s; so does each fresh layer's draw of
    # random initial weights at a new shape.) The round trip is of the
    # float32 model: Keras 3.7 renames the Cast layers it inserts in a
    # mixed-precision model when it loads one.
    model = _model(layer_cls, init_kwargs, input_shape, input_dtype)
    layer = model.layers[1]
    _check_eager_call(layer, input_data, False, expected_output_shape)
    _check_eager_call(layer, input_data, True, expected_output_shape)
    if tmp_path is not None:
        path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert _json(loaded.get_config()) == _json(model.get_config())
        for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        # The layer is the model's only random part; the rest's weights
        # are equal above.
        first = _check_eager_call(layer, input_data, True, expected_output_shape)
        again = to_numpy(loaded.layers[1](input_data, training=True))
        np.testing.assert_array_equal(first, again)

    # Mixed precision: computes in float16 / bfloat16, keeps float32
    # variables (the zoo model of test_portability trains in bfloat16).
    # One fit, in mixed_float16, compiled (traced on TensorFlow, jitted on
    # JAX). The float32 fit of every layer, in every execution mode of
    # every backend, is tests/test_execution_matrix.py's (a fit, weights
    # that move, a .keras round trip that predicts as the original); a
    # second compiled fit here would cost a train-step compile per layer
    # (2 CPU s on JAX).
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        layer = layer_cls(**init_kwargs)
        _check_mixed_call(layer, input_data, "bfloat16", expected_output_shape)
        keras.config.set_dtype_policy("mixed_float16")
        model = _model(layer_cls, init_kwargs, input_shape, input_dtype)
        model.compile(optimizer="sgd", loss="mse")
        target = rng.normal(size=(input_shape[0], 1)).astype("float32")
        history = model.fit(input_data, target, batch_size=2, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        _check_mixed_call(model.layers[1], input_data, "float16", expected_output_shape)
    finally:
        keras.config.set_dtype_policy("float32")


def _check_mixed_call(layer, input_data, dtype, expected_output_shape):
    y = layer(input_data, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    assert {keras.backend.standardize_dtype(w.dtype) for w in layer.weights} <= {
        "float32"
    }
    assert tuple(y.shape) == tuple(expected_output_shape)
    y = to_numpy(y)
    assert np.all(np.isfinite(y))
    return y


def _check_eager_call(layer, input_data, training, expected_output_shape):
    y = layer(input_data, training=training)
    assert tuple(y.shape) == tuple(expected_output_shape)
    y = to_numpy(y)
    assert np.all(np.isfinite(y))
    return y


def _json(config):
    # Keras writes tuples that come back as lists; compare as JSON.
    return json.loads(json.dumps(config))


def _model(layer_cls, init_kwargs, input_shape, input_dtype):
    inputs = keras.Input(input_shape[1:], dtype=input_dtype)
    x = layer_cls(**init_kwargs)(inputs)
    x = keras.layers.Flatten()(x)
    # A constant head: on JAX a random initializer compiles a draw at each
    # new kernel shape (0.4 CPU s), and the head's values prove nothing.
    head = keras.layers.Dense(1, kernel_initializer=HEAD_INIT, dtype="float32")
    outputs = head(x)
    return keras.Model(inputs, outputs)


def quickest_backend():
    """The backend a subprocess whose backend does not matter runs on: JAX,
    the quickest to import, where it is installed (`make test-oldest`
    installs torch alone), else the suite's own."""
    import importlib.util

    return "jax" if importlib.util.find_spec("jax") else keras.backend.backend()
