"""The fused (cuDNN) kernels that Keras' own `LSTM` and `GRU` dispatch to,
for the TensorFlow and JAX backends.

A sequence layer's call runs in them where its masks allow
(`keras_reg._kernels._eligible`), the cell computes the plain recurrence
with tanh and sigmoid, and Keras' function accepts the call: it raises
`NotImplementedError` without a GPU, and the layer then runs its own loop.
Calls with an input mask decline: cuDNN outputs zeros at the padded steps
where the portable loop repeats the last output.
"""

from keras import ops

from keras_reg import _keras_private
from keras_reg._kernels._eligible import masks_outside


def eligible(layer, mask, masks, kinds):
    """The cell's kind when a fused kernel may take the call, else None."""
    cell = layer.cell
    kind = getattr(cell, "_fused_kind", None)
    if kind not in kinds or masks_outside(cell, mask, masks) is not None:
        return None
    return kind


def fused_recurrence(layer, sequences, initial_state, mask, masks, kinds, flip):
    """Runs the call in Keras' fused kernel, or returns None.

    `flip`: whether the kernel returns a `go_backwards` sequence in input
    order (JAX's does), to be put back in the order it was computed.
    """
    kind = eligible(layer, mask, masks, kinds)
    if kind is None:
        return None
    cell = layer.cell
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
    run = _keras_private.backend_rnn_kernel(kind)
    try:
        if kind == "lstm":
            result = run(x, initial_state[0], initial_state[1], None, **arguments)
        else:
            result = run(
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


def why_not(layer, mask, masks, kinds):
    """Why Keras' fused kernel does not run this call, in a sentence."""
    cell = layer.cell
    kind = getattr(cell, "_fused_kind", None)
    if kind is None:
        return f"{type(cell).__name__} normalizes inside the recurrence."
    if kind not in kinds:
        return f"Keras has no fused {type(cell).__name__} kernel on this backend."
    return masks_outside(cell, mask, masks) or (
        "Keras' cuDNN kernel needs a GPU, tanh and sigmoid, a bias, no unroll "
        "(and a GRU with reset_after=True)."
    )
