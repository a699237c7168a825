"""The portable time loop of the sequence layers.

`run(step, inputs, initial_states, ...)` is Keras' recurrence semantics
(`keras.layers.RNN`'s loop) written with `keras.ops` only:

- `inputs` are time-major, `(steps, batch, ...)`: a tensor or a tuple of
  tensors, one slice of each per step.
- `step(inputs_t, states)` returns `(output_t, new_states)`.
- A boolean `mask` `(batch, steps)` skips steps per sample: a skipped step
  keeps the states, and its output is the previous step's output (zeros
  before the first step), or zeros with `zero_output_for_mask=True`.
- `go_backwards=True` runs the steps in reverse; outputs come in the order
  they were computed, as in Keras.
- `unroll=True` writes the loop out in Python (static number of steps), as
  it always is where the backend runs loops eagerly
  (`keras_reg._kernels.unrolls_loops()`: torch).

It returns `(last_output, outputs, states)`, `outputs` batch-major
`(batch, steps, units)`, or None with `return_sequences=False`.

This is the reference that every backend loop in `keras_reg._kernels` is
tested against, and the fallback where none applies.
"""

from keras import ops, tree

from keras_reg import _kernels


def run(
    step,
    inputs,
    initial_states,
    mask=None,
    go_backwards=False,
    unroll=False,
    zero_output_for_mask=False,
    return_sequences=True,
):
    initial_states = tuple(initial_states)
    if go_backwards:
        inputs = tree.map_structure(lambda x: ops.flip(x, 0), inputs)
        if mask is not None:
            mask = ops.flip(mask, 1)
    if mask is not None:
        # (batch, steps) -> (steps, batch, 1), broadcast over units.
        mask = ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1)
    # Where the backend runs every loop eagerly (torch), a plain Python loop
    # is the lean one.
    if unroll or _kernels.unrolls_loops():
        return _unrolled(
            step, inputs, initial_states, mask, zero_output_for_mask, return_sequences
        )
    return _scanned(
        step, inputs, initial_states, mask, zero_output_for_mask, return_sequences
    )


def _masked(mask_t, output, states, new_states, previous, zero_output):
    """A skipped step keeps the states and repeats (or zeroes) the output."""
    output = ops.where(mask_t, output, 0 if zero_output else previous)
    new_states = tuple(
        ops.where(mask_t, new, old) for new, old in zip(new_states, states, strict=True)
    )
    return output, new_states


def _unrolled(step, inputs, states, mask, zero_output, return_sequences):
    flat = tree.flatten(inputs)
    steps = flat[0].shape[0]
    if steps is None:
        raise ValueError("Unrolling requires a fixed number of time steps.")
    # Split each input into its steps once: torch's gradient of `x[t]` is a
    # zero tensor of the whole sequence per step, that of `unstack` one stack.
    flat = [ops.unstack(x, axis=0) for x in flat]
    if mask is not None:
        mask = ops.unstack(mask, axis=0)
    outputs, output = [], None
    for t in range(steps):
        inputs_t = tree.pack_sequence_as(inputs, [x[t] for x in flat])
        output_t, new_states = step(inputs_t, states)
        new_states = tuple(new_states)
        if mask is not None:
            previous = ops.zeros_like(output_t) if output is None else output
            output_t, new_states = _masked(
                mask[t], output_t, states, new_states, previous, zero_output
            )
        output, states = output_t, new_states
        if return_sequences:
            outputs.append(output)
    sequence = ops.stack(outputs, axis=1) if return_sequences else None
    return output, sequence, list(states)


def _scanned(step, inputs, states, mask, zero_output, return_sequences):
    # Keras' TensorFlow `scan` stacks outputs shaped like the carry, so the
    # carry holds the last output and the per-step output is the carry.
    def body(carry, x):
        states, previous = carry
        if mask is None:
            output, new_states = step(x, states)
        else:
            x, mask_t = x
            output, new_states = step(x, states)
            output, new_states = _masked(
                mask_t, output, states, tuple(new_states), previous, zero_output
            )
        carry = (tuple(new_states), output)
        return carry, (carry if return_sequences else None)

    xs = inputs if mask is None else (inputs, mask)
    previous = ops.zeros_like(states[0])
    (final_states, last_output), stacked = ops.scan(body, (states, previous), xs)
    sequence = ops.transpose(stacked[1], (1, 0, 2)) if return_sequences else None
    return last_output, sequence, list(final_states)
