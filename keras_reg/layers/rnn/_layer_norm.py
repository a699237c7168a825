"""The LayerNorm mixin of the recurrent cells.

A LayerNorm cell is its variational cell with `_normalize` switched on:
`LN(v) = gamma * (v - mean(v)) / sqrt(var(v) + epsilon) + beta` over the
last axis, with the biased variance, computed in at least float32. The
cell's `build` adds one gamma (and beta) per normalization after the Keras
cell's own weights, so the weights keep TensorFlow Addons' order.
"""

import keras
from keras import ops

from keras_reg import _kernels
from keras_reg._checks import check_positive_float, get_initializer


def layer_norm(v, gamma, beta, epsilon):
    """`LN(v)` over the last axis, computed in at least float32.

    The backend's kernel where it has one (`keras_reg._kernels`: torch's
    fused `layer_norm`, a JAX version with its backward written out).
    """
    dtype = v.dtype
    if keras.backend.standardize_dtype(dtype) in ("float16", "bfloat16"):
        v = ops.cast(v, "float32")
    kernel = _kernels.layer_norm()
    if kernel is not None:
        gamma = ops.ones(v.shape[-1:], v.dtype) if gamma is None else gamma
        beta = ops.zeros(v.shape[-1:], v.dtype) if beta is None else beta
        out = kernel(v, ops.cast(gamma, v.dtype), ops.cast(beta, v.dtype), epsilon)
        return ops.cast(out, dtype)
    return ops.cast(portable_layer_norm(v, gamma, beta, epsilon), dtype)


def portable_layer_norm(v, gamma, beta, epsilon):
    """The reference: two passes (mean, then variance) in `keras.ops`."""
    centered = v - ops.mean(v, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    scale = ops.rsqrt(variance + epsilon)
    if gamma is not None:
        scale = scale * ops.cast(gamma, v.dtype)
    out = centered * scale
    if beta is not None:
        out = out + ops.cast(beta, v.dtype)
    return out


class LayerNormCell:
    """Mixin for a variational cell whose pre-activations are normalized.

    Listed before the variational cell in the bases. The host's constructor
    calls `_init_norm(epsilon_name, epsilon)`; its `build` calls
    `_add_norm(which, size, ...)` for each normalization, in TFA's order.
    """

    # No fused kernel normalizes inside the recurrence.
    _fused_kind = None

    def _init_norm(self, epsilon_name, epsilon):
        self._norm_epsilon = check_positive_float(epsilon_name, epsilon)
        object.__setattr__(self, "_norm_weights", {})

    def _add_norm(
        self,
        which,
        size,
        gamma_initializer,
        beta_initializer=None,
        gamma_regularizer=None,
        gamma_constraint=None,
    ):
        gamma = self.add_weight(
            shape=(size,),
            name=f"{which}_norm_gamma",
            initializer=gamma_initializer,
            regularizer=gamma_regularizer,
            constraint=gamma_constraint,
        )
        beta = None
        if beta_initializer is not None:
            beta = self.add_weight(
                shape=(size,), name=f"{which}_norm_beta", initializer=beta_initializer
            )
        self._norm_weights[which] = (gamma, beta)

    def _normalize(self, which, v):
        gamma, beta = self._norm_weights[which]
        return layer_norm(v, gamma, beta, self._norm_epsilon)


class GatedLayerNormCell(LayerNormCell):
    """The LayerNorm arguments of the gated cells (TFA's `LayerNormLSTMCell`):
    one gamma and one beta initializer for every norm, and `norm_epsilon`.

    The host lists its norms as `_norm_sizes`, `(which, units multiple)`
    pairs, built in that order after the Keras cell's weights.
    """

    _norm_sizes = ()

    def _init_gated_norm(
        self, norm_gamma_initializer, norm_beta_initializer, norm_epsilon
    ):
        self.norm_gamma_initializer = get_initializer(
            "norm_gamma_initializer", norm_gamma_initializer
        )
        self.norm_beta_initializer = get_initializer(
            "norm_beta_initializer", norm_beta_initializer
        )
        self._init_norm("norm_epsilon", norm_epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        for which, multiple in self._norm_sizes:
            self._add_norm(
                which,
                multiple * self.units,
                self.norm_gamma_initializer,
                self.norm_beta_initializer,
            )

    @property
    def norm_epsilon(self):
        return self._norm_epsilon

    def get_config(self):
        return {
            **super().get_config(),
            "norm_gamma_initializer": keras.initializers.serialize(
                self.norm_gamma_initializer
            ),
            "norm_beta_initializer": keras.initializers.serialize(
                self.norm_beta_initializer
            ),
            "norm_epsilon": self.norm_epsilon,
        }
