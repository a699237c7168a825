"""Bad and unusual input: a clear error or a defined result, and the random
streams never corrupted."""

import keras
import numpy as np
import pytest

from keras_reg import _random, layers
from tests.helpers import to_numpy

BACKEND = keras.backend.backend()
REGS = dict(dropout=0.3, recurrent_dropout=0.3, output_dropout=0.2, weight_dropout=0.2)
# Layers start from zeros (tests that need random weights set NumPy's): on
# JAX each random initializer compiles a draw at each new weight shape.
ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}
SEQUENCE_LAYERS = [
    layers.VariationalLSTM,
    layers.VariationalGRU,
    layers.VariationalSimpleRNN,
    layers.LayerNormLSTM,
    layers.LayerNormGRU,
    layers.LayerNormSimpleRNN,
]
# The behaviour tests take one layer per cell type, variational and
# LayerNorm mixed (a LayerNorm cell subclasses its variational cell, and the
# masks come from their shared base): eager JAX compiles each call's scan.
SOME_SEQUENCE_LAYERS = [
    layers.VariationalGRU,
    layers.LayerNormLSTM,
    layers.LayerNormSimpleRNN,
]
# Dropout-family layers that take a float tensor, with an input shape.
FLOAT_LAYERS = [
    (lambda: layers.InvertedDropout(0.5, seed=1), (4, 6, 8)),
    (lambda: layers.TimeSharedDropout(0.5, seed=2), (4, 6, 8)),
    (lambda: layers.DropPath(0.5, seed=3), (8, 6, 8)),
    (lambda: layers.DropBlock2D(0.3, 3, seed=4), (4, 9, 11, 3)),
]


def _set_random_weights(rng, *layers_):
    weights = [
        rng.normal(scale=0.5, size=w.shape).astype("float32")
        for w in layers_[0].weights
    ]
    for layer in layers_:
        layer.set_weights(weights)


def _state(layer):
    """`[seed, counter, thresholds...]` of a layer's (or its cell's) stream."""
    cell = getattr(layer, "cell", layer)
    return to_numpy(cell.seed_generator.state.value).copy()


# --- dtype and rank -------------------------------------------------------------


@pytest.mark.parametrize("make, shape", FLOAT_LAYERS)
def test_integer_inputs_raise_type_error_and_draw_nothing(make, shape):
    layer = make()
    layer.build(shape)
    before = _state(layer)
    with pytest.raises(TypeError, match="floating-point"):
        layer(np.ones(shape, "int32"), training=True)
    np.testing.assert_array_equal(_state(layer), before)


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (lambda: layers.DropBlock2D(0.3, 3), (4, 9, 11), "rank 4"),
        (lambda: layers.TimeSharedDropout(0.3), (4, 9), "rank 3"),
    ],
)
def test_wrong_rank_raises_value_error_naming_the_shape(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer()(np.ones(shape, "float32"), training=True)


# --- non-finite values ---------------------------------------------------------------


def _poison(x):
    x = x.copy()
    flat = x.reshape(-1)
    flat[::7] = np.nan
    flat[3::11] = np.inf
    return x


@pytest.mark.parametrize("make, shape", FLOAT_LAYERS)
def test_nan_and_inf_propagate_and_leave_the_masks_alone(make, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32") + 3.0
    bad = _poison(x)
    finite = np.isfinite(bad)
    clean, poisoned = make(), make()
    for _ in range(2):  # the second call shows the stream moved on equally
        expected = to_numpy(clean(x, training=True))
        got = to_numpy(poisoned(bad, training=True))
        # Where the input is finite, the same mask was applied.
        np.testing.assert_array_equal(got[finite], expected[finite])
        # Non-finite inputs come out NaN or inf, dropped or kept: a dropout
        # is a product, and never hides a NaN behind a 0.
        assert not np.any(np.isfinite(got[~finite]))
    np.testing.assert_array_equal(_state(poisoned), _state(clean))


@pytest.mark.parametrize("layer_cls", SOME_SEQUENCE_LAYERS)
def test_a_nan_in_one_sample_stays_in_that_sample(layer_cls):
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype("float32")
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    clean = layer_cls(6, seed=5, zoneout=0.2, **ZEROS, **REGS)
    poisoned = layer_cls.from_config(clean.get_config())
    for layer in (clean, poisoned):
        layer.build(x.shape)
    _set_random_weights(np.random.default_rng(2), clean, poisoned)
    expected = to_numpy(clean(x, training=True))
    got = to_numpy(poisoned(bad, training=True))
    assert np.all(np.isnan(got[1]))
    np.testing.assert_array_equal(got[[0, 2]], expected[[0, 2]])
    np.testing.assert_array_equal(_state(poisoned), _state(clean))


# --- sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls", SEQUENCE_LAYERS)
def test_zero_length_sequence_raises_and_draws_nothing(layer_cls):
    layer = layer_cls(4, seed=1, **ZEROS, **REGS)
    layer.build((2, 3, 5))
    before = _state(layer)
    with pytest.raises(ValueError, match="at least one time step.*length 0"):
        layer(np.ones((2, 0, 5), "float32"), training=True)
    np.testing.assert_array_equal(_state(layer), before)


@pytest.mark.parametrize("layer_cls", SOME_SEQUENCE_LAYERS)
def test_batch_of_one_gets_the_first_samples_masks(layer_cls):
    # Per-sample masks are indexed by sample, so a batch of one draws what
    # the first sample of a larger batch draws (zoneout, indexed by step
    # first, is left out).
    x = np.random.default_rng(2).normal(size=(5, 4, 3)).astype("float32")
    big = layer_cls(6, seed=8, return_sequences=True, **ZEROS, **REGS)
    one = layer_cls.from_config(big.get_config())
    big.build(x.shape)
    one.build(x[:1].shape)
    _set_random_weights(np.random.default_rng(3), big, one)
    np.testing.assert_allclose(
        to_numpy(one(x[:1], training=True))[0],
        to_numpy(big(x, training=True))[0],
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.slow
def test_mask_memory_does_not_grow_with_sequence_length(monkeypatch):
    # The masks of a sequence layer are drawn once per call: O(batch x units)
    # elements for T = 2000 as for T = 20 (measured by recording every draw).
    drawn = []
    uniform_bits = _random.uniform_bits

    def recording(shape, state):
        drawn[-1].append(tuple(int(d) for d in shape))
        return uniform_bits(shape, state)

    monkeypatch.setattr(_random, "uniform_bits", recording)
    batch, features, units = 2, 3, 5
    for steps in (20, 2000):
        drawn.append([])
        layer = layers.VariationalLSTM(units, seed=1, **ZEROS, **REGS)
        x = np.ones((batch, steps, features), "float32")
        assert np.all(np.isfinite(to_numpy(layer(x, training=True))))
    short, long = drawn
    assert short == long
    elements = sum(int(np.prod(shape)) for shape in long)
    # input, recurrent and output masks, and the dropped recurrent kernel.
    assert elements == batch * (features + 2 * units) + units * 4 * units


# --- rates ---------------------------------------------------------------------


def test_invalid_rate_set_during_fit_raises_and_keeps_the_old_rates():
    dropout = layers.InvertedDropout(0.3, seed=1)
    recurrent = layers.VariationalGRU(4, seed=2, **ZEROS, **REGS)
    inputs = keras.Input((5, 3))
    dense = keras.layers.Dense(1, kernel_initializer="zeros")
    outputs = dense(dropout(recurrent(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 5, 3), "float32"), np.ones((8, 1), "float32")
    states = [_state(dropout), _state(recurrent)]

    class Break(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            dropout.rate = 1.5

    with pytest.raises(ValueError, match="rate=1.5"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Break()])
    with pytest.raises(ValueError, match="recurrent_dropout=-0.1"):
        recurrent.recurrent_dropout = -0.1
    assert dropout.rate == 0.3 and recurrent.recurrent_dropout == 0.3
    for layer, before in zip((dropout, recurrent), states, strict=True):
        np.testing.assert_array_equal(_state(layer)[2:], before[2:])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# --- streams ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: layers.VariationalLSTMCell(4, seed=1, **ZEROS, **REGS),
        lambda: layers.LayerNormGRUCell(4, seed=2, **ZEROS, **REGS),
        lambda: layers.LayerNormWrapper(
            layers.VariationalSimpleRNNCell(
                4, dropout=0.3, recurrent_dropout=0.3, seed=3, **ZEROS
            )
        ),
    ],
)
def test_cells_in_keras_rnn_advance_their_stream_only_in_training(make_cell):
    # Keras' RNN asks a cell for its masks before every call, inference
    # included; the stream must move only when a step used them.
    cell = make_cell()
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.RNN(cell)(inputs))
    x = np.ones((2, 5, 3), "float32")
    before = _state(cell)
    model(x)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(_state(cell), before)
    model(x, training=True)
    assert _state(cell)[1] > before[1]
