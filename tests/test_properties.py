"""Properties over shapes, rates and seeds (hypothesis), for the dropout
family and the recurrent cells' masks.

The examples are derandomized (the same ones on every run and machine), so
the statistical bound cannot flake between runs; it is 6 sigma besides.
JAX runs fewer examples: eager JAX compiles every op for every new shape
(about 2 s an example here), and the portable masks are bit-identical
across backends (`test_random.py`), so the other backends' examples hold
for it too.
"""

import math

import keras
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_reg import _random, layers
from keras_reg.layers.rnn import _masks
from tests.helpers import to_numpy
from tests.training_call import training_call

SETTINGS = settings(
    max_examples=8 if keras.backend.backend() == "jax" else 25,
    deadline=None,
    derandomize=True,
    database=None,
)
rates = st.floats(0.0, 0.95).map(lambda r: round(r, 3))
seeds = st.integers(0, 2**31 - 1)


def _scale(rate):
    """The exact scale of kept units: 1 / keep probability of the threshold."""
    return _random.ONE / (_random.ONE - _random.threshold(rate))


@st.composite
def shapes_and_shared_axes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
    shared = draw(st.lists(st.integers(1, len(shape) - 1), unique=True, max_size=2))
    return shape, sorted(shared)


@SETTINGS
@given(shapes_and_shared_axes(), rates, seeds)
def test_inverted_dropout_is_binary_times_scale_and_shares_axes(case, rate, seed):
    shape, shared = case
    x = np.random.default_rng(seed % 1000).uniform(1, 2, size=shape)
    x = x.astype("float32")
    layer = layers.InvertedDropout(rate, shared_axes=shared or None, seed=seed)
    ratio = training_call(layer, x) / x
    # Every unit is dropped (0) or kept and scaled by exactly 1 / (1 - rate).
    kept = ratio != 0
    np.testing.assert_allclose(ratio[kept], _scale(rate), rtol=1e-6)
    # One mask value along each shared axis.
    for axis in shared:
        first = np.take(kept, [0], axis=axis)
        assert np.array_equal(np.broadcast_to(first, kept.shape), kept)
    # Inference is the identity.
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)


@SETTINGS
@given(rates, seeds)
def test_scaled_mean_is_preserved(rate, seed):
    n = 20_000
    y = to_numpy(
        layers.InvertedDropout(rate, seed=seed)(np.ones((n,), "float32"), training=True)
    )
    # Each unit is scale * Bernoulli(1 - rate): mean 1, variance rate / (1 - rate).
    sigma = math.sqrt(rate / (1 - rate) / n)
    assert abs(y.mean() - 1.0) <= 6 * sigma + 1e-6


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 7), rates, seeds)
def test_time_shared_and_drop_path_masks_follow_their_axes(
    batch, steps, features, rate, seed
):
    x = np.ones((batch, steps, features), "float32")
    shared = training_call(layers.TimeSharedDropout(rate, seed=seed), x)
    # One mask per sample and feature, the same at every step.
    assert np.array_equal(shared, np.broadcast_to(shared[:, :1], shared.shape))
    assert set(np.unique(shared)) <= {0.0, np.float32(_scale(rate))}
    path = training_call(layers.DropPath(rate, seed=seed), x)
    # A whole sample is dropped or kept.
    per_sample = path.reshape(batch, -1)
    assert np.all(per_sample == per_sample[:, :1])
    assert set(np.unique(path)) <= {0.0, np.float32(_scale(rate))}


@SETTINGS
@given(st.integers(5, 30), st.integers(1, 4), st.integers(1, 8), rates, seeds)
def test_embedding_dropout_drops_word_types(vocab, batch, length, rate, seed):
    ids = np.random.default_rng(seed % 1000).integers(0, vocab, size=(batch, length))
    # A random table from NumPy: the layer's own initializer would compile a
    # draw at every vocabulary size on JAX.
    layer = layers.EmbeddingDropout(
        vocab, 3, rate, seed=seed, embeddings_initializer="zeros"
    )
    layer.build(ids.shape)
    table = np.random.default_rng(seed % 997).uniform(0.5, 1.5, size=(vocab, 3))
    layer.embeddings.assign(table.astype("float32"))
    table = to_numpy(layer.embeddings)
    ratio = training_call(layer, ids) / table[ids]
    # Every occurrence of a word gets the same factor, 0 or the scale.
    for word in np.unique(ids):
        factors = ratio[ids == word]
        assert np.allclose(factors, factors[0, 0], rtol=1e-6)
        assert factors[0, 0] == 0 or np.isclose(factors[0, 0], _scale(rate))


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(3, 9),
    st.integers(3, 9),
    st.integers(1, 3),
    st.floats(0.05, 0.5),
    seeds,
)
def test_drop_block_zeroes_whole_blocks_and_rescales(
    batch, height, width, block, rate, seed
):
    x = np.ones((batch, height, width, 2), "float32")
    y = training_call(layers.DropBlock2D(rate, block, seed=seed), x)
    # One factor for every kept unit of the batch: units / kept units.
    kept = y != 0
    if kept.any():
        np.testing.assert_allclose(y[kept], x.size / kept.sum(), rtol=1e-6)
    # Every dropped unit lies in a whole dropped block inside the map.
    dropped = ~kept
    for b, i, j, c in zip(*np.nonzero(dropped), strict=True):
        assert any(
            dropped[b, p : p + block, q : q + block, c].all()
            for p in range(max(0, i - block + 1), min(i, height - block) + 1)
            for q in range(max(0, j - block + 1), min(j, width - block) + 1)
        ), (b, i, j, c)


# Each cell and the number of gate blocks its kernels hold.
CELLS = {
    layers.VariationalLSTMCell: 4,
    layers.VariationalGRUCell: 3,
    layers.VariationalSimpleRNNCell: 1,
    layers.LayerNormLSTMCell: 4,
}


@SETTINGS
@given(
    st.sampled_from(list(CELLS)),
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(1, 6),
    rates,
    rates,
    st.booleans(),
    seeds,
)
def test_cell_masks_are_binary_times_scale_and_shared_as_documented(
    cell_cls, batch, features, units, dropout, recurrent, per_gate, seed
):
    # One call's masks (the module every cell and sequence layer draws them
    # through): their values and shapes are the documented ones.
    # (Zero weights: the masks do not read them, and random initializers
    # would compile a draw at every weight shape on JAX.)
    cell = cell_cls(
        units,
        dropout=dropout,
        recurrent_dropout=recurrent,
        per_gate_masks=per_gate,
        seed=seed,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
    )
    cell.build((batch, features))
    masks = _masks.draw(cell, batch, features, "float32")._asdict()
    gates = CELLS[cell_cls] if per_gate else 1
    for name, rate, width in (
        ("input", dropout, features),
        ("recurrent", recurrent, units),
    ):
        if rate == 0:
            assert masks[name] is None
            continue
        mask = to_numpy(masks[name])
        assert mask.shape == (gates, batch, width)
        assert set(np.unique(mask)) <= {0.0, np.float32(_scale(rate))}
