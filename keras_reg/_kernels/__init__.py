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
"""

import importlib

import keras

_MODULES = {"torch": "_torch", "tensorflow": "_tensorflow", "jax": "_jax"}
# Modules with a `replica_id` of their own, apart from the kernels.
_REPLICA_MODULES = {"torch": "_torch_distributed"}
_cache = {}
_replica_cache = {}
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


def fused_recurrence(layer, sequences, initial_state, mask, masks):
    """A sequence layer's call in the backend's fused kernel (cuDNN on GPU).

    Returns `(last_output, outputs, states)` as the portable loop does, or
    None where no fused kernel can run the call.
    """
    module = _module()
    kernel = getattr(module, "fused_recurrence", None) if module else None
    if kernel is None:
        return None
    return kernel(layer, sequences, initial_state, mask, masks)


def fast_recurrence(layer, sequences, initial_state, mask, masks):
    """A call no fused kernel can run, in the backend's own loop (torch's
    hand-written BPTT, say), or None for the portable loop."""
    module = _module()
    kernel = getattr(module, "fast_recurrence", None) if module else None
    if kernel is None:
        return None
    return kernel(layer, sequences, initial_state, mask, masks)


def why_not(layer, mask, masks):
    """Why no fused kernel runs this call, in a sentence."""
    module = _module()
    explain = getattr(module, "why_not", None) if module else None
    if explain is None:
        return "this backend has no fused recurrent kernel."
    return explain(layer, mask, masks)


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
    module = _module()
    return getattr(module, "time_loop", None) if module else None


def layer_norm():
    """The backend's `layer_norm(v, gamma, beta, epsilon)` over the last
    axis (gamma and beta given, in `v`'s dtype), or None."""
    module = _module()
    return getattr(module, "layer_norm", None) if module else None
