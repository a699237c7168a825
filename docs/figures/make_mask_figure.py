"""Draws docs/figures/recurrent_masks.png: which recurrent mask is shared
across time and which is fresh at every step.

A schematic drawn with NumPy at rate 0.5, for one sample of the batch (every
sample draws its own masks, except weight drop): grey cells are dropped units
(for zoneout: units that keep their previous value).

    python docs/figures/make_mask_figure.py
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STEPS, FEATURES, UNITS, RATE = 8, 6, 6, 0.5
HERE = os.path.dirname(os.path.abspath(__file__))


def keep(rng, shape):
    return (rng.random(shape) >= RATE).astype(float)


def panels(rng):
    """(title, subtitle, mask) with masks shaped (rows, steps) or, for the
    weight mask, (units, 4 * units)."""
    shared = np.repeat
    return [
        (
            "dropout",
            "input x_t: one mask\nper sequence",
            shared(keep(rng, (FEATURES, 1)), STEPS, axis=1),
        ),
        (
            "recurrent_dropout",
            "h_{t-1}: one mask\nper sequence",
            shared(keep(rng, (UNITS, 1)), STEPS, axis=1),
        ),
        (
            "output_dropout",
            "emitted h_t: one mask\nper sequence",
            shared(keep(rng, (UNITS, 1)), STEPS, axis=1),
        ),
        (
            "share_input_mask=False",
            "input x_t: a fresh mask\nevery step (Keras 2)",
            keep(rng, (FEATURES, STEPS)),
        ),
        (
            "zoneout",
            "state keeps its old value:\nfresh every step",
            keep(rng, (UNITS, STEPS)),
        ),
        (
            "weight_dropout",
            "recurrent kernel: one mask\nper call, whole batch",
            keep(rng, (UNITS, 4 * UNITS)),
        ),
    ]


PATH = os.path.join(HERE, "recurrent_masks.png")


def main(path=PATH):
    rng = np.random.default_rng(3)
    items = panels(rng)
    fig, axes = plt.subplots(2, 3, figsize=(9, 4.6))
    for ax, (title, subtitle, mask) in zip(axes.flat, items, strict=True):
        ax.imshow(1 - mask, cmap="Greys", vmin=0, vmax=1.6, aspect="equal")
        ax.set_title(f"{title}\n{subtitle}", fontsize=9)
        ax.set_xticks(np.arange(-0.5, mask.shape[1], 1), minor=True)
        ax.set_yticks(np.arange(-0.5, mask.shape[0], 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1)
        ax.tick_params(which="both", length=0)
        ax.set_xticks([])
        ax.set_yticks([])
        is_weight = title == "weight_dropout"
        is_input = "input" in subtitle
        ax.set_xlabel(
            "kernel columns (4 gates x units)" if is_weight else "time step", fontsize=8
        )
        ax.set_ylabel("features" if is_input else "units", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(main())
