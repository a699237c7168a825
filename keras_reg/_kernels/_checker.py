"""What `keras_reg.testing`'s worker needs from the backend it runs on.

The worker runs in a subprocess with one backend:
- `call(model, inputs, training)`: one call of the model from its current
  state. On JAX, one `jax.jit` of the call in a `keras.StatelessScope`: an
  eager JAX call traces and compiles every recurrent layer's scan anew, 5
  to 10 times slower here.
- `gradients(model, inputs, loss_fn)` calls the model once with
  `training=True` from its current state, takes `loss_fn(outputs)` and
  returns `(loss, [gradient of every trainable variable])` as tensors in
  the dtype they were computed in (a bfloat16 gradient stays bfloat16: the
  worker records it, and the judge judges it, as bfloat16).
Each backend's own autodiff does the work; the backend is imported lazily.
Neither writes the model's variables (the random streams do not advance).
"""

import keras


def _tensorflow(model, inputs, loss_fn):
    import tensorflow as tf

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = loss_fn(model(inputs, training=True))
    grads = tape.gradient(loss, variables)
    # An embedding's gradient is a `tf.IndexedSlices`.
    grads = [g if g is None else tf.convert_to_tensor(g) for g in grads]
    return loss, grads


def _torch(model, inputs, loss_fn):
    import torch

    variables = model.trainable_variables
    for variable in variables:
        variable.value.grad = None
    with torch.enable_grad():
        loss = loss_fn(model(inputs, training=True))
        loss.backward()
    grads = [variable.value.grad for variable in variables]
    return loss.detach(), grads


def _stateless(model, trainable, non_trainable, inputs, training):
    """`model(inputs, training=training)` with the variables' values given,
    writing none. Through `__call__`, as on the other backends: Keras'
    `stateless_call` calls `model.call` directly, which fails for a
    subclassed model whose `call` takes no `training`, and leaves the
    layers of one whose `call` swallows it (`**kwargs`) in inference (no
    call context tells them the mode)."""
    mapping = [
        *zip(model.trainable_variables, trainable, strict=True),
        *zip(model.non_trainable_variables, non_trainable, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping):
        return model(inputs, training=training)


def _jax(model, inputs, loss_fn):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def compute(values, non_trainable, inputs):
        return loss_fn(_stateless(model, values, non_trainable, inputs, True))

    return jax.jit(jax.value_and_grad(compute))(trainable, non_trainable, inputs)


def call(model, inputs, training):
    """The outputs of one call of `model` from its current state."""
    if keras.backend.backend() != "jax":
        return model(inputs, training=training)
    import jax

    def compute(trainable, non_trainable, inputs):
        return _stateless(model, trainable, non_trainable, inputs, training)

    return jax.jit(compute)(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
    )


_BACKENDS = {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}


def gradients(model, inputs, loss_fn):
    """`(loss, gradients)` of one training-mode call, as tensors in the
    dtype each was computed in.

    A variable the loss does not depend on gets a zero gradient (in the
    variable's dtype).
    """
    loss, grads = _BACKENDS[keras.backend.backend()](model, inputs, loss_fn)
    values = []
    for variable, grad in zip(model.trainable_variables, grads, strict=True):
        if grad is None:
            values.append(keras.ops.zeros(variable.shape, variable.dtype))
        else:
            values.append(grad)
    return loss, values
