"""Optional per-backend fast paths, behind the portable `keras.ops` code.

This package is the only place in keras_reg that imports a backend. Each
module (`_torch.py`, `_tensorflow.py`, `_jax.py`) is imported lazily, for the
backend in use, and each kernel is tested to give exactly what the portable
reference gives. A kernel may return None to hand a case back to the
reference.

`replica_id()` is the other hook: under a strategy that runs one copy of
the step per replica (TensorFlow's `MirroredStrategy` and
`MultiWorkerMirroredStrategy`; `torch.distributed`, whose rank lives in
`_torch_distributed.py`), the replica's global index, which
`keras_reg._random` mixes into every draw so replicas drop different
units. JAX's `keras.distribution` runs one program over the global batch,
in one process or several, so its masks already differ across devices and
it needs no hook.

`traced(value)` says whether a draw runs while a function is traced
(`jax.jit`, `tf.function`): Python then runs once per trace, and what it
reads, the data-parallel rank included, is a constant of the compiled
function. torch has no such hook: eager torch runs Python at every call,
and `torch.compile` guards on the Python values it read and recompiles
when they change.
"""

import importlib

import keras

_MODULES = {"torch": "_torch", "tensorflow": "_tensorflow", "jax": "_jax"}
# Modules with a `replica_id` of their own, apart from the kernels.
_REPLICA_MODULES = {"torch": "_torch_distributed"}
# Modules with a `traced(value)` hook.
_TRACING_MODULES = {"jax": "_jax_tracing", "tensorflow": "_tensorflow_tracing"}
_cache = {}
_replica_cache = {}
_tracing_cache = {}
_gpu = {}


def _module():
    backend = keras.backend.backend()
    if backend not in _cache:
        name = _MODULES.get(backend)
        _cache[backend] = (
            importlib.import_module(f"keras_reg._kernels.{name}") if name else None
        )
    return _cache[backend]


def position_bits():
    """The backend's `position_bits(shape, position)` kernel, or None."""
    module = _module()
    return getattr(module, "position_bits", None) if module else None


def replica_id():
    """This replica's global index (a scalar int) under a multi-replica
    strategy or an initialized `torch.distributed` process group.

    None outside one, with one replica, or on a backend without the concept.
    """
    backend = keras.backend.backend()
    if backend not in _replica_cache:
        name = _REPLICA_MODULES.get(backend)
        module = (
            importlib.import_module(f"keras_reg._kernels.{name}") if name else _module()
        )
        _replica_cache[backend] = getattr(module, "replica_id", None)
    hook = _replica_cache[backend]
    return hook() if hook else None


def traced(value):
    """Whether `value`, a tensor of a draw in progress, is being traced
    into a compiled function (`jax.jit`, `tf.function`), where Python runs
    once per trace; False on torch and eagerly."""
    backend = keras.backend.backend()
    if backend not in _tracing_cache:
        name = _TRACING_MODULES.get(backend)
        _tracing_cache[backend] = (
            importlib.import_module(f"keras_reg._kernels.{name}").traced
            if name
            else None
        )
    hook = _tracing_cache[backend]
    return bool(hook and hook(value))


# --- the recurrence hooks ------------------------------------------------------
#
# Every hook takes one call's `(layer, sequences, initial_state, mask,
# masks)`. A backend module may define a kernel (`fused_recurrence`,
# `fast_recurrence`) with its refusal (`fused_refusal`, `fast_refusal`):
# None where the kernel runs the call, else a sentence saying why not. The
# kernel runs only where its refusal is None, and `why_not` prints the
# same sentence, so the decision and its explanation have one source.

NO_FUSED_KERNEL = "this backend has no fused recurrent kernel."
NO_FAST_KERNEL = "this backend has no recurrence of its own."
USE_CUDNN_FALSE = "the layer was built with use_cudnn=False."
DECLINED = (
    "the backend's fused kernel declined the call when it ran (Keras' cuDNN "
    "function raised NotImplementedError)."
)


def _hook(name):
    module = _module()
    return getattr(module, name, None) if module else None


def fused_refusal(layer, sequences, initial_state, mask, masks):
    """None if the backend's fused kernel (torch's `_VF` kernels, cuDNN)
    may run this call, else why not, in a sentence."""
    if getattr(layer, "use_cudnn", "auto") is False:
        return USE_CUDNN_FALSE
    refusal = _hook("fused_refusal")
    if refusal is None:
        return NO_FUSED_KERNEL
    return refusal(layer, sequences, initial_state, mask, masks)


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    """A sequence layer's call in the backend's fused kernel.

    Returns `(last_output, outputs, states)` as the portable loop does, or
    None where `fused_refusal` gives a reason (or the kernel declines).
    """
    args = (layer, sequences, initial_state, mask, masks)
    if fused_refusal(*args) is not None:
        return None
    return _hook("fused_recurrence")(*args)


def why_not(layer, sequences, initial_state, mask, masks):
    """Why no fused kernel runs this call, in a sentence: the refusal's."""
    args = (layer, sequences, initial_state, mask, masks)
    return fused_refusal(*args) or DECLINED


def fast_refusal(layer, sequences, initial_state, mask, masks):
    """None if the backend's own recurrence (torch's hand-written BPTT) may
    run a call that no fused kernel runs, else why not."""
    refusal = _hook("fast_refusal")
    if refusal is None:
        return NO_FAST_KERNEL
    return refusal(layer, sequences, initial_state, mask, masks)


def fast_recurrence(layer, sequences, initial_state, mask, masks):
    """A call no fused kernel runs, in the backend's own recurrence, or
    None (its refusal gives a reason) for the portable loop."""
    args = (layer, sequences, initial_state, mask, masks)
    if fast_refusal(*args) is not None:
        return None
    return _hook("fast_recurrence")(*args)


def fused_blocks_jit(layer):
    """Whether the layer's calls may run a kernel that XLA cannot compile
    (TensorFlow's cuDNN ops), so that Keras must not jit-compile them."""
    module = _module()
    hook = getattr(module, "fused_blocks_jit", None) if module else None
    return bool(hook and hook(layer))


def gpu_available():
    """Whether the backend in use sees a GPU (where cuDNN kernels run).

    Asked once per backend and process: the devices do not change.
    """
    backend = keras.backend.backend()
    if backend not in _gpu:
        module = _module()
        hook = getattr(module, "gpu_available", None) if module else None
        _gpu[backend] = bool(hook and hook())
    return _gpu[backend]


def time_loop():
    """The backend's own `_loop.run`, or None for the portable one."""
    return _hook("time_loop")


def unrolls_loops():
    """Whether the backend runs every time loop as a Python loop.

    torch runs loops eagerly (its `scan` is a Python loop that also stacks
    a dummy output per step): a plain Python loop is the lean one.
    """
    return bool(_hook("UNROLLS_LOOPS"))


def hoists_projection():
    """Whether a sequence layer's portable loop computes the input
    projection for all steps at once, before the loop.

    On TensorFlow and JAX CPUs it runs inside the step: with a hoisted
    `(steps, batch, 4 * units)` projection, JAX's loop ran 1.2 to 2 times
    slower than with a small matmul per step, and TensorFlow's no faster
    (B=64, T=100, F=32 and 256, units=128). On torch, which runs the loop
    eagerly, and on GPUs, one matmul for all steps saves an op per step.
    """
    return bool(_hook("HOISTS_PROJECTION")) or gpu_available()


def layer_norm():
    """The backend's `layer_norm(v, gamma, beta, epsilon)` over the last
    axis (gamma and beta given, in `v`'s dtype), or None."""
    module = _module()
    return getattr(module, "layer_norm", None) if module else None
