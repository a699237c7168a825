"""Inverted dropout and its time-shared and embedding variants."""

import keras
from keras import ops

from keras_reg import _random
from keras_reg._checks import (
    check_axes,
    check_floating,
    check_noise_shape,
    check_rank,
)
from keras_reg.layers import _samples
from keras_reg.layers._stochastic import Rate, Stochastic, sampling


class _MaskedDropout(Stochastic, keras.layers.Layer):
    """Inverted dropout whose mask shape a subclass chooses."""

    rate = Rate()
    _consistent_masks = True

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self._init_random(seed)
        self.supports_masking = True

    def _noise_shape(self, inputs):
        raise NotImplementedError

    def call(self, inputs, training=False):
        if not sampling(training, self):
            return inputs
        check_floating(self, inputs.dtype)
        return _samples.dropout(
            inputs, self.seed_generator, noise_shape=self._noise_shape(inputs)
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"rate": self.rate, "seed": self.seed}
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class InvertedDropout(_MaskedDropout):
    """Inverted dropout whose rate can change during training.

    In training, each unit is zeroed with probability `rate`, independently
    per element (per sample, per step, per channel) and freshly at every
    call; kept units are multiplied by `1 / (1 - rate)` so the expected
    output equals the input. Axes listed in `shared_axes` (or set to 1 in
    `noise_shape`) share one mask value: `shared_axes=[1]` on
    `(batch, time, features)` drops the same features at every step.
    Inference is the identity and costs nothing.

    Unlike `keras.layers.Dropout`, the rate lives in the layer's state
    variable, so `layer.rate = 0.1` between epochs of one `fit` takes effect
    at the next batch on every backend, without retracing or recompiling.

    Args:
        rate: float in [0, 1), the fraction of units to DROP (not the keep
            probability).
        noise_shape: optional tuple, the shape of the mask, broadcast
            against the input; `None` entries take the input's size.
            Defaults to `None` (the input shape).
        shared_axes: optional int or list of ints, axes along which one
            mask value is shared. Defaults to `None`.
        seed: optional int. The same seed gives the same masks, run after
            run (and, in the default "portable" mode, on every backend).
            Defaults to `None`: a seed is drawn, kept in the layer's state
            (saved with the model and its weights, with the stream's
            position) and left out of the config, so a clone draws its own.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: floating-point tensor of any rank.
        training: bool; `True` applies dropout, `False` (default) is the
            identity.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> layer = keras_reg.layers.InvertedDropout(0.5, seed=1)
    >>> x = keras.ops.full((2, 4), 4.0)
    >>> y = layer(x, training=True)  # each entry is 0.0 or 8.0
    >>> layer.rate = 0.25            # takes effect at the next call

    Reference:
        Srivastava et al., 2014, "Dropout: A Simple Way to Prevent Neural
        Networks from Overfitting".
    """

    def __init__(self, rate, noise_shape=None, shared_axes=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.noise_shape = check_noise_shape(noise_shape)
        self.shared_axes = check_axes("shared_axes", shared_axes)
        # No weights to create (the random state exists already): built at
        # construction, as Keras' `Dropout` is, unless a subclass has a
        # `build` of its own. The input shape is checked at each call.
        if type(self).build is keras.layers.Layer.build:
            self.built = True

    def _check_input_shape(self, input_shape):
        rank = len(input_shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != rank:
                raise ValueError(
                    "Invalid value received for argument `noise_shape`. "
                    f"Expected {rank} entries, one per input axis. Received: "
                    f"noise_shape={self.noise_shape} for input_shape="
                    f"{tuple(input_shape)}"
                )
            for dim, size in zip(self.noise_shape, input_shape, strict=True):
                if dim not in (None, 1) and size is not None and dim != size:
                    raise ValueError(
                        "Invalid value received for argument `noise_shape`. "
                        "Expected each entry to be None, 1 or the input size. "
                        f"Received: noise_shape={self.noise_shape} for "
                        f"input_shape={tuple(input_shape)}"
                    )
        for axis in self.shared_axes or ():
            if not -rank <= axis < rank:
                raise ValueError(
                    "Invalid value received for argument `shared_axes`. "
                    f"Expected axes of a rank-{rank} input. Received: "
                    f"shared_axes={list(self.shared_axes)}"
                )

    def call(self, inputs, training=False):
        self._check_input_shape(inputs.shape)
        return super().call(inputs, training=training)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        return input_shape

    def _noise_shape(self, inputs):
        shape = list(ops.shape(inputs))
        if self.noise_shape is not None:
            for axis, dim in enumerate(self.noise_shape):
                if dim is not None:
                    shape[axis] = dim
        for axis in self.shared_axes or ():
            shape[axis] = 1
        return tuple(shape)

    def get_config(self):
        config = {
            "noise_shape": self.noise_shape,
            "shared_axes": None if self.shared_axes is None else list(self.shared_axes),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_reg")
class TimeSharedDropout(_MaskedDropout):
    """Dropout with one mask per sequence ("locked" or variational dropout).

    For inputs of shape `(batch, time, features)`, each sample draws one
    mask over its features and applies it at every time step; samples draw
    independently, and every training call draws afresh. Kept units are
    scaled by `1 / (1 - rate)`. This is the dropout of Gal & Ghahramani
    (2016) and AWD-LSTM between recurrent layers. Input masks (`mask_zero`,
    `Masking`) pass through unchanged.

    Args:
        rate: float in [0, 1), the fraction of features to DROP (not the
            keep probability).
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: floating-point tensor `(batch, time, features)`.
        training: bool; `True` applies dropout. Defaults to `False`.

    Input shape:
        3D tensor `(batch, time, features)`.

    Output shape:
        Same as the input.

    Example:

    >>> inputs = keras.Input((None, 16))
    >>> x = keras_reg.layers.TimeSharedDropout(0.3)(inputs)
    >>> outputs = keras.layers.LSTM(32)(x)

    Reference:
        Gal & Ghahramani, 2016, "A Theoretically Grounded Application of
        Dropout in Recurrent Neural Networks"; Merity et al., 2017,
        "Regularizing and Optimizing LSTM Language Models".
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)

    def build(self, input_shape):
        check_rank(self, input_shape, {3}, "batch, time, features")
        super().build(input_shape)

    def _noise_shape(self, inputs):
        shape = ops.shape(inputs)
        return (shape[0], 1, shape[2])


@keras.saving.register_keras_serializable(package="keras_reg")
class EmbeddingDropout(Stochastic, keras.layers.Embedding):
    """An `Embedding` that drops whole word types in training.

    At each training call, every row of the embedding matrix (a word type)
    is dropped with probability `rate`, for the whole batch: all
    occurrences of a dropped word in the batch embed to zeros, and the kept
    rows are scaled by `1 / (1 - rate)`. The rows are drawn afresh at every
    call. Inference is a plain embedding lookup. Only the rows of the words
    in the batch are touched, so the cost does not grow with `output_dim`.
    In `keras_reg.inference.mc_predict`, each Monte Carlo sample draws its
    own word types, also when several samples share one call.

    Args:
        input_dim: int, the vocabulary size.
        output_dim: int, the embedding size.
        rate: float in [0, 1), the fraction of word types to DROP (not the
            keep probability).
        seed: optional int; see `InvertedDropout`. Defaults to `None`: a
            seed is drawn, kept in the layer's state and left out of the
            config.
        **kwargs: every argument of `keras.layers.Embedding`
            (`embeddings_initializer`, `embeddings_regularizer`,
            `embeddings_constraint`, `mask_zero`, ...) and base layer
            keyword arguments.

    Call arguments:
        inputs: integer tensor of word ids.
        training: bool; `True` drops word types. Defaults to `False`.

    Input shape:
        Integer tensor of any shape `(batch, ...)`.

    Output shape:
        `(batch, ..., output_dim)`.

    Example:

    >>> inputs = keras.Input((None,), dtype="int32")
    >>> x = keras_reg.layers.EmbeddingDropout(1000, 64, rate=0.1)(inputs)

    Reference:
        Gal & Ghahramani, 2016; Merity et al., 2017, "Regularizing and
        Optimizing LSTM Language Models" (embedding dropout).
    """

    rate = Rate()
    _consistent_masks = True

    def __init__(self, input_dim, output_dim, rate, seed=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.rate = rate
        self._init_random(seed)

    def call(self, inputs, training=False):
        outputs = super().call(inputs)
        if not sampling(training, self):
            return outputs
        state = self.seed_generator
        ids = ops.cast(inputs, "int32")
        # One row mask per call, or per Monte Carlo sample when
        # `mc_predict` stacks samples in the batch (`_samples`).
        keep = _samples.keep_mask((1, self.input_dim), state)
        row_scale = ops.where(keep, _random.keep_scale(state, dtype=outputs.dtype), 0)
        count = _samples.groups()
        if count == 1:
            row_scale = ops.take(row_scale[0], ids)
        else:
            grouped = _samples.split(ids, count)
            offsets = ops.arange(count, dtype="int32") * self.input_dim
            offsets = ops.reshape(offsets, (count,) + (1,) * (len(ids.shape)))
            flat = ops.reshape(row_scale, (-1,))
            row_scale = _samples.merge(ops.take(flat, grouped + offsets))
        return ops.multiply(outputs, ops.expand_dims(row_scale, -1))

    def compute_output_spec(self, inputs, training=False):
        return super().compute_output_spec(inputs)

    def get_config(self):
        config = {"rate": self.rate, "seed": self.seed}
        return {**super().get_config(), **config}
