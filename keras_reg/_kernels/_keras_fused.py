"""The fused (cuDNN) kernels that Keras' own `LSTM` and `GRU` dispatch to,
for the TensorFlow and JAX backends.

`refusal` says whether one may run a sequence layer's call: the masks
allow it (`keras_reg._kernels._eligible`), the cell computes the plain
recurrence with tanh and sigmoid, a bias and no unroll (what Keras'
`cudnn_ok` asks), and the backend sees a GPU. Calls with an input mask
decline: cuDNN outputs zeros at the padded steps where the portable loop
repeats the last output. Should Keras' function still raise
`NotImplementedError`, the layer runs its own loop (`run` returns None).
"""

from keras import ops

from keras_reg import _keras_private, _kernels
from keras_reg._kernels import _eligible


def refusal(layer, sequences, initial_state, mask, masks, kinds):
    """None if Keras' fused kernel may run this call, else why not."""
    cell = layer.cell
    kind = getattr(cell, "_fused_kind", None)

    def keras_kind():
        if kind not in kinds:
            return f"Keras has no fused {type(cell).__name__} kernel on this backend."
        return None

    def arguments():
        if not cell.use_bias:
            return "Keras' cuDNN kernel needs a bias (use_bias=True)."
        if layer.unroll:
            return "Keras' cuDNN kernel does not unroll (unroll=True)."
        return None

    def gpu():
        if not _kernels.gpu_available():
            return "Keras' cuDNN kernel needs a GPU, and the backend sees none."
        return None

    return _eligible.first(
        lambda: _eligible.fused_kind(cell),
        keras_kind,
        lambda: _eligible.masks_outside(cell, mask, masks),
        lambda: _eligible.standard_gates(cell),
        lambda: _eligible.gru_reset_after(cell),
        arguments,
        gpu,
    )


def run(layer, sequences, initial_state, mask, masks, flip):
    """Runs the call in Keras' fused kernel (its refusal is None).

    `flip`: whether the kernel returns a `go_backwards` sequence in input
    order (JAX's does), to be put back in the order it was computed.
    Returns None where Keras' function raises `NotImplementedError`.
    """
    cell = layer.cell
    kind = cell._fused_kind
    x = sequences
    if masks.input is not None:
        x = x * ops.expand_dims(masks.input[0], 1)
    recurrent_kernel = masks.recurrent_kernel
    if recurrent_kernel is None:
        recurrent_kernel = cell.recurrent_kernel
    arguments = dict(
        kernel=cell.kernel,
        recurrent_kernel=recurrent_kernel,
        bias=cell.bias,
        activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
        unroll=layer.unroll,
    )
    kernel = _keras_private.backend_rnn_kernel(kind)
    try:
        if kind == "lstm":
            result = kernel(x, initial_state[0], initial_state[1], None, **arguments)
        else:
            result = kernel(
                x, initial_state[0], None, reset_after=cell.reset_after, **arguments
            )
    except NotImplementedError:
        return None
    last_output, outputs, states = result
    if not layer.return_sequences:
        return last_output, None, list(states)
    if flip and layer.go_backwards:
        outputs = ops.flip(outputs, 1)
    return last_output, outputs, list(states)
