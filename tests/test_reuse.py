"""A cell reused anywhere behaves as a freshly built cell with the same seed.

The sequence layers pass one call's masks to their loop as values; a cell
in `keras.layers.RNN` keeps them only from `get_dropout_mask` to
`reset_dropout_mask` (Keras' protocol). So a cell taken from a sequence
layer, and used again in another `keras.layers.RNN`, a `Bidirectional`, a
`LayerNormWrapper` or a second sequence of calls, shares its masks across
time, advances its stream once per training call and not in inference, on
every backend. Shown with linear probes (the outputs are the masks) and
stream positions.
"""

import keras
import numpy as np
import pytest

from keras_reg.layers import LayerNormWrapper, VariationalLSTM, VariationalLSTMCell
from tests.helpers import six_sigma, to_numpy

UNITS = 40


LINEAR = dict(
    activation="linear",
    recurrent_activation="linear",
    unit_forget_bias=False,
    # The probes set every weight: zeros spare JAX a compiled random draw per
    # weight shape.
    kernel_initializer="zeros",
    recurrent_initializer="zeros",
)
# Eager JAX compiles a scan at every call of a sequence layer (or of Keras'
# RNN); unrolled, each op compiles once per shape, and the probes' hosts and
# used layers run so (test_reuse 22.9 -> 12.5 CPU s on JAX). Unrolled, each
# step calls the cell from Python, as torch's loop does: a cell drawing
# fresh masks at every step fails the mask and stream tests here, where
# under a scan (its step traced once) it passed them.
LOOP = {"unroll": keras.backend.backend() == "jax"}


def _probe_cell(**kwargs):
    """A linear LSTM cell whose `h_t = x_t * m_x + h_{t-1} * m_h`.

    Gates i and o are held at 1 (bias 1, no weights), f at 0, and the
    candidate is `g = x @ I + h_prev @ I`: the masks show in the output.
    """
    cell = VariationalLSTMCell(UNITS, **LINEAR, **kwargs)
    cell.build((None, UNITS))
    kernel = np.zeros((UNITS, 4 * UNITS), "float32")
    kernel[:, 2 * UNITS : 3 * UNITS] = np.eye(UNITS)
    recurrent = kernel.copy()
    bias = np.zeros(4 * UNITS, "float32")
    bias[:UNITS] = 1.0
    bias[3 * UNITS :] = 1.0
    cell.set_weights([kernel, recurrent, bias])
    return cell


def _used_cell(**kwargs):
    """The probe cell of a `VariationalLSTM` already called in training and
    in inference, so that anything the layer left behind would show."""
    layer = VariationalLSTM(UNITS, return_sequences=True, **LOOP, **LINEAR, **kwargs)
    x = np.ones((3, 5, UNITS), "float32")
    layer(x)  # build
    probe = _probe_cell(**kwargs)
    layer.cell.set_weights(probe.get_weights())
    layer(x, training=True)
    layer(x)
    return layer.cell


def position(cell):
    """The stream position (the draw counter) of a cell's random state."""
    return int(to_numpy(cell.seed_generator.state)[1])


HOSTS = {
    "keras_rnn": lambda cell: keras.layers.RNN(cell, return_sequences=True, **LOOP),
    "wrapper": lambda cell: keras.layers.RNN(
        LayerNormWrapper(cell, center=False, scale=False),
        return_sequences=True,
        **LOOP,
    ),
}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_reused_cell_behaves_as_a_fresh_cell_with_the_same_seed(host):
    regs = dict(dropout=0.5, recurrent_dropout=0.5, weight_dropout=0.3, seed=11)
    used = _used_cell(**regs)
    # One training call of the layer drew three masks; inference none.
    assert position(used) == 3
    cell = _probe_cell(**regs)
    cell.seed_generator.state.assign(used.seed_generator.state)  # same position
    reused, fresh = HOSTS[host](used), HOSTS[host](cell)
    x = np.random.default_rng(0).normal(size=(6, 7, UNITS)).astype("float32")
    for training in (True, False, True, True):
        a, b = reused(x, training=training), fresh(x, training=training)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_bidirectional_of_a_used_layer_equals_one_of_a_fresh_layer():
    # Bidirectional rebuilds both directions from the layer's config: the
    # used layer passes on its arguments and seed, nothing of its state.
    regs = dict(dropout=0.5, recurrent_dropout=0.5, output_dropout=0.2, seed=12)
    # Random weights from NumPy below: zeros spare JAX the initializers.
    regs.update(kernel_initializer="zeros", recurrent_initializer="zeros")
    x = np.random.default_rng(2).normal(size=(6, 7, UNITS)).astype("float32")
    used = VariationalLSTM(UNITS, return_sequences=True, **LOOP, **regs)
    used(x, training=True)
    used(x)
    fresh = VariationalLSTM(UNITS, return_sequences=True, **LOOP, **regs)
    bidirectional = [keras.layers.Bidirectional(layer) for layer in (used, fresh)]
    bidirectional[0].build(x.shape)
    bidirectional[1].build(x.shape)
    rng = np.random.default_rng(3)
    weights = [
        rng.normal(scale=0.2, size=w.shape).astype("float32")
        for w in bidirectional[0].weights
    ]
    bidirectional[0].set_weights(weights)
    bidirectional[1].set_weights(weights)
    for training in (True, False, True):
        a, b = (layer(x, training=training) for layer in bidirectional)
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("host", ["keras_rnn", "wrapper"])
def test_reused_cell_shares_its_input_mask_across_time(host):
    # Recurrent kernel 0: h_t = x_t * m_x = m_x for ones.
    cell = _used_cell(dropout=0.5, seed=3)
    kernel, recurrent, bias = cell.get_weights()
    cell.set_weights([kernel, np.zeros_like(recurrent), bias])
    layer = HOSTS[host](cell)
    h = to_numpy(layer(np.ones((300, 6, UNITS), "float32"), training=True))
    assert np.all(h == h[:, :1, :])  # the same mask at every step
    if host == "keras_rnn":
        dropped = np.mean(h[:, 0] == 0)
        assert abs(dropped - 0.5) < six_sigma(0.5, h[:, 0].size)


def test_reused_cell_shares_its_recurrent_mask_across_time():
    # x at step 0 only: h_0 = 1, then h_t = h_{t-1} * m_h, so with one
    # shared mask h_2 = h_1 * m_h = 2 * h_1 (m_h is 0 or 2).
    layer = HOSTS["keras_rnn"](_used_cell(recurrent_dropout=0.5, seed=4))
    x = np.zeros((400, 4, UNITS), "float32")
    x[:, 0] = 1.0
    h = to_numpy(layer(x, training=True))
    np.testing.assert_array_equal(h[:, 0], 1.0)
    assert set(np.unique(h[:, 1])) == {0.0, 2.0}
    np.testing.assert_array_equal(h[:, 2], 2.0 * h[:, 1])
    np.testing.assert_array_equal(h[:, 3], 2.0 * h[:, 2])
    dropped = np.mean(h[:, 1] == 0)
    assert abs(dropped - 0.5) < six_sigma(0.5, h[:, 1].size)


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_stream_moves_once_per_training_call_and_not_in_inference(host):
    # Two regularizers, two draws per training call, whatever the length.
    cell = _used_cell(dropout=0.5, recurrent_dropout=0.5, seed=5)
    layer = HOSTS[host](cell)
    # (Bidirectional's backward layer holds a copy of the cell, with a
    # stream of its own.)
    for steps in (7, 21):
        x = np.ones((2, steps, UNITS), "float32")
        before = position(cell)
        layer(x)
        assert position(cell) == before
        layer(x, training=True)
        assert position(cell) - before == 2


def test_a_cell_in_a_compiled_model_moves_its_stream_per_batch():
    # Under a compiled train step (XLA on TensorFlow and JAX), the masks are
    # drawn outside the loop and the stream moves once per batch.
    cell = _used_cell(dropout=0.5, recurrent_dropout=0.5, seed=6)
    inputs = keras.Input((5, UNITS))
    # The head's values play no part: zeros spare JAX a compiled draw.
    head = keras.layers.Dense(1, kernel_initializer="zeros")
    outputs = head(keras.layers.RNN(cell)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd", loss="mse", jit_compile=keras.backend.backend() != "torch"
    )
    before = position(cell)
    x = np.ones((12, 5, UNITS), "float32")
    model.fit(x, np.zeros((12, 1)), batch_size=4, epochs=1, verbose=0)
    assert position(cell) - before == 3 * 2
    model.predict(x, verbose=0)
    assert position(cell) - before == 3 * 2
