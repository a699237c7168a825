"""GRU cells and layers: shared-mask dropout, and its LayerNorm variant.

The equations live in `VariationalGRUCell._project` and `._step`; the
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


def _per_gate(h, mask, gates):
    """`h` times each gate's recurrent mask (the same mask when shared)."""
    if mask is None:
        return [h] * gates
    if mask.shape[0] == 1:
        return [h * mask[0]] * gates
    return [h * mask[g] for g in range(gates)]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalGRUCell(VariationalCell, keras.layers.GRUCell):
    __doc__ = (
        """Cell class of `VariationalGRU`: a GRU cell with masks shared
    across time steps.

    Takes every argument of `keras.layers.GRUCell`, with the same defaults
    and weights (gate order z, r, h; `reset_after=True` by default), plus
    the regularization below. With every rate at 0 it computes exactly
    `keras.layers.GRUCell`. Inside `keras.layers.RNN` the masks are drawn
    once per call, before the loop (at every call, inference included);
    `zoneout` and `share_input_mask=False` need `VariationalGRU`.
"""
        + regularization_doc("three", "`h`")
        + """
    Keras 3's own GRU with one recurrent mask for all gates failed to
    converge until per-gate masks came back (keras-team/keras#20276); try
    `per_gate_masks=True` when a GRU with `recurrent_dropout` stalls.

"""
        + args_doc("GRUCell")
        + cell_call_doc("the state `(batch, units)` (or a list holding it)")
        + """
    Example:

    >>> cell = keras_reg.layers.VariationalGRUCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell)

    Reference:
        Cho et al., 2014; Gal & Ghahramani, 2016; Merity et al., 2017;
        Krueger et al., 2016.
    """
    )

    _gates = 3

    def _biases(self):
        if not self.use_bias:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def _project(self, inputs, input_mask):
        xw = self._normalize("kernel", gated_matmul(inputs, input_mask, self.kernel))
        input_bias, _ = self._biases()
        return xw if input_bias is None else ops.add(xw, input_bias)

    def _step(self, xw, states, recurrent_mask, recurrent_kernel):
        (h_prev,) = states
        units = self.units
        _, recurrent_bias = self._biases()
        x_z, x_r, x_h = ops.split(xw, 3, axis=-1)
        h_z, h_r, h_h = _per_gate(h_prev, recurrent_mask, 3)
        k_z, k_r, k_h = ops.split(recurrent_kernel, 3, axis=-1)
        if self.reset_after:
            if h_z is h_r is h_h:  # one mask: one matmul for all gates
                rec = ops.matmul(h_z, recurrent_kernel)
            else:
                rec = ops.concatenate(
                    [ops.matmul(h_z, k_z), ops.matmul(h_r, k_r), ops.matmul(h_h, k_h)],
                    axis=-1,
                )
            rec = self._normalize("recurrent", rec)
            if recurrent_bias is not None:
                rec = ops.add(rec, recurrent_bias)
            r_z, r_r, r_h = ops.split(rec, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            candidate = self.activation(x_h + r * r_h)
        else:
            rec = ops.matmul(h_z, recurrent_kernel[:, : 2 * units])
            if h_r is not h_z:
                rec = ops.concatenate([rec[:, :units], ops.matmul(h_r, k_r)], axis=-1)
            z = self.recurrent_activation(x_z + rec[:, :units])
            r = self.recurrent_activation(x_r + rec[:, units:])
            candidate = self.activation(x_h + ops.matmul(r * h_h, k_h))
        return [z * h_prev + (1 - z) * candidate]


@keras.saving.register_keras_serializable(package="keras_reg")
class VariationalGRU(VariationalRNN):
    __doc__ = (
        """Gated Recurrent Unit layer with masks shared across time steps.

    Takes every argument of `keras.layers.GRU` (cell arguments including
    `reset_after`, `return_sequences`, `return_state`, `go_backwards`,
    `stateful`, `unroll`, ...), with the same defaults and weights, plus the
    regularization below. With every rate at 0 it computes exactly
    `keras.layers.GRU`. The input projection of all steps runs as one
    matmul before the time loop.
"""
        + regularization_doc("three", "`h`")
        + """
"""
        + args_doc("GRU")
        + layer_call_doc("optional tensor `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None, 16))
    >>> x = keras_reg.layers.VariationalGRU(
    ...     64, dropout=0.2, recurrent_dropout=0.2, per_gate_masks=True
    ... )(inputs)

    Reference:
        Cho et al., 2014; Gal & Ghahramani, 2016.
    """
    )

    _cell_class = VariationalGRUCell
    _cell_name = "variational_gru_cell"
    _has_use_cudnn = True


_DOC_LAYER_NORM = """
    Equations (`LN` over the last axis; Keras' gate order z, r, h and
    `reset_after=True`, the only mode):

        xz, xr, xh = split(LN(x @ kernel) + input_bias, 3)
        hz, hr, hh = split(LN(h_prev @ recurrent_kernel) + recurrent_bias, 3)
        z = sigmoid(xz + hz); r = sigmoid(xr + hr)
        h = z * h_prev + (1 - z) * tanh(xh + r * hh)

    Weights, in order: `kernel`, `recurrent_kernel`, `bias` (`(2, 3 *
    units)`), then gamma and beta of the kernel and recurrent norms.
"""


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormGRUCell(GatedLayerNormCell, VariationalGRUCell):
    __doc__ = (
        """GRU cell with layer normalization and the regularization of
    `VariationalGRUCell`.
"""
        + _DOC_LAYER_NORM
        + regularization_doc("three", "`h`")
        + """
"""
        + args_doc("GRUCell")
        + norm_args_doc("1e-3")
        + cell_call_doc("the state `(batch, units)` (or a list holding it)")
        + """
    Example:

    >>> cell = keras_reg.layers.LayerNormGRUCell(32, recurrent_dropout=0.25)
    >>> layer = keras.layers.RNN(cell)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _norm_sizes = (("kernel", 3), ("recurrent", 3))

    def __init__(self, units, **kwargs):
        reset_after = kwargs.get("reset_after", True)
        if reset_after is not True:
            raise ValueError(
                "Invalid value received for argument `reset_after`. "
                f"{type(self).__name__} supports only `reset_after=True`. "
                f"Received: reset_after={reset_after!r}"
            )
        super().__init__(units, **kwargs)


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormGRU(VariationalRNN):
    __doc__ = (
        """GRU layer with layer normalization (`LayerNormGRUCell`) and masks
    shared across time steps.

    Takes every argument of `keras.layers.GRU` (`reset_after` must stay
    `True`), the LayerNorm arguments of `LayerNormGRUCell` and the
    regularization below. `LN(x @ kernel)` of all steps runs before the
    time loop.
"""
        + _DOC_LAYER_NORM
        + regularization_doc("three", "`h`")
        + """
"""
        + args_doc("GRU")
        + norm_args_doc("1e-3")
        + layer_call_doc("optional tensor `(batch, units)`")
        + """
    Example:

    >>> inputs = keras.Input((None, 16))
    >>> x = keras_reg.layers.LayerNormGRU(64, recurrent_dropout=0.2)(inputs)

    Reference:
        Ba, Kiros & Hinton, 2016, "Layer Normalization".
    """
    )

    _cell_class = LayerNormGRUCell
    _cell_name = "layer_norm_gru_cell"
    _has_use_cudnn = True
