"""Regularizing a model you did not write: a keras.applications model,
`keras_reg.models.regularize`, a short fine-tuning, MC dropout, and the
backend check before and after `keras_reg.models.portable`.

No weights can be downloaded here, so the application is built with random
weights (`weights=None`); with network access, `weights="imagenet"` is the
one change. The data are scikit-learn's bundled 8x8 digits, upsampled to
32x32 RGB, the smallest input MobileNetV3Small accepts.

    python examples/regularize_application.py
    KERAS_BACKEND=jax python examples/regularize_application.py --no-check
"""

import argparse
import collections
import os
import sys

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_reg  # noqa: E402
import keras_reg.models  # noqa: E402
from examples._common import markdown_table  # noqa: E402
from keras_reg.inference import mc_predict  # noqa: E402
from keras_reg.testing import compare_backends  # noqa: E402

SIZE = 32  # MobileNetV3Small's smallest input


def load_images(train_size=500, seed=0):
    """Digits as `(n, 32, 32, 3)` images in [0, 255], split train/validation."""
    digits = load_digits()
    x = digits.images.astype("float32") * (255.0 / 16.0)
    x = np.repeat(np.repeat(x, SIZE // 8, axis=1), SIZE // 8, axis=2)
    x = np.repeat(x[..., None], 3, axis=-1)
    y = digits.target.astype("int32")
    return train_test_split(x, y, train_size=train_size, random_state=seed, stratify=y)


def load_application(seed=0):
    """MobileNetV3Small with random weights: Keras' own residual blocks,
    hard-swish operations and a `Dropout` before its 1x1-convolution head."""
    keras.utils.set_random_seed(seed)
    return keras.applications.MobileNetV3Small(
        weights=None,  # "imagenet" with network access
        input_shape=(SIZE, SIZE, 3),
        classes=10,
        minimalistic=True,
    )


def changes(before, after):
    """What a rewrite did, by layer name: `{class: count}` of the layers
    `after` has and `before` has not (inserted), and `{"Old -> New":
    count}` of the layers whose class changed (replaced)."""
    classes = {layer.name: type(layer).__name__ for layer in before.layers}
    inserted, replaced = collections.Counter(), collections.Counter()
    for layer in after.layers:
        if isinstance(layer, keras.layers.InputLayer):  # renamed by the clone
            continue
        new = type(layer).__name__
        old = classes.get(layer.name)
        if old is None:
            inserted[new] += 1
        elif old != new:
            replaced[f"{old} -> {new}"] += 1
    return dict(sorted(inserted.items())), dict(sorted(replaced.items()))


def check(model, x, backends=None):
    """The backend check in training and gradients modes."""
    return compare_backends(
        model, x, backends=backends, modes=("training", "gradients"), layers=False
    )


def run(
    epochs=8,
    samples=10,
    train_size=500,
    check_backends=None,
    seed=0,
    verbose=1,
    mc_rows=300,
):
    """The whole workflow; returns a dict of what it measured.

    `check_backends`: the backends of the check (default: every installed
    one); `()` skips it. `mc_rows`: how many validation images
    `mc_predict` scores.
    """
    x_train, x_val, y_train, y_val = load_images(train_size, seed)
    base = load_application(seed)

    # 1. Regularize: DropPath on every residual branch (rates rising with
    # depth), DropBlock in the two smallest resolutions; Keras' Dropout
    # becomes keras_reg's. Weights are copied: inference is unchanged.
    model = keras_reg.models.regularize(
        base, drop_path=0.1, dropblock=(0.05, 2), seed=seed, verbose=verbose
    )
    inserted, replaced = changes(base, model)
    probe = x_val[:8]
    same = np.allclose(
        model.predict(probe, verbose=0), base.predict(probe, verbose=0), atol=1e-6
    )

    # 2. Fine-tune briefly. Random weights only: the BatchNormalization
    # layers' moving statistics start at (0, 1) while a random network's
    # deep activations have variances far below 1, and keras.applications'
    # momentum (0.999) would need thousands of steps to forget the 1; this
    # short run starts them at 0 with momentum 0.9. With pretrained
    # weights, leave them.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
            layer.moving_variance.assign(np.zeros(layer.moving_variance.shape))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train, y_train, batch_size=50, epochs=epochs, verbose=2 if verbose else 0
    )
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)

    # 3. MC dropout: the inserted layers sample, BatchNormalization does not.
    x_mc, y_mc = x_val[:mc_rows], y_val[:mc_rows]
    mean, std = mc_predict(model, x_mc, samples=samples, batch_size=256, seed=seed)
    entropy = -np.sum(mean * np.log(np.clip(mean, 1e-12, 1.0)), axis=-1)
    mc_accuracy = float(np.mean(np.argmax(mean, axis=-1) == y_mc))

    # 4. `portable` replaces the layers whose randomness differs by backend
    # (those the checker names); the backend check before and after it.
    port = keras_reg.models.portable(base)
    _, ported = changes(base, port)
    reports = {}
    if check_backends != ():
        reports["before portable"] = check(base, probe[:2], check_backends)
        reports["after portable"] = check(port, probe[:2], check_backends)
    return {
        "application": base.name,
        "epochs": epochs,
        "samples": samples,
        "inserted": inserted,
        "replaced": replaced,
        "portable_replaced": ported,
        "inference_unchanged": bool(same),
        "train_loss": float(history.history["loss"][-1]),
        "val_accuracy": float(accuracy),
        "mc_val_accuracy": mc_accuracy,
        "mean_std": float(np.mean(std)),
        "mean_entropy": float(np.mean(entropy)),
        "reports": reports,
    }


def counts_text(counts):
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def format_table(result):
    """What the workflow did and measured, one row each."""
    rows = [
        ["layers `regularize` inserted", counts_text(result["inserted"])],
        ["layers `regularize` replaced", counts_text(result["replaced"])],
        [
            "inference unchanged by `regularize`",
            "yes" if result["inference_unchanged"] else "no",
        ],
        [
            f"validation accuracy after {result['epochs']} epochs",
            f"{result['val_accuracy']:.3f}",
        ],
        [
            f"MC dropout mean ({result['samples']} samples): accuracy, mean std",
            f"{result['mc_val_accuracy']:.3f}, {result['mean_std']:.4f}",
        ],
        ["layers `portable` replaces", counts_text(result["portable_replaced"])],
    ]
    for name, report in result["reports"].items():
        rows.append([f"backend check {name}", "passes" if report.passed else "fails"])
    return markdown_table([result["application"], "result"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args(argv)
    result = run(
        args.epochs, args.samples, check_backends=() if args.no_check else None
    )
    print(f"\nbackend: {keras.backend.backend()}")
    print(f"inference unchanged by regularize: {result['inference_unchanged']}")
    print(
        f"validation accuracy {result['val_accuracy']:.3f} "
        f"(MC mean {result['mc_val_accuracy']:.3f}), mean MC std "
        f"{result['mean_std']:.4f}, mean predictive entropy "
        f"{result['mean_entropy']:.3f} nats"
    )
    for name, report in result["reports"].items():
        print(f"\n=== backend check, {name}: passed={report.passed} ===")
        print(report)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
