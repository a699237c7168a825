"""SimpleRNN with shared-mask dropout: the cell, its equation, the layer."""

import keras
from keras import ops

from keras_reg.layers.rnn.base import (
    VariationalCell,
    VariationalRNN,
    args_doc,
    gated_matmul,
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
        + """
    Call arguments:
        inputs: 2D tensor `(batch, features)`.
        states: the state `(batch, units)` (or a list holding it).
        training: bool. Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.VariationalSimpleRNNCell(8, dropout=0.5)
    >>> layer = keras.layers.RNN(cell, return_sequences=True)

    Reference:
        Gal & Ghahramani, 2016.
    """
    )

    _gates = 1

    def _project(self, inputs, input_mask):
        xw = gated_matmul(inputs, input_mask, self.kernel)
        return ops.add(xw, self.bias) if self.use_bias else xw

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        (h_prev,) = states
        z = ops.add(xw, gated_matmul(h_prev, recurrent_mask, recurrent_kernel))
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
        + """
    Call arguments:
        sequences: 3D tensor `(batch, time, features)`.
        initial_state: optional tensor `(batch, units)`.
        mask: optional boolean tensor `(batch, time)`.
        training: bool. Defaults to `False`.

    Example:

    >>> inputs = keras.Input((None, 4))
    >>> x = keras_reg.layers.VariationalSimpleRNN(8, dropout=0.5)(inputs)

    Reference:
        Gal & Ghahramani, 2016.
    """
    )

    _cell_class = VariationalSimpleRNNCell
    _cell_name = "variational_simple_rnn_cell"
