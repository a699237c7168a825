"""LSTM-only behaviour: output dropout and zoneout against NumPy, the
LSTM in models. What every cell type shares is in test_recurrent.py."""

import keras
import numpy as np
import pytest

from keras_reg.layers import VariationalLSTM, VariationalLSTMCell
from tests.helpers import to_numpy

BACKEND = keras.backend.backend()
# Layers start from zeros and get their weights from NumPy (`_numpy_weights`):
# on JAX each random initializer compiles a draw at each new weight shape
# (0.4 CPU s), and no test here needs Keras' own initial values.
ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}


def _numpy_weights(model, seed, scale=0.5):
    """Sets every weight of `model` (a layer or a model) to NumPy normal
    draws of standard deviation `scale`."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(scale=scale, size=w.shape).astype("float32") for w in model.weights]
    )


def test_output_dropout_changes_outputs_never_the_carried_state():
    x = np.random.default_rng(0).normal(size=(4, 7, 5)).astype("float32")
    ref = VariationalLSTM(64, return_state=True, **ZEROS)
    dropped = VariationalLSTM(
        64, return_state=True, output_dropout=0.5, seed=6, **ZEROS
    )
    ref.build(x.shape)
    dropped.build(x.shape)
    _numpy_weights(ref, 10, scale=0.2)
    dropped.set_weights(ref.get_weights())
    output, h, c = (to_numpy(v) for v in dropped(x, training=True))
    _, h_ref, c_ref = (to_numpy(v) for v in ref(x))
    np.testing.assert_allclose(h, h_ref, atol=1e-5)
    np.testing.assert_allclose(c, c_ref, atol=1e-5)
    kept = output != 0
    np.testing.assert_allclose(output[kept], 2.0 * h[kept], rtol=1e-5)
    assert kept.any() and not kept.all()


def _numpy_lstm_step(x, h, c, kernel, recurrent, bias):
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    z = x @ kernel + h @ recurrent + bias
    i, f, g, o = np.split(z, 4, axis=-1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def test_zoneout_at_inference_is_the_expectation():
    z = 0.3
    layer = VariationalLSTM(
        5, zoneout=z, return_sequences=True, return_state=True, **ZEROS
    )
    x = np.random.default_rng(1).normal(size=(3, 6, 4)).astype("float32")
    layer.build(x.shape)
    _numpy_weights(layer, 11)
    outputs, _, c_last = layer(x)
    kernel, recurrent, bias = layer.get_weights()
    h = np.zeros((3, 5))
    c = np.zeros((3, 5))
    expected = []
    for t in range(6):
        h_new, c_new = _numpy_lstm_step(x[:, t], h, c, kernel, recurrent, bias)
        h, c = z * h + (1 - z) * h_new, z * c + (1 - z) * c_new
        expected.append(h)
    np.testing.assert_allclose(to_numpy(outputs), np.stack(expected, 1), atol=1e-5)
    np.testing.assert_allclose(to_numpy(c_last), c, atol=1e-5)


def test_zoneout_in_training_keeps_the_old_state_or_takes_the_new_one():
    # Each unit of h and of c is either its old value or the NumPy step's
    # new one (the fraction kept is measured in test_recurrent.py).
    rng = np.random.default_rng(2)
    layer = VariationalLSTM(50, zoneout=0.4, return_state=True, seed=8, **ZEROS)
    x = rng.normal(size=(200, 1, 3)).astype("float32")
    layer.build(x.shape)
    _numpy_weights(layer, 12)
    h0 = rng.normal(size=(200, 50)).astype("float32")
    c0 = rng.normal(size=(200, 50)).astype("float32")
    _, h1, c1 = layer(x, initial_state=[h0, c0], training=True)
    h_new, c_new = _numpy_lstm_step(x[:, 0], h0, c0, *layer.get_weights())
    for got, old, new in ((h1, h0, h_new), (c1, c0, c_new)):
        got = to_numpy(got)
        is_old = got == old
        is_new = np.isclose(got, new, atol=1e-5)
        assert np.all(is_old | is_new)
        assert np.any(is_old & ~is_new) and np.any(is_new & ~is_old)


# --- in models ---------------------------------------------------------------------


def test_bidirectional_stateful_and_embedding_masks_train():
    inputs = keras.Input((6,), dtype="int32", batch_size=4)
    x = keras.layers.Embedding(20, 8, mask_zero=True, embeddings_initializer="zeros")(
        inputs
    )
    x = keras.layers.Bidirectional(
        VariationalLSTM(
            5, dropout=0.2, recurrent_dropout=0.2, return_sequences=True, **ZEROS
        )
    )(x)
    x = VariationalLSTM(5, stateful=True, zoneout=0.1, **ZEROS)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(x))
    _numpy_weights(model, 13)
    model.compile(optimizer="adam", loss="mse")
    ids = np.random.default_rng(3).integers(0, 20, size=(8, 6))
    ids[:, 4:] = 0
    history = model.fit(ids, np.ones((8, 1)), batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_rates_can_change_but_an_absent_regularizer_cannot_appear():
    layer = VariationalLSTM(4, dropout=0.2)
    layer.dropout = 0.4
    assert layer.cell.dropout == 0.4
    with pytest.raises(ValueError, match="recurrent_dropout=0"):
        layer.recurrent_dropout = 0.3
    assert layer.recurrent_dropout == 0.0


def test_keras_rnn_cannot_draw_per_step_masks_and_says_so():
    x = np.ones((2, 3, 4), "float32")
    rnn = keras.layers.RNN(VariationalLSTMCell(4, zoneout=0.2))
    rnn(x)  # inference is fine: zoneout is its expectation
    with pytest.raises(ValueError, match="VariationalLSTM"):
        rnn(x, training=True)


def test_time_distributed_head_trains_under_jit_compile():
    # XLA on TensorFlow and JAX; torch has no XLA path, so it runs eagerly.
    jit = BACKEND != "torch"
    inputs = keras.Input((6, 3))
    x = VariationalLSTM(
        5,
        dropout=0.3,
        recurrent_dropout=0.3,
        zoneout=0.1,
        return_sequences=True,
        **ZEROS,
    )(inputs)
    head = keras.layers.Dense(2, kernel_initializer="zeros")
    outputs = keras.layers.TimeDistributed(head)(x)
    model = keras.Model(inputs, outputs)
    _numpy_weights(model, 14)
    model.compile(optimizer="adam", loss="mse", jit_compile=jit)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 6, 3)).astype("float32")
    y = rng.normal(size=(16, 6, 2)).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(before, model.get_weights(), strict=True)
    )
    assert model.predict(x, verbose=0).shape == (16, 6, 2)
    # Training draws masks: two training calls differ, inference does not.
    assert not np.allclose(
        to_numpy(model(x, training=True)), to_numpy(model(x, training=True))
    )
    np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(model(x)))
