import itertools

import keras
import numpy as np
import pytest

from keras_reg.layers import (
    VariationalGRU,
    VariationalGRUCell,
    VariationalSimpleRNN,
    VariationalSimpleRNNCell,
)
from tests.helpers import run_layer_test, six_sigma, to_numpy

RNG = np.random.default_rng(1)
REGS = dict(
    dropout=0.2,
    recurrent_dropout=0.2,
    output_dropout=0.1,
    weight_dropout=0.1,
    zoneout=0.1,
    seed=1,
)


def _pair(ours_cls, keras_cls, units=6, **kwargs):
    x = RNG.normal(size=(4, 7, 5)).astype("float32")
    ref, ours = keras_cls(units, **kwargs), ours_cls(units, **kwargs)
    ref(x)
    ours(x)
    ours.set_weights(ref.get_weights())
    return ref, ours, x


@pytest.mark.parametrize(
    "ours_cls, keras_cls, kwargs",
    [
        (VariationalGRU, keras.layers.GRU, {"return_sequences": True}),
        (VariationalGRU, keras.layers.GRU, {"reset_after": False}),
        (
            VariationalGRU,
            keras.layers.GRU,
            {"go_backwards": True, "return_state": True},
        ),
        (VariationalGRU, keras.layers.GRU, {"use_bias": False, "unroll": True}),
        (VariationalSimpleRNN, keras.layers.SimpleRNN, {"return_sequences": True}),
        (VariationalSimpleRNN, keras.layers.SimpleRNN, {"go_backwards": True}),
        (VariationalSimpleRNN, keras.layers.SimpleRNN, {"activation": "relu"}),
    ],
)
def test_matches_keras_at_rate_zero(ours_cls, keras_cls, kwargs):
    ref, ours, x = _pair(ours_cls, keras_cls, **kwargs)
    mask = np.ones((4, 7), bool)
    mask[2, 3:] = False
    for a, b in [(ref(x), ours(x)), (ref(x, mask=mask), ours(x, mask=mask))]:
        a = a if isinstance(a, list) else [a]
        b = b if isinstance(b, list) else [b]
        for u, v in zip(a, b, strict=True):
            np.testing.assert_allclose(to_numpy(u), to_numpy(v), atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_sequence_layer_equals_keras_rnn_of_the_cell(reset_after):
    x = RNG.normal(size=(8, 6, 5)).astype("float32")
    regs = dict(dropout=0.3, recurrent_dropout=0.3, per_gate_masks=True, seed=2)
    layer = VariationalGRU(4, reset_after=reset_after, return_sequences=True, **regs)
    rnn = keras.layers.RNN(
        VariationalGRUCell(4, reset_after=reset_after, **regs), return_sequences=True
    )
    layer.build(x.shape)
    rnn.build(x.shape)
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(layer(x, training=True)), to_numpy(rnn(x, training=True)), atol=1e-5
    )


@pytest.mark.parametrize("cls", [VariationalGRU, VariationalSimpleRNN])
def test_layer_contract(cls, tmp_path):
    run_layer_test(
        cls,
        {"units": 3, **REGS},
        input_shape=(4, 5, 2),
        expected_output_shape=(4, 3),
        tmp_path=tmp_path,
    )


def test_gru_per_gate_recurrent_masks_are_independent():
    # A linear GRU with z = 0 (bias -inf is not allowed; use a huge negative
    # bias on z) leaves h = candidate = x_h + r * (h_prev * m_h) @ R_h with
    # r = 1 (huge bias). Per-gate masks make m_h independent of m_z, m_r.
    x = np.zeros((400, 3, 20), "float32")
    x[:, 0] = 1.0
    for per_gate in (False, True):
        layer = VariationalGRU(
            20,
            activation="linear",
            return_sequences=True,
            recurrent_dropout=0.5,
            per_gate_masks=per_gate,
            seed=3,
        )
        layer.build(x.shape)
        kernel = np.zeros((20, 60), "float32")
        kernel[:, 40:] = np.eye(20)
        recurrent = np.zeros((20, 60), "float32")
        recurrent[:, 40:] = np.eye(20)
        bias = np.zeros((2, 60), "float32")
        bias[0, :20] = -30.0  # z = 0
        bias[0, 20:40] = 30.0  # r = 1
        layer.set_weights([kernel, recurrent, bias])
        h = to_numpy(layer(x, training=True))
        np.testing.assert_allclose(h[:, 0], 1.0, atol=1e-6)
        assert set(np.round(np.unique(h[:, 1]), 5)) == {0.0, 2.0}
        np.testing.assert_allclose(h[:, 2], 2.0 * h[:, 1], atol=1e-5)


# --- the seed document's worked example ------------------------------------------


def _seed_example_layer(**kwargs):
    layer = VariationalSimpleRNN(1, use_bias=False, return_sequences=True, **kwargs)
    layer.build((None, 2, 1))
    layer.set_weights([np.array([[0.5]], "float32"), np.array([[0.8]], "float32")])
    return layer


X = np.array([[[1.0], [2.0]]], "float32")


def test_seed_example_without_dropout():
    h = to_numpy(_seed_example_layer()(X))[0, :, 0]
    np.testing.assert_allclose(h, [0.462, 0.878], atol=1e-3)


def _allowed_pairs(shared_input):
    """Every (h1, h2) the masks can give, enumerated in NumPy (rate 0.5:
    a kept unit is scaled by 2, a dropped one is 0)."""
    pairs = set()
    for m1, m2, r in itertools.product((0.0, 2.0), repeat=3):
        if shared_input and m1 != m2:
            continue
        h1 = np.tanh(0.5 * 1.0 * m1)
        h2 = np.tanh(0.5 * 2.0 * m2 + 0.8 * h1 * r)
        pairs.add((round(float(h1), 3), round(float(h2), 3)))
    return pairs


@pytest.mark.parametrize("shared_input", [True, False])
def test_seed_example_masks_obey_the_sharing_mode(shared_input):
    allowed = _allowed_pairs(shared_input)
    seen = set()
    for seed in range(120):
        layer = _seed_example_layer(
            dropout=0.5,
            recurrent_dropout=0.5,
            share_input_mask=shared_input,
            seed=seed,
        )
        h = to_numpy(layer(X, training=True))[0, :, 0]
        seen.add((round(float(h[0]), 3), round(float(h[1]), 3)))
    assert seen <= allowed, seen - allowed
    # The seed document's (0.761, 0.839) needs a different input mask at each
    # step (m_x = [1, 0]): per-step masks only.
    assert ((0.762, 0.839) in seen) is (not shared_input)
    assert ((0.762, 0.839) in allowed) is (not shared_input)


def test_simple_rnn_input_mask_identical_across_time():
    layer = VariationalSimpleRNN(
        40,
        activation="linear",
        use_bias=False,
        return_sequences=True,
        dropout=0.5,
        seed=4,
    )
    layer.build((None, 5, 40))
    layer.set_weights([np.eye(40, dtype="float32"), np.zeros((40, 40), "float32")])
    h = to_numpy(layer(np.ones((300, 5, 40), "float32"), training=True))
    assert np.all(h == h[:, :1])
    assert abs(np.mean(h[:, 0] == 0) - 0.5) < six_sigma(0.5, h[:, 0].size)


@pytest.mark.parametrize("cls", [VariationalGRUCell, VariationalSimpleRNNCell])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="recurrent_dropout"):
        cls(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="per_gate_masks"):
        cls(3, per_gate_masks=None)
