"""Monte Carlo dropout uncertainty on scikit-learn's digits, against two
baselines, on the shifts where it helps and where it does not.

An MLP with `InvertedDropout` and BatchNormalization trains on the digits
0 to 7 only (1,000 images less the 8s and 9s among them). Three scores
rank each input as "not a clean digit of a known class":

- softmax: 1 - the largest class probability of the model itself
  (inference mode, one pass);
- MC dropout: the predictive standard deviation of the predicted class,
  over 30 dropout samples of `keras_reg.inference.mc_predict`
  (BatchNormalization stays in inference mode);
- deep ensemble: the standard deviation of the predicted class over five
  copies of the model made with `keras.models.clone_model`, each
  initialized and trained on its own, predicting in inference mode;
- MC mutual information and MC predictive entropy: the epistemic part
  (BALD's score) and the total of `keras_reg.inference.uncertainty` over
  the same 30 dropout samples.

The held-out clean digits 0 to 7 are the negatives; each shift gives the
positives: the digits 8 and 9 (classes the model never saw), uniform noise
images, and the clean digits rotated by 90 degrees. The AUROC says how well
a score separates them (0.5: not at all, 1: perfectly).

Calibration on the clean digits: the expected calibration error
(`keras_reg.metrics.ExpectedCalibrationError`, 10 bins) of the softmax, of
the MC dropout mean and of the ensemble mean, and their reliability
diagrams (accuracy against confidence, bin by bin).

    python examples/uncertainty.py --epochs 40 --samples 50
"""

import argparse
import os
import sys

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from examples._common import (  # noqa: E402
    deterministic,
    fit_progress,
    markdown_table,
    pyplot,
    save_figure,
)
from keras_reg._acquisition import uncertainty  # noqa: E402
from keras_reg.metrics import ExpectedCalibrationError  # noqa: E402

KNOWN_CLASSES = 8  # the model learns the digits 0 to 7
ENSEMBLE = 5
METHODS = ("softmax", "MC dropout", "deep ensemble")
# The scores of the AUROC table: the three methods, then what else the MC
# dropout samples give.
MC_INFORMATION = "MC mutual information"
MC_ENTROPY = "MC predictive entropy"
SCORES = (*METHODS, MC_INFORMATION, MC_ENTROPY)
# The predictions whose calibration is measured on the clean digits.
CALIBRATED = METHODS
BINS = 10
SHIFTS = ("digits 8, 9 (unseen classes)", "noise", "rotated 90°")


def load_sets(train_size=1000, seed=0):
    """The training digits 0-7, and the held-out inputs by set: clean 0-7
    and the three shifts."""
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype("int32"),
        train_size=train_size,
        random_state=seed,
        stratify=digits.target,
    )
    known_train = y_train < KNOWN_CLASSES
    known_test = y_test < KNOWN_CLASSES
    clean = x_test[known_test]
    rng = np.random.default_rng(seed)
    sets = {
        "clean": clean,
        SHIFTS[0]: x_test[~known_test],
        SHIFTS[1]: rng.uniform(0, 1, size=clean.shape).astype("float32"),
        SHIFTS[2]: np.rot90(clean, k=1, axes=(1, 2)),
    }
    flat = {name: x.reshape(len(x), 64) for name, x in sets.items()}
    return (
        x_train[known_train].reshape(-1, 64),
        y_train[known_train],
        flat,
        y_test[known_test],
    )


def build_model(rate=0.3, seed=0):
    inputs = keras.Input((64,), name="pixels")
    x = inputs
    for i in range(2):
        x = keras.layers.Dense(256, use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras_reg.layers.InvertedDropout(rate, seed=seed + i)(x)
    outputs = keras.layers.Dense(KNOWN_CLASSES, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="mlp_mc_dropout")


def auroc(negative, positive):
    """P(score of a positive > score of a negative), ties counted half."""
    scores = np.concatenate([negative, positive])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_neg, n_pos = len(negative), len(positive)
    return (ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2) / (n_neg * n_pos)


def roc_curve(negative, positive):
    """False and true positive rates at every threshold, from (0, 0) to
    (1, 1)."""
    thresholds = np.unique(np.concatenate([negative, positive]))[::-1]
    fpr = [0.0] + [float((negative >= t).mean()) for t in thresholds]
    tpr = [0.0] + [float((positive >= t).mean()) for t in thresholds]
    return np.array(fpr), np.array(tpr)


def _fit(model, x, y, epochs, progress):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    verbose, callbacks = fit_progress(f"{model.name}:", epochs, progress)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=verbose, callbacks=callbacks)


def _predicted_class_std(samples):
    """(samples, n, classes) -> the std over samples of the class with the
    highest mean probability, and that mean's argmax."""
    mean = samples.mean(0)
    predicted = mean.argmax(-1)
    rows = np.arange(mean.shape[0])
    return samples[:, rows, predicted].std(0), predicted


def run(epochs=40, samples=30, progress=True, ensemble=ENSEMBLE):
    x_train, y_train, sets, y_clean = load_sets()
    keras.utils.set_random_seed(0)
    model = build_model()
    _fit(model, x_train, y_train, epochs, progress)
    members = []
    for i in range(ensemble):
        # A fresh copy: new initial weights, its own dropout masks.
        member = keras.models.clone_model(model)
        member.name = f"ensemble_member_{i}"
        _fit(member, x_train, y_train, epochs, progress)
        members.append(member)

    scores = {method: {} for method in SCORES}
    results = []
    calibration = {}
    for name, x in sets.items():
        probs = np.asarray(model.predict(x, verbose=0))
        scores["softmax"][name] = 1.0 - probs.max(-1)
        mean, std, stack = keras_reg.inference.mc_predict(
            model, x, samples=samples, seed=0, return_samples=True
        )
        mc_predicted = mean.argmax(-1)
        scores["MC dropout"][name] = std[np.arange(len(x)), mc_predicted]
        split = uncertainty(stack)
        scores[MC_INFORMATION][name] = split["mutual_information"]
        scores[MC_ENTROPY][name] = split["predictive_entropy"]
        stacked = np.stack([np.asarray(m.predict(x, verbose=0)) for m in members])
        scores["deep ensemble"][name], ens_predicted = _predicted_class_std(stacked)
        if name == "clean":
            for method, p in (
                ("softmax", probs),
                ("MC dropout", mean),
                ("deep ensemble", stacked.mean(0)),
            ):
                calibration[method] = _calibration(y_clean, p)
        accuracy = {}
        if name == "clean":
            accuracy = {
                "softmax": float((probs.argmax(-1) == y_clean).mean()),
                "MC dropout": float((mc_predicted == y_clean).mean()),
                "deep ensemble": float((ens_predicted == y_clean).mean()),
            }
        results.append(
            {
                "set": name,
                "n": len(x),
                "mean_confidence": float(probs.max(-1).mean()),
                "mean_mc_std": float(scores["MC dropout"][name].mean()),
                "accuracy": accuracy,
            }
        )
    aurocs = {
        method: {
            shift: float(auroc(scores[method]["clean"], scores[method][shift]))
            for shift in SHIFTS
        }
        for method in SCORES
    }
    return {
        "results": results,
        "scores": scores,
        "aurocs": aurocs,
        "samples": samples,
        "ensemble": ensemble,
        "calibration": calibration,
    }


def _calibration(labels, probs):
    """The ECE of `probs` (the library's metric, BINS bins) and the bins of
    a reliability diagram: per bin, the rows, mean confidence and accuracy
    (NaN where empty)."""
    metric = ExpectedCalibrationError(num_bins=BINS)
    metric.update_state(labels, probs)
    confidence = probs.max(-1).astype("float64")
    correct = probs.argmax(-1) == labels
    index = np.clip(np.ceil(confidence * BINS) - 1, 0, BINS - 1).astype(int)
    counts = np.bincount(index, minlength=BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, confidence, BINS) / counts
        acc = np.bincount(index, correct.astype("float64"), BINS) / counts
    return {
        "ece": float(metric.result()),
        "counts": counts.tolist(),
        "confidence": conf.tolist(),
        "accuracy": acc.tolist(),
    }


def format_table(outcome):
    """One row per set: its size, the model's mean confidence, the mean MC
    predictive std, and per method the AUROC against the clean digits."""
    rows = []
    for r in outcome["results"]:
        shift = r["set"]
        rows.append(
            [
                shift,
                str(r["n"]),
                f"{r['mean_confidence']:.3f}",
                f"{r['mean_mc_std']:.3f}",
                *(
                    "-"
                    if shift == "clean"
                    else f"{outcome['aurocs'][method][shift]:.3f}"
                    for method in SCORES
                ),
            ]
        )
    header = ["inputs", "n", "mean confidence", "mean MC std"]
    header += [f"AUROC, {method}" for method in SCORES]
    accuracy = outcome["results"][0]["accuracy"]
    note = "Accuracy on the clean digits 0-7: " + ", ".join(
        f"{method} {accuracy[method]:.3f}" for method in METHODS
    )
    calibration = outcome.get("calibration", {})
    if calibration:
        note += f". Expected calibration error there ({BINS} bins): " + ", ".join(
            f"{m} {calibration[m]['ece']:.3f}" for m in CALIBRATED
        )
    return markdown_table(header, rows) + "\n\n" + note + "."


COLORS = {
    "softmax": "tab:grey",
    "MC dropout": "tab:blue",
    "deep ensemble": "tab:red",
    MC_INFORMATION: "tab:purple",
    MC_ENTROPY: "tab:cyan",
}


def plot(outcome, output_dir):
    """One panel per shift: each score's ROC curve for telling the shifted
    inputs from the clean digits, the AUROC in the legend."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(SHIFTS), figsize=(13, 4.4), sharey=True)
    scores = outcome["scores"]
    for ax, shift in zip(axes, SHIFTS, strict=True):
        for method in SCORES:
            fpr, tpr = roc_curve(scores[method]["clean"], scores[method][shift])
            ax.plot(
                fpr,
                tpr,
                color=COLORS[method],
                lw=2,
                label=f"{method}: AUROC {outcome['aurocs'][method][shift]:.3f}",
            )
        ax.plot([0, 1], [0, 1], ":", color="black", lw=1, label="chance: 0.5")
        ax.set_title(f"clean 0-7 vs {shift}", fontsize=10)
        ax.set_xlabel("clean digits flagged (false positive rate)")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("shifted inputs flagged (true positive rate)")
    fig.suptitle(
        f"Which inputs a score flags: 1 - softmax confidence, MC dropout std "
        f"({outcome['samples']} samples), std over a {outcome['ensemble']}-model "
        f"deep ensemble ({keras.backend.backend()})",
        fontsize=10,
    )
    return save_figure(fig, "uncertainty_roc.png", output_dir)


def plot_reliability(outcome, output_dir):
    """Reliability diagrams on the clean digits: accuracy against mean
    confidence per bin (bar widths: the bins), the ECE in the title."""
    plt = pyplot()
    calibration = outcome["calibration"]
    fig, axes = plt.subplots(1, len(CALIBRATED), figsize=(12, 4), sharey=True)
    edges = np.linspace(0, 1, BINS + 1)
    for ax, method in zip(axes, CALIBRATED, strict=True):
        c = calibration[method]
        accuracy = np.nan_to_num(np.asarray(c["accuracy"], float))
        ax.bar(
            edges[:-1],
            accuracy,
            width=1 / BINS,
            align="edge",
            color=COLORS[method],
            alpha=0.7,
            edgecolor="black",
            label="accuracy",
        )
        confidence = np.asarray(c["confidence"], float)
        ax.plot(confidence, accuracy, "k.", label="(mean confidence, accuracy)")
        ax.plot([0, 1], [0, 1], ":", color="black", lw=1, label="calibrated")
        ax.set_title(f"{method}: ECE {c['ece']:.3f}", fontsize=10)
        ax.set_xlabel("confidence (largest class probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy in the bin")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"Calibration on the clean digits 0-7 ({BINS} bins; {keras.backend.backend()})",
        fontsize=10,
    )
    return save_figure(fig, "uncertainty_reliability.png", output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--output-dir", default="demo_output")
    args = parser.parse_args(argv)
    deterministic()  # as in `make demo`
    outcome = run(args.epochs, args.samples)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(outcome))
    print("figure:", plot(outcome, args.output_dir))
    print("figure:", plot_reliability(outcome, args.output_dir))
    return outcome


if __name__ == "__main__":
    main()
