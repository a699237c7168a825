"""LSTM cells and layers: shared-mask dropout, and its LayerNorm variant.

The equations live in `VariationalLSTMCell._project` and `._step`; the
LayerNorm cell is the same cell with `_normalize` switched on.
"""

import keras
from keras import ops

from keras_reg.layers.rnn.base import (
    GatedLayerNormCell,
    VariationalCell,
    VariationalRNN,
    args_doc,
    cell_call_doc,
    gated_matmul,
    layer_call_doc,
    norm_args_doc,
    regularization_doc,
)

_DOC_REGULARIZATION = regularization_doc("four", "`h` and `c`")


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalLSTMCell(VariationalCell, keras.layers.LSTMCell):
    __doc__ = (
        """Cell class of `VariationalLSTM`: an LSTM cell with masks shared
    across time steps.

    Takes every argument of `keras.layers.LSTMCell`, with the same defaults
    and weights (`kernel`, `recurrent_kernel`, `bias`, gate order i, f, c,
    o), plus the regularization below. Inside `keras.layers.RNN` the masks
    are drawn once per call, before the loop (Keras' `RNN` asks for them at
    every call, inference included, so the random stream moves on then
    too); `zoneout` and `share_input_mask=False` draw a fresh mask every
    step and need `keras_reg.layers.VariationalLSTM`, which owns the loop
    and draws only in training.
"""
        + _DOC_REGULARIZATION
        + """
"""
        + args_doc("LSTMCell")
        + cell_call_doc("list of two 2D tensors `(batch, units)`: `h` and `c`")
        + """
    Example:

    >>> cell = keras_reg.layers.VariationalLSTMCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)

    Reference:
        Gal & Ghahramani, 2016, "A Theoretically Grounded Application of
        Dropout in Recurrent Neural Networks"; Merity et al., 2017
        (weight drop); Krueger et al., 2016, "Zoneout".
    """
    )

    _gates = 4

    def _project(self, inputs, input_mask):
        xw = self._normalize("kernel", gated_matmul(inputs, input_mask, self.kernel))
        return ops.add(xw, self.bias) if self.use_bias else xw

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        h_prev, c_prev = states
        hw = gated_matmul(h_prev, recurrent_mask, recurrent_kernel)
        z = ops.add(xw, self._normalize("recurrent", hw))
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = self.recurrent_activation(f) * c_prev + self.recurrent_activation(
            i
        ) * self.activation(g)
        c = self._normalize("state", c)
        h = self.recurrent_activation(o) * self.activation(c)
        return [h, c]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalLSTM(VariationalRNN):
    __doc__ = (
        """Long Short-Term Memory layer with masks shared across time steps.

    Takes every argument of `keras.layers.LSTM` (cell arguments,
    `return_sequences`, `return_state`, `go_backwards`, `stateful`,
    `unroll`, ...), with the same defaults and weights, plus the
    regularization below. The masks are drawn once per call, so the input
    projection `(x * m) @ kernel + bias` of all steps runs as one matmul
    before the time loop; only `h @ recurrent_kernel` stays inside.
"""
        + _DOC_REGULARIZATION
        + """
"""
        + args_doc("LSTM")
        + layer_call_doc("optional list of two tensors `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(1000, 64, mask_zero=True)(inputs)
    >>> x = keras_reg.layers.VariationalLSTM(
    ...     128, dropout=0.2, recurrent_dropout=0.2, output_dropout=0.3
    ... )(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(x))

    Reference:
        Gal & Ghahramani, 2016; Merity et al., 2017; Krueger et al., 2016.
    """
    )

    _cell_class = VariationalLSTMCell
    _cell_name = "variational_lstm_cell"
    _has_use_cudnn = True


_DOC_LAYER_NORM = """
    Equations (Ba et al. 2016; TensorFlow Addons' `LayerNormLSTMCell`),
    with `LN` over the last axis and masks on `x` and `h_prev` as in
    `VariationalLSTMCell`:

        z = LN(x @ kernel) + LN(h_prev @ recurrent_kernel) + bias
        i, f, g, o = split(z, 4)
        c = LN(sigmoid(f) * c_prev + sigmoid(i) * tanh(g))  # carried
        h = sigmoid(o) * tanh(c)

    (`sigmoid` and `tanh` stand for `recurrent_activation` and
    `activation`.) Weights, in order: `kernel`, `recurrent_kernel`, `bias`,
    then gamma and beta of the kernel, recurrent and state norms: the order
    of TensorFlow Addons, so `cell.set_weights(tfa_cell.get_weights())`
    reproduces a TFA cell.
"""


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormLSTMCell(GatedLayerNormCell, VariationalLSTMCell):
    __doc__ = (
        """LSTM cell with layer normalization, compatible with TensorFlow
    Addons, and the regularization of `VariationalLSTMCell`.
"""
        + _DOC_LAYER_NORM
        + _DOC_REGULARIZATION
        + """
"""
        + args_doc("LSTMCell")
        + norm_args_doc("1e-3")
        + cell_call_doc("list of two 2D tensors `(batch, units)`: `h` and `c`")
        + """
    Example:

    >>> cell = keras_reg.layers.LayerNormLSTMCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _norm_sizes = (("kernel", 4), ("recurrent", 4), ("state", 1))


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormLSTM(VariationalRNN):
    __doc__ = (
        """LSTM layer with layer normalization (`LayerNormLSTMCell`) and masks
    shared across time steps.

    Takes every argument of `keras.layers.LSTM`, the LayerNorm arguments of
    `LayerNormLSTMCell` and the regularization below. `LN(x @ kernel)` of
    all steps runs before the time loop, as one matmul and one
    normalization.
"""
        + _DOC_LAYER_NORM
        + _DOC_REGULARIZATION
        + """
"""
        + args_doc("LSTM")
        + norm_args_doc("1e-3")
        + layer_call_doc("optional list of two tensors `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None, 16))
    >>> x = keras_reg.layers.LayerNormLSTM(
    ...     64, dropout=0.2, recurrent_dropout=0.2, return_sequences=True
    ... )(inputs)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _cell_class = LayerNormLSTMCell
    _cell_name = "layer_norm_lstm_cell"
    _has_use_cudnn = True
