"""The examples run (tiny settings), so they cannot rot: the small ones on
every backend, the whole demo once."""

import json
import math

import keras
import numpy as np
import pytest

import keras_reg
from examples import (
    char_lm,
    cnn_digits,
    demo,
    digits_dropout,
    residual_depth,
    sequence_dropblock,
    uncertainty,
)
from tests._quick_demo import quick_demo

# The tests that build or train an example's models without reading their
# initial weights draw them in NumPy (conftest's `numpy_weights`): on JAX
# each of Keras' random initializers compiles a draw per weight shape.
NUMPY_WEIGHTS = pytest.mark.usefixtures("numpy_weights")


def _whole_batches(data):
    """An example's `(x_train, x_val, y_train, y_val)` with the validation
    rows cut to whole batches of 32 (the examples' batch size): a partial
    last batch is another input shape, on JAX another compiled train or
    test step (about 0.5 to 1 CPU s each per model)."""
    x_train, x_val, y_train, y_val = data
    rows = len(x_val) // 32 * 32
    return x_train, x_val[:rows], y_train, y_val[:rows]


@NUMPY_WEIGHTS
def test_digits_example_trains_both_models(monkeypatch):
    # 128 training rows (the example's 150 end in a batch of 22) and whole
    # batches of validation rows: one compiled train and test step per model.
    load_data = digits_dropout.load_data
    monkeypatch.setattr(
        digits_dropout, "load_data", lambda: _whole_batches(load_data(train_size=128))
    )
    results = digits_dropout.run(epochs=2)
    assert [r["rate"] for r in results] == [0.0, 0.5]
    for r in results:
        assert 0.0 <= r["val_acc"] <= 1.0
        assert np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"])
        assert len(r["history"]["loss"]) == 2
    table = digits_dropout.format_table(results)
    assert table.count("\n") == 3  # header, rule, two rows


@NUMPY_WEIGHTS
def test_digits_model_places_dropout_after_hidden_layers():
    model = digits_dropout.build_model(0.5)
    dropouts = [
        layer
        for layer in model.layers
        if isinstance(layer, keras_reg.layers.InvertedDropout)
    ]
    assert [d.rate for d in dropouts] == [0.5, 0.5]
    assert model.output_shape == (None, 10)
    assert not any(
        isinstance(layer, keras_reg.layers.InvertedDropout)
        for layer in digits_dropout.build_model(0.0).layers
    )


@NUMPY_WEIGHTS
def test_cnn_recipe_puts_regularization_where_the_seed_says():
    import keras

    model = cnn_digits.build_regularized()
    kinds = [type(layer).__name__ for layer in model.layers]
    # DropBlock only after the late (post-pooling) convolutions.
    assert kinds.index("DropBlock2D") > kinds.index("MaxPooling2D")
    assert kinds.count("DropBlock2D") == 2
    assert kinds[-2] == "InvertedDropout"
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and not any(conv.use_bias for conv in convs)
    assert model.output_shape == cnn_digits.build_baseline().output_shape == (None, 10)


@NUMPY_WEIGHTS
def test_sequence_example_reads_digits_as_scanlines_and_trains_both_models(
    monkeypatch,
):
    x_train, x_val, y_train, _ = sequence_dropblock.load_sequences()
    assert x_train.shape == (300, 64, 1) and x_val.shape == (1497, 64, 1)
    model = sequence_dropblock.build_model(0.15, 0.3, shared_channels=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    # DropBlock1D only after the late (post-pooling) convolutions.
    assert kinds.count("DropBlock1D") == 2
    assert kinds.index("DropBlock1D") > kinds.index("MaxPooling1D")
    blocks = [x for x in model.layers if type(x).__name__ == "DropBlock1D"]
    assert all(b.shared_channels and b.block_size == 5 for b in blocks)
    baseline = sequence_dropblock.build_model()
    assert "DropBlock1D" not in [type(layer).__name__ for layer in baseline.layers]
    # 96 rows: three whole batches of 32, one compiled train step per model
    # (100 rows compiled a second one for the last 4, and a test step), and
    # whole batches of validation rows (`_whole_batches`).
    load_sequences = sequence_dropblock.load_sequences
    monkeypatch.setattr(
        sequence_dropblock,
        "load_sequences",
        lambda train_size: _whole_batches(load_sequences(train_size)),
    )
    results = sequence_dropblock.run(epochs=1, train_size=96, progress=False)
    assert [r["model"] for r in results] == ["cnn1d_baseline", "cnn1d_dropblock"]
    for r in results:
        assert 0.0 <= r["val_acc"] <= 1.0 and np.isfinite(r["val_loss"])
    assert sequence_dropblock.format_table(results).count("\n") == 3


@NUMPY_WEIGHTS
@pytest.mark.parametrize("style", ["drop_path", "tfa"])
def test_residual_example_follows_the_linear_depth_rule(style):
    model = residual_depth.build_model(0.2, style=style)
    expected = keras_reg.layers.drop_path_rates(0.2, list(residual_depth.DEPTHS))
    expected = [r for stage in expected for r in stage]
    if style == "tfa":
        layers = [
            x for x in model.layers if isinstance(x, keras_reg.layers.StochasticDepth)
        ]
        rates = [1.0 - layer.survival_probability for layer in layers]
    else:
        layers = [x for x in model.layers if isinstance(x, keras_reg.layers.DropPath)]
        # The first block's rate is 0: it gets no DropPath.
        rates = [0.0] + [layer.rate for layer in layers]
    assert rates == pytest.approx(expected)
    assert rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    assert model.output_shape == (None, 10)


@NUMPY_WEIGHTS
def test_residual_example_trains_with_stochastic_depth():
    # One model (the plain one differs only by its rates): a cold XLA
    # compile of each residual network costs about 15 s on JAX. 96 rows:
    # whole batches of 32, one compiled train step (100 rows compiled a
    # second one, and a test step, for the last 4), and whole batches of
    # validation rows (`_whole_batches`).
    data = _whole_batches(residual_depth.load_images(train_size=96))
    result = residual_depth.train(
        residual_depth.build_model(0.2), data, epochs=1, progress=False
    )
    assert result["model"] == "resnet_drop_path"
    assert 0.0 <= result["val_acc"] <= 1.0 and np.isfinite(result["val_loss"])
    assert residual_depth.format_table([result]).count("\n") == 2


def test_char_lm_windows_are_next_character_targets():
    text, vocab = char_lm.load_text(1000)
    assert len(text) == 1000 and len(vocab) > 60
    x, y = char_lm.windows(text, vocab)
    assert x.shape == y.shape == ((1000 - 1) // char_lm.SEQ_LEN, char_lm.SEQ_LEN)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert "".join(vocab[i] for i in x[0]) == text[: char_lm.SEQ_LEN]


def _history(val_bpc, train_bpc):
    nats = math.log(2.0)
    return {
        "val_loss": [v * nats for v in val_bpc],
        "loss": [t * nats for t in train_bpc],
    }


def test_char_lm_curve_facts_find_the_overfitting_point():
    facts = char_lm.curve_facts(_history([4.0, 3.0, 2.5, 2.7, 2.9], [4, 3, 2, 1.5, 1]))
    assert facts["best_epoch"] == 3 and facts["epochs"] == 5
    assert np.isclose(facts["best_val_bpc"], 2.5)
    assert np.isclose(facts["last_val_bpc"], 2.9)
    assert facts["overfit"]
    # Still falling at the end: no overfitting.
    assert not char_lm.curve_facts(_history([4, 3, 2.9], [4, 3, 2]))["overfit"]
    # Validation up but training up too: not the overfitting pattern.
    assert not char_lm.curve_facts(_history([4, 3, 3.2], [4, 3, 3.5]))["overfit"]
    # A rise within the margin is noise.
    flat = char_lm.curve_facts(_history([4, 3, 3.005], [4, 3, 2]))
    assert not flat["overfit"] and flat["best_epoch"] == 2


def _outcome(plain_val, variational_val):
    train = [4.0, 3.0, 2.0, 1.5]
    results = [
        {"model": f"char_{kind}", "kind": kind, "history": _history(val, train)}
        for kind, val in (("lstm", plain_val), ("variational", variational_val))
    ]
    for r in results:
        r.update(char_lm.curve_facts(r["history"]))
    settings = {
        "backend": "jax",
        "seed": 0,
        "train_chars": 100,
        "val_chars": 50,
        "units": 8,
        "epochs": 4,
    }
    return {"results": results, "settings": settings}


def test_char_lm_verdicts_say_whether_the_regularizer_helped_either_way():
    helped = char_lm.verdicts(_outcome([4, 3, 2.8, 3.1], [4, 3.1, 2.7, 2.6]))
    assert any("`char_lstm` overfits" in line for line in helped)
    assert any("0.200 below the plain LSTM's" in line for line in helped)
    assert any("helps here" in line for line in helped)
    hurt = char_lm.verdicts(_outcome([4, 3, 2.8, 3.1], [4, 3.2, 3.0, 2.9]))
    assert any("0.100 above the plain LSTM's" in line for line in hurt)
    assert any("does not help in this run" in line for line in hurt)
    assert not any("helps here" in line for line in hurt)


def test_roc_curve_ends_at_the_corners_and_its_area_is_the_auroc():
    rng = np.random.default_rng(1)
    neg = rng.normal(size=50).round(1)
    pos = rng.normal(1.0, size=40).round(1)
    fpr, tpr = uncertainty.roc_curve(neg, pos)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoids: ties
    assert np.isclose(area, uncertainty.auroc(neg, pos))


@NUMPY_WEIGHTS
def test_uncertainty_sets_hold_out_two_digit_classes():
    x_train, y_train, sets, y_clean = uncertainty.load_sets()
    assert set(np.unique(y_train)) == set(range(uncertainty.KNOWN_CLASSES))
    assert set(np.unique(y_clean)) == set(range(uncertainty.KNOWN_CLASSES))
    assert list(sets) == ["clean", *uncertainty.SHIFTS]
    assert len(sets["clean"]) == len(y_clean) and x_train.shape[1] == 64
    unseen = sets[uncertainty.SHIFTS[0]]
    assert 100 < len(unseen) < 250  # the 8s and 9s of the held-out digits
    assert uncertainty.build_model().output_shape == (None, 8)


def test_progress_is_one_line_per_epoch_when_stdout_is_not_a_terminal(capsys):
    from examples._common import fit_progress

    # pytest captures stdout: not a terminal.
    assert fit_progress("m:", 3) == (2, [])
    assert capsys.readouterr().out == "m:\n"
    assert fit_progress("m:", 3, progress=False) == (0, [])


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    neg = rng.normal(size=40).round(1)
    pos = rng.normal(0.5, size=30).round(1)
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert np.isclose(uncertainty.auroc(neg, pos), pairs)


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the examples are backend-agnostic Keras code over layers tested on "
    "every backend; the quick demo (45 to 55 s on TensorFlow and JAX) runs "
    "once, on torch, and serves tests/test_demo_figures.py too",
)
def test_demo_runs_every_example_and_writes_its_outputs(tmp_path_factory):
    tmp_path, outcome = quick_demo(tmp_path_factory)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "active_learning_demo.png",
        "char_lm_bpc.png",
        "cnn_digits_curves.png",
        "summary.json",
        "summary.md",
        "uncertainty_reliability.png",
        "uncertainty_roc.png",
    ]
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    for model in ("char_lstm", "char_variational", "char_layer_norm", "cnn_baseline"):
        assert model in summary
    values = [row[2] for row in outcome["rows"] if "bits/char" in row[1]]
    assert len(values) == 3 and all(0 < float(v.split()[0]) < 10 for v in values)
    assert all(v.endswith("/2)") for v in values)  # the best epoch, of 2
    verdicts = outcome["lm_verdicts"]
    assert any("char_variational" in line and "plain LSTM" in line for line in verdicts)
    assert "char_lstm" in summary and "best val bits/char" in summary
    assert "| example | metric | value |" in summary
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["backend"] == keras.backend.backend()
    assert record["settings"] == dict(
        demo.SETTINGS["quick"], mc_samples=demo.SHORT["samples"]
    )
    assert {f"{e}: {m}": v for e, m, v in outcome["rows"]} == record["metrics"]
    by_example = {}
    for example, metric, value in outcome["rows"]:
        by_example.setdefault(example.split(" (")[0], []).append((metric, value))
    assert list(by_example) == [
        "cnn_digits",
        "char_lm",
        "uncertainty",
        "regularize_application",
        "active_learning",
    ]
    aurocs = [m for m, _ in by_example["uncertainty"] if m.startswith("AUROC")]
    assert len(aurocs) == len(uncertainty.SHIFTS) * len(uncertainty.SCORES)
    eces = [float(v) for m, v in by_example["uncertainty"] if m.startswith("ECE")]
    assert len(eces) == len(uncertainty.CALIBRATED)
    assert all(0 <= e <= 1 for e in eces)
    application = dict(by_example["regularize_application"])
    assert application["inference unchanged by regularize"] == "yes"
    assert "DropPath" in application["layers inserted by regularize"]
    portable = application["layers portable replaces (the checker names them)"]
    assert portable == "Dropout -> InvertedDropout 1"
    learning = dict(by_example["active_learning"])
    assert list(learning) == [
        f"labels to {level:.0%} test error, {method}"
        for level in (0.10, 0.05)
        for method in ("bald", "random")
    ]
    curves = record["active_learning_curves"]
    assert list(curves) == ["bald", "random"]
    assert curves["bald"]["labels"] == [20, 30]
    assert all(np.isfinite(t) for t in outcome["timings"].values())
