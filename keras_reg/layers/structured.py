"""Structured dropout for convolutional and residual networks."""

import keras
import numpy as np
from keras import ops

from keras_reg import _random
from keras_reg._checks import (
    check_data_format,
    check_floating,
    check_positive_int,
    check_rank,
)
from keras_reg.layers._stochastic import Rate, Stochastic, sampling
from keras_reg.layers.dropout import _MaskedDropout


def _coverage(size, block):
    """How many valid block positions cover each index of an axis."""
    index = np.arange(size)
    return np.minimum(index, size - block) - np.maximum(0, index - block + 1) + 1


def center_probability(rate, height, width, block):
    """The probability of starting a block at each valid position such that
    the expected fraction of dropped units is exactly `rate`.

    A unit covered by `c` valid block positions is dropped with probability
    `1 - (1 - g)**c`; the fraction's mean over the map is solved for `g` by
    bisection (float64).
    """
    if rate == 0.0:
        return 0.0
    counts = np.outer(_coverage(height, block), _coverage(width, block)).ravel()
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if 1.0 - np.mean((1.0 - mid) ** counts) < rate:
            low = mid
        else:
            high = mid
    return high


@keras.saving.register_keras_serializable(package="keras_reg")
class DropBlock2D(Stochastic, keras.layers.Layer):
    """DropBlock: drops contiguous `block_size x block_size` regions.

    In training, block positions are drawn independently per sample and per
    channel, and every unit inside a drawn block is zeroed; blocks lie
    entirely inside the feature map and may overlap. The block-start
    probability is solved so that the expected fraction of dropped units is
    `rate` (exact when the spatial size is known when the layer is built;
    otherwise the approximation of Ghiasi et al. is used). The output is
    rescaled by `units / kept units` of the batch, as in the paper. Masks
    are drawn afresh at every call; inference is the identity.

    With the same seed, `channels_first` and `channels_last` inputs get the
    same blocks (one is the transpose of the other).

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        block_size: int, the side of the square blocks; at most the height
            and width of the feature map.
        data_format: `"channels_last"` (`(batch, height, width, channels)`)
            or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point 4D tensor.
        training: bool; `True` drops blocks. Defaults to `False`.

    Input shape:
        4D tensor, `(batch, height, width, channels)` or
        `(batch, channels, height, width)`.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((32, 32, 64))
    >>> x = keras_reg.layers.DropBlock2D(0.1, block_size=5)(inputs)

    Reference:
        Ghiasi, Lin & Le, 2018, "DropBlock: A regularization method for
        convolutional networks".
    """

    rate = Rate()

    def __init__(self, rate, block_size, data_format=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.block_size = check_positive_int("block_size", block_size)
        self.data_format = check_data_format(data_format)
        self._built_spatial = None
        self._init_random(seed)

    def _spatial(self, shape):
        return tuple(shape[2:4] if self.data_format == "channels_first" else shape[1:3])

    def _thresholds(self):
        # Slot 0: the rate; slot 1: the block-start threshold for the
        # spatial size seen at build time (0 until then).
        start = 0
        if self._built_spatial is not None:
            height, width = self._built_spatial
            g = center_probability(self.rate, height, width, self.block_size)
            start = min(round(g * _random.ONE), _random.ONE)
        return [*super()._thresholds(), start]

    def build(self, input_shape):
        check_rank(self, input_shape, {4}, "batch and 3 image axes")
        spatial = self._spatial(input_shape)
        for size in spatial:
            if size is not None and size < self.block_size:
                raise ValueError(
                    "Invalid value received for argument `block_size`. "
                    "Expected at most the feature map's height and width "
                    f"{spatial}. Received: block_size={self.block_size}"
                )
        if None not in spatial:
            self._built_spatial = spatial
            self._sync_thresholds()
        super().build(input_shape)

    def _block_starts(self, shape):
        """A float32 mask, 1 where a block starts, channels-last layout."""
        state = self.seed_generator
        if self.data_format == "channels_first":
            batch, channels, height, width = shape
        else:
            batch, height, width, channels = shape
        block = self.block_size
        grid = (batch, height - block + 1, width - block + 1, channels)
        bits = _random.uniform_bits(grid, state)
        static = (height, width)
        known = all(isinstance(d, int) for d in static)
        if known and static == self._built_spatial:
            starts = ops.less(bits, state.threshold(1))
        else:
            # The spatial size is dynamic: Ghiasi et al.'s approximation.
            rate = ops.divide(ops.cast(state.threshold(0), "float32"), _random.ONE)
            area = ops.cast(height * width, "float32")
            valid = ops.cast((height - block + 1) * (width - block + 1), "float32")
            gamma = rate * area / (block * block * valid)
            starts = ops.less(ops.cast(bits, "float32"), gamma * _random.ONE)
        return ops.cast(starts, "float32")

    def call(self, inputs, training=False):
        if not sampling(training):
            return inputs
        check_floating(self, inputs.dtype)
        shape = ops.shape(inputs)
        pad = self.block_size - 1
        starts = ops.pad(
            self._block_starts(shape), [[0, 0], [pad, pad], [pad, pad], [0, 0]]
        )
        dropped = ops.max_pool(
            starts,
            pool_size=self.block_size,
            strides=1,
            padding="valid",
            data_format="channels_last",
        )
        if self.data_format == "channels_first":
            dropped = ops.transpose(dropped, (0, 3, 1, 2))
        keep = ops.equal(dropped, 0.0)
        kept = ops.maximum(ops.sum(ops.cast(keep, "int32")), 1)
        total = ops.cast(ops.size(keep), "float32")
        scale = ops.cast(total / ops.cast(kept, "float32"), inputs.dtype)
        # A product, as in every keras_reg dropout: NaN or inf in the input
        # stays NaN in the output, dropped or not, and never turns into 0.
        return ops.multiply(inputs, ops.where(keep, scale, 0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "rate": self.rate,
            "block_size": self.block_size,
            "data_format": self.data_format,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class DropPath(_MaskedDropout):
    """Stochastic depth: drops a residual branch for whole samples.

    In training, each sample's whole input tensor is zeroed with
    probability `rate` (one draw per sample per call) and the kept samples
    are scaled by `1 / (1 - rate)`. Put it on the residual branch, before
    the addition: `x + DropPath(0.1)(branch(x))`. Inference is the identity.

    Args:
        rate: float in [0, 1), the probability of DROPPING a sample's branch
            (not the keep probability).
        seed: optional int; see `InvertedDropout`. Defaults to `None`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point tensor `(batch, ...)`.
        training: bool; `True` drops samples. Defaults to `False`.

    Input shape:
        Any, with the batch first.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((32, 32, 16))
    >>> branch = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    >>> outputs = inputs + keras_reg.layers.DropPath(0.2)(branch)

    Reference:
        Huang et al., 2016, "Deep Networks with Stochastic Depth".
    """

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(
                f"Layer '{self.name}' (DropPath) expects inputs with a batch "
                f"axis. Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def _noise_shape(self, inputs):
        shape = ops.shape(inputs)
        return (shape[0],) + (1,) * (len(shape) - 1)
