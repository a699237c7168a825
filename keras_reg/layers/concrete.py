"""Concrete dropout: a drop rate learned by gradient descent."""

import inspect
import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_reg import _random
from keras_reg._checks import _invalid, check_floating, check_positive_float
from keras_reg.layers import _samples
from keras_reg.layers._stochastic import Stochastic, sampling


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(name, "a non-negative float", value)
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise _invalid(name, "a non-negative float", value)
    return value


def _check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(name, "a float in (0, 1)", value)
    value = float(value)
    if not 0.0 < value < 1.0:  # False for NaN too
        raise _invalid(name, "a float in (0, 1)", value)
    return value


def _logit(p):
    return math.log(p) - math.log1p(-p)


@keras.saving.register_keras_serializable(package="keras_reg")
class ConcreteDropout(Stochastic, keras.layers.Wrapper):
    """Concrete dropout: dropout on a layer's inputs with a learned rate.

    Wraps a layer and drops its inputs with a probability `p` that is a
    trainable weight (`p = sigmoid(p_logit)`), learned with the model by
    gradient descent through a continuous relaxation of the Bernoulli mask.
    In training, every input element draws its own noise
    `u ~ Uniform(0, 1)`, freshly at every call, and is multiplied by
    `(1 - z) / (1 - p)` with

        z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / temperature),

    a relaxed "drop" indicator (0 or 1 as the temperature goes to 0). `u` is
    `(k + 1/2) / 2**24` for 24 random bits `k` from keras_reg's generator,
    so it is never 0 or 1, and in portable mode it is the same on every
    backend. Inference is the wrapped layer alone; `mc_predict` and
    `mc_dropout` sample the relaxed mask. Under
    `mc_predict(..., consistent=True)` the noise of sample `t` is one draw
    shared by every row (consistent masks, as for the other layers).

    Each call (training or not) adds the regularizer of Gal, Hron & Kendall
    to the model's losses:

        weight_regularizer * sum(kernel**2) / (1 - p)
        + dropout_regularizer * input_dim * (p log p + (1 - p) log(1 - p))

    where `kernel` is the wrapped layer's `kernel` (all its trainable
    weights if it has none) and `input_dim` is the size of the last axis of
    its input. The rate acts on every element of the input (the dense form
    of the paper); `layer.rate` reads the current `p`.

    Args:
        layer: the `keras.layers.Layer` whose inputs are dropped (a
            `Dense`, a convolution, ...).
        weight_regularizer: float >= 0, the weight-decay factor `l**2 / N`
            of the paper (prior length scale squared over the number of
            training examples). Defaults to `1e-6`.
        dropout_regularizer: float >= 0, the factor `2 / N` of the paper
            (for the dropout entropy term). Defaults to `1e-5`.
        init_min: float in (0, 1), the lowest initial drop rate. Defaults
            to `0.1`.
        init_max: float in (0, 1), at least `init_min`, the highest initial
            drop rate; the initial `p_logit` is drawn uniformly between
            `logit(init_min)` and `logit(init_max)`. Defaults to `0.1`.
        temperature: float > 0, the temperature of the relaxation. Defaults
            to `0.1`.
        seed: optional int; see `InvertedDropout`. It also draws the
            initial rate. Defaults to `None`: a seed is drawn, kept in the
            layer's state and left out of the config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point input of the wrapped layer.
        training: bool; `True` drops inputs. Passed on to the wrapped layer
            if it takes it. Defaults to `False`.

    Input shape:
        The wrapped layer's input shape; its last axis must be known.

    Output shape:
        The wrapped layer's output shape.

    Example:

    >>> inputs = keras.Input((16,))
    >>> dense = keras.layers.Dense(32, activation="relu")
    >>> layer = keras_reg.layers.ConcreteDropout(dense, seed=1)
    >>> outputs = layer(inputs)
    >>> round(layer.rate, 6)  # the learned drop rate, a Python float
    0.1

    Reference:
        Gal, Hron & Kendall, 2017, "Concrete Dropout".
    """

    # Every draw goes through `_samples.row_bits`.
    _consistent_masks = True

    def __init__(
        self,
        layer,
        weight_regularizer=1e-6,
        dropout_regularizer=1e-5,
        init_min=0.1,
        init_max=0.1,
        temperature=0.1,
        seed=None,
        **kwargs,
    ):
        if not isinstance(layer, keras.layers.Layer):
            raise _invalid("layer", "a keras.layers.Layer instance", layer)
        super().__init__(layer, **kwargs)
        self.weight_regularizer = _check_non_negative(
            "weight_regularizer", weight_regularizer
        )
        self.dropout_regularizer = _check_non_negative(
            "dropout_regularizer", dropout_regularizer
        )
        self.init_min = _check_probability("init_min", init_min)
        self.init_max = _check_probability("init_max", init_max)
        if self.init_min > self.init_max:
            raise ValueError(
                "Invalid value received for argument `init_min`. Expected at "
                f"most init_max={self.init_max}. Received: init_min={init_min!r}"
            )
        self.temperature = check_positive_float("temperature", temperature)
        self._passes_training = "training" in inspect.signature(layer.call).parameters
        # No `Rate` slots (the rate is a weight): the mixin's record is empty.
        object.__setattr__(self, "_rates", {})
        self._init_random(seed)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' (ConcreteDropout) needs inputs with a "
                "batch axis and a known last axis. Received: "
                f"input_shape={input_shape}"
            )
        self.input_dim = int(input_shape[-1])
        if not self.layer.built:
            self.layer.build(input_shape)
        low, high = _logit(self.init_min), _logit(self.init_max)
        # The initial logit comes from the layer's seed (drawn if `seed` is
        # None), not from the backend: the same on every backend.
        drawn = self.seed_generator.get_config()["seed"]
        u = np.random.default_rng([drawn, 0x5EED]).random()
        self.p_logit = self.add_weight(
            name="p_logit",
            shape=(),
            initializer=keras.initializers.Constant(low + (high - low) * u),
            trainable=True,
            autocast=False,
        )
        self.built = True

    @property
    def rate(self):
        """The current drop probability `p`, a Python float (read-only)."""
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' (ConcreteDropout) has no rate until it "
                "is built (called on an input)."
            )
        return float(ops.convert_to_numpy(ops.sigmoid(self.p_logit)))

    def _kernels(self):
        kernel = getattr(self.layer, "kernel", None)
        if kernel is not None:
            return [kernel]
        return list(self.layer.trainable_weights)

    def _regularizer(self, p_logit):
        # log p = log_sigmoid(logit), log(1 - p) = log_sigmoid(-logit):
        # finite for any logit.
        p = ops.sigmoid(p_logit)
        keep = ops.sigmoid(-p_logit)
        squares = 0.0
        for kernel in self._kernels():
            squares = squares + ops.sum(ops.square(ops.cast(kernel, p_logit.dtype)))
        weight_term = self.weight_regularizer * squares / keep
        entropy = p * ops.log_sigmoid(p_logit) + keep * ops.log_sigmoid(-p_logit)
        dropout_term = self.dropout_regularizer * self.input_dim * entropy
        return weight_term + dropout_term

    def _relaxed_dropout(self, inputs, p_logit):
        # Rows along axis 0: under `mc_predict(..., consistent=True)` every
        # row of a sample draws that sample's noise (`_samples.row_bits`);
        # otherwise this is `_random.uniform_bits`, one draw per element.
        bits = ops.cast(
            _samples.row_bits(ops.shape(inputs), self.seed_generator),
            p_logit.dtype,
        )
        # log u - log(1 - u) for u = (bits + 1/2) / 2**24, without forming
        # 1 - u (which rounds to 0 in float32 near u = 1).
        noise = ops.log(bits + 0.5) - ops.log(float(_random.ONE) - bits - 0.5)
        drop = ops.sigmoid((p_logit + noise) / self.temperature)
        scale = (1.0 - drop) / ops.sigmoid(-p_logit)
        return ops.multiply(inputs, ops.cast(scale, inputs.dtype))

    def call(self, inputs, training=False):
        check_floating(self, inputs.dtype)
        # In the variable's dtype (float32, or float64 under that policy),
        # not the compute dtype: the variable is not autocast.
        p_logit = ops.convert_to_tensor(self.p_logit)
        # In `floatx`, the dtype of Keras' compiled losses, which it adds
        # this one to (under a float64 policy the variable is float64).
        self.add_loss(ops.cast(self._regularizer(p_logit), keras.config.floatx()))
        if sampling(training, self):
            inputs = self._relaxed_dropout(inputs, p_logit)
        kwargs = {"training": training} if self._passes_training else {}
        return self.layer(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = {
            "weight_regularizer": self.weight_regularizer,
            "dropout_regularizer": self.dropout_regularizer,
            "init_min": self.init_min,
            "init_max": self.init_max,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # A copy: Keras' `Wrapper.from_config` pops the layer from the dict.
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        return cls(layer, **config)
