import json
import os
import subprocess
import sys

import keras
import pytest

import keras_reg
from tests.helpers import quickest_backend

# Reading KERAS_REG_RNG does not depend on the backend, and each test's
# subprocess import costs about 10 s in the suite: they run once, and the
# subprocess runs Keras on JAX, the quickest backend to import (about 5 CPU s
# against torch's 8).
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


# One subprocess imports Keras once (the costly part) and then keras_reg
# once per value of KERAS_REG_RNG, from a clean slate each time: what the
# import prints, or the error it raises.
_IMPORTS = """
import json, os, sys
import keras
results = {}
for value in sys.argv[1:]:
    os.environ["KERAS_REG_RNG"] = value
    for name in [m for m in sys.modules if m.split(".")[0] == "keras_reg"]:
        del sys.modules[name]
    try:
        import keras_reg
        results[value] = {"rng": keras_reg.config.rng()}
    except Exception as error:
        results[value] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def imports():
    """`{KERAS_REG_RNG value: what importing keras_reg under it gave}`."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS, "native", "fast"],
        env=dict(
            os.environ, KERAS_BACKEND=quickest_backend(), TF_CPP_MIN_LOG_LEVEL="3"
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@once
def test_environment_variable_sets_mode_at_import(imports):
    assert imports["native"] == {"rng": "native"}


@once
def test_invalid_environment_variable_raises_naming_value(imports):
    assert imports["fast"]["error"].startswith("ValueError: ")
    assert "KERAS_REG_RNG='fast'" in imports["fast"]["error"]


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
