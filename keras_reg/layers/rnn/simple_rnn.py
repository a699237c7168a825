"""SimpleRNN cells and layers: shared-mask dropout, and its LayerNorm variant.

The equation lives in `VariationalSimpleRNNCell._project` and `._step`; the
LayerNorm cell is the same cell with `_normalize` switched on.
"""

import keras
from keras import ops

from keras_reg._checks import get_initializer
from keras_reg.layers.rnn.base import (
    LayerNormCell,
    VariationalCell,
    VariationalRNN,
    args_doc,
    cell_call_doc,
    gated_matmul,
    layer_call_doc,
    regularization_doc,
)


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalSimpleRNNCell(VariationalCell, keras.layers.SimpleRNNCell):
    __doc__ = (
        """Cell class of `VariationalSimpleRNN`: `h = activation(x @ kernel +
    h_prev @ recurrent_kernel + bias)` with masks shared across time steps.

    Takes every argument of `keras.layers.SimpleRNNCell`, with the same
    defaults and weights, plus the regularization below. With every rate at
    0 it computes exactly `keras.layers.SimpleRNNCell`. Inside
    `keras.layers.RNN` the masks are drawn once per call, before the loop
    (at every call, inference included); `zoneout` and
    `share_input_mask=False` need `VariationalSimpleRNN`.
"""
        + regularization_doc("(one)", "`h`")
        + """
"""
        + args_doc("SimpleRNNCell")
        + cell_call_doc("the state `(batch, units)` (or a list holding it)")
        + """
    Example:

    >>> cell = keras_reg.layers.VariationalSimpleRNNCell(8, dropout=0.5)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)

    Reference:
        Gal & Ghahramani, 2016.
    """
    )

    _gates = 1
    # The LayerNorm cell adds the bias after normalizing the sum.
    _bias_after_norm = False

    def _project(self, inputs, input_mask):
        xw = gated_matmul(inputs, input_mask, self.kernel)
        if self.use_bias and not self._bias_after_norm:
            xw = ops.add(xw, self.bias)
        return xw

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        (h_prev,) = states
        z = ops.add(xw, gated_matmul(h_prev, recurrent_mask, recurrent_kernel))
        if self._bias_after_norm:
            z = self._normalize("sum", z)
            if self.use_bias:
                z = ops.add(z, self.bias)
        h = self.activation(z) if self.activation is not None else z
        return [h]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalSimpleRNN(VariationalRNN):
    __doc__ = (
        """Fully-connected RNN layer with masks shared across time steps.

    Takes every argument of `keras.layers.SimpleRNN`, with the same
    defaults and weights, plus the regularization below. With every rate at
    0 it computes exactly `keras.layers.SimpleRNN`. The input projection of
    all steps runs as one matmul before the time loop.
"""
        + regularization_doc("(one)", "`h`")
        + """
"""
        + args_doc("SimpleRNN")
        + layer_call_doc("optional tensor `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None, 4))
    >>> x = keras_reg.layers.VariationalSimpleRNN(8, dropout=0.5)(inputs)

    Reference:
        Gal & Ghahramani, 2016.
    """
    )

    _cell_class = VariationalSimpleRNNCell
    _cell_name = "variational_simple_rnn_cell"


_DOC_LAYER_NORM = """
    Equation (TensorFlow Addons' `LayerNormSimpleRNNCell`; `LN` over the
    last axis, scale only, no offset):

        h = activation(gamma * normalize(x @ kernel + h_prev @ recurrent_kernel)
                       + bias)

    Weights, in order: `kernel`, `recurrent_kernel`, `bias`, `gamma`, as in
    TensorFlow Addons, so `cell.set_weights(tfa_cell.get_weights())`
    reproduces a TFA cell. Layer normalization of `[0.5, 1.0, -0.5]` (gamma
    1, epsilon 0): mean 1/3, variance 0.3889, result
    `[0.267, 1.069, -1.336]`.
"""

_DOC_GAMMA_ARGS = """        layernorm_epsilon: float > 0 added to the variance.
            Defaults to `1e-5`.
        gamma_initializer: initializer of the LayerNorm scale. Defaults to
            `"ones"`.
        gamma_regularizer: optional regularizer of the scale.
        gamma_constraint: optional constraint of the scale.
"""


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormSimpleRNNCell(LayerNormCell, VariationalSimpleRNNCell):
    __doc__ = (
        """SimpleRNN cell with layer normalization, compatible with TensorFlow
    Addons, and the regularization of `VariationalSimpleRNNCell`.
"""
        + _DOC_LAYER_NORM
        + regularization_doc("(one)", "`h`")
        + """
"""
        + args_doc("SimpleRNNCell")
        + _DOC_GAMMA_ARGS
        + cell_call_doc("the state `(batch, units)` (or a list holding it)")
        + """
    Example:

    >>> cell = keras_reg.layers.LayerNormSimpleRNNCell(8, dropout=0.5)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _epsilon_arg = "layernorm_epsilon"
    _bias_after_norm = True

    def __init__(
        self,
        units,
        layernorm_epsilon=1e-5,
        gamma_initializer="ones",
        gamma_regularizer=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.gamma_initializer = get_initializer("gamma_initializer", gamma_initializer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
        self.gamma_constraint = keras.constraints.get(gamma_constraint)
        self._init_norm(layernorm_epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        self._add_norm(
            "sum",
            self.units,
            self.gamma_initializer,
            gamma_regularizer=self.gamma_regularizer,
            gamma_constraint=self.gamma_constraint,
        )

    @property
    def layernorm_epsilon(self):
        return self._norm_epsilon

    def get_config(self):
        return {
            **super().get_config(),
            "layernorm_epsilon": self.layernorm_epsilon,
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormSimpleRNN(VariationalRNN):
    __doc__ = (
        """Fully-connected RNN layer with layer normalization
    (`LayerNormSimpleRNNCell`) and masks shared across time steps.

    Takes every argument of `keras.layers.SimpleRNN`, the LayerNorm
    arguments of `LayerNormSimpleRNNCell` and the regularization below.
    `x @ kernel` of all steps runs before the time loop as one matmul.
"""
        + _DOC_LAYER_NORM
        + regularization_doc("(one)", "`h`")
        + """
"""
        + args_doc("SimpleRNN")
        + _DOC_GAMMA_ARGS
        + layer_call_doc("optional tensor `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None, 4))
    >>> x = keras_reg.layers.LayerNormSimpleRNN(8, recurrent_dropout=0.3)(inputs)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _cell_class = LayerNormSimpleRNNCell
    _cell_name = "layer_norm_simple_rnn_cell"
