"""Structured dropout for convolutional and residual networks."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_reg import _random
from keras_reg._checks import (
    _invalid,
    check_bool,
    check_data_format,
    check_floating,
    check_rank,
    check_rate,
)
from keras_reg.layers import _samples
from keras_reg.layers._stochastic import Rate, Stochastic, sampling
from keras_reg.layers.dropout import _MaskedDropout


def _coverage(size, block):
    """How many valid block positions cover each index of an axis."""
    index = np.arange(size)
    return np.minimum(index, size - block) - np.maximum(0, index - block + 1) + 1


def center_probability(rate, spatial, block):
    """The probability of starting a block at each valid position such that
    the expected fraction of dropped units is exactly `rate`.

    `spatial` and `block` are tuples with one entry per spatial axis. A unit
    covered by `c` valid block positions is dropped with probability
    `1 - (1 - g)**c`; the fraction's mean over the map is solved for `g` by
    bisection (float64).
    """
    if rate == 0.0:
        return 0.0
    counts = np.ones((), dtype=np.int64)
    for size, side in zip(spatial, block, strict=True):
        counts = np.multiply.outer(counts, _coverage(size, side))
    values, weights = np.unique(counts, return_counts=True)
    weights = weights / counts.size
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if 1.0 - np.sum(weights * (1.0 - mid) ** values) < rate:
            low = mid
        else:
            high = mid
    return high


def _check_block_size(value, rank):
    """`block_size` as given (an int, or a tuple of `rank` ints) and as a
    tuple of `rank` ints."""
    expected = (
        "a positive integer"
        if rank == 1
        else f"a positive integer or a tuple of {rank} positive integers"
    )
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 1:
            raise _invalid("block_size", expected, value)
        return int(value), (int(value),) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank:
        if all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
            for v in value
        ):
            sides = tuple(int(v) for v in value)
            return sides, sides
    raise _invalid("block_size", expected, value)


class _DropBlock(Stochastic, keras.layers.Layer):
    """DropBlock over `_rank` spatial axes; the public classes set `_rank`."""

    _rank = None
    _axes = None  # the spatial axes' names, for messages
    rate = Rate()
    _consistent_masks = True

    def __init__(
        self,
        rate,
        block_size,
        shared_channels=False,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rate = rate
        self.block_size, self._block = _check_block_size(block_size, self._rank)
        self.shared_channels = check_bool("shared_channels", shared_channels)
        self.data_format = check_data_format(data_format)
        self._built_spatial = None
        self._init_random(seed)
        self.supports_masking = True

    def _spatial(self, shape):
        if self.data_format == "channels_first":
            return tuple(shape[2:])
        return tuple(shape[1:-1])

    def _thresholds(self):
        # Slot 0: the rate; slot 1: the block-start threshold for the
        # spatial size seen at build time (0 until then).
        start = 0
        if self._built_spatial is not None:
            g = center_probability(self.rate, self._built_spatial, self._block)
            start = min(round(g * _random.ONE), _random.ONE)
        return [*super()._thresholds(), start]

    def build(self, input_shape):
        check_rank(
            self, input_shape, {self._rank + 2}, f"batch, {self._axes}, channels"
        )
        spatial = self._spatial(input_shape)
        for size, side in zip(spatial, self._block, strict=True):
            if size is not None and size < side:
                raise ValueError(
                    "Invalid value received for argument `block_size`. "
                    f"Expected at most the feature map's {self._axes} "
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
            batch, channels, spatial = shape[0], shape[1], tuple(shape[2:])
        else:
            batch, channels, spatial = shape[0], shape[-1], tuple(shape[1:-1])
        if self.shared_channels:
            channels = 1
        valid = tuple(s - b + 1 for s, b in zip(spatial, self._block, strict=True))
        bits = _samples.row_bits((batch, *valid, channels), state)
        known = all(isinstance(d, int) for d in spatial)
        if known and spatial == self._built_spatial:
            starts = ops.less(bits, state.threshold(1))
        else:
            # The spatial size is dynamic: Ghiasi et al.'s approximation.
            rate = ops.divide(ops.cast(state.threshold(0), "float32"), _random.ONE)
            area, positions = 1, 1
            for size, count in zip(spatial, valid, strict=True):
                area = area * size
                positions = positions * count
            area = ops.cast(area, "float32")
            positions = ops.cast(positions, "float32")
            gamma = rate * area / (float(np.prod(self._block)) * positions)
            starts = ops.less(ops.cast(bits, "float32"), gamma * _random.ONE)
        return ops.cast(starts, "float32")

    def call(self, inputs, training=False):
        if not sampling(training, self):
            return inputs
        check_floating(self, inputs.dtype)
        shape = ops.shape(inputs)
        pads = [[0, 0], *[[b - 1, b - 1] for b in self._block], [0, 0]]
        starts = ops.pad(self._block_starts(shape), pads)
        dropped = ops.max_pool(
            starts,
            pool_size=self._block,
            strides=1,
            padding="valid",
            data_format="channels_last",
        )
        if self.data_format == "channels_first":
            rank = self._rank
            dropped = ops.transpose(dropped, (0, rank + 1, *range(1, rank + 1)))
        keep = ops.equal(dropped, 0.0)
        # The kept units are scaled by units / kept units of the batch (of
        # each Monte Carlo sample when `mc_predict` stacks them; with
        # consistent masks every row of a sample shares its mask, so that
        # is the one mask's ratio, whatever the batch).
        count = _samples.groups()
        grouped = ops.reshape(ops.cast(keep, "int32"), (count, -1))
        kept = ops.cast(ops.maximum(ops.sum(grouped, axis=1), 1), "float32")
        total = ops.cast(ops.shape(grouped)[1], "float32")
        scale = ops.cast(total / kept, inputs.dtype)
        if count == 1:
            scaled = ops.where(keep, scale[0], 0)
        else:
            scale = ops.reshape(scale, (count,) + (1,) * len(shape))
            scaled = _samples.merge(ops.where(_samples.split(keep, count), scale, 0))
        # A product, as in every keras_reg dropout: NaN or inf in the input
        # stays NaN in the output, dropped or not, and never turns into 0.
        return ops.multiply(inputs, scaled)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "rate": self.rate,
            "block_size": self.block_size,
            "shared_channels": self.shared_channels,
            "data_format": self.data_format,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class DropBlock1D(_DropBlock):
    """DropBlock on sequences: drops contiguous runs of `block_size` steps.

    In training, block positions are drawn independently per sample and per
    channel (or, with `shared_channels=True`, once per sample for all
    channels), and every step inside a drawn block is zeroed; blocks lie
    entirely inside the sequence and may overlap. The block-start
    probability is solved so that the expected fraction of dropped units is
    exactly `rate` (when the length is known when the layer is built;
    otherwise the approximation of Ghiasi et al. is used). The output is
    rescaled by `units / kept units` of the batch, so the expected sum is
    unchanged. Masks are drawn afresh at every call; inference is the
    identity. Input masks (`mask_zero`, `Masking`) pass through unchanged.

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        block_size: int, the length of the blocks in steps; at most the
            sequence length.
        shared_channels: bool; `True` drops the same steps of every channel
            of a sample. Defaults to `False`.
        data_format: `"channels_last"` (`(batch, steps, channels)`) or
            `"channels_first"` (`(batch, channels, steps)`). Defaults to
            `keras.config.image_data_format()`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point 3D tensor.
        training: bool; `True` drops blocks. Defaults to `False`.

    Input shape:
        3D tensor, `(batch, steps, channels)` or `(batch, channels, steps)`.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((128, 16))
    >>> x = keras.layers.Conv1D(32, 5, padding="same")(inputs)
    >>> x = keras_reg.layers.DropBlock1D(0.1, block_size=7)(x)

    Reference:
        Ghiasi, Lin & Le, 2018, "DropBlock: A regularization method for
        convolutional networks".
    """

    _rank = 1
    _axes = "steps"

    def __init__(
        self,
        rate,
        block_size,
        shared_channels=False,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            rate,
            block_size,
            shared_channels=shared_channels,
            data_format=data_format,
            seed=seed,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keras_reg")
class DropBlock2D(_DropBlock):
    """DropBlock: drops contiguous `block_size` regions of feature maps.

    In training, block positions are drawn independently per sample and per
    channel (or, with `shared_channels=True`, once per sample for all
    channels), and every unit inside a drawn block is zeroed; blocks lie
    entirely inside the feature map and may overlap. The block-start
    probability is solved so that the expected fraction of dropped units is
    exactly `rate` (when the spatial size is known when the layer is built;
    otherwise the approximation of Ghiasi et al. is used). The output is
    rescaled by `units / kept units` of the batch, as in the paper, so the
    expected sum is unchanged. Masks are drawn afresh at every call;
    inference is the identity.

    With the same seed, `channels_first` and `channels_last` inputs get the
    same blocks (one is the transpose of the other).

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        block_size: int or tuple `(height, width)`, the size of the blocks;
            at most the height and width of the feature map.
        shared_channels: bool; `True` drops the same regions of every
            channel of a sample. Defaults to `False`.
        data_format: `"channels_last"` (`(batch, height, width, channels)`)
            or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
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
    >>> y = keras_reg.layers.DropBlock2D(0.1, block_size=(3, 7))(inputs)

    Reference:
        Ghiasi, Lin & Le, 2018, "DropBlock: A regularization method for
        convolutional networks".
    """

    _rank = 2
    _axes = "height and width"

    def __init__(
        self,
        rate,
        block_size,
        shared_channels=False,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            rate,
            block_size,
            shared_channels=shared_channels,
            data_format=data_format,
            seed=seed,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="keras_reg")
class DropBlock3D(_DropBlock):
    """DropBlock on volumes and video: drops contiguous 3D blocks.

    In training, block positions are drawn independently per sample and per
    channel (or, with `shared_channels=True`, once per sample for all
    channels), and every unit inside a drawn `(depth, height, width)` block
    is zeroed; blocks lie entirely inside the volume and may overlap. The
    block-start probability is solved so that the expected fraction of
    dropped units is exactly `rate` (when the spatial size is known when the
    layer is built; otherwise the approximation of Ghiasi et al. is used).
    The output is rescaled by `units / kept units` of the batch, so the
    expected sum is unchanged. Masks are drawn afresh at every call;
    inference is the identity.

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        block_size: int or tuple `(depth, height, width)`, the size of the
            blocks; at most the volume's size on each axis.
        shared_channels: bool; `True` drops the same blocks of every
            channel of a sample. Defaults to `False`.
        data_format: `"channels_last"`
            (`(batch, depth, height, width, channels)`) or
            `"channels_first"` (`(batch, channels, depth, height, width)`).
            Defaults to `keras.config.image_data_format()`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point 5D tensor.
        training: bool; `True` drops blocks. Defaults to `False`.

    Input shape:
        5D tensor, `(batch, depth, height, width, channels)` or
        `(batch, channels, depth, height, width)`.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((8, 32, 32, 16))  # frames, height, width
    >>> x = keras_reg.layers.DropBlock3D(0.1, block_size=(2, 5, 5))(inputs)

    Reference:
        Ghiasi, Lin & Le, 2018, "DropBlock: A regularization method for
        convolutional networks".
    """

    _rank = 3
    _axes = "depth, height and width"

    def __init__(
        self,
        rate,
        block_size,
        shared_channels=False,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            rate,
            block_size,
            shared_channels=shared_channels,
            data_format=data_format,
            seed=seed,
            **kwargs,
        )


_DROP_PATH_MODES = ("sample", "batch")


@keras.saving.register_keras_serializable(package="keras_reg")
class DropPath(_MaskedDropout):
    """Stochastic depth: drops a residual branch for whole samples or the
    whole batch.

    In training with `mode="sample"`, each sample's whole input tensor is
    zeroed with probability `rate` (one draw per sample per call); with
    `mode="batch"`, one draw per call zeroes the branch for the whole batch
    (torchvision's `mode="batch"`). Kept branches are scaled by
    `1 / (1 - rate)`. Put it on the residual branch, before the addition:
    `x + DropPath(0.1)(branch(x))`. Inference is the identity. Rates that
    grow with depth: `keras_reg.layers.drop_path_rates`.

    Args:
        rate: float in [0, 1), the probability of DROPPING the branch (not
            the keep probability).
        mode: `"sample"` (one draw per sample) or `"batch"` (one draw per
            call, for the whole batch). Defaults to `"sample"`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point tensor `(batch, ...)`.
        training: bool; `True` drops branches. Defaults to `False`.

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

    def __init__(self, rate, mode="sample", seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if mode not in _DROP_PATH_MODES:
            raise _invalid("mode", "'sample' or 'batch'", mode)
        self.mode = mode

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(
                f"Layer '{self.name}' (DropPath) expects inputs with a batch "
                f"axis. Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def _noise_shape(self, inputs):
        shape = ops.shape(inputs)
        batch = 1 if self.mode == "batch" else shape[0]
        return (batch,) + (1,) * (len(shape) - 1)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _check_survival_probability(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid("survival_probability", "a float in [0, 1]", value)
    value = float(value)
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise _invalid("survival_probability", "a float in [0, 1]", value)
    return value


@keras.saving.register_keras_serializable(package="keras_reg")
class StochasticDepth(Stochastic, keras.layers.Layer):
    """Stochastic depth as TensorFlow Addons spells it: `[shortcut, residual]`.

    A drop-in for `tfa.layers.StochasticDepth`, with its semantics: in
    training, `shortcut + b * residual` with one `b ~ Bernoulli(
    survival_probability)` per call, for the whole batch, and no inverse
    scaling; in inference, `shortcut + survival_probability * residual`.
    `b` is drawn by keras_reg's generator (in portable mode the same on
    every backend); its probability is `survival_probability` to within
    `2**-24`. For the timm/torchvision form (per-sample draws, inverse
    scaling, identity at inference) use `DropPath`.

    Unlike the dropout layers, this layer takes the probability of KEEPING
    the branch, as TensorFlow Addons does. It is fixed at construction
    (`DropoutScheduler` does not schedule it).

    Args:
        survival_probability: float in [0, 1], the probability of KEEPING
            the residual branch. Defaults to `0.5`.
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: a list `[shortcut, residual]` of two floating-point tensors
            of the same shape.
        training: bool; `True` draws `b`, `False` (default) adds the
            expected branch.

    Input shape:
        A list of two tensors of the same shape.

    Output shape:
        The shape of `shortcut`.

    Example:

    >>> inputs = keras.Input((32, 32, 16))
    >>> residual = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    >>> outputs = keras_reg.layers.StochasticDepth(0.8)([inputs, residual])

    Reference:
        Huang et al., 2016, "Deep Networks with Stochastic Depth";
        TensorFlow Addons, `tfa.layers.StochasticDepth`.
    """

    _consistent_masks = True

    def __init__(self, survival_probability=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.survival_probability = _check_survival_probability(survival_probability)
        # No `Rate` slots: the mixin's record of them is empty.
        object.__setattr__(self, "_rates", {})
        self._init_random(seed)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        # The output is valid where both inputs are, as for `Add`.
        if mask is None:
            return None
        masks = [m for m in mask if m is not None]
        if not masks:
            return None
        output = masks[0]
        for m in masks[1:]:
            output = ops.logical_and(output, m)
        return output

    def _thresholds(self):
        # Slot 0: the drop threshold, from the keep probability.
        return [_random.threshold(1.0 - self.survival_probability)]

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise ValueError(
                f"Layer '{self.name}' (StochasticDepth) expects a list of two "
                "tensors, [shortcut, residual]. Received: "
                f"input_shape={input_shape}"
            )
        shortcut, residual = (tuple(s) for s in input_shape)
        compatible = len(shortcut) == len(residual) and all(
            a is None or b is None or a == b
            for a, b in zip(shortcut, residual, strict=True)
        )
        if not compatible:
            raise ValueError(
                f"Layer '{self.name}' (StochasticDepth) expects `shortcut` and "
                "`residual` of the same shape. Received: shapes "
                f"{shortcut} and {residual}"
            )
        super().build(input_shape)

    def call(self, inputs, training=False):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"Layer '{self.name}' (StochasticDepth) expects a list of two "
                f"tensors, [shortcut, residual]. Received: {inputs!r}"
            )
        shortcut, residual = inputs
        check_floating(self, residual.dtype)
        if not sampling(training, self):
            return shortcut + ops.cast(self.survival_probability, residual.dtype) * (
                residual
            )
        rank = len(residual.shape)
        # One draw per call (per Monte Carlo sample in a stacked batch).
        keep = _samples.keep_mask((1,) * max(rank, 1), self.seed_generator)
        gate = ops.cast(keep, residual.dtype)
        if _samples.groups() == 1:
            return shortcut + ops.reshape(gate, (1,) * rank) * residual
        count = _samples.groups()
        gated = _samples.split(residual, count) * ops.expand_dims(gate, -1)
        return shortcut + _samples.merge(gated)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = {
            "survival_probability": self.survival_probability,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def drop_path_rates(rate, depths):
    """The linear stochastic-depth rule: drop rates rising with depth.

    The rule of Huang et al. (2016) as ConvNeXt, Swin and timm's models
    apply it: block `i` of `n` drops its branch with probability
    `rate * i / (n - 1)`, from `0.0` for the first block to `rate` for the
    last (`numpy.linspace(0, rate, n)`, timm's `dpr`).

    Args:
        rate: float in [0, 1), the drop rate of the deepest block.
        depths: int, the number of blocks; or a list of ints, the blocks
            per stage, for which the rule runs over the total depth and is
            cut per stage.

    Returns:
        A list of `depths` floats, or a list of lists (one per stage).

    Example:

    >>> keras_reg.layers.drop_path_rates(0.2, 5)
    [0.0, 0.05, 0.1, 0.15000000000000002, 0.2]
    >>> keras_reg.layers.drop_path_rates(0.3, [1, 2])
    [[0.0], [0.15, 0.3]]
    """
    rate = check_rate("rate", rate)
    expected = "a positive integer or a list of positive integers"
    if isinstance(depths, numbers.Integral) and not isinstance(depths, bool):
        if depths < 1:
            raise _invalid("depths", expected, depths)
        return [float(r) for r in np.linspace(0.0, rate, int(depths))]
    if (
        not isinstance(depths, (list, tuple))
        or not depths
        or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
            for d in depths
        )
    ):
        raise _invalid("depths", expected, depths)
    rates = [float(r) for r in np.linspace(0.0, rate, int(sum(depths)))]
    stages, start = [], 0
    for depth in depths:
        stages.append(rates[start : start + int(depth)])
        start += int(depth)
    return stages
