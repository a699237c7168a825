"""Portable twins of Keras' noise layers: GaussianNoise, GaussianDropout,
AlphaDropout.

Their draws come from `keras_reg._random` (the portable generator by
default), so one seed gives the same noise on TensorFlow, PyTorch and JAX.
Normal variates are made from the generator's uniform bits by the
Box-Muller transform (`_normal`).
"""

import math
import numbers

import keras
from keras import ops

from keras_reg import _random
from keras_reg._checks import check_floating, check_noise_shape
from keras_reg.layers import _samples
from keras_reg.layers._stochastic import Rate, Stochastic, sampling

# SELU's constants (Klambauer et al. 2017), as in Keras' AlphaDropout.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# The value a dropped unit takes: SELU's negative saturation.
_ALPHA_P = -_SELU_ALPHA * _SELU_SCALE


def _normal(shape, state):
    """Standard normal variates of `shape` (float32), one draw of `state`.

    Box-Muller on two uniforms made from one draw of `2 * size` portable
    24-bit integers: `u1 = (bits + 0.5) / 2**24` lies in (0, 1), so the
    logarithm is finite and `|z| <= sqrt(-2 log(2**-25)) ~ 5.9`: the tails
    beyond 5.9 sigma (a 4e-9 share of a true normal) are cut.
    """
    shape = tuple(shape)
    # Rows run along axis 1: under consistent Monte Carlo sampling every row
    # of a sample draws that sample's noise.
    bits = _samples.row_bits((2, *shape), state, axis=1)
    uniforms = ops.divide(ops.cast(bits, "float32"), float(_random.ONE))
    u1 = ops.add(uniforms[0], 0.5 / _random.ONE)
    u2 = uniforms[1]
    radius = ops.sqrt(ops.multiply(-2.0, ops.log(u1)))
    return ops.multiply(radius, ops.cos(ops.multiply(2.0 * math.pi, u2)))


def _check_stddev(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            "Invalid value received for argument `stddev`. Expected a "
            f"finite float >= 0. Received: stddev={value!r}"
        )
    value = float(value)
    if not 0.0 <= value < math.inf:  # False for NaN too
        raise ValueError(
            "Invalid value received for argument `stddev`. Expected a "
            f"finite float >= 0. Received: stddev={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package="keras_reg")
class GaussianNoise(Stochastic, keras.layers.Layer):
    """Additive zero-centered Gaussian noise, the same on every backend.

    In training, adds `N(0, stddev**2)` noise drawn independently for every
    element and freshly at every call; inference is the identity. The
    portable twin of `keras.layers.GaussianNoise`: the same arguments and
    statistics, but the draws come from keras_reg's counter-based
    generator, so a seed gives the same noise on TensorFlow, PyTorch and
    JAX. The normals are made from uniform bits by the Box-Muller
    transform, which bounds them at about 5.9 standard deviations.

    Args:
        stddev: float >= 0, the standard deviation of the noise. (Keras
            accepts [0, 1]; any finite value >= 0 is accepted here.)
        seed: optional int. The same seed gives the same noise, run after
            run (and, in the default "portable" mode, on every backend).
            Defaults to `None`: a seed is drawn, kept in the layer's state
            (saved with the model and its weights, with the stream's
            position) and left out of the config, so a clone draws its own.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: floating-point tensor of any rank.
        training: bool; `True` adds noise, `False` (default) is the
            identity.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> layer = keras_reg.layers.GaussianNoise(0.1, seed=1)
    >>> x = keras.ops.zeros((2, 4))
    >>> y = layer(x, training=True)  # eight N(0, 0.01) draws

    Reference:
        Keras' `GaussianNoise`; Box & Muller, 1958, "A Note on the
        Generation of Random Normal Deviates".
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _check_stddev(stddev)
        self._init_random(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not sampling(training, self) or self.stddev == 0:
            return inputs
        check_floating(self, inputs.dtype)
        noise = ops.multiply(
            _normal(ops.shape(inputs), self.seed_generator), self.stddev
        )
        return ops.add(inputs, ops.cast(noise, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"stddev": self.stddev, "seed": self.seed}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class GaussianDropout(Stochastic, keras.layers.Layer):
    """Multiplicative 1-centered Gaussian noise, the same on every backend.

    In training, multiplies every element by its own `N(1, rate / (1 - rate))`
    draw, fresh at every call (Srivastava et al. 2014, section 10: the
    Gaussian with the mean and variance of inverted Bernoulli dropout of
    `rate`); inference is the identity. The portable twin of
    `keras.layers.GaussianDropout`: the same arguments and statistics, but
    the draws come from keras_reg's counter-based generator, so a seed gives
    the same noise on TensorFlow, PyTorch and JAX.

    The rate lives in the layer's state variable, as `InvertedDropout`'s
    does: `layer.rate = 0.2` takes effect at the next call without
    retracing. The rate in force is `floor(rate * 2**24) / 2**24`.

    Args:
        rate: float in [0, 1), the drop probability of the Bernoulli
            dropout whose mean and variance the noise has (not the keep
            probability). Keras also accepts 1, an infinite variance.
        seed: optional int; see `keras_reg.layers.GaussianNoise`. Defaults
            to `None`: a seed is drawn, kept in the layer's state and left
            out of the config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point tensor of any rank.
        training: bool; `True` applies the noise, `False` (default) is the
            identity.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> layer = keras_reg.layers.GaussianDropout(0.5, seed=1)
    >>> x = keras.ops.ones((2, 4))
    >>> y = layer(x, training=True)  # eight N(1, 1) draws

    Reference:
        Srivastava et al., 2014, "Dropout: A Simple Way to Prevent Neural
        Networks from Overfitting", section 10.
    """

    rate = Rate()

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self._init_random(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not sampling(training, self):
            return inputs
        check_floating(self, inputs.dtype)
        rate = self.seed_generator.rate(0)
        stddev = ops.sqrt(ops.divide(rate, ops.subtract(1.0, rate)))
        noise = _normal(ops.shape(inputs), self.seed_generator)
        factor = ops.add(1.0, ops.multiply(noise, stddev))
        return ops.multiply(inputs, ops.cast(factor, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"rate": self.rate, "seed": self.seed}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class AlphaDropout(Stochastic, keras.layers.Layer):
    """Dropout for self-normalizing (SELU) networks, the same on every
    backend.

    In training, each unit (or each entry of `noise_shape`, broadcast over
    the axes where it is 1) is set to SELU's negative saturation
    `-alpha * scale` with probability `rate`, freshly at every call, and the
    result goes through the affine map `a * x + b` with
    `a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5` and
    `b = -a * alpha_p * rate`, so inputs of mean 0 and variance 1 keep
    them. Inference is the identity. The portable twin of
    `keras.layers.AlphaDropout`: the same arguments and statistics, but the
    masks come from keras_reg's counter-based generator, so a seed gives
    the same masks on TensorFlow, PyTorch and JAX. A mask whose batch entry
    is 1 is shared by the batch (under `mc_predict`, by each Monte Carlo
    sample's rows).

    The rate lives in the layer's state variable: `layer.rate = 0.2` takes
    effect at the next call without retracing. The rate in force is
    `floor(rate * 2**24) / 2**24`, which is exactly the drop probability.

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        noise_shape: optional tuple, the shape of the mask, broadcast
            against the input; `None` entries take the input's size.
            Defaults to `None` (the input shape).
        seed: optional int; see `keras_reg.layers.GaussianNoise`. Defaults
            to `None`: a seed is drawn, kept in the layer's state and left
            out of the config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point tensor of any rank.
        training: bool; `True` applies alpha dropout, `False` (default) is
            the identity.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((64,))
    >>> x = keras.layers.Dense(64, activation="selu")(inputs)
    >>> x = keras_reg.layers.AlphaDropout(0.1, seed=1)(x)

    Reference:
        Klambauer et al., 2017, "Self-Normalizing Neural Networks".
    """

    rate = Rate()

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.noise_shape = check_noise_shape(noise_shape)
        self._init_random(seed)
        self.supports_masking = True
        self.built = True

    def _concrete_noise_shape(self, inputs):
        shape = list(ops.shape(inputs))
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                "Invalid value received for argument `noise_shape`. "
                f"Expected {len(shape)} entries, one per input axis. "
                f"Received: noise_shape={self.noise_shape} for input_shape="
                f"{tuple(inputs.shape)}"
            )
        return tuple(
            size if dim is None else dim
            for dim, size in zip(self.noise_shape, shape, strict=True)
        )

    def call(self, inputs, training=False):
        if not sampling(training, self):
            return inputs
        check_floating(self, inputs.dtype)
        noise_shape = self._concrete_noise_shape(inputs)
        state = self.seed_generator
        shared = isinstance(noise_shape[0], int) and noise_shape[0] == 1
        if shared and (_samples.groups() > 1 or _samples.consistent()):
            # One mask per Monte Carlo sample stacked in the batch.
            grouped = _samples.keep_mask(noise_shape, state)
            kept = _samples.per_row(grouped, ops.shape(inputs)[0], 0)
        else:
            kept = _samples.row_keep_mask(noise_shape, state)
        rate = state.rate(0)
        a = ops.power(
            ops.multiply(
                ops.subtract(1.0, rate), ops.add(1.0, ops.multiply(rate, _ALPHA_P**2))
            ),
            -0.5,
        )
        b = ops.multiply(ops.multiply(-_ALPHA_P, a), rate)
        dtype = inputs.dtype
        x = ops.where(kept, inputs, ops.cast(_ALPHA_P, dtype))
        return ops.add(ops.multiply(x, ops.cast(a, dtype)), ops.cast(b, dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
