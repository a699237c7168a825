import os
import subprocess
import sys

import keras
import pytest

import keras_reg

# Reading KERAS_REG_RNG does not depend on the backend, and each test's
# subprocess import costs about 10 s in the suite: they run once.
once = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="backend-independent; runs once, in the torch suite",
)


def test_default_mode_is_portable():
    assert keras_reg.config.rng() == "portable"


def test_set_rng_switches_mode():
    keras_reg.config.set_rng("native")
    assert keras_reg.config.rng() == "native"
    keras_reg.config.set_rng("portable")
    assert keras_reg.config.rng() == "portable"


@pytest.mark.parametrize("mode", ["Portable", "numpy", "", None, 1])
def test_set_rng_rejects_other_values_and_keeps_mode(mode):
    keras_reg.config.set_rng("native")
    with pytest.raises(ValueError, match=r"Received: mode="):
        keras_reg.config.set_rng(mode)
    assert keras_reg.config.rng() == "native"


def _import_with_env(value):
    env = dict(os.environ, KERAS_REG_RNG=value)
    code = "import keras_reg; print(keras_reg.config.rng())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )


@once
def test_environment_variable_sets_mode_at_import():
    result = _import_with_env("native")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "native"


@once
def test_invalid_environment_variable_raises_naming_value():
    result = _import_with_env("fast")
    assert result.returncode != 0
    assert "KERAS_REG_RNG='fast'" in result.stderr
