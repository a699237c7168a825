"""The base of the sequence layers: one call's masks, drawn once, passed on.

`VariationalRNN.call` draws the masks of the call (in training) and passes
them, as values, to what runs the recurrence. A shared input mask is
applied to the whole sequence at once, and the output mask after the loop.
The cell is used for its weights and equations only: the layer never
writes its attributes, so the same cell can also serve in
`keras.layers.RNN` or anywhere else.

What runs the recurrence, the first that takes the call: a fused kernel
(`keras_reg._kernels.fused_recurrence`: torch's `_VF` kernels, cuDNN),
a backend's own recurrence (torch's hand-written BPTT), or the loop, the
backend's (`time_loop`: TensorFlow's `while_loop`) or the portable one
(`keras_reg.layers.rnn._loop.run`).
"""

import keras
from keras import ops, tree

from keras_reg import _keras_private, _kernels
from keras_reg._checks import check_rate
from keras_reg.layers._stochastic import sampling
from keras_reg.layers.rnn import _loop, _masks
from keras_reg.layers.rnn._cell import as_float


def check_use_cudnn(value):
    if not (value == "auto" or value is True or value is False):
        raise ValueError(
            "Invalid value received for argument `use_cudnn`. Expected one of "
            f"{{'auto', True, False}}. Received: use_cudnn={value!r}"
        )
    return value


def check_implementation(value):
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(
            "Invalid value received for argument `implementation`. Expected "
            f"0, 1 or 2. Received: implementation={value!r}"
        )
    return value


class VariationalRNN(keras.layers.RNN):
    """Base of the keras_reg sequence layers (a `keras.layers.RNN`).

    Subclasses build their cell in an explicit constructor and pass it here
    with the layer arguments. `use_cudnn` chooses between a backend's fused
    kernel and the portable loop: `"auto"` takes the kernel where the call
    allows it, `False` never does, `True` raises where it cannot.
    """

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        use_cudnn="auto",
        activity_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.InputSpec(ndim=3)
        self.use_cudnn = check_use_cudnn(use_cudnn)
        if _kernels.fused_blocks_jit(self):
            self.supports_jit = False

    # --- the call ------------------------------------------------------------

    def call(self, sequences, initial_state=None, mask=None, training=False):
        steps = sequences.shape[1]
        if steps == 0:
            # Keras' loop fails with an IndexError deep in the backend.
            raise ValueError(
                f"{type(self).__name__} needs at least one time step. Received "
                f"a sequence of length 0: input shape {tuple(sequences.shape)}"
            )
        if self.unroll and steps is None:
            raise ValueError(
                "Cannot unroll a RNN if the time dimension is undefined. Pass "
                "`shape` or `batch_shape` with a fixed number of steps to "
                "`keras.Input`."
            )
        sequences = as_float(sequences, self.compute_dtype)
        if initial_state is None:
            if self.stateful:
                initial_state = self.states
            else:
                initial_state = self.get_initial_state(
                    batch_size=ops.shape(sequences)[0]
                )
        if self.stateful:
            batch = sequences.shape[0]
            expected = _keras_private.stateful_batch_size(self)
            if expected is not None and batch is not None and batch != expected:
                raise ValueError(
                    "If an RNN is stateful, the batch size of the input "
                    "sequences must be the same as the batch size of the "
                    f"initial state. Expected batch size: {expected}. "
                    f"Received batch size: {batch}"
                )
        if not tree.is_nested(initial_state):
            initial_state = [initial_state]
        dtype = self.cell.compute_dtype
        initial_state = [ops.convert_to_tensor(s, dtype=dtype) for s in initial_state]
        if self.stateful and keras.backend.backend() == "torch":
            # The state variables are assigned in place after the call; the
            # loop must not hold their storage for the backward pass.
            initial_state = [ops.copy(s) for s in initial_state]

        last_output, outputs, states = self.inner_loop(
            sequences, initial_state, mask, training=training
        )
        last_output = ops.cast(last_output, self.compute_dtype)
        states = [ops.cast(s, self.compute_dtype) for s in states]
        if self.stateful:
            for variable, state in zip(tree.flatten(self.states), states, strict=True):
                variable.assign(state)
        output = last_output
        if self.return_sequences:
            output = ops.cast(outputs, self.compute_dtype)
        if self.return_state:
            return output, *states
        return output

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        cell = self.cell
        masks = _masks.NONE
        if sampling(training, cell):
            batch, steps, features = ops.shape(sequences)
            masks = _masks.draw(cell, batch, features, sequences.dtype, steps)
        args = (self, sequences, initial_state, mask, masks)
        result = _kernels.fused_recurrence(*args)
        if result is None and self.use_cudnn is True:
            raise ValueError(
                f"{type(self).__name__} was built with use_cudnn=True, but no "
                f"fused kernel can run this call on the {keras.backend.backend()} "
                f"backend: {_kernels.why_not(*args)} Pass "
                "use_cudnn='auto' to fall back to the other paths."
            )
        if result is None:
            result = _kernels.fast_recurrence(*args)
        if result is None:
            result = self._portable_loop(sequences, initial_state, mask, masks)
        last_output, outputs, states = result
        if masks.output is not None:
            last_output = last_output * masks.output
            if outputs is not None:
                outputs = outputs * ops.expand_dims(masks.output, 1)
        return last_output, outputs, states

    def _portable_loop(self, sequences, initial_state, mask, masks):
        """The recurrence with `keras.ops` only: the reference path.

        The input projection runs for all steps before the loop, or inside
        the step, as `keras_reg._kernels.hoists_projection()` says.
        """
        cell = self.cell
        hoist = _kernels.hoists_projection()
        x = ops.transpose(sequences, (1, 0, 2))  # time-major
        input_mask = masks.input
        inputs = {}
        if (
            input_mask is not None
            and cell.share_input_mask
            and input_mask.shape[0] == 1
        ):
            # One mask for all gates and steps: drop the inputs once.
            x, input_mask = x * input_mask[0], None
        elif input_mask is not None and not cell.share_input_mask:
            # (steps, gates, batch, features) -> (gates, steps, batch, features)
            if hoist:
                input_mask = ops.transpose(input_mask, (1, 0, 2, 3))
            else:
                inputs["input_mask"] = input_mask
        inputs["x"] = cell._project(x, input_mask) if hoist else x
        if masks.zoneout is not None:
            inputs["keep_new"] = masks.zoneout
        kernel = cell.recurrent_kernel
        if masks.recurrent_kernel is not None:
            kernel = masks.recurrent_kernel
        recurrent_mask = masks.recurrent

        def step(inputs_t, states):
            states = list(states)
            xw = inputs_t["x"]
            if not hoist:
                xw = cell._project(xw, inputs_t.get("input_mask", input_mask))
            new = cell._step(xw, states, recurrent_mask, kernel)
            new = cell._zoneout(states, new, inputs_t.get("keep_new"))
            return new[0], new

        options = dict(
            mask=mask,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
        )
        # The backend's own loop (TensorFlow's `while_loop`) where it takes
        # the call, else the portable one.
        backend_loop = _kernels.time_loop()
        result = None
        if backend_loop is not None:
            result = backend_loop(step, inputs, initial_state, **options)
        if result is None:
            result = _loop.run(step, inputs, initial_state, **options)
        return result

    # --- config --------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        config["activity_regularizer"] = keras.regularizers.serialize(
            self.activity_regularizer
        )
        config["use_cudnn"] = self.use_cudnn
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # --- the cell's arguments, as in Keras' LSTM ------------------------------

    @property
    def units(self):
        return self.cell.units

    @property
    def activation(self):
        return self.cell.activation

    @property
    def use_bias(self):
        return self.cell.use_bias

    @property
    def kernel_initializer(self):
        return self.cell.kernel_initializer

    @property
    def recurrent_initializer(self):
        return self.cell.recurrent_initializer

    @property
    def bias_initializer(self):
        return self.cell.bias_initializer

    @property
    def kernel_regularizer(self):
        return self.cell.kernel_regularizer

    @property
    def recurrent_regularizer(self):
        return self.cell.recurrent_regularizer

    @property
    def bias_regularizer(self):
        return self.cell.bias_regularizer

    @property
    def kernel_constraint(self):
        return self.cell.kernel_constraint

    @property
    def recurrent_constraint(self):
        return self.cell.recurrent_constraint

    @property
    def bias_constraint(self):
        return self.cell.bias_constraint

    @property
    def per_gate_masks(self):
        return self.cell.per_gate_masks

    @property
    def share_input_mask(self):
        return self.cell.share_input_mask

    @property
    def recurrent_dropout_mode(self):
        return self.cell.recurrent_dropout_mode

    @property
    def seed(self):
        return self.cell.seed

    @property
    def implementation(self):
        return self.cell.implementation

    # The rates can change during training (`DropoutScheduler`).
    @property
    def dropout(self):
        return self.cell.dropout

    @dropout.setter
    def dropout(self, value):
        self.cell.dropout = check_rate("dropout", value)

    @property
    def recurrent_dropout(self):
        return self.cell.recurrent_dropout

    @recurrent_dropout.setter
    def recurrent_dropout(self, value):
        self.cell.recurrent_dropout = check_rate("recurrent_dropout", value)

    @property
    def output_dropout(self):
        return self.cell.output_dropout

    @output_dropout.setter
    def output_dropout(self, value):
        self.cell.output_dropout = check_rate("output_dropout", value)

    @property
    def weight_dropout(self):
        return self.cell.weight_dropout

    @weight_dropout.setter
    def weight_dropout(self, value):
        self.cell.weight_dropout = check_rate("weight_dropout", value)

    @property
    def zoneout(self):
        return self.cell.zoneout

    @zoneout.setter
    def zoneout(self, value):
        self.cell.zoneout = check_rate("zoneout", value)
