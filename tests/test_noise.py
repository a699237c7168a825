"""GaussianNoise, GaussianDropout, AlphaDropout: the portable noise layers."""

import math

import keras
import numpy as np
import pytest

import keras_reg
from keras_reg.layers import AlphaDropout, GaussianDropout, GaussianNoise, _samples
from tests.helpers import run_layer_test, six_sigma, to_numpy

ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
N = 200_000
# The contract's input shape, used wherever a test needs no shape of its own:
# eager JAX compiles each op once per shape.
SHAPE = (4, 3, 5)


# --- An independent reference of the draws, in NumPy uint32 arithmetic -------


def _lowbias32(x):
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _bits(seed, counter, size):
    """The portable generator's 24-bit integers for draw `counter`."""
    with np.errstate(over="ignore"):
        k1 = _lowbias32(
            _lowbias32(np.uint32(seed) ^ np.uint32(0x3C6EF372)) ^ np.uint32(counter)
        )
        k2 = _lowbias32(k1 + np.uint32(0x1B873593))
        index = np.arange(size, dtype=np.uint32)
        return (_lowbias32(_lowbias32(index ^ k1) + k2) >> np.uint32(8)).astype(
            np.int64
        )


def _normals(seed, counter, shape):
    """Box-Muller on the two halves of one draw of `2 * size` bits."""
    size = int(np.prod(shape))
    bits = _bits(seed, counter, 2 * size).astype(np.float64) / 2**24
    u1, u2 = bits[:size] + 0.5 / 2**24, bits[size:]
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return z.reshape(shape)


def _alpha_affine(rate):
    a = ((1 - rate) * (1 + rate * ALPHA_P**2)) ** -0.5
    return a, -a * ALPHA_P * rate


# --- The layer contract ---------------------------------------------------------


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (GaussianNoise, {"stddev": 0.3, "seed": 1}),
        (GaussianDropout, {"rate": 0.3, "seed": 1}),
        (AlphaDropout, {"rate": 0.2, "noise_shape": None, "seed": 1}),
        (AlphaDropout, {"rate": 0.2, "noise_shape": (None, 1, 5), "seed": 2}),
    ],
)
def test_layer_contract(cls, kwargs, tmp_path):
    run_layer_test(cls, kwargs, SHAPE, tmp_path=tmp_path)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (GaussianNoise, {"stddev": 0.3}),
        (GaussianDropout, {"rate": 0.3}),
        (AlphaDropout, {"rate": 0.3}),
    ],
)
def test_input_unchanged_in_inference(cls, kwargs):
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    layer = cls(**kwargs, seed=3)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    assert not np.array_equal(to_numpy(layer(x, training=True)), x)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (GaussianNoise, {"stddev": 0.3}),
        (GaussianDropout, {"rate": 0.3}),
        (AlphaDropout, {"rate": 0.3}),
    ],
)
def test_mc_dropout_samples_and_successive_calls_differ(cls, kwargs):
    inputs = keras.Input((16,))
    model = keras.Model(inputs, cls(**kwargs, seed=4)(inputs))
    x = np.ones((4, 16), "float32")
    np.testing.assert_array_equal(to_numpy(model(x)), x)
    with keras_reg.inference.mc_dropout():
        first, second = to_numpy(model(x)), to_numpy(model(x))
    assert not np.array_equal(first, x)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: GaussianNoise(-0.1), "stddev=-0.1"),
        (lambda: GaussianNoise(float("nan")), "stddev=nan"),
        (lambda: GaussianNoise("0.1"), "stddev='0.1'"),
        (lambda: GaussianDropout(1.0), "rate=1.0"),
        (lambda: GaussianDropout(-0.5), "rate=-0.5"),
        (lambda: AlphaDropout(1.5), "rate=1.5"),
        (lambda: AlphaDropout(0.1, noise_shape=(0, 2)), "noise_shape"),
    ],
)
def test_bad_arguments_raise_naming_them(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()


def test_noise_shape_of_the_wrong_rank_raises():
    with pytest.raises(ValueError, match="noise_shape"):
        AlphaDropout(0.1, noise_shape=(None, 1))(np.ones((2, 3, 4)), training=True)


# --- The draws: the portable generator, an exact NumPy reference ---------------


def test_gaussian_noise_is_box_muller_on_the_portable_bits():
    x = np.random.default_rng(1).normal(size=SHAPE).astype("float32")
    layer = GaussianNoise(0.5, seed=1234)
    for counter in range(2):  # the stream moves on, one draw per call
        y = to_numpy(layer(x, training=True))
        expected = x + 0.5 * _normals(1234, counter, x.shape)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_gaussian_dropout_is_box_muller_on_the_portable_bits():
    x = np.random.default_rng(2).normal(size=SHAPE).astype("float32")
    rate = 0.25
    y = to_numpy(GaussianDropout(rate, seed=77)(x, training=True))
    expected = x * (1 + math.sqrt(rate / (1 - rate)) * _normals(77, 0, x.shape))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_alpha_dropout_matches_an_exact_numpy_reference():
    x = np.random.default_rng(3).normal(size=SHAPE).astype("float32")
    rate = 0.3
    y = to_numpy(AlphaDropout(rate, noise_shape=(None, 1, 5), seed=9)(x, training=True))
    kept = _bits(9, 0, 4 * 5).reshape(4, 1, 5) >= int(rate * 2**24)
    a, b = _alpha_affine(rate)
    expected = a * np.where(kept, x, ALPHA_P) + b
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_same_seed_same_noise_run_after_run():
    x = np.zeros(SHAPE, "float32")
    first = to_numpy(GaussianNoise(1.0, seed=5)(x, training=True))
    again = to_numpy(GaussianNoise(1.0, seed=5)(x, training=True))
    np.testing.assert_array_equal(first, again)


# --- Statistics at 6 sigma --------------------------------------------------------


def _check_normal(z, mean, std):
    """Mean, variance and the share within one sigma of `N(mean, std**2)`,
    each within 6 standard errors."""
    n = z.size
    assert abs(z.mean() - mean) < 6 * std / math.sqrt(n)
    # The variance of the sample variance of a normal is 2 sigma**4 / n.
    assert abs(z.var() - std**2) < 6 * std**2 * math.sqrt(2 / n)
    inside = np.mean(np.abs(z - mean) < std)
    assert abs(inside - 0.682689) < six_sigma(0.682689, n)
    # The fourth moment tells a normal from, e.g., a uniform of the same
    # variance (3 against 1.8); its standard error is sqrt(96 / n).
    kurtosis = np.mean(((z - mean) / std) ** 4)
    assert abs(kurtosis - 3.0) < 6 * math.sqrt(96 / n)


def test_gaussian_noise_is_normal_with_the_given_stddev():
    y = to_numpy(GaussianNoise(0.7, seed=11)(np.zeros((N,), "float32"), training=True))
    _check_normal(y, 0.0, 0.7)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_gaussian_dropout_factor_is_normal_around_one(rate):
    y = to_numpy(
        GaussianDropout(rate, seed=12)(np.ones((N,), "float32"), training=True)
    )
    _check_normal(y, 1.0, math.sqrt(rate / (1 - rate)))


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_alpha_dropout_keeps_zero_mean_unit_variance(rate):
    x = np.random.default_rng(4).normal(size=(N,)).astype("float32")
    y = to_numpy(AlphaDropout(rate, seed=13)(x, training=True))
    a, b = _alpha_affine(rate)
    dropped = np.isclose(y, a * ALPHA_P + b, atol=1e-6)
    assert abs(dropped.mean() - rate) < six_sigma(rate, N)
    # Output variance: Var(y) = a**2 Var(mixture); its sample variance has
    # standard error sqrt((mu4 - var**2) / n) < sqrt(mean(y**4) / n).
    assert abs(y.mean()) < 6 * math.sqrt(1.0 / N)
    assert abs(y.var() - 1.0) < 6 * math.sqrt(np.mean(y**4) / N)


def test_alpha_dropout_takes_keras_values():
    # Keras' AlphaDropout maps a kept 1 to a + b and a dropped unit to
    # a * alpha_p + b; ours gives the same two values.
    x = np.ones((64, 64), "float32")
    ours = np.unique(np.round(to_numpy(AlphaDropout(0.3, seed=1)(x, training=True)), 5))
    theirs = keras.layers.AlphaDropout(0.3, seed=1)(x, training=True)
    np.testing.assert_allclose(ours, np.unique(np.round(to_numpy(theirs), 5)))


def test_batch_shared_alpha_mask_is_drawn_per_stacked_sample():
    # Under mc_predict's stacking, each sample's rows get their own mask.
    layer = AlphaDropout(0.5, noise_shape=(1, 32), seed=6)
    x = np.ones((2 * 3, 32), "float32")
    with _samples.stacked(2):
        y = to_numpy(layer(x, training=True))
    first, second = y[:3], y[3:]
    np.testing.assert_array_equal(first, np.broadcast_to(first[:1], first.shape))
    assert not np.array_equal(first, second)


def test_rate_change_takes_effect_in_a_compiled_function():
    layer = GaussianDropout(0.5, seed=8)
    inputs = keras.Input((N // 10,))
    model = keras.Model(inputs, layer(inputs, training=True))
    x = np.ones((1, N // 10), "float32")
    model.predict(x, verbose=0)
    layer.rate = 0.0
    np.testing.assert_allclose(model.predict(x, verbose=0), x)


@pytest.mark.parametrize(
    "layer",
    [
        GaussianNoise(0.5, seed=1),
        GaussianDropout(0.5, seed=2),
        AlphaDropout(0.5, seed=3),
        AlphaDropout(0.5, noise_shape=(1, 16), seed=4),
    ],
    ids=["noise", "gaussian_dropout", "alpha", "alpha_batch_shared"],
)
def test_consistent_sampling_shares_each_sample_across_its_rows(layer):
    # mc_predict(consistent=True): every row of a stacked sample draws that
    # sample's noise; the samples differ.
    x = np.ones((2 * 3, 16), "float32")
    with _samples.stacked(2, consistent=True):
        y = to_numpy(layer(x, training=True))
    first, second = y[:3], y[3:]
    np.testing.assert_array_equal(first, np.broadcast_to(first[:1], first.shape))
    np.testing.assert_array_equal(second, np.broadcast_to(second[:1], second.shape))
    assert not np.array_equal(first[0], second[0])
