import json
import math

import keras
import numpy as np
import pytest

from keras_reg import _random
from keras_reg.inference import mc_dropout, mc_predict
from keras_reg.layers import ConcreteDropout
from tests.helpers import six_sigma, to_numpy


def _data(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _logit(p):
    return math.log(p) - math.log1p(-p)


def _identity_dense(units):
    """A Dense layer that passes its input through: the output shows the mask."""
    return keras.layers.Dense(units, use_bias=False, kernel_initializer="identity")


def _model(layer, features=6):
    inputs = keras.Input((features,))
    x = layer(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, dtype="float32")(x))


# --- the layer contract -----------------------------------------------------------


def test_concrete_dropout_layer_contract(tmp_path):
    kwargs = {
        "weight_regularizer": 1e-4,
        "dropout_regularizer": 1e-3,
        "init_min": 0.2,
        "init_max": 0.3,
        "temperature": 0.2,
        "seed": 3,
    }
    layer = ConcreteDropout(keras.layers.Dense(4), **kwargs)
    config = layer.get_config()
    for name, value in kwargs.items():
        assert config[name] == value
    json.dumps(config)
    rebuilt = ConcreteDropout.from_config(config)
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "keras_reg>ConcreteDropout"
    assert type(keras.saving.deserialize_keras_object(serialized)) is ConcreteDropout
    # Symbolic and eager calls.
    assert tuple(ConcreteDropout(keras.layers.Dense(4))(keras.Input((6,))).shape) == (
        None,
        4,
    )
    x, y = _data(0, (8, 6)), _data(1, (8, 1))
    for training in (False, True):
        out = to_numpy(layer(x, training=training))
        assert out.shape == (8, 4) and np.all(np.isfinite(out))
    assert layer.compute_output_shape((8, 6)) == (8, 4)
    # Fit, then a .keras round trip that keeps the rate, weights and stream.
    model = _model(ConcreteDropout(keras.layers.Dense(4), **kwargs))
    model.compile(optimizer="sgd", loss="mse")
    assert np.isfinite(model.fit(x, y, batch_size=2, verbose=0).history["loss"][0])
    path = tmp_path / "concrete.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[1].rate == model.layers[1].rate
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        to_numpy(model(x, training=True)), to_numpy(loaded(x, training=True))
    )


def test_concrete_dropout_mixed_precision():
    x, y = _data(0, (8, 6)), _data(1, (8, 1))
    try:
        for policy in ("mixed_bfloat16", "mixed_float16"):
            keras.config.set_dtype_policy(policy)
            layer = ConcreteDropout(keras.layers.Dense(4), seed=1)
            out = layer(x, training=True)
            assert keras.backend.standardize_dtype(out.dtype) == policy[6:]
            assert np.all(np.isfinite(to_numpy(out)))
            assert {
                keras.backend.standardize_dtype(w.dtype) for w in layer.weights
            } == {"float32"}
            model = _model(ConcreteDropout(keras.layers.Dense(4), seed=1))
            model.compile(optimizer="sgd", loss="mse")
            history = model.fit(x, y, batch_size=2, verbose=0).history
            assert np.isfinite(history["loss"][0])
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"init_min": 0.3, "init_max": 0.2}, "init_min"),
        ({"init_min": 0.0}, "init_min"),
        ({"init_max": 1.0}, "init_max"),
        ({"init_max": float("nan")}, "init_max"),
        ({"weight_regularizer": -1e-6}, "weight_regularizer"),
        ({"dropout_regularizer": "1e-5"}, "dropout_regularizer"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_concrete_dropout_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=rf"`{match}`.*Received"):
        ConcreteDropout(keras.layers.Dense(2), **kwargs)


def test_concrete_dropout_wraps_a_layer_and_needs_a_known_last_axis():
    with pytest.raises(ValueError, match="layer"):
        ConcreteDropout("dense")
    with pytest.raises(ValueError, match="known last axis"):
        ConcreteDropout(keras.layers.Dense(2))(keras.Input((None,)))
    with pytest.raises(ValueError, match="batch axis"):
        ConcreteDropout(keras.layers.Dense(2)).build((3,))


# --- the rate ----------------------------------------------------------------------


def test_rate_is_a_python_float_read_from_the_weight():
    layer = ConcreteDropout(keras.layers.Dense(2), init_min=0.2, init_max=0.2)
    with pytest.raises(ValueError, match="not built|no rate until"):
        layer.rate  # noqa: B018
    layer.build((None, 3))
    assert isinstance(layer.rate, float)
    assert layer.rate == pytest.approx(0.2, abs=1e-7)
    assert to_numpy(layer.p_logit) == pytest.approx(_logit(0.2), abs=1e-6)
    layer.p_logit.assign(_logit(0.35))
    assert layer.rate == pytest.approx(0.35, abs=1e-7)
    assert [w.name for w in layer.trainable_weights if w.name == "p_logit"]


def test_initial_logit_lies_between_the_init_logits_and_follows_the_seed():
    def initial(seed):
        layer = ConcreteDropout(
            keras.layers.Dense(2), init_min=0.05, init_max=0.5, seed=seed
        )
        layer.build((None, 3))
        return float(to_numpy(layer.p_logit))

    values = [initial(seed) for seed in range(20)]
    assert all(_logit(0.05) <= v <= _logit(0.5) for v in values)
    assert len(set(values)) == 20
    assert initial(7) == initial(7)


# --- the mask and the regularizer, against NumPy -------------------------------------


def test_relaxed_mask_matches_the_formula(monkeypatch):
    # Known bits in place of the generator's: the output must be the API's
    # formula of u = (bits + 1/2) / 2**24, computed here in float64.
    shape = (64, 16)
    bits = np.random.default_rng(0).integers(0, _random.ONE, size=shape)
    bits[0, :4] = [0, 1, _random.ONE - 2, _random.ONE - 1]  # the extremes
    monkeypatch.setattr(
        _random,
        "uniform_bits",
        lambda shape, state: keras.ops.convert_to_tensor(bits.astype("int32")),
    )
    p, temperature = 0.3, 0.2
    layer = ConcreteDropout(
        _identity_dense(16), init_min=p, init_max=p, temperature=temperature
    )
    x = _data(1, shape)
    y = to_numpy(layer(x, training=True))
    p = 1.0 / (1.0 + np.exp(-float(to_numpy(layer.p_logit))))
    u = (bits + 0.5) / _random.ONE
    z = 1.0 / (
        1.0
        + np.exp(-(np.log(p) - np.log(1 - p) + np.log(u) - np.log(1 - u)) / temperature)
    )
    expected = x * (1.0 - z) / (1.0 - p)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, rtol=2e-5, atol=1e-6)


def test_relaxed_mask_drops_each_unit_with_probability_p():
    # z > 1/2 exactly when log u - log(1 - u) > -logit(p), which a logistic
    # variable does with probability p, whatever the temperature.
    p = 0.25
    layer = ConcreteDropout(_identity_dense(256), init_min=p, init_max=p, seed=4)
    y = to_numpy(layer(np.ones((2000, 256), "float32"), training=True))
    dropped = np.mean(y * (1 - p) < 0.5)
    assert abs(dropped - p) < six_sigma(p, y.size)
    # At temperature 0.1 most of the mass sits near 0 and 1 / (1 - p).
    near = np.isclose(y, 0, atol=0.05) | np.isclose(y, 1 / (1 - p), atol=0.05)
    assert np.mean(near) > 0.8


def test_expected_output_matches_a_numpy_simulation():
    # E[(1 - z) / (1 - p)] with logistic noise, simulated here.
    p, temperature = 0.4, 0.5
    layer = ConcreteDropout(
        _identity_dense(200), init_min=p, init_max=p, temperature=temperature, seed=2
    )
    y = to_numpy(layer(np.ones((2500, 200), "float32"), training=True))
    rng = np.random.default_rng(0)
    noise = rng.logistic(size=2_000_000)
    reference = (1 - 1 / (1 + np.exp(-(_logit(p) + noise) / temperature))) / (1 - p)
    # Units are independent: the standard error of the mean over y.size.
    bound = 6 * reference.std() * math.sqrt(1 / y.size + 1 / reference.size)
    assert abs(y.mean() - reference.mean()) < bound


def test_regularizer_is_the_papers():
    weight_reg, dropout_reg = 1e-3, 1e-2
    dense = keras.layers.Dense(5, kernel_initializer="glorot_uniform")
    layer = ConcreteDropout(
        dense,
        weight_regularizer=weight_reg,
        dropout_regularizer=dropout_reg,
        init_min=0.2,
        init_max=0.2,
    )
    for training in (True, False):
        layer(_data(0, (4, 7)), training=training)
        (loss,) = layer.losses
        # In floatx, the dtype of Keras' compiled losses it is added to.
        assert keras.backend.standardize_dtype(loss.dtype) == keras.config.floatx()
        p = 1 / (1 + np.exp(-float(to_numpy(layer.p_logit))))
        kernel = to_numpy(dense.kernel).astype("float64")
        expected = weight_reg * np.sum(kernel**2) / (1 - p) + dropout_reg * 7 * (
            p * np.log(p) + (1 - p) * np.log(1 - p)
        )
        assert float(to_numpy(loss)) == pytest.approx(expected, rel=1e-5)


def test_inference_is_the_wrapped_layer_alone():
    dense = keras.layers.Dense(3)
    layer = ConcreteDropout(dense, init_min=0.5, init_max=0.5)
    x = _data(0, (4, 6))
    np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(dense(x)), rtol=1e-6)


def test_the_rate_is_learned_by_gradient_descent():
    # With only the entropy term (weight_regularizer 0, zero targets and a
    # zero head), the loss is minimised at p = 1/2: the rate rises from 0.1.
    layer = ConcreteDropout(
        keras.layers.Dense(4, kernel_initializer="zeros"),
        weight_regularizer=0.0,
        dropout_regularizer=1.0,
        seed=1,
    )
    model = _model(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = layer.rate
    x = _data(0, (32, 6))
    model.fit(x, np.zeros((32, 1), "float32"), batch_size=8, epochs=3, verbose=0)
    assert before == pytest.approx(0.1, abs=1e-6)
    assert 0.15 < layer.rate < 0.5


# --- Monte Carlo dropout ------------------------------------------------------


def test_mc_predict_and_mc_dropout_sample_the_relaxed_mask():
    model = _model(ConcreteDropout(keras.layers.Dense(8), init_min=0.3, init_max=0.3))
    x = _data(0, (10, 6))
    mean, std = mc_predict(model, x, samples=8, seed=0)
    assert mean.shape == std.shape == (10, 1) and np.all(std > 0)
    np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(model(x)))
    with mc_dropout(model):
        assert not np.array_equal(to_numpy(model(x)), to_numpy(model(x)))
    np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(model(x)))
