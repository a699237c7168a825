"""Stacked sampling draws the distribution of separate calls.

`mc_predict` runs several Monte Carlo samples in one call: the batch is
tiled `count` times and each copy must draw its own masks. A layer whose
mask is shared by the batch (folded into a kernel, drawn once per call,
a batch statistic) can silently give every stacked copy the same mask:
then the samples collapse to one and the standard deviation is 0 (issue
28 §2: `recurrent_dropout_mode="batch"` did exactly that on torch and JAX).

For every configuration of every layer below, one `mc_predict` stacks all
`samples` in one call and another runs one `predict` per sample
(`samples_per_call=1`). Two checks:

- distinct samples: where the layer has many outcomes, no two stacked
  samples are identical (with the batch-shared masks of 0.3's bug, all of
  them were); where it has two (a whole branch kept or dropped), both occur;
- the spread: the mean over elements of the per-element standard
  deviation, stacked over separate, lies in [1/2, 2]. Both are estimates
  of the same number; the bounds hold far beyond 6 sigma of the estimates'
  spread (see `_RATIO`), and a collapsed stack gives 0.

The configurations that stack run in groups (`_group`: those with the
same number of samples and rows, by family except on JAX): one model
holds each configuration of a group as its own branch (its own input,
its own sub-model, its own layers and seeds; a branch's draws do not
depend on the others'), so that one compiled stacked predict and one
compiled separate predict serve the whole group (on JAX and TensorFlow a
compile or trace per model and mode: about 1 s each for a recurrent
model). The recurrent weight drops, which do not stack, are one such
group too, run one predict per sample. Each configuration's test reads
its own branch's samples.
"""

import keras
import numpy as np
import pytest

from keras_reg import layers
from keras_reg.inference import _stackable, mc_predict

# Batch rows, time steps, features, units of the small models (24 units:
# a batch-shared recurrent mask alone has 2**24 outcomes, so 32 separate
# samples are all different too).
B, T, F, U = 6, 4, 3, 24
# Samples per estimate: a configuration with many outcomes averages the
# spread over its elements; one with two outcomes (a whole branch kept or
# dropped, p = 1/2) needs more samples: at 128, 6 sigma of the share of
# kept draws is 0.27, so each spread estimate is within 0.84 to 1.19 of
# the true one, and the ratio of two within [0.7, 1.42].
SAMPLES, BINARY_SAMPLES = 32, 128
_RATIO = (0.5, 2.0)

RNN_FAMILIES = [
    f"{family}{kind}"
    for family in ("Variational", "LayerNorm")
    for kind in ("LSTM", "GRU", "SimpleRNN")
]
# Every regularization option of the recurrent layers, alone (and the
# combinations that change the masks' layout).
RNN_OPTIONS = {
    "dropout": dict(dropout=0.5),
    "dropout_per_step": dict(dropout=0.5, share_input_mask=False),
    "recurrent_sample": dict(recurrent_dropout=0.5),
    "recurrent_batch": dict(recurrent_dropout=0.5, recurrent_dropout_mode="batch"),
    "recurrent_batch_per_gate": dict(
        recurrent_dropout=0.5, recurrent_dropout_mode="batch", per_gate_masks=True
    ),
    "output_dropout": dict(output_dropout=0.5),
    "weight_dropout": dict(weight_dropout=0.5),
    "zoneout": dict(zoneout=0.5),
    "per_gate_masks": dict(dropout=0.5, recurrent_dropout=0.5, per_gate_masks=True),
    "all_batch": dict(
        dropout=0.3,
        recurrent_dropout=0.3,
        recurrent_dropout_mode="batch",
        output_dropout=0.3,
        zoneout=0.2,
    ),
}


# Random initial weights drawn in NumPy (conftest's `numpy_weights`).
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _data(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _sequence_model(family, options):
    cls = getattr(layers, family)
    if family.endswith("SimpleRNN") and options.get("per_gate_masks"):
        options = dict(options, per_gate_masks=False)
    inputs = keras.Input((T, F))
    outputs = cls(U, return_sequences=True, seed=7, **options)(inputs)
    return keras.Model(inputs, outputs), _data(0, (B, T, F))


def _keras_rnn_model(options):
    # A keras_reg cell inside Keras' own RNN layer draws through
    # `get_dropout_mask`, not the sequence layer.
    inputs = keras.Input((T, F))
    cell = layers.VariationalLSTMCell(U, seed=7, **options)
    outputs = keras.layers.RNN(cell, return_sequences=True)(inputs)
    return keras.Model(inputs, outputs), _data(0, (B, T, F))


def _single_layer_model(layer, shape, x=None):
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, layer(inputs))
    return model, _data(0, shape) if x is None else x


def _embedding_model():
    inputs = keras.Input((8,), dtype="int32")
    layer = layers.EmbeddingDropout(40, 3, 0.5, seed=7)
    model = keras.Model(inputs, layer(inputs))
    ids = np.arange(1, 1 + B * 8, dtype="int32").reshape(B, 8) % 40
    return model, ids


def _stochastic_depth_model():
    inputs = keras.Input((F,))
    branch = keras.layers.Dense(U, kernel_initializer="ones")(inputs)
    shortcut = keras.layers.Dense(U, kernel_initializer="ones")(inputs)
    outputs = layers.StochasticDepth(0.5, seed=7)([shortcut, branch])
    return keras.Model(inputs, outputs), _data(0, (B, F))


# name -> (a function building (model, x), whether it has many outcomes)
CONFIGURATIONS = {
    **{
        f"{family}-{name}": (
            lambda family=family, options=options: _sequence_model(family, options),
            True,
        )
        for family in RNN_FAMILIES
        for name, options in RNN_OPTIONS.items()
    },
    "keras.RNN(VariationalLSTMCell)-recurrent_batch": (
        lambda: _keras_rnn_model(
            dict(recurrent_dropout=0.5, recurrent_dropout_mode="batch")
        ),
        True,
    ),
    "keras.RNN(VariationalLSTMCell)-all": (
        lambda: _keras_rnn_model(
            dict(dropout=0.3, recurrent_dropout=0.3, output_dropout=0.3)
        ),
        True,
    ),
    "InvertedDropout": (
        lambda: _single_layer_model(layers.InvertedDropout(0.5, seed=7), (B, 8)),
        True,
    ),
    "InvertedDropout-noise_shape_batch_shared": (
        lambda: _single_layer_model(
            layers.InvertedDropout(0.5, noise_shape=(1, None), seed=7), (B, 12)
        ),
        True,
    ),
    "InvertedDropout-shared_axes_batch": (
        lambda: _single_layer_model(
            layers.InvertedDropout(0.5, shared_axes=[0], seed=7), (B, 4, 3)
        ),
        True,
    ),
    "TimeSharedDropout": (
        lambda: _single_layer_model(layers.TimeSharedDropout(0.5, seed=7), (B, T, F)),
        True,
    ),
    "DropPath-sample": (
        lambda: _single_layer_model(layers.DropPath(0.5, seed=7), (4 * B, 3)),
        True,
    ),
    "DropPath-batch": (
        lambda: _single_layer_model(layers.DropPath(0.5, mode="batch", seed=7), (B, 3)),
        False,
    ),
    "StochasticDepth": (_stochastic_depth_model, False),
    "EmbeddingDropout": (_embedding_model, True),
    "DropBlock1D": (
        lambda: _single_layer_model(layers.DropBlock1D(0.3, 3, seed=7), (B, 12, 2)),
        True,
    ),
    "DropBlock2D": (
        lambda: _single_layer_model(layers.DropBlock2D(0.3, 2, seed=7), (B, 6, 6, 2)),
        True,
    ),
    "DropBlock2D-shared_channels": (
        lambda: _single_layer_model(
            layers.DropBlock2D(0.3, 2, shared_channels=True, seed=7), (B, 6, 6, 2)
        ),
        True,
    ),
    "ConcreteDropout": (
        lambda: _single_layer_model(
            layers.ConcreteDropout(keras.layers.Dense(4), seed=7), (B, 6)
        ),
        True,
    ),
    "keras.Dropout": (
        lambda: _single_layer_model(keras.layers.Dropout(0.5, seed=7), (B, 8)),
        True,
    ),
    "keras.Dropout-noise_shape_batch_shared": (
        lambda: _single_layer_model(
            keras.layers.Dropout(0.5, noise_shape=(1, 12), seed=7), (B, 12)
        ),
        True,
    ),
    "keras.SpatialDropout1D": (
        lambda: _single_layer_model(
            keras.layers.SpatialDropout1D(0.5, seed=7), (B, T, 8)
        ),
        True,
    ),
}


# Each configuration's `(model, x)`, built once for the module (the
# principle test and the check that the configurations stack share them).
_MODELS = {}


def _model(name):
    if name not in _MODELS:
        _MODELS[name] = CONFIGURATIONS[name][0]()
    return _MODELS[name]


def _group(name):
    """The group of configurations whose samples one model draws: those
    that stack, by number of outcomes (samples) and of rows, and except on
    JAX by family (the options of one recurrent family, Keras' RNN over a
    keras_reg cell, the other layers). On JAX the branches' ops share
    their compiles by shape, and one group for all cost 14 CPU s less
    than a group per family; TensorFlow and torch took 7 and 3 s more
    with one group (measured on a loaded machine). The recurrent weight
    drops, which do not stack, are a group of their own: their model runs
    one predict per sample, and with them a stacking group would;
    together they compile one predict (JAX) or trace one (TensorFlow)
    instead of one each. Keras' Dropout sharing the batch axis, which
    does not stack either, keeps a group of its own."""
    model, x = _model(name)
    if not _stackable(model):
        # Keras' Dropout sharing the batch axis: 2**12 outcomes, so 32
        # samples collide with p = 0.11; its draws as a model of its own
        # are all distinct (in the weight drops' group they were not).
        alone = "" if name.endswith("-weight_dropout") else name
        return "one per sample", alone, CONFIGURATIONS[name][1], len(x)
    family = "all"
    if keras.backend.backend() != "jax":
        family = name.split("-")[0]
        if family not in RNN_FAMILIES and not family.startswith("keras.RNN"):
            family = "layers"
    return family, CONFIGURATIONS[name][1], len(x)


# name -> (stacked, separate) samples of that configuration.
_SAMPLES = {}


def _samples_of(name):
    """`name`'s `(stacked, separate)` samples: `mc_predict` stacking all
    of them in one call (seed 0), and one `predict` per sample (seed 1),
    of its group's model, drawn once for the group. The same for any
    order of the tests (seeded draws)."""
    if name not in _SAMPLES:
        key = _group(name)
        members = [n for n in sorted(CONFIGURATIONS) if _group(n) == key]
        if len(members) == 1:
            model, x = _model(name)
        else:
            inputs, outputs, x = [], [], []
            for member in members:
                sub, data = _model(member)
                inputs.append(keras.Input(data.shape[1:], dtype=str(data.dtype)))
                outputs.append(sub(inputs[-1]))
                x.append(data)
            model = keras.Model(inputs, outputs)
            # Every branch stacks, so the group does (none does in the
            # group that runs one predict per sample).
            assert _stackable(model) == (key[0] != "one per sample"), key
        samples = SAMPLES if CONFIGURATIONS[name][1] else BINARY_SAMPLES
        stacked = mc_predict(
            model,
            x,
            samples=samples,
            seed=0,
            samples_per_call=samples,
            return_samples=True,
        )[2]
        separate = mc_predict(
            model, x, samples=samples, seed=1, samples_per_call=1, return_samples=True
        )[2]
        if len(members) == 1:
            stacked, separate = [stacked], [separate]
        for member, a, b in zip(members, stacked, separate, strict=True):
            _SAMPLES[member] = a, b
    return _SAMPLES[name]


def _distinct(stack):
    """How many different samples `stack` (samples first) holds, to 4
    decimals (identical masks give identical rows to rounding)."""
    return len({np.round(sample, 4).tobytes() for sample in stack})


def _spread(stack):
    return float(np.mean(np.std(stack, axis=0)))


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_stacked_samples_draw_what_separate_calls_draw(name):
    many = CONFIGURATIONS[name][1]
    stacked, separate = _samples_of(name)
    samples = SAMPLES if many else BINARY_SAMPLES
    assert len(stacked) == len(separate) == samples
    distinct = _distinct(stacked)
    if many:
        assert distinct == samples, (name, distinct, _distinct(separate))
    else:
        assert distinct == 2, (name, distinct)
    ratio = _spread(stacked) / _spread(separate)
    assert _RATIO[0] <= ratio <= _RATIO[1], (name, ratio)


def test_the_stacked_configurations_stack():
    # The principle test above is only worth something where mc_predict
    # does stack: every configuration stacks except those documented to
    # run one predict per sample.
    not_stacked = {name for name in CONFIGURATIONS if not _stackable(_model(name)[0])}
    assert not_stacked == {
        *(f"{family}-weight_dropout" for family in RNN_FAMILIES),
        "keras.Dropout-noise_shape_batch_shared",
    }


def test_stacked_embedding_dropout_drops_a_word_at_every_position():
    # 32 samples stacked over rows of 32 positions, all one word: in each
    # sample the word is dropped or kept everywhere (the per-sample offsets
    # into the stacked word masks go along the samples, not the positions,
    # also where their count equals the positions').
    inputs = keras.Input((32,), dtype="int32")
    layer = layers.EmbeddingDropout(10, 2, 0.5, embeddings_initializer="ones", seed=3)
    model = keras.Model(inputs, layer(inputs))
    stack = mc_predict(
        model,
        np.full((4, 32), 3, "int32"),
        samples=32,
        seed=0,
        samples_per_call=32,
        return_samples=True,
    )[2]
    np.testing.assert_array_equal(stack, np.broadcast_to(stack[:, :1, :1], stack.shape))
    assert len(np.unique(stack)) == 2
