"""When a fast path may run a sequence layer's call: the checks every
backend shares, each returning None (the call may run) or a sentence
saying why not.

A fused kernel computes the plain recurrence. It can take a call whose
every active mask is shared by the whole sequence and applied outside the
recurrence: inference, input dropout with one mask for all gates and steps
(the inputs are masked first), weight drop and a batch-shared recurrent
mask (both folded into the recurrent kernel first) and output dropout (the
layer applies it after).

The backend modules combine these with their own checks into
`fused_refusal` and `fast_refusal`; `keras_reg._kernels` runs a kernel only
where its refusal is None, and `why_not` prints that same sentence.
"""

import keras

TANH = (keras.activations.tanh, keras.ops.tanh)
SIGMOID = (keras.activations.sigmoid, keras.ops.sigmoid)
RELU = (keras.activations.relu, keras.ops.relu)


def first(*checks):
    """The first reason among `checks` (callables of no argument), or None."""
    for check in checks:
        reason = check()
        if reason is not None:
            return reason
    return None


def fused_kind(cell):
    """None if the cell computes a plain LSTM, GRU or RNN, else why not."""
    if getattr(cell, "_fused_kind", None) is None:
        return f"{type(cell).__name__} normalizes inside the recurrence."
    return None


def standard_gates(cell, tanh=TANH, sigmoid=SIGMOID):
    """None if the cell's gates are tanh and sigmoid, else why not."""
    if cell.activation in tanh and cell.recurrent_activation in sigmoid:
        return None
    return "the kernels compute tanh and sigmoid gates only."


def gru_reset_after(cell):
    if getattr(cell, "_fused_kind", None) == "gru" and not cell.reset_after:
        return "the kernels compute a GRU with reset_after=True only."
    return None


def masks_outside(cell, mask, masks):
    """None if the call's masks allow a fused kernel, else why not."""
    if mask is not None:
        return "the call has an input mask (mask_zero or Masking)."
    if masks.recurrent is not None:
        return "recurrent_dropout draws one mask per sample on h in training."
    if cell._active["zoneout"]:
        return "zoneout mixes the old and new state at every step."
    if masks.input is not None and (
        masks.input.shape[0] != 1 or not cell.share_input_mask
    ):
        return "the input masks differ per gate or per step."
    return None
