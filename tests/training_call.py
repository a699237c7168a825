"""`training_call(layer, x)`: a layer's call in training, as NumPy.

On JAX an eager call compiles each operation on its own at every new input
shape (a DropBlock: about 0.9 CPU s per new shape); one `jax.jit` of the
layer's `stateless_call` compiles them together (about 0.4 s). The layer's
random state goes in and comes back out, so its stream moves on as an
eager call moves it. TensorFlow and torch call the layer eagerly.
"""

import keras

from tests.helpers import to_numpy


def training_call(layer, x):
    """`layer(x, training=True)` as a NumPy array (compiled on JAX)."""
    if keras.backend.backend() != "jax":
        return to_numpy(layer(x, training=True))
    import jax

    if not layer.built:
        layer.build(keras.tree.map_structure(lambda a: a.shape, x))
    trainable = [v.value for v in layer.trainable_variables]
    state = [v.value for v in layer.non_trainable_variables]
    y, state = jax.jit(
        lambda trainable, state, x: layer.stateless_call(
            trainable, state, x, training=True
        )
    )(trainable, state, x)
    for variable, value in zip(layer.non_trainable_variables, state, strict=True):
        variable.assign(value)
    return to_numpy(y)
