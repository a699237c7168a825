"""What a batch-shared recurrent mask costs the model: validation bits/char
of the demo's character model (`examples/char_lm.py`) over seeds.

Four variants of the same `VariationalLSTM` (input dropout 0.1 and output
dropout 0.2 in all of them), differing only in how the recurrent
connection is regularized:

- `none`: no recurrent regularization;
- `sample`: `recurrent_dropout=0.2`, one mask per sample (Gal & Ghahramani);
- `batch`: `recurrent_dropout=0.2, recurrent_dropout_mode="batch"`, one mask
  per call shared by every sample (it folds into the recurrent kernel);
- `weight`: `weight_dropout=0.2` (DropConnect on the recurrent kernel).

One run (a variant and a seed) writes a JSON file; `--report` gathers them
into a table and a figure.

    KERAS_BACKEND=torch python benchmarks/recurrent_masks_bpc.py \\
        --variant batch --seed 0 --out /tmp/bpc
    python benchmarks/recurrent_masks_bpc.py --report /tmp/bpc \\
        --figure docs/figures/recurrent_mask_modes_bpc.png
"""

import argparse
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
    "none": {},
    "sample": {"recurrent_dropout": 0.2},
    "batch": {"recurrent_dropout": 0.2, "recurrent_dropout_mode": "batch"},
    "weight": {"weight_dropout": 0.2},
}
LABELS = {
    "none": "no recurrent dropout",
    "sample": "per-sample masks",
    "batch": "batch-shared masks",
    "weight": "weight drop",
}
COMMON = {"dropout": 0.1, "output_dropout": 0.2}


def train(variant, seed, epochs, units):
    import keras

    import keras_reg
    from examples import char_lm

    text, vocab = char_lm.load_text()
    x_train, y_train = char_lm.windows(text[: char_lm.TRAIN_CHARS], vocab)
    x_val, y_val = char_lm.windows(text[char_lm.TRAIN_CHARS :], vocab)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(len(vocab), 32)(inputs)
    x = keras_reg.layers.VariationalLSTM(
        units, return_sequences=True, seed=seed, **COMMON, **VARIANTS[variant]
    )(x)
    outputs = keras.layers.Dense(len(vocab))(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(char_lm.LEARNING_RATE, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=char_lm.BATCH_SIZE,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    val = [char_lm.bits_per_char(v) for v in history.history["val_loss"]]
    train_bpc = [char_lm.bits_per_char(v) for v in history.history["loss"]]
    return {
        "variant": variant,
        "seed": seed,
        "epochs": epochs,
        "units": units,
        "backend": keras.backend.backend(),
        "val_bpc": val,
        "train_bpc": train_bpc,
        "best_val_bpc": min(val),
        "seconds": seconds,
    }


def report(directory, figure=None):
    import numpy as np

    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{directory}/*.json"))]
    # The seeds that every variant ran, so the variants are compared alike.
    seeds = set.intersection(
        *({r["seed"] for r in runs if r["variant"] == v} for v in VARIANTS)
    )
    runs = [r for r in runs if r["seed"] in seeds]
    rows = [
        "| recurrent regularization | seeds | best val bits/char (mean ± sd) "
        "| last val bits/char | last train bits/char | s/run |",
        "|---|---|---|---|---|---|",
    ]
    by_variant = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r)
    for variant in VARIANTS:
        group = by_variant.get(variant)
        if not group:
            continue
        best = np.array([r["best_val_bpc"] for r in group])
        last = np.array([r["val_bpc"][-1] for r in group])
        train_last = np.array([r["train_bpc"][-1] for r in group])
        secs = np.array([r["seconds"] for r in group])
        rows.append(
            f"| {LABELS[variant]} | {len(group)} | {best.mean():.3f} ± "
            f"{best.std(ddof=1) if len(group) > 1 else 0:.3f} | {last.mean():.3f} "
            f"| {train_last.mean():.3f} | {secs.mean():.0f} |"
        )
    print("\n".join(rows))
    if figure:
        from examples._common import pyplot

        plt = pyplot()
        fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 4.5))
        for variant, group in by_variant.items():
            val = np.array([r["val_bpc"] for r in group])
            train_bpc = np.array([r["train_bpc"] for r in group])
            epochs = np.arange(1, val.shape[1] + 1)
            (line,) = ax.plot(
                epochs, val.mean(0), marker="o", ms=3, label=LABELS[variant]
            )
            color = line.get_color()
            ax.plot(epochs, train_bpc.mean(0), "--", color=color, lw=1)
            late = epochs >= 12
            zoom.plot(epochs[late], val.mean(0)[late], marker="o", ms=3, color=color)
            zoom.fill_between(
                epochs[late],
                val.min(0)[late],
                val.max(0)[late],
                color=color,
                alpha=0.15,
            )
        r = runs[0]
        seeds = len(runs) // max(len(by_variant), 1)
        ax.set_title(
            f"VariationalLSTM({r['units']}), {r['backend']}, mean of {seeds} "
            "seeds; dashed: training",
            fontsize=9,
        )
        zoom.set_title("validation, epochs 12 on (band: min to max)", fontsize=9)
        for a in (ax, zoom):
            a.set_xlabel("epoch")
            a.set_ylabel("bits per character")
            a.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.savefig(figure, dpi=110, bbox_inches="tight")
        print("figure:", figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--units", type=int, default=384)
    parser.add_argument("--out", default="bpc_runs")
    parser.add_argument("--report")
    parser.add_argument("--figure")
    args = parser.parse_args()
    if args.report:
        report(args.report, args.figure)
        return
    result = train(args.variant, args.seed, args.epochs, args.units)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{args.variant}_{args.seed}.json")
    with open(path, "w") as f:
        json.dump(result, f)
    print(path, f"best {result['best_val_bpc']:.3f}", f"{result['seconds']:.0f}s")


if __name__ == "__main__":
    main()
