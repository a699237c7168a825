"""Monte Carlo dropout uncertainty on scikit-learn's digits.

An MLP with `InvertedDropout` and BatchNormalization trains on 1,000
digits. `keras_reg.inference.mc_predict` then samples 30 dropout masks per
input (BatchNormalization stays in inference mode) for three sets: held-out
digits, the same digits rotated by 90 degrees, and uniform noise images. The
predictive standard deviation of the predicted class should be low on clean
digits and higher on the inputs the model has never seen the like of; the
histogram shows it, the AUROC says how well it separates clean from rotated.

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
    EpochProgress,
    markdown_table,
    pyplot,
    save_figure,
)


def load_sets(train_size=1000, seed=0):
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        digits.target.astype("int32"),
        train_size=train_size,
        random_state=seed,
        stratify=digits.target,
    )
    rng = np.random.default_rng(seed)
    sets = {
        "clean": x_test,
        "rotated 90°": np.rot90(x_test, k=1, axes=(1, 2)),
        "noise": rng.uniform(0, 1, size=x_test.shape).astype("float32"),
    }
    flat = {name: x.reshape(len(x), 64) for name, x in sets.items()}
    return x_train.reshape(-1, 64), y_train, flat, y_test


def build_model(rate=0.3, seed=0):
    inputs = keras.Input((64,), name="pixels")
    x = inputs
    for i in range(2):
        x = keras.layers.Dense(256, use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras_reg.layers.InvertedDropout(rate, seed=seed + i)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
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


def run(epochs=40, samples=30, progress=True):
    x_train, y_train, sets, y_test = load_sets()
    keras.utils.set_random_seed(0)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [EpochProgress(f"{model.name}:", epochs)] if progress else []
    model.fit(
        x_train, y_train, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks
    )
    stds, results = {}, []
    for name, x in sets.items():
        mean, std = keras_reg.inference.mc_predict(model, x, samples=samples, seed=0)
        predicted = mean.argmax(-1)
        stds[name] = std[np.arange(len(x)), predicted]
        results.append(
            {
                "set": name,
                "mean_std": float(stds[name].mean()),
                "mean_confidence": float(mean.max(-1).mean()),
                "accuracy": float((predicted == y_test).mean())
                if name == "clean"
                else None,
            }
        )
    for r in results:
        r["auroc"] = (
            None if r["set"] == "clean" else float(auroc(stds["clean"], stds[r["set"]]))
        )
    return {"results": results, "stds": stds, "samples": samples}


def format_table(outcome):
    return markdown_table(
        [
            "inputs",
            "mean predictive std",
            "mean confidence",
            "accuracy",
            "AUROC vs clean",
        ],
        [
            [
                r["set"],
                f"{r['mean_std']:.3f}",
                f"{r['mean_confidence']:.3f}",
                "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}",
                "-" if r["auroc"] is None else f"{r['auroc']:.3f}",
            ]
            for r in outcome["results"]
        ],
    )


def plot(outcome, output_dir):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, max(s.max() for s in outcome["stds"].values()) + 1e-6, 30)
    for name, std in outcome["stds"].items():
        ax.hist(std, bins=bins, alpha=0.55, label=f"{name} (n={len(std)})")
    ax.set_xlabel("predictive std of the predicted class (MC dropout)")
    ax.set_ylabel("number of inputs")
    ax.set_title(
        f"MC dropout, {outcome['samples']} samples ({keras.backend.backend()})"
    )
    ax.legend()
    return save_figure(fig, "uncertainty_hist.png", output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--output-dir", default="demo_output")
    args = parser.parse_args(argv)
    outcome = run(args.epochs, args.samples)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(outcome))
    print("figure:", plot(outcome, args.output_dir))
    return outcome


if __name__ == "__main__":
    main()
