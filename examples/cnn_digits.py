"""A small CNN on scikit-learn's 8x8 digits, without and with the seed's
regularization recipe.

Baseline: Conv-ReLU blocks, a dense head, no regularization. Regularized:
Conv (no bias) -> BatchNormalization -> ReLU, no dropout after the early
convolutions, `DropBlock2D` after the late ones, `InvertedDropout(0.4)` in
the dense head. Both train on 300 images and are validated on the other
1,497; the figure shows the train and validation curves, the table the
train-validation gap.

    python examples/cnn_digits.py --epochs 40
    KERAS_BACKEND=jax python examples/cnn_digits.py
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
    markdown_table,
    pyplot,
    save_figure,
    train_classifier,
)


def load_images(train_size=300, seed=0):
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (n, 8, 8, 1)
    y = digits.target.astype("int32")
    return train_test_split(x, y, train_size=train_size, random_state=seed, stratify=y)


def build_baseline():
    inputs = keras.Input((8, 8, 1), name="image")
    x = inputs
    for filters in (32, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    for filters in (64, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="cnn_baseline")


def _conv_bn_relu(x, filters):
    # No bias before BatchNormalization: its offset does that job.
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    # momentum 0.9: the moving statistics must settle within a few hundred
    # steps of a small dataset (Keras' 0.99 lags behind for this long).
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.layers.ReLU()(x)


def build_regularized(block_rate=0.1, head_rate=0.4, seed=0):
    inputs = keras.Input((8, 8, 1), name="image")
    x = inputs
    for filters in (32, 32):  # early convolutions: no dropout
        x = _conv_bn_relu(x, filters)
    x = keras.layers.MaxPooling2D()(x)
    for i, filters in enumerate((64, 64)):  # late convolutions: DropBlock
        x = _conv_bn_relu(x, filters)
        x = keras_reg.layers.DropBlock2D(block_rate, block_size=2, seed=seed + i)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras_reg.layers.InvertedDropout(head_rate, seed=seed + 2)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="cnn_regularized")


def train(model, data, epochs, progress=True):
    result = train_classifier(model, data, epochs, 1e-3, progress)
    result["acc_gap"] = result["train_acc"] - result["val_acc"]
    result["loss_gap"] = result["val_loss"] - result["train_loss"]
    return result


def run(epochs=40, train_size=300, progress=True):
    data = load_images(train_size)
    results = []
    for build in (build_baseline, build_regularized):
        keras.utils.set_random_seed(0)
        results.append(train(build(), data, epochs, progress))
    return results


def format_table(results):
    return markdown_table(
        ["model", "train acc", "val acc", "acc gap", "train loss", "val loss"],
        [
            [
                r["model"],
                f"{r['train_acc']:.3f}",
                f"{r['val_acc']:.3f}",
                f"{r['acc_gap']:.3f}",
                f"{r['train_loss']:.3f}",
                f"{r['val_loss']:.3f}",
            ]
            for r in results
        ],
    )


# What differs between the two models, not only the regularizers: the
# recipe also adds BatchNormalization and drops the convolutions' bias.
LEGEND = {
    "cnn_baseline": "baseline: Conv+bias, ReLU; no BatchNorm, no dropout",
    "cnn_regularized": "Conv (no bias), BatchNorm, ReLU; DropBlock2D(0.1), "
    "InvertedDropout(0.4)",
}


def plot(results, output_dir):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"cnn_baseline": "tab:red", "cnn_regularized": "tab:blue"}
    for r in results:
        history, color = r["history"], colors[r["model"]]
        name = LEGEND.get(r["model"], r["model"])
        epochs = np.arange(1, len(history["loss"]) + 1)
        for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
            ax.plot(epochs, history[key], "--", color=color, label=f"{name}, train")
            ax.plot(epochs, history[f"val_{key}"], color=color, label=f"{name}, val")
    for ax, label in zip(axes, ("cross-entropy loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=2, loc="lower center")
    fig.subplots_adjust(bottom=0.3)
    fig.suptitle(
        f"8x8 digits CNN, 300 training images ({keras.backend.backend()}); "
        "train curves measured with dropout active"
    )
    return save_figure(fig, "cnn_digits_curves.png", output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--output-dir", default="demo_output")
    args = parser.parse_args(argv)
    results = run(args.epochs)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(results))
    print("figure:", plot(results, args.output_dir))
    return results


if __name__ == "__main__":
    main()
