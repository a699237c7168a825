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


class _State:
    """Stands for a random state that drew inside a traced function."""

    def __init__(self, name):
        self.name = name


@pytest.fixture
def traced_states():
    keras_reg.config._traced.clear()
    keras_reg.config.set_data_parallel_rank(None)
    states = [_State(f"layer_{i}_random_state") for i in range(5)]
    for state in states:
        keras_reg.config._record_trace(state, 2)
    del state  # the list holds the only references
    yield states
    keras_reg.config._traced.clear()
    keras_reg.config.set_data_parallel_rank(None)


def test_a_rank_traced_by_live_states_refuses_another_and_names_them(
    traced_states,
):
    keras_reg.config.set_data_parallel_rank(2)  # the traced rank: allowed
    keras_reg.config.set_data_parallel_rank(lambda: 2)
    assert keras_reg.config.data_parallel_rank() == 2
    for other in (None, 1, lambda: 3):
        with pytest.raises(RuntimeError) as error:
            keras_reg.config.set_data_parallel_rank(other)
        assert keras_reg.config.data_parallel_rank() == 2  # unchanged
    message = str(error.value)
    assert "cannot change from 2 to 3 (set)" in message
    assert "5 random state(s)" in message
    assert "'layer_0_random_state'" in message and "and 2 more" in message
    assert "before the first compiled call" in message


def test_a_callable_that_returns_another_rank_is_refused_when_called(
    traced_states,
):
    value = [2]
    keras_reg.config.set_data_parallel_rank(lambda: value[0])
    value[0] = 4
    with pytest.raises(RuntimeError, match="from 2 to 4 \\(returned by"):
        keras_reg.config.data_parallel_rank()


def test_states_that_are_gone_bind_no_rank(traced_states):
    del traced_states[:]
    keras_reg.config.set_data_parallel_rank(1)
    assert keras_reg.config.data_parallel_rank() == 1
