import importlib.util
import os
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

import keras_reg  # noqa: E402
from tests.helpers import run_worker  # noqa: E402

# Each backend's run of the suite checks itself against one partner, in both
# directions; over the three runs of `make test` every ordered pair of
# backends is covered, with one subprocess per run.
PARTNERS = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}


@pytest.fixture(autouse=True)
def _clean_global_state():
    """Each test starts in portable mode with float32 and a fresh session."""
    yield
    keras_reg.config.set_rng("portable")
    keras.config.set_dtype_policy("float32")
    # Without the full garbage collection (0.4 s a test); Python's own gc
    # still runs.
    keras.utils.clear_session(free_memory=False)


# The files whose tests run with Grappler on TensorFlow (`_grappler`).
GRAPPLER_FILES = (
    "test_execution_matrix.py",
    "test_fast_paths.py",
    "test_portability.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in GRAPPLER_FILES:
            item.add_marker(pytest.mark.grappler)


@pytest.fixture(autouse=True)
def _grappler(request):
    """TensorFlow's graph optimizer (Grappler) rewrites each `tf.function`
    graph when it first runs: about a third of the cost of a first
    `tf.function` fit of a recurrent model here, 30 of 431 CPU seconds in
    the TensorFlow files outside the execution matrix. It runs, as users
    run it, in the tests marked `grappler` (`GRAPPLER_FILES`: the
    execution matrix, which fits, predicts, evaluates and draws compiled
    masks with every public layer in `tf.function`; the fast paths; the
    portability file); elsewhere the graphs run as traced, the same ops
    without its rewrites. With `jit_compile=True` (XLA) it made no
    difference in time."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    on = request.node.get_closest_marker("grappler") is not None
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})
    yield


@pytest.fixture
def numpy_weights():
    """The test's layers draw their random initial weights in NumPy
    (`tests.numpy_init`): on JAX each of Keras' random initializers
    compiles a draw per weight shape. Per test: the session cleared after
    each test ends the scope. A module takes it with
    `pytestmark = pytest.mark.usefixtures("numpy_weights")`."""
    from tests.numpy_init import numpy_initializers

    with numpy_initializers():
        yield


@pytest.fixture
def native_rng():
    keras_reg.config.set_rng("native")
    yield
    keras_reg.config.set_rng("portable")


@pytest.fixture(scope="session")
def partner(tmp_path_factory):
    """The partner backend's side of the cross-backend tests.

    Saves, here, a half-trained model and the `tests.zoo` model under
    `directory/here`; runs `tests/backend_worker.py partner` once on the
    partner backend, which loads them, computes its masks and outputs, and
    saves its own under `directory/partner`. Returns the partner's name,
    the directory and the worker's results.
    """
    from tests import backend_worker, zoo

    backend = PARTNERS[keras.backend.backend()]
    if importlib.util.find_spec(backend) is None:
        # `make test-oldest` installs torch alone.
        pytest.skip(f"the partner backend, {backend}, is not installed")
    directory = tmp_path_factory.mktemp("partner")
    here = directory / "here"
    here.mkdir()
    backend_worker.save_half_trained(here / "half.keras")
    zoo.save_for_another_backend(here)
    results = run_worker(
        "backend_worker.py", backend, "partner", directory, directory / "out.npz"
    )
    assert str(results["backend"]) == backend
    return SimpleNamespace(backend=backend, directory=directory, results=results)
