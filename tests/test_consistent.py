"""`mc_predict(..., consistent=True)`: consistent MC dropout (BatchBALD).

Sample `t` uses the same masks for every row of `x`, in every batch and
every call with the same seed. Per layer family:

- a row placed at several positions, in different batches, and in another
  call with other neighbours, another batch size and another number of
  samples per call, gets the same output for each sample `t`;
- the samples differ from each other (at least half of them distinct where
  a sample has 2**8 outcomes or more), and another seed gives others;
- for one row, the samples are distributed as without `consistent` for
  the row alone (a batch of one: DropBlock scales by the batch's kept
  fraction, `_distribution`): each output element's mean and variance
  agree within 6 sigma (the variance's sigma from the fourth central
  moment);
- Keras' own dropout layers (and layers that cannot draw consistent masks
  yet) are refused with a `ValueError` naming them.
"""

import keras
import numpy as np
import pytest

from keras_reg import layers
from keras_reg.inference import _stackable, mc_predict
from keras_reg.layers import _samples

B, T, F, U = 5, 4, 8, 24
SAMPLES = 24
# The distribution check: samples per estimate (fewer where the model runs
# one `predict` per sample).
MANY, MANY_UNSTACKED = 1024, 64


# Random initial weights drawn in NumPy (conftest's `numpy_weights`).
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _data(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _sequence(family, **options):
    def build():
        inputs = keras.Input((T, F))
        cls = getattr(layers, family)
        outputs = cls(U, return_sequences=True, seed=7, **options)(inputs)
        return keras.Model(inputs, outputs), _data(0, (B, T, F))

    return build


def _keras_rnn():
    inputs = keras.Input((T, F))
    cell = layers.VariationalGRUCell(
        U,
        dropout=0.3,
        recurrent_dropout=0.3,
        output_dropout=0.3,
        seed=7,
    )
    outputs = keras.layers.RNN(cell, return_sequences=True)(inputs)
    return keras.Model(inputs, outputs), _data(0, (B, T, F))


def _single(make, shape):
    def build():
        inputs = keras.Input(shape[1:])
        return keras.Model(inputs, make()(inputs)), _data(0, shape)

    return build


def _embedding():
    inputs = keras.Input((8,), dtype="int32")
    model = keras.Model(inputs, layers.EmbeddingDropout(40, 3, 0.5, seed=7)(inputs))
    return model, (np.arange(B * 8, dtype="int32").reshape(B, 8) * 7) % 40


def _stochastic_depth():
    inputs = keras.Input((F,))
    branch = keras.layers.Dense(U, kernel_initializer="ones")(inputs)
    shortcut = keras.layers.Dense(U, kernel_initializer="zeros")(inputs)
    outputs = layers.StochasticDepth(0.5, seed=7)([shortcut, branch])
    return keras.Model(inputs, outputs), _data(0, (B, F))


# Every mask but weight drop, which stacking refuses (one `predict` per
# sample: slow); "LSTM-weight" covers it.
ALL_MASKS = dict(
    dropout=0.3,
    recurrent_dropout=0.3,
    recurrent_dropout_mode="batch",
    output_dropout=0.3,
    zoneout=0.2,
)
# name -> (build, whether a sample has many outcomes)
FAMILIES = {
    "LSTM-dropout": (_sequence("VariationalLSTM", dropout=0.5), True),
    "LSTM-dropout_per_step": (
        _sequence("VariationalLSTM", dropout=0.5, share_input_mask=False),
        True,
    ),
    "LSTM-recurrent_sample": (
        _sequence("VariationalLSTM", recurrent_dropout=0.5),
        True,
    ),
    "LSTM-recurrent_batch": (
        _sequence(
            "VariationalLSTM", recurrent_dropout=0.5, recurrent_dropout_mode="batch"
        ),
        True,
    ),
    "LSTM-output": (_sequence("VariationalLSTM", output_dropout=0.5), True),
    "LSTM-weight": (_sequence("VariationalLSTM", weight_dropout=0.5), True),
    "LSTM-zoneout": (_sequence("VariationalLSTM", zoneout=0.5), True),
    "LSTM-per_gate": (
        _sequence(
            "VariationalLSTM", dropout=0.5, recurrent_dropout=0.5, per_gate_masks=True
        ),
        True,
    ),
    "GRU-all": (_sequence("VariationalGRU", **ALL_MASKS), True),
    "SimpleRNN-all": (_sequence("VariationalSimpleRNN", **ALL_MASKS), True),
    "LayerNormLSTM-all": (_sequence("LayerNormLSTM", **ALL_MASKS), True),
    "LayerNormGRU-sample": (
        _sequence(
            "LayerNormGRU", dropout=0.3, recurrent_dropout=0.3, per_gate_masks=True
        ),
        True,
    ),
    "keras.RNN(VariationalGRUCell)": (_keras_rnn, True),
    "InvertedDropout": (
        _single(lambda: layers.InvertedDropout(0.5, seed=7), (B, 8)),
        True,
    ),
    "InvertedDropout-shared_axes": (
        _single(
            lambda: layers.InvertedDropout(0.5, shared_axes=[1], seed=7), (B, 4, 6)
        ),
        True,
    ),
    "TimeSharedDropout": (
        _single(lambda: layers.TimeSharedDropout(0.5, seed=7), (B, T, 8)),
        True,
    ),
    "DropPath-sample": (_single(lambda: layers.DropPath(0.5, seed=7), (B, 3)), False),
    "DropPath-batch": (
        _single(lambda: layers.DropPath(0.5, mode="batch", seed=7), (B, 3)),
        False,
    ),
    "StochasticDepth": (_stochastic_depth, False),
    "EmbeddingDropout": (_embedding, True),
    "DropBlock1D": (
        _single(lambda: layers.DropBlock1D(0.3, 3, seed=7), (B, 12, 2)),
        True,
    ),
    "DropBlock2D": (
        _single(lambda: layers.DropBlock2D(0.3, 2, seed=7), (B, 6, 6, 2)),
        True,
    ),
    # A learned rate (0.3 here), a continuous relaxed mask.
    "ConcreteDropout": (
        _single(
            lambda: layers.ConcreteDropout(
                keras.layers.Dense(6), init_min=0.3, init_max=0.3, seed=7
            ),
            (B, T, 8),
        ),
        True,
    ),
}


# One model per family for the whole module, and the families that stack
# in one model (a branch per family: its own input, sub-model, layers and
# seeds), so that one compiled function serves every family in each of
# the calls below: `mc_predict` compiles a predict function per model,
# number of samples per call, mode (consistent or not) and batch shape
# (JAX compiles, TensorFlow traces, a few seconds each for a recurrent
# model). Each call is made once for the group (`_run`); the tests of a
# family read its branch's samples.
_MODELS = {}
BATCH = 3


def _model(name):
    """The family's `(model, x)`, built once."""
    if name not in _MODELS:
        _MODELS[name] = FAMILIES[name][0]()
    return _MODELS[name]


def _group(name):
    """The families that stack share a model; one that does not (one
    `predict` per sample, fewer samples) has its own."""
    return "stacked" if _stackable(_model(name)[0]) else name


_GROUPS = {}


def _group_model(key):
    """`(model, x, families)`: a model whose branch `i` is the model of
    `families[i]` on its own input, and the list of their inputs (a
    group of one: the family's own model and input)."""
    if key not in _GROUPS:
        families = [name for name in sorted(FAMILIES) if _group(name) == key]
        if len(families) == 1:
            model, x = _model(families[0])
        else:
            inputs, outputs, x = [], [], []
            for name in families:
                sub, data = _model(name)
                inputs.append(keras.Input(data.shape[1:], dtype=str(data.dtype)))
                outputs.append(sub(inputs[-1]))
                x.append(data)
            model = keras.Model(inputs, outputs)
        assert _stackable(model) == (key == "stacked"), key
        _GROUPS[key] = model, x, families
    return _GROUPS[key]


def _pool(x):
    """`x` with its row 0 at positions 1, 5 and 6 (batches of 3: the three
    copies sit in three batches, at the three places in them)."""
    order = [1, 0, 2, 3, 4, 0, 0, 2, 1]
    return x[order], [1, 5, 6]


def _rows(x, rows):
    """Each input of `x` (an array or a list), its rows `rows` taken."""
    return keras.tree.map_structure(lambda data: data[rows], x)


# The distribution check's samples per call: with `consistent` on JAX and
# TensorFlow 24, to run the function that the `pool` call compiled; the
# plain call compiles its own whatever the number, and on torch nothing is
# compiled: 128 (8 calls of 1,024 samples, not 43).
MANY_PER_CALL = 128


def _distribution(model, x, many, consistent):
    """The distribution check's call, `many` samples: with `consistent`,
    rows 0 to 2 in batches of 3; without, row 0 alone (a batch of one).

    A row alone, because DropBlock scales the kept units by the kept
    fraction of the whole batch: in a plain call of several rows that
    fraction pools their independent masks, while consistent rows share
    one mask, so each is scaled by its own, as a row alone is (and a
    row's sample never depends on its neighbours). Every other layer's
    masks are independent per row, so a row alone draws as it does in a
    batch."""
    per_call = MANY_PER_CALL
    if consistent and keras.backend.backend() != "torch":
        per_call = SAMPLES
    rows, batch_size = (slice(BATCH), BATCH) if consistent else (slice(1), 1)
    return mc_predict(
        model,
        _rows(x, rows),
        samples=many,
        samples_per_call=per_call,
        batch_size=batch_size,
        seed=5,
        consistent=consistent,
        return_samples=True,
    )


_POOL, _COPIES = _pool(np.arange(B))
_CONSISTENT = dict(samples=SAMPLES, consistent=True, return_samples=True)
# The calls of the tests below, each made once per group: name ->
# function(model, x, samples for the distribution check) -> the stacks.
_CALLS = {
    # Row 0 at three places in batches of 3, 24 samples per call.
    "pool": lambda model, x, many: mc_predict(
        model, _rows(x, _POOL), batch_size=BATCH, seed=5, **_CONSISTENT
    ),
    # Other neighbours, one batch of 5, one sample per call.
    "again": lambda model, x, many: mc_predict(
        model,
        _rows(x, slice(None, None, -1)),
        batch_size=5,
        samples_per_call=1,
        seed=5,
        **_CONSISTENT,
    ),
    # Another seed.
    "other": lambda model, x, many: mc_predict(
        model, _rows(x, _POOL), batch_size=BATCH, seed=6, **_CONSISTENT
    ),
    # The distribution check: `many` samples of row 0, with `consistent`
    # in a batch of 3, without it alone.
    "consistent": lambda model, x, many: _distribution(model, x, many, True),
    "plain": lambda model, x, many: _distribution(model, x, many, False),
}
_RUNS = {}


def _run(name, call):
    """Family `name`'s samples `(samples, rows, ...)` from `_CALLS[call]`,
    made once for its group."""
    if (name, call) not in _RUNS:
        model, x, families = _group_model(_group(name))
        many = MANY if _stackable(model) else MANY_UNSTACKED
        stacks = _CALLS[call](model, x, many)[2]
        if len(families) == 1:
            stacks = [stacks]
        for family, stack in zip(families, stacks, strict=True):
            _RUNS[family, call] = stack
    return _RUNS[name, call]


def _distinct(stack):
    return len({np.round(sample, 4).tobytes() for sample in stack})


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sample_t_is_the_same_for_a_row_wherever_and_whenever_it_is(name):
    many = FAMILIES[name][1]
    copies = _COPIES
    stack = _run(name, "pool")
    row = stack[:, copies[0]]
    for position in copies[1:]:
        np.testing.assert_allclose(stack[:, position], row, rtol=1e-5, atol=1e-6)
    # Another call: other neighbours, one batch of 5, one sample per call.
    again = _run(name, "again")
    np.testing.assert_allclose(again[:, -1], row, rtol=1e-5, atol=1e-6)
    # The samples differ; another seed draws others.
    other = _run(name, "other")
    if many:
        # At least 2**8 outcomes per sample: 24 draws are nearly all
        # different (masks that ignore `t` give 1).
        assert _distinct(row) >= SAMPLES // 2
        assert _distinct(np.concatenate([row, other[:, copies[0]]])) >= SAMPLES
    else:
        assert _distinct(row) == 2
        assert not np.array_equal(other[:, copies[0]], row)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_row_is_distributed_as_without_consistent(name):
    many = MANY if _stackable(_model(name)[0]) else MANY_UNSTACKED
    # Row 0 of 3 rows with `consistent` (on JAX and TensorFlow the
    # function the test above compiled), row 0 alone without.
    consistent = _run(name, "consistent")
    plain = _run(name, "plain")
    assert len(consistent) == len(plain) == many
    # One row: its samples are independent draws in both modes. Each of
    # its elements, and their sum (which sees a change in the rate or in
    # how the elements' masks go together more sharply), is compared.
    a = consistent[:, 0].reshape(many, -1).astype("float64")
    b = plain[:, 0].reshape(many, -1).astype("float64")
    a = np.concatenate([a, a.sum(1, keepdims=True)], 1)
    b = np.concatenate([b, b.sum(1, keepdims=True)], 1)
    mean_sigma = np.sqrt((a.var(0) + b.var(0)) / many)
    assert np.all(np.abs(a.mean(0) - b.mean(0)) <= 6 * mean_sigma + 1e-6), name

    def var_of_var(s):
        centered = s - s.mean(0)
        return (np.mean(centered**4, 0) - s.var(0) ** 2) / many

    var_sigma = np.sqrt(var_of_var(a) + var_of_var(b))
    assert np.all(np.abs(a.var(0) - b.var(0)) <= 6 * var_sigma + 1e-6), name


def test_keras_dropout_layers_are_refused_by_name():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4)(inputs)
    x = keras.layers.Dropout(0.5, name="keras_drop")(x)
    x = layers.InvertedDropout(0.5, seed=1)(x)
    model = keras.Model(inputs, keras.layers.GaussianDropout(0.2, name="noise")(x))
    data = _data(0, (3, 6))
    with pytest.raises(ValueError, match=r"keras_drop.*Dropout.*noise.*portable"):
        mc_predict(model, data, samples=2, seed=0, consistent=True)
    # Without `consistent` the model samples as before.
    assert np.all(mc_predict(model, data, samples=4, seed=0)[1] >= 0)


class _Unready(layers.InvertedDropout):
    """A keras_reg layer whose draws do not go through `_samples`."""

    _consistent_masks = False


def test_layers_without_consistent_masks_are_refused_by_name():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, _Unready(0.5, seed=1, name="unready")(inputs))
    with pytest.raises(ValueError, match=r"'unready' \(_Unready\)"):
        mc_predict(model, _data(0, (3, 6)), samples=2, seed=0, consistent=True)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_consistent_must_be_a_bool(bad):
    model, x = _model("InvertedDropout")
    with pytest.raises(ValueError, match=r"`consistent`.*Received: consistent="):
        mc_predict(model, x, samples=2, consistent=bad)


def _group_call(name, x_rows, **kwargs):
    """`mc_predict` of `name`'s group model on the rows `x_rows` of its
    inputs, in batches of 3 with 24 consistent samples per call (the
    compiled function of the `pool` call above) and `kwargs`: the
    family's `(mean, std, stack)`."""
    model, x, families = _group_model(_group(name))
    results = mc_predict(
        model, _rows(x, x_rows), batch_size=BATCH, **_CONSISTENT, **kwargs
    )
    if len(families) == 1:
        return results
    return [part[families.index(name)] for part in results]


def test_without_a_seed_one_is_drawn_for_the_call():
    name = "LSTM-recurrent_batch"
    # The group model is built before the global seed is set (building it
    # draws from the global generators), whichever test ran first.
    _group_model(_group(name))
    keras.utils.set_random_seed(11)
    first = _group_call(name, _POOL)[2]
    for position in _COPIES[1:]:
        np.testing.assert_allclose(first[:, position], first[:, _COPIES[0]], atol=1e-6)
    second = _group_call(name, _POOL)[2]
    assert not np.allclose(first, second)
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(_group_call(name, _POOL)[2], first)


def test_nothing_outlives_the_call():
    # The layers' streams are where they were, plain calls draw per row
    # again, and no consistent context is left open.
    model = _group_model(_group("GRU-all"))[0]
    before = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    _group_call("GRU-all", slice(BATCH), seed=1)
    after = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not _samples.consistent() and _samples.groups() == 1
    gru, x = _model("GRU-all")
    twin = np.repeat(x[:1], 4, axis=0)
    out = keras.ops.convert_to_numpy(gru(twin, training=True))
    assert not np.allclose(out[0], out[1])
