"""`keras_reg.testing`: the backend-switch checker and its command line,
end to end (the judge and the report are tested at the NumPy level in
tests/test_judging.py, the worker in this process in
tests/test_checker_worker.py).

Every `compare_backends` call starts one subprocess per backend itself, so
this file runs in the torch run of the suite only, and its subprocess runs
are shared through module-scoped fixtures. The two installed commands only
import and parse: they run Keras on JAX, the quickest backend to import
(about 4 CPU s against torch's 7 on 2 busy cores). The models' layers start
from zeros initializers (the tests set every weight from NumPy): loading a
file builds each layer, and on JAX each of Keras' random initializers
compiles a draw (the three-backend run's JAX worker took 16 CPU s with
them, 8 without). So a launch that fails at the load, or that loads the
small subclassed model, runs JAX (4 to 5 CPU s against torch's 7); the
launch that runs the checker model against a recorded folder runs torch
(as quick as JAX there, and the backend that `TimesOnTorch` changes).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_reg import layers
from keras_reg.testing import BackendReport, assert_same_on_backends, compare_backends
from keras_reg.testing.__main__ import main
from tests.checker_layers import OffOnJax, Subclassed, TimesOnTorch
from tests.helpers import quickest_backend

IMPORTS = ["tests.checker_layers"]
ALL = ("tensorflow", "torch", "jax")
_MISSING = [name for name in ALL if importlib.util.find_spec(name) is None]

pytestmark = [
    pytest.mark.skipif(
        keras.backend.backend() != "torch",
        reason="the checker launches every backend itself: it runs in the torch "
        "suite only",
    ),
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"the checker compares all three backends; not installed: {_MISSING}",
    ),
]


def _dense(units, name):
    # Zeros: `saved` sets every weight (a random initializer compiles a draw
    # per shape on JAX, at every load of the file).
    return keras.layers.Dense(units, name=name, kernel_initializer="zeros")


def _model():
    """Four branches on a dict of two inputs: keras_reg layers (in a nested
    sequential model), a custom layer that adds 0.1 on JAX, Keras' own
    `Dropout` in a Dense-Dropout(0.5)-Dense-softmax MLP, and a nested
    softmax head over 10 classes that a custom layer multiplies by 1.01 on
    torch (a 1% difference at softmax scale, about 0.1). Its initializers
    are zeros; `saved` sets its weights."""
    x = keras.Input((5, 4), name="x")
    aux = keras.Input((3,), name="aux")
    nested = keras.Sequential(
        [
            keras.Input((5, 4)),
            layers.VariationalLSTM(
                6,
                dropout=0.2,
                recurrent_dropout=0.2,
                return_sequences=True,
                seed=3,
                name="lstm",
                kernel_initializer="zeros",
                recurrent_initializer="zeros",
            ),
            layers.TimeSharedDropout(0.3, seed=4, name="time_shared"),
        ],
        name="nested",
    )
    a = nested(x)
    a = layers.DropPath(0.3, seed=5, name="drop_path")(_dense(6, "a_dense")(a))
    a = keras.layers.GlobalAveragePooling1D(name="a_pool")(a)
    a = layers.InvertedDropout(0.2, seed=6, name="a_drop")(a)
    a = _dense(2, "portable")(a)
    b = keras.layers.Flatten(name="b_flat")(x)
    b = _dense(3, "b_dense")(b)
    b = OffOnJax(name="off_on_jax")(b)
    b = _dense(2, "custom")(b)
    c = keras.layers.Flatten(name="c_flat")(x)
    c = _dense(4, "c_dense")(c)
    c = keras.layers.Dropout(0.5, seed=7, name="keras_dropout")(c)
    c = _dense(3, "c_head")(c)
    c = keras.layers.Softmax(name="keras")(c)
    scaled = keras.Sequential(
        [
            keras.Input((3,)),
            _dense(10, "d_dense"),
            keras.layers.Softmax(name="d_softmax"),
            TimesOnTorch(name="times_on_torch"),
        ],
        name="scaled",
    )
    d = scaled(aux)
    return keras.Model({"x": x, "aux": aux}, [a, b, c, d])


def _inputs():
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(8, 5, 4)).astype("float32"),
        "aux": rng.normal(size=(8, 3)).astype("float32"),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checker")
    model = _model()
    rng = np.random.default_rng(1)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") * 0.5 for w in model.weights]
    )
    path = directory / "model.keras"
    model.save(path)
    np.savez(directory / "inputs.npz", **_inputs())
    return directory


@pytest.fixture(scope="module")
def everywhere(saved):
    """One run on the three backends, in the three modes."""
    return compare_backends(
        saved / "model.keras",
        saved / "inputs.npz",
        backends=ALL,
        modes=("inference", "training", "gradients"),
        imports=IMPORTS,
    )


def _of(report, **where):
    return [
        c
        for c in report.to_dict()["comparisons"]
        if all(c[k] == v for k, v in where.items())
    ]


PORTABLE_LAYERS = (
    "nested/lstm",
    "nested/time_shared",
    "nested",
    "a_dense",
    "drop_path",
    "a_pool",
    "a_drop",
    "portable",
)
PORTABLE_WEIGHTS = ("nested", "lstm", "a_dense", "portable")


@pytest.mark.slow
def test_every_backend_ran_every_mode_against_the_first(everywhere):
    assert everywhere.errors == []
    assert everywhere.reference == "tensorflow"
    assert everywhere.backends == list(ALL)
    for backend in ("torch", "jax"):
        for mode in ("inference", "training"):
            names = {c["name"] for c in _of(everywhere, backend=backend, mode=mode)}
            assert set(PORTABLE_LAYERS) <= names, names
        grads = _of(everywhere, backend=backend, mode="gradients", kind="gradient")
        assert len(grads) == len(_model().trainable_weights)
    assert everywhere.compared == len(everywhere.comparisons) > 100
    assert everywhere.to_dict()["compared"] == everywhere.compared


@pytest.mark.slow
def test_keras_reg_layers_agree_on_every_backend_in_all_three_modes(everywhere):
    checked = 0
    for c in everywhere.comparisons:
        portable = c["name"] in PORTABLE_LAYERS or (
            c["kind"] == "gradient" and c["name"].split("/")[0] in PORTABLE_WEIGHTS
        )
        if portable:
            assert c["passed"], c
            assert c["max_rel"] < 1e-4, c
            assert c["dtype"] == "float32" and c["rtol"] == 2e-3
            checked += 1
    assert checked >= 2 * (2 * len(PORTABLE_LAYERS) + 4)


@pytest.mark.slow
def test_the_dropout_mlp_fails_training_and_gradients_and_is_flagged(everywhere):
    # The case: the 0.3 rule passed these gradients (below its atol
    # where they were of order 1e-3).
    for backend in ("torch", "jax"):
        (inference,) = _of(
            everywhere, backend=backend, mode="inference", kind="output", name="keras"
        )
        assert inference["passed"], inference
        (training,) = _of(
            everywhere, backend=backend, mode="training", name="keras_dropout"
        )
        assert not training["passed"], training
        for weight in ("c_dense/kernel", "c_head/kernel"):
            (grad,) = _of(everywhere, backend=backend, mode="gradients", name=weight)
            assert not grad["passed"], grad
    assert everywhere.non_portable == [
        {"layer": "keras_dropout", "class": "Dropout", "suggestion": "InvertedDropout"}
    ]
    assert "non-portable: 'keras_dropout' (Dropout)" in str(everywhere)
    assert not everywhere.passed


@pytest.mark.slow
def test_one_percent_at_softmax_scale_fails_in_every_mode(everywhere):
    # TimesOnTorch multiplies probabilities of about 0.1 by 1.01 on torch:
    # the 0.3 rule (atol 5e-3) passed it.
    for mode in ("inference", "training"):
        (torch_d,) = _of(
            everywhere, backend="torch", mode=mode, kind="output", name="scaled"
        )
        (jax_d,) = _of(
            everywhere, backend="jax", mode=mode, kind="output", name="scaled"
        )
        assert not torch_d["passed"] and jax_d["passed"]
        assert torch_d["max_abs"] < 5e-3
        assert torch_d["max_rel"] == pytest.approx(0.01, rel=1e-3)
        (inner,) = _of(everywhere, backend="torch", mode=mode, name="scaled/d_softmax")
        assert inner["passed"]
    (grad,) = _of(everywhere, backend="torch", mode="gradients", name="d_dense/kernel")
    assert not grad["passed"], grad
    (grad,) = _of(everywhere, backend="jax", mode="gradients", name="d_dense/kernel")
    assert grad["passed"], grad


@pytest.mark.slow
def test_the_first_divergence_is_the_nested_layer_not_the_nested_model(everywhere):
    # Inference first, torch before JAX: inside `scaled`, `d_softmax` agrees
    # and `times_on_torch` differs; the nested model's own output comes
    # after its layers.
    assert everywhere.first_divergence == {
        "mode": "inference",
        "backend": "torch",
        "layer": "scaled/times_on_torch",
    }
    (torch_off,) = _of(everywhere, backend="torch", mode="inference", name="off_on_jax")
    (jax_off,) = _of(everywhere, backend="jax", mode="inference", name="off_on_jax")
    (jax_before,) = _of(everywhere, backend="jax", mode="inference", name="b_dense")
    assert torch_off["passed"] and jax_before["passed"]
    assert not jax_off["passed"]
    assert jax_off["max_abs"] == pytest.approx(0.1, rel=1e-3)
    assert "first divergence: layer 'scaled/times_on_torch' (inference, torch" in str(
        everywhere
    )


@pytest.mark.slow
def test_the_json_is_plain_finite_and_has_the_documented_keys(everywhere):
    data = everywhere.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert list(data) == [
        "passed",
        "backends",
        "reference",
        "comparisons",
        "first_divergence",
        "non_portable",
        "errors",
        "compared",
        "tolerances",
        "notes",
    ]
    keys = ["mode", "backend", "kind", "name", "max_abs", "max_rel", "mean_abs"]
    for c in data["comparisons"]:
        assert list(c) == [*keys, "passed"]
        assert c["kind"] in ("output", "layer", "loss", "gradient")
        assert all(np.isfinite(c[k]) for k in keys[4:])
    # Keras' Dropout zeroes different units: judged at the tensor's scale,
    # max_rel stays a plain number.
    assert max(c["max_rel"] for c in data["comparisons"]) < 100
    assert data["tolerances"]["by_dtype"] == {
        "float32": {"atol": float(np.finfo("float32").tiny), "rtol": 2e-3}
    }


@pytest.mark.slow
def test_the_table_has_a_row_per_backend_and_mode(everywhere):
    table = everywhere.table().splitlines()
    rows = [line.split() for line in table[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        (b, m) for b in ALL for m in ("inference", "training", "gradients")
    ]
    assert [r[-1] for r in rows] == ["reference"] * 3 + ["FAIL"] * 6


@pytest.mark.slow
def test_a_reference_folder_from_another_backend_and_the_cli_exits_1(
    everywhere, saved, tmp_path, capsys
):
    folder = tmp_path / "recorded-on-tensorflow"
    everywhere.save_outputs(folder)
    meta = json.loads((folder / "outputs.json").read_text())
    assert meta["backend"] == "tensorflow"
    args = [str(saved / "model.keras"), str(saved / "inputs.npz")]
    args += ["--backends", "torch", "--import", IMPORTS[0], "--timeout", "600"]
    args += ["--reference", str(folder), "--json", str(tmp_path / "r.json")]
    assert main([*args, "--modes", "inference,training", "--jobs", "1"]) == 1
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["reference"] == str(folder) and data["backends"] == ["torch"]
    assert {c["backend"] for c in data["comparisons"]} == {"torch"}
    assert data["first_divergence"] == {
        "mode": "inference",
        "backend": "torch",
        "layer": "scaled/times_on_torch",
    }
    # The same figures as torch's comparisons with TensorFlow in the run
    # that recorded the folder.
    assert data["comparisons"] == [
        c
        for c in everywhere.to_dict()["comparisons"]
        if c["backend"] == "torch" and c["mode"] != "gradients"
    ]
    out, err = capsys.readouterr()
    assert out.rstrip().splitlines()[-1].startswith("FAILED in")
    assert "torch: started" in err and "torch: done" in err


@pytest.mark.slow
def test_a_backend_that_cannot_load_the_model_is_an_error_not_a_crash(
    saved, tmp_path, capsys
):
    # Without `imports`, the custom layers are unknown on load (on JAX, the
    # quickest to start; the layers before them build from zeros).
    report = compare_backends(
        saved / "model.keras", _inputs(), backends=["jax"], modes=["inference"]
    )
    assert not report.passed and report.compared == 0
    message = str(report)
    assert "jax" in message and "ERROR" in message
    assert "error: jax:" in message and "OffOnJax" in message
    # A timeout stops the subprocess; the command line exits 2. (0.1 s:
    # each is stopped while Python starts.)
    args = [str(saved / "model.keras"), str(saved / "inputs.npz"), "--backends"]
    args += ["tensorflow,jax", "--json", str(tmp_path / "r.json")]
    assert main([*args, "--timeout", "0.1"]) == 2
    data = json.loads((tmp_path / "r.json").read_text())
    assert not data["passed"] and data["compared"] == 0
    assert data["errors"] == [
        {"backend": b, "message": "timed out after 0.1 s (stopped)"}
        for b in ("tensorflow", "jax")
    ]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_one_backend_records_and_compares_nothing(tmp_path, capsys):
    model = Subclassed()
    x = np.ones((2, 4), "float32")
    model(x)
    model.save(tmp_path / "sub.keras")
    np.savez(tmp_path / "x.npz", x)
    # On JAX: the quickest to start and to run this model once.
    args = [str(tmp_path / "sub.keras"), str(tmp_path / "x.npz"), "--import"]
    args += [IMPORTS[0], "--backends", "jax"]
    # Nothing to compare, and no --save-outputs: exit 2 before anything runs.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nothing would be compared" in err and "jax: started" not in err
    with pytest.raises(AssertionError, match="Nothing would be compared"):
        assert_same_on_backends(model, x, backends=["jax"], imports=IMPORTS)
    # --save-outputs: recorded, exit 0.
    assert main([*args, "--save-outputs", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "nothing compared" in out and "subclassed model" in out
    assert out.rstrip().endswith("s") and "NOTHING COMPARED in" in out
    meta = json.loads((tmp_path / "out" / "outputs.json").read_text())
    assert [(e["mode"], e["kind"]) for e in meta["entries"]] == [
        ("inference", "output"),
        ("training", "output"),
    ]
    # (A recording used as a reference: the test with exit status 1 above.)


def test_assert_same_on_backends_returns_a_passed_report_and_raises_otherwise(
    monkeypatch,
):
    from keras_reg.testing import _compare

    def fake(comparisons, errors=()):
        report = BackendReport(
            ["torch", "jax"], "torch", ["inference"], comparisons, [], list(errors)
        )
        monkeypatch.setattr(_compare, "compare_backends", lambda *a, **k: report)
        return report

    good = {"mode": "inference", "backend": "jax", "kind": "output", "name": "o"}
    good.update(dtype="float32", atol=0.0, rtol=0.0, max_abs=0.0, max_rel=0.0)
    good.update(mean_abs=0.0, passed=True, excess=0.0)
    report = fake([good])
    assert assert_same_on_backends("m.keras", None, backends="torch,jax") is report
    fake([dict(good, passed=False, excess=2.0)])
    with pytest.raises(AssertionError, match="FAILED in") as raised:
        assert_same_on_backends("m.keras", None, backends=["torch", "jax"])
    assert "first divergence: layer 'o'" in str(raised.value)
    fake([], errors=[{"backend": "jax", "message": "boom"}])
    with pytest.raises(AssertionError, match="error: jax: boom"):
        assert_same_on_backends("m.keras", None, backends=["torch", "jax"])
    fake([])
    with pytest.raises(AssertionError, match="Nothing was compared"):
        assert_same_on_backends("m.keras", None, backends=["torch", "jax"])
    with pytest.raises(AssertionError, match="one backend \\(jax\\) and no"):
        assert_same_on_backends("m.keras", None, backends="jax")


# --- bad input: exit status 2, a message naming the problem ------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backends", "theano"], "argument `backends`"),
        (["--modes", "inference,backprop"], "argument `modes`"),
        (["--atol", "-1"], "argument `atol`"),
        (["--timeout", "0"], "argument `timeout`"),
        (["--jobs", "0"], "argument `jobs`"),
        (["--jobs", "two"], "argument --jobs: invalid int value"),
        (["--json", "/nonexistent/r.json"], "no such folder '/nonexistent'"),
        (["--json", "/"], "--json '/' is a folder"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(saved, capsys, extra, message):
    args = [str(saved / "model.keras"), str(saved / "inputs.npz"), *extra]
    if "--backends" not in extra:
        args += ["--backends", "torch,jax"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in err and "PASSED" not in out and "started" not in err


def test_a_missing_file_exits_2(saved, tmp_path, capsys):
    assert main([str(tmp_path / "none.keras"), str(saved / "inputs.npz")]) == 2
    assert "No such model file" in capsys.readouterr().err
    assert main([str(saved / "model.keras"), str(tmp_path / "none.npz")]) == 2
    assert "No such inputs file" in capsys.readouterr().err


def test_inputs_that_do_not_fit_the_model_exit_2_naming_both_shapes(
    saved, tmp_path, capsys
):
    aux = np.ones((8, 3), "float32")
    np.savez(tmp_path / "wrong.npz", x=np.ones((8, 4, 5), "float32"), aux=aux)
    assert main([str(saved / "model.keras"), str(tmp_path / "wrong.npz")]) == 2
    err = capsys.readouterr().err
    assert "input 'x' has shape (8, 4, 5), the model expects (None, 5, 4)" in err
    np.savez(tmp_path / "keys.npz", images=np.ones((8, 5, 4), "float32"))
    assert main([str(saved / "model.keras"), str(tmp_path / "keys.npz")]) == 2
    assert "Unexpected keys in the inputs file" in capsys.readouterr().err
    (tmp_path / "text.npz").write_text("not a zip")
    assert main([str(saved / "model.keras"), str(tmp_path / "text.npz")]) == 2
    assert "is not an `.npz` file" in capsys.readouterr().err
    (tmp_path / "text.keras").write_text("not a zip")
    assert main([str(tmp_path / "text.keras"), str(saved / "inputs.npz")]) == 2
    assert "is not a `.keras` file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="keys \\['y'\\]"):
        compare_backends(saved / "model.keras", {"y": _inputs()})


def test_cli_without_arguments_exits_2(capsys):
    assert main([]) == 2
    assert "the following arguments are required" in capsys.readouterr().err


# --- the installed commands ----------------------------------------------------


def _command(command):
    """Runs an installed command as a user would, its Keras on JAX (the
    quickest backend to import; neither check needs a particular one)."""
    return subprocess.run(
        command,
        env=dict(
            os.environ, KERAS_BACKEND=quickest_backend(), TF_CPP_MIN_LOG_LEVEL="3"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_python_m_keras_reg_testing_prints_every_option():
    done = _command([sys.executable, "-m", "keras_reg.testing", "--help"])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for option in (
        "--backends",
        "--modes",
        "--atol",
        "--rtol",
        "--import",
        "--json",
        "--save-outputs",
        "--reference",
        "--no-layers",
        "--timeout",
        "--jobs",
    ):
        assert option in out, option


def test_the_console_script_exits_2_on_a_missing_file(tmp_path):
    script = shutil.which("keras-reg-check", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip(
            "the keras-reg-check console script is not installed next to "
            f"{sys.executable} (reinstall the package: pip install -e .)"
        )
    done = _command([script, str(tmp_path / "none.keras"), str(tmp_path / "none.npz")])
    assert done.returncode == 2, done.stderr
    assert "No such model file" in done.stderr


# --- which layers are named non-portable ---------------------------------------


def test_exactly_keras_random_layers_are_named_with_their_replacement():
    from keras_reg.testing._portable import non_portable

    class MyDropout(keras.layers.Dropout):
        pass

    x = keras.Input((6, 5, 4))
    y = keras.layers.SpatialDropout2D(0.2, name="spatial")(x)
    y = keras.layers.GaussianNoise(0.1, name="noise")(y)
    y = keras.layers.GaussianDropout(0.1, name="gaussian_drop")(y)
    y = keras.layers.AlphaDropout(0.1, name="alpha_drop")(y)
    y = keras.layers.RandomFlip(name="flip")(y)
    y = MyDropout(0.5, name="subclass")(y)
    y = keras.layers.Reshape((6, 20))(y)
    y = keras.layers.LSTM(3, dropout=0.1, name="keras_lstm")(y)
    y = keras.layers.Dropout(0.5, name="drop")(y)
    y = layers.InvertedDropout(0.5, name="portable")(y)
    model = keras.Model(x, y)
    assert non_portable(model) == [
        {
            "layer": "spatial",
            "class": "SpatialDropout2D",
            "suggestion": "InvertedDropout(shared_axes=[1, 2])",
        },
        {"layer": "noise", "class": "GaussianNoise", "suggestion": "GaussianNoise"},
        {
            "layer": "gaussian_drop",
            "class": "GaussianDropout",
            "suggestion": "GaussianDropout",
        },
        {"layer": "alpha_drop", "class": "AlphaDropout", "suggestion": "AlphaDropout"},
        {"layer": "flip", "class": "RandomFlip", "suggestion": "none"},
        {"layer": "keras_lstm", "class": "LSTM", "suggestion": "VariationalLSTM"},
        {"layer": "drop", "class": "Dropout", "suggestion": "InvertedDropout"},
    ]


def test_applications_stochastic_depth_is_named_with_drop_path():
    from keras_reg.testing._portable import non_portable

    # ConvNeXt's StochasticDepth is not exported; reach it through the
    # module that defines ConvNeXtTiny.
    home = sys.modules[keras.applications.convnext.ConvNeXtTiny.__module__]
    x = keras.Input((4,))
    y = x + home.StochasticDepth(0.3, name="sd")(keras.layers.Dense(4)(x))
    assert non_portable(keras.Model(x, y)) == [
        {"layer": "sd", "class": "StochasticDepth", "suggestion": "DropPath"}
    ]


def test_keras_reg_layers_are_named_in_native_mode(native_rng):
    from keras_reg.testing._portable import non_portable

    x = keras.Input((4,))
    model = keras.Model(x, layers.InvertedDropout(0.5, name="inverted")(x))
    assert non_portable(model) == [
        {
            "layer": "inverted",
            "class": "InvertedDropout",
            "suggestion": 'InvertedDropout with keras_reg.config.set_rng("portable")',
        }
    ]


def test_the_contract_signatures():
    import inspect

    import keras_reg.testing

    assert keras_reg.testing.__all__ == sorted(keras_reg.testing.__all__)
    parameters = inspect.signature(compare_backends).parameters
    assert {name: p.default for name, p in parameters.items()} == {
        "model": inspect.Parameter.empty,
        "inputs": inspect.Parameter.empty,
        "backends": None,
        "modes": ("inference", "training"),
        "layers": True,
        "atol": None,
        "rtol": None,
        "imports": (),
        "reference": None,
        "timeout": None,
        "jobs": None,
    }
    assert list(inspect.signature(assert_same_on_backends).parameters) == [
        "model",
        "inputs",
        "kwargs",
    ]


def test_a_backends_error_is_its_exception_not_jaxs_closing_note():
    from keras_reg.testing._runner import _last_line

    log = """Traceback (most recent call last):
  File "worker.py", line 1, in <module>
TypeError: Subclassed.call() got an unexpected keyword argument 'training'
--------------------
For simplicity, JAX has removed its internal frames from the traceback of the \
following exception. Set JAX_TRACEBACK_FILTERING=off to include these.
"""
    message = "TypeError: Subclassed.call() got an unexpected keyword argument"
    assert _last_line(log) == f"{message} 'training'"
    assert _last_line("ValueError: bad\n") == "ValueError: bad"
    assert _last_line("") == ""
