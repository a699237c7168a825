"""Optional per-backend fast paths, behind the portable `keras.ops` code.

This package is the only place in keras_reg that imports a backend. Each
module (`_torch.py`, `_tensorflow.py`, `_jax.py`) is imported lazily, for the
backend in use, and each kernel is tested to give exactly what the portable
reference gives. A kernel may return None to hand a case back to the
reference.
"""

import importlib

import keras

_MODULES = {"torch": "_torch", "tensorflow": "_tensorflow", "jax": "_jax"}
_cache = {}


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
