"""`keras_reg.testing`: the backend-switch checker and its command line.

Every `compare_backends` call starts one subprocess per backend itself, so
this file runs in the torch run of the suite only, and its subprocess runs
are shared through module-scoped fixtures.
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
from tests.checker_layers import OffOnJax, Subclassed

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


def _model():
    """Three branches on one input: keras_reg layers (in a nested
    sequential model), a custom layer that computes differently on JAX, and
    Keras' own `Dropout`."""
    x = keras.Input((5, 4), name="x")
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
            ),
            layers.TimeSharedDropout(0.3, seed=4, name="time_shared"),
        ],
        name="nested",
    )
    a = nested(x)
    a = layers.DropPath(0.3, seed=5, name="drop_path")(
        keras.layers.Dense(6, name="a_dense")(a)
    )
    a = keras.layers.GlobalAveragePooling1D(name="a_pool")(a)
    a = layers.InvertedDropout(0.2, seed=6, name="a_drop")(a)
    a = keras.layers.Dense(2, name="portable")(a)
    b = keras.layers.Flatten(name="b_flat")(x)
    b = keras.layers.Dense(3, name="b_dense")(b)
    b = OffOnJax(name="off_on_jax")(b)
    b = keras.layers.Dense(2, name="custom")(b)
    c = keras.layers.Flatten(name="c_flat")(x)
    c = keras.layers.Dense(4, name="c_dense")(c)
    c = keras.layers.Dropout(0.5, seed=7, name="keras_dropout")(c)
    c = keras.layers.Dense(2, name="keras")(c)
    return keras.Model(x, [a, b, c])


def _inputs():
    return np.random.default_rng(0).normal(size=(8, 5, 4)).astype("float32")


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
    np.savez(directory / "inputs.npz", x=_inputs())
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
    "nested",
    "nested/lstm",
    "nested/time_shared",
    "a_dense",
    "drop_path",
    "a_pool",
    "a_drop",
    "portable",
)


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


@pytest.mark.slow
def test_keras_reg_layers_agree_on_every_backend_in_all_three_modes(everywhere):
    checked = 0
    for c in everywhere.to_dict()["comparisons"]:
        portable = c["name"] in PORTABLE_LAYERS or (
            c["kind"] == "gradient"
            and c["name"].split("/")[0] in ("nested", "lstm", "a_dense", "portable")
        )
        if portable:
            assert c["passed"], c
            assert c["max_abs"] < 1e-4, c
            checked += 1
    assert checked >= 2 * (2 * len(PORTABLE_LAYERS) + 4)


@pytest.mark.slow
def test_keras_dropout_passes_inference_fails_training_and_is_flagged(everywhere):
    for backend in ("torch", "jax"):
        (inference,) = _of(
            everywhere, backend=backend, mode="inference", kind="output", name="keras"
        )
        assert inference["passed"], inference
        (training,) = _of(
            everywhere, backend=backend, mode="training", name="keras_dropout"
        )
        assert not training["passed"], training
    assert everywhere.non_portable == [
        {"layer": "keras_dropout", "class": "Dropout", "suggestion": "InvertedDropout"}
    ]
    assert "non-portable: 'keras_dropout' (Dropout)" in str(everywhere)
    assert "InvertedDropout" in str(everywhere)
    assert not everywhere.passed


@pytest.mark.slow
def test_a_custom_layer_that_differs_on_one_backend_is_the_first_divergence(
    everywhere,
):
    # Inference comes first; torch agrees with TensorFlow there, JAX adds
    # 0.1 in `off_on_jax`, whose inputs still agree.
    assert everywhere.first_divergence == {
        "mode": "inference",
        "backend": "jax",
        "layer": "off_on_jax",
    }
    (torch_off,) = _of(everywhere, backend="torch", mode="inference", name="off_on_jax")
    (jax_off,) = _of(everywhere, backend="jax", mode="inference", name="off_on_jax")
    (jax_before,) = _of(everywhere, backend="jax", mode="inference", name="b_dense")
    assert torch_off["passed"] and jax_before["passed"]
    assert not jax_off["passed"]
    assert jax_off["max_abs"] == pytest.approx(0.1, rel=1e-3)
    assert "first divergence: layer 'off_on_jax' (inference, jax" in str(everywhere)


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
    ]
    keys = ["mode", "backend", "kind", "name", "max_abs", "max_rel", "mean_abs"]
    for c in data["comparisons"]:
        assert list(c) == [*keys, "passed"]
        assert c["kind"] in ("output", "layer", "loss", "gradient")
        assert all(np.isfinite(c[k]) for k in keys[4:])
    # Keras' Dropout zeroes different units: |b| == 0 where a != 0.
    assert max(c["max_rel"] for c in data["comparisons"]) > 1e300


@pytest.mark.slow
def test_the_table_has_a_row_per_backend_and_mode(everywhere):
    table = everywhere.table().splitlines()
    rows = [line.split() for line in table[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        (b, m) for b in ALL for m in ("inference", "training", "gradients")
    ]
    assert [r[-1] for r in rows] == ["reference"] * 3 + ["PASS", "FAIL", "FAIL"] + [
        "FAIL"
    ] * 3


def test_statistics_match_a_numpy_reference():
    from keras_reg.testing._report import TINY, statistics

    rng = np.random.default_rng(2)
    b = rng.normal(size=(50,))
    a = b + rng.normal(size=(50,)) * 1e-3
    b[3] = 0.0
    got = statistics(a, b, atol=1e-3, rtol=1e-2)
    diff = np.abs(a - b)
    assert got["max_abs"] == pytest.approx(diff.max())
    assert got["mean_abs"] == pytest.approx(diff.mean())
    assert got["max_rel"] == pytest.approx((diff / np.maximum(np.abs(b), TINY)).max())
    assert got["passed"] == bool(np.all(diff <= 1e-3 + 1e-2 * np.abs(b)))
    same = statistics(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 0, 0)
    assert same["passed"] and same["max_abs"] == 0.0
    nan = statistics(np.array([np.nan]), np.array([1.0]), 1.0, 1.0)
    assert not nan["passed"] and np.isfinite(nan["max_abs"])


@pytest.mark.slow
def test_a_reference_folder_round_trips_and_the_cli_exits_0_then_1(
    everywhere, saved, tmp_path, capsys
):
    folder = tmp_path / "recorded-on-tensorflow"
    everywhere.save_outputs(folder)
    meta = json.loads((folder / "outputs.json").read_text())
    assert meta["backend"] == "tensorflow"
    args = [str(saved / "model.keras"), str(saved / "inputs.npz")]
    args += ["--backends", "torch", "--import", IMPORTS[0]]
    args += ["--reference", str(folder), "--json", str(tmp_path / "r.json")]
    assert main([*args, "--modes", "inference"]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] and data["reference"] == str(folder)
    assert data["backends"] == ["torch"]
    assert {c["backend"] for c in data["comparisons"]} == {"torch"}
    out, err = capsys.readouterr()
    assert "PASSED" in out and "torch: started" in err and "torch: done" in err
    # Training mode: Keras' Dropout draws another mask on torch.
    assert main([*args, "--modes", "inference,training"]) == 1
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["first_divergence"] == {
        "mode": "training",
        "backend": "torch",
        "layer": "keras_dropout",
    }


@pytest.mark.slow
def test_a_backend_that_cannot_load_the_model_is_an_error_not_a_crash(
    saved, tmp_path, monkeypatch
):
    # Without `imports`, the custom layer is unknown on load.
    with pytest.raises(AssertionError) as raised:
        assert_same_on_backends(
            saved / "model.keras",
            _inputs(),
            backends=["torch"],
            modes=["inference"],
        )
    message = str(raised.value)
    assert "torch" in message and "ERROR" in message
    assert "error: torch:" in message and "OffOnJax" in message
    # A timeout stops the subprocess; the command line exits 2.
    monkeypatch.setenv("KERAS_REG_CHECK_TIMEOUT", "0.5")
    args = [str(saved / "model.keras"), str(saved / "inputs.npz"), "--backends"]
    assert main([*args, "jax", "--json", str(tmp_path / "r.json")]) == 2
    data = json.loads((tmp_path / "r.json").read_text())
    assert not data["passed"]
    assert data["errors"] == [
        {"backend": "jax", "message": "timed out after 0 s (stopped)"}
    ]


@pytest.mark.slow
def test_a_subclassed_model_is_compared_by_its_outputs_and_the_report_says_so(
    tmp_path,
):
    model = Subclassed()
    x = np.ones((2, 4), "float32")
    model(x)
    report = assert_same_on_backends(model, x, backends=["torch"], imports=IMPORTS)
    assert isinstance(report, BackendReport)
    assert report.passed and report.comparisons == []
    assert report.reference == "torch"
    assert "subclassed model" in str(report)
    report.save_outputs(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "outputs.json").read_text())
    assert [(e["mode"], e["kind"]) for e in meta["entries"]] == [
        ("inference", "output"),
        ("training", "output"),
    ]


# --- bad input: exit status 2, a message naming the problem ------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backends", "theano"], "argument `backends`"),
        (["--modes", "inference,backprop"], "argument `modes`"),
        (["--atol", "-1"], "argument `atol`"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(saved, capsys, extra, message):
    args = [str(saved / "model.keras"), str(saved / "inputs.npz"), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(saved, tmp_path, capsys):
    assert main([str(tmp_path / "none.keras"), str(saved / "inputs.npz")]) == 2
    assert "No such model file" in capsys.readouterr().err
    assert main([str(saved / "model.keras"), str(tmp_path / "none.npz")]) == 2
    assert "No such inputs file" in capsys.readouterr().err


def test_inputs_that_do_not_fit_the_model_exit_2_naming_both_shapes(
    saved, tmp_path, capsys
):
    np.savez(tmp_path / "wrong.npz", x=np.ones((8, 4, 5), "float32"))
    assert main([str(saved / "model.keras"), str(tmp_path / "wrong.npz")]) == 2
    err = capsys.readouterr().err
    assert "input 'x' has shape (8, 4, 5), the model expects (None, 5, 4)" in err
    np.savez(tmp_path / "keys.npz", images=np.ones((8, 5, 4), "float32"))
    assert main([str(saved / "model.keras"), str(tmp_path / "keys.npz")]) == 2
    assert "Unexpected keys in the inputs file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="keys \\['y'\\]"):
        compare_backends(saved / "model.keras", {"y": _inputs()})


def test_cli_without_arguments_exits_2():
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2


# --- the installed commands ----------------------------------------------------


@pytest.mark.slow
def test_python_m_keras_reg_testing_prints_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "keras_reg.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
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
    ):
        assert option in out, option


def test_the_console_script_exits_2_on_a_missing_file(tmp_path):
    script = shutil.which("keras-reg-check", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip(
            "the keras-reg-check console script is not installed next to "
            f"{sys.executable} (reinstall the package: pip install -e .)"
        )
    done = subprocess.run(
        [script, str(tmp_path / "none.keras"), str(tmp_path / "none.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
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
        {"layer": "noise", "class": "GaussianNoise", "suggestion": "none"},
        {"layer": "flip", "class": "RandomFlip", "suggestion": "none"},
        {"layer": "keras_lstm", "class": "LSTM", "suggestion": "VariationalLSTM"},
        {"layer": "drop", "class": "Dropout", "suggestion": "InvertedDropout"},
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
    }
    assert list(inspect.signature(assert_same_on_backends).parameters) == [
        "model",
        "inputs",
        "kwargs",
    ]
