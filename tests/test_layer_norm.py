"""LayerNorm cells, layers and the wrapper, against NumPy references written
here: layer normalization (Ba, Kiros & Hinton 2016) of `x @ kernel`, of
`h @ recurrent_kernel` and (LSTM) of the cell state, as in TensorFlow
Addons' `LayerNormLSTMCell`; of the pre-activation sum for the SimpleRNN
(TFA's `LayerNormSimpleRNNCell`, scale only, bias after the norm)."""

import keras
import numpy as np
import pytest

from keras_reg.layers import (
    LayerNormGRU,
    LayerNormGRUCell,
    LayerNormLSTM,
    LayerNormLSTMCell,
    LayerNormSimpleRNN,
    LayerNormSimpleRNNCell,
    LayerNormWrapper,
    VariationalLSTMCell,
    VariationalSimpleRNNCell,
)
from tests.helpers import to_numpy

# --- NumPy references -----------------------------------------------------------


def _ln(v, gamma, beta, eps):
    mean = v.mean(-1, keepdims=True)
    var = ((v - mean) ** 2).mean(-1, keepdims=True)
    out = gamma * (v - mean) / np.sqrt(var + eps)
    return out if beta is None else out + beta


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np_lstm(x, weights, eps, h, c, use_bias=True):
    if use_bias:
        kernel, recurrent, bias, kg, kb, rg, rb, sg, sb = weights
    else:
        (kernel, recurrent, kg, kb, rg, rb, sg, sb), bias = weights, 0.0
    outputs = []
    for t in range(x.shape[1]):
        z = _ln(x[:, t] @ kernel, kg, kb, eps) + _ln(h @ recurrent, rg, rb, eps) + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = _ln(_sigmoid(f) * c + _sigmoid(i) * np.tanh(g), sg, sb, eps)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, 1), h, c


def _np_simple_rnn(x, weights, eps, h, use_bias=True):
    if use_bias:
        kernel, recurrent, bias, gamma = weights
    else:
        (kernel, recurrent, gamma), bias = weights, 0.0
    outputs = []
    for t in range(x.shape[1]):
        h = np.tanh(_ln(x[:, t] @ kernel + h @ recurrent, gamma, None, eps) + bias)
        outputs.append(h)
    return np.stack(outputs, 1), h


def _np_gru(x, weights, eps, h, use_bias=True):
    if use_bias:
        kernel, recurrent, bias, kg, kb, rg, rb = weights
        input_bias, recurrent_bias = bias
    else:
        (kernel, recurrent, kg, kb, rg, rb), input_bias, recurrent_bias = weights, 0, 0
    outputs = []
    for t in range(x.shape[1]):
        xz, xr, xh = np.split(_ln(x[:, t] @ kernel, kg, kb, eps) + input_bias, 3, -1)
        hz, hr, hh = np.split(_ln(h @ recurrent, rg, rb, eps) + recurrent_bias, 3, -1)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
        outputs.append(h)
    return np.stack(outputs, 1), h


# Where a test sets every weight itself, the layers start from zeros: on JAX
# each random initializer compiles a draw at each new weight shape (0.3 s).
ZEROS = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}


def _random_weights(layer, rng, dtype):
    """Random kernels and biases, and norm scales/offsets away from 1/0."""
    weights = []
    for w in layer.weights:
        if "gamma" in w.path:
            weights.append(rng.uniform(0.5, 1.5, size=w.shape))
        else:
            weights.append(rng.normal(scale=0.6, size=w.shape))
    weights = [w.astype(dtype) for w in weights]
    layer.set_weights(weights)
    return [w.astype("float64") for w in weights]


CASES = {
    "lstm": (LayerNormLSTM, "norm_epsilon", 2),
    "gru": (LayerNormGRU, "norm_epsilon", 1),
    "simple_rnn": (LayerNormSimpleRNN, "layernorm_epsilon", 1),
}


def _reference(name, x, weights, eps, states, use_bias):
    if name == "lstm":
        return _np_lstm(x, weights, eps, *states, use_bias=use_bias)
    if name == "gru":
        return _np_gru(x, weights, eps, *states, use_bias=use_bias)
    return _np_simple_rnn(x, weights, eps, *states, use_bias=use_bias)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(
    "dtype, atol, eps, use_bias, weight_seed",
    [
        ("float64", 1e-6, None, True, 0),
        ("float64", 1e-6, 0.05, False, 1),
        ("float32", 2e-5, None, True, 2),
        ("float32", 2e-5, 1e-4, True, 3),
    ],
)
def test_layer_norm_layers_match_the_numpy_equations(
    name, dtype, atol, eps, use_bias, weight_seed
):
    layer_cls, eps_arg, n_states = CASES[name]
    rng = np.random.default_rng(weight_seed)
    units, x = 5, rng.normal(size=(3, 6, 4)).astype(dtype)
    kwargs = {"use_bias": use_bias, "dtype": dtype, **ZEROS}
    if eps is not None:
        kwargs[eps_arg] = eps
    layer = layer_cls(units, return_sequences=True, return_state=True, **kwargs)
    layer.build(x.shape)
    weights = _random_weights(layer, rng, dtype)
    states = [rng.normal(size=(3, units)).astype(dtype) for _ in range(n_states)]
    got = layer(x, initial_state=states if n_states > 1 else states[0])
    expected = _reference(
        name,
        x.astype("float64"),
        weights,
        getattr(layer.cell, eps_arg),
        [s.astype("float64") for s in states],
        use_bias,
    )
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(to_numpy(g), e, atol=atol)


def test_default_epsilons_and_weight_order_are_those_of_tensorflow_addons():
    lstm = LayerNormLSTMCell(3, **ZEROS)
    rnn = LayerNormSimpleRNNCell(3, **ZEROS)
    assert lstm.norm_epsilon == 1e-3 and rnn.layernorm_epsilon == 1e-5
    assert LayerNormGRUCell(3).norm_epsilon == 1e-3
    lstm.build((None, 2))
    rnn.build((None, 2))
    names = [w.path.split("/")[-1] for w in lstm.weights]
    assert names == [
        "kernel",
        "recurrent_kernel",
        "bias",
        "kernel_norm_gamma",
        "kernel_norm_beta",
        "recurrent_norm_gamma",
        "recurrent_norm_beta",
        "state_norm_gamma",
        "state_norm_beta",
    ]
    assert [tuple(w.shape) for w in lstm.weights[3:]] == [(12,)] * 4 + [(3,)] * 2
    names = [w.path.split("/")[-1] for w in rnn.weights]
    assert names == ["kernel", "recurrent_kernel", "bias", "sum_norm_gamma"]
    # unit_forget_bias, as in Keras and TFA.
    np.testing.assert_array_equal(to_numpy(lstm.bias)[3:6], 1.0)


def test_layer_norm_of_a_worked_example():
    # normalize([0.5, 1.0, -0.5]): mean 1/3, biased variance 0.3889, so
    # [0.267, 1.069, -1.336].
    cell = LayerNormSimpleRNNCell(
        3,
        activation=None,
        layernorm_epsilon=1e-12,
        kernel_initializer="identity",
        recurrent_initializer="zeros",
    )
    x = np.array([[0.5, 1.0, -0.5]], "float32")
    h, _ = cell(x, [np.zeros((1, 3), "float32")])
    np.testing.assert_allclose(to_numpy(h), [[0.267, 1.069, -1.336]], atol=1e-3)
    assert np.isclose(np.var(x), 0.3889, atol=1e-4)


def test_scaling_the_input_kernel_leaves_the_lstm_cell_unchanged():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 5, 6)).astype("float32")
    layer = LayerNormLSTM(7, return_sequences=True, norm_epsilon=1e-6, **ZEROS)
    layer.build(x.shape)
    _random_weights(layer, rng, "float32")
    before = to_numpy(layer(x))
    kernel = layer.cell.kernel
    kernel.assign(kernel * 3.7)
    np.testing.assert_allclose(to_numpy(layer(x)), before, atol=1e-4)
    # Not a property of the plain cell: the same scaling changes it.
    # (Unrolled on JAX, where each eager call would compile a scan.)
    plain = keras.layers.LSTM(
        7, return_sequences=True, unroll=keras.backend.backend() == "jax", **ZEROS
    )
    plain.build(x.shape)
    _random_weights(plain, rng, "float32")
    ref = to_numpy(plain(x))
    plain.cell.kernel.assign(plain.cell.kernel * 3.7)
    assert np.abs(to_numpy(plain(x)) - ref).max() > 1e-2


# --- the wrapper ----------------------------------------------------------------


def test_wrapper_outputs_are_normalized_at_every_step():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 9, 5)).astype("float32") * 3
    rnn = keras.layers.RNN(
        LayerNormWrapper(keras.layers.LSTMCell(16, **ZEROS), epsilon=1e-8),
        return_sequences=True,
    )
    rnn.build(x.shape)
    # Random cell weights; the norm keeps its initial scale 1 and offset 0.
    rnn.set_weights(
        [
            to_numpy(w)
            if w.path.endswith(("gamma", "beta"))
            else rng.normal(scale=0.5, size=w.shape).astype("float32")
            for w in rnn.weights
        ]
    )
    y = to_numpy(rnn(x))
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-3)


def test_wrapper_matches_numpy_and_normalizes_the_carried_state():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 5, 4)).astype("float64")
    wrapper = LayerNormWrapper(keras.layers.SimpleRNNCell(6, dtype="float64", **ZEROS))
    rnn = keras.layers.RNN(wrapper, return_sequences=True, dtype="float64")
    rnn.build(x.shape)
    weights = _random_weights(rnn, rng, "float64")
    names = [w.path.split("/")[-1] for w in rnn.weights]
    by_name = dict(zip(names, weights, strict=True))
    h = np.zeros((3, 6))
    expected = []
    for t in range(5):
        raw = np.tanh(
            x[:, t] @ by_name["kernel"]
            + h @ by_name["recurrent_kernel"]
            + by_name["bias"]
        )
        h = _ln(raw, by_name["gamma"], by_name["beta"], 1e-3)
        expected.append(h)
    np.testing.assert_allclose(to_numpy(rnn(x)), np.stack(expected, 1), atol=1e-6)


@pytest.mark.parametrize(
    "cell",
    [
        lambda: LayerNormWrapper(
            VariationalSimpleRNNCell(
                4,
                dropout=0.5,
                seed=3,
                activation=None,
                kernel_initializer="identity",
                recurrent_initializer="zeros",
            )
        ),
        lambda: LayerNormSimpleRNNCell(
            4,
            dropout=0.5,
            seed=3,
            activation=None,
            kernel_initializer="identity",
            recurrent_initializer="zeros",
        ),
    ],
    ids=["wrapper", "ln_cell"],
)
def test_input_mask_is_shared_across_time_through_layer_norm(cell):
    # Identity kernel, no recurrence: output_t = LN(x_t * m). A constant
    # input gives the same output at every step only if m is shared.
    x = np.tile(np.arange(1.0, 5.0, dtype="float32"), (64, 10, 1))
    # Unrolled on JAX: each eager call compiled a scan (4 here); unrolled,
    # each op compiles once, and each step calls the cell from Python, so a
    # mask drawn per step would show (a scan traces its step once).
    unroll = keras.backend.backend() == "jax"
    rnn = keras.layers.RNN(cell(), return_sequences=True, unroll=unroll)
    y = to_numpy(rnn(x, training=True))
    np.testing.assert_allclose(y, np.repeat(y[:, :1], 10, axis=1), atol=1e-6)
    assert len({tuple(np.round(row, 4)) for row in y[:, 0]}) > 4  # per sample
    assert not np.allclose(to_numpy(rnn(x, training=True)), y)  # per call
    np.testing.assert_allclose(  # inference: no mask
        to_numpy(rnn(x))[:, 0], np.repeat(to_numpy(rnn(x))[:1, 0], 64, 0), atol=1e-6
    )


def test_wrapper_in_bidirectional_with_masking_trains_and_saves(tmp_path):
    # The mask is an input of its own, so the masked steps can hold any id.
    rng = np.random.default_rng(8)
    id_input = keras.Input((7,), dtype="int32")
    mask_input = keras.Input((7,), dtype="bool")
    x = keras.layers.Embedding(30, 6, embeddings_initializer="zeros")(id_input)
    cell = VariationalLSTMCell(5, recurrent_dropout=0.3, seed=2, **ZEROS)
    x = keras.layers.Bidirectional(
        keras.layers.RNN(LayerNormWrapper(cell), return_sequences=True)
    )(x, mask=mask_input)
    x = keras.layers.GlobalAveragePooling1D()(x)
    dense = keras.layers.Dense(1, kernel_initializer="zeros")
    model = keras.Model([id_input, mask_input], dense(x))
    _random_weights(model, rng, "float32")
    model.compile(optimizer="adam", loss="mse")
    ids = rng.integers(1, 30, size=(16, 7))
    mask = np.ones((16, 7), bool)
    mask[:8, 5:] = False
    history = model.fit(
        [ids, mask], np.ones((16, 1)), batch_size=8, epochs=1, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    # Other ids at the last two steps of every sample (ids 1..29 -> 2..29, 1),
    # in one call with the originals.
    other = ids.copy()
    other[:, 5:] = ids[:, 5:] % 29 + 1
    both = [np.concatenate([ids, other]), np.concatenate([mask, mask])]
    outputs = to_numpy(model(both))
    before, after = outputs[:16], outputs[16:]
    # The backward direction reads the last steps first: only the mask keeps
    # them out of the padded samples' outputs.
    np.testing.assert_array_equal(after[:8], before[:8])
    assert np.all(np.abs(after[8:] - before[8:]) > 1e-6)
    path = tmp_path / "wrapped.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded(both)), outputs, atol=1e-6)
    np.testing.assert_array_equal(
        to_numpy(loaded([ids, mask], training=True)),
        to_numpy(model([ids, mask], training=True)),
    )


def test_wrapper_contract_round_trips_its_cell():
    wrapper = LayerNormWrapper(
        VariationalLSTMCell(3, dropout=0.1, seed=4), epsilon=1e-4, center=False
    )
    config = keras.saving.serialize_keras_object(wrapper)
    assert config["registered_name"] == "keras_reg>LayerNormWrapper"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored.cell) is VariationalLSTMCell
    assert restored.cell.dropout == 0.1 and restored.epsilon == 1e-4
    assert restored.get_config() == wrapper.get_config()
    restored.build((None, 2))
    assert [w.path.split("/")[-1] for w in restored.weights if "gamma" in w.path] == [
        "gamma"
    ]
    assert not any("beta" in w.path for w in restored.weights)


# --- bad arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: LayerNormLSTMCell(3, norm_epsilon=0.0), ValueError, "norm_epsilon"),
        (lambda: LayerNormLSTM(3, norm_epsilon=-1e-3), ValueError, "norm_epsilon"),
        (lambda: LayerNormGRUCell(3, norm_epsilon="a"), ValueError, "norm_epsilon"),
        (
            lambda: LayerNormSimpleRNNCell(3, layernorm_epsilon=0),
            ValueError,
            "layernorm_epsilon",
        ),
        (
            lambda: LayerNormLSTMCell(3, norm_gamma_initializer="onez"),
            ValueError,
            "norm_gamma_initializer",
        ),
        (
            lambda: LayerNormSimpleRNN(3, gamma_initializer="nope"),
            ValueError,
            "gamma_initializer",
        ),
        (lambda: LayerNormGRU(3, reset_after=False), ValueError, "reset_after"),
        (lambda: LayerNormWrapper(keras.layers.Dense(3)), TypeError, "cell"),
        (lambda: LayerNormWrapper("lstm"), TypeError, "cell"),
        (
            lambda: LayerNormWrapper(keras.layers.LSTMCell(3), epsilon=0.0),
            ValueError,
            "epsilon",
        ),
        (
            lambda: LayerNormWrapper(keras.layers.GRUCell(3), center="no"),
            ValueError,
            "center",
        ),
        (
            lambda: LayerNormWrapper(VariationalLSTMCell(3, output_dropout=0.2)),
            ValueError,
            "output_dropout",
        ),
    ],
)
def test_bad_layer_norm_arguments_raise_naming_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()
