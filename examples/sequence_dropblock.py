"""A small 1-D CNN on scikit-learn's digits read as sequences, without and
with `DropBlock1D`.

Each 8x8 digit is read row by row as a 64-step signal with one channel
(a scan line), the way a 1-D CNN reads audio or a sensor trace. Baseline:
Conv1D-ReLU blocks, pooling, a dense head. Regularized: the same,
with `DropBlock1D` (contiguous runs of steps dropped, exact drop rate)
after the late convolutions and `InvertedDropout` in the head. Both train
on 300 sequences and are validated on the other 1,497.

    python examples/sequence_dropblock.py --epochs 40
    KERAS_BACKEND=torch python examples/sequence_dropblock.py --shared-channels
"""

import argparse
import os
import sys

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
from examples._common import markdown_table, train_classifier  # noqa: E402

STEPS = 64


def load_sequences(train_size=300, seed=0):
    """Digits as `(n, 64, 1)` scan-line sequences in [0, 1], and labels."""
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32").reshape(-1, STEPS, 1)
    y = digits.target.astype("int32")
    return train_test_split(x, y, train_size=train_size, random_state=seed, stratify=y)


def build_model(block_rate=0.0, head_rate=0.0, shared_channels=False, seed=0):
    """Two early and two late Conv1D blocks; DropBlock1D (blocks of 5 steps,
    under one image row) after each late block when `block_rate > 0`."""
    regularized = block_rate > 0 or head_rate > 0
    inputs = keras.Input((STEPS, 1), name="scanline")
    x = inputs
    for filters in (32, 32):
        x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2)(x)  # 32 steps
    for i, filters in enumerate((64, 64)):
        x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu")(x)
        if block_rate > 0:
            x = keras_reg.layers.DropBlock1D(
                block_rate,
                block_size=5,
                shared_channels=shared_channels,
                seed=seed + i,
            )(x)
    x = keras.layers.MaxPooling1D(2)(x)  # 16 steps
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    if head_rate > 0:
        x = keras_reg.layers.InvertedDropout(head_rate, seed=seed + 2)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    name = "cnn1d_dropblock" if regularized else "cnn1d_baseline"
    return keras.Model(inputs, outputs, name=name)


def train(model, data, epochs, progress=True):
    return train_classifier(model, data, epochs, 2e-3, progress)


def run(epochs=40, train_size=300, shared_channels=False, progress=True):
    data = load_sequences(train_size)
    results = []
    for kwargs in ({}, {"block_rate": 0.15, "head_rate": 0.3}):
        keras.utils.set_random_seed(0)
        model = build_model(shared_channels=shared_channels, **kwargs)
        results.append(train(model, data, epochs, progress))
    return results


def format_table(results):
    return markdown_table(
        ["model", "train acc", "val acc", "train loss", "val loss"],
        [
            [
                r["model"],
                f"{r['train_acc']:.3f}",
                f"{r['val_acc']:.3f}",
                f"{r['train_loss']:.3f}",
                f"{r['val_loss']:.3f}",
            ]
            for r in results
        ],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--shared-channels",
        action="store_true",
        help="one block pattern per sequence for all channels",
    )
    args = parser.parse_args(argv)
    results = run(args.epochs, shared_channels=args.shared_channels)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
