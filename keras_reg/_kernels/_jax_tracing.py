"""Whether a value of a JAX draw is being traced (for `_kernels.traced`).

Under `jax.jit` (Keras' compiled steps, `stateless_call` inside a user's
`jit`) every value is a tracer, and whatever Python reads while tracing is
a constant of the compiled function. Other transformations (`grad`,
`vmap`) also hand tracers in; a draw that sees one is counted as traced
too, which can only make a later change of the rank refused, never
ignored.
"""

import jax


def traced(value):
    return isinstance(value, jax.core.Tracer)
