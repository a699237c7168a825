import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

import keras_reg  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_global_state():
    """Each test starts in portable mode with float32 and a fresh session."""
    yield
    keras_reg.config.set_rng("portable")
    keras.config.set_dtype_policy("float32")
    # Without the full garbage collection (0.4 s a test); Python's own gc
    # still runs.
    keras.utils.clear_session(free_memory=False)


@pytest.fixture
def native_rng():
    keras_reg.config.set_rng("native")
    yield
    keras_reg.config.set_rng("portable")
