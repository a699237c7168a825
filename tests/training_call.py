"""`training_call(layer, x)`: a layer's call in training, as NumPy.

On JAX an eager call compiles each operation on its own at every new input
shape (a DropBlock: about 0.9 CPU s per new shape); one `jax.jit` of the
layer's `stateless_call` compiles them together (about 0.4 s). The layer's
random state goes in and comes back out, so its stream moves on as an
eager call moves it. TensorFlow and torch call the layer eagerly.
"""

import keras

from tests.helpers import to_numpy


def training_call(layer, x, cache=None):
    """`layer(x, training=True)` as a NumPy array (compiled on JAX).

    A new trace per call, so that a layer whose configuration changed
    between calls is traced as it is now; with `cache` (a dict), one
    jitted function per layer is kept there and serves every later call of
    a layer that does not change (jit traces again at a new shape)."""
    if keras.backend.backend() != "jax":
        return to_numpy(layer(x, training=True))
    import jax

    if not layer.built:
        layer.build(keras.tree.map_structure(lambda a: a.shape, x))
    call = None if cache is None else cache.get(layer)
    if call is None:
        call = jax.jit(
            lambda trainable, state, x: layer.stateless_call(
                trainable, state, x, training=True
            )
        )
        if cache is not None:
            cache[layer] = call
    trainable = [v.value for v in layer.trainable_variables]
    state = [v.value for v in layer.non_trainable_variables]
    y, state = call(trainable, state, x)
    for variable, value in zip(layer.non_trainable_variables, state, strict=True):
        variable.assign(value)
    return to_numpy(y)
