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
  block of `U` scaled by `m[g]`; `recurrent` is then None. When
  `mc_predict` stacks Monte Carlo samples in the batch
  (`keras_reg.layers._samples`), each sample draws its own batch-shared
  mask, which one folded kernel cannot hold: the masks are then given
  per row as `recurrent` (every row of a sample gets its sample's mask),
  the same product, and the call runs the per-sample paths.
- `output` (`output_dropout`): `(batch, units)`, on the emitted output only.
- `recurrent_kernel` (`weight_dropout`, and `recurrent_dropout` in
  `"batch"` mode): the recurrent kernel with its dropped entries zeroed and
  the rest scaled; one mask per call for the whole batch and all steps.
- `zoneout`: `(steps, batch, state units)`, 1 where a unit takes its new
  value, 0 where it keeps the old one; fresh at every step.

The draws happen in this order, so a sequence layer and
`keras.layers.RNN(cell)` with the same seed draw the same masks. The
per-row masks come from `_samples.row_keep_mask`, so that consistent
Monte Carlo masks (`mc_predict(..., consistent=True)`) are every row's
alike, and the batch-shared ones from `_samples.keep_mask`.
"""

from typing import Any, NamedTuple

from keras import ops

from keras_reg import _random
from keras_reg.layers import _samples

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


def _scaled(cell, name, keep, dtype):
    state, slot = cell.seed_generator, cell._slot(name)
    return ops.where(keep, _random.keep_scale(state, slot, dtype), 0)


def _rows(cell, name, shape, axis, dtype):
    """A scaled mask of `shape`, one draw per row along `axis`."""
    keep = _samples.row_keep_mask(shape, cell.seed_generator, cell._slot(name), axis)
    return _scaled(cell, name, keep, dtype)


def _shared(cell, name, shape, dtype):
    """A scaled batch-shared mask of `shape`: `(count, *shape)`, one per
    stacked sample (`count` is 1 outside `mc_predict`'s stacked calls)."""
    state, slot = cell.seed_generator, cell._slot(name)
    keep = _samples.keep_mask((1, *shape), state, slot)
    return _scaled(cell, name, keep, dtype)


def refuse_per_step(cell):
    """Raises the `ValueError` of `cell`'s per-step masks inside
    `keras.layers.RNN`, if it draws any."""
    if per_step(cell):
        raise ValueError(
            f"{type(cell).__name__} with zoneout or share_input_mask=False draws "
            "a fresh mask at every step, which `keras.layers.RNN` cannot give "
            "a cell (it passes no step index). Use the keras_reg sequence "
            "layer instead, e.g. `keras_reg.layers.VariationalLSTM`."
        )


def draw(cell, batch, features, dtype, steps=None):
    """Every mask of one training call of `cell`.

    `steps=None` (inside `keras.layers.RNN`, which passes no step index)
    refuses the per-step masks with a `ValueError`.
    """
    if steps is None:
        refuse_per_step(cell)
    active = cell._active
    gates = cell._gates if cell.per_gate_masks else 1
    masks = {}
    if active["dropout"]:
        if cell.share_input_mask:
            shape, axis = (gates, batch, features), 1
        else:
            shape, axis = (steps, gates, batch, features), 2
        masks["input"] = _rows(cell, "dropout", shape, axis, dtype)
    batch_shared = cell.recurrent_dropout_mode == "batch"
    if active["recurrent_dropout"] and not batch_shared:
        masks["recurrent"] = _rows(
            cell, "recurrent_dropout", (gates, batch, cell.units), 1, dtype
        )
    if active["output_dropout"]:
        masks["output"] = _rows(cell, "output_dropout", (batch, cell.units), 0, dtype)
    if active["weight_dropout"]:
        # One kernel for the call: `mc_predict` does not stack samples of
        # a cell with weight drop (`inference._stackable`).
        kernel = cell.recurrent_kernel
        mask = _shared(cell, "weight_dropout", tuple(kernel.shape), dtype)
        masks["recurrent_kernel"] = ops.multiply(ops.cast(kernel, dtype), mask[0])
    if active["recurrent_dropout"] and batch_shared:
        mask = _shared(cell, "recurrent_dropout", (gates, cell.units), dtype)
        if _samples.groups() == 1:
            kernel = masks.get("recurrent_kernel")
            if kernel is None:
                kernel = ops.cast(cell.recurrent_kernel, dtype)
            masks["recurrent_kernel"] = fold_rows(kernel, mask[0])
        else:
            # Stacked samples: one mask per sample, given per row.
            masks["recurrent"] = _samples.per_row(mask, batch, 1)
    if active["zoneout"]:
        state_units = cell.units * len(state_sizes(cell))
        keep_new = _samples.row_keep_mask(
            (steps, batch, state_units),
            cell.seed_generator,
            cell._slot("zoneout"),
            1,
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
