"""What every shared-mask recurrent cell has in common.

A cell type's file holds its equations: `_project(inputs, input_mask)`,
the input side of the pre-activations (everything that does not depend on
the previous state, so a sequence layer runs it for all steps at once), and
`_step(xw, states, recurrent_mask, recurrent_kernel)`, one recurrent step.
This mixin holds the regularization around them: the rates, the masks'
lifetime in `keras.layers.RNN`, zoneout, the cell's own `call` and config.
"""

import keras
from keras import ops

from keras_reg import _keras_private
from keras_reg._checks import check_bool, check_choice
from keras_reg.layers._stochastic import Rate, Stochastic, sampling
from keras_reg.layers.rnn import _masks


class VariationalCell(Stochastic):
    """Mixin for a Keras cell: shared-mask dropout, weight drop, zoneout.

    Listed before the Keras cell class in the bases
    (`class VariationalLSTMCell(VariationalCell, keras.layers.LSTMCell)`).
    The host's constructor calls the Keras cell's with no dropout (this
    mixin replaces Keras' masks), then `_init_regularization(...)`. The host
    sets `_gates` (how many gate blocks its kernels hold) and implements
    `_project` and `_step`; both pass the pre-activations they compute
    through `_normalize(which, v)`, the identity here and layer
    normalization in `LayerNormCell`, so a cell type's equations are
    written once for its variational and its LayerNorm variant.
    """

    dropout = Rate()
    recurrent_dropout = Rate()
    output_dropout = Rate()
    weight_dropout = Rate()
    zoneout = Rate()
    _gates = 1
    # Every mask is drawn by `_masks.draw`, through `_samples`.
    _consistent_masks = True

    def _init_regularization(
        self,
        dropout,
        recurrent_dropout,
        output_dropout,
        weight_dropout,
        zoneout,
        per_gate_masks,
        share_input_mask,
        seed,
        implementation,
        recurrent_dropout_mode="sample",
    ):
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.output_dropout = output_dropout
        self.weight_dropout = weight_dropout
        self.zoneout = zoneout
        self.per_gate_masks = check_bool("per_gate_masks", per_gate_masks)
        self.share_input_mask = check_bool("share_input_mask", share_input_mask)
        self.recurrent_dropout_mode = check_choice(
            "recurrent_dropout_mode", recurrent_dropout_mode, _masks.RECURRENT_MODES
        )
        # Keras' legacy argument: accepted and kept, changes nothing here
        # (`per_gate_masks` chooses the mask layout).
        self.implementation = implementation
        # A regularizer that is 0 at construction is left out of the graph
        # (it costs nothing); one that is positive can be rescheduled freely.
        object.__setattr__(
            self, "_active", {name: getattr(self, name) > 0 for name in _masks.RATES}
        )
        # The masks of the `keras.layers.RNN` call in progress (Keras'
        # `DropoutRNNCell` protocol); None outside such a call.
        object.__setattr__(self, "_rnn_masks", None)
        self._init_random(seed)

    def _check_rate_change(self, name, value):
        if value > 0 and not self._active.get(name, True):
            raise ValueError(
                f"Invalid value received for argument `{name}`: {value}. The "
                f"cell was built with {name}=0, so that regularizer is not part "
                f"of its computation. Construct the cell with a positive "
                f"`{name}` to change it during training."
            )

    # Keras' `RNN` calls these around its loop, in inference too: the masks
    # are drawn before the loop (so it stays stateless and traces under
    # JAX), only if the call trains, and dropped after it. Outside any
    # Keras call (the RNN's `call` run directly, as `stateless_call` runs
    # it) only the steps learn `training`: the masks are drawn (the stream
    # moves, training or not). Either way a step applies them only if its
    # own `training` says it trains, as Keras' own cells do. Per-step
    # masks, which the RNN cannot give, are refused by a step that trains:
    # inference runs without them.
    def get_dropout_mask(self, step_input):
        outside = not _keras_private.call_in_progress()
        masks = _masks.NONE
        drawn = sampling(outside or _keras_private.call_training(), self)
        if drawn and not (outside and _masks.per_step(self)):
            batch, features = ops.shape(step_input)[0], ops.shape(step_input)[-1]
            masks = _masks.draw(self, batch, features, self.compute_dtype)
        object.__setattr__(self, "_rnn_masks", masks)
        return None

    def get_recurrent_dropout_mask(self, step_input):
        return None

    def reset_dropout_mask(self):
        object.__setattr__(self, "_rnn_masks", None)

    def reset_recurrent_dropout_mask(self):
        pass

    def call(self, inputs, states, training=False):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        inputs = as_float(inputs, self.compute_dtype)
        masks = self._rnn_masks
        input_mask = keep_new = None
        if masks is None:
            # Called on its own: one step, with masks of its own.
            masks = _masks.NONE
            if sampling(training, self):
                batch, features = ops.shape(inputs)[0], ops.shape(inputs)[-1]
                masks = _masks.draw(self, batch, features, self.compute_dtype, 1)
            input_mask = masks.input
            if input_mask is not None and not self.share_input_mask:
                input_mask = input_mask[0]
            if masks.zoneout is not None:
                keep_new = masks.zoneout[0]
        else:
            if sampling(training, self):
                _masks.refuse_per_step(self)
            else:
                masks = _masks.NONE
            input_mask = masks.input
        xw = self._project(inputs, input_mask)
        kernel = self.recurrent_kernel
        if masks.recurrent_kernel is not None:
            kernel = masks.recurrent_kernel
        new_states = self._step(xw, states, masks.recurrent, kernel)
        new_states = self._zoneout(states, new_states, keep_new)
        output = new_states[0]
        if masks.output is not None:
            output = output * masks.output
        return output, new_states

    def _normalize(self, which, v):
        """The identity; `LayerNormCell` normalizes `v` here."""
        return v

    def _zoneout(self, old, new, keep_new):
        """Zoneout of one step: `keep_new` (1 takes the new value, 0 keeps
        the old) in training; the expectation when it is None."""
        if not self._active["zoneout"]:
            return new
        if keep_new is not None:
            keep = ops.split(keep_new, len(new), axis=-1)
            return [
                ops.where(k > 0, n, o) for k, n, o in zip(keep, new, old, strict=True)
            ]
        # Inference: z * old + (1 - z) * new.
        z = ops.cast(self.seed_generator.rate(self._slot("zoneout")), new[0].dtype)
        return [z * o + (1 - z) * n for o, n in zip(old, new, strict=True)]

    def get_config(self):
        config = {
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "output_dropout": self.output_dropout,
            "weight_dropout": self.weight_dropout,
            "zoneout": self.zoneout,
            "per_gate_masks": self.per_gate_masks,
            "share_input_mask": self.share_input_mask,
            "recurrent_dropout_mode": self.recurrent_dropout_mode,
            "seed": self.seed,
            "implementation": self.implementation,
        }
        return {**super().get_config(), **config}


def as_float(x, dtype):
    """Integer features as floats, as Keras' recurrent layers take them (its
    autocast only converts floating inputs); the masks then scale exactly."""
    if keras.backend.is_float_dtype(x.dtype):
        return x
    return ops.cast(x, dtype)


def gated_matmul(x, mask, kernel):
    """`(x * mask) @ kernel`, with one mask per gate block when `mask` holds
    several (`mask[g]` multiplies `x` for the columns of gate `g`)."""
    if mask is None:
        return ops.matmul(x, kernel)
    gates = mask.shape[0]
    if gates == 1:
        return ops.matmul(x * mask[0], kernel)
    blocks = ops.split(kernel, gates, axis=-1)
    return ops.concatenate(
        [ops.matmul(x * mask[g], block) for g, block in enumerate(blocks)], axis=-1
    )
