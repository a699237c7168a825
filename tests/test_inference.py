import functools
import threading
import tracemalloc

import keras
import numpy as np
import pytest

from keras_reg import inference
from keras_reg.inference import mc_dropout, mc_predict
from keras_reg.layers import (
    DropBlock1D,
    DropBlock2D,
    DropPath,
    EmbeddingDropout,
    InvertedDropout,
    LayerNormLSTM,
    LayerNormWrapper,
    StochasticDepth,
    TimeSharedDropout,
    VariationalGRUCell,
    VariationalLSTM,
)
from tests.helpers import to_numpy

# Random initial weights drawn in NumPy (conftest's `numpy_weights`).
pytestmark = pytest.mark.usefixtures("numpy_weights")


def _data(seed, shape, scale=1.0, shift=0.0):
    """Test data of its own seed: the same whatever ran before."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * scale + shift).astype("float32")


@functools.cache
def _bn_model(rate=0.3):
    """Built once for the module. Its BatchNormalization's moving
    statistics are those of the first 16 rows' features, set in NumPy:
    away from the initial 0 and 1 and from the 64 rows' batch statistics,
    as a fit would leave them, without a fit (which compiles a train step:
    seconds on TensorFlow and JAX, and no test here trains). The tests
    that use it seed their samples or only compare calls with each other,
    so what another test drew before does not matter."""
    inputs = keras.Input((8,))
    dense = keras.layers.Dense(32)
    x = dense(inputs)
    bn = keras.layers.BatchNormalization()
    x = bn(x)
    x = keras.layers.ReLU()(x)
    x = InvertedDropout(rate, seed=1)(x)
    x = keras.layers.Dropout(rate, seed=2)(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    x = _data(0, (64, 8), scale=2, shift=1)
    features = x[:16] @ to_numpy(dense.kernel) + to_numpy(dense.bias)
    bn.moving_mean.assign(features.mean(0))
    bn.moving_variance.assign(features.var(0))
    return model, x


def test_batch_norm_runs_in_inference_and_keeps_its_statistics():
    model, x = _bn_model()
    bn = model.layers[2]
    before = [to_numpy(v).copy() for v in (bn.moving_mean, bn.moving_variance)]
    mean, std = mc_predict(model, x, samples=4, seed=0)
    with mc_dropout():
        model(x)
    after = [to_numpy(v) for v in (bn.moving_mean, bn.moving_variance)]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    # The recipe mc_predict replaces does change them.
    model(x, training=True)
    assert not np.array_equal(before[0], to_numpy(bn.moving_mean))
    assert mean.shape == std.shape == (64, 3)
    assert np.all(std > 0)


@functools.cache
def _linear_model():
    """Dense -> dropout -> Dense without activation, built once for the
    module (its deterministic `predict` compiled once); the tests that use
    it seed their samples."""
    inputs = keras.Input((6,))
    h = keras.layers.Dense(64)(inputs)
    h = InvertedDropout(0.2, seed=3)(h)
    h = keras.layers.Dropout(0.1, seed=4)(h)
    return keras.Model(inputs, keras.layers.Dense(2)(h)), _data(2, (20, 6))


@pytest.mark.parametrize("samples_per_call", [1, None])
def test_mean_is_unbiased_for_a_linear_model(samples_per_call):
    # Dense -> dropout -> Dense without activation: E[output] over masks is
    # the deterministic output, so the MC mean is within ~6 standard errors,
    # whether the samples run one per call or stacked.
    model, x = _linear_model()
    samples = 100
    mean, std = mc_predict(
        model,
        x,
        samples=samples,
        seed=1,
        batch_size=20,
        samples_per_call=samples_per_call,
    )
    deterministic = model.predict(x, verbose=0)
    bound = 6 * std / np.sqrt(samples) + 1e-5
    assert np.all(np.abs(mean - deterministic) < bound)
    assert np.all(std > 0)


def test_std_is_exactly_zero_without_dropout():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(7, activation="tanh")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    x = _data(3, (10, 5))
    mean, std = mc_predict(model, x, samples=7)
    np.testing.assert_array_equal(std, 0.0)
    np.testing.assert_allclose(mean, model.predict(x, verbose=0), atol=1e-6)


def test_same_seed_same_result_and_streams_left_alone():
    model, x = _bn_model()
    ours = model.layers[4]
    state = to_numpy(ours.seed_generator.state).copy()
    first = mc_predict(model, x, samples=4, seed=7)
    second = mc_predict(model, x, samples=4, seed=7)
    other = mc_predict(model, x, samples=4, seed=8)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    np.testing.assert_array_equal(state, to_numpy(ours.seed_generator.state))
    # Without a seed the layers' own streams move on: samples differ.
    a, b = mc_predict(model, x, samples=4), mc_predict(model, x, samples=4)
    assert not np.array_equal(a[0], b[0])
    # predict is deterministic again afterwards.
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_return_samples_matches_mean_and_std():
    model, x = _bn_model()
    # 4 samples, as the other tests of this model: one compiled function.
    mean, std, stack = mc_predict(model, x, samples=4, seed=2, return_samples=True)
    assert stack.shape == (4, 64, 3)
    np.testing.assert_allclose(mean, stack.mean(0), atol=1e-5)
    np.testing.assert_allclose(std, stack.std(0), atol=1e-5)
    assert len({stack[i].tobytes() for i in range(4)}) == 4


@pytest.mark.parametrize("layer_cls", [VariationalLSTM, LayerNormLSTM])
def test_recurrent_models(layer_cls):
    inputs = keras.Input((5, 3))
    x = layer_cls(8, dropout=0.3, recurrent_dropout=0.3, seed=5)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    x = _data(4, (12, 5, 3))
    mean, std = mc_predict(model, x, samples=5, seed=3)
    again = mc_predict(model, x, samples=5, seed=3)
    np.testing.assert_array_equal(mean, again[0])
    assert mean.shape == (12, 1) and np.all(std > 0)


@pytest.mark.parametrize("samples_per_call", [1, 4])
def test_memory_stays_bounded_unless_samples_are_returned(samples_per_call):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(256)(inputs)
    model = keras.Model(inputs, InvertedDropout(0.5, seed=1)(x))
    x = _data(5, (500, 4))
    one_prediction = 500 * 256 * 4  # bytes
    kwargs = {"batch_size": 500, "samples_per_call": samples_per_call}
    mc_predict(model, x, samples=samples_per_call, **kwargs)  # compile first

    def peak(samples, **more):
        tracemalloc.start()
        try:
            mc_predict(model, x, samples=samples, **kwargs, **more)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Streamed: the peak grows with the samples per call, not with samples.
    assert peak(8 * samples_per_call) < peak(samples_per_call) + 2 * one_prediction
    assert peak(16, return_samples=True) > 16 * one_prediction


def test_progress_bar_with_verbose(capsys):
    model, x = _bn_model()
    mc_predict(model, x, samples=4, verbose=1)
    assert "4/4" in capsys.readouterr().out
    mc_predict(model, x, samples=4)
    assert capsys.readouterr().out == ""


def test_nested_outputs():
    inputs = keras.Input((4,))
    h = InvertedDropout(0.5, seed=1)(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, {"a": keras.layers.Dense(2)(h), "b": h})
    mean, std = mc_predict(model, _data(6, (3, 4)), samples=4, seed=0)
    assert mean["a"].shape == std["a"].shape == (3, 2)
    assert mean["b"].shape == (3, 8)


def test_mc_dropout_samples_every_dropout_layer_and_nothing_else():
    x = np.ones((16, 6, 6, 4), "float32")
    sampled = [
        InvertedDropout(0.5),
        DropBlock2D(0.3, 2),
        keras.layers.Dropout(0.5),
        keras.layers.SpatialDropout2D(0.5),
        keras.layers.GaussianDropout(0.5),
    ]
    seq = np.ones((16, 5, 4), "float32")
    for layer in sampled:
        assert np.array_equal(to_numpy(layer(x)), x)
        with mc_dropout():
            with mc_dropout():  # nests
                assert not np.array_equal(to_numpy(layer(x)), x), layer
            assert not np.array_equal(to_numpy(layer(x)), x), layer
        assert np.array_equal(to_numpy(layer(x)), x), layer  # back to normal
    time_shared = TimeSharedDropout(0.5)
    with mc_dropout():
        assert not np.array_equal(to_numpy(time_shared(seq)), seq)
    bn = keras.layers.BatchNormalization()
    bn.build(x.shape)
    with mc_dropout():
        np.testing.assert_allclose(to_numpy(bn(x)), x / np.sqrt(1 + 1e-3), rtol=1e-5)


@pytest.mark.parametrize("samples", [0, -3, 2.5, "10"])
def test_bad_samples(samples):
    model, x = _bn_model()
    with pytest.raises(ValueError, match="samples"):
        mc_predict(model, x, samples=samples)


def test_bad_seed_and_verbose():
    model, x = _bn_model()
    with pytest.raises(ValueError, match="seed"):
        mc_predict(model, x, seed="a")
    with pytest.raises(ValueError, match="verbose"):
        mc_predict(model, x, verbose=2)


@pytest.mark.parametrize("samples_per_call", [0, 2.5, "4"])
def test_bad_samples_per_call(samples_per_call):
    model, x = _bn_model()
    with pytest.raises(ValueError, match="samples_per_call"):
        mc_predict(model, x, samples_per_call=samples_per_call)


def test_empty_input_is_a_clear_error():
    model, _ = _bn_model()
    with pytest.raises(ValueError, match=r"`x`.*empty"):
        mc_predict(model, np.zeros((0, 8), "float32"))
    a, b = keras.Input((2,)), keras.Input((3,))
    two = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match=r"`x`.*empty"):
        mc_predict(two, [np.zeros((0, 2)), np.zeros((0, 3))])


# --- mc_dropout(model): only that model -------------------------------------------


def _dropout_model(seed):
    inputs = keras.Input((16,))
    x = keras.layers.BatchNormalization()(inputs)
    x = InvertedDropout(0.5, seed=seed)(x)
    x = keras.layers.Dropout(0.5, seed=seed + 1)(x)
    return keras.Model(inputs, x)


def _samples(model, x):
    first, second = to_numpy(model(x)), to_numpy(model(x))
    return not np.array_equal(first, second)


def test_mc_dropout_of_a_model_leaves_other_models_deterministic():
    a, b = _dropout_model(1), _dropout_model(3)
    x = np.ones((8, 16), "float32")
    plain_b = to_numpy(b(x))
    with mc_dropout(a):
        assert _samples(a, x)
        # b has the same layer types, Keras' Dropout included.
        np.testing.assert_array_equal(to_numpy(b(x)), plain_b)
        np.testing.assert_array_equal(to_numpy(b(x)), plain_b)
    assert not _samples(a, x) and not _samples(b, x)
    # BatchNormalization stays in inference mode inside the context.
    bn = a.layers[1]
    before = to_numpy(bn.moving_mean).copy()
    with mc_dropout(a):
        a(x)
    np.testing.assert_array_equal(to_numpy(bn.moving_mean), before)


def test_mc_dropout_contexts_nest_and_overlap():
    shared = InvertedDropout(0.5, seed=5)
    inputs = keras.Input((16,))
    a = keras.Model(inputs, shared(keras.layers.Dense(16)(inputs)))
    other = keras.Input((16,))
    c = keras.Model(other, shared(other))
    x = np.ones((8, 16), "float32")
    with mc_dropout(a):
        with mc_dropout(c):
            assert _samples(a, x) and _samples(c, x)
            with mc_dropout(a), mc_dropout():  # the same model again; global
                assert _samples(c, x)
            assert _samples(a, x)
        # The shared layer is still covered by a's context.
        assert _samples(a, x) and _samples(c, x)
    assert not _samples(a, x) and not _samples(c, x)
    assert not inference._switched
    assert "call" not in shared.__dict__


def test_mc_dropout_restores_after_an_exception():
    model = _dropout_model(1)
    x = np.ones((4, 16), "float32")
    with pytest.raises(RuntimeError):
        with mc_dropout(model):
            raise RuntimeError("inside")
    assert not _samples(model, x)
    assert not inference._switched


def test_mc_dropout_contexts_in_threads():
    models = [_dropout_model(10 * i) for i in range(4)]
    x = np.ones((2, 16), "float32")
    errors = []

    def worker(model):
        try:
            for _ in range(25):
                with mc_dropout(model):
                    with mc_dropout(models[0]):
                        pass
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(m,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert not inference._switched
    for model in models:
        assert not _samples(model, x)


def test_mc_dropout_switches_cells_in_sequence_layers_and_keras_rnns():
    # Unrolled on JAX: each eager call compiled a scan per recurrent layer
    # (12 here); unrolled, each op compiles once per shape.
    unroll = keras.backend.backend() == "jax"
    inputs = keras.Input((5, 3))
    x = keras.layers.Bidirectional(
        VariationalLSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=1, unroll=unroll),
        merge_mode="concat",
    )(inputs)
    y = keras.layers.RNN(
        LayerNormWrapper(VariationalGRUCell(4, dropout=0.5, seed=2)), unroll=unroll
    )(inputs)
    model = keras.Model(inputs, [x, y])
    data = _data(7, (6, 5, 3))

    def outputs():
        return [to_numpy(o) for o in model(data)]

    plain = outputs()
    with mc_dropout(model):
        first, second = outputs(), outputs()
    for a, b in zip(first, second, strict=True):
        assert not np.array_equal(a, b)
    for a, b in zip(outputs(), plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mc_dropout_needs_a_model_or_nothing():
    with pytest.raises(ValueError, match="model"):
        with mc_dropout("model"):
            pass


# --- several samples per call ------------------------------------------------------


def _stacked_samples(model, x, samples=24, **kwargs):
    """`mc_predict`'s samples, stacked in calls of `samples` samples."""
    return mc_predict(
        model,
        x,
        samples=samples,
        samples_per_call=samples,
        return_samples=True,
        **kwargs,
    )[2]


def test_stacked_samples_draw_batch_shared_masks_per_sample():
    # EmbeddingDropout drops word types for the whole batch, DropPath in
    # batch mode and StochasticDepth the whole branch: inside one sample
    # every row agrees, and the samples differ, as separate calls would.
    tokens = keras.Input((6,), dtype="int32")
    embedded = EmbeddingDropout(
        10, 3, 0.5, embeddings_initializer="ones", seed=1, name="embedding"
    )(tokens)
    branch = DropPath(0.5, mode="batch", seed=2)(keras.layers.Flatten()(embedded))
    gated = StochasticDepth(0.5, seed=3)([keras.ops.zeros_like(branch), branch])
    model = keras.Model(tokens, [embedded, branch, gated])
    ids = np.tile(np.arange(1, 7, dtype="int32"), (5, 1))  # every row: 1..6
    stack = _stacked_samples(model, ids)
    words, paths, gates = (np.asarray(s) for s in stack)
    for sample in range(24):
        # One word-type mask per sample, shared by its rows.
        assert np.all(words[sample] == words[sample][:1])
        # All or nothing across the rows, per sample.
        assert np.all(paths[sample] == paths[sample][:1])
        assert np.all(gates[sample] == gates[sample][:1])
    # The samples draw independently (all equal: 2**-23 or less).
    assert len({words[s].tobytes() for s in range(24)}) > 1
    assert len({bool(paths[s].any()) for s in range(24)}) == 2
    assert len({bool(gates[s].any()) for s in range(24)}) == 2


def test_stacked_samples_share_a_batch_axis_mask_per_sample():
    inputs = keras.Input((50,))
    outputs = InvertedDropout(0.5, noise_shape=(1, None), seed=4)(inputs)
    model = keras.Model(inputs, outputs)
    stack = _stacked_samples(model, np.ones((7, 50), "float32"))
    for sample in stack:
        assert np.all(sample == sample[:1])
    assert len({sample.tobytes() for sample in stack}) == 24


@pytest.mark.parametrize(
    "cls, shape", [(DropBlock1D, (4, 30, 3)), (DropBlock2D, (4, 9, 10, 3))]
)
def test_stacked_samples_scale_dropblock_per_sample(cls, shape):
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, cls(0.3, 3, seed=5)(inputs))
    for sample in _stacked_samples(model, np.ones(shape, "float32"), samples=6):
        kept = sample != 0
        np.testing.assert_allclose(sample[kept], kept.size / kept.sum(), rtol=1e-5)


def test_stacked_samples_are_reproducible_and_leave_predict_alone():
    model, x = _bn_model()
    plain_function = model.predict_function
    first = mc_predict(model, x, samples=12, seed=3, samples_per_call=4)
    second = mc_predict(model, x, samples=12, seed=3, samples_per_call=4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.predict_function is plain_function
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_samples_that_cannot_stack_run_one_per_call():
    # A cell's weight drop is one mask for the batch, which stacking cannot
    # draw per sample; Keras' Dropout sharing the batch axis neither.
    inputs = keras.Input((4, 3))
    x = VariationalLSTM(4, weight_dropout=0.5, seed=1)(inputs)
    weight_drop = keras.Model(inputs, x)
    assert not inference._stackable(weight_drop)
    flat = keras.Input((40,))
    keras_shared = keras.Model(
        flat, keras.layers.Dropout(0.5, noise_shape=(1, None), seed=2)(flat)
    )
    assert not inference._stackable(keras_shared)
    stack = _stacked_samples(keras_shared, np.ones((5, 40), "float32"), samples=6)
    for sample in stack:
        assert np.all(sample == sample[:1])
    assert len({sample.tobytes() for sample in stack}) == 6
    mean, std = mc_predict(weight_drop, _data(8, (5, 4, 3)), samples=4, seed=0)
    assert np.all(std > 0)
    assert inference._stackable(_bn_model()[0])


# --- the batched predict loop (TensorFlow) against Keras' predict ------------------


def _two_input_model():
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = InvertedDropout(0.5, seed=1)(keras.layers.Dense(8)(h))
    return keras.Model({"a": a, "b": b}, {"out": keras.layers.Dense(2)(h), "h": h})


@pytest.mark.parametrize(
    "case", ["stacked", "one_per_call", "weight_drop", "consistent", "nested"]
)
def test_batched_predict_draws_what_predict_draws(case, monkeypatch):
    # `mc_predict` runs `predict_on_batch` per batch instead of `predict`
    # on TensorFlow; here on every backend, against Keras' `predict`: the
    # same samples to the bit, a partial last batch (11 rows, batches of 4)
    # and float64 inputs included.
    kwargs = dict(samples=6, seed=3, batch_size=4, return_samples=True)
    if case == "nested":
        model = _two_input_model()
        x = {"a": _data(9, (11, 4)).astype("float64"), "b": _data(10, (11, 3))}
    elif case == "weight_drop":
        inputs = keras.Input((5, 3))
        outputs = VariationalLSTM(4, weight_dropout=0.5, dropout=0.3, seed=1)(inputs)
        model = keras.Model(inputs, outputs)
        x = _data(11, (11, 5, 3)).astype("float64")
    elif case == "consistent":
        inputs = keras.Input((8,))
        h = InvertedDropout(0.5, seed=1)(keras.layers.Dense(16)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3)(h))
        x = _data(12, (11, 8)).astype("float64")
    else:
        model, x = _bn_model()
        x = x[:11].astype("float64")
    if case == "one_per_call":
        kwargs["samples_per_call"] = 1
    if case in ("consistent", "weight_drop"):
        kwargs["consistent"] = case == "consistent"
    monkeypatch.setattr(inference, "_BATCHED_BACKENDS", ())
    expected = mc_predict(model, x, **kwargs)[2]
    monkeypatch.setattr(inference, "_BATCHED_BACKENDS", (keras.backend.backend(),))
    calls = []
    original = inference._batched_predict

    def counting(*args):
        result = original(*args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(inference, "_batched_predict", counting)
    got = mc_predict(model, x, **kwargs)[2]
    assert calls and all(calls)
    for a, b in zip(keras.tree.flatten(got), keras.tree.flatten(expected), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


class _CountCalls(keras.layers.Layer):
    """The identity; counts how often Python runs its `call`."""

    calls = 0

    def call(self, inputs):
        type(self).calls += 1
        return inputs


def test_stacked_samples_run_the_model_only_in_the_compiled_predict():
    # On JAX, `predict` first calls an unbuilt model eagerly to build it: an
    # eager call compiles every op at the stacked shape (about 1 s for a
    # small recurrent model). The stacked wrapper is built, so the model's
    # Python runs once, in the trace of the compiled predict, and the next
    # call reuses it; torch runs the model eagerly at every call.
    inputs = keras.Input((5,))
    outputs = InvertedDropout(0.5, seed=1)(_CountCalls()(inputs))
    model = keras.Model(inputs, outputs)
    x = np.ones((3, 5), "float32")
    counts = []
    for _ in range(2):
        _CountCalls.calls = 0
        mc_predict(model, x, samples=4, samples_per_call=4)
        counts.append(_CountCalls.calls)
    assert counts == ([1, 1] if keras.backend.backend() == "torch" else [1, 0])


def test_an_unbuilt_model_is_built_by_the_stacked_samples():
    # The stacked wrapper is built; the model inside it, a Sequential that
    # has never seen an input, builds itself in the first call.
    model = keras.Sequential([keras.layers.Dense(3), InvertedDropout(0.5, seed=1)])
    assert not model.built
    mean, std = mc_predict(model, np.ones((4, 5), "float32"), samples=8, seed=0)
    assert model.built and mean.shape == (4, 3)
    assert np.all(np.isfinite(mean)) and np.mean(std) > 0
