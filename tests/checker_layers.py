"""Custom layers for tests/test_testing.py, imported by the checker's
subprocesses through `imports=["tests.checker_layers"]`."""

import keras


@keras.saving.register_keras_serializable(package="checker_tests")
class OffOnJax(keras.layers.Layer):
    """The identity, except on JAX, where it adds `offset` (0.1): a layer that
    computes differently on one backend."""

    def __init__(self, offset=0.1, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, inputs):
        if keras.backend.backend() == "jax":
            return inputs + self.offset
        return inputs

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="checker_tests")
class Subclassed(keras.Model):
    """A subclassed model: the checker compares its outputs only."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


@keras.saving.register_keras_serializable(package="checker_tests")
class TimesOnTorch(keras.layers.Layer):
    """The identity, except on torch, where it multiplies by `factor`
    (1.01): a 1% difference on one backend."""

    def __init__(self, factor=1.01, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        if keras.backend.backend() == "torch":
            return inputs * self.factor
        return inputs

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
