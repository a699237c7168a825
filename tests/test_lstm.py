import keras
import numpy as np
import pytest

from keras_reg.layers import VariationalLSTM, VariationalLSTMCell
from tests.helpers import run_layer_test, six_sigma, to_numpy

RNG = np.random.default_rng(0)


def _pair(units=6, features=5, **kwargs):
    """A Keras LSTM and ours with the same weights."""
    x = RNG.normal(size=(4, 7, features)).astype("float32")
    ref = keras.layers.LSTM(units, **kwargs)
    ours = VariationalLSTM(units, **kwargs)
    ref(x)
    ours(x)
    ours.set_weights(ref.get_weights())
    return ref, ours, x


def _close(a, b, atol=1e-5):
    for u, v in zip(
        a if isinstance(a, list) else [a],
        b if isinstance(b, list) else [b],
        strict=True,
    ):
        np.testing.assert_allclose(to_numpy(u), to_numpy(v), atol=atol)


# --- equals keras.layers.LSTM with every rate at 0 ----------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"return_sequences": True},
        {"return_state": True},
        {"go_backwards": True, "return_sequences": True},
        {"unroll": True, "return_sequences": True},
        {"use_bias": False, "activation": "relu"},
    ],
)
def test_matches_keras_lstm_at_rate_zero(kwargs):
    ref, ours, x = _pair(**kwargs)
    assert [w.shape for w in ours.weights] == [w.shape for w in ref.weights]
    _close(ref(x), ours(x))
    _close(ref(x, training=True), ours(x, training=True))


def test_matches_keras_with_masking_and_initial_state():
    ref, ours, x = _pair(return_sequences=True)
    mask = np.ones((4, 7), bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    h0 = RNG.normal(size=(4, 6)).astype("float32")
    c0 = RNG.normal(size=(4, 6)).astype("float32")
    _close(
        ref(x, mask=mask, initial_state=[h0, c0]),
        ours(x, mask=mask, initial_state=[h0, c0]),
    )


def test_sequence_layer_equals_keras_rnn_of_the_cell_in_training():
    x = RNG.normal(size=(8, 6, 5)).astype("float32")
    regs = dict(
        dropout=0.3, recurrent_dropout=0.3, output_dropout=0.2, weight_dropout=0.2
    )
    layer = VariationalLSTM(4, return_sequences=True, seed=3, **regs)
    rnn = keras.layers.RNN(
        VariationalLSTMCell(4, seed=3, **regs), return_sequences=True
    )
    layer.build(x.shape)
    rnn.build(x.shape)
    rnn.set_weights(layer.get_weights())
    # Same seed, same draws in the same order: the same masks. (Built, not
    # called: keras.layers.RNN asks a cell for masks at every call, even in
    # inference, which moves its stream on.)
    _close(layer(x, training=True), rnn(x, training=True))
    _close(layer(x, training=True), rnn(x, training=True))


# --- masks revealed by a linear probe -------------------------------------------


def _linear_probe(features, **kwargs):
    """A linear LSTM whose h_t shows the masks.

    Gates i and o are held at 1 (bias 1, no weights), f at 0, and the
    candidate g = x @ I + h_prev @ R. So c_t = g_t and h_t = c_t.
    """
    layer = VariationalLSTM(
        features,
        activation="linear",
        recurrent_activation="linear",
        return_sequences=True,
        unit_forget_bias=False,
        **kwargs,
    )
    layer.build((None, None, features))
    u = features
    kernel = np.zeros((features, 4 * u), "float32")
    kernel[:, 2 * u : 3 * u] = np.eye(features)
    bias = np.zeros(4 * u, "float32")
    bias[:u] = 1.0
    bias[3 * u :] = 1.0
    return layer, kernel, bias


def test_input_mask_identical_across_time_and_differs_between_samples_and_calls():
    layer, kernel, bias = _linear_probe(50, dropout=0.5, seed=1)
    layer.set_weights([kernel, np.zeros((50, 200), "float32"), bias])
    x = np.ones((300, 6, 50), "float32")
    h = to_numpy(layer(x, training=True))  # h_t = mask_t (0 or 2)
    assert set(np.unique(h)) == {0.0, 2.0}
    assert np.all(h == h[:, :1, :])
    assert abs(np.mean(h[0::2, 0] != h[1::2, 0]) - 0.5) < six_sigma(0.5, 150 * 50)
    again = to_numpy(layer(x, training=True))
    assert abs(np.mean(again[:, 0] != h[:, 0]) - 0.5) < six_sigma(0.5, 300 * 50)
    dropped = np.mean(h[:, 0] == 0)
    assert abs(dropped - 0.5) < six_sigma(0.5, 300 * 50)


def test_share_input_mask_false_draws_a_fresh_mask_each_step():
    layer, kernel, bias = _linear_probe(50, dropout=0.5, share_input_mask=False, seed=1)
    layer.set_weights([kernel, np.zeros((50, 200), "float32"), bias])
    h = to_numpy(layer(np.ones((300, 6, 50), "float32"), training=True))
    assert set(np.unique(h)) == {0.0, 2.0}
    assert abs(np.mean(h[:, 0] != h[:, 1]) - 0.5) < six_sigma(0.5, 300 * 50)


def test_per_gate_masks_are_independent_per_gate():
    # Gate i = x * m_i (kernel block I, bias 0); g = x * m_g: h = m_i * m_g.
    for per_gate, expected in ((False, 0.5), (True, 0.25)):
        layer, kernel, bias = _linear_probe(
            40, dropout=0.5, per_gate_masks=per_gate, seed=2
        )
        kernel[:, :40] = np.eye(40)
        bias[:40] = 0.0
        layer.set_weights([kernel, np.zeros((40, 160), "float32"), bias])
        h = to_numpy(layer(np.ones((500, 3, 40), "float32"), training=True))
        kept = np.mean(h[:, 0] != 0)
        assert abs(kept - expected) < six_sigma(expected, 500 * 40), per_gate


def _recurrent_probe(features, **kwargs):
    layer, kernel, bias = _linear_probe(features, **kwargs)
    recurrent = np.zeros((features, 4 * features), "float32")
    recurrent[:, 2 * features : 3 * features] = np.eye(features)
    layer.set_weights([kernel, recurrent, bias])
    x = np.zeros((400, 4, features), "float32")
    x[:, 0] = 1.0  # h_0 = 1, then h_t = h_{t-1} * r
    return layer, x


def test_recurrent_mask_identical_across_time():
    layer, x = _recurrent_probe(30, recurrent_dropout=0.5, seed=4)
    h = to_numpy(layer(x, training=True))
    assert np.all(h[:, 0] == 1.0)
    assert set(np.unique(h[:, 1])) == {0.0, 2.0}
    np.testing.assert_array_equal(h[:, 2], 2.0 * h[:, 1])  # r * r = 2 r
    np.testing.assert_array_equal(h[:, 3], 2.0 * h[:, 2])
    assert abs(np.mean(h[0::2, 1] != h[1::2, 1]) - 0.5) < six_sigma(0.5, 200 * 30)


def test_weight_dropout_zeroes_the_same_recurrent_entries_for_the_whole_call():
    layer, x = _recurrent_probe(30, weight_dropout=0.5, seed=5)
    h = to_numpy(layer(x, training=True))
    assert np.all(h[:, 1] == h[:1, 1])  # one mask for the whole batch
    np.testing.assert_array_equal(h[:, 2], 2.0 * h[:, 1])  # and all steps
    h2 = to_numpy(layer(x, training=True))
    assert np.any(h2[0, 1] != h[0, 1])  # a fresh mask per call


def test_output_dropout_changes_outputs_never_the_carried_state():
    ref, ours, x = _pair(units=64, return_state=True)
    dropped = VariationalLSTM(64, return_state=True, output_dropout=0.5, seed=6)
    dropped(x)
    dropped.set_weights(ref.get_weights())
    output, h, c = dropped(x, training=True)
    _, h_ref, c_ref = ref(x)
    _close([h, c], [h_ref, c_ref])
    output, h = to_numpy(output), to_numpy(h)
    kept = output != 0
    np.testing.assert_allclose(output[kept], 2.0 * h[kept], rtol=1e-5)
    assert 0.3 < kept.mean() < 0.7


def _numpy_lstm_step(x, h, c, kernel, recurrent, bias):
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    z = x @ kernel + h @ recurrent + bias
    i, f, g, o = np.split(z, 4, axis=-1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def test_zoneout_at_inference_is_the_expectation():
    z = 0.3
    layer = VariationalLSTM(5, zoneout=z, return_sequences=True, return_state=True)
    x = RNG.normal(size=(3, 6, 4)).astype("float32")
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


def test_zoneout_in_training_keeps_old_or_takes_new():
    z = 0.4
    layer = VariationalLSTM(50, zoneout=z, return_state=True, seed=8)
    x = RNG.normal(size=(200, 1, 3)).astype("float32")
    h0 = RNG.normal(size=(200, 50)).astype("float32")
    c0 = RNG.normal(size=(200, 50)).astype("float32")
    _, h1, c1 = layer(x, initial_state=[h0, c0], training=True)
    h_new, c_new = _numpy_lstm_step(x[:, 0], h0, c0, *layer.get_weights())
    for got, old, new in ((h1, h0, h_new), (c1, c0, c_new)):
        got = to_numpy(got)
        is_old = np.isclose(got, old, atol=1e-6)
        is_new = np.isclose(got, new, atol=1e-5)
        assert np.all(is_old | is_new)
        assert abs(np.mean(is_old & ~is_new) - z) < six_sigma(z, got.size) + 0.01


# --- the layer contract and bad input ---------------------------------------------


def test_variational_lstm_layer_contract(tmp_path):
    run_layer_test(
        VariationalLSTM,
        {
            "units": 3,
            "dropout": 0.2,
            "recurrent_dropout": 0.2,
            "output_dropout": 0.1,
            "weight_dropout": 0.1,
            "zoneout": 0.1,
            "seed": 1,
        },
        input_shape=(4, 5, 2),
        expected_output_shape=(4, 3),
        tmp_path=tmp_path,
    )


def test_bidirectional_stateful_and_embedding_masks_train():
    inputs = keras.Input((6,), dtype="int32", batch_size=4)
    x = keras.layers.Embedding(20, 8, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(
        VariationalLSTM(5, dropout=0.2, recurrent_dropout=0.2, return_sequences=True)
    )(x)
    x = VariationalLSTM(5, stateful=True, zoneout=0.1)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="adam", loss="mse")
    ids = RNG.integers(0, 20, size=(8, 6))
    ids[:, 4:] = 0
    history = model.fit(ids, np.ones((8, 1)), batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dropout": 1.0}, "dropout"),
        ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"zoneout": float("nan")}, "zoneout"),
        ({"weight_dropout": "0.1"}, "weight_dropout"),
        ({"per_gate_masks": "yes"}, "per_gate_masks"),
        ({"share_input_mask": 1}, "share_input_mask"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VariationalLSTM(4, **kwargs)
    with pytest.raises(ValueError, match=match):
        VariationalLSTMCell(4, **kwargs)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="ndim"):
        VariationalLSTM(4)(keras.Input((5,)))


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
    jit = keras.backend.backend() != "torch"
    inputs = keras.Input((6, 3))
    x = VariationalLSTM(
        5, dropout=0.3, recurrent_dropout=0.3, zoneout=0.1, return_sequences=True
    )(inputs)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(2))(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", jit_compile=jit)
    x = RNG.normal(size=(16, 6, 3)).astype("float32")
    y = RNG.normal(size=(16, 6, 2)).astype("float32")
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
