"""One call's masks of a shared-mask recurrent cell, drawn as values.

`draw(cell, batch, features, dtype, steps)` draws, through
`keras_reg._random`, every mask one call of `cell` uses, and returns them in
a `CallMasks`. The caller passes them on to the step it runs: a sequence
layer to its loop, a cell inside `keras.layers.RNN` to its own `call` (kept
from `get_dropout_mask` to `reset_dropout_mask`, Keras' protocol), a cell
called on its own to that one step. Nothing else holds them, so they never
outlive the call.

Shapes (`gates` is 1 unless `per_gate_masks=True`; scaled masks hold 0 or
`1 / (1 - rate)` in the compute dtype):

- `input` (`dropout`): `(gates, batch, features)`, shared by all steps; or
  `(steps, gates, batch, features)` with `share_input_mask=False`.
- `recurrent` (`recurrent_dropout`): `(gates, batch, units)`, shared by all
  steps. With `recurrent_dropout_mode="batch"` the mask is `(gates, units)`,
  shared by the batch too, and it is folded into `recurrent_kernel`
  instead: `(h * m) @ U == h @ (diag(m) @ U)`, the rows of gate `g`'s
  block of `U` scaled by `m[g]`; `recurrent` is then None.
- `output` (`output_dropout`): `(batch, units)`, on the emitted output only.
- `recurrent_kernel` (`weight_dropout`, and `recurrent_dropout` in
  `"batch"` mode): the recurrent kernel with its dropped entries zeroed and
  the rest scaled; one mask per call for the whole batch and all steps.
- `zoneout`: `(steps, batch, state units)`, 1 where a unit takes its new
  value, 0 where it keeps the old one; fresh at every step.

The draws happen in this order, so a sequence layer and
`keras.layers.RNN(cell)` with the same seed draw the same masks.
"""

from typing import Any, NamedTuple

from keras import ops

from keras_reg import _random

RATES = ("dropout", "recurrent_dropout", "output_dropout", "weight_dropout", "zoneout")
# `recurrent_dropout_mode`: one recurrent mask per sample, or one per call.
RECURRENT_MODES = ("sample", "batch")


class CallMasks(NamedTuple):
    """The masks of one call; None where a regularizer is off or inference."""

    input: Any = None
    recurrent: Any = None
    output: Any = None
    recurrent_kernel: Any = None
    zoneout: Any = None


NONE = CallMasks()


def per_step(cell):
    """Whether `cell` draws a fresh mask at every step in training."""
    return cell._active["zoneout"] or (
        cell._active["dropout"] and not cell.share_input_mask
    )


def state_sizes(cell):
    size = cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]


def _scaled(cell, name, shape, dtype):
    state, slot = cell.seed_generator, cell._slot(name)
    keep = _random.keep_mask(shape, state, slot)
    return ops.where(keep, _random.keep_scale(state, slot, dtype), 0)


def draw(cell, batch, features, dtype, steps=None):
    """Every mask of one training call of `cell`.

    `steps=None` (inside `keras.layers.RNN`, which passes no step index)
    refuses the per-step masks with a `ValueError`.
    """
    if steps is None and per_step(cell):
        raise ValueError(
            f"{type(cell).__name__} with zoneout or share_input_mask=False draws "
            "a fresh mask at every step, which `keras.layers.RNN` cannot give "
            "a cell (it passes no step index). Use the keras_reg sequence "
            "layer instead, e.g. `keras_reg.layers.VariationalLSTM`."
        )
    active = cell._active
    gates = cell._gates if cell.per_gate_masks else 1
    masks = {}
    if active["dropout"]:
        shape = (gates, batch, features)
        if not cell.share_input_mask:
            shape = (steps, *shape)
        masks["input"] = _scaled(cell, "dropout", shape, dtype)
    batch_shared = cell.recurrent_dropout_mode == "batch"
    if active["recurrent_dropout"] and not batch_shared:
        masks["recurrent"] = _scaled(
            cell, "recurrent_dropout", (gates, batch, cell.units), dtype
        )
    if active["output_dropout"]:
        masks["output"] = _scaled(cell, "output_dropout", (batch, cell.units), dtype)
    if active["weight_dropout"]:
        kernel = cell.recurrent_kernel
        masks["recurrent_kernel"] = ops.multiply(
            ops.cast(kernel, dtype),
            _scaled(cell, "weight_dropout", tuple(kernel.shape), dtype),
        )
    if active["recurrent_dropout"] and batch_shared:
        kernel = masks.get("recurrent_kernel")
        if kernel is None:
            kernel = ops.cast(cell.recurrent_kernel, dtype)
        mask = _scaled(cell, "recurrent_dropout", (gates, cell.units), dtype)
        masks["recurrent_kernel"] = fold_rows(kernel, mask)
    if active["zoneout"]:
        state_units = cell.units * len(state_sizes(cell))
        keep_new = _random.keep_mask(
            (steps, batch, state_units), cell.seed_generator, cell._slot("zoneout")
        )
        masks["zoneout"] = ops.cast(keep_new, dtype)
    return CallMasks(**masks)


def fold_rows(kernel, mask):
    """`diag(m) @ U` per gate block: `kernel` `(units, gates * n)` with the
    rows of block `g` multiplied by `mask[g]` (`mask` `(gates, units)`), so
    that `h @ fold_rows(U, m)` is `(h * m[g]) @ U_g` for every block."""
    gates, units = mask.shape
    if gates == 1:
        return kernel * ops.expand_dims(mask[0], 1)
    blocks = ops.reshape(kernel, (units, gates, -1))
    blocks = blocks * ops.expand_dims(ops.transpose(mask), -1)
    return ops.reshape(blocks, (units, -1))
