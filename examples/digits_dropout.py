"""Digits with and without dropout: a small functional MLP on scikit-learn's
8x8 digits, trained on a deliberately small training set (150 images, the
other 1,647 for validation) so that it overfits, once plain and once with
`keras_reg.layers.InvertedDropout`.

    python examples/digits_dropout.py --epochs 80
    KERAS_BACKEND=jax python examples/digits_dropout.py
"""

import argparse
import os
import sys

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402


def load_data(train_size=150, seed=0):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    return train_test_split(x, y, train_size=train_size, random_state=seed, stratify=y)


def build_model(rate, seed=0):
    """A 64-256-256-10 MLP; `rate` > 0 adds InvertedDropout after each
    hidden layer (the seed's advice: dropout in the dense head)."""
    inputs = keras.Input((64,), name="pixels")
    x = inputs
    for i in range(2):
        x = keras.layers.Dense(256, activation="relu", name=f"dense_{i}")(x)
        if rate > 0:
            x = keras_reg.layers.InvertedDropout(
                rate, seed=seed + i, name=f"dropout_{i}"
            )(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="mlp_dropout" if rate else "mlp_plain")


def train(rate, data, epochs, verbose=0):
    x_train, x_val, y_train, y_val = data
    keras.utils.set_random_seed(0)
    model = build_model(rate)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=32,
        verbose=verbose,
    )
    # Both evaluated in inference mode (dropout off).
    train_loss, train_acc = model.evaluate(x_train, y_train, verbose=0)
    val_loss, val_acc = model.evaluate(x_val, y_val, verbose=0)
    return {
        "model": model.name,
        "rate": rate,
        "train_acc": float(train_acc),
        "val_acc": float(val_acc),
        "train_loss": float(train_loss),
        "val_loss": float(val_loss),
        "history": history.history,
    }


def run(epochs=80, rate=0.5, verbose=0):
    data = load_data()
    results = []
    for r in (0.0, rate):
        print(
            f"training {'with' if r else 'without'} dropout ({epochs} epochs)...",
            flush=True,
        )
        results.append(train(r, data, epochs, verbose))
    return results


def format_table(results):
    lines = [
        "| model | dropout | train acc | val acc | train loss | val loss |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['rate']:.1f} | {r['train_acc']:.3f} | "
            f"{r['val_acc']:.3f} | {r['train_loss']:.3f} | {r['val_loss']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    results = run(args.epochs, args.rate, args.verbose)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
