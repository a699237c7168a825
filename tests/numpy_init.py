"""Keras' random initializers drawn in NumPy, for tests that need random
weights but not Keras' draws of them.

On JAX each of Keras' random initializers compiles a draw at every new
weight shape (`glorot_uniform`, `orthogonal` with its QR, `uniform`:
0.3 to 0.5 CPU s each); a NumPy draw compiles nothing. Inside
`numpy_initializers()` the names a layer's default initializers are
spelled with resolve to `NumpyInit` (Keras' own layers and keras_reg's
read them by name when they are built), so the layers, their configs and
everything the tests read are their own: only the initial values come
from NumPy, a normal of variance `1 / fan_in` from a fixed seed.
"""

import contextlib

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="tests")
class NumpyInit(keras.initializers.Initializer):
    """A normal of variance `scale / fan_in` from NumPy's seeded generator
    (a new instance per weight, as Keras makes from a name)."""

    def __init__(self, scale=1.0, seed=0, **kwargs):
        # kwargs: the stood-in initializer's options, unused.
        self.scale, self.seed = scale, seed
        # A config's `seed: None` (a stood-in class's) draws from 0 too.
        self._rng = np.random.default_rng(0 if seed is None else seed)

    def __call__(self, shape, dtype=None):
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        std = np.sqrt(self.scale / max(1, fan_in))
        return self._rng.normal(0.0, std, size=shape).astype(dtype or "float32")

    def get_config(self):
        return {"scale": self.scale, "seed": self.seed}


# Dense's, the recurrent layers' and cells' kernels and recurrent kernels,
# Embedding's (and EmbeddingDropout's) embeddings, and EfficientNet's
# (`VarianceScaling`, by class name in its layer configs).
_NAMES = (
    "glorot_uniform",
    "GlorotUniform",
    "orthogonal",
    "Orthogonal",
    "OrthogonalInitializer",
    "uniform",
    "RandomUniform",
    "VarianceScaling",
)


@contextlib.contextmanager
def numpy_initializers():
    """Layers built inside draw their random initial weights in NumPy."""
    with keras.saving.custom_object_scope(dict.fromkeys(_NAMES, NumpyInit)):
        yield
