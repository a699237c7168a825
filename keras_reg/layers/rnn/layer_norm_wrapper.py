"""`LayerNormWrapper`: layer normalization around any recurrent cell."""

import inspect

import keras
from keras import ops

from keras_reg import _keras_private
from keras_reg._checks import check_bool, check_positive_float
from keras_reg.layers.rnn._layer_norm import layer_norm

# Keras' `RNN` asks a cell for its dropout masks before the loop (and resets
# them after) only when the cell is a `DropoutRNNCell`; the wrapper is one so
# that it can forward those calls to the cell it wraps.
_DropoutRNNCell = _keras_private.DropoutRNNCell


@keras.saving.register_keras_serializable(package="keras_reg")
class LayerNormWrapper(_DropoutRNNCell, keras.layers.Layer):
    """Layer-normalizes the output and the carried hidden state of a cell.

    At every step the wrapped cell runs as usual; its output `h` is
    replaced by `LN(h) = gamma * (h - mean(h)) / sqrt(var(h) + epsilon) +
    beta` (over units, biased variance, computed in at least float32), and
    so is the hidden state it carries to the next step (its first state,
    `h` for the Keras LSTM, GRU and SimpleRNN cells; an LSTM's cell state
    `c` is left alone). Works with every Keras cell and every keras_reg
    cell, inside `keras.layers.RNN`, `Bidirectional` and with masking; the
    cell's dropout masks are drawn as they would be without the wrapper.

    Regularize through the wrapped cell (e.g. wrap a
    `VariationalLSTMCell(..., recurrent_dropout=0.25)`). A cell with
    `output_dropout` is refused: normalizing a dropped output would undo the
    drop; put a `TimeSharedDropout` after the RNN instead.

    Args:
        cell: a recurrent cell: a layer with `state_size` and
            `call(inputs, states)`, whose first state has the size of its
            output.
        epsilon: float > 0 added to the variance. Defaults to `1e-3`.
        center: bool, learn an offset `beta`. Defaults to `True`.
        scale: bool, learn a scale `gamma`. Defaults to `True`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: 2D tensor `(batch, features)`.
        states: the wrapped cell's states.
        training: bool, passed to the wrapped cell. Defaults to `False`.

    Example:

    >>> cell = keras_reg.layers.LayerNormWrapper(keras.layers.LSTMCell(32))
    >>> layer = keras.layers.RNN(cell, return_sequences=True)
    """

    def __init__(self, cell, epsilon=1e-3, center=True, scale=True, **kwargs):
        if not isinstance(cell, keras.layers.Layer) or not hasattr(cell, "state_size"):
            raise TypeError(
                "Invalid value received for argument `cell`. Expected a "
                "recurrent cell: a Keras layer with `state_size` and "
                f"`call(inputs, states)`. Received: cell={cell!r}"
            )
        if getattr(cell, "output_dropout", 0) > 0:
            raise ValueError(
                "Invalid value received for argument `cell`: "
                f"{type(cell).__name__} with output_dropout="
                f"{cell.output_dropout}. Normalizing a dropped output would "
                "undo the drop; construct the cell without `output_dropout` "
                "and drop after the RNN (e.g. `TimeSharedDropout`)."
            )
        sizes = self._flat_sizes(cell.state_size)
        output_size = getattr(cell, "output_size", None) or sizes[0]
        if sizes[0] != output_size:
            raise ValueError(
                "Invalid value received for argument `cell`: its first state "
                f"has size {sizes[0]!r} and its output {output_size!r}; "
                "LayerNormWrapper needs a cell whose first state is its output."
            )
        super().__init__(**kwargs)
        self.cell = cell
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.center = check_bool("center", center)
        self.scale = check_bool("scale", scale)
        self._output_size = output_size
        self._passes_training = "training" in inspect.signature(cell.call).parameters

    @staticmethod
    def _flat_sizes(state_size):
        if isinstance(state_size, (list, tuple)):
            return list(state_size)
        return [state_size]

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return self._output_size

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(input_shape)
        size = (self._output_size,)
        self.gamma = None
        self.beta = None
        if self.scale:
            self.gamma = self.add_weight(shape=size, name="gamma", initializer="ones")
        if self.center:
            self.beta = self.add_weight(shape=size, name="beta", initializer="zeros")

    def get_initial_state(self, batch_size=None):
        get = getattr(self.cell, "get_initial_state", None)
        if get is not None:
            return get(batch_size=batch_size)
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype)
            for size in self._flat_sizes(self.cell.state_size)
        ]

    def call(self, inputs, states, training=False):
        kwargs = {"training": training} if self._passes_training else {}
        output, new_states = self.cell.call(inputs, states, **kwargs)
        h = layer_norm(output, self.gamma, self.beta, self.epsilon)
        if isinstance(new_states, (list, tuple)):
            new_states = [h, *new_states[1:]]
        else:
            new_states = h
        return h, new_states

    # Keras' RNN calls these on a `DropoutRNNCell`; the wrapped cell's
    # masks are its own business.
    def get_dropout_mask(self, step_input):
        if isinstance(self.cell, _DropoutRNNCell):
            return self.cell.get_dropout_mask(step_input)
        return None

    def get_recurrent_dropout_mask(self, step_input):
        if isinstance(self.cell, _DropoutRNNCell):
            return self.cell.get_recurrent_dropout_mask(step_input)
        return None

    def reset_dropout_mask(self):
        if isinstance(self.cell, _DropoutRNNCell):
            self.cell.reset_dropout_mask()

    def reset_recurrent_dropout_mask(self):
        if isinstance(self.cell, _DropoutRNNCell):
            self.cell.reset_recurrent_dropout_mask()

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = keras.saving.deserialize_keras_object(
            config.pop("cell"), custom_objects=custom_objects
        )
        return cls(cell, **config)
