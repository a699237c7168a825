"""A residual CNN on scikit-learn's 8x8 digits with stochastic depth.

Three stages of residual blocks (2, 2, 2 blocks; 32, 64, 64 filters). Each
block's branch is `Conv-BN-ReLU-Conv-BN`; with stochastic depth the branch
goes through `DropPath(rate_i)` before the addition, where `rate_i` comes
from `keras_reg.layers.drop_path_rates(rate, depths)`: the linear rule of
ConvNeXt, Swin and timm, 0 for the first block and `rate` for the last.
`--style tfa` builds the same network with TensorFlow Addons' spelling,
`StochasticDepth(survival_probability=1 - rate_i)([shortcut, branch])`. The
models train on 500 images and are validated on the other 1,297.

    python examples/residual_depth.py --epochs 30
    KERAS_BACKEND=jax python examples/residual_depth.py --style tfa
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

DEPTHS = (2, 2, 2)
FILTERS = (32, 64, 64)


def load_images(train_size=500, seed=0):
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (n, 8, 8, 1)
    y = digits.target.astype("int32")
    return train_test_split(x, y, train_size=train_size, random_state=seed, stratify=y)


def _conv_bn(x, filters, relu=True):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    return keras.layers.ReLU()(x) if relu else x


def _block(x, filters, rate, style, seed):
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
    branch = _conv_bn(_conv_bn(x, filters), filters, relu=False)
    if style == "tfa":
        x = keras_reg.layers.StochasticDepth(1.0 - rate, seed=seed)([shortcut, branch])
    else:
        if rate > 0:
            branch = keras_reg.layers.DropPath(rate, seed=seed)(branch)
        x = keras.layers.Add()([shortcut, branch])
    return keras.layers.ReLU()(x)


def build_model(drop_path_rate=0.0, style="drop_path", seed=0):
    """The residual CNN; `drop_path_rate` is the rate of the deepest block."""
    if style not in ("drop_path", "tfa"):
        raise ValueError(f"style must be 'drop_path' or 'tfa', not {style!r}")
    rates = keras_reg.layers.drop_path_rates(drop_path_rate, list(DEPTHS))
    inputs = keras.Input((8, 8, 1), name="image")
    x = _conv_bn(inputs, FILTERS[0])
    block = 0
    for stage, (depth, filters) in enumerate(zip(DEPTHS, FILTERS, strict=True)):
        if stage > 0:
            x = keras.layers.MaxPooling2D()(x)  # 8 -> 4 -> 2
        for i in range(depth):
            x = _block(x, filters, rates[stage][i], style, seed + block)
            block += 1
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    name = "resnet_plain" if drop_path_rate == 0 else f"resnet_{style}"
    return keras.Model(inputs, outputs, name=name)


def train(model, data, epochs, progress=True):
    return train_classifier(model, data, epochs, 2e-3, progress)


def run(
    epochs=30, train_size=500, drop_path_rate=0.2, style="drop_path", progress=True
):
    data = load_images(train_size)
    results = []
    for rate in (0.0, drop_path_rate):
        keras.utils.set_random_seed(0)
        results.append(train(build_model(rate, style), data, epochs, progress))
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
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--style", choices=("drop_path", "tfa"), default="drop_path")
    args = parser.parse_args(argv)
    results = run(args.epochs, drop_path_rate=args.rate, style=args.style)
    print(f"\nbackend: {keras.backend.backend()}")
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
