import tracemalloc

import keras
import numpy as np
import pytest

from keras_reg.inference import mc_dropout, mc_predict
from keras_reg.layers import (
    DropBlock2D,
    InvertedDropout,
    LayerNormLSTM,
    TimeSharedDropout,
    VariationalLSTM,
)
from tests.helpers import to_numpy

RNG = np.random.default_rng(0)


def _bn_model(rate=0.3):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(32)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = InvertedDropout(rate, seed=1)(x)
    x = keras.layers.Dropout(rate, seed=2)(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    x = RNG.normal(size=(64, 8)).astype("float32") * 2 + 1
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, RNG.normal(size=(64, 3)), batch_size=16, epochs=1, verbose=0)
    return model, x


def test_batch_norm_runs_in_inference_and_keeps_its_statistics():
    model, x = _bn_model()
    bn = model.layers[2]
    before = [to_numpy(v).copy() for v in (bn.moving_mean, bn.moving_variance)]
    mean, std = mc_predict(model, x, samples=5, seed=0)
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


def test_mean_is_unbiased_for_a_linear_model():
    # Dense -> dropout -> Dense without activation: E[output] over masks is
    # the deterministic output, so the MC mean is within ~6 standard errors.
    inputs = keras.Input((6,))
    h = keras.layers.Dense(64)(inputs)
    h = InvertedDropout(0.2, seed=3)(h)
    h = keras.layers.Dropout(0.1, seed=4)(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    x = RNG.normal(size=(20, 6)).astype("float32")
    samples = 100
    mean, std = mc_predict(model, x, samples=samples, seed=1, batch_size=20)
    deterministic = model.predict(x, verbose=0)
    bound = 6 * std / np.sqrt(samples) + 1e-5
    assert np.all(np.abs(mean - deterministic) < bound)
    assert np.all(std > 0)


def test_std_is_exactly_zero_without_dropout():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(7, activation="tanh")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    x = RNG.normal(size=(10, 5)).astype("float32")
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
    a, b = mc_predict(model, x, samples=3), mc_predict(model, x, samples=3)
    assert not np.array_equal(a[0], b[0])
    # predict is deterministic again afterwards.
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_return_samples_matches_mean_and_std():
    model, x = _bn_model()
    mean, std, stack = mc_predict(model, x, samples=6, seed=2, return_samples=True)
    assert stack.shape == (6, 64, 3)
    np.testing.assert_allclose(mean, stack.mean(0), atol=1e-5)
    np.testing.assert_allclose(std, stack.std(0), atol=1e-5)
    assert len({stack[i].tobytes() for i in range(6)}) == 6


@pytest.mark.parametrize("layer_cls", [VariationalLSTM, LayerNormLSTM])
def test_recurrent_models(layer_cls):
    inputs = keras.Input((5, 3))
    x = layer_cls(8, dropout=0.3, recurrent_dropout=0.3, seed=5)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    x = RNG.normal(size=(12, 5, 3)).astype("float32")
    mean, std = mc_predict(model, x, samples=5, seed=3)
    again = mc_predict(model, x, samples=5, seed=3)
    np.testing.assert_array_equal(mean, again[0])
    assert mean.shape == (12, 1) and np.all(std > 0)


def test_memory_stays_bounded_unless_samples_are_returned():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(256)(inputs)
    model = keras.Model(inputs, InvertedDropout(0.5, seed=1)(x))
    x = RNG.normal(size=(500, 4)).astype("float32")
    one_prediction = 500 * 256 * 4  # bytes
    mc_predict(model, x, samples=2, batch_size=500)  # compile first

    def peak(samples, **kwargs):
        tracemalloc.start()
        try:
            mc_predict(model, x, samples=samples, batch_size=500, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Streamed: the peak does not grow with the number of samples.
    assert peak(16) < peak(2) + 2 * one_prediction
    assert peak(16, return_samples=True) > 16 * one_prediction


def test_progress_bar_with_verbose(capsys):
    model, x = _bn_model()
    mc_predict(model, x, samples=3, verbose=1)
    assert "3/3" in capsys.readouterr().out
    mc_predict(model, x, samples=3)
    assert capsys.readouterr().out == ""


def test_nested_outputs():
    inputs = keras.Input((4,))
    h = InvertedDropout(0.5, seed=1)(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, {"a": keras.layers.Dense(2)(h), "b": h})
    mean, std = mc_predict(model, RNG.normal(size=(3, 4)), samples=4, seed=0)
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
