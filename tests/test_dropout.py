import keras
import numpy as np
import pytest
from keras import ops

from keras_reg.layers import EmbeddingDropout, InvertedDropout, TimeSharedDropout
from tests.helpers import run_layer_test, six_sigma, to_numpy

BACKEND = keras.backend.backend()


# --- the layer contract ------------------------------------------------------


def test_inverted_dropout_layer_contract(tmp_path):
    run_layer_test(
        InvertedDropout,
        {"rate": 0.3, "noise_shape": None, "shared_axes": [1], "seed": 7},
        input_shape=(4, 5, 6),
        tmp_path=tmp_path,
    )


def test_time_shared_dropout_layer_contract(tmp_path):
    run_layer_test(
        TimeSharedDropout, {"rate": 0.4, "seed": 3}, (4, 5, 6), tmp_path=tmp_path
    )


def test_embedding_dropout_layer_contract(tmp_path):
    ids = np.random.default_rng(0).integers(0, 20, size=(4, 7)).astype("int32")
    run_layer_test(
        EmbeddingDropout,
        {"input_dim": 20, "output_dim": 3, "rate": 0.25, "seed": 5, "mask_zero": True},
        input_shape=(4, 7),
        input_dtype="int32",
        expected_output_shape=(4, 7, 3),
        input_data=ids,
        tmp_path=tmp_path,
    )


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.5", None, True])
def test_bad_rate_raises_naming_argument_and_value(rate):
    with pytest.raises(ValueError, match=r"`rate`.*Received: rate="):
        InvertedDropout(rate)
    with pytest.raises(ValueError, match=r"`rate`"):
        TimeSharedDropout(rate)
    with pytest.raises(ValueError, match=r"`rate`"):
        EmbeddingDropout(10, 2, rate)


def test_rate_message_in_keras_wording():
    with pytest.raises(ValueError) as info:
        InvertedDropout(1.5)
    assert str(info.value) == (
        "Invalid value received for argument `rate`. Expected a float in "
        "[0, 1). Received: rate=1.5"
    )


def test_invalid_rate_assignment_keeps_old_rate():
    layer = InvertedDropout(0.3, seed=1)
    with pytest.raises(ValueError, match="rate=2.0"):
        layer.rate = 2.0
    assert layer.rate == 0.3
    x = np.ones((200, 500), "float32")
    dropped = np.mean(to_numpy(layer(x, training=True)) == 0)
    assert abs(dropped - 0.3) < six_sigma(0.3, x.size)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shared_axes": "1"}, "shared_axes"),
        ({"shared_axes": [1, 1]}, "shared_axes"),
        ({"shared_axes": [1.0]}, "shared_axes"),
        ({"noise_shape": (2, 0)}, "noise_shape"),
        ({"noise_shape": "2,1"}, "noise_shape"),
        ({"noise_shape": 3}, "noise_shape"),
        ({"seed": "1"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InvertedDropout(0.5, **kwargs)


def test_shape_errors_raise_at_build():
    with pytest.raises(ValueError, match="shared_axes"):
        InvertedDropout(0.5, shared_axes=[3])(keras.Input((4, 5)))
    with pytest.raises(ValueError, match="noise_shape"):
        InvertedDropout(0.5, noise_shape=(None, 1))(keras.Input((4, 5)))
    with pytest.raises(ValueError, match="noise_shape"):
        InvertedDropout(0.5, noise_shape=(None, 3, 1))(keras.Input((4, 5)))
    with pytest.raises(ValueError, match="rank 3"):
        TimeSharedDropout(0.5)(keras.Input((4,)))


def test_integer_inputs_raise_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        InvertedDropout(0.5)(np.ones((2, 3), "int32"), training=True)


# --- behaviour ---------------------------------------------------------------


def test_seed_example_scaling_keeps_eight_expectation_four():
    # Inverted dropout (Srivastava et al. 2014): x = 4 at rate 0.5 keeps 8,
    # and the mean stays 4.
    layer = InvertedDropout(0.5, seed=0)
    y = to_numpy(layer(np.full((1000, 1000), 4.0, "float32"), training=True))
    assert set(np.unique(y)) == {0.0, 8.0}
    assert abs(y.mean() - 4.0) < 8.0 * six_sigma(0.5, y.size)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drop_fraction_within_six_sigma(rate):
    x = np.ones((500, 2000), "float32")
    y = to_numpy(InvertedDropout(rate, seed=11)(x, training=True))
    assert abs(np.mean(y == 0) - rate) < six_sigma(rate, x.size)


def test_drop_fraction_within_six_sigma_native(native_rng):
    x = np.ones((500, 2000), "float32")
    y = to_numpy(InvertedDropout(0.3, seed=11)(x, training=True))
    assert abs(np.mean(y == 0) - 0.3) < six_sigma(0.3, x.size)


def test_kept_values_are_exactly_x_over_keep_probability():
    x = np.random.default_rng(1).normal(size=(64, 256)).astype("float32")
    y = to_numpy(InvertedDropout(0.3, seed=2)(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert np.all(y[~kept] == 0)


def test_input_unchanged_in_inference():
    x = np.random.default_rng(1).normal(size=(8, 16)).astype("float32")
    layer = InvertedDropout(0.9, seed=1)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    model = keras.Sequential([keras.Input((16,)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_inference_does_not_advance_the_stream():
    layer = InvertedDropout(0.5, seed=1)
    x = np.ones((4, 4), "float32")
    layer(x)
    assert int(to_numpy(layer.seed_generator.state)[1]) == 0


def test_rate_zero_is_identity_in_training():
    x = np.random.default_rng(1).normal(size=(8, 16)).astype("float32")
    np.testing.assert_array_equal(
        to_numpy(InvertedDropout(0.0, seed=1)(x, training=True)), x
    )


def test_same_seed_same_masks_successive_calls_differ():
    x = np.ones((32, 64), "float32")
    a, b = InvertedDropout(0.5, seed=4), InvertedDropout(0.5, seed=4)
    a1, a2 = to_numpy(a(x, training=True)), to_numpy(a(x, training=True))
    b1, b2 = to_numpy(b(x, training=True)), to_numpy(b(x, training=True))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert np.mean(a1 != a2) > 0.4  # two independent masks differ at ~half
    c1 = to_numpy(InvertedDropout(0.5, seed=5)(x, training=True))
    assert np.mean(a1 != c1) > 0.4


def test_seed_none_stays_none_in_config_and_a_clone_draws_its_own_stream(tmp_path):
    layer = InvertedDropout(0.5)
    assert layer.get_config()["seed"] is None
    clone = InvertedDropout.from_config(layer.get_config())
    x = np.ones((64, 64), "float32")
    first = to_numpy(layer(x, training=True))
    # Independent streams: two masks at rate 0.5 disagree on about half.
    differ = np.mean(first != to_numpy(clone(x, training=True)))
    assert abs(differ - 0.5) < six_sigma(0.5, x.size)
    # The drawn seed is state: a reloaded model continues this stream.
    model = keras.Sequential([keras.Input((64,)), layer])
    path = tmp_path / "seedless.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        to_numpy(model(x, training=True)), to_numpy(loaded(x, training=True))
    )
    cloned = keras.models.clone_model(model)
    differ = np.mean(
        to_numpy(model(x, training=True)) != to_numpy(cloned(x, training=True))
    )
    assert abs(differ - 0.5) < six_sigma(0.5, x.size)


def test_shared_axes_share_one_mask_value():
    x = np.ones((64, 10, 12), "float32")
    y = to_numpy(InvertedDropout(0.5, shared_axes=[1], seed=3)(x, training=True))
    assert np.all(y == y[:, :1, :])  # identical across time
    assert np.mean(y[0] != y[1]) > 0.3  # independent across samples


def test_noise_shape_with_none_entries_drops_one_mask_value_per_none_axis():
    # `None` takes the input's size: one mask value per (sample, feature),
    # shared by the steps; kept units are scaled by 1 / (1 - rate).
    x = np.ones((2000, 5, 4), "float32")
    layer = InvertedDropout(0.3, noise_shape=(None, 1, None), seed=3)
    y = to_numpy(layer(x, training=True))
    assert np.all(y == y[:, :1, :])
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / 0.7], rtol=1e-6)
    dropped = y[:, 0, :] == 0
    assert abs(dropped.mean() - 0.3) < six_sigma(0.3, dropped.size)
    # Each sample and each feature draws its own value: no feature is
    # dropped for the whole batch, and a sample's 4 features agree with
    # probability 0.3**4 + 0.7**4 (about 0.25), not always.
    assert 0 < dropped.sum(axis=0).min() and dropped.sum(axis=0).max() < 2000
    agree = np.mean(dropped.all(axis=1) | (~dropped).all(axis=1))
    assert abs(agree - 0.2482) < six_sigma(0.2482, 2000)


def test_time_shared_mask_identical_across_time_independent_across_samples():
    x = np.ones((4000, 20, 8), "float32")
    y = to_numpy(TimeSharedDropout(0.4, seed=9)(x, training=True))
    assert np.all(y == y[:, :1, :])
    first = y[:, 0, :] == 0
    assert abs(first.mean() - 0.4) < six_sigma(0.4, first.size)
    # Samples are independent: the agreement of two samples' masks is
    # p^2 + (1-p)^2 on average.
    agree = np.mean(first[0::2] == first[1::2])
    expected = 0.4**2 + 0.6**2
    assert abs(agree - expected) < six_sigma(expected, first[0::2].size)


@pytest.mark.parametrize("training", [False, True])
def test_time_shared_dropout_passes_masks_through_to_an_rnn(training):
    # Two models that differ only in the values of the padded steps (the
    # embedding of token 0): an LSTM that gets the mask skips those steps,
    # so both give the same output, in training too (same seed, same masks).
    tokens = np.array([[1, 2, 3, 0, 0], [4, 1, 0, 0, 0], [2, 2, 2, 2, 0]], "int32")

    def build(mask_zero, padding_row):
        inputs = keras.Input((5,), dtype="int32")
        # Zeros before NumPy's weights spare JAX the initializers' compiled
        # draws; unrolled, JAX compiles each op once, not a scan per call.
        x = keras.layers.Embedding(
            6, 4, mask_zero=mask_zero, embeddings_initializer="zeros"
        )(inputs)
        x = TimeSharedDropout(0.5, seed=1)(x)
        outputs = keras.layers.LSTM(
            3,
            return_sequences=False,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
            unroll=BACKEND == "jax",
        )(x)
        model = keras.Model(inputs, outputs)
        weights = [
            np.random.default_rng(i).normal(size=w.shape).astype("float32")
            for i, w in enumerate(model.weights)
        ]
        weights[0][0] = padding_row
        model.set_weights(weights)
        return model

    rows = np.random.default_rng(9).normal(size=(2, 4)).astype("float32") * 3
    first = to_numpy(build(True, rows[0])(tokens, training=training))
    second = to_numpy(build(True, rows[1])(tokens, training=training))
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    # Without the mask the padded steps count, and the outputs differ.
    unmasked = [to_numpy(build(False, row)(tokens, training=training)) for row in rows]
    assert np.abs(unmasked[0] - unmasked[1]).max() > 1e-3


def test_embedding_dropout_drops_whole_word_types():
    layer = EmbeddingDropout(50, 8, 0.5, seed=3)
    ids = np.tile(np.arange(50), (20, 1)).astype("int32")  # every word, 20x
    y = to_numpy(layer(ids, training=True))
    base = to_numpy(layer.embeddings)
    dropped_rows = np.all(y == 0, axis=-1)
    # One decision per word type for the whole batch.
    assert np.all(dropped_rows == dropped_rows[:1])
    kept = ~dropped_rows[0]
    np.testing.assert_allclose(y[0][kept], base[kept] / 0.5, rtol=1e-6)
    assert 0 < kept.sum() < 50


def test_embedding_dropout_word_type_fraction_within_six_sigma():
    layer = EmbeddingDropout(100_000, 1, 0.3, seed=3, embeddings_initializer="ones")
    y = to_numpy(layer(np.arange(100_000)[None], training=True))
    assert abs(np.mean(y == 0) - 0.3) < six_sigma(0.3, 100_000)


def test_embedding_dropout_inference_is_plain_embedding():
    layer = EmbeddingDropout(10, 4, 0.5, seed=3)
    ids = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(to_numpy(layer(ids)), to_numpy(layer.embeddings)[ids])


def test_rate_near_one_gives_finite_gradients():
    layer = InvertedDropout(0.999, seed=1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), layer])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 4), "float32")
    history = model.fit(x, x, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for w in model.get_weights():
        assert np.all(np.isfinite(w))


# --- rates that change during fit ----------------------------------------------


class _TraceCounter(InvertedDropout):
    traces = 0

    def call(self, inputs, training=False):
        type(self).traces += 1
        return super().call(inputs, training=training)


def _zero_fraction(y_true, y_pred):
    return ops.mean(ops.cast(ops.equal(y_pred, 0.0), "float32"))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_rate_assigned_between_epochs_takes_effect_without_retracing(jit_compile):
    if jit_compile and BACKEND == "torch":
        pytest.skip("torch.compile: test_portability.py, compiled vs eager")
    units = 4000
    dropout = _TraceCounter(0.5, seed=1)
    inputs = keras.Input((units,))
    hidden = keras.layers.Dense(
        units, kernel_initializer="zeros", bias_initializer="ones"
    )(inputs)
    model = keras.Model(inputs, dropout(hidden))
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss="mse",
        metrics=[_zero_fraction],
        jit_compile=jit_compile,
    )
    rates = {0: 0.5, 1: 0.1, 2: 0.8}
    traces = []

    class SetRate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            dropout.rate = rates[epoch]
            traces.append(_TraceCounter.traces)

    x = np.zeros((32, units), "float32")
    history = model.fit(
        x, x, batch_size=8, epochs=3, verbose=0, callbacks=[SetRate()], shuffle=False
    )
    observed = history.history["_zero_fraction"]
    for epoch, rate in rates.items():
        assert abs(observed[epoch] - rate) < six_sigma(rate, 32 * units), (
            epoch,
            observed,
        )
    # A compiled step calls the layer's Python only when it traces (torch,
    # and JAX without jit_compile, run the step eagerly, batch by batch).
    if BACKEND == "tensorflow" or jit_compile:
        assert traces[1] == traces[2], "the rate change retraced the step"


def test_public_rate_is_python_float():
    layer = InvertedDropout(0.25)
    assert isinstance(layer.rate, float) and layer.rate == 0.25
    layer.rate = 1 / 3
    assert isinstance(layer.rate, float) and layer.rate == 1 / 3
