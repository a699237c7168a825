"""When a fused kernel may run a sequence layer's call (any backend).

A fused kernel computes the plain recurrence. It can take a call whose
every active mask is shared by the whole sequence and applied outside the
recurrence: inference, input dropout with one mask for all gates and steps
(the inputs are masked first), weight drop (the kernel is masked first) and
output dropout (the layer applies it after).
"""


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
