"""Packaging facts: the exported names and the changelog's version."""

import importlib
import inspect
import pathlib
import re
import subprocess
import sys

import keras

import keras_reg
import keras_reg.layers

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_layers_all_is_sorted_and_complete():
    names = keras_reg.layers.__all__
    assert names == sorted(names)
    public = {
        name
        for name, value in vars(keras_reg.layers).items()
        if (isinstance(value, type) or inspect.isfunction(value))
        and not name.startswith("_")
    }
    assert public == set(names)


def test_every_public_layer_is_registered_under_keras_reg():
    for name in keras_reg.layers.__all__:
        cls = getattr(keras_reg.layers, name)
        if not isinstance(cls, type):
            continue  # drop_path_rates
        assert keras.saving.get_registered_name(cls) == f"keras_reg>{name}"
        assert keras.saving.get_registered_object(f"keras_reg>{name}") is cls


def test_changelog_top_release_is_the_package_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.M)
    assert released and released[0] == keras_reg.__version__


def test_version_is_declared_once():
    assert re.fullmatch(r"\d+\.\d+\.\d+", keras_reg.__version__)
    assert (
        "version ="
        not in (ROOT / "pyproject.toml").read_text().split("[project]")[1].split("[")[0]
    )


def test_the_api_contract_names_and_signatures():
    assert list(inspect.signature(keras_reg.inference.mc_predict).parameters)[:6] == [
        "model",
        "x",
        "samples",
        "batch_size",
        "seed",
        "return_samples",
    ]
    assert callable(keras_reg.inference.mc_dropout)
    assert list(inspect.signature(keras_reg.callbacks.DropoutScheduler).parameters) == [
        "schedule",
        "layers",
        "verbose",
        "per_step",
    ]
    wrapper = inspect.signature(keras_reg.layers.LayerNormWrapper).parameters
    assert list(wrapper)[:4] == ["cell", "epsilon", "center", "scale"]
    assert wrapper["epsilon"].default == 1e-3
    assert callable(keras_reg.config.set_rng) and callable(keras_reg.config.rng)


def _defaults(fn):
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_the_0_2_api_names_and_signatures():
    # API.md, "Added in 0.2", and the inference and callbacks additions.
    layers, empty = keras_reg.layers, inspect.Parameter.empty
    for name in ("DropBlock1D", "DropBlock2D", "DropBlock3D"):
        assert _defaults(getattr(layers, name)) == {
            "rate": empty,
            "block_size": empty,
            "shared_channels": False,
            "data_format": None,
            "seed": None,
        }
    assert _defaults(layers.DropPath) == {"rate": empty, "mode": "sample", "seed": None}
    assert _defaults(layers.StochasticDepth) == {
        "survival_probability": 0.5,
        "seed": None,
    }
    assert _defaults(layers.ConcreteDropout) == {
        "layer": empty,
        "weight_regularizer": 1e-6,
        "dropout_regularizer": 1e-5,
        "init_min": 0.1,
        "init_max": 0.1,
        "temperature": 0.1,
        "seed": None,
    }
    assert list(_defaults(layers.drop_path_rates)) == ["rate", "depths"]
    assert list(_defaults(keras_reg.callbacks.late_dropout)) == ["rate", "start"]
    assert _defaults(keras_reg.inference.mc_dropout) == {"model": None}
    assert _defaults(keras_reg.callbacks.DropoutScheduler)["per_step"] is False


def test_the_0_4_api_names_and_signatures():
    # API.md, "Added in 0.4": spelled as the contract spells them.
    empty = inspect.Parameter.empty
    assert _defaults(keras_reg.models.portable) == {
        "model": empty,
        "strict": False,
        "verbose": 0,
    }
    assert _defaults(keras_reg.models.regularize) == {
        "model": empty,
        "dropout": None,
        "drop_path": None,
        "dropblock": None,
        "recurrent": None,
        "seed": None,
        "verbose": 0,
    }
    assert _defaults(keras_reg.layers.GaussianNoise) == {"stddev": empty, "seed": None}
    assert _defaults(keras_reg.layers.GaussianDropout) == {"rate": empty, "seed": None}
    assert _defaults(keras_reg.layers.AlphaDropout) == {
        "rate": empty,
        "noise_shape": None,
        "seed": None,
    }
    assert _defaults(keras_reg.inference.uncertainty) == {"samples": empty}
    assert _defaults(keras_reg.inference.acquire) == {
        "model": empty,
        "pool": empty,
        "count": empty,
        "method": "bald",
        "samples": 20,
        "seed": None,
        "batch_size": None,
    }
    assert _defaults(keras_reg.inference.mc_predict)["consistent"] is False
    ece = _defaults(keras_reg.metrics.ExpectedCalibrationError)
    assert list(ece)[:2] == ["num_bins", "name"]
    assert (ece["num_bins"], ece["name"]) == (15, "ece")
    testing = importlib.import_module("keras_reg.testing")
    compare = _defaults(testing.compare_backends)
    assert compare["timeout"] is None and compare["jobs"] is None


def _declared_keras_floor():
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"keras>=(\d+\.\d+)"', text).group(1)


def test_the_docs_state_the_keras_range_that_pyproject_declares():
    floor = _declared_keras_floor()
    index = (ROOT / "docs" / "index.md").read_text()
    assert f"Keras {floor} or later" in index, floor


def test_make_test_oldest_installs_the_declared_keras_floor():
    pin = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "oldest_keras.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert pin == f"keras=={_declared_keras_floor()}.0"
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/oldest_keras.py" in makefile
