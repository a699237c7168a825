"""The demo's figures in the docs are those the demo prints.

`python -m examples.demo` runs deterministically on one machine (one
thread; TensorFlow's op determinism, torch's deterministic algorithms) and
writes `summary.json`. `docs/figures/demo_record.json` is that file from
the run whose figures and numbers the docs show (TensorFlow). Two checks:

- the docs quote the record's values as the demo prints them (three
  decimals; tolerance 0: they are copied, not re-measured);
- the quick demo (`tests/_quick_demo.py`, run once per process and shared
  with `tests/test_examples.py`) runs the uncertainty example at the
  settings of `examples.demo.short_run` (3 epochs, 5 samples, 2 ensemble
  members) and must give the figures recorded in
  `docs/figures/demo_short_record.json` for its backend, within 0.01
  (AUROC and accuracy; on the machine that wrote the record, three runs in
  separate processes gave equal figures on TensorFlow, and torch and JAX
  repeated theirs too; another CPU's floating point may move a rank or
  two). A change of the demo's models, data, seeds or determinism shows
  here first: rerun the demo and update both records and the docs.
"""

import json
import pathlib

import keras
import pytest

from tests._quick_demo import quick_demo

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
RECORD = FIGURES / "demo_record.json"
SHORT_RECORD = FIGURES / "demo_short_record.json"
TOLERANCE = 0.01

pytestmark = pytest.mark.skipif(
    not RECORD.exists(), reason="docs/ is not in this tree (an installed wheel)"
)


def _record():
    return json.loads(RECORD.read_text())


def _doc(name):
    return (ROOT / "docs" / "guides" / name).read_text()


def test_record_is_of_the_demo_as_it_runs_now():
    from examples import active_learning, demo, uncertainty

    record = _record()
    assert record["backend"] == "tensorflow"
    assert record["settings"] == dict(demo.SETTINGS["full"], mc_samples=30)
    metrics = record["metrics"]
    for shift in uncertainty.SHIFTS:
        for method in uncertainty.SCORES:
            assert f"uncertainty: AUROC clean vs {shift}, {method}" in metrics
    eces = [key for key in metrics if key.startswith("uncertainty: ECE")]
    assert len(eces) == len(uncertainty.CALIBRATED)
    application = [key for key in metrics if key.startswith("regularize_application")]
    assert len(application) == 5
    learning = [key for key in metrics if key.startswith("active_learning: ")]
    assert len(learning) == len(active_learning.LEVELS) * 2
    # The record's uncertainty figures are those its rows print.
    figures = record["uncertainty_figures"]
    for key, value in metrics.items():
        if key.startswith("uncertainty: AUROC"):
            assert f"{figures[key.removeprefix('uncertainty: ')]:.3f}" == value, key


def test_mc_dropout_guide_quotes_the_recorded_aurocs():
    from examples import uncertainty

    metrics = _record()["metrics"]
    page = _doc("mc-dropout.md")
    for shift in uncertainty.SHIFTS:
        values = [
            metrics[f"uncertainty: AUROC clean vs {shift}, {method}"]
            for method in uncertainty.METHODS
        ]
        row = f"| {shift} | " + " | ".join(values) + " |"
        assert row in page, row


def test_regularization_guide_quotes_the_recorded_cnn_and_char_lm_figures():
    record = _record()
    metrics = record["metrics"]
    page = _doc("where-regularization-goes.md")
    gap = metrics["cnn_digits: train-val accuracy gap, baseline -> regularized"]
    acc = metrics["cnn_digits: val accuracy, baseline -> regularized"]
    for pair in (gap, acc):
        before, after = pair.split(" -> ")
        assert f"from {before} to {after}" in page, pair
    cells = []
    for model, curve in record["char_lm_val_bpc"].items():
        best = metrics[f"char_lm: {model} best val bits/char (epoch)"]
        value, epoch = best.split()[0], best.split()[1].strip("()").split("/")[0]
        assert float(value) == pytest.approx(min(curve), abs=6e-4)
        row = f"| `{model}` | {value} | {epoch} | {curve[-1]:.3f} |"
        assert row in page, row
        cells.append(f"{value} ({epoch})")
    assert "| TensorFlow | " + " | ".join(cells) + " |" in page


def _metrics(prefix):
    """The record's metrics whose example starts with `prefix`, by metric."""
    return {
        key.split(": ", 1)[1]: value
        for key, value in _record()["metrics"].items()
        if key.startswith(prefix)
    }


def test_active_learning_guide_quotes_the_recorded_scores_and_calibration():
    from examples import uncertainty

    metrics = _metrics("uncertainty: ")
    page = _doc("active-learning.md")
    for shift in uncertainty.SHIFTS:
        values = [
            metrics[f"AUROC clean vs {shift}, {method}"]
            for method in uncertainty.SCORES
        ]
        row = f"| {shift} | " + " | ".join(values) + " |"
        assert row in page, row
    eces = [
        metrics[f"ECE on clean digits 0-7 ({uncertainty.BINS} bins), {method}"]
        for method in uncertainty.CALIBRATED
    ]
    sentence = (
        f"softmax {eces[0]}, MC dropout mean {eces[1]}, deep ensemble mean {eces[2]}"
    )
    assert sentence in " ".join(page.split()), sentence


def test_active_learning_guide_quotes_the_demo_run():
    from examples import active_learning

    metrics = _metrics("active_learning: ")
    page = _doc("active-learning.md")
    for level in active_learning.LEVELS:
        cells = [
            metrics[f"labels to {level:.0%} test error, {method}"]
            for method in ("bald", "random")
        ]
        row = f"| {level:.0%} | " + " | ".join(cells) + " |"
        assert row in page, row


def test_application_guide_quotes_the_recorded_workflow():
    metrics = _metrics("regularize_application (")
    assert len(metrics) == 5
    page = _doc("regularizing-a-model.md")
    for metric, value in metrics.items():
        row = f"| {metric} | {value} |"
        assert row in page, row


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the quick demo runs once, on torch (tests/test_examples.py checks "
    "its outputs); the record holds every backend's figures: "
    "`KERAS_BACKEND=jax python -m examples.demo --short` repeats them",
)
def test_short_demo_run_repeats_its_recorded_figures(tmp_path_factory):
    backend = keras.backend.backend()
    recorded = json.loads(SHORT_RECORD.read_text())[backend]
    folder, _ = quick_demo(tmp_path_factory)
    summary = json.loads((folder / "summary.json").read_text())
    measured = summary["uncertainty_figures"]
    assert measured.keys() == recorded.keys()
    far = {
        key: (measured[key], recorded[key])
        for key in recorded
        if abs(measured[key] - recorded[key]) > TOLERANCE
    }
    assert not far, far
