"""`recurrent_dropout_mode`: the recurrent mask per sample, or one per call.

`"batch"` shares one recurrent mask by every sample of a call; it is folded
into the recurrent kernel (`(h * m) @ U == h @ (diag(m) @ U)`), so that
the fused kernels run the call. What it computes is checked here on the
portable loop, with probes whose outputs read the mask (`h_t = h_{t-1} *
m` from `h_0 = 1`); the fast paths are checked against the portable loop
in tests/test_fast_paths.py.
"""

import keras
import numpy as np
import pytest

from keras_reg import layers
from keras_reg.layers import _samples
from tests.helpers import six_sigma, to_numpy
from tests.test_recurrent import (
    GATES,
    PINNED,
    TWO_GATES,
    _linear,
    _n_states,
    _ones_states,
    _recurrent_probe,
)

CLASSES = [
    getattr(layers, f"{family}{kind}{suffix}")
    for family in ("Variational", "LayerNorm")
    for kind in ("LSTM", "GRU", "SimpleRNN")
    for suffix in ("Cell", "")
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_recurrent_dropout_mode_is_validated_at_construction(cls):
    for bad in ("Batch", "per_sample", None, 1):
        with pytest.raises(ValueError, match=r"`recurrent_dropout_mode`.*Received"):
            cls(4, recurrent_dropout=0.2, recurrent_dropout_mode=bad)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_recurrent_dropout_mode_defaults_to_sample_and_round_trips_the_config(cls):
    assert cls(4).get_config()["recurrent_dropout_mode"] == "sample"
    layer = cls(4, recurrent_dropout=0.2, recurrent_dropout_mode="batch")
    config = layer.get_config()
    assert config["recurrent_dropout_mode"] == "batch"
    assert cls.from_config(config).recurrent_dropout_mode == "batch"


@pytest.mark.parametrize("kind", sorted(GATES))
def test_batch_mode_drops_the_same_units_for_every_sample_and_step(kind):
    layer, states = _recurrent_probe(
        kind, 40, recurrent_dropout=0.5, recurrent_dropout_mode="batch", seed=4
    )
    x = np.zeros((16, 3, 40), "float32")
    states = _ones_states(states, 16)
    kept = []
    for _ in range(30):
        h = to_numpy(layer(x, initial_state=states, training=True))
        assert set(np.unique(h[:, 0])) <= {0.0, 2.0}  # h_1 = m
        np.testing.assert_array_equal(h[:, 0], np.repeat(h[:1, 0], 16, 0))
        np.testing.assert_array_equal(h[:, 1], 2.0 * h[:, 0])  # h_2 = m * m
        np.testing.assert_array_equal(h[:, 2], 2.0 * h[:, 1])
        kept.append(h[0, 0] > 0)
    kept = np.array(kept)  # a fresh mask per call, half of the units kept
    assert abs(kept.mean() - 0.5) < six_sigma(0.5, kept.size)
    assert abs(np.mean(kept[1:] != kept[:-1]) - 0.5) < six_sigma(0.5, kept[1:].size)
    # Inference draws nothing.
    np.testing.assert_array_equal(to_numpy(layer(x, initial_state=states)), 1.0)


@pytest.mark.parametrize("per_gate_masks", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_mode_combines_with_per_gate_masks(kind, per_gate_masks):
    # Two gates' recurrent masks read off one linear output per unit (see
    # TWO_GATES): with per-gate masks they are independent of each other,
    # and every sample sees the same ones.
    units, batch = 256, 4
    visible, table = TWO_GATES[kind]
    layer = _linear(
        kind,
        units,
        recurrent=visible,
        bias=PINNED[kind],
        recurrent_dropout=0.5,
        recurrent_dropout_mode="batch",
        per_gate_masks=per_gate_masks,
        seed=6,
        **({"reset_after": True} if kind == "gru" else {}),
    )
    x = np.zeros((batch, 1, units), "float32")
    states = [np.ones((batch, units), "float32")] * _n_states(layer)
    h = to_numpy(layer(x, initial_state=states, training=True))[:, 0]
    values = np.array(list(table.values()))
    nearest = np.abs(h[..., None] - values).argmin(-1)
    np.testing.assert_allclose(h, values[nearest], atol=1e-5)
    assert np.all(nearest == nearest[:1])  # one mask for the batch
    kept = np.array(list(table))[nearest[0]]  # (units, 2): each gate kept?
    agreement = np.mean(kept[:, 0] == kept[:, 1])
    if per_gate_masks:
        assert abs(agreement - 0.5) < six_sigma(0.5, units)
    else:
        assert agreement == 1.0


@pytest.mark.parametrize("per_gate_masks", [False, True])
def test_a_batch_mode_cell_in_keras_rnn_equals_the_sequence_layer(per_gate_masks):
    regs = dict(
        recurrent_dropout=0.4,
        recurrent_dropout_mode="batch",
        weight_dropout=0.3,
        per_gate_masks=per_gate_masks,
        seed=9,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7, 3)).astype("float32")
    # Weights from NumPy: zeros spare JAX a compiled random draw per shape.
    regs.update(kernel_initializer="zeros", recurrent_initializer="zeros")
    sequence = layers.VariationalLSTM(6, return_sequences=True, **regs)
    rnn = keras.layers.RNN(layers.VariationalLSTMCell(6, **regs), return_sequences=True)
    sequence.build(x.shape)
    rnn.build(x.shape)
    weights = [0.5 * rng.normal(size=w.shape).astype("float32") for w in rnn.weights]
    sequence.set_weights(weights)
    rnn.set_weights(weights)
    a = to_numpy(sequence(x, training=True))
    b = to_numpy(rnn(x, training=True))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_batch_mode_equals_a_numpy_lstm_with_the_rows_of_u_dropped():
    # The NumPy LSTM below drops the units of h with one mask m for the
    # whole batch. m is read off a probe layer (h_1 = m, as above) with the
    # same seed: the same stream draws the same first mask.
    units, batch, steps = 8, 6, 5
    rng = np.random.default_rng(1)
    probe, states = _recurrent_probe(
        "lstm", units, recurrent_dropout=0.5, recurrent_dropout_mode="batch", seed=11
    )
    m = to_numpy(
        probe(np.zeros((1, 1, units), "float32"), initial_state=states, training=True)
    )[0, 0]
    layer = layers.VariationalLSTM(
        units,
        recurrent_dropout=0.5,
        recurrent_dropout_mode="batch",
        return_sequences=True,
        seed=11,
        kernel_initializer="zeros",  # set from NumPy below
        recurrent_initializer="zeros",
    )
    layer.build((None, steps, units))
    weights = [0.5 * rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    x = rng.normal(size=(batch, steps, units)).astype("float32")
    got = to_numpy(layer(x, training=True))
    kernel, recurrent, bias = weights

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    h = c = np.zeros((batch, units))
    for t in range(steps):
        z = x[:, t] @ kernel + (h * m) @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        np.testing.assert_allclose(got[:, t], h, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_stacked_samples_draw_one_batch_mode_mask_each(kind):
    # mc_predict's stacked call (`_samples.stacked`): the batch holds
    # `count` samples of 5 rows each. Each sample draws its own batch-shared
    # mask, which its rows share (0.3 folded one mask for all of them).
    count, rows, units = 6, 5, 40
    layer, states = _recurrent_probe(
        kind, units, recurrent_dropout=0.5, recurrent_dropout_mode="batch", seed=4
    )
    x = np.zeros((count * rows, 2, units), "float32")
    states = _ones_states(states, count * rows)
    with _samples.stacked(count):
        h = to_numpy(layer(x, initial_state=states, training=True))
    masks = h[:, 0].reshape(count, rows, units)  # h_1 = m
    assert set(np.unique(masks)) <= {0.0, 2.0}
    np.testing.assert_array_equal(masks, np.repeat(masks[:, :1], rows, 1))
    assert len({m.tobytes() for m in masks[:, 0]}) == count
    np.testing.assert_array_equal(h[:, 1], 2.0 * h[:, 0])  # the same mask at t=2
    kept = masks[:, 0] > 0
    assert abs(kept.mean() - 0.5) < six_sigma(0.5, kept.size)
